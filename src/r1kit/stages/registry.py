"""Every stage a recipe can use: kind → the module that runs it, and one line about it (the CLI's help).

A stage module has `run(ctx, inputs) -> StageOutput` (parse → load → build → train or generate → save, top to bottom)
and `main(config)`, which runs it alone as `r1kit <kind>`. Adding a stage is one module and a line in each table here. This file
imports nothing, so the config schema and the CLI can read it without loading torch.
"""

from __future__ import annotations

STAGES = {
    "cold_start": "r1kit.stages.cold_start",
    "sft": "r1kit.stages.sft",
    "grpo": "r1kit.stages.grpo",
    "rejection_sampling": "r1kit.stages.rejection_sampling",
    "sft2": "r1kit.stages.sft2",
    "distill": "r1kit.stages.distill",
    "ppo": "r1kit.stages.ppo",
    "reward_model": "r1kit.stages.reward_model",
    "dpo": "r1kit.stages.dpo",
    "rloo": "r1kit.stages.rloo",
}

ABOUT = {
    "cold_start": "build long-CoT SFT data: worked solutions converted, few-shot and direct prompting, R1-Zero "
    "outputs refined; verified, filtered, deduplicated (a dataset with kept/dropped counts)",
    "sft": "supervised fine-tuning alone (the cold start: worked solutions in <think>/<answer> format)",
    "grpo": "GRPO reinforcement learning alone, with the configured rule-based rewards",
    "rejection_sampling": "k samples per problem from a model; the best verified, well-formed, non-repetitive one kept "
    "(a dataset with acceptance rates by group: the built-in tasks' level)",
    "sft2": "SFT on accepted reasoning data mixed with general chat data (R1's second SFT)",
    "distill": "a teacher writes verified traces, a student (default: the base model) is fine-tuned on them",
    "ppo": "PPO (clipped or TRPO update) with a value head and a KL penalty; rule-based rewards, a reward model",
    "reward_model": "a reward model (scalar head) trained on preference pairs; reports held-out pairwise accuracy",
    "dpo": "Direct Preference Optimization on preference pairs (a dataset, or built offline from the model)",
    "rloo": "RLOO reinforcement learning with the configured rewards (rule-based, and a reward model if listed)",
}

# The config sections each kind reads: a change in one of them redoes the stage (and the stages after it), and
# `r1kit KIND --help` lists their keys. Every command also reads COMMON_SECTIONS: the run folder and seed (the
# pipeline adds the seed to every stage's fingerprint), evaluation and monitoring.
READS = {
    "cold_start": ("model", "prompt", "dataset", "cold_start", "filters", "rewards"),
    "sft": ("model", "prompt", "dataset", "sft"),
    "grpo": (
        "model",
        "prompt",
        "dataset",
        "rewards",
        "training",
        "grpo",
        "fast",
        "dynamic_sampling",
        "curriculum",
        "step_credit",
    ),
    "rejection_sampling": ("model", "prompt", "dataset", "rejection_sampling", "filters", "rewards"),
    "sft2": ("model", "prompt", "dataset", "sft", "sft2", "filters"),
    "distill": ("model", "prompt", "dataset", "sft", "distill", "filters", "rewards"),
    "ppo": ("model", "prompt", "dataset", "rewards", "ppo", "fast"),
    "reward_model": ("model", "prompt", "dataset", "preferences", "reward_model", "rewards", "filters"),
    "dpo": ("model", "prompt", "dataset", "preferences", "dpo", "rewards", "filters"),
    "rloo": ("model", "prompt", "dataset", "rewards", "rloo"),
}
COMMON_SECTIONS = ("run", "evaluation", "monitoring")
# The one part of a section that a kind reads of it: the stages that judge samples verify answers as the accuracy
# reward does, each answer until rewards.verification.timeout_seconds (workers and the batch budget only set how), and
# add up no reward, so a change of the rewards GRPO uses (their list, weights) redid them, or refused a run whose first
# stage they were.
READS_PART = {
    kind: {"rewards": "verification.timeout_seconds"}
    for kind in ("cold_start", "rejection_sampling", "distill", "reward_model", "dpo")
}
# `r1kit eval` scores with the accuracy reward's verification alone (its list, weights and other rewards unread: a
# `--reward_funcs` given to it got no note)
READS_PART["eval"] = {"rewards": "verification"}
# Keys of a section it reads that a kind does not read: the stages that only sample or judge, and the reward model
# (no policy to score), have no held-out evaluation between steps (the run evaluates their models after them); the
# stages that train nothing have no adapter (a LoRA change refused a finished r1 run, as discarding its cold start).
DURING_TRAINING = ("evaluation.every_steps", "evaluation.during_training_samples")
TRAINING_ONLY = ("model.lora", "model.save_adapter")
READS_NOT = {
    "cold_start": (*DURING_TRAINING, *TRAINING_ONLY),
    "rejection_sampling": (*DURING_TRAINING, *TRAINING_ONLY),
    "reward_model": DURING_TRAINING,
    "chat": ("run.output_dir", "run.resume"),  # it writes no run folder (run.seed seeds its sampling)
    "eval": ("rewards.verification.batch_budget_seconds",),  # it waits for every answer's verdict (evaluate.py)
}

# The sections the commands that train nothing read (the accuracy reward's verification settings score eval's answers).
TOOL_READS = {
    "eval": (*COMMON_SECTIONS, "model", "prompt", "dataset", "rewards"),
    "chat": ("run", "monitoring", "model", "prompt", "chat"),
}


# Settings of how a stage runs, not of what it makes: a run continued with more threads, another cache folder,
# data-loader workers, checkpoint spacing or activations recomputed keeps its finished work (its fingerprint leaves
# them out).
HOW_IT_RUNS = {
    "model": ("threads", "cache_dir"),
    # what the data check accepts, and how many held-out problems are scored: the training rows are the same
    "dataset": ("word_answers", "max_test_samples"),
    "ppo": ("save_steps",),
    "*": ("dataloader", "checkpoint", "gradient_checkpointing"),
}


def how_it_runs(path: str) -> bool:
    """Whether the config key `path` only sets how a stage runs (HOW_IT_RUNS).

    >>> how_it_runs("model.threads"), how_it_runs("sft.checkpoint.save_steps"), how_it_runs("sft.max_steps")
    (True, True, False)
    >>> how_it_runs("dpo.gradient_checkpointing")  # the same activations, recomputed
    True
    """
    section, _, rest = path.partition(".")
    return rest.split(".")[0] in (*HOW_IT_RUNS.get(section, ()), *HOW_IT_RUNS["*"])


def sections_read(command: str) -> tuple[str, ...]:
    """Every config section `r1kit COMMAND` reads: for a stage kind, the common ones and its own; for eval and chat,
    TOOL_READS."""
    return TOOL_READS[command] if command in TOOL_READS else (*COMMON_SECTIONS, *READS[command])


def reads(command: str, path: str) -> bool:
    """Whether `r1kit COMMAND` (a stage kind, eval or chat) reads the config key `path` (a dotted key, or a section).

    >>> reads("sft", "sft.max_steps"), reads("sft", "grpo.temperature"), reads("sft", "monitoring.progress")
    (True, False, True)
    >>> reads("eval", "evaluation.pass_k"), reads("eval", "grpo.temperature"), reads("chat", "chat.temperature")
    (True, False, True)
    """
    unread = READS_NOT.get(command, ())
    return (
        path.split(".")[0] in sections_read(command)
        and _in_part(command, path)
        and not any(path == key or path.startswith(f"{key}.") for key in unread)
    )


def stage_reads(kind: str, path: str) -> bool:
    """Whether the key `path` shapes what a stage of `kind` makes: in its own sections (READS), not the common ones,
    nor a key of them it does not read (READS_NOT: a stage that trains nothing has no adapter).

    >>> stage_reads("cold_start", "rewards.verification.timeout_seconds"), stage_reads("cold_start", "rewards.functions")
    (True, False)
    >>> stage_reads("grpo", "rewards.functions"), stage_reads("sft", "evaluation.max_samples")
    (True, False)
    >>> stage_reads("cold_start", "model.lora.rank"), stage_reads("sft", "model.lora.rank")
    (False, True)
    """
    return path.split(".")[0] in READS[kind] and reads(kind, path)


def _in_part(command: str, path: str) -> bool:
    """Whether `path` lies in (or holds) the part of its section that `command` reads (READS_PART), where it names one.

    >>> _in_part("dpo", "rewards.verification"), _in_part("dpo", "rewards.verification.workers")
    (True, False)
    """
    section, _, rest = path.partition(".")
    part = READS_PART.get(command, {}).get(section)
    return part is None or not rest or f"{part}.".startswith(f"{rest}.") or rest.startswith(f"{part}.")


def sections_said(kind: str) -> list[str]:
    """The sections a stage of `kind` reads, each as the part it reads of it where it reads one part (READS_PART).

    >>> sections_said("dpo")[-2:]
    ['rewards.verification.timeout_seconds', 'filters']
    """
    part = READS_PART.get(kind, {})
    return [f"{section}.{part[section]}" if section in part else section for section in READS[kind]]


# What each kind leaves for later stages: a policy `model` (model_from may name it), a `dataset` (data_from), or a
# `reward_model` (rewards.reward_model.path and evaluation.reward_model may name it). The recipe check reads this, so
# a stage that can never give what a later one asks for is refused before anything trains.
MAKES = {
    "cold_start": {"dataset"},
    "sft": {"model"},
    "grpo": {"model"},
    "rejection_sampling": {"dataset"},
    "sft2": {"model"},
    "distill": {"model", "dataset"},
    "ppo": {"model"},
    "reward_model": {"reward_model"},
    "dpo": {"model"},
    "rloo": {"model"},
}

# The kinds that train on preference pairs: `preferences.dataset` when set, else pairs they build from their input
# model on the training problems. Their manifest names that data, not only the problems.
PAIR_KINDS = ("reward_model", "dpo")

# The kinds that sample rollouts and score them with rewards.functions.
ROLLOUT_KINDS = ("grpo", "ppo", "rloo")

STAGE_KINDS = tuple(STAGES)
