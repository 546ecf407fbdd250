"""Plug-in rewards: your own function with TRL's reward signature, listed in `rewards.functions` as `module:function`.

    rewards:
      functions: [accuracy, format, my_package.rewards:short_answer]
      short_answer: {weight: 0.5, max_words: 40}   # or under "my_package.rewards:short_answer"

`weight` weighs it in the total reward like a built-in's; every other parameter is passed to the function as a
keyword argument at each call. It runs under the same guard as the built-ins: an exception, a non-finite value or
a call past `rewards.plugin_timeout_seconds` costs the items (None, counted), never the run.
"""

from __future__ import annotations

import asyncio
import difflib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any


def is_plugin(name: str) -> bool:
    return ":" in name


def short_name(spec: str) -> str:
    """The name a reward's statistics (and a plug-in's parameters) go under: a plug-in's function name, a built-in's
    own name.

    >>> short_name("my_package.rewards:short_answer"), short_name("accuracy")
    ('short_answer', 'accuracy')
    """
    return spec.rsplit(":", 1)[-1]


def _current_folder_importable() -> None:
    """The current folder on the import path, as `python -m` puts it: a plug-in module written there is found."""
    if "" not in sys.path:
        sys.path.insert(0, "")


def plugin_source(spec: str) -> str | None:
    """The file of a plug-in reward's module (`module:function`), where it is a local Python file: what a stage that
    scores with it reads (an edit of the reward is new work); None where it is not found or not a file.

    >>> plugin_source("r1kit.rewards.plugins:load_plugin").endswith("plugins.py"), plugin_source("no_such_mod:f")
    (True, None)
    """
    module_name = spec.partition(":")[0]
    _current_folder_importable()
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    origin = found.origin if found is not None else None
    return origin if origin and origin.endswith(".py") else None


@cache
def load_plugin(spec: str) -> Callable[..., list[float | None]]:
    """The function named by `module:function`, imported (the current folder is on the path, as for `python -m`).
    Raises ValueError saying what is missing."""
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name.isidentifier():
        raise ValueError(f"plug-in reward {spec!r} must look like module.path:function_name")
    _current_folder_importable()
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"plug-in reward {spec!r}: cannot import module {module_name!r} ({error})") from None
    except Exception as error:  # its own code failed (a SyntaxError, a missing key): the user's to mend, not r1kit's
        raise ValueError(
            f"plug-in reward {spec!r}: importing module {module_name!r} raised {type(error).__name__}: {error}"
        ) from None
    function = getattr(module, function_name, None)
    if function is None:
        raise ValueError(f"plug-in reward {spec!r}: module {module_name!r} has no {function_name!r}")
    if not callable(function):
        raise ValueError(f"plug-in reward {spec!r}: {function_name!r} is not a function")
    return function


# What the trainer passes every reward (TRL's call): no parameter of the config's
_PASSED_BY_TRAINER = ("prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric")
_BY_KEYWORD = (*_PASSED_BY_TRAINER, "solution")  # and the data's gold column, which every built-in task has


def misfit_parameter(spec: str, names: list[str]) -> str | None:
    """Why one of the parameters `names` set for plug-in `spec` would not reach its function as meant, or None: a
    name it does not take (a TypeError at every call), or a near miss of one it does (swallowed by its **kwargs, so
    the parameter keeps its default without a word).

    >>> import types, sys
    >>> sys.modules["doctest_rewards"] = types.SimpleNamespace(short=lambda completions, max_words=40, **kwargs: [])
    >>> misfit_parameter("doctest_rewards:short", ["max_wordz"]), misfit_parameter("doctest_rewards:short", ["max_words"])
    ("max_wordz is not a parameter of doctest_rewards:short (it takes: max_words); did you mean 'max_words'?", None)
    """
    parameters = _parameters(spec)
    if parameters is None:  # a callable without a readable signature: its business
        return None
    named = [
        p.name
        for p in parameters
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in _PASSED_BY_TRAINER
    ]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters)
    for name in names:
        if name in _BY_KEYWORD:  # the trainer passes it too: "multiple values" at every call
            return f"{name} is what the trainer passes {spec} at every step; give its parameter another name"
        close = difflib.get_close_matches(name, named, n=1, cutoff=0.8)
        if name not in named and (close or not takes_any):
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return f"{name} is not a parameter of {spec} (it takes: {', '.join(named) or 'none'}){hint}"
    return None


def lacks_kwargs(spec: str) -> str | None:
    """Why plug-in `spec` cannot take what the trainer passes every reward, or None: TRL calls it with the prompts,
    completions, completion_ids, trainer_state, log_metric, log_extra and each column of the data (solution, …), so a
    function without **kwargs raised TypeError at every call and scored None all run.

    >>> import types, sys
    >>> sys.modules["doctest_rewards2"] = types.SimpleNamespace(strict=lambda completions, max_words=40: [])
    >>> lacks_kwargs("doctest_rewards2:strict")[:60]
    'plug-in reward doctest_rewards2:strict takes no **kwargs, bu'
    """
    parameters = _parameters(spec)
    if parameters is None or any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    by_keyword = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    # the completions go to the first parameter where none is named so (`_takes_completions_by_name`)
    if all(name in by_keyword for name in _BY_KEYWORD if name != "completions"):
        return None  # it names every one
    return (
        f"plug-in reward {spec} takes no **kwargs, but the trainer passes every reward {', '.join(_PASSED_BY_TRAINER)} "
        "and the data's columns (solution, …) by keyword; add **kwargs to its parameters (TRL's reward signature: "
        "def reward(completions, **kwargs))"
    )


@dataclass(frozen=True, eq=False)
class PluginReward:
    """A plug-in reward with its parameters. It holds the name, not the function, so it pickles (TRL's async GRPO,
    process pools) and is imported again in another process."""

    spec: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def __name__(self) -> str:
        return short_name(self.spec)

    def __call__(self, completions, **kwargs: Any) -> list[float | None]:
        function = load_plugin(self.spec)
        # by keyword, as TRL calls a reward (`def reward(prompts, completions, **kwargs)` is TRL's signature too); a
        # function whose completions parameter has another name takes them first
        if _takes_completions_by_name(self.spec):
            values = function(completions=completions, **kwargs, **self.params)
        else:
            values = function(completions, **kwargs, **self.params)
        if inspect.isawaitable(values):  # an `async def` reward (TRL awaits those): run here, in the guard's thread
            values = asyncio.run(_awaited(values))
        return values


@cache
def _takes_completions_by_name(spec: str) -> bool:
    """By keyword, as TRL passes them, unless the function names no `completions` and takes a first positional
    parameter of its own name (`def r(samples, **kwargs)`); `def r(**kwargs)` reads kwargs["completions"]."""
    parameters = _parameters(spec)
    if parameters is None:  # no readable signature: TRL's way
        return True
    positional = (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    )
    named = any(p.name == "completions" for p in parameters)
    # a first parameter the trainer passes by its own name (`def r(completion_ids, **kwargs)`) is not the completions:
    # given them too, it got "multiple values" at every call
    passed = parameters and parameters[0].name in _BY_KEYWORD
    return named or not parameters or parameters[0].kind not in positional or bool(passed)


def _parameters(spec: str) -> list[inspect.Parameter] | None:
    """The plug-in's parameters, or None for a callable whose signature cannot be read."""
    try:
        # the parameters it is called with: a decorator's (*args, **kwargs), not those of what it wraps
        return list(inspect.signature(load_plugin(spec), follow_wrapped=False).parameters.values())
    except (TypeError, ValueError):
        return None


async def _awaited(awaitable: Awaitable[list[float | None]]) -> list[float | None]:
    return await awaitable
