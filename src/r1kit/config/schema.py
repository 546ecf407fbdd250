"""The one configuration schema for every r1kit command: types, defaults, ranges and help text live here only.

YAML files, profiles, environment variables and the command line only set values of these fields
(see `r1kit.config.sources`). Each stage reads its own section.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Collection, Iterator, Mapping
from typing import Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from r1kit import distributed
from r1kit.prompts import DEFAULT_SYSTEM_PROMPT
from r1kit.rewards.plugins import is_plugin, lacks_kwargs, load_plugin, misfit_parameter, short_name
from r1kit.rewards.registry import KNOWN_REWARDS
from r1kit.stages.registry import MAKES, PAIR_KINDS, STAGE_KINDS


def first_problem(error: ValidationError) -> tuple[str, str, Any]:
    """A validation error's first problem: its dotted key ('' for a rule across sections), message and value."""
    problem = error.errors()[0]
    key = ".".join(str(part) for part in problem["loc"] if not isinstance(part, int))
    return key, problem["msg"].removeprefix("Value error, "), problem.get("input")


class Section(BaseModel):
    # forbid: a misspelt key is an error, not a silently ignored value. No inf/nan: a learning rate or weight of inf
    # would otherwise pass validation and blow up mid-run.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, coerce_numbers_to_str=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_switch_as_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        """A YAML `true` or `false` where a number goes (`learning_rate: true` was 1.0, `seed: false` 0): pydantic
        reads a bool as 1 or 0; the command line refuses the same words."""
        kinds = set(get_args(cls.model_fields[info.field_name].annotation)) - {type(None)}
        kinds = kinds or {cls.model_fields[info.field_name].annotation}
        if isinstance(value, bool) and kinds <= {int, float}:
            raise ValueError(f"is {str(value).lower()}, not a number")
        if kinds == {str} and isinstance(value, str) and not value.strip() and _optional(cls, info.field_name):
            # an unset shell variable (`--dataset.test_split "$HELD"`): read as unset, it fell back to a default
            # (a held-out share cut from the training rows) without a word
            raise ValueError("is empty; give it a value, or leave it out (null) for its default")
        return value


def _optional(section: type[BaseModel], name: str) -> bool:
    return type(None) in get_args(section.model_fields[name].annotation)


# ---------------------------------------------------------------------------------------------------- run & model


def home_expanded(path: str | None) -> str | None:
    """`~/x` as the user's home folder: the shell leaves `--out=~/x`, quoted paths and variables' `~` as written.

    >>> home_expanded("runs/a"), home_expanded(None), home_expanded("~/x") == os.path.expanduser("~/x")
    ('runs/a', None, True)
    """
    return os.path.expanduser(path) if path and path.startswith("~") else path


class RunConfig(Section):
    output_dir: str | None = Field(
        None,
        description="Run folder (checkpoints, metrics, evals, report). Default: runs/<timestamp> (-2, -3, … for runs "
        "started in the same second).",
    )
    seed: int = Field(42, ge=0, le=2**32 - 1, description="Seed for data order, sampling and initialisation.")
    resume: bool = Field(
        False, description="Continue from the newest complete checkpoint in the run folder instead of starting over."
    )

    @field_validator("output_dir")
    @classmethod
    def _home_expanded_folder(cls, folder: str | None) -> str | None:
        return home_expanded(folder)  # an empty one is refused as every optional text is (Section)


class LoraConfig(Section):
    enabled: bool = Field(True, description="Train LoRA adapters (PEFT) instead of every weight.")
    rank: int = Field(16, ge=1, description="LoRA rank r.")
    alpha: int = Field(32, ge=1, description="LoRA alpha (the update is scaled by alpha / rank).")
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input (not in PPO/TRPO, which train without dropout)."
    )
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Module names that get adapters; [all-linear]: every linear layer but the output head (PEFT's). "
        "An output head tied to the input embeddings (SmolLM2's) is refused: the saved model merges its adapter.",
    )


class ModelConfig(Section):
    name: str = Field(
        "smollm2-135m",
        description="Model alias (smollm2-135m: the embedded SmolLM2-135M-Instruct; tiny-random: a tiny test model), "
        "a Hugging Face hub id, or a local folder.",
    )
    revision: str | None = Field(
        None, description="Hub revision (branch, tag or commit) of model.name, a hub repo (a local folder has none)."
    )
    gguf_file: str | None = Field(
        None,
        description="GGUF file to load from model.name (a hub repo or a folder), converted once into the cache. "
        "A path to a .gguf file works as model.name directly.",
    )
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] = Field(
        "auto", description="Attention kernel; auto lets transformers pick (sdpa where available)."
    )
    tf32: bool = Field(False, description="Allow TF32 matmuls (NVIDIA Ampere or newer; CUDA only).")
    save_adapter: bool = Field(
        False, description="Also save each LoRA stage's adapter alone in RUN/<stage>/adapter (loads on its base)."
    )
    trust_remote_code: bool = Field(
        False, description="Allow a hub model to run its own Python code. Off: only ask for it if you trust the repo."
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="Device; auto picks cuda → mps → cpu.")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="Numeric precision; auto picks bf16 where the hardware runs it natively, else fp16/fp32."
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for torch; default: the real CPU quota (a launched process's share of it), or "
        "OMP_NUM_THREADS where fewer.",
    )
    cache_dir: str | None = Field(
        None, description="Where converted built-in models are cached. Default: $R1KIT_CACHE or ~/.cache/r1kit."
    )
    chat_template: str | None = Field(
        None, description="Chat template to use instead of the tokenizer's: 'chatml' or a Jinja template string."
    )
    lora: LoraConfig = Field(default_factory=LoraConfig)

    @field_validator("name")
    @classmethod
    def _home_expanded(cls, name: str) -> str:
        if not name.strip():  # an unset shell variable (--model "$MODEL"): read as the current folder
            raise ValueError("is empty; name a built-in model, a model folder or a hub model id")
        return home_expanded(name)

    @field_validator("chat_template")
    @classmethod
    def _valid_jinja(cls, template: str | None) -> str | None:
        return chat_template_checked(template)


def chat_template_checked(template: str | None) -> str | None:
    """A chat_template setting as given: None, `chatml` (any case: the built-in one), or a valid Jinja template."""
    if template is None or template.strip().lower() == "chatml":  # ChatML, chatml: the built-in one
        return None if template is None else "chatml"
    if "{{" not in template and "{%" not in template:  # a constant: every prompt would be this text
        raise ValueError(
            f"{template[:60]!r} is neither chatml nor a Jinja chat template (it writes no message: no {{{{ }}}} "
            "or {% %} in it); give the template's text, not a file's name (in YAML a block under `|`)"
        )
    check_jinja(template)
    return template


def check_jinja(template: str) -> None:
    """Raise ValueError (one line) when `template` is not a valid Jinja chat template: compiled as transformers
    compiles it (its sandbox, with loop controls and its `{% generation %}` tag, which a plain Jinja parse refused)."""
    from jinja2 import TemplateSyntaxError
    from transformers.utils.chat_template_utils import _compile_jinja_template

    try:
        _compile_jinja_template(template)
    except TemplateSyntaxError as error:
        raise ValueError(f"not a valid Jinja chat template: {error.message} (line {error.lineno})") from None


class ChatConfig(Section):
    """`r1kit chat`: how replies are generated."""

    max_new_tokens: int = Field(256, ge=1, description="Longest reply in tokens.")
    temperature: float = Field(0.0, ge=0.0, description="Sampling temperature; 0 answers greedily.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling threshold (with temperature > 0).")
    top_k: int | None = Field(
        None, ge=0, description="Sample only from the k likeliest tokens (with temperature > 0); 0 or null: no limit."
    )
    raw: bool = Field(
        False,
        description="Send the text as it is, without the chat template or system prompt (for base models and "
        "prompt experiments).",
    )
    history: bool = Field(
        True,
        description="In an interactive chat, send the earlier turns with each question, each reply without its "
        "thinking (as DeepSeek-R1 is used: its reasoning is not fed back); the oldest go first where the model's "
        "context would overflow, and /clear forgets them. False asks each question alone, as r1kit's stages train "
        "and evaluate.",
    )


class PromptConfig(Section):
    system: str = Field(DEFAULT_SYSTEM_PROMPT, description="System prompt for training, evaluation and chat.")


# ---------------------------------------------------------------------------------------------------------- data


class SplitConfig(Section):
    test_size: float = Field(0.1, gt=0.0, lt=1.0, description="Share of rows held out for evaluation.")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="Seed of the train / held-out split.")


class SyntheticConfig(Section):
    num_examples: int = Field(3000, ge=10, description="Rows generated for a built-in task (before the split).")
    seed: int = Field(1234, ge=0, le=2**32 - 1, description="Seed of the built-in task generator.")


def one_column_each(columns: dict[str, str]) -> dict[str, str]:
    """A `columns` renaming that gives each new name to one column (two file columns renamed to one: which would it
    read?)."""
    twice = sorted({new for new in columns.values() if list(columns.values()).count(new) > 1})
    if twice:
        renamed = ", ".join(f"{old} → {new}" for old, new in columns.items() if new in twice)
        raise ValueError(f"renames two columns to one name ({renamed}); keep one of them")
    return columns


class DatasetConfig(Section):
    name: str = Field(
        "mixed",
        description="Built-in task (mixed: arithmetic and word problems, half each; arithmetic; word_problems), a "
        "local .json/.jsonl/.parquet/.csv file, or a hub dataset id.",
    )
    subset: str | None = Field(None, description="Hub dataset configuration name.")
    train_split: str = Field("train", description="Split to train on (hub datasets).")
    test_split: str | None = Field(
        None,
        description="The held-out set, instead of one carved out of the training rows: a file (.jsonl/.json/"
        ".parquet/.csv) for local data or a built-in task, a split name (or a file) for a hub dataset.",
    )
    format: Literal[
        "auto",
        "r1kit",
        "gsm8k",
        "numina",
        "sharegpt",
        "messages",
        "dolly",
        "alpaca",
        "prompt_completion",
        "prompt_solution",
        "text",
    ] = Field(
        "auto",
        description="Row format; auto detects it from the column names. A chat reply (messages, prompt_completion) "
        "in <think>…</think><answer>…</answer> form is a worked solution with its gold answer; text: a question then "
        "that, or a 'User: …' turn then 'Assistant: …', in one string.",
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Columns renamed before the format is read, {file column: format column}: e.g. {problem: "
        "question, answer: solution} makes a file of problems and final answers r1kit's question + solution.",
    )
    word_answers: bool = Field(
        False,
        description="Gold answers that are single words (yes/no, a weekday) are the answers: without it, data whose "
        "first gold answers are all words is refused as a column of labels (dataset.columns pointing elsewhere).",
    )
    split: SplitConfig = Field(default_factory=SplitConfig)
    max_train_samples: int | None = Field(
        None, ge=1, description="Keep at most this many training rows (a seeded draw, in the data's order)."
    )
    max_test_samples: int | None = Field(
        None,
        ge=1,
        description="Keep at most this many held-out rows (a test_split file's are drawn with dataset.split.seed: a "
        "file may be sorted by level; a file given to `r1kit eval --data` keeps its first rows).",
    )
    group_column: str = Field(
        "level",
        description="Column that groups problems (a difficulty level, a task): held-out accuracy and acceptance rates "
        "are broken down by it; data without it is not grouped.",
    )
    on_bad_row: Literal["error", "skip"] = Field(
        "error", description="A row missing a needed field: stop with an error naming it, or skip and count it."
    )
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)

    @field_validator("name")
    @classmethod
    def _named(cls, name: str) -> str:
        if not name.strip():  # an unset shell variable (--data "$DATA"): read as the current folder
            raise ValueError("is empty; name a built-in task, a data file or a hub dataset id")
        return name

    _one_column_each = field_validator("columns")(one_column_each)


# ------------------------------------------------------------------------------------------------------- rewards


class RewardParams(Section):
    weight: float = Field(1.0, description="Weight of this reward in the total reward.")


class VerificationConfig(Section):
    """How `accuracy` and `cosine` run math-verify: in worker processes, with a hard deadline per item and a time
    budget per batch (a GRPO step's rewards)."""

    timeout_seconds: float = Field(
        2.0, gt=0.0, description="Hard time limit per verification; past it the item scores None (excluded), counted."
    )
    batch_budget_seconds: float = Field(
        4.0,
        gt=0.0,
        description="Time limit for verifying a whole batch; items unfinished then score None (excluded), counted.",
    )
    workers: int = Field(
        2, ge=1, description="Verifier worker processes, used in parallel (one past its limit is replaced)."
    )


class ReasoningStepsParams(RewardParams):
    target_steps: int = Field(3, ge=1, description="Indicator count that earns the full reward.")


class CosineParams(RewardParams):
    min_value_wrong: float = Field(-0.5, description="Reward of the shortest wrong answer.")
    max_value_wrong: float = Field(-0.1, description="Reward of a wrong answer at max_len.")
    min_value_correct: float = Field(0.8, description="Reward of a correct answer at max_len.")
    max_value_correct: float = Field(1.0, description="Reward of the shortest correct answer.")
    max_len: int = Field(1000, ge=1, description="Length (characters) where the cosine schedule ends.")

    @model_validator(mode="after")
    def _ordered(self) -> CosineParams:
        if self.min_value_wrong > self.max_value_wrong:
            raise ValueError("min_value_wrong must be <= max_value_wrong")
        if self.min_value_correct > self.max_value_correct:
            raise ValueError("min_value_correct must be <= max_value_correct")
        return self


class RepetitionPenaltyParams(RewardParams):
    ngram_size: int = Field(
        3,
        ge=1,
        description="n of the repeated n-grams, of `unit` (of 3n characters in scripts without spaces).",
    )
    max_penalty: float = Field(-0.1, le=0.0, description="Penalty (<= 0) of a completion that is all repetition.")
    unit: Literal["words", "tokens"] = Field(
        "words",
        description="words: split on white space, as the R1 tutorial and open-r1 count them; tokens: the completion's "
        "token ids in training (a number's digits, one token each in many tokenizers, repeat as tokens: 3333333).",
    )


class LanguageConsistencyParams(RewardParams):
    language: str = Field(
        "auto", description="ISO 639-1 code the completion should be written in; auto: the prompt's language."
    )

    @field_validator("language")
    @classmethod
    def _as_the_language_detector_names_it(cls, language: str) -> str:
        return language_code(language)


def language_code(language: str) -> str:
    """A language setting as the language detector names languages: fastText's lower-case code without region
    ("EN" or "zh-CN" matched no completion and no trace).

    >>> language_code("en-US"), language_code("Auto")
    ('en', 'auto')
    """
    code = re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]
    if not re.fullmatch(r"auto|[a-z]{2,3}", code):
        raise ValueError(f"{language!r} is not a language code; give an ISO 639-1 code (en, zh, fr) or auto")
    return code


class OverlongParams(RewardParams):
    max_length: int | None = Field(
        None,
        ge=1,
        description="Length limit in tokens; default: the stage's completion limit (grpo.max_completion_length, "
        "rloo.max_completion_length, ppo.max_new_tokens).",
    )
    soft_cache: int = Field(
        16, ge=1, description="Tokens before the limit where the penalty ramps linearly from 0 to -1."
    )


class RewardModelParams(RewardParams):
    path: str | None = Field(
        None,
        description="The reward model: a folder or hub id of a sequence-classification model, or the name of an "
        "earlier recipe stage (a reward_model stage), resolved to that stage's model by the stage that builds "
        "its rewards.",
    )
    batch_size: int = Field(8, ge=1, description="Completions scored together.")
    max_length: int = Field(
        1024, ge=16, description="Longest prompt + completion scored, in tokens (longer ones keep their end)."
    )


class PluginRewardParams(RewardParams):
    """A plug-in reward's parameters: `weight`, and any others, passed to its function as keyword arguments."""

    model_config = ConfigDict(**Section.model_config | {"extra": "allow"})


TOTAL_REWARD = "total"  # rewards/total/*: the weighted sum of the rewards, logged beside each reward's own


# Other names of r1kit's rewards (the tutorial's and TRL's functions, less their `_reward`): not near in spelling.
_REWARD_NAMES_ELSEWHERE = {
    # the RL + SFT pipeline's "length penalty", which weighs "the length of the response relative to its accuracy"
    "length_penalty": "cosine",
    "soft_overlong_punishment": "overlong",  # TRL's get_soft_overlong_punishment
    "think_format": "format",  # TRL's think_format_reward
    "cosine_scaled": "cosine",  # the tutorial's get_cosine_scaled_reward
    "len": "cosine",  # open-r1's len_reward (Kimi 1.5's length reward)
}


def _reward_meant(name: str) -> str | None:
    """The r1kit reward an unknown name most likely means, or None.

    >>> _reward_meant("accuracy_reward"), _reward_meant("get_cosine_scaled_reward"), _reward_meant("formatt")
    ('accuracy', 'cosine', 'format')
    """
    stem = name.removeprefix("get_").removesuffix("_reward")
    if stem in _REWARD_NAMES_ELSEWHERE:
        return _REWARD_NAMES_ELSEWHERE[stem]
    close = difflib.get_close_matches(stem, KNOWN_REWARDS, n=1, cutoff=0.8)
    return close[0] if close else None


class RewardsConfig(Section):
    """The rewards GRPO, RLOO and PPO add up. Besides the built-ins, `functions` takes plug-ins as `module:function`
    (a function with TRL's reward signature); a plug-in's parameters sit under its spec or its function's name."""

    model_config = ConfigDict(**Section.model_config | {"extra": "allow"})  # plug-in parameters, checked below

    functions: list[str] = Field(
        default_factory=lambda: ["accuracy", "format", "tag_count"],
        description=f"Rewards used by GRPO, RLOO and PPO, from: {', '.join(KNOWN_REWARDS)}; or your own as module:function.",
    )
    plugin_timeout_seconds: float = Field(
        30.0, gt=0.0, description="Time limit of one call of a plug-in reward; past it the batch scores None, counted."
    )
    verification: VerificationConfig = Field(default_factory=VerificationConfig)
    accuracy: RewardParams = Field(default_factory=RewardParams)
    format: RewardParams = Field(default_factory=lambda: RewardParams(weight=0.5))
    tag_count: RewardParams = Field(default_factory=lambda: RewardParams(weight=0.25))
    reasoning_steps: ReasoningStepsParams = Field(default_factory=ReasoningStepsParams)
    arithmetic_steps: RewardParams = Field(default_factory=lambda: RewardParams(weight=0.5))
    cosine: CosineParams = Field(default_factory=CosineParams)
    repetition_penalty: RepetitionPenaltyParams = Field(default_factory=RepetitionPenaltyParams)
    language_consistency: LanguageConsistencyParams = Field(default_factory=LanguageConsistencyParams)
    overlong: OverlongParams = Field(default_factory=OverlongParams)
    reward_model: RewardModelParams = Field(default_factory=RewardModelParams)

    @field_validator("functions")
    @classmethod
    def _known_rewards(cls, names: list[str]) -> list[str]:
        if not names:
            raise ValueError(f"needs at least one reward; valid: {', '.join(KNOWN_REWARDS)}")
        unknown = [n for n in names if n not in KNOWN_REWARDS and not is_plugin(n)]
        if unknown:
            near = [_reward_meant(n) for n in unknown]
            # one unknown name: "did you mean 'format'?"; several: each with its guess
            guesses = [
                f"{close!r}" if len(unknown) == 1 else f"{close!r} for {n!r}"
                for n, close in zip(unknown, near, strict=True)
                if close
            ]
            raise ValueError(
                f"unknown reward {', '.join(map(repr, unknown))}"
                + (f" (did you mean {', '.join(guesses)}?)" if guesses else "")
                + f"; valid: {', '.join(KNOWN_REWARDS)}, or your own as module:function"
            )
        for spec in filter(is_plugin, names):
            load_plugin(spec)  # a missing module or function is a config error now, before any model loads
        taken = [n for n in names if is_plugin(n) and short_name(n) in (*cls.model_fields, TOTAL_REWARD)]
        if taken:  # its parameters and statistics would be those of the built-in setting of that name
            raise ValueError(
                f"plug-in {taken[0]!r}: its function's name is r1kit's own rewards.{short_name(taken[0])}, where its "
                "parameters and statistics go (`total`: the weighted sum's statistics); rename the function"
            )
        short = [short_name(n) for n in names]
        if len(set(short)) != len(short):
            raise ValueError("lists a reward twice (plug-ins count by their function's name)")
        return names

    @model_validator(mode="after")
    def _plugin_params(self) -> RewardsConfig:
        plugins = {short_name(n): n for n in self.functions if is_plugin(n)}
        for spec in plugins.values():
            if problem := lacks_kwargs(spec):
                raise ValueError(f"rewards.functions: {problem}")
        for key, value in list((self.model_extra or {}).items()):
            if key not in plugins and key not in plugins.values():
                close = difflib.get_close_matches(key, [*type(self).model_fields, *plugins], n=1, cutoff=0.8)
                raise ValueError(
                    f"{key!r} is neither a setting nor a plug-in reward listed in rewards.functions (plug-ins: "
                    f"{', '.join(plugins) or 'none'})" + (f"; did you mean {close[0]!r}?" if close else "")
                )
            if not isinstance(value, dict | PluginRewardParams):
                raise ValueError(f"rewards.{key}: a plug-in's parameters are a mapping (weight: …, your_param: …)")
            try:
                self.model_extra[key] = PluginRewardParams.model_validate(value)
            except ValidationError as error:  # its own key: pydantic's would be rewards.weight, no plug-in named
                field, message, got = first_problem(error)
                raise ValueError(f"rewards.{key}.{field}: {message} (got {got!r})") from None
            misfit = misfit_parameter(plugins.get(key, key), list(self.model_extra[key].model_extra or {}))
            if misfit:
                raise ValueError(f"rewards.{key}: {misfit}")
        for short, spec in plugins.items():  # one of the two would be left unread, without a word
            if short != spec and short in self.model_extra and spec in self.model_extra:
                raise ValueError(
                    f"rewards.{short} and rewards.{spec} both set the parameters of plug-in {spec}; keep one"
                )
        return self

    @model_validator(mode="after")
    def _reward_model_has_a_path(self) -> RewardsConfig:
        if "reward_model" in self.functions and not self.reward_model.path:
            raise ValueError(
                "rewards.functions lists reward_model but rewards.reward_model.path is not set: give a reward model "
                "folder or the name of an earlier reward_model stage"
            )
        return self

    def params(self, name: str) -> RewardParams:
        """The parameters of a built-in reward or a plug-in (by its spec)."""
        if not is_plugin(name):
            return getattr(self, name)
        extra = self.model_extra or {}
        return extra.get(name) or extra.get(short_name(name)) or PluginRewardParams()


# ------------------------------------------------------------------------------------------------------ training


class OptimizationConfig(Section):
    learning_rate: float = Field(1e-5, gt=0.0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    warmup_ratio: float = Field(
        0.0, ge=0.0, lt=1.0, description="Share of steps with linear warm-up (none under lr_scheduler constant)."
    )
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = Field(
        "constant_with_warmup",
        description="Learning-rate schedule after warm-up; constant has no warm-up (transformers' constant, which "
        "reads no warmup_ratio).",
    )
    max_grad_norm: float = Field(1.0, gt=0.0, description="Gradient-norm clipping threshold.")


class BatchSizeConfig(Section):
    per_device_train: int = Field(8, ge=1, description="Sequences per device per optimizer micro-step.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-steps accumulated per optimizer step.")


class DataloaderConfig(Section):
    num_workers: int = Field(0, ge=0, description="Data-loader worker processes (0: load in the training process).")
    pin_memory: bool = Field(True, description="Pin host memory for faster copies to a GPU (no effect on CPU).")


class CheckpointConfig(Section):
    save_steps: int = Field(25, ge=1, description="Save a resumable checkpoint every N optimizer steps.")
    save_total_limit: int = Field(2, ge=1, description="Keep only the newest N checkpoints.")
    keep_every: int | None = Field(
        None,
        ge=1,
        description="Also keep every checkpoint whose step is a multiple of N, past save_total_limit (milestones).",
    )


def _epochs(data: str):
    return Field(
        None,
        gt=0.0,
        description=f"Passes over {data}. Setting it trains by epochs: a max_steps from a lower layer (or the "
        "default) gives way. Neither set: one pass.",
    )


def _pairs_recomputed():
    return Field(
        True,
        description="Recompute activations in the backward pass: a batch of pairs holds each pair's chosen and "
        "rejected sides, padded to the longest (SmolLM2-135M on built-in pairs, 2 CPU cores: the reward model's "
        "RSS while training 10.5 → 4.4 GB, DPO's 10.9 → 4.5 GB, the same losses; steps 25–45% slower). TRL's default "
        "too. A model that cannot recompute them trains without.",
    )


def _time_limit():
    return Field(
        None,
        gt=0.0,
        description="Stop training after this many minutes of steps (kept across resume), saving a checkpoint and the "
        "model as at that step: the same budget for every variant compared. null: no limit.",
    )


class SFTConfig(Section):
    """Supervised fine-tuning: the `sft`, `sft2` and `distill` stages train with these settings."""

    epochs: float | None = _epochs("the SFT data")
    max_steps: int | None = Field(60, ge=1, description="Optimizer steps (null: train by epochs).")
    time_limit_minutes: float | None = _time_limit()
    max_length: int = Field(256, ge=16, description="Longest SFT sequence in tokens (prompt + completion).")
    optimization: OptimizationConfig = Field(
        default_factory=lambda: OptimizationConfig(learning_rate=1e-3, warmup_ratio=0.05, lr_scheduler="cosine")
    )
    batch_size: BatchSizeConfig = Field(default_factory=BatchSizeConfig)
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass: less memory for long traces, ~20% slower."
    )
    dataloader: DataloaderConfig = Field(default_factory=DataloaderConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)


class TrainingConfig(Section):
    """The reinforcement-learning stage (GRPO)."""

    epochs: float | None = _epochs("the prompts")
    max_steps: int | None = Field(30, ge=1, description="Optimizer steps (null: train by epochs).")
    time_limit_minutes: float | None = _time_limit()
    optimization: OptimizationConfig = Field(default_factory=lambda: OptimizationConfig(learning_rate=5e-5))
    # 16 completions per step: 2 prompts × 8 generations
    batch_size: BatchSizeConfig = Field(default_factory=lambda: BatchSizeConfig(per_device_train=16))
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass: less memory, ~20% slower."
    )
    dataloader: DataloaderConfig = Field(default_factory=DataloaderConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)


class GRPOConfig(Section):
    """Sampling and loss of GRPO. Every key is passed as is to TRL's GRPOConfig, so the names are TRL's."""

    num_generations: int = Field(8, ge=2, description="Completions sampled per prompt (the GRPO group).")
    generation_batch_size: int | None = Field(
        None,
        ge=1,
        description="Completions generated at once and then trained on over several optimizer micro-steps; "
        "default: per_device_train × processes × gradient_accumulation_steps.",
    )
    max_completion_length: int = Field(96, ge=1, description="Longest completion in tokens.")
    temperature: float = Field(
        0.7,
        gt=0.0,
        description="Sampling temperature of the rollouts (below 1: closer to the greedy answers evaluated).",
    )
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling threshold of the rollouts.")
    top_k: int = Field(0, ge=0, description="Sample rollouts from the k likeliest tokens only; 0: no limit.")
    min_p: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Leave out of the rollouts' sampling the tokens less likely than min_p × the likeliest one's "
        "probability; null or 0: off.",
    )
    repetition_penalty: float = Field(
        1.0,
        gt=0.0,
        description="`generate`'s repetition penalty of the rollouts (above 1: discourages tokens already in the "
        "prompt or completion); 1: none. Any other value samples with TRL's generation, not r1kit's sampler.",
    )
    beta: float = Field(0.0, ge=0.0, description="KL coefficient; 0 loads no reference model (faster).")
    epsilon: float = Field(0.2, gt=0.0, description="PPO-style clipping range.")
    epsilon_high: float | None = Field(
        None,
        gt=0.0,
        description="Upper clipping range, when it differs from epsilon (DAPO's clip-higher: 0.28 in the paper, to "
        "keep rare tokens from being clipped out); null: epsilon. Like epsilon it only acts where an update reuses "
        "rollouts (num_iterations > 1, or a generation batch spanning several optimizer steps).",
    )
    loss_type: Literal["grpo", "bnpo", "dr_grpo", "dapo"] = Field("dapo", description="TRL GRPO loss variant.")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group",
        description="Divide advantages by the reward std of the group, of the batch, or not at all (TRL's older "
        "true/false read as group/none).",
    )
    num_iterations: int = Field(1, ge=1, description="Policy updates per generated batch (μ).")
    mask_truncated_completions: bool = Field(
        False, description="Leave completions cut at the length limit out of the loss."
    )
    use_vllm: bool = Field(False, description="Generate with vLLM (CUDA only).")
    vllm_mode: Literal["colocate", "server"] = Field("colocate", description="vLLM inside the trainer or a server.")
    vllm_gpu_memory_utilization: float = Field(
        0.3, gt=0.0, le=1.0, description="Share of GPU memory vLLM may take in colocate mode."
    )

    @model_validator(mode="after")
    def _clip_higher_not_lower(self) -> GRPOConfig:
        # An upper clip below the lower one is almost surely epsilon_high mistaken for a separate range (TRL accepts
        # it and clips the tokens worth raising hardest): DAPO's clip-higher raises it, 0.28 over 0.2.
        if self.epsilon_high is not None and self.epsilon_high < self.epsilon:
            raise ValueError(
                f"epsilon_high ({self.epsilon_high}) must be >= epsilon ({self.epsilon}): it is the upper clip range "
                "(DAPO's clip-higher: 0.28 with epsilon 0.2); null uses epsilon"
            )
        return self

    def sampling_options(self) -> dict[str, Any]:
        """How the rollouts restrict the sampled distribution, as `generate` names it."""
        return {
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "repetition_penalty": self.repetition_penalty,
        }

    @field_validator("scale_rewards", mode="before")
    @classmethod
    def _scale_rewards_as_trl_reads_a_bool(cls, value: Any) -> Any:
        return {"true": "group", "false": "none"}.get(str(value).strip().lower(), value)


class PPOConfig(Section):
    """The `ppo` stage: r1kit's own PPO (clipped surrogate or a TRPO natural-gradient step) with a value head, a KL
    penalty to the input model, and the `rewards` section's rule-based rewards plus an optional reward model."""

    max_steps: int = Field(20, ge=1, description="PPO steps: each samples a rollout batch and updates on it.")
    prompts_per_step: int = Field(8, ge=1, description="Prompts per rollout batch (one completion each).")
    ppo_epochs: int = Field(2, ge=1, description="Passes over each rollout batch (policy and value updates).")
    minibatch_size: int = Field(
        4,
        ge=1,
        description="Completions per optimizer step within a pass; under policy_update trpo, completions per forward "
        "(its memory follows it).",
    )
    learning_rate: float = Field(
        5e-5,
        gt=0.0,
        description="AdamW learning rate of the policy (LoRA) parameters; unused by policy_update trpo, whose step "
        "the trust region (trpo_max_kl) sizes.",
    )
    value_learning_rate: float = Field(
        5e-4, gt=0.0, description="AdamW learning rate of the value head (a fresh linear layer, so higher)."
    )
    max_new_tokens: int = Field(96, ge=1, description="Longest sampled completion in tokens.")
    missing_eos_penalty: float | None = Field(
        None,
        ge=0.0,
        description="Subtracted from the reward of a completion that ends without an end token (cut at "
        "max_new_tokens), as TRL's PPO does: a reward model may score a rambling reply well.",
    )
    temperature: float = Field(0.7, gt=0.0, description="Sampling temperature (log-probs use the same scaling).")
    gamma: float = Field(1.0, ge=0.0, le=1.0, description="Discount factor of GAE.")
    lam: float = Field(0.95, ge=0.0, le=1.0, description="GAE lambda (bias/variance trade-off of advantages).")
    cliprange: float = Field(
        0.2,
        gt=0.0,
        description="Clip range of the probability ratio in the surrogate; unused by policy_update trpo, whose step "
        "is bounded by trpo_max_kl.",
    )
    cliprange_value: float = Field(0.2, gt=0.0, description="Clip range of value predictions around the old ones.")
    vf_coef: float = Field(
        0.1,
        ge=0.0,
        description="Weight of the value loss in the clipped objective; under policy_update trpo it only weighs the "
        "logged loss (the value head is fit on its own loss).",
    )
    kl_coef: float = Field(0.05, ge=0.0, description="Per-token KL penalty coefficient (the start value if adaptive).")
    adaptive_kl: bool = Field(
        False, description="Adapt kl_coef toward target_kl (Ziegler et al. 2019); false: a fixed coefficient."
    )
    target_kl: float = Field(6.0, gt=0.0, description="Adaptive KL target: KL to the input model per completion.")
    kl_horizon: int = Field(
        10000,
        ge=1,
        description="Adaptive KL horizon in completions (larger: slower changes): a step moves kl_coef by at most "
        "±0.2 · prompts_per_step / kl_horizon, so over a run by about e^±0.2 where it is the run's completions.",
    )
    max_grad_norm: float = Field(1.0, gt=0.0, description="Gradient-norm clipping threshold.")
    whiten_advantages: bool = Field(True, description="Normalise advantages to mean 0, std 1 over the batch.")
    policy_update: Literal["clip", "trpo"] = Field(
        "clip",
        description="clip: PPO's clipped surrogate with AdamW; trpo: one natural-gradient step per rollout batch "
        "(conjugate gradient on Fisher-vector products, a KL-bounded line search); the value head uses AdamW.",
    )
    trpo_max_kl: float = Field(0.01, gt=0.0, description="TRPO trust region: largest mean KL(old‖new) per token.")
    trpo_damping: float = Field(0.1, ge=0.0, description="Damping added to the Fisher matrix (F + damping·I).")
    trpo_cg_iters: int = Field(10, ge=1, description="Conjugate-gradient iterations for the natural gradient.")
    trpo_fisher_fraction: float = Field(
        0.25,
        gt=0.0,
        le=1.0,
        description="Share of the rollout batch (every k-th completion, at least one) the Fisher-vector products "
        "use: each is a double backward, the bulk of a TRPO step's time.",
    )
    trpo_backtrack_ratio: float = Field(0.5, gt=0.0, lt=1.0, description="Line-search step shrink factor.")
    trpo_max_backtracks: int = Field(10, ge=0, description="Line-search shrinks tried before giving up the step.")
    save_steps: int = Field(10, ge=1, description="Save a resumable checkpoint every N steps (the newest 2 kept).")

    @model_validator(mode="after")
    def _adaptive_kl_has_a_start(self) -> PPOConfig:
        # The controller multiplies the coefficient: from 0 it stays 0, and the run has no KL penalty at all
        if self.adaptive_kl and self.kl_coef == 0:
            raise ValueError(
                "kl_coef 0 with adaptive_kl true: the adaptive coefficient scales its start value, so it would stay 0 "
                "(no KL penalty); give a start value (0.05) or set adaptive_kl false"
            )
        # A KL below target multiplies it by 1 - 0.2 · prompts_per_step / kl_horizon: 0 or less turns the penalty off
        # for good, or into a reward for moving away from the input model
        if self.adaptive_kl and self.kl_horizon <= 0.2 * self.prompts_per_step:
            raise ValueError(
                f"kl_horizon {self.kl_horizon} with adaptive_kl true and prompts_per_step {self.prompts_per_step}: "
                "each step may shrink the coefficient by 0.2 · prompts_per_step / kl_horizon, so it would reach 0 or "
                f"turn negative (a reward for leaving the input model); give kl_horizon above "
                f"{0.2 * self.prompts_per_step:g} (TRL's default is 10000)"
            )
        return self


class DynamicSamplingConfig(Section):
    """DAPO's dynamic sampling for GRPO."""

    max_retries: int = Field(
        0,
        ge=0,
        description="Replace prompt groups whose completions all got the same reward (zero advantage: no learning "
        "signal) by fresh prompts, generating up to this many extra rounds per batch; 0: off.",
    )


class StepCreditConfig(Section):
    """Per-token credit from checked arithmetic steps for GRPO: DeepSeekMath's process supervision (Shao et al.
    2024, §4.1.3) with a rule-based step checker (`r1kit.rewards.step_credit`) in place of a process reward model."""

    weight: float = Field(
        0.0,
        ge=0.0,
        description="Weight of the process advantage added to each token's outcome advantage: every arithmetic "
        "equality in the thinking is a step rewarded 1 if it holds and 0 if not, normalised over the steps of its "
        "prompt's group, "
        "summed from each token over the steps at or after it; 0: off (outcome rewards only).",
    )


class CurriculumConfig(Section):
    """A difficulty curriculum for GRPO from pass rates: the prompts the model always or never solves teach nothing
    (every completion gets the same reward), so GRPO trains on those it solves sometimes."""

    enabled: bool = Field(
        False,
        description="Score the training prompts with the stage's model first and keep those "
        "whose pass rate lies between min_pass_rate and max_pass_rate.",
    )
    max_prompts: int = Field(
        128, ge=1, description="Training prompts scored (N drawn with run.seed); the kept ones are trained on."
    )
    samples_per_prompt: int = Field(4, ge=2, description="Samples per prompt that estimate its pass rate.")
    min_pass_rate: float = Field(0.1, ge=0.0, le=1.0, description="Keep prompts solved at least this often.")
    max_pass_rate: float = Field(0.9, ge=0.0, le=1.0, description="Keep prompts solved at most this often.")
    rescore_every: int = Field(
        0,
        ge=0,
        description="Score the prompts again with the policy being trained every N optimizer steps and train on "
        "those then within the bounds (each re-scoring in pass_rates.json); 0: scored once, before training.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> CurriculumConfig:
        if self.min_pass_rate > self.max_pass_rate:
            raise ValueError("min_pass_rate must be <= max_pass_rate")
        return self


class FastConfig(Section):
    """r1kit's fast paths; each computes what TRL's plain path computes (tested for equivalence)."""

    shared_prefix: bool = Field(
        True,
        description="GRPO loss with each prompt forwarded once per group (its cache shared by the group's "
        "completions). Used where it applies (one process, no gradient checkpointing, text models); false: TRL's "
        "path exactly.",
    )
    generation: bool = Field(
        True,
        description="GRPO rollouts and the curriculum's pass-rate scoring from r1kit's sampler (LoRA merged into a "
        "copy refreshed every step, each prompt prefilled once, a static cache, finished rows dropped, a random "
        "stream per row: the same completions on any number of processes). Used where it applies (a CPU; whole "
        "weights in each process: no DeepSpeed/FSDP; no vLLM; the sampling options it implements; a model family "
        "whose sampling copy it can build); elsewhere, and with false: model.generate (TRL's, for rollouts).",
    )


# ----------------------------------------------------------------------------------- generated data (R1 stages)


class SamplingConfig(Section):
    """How a data-generating stage samples: which prompts, how many completions each, how long."""

    max_prompts: int = Field(
        200, ge=1, description="Training problems sampled (N of those with a gold answer, drawn with run.seed)."
    )
    samples_per_prompt: int = Field(4, ge=1, description="Completions sampled per problem (k).")
    max_new_tokens: int = Field(128, ge=1, description="Longest sampled completion in tokens.")
    temperature: float = Field(0.8, gt=0.0, description="Sampling temperature.")
    batch_size: int = Field(
        16, ge=1, description="Completions generated together (batch_size // samples_per_prompt problems at a time)."
    )


class TraceFilterConfig(Section):
    """What makes a generated reasoning trace worth training on (cold start, rejection sampling, distillation)."""

    max_repetition: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Drop a trace whose share of repeated word 5-grams is above this (looping text).",
    )
    language: str = Field(
        "auto", description="ISO 639-1 code traces must be written in; auto: the language of the problem."
    )
    min_think_words: int = Field(3, ge=0, description="Drop a trace whose <think> block has fewer words.")
    max_paragraph_words: int | None = Field(
        300,
        ge=1,
        description="Drop a trace whose <think> block has a paragraph (a line: cold start's traces are written "
        "without blank lines) of more words (in Chinese, Japanese and other scripts written without spaces, a word "
        "every 3 characters), as the R1 paper filters long paragraphs; null keeps any.",
    )
    drop_code_blocks: bool = Field(
        True, description="Drop a trace whose <think> block holds a fenced code block (```), as the R1 paper does."
    )

    @field_validator("language")
    @classmethod
    def _as_the_language_detector_names_it(cls, language: str) -> str:
        return language_code(language)


class ColdStartConfig(SamplingConfig):
    """The `cold_start` stage: long-CoT SFT data, built from worked solutions and from the model itself."""

    max_prompts: int = Field(
        64, ge=1, description="Training problems the model is prompted with (N drawn with run.seed)."
    )
    samples_per_prompt: int = Field(2, ge=1, description="Completions sampled per problem and method.")

    methods: list[Literal["convert", "few_shot", "direct", "refine"]] = Field(
        default_factory=lambda: ["convert", "few_shot", "direct"],
        description="convert: the data's worked solutions (GSM8K, Bespoke-Stratos, ShareGPT traces) in "
        "<think>/<answer> form; few_shot: the model prompted with worked long-CoT examples; direct: the model asked to "
        "reason step by step and verify; refine: R1-Zero outputs of cold_start.refine_from normalised and filtered.",
    )
    few_shot_examples: int = Field(2, ge=1, description="Worked examples shown in each few-shot prompt.")
    refine_from: str | None = Field(
        None,
        description="Model whose outputs `refine` cleans up (an R1-Zero run folder, a model folder or hub id, `base` "
        "for the run's base model, or in a recipe the name of an earlier stage that makes a model); default: the "
        "stage's input model.",
    )
    max_rows: int | None = Field(
        None,
        ge=1,
        description="Keep at most this many rows in the written dataset (a seeded draw over every method's).",
    )


class RejectionSamplingConfig(SamplingConfig):
    """The `rejection_sampling` stage: k samples per prompt from the RL model, the best verified one kept."""

    keep_per_prompt: int = Field(1, ge=1, description="Accepted traces kept per problem (best first).")


class SFT2Config(Section):
    """The `sft2` stage: accepted reasoning data mixed with general, non-reasoning chat data."""

    general_ratio: float = Field(
        0.2, ge=0.0, lt=1.0, description="Share of general chat rows in the SFT 2 mix (0: reasoning data only)."
    )
    general_dataset: str | None = Field(
        None,
        description="General chat data: a file or hub id in a chat format (messages, sharegpt, dolly). Default: the "
        "base model's own answers to general prompts shipped with r1kit (offline).",
    )
    general_subset: str | None = Field(None, description="Hub configuration of general_dataset, where it has several.")
    general_split: str = Field(
        "train", description="Split of a hub general_dataset (train_sft for HuggingFaceH4/ultrachat_200k)."
    )
    general_max_new_tokens: int = Field(96, ge=1, description="Longest base-model answer to a general prompt.")

    @model_validator(mode="after")
    def _split_of_a_general_dataset(self) -> SFT2Config:
        if self.general_dataset is None and (self.general_subset or self.general_split != "train"):
            raise ValueError("general_subset and general_split are those of general_dataset, which is not set")
        return self


class DistillConfig(SamplingConfig):
    """The `distill` stage: the final model as teacher writes verified traces, a student is fine-tuned on them."""

    samples_per_prompt: int = Field(2, ge=1, description="Teacher completions sampled per problem.")

    student: str | None = Field(
        None,
        description="Student model (alias, folder, hub id, `base` for the run's untouched base model, or in a recipe "
        "the name of an earlier stage that makes a model); default: the run's untouched base model.",
    )
    keep_per_prompt: int = Field(1, ge=1, description="Verified teacher traces kept per problem.")
    student_chat_template: str | None = Field(
        None,
        description="Chat template the student trains with instead of its tokenizer's: 'chatml' or a Jinja template "
        "string (model.chat_template is the teacher's, and the student's unless this is set): for a student whose "
        "template drops the reasoning from a reply (DeepSeek-R1-Distill's).",
    )

    @field_validator("student_chat_template")
    @classmethod
    def _valid_jinja(cls, template: str | None) -> str | None:
        return chat_template_checked(template)


# ------------------------------------------------------------------------------------------ classic RLHF stages


class PairSamplingConfig(SamplingConfig):
    """How the built-in preference pairs are made when `preferences.dataset` is unset: offline, from the stage's
    input model."""

    max_prompts: int = Field(100, ge=1, description="Training problems sampled (N drawn with preferences.seed).")
    pairs_per_prompt: int = Field(
        2, ge=1, description="Most pairs made from one problem: each a verified-correct reply against a rejected one."
    )
    reference_fallback: bool = Field(
        True,
        description="When no sample of a problem is verified correct, take the data's worked solution (in R1 form, "
        "if it passes the trace filters) as the chosen reply: a small model rarely solves a problem, yet its wrong "
        "or malformed samples still make good rejected replies.",
    )
    general_prompts: int = Field(
        50,
        ge=0,
        description="General prompts shipped with r1kit made into pairs: the model's greedy answer (one cut at "
        "general_max_new_tokens up to its last full sentence; an empty, looping or tagged one makes none) against a "
        "degraded copy of it (truncated, sentences shuffled, or repeated); 0: none.",
    )
    general_max_new_tokens: int = Field(96, ge=1, description="Longest greedy answer to a general prompt in tokens.")


class PreferencesConfig(Section):
    """Preference pairs for the `reward_model` and `dpo` stages: a pairwise dataset, or built-in pairs made offline.
    Rows that lack a needed field are handled as dataset.on_bad_row says."""

    dataset: str | None = Field(
        None,
        description="Pairwise data: a local .jsonl/.json/.parquet file or a hub dataset id. Default: built-in pairs "
        "from the stage's input model (its verified-correct against its wrong samples on dataset.name's training "
        "problems, chat rows' own replies and answers to general prompts against degraded copies), cached as "
        "RUN/<stage>/pairs.jsonl.",
    )
    subset: str | None = Field(None, description="Hub dataset configuration name.")
    train_split: str = Field(
        "train", description="Split of pairs to train on (hub datasets; train_prefs for UltraFeedback-binarized)."
    )
    test_split: str | None = Field(
        None,
        description="The held-out pairs, instead of carving some out of the training split: a file (.jsonl/.json/"
        ".parquet/.csv) for local pairs, a split name (or a file) for a hub dataset.",
    )
    format: Literal["auto", "pairs", "hh", "ultrafeedback"] = Field(
        "auto",
        description="Row format; auto detects it. pairs: prompt, chosen, rejected as text or chat-message lists "
        "(TRL's preference format); hh: Anthropic-HH chosen/rejected dialogues ('\\n\\nHuman: … \\n\\nAssistant: …') "
        "sharing their prompt; ultrafeedback: prompt text with chosen/rejected conversations (UltraFeedback-binarized).",
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Columns renamed before the format is read (training and held-out files), {file column: format "
        "column}: e.g. {instruction: prompt, good: chosen, bad: rejected}.",
    )
    max_pairs: int | None = Field(
        2000, ge=1, description="Keep at most this many training pairs (drawn with preferences.seed, in file order)."
    )
    held_out: float = Field(
        0.1,
        gt=0.0,
        lt=1.0,
        description="Share of pairs held out for evaluation (pairwise accuracy), split by prompt so no prompt is on "
        "both sides (whole prompts, as near the share as they come); unused when test_split is set.",
    )
    max_held_out: int = Field(
        100, ge=1, description="Keep at most this many held-out pairs (drawn with preferences.seed, in file order)."
    )
    seed: int = Field(
        42, ge=0, le=2**32 - 1, description="Seed of the held-out split and of the built-in degradations."
    )
    sampling: PairSamplingConfig = Field(default_factory=PairSamplingConfig)

    _one_column_each = field_validator("columns")(one_column_each)


class PairTrainingConfig(Section):
    """What every preference-training stage shares: steps, optimizer, batch, checkpoints."""

    epochs: float | None = _epochs("the training pairs")
    max_steps: int | None = Field(50, ge=1, description="Optimizer steps (null: train by epochs).")
    time_limit_minutes: float | None = _time_limit()
    optimization: OptimizationConfig = Field(default_factory=lambda: OptimizationConfig(learning_rate=5e-5))
    batch_size: BatchSizeConfig = Field(default_factory=BatchSizeConfig)
    dataloader: DataloaderConfig = Field(default_factory=DataloaderConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)


class RewardModelConfig(PairTrainingConfig):
    """The `reward_model` stage: a scalar head on the input model trained on preference pairs (TRL's
    RewardTrainer, Bradley-Terry loss). Full or LoRA as model.lora says; the score head is always trained."""

    optimization: OptimizationConfig = Field(default_factory=lambda: OptimizationConfig(learning_rate=2e-4))
    max_length: int = Field(
        512, ge=16, description="Longest prompt + reply in tokens; pairs with a longer side are left out."
    )
    center_rewards_coefficient: float | None = Field(
        None, ge=0.0, description="Pull the scores toward mean zero with this weight (e.g. 0.01); null: off."
    )
    gradient_checkpointing: bool = _pairs_recomputed()


class DPOConfig(PairTrainingConfig):
    """The `dpo` stage: Direct Preference Optimization of the input model on preference pairs (TRL's DPOTrainer);
    the input model is the frozen reference (with LoRA: the model with its adapter switched off)."""

    beta: float = Field(
        0.1, gt=0.0, description="Strength of the pull toward the reference model (higher: stays closer)."
    )
    loss_type: Literal[
        "sigmoid", "hinge", "ipo", "robust", "bco_pair", "sppo_hard", "nca_pair", "apo_zero", "apo_down", "sigmoid_norm"
    ] = Field("sigmoid", description="TRL DPO loss: sigmoid is the DPO paper's; ipo, hinge, robust … its variants.")
    label_smoothing: float = Field(
        0.0,
        ge=0.0,
        lt=0.5,
        description="Assumed share of flipped preference labels, read by the robust loss (cDPO); 0: none.",
    )
    max_length: int = Field(
        512,
        ge=16,
        description="Longest prompt + reply in tokens: a longer reply is cut at the end, and a pair whose prompt "
        "alone fills it is left out (TRL).",
    )
    gradient_checkpointing: bool = _pairs_recomputed()

    @model_validator(mode="after")
    def _label_smoothing_is_the_robust_losss(self) -> DPOConfig:
        # TRL 1.16 reads it in the robust loss alone (its sigmoid loss dropped it): elsewhere it would change nothing
        if self.label_smoothing and self.loss_type != "robust":
            raise ValueError(
                f"label_smoothing {self.label_smoothing} is read by loss_type robust only (cDPO); this loss_type "
                f"({self.loss_type}) ignores it: set loss_type robust, or label_smoothing 0"
            )
        return self


class RLOOConfig(PairTrainingConfig):
    """The `rloo` stage: REINFORCE Leave-One-Out (TRL's RLOOTrainer) with the configured `rewards` (the rule-based
    ones and, listed as reward_model, a trained reward model)."""

    max_steps: int | None = Field(30, ge=1, description="Optimizer steps (null: train by epochs).")
    batch_size: BatchSizeConfig = Field(default_factory=lambda: BatchSizeConfig(per_device_train=16))
    num_generations: int = Field(
        4, ge=2, description="Completions sampled per prompt; each one's baseline is the mean reward of the others."
    )
    max_completion_length: int = Field(96, ge=1, description="Longest completion in tokens.")
    temperature: float = Field(0.7, gt=0.0, description="Sampling temperature of the rollouts.")
    beta: float = Field(
        0.05, ge=0.0, description="KL penalty toward the input model; 0 loads no reference model (faster)."
    )

    def generation_batch(self) -> int:
        """The completions one RLOO generation batch samples, as TRL's RLOOConfig sets it: per_device_train ×
        processes × gradient_accumulation_steps."""
        batch = self.batch_size
        return batch.per_device_train * distributed.launched_count() * batch.gradient_accumulation_steps

    @model_validator(mode="after")
    def _batch_holds_whole_groups(self) -> RLOOConfig:
        processes = distributed.launched_count()
        batch = self.batch_size
        generation_batch = self.generation_batch()
        if generation_batch % self.num_generations:
            raise ValueError(
                f"the RLOO generation batch (per_device_train {batch.per_device_train} × {processes} process(es) × "
                f"gradient_accumulation_steps {batch.gradient_accumulation_steps} = {generation_batch} completions) "
                f"must be divisible by rloo.num_generations ({self.num_generations})"
            )
        return self


# ---------------------------------------------------------------------------------------------------- recipes


class StageSpec(Section):
    """One stage of a recipe."""

    name: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$",
        description="The stage's name: its folder RUN/NN_<name> and its label in logs, evaluations and tables.",
    )
    kind: str | None = Field(None, description=f"What it does, one of {', '.join(STAGE_KINDS)}; default: its name.")
    model_from: str | None = Field(
        None, description="Start from this earlier stage's model ('base': the run's model); default: the latest model."
    )
    data_from: str | None = Field(
        None, description="Train on the dataset this earlier stage wrote instead of dataset.name."
    )
    config: dict[str, Any] = Field(
        default_factory=dict, description="Config values for this stage only, laid over the run's config."
    )

    @field_validator("name")
    @classmethod
    def _not_base(cls, name: str) -> str:
        if name == "base":  # the untouched model's label: its evaluation, the table's first column, model_from
            raise ValueError(
                "'base' names the run's untouched model (its evaluation and model_from: base); "
                "give the stage another name"
            )
        return name

    @property
    def stage_kind(self) -> str:
        return self.kind or self.name


def _default_stages() -> list[StageSpec]:
    return [StageSpec(name="sft"), StageSpec(name="grpo")]


# ---------------------------------------------------------------------------------------------------- evaluation


class EvaluationConfig(Section):
    max_samples: int | None = Field(
        200,
        ge=1,
        description="Evaluate at most this many held-out problems: of a held-out file (dataset.test_split) or a file "
        "given to `r1kit eval --data`, a draw kept in the file's order (seeded by dataset.split.seed: a file may be "
        "sorted by level); of the share the split holds out (in a seeded order already), the first.",
    )
    max_new_tokens: int = Field(128, ge=1, description="Longest generated answer in tokens.")
    batch_size: int = Field(32, ge=1, description="Prompts generated together.")
    num_samples: int = Field(
        1,
        ge=1,
        description="Sampled completions per problem for pass@k and cons@n, their majority vote (1: greedy only).",
    )
    pass_k: list[int] = Field(default_factory=lambda: [1], description="k values of pass@k (each <= num_samples).")
    temperature: float = Field(0.8, gt=0.0, description="Sampling temperature for pass@k samples.")
    every_steps: int | None = Field(
        None,
        ge=1,
        description="Also score a held-out slice every N optimizer steps inside the stages that train a policy (SFT, "
        "SFT 2, distillation, GRPO, DPO, RLOO, PPO): greedy pass@1 and format rate where there are gold answers, the "
        "references' perplexity, into metrics.jsonl, the console and the report; null: off.",
    )
    during_training_samples: int = Field(
        32,
        ge=1,
        description="Held-out problems scored each time during training (chosen as evaluation.max_samples chooses).",
    )
    win_rate_against: str | None = Field(
        None,
        description="Also report each evaluated model's win rate against this model (a stage name such as sft, or a "
        "model folder): the share of held-out problems where evaluation.reward_model scores its greedy completion "
        "above this model's, ties counting half. Needs evaluation.reward_model; null: off.",
    )
    reward_model: str | None = Field(
        None, description="The reward model that judges win_rate_against: a reward_model stage's name or a folder."
    )

    @model_validator(mode="after")
    def _win_rate_has_a_judge(self) -> EvaluationConfig:
        if self.win_rate_against and not self.reward_model:
            raise ValueError("evaluation.win_rate_against needs evaluation.reward_model (the judge of the win rate)")
        return self

    @model_validator(mode="after")
    def _k_fits(self) -> EvaluationConfig:
        too_big = [k for k in self.pass_k if k < 1 or k > self.num_samples]
        if too_big:
            raise ValueError(f"pass_k {too_big} must be between 1 and num_samples ({self.num_samples})")
        return self


# ---------------------------------------------------------------------------------------------------- monitoring


class IntegrationConfig(Section):
    enabled: bool = Field(False, description="Report metrics to this integration.")


class WandbConfig(IntegrationConfig):
    project: str | None = Field(
        None, description="Weights & Biases project; default: the WANDB_PROJECT environment variable, else r1kit."
    )
    run_name: str | None = Field(None, description="Weights & Biases run name; default: the run folder name.")


class AlertsConfig(Section):
    window: int = Field(
        20,
        ge=2,
        description="Logging steps in the moving window that trends and shares are read over: shares and levels are "
        "alerted on once it holds a quarter of them (2 at least), trends once it is full.",
    )
    plateau_min_change: float = Field(
        0.01, ge=0.0, description="Reward plateau: total reward moved less than this over a full window."
    )
    drop_share: float = Field(
        0.3, gt=0.0, lt=1.0, description="Alert when a reward or format compliance falls by more than this share."
    )
    length_blowup_factor: float = Field(
        2.0, gt=1.0, description="Alert when mean completion length grows by more than this factor."
    )
    zero_advantage_max: float = Field(
        0.8, gt=0.0, le=1.0, description="Alert when this share of prompt groups has identical rewards."
    )
    truncated_max: float = Field(
        0.95, gt=0.0, le=1.0, description="Alert when at least this share of completions hits the length limit."
    )
    entropy_min: float = Field(
        0.01,
        ge=0.0,
        description="Alert when the policy's mean token entropy (nats) falls below this: its samples are nearly all "
        "alike (entropy collapse), so groups have little to compare. 0 turns the alert off.",
    )
    kl_max: float = Field(
        0.5,
        gt=0.0,
        description="Alert when the mean KL to the reference model per completion token (nats) rises above this: "
        "the policy drifts from it (measured only with a KL penalty: grpo.beta, rloo.beta, PPO's kl_coef).",
    )


class ProfilerConfig(Section):
    enabled: bool = Field(False, description="Record a torch.profiler trace of a few training steps.")
    wait: int = Field(1, ge=0, description="Steps skipped before profiling.")
    warmup: int = Field(1, ge=0, description="Profiler warm-up steps.")
    active: int = Field(2, ge=1, description="Steps recorded.")


class MonitoringConfig(Section):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "WARNING",
        description="Console log level of r1kit and its libraries (DEBUG shows the most); TRL's `passive` (the "
        "libraries' own default) and `warn` are WARNING.",
    )
    logging_steps: int = Field(
        1,
        ge=1,
        description="Write metrics every N optimizer steps (r1kit's PPO writes every step: each is a whole rollout "
        "and update).",
    )
    examples_every: int = Field(5, ge=1, description="Show the best and worst completion every N steps.")
    progress: bool = Field(True, description="Show progress bars and the per-step console block.")
    report: bool = Field(
        True, description="Write RUN/report.html when `r1kit run` ends (`r1kit report RUN` writes it at any time)."
    )
    tensorboard: IntegrationConfig = Field(default_factory=IntegrationConfig)
    wandb: WandbConfig = Field(default_factory=WandbConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    profiler: ProfilerConfig = Field(default_factory=ProfilerConfig)

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, level: Any) -> Any:
        if not isinstance(level, str):
            return level
        # TRL's `--log_level debug`, and its `passive` (transformers' default, which copied commands carry)
        return {"PASSIVE": "WARNING", "WARN": "WARNING"}.get(level.upper(), level.upper())


# ---------------------------------------------------------------------------------------------------------- root


def walk_schema(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any, bool]]:
    """(dotted path, field info, is_section) for every field of the schema."""
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        is_section = isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
        yield path, info, is_section
        if is_section:
            yield from walk_schema(info.annotation, f"{path}.")


def deep_merge(
    base: Mapping[str, Any], override: Mapping[str, Any], whole: Collection[str] = (), prefix: str = ""
) -> dict[str, Any]:
    """`override` laid over `base`: sections merge key by key; a setting (a list, or a mapping-valued one named in
    `whole`, such as dataset.columns: a later source's renames replace the earlier ones) is replaced.

    >>> deep_merge({"dataset": {"columns": {"a": "question"}, "name": "x"}}, {"dataset": {"columns": {}}}, ["dataset.columns"])
    {'dataset': {'columns': {}, 'name': 'x'}}
    """
    merged = dict(base)
    for key, value in override.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping) and path not in whole:
            merged[key] = deep_merge(merged[key], value, whole, f"{path}.")
        else:
            merged[key] = value
    return merged


def _epochs_or_steps_of_the_stage(merged: dict[str, Any], own: Mapping[str, Any]) -> None:
    """A stage that sets a section's `epochs` trains by epochs (the run's max_steps gives way), and the other way
    round, as the later source decides for the run's own config; a stage never sets both (its validator says so)."""
    for section, values in own.items():
        limits = merged.get(section)
        if (
            not isinstance(values, Mapping)
            or not isinstance(limits, dict)
            or not {"epochs", "max_steps"} <= limits.keys()
        ):
            continue
        if values.get("epochs") is not None:
            limits["max_steps"] = None
        elif values.get("max_steps") is not None:
            limits["epochs"] = None


def _plugin_params_of_the_stages_list(merged: dict[str, Any], own: Mapping[str, Any]) -> None:
    """A stage whose own `rewards.functions` replaces the run's list leaves the run's parameters of plug-ins it does
    not list unread (as the run's list would be), not an error about a plug-in missing from the stage's list; the
    stage's own parameters stay, checked as ever."""
    rewards, own_rewards = merged.get("rewards"), own.get("rewards")
    if not isinstance(rewards, dict) or not isinstance(own_rewards, Mapping) or "functions" not in own_rewards:
        return
    listed = {name for spec in rewards.get("functions") or [] if is_plugin(spec) for name in (spec, short_name(spec))}
    for key in [key for key in rewards if key not in RewardsConfig.model_fields]:
        if key not in listed and key not in own_rewards:
            del rewards[key]


# What loads every stage's model: set for the run, not for one stage (a stage trains the model of its model_from).
RUN_WIDE_MODEL_SETTINGS = ("name", "revision", "gguf_file", "device", "precision", "threads", "cache_dir")


class R1kitConfig(Section):
    run: RunConfig = Field(default_factory=RunConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    rewards: RewardsConfig = Field(default_factory=RewardsConfig)
    sft: SFTConfig = Field(default_factory=SFTConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    grpo: GRPOConfig = Field(default_factory=GRPOConfig)
    ppo: PPOConfig = Field(default_factory=PPOConfig)
    fast: FastConfig = Field(default_factory=FastConfig)
    dynamic_sampling: DynamicSamplingConfig = Field(default_factory=DynamicSamplingConfig)
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig)
    step_credit: StepCreditConfig = Field(default_factory=StepCreditConfig)
    cold_start: ColdStartConfig = Field(default_factory=ColdStartConfig)
    rejection_sampling: RejectionSamplingConfig = Field(default_factory=RejectionSamplingConfig)
    sft2: SFT2Config = Field(default_factory=SFT2Config)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    filters: TraceFilterConfig = Field(default_factory=TraceFilterConfig)
    preferences: PreferencesConfig = Field(default_factory=PreferencesConfig)
    reward_model: RewardModelConfig = Field(default_factory=RewardModelConfig)
    dpo: DPOConfig = Field(default_factory=DPOConfig)
    rloo: RLOOConfig = Field(default_factory=RLOOConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    chat: ChatConfig = Field(default_factory=ChatConfig)
    stages: list[StageSpec] = Field(
        default_factory=_default_stages,
        description="The stages `r1kit run` goes through, in order (a recipe sets them); each model a stage makes is "
        "evaluated on the held-out problems.",
    )

    def kinds_trained(self, command: str | None) -> set[str]:
        """The kinds of stage a command runs: the stage it names (`r1kit dpo`), none for `eval` and `chat` (they
        load a model and generate), else the recipe's stages (`run`, `config`)."""
        if command in STAGE_KINDS:
            return {command}
        return set() if command in ("eval", "chat") else {spec.stage_kind for spec in self.stages}

    def kinds_on_run_values(self, command: str | None) -> set[str]:
        """`kinds_trained`, less the recipe stages with a config of their own: those run on the run's values with
        theirs laid over, and are checked so (`for_stage`), so a run-wide check of the values a stage replaces
        refused a valid recipe (its own grpo.num_generations 4 against the run's batch of 4)."""
        if command in STAGE_KINDS or command in ("eval", "chat"):
            return self.kinds_trained(command)
        return {spec.stage_kind for spec in self.stages if not spec.config}

    def for_stage(self, spec: StageSpec) -> R1kitConfig:
        """This config with a stage's own values laid over it (they win over every other source)."""
        # The stage's own config lists only itself, without overrides: what it runs is already laid in.
        merged = deep_merge(self.model_dump(exclude={"stages"}), spec.config, REPLACED_WHOLE)
        _epochs_or_steps_of_the_stage(merged, spec.config)
        _plugin_params_of_the_stages_list(merged, spec.config)
        return R1kitConfig.model_validate(merged | {"stages": [{"name": spec.name, "kind": spec.stage_kind}]})

    @model_validator(mode="after")
    def _stages_make_a_pipeline(self) -> R1kitConfig:
        if not self.stages:
            raise ValueError("stages: a run needs at least one stage")
        seen: list[str] = []
        kinds: dict[str, str] = {}
        for spec in self.stages:
            where = f"stages: {spec.name}"
            if spec.name in seen:
                raise ValueError(f"{where} is listed twice; give each stage its own name")
            if spec.stage_kind not in STAGE_KINDS:
                raise ValueError(
                    f"{where}: unknown kind {spec.stage_kind!r}; known: {', '.join(STAGE_KINDS)} (a stage's kind is "
                    "its name unless it sets `kind`: `- {name: rl, kind: grpo}`)"
                )
            for key, earlier, made in (
                ("model_from", spec.model_from, "model"),
                ("data_from", spec.data_from, "dataset"),
            ):
                if earlier is None or (key == "model_from" and earlier == "base"):
                    continue
                if earlier not in seen:
                    raise ValueError(
                        f"{where}: {key} {earlier!r} is not an earlier stage ({', '.join(seen) or 'none'})"
                    )
                kind = kinds[earlier]
                if made not in MAKES[kind]:
                    raise ValueError(
                        f"{where}: {key} {earlier!r}: a {kind} stage writes no {made} (it writes: "
                        f"{', '.join(sorted(MAKES[kind]))}); stages that write one: "
                        f"{', '.join(name for name in seen if made in MAKES[kinds[name]]) or 'none before it'}"
                    )
            for section in ("stages", "run"):
                if section in spec.config:
                    raise ValueError(f"{where}: a stage's config cannot set {section!r} (it is the run's)")
            model = spec.config.get("model")
            for key in RUN_WIDE_MODEL_SETTINGS if isinstance(model, Mapping) else ():
                if key in model:
                    because = (
                        "a stage trains the model of model_from (the previous stage's by default, `base` for the "
                        "run's model.name)"
                        if key == "name"
                        else "the run's model settings load every stage's model on one device"
                    )
                    raise ValueError(f"{where}: model.{key} cannot be set for one stage: {because}")
            for section, values in spec.config.items():
                if isinstance(values, Mapping) and None not in (values.get("epochs"), values.get("max_steps")):
                    raise ValueError(
                        f"{where}: {section}.epochs and {section}.max_steps are both set; set one: epochs counts "
                        "passes over the data, max_steps optimizer steps"
                    )
            if spec.data_from is not None and "dataset" in spec.config:
                raise ValueError(
                    f"{where}: data_from {spec.data_from!r} and its own dataset both name the data it trains on; "
                    "give one"
                )
            if spec.config:
                try:
                    self.for_stage(spec)
                except ValidationError as error:  # the first problem, as the run's own config reports one
                    key, message, value = first_problem(error)
                    got = f" (got {value!r})" if key and not isinstance(value, dict) else ""
                    raise ValueError(
                        f"{where}: its config is invalid: {key + ': ' if key else ''}{message}{got}"
                    ) from None
            seen.append(spec.name)
            kinds[spec.name] = spec.stage_kind
        return self

    @model_validator(mode="after")
    def _overlong_fits_the_completion_limit(self, info: ValidationInfo) -> R1kitConfig:
        overlong = self.rewards.overlong
        if "overlong" not in self.rewards.functions:
            return self
        # each stage that builds the rewards passes its own limit (overlong's default): the stage run alone
        # (`resolve_config` validates with the command as context), else the recipe's stages that build them
        command = (info.context or {}).get("command")
        limits = {
            "grpo": ("grpo.max_completion_length", self.grpo.max_completion_length),
            "rloo": ("rloo.max_completion_length", self.rloo.max_completion_length),
            "ppo": ("ppo.max_new_tokens", self.ppo.max_new_tokens),
        }
        for kind in sorted(self.kinds_on_run_values(command) & limits.keys()):
            source, limit = (
                ("rewards.overlong.max_length", overlong.max_length) if overlong.max_length else limits[kind]
            )
            if overlong.soft_cache >= limit:
                raise ValueError(
                    f"rewards.overlong.soft_cache ({overlong.soft_cache}) must be smaller than the length limit "
                    f"({source} = {limit}); lower soft_cache or raise the limit"
                )
        return self

    @model_validator(mode="after")
    def _preference_data_settings_need_a_dataset(self, info: ValidationInfo) -> R1kitConfig:
        # the built-in pairs read none of these: a held-out file given for them was quietly replaced by a carve-out
        prefs = self.preferences
        given = [
            f"preferences.{key} {value!r}"
            for key, value, unset in (
                ("subset", prefs.subset, None),
                ("train_split", prefs.train_split, "train"),
                ("test_split", prefs.test_split, None),
                ("format", prefs.format, "auto"),
                ("columns", prefs.columns, {}),
            )
            if value != unset
        ]
        if prefs.dataset is not None or not given:
            return self
        command = (info.context or {}).get("command")
        run = self.kinds_trained(command)  # `r1kit eval` trains none of the recipe's stages
        built_in = [  # the pair stages that read the run's preferences: those that name no dataset of their own
            spec.name
            for spec in (self.stages if command not in STAGE_KINDS else [StageSpec(name=command)])
            if spec.stage_kind in PAIR_KINDS
            and spec.stage_kind in run
            and not (spec.config.get("preferences") or {}).get("dataset")
        ]
        if built_in:
            raise ValueError(
                f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for preferences.dataset, which is not set "
                f"for {', '.join(built_in)}: the built-in pairs are made from the stage's model and hold out "
                "preferences.held_out of their pairs (by whole prompts); set preferences.dataset, or leave these out"
            )
        return self

    @model_validator(mode="after")
    def _dynamic_sampling_fits_the_advantages(self) -> R1kitConfig:
        # a fresh group's advantages are scaled by the spread of its own retry batch, not of the batch it joins
        if self.dynamic_sampling.max_retries and self.grpo.scale_rewards == "batch":
            raise ValueError(
                "dynamic_sampling.max_retries with grpo.scale_rewards batch: a replacement group would be scaled by "
                "its own small batch's reward spread, not by that of the batch it joins; use scale_rewards group or "
                "none with dynamic sampling"
            )
        # the groups it replaces, those whose outcomes all agree, are the ones step credit still teaches from
        if self.dynamic_sampling.max_retries and self.step_credit.weight:
            raise ValueError(
                "dynamic_sampling.max_retries with step_credit.weight: dynamic sampling replaces the groups whose "
                "completions all got the same reward before step credit sees them, and those are the groups its "
                "checked steps still teach from; use one of the two"
            )
        return self

    def grpo_generation_batch(self) -> int:
        """The completions one GRPO generation batch samples, as TRL's GRPOConfig sets it: grpo.generation_batch_size,
        else per_device_train × processes × gradient_accumulation_steps."""
        batch = self.training.batch_size
        return self.grpo.generation_batch_size or (
            batch.per_device_train * distributed.launched_count() * batch.gradient_accumulation_steps
        )

    @model_validator(mode="after")
    def _grpo_batch_holds_whole_groups(self, info: ValidationInfo) -> R1kitConfig:
        # TRL samples one generation batch and groups it by prompt, so it must hold whole groups of num_generations;
        # it is then trained on in micro-batches of per_device_train × processes, so it must hold whole micro-batches.
        # Checked where a GRPO stage runs (the stage alone, or a recipe's): the RLHF notebook's `--batch_size 4` is
        # no GRPO batch.
        command = (info.context or {}).get("command")
        if "grpo" not in self.kinds_on_run_values(command):
            return self
        batch = self.training.batch_size
        processes = distributed.launched_count()
        step = batch.per_device_train * processes
        generation_batch = self.grpo_generation_batch()
        if self.grpo.generation_batch_size is None:
            how = (
                f"the GRPO generation batch (per_device_train {batch.per_device_train} × {processes} process(es) "
                f"× gradient_accumulation_steps {batch.gradient_accumulation_steps} = {generation_batch} completions)"
            )
        else:
            how = f"grpo.generation_batch_size ({generation_batch})"
            if generation_batch % step:
                raise ValueError(
                    f"{how} must be divisible by per_device_train {batch.per_device_train} × {processes} process(es) "
                    f"= {step}"
                )
        if generation_batch % self.grpo.num_generations:
            raise ValueError(
                f"training.batch_size: {how} must be divisible by grpo.num_generations ({self.grpo.num_generations})"
            )
        return self


# Settings whose value is a mapping (dataset.columns): a later source replaces them whole, as it replaces a list.
MAPPING_SETTINGS = frozenset(path for path, info, _ in walk_schema(R1kitConfig) if get_origin(info.annotation) is dict)


class _ReplacedWhole:
    """The settings a later source (or a recipe stage's `config:`) replaces whole in `deep_merge`: the mapping-valued
    fields (dataset.columns), and a plug-in reward's parameters, whose mapping value is the parameter's own
    (`{bonus: {c: 3}}` was merged into an earlier `{a: 1, b: 2}`).

    >>> "dataset.columns" in REPLACED_WHOLE, "rewards.keyed.bonus" in REPLACED_WHOLE, "rewards.pkg.mod:fn.bonus" in REPLACED_WHOLE
    (True, True, True)
    >>> "rewards.accuracy.weight" in REPLACED_WHOLE, "rewards.functions" in REPLACED_WHOLE, "rewards.keyed" in REPLACED_WHOLE
    (False, False, False)
    """

    def __contains__(self, path: object) -> bool:
        if path in MAPPING_SETTINGS:
            return True
        if not isinstance(path, str) or not path.startswith("rewards."):
            return False
        rest = path.removeprefix("rewards.")  # <plug-in>.<parameter>; a spec's module may hold dots (pkg.mod:fn)
        end = rest.find(".", rest.find(":") + 1) if ":" in rest else rest.find(".")
        spec, parameter = rest[:end], rest[end + 1 :]
        return end > 0 and spec not in RewardsConfig.model_fields and bool(parameter) and "." not in parameter


REPLACED_WHOLE = _ReplacedWhole()
