"""The configuration system: precedence, every syntax, aliases, environment, validation, shipped YAML."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest
import trl
import yaml

from r1kit.cli import main
from r1kit.config.schema import R1kitConfig
from r1kit.config.sources import (
    LEAF_PATHS,
    ConfigError,
    flatten,
    list_recipes,
    not_read_by,
    profile_layer,
    resolve_config,
    to_yaml,
)

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "r1kit" / "configs"


def resolve(*args: str, environ: dict | None = None, **kwargs):
    return resolve_config(overrides=list(args), environ=environ or {}, **kwargs)


def lr(resolved) -> float:
    return resolved.config.training.optimization.learning_rate


# -------------------------------------------------------------------------------------------------- precedence


def test_precedence_defaults_file_profile_env_cli(tmp_path: Path) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text(
        "training: {optimization: {learning_rate: 1.0e-4}, max_steps: 7}\n"
        "grpo: {temperature: 0.5}\n"
        "profiles: {mine: {training: {optimization: {learning_rate: 2.0e-4}}, grpo: {temperature: 0.6}}}\n"
    )
    assert lr(resolve()) == R1kitConfig().training.optimization.learning_rate
    assert lr(resolve(config_file=str(config_file))) == 1e-4
    assert lr(resolve(config_file=str(config_file), profile="mine")) == 2e-4
    env = {"R1KIT_TRAINING_OPTIMIZATION_LEARNING_RATE": "3e-4"}
    assert lr(resolve(config_file=str(config_file), profile="mine", environ=env)) == 3e-4
    final = resolve("--learning_rate", "4e-4", config_file=str(config_file), profile="mine", environ=env)
    assert lr(final) == 4e-4
    # values nobody overrode keep the lower layers' values, and every value names its source
    assert final.config.training.max_steps == 7 and final.config.grpo.temperature == 0.6
    assert final.sources["training.max_steps"] == f"file:{config_file}"
    assert final.sources["grpo.temperature"] == "profile:mine"
    assert final.sources["training.optimization.learning_rate"] == "cli:--learning_rate"
    assert final.sources["model.name"] == "default"


def test_a_wrong_value_is_an_error_even_where_a_later_source_overrides_it(tmp_path: Path) -> None:
    """`sft: {max_steps: two}` in a file passed without a word under --profile test, which sets sft.max_steps."""
    config_file = tmp_path / "c.yaml"
    config_file.write_text("sft: {max_steps: two}\n")
    with pytest.raises(ConfigError, match=r"sft.max_steps: .*valid integer.* \(got 'two', from file:.*c.yaml, though "):
        resolve(config_file=str(config_file), profile="test")
    with pytest.raises(ConfigError, match=r"grpo.temperature: .*greater than 0 .*from env:.*though cli:--temperature"):
        resolve("--temperature", "0.7", environ={"R1KIT_GRPO_TEMPERATURE": "-1"})
    config_file.write_text("evaluation: {pass_k: [1, x]}\n")  # an item of a list
    with pytest.raises(ConfigError, match=r"evaluation.pass_k: .*valid integer.*though cli:--evaluation.pass_k"):
        resolve("--evaluation.pass_k", "[1]", config_file=str(config_file))
    # a value valid on its own is not judged by rules across keys that the final config then satisfies
    config_file.write_text("grpo: {scale_rewards: false, num_generations: 3}\n")
    assert resolve("--num_generations", "4", config_file=str(config_file)).config.grpo.num_generations == 4


def test_recipe_then_config_file(tmp_path: Path) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text("stages: [{name: sft}, {name: grpo}]\n")
    assert [s.name for s in resolve(recipe="r1_zero").config.stages] == ["grpo"]
    assert [s.name for s in resolve(recipe="r1_zero", config_file=str(config_file)).config.stages] == ["sft", "grpo"]


# ------------------------------------------------------------------------------------------------------ syntax


@pytest.mark.parametrize(
    "args",
    [
        ["--rewards.functions", "[accuracy,format,reasoning_steps]"],
        ["--rewards.functions", "[accuracy, format, reasoning_steps]"],
        ["--rewards.functions", "[accuracy,", "format,", "reasoning_steps]"],  # as the shell splits it
        ["--rewards.functions=[accuracy,format,reasoning_steps]"],
        ["--reward_funcs", "accuracy,format,reasoning_steps"],
        ["--reward_funcs", "accuracy", "format", "reasoning_steps"],
    ],
)
def test_list_syntaxes(args: list[str]) -> None:
    assert resolve(*args).config.rewards.functions == ["accuracy", "format", "reasoning_steps"]


def test_values_are_typed() -> None:
    config = resolve(
        "--training.optimization.learning_rate",
        "1e-4",
        "--model.lora.enabled",
        "false",
        "--grpo.num_generations=4",
        "--training.batch_size.per_device_train",
        "4",
        "--run.output_dir",
        "runs/x",
        "--model.revision",
        "1234",
    ).config
    assert config.training.optimization.learning_rate == 1e-4
    assert config.model.lora.enabled is False
    assert config.grpo.num_generations == 4
    assert config.run.output_dir == "runs/x"
    assert config.model.revision == "1234"  # a number-looking string stays a string where the field is text


def test_the_r1_tutorial_paths_work() -> None:
    config = resolve(
        "--model.name",
        "tiny-random",
        "--training.optimization.learning_rate",
        "2e-5",
        "--training.batch_size.per_device_train",
        "16",
        "--training.epochs",
        "2",
        "--rewards.functions",
        "[accuracy]",
        "--dataset.split.test_size",
        "0.2",
        "--monitoring.wandb.enabled",
        "true",
    ).config
    assert (config.model.name, config.training.epochs, config.dataset.split.test_size) == ("tiny-random", 2.0, 0.2)
    assert config.training.batch_size.per_device_train == 16 and config.monitoring.wandb.enabled is True


def test_seed_flag_aliases() -> None:
    config = resolve(
        "--model_name",
        "tiny-random",
        "--learning_rate",
        "4e-5",
        "--per_device_train_batch_size",
        "16",
        "--reward_funcs",
        "accuracy,format",
        "--no_wandb",
        "--data",
        "mixed",
        "--out",
        "runs/y",
        "--resume",
    ).config
    assert config.model.name == "tiny-random" and config.training.optimization.learning_rate == 4e-5
    assert config.training.batch_size.per_device_train == 16 and config.rewards.functions == ["accuracy", "format"]
    assert config.monitoring.wandb.enabled is False and config.dataset.name == "mixed"
    assert config.run.output_dir == "runs/y" and config.run.resume is True


def test_trl_flags_set_the_section_of_the_stage_run_alone() -> None:
    """TRL's --max_steps / --learning_rate name GRPO's keys; `r1kit sft` (a TRL SFT script's user) means SFT's."""
    trl_flags = ("--max_steps", "2", "--learning_rate", "0.5", "--save_steps", "3")
    sft = resolve(*trl_flags, command="sft").config
    assert (sft.sft.max_steps, sft.sft.optimization.learning_rate, sft.sft.checkpoint.save_steps) == (2, 0.5, 3)
    assert sft.training.max_steps == 30 and sft.training.optimization.learning_rate == 5e-5  # GRPO's, untouched
    dpo = resolve(*trl_flags, "--beta", "0.3", command="dpo").config
    assert (dpo.dpo.max_steps, dpo.dpo.optimization.learning_rate, dpo.dpo.beta) == (2, 0.5, 0.3)
    ppo = resolve(*trl_flags, "--temperature", "0.9", command="ppo").config
    assert (ppo.ppo.max_steps, ppo.ppo.learning_rate, ppo.ppo.save_steps, ppo.ppo.temperature) == (2, 0.5, 3, 0.9)
    distill = resolve("--max_steps", "2", "--temperature", "0.9", command="distill").config  # trains with sft.*
    assert (distill.sft.max_steps, distill.distill.temperature) == (2, 0.9)
    for command in ("grpo", "run", None):
        assert resolve(*trl_flags, command=command).config.training.max_steps == 2
    with pytest.raises(ConfigError, match=r"--per_device_train_batch_size sets training.batch_size.per_device_train, "):
        resolve("--per_device_train_batch_size", "4", command="ppo")  # PPO batches by prompts_per_step
    with pytest.raises(ConfigError, match=r"--num_generations .* `r1kit sft` does not read"):
        resolve("--num_generations", "4", command="sft")


def test_more_trl_flags_name_r1kit_keys_or_say_what_to_use() -> None:
    """GRPOConfig's and ModelConfig's flags a TRL script's user brings, beside the tutorial's."""
    flags = ("--num_iterations", "2", "--epsilon", "0.3", "--loss_type", "dr_grpo", "--top_p", "0.9")
    grpo = resolve(*flags, "--scale_rewards", "false", "--mask_truncated_completions", "true").config.grpo
    assert (grpo.num_iterations, grpo.epsilon, grpo.loss_type, grpo.top_p) == (2, 0.3, "dr_grpo", 0.9)
    assert grpo.scale_rewards == "none" and grpo.mask_truncated_completions is True  # TRL reads false as none
    sampling = ("--top_k", "20", "--min_p", "0.05", "--repetition_penalty", "1.1", "--epsilon_high", "0.28")
    grpo = resolve(*sampling).config.grpo
    assert (grpo.top_k, grpo.min_p, grpo.repetition_penalty, grpo.epsilon_high) == (20, 0.05, 1.1, 0.28)
    args = trl.GRPOConfig(output_dir="unused", report_to="none", use_cpu=True, **grpo.model_dump())  # TRL's names
    assert (args.top_k, args.min_p, args.repetition_penalty, args.epsilon_high) == (20, 0.05, 1.1, 0.28)
    assert resolve("--min_p", "0").config.grpo.min_p == 0.0  # vLLM's and TRL scripts' "off"
    with pytest.raises(ConfigError, match=r"epsilon_high \(0.1\) must be >= epsilon \(0.2\)"):
        resolve("--epsilon_high", "0.1")  # TRL would take it and clip the tokens worth raising hardest
    assert resolve("--loss_type", "ipo", command="dpo").config.dpo.loss_type == "ipo"  # the stage's own key
    lora = resolve("--use_peft", "--lora_r", "8", "--lora_alpha", "16", "--lora_target_modules", "q_proj,v_proj")
    assert (lora.config.model.lora.enabled, lora.config.model.lora.rank, lora.config.model.lora.alpha) == (True, 8, 16)
    assert lora.config.model.lora.target_modules == ["q_proj", "v_proj"]
    assert resolve("--dataset_name", "gsm8k").config.dataset.name == "gsm8k"
    for flag, pointer in (("--warmup_steps", "--warmup_ratio"), ("--log_completions", "completions.jsonl")):
        with pytest.raises(ConfigError, match=rf"{flag} is not an r1kit option: .*{pointer}"):
            resolve(flag, "1")


@pytest.mark.parametrize(
    ("command", "flags", "key", "value"),
    [
        # a TRL trainer's config fields are its flags: on a stage run alone, a bare name is that stage's key
        ("ppo", ["--kl_coef", "0.1"], "ppo.kl_coef", 0.1),
        ("ppo", ["--cliprange", "0.1"], "ppo.cliprange", 0.1),
        ("dpo", ["--max_length", "128"], "dpo.max_length", 128),
        ("reward_model", ["--max_length", "128"], "reward_model.max_length", 128),
        ("sft2", ["--max_length", "100"], "sft.max_length", 100),  # sft2 trains with sft.*
        ("rloo", ["--kl_coef", "0.1"], "rloo.beta", 0.1),  # TRL's RLOO named its KL coefficient kl_coef
        # TRL's PPOConfig names where r1kit's differ, and the RLHF notebook's training arguments
        ("ppo", ["--num_ppo_epochs", "3"], "ppo.ppo_epochs", 3),
        ("ppo", ["--response_length", "32"], "ppo.max_new_tokens", 32),
        ("sft", ["--num_epochs", "1"], "sft.epochs", 1.0),
        ("sft", ["--batch_size", "2"], "sft.batch_size.per_device_train", 2),
        ("sft", ["--max_seq_length", "200"], "sft.max_length", 200),
        ("sft", ["--target_modules", "q_proj", "v_proj"], "model.lora.target_modules", ["q_proj", "v_proj"]),
        ("dpo", ["--max_seq_length", "512"], "dpo.max_length", 512),  # sft's key's name, DPO's own setting
        ("sft2", ["--general_dataset", "chat.jsonl"], "sft2.general_dataset", "chat.jsonl"),  # its own section too
        # a stage whose batch size is its own key of the flag's name, not a per_device_train (refused: "no such
        # setting"), and eval's (set training's, which eval does not read)
        ("cold_start", ["--batch_size", "8"], "cold_start.batch_size", 8),
        ("rejection_sampling", ["--batch_size", "8"], "rejection_sampling.batch_size", 8),
        ("eval", ["--batch_size", "4"], "evaluation.batch_size", 4),
    ],
)
def test_a_trainers_own_flag_names_set_the_stages_key(command: str, flags: list[str], key: str, value: Any) -> None:
    """They were bare "unknown option" errors, though the stage had the setting."""
    resolved = resolve(*flags, command=command)
    assert flatten(resolved.config.model_dump())[key] == value
    assert f"{flags[0]} → --{key}" in resolved.notes


@pytest.mark.parametrize("command", ["chat", "eval"])
def test_a_length_limits_name_on_chat_or_eval_points_to_max_new_tokens(command: str, tmp_path: Path) -> None:
    """`--max_length` (generate's prompt + reply) and `max_tokens` (a serving API's reply) were bare "unknown
    option" / "unknown key" errors on the commands that only generate."""
    section = {"chat": "chat", "eval": "evaluation"}[command]
    with pytest.raises(ConfigError, match=r"--max_length; the reply's limit is --max_new_tokens \(generate's"):
        resolve("--max_length", "100", command=command)
    with pytest.raises(ConfigError, match=rf"--{section}.max_tokens; the reply's limit is --{section}.max_new_tokens$"):
        resolve(f"--{section}.max_tokens", "100", command=command)
    config_file = tmp_path / "c.yaml"
    config_file.write_text("max_tokens: 100\n")
    with pytest.raises(ConfigError, match=rf"'max_tokens' .*; the reply's limit is '{section}.max_new_tokens'$"):
        resolve(config_file=str(config_file), command=command)
    with pytest.raises(ConfigError, match=r"unknown option --max_length$"):  # a training command: no such hint
        resolve("--max_length", "100", command="run")


def test_a_bare_name_elsewhere_names_its_one_key_or_says_what_to_use(tmp_path: Path) -> None:
    # GRPO's is beta: `ppo.kl_coef`, the one key of that name, was suggested, and changed nothing GRPO reads
    with pytest.raises(ConfigError, match=r"unknown option --kl_coef; GRPO's KL coefficient is --beta"):
        resolve("--kl_coef", "0.1", command="run")
    with pytest.raises(ConfigError, match=r"unknown key 'grpo.kl_coef'.*; GRPO's KL coefficient is 'grpo.beta'"):
        (tmp_path / "kl.yaml").write_text("grpo:\n  kl_coef: 0.04\n")
        resolve(config_file=str(tmp_path / "kl.yaml"))
    assert resolve("--kl_coef", "0.04", command="grpo").config.grpo.beta == 0.04  # as rloo's kl_coef is its beta
    with pytest.raises(ConfigError, match=r"unknown option --kl_coef$"):  # SFT has no KL term: not GRPO's hint
        resolve("--kl_coef", "0.1", command="sft")
    with pytest.raises(ConfigError, match=r"--max_prompt_length .* limit prompt \+ reply with --max_length"):
        resolve("--max_prompt_length", "12", command="dpo")  # it pointed at --max_completion_length, refused there
    # another stage's setting on a stage without it is refused, not set where nothing reads it
    with pytest.raises(ConfigError, match=r"--response_length sets ppo.max_new_tokens, which `r1kit rloo` does not"):
        resolve("--response_length", "64", command="rloo")
    with pytest.raises(ConfigError, match=r"--num_ppo_epochs sets ppo.ppo_epochs, which `r1kit grpo` does not"):
        resolve("--num_ppo_epochs", "2", command="grpo")


def test_a_list_key_takes_comma_separated_values_as_the_reward_funcs_flag_does() -> None:
    config = resolve("--rewards.functions", "accuracy,format", "--evaluation.num_samples", "4").config
    assert config.rewards.functions == ["accuracy", "format"]
    # and space-separated ones, as --reward_funcs does (it was "unknown reward 'accuracy format'")
    spaced = resolve(
        "--rewards.functions", "accuracy", "format", "--evaluation.pass_k", "1", "4", "--evaluation.num_samples", "4"
    )
    assert spaced.config.rewards.functions == ["accuracy", "format"] and spaced.config.evaluation.pass_k == [1, 4]
    assert resolve(environ={"R1KIT_REWARDS_FUNCTIONS": "accuracy, format"}).config.rewards.functions == [
        "accuracy",
        "format",
    ]
    assert resolve("--evaluation.num_samples", "4", "--evaluation.pass_k", "1,4").config.evaluation.pass_k == [1, 4]


def test_environment_variables_both_prefixes() -> None:
    assert lr(resolve(environ={"GRPO_TRAINING_LEARNING_RATE": "5e-5"})) == 5e-5
    assert lr(resolve(environ={"R1KIT_TRAINING_OPTIMIZATION_LEARNING_RATE": "6e-5"})) == 6e-5
    config = resolve(
        environ={"R1KIT_REWARDS_FUNCTIONS": "[accuracy, format]", "R1KIT_MODEL_LORA_ENABLED": "false"}
    ).config
    assert config.rewards.functions == ["accuracy", "format"] and config.model.lora.enabled is False
    assert resolve(environ={"GRPO_SOMETHING_ELSE": "1", "R1KIT_CACHE": "/tmp"}).config  # not ours / not a config key
    # one key set by two variables (an alias and its key, or both prefixes): the names' sorted order decided
    for pair in (("R1KIT_TRAINING_LEARNING_RATE", "R1KIT_TRAINING_OPTIMIZATION_LEARNING_RATE"),
                 ("GRPO_TRAINING_LEARNING_RATE", "R1KIT_TRAINING_OPTIMIZATION_LEARNING_RATE")):  # fmt: skip
        with pytest.raises(ConfigError, match=r"both set training.optimization.learning_rate; keep one"):
            resolve(environ=dict(zip(pair, ("0.3", "0.5"), strict=True)))


def test_a_list_after_an_equals_sign_split_by_the_shell_is_read_whole() -> None:
    """`--rewards.functions=[accuracy, format]` unquoted: "unexpected argument 'format]'"."""
    assert resolve("--rewards.functions=[accuracy,", "format]").config.rewards.functions == ["accuracy", "format"]
    assert resolve("--rewards.functions=[accuracy]", "--max_steps", "3").config.rewards.functions == ["accuracy"]
    # but said, with the key meant where it can be told: a misspelt tutorial variable changed nothing, without a word
    ignored = resolve(environ={"GRPO_LEARNING_RATE": "1e-3", "GRPO_TRAINING_MAXSTEPS": "5"}).ignored
    assert ignored == [
        "environment variable GRPO_LEARNING_RATE names no config key, so it is not read; the flag --learning_rate "
        "sets training.optimization.learning_rate: GRPO_TRAINING_OPTIMIZATION_LEARNING_RATE",
        "environment variable GRPO_TRAINING_MAXSTEPS names no config key, so it is not read; did you mean "
        "'training.max_steps'?",
    ]


def test_environment_names_are_unambiguous() -> None:
    names = [path.replace(".", "_").upper() for path in LEAF_PATHS]
    assert len(names) == len(set(names))


# -------------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--learning_rate", "-1"], "training.optimization.learning_rate: Input should be greater than 0"),
        (
            ["--rewards.functions", "[accuracy,", "nope]"],
            "rewards.functions: unknown reward 'nope'; valid: accuracy, format",
        ),
        (["--rewards.functions", "[]"], "rewards.functions: needs at least one reward"),
        (["--rewards.functions", "[formatt]"], "unknown reward 'formatt' (did you mean 'format'?); valid"),
        (
            ["--rewards.functions", "[formatt, cosin]"],
            "unknown reward 'formatt', 'cosin' (did you mean 'format' for 'formatt', 'cosine' for 'cosin'?)",
        ),
        (  # the tutorial's and TRL's function names, and the RL + SFT pipeline's "length penalty"
            ["--rewards.functions", "[accuracy_reward, length_penalty]"],
            "(did you mean 'accuracy' for 'accuracy_reward', 'cosine' for 'length_penalty'?)",
        ),
        (["--dataset.split.test_size", "1.5"], "dataset.split.test_size: Input should be less than 1"),
        (["--model.lora.rank", "abc"], "model.lora.rank: Input should be a valid integer"),
        (["--model.precision", "fp8"], "model.precision: Input should be 'auto', 'bf16', 'fp16' or 'fp32'"),
        (["--grpo.num_generations", "3"], "must be divisible by grpo.num_generations (3)"),
        (["--grpo.num_generations", "1"], "grpo.num_generations: Input should be greater than or equal to 2"),
        (["--training.optimisation.learning_rate", "1"], "did you mean 'training.optimization.learning_rate'"),
        # the setting one level off, or in GRPO's other section, before a near spelling elsewhere (ppo.learning_rate)
        (["--sft.learning_rate", "1"], "did you mean 'sft.optimization.learning_rate'"),
        (["--grpo.learning_rate", "1"], "did you mean 'training.optimization.learning_rate'"),
        (["--training.num_generations", "4"], "did you mean 'grpo.num_generations'"),
        # a misspelt flag name: was a bare "unknown option"
        (["--learnig_rate", "1"], "unknown option --learnig_rate; did you mean --learning_rate?"),
        (["--ouput_dir", "x"], "unknown option --ouput_dir; did you mean --output_dir?"),
        (["--rewards.cosine.min_value_wrong", "0.5"], "rewards.cosine: min_value_wrong must be <= max_value_wrong"),
        # a key inside a mapping setting: was a bare "unknown option"
        (
            ["--dataset.columns.problem", "q"],
            'dataset.columns is one setting, a mapping: --dataset.columns "{problem: VALUE}"',
        ),
        # a rule across a section's keys names where those set came from (no value, no source was said)
        (["--evaluation.pass_k", "[1, 4]"], "num_samples (1) (evaluation.pass_k from cli:--evaluation.pass_k)"),
        (["--sft2.general_split", "train_sft"], "sft2: general_subset and general_split are those of general_dataset"),
        # the built-in pairs read none of the dataset's settings: a held-out file for them was quietly not used
        (
            ["--stages", "[{name: dpo}]", "--preferences.test_split", "held.jsonl"],
            "preferences.test_split 'held.jsonl' is for preferences.dataset, which is not set for dpo",
        ),
        (["--learning_rate"], "--learning_rate: missing value"),
        (["--no_wandb", "maybe"], "--no_wandb is a switch and takes no value (got 'maybe')"),
        (["--bf16", "maybe"], "--bf16 is a switch"),  # true or false (TRL's `--bf16 false`: fp32), nothing else
        # `--data "$DATA"` with DATA unset: was "`.` is a folder; dataset.name takes a … file"
        (["--data", ""], "dataset.name: is empty; name a built-in task"),
        (["--model", ""], "model.name: is empty; name a built-in model"),  # was: the current folder loaded
        # every optional text likewise: an empty held-out file was read as unset, and a share cut from the training rows
        (["--dataset.test_split", ""], "dataset.test_split: is empty; give it a value, or leave it out (null)"),
        (["--model.revision", " "], "model.revision: is empty"),
        (["--preferences.dataset", ""], "preferences.dataset: is empty"),
        # a section, or a key under one: was "did you mean 'training.batch_size'?" and "did you mean 'model.lora'?"
        (["--training.batch_size", "4"], "training.batch_size is a section: set one of its keys (gradient_acc"),
        (["--model.lora.r", "8"], "TRL's r is --model.lora.rank"),  # PEFT's LoraConfig(r=8)
        # two file columns renamed to one: was the datasets library's ValueError, shown as a bug in r1kit
        (["--dataset.columns", "{problem: question, q: question}"], "renames two columns to one name"),
        # YAML reads problem:question (no space) as a key without a value: was "Input should be a valid string"
        (["--dataset.columns", "{problem:question}"], "put a space after the colon"),
        # the tutorial's `system:` section is not the system prompt
        (["--system", "You are a helpful assistant."], "the system prompt is prompt.system"),
    ],
)
def test_invalid_values_name_the_key(args: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve(*args)


def test_true_false_switches_take_a_value_as_trl_reads_them() -> None:
    assert resolve("--use_peft", "false").config.model.lora.enabled is False  # was: "a switch and takes no value"
    assert resolve("--use_peft", "True").config.model.lora.enabled is True
    assert resolve("--no_wandb", "false").config.monitoring.wandb.enabled is True
    # a flag and r1kit's key for one setting, at odds: the last one won, unsaid (a file and the environment refuse it)
    with pytest.raises(ConfigError, match=r"--no_wandb and --monitoring\.wandb\.enabled both set"):
        resolve("--no_wandb", "false", "--monitoring.wandb.enabled", "false")
    assert resolve("--no_wandb", "--monitoring.wandb.enabled", "false").config.monitoring.wandb.enabled is False
    with pytest.raises(ConfigError, match=r"--model_name and --model\.name both set model\.name, to different values"):
        resolve("--model_name", "a/b", "--model.name", "c/d")
    # one value written two ways is one setting; a TRL switch turned off gives way to r1kit's precision key
    assert resolve("--learning_rate", "0.0001", "--training.optimization.learning_rate", "1e-4").config.training
    assert resolve("--seed", "1", "--run.seed", "01").config.run.seed == 1
    cuda = ["--model.device", "cuda"]
    for given in (
        ["--bf16", "false", "--model.precision", "fp16"],
        ["--dtype", "auto", "--model.torch_dtype", "float16"],
    ):
        assert resolve(*given, *cuda).config.model.precision == "fp16"
    for off in ("off", "null"):  # the tutorial's bf16 key off (or unset) beside TRL's --fp16: a switch off, not bf16
        assert resolve("--training.precision.bf16", off, "--fp16", "true", *cuda).config.model.precision == "fp16"
    with pytest.raises(ConfigError, match=r"--training\.precision\.bf16: missing value"):  # no switch: no bf16
        resolve("--training.precision.bf16", "--fp16", "false")
    for different in (
        ["--output_dir", "Runs/A", "--out", "runs/a"],
        ["--model_revision", "1.0", "--model.revision", "1"],
    ):
        with pytest.raises(ConfigError, match="to different values"):  # text as written: folders, git refs
            resolve(*different)
    assert resolve("--gradient_checkpointing", "no").config.training.gradient_checkpointing is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--system.seed", "3"], "the seed with run.seed"),
        (["--dataset.processing.max_length", "3"], "dataset.max_train_samples"),
    ],
)
def test_the_tutorials_sections_r1kit_lacks_say_what_to_use(args: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve(*args)


def test_every_tutorial_section_r1kit_lacks_in_a_file_is_named_at_once(tmp_path: Path) -> None:
    """Three such sections in a YAML file took three edit-and-rerun cycles to learn of."""
    tutorial = tmp_path / "tut.yaml"
    tutorial.write_text(
        "rewards:\n  repetition: {n_grams: 3}\n  soft_punish: {cache: 4}\n"
        "callbacks:\n  comprehensive_logging: {enabled: true, every: 5}\n"
    )
    with pytest.raises(ConfigError) as raised:
        resolve_config(config_file=str(tutorial), environ={})
    lines = str(raised.value).splitlines()
    assert [line.split(" is not")[0] for line in lines] == [  # one line per section, not per key
        f"{tutorial}: rewards.repetition.n_grams",
        f"{tutorial}: rewards.soft_punish.cache",
        f"{tutorial}: callbacks.comprehensive_logging.every",  # its `enabled: true` asks for what r1kit does
    ]


# torchrun (accelerate launch) and the MPI launchers (accelerate's multi-CPU mode under mpirun) each name the process
# count their own way; the config's process rules read them as the launched run does.
@pytest.mark.parametrize("variable", ["WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"])
def test_batch_rules_count_the_launched_processes(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    args = ("--training.batch_size.per_device_train", "4", "--training.batch_size.gradient_accumulation_steps", "1")
    args += ("--grpo.num_generations", "8")
    with pytest.raises(ConfigError, match=r"× 1 process\(es\) × gradient_accumulation_steps 1 = 4 completions\)"):
        resolve(*args)
    monkeypatch.setenv(variable, "2")  # 4 × 2 processes × 1 = 8 completions: whole groups of 8
    assert resolve(*args).config.grpo.num_generations == 8
    monkeypatch.setenv(variable, "3")
    with pytest.raises(ConfigError, match=r"× 3 process\(es\) × gradient_accumulation_steps 1 = 12 completions\)"):
        resolve(*args)


def test_generation_batch_rule_states_the_real_constraint() -> None:
    config = resolve(
        "--grpo.num_generations",
        "4",
        "--training.batch_size.per_device_train",
        "2",
        "--training.batch_size.gradient_accumulation_steps",
        "2",
    ).config
    assert config.grpo.num_generations == 4  # 2 × 2 = 4 completions: divisible, although 4 is not divisible by 8
    with pytest.raises(ConfigError, match=r"= 6 completions\) must be divisible by grpo.num_generations \(4\)"):
        resolve(
            "--grpo.num_generations",
            "4",
            "--training.batch_size.per_device_train",
            "3",
            "--training.batch_size.gradient_accumulation_steps",
            "2",
        )


def test_unknown_keys_in_files_and_environment(tmp_path: Path) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text("model: {nmae: x}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'model.nmae' \(from file:.*\); did you mean 'model.name'"):
        resolve(config_file=str(config_file))
    with pytest.raises(
        ConfigError, match=r"environment variable R1KIT_MODEL_NMAE is not a config key; did you mean 'model.name'"
    ):
        resolve(environ={"R1KIT_MODEL_NMAE": "x"})


def test_a_stage_section_s_unknown_key_is_never_answered_with_another_stage_s_setting(tmp_path: Path) -> None:
    """`ppo: {beta: 0.1}` was answered "did you mean 'dpo.beta'?", `ppo.epochs` with dpo.epochs and `dpo.kl_coef`
    with ppo.kl_coef: settings another stage reads, which would change nothing of the stage the user meant."""
    said = {
        "ppo: {beta: 0.1}": "; PPO's KL coefficient is 'ppo.kl_coef'",
        "ppo: {epochs: 2}": "; did you mean 'ppo.ppo_epochs'?",
        "dpo: {kl_coef: 0.1}": "; DPO's KL coefficient is 'dpo.beta'",
        "trpo: {max_steps: 5}": "; TRPO is PPO's other policy update: ppo.policy_update trpo",
        "grpo: {max_step: 5}": "; did you mean 'training.max_steps'?",  # GRPO's settings are under both
    }
    config_file = tmp_path / "c.yaml"
    for written, advice in said.items():
        config_file.write_text(written + "\n")
        with pytest.raises(ConfigError) as refused:
            resolve(config_file=str(config_file))
        assert advice in str(refused.value), written
        assert ("dpo." in str(refused.value)) == written.startswith("dpo"), written
        assert "grpo.beta" not in str(refused.value), written
    # the tutorial's spellings misspelt are still answered, and no key of another sub-section merely ending alike
    from r1kit.config.sources import did_you_mean

    assert did_you_mean("training.learnig_rate") == "; did you mean 'training.learning_rate'?"
    assert did_you_mean("grpo.vllm.enabld") == "; did you mean 'grpo.vllm.enabled'?"
    assert did_you_mean("model.modules") == did_you_mean("training.rate") == ""


def test_a_file_s_unknown_keys_are_named_together_with_the_command_s_own_keys(tmp_path: Path) -> None:
    """A file of TRL's flat settings took one run per key, and for `r1kit sft` the advice named GRPO's key
    (training.optimization.learning_rate), which sft does not read: following it changed nothing."""
    config_file = tmp_path / "trl.yaml"
    config_file.write_text("learning_rate: 5.0e-5\nnum_train_epochs: 3\nfoo: 1\n")
    with pytest.raises(ConfigError) as refused:
        resolve(config_file=str(config_file), command="sft")
    said = str(refused.value)
    assert said.startswith(f"unknown keys (from file:{config_file}): 'learning_rate' (the flag --learning_rate sets ")
    assert "sets sft.optimization.learning_rate: write that key here" in said and "sets sft.epochs" in said
    assert "training." not in said and said.endswith(", 'foo'")
    with pytest.raises(ConfigError, match=r"sets training\.optimization\.learning_rate: write that key here"):
        resolve(config_file=str(config_file), command="grpo")


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown profile 'laptop'; known: default, dev, prod, test, profile"):
        resolve(profile="laptop")


def test_broken_yaml_is_one_clear_line(tmp_path: Path) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve(config_file=str(config_file))
    with pytest.raises(ConfigError, match="file not found"):
        resolve(config_file=str(tmp_path / "missing.yaml"))


# --------------------------------------------------------------------------------------------- shipped files


@pytest.mark.parametrize("profile", list(yaml.safe_load((CONFIGS / "profiles.yaml").read_text())))
def test_every_shipped_profile_validates(profile: str) -> None:
    assert profile_layer(profile, {}).values is not None
    resolve(profile=profile)


@pytest.mark.parametrize("recipe", list_recipes())
def test_every_shipped_recipe_validates(recipe: str) -> None:
    for profile in ("default", "test"):
        resolve(recipe=recipe, profile=profile)


def test_required_profiles_exist() -> None:
    assert {"default", "dev", "prod", "test", "profile"} <= set(yaml.safe_load((CONFIGS / "profiles.yaml").read_text()))


# ------------------------------------------------------------------------------------------------ command line


def test_config_show_json_has_exactly_the_requested_values(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "config",
            "show",
            "--format",
            "json",
            "--profile",
            "test",
            "--training.optimization.learning_rate",
            "3e-5",
            "--rewards.functions",
            "[accuracy,",
            "format,",
            "reasoning_steps]",
        ]
    )
    shown = json.loads(capsys.readouterr().out)
    assert code == 0
    assert shown["training"]["optimization"]["learning_rate"] == 3e-5
    assert shown["rewards"]["functions"] == ["accuracy", "format", "reasoning_steps"]
    assert shown["model"]["name"] == "tiny-random"  # from the test profile


def test_config_show_explain_names_sources(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPO_TRAINING_LEARNING_RATE", "5e-5")
    assert main(["config", "show", "--explain", "--profile", "test", "--no_wandb"]) == 0
    out = capsys.readouterr().out
    assert "training.optimization.learning_rate = 5e-05    # env:GRPO_TRAINING_LEARNING_RATE" in out
    assert 'model.name = "tiny-random"    # profile:test' in out
    assert "monitoring.wandb.enabled = false    # cli:--no_wandb" in out
    assert "grpo.beta = 0.0    # default" in out
    # as JSON where asked (--format json was dropped beside --explain)
    assert main(["config", "show", "--explain", "--format", "json", "--profile", "test"]) == 0
    explained = json.loads(capsys.readouterr().out)
    assert explained["model.name"] == {"value": "tiny-random", "source": "profile:test"}
    assert explained["training.optimization.learning_rate"]["source"] == "env:GRPO_TRAINING_LEARNING_RATE"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--learning_rate", "-1"], "training.optimization.learning_rate"),
        (["--rewards.functions", "[accuracy,", "nope]"], "'nope'; valid: accuracy, format, tag_count"),
    ],
)
def test_config_errors_exit_2_with_one_line(args: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and needle in err


def test_a_stage_naming_its_own_preference_data_takes_the_runs_held_out_split() -> None:
    """The refusal of dataset settings without preferences.dataset must not refuse a recipe whose DPO stage names its
    own pairs file; a stage without one still gets it."""
    own = "[{name: sft}, {name: dpo, config: {preferences: {dataset: pairs.jsonl}}}]"
    config = resolve("--stages", own, "--preferences.test_split", "held.jsonl").config
    assert config.for_stage(config.stages[1]).preferences.test_split == "held.jsonl"
    with pytest.raises(ConfigError, match="which is not set for reward_model"):
        resolve("--stages", own[:-1] + ", {name: reward_model}]", "--preferences.test_split", "held.jsonl")
    # `r1kit eval` of such a run trains none of its stages: not refused
    resolve("--stages", own[:-1] + ", {name: reward_model}]", "--preferences.test_split", "held.jsonl", command="eval")


def test_hardware_mismatch_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["config", "show", "--grpo.use_vllm", "true"]) == 2
    assert "grpo.use_vllm: vLLM generation needs a CUDA GPU" in capsys.readouterr().err
    assert main(["config", "show", "--model.device", "cuda"]) == 2
    assert "model.device: cuda is not available here" in capsys.readouterr().err
    assert main(["config", "show", "--fp16"]) == 2  # the reason given is fp16's, not bf16's
    assert "model.precision: fp16 on cpu: fp16 training is a GPU feature" in capsys.readouterr().err
    # a config written for a GPU machine gets every problem at once, a line each
    assert main(["config", "show", "--grpo.use_vllm", "true", "--model.tf32", "true"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("r1kit: config error: ") for line in lines)
    assert "model.tf32: TF32 is an NVIDIA GPU feature" in lines[0] and "grpo.use_vllm: vLLM" in lines[1]
    assert lines[0].endswith("(from cli:--model.tf32)") and lines[1].endswith("(from cli:--grpo.use_vllm)")
    # a stage that generates no GRPO rollouts is not refused for the grpo section's vLLM (it blocked `r1kit dpo`),
    # nor are the commands that train nothing, nor `r1kit dpo` beside a recipe's GRPO stage of its own settings
    assert main(["config", "show", "--grpo.use_vllm", "true", "--stages", "[{name: dpo}]"]) == 0
    capsys.readouterr()
    from r1kit.config.checks import check_machine
    from r1kit.config.schema import R1kitConfig

    vllm = R1kitConfig(grpo={"use_vllm": True})
    for command in ("dpo", "eval", "chat"):
        check_machine(vllm, command=command)
    with pytest.raises(ConfigError, match=r"grpo\.use_vllm: vLLM generation needs a CUDA GPU"):
        check_machine(vllm, command="run")
    recipe = R1kitConfig(stages=[{"name": "sft"}, {"name": "grpo", "config": {"grpo": {"use_vllm": True}}}])
    check_machine(recipe.for_stage(recipe.stages[1]), command="dpo")
    with pytest.raises(ConfigError, match=r"grpo\.use_vllm"):
        check_machine(recipe.for_stage(recipe.stages[1]), command="run")


def test_the_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`r1kit --help` crashed on a percent sign in one command's help."""
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and all(name in out for name in ("run", "eval", "compare", "report", "ppo"))


def test_help_lists_every_key_with_default_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for path in LEAF_PATHS:
        assert f"--{path} (default: " in out
    assert "Peak learning rate (AdamW)." in out


def test_a_trl_flags_name_written_as_a_key_in_a_file_names_its_key(tmp_path: Path) -> None:
    config_file = tmp_path / "trl.yaml"
    config_file.write_text("top_k: 5\n")  # TRL's GRPOConfig is flat; r1kit's file is sectioned
    with pytest.raises(ConfigError, match=r"unknown key 'top_k' .*; the flag --top_k sets grpo.top_k: write that key"):
        resolve_config(config_file=str(config_file), environ={})


def test_a_stages_help_lists_the_keys_it_reads_and_a_key_it_does_not_read_is_noted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["sft", "--help"])
    out = capsys.readouterr().out
    assert "`r1kit sft` reads the sections run, evaluation, monitoring, model, prompt, dataset, sft;" in out
    assert "--sft.max_steps (default: " in out and "--model.name (default: " in out
    assert "--ppo.kl_coef (default: " not in out and "--grpo.temperature (default: " not in out
    assert "--reward_funcs → rewards.functions (not read by this command)" in out
    assert "--torch_dtype → model.precision\n" in out  # the key a tutorial path stands for
    # TRL's strategy flags are listed, and a refused flag whose harmless value is accepted says so (--help called
    # --push_to_hub false refused, which is accepted as r1kit's way)
    assert "--save_strategy: steps (r1kit's way: --save_steps N sets how often" in out
    assert "--push_to_hub: false / 0 / no accepted (r1kit's way already); else each stage saves" in out
    # set anyway, it is valid (a config file may hold every section) and said to reach nothing here
    assert main(["config", "show", "--grpo.temperature", "0.9"]) == 0
    assert "does not read" not in capsys.readouterr().err  # config show and run read every section
    resolved = resolve("--grpo.temperature", "0.9", "--sft.max_steps", "3", command="sft")
    assert not_read_by(resolved, "sft") == [
        "`r1kit sft` does not read grpo.temperature (from cli:--grpo.temperature): it is for other stages"
    ]
    assert not_read_by(resolved, "grpo") == [
        "`r1kit grpo` does not read sft.max_steps (from cli:--sft.max_steps): it is for other stages"
    ]
    # TRL's --eval_steps reached no evaluation in the stages that step no policy (read, the note said; nothing ran)
    resolved = resolve("--eval_steps", "5", command="reward_model")
    assert not_read_by(resolved, "reward_model") == [
        "`r1kit reward_model` does not read evaluation.every_steps (from cli:--eval_steps): it is for other stages"
    ]
    assert not_read_by(resolve("--eval_steps", "5", command="ppo"), "ppo") == []


def test_eval_and_chat_help_lists_what_they_read(capsys: pytest.CaptureFixture[str]) -> None:
    """`r1kit eval --help` listed every training key and TRL trainer flag (705 lines) for a command that trains nothing."""
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = capsys.readouterr().out
    assert "`r1kit eval` reads the sections run, evaluation, monitoring, model, prompt, dataset, rewards;" in out
    assert "--evaluation.pass_k (default: " in out and "--grpo.temperature (default: " not in out
    assert "--per_device_eval_batch_size → evaluation.batch_size\n" in out and "--num_generations" not in out
    # it waits for every answer's verdict: the training reward's time budget a batch is no setting of it
    assert "--rewards.verification.workers (default: " in out and "batch_budget_seconds" not in out
    with pytest.raises(SystemExit):
        main(["chat", "--help"])
    out = capsys.readouterr().out
    assert "--chat.temperature (default: " in out and "--evaluation.pass_k (default: " not in out
    resolved = resolve("--grpo.temperature", "0.9", "--evaluation.num_samples", "4", command="eval")
    assert not_read_by(resolved, "eval") == [
        "`r1kit eval` does not read grpo.temperature (from cli:--grpo.temperature): it is for other commands"
    ]
    # eval scores with the verification settings alone: a reward list or a reward's setting did nothing, unsaid
    resolved = resolve("--reward_funcs", "accuracy,cosine", "--rewards.verification.workers", "1", command="eval")
    assert not_read_by(resolved, "eval") == [
        "`r1kit eval` does not read rewards.functions (from cli:--reward_funcs): it is for other commands"
    ]
    # chat writes no run folder: --out did nothing, without a word
    resolved = resolve("--out", "somewhere", command="chat")
    assert not_read_by(resolved, "chat") == [
        "`r1kit chat` does not read run.output_dir (from cli:--out): it is for other commands"
    ]


@pytest.mark.parametrize(
    ("command", "lands", "refused"),
    [
        ("run", "--max_steps → training.max_steps", None),
        ("sft", "--max_steps → sft.max_steps", "--beta → grpo.beta (not read by `r1kit sft`: refused)"),
        ("dpo", "--beta → dpo.beta", "--num_generations → grpo.num_generations (not read by `r1kit dpo`: refused)"),
        # the stage's own key of the flag's name: help said refused, and the flag set it
        ("cold_start", "--batch_size → cold_start.batch_size", None),
        ("rejection_sampling", "--batch_size → rejection_sampling.batch_size", None),
        # any key of the stage's own section by its bare name, and the renamed ones (help listed neither)
        ("ppo", "--NAME → ppo.NAME (a key of its own section by its bare name, as TRL's scripts take them)", None),
        (
            "grpo",
            "--NAME → training.NAME or grpo.NAME (a key of its own sections, in that order, by its bare name, as "
            "TRL's scripts take them; --kl_coef → grpo.beta)",
            None,
        ),
    ],
)
def test_help_says_where_a_trainer_flag_lands_for_the_command(
    command: str, lands: str, refused: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stage run alone reads its own section (`r1kit sft --max_steps 5` sets sft.max_steps); its help said
    training.max_steps, the key `r1kit run` reads, for every command."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert f"\n  {lands}\n" in out
    assert refused is None or refused in out


@pytest.mark.parametrize("option", ["--config", "--recipe", "--profile"])
def test_a_file_or_profile_option_given_twice_is_refused(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The last one replaced the others without a word (two --config files read as one: the first's values lost)."""
    values = {"--config": ["a.yaml", "b.yaml"], "--recipe": ["r1", "rlhf"], "--profile": ["test", "dev"]}[option]
    with pytest.raises(SystemExit) as exit_:
        main(["config", "show", option, values[0], option, values[1]])
    assert exit_.value.code == 2
    assert f"{option} given twice ({values[0]}, {values[1]}); give it once" in capsys.readouterr().err


def test_a_profile_or_recipe_chosen_in_a_file_is_sent_to_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "mine.yaml"
    config.write_text("profile: dev\n")
    with pytest.raises(ConfigError, match=re.escape("a profile is chosen on the command line (--profile NAME)")):
        resolve(config_file=str(config))


def test_a_recipe_stage_whose_config_keys_are_all_commented_out_has_none(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("stages:\n- name: sft\n  config:\n  #  sft: {max_steps: 3}\n- name: grpo\n")
    assert [spec.config for spec in resolve(config_file=str(recipe)).config.stages] == [{}, {}]


def test_saved_config_repeats_the_run(tmp_path: Path) -> None:
    config = resolve("--learning_rate", "7e-5", profile="test").config
    saved = tmp_path / "config.yaml"
    saved.write_text(to_yaml(config))
    assert resolve(config_file=str(saved)).config == config


def test_an_integration_without_its_package_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    assert main(["config", "show", "--monitoring.wandb.enabled", "true"]) == 2
    assert "monitoring.wandb.enabled: the wandb package is not installed" in capsys.readouterr().err
    # chat and eval log to neither: a training config's W&B setting (--config train.yaml) was refused there
    from r1kit.cli import load_config

    for command in ("chat", "eval"):
        args = argparse.Namespace(command=command, recipe=None, config=None, profile=None)
        assert load_config(args, ["--monitoring.wandb.enabled", "true"]).config.monitoring.wandb.enabled


# ------------------------------------------------------------------------------------------- epochs and steps


def test_an_explicit_epochs_trains_by_epochs_and_says_why() -> None:
    resolved = resolve("--training.epochs", "2.0")
    assert resolved.config.training.epochs == 2.0 and resolved.config.training.max_steps is None
    assert "gives way to training.epochs" in resolved.sources["training.max_steps"]
    # a profile's max_steps gives way to epochs set on the command line (the R1 tutorial's `--profile dev --training.epochs 0.5`)
    dev = resolve("--training.epochs", "0.5", profile="dev").config.training
    assert (dev.epochs, dev.max_steps) == (0.5, None)
    # and the other way round: the later layer wins
    steps = resolve("--training.max_steps", "7", environ={"R1KIT_TRAINING_EPOCHS": "3"})
    assert (steps.config.training.epochs, steps.config.training.max_steps) == (None, 7)
    assert "gives way to training.max_steps" in steps.sources["training.epochs"]
    sft = resolve("--sft.epochs", "1.5").config.sft
    assert (sft.epochs, sft.max_steps) == (1.5, None)


def test_epochs_and_max_steps_in_one_layer_is_an_error_naming_both(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"training.epochs \(cli:--training.epochs\) and training.max_steps"):
        resolve("--training.epochs", "2", "--training.max_steps", "5")
    both = tmp_path / "both.yaml"
    both.write_text("sft: {epochs: 2, max_steps: 4}\n")
    with pytest.raises(ConfigError, match=r"sft.epochs .* and sft.max_steps .* are both set"):
        resolve(config_file=str(both))


def test_a_saved_config_repeats_without_an_epochs_conflict(tmp_path: Path) -> None:
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump(resolve("--training.epochs", "2").config.model_dump()))
    assert resolve(config_file=str(saved)).config.training.epochs == 2.0
    saved.write_text(yaml.safe_dump(R1kitConfig().model_dump()))
    assert resolve(config_file=str(saved)).config.training.max_steps == 30


def test_resume_continues_the_saved_config_over_a_profile_given_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first command set --sft.max_steps above the test profile; --resume with the profile keeps it, and R1KIT_DEBUG
    (the traceback switch) is not read as a config key."""
    (tmp_path / "config.yaml").write_text(to_yaml(resolve("--sft.max_steps", "300", profile="test").config))
    args = ["config", "show", "--format", "json", "--profile", "test", "--resume", "--out", str(tmp_path)]
    assert main([*args, "--sft.optimization.learning_rate", "0.01"]) == 0
    captured = capsys.readouterr()
    shown = json.loads(captured.out)
    assert (
        shown["sft"]["max_steps"] == 300 and shown["sft"]["optimization"]["learning_rate"] == 0.01
    )  # saved, then the flags given
    assert "--resume continues" in captured.err and "--profile test is in it" in captured.err
    assert resolve(environ={"R1KIT_DEBUG": "1"}).config


@pytest.mark.parametrize("out", ["{run}/", "./{name}/", "{name}"])
@pytest.mark.parametrize("flag", ["--out", "--output_dir", "--run.output_dir"])
def test_resume_takes_the_run_folder_however_it_is_spelt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], out: str, flag: str
) -> None:
    """`--resume --out runs/a/` (a shell's tab completion) was refused: "--out and --run.output_dir both set
    run.output_dir, to different values", the second being the folder --resume had found, which the user never typed."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(to_yaml(resolve("--sft.max_steps", "300", profile="test").config))
    monkeypatch.chdir(tmp_path)
    args = ["config", "show", "--format", "json", "--resume", flag, out.format(run=run, name=run.name)]
    assert main(args) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["sft"]["max_steps"] == 300


@pytest.mark.parametrize(
    ("args", "key", "value"),
    [
        (["--bf16", "false"], "model.precision", "fp32"),  # was: "--bf16 is a switch and takes no value"
        (["--fp16", "False"], "model.precision", "fp32"),
        (["--torch_dtype", "bfloat16"], "model.precision", "bf16"),  # TRL's ModelConfig
        (["--dtype", "float32"], "model.precision", "fp32"),
        (["--dataset_config", "main"], "dataset.subset", "main"),  # TRL's ScriptArguments
        (["--per_device_eval_batch_size", "16"], "evaluation.batch_size", 16),
        (["--log_level", "debug"], "monitoring.log_level", "DEBUG"),
        (["--log_level", "passive"], "monitoring.log_level", "WARNING"),  # transformers' default: was refused
        (["--log_level", "critical"], "monitoring.log_level", "CRITICAL"),
        (["--vllm_mode", "server"], "grpo.vllm_mode", "server"),
        (["--lora_target_modules", "all-linear"], "model.lora.target_modules", ["all-linear"]),
    ],
)
def test_trl_and_seed_flags_set_their_keys(args: list[str], key: str, value) -> None:
    """Flags of TRL's scripts and the seed documents that used to be "unknown option"s or refused."""
    assert flatten(resolve(*args).config.model_dump())[key] == value


def test_all_linear_lora_targets_go_to_peft_as_its_own_choice(tiny_model: Path) -> None:
    from r1kit.models import check_model
    from r1kit.stages.common import lora_config

    model = resolve("--lora_target_modules", "all-linear").config.model
    check_model(model, str(tiny_model))  # was: "none is a layer of …"
    assert lora_config(model).target_modules == "all-linear"


def test_gpt2s_conv1d_layers_are_lora_targets(tmp_path: Path) -> None:
    """PEFT puts LoRA on GPT-2's Conv1D layers; `--lora_target_modules c_attn c_proj` was "none is a layer of …"."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from r1kit.models import check_model

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64)).save_pretrained(tmp_path / "gpt2")
    check_model(resolve("--lora_target_modules", "c_attn", "c_proj").config.model, str(tmp_path / "gpt2"))


def test_lora_targets_are_matched_as_peft_matches_them(tiny_model: Path) -> None:
    """PEFT takes a module's dotted tail (`self_attn.q_proj`); it was refused as "none is a layer of …"."""
    from r1kit.models import ModelError, check_model

    check_model(resolve("--lora_target_modules", "self_attn.q_proj", "self_attn.v_proj").config.model, str(tiny_model))
    with pytest.raises(ModelError, match=r"mlp\.q_proj is not a linear layer"):
        check_model(resolve("--lora_target_modules", "self_attn.q_proj", "mlp.q_proj").config.model, str(tiny_model))


def test_lora_on_an_output_head_tied_to_the_embeddings_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    """Merged into the saved model, the head's adapter changed the shared input embeddings too: the saved model's
    logits were 1.1 off the trained adapter's."""
    from transformers import AutoModelForCausalLM

    from r1kit.models import ModelError, check_model

    with pytest.raises(
        ModelError, match=r"lm_head is the output head of .* shares its weight with the input embeddings"
    ):
        check_model(resolve("--lora_target_modules", "q_proj", "lm_head").config.model, str(tiny_model))
    untied = AutoModelForCausalLM.from_pretrained(tiny_model, tie_word_embeddings=False)
    untied.save_pretrained(tmp_path / "untied")
    check_model(resolve("--lora_target_modules", "q_proj", "lm_head").config.model, str(tmp_path / "untied"))


def test_a_model_that_does_not_write_text_token_by_token_is_refused(tmp_path: Path) -> None:
    """A T5 folder as model.name was "unexpected error (a bug in r1kit or a library): ValueError: Unrecognized
    configuration class …"."""
    from transformers import T5Config

    from r1kit.models import ModelError, check_model

    T5Config(d_model=8, d_ff=16, num_layers=1, num_heads=2, vocab_size=64).save_pretrained(tmp_path / "t5")
    with pytest.raises(ModelError, match=r"t5 is not a model that writes text token by token \(T5Config"):
        check_model(resolve("--lora_target_modules", "q").config.model, str(tmp_path / "t5"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trainig.max_steps"], "unknown option --trainig.max_steps; did you mean 'training.max_steps'?"),
        (["--use_liger_kernel"], "unknown option --use_liger_kernel"),  # both were "missing value"
        (["--save_strategy", "epoch"], "--save_strategy epoch: r1kit counts in optimizer steps, not epochs; give "),
        (["--save_strategy", "no"], "--save_strategy no: r1kit always checkpoints, so that a killed run resumes"),
        (["--logging_strategy", "sometimes"], "--logging_strategy takes steps, no or epoch (got 'sometimes')"),
    ],
)
def test_flags_without_a_value_or_a_place_say_what_is_wrong(args: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve(*args)


def test_a_misspelt_flag_name_in_a_file_is_answered_with_its_key(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("learnig_rate: 1e-4\n")  # a flag's name is no key of a file: its key is the answer
    with pytest.raises(ConfigError, match=re.escape("did you mean 'training.optimization.learning_rate'?")):
        resolve(config_file=str(path))


def test_trl_strategy_flags_set_what_r1kit_can_and_every_refusal_is_named_at_once() -> None:
    """TRL's `--eval_strategy epoch --logging_strategy epoch --save_strategy epoch` took three tries to learn of the
    three refusals, and `steps` or `no`, which r1kit can honour, were refused too."""
    for order in (("--eval_steps", "5", "--eval_strategy", "no"), ("--eval_strategy", "no", "--eval_steps", "5")):
        assert resolve(*order, "--save_strategy", "steps").config.evaluation.every_steps is None  # off, as in TRL
    assert resolve("--eval_strategy", "steps", "--eval_steps", "5").config.evaluation.every_steps == 5
    with pytest.raises(ConfigError) as raised:
        resolve("--eval_strategy", "epoch", "--push_to_hub", "--save_strategy", "epoch", "--nosuch", "--bf16", "x")
    lines = str(raised.value).splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "--eval_strategy epoch",
        "--push_to_hub is not an r1kit option",
        "--save_strategy epoch",
        "unknown option --nosuch",
        "--bf16 is a switch and takes no value (got 'x')",
    ]


def test_the_grpo_batch_rule_holds_where_a_grpo_stage_runs() -> None:
    """The RLHF notebook's `--batch_size 4` (no multiple of GRPO's 8 completions a prompt) refused `r1kit run --recipe
    rlhf`, which has no GRPO stage, blaming its ppo stage; `r1kit dpo --grpo.num_generations 6` was refused too. Under
    rlhf the flag now names the stages' own batch sizes (it set GRPO's, which no stage there reads)."""
    with pytest.raises(
        ConfigError, match=r"--batch_size sets .* set the stages' own: --sft.batch_size.per_device_train"
    ):
        resolve("--batch_size", "4", recipe="rlhf", command="run")
    assert resolve("--grpo.num_generations", "6", command="dpo").config.grpo.num_generations == 6
    for where in ({"command": "grpo"}, {"command": "run"}, {"recipe": "r1", "command": "run"}):
        with pytest.raises(ConfigError, match=r"must be divisible by grpo.num_generations \(8\)"):
            resolve("--batch_size", "4", **where)


def test_yaml_words_and_dates_in_text_settings_stay_text(tmp_path: Path) -> None:
    """YAML 1.1 read Norwegian's code `no` as false and a date-named folder as a date: both were refused as "not a
    valid string". A boolean setting still takes YAML 1.1's words."""
    config_file = tmp_path / "config.yaml"
    config_file.write_text("filters: {language: no}\nrun: {output_dir: 2024-01-05}\nmodel: {lora: {enabled: off}}\n")
    config = resolve(config_file=str(config_file)).config
    assert (config.filters.language, config.run.output_dir, config.model.lora.enabled) == ("no", "2024-01-05", False)


def test_a_section_with_every_key_commented_out_is_an_empty_section(tmp_path: Path) -> None:
    """YAML reads `training:` followed by comments only as null: "training: Input should be a valid dictionary"."""
    config_file = tmp_path / "config.yaml"
    config_file.write_text("training:\n  # max_steps: 5\nsft:\n  max_steps: 3\n")
    config = resolve(config_file=str(config_file)).config
    assert config.sft.max_steps == 3 and config.training == R1kitConfig().training


def test_settings_of_a_reward_no_list_names_are_said_to_change_nothing() -> None:
    """The tutorial's cosine settings without cosine in the reward list were accepted without a word."""
    from r1kit.config.sources import unused_reward_settings

    lines = unused_reward_settings(resolve("--rewards.cosine.max_len", "64", "--rewards.format.weight", "0.2"), "run")
    assert lines == ["rewards.cosine.max_len (from cli:--rewards.cosine.max_len): cosine is not in rewards.functions, "
                     "so it changes nothing"]  # fmt: skip
    # a recipe stage's own list counts: r1's reasoning_rl scores language consistency
    assert not unused_reward_settings(resolve("--rewards.language_consistency.language", "en", recipe="r1"), "run")
    # and only it: rlhf_chat's PPO and RLOO score with the reward model alone, whatever the run's list says
    assert unused_reward_settings(resolve("--rewards.format.weight", "2", recipe="rlhf_chat"), "run")
    assert not unused_reward_settings(resolve("--rewards.format.weight", "2"), "grpo")
    with pytest.raises(ConfigError, match=r"--reward_weights is not an r1kit option: .*--rewards.<name>.weight"):
        resolve("--reward_funcs", "accuracy", "--reward_weights", "1.0")


def test_a_config_file_holding_every_key_gives_no_reward_notes(tmp_path: Path) -> None:
    """A run's saved config.yaml, read again by --resume, holds every key (so does `r1kit config`'s dump): each
    reward's defaults gave a note, 20 of them on every --resume."""
    from r1kit.config.sources import greedy_despite_temperature, to_yaml, unused_reward_settings

    saved = tmp_path / "config.yaml"
    saved.write_text(to_yaml(resolve_config(environ={}).config))
    assert not unused_reward_settings(resolve_config(config_file=str(saved), environ={}), "run")
    # nor a note that its default evaluation.temperature samples nothing (every `--config RUN/config.yaml` said so)
    assert not greedy_despite_temperature(resolve_config(config_file=str(saved), environ={}))
    # a value the file changes is still said
    saved.write_text(saved.read_text().replace("max_len: 1000", "max_len: 64"))
    lines = unused_reward_settings(resolve_config(config_file=str(saved), environ={}), "run")
    assert [line.split(" (")[0] for line in lines] == ["rewards.cosine.max_len"]
    # but not of a run's own saved config, which holds its profile's values (the test profile's overlong settings
    # were said to change nothing at every --resume of such a run)
    run = tmp_path / "run"
    (run / "sft").mkdir(parents=True)
    (run / "sft" / "manifest.json").write_text("{}")
    (run / "config.yaml").write_text(to_yaml(resolve_config(profile="test", environ={}).config))
    assert not unused_reward_settings(resolve_config(config_file=str(run / "config.yaml"), environ={}), "run")
    # a user's own config beside the runs it made is no run's: its notes stay
    (tmp_path / "exp" / "run1").mkdir(parents=True)
    (tmp_path / "exp" / "run1" / "manifest.json").write_text("{}")
    (tmp_path / "exp" / "config.yaml").write_text("rewards: {overlong: {soft_cache: 8}}\n")
    assert unused_reward_settings(resolve_config(config_file=str(tmp_path / "exp" / "config.yaml"), environ={}), "run")


def test_the_rlhf_notebooks_trainer_flags_say_what_r1kit_uses_instead(capsys: pytest.CaptureFixture[str]) -> None:
    """TRL's PPO/RLOO/DPO flags were "unknown option" with no hint, and `r1kit trpo` an invalid choice."""
    with pytest.raises(ConfigError) as raised:
        resolve("--num_mini_batches", "2", "--whiten_rewards", "true", "--rpo_alpha", "0.5", command="ppo")
    lines = str(raised.value).splitlines()
    assert len(lines) == 3 and "--ppo.minibatch_size" in lines[0] and "--ppo.whiten_advantages" in lines[1]
    assert resolve("--rloo_k", "8", command="rloo").config.rloo.num_generations == 8  # TRL's older name
    # a trainer flag no stage of the recipe reads, where its stages have their own settings of it, is refused naming
    # them (--beta is GRPO's, and rlhf has no GRPO stage; the notebook's --learning_rate 2e-5 left SFT at 1e-3 after
    # a note); one none has a setting of is said to change nothing
    with pytest.raises(ConfigError, match=r"--beta sets grpo.beta, which no stage of this recipe .* --dpo.beta"):
        resolve("--beta", "0.3", recipe="rlhf", command="run")
    with pytest.raises(ConfigError, match=r"set the stages' own: --sft.optimization.learning_rate, --reward_model"):
        resolve("--learning_rate", "2e-5", recipe="rlhf", command="run")
    assert not_read_by(resolve("--grpo.beta", "0.3", recipe="rlhf", command="run"), "run") == [
        "no stage of this recipe (sft, reward_model, dpo, ppo, rloo) reads grpo.beta (from cli:--grpo.beta): it "
        "changes nothing"
    ]
    assert not not_read_by(resolve("--beta", "0.3", command="run"), "run")  # the default recipe's grpo does
    # a key of a section a stage reads part of: said by key (the cold start and SFT read no reward list)
    recipe = resolve("--reward_funcs", "accuracy", "--stages", "[{name: cold_start}, {name: sft}]", command="run")
    assert not_read_by(recipe, "run") == [
        "no stage of this recipe (cold_start, sft) reads rewards.functions (from cli:--reward_funcs): it changes nothing"
    ]
    assert main(["trpo", "--profile", "test"]) == 2
    assert "r1kit ppo --ppo.policy_update trpo" in capsys.readouterr().err


def test_a_value_a_recipe_stage_sets_for_itself_is_named_when_the_user_sets_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """r1's reasoning_rl stage sets its own rewards; `--reward_funcs accuracy cosine` was read, said to be read, and
    reached no stage, with no word of it."""
    assert main(["config", "show", "--profile", "test", "--recipe", "r1", "--reward_funcs", "accuracy", "cosine"]) == 0
    err = capsys.readouterr().err
    assert "r1kit: note: stages: reasoning_rl sets its own rewards.functions (['accuracy', 'format', " in err
    assert "which wins over --reward_funcs's ['accuracy', 'cosine']; to change it, edit that stage in a copy" in err
    assert main(["config", "show", "--profile", "test", "--reward_funcs", "accuracy", "cosine"]) == 0
    assert "sets its own" not in capsys.readouterr().err  # the default recipe's stages set nothing of their own
    own = tmp_path / "mine.yaml"  # the user's own recipe is edited in place, not copied
    own.write_text("stages: [{name: sft}, {name: rl, kind: grpo, config: {grpo: {temperature: 0.9}}}]\n")
    assert main(["config", "show", "--profile", "test", "--recipe", str(own), "--grpo.temperature", "0.5"]) == 0
    assert (
        f"which wins over --grpo.temperature's 0.5; to change it, edit that stage in {own}\n" in capsys.readouterr().err
    )
    # stages given on the command line are edited there (was "edit that stage in DIR/cli:--stages")
    stages = "[{name: rl, kind: grpo, config: {grpo: {temperature: 0.9}}}]"
    assert main(["config", "show", "--profile", "test", "--stages", stages, "--grpo.temperature", "0.5"]) == 0
    assert "to change it, edit that stage in --stages\n" in capsys.readouterr().err
    # the user's --config file too (its value was replaced without a word)
    config_file = tmp_path / "c.yaml"
    config_file.write_text("rewards: {functions: [accuracy, cosine]}\n")
    assert main(["config", "show", "--profile", "test", "--recipe", "r1", "--config", str(config_file)]) == 0
    assert f"which wins over {config_file}'s ['accuracy', 'cosine']" in capsys.readouterr().err
    # a stage's max_steps clears the user's epochs for that stage (it trains by one or the other): said too
    own.write_text("stages: [{name: sft, config: {sft: {max_steps: 7}}}, {name: grpo}]\n")
    assert main(["config", "show", "--profile", "test", "--recipe", str(own), "--sft.epochs", "2"]) == 0
    assert "sets its own sft.max_steps (7), so --sft.epochs's 2.0 (sft.epochs) does not reach it" in (
        capsys.readouterr().err
    )


def test_stages_given_on_the_command_line_are_read_as_a_files_are() -> None:
    """A file's stage config takes dotted keys and the tutorial's names; `--stages` refused both ("Extra inputs are
    not permitted", "unknown key 'training.learning_rate'")."""
    stages = "[{name: grpo, config: {training.max_steps: 5, training: {learning_rate: 0.1}}}]"
    config = resolve("--stages", stages).config
    stage = config.for_stage(config.stages[0])
    assert (stage.training.max_steps, stage.training.optimization.learning_rate) == (5, 0.1)


def test_tutorial_names_in_a_file_or_the_environment_get_the_same_note_as_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "tutorial.yaml"
    config.write_text("training:\n  precision:\n    bf16: false\nmonitoring.logging.level: INFO\n")
    monkeypatch.setenv("GRPO_TRAINING_LEARNING_RATE", "1e-4")
    assert main(["config", "show", "--profile", "test", "--config", str(config)]) == 0
    err = capsys.readouterr().err  # was: nothing (only command-line names were noted)
    assert "training.precision.bf16 → model.precision (tutorial.yaml)" in err
    assert "monitoring.logging.level → monitoring.log_level (tutorial.yaml)" in err
    assert "GRPO_TRAINING_LEARNING_RATE → training.optimization.learning_rate" in err


def test_a_profile_that_replaces_a_value_of_the_users_file_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A profile comes after --config, as documented; a value the user wrote and a profile replaced went unsaid."""
    mine = tmp_path / "my.yaml"
    mine.write_text("training:\n  max_steps: 5\nsft:\n  max_steps: 7\n")
    assert main(["config", "show", "--config", str(mine), "--profile", "test"]) == 0
    err = capsys.readouterr().err
    assert f"r1kit: note: --profile test sets training.max_steps to 3 over 5 from {mine} (a flag wins over both)" in err
    assert main(["config", "show", "--config", str(mine), "--profile", "test", "--max_steps", "5"]) == 0
    assert "over 5 from" not in capsys.readouterr().err  # the flag's value stands: nothing of the file was replaced
    mine.write_text("training:\n  max_steps: 3\n")  # what the profile sets too: nothing to say
    assert main(["config", "show", "--config", str(mine), "--profile", "test"]) == 0
    assert "over 3 from" not in capsys.readouterr().err
    # the file named as ./my.yaml, and a value under the tutorial's name: neither was said
    mine.write_text("training:\n  max_steps: 40\n  learning_rate: 2.0e-5\n"
                    "profiles:\n  mine:\n    training: {max_steps: 41, optimization: {learning_rate: 3.0e-5}}\n")  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert main(["config", "show", "--config", "./my.yaml", "--profile", "mine"]) == 0
    err = capsys.readouterr().err
    assert "--profile mine sets training.max_steps to 41 over 40 from ./my.yaml" in err
    assert "--profile mine sets training.optimization.learning_rate to 3e-05 over 2e-05 from ./my.yaml" in err
    # epochs in the file, the profile's max_steps: the file's epochs gave way without a word
    mine.write_text("sft:\n  epochs: 1\ntraining:\n  epochs: 0.5\n")
    assert main(["config", "show", "--config", str(mine), "--profile", "dev"]) == 0
    err = capsys.readouterr().err
    assert f"--profile dev sets sft.max_steps to 20, so sft.epochs 1 from {mine} gives way" in err
    assert f"--profile dev sets training.max_steps to 8, so training.epochs 0.5 from {mine} gives way" in err
    assert main(["config", "show", "--config", str(mine), "--profile", "dev", "--sft.epochs", "2"]) == 0
    assert "sft.epochs" not in capsys.readouterr().err  # the flag's epochs stand


def test_a_config_file_that_replaces_the_named_recipe_s_values_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--recipe r1_zero --config dump.yaml` (a `config show` dump, or RUN/config.yaml) dropped the recipe's stages,
    prompt and rewards without a word."""
    dump = tmp_path / "dump.yaml"
    assert main(["config", "show"]) == 0
    dump.write_text(capsys.readouterr().out)
    assert main(["config", "show", "--recipe", "r1_zero", "--config", str(dump)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert f"--config {dump} sets stages to [sft, grpo] over [grpo] from the r1_zero recipe" in err
    assert f"--config {dump} sets rewards.functions to" in err
    (tmp_path / "steps.yaml").write_text("training:\n  max_steps: 5\n")  # a key the recipe leaves alone: no note
    assert main(["config", "show", "--recipe", "r1_zero", "--config", str(tmp_path / "steps.yaml")]) == 0
    assert "from the r1_zero recipe" not in capsys.readouterr().err
    # a recipe's values too: the shipped `profile` profile's one GRPO stage replaced r1's six without a word
    assert main(["config", "show", "--recipe", "r1", "--profile", "profile"]) == 0
    assert (
        "--profile profile sets stages to [grpo] over [cold_start, sft, reasoning_rl, rejection_sampling, sft2, "
        "distill] from the r1 recipe" in capsys.readouterr().err
    )


# ------------------------------------------------------------------------------ values reach the key they name


def test_a_mapping_setting_is_replaced_whole_by_a_later_source(tmp_path: Path) -> None:
    """dataset.columns merged key by key: a flag's renames were added to the file's, and a recipe stage with its own
    data inherited the run's renames (which its file does not have)."""
    config_file = tmp_path / "c.yaml"
    config_file.write_text("dataset:\n  columns: {problem: question, answer: solution}\n")
    flag = resolve("--dataset.columns", "{question_text: question}", config_file=str(config_file))
    assert flag.config.dataset.columns == {"question_text": "question"}
    assert resolve("--dataset.columns", "{}", config_file=str(config_file)).config.dataset.columns == {}
    env = resolve(config_file=str(config_file), environ={"R1KIT_DATASET_COLUMNS": "{q: question}"})
    assert env.config.dataset.columns == {"q": "question"}
    config_file.write_text(
        "dataset:\n  columns: {problem: question}\n"
        "stages:\n  - {name: sft, config: {dataset: {name: y.jsonl, columns: {prompt_text: question}}}}\n"
    )
    config = resolve(config_file=str(config_file)).config
    assert config.for_stage(config.stages[0]).dataset.columns == {"prompt_text": "question"}


def test_a_stages_own_epochs_or_steps_decides_how_long_it_trains(tmp_path: Path) -> None:
    """A stage's `sft: {epochs: 2}` kept the default max_steps (60), which wins in the trainer: it trained 60 steps."""
    config_file = tmp_path / "c.yaml"
    config_file.write_text("stages:\n  - {name: sft, config: {sft: {epochs: 2}}}\n  - {name: grpo}\n")
    config = resolve("--sft.max_steps", "5", config_file=str(config_file)).config
    sft = config.for_stage(config.stages[0]).sft
    assert (sft.epochs, sft.max_steps) == (2.0, None)
    config_file.write_text("stages:\n  - {name: sft, config: {sft: {max_steps: 4}}}\n")
    config = resolve("--sft.epochs", "3", config_file=str(config_file)).config
    sft = config.for_stage(config.stages[0]).sft
    assert (sft.epochs, sft.max_steps) == (None, 4)
    config_file.write_text("stages:\n  - {name: sft, config: {sft: {max_steps: 4, epochs: 1}}}\n")
    with pytest.raises(ConfigError, match=r"stages: sft: .*sft.epochs and sft.max_steps are both set"):
        resolve(config_file=str(config_file))


@pytest.mark.parametrize(
    ("key", "hint"),
    [("model.name", "model_from"), ("model.precision", "the run's"), ("model.threads", "the run's")],
)
def test_a_stage_cannot_set_what_the_run_decides_for_every_stage(key: str, hint: str, tmp_path: Path) -> None:
    """A stage's model.name or precision was accepted and ignored: the stage trained the previous stage's model on the
    run's device."""
    section, name = key.split(".")
    value = {"name": "other-model", "precision": "fp32", "threads": 1}[name]
    config_file = tmp_path / "c.yaml"
    config_file.write_text(f"stages:\n  - {{name: grpo, config: {{{section}: {{{name}: {value}}}}}}}\n")
    with pytest.raises(ConfigError, match=rf"stages: grpo: {key} .*{hint}"):
        resolve(config_file=str(config_file))


def test_chat_and_eval_take_sampling_flags_for_their_own_settings() -> None:
    """`r1kit chat --temperature 0.7` set grpo.temperature (and said chat does not read it): chat stayed greedy."""
    chat = resolve("--temperature", "0.7", "--top_p", "0.9", "--max_new_tokens", "64", command="chat").config.chat
    assert (chat.temperature, chat.top_p, chat.max_new_tokens) == (0.7, 0.9, 64)
    # top-k 0 is no limit, as GRPO and generate read it (chat refused it); null, as every saved run has it, too
    assert resolve("--temperature", "0.7", "--top_k", "0", command="chat").config.chat.top_k == 0
    assert R1kitConfig.model_validate({"chat": {"top_k": None}}).chat.top_k is None
    evaluation = resolve("--temperature", "0.5", "--max_new_tokens", "32", command="eval").config.evaluation
    assert (evaluation.temperature, evaluation.max_new_tokens) == (0.5, 32)
    assert resolve("--temperature", "0.5", command="run").config.grpo.temperature == 0.5


def test_a_tutorial_name_and_its_key_in_one_file_is_an_error_naming_both(tmp_path: Path) -> None:
    """The last one written won, silently: `training.learning_rate` beside `training.optimization.learning_rate`."""
    config_file = tmp_path / "c.yaml"
    config_file.write_text("training:\n  learning_rate: 1.0e-4\n  optimization: {learning_rate: 3.0e-5}\n")
    with pytest.raises(ConfigError, match=r"training.learning_rate and training.optimization.learning_rate both set"):
        resolve(config_file=str(config_file))
    config_file.write_text("model: {precision: fp16}\ntraining: {precision: {bf16: true}}\n")
    with pytest.raises(ConfigError, match=r"model.precision and training.precision.bf16 both set model.precision"):
        resolve(config_file=str(config_file))
    # the tutorial sets its precision twice, agreeing (torch_dtype bfloat16, bf16 true): one precision, not refused
    config_file.write_text("model: {torch_dtype: float32}\ntraining: {precision: {bf16: false}}\n")
    assert resolve(config_file=str(config_file)).config.model.precision == "fp32"
    # on the command line, read as TRL's --bf16 (a switch given false gives way), not the last one winning
    for order in (
        ["--torch_dtype", "float32", "--training.precision.bf16", "false"],
        ["--training.precision.bf16", "false", "--torch_dtype", "float32"],
    ):
        assert resolve(*order).config.model.precision == "fp32"
    with pytest.raises(ConfigError, match="ask for different precisions"):
        resolve("--training.precision.bf16", "true", "--torch_dtype", "float32")


def test_a_yaml_switch_where_a_number_goes_is_refused(tmp_path: Path) -> None:
    """`learning_rate: true` in a file trained at 1.0, `seed: false` at 0 (pydantic reads a bool as a number); the
    command line refused the same words. A number where a switch goes keeps its meaning."""
    for text, said in [
        (
            "training: {optimization: {learning_rate: true}}",
            "training.optimization.learning_rate: is true, not a number",
        ),
        ("run: {seed: false}", "run.seed: is false, not a number"),
        ("training: {max_steps: true}", "training.max_steps: is true, not a number"),
    ]:
        config_file = tmp_path / "c.yaml"
        config_file.write_text(text + "\n")
        with pytest.raises(ConfigError, match=re.escape(said)):
            resolve(config_file=str(config_file))
    assert resolve("--model.threads", "2").config.model.threads == 2  # an int | None field still takes a number


def test_text_that_reads_as_a_yaml_1_2_number_is_saved_quoted() -> None:
    """`0o17` in a text setting was written plain into a run's config.yaml, and read back as 15."""
    from r1kit.config.sources import read_yaml, to_yaml

    config = resolve("--model.revision", "0o17", "--monitoring.wandb.run_name", "0x1F").config
    saved = read_yaml(to_yaml(config))
    assert (saved["model"]["revision"], saved["monitoring"]["wandb"]["run_name"]) == ("0o17", "0x1F")


def test_text_that_looks_like_a_yaml_1_1_number_stays_as_written(tmp_path: Path) -> None:
    """`run_name: 0123` in a file became '83' (YAML 1.1 octal), `revision: 2023_01` '202301'."""
    config_file = tmp_path / "c.yaml"
    config_file.write_text(
        "monitoring: {wandb: {run_name: 0123}}\nmodel: {revision: 2023_01}\ntraining: {max_steps: 12}\n"
    )
    config = resolve(config_file=str(config_file)).config
    assert (config.monitoring.wandb.run_name, config.model.revision, config.training.max_steps) == (
        "0123",
        "2023_01",
        12,
    )


def test_dpo_label_smoothing_is_refused_where_the_loss_ignores_it() -> None:
    """TRL 1.16's sigmoid loss dropped label smoothing: `--dpo.label_smoothing 0.1` trained plain DPO, silently."""
    with pytest.raises(ConfigError, match=r"label_smoothing 0.1 is read by loss_type robust only"):
        resolve("--dpo.label_smoothing", "0.1")
    assert resolve("--dpo.label_smoothing", "0.1", "--dpo.loss_type", "robust").config.dpo.label_smoothing == 0.1


def test_run_wide_checks_leave_a_stage_its_own_values(tmp_path: Path) -> None:
    """The GRPO batch, overlong and vLLM checks read the run's values wherever a recipe had a GRPO stage, also one
    that replaces them: a stage's own grpo.num_generations 4 for the run's batch of 4 was refused (divisible by 8),
    and so was its grpo.use_vllm false under a run-wide true. What the stage runs with is checked, as before."""
    from r1kit.config.checks import check_machine

    def config(text: str):
        (tmp_path / "c.yaml").write_text(text)
        return resolve(config_file=str(tmp_path / "c.yaml"), command="run").config

    stage = "stages:\n  - name: sft\n  - name: grpo\n    config:\n"
    config("training: {batch_size: {per_device_train: 4}}\n" + stage + "      grpo: {num_generations: 4}\n")
    config("rewards: {functions: [accuracy, overlong], overlong: {soft_cache: 64}}\n"
           + stage + "      grpo: {max_completion_length: 256}\n")  # fmt: skip
    check_machine(config("grpo: {use_vllm: true}\n" + stage + "      grpo: {use_vllm: false}\n"), command="run")
    with pytest.raises(ConfigError, match=re.escape("stages: grpo: its config is invalid: training.batch_size")):
        config("training: {batch_size: {per_device_train: 4}}\n" + stage + "      grpo: {num_generations: 3}\n")
    # a key of the run's own that the stage's rule refused: named with its source, not the recipe's file alone
    (tmp_path / "c.yaml").write_text(stage + "      grpo: {num_generations: 4}\n")
    with pytest.raises(ConfigError, match=r"\(from file:.*c\.yaml; training\.batch_size\.per_device_train from cli:--"):
        resolve("--training.batch_size.per_device_train", "6", config_file=str(tmp_path / "c.yaml"), command="run")
    # a stage without its own config runs on the run's values: checked against them
    with pytest.raises(ConfigError, match=re.escape("must be divisible by grpo.num_generations")):
        config("training: {batch_size: {per_device_train: 4}}\n" + stage + "      grpo: {num_generations: 4}\n"
               "  - {name: rl2, kind: grpo}\n")  # fmt: skip


def test_the_tutorials_bf16_switch_refuses_what_is_not_true_or_false() -> None:
    """`--training.precision.bf16 ture` (or an empty variable) trained in fp32 without a word: anything not read as
    true or false was false. Null leaves the precision to `auto`."""
    assert resolve("--training.precision.bf16", "no").config.model.precision == "fp32"
    assert resolve("--training.precision.bf16", "null").config.model.precision == "auto"
    for junk in ("ture", ""):
        with pytest.raises(ConfigError, match=rf"got '{junk}', from cli:--training.precision.bf16"):
            resolve("--training.precision.bf16", junk)


def test_yaml_merge_keys_and_text_that_reads_as_a_number(tmp_path: Path) -> None:
    """The check for keys written twice refused YAML's merge key (`<<: *rl`, one stage's config reused for another),
    and a run's saved config wrote `revision: 1e3` plain, which YAML 1.2 reads back as 1000.0 on --resume."""
    config = tmp_path / "c.yaml"
    config.write_text(
        "stages:\n  - name: grpo\n    config: &rl {grpo: {num_generations: 4}, training: {max_steps: 5}}\n"
        "  - name: rl2\n    kind: grpo\n    config: {<<: *rl, training: {max_steps: 9}}\n"
    )
    stages = resolve(config_file=str(config)).config.stages
    assert stages[1].config == {"grpo": {"num_generations": 4}, "training": {"max_steps": 9}}
    saved = tmp_path / "saved.yaml"
    saved.write_text(to_yaml(resolve("--model.revision", "1e3", "--dataset.subset", "12e4567").config))
    again = resolve(config_file=str(saved)).config
    assert (again.model.revision, again.dataset.subset) == ("1e3", "12e4567")


def test_curriculum_settings_without_the_curriculum_are_said_to_change_nothing(tmp_path: Path, capsys) -> None:
    """`--curriculum.max_pass_rate 0.5` without `--curriculum.enabled true` was accepted and changed nothing, without
    a word (a reward's settings without the reward are said)."""
    from r1kit.config.sources import unused_curriculum_settings

    def said(*flags: str, command: str = "run", recipe: Path | str | None = None) -> list[str]:
        chosen = {"config_file": str(recipe)} if isinstance(recipe, Path) else {"recipe": recipe} if recipe else {}
        return unused_curriculum_settings(resolve_config(overrides=list(flags), environ={}, **chosen), command)

    assert said("--curriculum.max_pass_rate", "0.5", command="grpo") == [
        "curriculum.max_pass_rate (from cli:--curriculum.max_pass_rate): curriculum.enabled is false, so it changes "
        "nothing"
    ]
    assert said("--curriculum.max_pass_rate", "0.5", "--curriculum.enabled", "true") == []
    recipe = tmp_path / "recipe.yaml"  # a GRPO stage of the recipe with the curriculum on: read there
    recipe.write_text(
        "stages:\n  - name: sft\n  - name: rl\n    kind: grpo\n    config: {curriculum: {enabled: true}}\n"
    )
    assert said("--curriculum.max_pass_rate", "0.5", recipe=recipe) == []
    # a recipe without a GRPO stage: not blamed on curriculum.enabled (the key is said not to be read)
    assert said("--curriculum.enabled", "true", "--curriculum.max_pass_rate", "0.5", recipe="rlhf") == []
    assert main(["config", "show", "--curriculum.rescore_every", "2"]) == 0
    assert "curriculum.rescore_every (from cli:--curriculum.rescore_every): curriculum.enabled is false" in (
        capsys.readouterr().err
    )
