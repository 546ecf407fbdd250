"""Where configuration values come from, and how they combine.

Precedence, lowest first:
    schema defaults < YAML (a recipe, then --config FILE) < profile < environment variables < command line

- YAML files hold any part of the schema, plus an optional `profiles:` mapping of extra named profiles.
- Profiles: built-in ones in `r1kit/configs/profiles.yaml` (default, dev, prod, test, profile) and the user's.
- Environment: `R1KIT_<PATH>` (dots → underscores, upper case), and the R1 tutorial's `GRPO_<PATH>`.
- Command line: `--a.b.c value`, `--a.b.c=value`, lists as `[x,y]` or `[x, y]`, plus the flag aliases below.

Files are YAML. A value given as text (environment, command line) is read by the type of its field: text fields take
it as given (`0123`, `a: b` and `[draft]` stay text), list fields parse `[a, b]`, optional fields take `null`, and
numbers and booleans are left to the schema. Layers are deep-merged, then validated by the pydantic schema. Every
value keeps the name of its source, for `r1kit config show --explain` and for errors.
"""

from __future__ import annotations

import difflib
import os
import re
import types
from collections import Counter
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from r1kit.config.aliases import (
    COMMAND_SECTIONS,
    FLAG_ALIASES,
    GRPO_SECTIONS,
    PATH_ALIASES,
    REFUSED,
    STRATEGY_FLAGS,
    VALUE_CONVERSIONS,
    canonical,
    for_stage,
    harmless,
    harmless_note,
    refusal,
    stage_key,
)
from r1kit.config.schema import (
    MAPPING_SETTINGS,
    REPLACED_WHOLE,
    R1kitConfig,
    StageSpec,
    deep_merge,
    first_problem,
    walk_schema,
)
from r1kit.rewards.plugins import short_name
from r1kit.stages.registry import (
    COMMON_SECTIONS,
    READS,
    READS_NOT,
    ROLLOUT_KINDS,
    STAGE_KINDS,
    TOOL_READS,
    reads,
    sections_said,
)

ENV_PREFIXES = ("R1KIT_", "GRPO_")  # GRPO_ is the R1 tutorial's prefix
ENV_NOT_CONFIG = {"R1KIT_CACHE", "R1KIT_DEBUG"}  # r1kit variables that are not config paths


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is one line naming the key and the problem."""


@dataclass
class Layer:
    source: str  # "file:…", "profile:…", "env:…", "cli:…" — per value for env and cli
    values: dict[str, Any]
    value_sources: dict[str, str] = field(default_factory=dict)  # leaf path → source, where it differs per value
    notes: list[str] = field(default_factory=list)  # tutorial names used: "--flag → --r1kit.key"
    overridden: list[str] = field(default_factory=list)  # values of the user's --config file a profile replaced
    ignored: list[str] = field(default_factory=list)  # GRPO_* variables that name no key (another tool's, or a typo)
    # (flag, key): `--eval_strategy steps` sets key to the resolved monitoring.logging_steps where no source sets it
    # (transformers' eval_steps is logging_steps unless given, from wherever that comes)
    every_logging_step: tuple[str, str] | None = None

    def add(self, path: str, text: str, source: str) -> None:
        """Read `text` as the value of `path` (a schema path or an alias), set it, and remember where it came from."""
        target, value = canonical(path, _value_from_text(PATH_ALIASES.get(path, path), text, source))
        if target == "stages":  # a recipe's stages given whole: each stage's own values read as a file's are
            value = _stages_normalised(value, source)
        set_path(self.values, target, value)
        self.value_sources[target] = source


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set the leaf at dotted `path` in a nested mapping, making the sections on the way."""
    *sections, leaf = split_path(path)
    for name in sections:
        tree = tree.setdefault(name, {})
    tree[leaf] = value


def split_path(path: str) -> list[str]:
    """A dotted path's keys; a plug-in reward's `module.path:function` is one key, dots and all.

    >>> split_path("rewards.my_package.rewards:short_answer.weight")
    ['rewards', 'my_package.rewards:short_answer', 'weight']
    """
    head, colon, tail = path.partition(":")
    if not colon:
        return path.split(".")
    section, _, module = head.partition(".")
    function, *rest = tail.split(".")
    return [section, f"{module}:{function}", *rest]


def plugin_param(path: str) -> bool:
    """`rewards.<plug-in>.<parameter>`: a key the schema checks against rewards.functions once all layers are in."""
    keys = split_path(path)
    return len(keys) == 3 and keys[0] == "rewards" and f"rewards.{keys[1]}" not in SECTION_PATHS + LEAF_PATHS


@dataclass
class ResolvedConfig:
    config: R1kitConfig
    sources: dict[str, str]  # every leaf path → where its value came from
    notes: list[str] = field(default_factory=list)  # tutorial names used: "--flag → --r1kit.key"
    overridden: list[str] = field(default_factory=list)  # values of the user's --config file a profile replaced
    ignored: list[str] = field(default_factory=list)  # GRPO_* variables that name no key, said and left alone


# --------------------------------------------------------------------------------------------------- schema paths


LEAF_FIELDS = {path: info for path, info, is_section in walk_schema(R1kitConfig) if not is_section}
LEAF_PATHS = list(LEAF_FIELDS)
SECTION_PATHS = [path for path, _, is_section in walk_schema(R1kitConfig) if is_section]


def field_help() -> list[tuple[str, Any, str]]:
    """(path, default, help) of every key: what `--help` prints."""
    defaults = flatten(R1kitConfig().model_dump())
    return [(path, defaults[path], info.description or "") for path, info in LEAF_FIELDS.items()]


# generate()'s limit of prompt + reply, and serving APIs' of the reply: chat and eval limit the reply, max_new_tokens
_LENGTH_LIMITS = ("max_length", "max_tokens")


_KL_COEFFICIENT = {"ppo": "ppo.kl_coef", "dpo": "dpo.beta", "rloo": "rloo.beta"}  # GRPO's: said with kl_coef's rule


def did_you_mean(path: str, as_flag: bool = False, command: str | None = None) -> str:
    """A suggestion only for a near miss (a typo), never a merely related key; for a TRL flag's name, its key (for
    `r1kit COMMAND`, the key it sets there: `learning_rate` is sft.optimization.learning_rate for `r1kit sft`). A bare
    name near a flag's is answered with that flag on the command line (`as_flag`), with the flag's key elsewhere.

    >>> did_you_mean("trainig.max_steps"), did_you_mean("monitoring.logging.colour")
    ("; did you mean 'training.max_steps'?", '')
    >>> did_you_mean("top_k")
    '; the flag --top_k sets grpo.top_k: write that key here'
    >>> did_you_mean("learnig_rate", as_flag=True), did_you_mean("learnig_rate")
    ('; did you mean --learning_rate?', "; did you mean 'training.optimization.learning_rate'?")
    >>> did_you_mean("sft.learning_rate"), did_you_mean("grpo.learning_rate")
    ("; did you mean 'sft.optimization.learning_rate'?", "; did you mean 'training.optimization.learning_rate'?")
    >>> did_you_mean("training.logging_steps")
    "; did you mean 'monitoring.logging_steps'?"
    >>> did_you_mean("learning_rate", command="sft")
    '; the flag --learning_rate sets sft.optimization.learning_rate: write that key here'
    >>> did_you_mean("time_limit_minutes", as_flag=True, command="ppo"), did_you_mean("time_limit_minutes")
    ('', "; did you mean 'sft.time_limit_minutes'?")
    >>> did_you_mean("max_length", as_flag=True, command="chat"), did_you_mean("evaluation.max_tokens")
    ("; the reply's limit is --max_new_tokens (generate's max_length counts the prompt too)", "; the reply's limit is 'evaluation.max_new_tokens'")
    >>> did_you_mean("do_sample", as_flag=True, command="chat")
    '; sampling is set by the temperature alone (--temperature 0 is greedy; above 0 it samples)'
    >>> did_you_mean("grpo.kl_coef"), did_you_mean("kl_coef", as_flag=True, command="run")
    ("; GRPO's KL coefficient is 'grpo.beta' (TRL's beta); PPO's is 'ppo.kl_coef'", "; GRPO's KL coefficient is --beta (TRL's beta); PPO's is --ppo.kl_coef")
    >>> did_you_mean("training.eval_steps"), did_you_mean("training.per_device_eval_batch_size", as_flag=True)
    ("; TRL's eval_steps is 'evaluation.every_steps'", "; TRL's per_device_eval_batch_size is --evaluation.batch_size")
    >>> did_you_mean("model.lora_r"), did_you_mean("training.warmup_steps").split(":")[0]
    ("; TRL's lora_r is 'model.lora.rank'", '; warmup is a share of the steps in r1kit')
    >>> did_you_mean("sft.per_device_train_batch_size"), did_you_mean("dpo.max_seq_length")
    ("; TRL's per_device_train_batch_size is 'sft.batch_size.per_device_train'", "; TRL's max_seq_length is 'dpo.max_length'")
    >>> did_you_mean("training.bf16"), did_you_mean("model.use_peft", as_flag=True)
    ("; TRL's bf16 is 'model.precision: bf16'", "; TRL's use_peft is --model.lora.enabled true")
    >>> did_you_mean("ppo.beta"), did_you_mean("ppo.epochs"), did_you_mean("sft.temprature")
    ("; PPO's KL coefficient is 'ppo.kl_coef'", "; did you mean 'ppo.ppo_epochs'?", '')
    >>> did_you_mean("profile"), did_you_mean("dataset.columns.problem", as_flag=True)
    ('; a profile is chosen on the command line (--profile NAME), and defined under `profiles:`', '; dataset.columns is one setting, a mapping: --dataset.columns "{problem: VALUE}"')
    """
    section, dotted, _ = path.partition(".")
    grpo_read = command in (None, "run", "grpo", "config")  # the commands whose training.* and grpo.* are GRPO's
    if path.endswith("kl_coef") and (section in GRPO_SECTIONS or not dotted) and grpo_read:
        # GRPO's KL coefficient is TRL's `beta`; the one key named kl_coef is PPO's, which GRPO never reads
        said = ("--beta", "--ppo.kl_coef") if as_flag else ("'grpo.beta'", "'ppo.kl_coef'")
        return f"; GRPO's KL coefficient is {said[0]} (TRL's beta); PPO's is {said[1]}"
    kl = _KL_COEFFICIENT.get(section)
    if kl and path in (f"{section}.beta", f"{section}.kl_coef") and path != kl:  # ppo.beta was answered with dpo.beta
        return f"; {section.upper()}'s KL coefficient is {'--' + kl if as_flag else repr(kl)}"
    if section == "trpo":  # trpo.beta was answered with grpo.beta, trpo.max_steps with ppo.max_steps as if the same
        return "; TRPO is PPO's other policy update: ppo.policy_update trpo, its own settings ppo.trpo_*"
    if path.rsplit(".", 1)[-1] == "do_sample":  # transformers' generate(do_sample=True, temperature=0.7)
        return "; sampling is set by the temperature alone (--temperature 0 is greedy; above 0 it samples)"
    if path in ("profile", "recipe"):  # `profile: dev` in a file: the command line chooses them
        defined = ", and defined under `profiles:`" if path == "profile" else ""
        return f"; a {path} is chosen on the command line (--{path} NAME){defined}"
    mapping = next((leaf for leaf in sorted(MAPPING_SETTINGS) if path.startswith(f"{leaf}.")), None)
    if mapping is not None:  # `--dataset.columns.problem question`: a key inside a mapping setting
        key = path.removeprefix(f"{mapping}.")
        written = f'--{mapping} "{{{key}: VALUE}}"' if as_flag else f"{mapping}: {{{key}: VALUE}}"
        return f"; {mapping} is one setting, a mapping: {written}"
    alias = FLAG_ALIASES.get(f"--{path}")
    if alias is not None:  # a TRL flag's name written as a key (`top_k: 5` at the top of a file)
        own = for_stage(alias.path, command, LEAF_PATHS.__contains__) if alias.tutorial else alias.path
        if own is None:
            return f"; the flag --{path} sets {alias.path}, which `r1kit {command}` does not read"
        return f"; the flag --{path} sets {own}: write that key here"
    # for `r1kit COMMAND`, only the keys it reads: a key it ignores would be accepted and change nothing
    known = [key for key in LEAF_PATHS if reads(command, key)] if command in (*READS, *TOOL_READS) else LEAF_PATHS
    if path in SECTION_PATHS:  # `--training.batch_size 4`: was "did you mean 'training.batch_size'?"
        return f"; {path} is a section: set one of its keys ({_keys_of(path)})"
    name = path.rsplit(".", 1)[-1]
    replying = section if dotted else COMMAND_SECTIONS.get(command or "")  # chat's or evaluation's own settings
    if name in _LENGTH_LIMITS and replying in COMMAND_SECTIONS.values() and path.count(".") <= 1:
        own = (
            repr(f"{replying}.max_new_tokens") if not as_flag else f"--{replying + '.' if dotted else ''}max_new_tokens"
        )
        why = " (generate's max_length counts the prompt too)" if name == "max_length" else ""
        return f"; the reply's limit is {own}{why}"
    anywhere = [key for key in known if key.rsplit(".", 1)[-1] == name]
    if not dotted and len(anywhere) == 1:  # a bare name (`kl_coef: 0.1` at the top of a file) of one setting
        return f"; did you mean {anywhere[0]!r}?"
    # The setting under its own name one level off (sft.learning_rate) is a better guess than a near spelling in
    # another section (ppo.learning_rate); GRPO's settings are split over grpo.* and training.*.
    for sections in ((section,), GRPO_SECTIONS if section in GRPO_SECTIONS else ()):
        same = [key for key in known if key.split(".")[0] in sections and key.rsplit(".", 1)[-1] == name]
        if len(same) == 1:
            return f"; did you mean {same[0]!r}?"
    stage = section if section in STAGE_KINDS else None
    # the one setting of that name, in another section (training.logging_steps), which a stage's section reads
    if len(anywhere) == 1 and (stage is None or reads(stage, anywhere[0])):  # dpo.kl_coef is not ppo.kl_coef
        return f"; did you mean {anywhere[0]!r}?"
    flag = FLAG_ALIASES.get(f"--{name}")
    in_a_section = dotted and section in R1kitConfig.model_fields  # not a misspelt one (trainig.max_steps)
    # A TRL flag's name under a section (the tutorial's training.eval_steps): its key, not a near spelling
    # (training.max_steps; per_device_train_batch_size for per_device_eval_batch_size). Under a stage's section, only a
    # key that stage reads: its own (sft.per_device_train_batch_size is sft.batch_size's, not GRPO's) or a common one
    # (sft.bf16 is model.precision), never another stage's; else a near spelling as before.
    if in_a_section and flag is not None:
        own = for_stage(flag.path, stage or command, LEAF_PATHS.__contains__) if flag.tutorial else flag.path
        if own is None and stage is None:
            return f"; TRL's {name} is {flag.path}, which `r1kit {command}` does not read"
        if own is not None and (stage is None or reads(stage, own)):  # sft.reward_funcs: GRPO's, which SFT reads not
            value = "" if flag.value is None else str(flag.value).lower()  # a switch's: bf16 is model.precision bf16
            return f"; TRL's {name} is " + (
                f"--{own} {value}".rstrip() if as_flag else repr(f"{own}: {value}".rstrip(": "))
            )
    if in_a_section and f"--{name}" in REFUSED:  # training.warmup_steps, sft.packing: what r1kit does instead
        return f"; {REFUSED[f'--{name}']}"
    if not dotted:  # a misspelt flag name (--learnig_rate, --modle) or a bare key of one setting
        flags = {name[2:]: alias.path for name, alias in FLAG_ALIASES.items()}
        names: dict[str, list[str]] = {}  # a setting's own name → the keys that end in it
        for key in known:
            names.setdefault(key.rsplit(".", 1)[-1], []).append(key)
        close = difflib.get_close_matches(path, [*flags, *names], n=1, cutoff=0.8)
        if close and close[0] in flags:  # what a flag sets depends on the command: not named on the command line
            return f"; did you mean --{close[0]}?" if as_flag else f"; did you mean {flags[close[0]]!r}?"
        if close and len(names[close[0]]) == 1:
            return f"; did you mean {names[close[0]][0]!r}?"
    if in_a_section:  # the section is right (ppo.epochs): a near key of its own, not of another stage's (dpo.epochs)
        under = path.partition(".")[2]  # the name under the section, as a key of its own sections is written
        own = [key for key in known if key.split(".")[0] in (GRPO_SECTIONS if section in GRPO_SECTIONS else (section,))]
        prefixed = f"{section}.{section}_{under}"  # TRL's prefixed name: ppo.epochs is ppo.ppo_epochs
        if prefixed in own:
            return f"; did you mean {prefixed!r}?"
        by_name = {f"{section}.{key.partition('.')[2]}": key for key in own}  # grpo.max_steps: training.max_steps
        close = difflib.get_close_matches(path, list(by_name), n=1, cutoff=0.85)
        if close:
            return f"; did you mean {by_name[close[0]]!r}?"
    close = difflib.get_close_matches(path, known + SECTION_PATHS + list(PATH_ALIASES), n=1, cutoff=0.85)
    other = close[0].split(".")[0] if close else None
    if in_a_section and other != section and other in STAGE_KINDS and {section, other} - set(GRPO_SECTIONS):
        return ""  # the section is right (ppo.epochs): another stage's near key (dpo.epochs) is another setting
    if close and close[0] in SECTION_PATHS and path.startswith(f"{close[0]}."):  # model.lora.r: not 'model.lora'
        return f"; {close[0]} has no {path.removeprefix(close[0] + '.')!r} (its keys: {_keys_of(close[0])})"
    return f"; did you mean {close[0]!r}?" if close else ""


def _keys_of(section: str) -> str:
    """The names directly under a section, its subsections included.

    >>> _keys_of("model.lora")
    'alpha, dropout, enabled, rank, target_modules'
    """
    return ", ".join(sorted({key.removeprefix(f"{section}.").split(".")[0] for key in LEAF_PATHS
                             if key.startswith(f"{section}.")}))  # fmt: skip


# ------------------------------------------------------------------------------------------------------- helpers


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping → {dotted path: leaf value}; lists and mapping-valued fields (dataset.columns) are leaves."""
    return dict(_leaves(values, prefix))


def _leaves(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, leaf value) of a nested mapping, in order and with repeats (`training.max_steps` and
    `training: {max_steps: …}` in one file are one path twice: `flatten` keeps the last).

    >>> [path for path, _ in _leaves({"training.max_steps": 7, "training": {"max_steps": 8}, "stages": [{}]})]
    ['training.max_steps', 'training.max_steps', 'stages']
    """
    for key, value in values.items():
        path = f"{prefix}{key}"
        # a plug-in reward's parameter is its own value, a mapping too (`rewards.keyed.bonus: {any: 0.5}`)
        if isinstance(value, Mapping) and value and path not in LEAF_FIELDS and not plugin_param(path):
            yield from _leaves(value, f"{path}.")
        else:
            yield path, value


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's integers and booleans, and no dates: YAML 1.1 read `0123` as octal 83,
    `2023_01` as 202301, `no` (Norwegian) or `on` as a boolean and `2024-01-05` as a date, so a run name, revision
    or language code written so became another value. A boolean setting still takes yes/no/on/off (the schema
    reads them)."""


_YAML11_ONLY = (
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:timestamp",
)
_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in _YAML11_ONLY]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YAML12_INT = re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0x[0-9a-fA-F]+|0o[0-7]+)$")
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:int", _YAML12_INT, list("-+0123456789"))
# YAML 1.1 read `1e-4` and `5e-5` (the tutorial's learning rates) as text: a plug-in reward's parameter, which no
# schema converts, stayed a string. A dot or an exponent makes a float (`0123` stays text, as above).
_YAML12_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*|[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+|\.[0-9]+[eE][-+]?[0-9]+)"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT, list("-+0123456789."))
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _no_repeated_keys(loader: _Yaml12Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    """A mapping whose keys are each written once: PyYAML kept the last of two `max_steps:` without a word."""
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`, which PyYAML resolves below
            continue
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable):  # PyYAML says "found unhashable key" below
            continue
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"{key!r} is written twice in one mapping; keep one", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Yaml12Loader.construct_mapping = _no_repeated_keys


def read_yaml(text: str) -> Any:
    """YAML text as values, numbers read as YAML 1.2 reads them.

    >>> read_yaml("{revision: 0123, run: 2023_01, steps: 30, lr: 1.0e-4, hex: 0x10}")
    {'revision': '0123', 'run': '2023_01', 'steps': 30, 'lr': 0.0001, 'hex': 16}
    >>> read_yaml("[1e-4, 5E5, .5, 2., -1.5e+3, .inf, 1:30, 1_000.5, 3]")
    [0.0001, 500000.0, 0.5, 2.0, -1500.0, inf, '1:30', '1_000.5', 3]
    >>> read_yaml("{language: no, subset: on, out: 2024-01-05, lora: true, bf16: False}")
    {'language': 'no', 'subset': 'on', 'out': '2024-01-05', 'lora': True, 'bf16': False}
    """
    return yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader: builds no Python objects


_NULLS = ("null", "~")
_TRUE, _FALSE = ("true", "yes", "y", "t", "1"), ("false", "no", "n", "f", "0")  # transformers' string_to_bool


def _value_from_text(path: str, text: str, source: str) -> Any:
    """The value of leaf `path` given as text, read by the field's type.

    >>> _value_from_text("prompt.system", "Format: <think> then <answer>", "cli"), _value_from_text("run.output_dir", "null", "cli")
    ('Format: <think> then <answer>', None)
    >>> _value_from_text("rewards.functions", "[accuracy, format]", "cli"), _value_from_text("rewards.functions", "format", "cli")
    (['accuracy', 'format'], ['format'])
    >>> _value_from_text("rewards.functions", "accuracy,format", "cli"), _value_from_text("rewards.functions", "a b", "cli")
    (['accuracy', 'format'], ['a', 'b'])
    >>> _value_from_text("dataset.columns", "{q: question, answer: solution}", "cli")
    {'q': 'question', 'answer': 'solution'}
    """
    if path not in LEAF_FIELDS:  # a plug-in reward's parameter: its type is the plug-in's business
        try:
            return read_yaml(text)
        except yaml.YAMLError:
            return text
    annotation = LEAF_FIELDS[path].annotation
    union = get_origin(annotation) in (Union, types.UnionType)
    kinds = [kind for kind in get_args(annotation) if kind is not type(None)] if union else [annotation]
    if union and len(kinds) < len(get_args(annotation)) and text.strip() in _NULLS:
        return None
    if any(get_origin(kind) is list for kind in kinds):
        try:
            value = read_yaml(text)
        except yaml.YAMLError as error:
            raise ConfigError(
                f"{path}: cannot read {text!r} as a list (from {source}): {str(error).splitlines()[0]}"
            ) from None
        if isinstance(value, str):  # accuracy,format or `accuracy format`: as TRL's --reward_funcs takes them
            return value.replace(",", " ").split()
        return value if isinstance(value, list) else [value]
    if any(get_origin(kind) is dict for kind in kinds):
        try:
            return read_yaml(text)  # {a: b}; the schema says what a wrong shape is
        except yaml.YAMLError as error:
            raise ConfigError(
                f"{path}: cannot read {text!r} as a mapping (from {source}): {str(error).splitlines()[0]}"
            ) from None
    return text  # text fields keep it as given; the schema reads numbers and booleans (1e-4, 8, true) itself


def builtin_config(name: str) -> Path:
    """A file or folder shipped in r1kit/configs."""
    return Path(str(resources.files("r1kit") / "configs" / name))


def recipe_path(recipe: str) -> Path:
    """A recipe name (a YAML in r1kit/configs/recipes) or a path to a YAML file."""
    path = Path(recipe)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise ConfigError(f"--recipe: file not found: {path}")
        return path
    path = builtin_config("recipes") / f"{recipe}.yaml"
    if not path.exists():
        raise ConfigError(f"--recipe: unknown recipe {recipe!r}; known: {', '.join(list_recipes())}")
    return path


def list_recipes() -> list[str]:
    return sorted(p.stem for p in builtin_config("recipes").glob("*.yaml"))


def _read_yaml(path: Path) -> dict[str, Any]:
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a YAML config file")
    try:
        values = read_yaml(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (it is not UTF-8); a config is a YAML text file") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(error)}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: must hold a mapping of config sections, not {type(values).__name__}")
    stages = values.get("stages") if isinstance(values.get("stages"), list) else []
    own = [(f"stage {spec.get('name')}'s config: ", spec["config"]) for spec in stages if _has_config(spec)]
    for where, tree in [("", values), *own]:  # a stage's own config too: its later key won there as well
        twice = sorted(key for key, count in Counter(key for key, _ in _leaves(tree)).items() if count > 1)
        if twice:  # `training.max_steps: 7` and `training: {max_steps: 8}`: the later one won without a word
            raise ConfigError(
                f"{path}: {where}{', '.join(twice)} set twice (as a dotted key and within its section); keep one"
            )
    return values


def _has_config(spec: Any) -> bool:
    return isinstance(spec, Mapping) and isinstance(spec.get("config"), Mapping)


def _yaml_problem(error: yaml.YAMLError) -> str:
    """What is wrong and where: the first line alone ("while scanning for the next token") said neither.

    >>> try:
    ...     read_yaml("steps: [1, 2")
    ... except yaml.YAMLError as error:
    ...     print(_yaml_problem(error))
    expected ',' or ']', but got '<stream end>' (line 1, column 13)
    """
    if not isinstance(error, yaml.MarkedYAMLError):
        return str(error).splitlines()[0]
    what = error.problem or error.context or "unreadable"
    mark = error.problem_mark or error.context_mark
    return f"{what} (line {mark.line + 1}, column {mark.column + 1})" if mark else what


def _profiles_in(path: Path, values: dict[str, Any]) -> dict[str, Layer]:
    """The `profiles:` (or the R1 tutorial's `_profiles:`) of a config file, each a layer of config values."""
    profiles: dict[str, Layer] = {}
    for section in ("_profiles", "profiles"):
        found = values.pop(section, None) or {}
        if not isinstance(found, dict):
            raise ConfigError(f"{path}: {section} must map profile names to config values, not {type(found).__name__}")
        for name, body in found.items():
            if body is not None and not isinstance(body, dict):
                raise ConfigError(
                    f"{path}: {section}.{name} must be a mapping of config values (like the file itself), "
                    f"not {type(body).__name__}"
                )
            where = f"{path} {section}.{name}"
            profiles[name] = _yaml_layer(f"profile:{name}", body or {}, where, f"{path.name} {section}.{name}")
    return profiles


def _yaml_layer(source: str, values: Mapping[str, Any], where: str, label: str) -> Layer:
    """A layer of YAML values (a file's, or a profile's in it; `where` names it in errors, `label` in notes). A value
    set under the tutorial's name is traced to that name, so a message about it names the key the user wrote, and
    gets a note line."""
    flat = flatten(values)
    aliased = [key for key in flat if key in PATH_ALIASES]
    spelled = {PATH_ALIASES[key]: f"{source}, as {key}" for key in aliased}
    notes = [f"{key} → {PATH_ALIASES[key]} ({label})" for key in aliased]
    notes += [
        f"{key}: {str(flat[key]).lower()} ({label}): {harmless_note(key)}" for key in flat if harmless(key, flat[key])
    ]
    for spec, config in _stage_configs(values.get("stages")):
        stage = spec.get("name")
        notes += [f"{key} → {PATH_ALIASES[key]} ({label}, stage {stage})" for key in config if key in PATH_ALIASES]
    return Layer(source, _normalised(values, where), spelled, notes)


def _stage_configs(stages: Any) -> Iterator[tuple[Mapping[str, Any], dict[str, Any]]]:
    """(stage, its flattened `config`) of each recipe stage in a `stages:` list that has one; the schema reports
    a malformed list."""
    for spec in stages if isinstance(stages, list) else []:
        if isinstance(spec, Mapping) and isinstance(spec.get("config"), Mapping):
            yield spec, flatten(spec["config"])


_SECTIONS = {path for path, _, is_section in walk_schema(R1kitConfig) if is_section}


def _normalised(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """YAML values with dotted keys (`training.epochs: 0.1`) nested, and the tutorial's paths renamed to r1kit's."""
    tree: dict[str, Any] = {}
    refused: dict[str, str] = {}  # reason → the first path refused for it: every refused section named at once
    written: dict[str, str] = {}  # r1kit path → the name it was written under
    set_to: dict[str, Any] = {}  # r1kit path → its value
    for path, value in flatten(values).items():
        if harmless(path, value):  # `push_to_hub: false` in a TRL config: noted by _yaml_layer, nothing to set
            continue
        if value is None and path in _SECTIONS:  # `training:` with its keys commented out: YAML reads null
            continue
        reason = refusal(path)
        if reason:
            refused.setdefault(reason, path)
            continue
        key, value = canonical(path, value)
        if key in written and set_to[key] == value:  # the tutorial's torch_dtype and bf16, agreeing: one precision
            continue
        if key in written:  # a tutorial name and r1kit's (or two tutorial names) for one key: which one counts?
            raise ConfigError(f"{where}: {written[key]} and {path} both set {key}; keep one")
        written[key], set_to[key] = path, value
        set_path(tree, key, value)
    if refused:
        raise ConfigError(
            "\n".join(f"{where}: {path} is not an r1kit setting: {reason}" for reason, path in refused.items())
        )
    if "stages" in tree:  # a recipe stage's own values are read as the file's are
        tree["stages"] = _stages_normalised(tree["stages"], where)
    return tree


def _stages_normalised(stages: Any, where: str) -> Any:
    """A `stages:` list with each stage's `config` read as a file's values are (dotted keys, tutorial names; empty,
    its keys commented out, as none); `_check_stage_keys` and the schema report a malformed list."""
    if not isinstance(stages, list):
        return stages
    return [
        {**spec, "config": _normalised(spec.get("config") or {}, f"{where}: stage {spec.get('name')}")}
        if isinstance(spec, Mapping) and isinstance(spec.get("config") or {}, Mapping)
        else spec
        for spec in stages
    ]


# ------------------------------------------------------------------------------------------------------ sources


def file_layers(recipe: str | None, config_file: str | None) -> tuple[list[Layer], dict[str, Layer]]:
    """Layers of the recipe and --config files, and the profiles they define."""
    layers, profiles = [], {}
    for path in [recipe_path(recipe) if recipe else None, Path(config_file) if config_file else None]:
        if path is None:
            continue
        values = _read_yaml(path)
        profiles.update(_profiles_in(path, values))
        layers.append(_yaml_layer(f"file:{path}", values, str(path), path.name))
    return layers, profiles


def builtin_profiles() -> dict[str, Any]:
    return _read_yaml(builtin_config("profiles.yaml"))


def profile_layer(name: str, user_profiles: Mapping[str, Layer]) -> Layer:
    """The profile `name`: one a config file defines, else one of r1kit's own."""
    builtin = builtin_profiles()
    if name in user_profiles:
        return user_profiles[name]
    if name not in builtin:
        raise ConfigError(f"--profile: unknown profile {name!r}; known: {', '.join({**builtin, **user_profiles})}")
    return Layer(f"profile:{name}", builtin[name] or {})


def env_layer(environ: Mapping[str, str]) -> Layer:
    """R1KIT_TRAINING_OPTIMIZATION_LEARNING_RATE=1e-4 and the tutorial's GRPO_TRAINING_LEARNING_RATE=1e-4."""
    by_env_name = {_env_form(p): p for p in [*LEAF_PATHS, *PATH_ALIASES]}
    refused_forms = [(_env_form(key), why) for key, why in REFUSED.items()]
    layer = Layer("env", {})
    set_by: dict[str, str] = {}  # config key → the variable that set it
    for name in sorted(environ):
        prefix = next((p for p in ENV_PREFIXES if name.startswith(p)), None)
        if prefix is None or name in ENV_NOT_CONFIG:
            continue
        key = name[len(prefix) :]
        path = by_env_name.get(key)
        refused = None if path is not None else next((why for form, why in refused_forms if _names(key, form)), None)
        if refused is not None:  # the tutorial's GRPO_SYSTEM_SEED: what to use instead, as its key's refusal says
            said = f"environment variable {name} is not an r1kit setting: {refused}"
            if prefix == "R1KIT_":
                raise ConfigError(said)
            layer.ignored.append(said)  # GRPO_* may belong to another tool (GRPO_PROJECT_DIR)
            continue
        if path is None:
            flag = FLAG_ALIASES.get(f"--{key.lower()}")  # GRPO_LEARNING_RATE: a flag's name
            guess = did_you_mean(key.lower().replace("_", "."))
            if flag is not None and flag.value is None:
                guess = f"; the flag --{key.lower()} sets {flag.path}: {prefix}{_env_form(flag.path)}"
            if prefix == "R1KIT_":  # R1KIT_* is ours, so a typo is an error
                raise ConfigError(f"environment variable {name} is not a config key{guess}")
            # GRPO_* may belong to another tool: said, not refused (a typo of the tutorial's name changed nothing)
            layer.ignored.append(f"environment variable {name} names no config key, so it is not read{guess}")
            continue
        key = PATH_ALIASES.get(path, path)
        if key in set_by:  # which one counted was decided by the names' sorted order
            raise ConfigError(f"environment variables {set_by[key]} and {name} both set {key}; keep one")
        set_by[key] = name
        layer.add(path, environ[name], f"env:{name}")
        if path in PATH_ALIASES:
            layer.notes.append(f"{name} → {PATH_ALIASES[path]}")
    return layer


def _names(name: str, form: str) -> bool:
    """An environment variable's name (after its prefix) is `form` or a key under it."""
    return name == form or name.startswith(form + "_")


def _env_form(key: str) -> str:
    """A config key (or a refused flag) as an environment variable's name after its prefix.

    >>> _env_form("rewards.repetition"), _env_form("--push_to_hub")
    ('REWARDS_REPETITION', 'PUSH_TO_HUB')
    """
    return key.lstrip("-").replace(".", "_").upper()


def _unclosed(text: str) -> bool:
    """`text` opens more YAML lists or mappings than it closes.

    >>> _unclosed("[accuracy,"), _unclosed("[accuracy, format]")
    (True, False)
    """
    return text.count("[") + text.count("{") > text.count("]") + text.count("}")


def cli_layer(args: list[str], command: str | None = None) -> Layer:
    """`--a.b.c value`, `--a.b.c=value`, multi-word values such as `[x, y]`, and the flag aliases (TRL's trainer
    flags set the section of the stage that `r1kit COMMAND` runs alone). Every flag's problem is named at once, not
    one per try."""
    layer = Layer("cli", {})
    problems, turned_off = [], []
    given = _flags(args)
    deferred = _precision_switches_off(given)
    for flag, words in given:
        strategy = STRATEGY_FLAGS.get(flag)
        try:
            if flag in deferred:
                layer.notes.append(f"{flag} {' '.join(words)}: {deferred[flag]} sets the precision")
                continue
            if strategy is None:
                _read_flag(layer, flag, words, command)
                continue
            said = " ".join(words).strip().lower()
            if said == "steps" and strategy.off:  # transformers' eval_steps: logging_steps unless given
                layer.every_logging_step = (flag, strategy.off[0])
                layer.notes.append(
                    f"{flag} steps: every monitoring.logging_steps steps where {strategy.off[0]} is not set, as in "
                    "transformers (where neither is set, evaluation stays off: r1kit logs every step by default)"
                )
            elif said == "steps":
                layer.notes.append(f"{flag} steps: r1kit's way already ({strategy.every}; {strategy.unset})")
            elif said == "no" and strategy.off:
                turned_off.append((flag, strategy.off))
            else:
                raise ConfigError(strategy.answer(flag, said))
        except ConfigError as problem:
            problems.append(str(problem))
    for flag, (path, value) in turned_off:  # TRL's `--eval_strategy no` wins over an --eval_steps in any place
        layer.add(path, value, f"cli:{flag}")
        layer.notes.append(f"{flag} no → --{path} {value}")
    if problems:
        raise ConfigError("\n".join(problems))
    return layer


def _flags(args: list[str]) -> list[tuple[str, list[str]]]:
    """Each `--flag` of a command line with the words given to it: `--a.b.c value`, `--a.b.c=value` and a value of
    several words such as `[x, y]`, also after "=" (`--a=[x,` `y]`: the shell split it).

    >>> _flags(["--out", "runs/a", "--rewards.functions=[a,", "b]", "--resume"])
    [('--out', ['runs/a']), ('--rewards.functions', ['[a,', 'b]']), ('--resume', [])]
    """
    return [(flag, words) for flag, words, _ in _flag_spans(args)]


def _flag_spans(args: list[str]) -> list[tuple[str, list[str], slice]]:
    """_flags, with the slice of `args` each flag and its words take."""
    flags, index = [], 0
    while index < len(args):
        flag, start = args[index], index
        if not flag.startswith("--") or len(flag) == 2:
            raise ConfigError(f"unexpected argument {flag!r}: options look like --section.key value")
        flag, has_equals, inline = flag.partition("=")
        index += 1
        words = [inline] if has_equals else []
        while (not has_equals or _unclosed(" ".join(words))) and index < len(args) and not args[index].startswith("--"):
            words.append(args[index])
            index += 1
        flags.append((flag, words, slice(start, index)))
    return flags


def without_flags_for(args: list[str], key: str) -> list[str]:
    """A command line without the flags that set `key`, whatever their spelling (`--out`, `--output_dir`).

    >>> without_flags_for(["--out", "runs/a/", "--resume", "--output_dir=runs/a", "--sft.max_steps", "3"], "run.output_dir")
    ['--resume', '--sft.max_steps', '3']
    """
    kept = []
    for flag, _, span in _flag_spans(args):
        alias = FLAG_ALIASES.get(flag)
        path = alias.path if alias else flag[2:]
        if PATH_ALIASES.get(path, path) != key:
            kept += args[span]
    return kept


# The flags that set the precision, read together (`_precision_switches_off`): TRL's switches, by the precision they
# ask for, and the others by the key their value is read as (the tutorial's `training.precision.bf16` is --bf16 by
# its dotted name; r1kit's own keys beside TRL's switches)
_PRECISION_SWITCHES = {"--bf16": "bf16", "--fp16": "fp16"}
_PRECISION_FLAGS = {
    **_PRECISION_SWITCHES,
    "--torch_dtype": "model.torch_dtype",
    "--dtype": "model.torch_dtype",
    "--model.torch_dtype": "model.torch_dtype",
    "--training.precision.bf16": "training.precision.bf16",
    "--model.precision": "model.precision",
}


def _precision_switches_off(given: list[tuple[str, list[str]]]) -> dict[str, str]:
    """TRL's precision flags on one command line, read as TRL reads them whatever their order: a switch given false
    (`--bf16 false`, which TRL commands pass to turn its bf16 default off) and `--torch_dtype auto` give way to a flag
    that asks for a precision, and auto to a switch given false ({flag: the flag it gives way to}); two that ask for
    different precisions are a ConfigError. (In order, `--fp16 true --bf16 false` trained in fp32, and `--bf16 true
    --fp16 true` in fp16 without a word.)

    >>> _precision_switches_off(_flags(["--fp16", "true", "--bf16", "false"]))
    {'--bf16': '--fp16'}
    >>> _precision_switches_off(_flags(["--bf16", "false", "--torch_dtype", "auto"]))
    {'--torch_dtype': '--bf16'}
    >>> _precision_switches_off(_flags(["--bf16", "true", "--bf16", "false"]))  # the same flag again: in order, the last
    {}
    """
    # each flag's last value: a flag given again overrides itself, in order
    last = {flag: " ".join(words).strip().lower() for flag, words in given if flag in _PRECISION_FLAGS}
    strong, off, auto = {}, [], []
    for flag, value in last.items():
        if not value and flag not in _PRECISION_SWITCHES:  # a key flag without its value: read alone, "missing value"
            continue
        if flag in _PRECISION_SWITCHES and value in _FALSE:
            off.append(flag)
            continue
        if flag in _PRECISION_SWITCHES:
            strong[flag] = _PRECISION_SWITCHES[flag]
            continue
        key = _PRECISION_FLAGS[flag]  # --torch_dtype bfloat16: a dtype's name; the bf16 key's false, off: a switch off
        precision = canonical(key, _value_from_text(key, value, f"cli:{flag}"))[1]
        if precision == "auto":
            auto.append(flag)
        elif precision == "fp32" and key == "training.precision.bf16":
            off.append(flag)
        else:
            strong[flag] = precision
    if len(set(strong.values())) > 1:
        said = ", ".join(f"{flag} ({precision})" for flag, precision in strong.items())
        raise ConfigError(f"{said} ask for different precisions; keep one")
    if strong:
        return {flag: next(iter(strong)) for flag in (*off, *auto)}
    return {flag: off[0] for flag in auto if off}


def tutorial_flag_lands(flag: str, path: str, command: str | None) -> str | None:
    """The key a tutorial's or TRL's flag alias (`flag`, for key `path`) sets under `r1kit COMMAND`: `path` in the
    stage's own section (`for_stage`), else the stage's (or eval's, chat's) own key of the flag's name (`r1kit
    cold_start --batch_size 8` is cold_start.batch_size, which has no per_device_train of its own); None where the
    command has no such setting (refused). `r1kit COMMAND --help` lists the same."""
    stage_path = for_stage(path, command, LEAF_PATHS.__contains__)
    if stage_path in (None, path) and command not in (None, "run", "config"):
        stage_path = stage_key(flag[2:], command, LEAF_PATHS.__contains__) or stage_path
    return stage_path


def _read_flag(layer: Layer, flag: str, words: list[str], command: str | None) -> None:
    """One flag and its words into `layer`, or a ConfigError saying what is wrong with it."""
    alias = FLAG_ALIASES.get(flag)
    said = " ".join(words).strip().lower()
    if harmless(flag, said):
        layer.notes.append(f"{flag} {said}: {harmless_note(flag)}")
        return
    reason = refusal(flag) or refusal(flag[2:])
    if reason:
        raise ConfigError(f"{flag} is not an r1kit option: {reason}")
    switch = alias is not None and alias.value is not None
    if switch:
        path, text = alias.path, str(alias.value).lower()
        said = " ".join(words).strip().lower()
        off = alias.off  # the switch's value when given false: its own, or the opposite of a bool switch's
        if off is None and isinstance(alias.value, bool):
            off = not alias.value
        if words and off is not None and said in _TRUE + _FALSE:
            text = str(alias.value if said in _TRUE else off).lower()  # TRL's `--use_peft false`, `--bf16 false`
        elif words:
            raise ConfigError(f"{flag} is a switch and takes no value (got {' '.join(words)!r})")
    else:
        path = alias.path if alias else flag[2:]
        if alias is None and "." not in path:  # `r1kit ppo --kl_coef 0.1`: the stage's own key, as in TRL
            own = stage_key(path, command, LEAF_PATHS.__contains__)
            if own:
                layer.notes.append(f"{flag} → --{own}")
                path = own
        text = " ".join(words)  # the shell splits `[accuracy, format]` into `[accuracy,` and `format]`
        if alias and alias.as_list and text and not text.startswith("["):
            text = "[" + ", ".join(w for w in text.replace(",", " ").split()) + "]"
    if alias is None and path in PATH_ALIASES and path not in VALUE_CONVERSIONS:
        # the tutorial's dotted names land where its flags do: `r1kit sft --training.learning_rate` is SFT's
        landed = tutorial_flag_lands(flag, PATH_ALIASES[path], command)
        if landed not in (None, PATH_ALIASES[path]):
            layer.notes.append(f"{flag} → --{landed}")
            path = landed
    if alias and alias.tutorial:
        stage_path = tutorial_flag_lands(flag, path, command)
        if stage_path is None:
            raise ConfigError(
                f"{flag} sets {path}, which `r1kit {command}` does not read, and the {command} stage has no such "
                f"setting; see `r1kit {command} --help`"
            )
        path = stage_path
    if path not in LEAF_PATHS and path not in PATH_ALIASES and not plugin_param(path):
        raise ConfigError(f"unknown option {flag}{did_you_mean(path, as_flag=True, command=command)}")
    if not switch and not words:  # after the name is known: a misspelt switch is an unknown option
        raise ConfigError(f"{flag}: missing value")
    key = PATH_ALIASES.get(path, path)
    before = layer.value_sources.get(key)
    earlier = _get(layer.values, key) if before is not None else None
    layer.add(path, text, f"cli:{flag}")
    if before not in (None, f"cli:{flag}") and not _same_value(key, _get(layer.values, key), earlier):
        # a tutorial's name and r1kit's for one key (`--model_name A --model.name B`): the last one won, unsaid (a
        # file and the environment refuse it too); the same flag again is the shell's last-wins
        raise ConfigError(f"{before.removeprefix('cli:')} and {flag} both set {key}, to different values; keep one")
    if (alias and alias.tutorial) or path in PATH_ALIASES:
        hint = f" ({alias.hint})" if alias and alias.hint else ""
        layer.notes.append(f"{flag} → --{PATH_ALIASES.get(path, path)}{hint}")


def _same_value(path: str, first: Any, second: Any) -> bool:
    """Whether two values of `path` as the command line gave them are one setting, as its field's type reads them:
    `1e-4` and `0.0001` for a number, `True` and `true` for a switch; text as written (`Runs/A` is not `runs/a`, a
    revision `1.0` not `1`).

    >>> _same_value("training.optimization.learning_rate", "1e-4", "0.0001"), _same_value("run.seed", "01", "1")
    (True, True)
    >>> _same_value("model.lora.enabled", "True", "true"), _same_value("model.revision", "1.0", "1")
    (True, False)
    """
    if first == second:
        return True
    annotation = LEAF_FIELDS[path].annotation if path in LEAF_FIELDS else None
    kinds = set(get_args(annotation)) | {annotation}
    said = [str(value).strip().lower() for value in (first, second)]
    if bool in kinds:
        return all(word in _TRUE for word in said) or all(word in _FALSE for word in said)
    if kinds & {int, float}:
        try:
            return float(said[0]) == float(said[1])
        except ValueError:
            return False
    return False


def overridden_by_stages(resolved: ResolvedConfig) -> list[str]:
    """A line for each value the user set on the command line, in the environment or in their --config file that a
    recipe stage sets otherwise for itself: the stage's own value wins (R1kitConfig.for_stage), so the user's does not
    reach it.

    >>> resolved = resolve_config(recipe="r1", overrides=["--rewards.functions", "[accuracy, cosine]"], environ={})
    >>> overridden_by_stages(resolved)  # doctest: +ELLIPSIS
    ["stages: reasoning_rl sets its own rewards.functions (['accuracy', 'format', 'language_consistency']), ..."]
    """
    values = flatten(resolved.config.model_dump(exclude={"stages"}))
    where = resolved.sources["stages"]
    recipe = Path(where.removeprefix("file:")).resolve()
    # r1kit's own recipes live in the installed package: the user edits a copy of one, and their own file in place;
    # stages given on the command line or in a variable are edited there (was "edit that stage in DIR/cli:--stages")
    shipped = recipe.parent == builtin_config("recipes").resolve()
    edit = (
        where.split(":", 1)[-1]  # --stages, R1KIT_STAGES
        if not where.startswith("file:")
        else "a copy of the recipe (r1kit config show)"
        if shipped
        else str(recipe)
    )
    lines = []

    def users(key: str) -> str | None:
        """Where the user set `key`, or None (a default, a profile, the recipe's own file)."""
        source = resolved.sources.get(key, "")
        mine = source.startswith(("cli:", "env:")) or (
            source.startswith("file:") and source != resolved.sources["stages"]  # not the recipe's own file
        )
        return source.split(":", 1)[1] if mine else None

    for spec in resolved.config.stages:
        for key, own in flatten(spec.config).items():
            if (source := users(key)) and values.get(key) != own:
                lines.append(
                    f"stages: {spec.name} sets its own {key} ({own!r}), which wins over {source}'s "
                    f"{values.get(key)!r}; to change it, edit that stage in {edit}"
                )
            section, _, leaf = key.rpartition(".")
            other = f"{section}.{_EPOCHS_OR_STEPS.get(leaf)}"  # a stage's max_steps clears the user's epochs
            if leaf in _EPOCHS_OR_STEPS and own is not None and (source := users(other)) and values.get(other):
                lines.append(
                    f"stages: {spec.name} sets its own {key} ({own!r}), so {source}'s {values[other]!r} ({other}) "
                    f"does not reach it (a stage trains by epochs or by steps); to change it, edit that stage in {edit}"
                )
    return lines


_EPOCHS_OR_STEPS = {"epochs": "max_steps", "max_steps": "epochs"}


# The rewards section's settings that are not one reward's.
_NOT_A_REWARD = ("functions", "plugin_timeout_seconds", "verification")


def unused_reward_settings(resolved: ResolvedConfig, command: str) -> list[str]:
    """A line for each value the user set for a reward that no reward list read by `r1kit COMMAND` names (a rollout
    stage's own: the run's list for `r1kit grpo`, each rollout stage's in a recipe): it changes nothing, as the
    tutorial's cosine settings do without `cosine` in its list.

    >>> unused_reward_settings(resolve_config(overrides=["--rewards.cosine.weight", "2"], environ={}), "run")
    ['rewards.cosine.weight (from cli:--rewards.cosine.weight): cosine is not in rewards.functions, so it changes nothing']
    """
    config = resolved.config
    if command in ROLLOUT_KINDS:
        lists = [config.rewards.functions]
    else:  # a recipe: what its rollout stages score with, each list after the stage's own config
        lists = [config.for_stage(spec).rewards.functions for spec in config.stages if spec.stage_kind in ROLLOUT_KINDS]
    used = {short_name(name) for names in lists for name in names}  # a plug-in's settings sit under its short name
    return [
        f"{key} (from {source}): {split_path(key)[1]} is not in rewards.functions, so it changes nothing"
        for key, source in _given_in(resolved, config.rewards, "rewards")
        if len(split_path(key)) >= 3 and short_name(split_path(key)[1]) not in (*_NOT_A_REWARD, *used)
    ]


def unused_curriculum_settings(resolved: ResolvedConfig, command: str) -> list[str]:
    """A line for each curriculum value the user set where no GRPO stage `r1kit COMMAND` runs has the curriculum on:
    `--curriculum.max_pass_rate 0.5` without `--curriculum.enabled true` changed nothing, without a word.

    >>> unused_curriculum_settings(resolve_config(overrides=["--curriculum.rescore_every", "2"], environ={}), "run")
    ['curriculum.rescore_every (from cli:--curriculum.rescore_every): curriculum.enabled is false, so it changes nothing']
    """
    config = resolved.config
    stages = [config] if command == "grpo" else [config.for_stage(s) for s in config.stages if s.stage_kind == "grpo"]
    if not stages or any(stage.curriculum.enabled for stage in stages):  # no GRPO stage: said as a key not read
        return []
    return [
        f"{key} (from {source}): curriculum.enabled is false, so it changes nothing"
        for key, source in _given_in(resolved, config.curriculum, "curriculum")
        if key != "curriculum.enabled"
    ]


def _given_in(resolved: ResolvedConfig, section: BaseModel, name: str) -> list[tuple[str, str]]:
    """(key, source) of each value of the config's `section` (named `name`) the user set for this command: on its
    command line or in the environment, or in a file. A file's value equal to the default is no setting (a run's
    saved config.yaml, read again by --resume, and the dump of `r1kit config` hold every key); nor is a run's own
    saved value (its profile's): noted when the run was made, not again at each --resume."""
    values = flatten(section.model_dump(), f"{name}.")
    defaults = flatten(type(section)().model_dump(), f"{name}.")
    return [
        (key, source)
        for key, source in resolved.sources.items()
        if key.startswith(f"{name}.")
        and (
            source.startswith(("cli:", "env:"))
            or (
                source.startswith("file:")
                and values.get(key) != defaults.get(key)
                and not _saved_by_a_run(source.removeprefix("file:"))
            )
        )
    ]


def _saved_by_a_run(path: str) -> bool:
    """Whether the config file `path` is a run's saved config.yaml: beside a recipe run's manifest, or a stage
    folder of its own (RUN/<stage kind>); not a user's config beside the runs it made (`exp/config.yaml`, `exp/run1`).
    """
    folder = Path(path).parent
    stage_alone = any((folder / kind / "manifest.json").exists() for kind in STAGE_KINDS)
    return Path(path).name == "config.yaml" and ((folder / "manifest.json").exists() or stage_alone)


def greedy_despite_temperature(resolved: ResolvedConfig) -> list[str]:
    """A line where the user set evaluation.temperature but evaluation samples nothing: pass@1 is greedy, and the
    temperature samples only pass@k's completions (`r1kit eval --temperature 0.7` scored greedily without a word).

    >>> greedy_despite_temperature(resolve_config(overrides=["--evaluation.temperature", "0.7"], environ={}))[0][:47]
    'evaluation.temperature 0.7 (from cli:--evaluati'
    """
    evaluation, source = resolved.config.evaluation, resolved.sources.get("evaluation.temperature", "default")
    # a file's default value is no setting: a run's saved config.yaml (`--config RUN/config.yaml`, --resume) holds it
    default = type(evaluation).model_fields["temperature"].default
    if (
        source == "default"
        or evaluation.num_samples > 1
        or (source.startswith("file:") and evaluation.temperature == default)
    ):
        return []
    return [
        f"evaluation.temperature {evaluation.temperature:g} (from {source}) changes nothing: pass@1 is greedy, and "
        "the temperature samples pass@k's completions only with evaluation.num_samples above 1"
    ]


def not_read_by(resolved: ResolvedConfig, command: str | None) -> list[str]:
    """A line for each value the user set on the command line or in the environment in a section that `r1kit
    COMMAND` does not read (a stage run alone: registry.READS; eval, chat: TOOL_READS; run: none of its recipe's
    stages): accepted, as any valid key is, but said.

    >>> not_read_by(resolve_config(overrides=["--grpo.temperature", "0.9"], environ={}), "sft")
    ['`r1kit sft` does not read grpo.temperature (from cli:--grpo.temperature): it is for other stages']
    """
    if command == "run":  # a recipe: what none of its stages reads (the rlhf recipe and --beta, which is GRPO's)
        stages = resolved.config.stages
        return [
            f"no stage of this recipe ({', '.join(spec.name for spec in stages)}) reads {key} (from {source}): it "
            "changes nothing"
            for key, source in resolved.sources.items()
            if source.startswith(("cli:", "env:"))
            and key != "stages"  # the recipe itself
            and not any(reads(spec.stage_kind, key) for spec in stages)
        ]
    if command not in READS and command not in TOOL_READS:
        return []
    others = "stages" if command in READS else "commands"
    return [
        f"`r1kit {command}` does not read {key} (from {source}): it is for other {others}"
        for key, source in resolved.sources.items()
        if source.startswith(("cli:", "env:")) and not reads(command, key)
    ]


# ------------------------------------------------------------------------------------------------------ resolve


def resolve_config(
    *,
    recipe: str | None = None,
    config_file: str | None = None,
    profile: str = "default",
    environ: Mapping[str, str] | None = None,
    overrides: list[str] | None = None,
    command: str | None = None,
) -> ResolvedConfig:
    """The validated config and the source of every value (`command`: the r1kit command it is for, which places
    TRL's trainer flags). Raises ConfigError (one line) on any problem."""
    files, user_profiles = file_layers(recipe, config_file)
    layers = [*files, profile_layer(profile, user_profiles), env_layer(os.environ if environ is None else environ)]
    layers.append(cli_layer(overrides or [], command))

    merged = R1kitConfig().model_dump()
    sources = dict.fromkeys(flatten(merged), "default")
    rank: dict[str, int] = {}  # leaf path → the precedence of the layer that set it last (1 = lowest)
    replaced: list[tuple[str, Any, str]] = []  # (path, value, source) that a later layer set again
    for index, layer in enumerate(layers, start=1):
        _check_known(flatten(layer.values), layer, command)
        for path in flatten(layer.values):
            if path in rank and path in LEAF_FIELDS:
                replaced.append((path, _get(merged, path), sources[path]))
            sources[path] = layer.value_sources.get(path, layer.source)
            rank[path] = index
        merged = deep_merge(merged, layer.values, REPLACED_WHOLE)
    for path, value, source in replaced:
        _check_replaced(path, value, source, sources[path])
    for flag, path in [layer.every_logging_step for layer in layers if layer.every_logging_step]:
        # set by no source: every logging step, from wherever that was set (r1kit's default, every step, would
        # evaluate the held-out problems at every step)
        if path not in rank and "monitoring.logging_steps" in rank:
            section, key = path.split(".")
            merged[section][key] = merged["monitoring"]["logging_steps"]
            sources[path] = f"cli:{flag} steps (every monitoring.logging_steps, {sources['monitoring.logging_steps']})"
    gave_way = _epochs_or_steps(merged, sources, rank)
    _check_stage_keys(merged["stages"], sources["stages"])
    try:
        # a stage run alone (`r1kit rloo`) is checked as that stage (overlong against rloo's limit, not GRPO's)
        config = R1kitConfig.model_validate(merged, context={"command": command})
    except ValidationError as error:
        raise ConfigError(_describe(error, sources)) from None
    notes = [note for layer in layers for note in layer.notes]
    # a profile comes after --config and the recipe: said where it replaces a value the user chose (the `profile`
    # profile's one GRPO stage replaced the r1 recipe's six without a word). A file's layer is named by its Path
    # (`./c.yaml` is `c.yaml`), and a tutorial name is said after ", as".
    chosen = {f"file:{Path(config_file)}": config_file} if config_file else {}
    chosen |= {f"file:{recipe_path(recipe)}": f"the {recipe} recipe"} if recipe else {}
    overridden = [
        f"--{sources[path].replace(':', ' ')} sets {path} to {_said(path, _get(merged, path))} over "
        f"{_said(path, value)} from {chosen[source.partition(', as ')[0]]} (a flag wins over both)"
        for path, value, source in replaced
        if source.partition(", as ")[0] in chosen
        and sources[path].startswith("profile:")
        and _get(merged, path) != value  # the same value again changes nothing
    ]
    overridden += [  # `epochs: 1` in the user's file, the profile's max_steps: training ran by the profile's steps
        f"--{winner_source.replace(':', ' ')} sets {winner} to {_said(winner, _get(merged, winner))}, so {path} "
        f"{_said(path, value)} from {chosen[source.partition(', as ')[0]]} gives way (a flag wins over both)"
        for path, value, source, winner, winner_source in gave_way
        if source.partition(", as ")[0] in chosen and winner_source.startswith("profile:")
    ]
    if recipe and config_file:  # a file after the recipe it was named with: a `config show` dump replaced it whole
        recipes, files = f"file:{recipe_path(recipe)}", f"file:{Path(config_file)}"
        overridden += [
            f"--config {config_file} sets {path} to {_said(path, _get(merged, path))} over {_said(path, value)} "
            f"from the {recipe} recipe (the file is read after it)"
            for path, value, source in replaced
            if source == recipes and sources[path] == files and _get(merged, path) != value
        ]
    ignored = [line for layer in layers for line in layer.ignored]
    if command == "run":
        _refuse_trainer_flags_no_stage_reads(config, sources)
    return ResolvedConfig(config, sources, list(dict.fromkeys(notes)), overridden, ignored)


def _refuse_trainer_flags_no_stage_reads(config: R1kitConfig, sources: Mapping[str, str]) -> None:
    """`r1kit run` places TRL's and the notebooks' trainer flags on GRPO's keys. Under a recipe whose stages do not
    read one but have settings of their own for it (`--recipe rlhf --learning_rate 2e-5`: SFT's, DPO's), the run
    went on with each stage's default (SFT's learning rate, 50 times the notebook's), after a note: refused, naming
    those settings. A flag no stage has a setting for changes nothing and is said so (`not_read_by`)."""
    for path, source in sources.items():
        flag = source.removeprefix("cli:")
        if flag == source or flag not in FLAG_ALIASES or any(reads(spec.stage_kind, path) for spec in config.stages):
            continue
        own = [for_stage(path, spec.stage_kind, LEAF_PATHS.__contains__) for spec in config.stages]
        own = list(dict.fromkeys(key for key in own if key not in (None, path)))
        if own:
            names = ", ".join(spec.name for spec in config.stages)
            raise ConfigError(
                f"{flag} sets {path}, which no stage of this recipe ({names}) reads; set the stages' own: "
                f"{', '.join(f'--{key}' for key in own)}"
            )


# A stage trains for a number of passes over its data or of optimizer steps; max_steps has a default.
STEP_LIMITS = {
    f"{section}.epochs": f"{section}.max_steps" for section in ("training", "sft", "reward_model", "dpo", "rloo")
}


def _epochs_or_steps(
    merged: dict[str, Any], sources: dict[str, str], rank: Mapping[str, int]
) -> list[tuple[str, Any, str, str, str]]:
    """The later of `epochs` and `max_steps` wins: an explicitly set `epochs` trains by epochs, and a max_steps from a
    lower layer (or the default) gives way, and the other way round. Both set in one layer (the same file, or both on
    the command line) is an error naming both. Returns what gave way, set by a source: (key, value, its source, the
    key that won, that key's source)."""
    gave_way = []
    for epochs, steps in STEP_LIMITS.items():
        section, steps_key = steps.split(".")
        epochs_key = epochs.split(".")[1]
        values = merged[section]
        if not isinstance(values, dict) or values.get(epochs_key) is None or values.get(steps_key) is None:
            continue  # nothing to decide (or a malformed section, which validation reports)
        if rank[epochs] == rank.get(steps) and sources[steps] == "cli:--max_steps":
            # TRL's flags, as a TRL command gives them: a positive max_steps overrides num_train_epochs (transformers)
            values[epochs_key] = None
            sources[epochs] = f"gives way to {steps} (--max_steps overrides --num_train_epochs, as in transformers)"
            continue
        if rank[epochs] == rank.get(steps):
            raise ConfigError(
                f"{epochs} ({sources[epochs]}) and {steps} ({sources[steps]}) are both set; set one: epochs counts "
                "passes over the data, max_steps optimizer steps"
            )
        by_epochs = rank[epochs] > rank.get(steps, 0)
        (loser, loser_key, winner) = (steps, steps_key, epochs) if by_epochs else (epochs, epochs_key, steps)
        if loser in rank:  # a value some source set (not the default)
            gave_way.append((loser, values[loser_key], sources[loser], winner, sources[winner]))
        values[loser_key] = None
        runs_by = "epochs" if by_epochs else "steps"
        sources[loser] = f"gives way to {winner} (set by {sources[winner]}): training runs by {runs_by}"
    return gave_way


def _get(tree: Mapping[str, Any], path: str) -> Any:
    for name in split_path(path):
        tree = tree[name]
    return tree


def _check_replaced(path: str, value: Any, source: str, winner: str) -> None:
    """A value a later source replaces is still checked on its own: a file that is wrong stays wrong (it fails as
    soon as the profile or flag that hides it is dropped). Only the key's own rules apply; rules across keys are the
    final config's."""
    try:
        R1kitConfig.model_validate(_nested(path, value))
    except ValidationError as error:
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"])
            if where == path or where.startswith(f"{path}."):  # the key, or an item of its list or mapping
                message = problem["msg"].removeprefix("Value error, ")
                raise ConfigError(
                    f"{path}: {message} (got {value!r}, from {source}, though {winner} overrides it)"
                ) from None


def _nested(path: str, value: Any) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    set_path(tree, path, value)
    return tree


def _is_known(path: str) -> bool:
    # a section's path too: an empty mapping for a whole section is harmless
    return path in LEAF_PATHS or path in SECTION_PATHS or plugin_param(path)


def _check_known(paths: Iterable[str], layer: Layer, command: str | None) -> None:
    """Every unknown key of a layer in one error (a file of TRL's flat settings took one run per key)."""
    unknown = [path for path in paths if not _is_known(path)]
    if len(unknown) == 1:
        path = unknown[0]
        source = layer.value_sources.get(path, layer.source)
        raise ConfigError(f"unknown key {path!r} (from {source}){did_you_mean(path, command=command)}")
    if unknown:
        sources = dict.fromkeys(layer.value_sources.get(path, layer.source) for path in unknown)
        said = [
            f"{path!r}" + (f" ({hint[2:]})" if (hint := did_you_mean(path, command=command)) else "")
            for path in unknown
        ]
        raise ConfigError(f"unknown keys (from {', '.join(sources)}): {', '.join(said)}")


# what a stage's own config may set of `evaluation`: how it scores itself while it trains
_STAGE_EVALUATION_KEYS = (
    "evaluation.every_steps",
    "evaluation.during_training_samples",
    "evaluation.max_new_tokens",
    "evaluation.batch_size",
)


def _check_stage_entry(spec: Any, source: str) -> None:
    """A ConfigError for a recipe stage written as a bare name (`- sft`) or with a key a stage has not (`confg`): the
    schema said "Extra inputs are not permitted", naming neither the stage nor the key meant."""
    if isinstance(spec, str):
        raise ConfigError(
            f"stages: {spec!r} is a name alone; write each stage as a mapping: - name: {spec} (from {source})"
        )
    for key in spec if isinstance(spec, Mapping) else ():
        if key not in StageSpec.model_fields:
            close = difflib.get_close_matches(str(key), list(StageSpec.model_fields), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f" (a stage has {', '.join(StageSpec.model_fields)})"
            raise ConfigError(f"stages: {spec.get('name', '?')}: unknown key {key!r}{hint} (from {source})")


def _check_stage_keys(stages: Any, source: str) -> None:
    """A recipe stage's own `config` keys are checked as a file's are, a typo named with its near miss; the schema
    then checks their values (and reports a malformed stage list). `source` says where the stage list came from."""
    for spec in stages if isinstance(stages, list) else []:
        _check_stage_entry(spec, source)
    for spec, config in _stage_configs(stages):
        name, kind = spec.get("name"), spec.get("kind") or spec.get("name")
        for path in config:
            if not _is_known(path):
                raise ConfigError(
                    f"stages: {name}: unknown key {path!r} in its config (from {source}){did_you_mean(path)}"
                )
            if path.startswith("evaluation.") and path not in _STAGE_EVALUATION_KEYS:
                # every model of a run is scored alike, so that their scores pair: the table's settings are the run's
                raise ConfigError(
                    f"stages: {name}: {path} is the run's: every stage's model is evaluated with the same settings, so "
                    f"that their scores pair (from {source}); set it at the top of the recipe or on the command line "
                    f"(a stage sets only {', '.join(_STAGE_EVALUATION_KEYS)}, its evaluation during training)"
                )
            if kind in READS and not reads(kind, path):  # it would change nothing, without a word
                own = for_stage(path, kind, LEAF_PATHS.__contains__)  # training.* → sft.* where sft has the setting
                hint = f"its own setting is {own}" if own and own != path else "set it on the stage that uses it"
                unread = f" but not {', '.join(READS_NOT[kind])}" if kind in READS_NOT else ""
                raise ConfigError(
                    f"stages: {name}: {path} is not read by a {kind} stage (it reads "
                    f"{', '.join((*COMMON_SECTIONS, *sections_said(kind)))}{unread}; from {source}); {hint}"
                )


def _said(path: str, value: Any) -> str:
    """A value as a note shows it: a list of stages by their names.

    >>> _said("stages", [{"name": "sft"}, {"name": "rl", "kind": "grpo"}]), _said("training.max_steps", 5)
    ('[sft, rl]', '5')
    """
    if path == "stages" and isinstance(value, list):
        return f"[{', '.join(str(stage.get('name')) for stage in value if isinstance(stage, Mapping))}]"
    return repr(value)


_STAGE_KEY = re.compile(r"its config is invalid: ([\w.]+):")  # the key a recipe stage's problem names


def _describe(error: ValidationError, sources: Mapping[str, str]) -> str:
    """The first validation problem as one line: key, problem, offending value and where it came from."""
    path, message, value = first_problem(error)
    if not path and message.startswith("stages:"):  # a recipe stage's: its file, and where the run set that key
        named = _STAGE_KEY.search(message)
        given = [
            f"; {leaf} from {where}"
            for leaf, where in sources.items()
            if named and where != "default" and (leaf == named[1] or leaf.startswith(f"{named[1]}."))
        ]
        return f"{message} (from {sources['stages']}{''.join(given)})"
    if not path:  # a rule across sections: its message names the keys
        return message
    section, _, key = path.rpartition(".")
    if value is None and section in LEAF_PATHS and ":" in key:  # {problem:question}: YAML's key with no value
        return f"{section}: {key!r} is one key without a value to YAML; put a space after the colon ({{a: b}})"
    source = sources.get(path, "default")
    if path in SECTION_PATHS and not isinstance(value, Mapping):  # `training:` then `  max_steps 5` (no colon)
        return f"{path}: is a section and takes its keys ({_keys_of(path)}) (got {value!r}, from {source})"
    if path.startswith("stages."):  # a stage's name or kind: was "stages.name: String should match …", no value
        return f"{path}: {message} (got {value!r}, from {sources.get('stages', 'default')})"
    if path not in LEAF_PATHS:  # a rule across the keys of one section: where its keys set were set
        given = [
            f"{leaf} from {where}"
            for leaf, where in sources.items()
            if leaf.startswith(f"{path}.") and where != "default"
        ]
        return f"{path}: {message}" + (f" ({', '.join(given)})" if given else "")
    return f"{path}: {message} (got {value!r}, from {source})"


class _Yaml12Dumper(yaml.SafeDumper):
    """A dumper that quotes the text YAML 1.2 reads as a number (`revision: '1e3'`, `'0o17'`): written plain, a
    run's saved config read back another revision, 1000.0 (or 15)."""


_Yaml12Dumper.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT, list("-+0123456789."))
_Yaml12Dumper.add_implicit_resolver("tag:yaml.org,2002:int", _YAML12_INT, list("-+0123456789"))  # `0o17` too


def to_yaml(config: R1kitConfig) -> str:
    """The config as YAML (a run's config.yaml, `r1kit config show`) that `read_yaml` reads back as it was.

    >>> "revision: '1e3'" in to_yaml(R1kitConfig(model={"revision": "1e3"}))
    True
    """
    return yaml.dump(config.model_dump(), Dumper=_Yaml12Dumper, sort_keys=False, allow_unicode=True)
