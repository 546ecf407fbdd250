"""What a reader of the R1 tutorial (../shared/seeds/003) types: each of its example commands and config examples
either resolves to its documented meaning or stops with one line naming what to use instead.

`python train_grpo.py ARGS` in the tutorial is `r1kit grpo ARGS` (or `r1kit run ARGS`); the config is what decides
the outcome, so each example goes through `r1kit config show` with the same arguments.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import pytest

from r1kit.cli import main
from r1kit.config.sources import ConfigError, ResolvedConfig, resolve_config


def resolve(*args: str) -> ResolvedConfig:
    return resolve_config(overrides=list(args), environ={})


def show(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict, str]:
    """`r1kit config show --format json ARGS`: (exit code, the resolved config, stderr)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if type(h) is logging.StreamHandler]:
        root.removeHandler(handler)
    code = main(["config", "show", "--format", "json", *args])
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 else {}, err


def value(config: dict, path: str):
    for key in path.split("."):
        config = config[key]
    return config


# (tutorial line, arguments, expected values) — commands that run as documented
RUNS = [
    (211, [], {"training.max_steps": 30}),
    (218, ["--profile", "dev"], {"training.max_steps": 8}),
    (225, ["--model.name", "Qwen/Qwen2.5-7B", "--training.epochs", "2.0"], {"training.epochs": 2.0, "training.max_steps": None}),
    (236, ["--rewards.functions", "[accuracy,format,reasoning_steps]"], {"rewards.functions": ["accuracy", "format", "reasoning_steps"]}),
    (243, ["--rewards.functions=[accuracy,format,reasoning_steps]"], {"rewards.functions": ["accuracy", "format", "reasoning_steps"]}),
    (250, ["--rewards.functions", "[accuracy,", "format,", "reasoning_steps]"], {"rewards.functions": ["accuracy", "format", "reasoning_steps"]}),
    (261, ["--model_name", "Qwen/Qwen2.5-7B", "--learning_rate", "1e-4", "--no_wandb"], {"model.name": "Qwen/Qwen2.5-7B", "training.optimization.learning_rate": 1e-4, "monitoring.wandb.enabled": False}),
    (322, ["--profile", "prod", "--training.epochs", "5.0"], {"training.epochs": 5.0, "training.max_steps": None}),
    (335, ["--training.optimization.learning_rate", "1e-4"], {"training.optimization.learning_rate": 1e-4}),
    (337, ["--dataset.split.test_size", "0.2"], {"dataset.split.test_size": 0.2}),
    (369, ["--monitoring.wandb.enabled", "false"], {"monitoring.wandb.enabled": False}),
    (370, ["--training.precision.gradient_checkpointing", "true"], {"training.gradient_checkpointing": True}),
    (492, ["--model_name", "Qwen/Qwen2.5-7B", "--learning_rate", "1e-4"], {"training.optimization.learning_rate": 1e-4}),
    (501, ["--reward_funcs", "accuracy,format,reasoning_steps"], {"rewards.functions": ["accuracy", "format", "reasoning_steps"]}),
    (510, ["--profile", "dev", "--training.epochs", "0.5"], {"training.epochs": 0.5, "training.max_steps": None}),
    (554, ["--monitoring.logging.level", "DEBUG"], {"monitoring.log_level": "DEBUG"}),
    (618, ["--profile", "dev", "--rewards.functions", "[format,accuracy]", "--training.epochs", "0.1"], {"training.epochs": 0.1}),
    (627, ["--profile", "prod", "--model.name", "Qwen/Qwen2.5-7B", "--training.epochs", "3.0", "--training.optimization.learning_rate", "3e-5", "--monitoring.wandb.run_name", "production-run-20261122"], {"monitoring.wandb.run_name": "production-run-20261122"}),
    (638, ["--profile", "test", "--rewards.functions", "[format]", "--training.epochs", "0.01"], {"training.epochs": 0.01, "training.max_steps": None}),
    (719, ["--profile", "prod"], {"training.max_steps": 300}),
    (720, ["--profile", "test"], {"model.name": "tiny-random"}),
    (818, ["--model_name", "Qwen/Qwen2.5-7B", "--learning_rate", "1e-4", "--per_device_train_batch_size", "8", "--reward_funcs", "accuracy,format", "--no_wandb"], {"training.batch_size.per_device_train": 8}),
    # the "Optimized Training Commands"
    (1155, ["--model_name", "./models/Qwen2.5-0.5B-Instruct", "--per_device_train_batch_size", "16", "--gradient_accumulation_steps", "1", "--max_completion_length", "512", "--generation_batch_size", "32", "--dataloader_num_workers", "8", "--reward_funcs", "accuracy", "format", "reasoning_steps", "--no_wandb"],
     {"grpo.generation_batch_size": 32, "grpo.max_completion_length": 512, "training.dataloader.num_workers": 8, "training.batch_size.gradient_accumulation_steps": 1}),
    (1168, ["--model_name", "./models/Qwen2.5-3B-Instruct", "--per_device_train_batch_size", "12", "--gradient_accumulation_steps", "1", "--max_completion_length", "512", "--generation_batch_size", "24", "--dataloader_num_workers", "8", "--reward_funcs", "accuracy", "format", "reasoning_steps", "cosine", "repetition_penalty", "--wandb_project", "deepseek-r1-zero-grpo-optimized"],
     {"training.batch_size.per_device_train": 12, "grpo.generation_batch_size": 24, "monitoring.wandb.project": "deepseek-r1-zero-grpo-optimized"}),
    (1181, ["--model_name", "./models/Qwen2.5-0.5B-Instruct", "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "2", "--max_completion_length", "512", "--generation_batch_size", "16", "--dataloader_num_workers", "6", "--reward_funcs", "accuracy", "format", "reasoning_steps", "--no_wandb"],
     {"training.batch_size.gradient_accumulation_steps": 2, "training.dataloader.num_workers": 6}),
]  # fmt: skip


@pytest.mark.parametrize(("line", "args", "expected"), RUNS, ids=[f"L{line}" for line, _, _ in RUNS])
def test_tutorial_command_runs_as_documented(line: int, args: list[str], expected: dict, capsys) -> None:
    code, config, err = show(capsys, *args)
    assert code == 0, err
    for path, wanted in expected.items():
        assert value(config, path) == wanted, path
    legacy = [a for a in args if a.startswith("--") and "." not in a and a not in ("--profile", "--config")]
    if legacy:  # the tutorial's names work, and one line says which r1kit keys they are
        assert "TRL's and the R1 tutorial's names were read as r1kit's" in err and all(flag in err for flag in legacy)
    if "--wandb_project" in args:  # the tutorial logs to W&B by default, r1kit does not: the note says so
        assert config["monitoring"]["wandb"]["enabled"] is False and "unless --monitoring.wandb.enabled true" in err


# (tutorial line, arguments, the one line it gets)
REFUSED = [
    (376, ["--profile", "prod", "--training.epochs", "3.0", "--training.batch_size.per_device_train", "4", "--callbacks.checkpoint_preservation.every_n_steps", "1000"],
     "must be divisible by grpo.num_generations (8)"),  # the tutorial breaks its own batch rule here
    (385, ["--callbacks.checkpoint_preservation.every_n_steps", "1000", "--monitoring.wandb.enabled", "true"], "monitoring.wandb.enabled: the wandb package is not installed"),
    (436, ["--training.batch_size.per_device_train", "7"], "must be divisible by grpo.num_generations (8)"),
    (444, ["--training.optimization.learning_rate", "-1"], "training.optimization.learning_rate: Input should be greater than 0"),
    (452, ["--rewards.functions", "[invalid_function]"], "unknown reward 'invalid_function'"),
    (0, ["--push_to_hub", "true"], "upload it with"),
    (0, ["--overwrite_output_dir"], "never overwrites finished training"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("line", "args", "message"), REFUSED, ids=[f"L{line}-{i}" for i, (line, _, _) in enumerate(REFUSED)]
)
def test_tutorial_command_gets_one_line_naming_what_to_use(line: int, args: list[str], message: str, capsys) -> None:
    code, _, err = show(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("r1kit: config error:") and message in err, err


def test_turning_on_what_is_always_on_is_noted_not_refused(capsys) -> None:
    """The tutorial's profiling command (line 649) asks for its comprehensive logging, which r1kit always does: the
    whole command was refused ("monitoring is always on")."""
    args = ["--profile", "profile", "--callbacks.comprehensive_logging.enabled", "true"]
    code, config, err = show(capsys, *args, "--monitoring.logging.profiling_mode", "true")
    assert code == 0 and config["monitoring"]["profiler"]["enabled"] is True
    assert "--callbacks.comprehensive_logging.enabled true: r1kit's way already, nothing to set" in err
    code, _, err = show(capsys, "--callbacks.comprehensive_logging.enabled", "false")
    assert code == 2 and "monitoring is always on" in err
    for callback in ("reward_trend", "checkpoint_preservation"):  # the tutorial's other callbacks, as its YAML has them
        code, _, err = show(capsys, f"--callbacks.{callback}.enabled", "true")
        assert code == 0 and f"--callbacks.{callback}.enabled true: r1kit's way already, nothing to set" in err, err


def test_trl_flags_read_as_trl_reads_them(capsys) -> None:
    """Copied TRL commands: `--fp16 true --bf16 false` trained in fp32 (its order decided), `--bf16 true --fp16 true`
    in fp16 without a word; `--max_steps -1` (transformers' "not set") was refused, and with `--num_train_epochs` a
    positive one was refused where it overrides them; `--trust_remote_code False` was told to set it true; a bare
    `--mask_truncated_completions` had a "missing value"; `--packing false` and `--dataset_text_field messages` were
    refused though they ask for what r1kit does."""
    for order in (["--fp16", "true", "--bf16", "false"], ["--bf16", "false", "--fp16", "true"]):
        assert resolve(*order, "--model.device", "cuda").config.model.precision == "fp16"
    assert resolve("--bf16", "false", "--torch_dtype", "auto").config.model.precision == "fp32"
    # `--fp16 false` is fp32, as `--bf16 false` is (auto would pick fp16 on a T4, what the flag turns off)
    assert resolve("--fp16", "false").config.model.precision == "fp32"
    for conflict in (["--bf16", "true", "--fp16", "true"], ["--bf16", "--torch_dtype", "float32"]):
        with pytest.raises(ConfigError, match="ask for different precisions; keep one"):
            resolve(*conflict)
    training = resolve("--num_train_epochs", "3", "--max_steps", "100").config.training
    assert (training.epochs, training.max_steps) == (None, 100)
    training = resolve("--num_train_epochs", "3", "--max_steps", "-1").config.training
    assert (training.epochs, training.max_steps) == (3, None)
    # alone it sets nothing, and says so (it was "r1kit's way already": a TRL user meant 3 epochs, trained 30 steps)
    alone = resolve("--max_steps", "-1")
    assert (alone.config.training.epochs, alone.config.training.max_steps) == (None, 30)
    assert "--max_steps -1: nothing set: a stage trains its own max_steps" in " ".join(alone.notes)
    assert "unless --num_train_epochs or its epochs are given" in " ".join(alone.notes)
    assert resolve("--trust_remote_code", "False").config.model.trust_remote_code is False
    assert resolve("--trust_remote_code").config.model.trust_remote_code is True
    assert resolve("--mask_truncated_completions").config.grpo.mask_truncated_completions is True
    for harmless in (["--packing", "false"], ["--dataset_text_field", "messages"]):
        assert "r1kit's way already" in " ".join(resolve(*harmless).notes)
    with pytest.raises(ConfigError, match="does not pack"):
        resolve("--packing", "true")


def test_the_keep_every_alias_and_wandb_flag_map_onto_r1kit_keys(capsys) -> None:
    code, config, err = show(
        capsys,
        "--callbacks.checkpoint_preservation.every_n_steps",
        "1000",
        "--monitoring.logging.profiling_mode",
        "true",
    )
    assert code == 0, err
    assert (
        value(config, "training.checkpoint.keep_every") == 1000 and value(config, "monitoring.profiler.enabled") is True
    )


def test_the_tutorials_dotted_names_land_in_the_stage_run_alone() -> None:
    """`r1kit sft --training.learning_rate 1e-4` (the tutorial's name) and its checkpoint-keeping alias were "for
    other stages": SFT trained at its own rate and kept no milestone, where the tutorial's flags land in the stage."""
    overrides = ["--training.learning_rate", "1e-4", "--callbacks.checkpoint_preservation.every_n_steps", "2"]
    resolved = resolve_config(overrides=overrides, environ={}, command="sft")
    config = resolved.config
    assert (config.sft.optimization.learning_rate, config.sft.checkpoint.keep_every) == (1e-4, 2)
    assert "--training.learning_rate → --sft.optimization.learning_rate" in resolved.notes
    recipe = resolve_config(overrides=overrides, environ={}, command="run").config  # a recipe's: GRPO's, as before
    assert (recipe.training.optimization.learning_rate, recipe.training.checkpoint.keep_every) == (1e-4, 2)


def test_trl_names_under_a_section_are_answered_with_their_key_not_a_near_spelling(tmp_path: Path) -> None:
    """The tutorial writes TrainingArguments under `training:`: per_device_eval_batch_size was answered "did you mean
    training.per_device_train_batch_size?" and eval_steps "training.max_steps?" (the eval interval as the step count);
    others were bare unknown options, and seed notebooks' --r, --group_by_length got no word of what to use."""
    tutorial = tmp_path / "tutorial.yaml"
    tutorial.write_text("training: {per_device_eval_batch_size: 16, eval_steps: 50, bf16: true}\n")
    with pytest.raises(ConfigError) as raised:
        resolve_config(config_file=str(tutorial), environ={})
    said = str(raised.value)
    assert "(TRL's per_device_eval_batch_size is 'evaluation.batch_size')" in said
    assert "(TRL's eval_steps is 'evaluation.every_steps')" in said and "max_steps" not in said
    assert "(TRL's bf16 is 'model.precision: bf16')" in said
    for flag, answer in [
        ("--training.warmup_steps", "warmup is a share of the steps"),
        ("--sft.packing", "it does not pack"),
        ("--model.lora_r", "TRL's lora_r is --model.lora.rank"),
        ("--group_by_length", "r1kit batches rows in a seeded shuffle"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(answer)):
            resolve_config(overrides=[flag, "1"], environ={}, command="sft")
    assert resolve_config(overrides=["--r", "8"], environ={}).config.model.lora.rank == 8  # PEFT's LoraConfig(r=8)
    # under a stage's section, a key that stage reads: its own or a common one, never another stage's
    for key, answer in [
        ("--sft.per_device_train_batch_size", "TRL's per_device_train_batch_size is --sft.batch_size.per_device_train"),
        ("--sft2.learning_rate", "TRL's learning_rate is --sft.optimization.learning_rate"),
        ("--sft.bf16", "TRL's bf16 is --model.precision bf16"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(answer)):
            resolve_config(overrides=[key, "1"], environ={})
    with pytest.raises(ConfigError) as raised:  # GRPO's rewards, which SFT does not read
        resolve_config(overrides=["--sft.reward_funcs", "accuracy"], environ={})
    assert "rewards.functions" not in str(raised.value)


def test_trls_split_and_pin_memory_flags_and_a_suggestion_only_of_keys_the_command_reads() -> None:
    """--dataset_test_split / --dataset_train_split / --dataloader_pin_memory were unknown options; and `r1kit ppo
    --time_limit_minutes` was told "did you mean 'sft.time_limit_minutes'?", which `r1kit ppo` then ignored."""
    flags = ["--dataset_test_split", "test", "--dataset_train_split", "all", "--dataloader_pin_memory", "false"]
    config = resolve_config(overrides=flags, environ={}, command="grpo").config
    assert (config.dataset.test_split, config.dataset.train_split) == ("test", "all")
    assert config.training.dataloader.pin_memory is False
    with pytest.raises(ConfigError) as raised:
        resolve_config(overrides=["--time_limit_minutes", "3"], environ={}, command="ppo")
    assert "sft.time_limit_minutes" not in str(raised.value)


@pytest.mark.parametrize("name", ["GRPO_REWARDS_REPETITION_N_GRAMS", "GRPO_SYSTEM_SEED", "R1KIT_CALLBACKS_X_ENABLED"])
def test_a_tutorial_section_r1kit_refuses_says_what_to_use_from_the_environment_too(name: str) -> None:
    """As a flag or YAML key it is refused with what to use instead; as a variable it was "names no config key, so it
    is not read" (the run went on with the default). R1KIT_* is r1kit's own: an error; GRPO_* may be another tool's
    (GRPO_PROJECT_DIR): said."""
    said = f"environment variable {name} is not an r1kit setting: .*(rewards|run|monitoring)"
    if name.startswith("R1KIT_"):
        with pytest.raises(ConfigError, match=said):
            resolve_config(environ={name: "4"})
    else:
        assert any(
            re.match(said, line) for line in resolve_config(environ={name: "4", "GRPO_PROJECT_DIR": "x"}).ignored
        )


def test_the_tutorials_reward_arguments_set_each_rewards_parameters(capsys) -> None:
    """GRPOScriptArguments (tutorial lines 33-39): cosine_* and repetition_* as flags."""
    args = ["--cosine_max_len", "300", "--cosine_min_value_correct", "0.7", "--repetition_n_grams", "4"]
    code, config, err = show(capsys, *args, "--repetition_max_penalty", "-0.2")
    assert code == 0, err
    assert value(config, "rewards.cosine.max_len") == 300 and value(config, "rewards.cosine.min_value_correct") == 0.7
    assert value(config, "rewards.repetition_penalty.ngram_size") == 4
    assert value(config, "rewards.repetition_penalty.max_penalty") == -0.2


@pytest.mark.parametrize(
    ("section", "pointer"),
    [
        ("rewards.repetition.n_grams", "rewards.repetition_penalty.ngram_size"),
        ("rewards.soft_punish.max_length", "rewards.overlong.max_length"),
        ("training.scheduling.num_train_epochs", "training.epochs"),
    ],
)
def test_the_tutorials_config_sections_r1kit_names_otherwise_point_to_its_keys(
    section: str, pointer: str, capsys
) -> None:
    code, _, err = show(capsys, f"--{section}", "1")  # tutorial lines 284-286: sections of its YAML layout
    assert code == 2 and err.startswith("r1kit: config error:") and pointer in err, err


def test_tutorial_environment_variables(capsys, monkeypatch) -> None:
    monkeypatch.setenv("GRPO_TRAINING_LEARNING_RATE", "1e-4")
    monkeypatch.setenv("GRPO_MODEL_NAME", "Qwen/Qwen2.5-7B")
    monkeypatch.setenv("GRPO_MONITORING_WANDB_ENABLED", "false")
    code, config, err = show(capsys)
    assert code == 0, err
    assert (
        value(config, "training.optimization.learning_rate") == 1e-4
        and value(config, "model.name") == "Qwen/Qwen2.5-7B"
    )


TUTORIAL_PROFILES = """
_profiles:
  dev:
    training.epochs: 0.1
    monitoring.wandb.enabled: false
  prod:
    training.epochs: 3.0
    monitoring.wandb.enabled: false
  gpu_optimized:
    training.precision.bf16: true
    training.precision.tf32: true
    training.dataloader.pin_memory: true
    grpo.vllm.enabled: true
    grpo.vllm.gpu_memory_utilization: 0.4
"""


def test_the_tutorials_profiles_section_with_dotted_keys(tmp_path: Path, capsys) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(TUTORIAL_PROFILES)
    code, config, err = show(capsys, "--config", str(config_file), "--profile", "dev")
    assert code == 0, err
    assert value(config, "training.epochs") == 0.1 and value(config, "training.max_steps") is None
    # gpu_optimized is read key by key; on a CPU machine its TF32 is refused with what to do (with its bf16 too,
    # where the CPU has no bf16 instructions)
    code, _, err = show(capsys, "--config", str(config_file), "--profile", "gpu_optimized")
    assert code == 2 and "model.tf32: TF32 is an NVIDIA GPU feature" in err and "set it to false" in err
    assert "(from profile:gpu_optimized, as training.precision.tf32)" in err  # the key the file has
    config_file.write_text("training.precision.tf32: true\n")
    code, _, err = show(capsys, "--config", str(config_file))
    assert code == 2 and f"(from file:{config_file}, as training.precision.tf32)" in err


def test_the_tutorials_hierarchical_config_example(tmp_path: Path, capsys) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        "training:\n  optimization:\n    learning_rate: 5e-5\n  batch_size:\n    per_device_train: 16\n"
        'rewards:\n  functions: ["format", "equation"]\n  cosine:\n    min_value_correct: 0.8\n'
    )
    code, _, err = show(capsys, "--config", str(config_file))
    assert code == 2 and "unknown reward 'equation'" in err  # the tutorial's `equation` reward is not part of R1
    config_file.write_text(config_file.read_text().replace('"equation"', '"accuracy"'))
    code, config, err = show(capsys, "--config", str(config_file))
    assert code == 0, err
    assert value(config, "training.optimization.learning_rate") == 5e-5


def test_did_you_mean_suggests_only_near_misses(capsys) -> None:
    code, _, err = show(capsys, "--trainig.max_steps", "3")
    assert code == 2 and "did you mean 'training.max_steps'" in err
    code, _, err = show(capsys, "--monitoring.logging.colour", "red")
    assert code == 2 and "did you mean" not in err


# ------------------------------------------------------------------------------------------------- plug-ins

PLUGIN = """
def short_answer(completions, max_words=20, **kwargs):
    texts = [c if isinstance(c, str) else c[0]["content"] for c in completions]
    return [1.0 if len(t.split()) <= max_words else 0.0 for t in texts]


def broken(completions, **kwargs):
    raise RuntimeError("bug in my reward")


def stuck(completions, **kwargs):
    import time
    time.sleep(30)


def prompts_first(prompts, completions, max_words=20, **kwargs):
    return [float(len(c.split()) <= max_words) for c in completions]


async def awaited(completions, **kwargs):
    return [0.5 for _ in completions]


def own_name(samples, **kwargs):
    return [float(len(s) < 3) for s in samples]


def ids_first(completion_ids, **kwargs):
    return [float(len(ids)) for ids in completion_ids]


def keywords_only(**kwargs):
    return [0.25 for _ in kwargs["completions"]]


def no_kwargs(completions, max_words=20):
    return [1.0 for _ in completions]


def every_argument(prompts, completions, completion_ids, trainer_state, log_extra, log_metric, solution):
    return [1.0 for _ in completions]


def _adapted(function):
    import functools

    @functools.wraps(function)
    def adapter(*args, **kwargs):
        return function(kwargs["completions"])

    return adapter


@_adapted
def wrapped(completions):
    return [1.0 for _ in completions]
"""


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "my_rewards.py").write_text(PLUGIN)
    (tmp_path / "keyed_rewards.py").write_text('raise RuntimeError("needs OPENAI_KEY")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield "my_rewards"
    sys.modules.pop("my_rewards", None)
    sys.modules.pop("keyed_rewards", None)


def test_a_plugin_reward_with_its_parameters(plugin_module: str, capsys) -> None:
    from r1kit.config.sources import ConfigError, resolve_config, unused_reward_settings
    from r1kit.stages.grpo import build_rewards

    spec = f"{plugin_module}:short_answer"
    for key in ("short_answer", f'"{spec}"'):  # by its function's name or by its spec
        config_file = Path("config.yaml")
        config_file.write_text(
            f"rewards:\n  functions: [accuracy, {spec}]\n  {key}: {{weight: 0.5, max_words: 2}}\n", encoding="utf-8"
        )
        config = resolve_config(config_file=str(config_file), environ={}).config
        assert config.rewards.params(spec).weight == 0.5
        reward = build_rewards(config)["short_answer"]
        assert reward.__name__ == "short_answer"
        assert reward(["<answer>4</answer>", "it is four I think"]) == [1.0, 0.0]
    on_cli = resolve_config(
        overrides=["--rewards.functions", f"[{spec}]", "--rewards.short_answer.max_words", "9"], environ={}
    )
    assert on_cli.config.rewards.params(spec).model_extra == {"max_words": 9}
    # a misspelt parameter went to the function's **kwargs, and max_words kept its default without a word
    with pytest.raises(
        ConfigError, match=r"max_wordz is not a parameter of .*:short_answer .*did you mean 'max_words'"
    ):
        resolve_config(
            overrides=["--rewards.functions", f"[{spec}]", "--rewards.short_answer.max_wordz", "9"], environ={}
        )
    # without **kwargs it raised TypeError at every call (the trainer passes prompts, solution, …): None all run
    with pytest.raises(ConfigError, match=r"plug-in reward .*:no_kwargs takes no \*\*kwargs, but the trainer"):
        resolve_config(overrides=["--rewards.functions", f"[{plugin_module}:no_kwargs]"], environ={})
    # one that names every argument the trainer passes, or is called through a decorator's **kwargs, is fine
    for fine in ("every_argument", "wrapped"):
        resolve_config(overrides=["--rewards.functions", f"[{plugin_module}:{fine}]"], environ={})
    # a name close to none it takes is its **kwargs' business (a function may read kwargs itself)
    extra = ["--rewards.functions", f"[{plugin_module}:broken]", "--rewards.broken.limit", "3"]
    assert resolve_config(overrides=extra, environ={}).config.rewards.params(f"{plugin_module}:broken").model_extra
    # its parameters under its whole spec are read, and were said to change nothing ("my_rewards is not in
    # rewards.functions"): the spec's module was taken for the reward
    by_spec = resolve_config(
        overrides=["--rewards.functions", f"[{spec}]", f"--rewards.{spec}.max_words", "9"], environ={}, command="grpo"
    )
    assert by_spec.config.rewards.params(spec).model_extra == {"max_words": 9}
    assert unused_reward_settings(by_spec, "grpo") == []
    # under both names: `config show` listed both, and the run read one of them without a word
    both = ["--rewards.short_answer.max_words", "2", f"--rewards.{spec}.max_words", "3"]
    with pytest.raises(ConfigError, match=r"rewards\.short_answer and rewards\..*:short_answer both set the param"):
        resolve_config(overrides=["--rewards.functions", f"[{spec}]", *both], environ={})
    # a parameter whose value is a mapping is the plug-in's own (it was refused as an unknown key)
    mapping = resolve_config(
        overrides=["--rewards.functions", f"[{plugin_module}:broken]", "--rewards.broken.bonus", "{any: 0.5}"],
        environ={},
    )
    assert mapping.config.rewards.params(f"{plugin_module}:broken").model_extra == {"bonus": {"any": 0.5}}
    # replaced whole by a later source, as dataset.columns is (it was merged into the file's)
    Path("bonus.yaml").write_text(
        f"rewards: {{functions: [{plugin_module}:broken], broken: {{bonus: {{a: 1, b: 2}}}}}}\n"
    )
    later = resolve_config(config_file="bonus.yaml", overrides=["--rewards.broken.bonus", "{c: 3}"], environ={})
    assert later.config.rewards.params(f"{plugin_module}:broken").model_extra == {"bonus": {"c": 3}}
    # and by a recipe stage's own config
    from r1kit.config.schema import StageSpec

    staged = later.config.for_stage(StageSpec(name="grpo", config={"rewards": {"broken": {"bonus": {"d": 4}}}}))
    assert staged.rewards.params(f"{plugin_module}:broken").model_extra == {"bonus": {"d": 4}}


def plugin_rewards(functions: str, *overrides: str) -> dict:
    """The rewards a GRPO stage builds for `rewards.functions` FUNCTIONS and the other settings `overrides`."""
    from r1kit.config.sources import resolve_config
    from r1kit.stages.grpo import build_rewards

    return build_rewards(resolve_config(overrides=["--rewards.functions", functions, *overrides], environ={}).config)


def test_a_plugin_that_raises_or_hangs_costs_its_items_not_the_run(plugin_module: str) -> None:
    functions = f"[{plugin_module}:broken, {plugin_module}:stuck]"
    rewards = plugin_rewards(functions, "--rewards.plugin_timeout_seconds", "0.5")
    logged: dict[str, float] = {}
    assert rewards["broken"](["a", "b"], log_metric=logged.__setitem__) == [None, None]
    assert rewards["stuck"](["a"], log_metric=logged.__setitem__) == [None]
    assert logged["rewards/broken/exceptions"] == 2.0 and logged["rewards/stuck/timeouts"] == 1.0


def test_a_plugin_with_trl_s_argument_order_or_async_is_called_as_trl_calls_it(plugin_module: str) -> None:
    """TRL calls a reward by keyword (`prompts=…, completions=…`) and awaits an `async def` one: a plug-in written
    `def r(prompts, completions, **kwargs)` raised "got multiple values for argument 'prompts'" at every call, an
    async one returned a coroutine, and both scored None for every completion (a warning, no signal)."""
    from r1kit.config.sources import ConfigError, resolve_config

    functions = f"[{plugin_module}:prompts_first, {plugin_module}:awaited]"
    rewards = plugin_rewards(functions, "--rewards.prompts_first.max_words", "1")
    logged: dict[str, float] = {}
    trl_call = {"prompts": ["p", "p"], "completion_ids": [[1], [2]], "log_metric": logged.__setitem__}
    assert rewards["prompts_first"](["4", "it is 4"], **trl_call) == [1.0, 0.0]
    assert rewards["awaited"](["4", "5"], **trl_call) == [0.5, 0.5]
    # a first parameter of its own name takes the completions, as before
    assert plugin_rewards(f"[{plugin_module}:own_name]")["own_name"](["4", "it is 4"], **trl_call) == [1.0, 0.0]
    assert plugin_rewards(f"[{plugin_module}:keywords_only]")["keywords_only"](["4", "5"], **trl_call) == [0.25] * 2
    # one the trainer passes by its name: given the completions too, "multiple values" at every call
    assert plugin_rewards(f"[{plugin_module}:ids_first]")["ids_first"](["4", "5"], **trl_call) == [1.0, 1.0]
    assert not any(key.endswith("exceptions") and value for key, value in logged.items())
    with pytest.raises(ConfigError, match=r"max_wordz is not a parameter .*did you mean 'max_words'"):
        resolve_config(
            overrides=["--rewards.functions", functions, "--rewards.prompts_first.max_wordz", "1"], environ={}
        )
    # a parameter named as what the trainer passes: accepted, then "multiple values" at every call
    with pytest.raises(ConfigError, match=r"solution is what the trainer passes"):
        resolve_config(
            overrides=["--rewards.functions", functions, "--rewards.prompts_first.solution", "1"], environ={}
        )


@pytest.mark.parametrize(
    ("functions", "message"),
    [
        ("[accuracy, no_such_module:f]", "cannot import module 'no_such_module'"),
        ("[accuracy, my_rewards:nothing]", "module 'my_rewards' has no 'nothing'"),
        ("[accuracy, 'my_rewards:two words']", "must look like module.path:function_name"),
        # its own code failing: was "unexpected error (a bug in r1kit or a library)"
        ("[accuracy, keyed_rewards:f]", "importing module 'keyed_rewards' raised RuntimeError: needs OPENAI_KEY"),
    ],
)
def test_a_missing_plugin_is_a_config_error(functions: str, message: str, plugin_module: str, capsys) -> None:
    code, _, err = show(capsys, "--rewards.functions", functions)
    assert code == 2 and message in err, err


@pytest.mark.parametrize("name", ["accuracy", "total"])
def test_a_plugin_named_as_a_built_in_setting_is_refused(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Its weight and parameters went to the built-in rewards.accuracy, silently; a plug-in `total` had its
    statistics overwritten by the weighted total's (rewards/total/*)."""
    (tmp_path / "clash.py").write_text(f"def {name}(completions, **kwargs):\n    return [1.0] * len(completions)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        code, _, err = show(capsys, "--rewards.functions", f"[format, clash:{name}]")
    finally:
        sys.modules.pop("clash", None)
    assert code == 2 and f"its function's name is r1kit's own rewards.{name}" in err, err


@pytest.mark.parametrize("key", ["rewards.language_consistency.language", "filters.language"])
def test_a_language_is_named_as_the_language_detector_names_it(key: str, capsys) -> None:
    """ "EN" or "zh-CN" matched no detected language ("en", "zh"): every completion scored 0, and with
    filters.language every trace was dropped as written in the wrong language."""
    code, config, _ = show(capsys, f"--{key}", "zh-CN")
    section, *path = key.split(".")
    value = config[section]
    for part in path:
        value = value[part]
    assert code == 0 and value == "zh"
    code, _, err = show(capsys, f"--{key}", "Chinese!")
    assert code == 2 and "is not a language code" in err, err


def test_traces_in_the_language_a_filter_names_in_capitals_are_kept() -> None:
    from r1kit.config.sources import resolve_config
    from r1kit.stages.traces import TraceJudge

    trace = (
        "<think>We have three apples and add four more apples, so the total is seven apples in the basket.</think>"
        "<answer>7</answer>"
    )
    config = resolve_config(environ={}, overrides=["--filters.language", "EN"]).config
    assert TraceJudge(config)([trace], ["Tom has 3 apples and gets 4 more. How many?"], ["7"]) == ["kept"]


def test_a_plugin_s_parameters_beside_a_recipe_stage_with_its_own_list_change_nothing_and_are_no_error(
    plugin_module: str,
) -> None:
    """The r1 and rlhf recipes' RL stages set their own rewards.functions: the run's parameters of a plug-in that list
    leaves out were refused ("'short_answer' is neither a setting nor a plug-in reward listed", blaming the recipe)."""
    from r1kit.config.sources import resolve_config

    spec = f"{plugin_module}:short_answer"
    overrides = ["--rewards.functions", f"[accuracy, {spec}]", "--rewards.short_answer.weight", "0.25"]
    resolved = resolve_config(recipe="r1", overrides=overrides, environ={})
    stage = next(s for s in resolved.config.stages if s.name == "reasoning_rl")
    rewards = resolved.config.for_stage(stage).rewards
    assert spec not in rewards.functions and "short_answer" not in (rewards.model_extra or {})
    assert resolved.config.rewards.params(spec).weight == 0.25  # the run's own, as given


def test_a_plugin_s_parameter_of_the_wrong_type_is_named_with_its_plugin(plugin_module: str, capsys) -> None:
    """It was said as `rewards.weight: Input should be a valid number`: no plug-in, no value, no source."""
    functions = ["--rewards.functions", f"[accuracy, {plugin_module}:short_answer]"]
    code, _, err = show(capsys, *functions, "--rewards.short_answer.weight", "0.2x")
    assert code == 2 and "rewards.short_answer.weight: Input should be a valid number" in err
    assert "(got '0.2x')" in err and "from cli:--rewards.short_answer.weight" in err


def test_plugin_parameters_of_an_unlisted_reward_are_refused(capsys) -> None:
    code, _, err = show(capsys, "--rewards.acuracy.weight", "2")
    assert code == 2 and "did you mean 'accuracy'" in err


def test_a_plugin_reward_trains_and_is_logged_with_evaluation_during_training(tmp_path: Path) -> None:
    """The issue's own command: a plug-in on the Python path trains and logs under its name; --eval_steps scores the
    held-out slice inside the stage."""
    from r1kit.runs import RunDir
    from tests.conftest import REPO, r1kit_cli

    (tmp_path / "mymodule.py").write_text(PLUGIN.replace("def short_answer", "def my_reward"))
    out = tmp_path / "run"
    done = r1kit_cli(
        "grpo", "--profile", "test", "--rewards.functions", "[accuracy, format, mymodule:my_reward]",
        "--eval_steps", "2", "--out", str(out),
        cwd=REPO, env={"PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    records = RunDir(out).read("metrics.jsonl")
    steps = [r for r in records if r["kind"] == "step"]
    assert all("rewards/my_reward/mean" in r for r in steps) and len(steps) == 3
    assert [r["step"] for r in records if r["kind"] == "eval"] == [2]
    assert "eval    [grpo step 2] held-out pass@1" in done.stderr


def test_an_optimized_training_command_trains(tmp_path: Path) -> None:
    """The tutorial's "Optimized Training Commands" flags on the tiny model: a generation batch spanning two
    micro-steps, data-loader workers, and the tutorial's reward list."""
    from r1kit.runs import RunDir
    from tests.conftest import REPO, r1kit_cli

    out = tmp_path / "run"
    done = r1kit_cli(
        "grpo", "--profile", "test", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
        "--max_completion_length", "16", "--generation_batch_size", "8", "--dataloader_num_workers", "2",
        "--reward_funcs", "accuracy", "format", "reasoning_steps", "--no_wandb", "--out", str(out),
        cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    steps = [r for r in RunDir(out).read("metrics.jsonl") if r["kind"] == "step"]
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert "rewards/reasoning_steps/mean" in steps[0]


def test_trl_flags_the_seeds_pass_that_ask_for_what_r1kit_does(capsys, tmp_path: Path) -> None:
    """Seed 003's TrainingArguments and ModelConfig: push_to_hub=False, report_to="none" and
    remove_unused_columns=False were refused though r1kit does just that; --model_revision was unknown; and
    evaluation_strategy="steps" with logging_steps=10 (seed 002) left evaluation off, where transformers evaluates every
    logging_steps."""
    harmless = ["--push_to_hub", "False", "--report_to", "none", "--remove_unused_columns", "False"]
    code, config, err = show(capsys, *harmless, "--model_revision", "v1.0")
    assert code == 0, err
    assert config["model"]["revision"] == "v1.0" and "--push_to_hub false: r1kit's way already" in err
    code, _, err = show(capsys, "--push_to_hub", "true")
    assert code == 2 and "hf upload" in err
    # the same settings in a YAML file (a TRL config's keys): were "unknown key 'push_to_hub'" either way
    trl_yaml = tmp_path / "trl.yaml"
    trl_yaml.write_text("push_to_hub: false\nreport_to: none\nremove_unused_columns: false\n")
    code, _, err = show(capsys, "--config", str(trl_yaml))
    assert code == 0 and "push_to_hub: false (trl.yaml): r1kit's way already" in err
    trl_yaml.write_text("push_to_hub: true\n")
    code, _, err = show(capsys, "--config", str(trl_yaml))
    assert code == 2 and "push_to_hub is not an r1kit setting" in err and "hf upload" in err
    code, config, _ = show(capsys, "--evaluation_strategy", "steps", "--logging_steps", "10")
    assert config["evaluation"]["every_steps"] == 10
    code, config, _ = show(capsys, "--evaluation_strategy", "steps", "--logging_steps", "10", "--eval_steps", "4")
    assert config["evaluation"]["every_steps"] == 4
    # an every_steps set anywhere else stands, as transformers' eval_steps does
    before = ["--evaluation.every_steps", "4", "--evaluation_strategy", "steps", "--logging_steps", "10"]
    assert show(capsys, *before)[1]["evaluation"]["every_steps"] == 4
    (tmp_path / "trl.yaml").write_text("model:\n  model_name_or_path: tiny-random\n  model_revision: main\n")
    code, config, err = show(capsys, "--config", str(tmp_path / "trl.yaml"))
    assert code == 0, err
    assert (config["model"]["name"], config["model"]["revision"]) == ("tiny-random", "main")
