"""Rewards that cannot crash training: a reward that raises costs the failing items (None), not the run."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


def guarded(name: str, reward: Callable[..., list[float | None]]) -> GuardedReward:
    """`reward`, made safe for a training loop.

    If the batch call raises, each item is scored alone so only the failing ones become None. Non-finite values
    become None too. Both are counted into TRL's metrics as `rewards/<name>/exceptions`.

    >>> def shaky(completions, **kwargs):
    ...     return [1 / len(c) for c in completions]
    >>> guarded("shaky", shaky)(["ab", "", "abcd"])
    [0.5, None, 0.25]
    """
    return GuardedReward(name, reward)


@dataclass(frozen=True)
class GuardedReward:
    """The reward `guarded` returns: a class rather than a closure, so that it pickles whenever `reward` does."""

    name: str
    reward: Callable[..., list[float | None]]

    @property
    def __name__(self) -> str:  # the name TRL logs the reward under
        return self.name

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        try:
            values = _checked(self.reward(completions, **kwargs), len(completions))
            raised = 0
        except Exception as error:
            logger.warning("reward %s raised %r; scoring the batch item by item", self.name, error)
            values, raised = [], 0
            for index in range(len(completions)):
                try:
                    item_kwargs = _item_kwargs(kwargs, index, len(completions))
                    values += _checked(self.reward(completions[index : index + 1], **item_kwargs), 1)
                except Exception:
                    values.append(None)
                    raised += 1
        non_finite = sum(value is not None and not math.isfinite(value) for value in values)
        log_metric = kwargs.get("log_metric")
        if log_metric is not None:
            log_metric(f"rewards/{self.name}/exceptions", float(raised + non_finite))
        return [value if value is None or math.isfinite(value) else None for value in values]


def _item_kwargs(kwargs: dict[str, Any], index: int, size: int) -> dict[str, Any]:
    """The kwargs of one item: per-completion lists are sliced, everything else (trainer_state, …) passed as is."""
    return {
        key: value[index : index + 1] if isinstance(value, list) and len(value) == size else value
        for key, value in kwargs.items()
    }


def _checked(values: Sequence[float | None], expected: int) -> list[float | None]:
    values = list(values)
    if len(values) != expected:
        raise ValueError(f"returned {len(values)} values for {expected} completions")
    return values
