"""The names users bring from the R1 tutorial and TRL scripts, mapped onto the schema's keys.

Each name is either an alias of one schema key (its value is set on that key, converted where the meanings differ),
or a setting r1kit does not have, refused with one line saying what to use instead. Aliases add no second config
system: they only rename, so the schema stays the one source of truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from r1kit.stages.registry import READS, STAGE_KINDS


def _dtype_precision(dtype: Any) -> str:
    """TRL's `--torch_dtype` / `--dtype` (a torch dtype name) as r1kit's `model.precision`.

    >>> _dtype_precision("bfloat16"), _dtype_precision("float32"), _dtype_precision("auto")
    ('bf16', 'fp32', 'auto')
    """
    names = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32"}
    text = str(dtype).strip().lower().removeprefix("torch.")
    return names.get(text, text)  # auto, or a value the schema then refuses with its choices


def _bf16_precision(enabled: Any) -> Any:
    """The tutorial's `training.precision.bf16: true/false` as r1kit's `model.precision`; not set (null) is `auto`.
    Any other value is passed on for the schema to refuse with its choices: read as false, a typo (`ture`) trained
    in fp32 without a word.

    >>> _bf16_precision(True), _bf16_precision("no"), _bf16_precision(None), _bf16_precision("ture")
    ('bf16', 'fp32', 'auto', 'ture')
    """
    text = str(enabled).strip().lower()
    if enabled is None or text in ("null", "~"):  # null written on a command line or in a variable is text
        return "auto"
    if isinstance(enabled, bool) or text in (*_ON, *_OFF):
        return "bf16" if enabled is True or text in _ON else "fp32"
    return enabled


_ON, _OFF = ("true", "1", "yes", "y", "t", "on"), ("false", "0", "no", "n", "f", "off")


# The tutorial's dotted paths (in its YAML, profiles, GRPO_* variables and command lines) → the schema's.
PATH_ALIASES = {
    "training.learning_rate": "training.optimization.learning_rate",
    "training.per_device_train_batch_size": "training.batch_size.per_device_train",
    "training.gradient_accumulation_steps": "training.batch_size.gradient_accumulation_steps",
    "training.precision.bf16": "model.precision",
    "training.precision.tf32": "model.tf32",
    "training.precision.gradient_checkpointing": "training.gradient_checkpointing",
    "grpo.vllm.enabled": "grpo.use_vllm",
    "grpo.vllm.mode": "grpo.vllm_mode",
    "grpo.vllm.gpu_memory_utilization": "grpo.vllm_gpu_memory_utilization",
    "monitoring.logging.level": "monitoring.log_level",
    "monitoring.logging.profiling_mode": "monitoring.profiler.enabled",
    "callbacks.checkpoint_preservation.every_n_steps": "training.checkpoint.keep_every",
    "model.torch_dtype": "model.precision",  # TRL's ModelConfig (`--torch_dtype`, `--dtype`), in YAML too
    "model.model_name_or_path": "model.name",
    "model.model_revision": "model.revision",
}
VALUE_CONVERSIONS: dict[str, Callable[[Any], Any]] = {
    "training.precision.bf16": _bf16_precision,
    "model.torch_dtype": _dtype_precision,
}


def canonical(path: str, value: Any) -> tuple[str, Any]:
    """(schema path, value) for a path that may be an alias.

    >>> canonical("training.precision.bf16", True), canonical("training.epochs", 2.0)
    (('model.precision', 'bf16'), ('training.epochs', 2.0))
    """
    convert = VALUE_CONVERSIONS.get(path)
    return PATH_ALIASES.get(path, path), convert(value) if convert else value


@dataclass(frozen=True)
class FlagAlias:
    path: str
    value: Any = None  # a switch's fixed value; None: the flag takes a value
    as_list: bool = False  # split "a,b" / "a b" into a list
    tutorial: bool = True  # the R1 tutorial's or TRL's name: a one-line note names r1kit's key
    hint: str = ""  # added to that note where r1kit's meaning differs from the tutorial's
    off: Any = None  # a switch's value when given false (TRL's `--bf16 false`); None: `not value` for a bool switch


# Short flags of r1kit's own, and the R1 tutorial's / TRL's flags, each the same as one key.
FLAG_ALIASES = {
    "--model": FlagAlias("model.name", tutorial=False),
    "--data": FlagAlias("dataset.name", tutorial=False),
    "--out": FlagAlias("run.output_dir", tutorial=False),
    "--resume": FlagAlias("run.resume", value=True, tutorial=False),
    "--model_name": FlagAlias("model.name"),
    "--model_name_or_path": FlagAlias("model.name"),
    "--model_revision": FlagAlias("model.revision"),  # TRL's ModelConfig
    "--output_dir": FlagAlias("run.output_dir"),
    "--learning_rate": FlagAlias("training.optimization.learning_rate"),
    "--per_device_train_batch_size": FlagAlias("training.batch_size.per_device_train"),
    "--gradient_accumulation_steps": FlagAlias("training.batch_size.gradient_accumulation_steps"),
    "--num_train_epochs": FlagAlias("training.epochs"),
    "--max_steps": FlagAlias("training.max_steps"),
    "--warmup_ratio": FlagAlias("training.optimization.warmup_ratio"),
    "--weight_decay": FlagAlias("training.optimization.weight_decay"),
    "--lr_scheduler_type": FlagAlias("training.optimization.lr_scheduler"),
    "--max_grad_norm": FlagAlias("training.optimization.max_grad_norm"),
    "--save_steps": FlagAlias("training.checkpoint.save_steps"),
    "--save_total_limit": FlagAlias("training.checkpoint.save_total_limit"),
    "--logging_steps": FlagAlias("monitoring.logging_steps"),
    "--seed": FlagAlias("run.seed"),
    "--gradient_checkpointing": FlagAlias("training.gradient_checkpointing", value=True),
    "--bf16": FlagAlias("model.precision", value="bf16", off="fp32"),
    # TRL's `--fp16 false` alone leaves its bf16 default on; here it is fp32, as `auto` picks fp16 on a GPU without
    # bf16 (a T4), what the flag turns off
    "--fp16": FlagAlias("model.precision", value="fp16", off="fp32"),
    "--tf32": FlagAlias("model.tf32", value=True),
    "--per_device_eval_batch_size": FlagAlias("evaluation.batch_size"),
    "--log_level": FlagAlias("monitoring.log_level"),
    "--dataloader_num_workers": FlagAlias("training.dataloader.num_workers"),
    "--dataloader_pin_memory": FlagAlias("training.dataloader.pin_memory"),
    "--num_generations": FlagAlias("grpo.num_generations"),
    "--rloo_k": FlagAlias("rloo.num_generations", tutorial=False),  # TRL's RLOO before num_generations
    "--max_completion_length": FlagAlias("grpo.max_completion_length"),
    "--generation_batch_size": FlagAlias("grpo.generation_batch_size"),
    "--temperature": FlagAlias("grpo.temperature"),
    "--beta": FlagAlias("grpo.beta"),
    "--use_vllm": FlagAlias("grpo.use_vllm", value=True),
    "--vllm_mode": FlagAlias("grpo.vllm_mode"),
    "--eval_steps": FlagAlias("evaluation.every_steps"),
    "--reward_funcs": FlagAlias(
        "rewards.functions",
        as_list=True,
        hint="each reward keeps its rewards.<name>.weight, format's 0.5 among them, where TRL weighs every one 1.0",
    ),
    "--no_wandb": FlagAlias("monitoring.wandb.enabled", value=False),
    # the tutorial logs to W&B unless --no_wandb; r1kit is offline unless asked, so the note says how to ask
    "--wandb_project": FlagAlias(
        "monitoring.wandb.project",
        hint="W&B stays off, r1kit's offline default, unless --monitoring.wandb.enabled true",
    ),
    "--attn_implementation": FlagAlias("model.attn_implementation"),
    "--num_iterations": FlagAlias("grpo.num_iterations"),
    "--epsilon": FlagAlias("grpo.epsilon"),
    "--loss_type": FlagAlias("grpo.loss_type"),
    "--top_p": FlagAlias("grpo.top_p"),
    "--top_k": FlagAlias("grpo.top_k"),
    "--min_p": FlagAlias("grpo.min_p"),
    "--repetition_penalty": FlagAlias("grpo.repetition_penalty"),
    "--epsilon_high": FlagAlias("grpo.epsilon_high"),
    "--scale_rewards": FlagAlias("grpo.scale_rewards"),
    "--mask_truncated_completions": FlagAlias("grpo.mask_truncated_completions", value=True),
    "--dataset_name": FlagAlias("dataset.name"),
    "--dataset_config": FlagAlias("dataset.subset"),
    "--dataset_train_split": FlagAlias("dataset.train_split"),
    "--dataset_test_split": FlagAlias("dataset.test_split"),
    # TRL's ModelConfig (its scripts' dtype and LoRA flags)
    "--torch_dtype": FlagAlias("model.torch_dtype"),
    "--dtype": FlagAlias("model.torch_dtype"),
    "--use_peft": FlagAlias("model.lora.enabled", value=True),
    "--trust_remote_code": FlagAlias("model.trust_remote_code", value=True),
    "--lora_r": FlagAlias("model.lora.rank"),
    "--r": FlagAlias("model.lora.rank"),  # PEFT's LoraConfig(r=16) (the RLHF notebook's setup_peft)
    "--lora_alpha": FlagAlias("model.lora.alpha"),
    "--lora_dropout": FlagAlias("model.lora.dropout"),
    "--lora_target_modules": FlagAlias("model.lora.target_modules", as_list=True),
    # the R1 tutorial's GRPOScriptArguments: each reward's parameters
    "--cosine_min_value_wrong": FlagAlias("rewards.cosine.min_value_wrong"),
    "--cosine_max_value_wrong": FlagAlias("rewards.cosine.max_value_wrong"),
    "--cosine_min_value_correct": FlagAlias("rewards.cosine.min_value_correct"),
    "--cosine_max_value_correct": FlagAlias("rewards.cosine.max_value_correct"),
    "--cosine_max_len": FlagAlias("rewards.cosine.max_len"),
    "--repetition_n_grams": FlagAlias("rewards.repetition_penalty.ngram_size"),
    "--repetition_max_penalty": FlagAlias("rewards.repetition_penalty.max_penalty"),
    # the RLHF notebook's training arguments (num_epochs, batch_size, max_seq_length, LoRA's target_modules), the
    # last also TRL's older SFTConfig name, and TRL's PPOConfig names where r1kit's key differs
    "--num_epochs": FlagAlias("training.epochs"),
    "--batch_size": FlagAlias("training.batch_size.per_device_train"),
    "--max_seq_length": FlagAlias("sft.max_length"),
    "--target_modules": FlagAlias("model.lora.target_modules", as_list=True),
    "--num_ppo_epochs": FlagAlias("ppo.ppo_epochs"),
    "--response_length": FlagAlias("ppo.max_new_tokens"),
    "--missing_eos_penalty": FlagAlias("ppo.missing_eos_penalty"),
}

# TRL's trainer flags (--max_steps, --learning_rate, --beta, …) name GRPO's keys (training.*, grpo.*), which `r1kit run`
# and `r1kit grpo` read. A stage run alone reads its own section instead: the flag lands there (sft2 and distill train
# with sft.*), or is refused where that stage has no such setting, rather than being set on keys the stage ignores.
_OWN_SECTIONS = {"sft2": ("sft",), "distill": ("distill", "sft")}
# A stage's setting under the name an older TRL trainer gave it: RLOO's KL coefficient was `kl_coef` before `beta`,
# and GRPO's is PPO's `kl_coef` in many a tutorial.
_RENAMED = {("rloo", "kl_coef"): "beta", ("grpo", "kl_coef"): "beta"}
GRPO_SECTIONS = ("training", "grpo")
# The commands that train nothing read their own section's sampling settings: `r1kit chat --temperature 0.7`.
COMMAND_SECTIONS = {"chat": "chat", "eval": "evaluation"}


def stage_key(name: str, command: str | None, known: Callable[[str], bool]) -> str | None:
    """The key a bare trainer flag `--NAME` sets when `r1kit COMMAND` runs one stage alone: NAME in that stage's own
    sections (as a TRL trainer's flags are its config's fields), else None; for chat and eval, their own section's.

    >>> known = {"ppo.kl_coef", "dpo.max_length", "sft.max_length", "training.max_steps"}.__contains__
    >>> stage_key("kl_coef", "ppo", known), stage_key("max_length", "dpo", known), stage_key("max_length", "sft2", known)
    ('ppo.kl_coef', 'dpo.max_length', 'sft.max_length')
    >>> stage_key("kl_coef", "sft", known), stage_key("kl_coef", "run", known)
    (None, None)
    >>> stage_key("kl_coef", "rloo", {"rloo.beta"}.__contains__), stage_key("max_new_tokens", "chat", {"chat.max_new_tokens"}.__contains__)
    ('rloo.beta', 'chat.max_new_tokens')
    """
    name = _RENAMED.get((command, name), name)
    return next((f"{own}.{name}" for own in _own_sections(command) if known(f"{own}.{name}")), None)


def _own_sections(command: str | None) -> tuple[str, ...]:
    """The sections whose keys `r1kit COMMAND` takes by their bare names (none for run and config)."""
    if command in COMMAND_SECTIONS:
        return (COMMAND_SECTIONS[command],)
    if command in STAGE_KINDS:
        return GRPO_SECTIONS if command == "grpo" else tuple(dict.fromkeys((command, *_OWN_SECTIONS.get(command, ()))))
    return ()


def bare_names(command: str) -> str | None:
    """`--help`'s line on the bare names `r1kit COMMAND` takes (`stage_key`), or None where it takes none.

    >>> print(bare_names("rloo"))
      --NAME → rloo.NAME (a key of its own section by its bare name, as TRL's scripts take them; --kl_coef → rloo.beta)
    """
    sections = _own_sections(command)
    if not sections:
        return None
    renamed = "".join(f"; --{old} → {command}.{new}" for (stage, old), new in _RENAMED.items() if stage == command)
    where = " or ".join(f"{section}.NAME" for section in sections)
    own = "its own section" if len(sections) == 1 else "its own sections, in that order,"
    return f"  --NAME → {where} (a key of {own} by its bare name, as TRL's scripts take them{renamed})"


def for_stage(path: str, command: str | None, known: Callable[[str], bool]) -> str | None:
    """Where a trainer flag's `path` (a training.* or grpo.* key, or another stage's key such as sft.max_length)
    lands when `r1kit COMMAND` runs one stage alone: the same key in the stage's own section, else None (the stage has
    no such setting); for `r1kit chat` and `r1kit eval`, their own setting of that name where they have one. Other
    paths and commands (run, config) keep the path.

    >>> known = {"sft.max_steps", "sft.optimization.learning_rate", "ppo.learning_rate"}.__contains__
    >>> for_stage("training.max_steps", "sft", known), for_stage("training.optimization.learning_rate", "ppo", known)
    ('sft.max_steps', 'ppo.learning_rate')
    >>> for_stage("grpo.num_generations", "sft", known), for_stage("training.max_steps", "grpo", known)
    (None, 'training.max_steps')
    >>> for_stage("sft.max_length", "dpo", {"dpo.max_length"}.__contains__), for_stage("ppo.ppo_epochs", "grpo", known)
    ('dpo.max_length', None)
    >>> for_stage("grpo.temperature", "chat", {"chat.temperature"}.__contains__), for_stage("grpo.beta", "eval", known)
    ('chat.temperature', 'grpo.beta')
    """
    section, _, rest = path.partition(".")
    if command in COMMAND_SECTIONS:  # its own setting of that name, else the path (said to be unread by it)
        own = f"{COMMAND_SECTIONS[command]}.{rest.rsplit('.', 1)[-1]}"
        return own if section in GRPO_SECTIONS and known(own) else path
    if command not in STAGE_KINDS:
        return path
    if section in STAGE_KINDS and section not in READS[command]:  # another stage's key (--max_seq_length: sft's)
        return stage_key(rest.rsplit(".", 1)[-1], command, known)
    if command == "grpo" or section not in GRPO_SECTIONS:
        return path
    for own in _OWN_SECTIONS.get(command, (command,)):
        for candidate in (f"{own}.{rest}", f"{own}.{rest.rsplit('.', 1)[-1]}"):  # optimization.learning_rate, or flat
            if known(candidate):
                return candidate
    return None


# TRL flags whose value asks for what r1kit does anyway (no upload, no integration, its own columns): noted, not set.
HARMLESS = {
    "--push_to_hub": ("false", "0", "no"),
    "--report_to": ("none",),
    "--remove_unused_columns": ("true", "false", "1", "0", "yes", "no"),
    "--packing": ("false", "0", "no"),
    "--dataset_text_field": ("conversations", "messages", "text"),  # the columns r1kit reads as such itself
    "--max_steps": ("-1", "0"),  # transformers' "not set: train by epochs" (see HARMLESS_SAID)
    # the tutorial's callbacks turned on: r1kit's monitoring, trend alerts and checkpoints are always on
    "--callbacks.comprehensive_logging.enabled": ("true", "1", "yes"),
    "--callbacks.reward_trend.enabled": ("true", "1", "yes"),
    "--callbacks.checkpoint_preservation.enabled": ("true", "1", "yes"),
}

# What the note on a HARMLESS value says, where "r1kit's way already" would mislead: transformers trains
# `--max_steps -1` by epochs (3 unless given), r1kit each stage's max_steps unless its epochs are set.
HARMLESS_SAID = {
    "--max_steps": "nothing set: a stage trains its own max_steps (`r1kit config show` lists them) unless "
    "--num_train_epochs or its epochs are given",
}


def harmless_note(name: str) -> str:
    """What a note says of a HARMLESS value of the flag or YAML key `name`."""
    flag = name if name.startswith("--") else f"--{name}"
    return HARMLESS_SAID.get(flag, "r1kit's way already, nothing to set")


def harmless(name: str, value: Any) -> bool:
    """Whether a TRL setting, as a flag or a YAML key, asks for what r1kit does anyway (HARMLESS).

    >>> harmless("--push_to_hub", "false"), harmless("push_to_hub", False), harmless("report_to", "wandb")
    (True, True, False)
    """
    flag = name if name.startswith("--") else f"--{name}"
    return str(value).strip().lower() in HARMLESS.get(flag, ())


# Settings of the tutorial or of TRL scripts that r1kit does not have, by flag or by dotted-path prefix.
REFUSED = {
    "callbacks.comprehensive_logging": "r1kit's monitoring is always on; tune it with monitoring.logging_steps, "
    "monitoring.examples_every and monitoring.progress",
    "callbacks.reward_trend": "trend alerts are always on; tune them under monitoring.alerts (window, drop_share, …)",
    "callbacks": "r1kit's callbacks are always on: see monitoring.* and training.checkpoint.keep_every",
    "project": "name the run folder with run.output_dir (--out) and the W&B project with monitoring.wandb.project",
    "system": "the tutorial's `system:` section: set the device and threads with model.device and model.threads, the "
    "seed with run.seed; the system prompt is prompt.system (--prompt.system TEXT)",
    "dataset.processing": "r1kit reads rows by dataset.format (and dataset.columns), limits them with "
    "dataset.max_train_samples / max_test_samples, and sets the prompt with prompt.system",
    "rewards.repetition": "the repetition penalty's settings are rewards.repetition_penalty.ngram_size and "
    "rewards.repetition_penalty.max_penalty",
    "rewards.soft_punish": "DAPO's soft punishment of long completions is the overlong reward: "
    "rewards.overlong.max_length and rewards.overlong.soft_cache",
    "training.scheduling": "set the schedule with training.epochs or training.max_steps, and "
    "training.optimization.lr_scheduler / warmup_ratio; how often to log, checkpoint and evaluate with "
    "monitoring.logging_steps, training.checkpoint.save_steps and evaluation.every_steps",
    "rewards.code": "r1kit has no code-execution reward (it never runs model-written code); see rewards.functions",
    "--push_to_hub": "each stage saves a plain HF folder in RUN/<stage>/model; upload it with `hf upload`",
    "--overwrite_output_dir": "r1kit never overwrites finished training: continue with --resume or pick another --out",
    "--remove_unused_columns": "r1kit builds each stage's columns itself from dataset.format and dataset.columns",
    "--group_by_length": "r1kit batches rows in a seeded shuffle; its GRPO shares each prompt among its completions "
    "(fast.shared_prefix) instead of padding whole sequences",
    "--dataloader_persistent_workers": "r1kit's data loaders take --training.dataloader.num_workers and pin_memory; "
    "workers are started per stage",
    "--dataloader_prefetch_factor": "r1kit's data loaders take --training.dataloader.num_workers and pin_memory; "
    "each worker prefetches PyTorch's default",
    "--packing": "r1kit's SFT trains on prompt-completion pairs with the loss on the completion; it does not pack",
    "--report_to": "turn integrations on with monitoring.tensorboard.enabled / monitoring.wandb.enabled",
    "--warmup_steps": "warmup is a share of the steps in r1kit: --warmup_ratio (training.optimization.warmup_ratio)",
    "--max_prompt_length": "r1kit does not cut prompts (TRL 1.x no longer does either); GRPO's completion limit is "
    "--max_completion_length, and SFT, DPO and the reward model limit prompt + reply with --max_length",
    "--log_completions": "completions are always logged: RUN/completions.jsonl, and the best and worst on the console "
    "every monitoring.examples_every steps",
    "--reward_weights": "each reward's weight sits with it: --rewards.<name>.weight (e.g. --rewards.format.weight "
    "0.2) for each name of --reward_funcs",
    "--dataset_text_field": "r1kit finds the text itself: a `conversations` or `messages` column is read as chat "
    "turns (drop the flag), a `text` column as a question then <think>…</think><answer>…</answer>, or 'User: …' then "
    "'Assistant: …' (dataset.format text); another text column is renamed to `text` with dataset.columns",
    # TRL's PPO, RLOO and DPO trainers (the RLHF notebook's flags)
    "--num_mini_batches": "r1kit's PPO sets its minibatches by size: --ppo.minibatch_size rollouts each, over "
    "--ppo.ppo_epochs passes",
    "--total_episodes": "r1kit's PPO counts steps: --ppo.max_steps steps of --ppo.prompts_per_step prompts (the "
    "episodes are their product)",
    "--kl_estimator": "r1kit's PPO penalises each token's log-ratio to the start model (k1) times --ppo.kl_coef "
    "(--ppo.adaptive_kl true to steer it to --ppo.target_kl)",
    "--whiten_rewards": "r1kit's PPO whitens advantages, not rewards: --ppo.whiten_advantages",
    "--rpo_alpha": "r1kit's DPO has no RPO term (an NLL loss on the chosen reply); --dpo.loss_type picks TRL's loss",
    "--precompute_ref_log_probs": "r1kit's DPO computes the reference log-probs as it trains (under LoRA, the start "
    "model is the model with its adapter off)",
}


@dataclass(frozen=True)
class StrategyFlag:
    """TRL's `--*_strategy` flags. r1kit counts in optimizer steps, so `steps` is its way already."""

    every: str  # the flag that sets how many steps apart
    unset: str  # what r1kit does when that flag is not given
    off: tuple[str, str] | None = None  # the key and value that turn it off (`no`); None: it cannot be turned off
    always: str = ""  # why it cannot be

    def answer(self, flag: str, value: str) -> str:
        """Why `flag value` is not an r1kit setting (`steps` and a possible `no` are set, not answered here)."""
        if value == "epoch":
            return (
                f"{flag} epoch: r1kit counts in optimizer steps, not epochs; give {self.every} with N the steps of "
                "one epoch (training rows ÷ (per-device batch × gradient accumulation × processes), times "
                "num_generations for GRPO and RLOO, whose batch counts completions)"
            )
        if value == "no":
            return f"{flag} no: {self.always}; set how often with {self.every}"
        return f"{flag} takes steps, no or epoch (got {value!r})"


_EVAL_UNSET = "every monitoring.logging_steps steps where one is set, as transformers does"
STRATEGY_FLAGS = {
    "--eval_strategy": StrategyFlag("--eval_steps N", _EVAL_UNSET, off=("evaluation.every_steps", "null")),
    "--evaluation_strategy": StrategyFlag("--eval_steps N", _EVAL_UNSET, off=("evaluation.every_steps", "null")),
    "--save_strategy": StrategyFlag(
        "--save_steps N",
        "training.checkpoint.save_steps otherwise",
        always="r1kit always checkpoints, so that a killed run resumes",
    ),
    "--logging_strategy": StrategyFlag(
        "--logging_steps N", "monitoring.logging_steps otherwise", always="r1kit's monitoring is always on"
    ),
}


def refusal(name: str) -> str | None:
    """The one-line reason a flag or dotted path is not a setting of r1kit, or None.

    >>> refusal("callbacks.comprehensive_logging.enabled").split(";")[0]
    "r1kit's monitoring is always on"
    """
    if name in PATH_ALIASES or name in FLAG_ALIASES:
        return None
    for prefix, message in REFUSED.items():
        if name == prefix or name.startswith(prefix + "."):
            return message
    return REFUSED.get(f"--{name}")  # a TRL flag written as a YAML key (`push_to_hub: true`)
