"""Where configuration values come from, and how they combine.

Precedence, lowest first:
    schema defaults < YAML (a recipe, then --config FILE) < profile < environment variables < command line

- YAML files hold any part of the schema, plus an optional `profiles:` mapping of extra named profiles.
- Profiles: built-in ones in `r1kit/configs/profiles.yaml` (default, dev, prod, test, profile) and the user's.
- Environment: `R1KIT_<PATH>` (dots → underscores, upper case), and the R1 tutorial's `GRPO_<PATH>`.
- Command line: `--a.b.c value`, `--a.b.c=value`, lists as `[x,y]` or `[x, y]`, plus the flag aliases below.

Values are parsed as YAML (OmegaConf) and merged with OmegaConf, then validated by the pydantic schema. Every
value keeps the name of its source, for `r1kit config show --explain` and for errors.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import BaseModel, ValidationError

from r1kit.config.schema import R1kitConfig

ENV_PREFIXES = ("R1KIT_", "GRPO_")  # GRPO_ is the R1 tutorial's prefix
ENV_NOT_CONFIG = {"R1KIT_CACHE"}  # r1kit variables that are not config paths

# Dotted paths the R1 tutorial uses that differ from the schema's (used by GRPO_* variables and the command line).
PATH_ALIASES = {
    "training.learning_rate": "training.optimization.learning_rate",
    "training.per_device_train_batch_size": "training.batch_size.per_device_train",
    "training.gradient_accumulation_steps": "training.batch_size.gradient_accumulation_steps",
}


@dataclass(frozen=True)
class FlagAlias:
    path: str
    value: Any = None  # a switch's fixed value; None: the flag takes a value
    as_list: bool = False  # split "a,b" / "a b" into a list


# Short and seed-style flags, each the same as a full path.
FLAG_ALIASES = {
    "--model": FlagAlias("model.name"),
    "--data": FlagAlias("dataset.name"),
    "--out": FlagAlias("run.output_dir"),
    "--resume": FlagAlias("run.resume", value=True),
    "--model_name": FlagAlias("model.name"),
    "--learning_rate": FlagAlias("training.optimization.learning_rate"),
    "--per_device_train_batch_size": FlagAlias("training.batch_size.per_device_train"),
    "--reward_funcs": FlagAlias("rewards.functions", as_list=True),
    "--no_wandb": FlagAlias("monitoring.wandb.enabled", value=False),
}


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is one line naming the key and the problem."""


@dataclass
class Layer:
    source: str  # "file:…", "profile:…", "env:…", "cli:…" — per value for env and cli
    values: dict[str, Any]
    value_sources: dict[str, str] = field(default_factory=dict)  # leaf path → source, where it differs per value

    def add(self, path: str, text: str, source: str) -> None:
        """Parse `text` as the value of `path`, merge it in, and remember where it came from."""
        self.values = OmegaConf.to_container(OmegaConf.merge(self.values, _parse_value(path, text, source)))
        self.value_sources[path] = source


@dataclass
class ResolvedConfig:
    config: R1kitConfig
    sources: dict[str, str]  # every leaf path → where its value came from
    profile: str


# --------------------------------------------------------------------------------------------------- schema paths


def _walk_schema(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any, bool]]:
    """(dotted path, field info, is_section) for every field of the schema."""
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        is_section = isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
        yield path, info, is_section
        if is_section:
            yield from _walk_schema(info.annotation, f"{path}.")


LEAF_PATHS = [path for path, _, is_section in _walk_schema(R1kitConfig) if not is_section]
SECTION_PATHS = [path for path, _, is_section in _walk_schema(R1kitConfig) if is_section]


def field_help() -> list[tuple[str, Any, str]]:
    """(path, default, help) of every key: what `--help` prints."""
    defaults = flatten(R1kitConfig().model_dump())
    return [
        (path, defaults[path], info.description or "")
        for path, info, is_section in _walk_schema(R1kitConfig)
        if not is_section
    ]


def canonical_path(path: str) -> str:
    return PATH_ALIASES.get(path, path)


def did_you_mean(path: str) -> str:
    close = difflib.get_close_matches(path, LEAF_PATHS + SECTION_PATHS + list(PATH_ALIASES), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# ------------------------------------------------------------------------------------------------------- helpers


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping → {dotted path: leaf value}; lists are leaves."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def _parse_value(path: str, text: str, source: str) -> dict[str, Any]:
    """`text` parsed as YAML (1e-4 → float, [a, b] → list, true → bool) under `path`, as a nested dict."""
    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist([f"{path}={text}"]))
    except OmegaConfBaseException as error:
        raise ConfigError(f"{path}: cannot parse value {text!r} (from {source}): {error}") from None


def _builtin_yaml(name: str) -> Path:
    return Path(str(resources.files("r1kit") / "configs" / name))


def recipe_path(recipe: str) -> Path:
    """A recipe name (a YAML in r1kit/configs/recipes) or a path to a YAML file."""
    path = Path(recipe)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise ConfigError(f"--recipe: file not found: {path}")
        return path
    path = _builtin_yaml("recipes") / f"{recipe}.yaml"
    if not path.exists():
        raise ConfigError(f"--recipe: unknown recipe {recipe!r}; known: {', '.join(list_recipes())}")
    return path


def list_recipes() -> list[str]:
    return sorted(p.stem for p in _builtin_yaml("recipes").glob("*.yaml"))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"--config: file not found: {path}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: must hold a mapping of config sections, not {type(values).__name__}")
    return values


# ------------------------------------------------------------------------------------------------------ sources


def file_layers(recipe: str | None, config_file: str | None) -> tuple[list[Layer], dict[str, Any]]:
    """Layers of the recipe and --config files, and the profiles they define."""
    layers, profiles = [], {}
    for path in [recipe_path(recipe) if recipe else None, Path(config_file) if config_file else None]:
        if path is None:
            continue
        values = _read_yaml(path)
        profiles.update(values.pop("profiles", None) or {})
        layers.append(Layer(f"file:{path}", values))
    return layers, profiles


def builtin_profiles() -> dict[str, Any]:
    return _read_yaml(_builtin_yaml("profiles.yaml"))


def profile_layer(name: str, user_profiles: Mapping[str, Any]) -> Layer:
    profiles = {**builtin_profiles(), **user_profiles}
    if name not in profiles:
        raise ConfigError(f"--profile: unknown profile {name!r}; known: {', '.join(profiles)}")
    return Layer(f"profile:{name}", profiles[name] or {})


def env_layer(environ: Mapping[str, str]) -> Layer:
    """R1KIT_TRAINING_OPTIMIZATION_LEARNING_RATE=1e-4 and the tutorial's GRPO_TRAINING_LEARNING_RATE=1e-4."""
    by_env_name = {p.replace(".", "_").upper(): p for p in [*LEAF_PATHS, *PATH_ALIASES]}
    layer = Layer("env", {})
    for name in sorted(environ):
        prefix = next((p for p in ENV_PREFIXES if name.startswith(p)), None)
        if prefix is None or name in ENV_NOT_CONFIG:
            continue
        path = by_env_name.get(name[len(prefix) :])
        if path is None:
            if prefix == "R1KIT_":  # GRPO_* may belong to other tools; R1KIT_* is ours, so a typo is an error
                guess = did_you_mean(name[len(prefix) :].lower().replace("_", "."))
                raise ConfigError(f"environment variable {name} is not a config key{guess}")
            continue
        layer.add(canonical_path(path), environ[name], f"env:{name}")
    return layer


def cli_layer(args: list[str]) -> Layer:
    """`--a.b.c value`, `--a.b.c=value`, multi-word values such as `[x, y]`, and the flag aliases."""
    layer = Layer("cli", {})
    index = 0
    while index < len(args):
        flag = args[index]
        if not flag.startswith("--") or len(flag) == 2:
            raise ConfigError(f"unexpected argument {flag!r}: options look like --section.key value")
        flag, has_equals, inline = flag.partition("=")
        index += 1
        words = [inline] if has_equals else []
        while not has_equals and index < len(args) and not args[index].startswith("--"):
            words.append(args[index])
            index += 1
        alias = FLAG_ALIASES.get(flag)
        if alias is not None and alias.value is not None:
            if words:
                raise ConfigError(f"{flag} is a switch and takes no value (got {' '.join(words)!r})")
            path, text = alias.path, str(alias.value).lower()
        else:
            path = alias.path if alias else canonical_path(flag[2:])
            if not words:
                raise ConfigError(f"{flag}: missing value")
            text = " ".join(words)  # the shell splits `[accuracy, format]` into `[accuracy,` and `format]`
            if alias and alias.as_list and not text.startswith("["):
                text = "[" + ", ".join(w for w in text.replace(",", " ").split()) + "]"
        if path not in LEAF_PATHS:
            raise ConfigError(f"unknown option {flag}{did_you_mean(path)}")
        layer.add(path, text, f"cli:{flag}")
    return layer


# ------------------------------------------------------------------------------------------------------ resolve


def resolve_config(
    *,
    recipe: str | None = None,
    config_file: str | None = None,
    profile: str = "default",
    environ: Mapping[str, str] | None = None,
    overrides: list[str] | None = None,
) -> ResolvedConfig:
    """The validated config and the source of every value. Raises ConfigError (one line) on any problem."""
    files, user_profiles = file_layers(recipe, config_file)
    layers = [*files, profile_layer(profile, user_profiles), env_layer(os.environ if environ is None else environ)]
    layers.append(cli_layer(overrides or []))

    defaults = R1kitConfig().model_dump()
    sources = dict.fromkeys(flatten(defaults), "default")
    for layer in layers:
        for path in flatten(layer.values):
            _check_known(path, layer)
            sources[path] = layer.value_sources.get(path, layer.source)
    try:
        merged = OmegaConf.to_container(OmegaConf.merge(defaults, *(layer.values for layer in layers)), resolve=True)
    except OmegaConfBaseException as error:
        raise ConfigError(f"cannot merge the configuration: {str(error).splitlines()[0]}") from None
    try:
        config = R1kitConfig.model_validate(merged)
    except ValidationError as error:
        raise ConfigError(_describe(error, sources)) from None
    return ResolvedConfig(config=config, sources=sources, profile=profile)


def _check_known(path: str, layer: Layer) -> None:
    if path in LEAF_PATHS:
        return
    if path in SECTION_PATHS:  # an empty mapping for a whole section: harmless
        return
    source = layer.value_sources.get(path, layer.source)
    raise ConfigError(f"unknown key {path!r} (from {source}){did_you_mean(path)}")


def _describe(error: ValidationError, sources: Mapping[str, str]) -> str:
    """The first validation problem as one line: key, problem, offending value and where it came from."""
    problem = error.errors()[0]
    path = ".".join(str(part) for part in problem["loc"] if not isinstance(part, int))
    message = problem["msg"].removeprefix("Value error, ")
    if not path:  # a rule across sections: its message names the keys
        return message
    if path not in LEAF_PATHS:  # a rule across the keys of one section
        return f"{path}: {message}"
    source = sources.get(path, "default")
    return f"{path}: {message} (got {problem.get('input')!r}, from {source})"


def to_yaml(config: R1kitConfig) -> str:
    return yaml.safe_dump(config.model_dump(), sort_keys=False, allow_unicode=True)
