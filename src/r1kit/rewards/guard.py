"""Rewards that cannot crash training: a reward that raises or hangs costs the failing items (None), not the run;
and what such a None (no verdict) weighs in a group's advantages."""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

logger = logging.getLogger(__name__)


def guarded(
    name: str, reward: Callable[..., list[float | None]], timeout_seconds: float | None = None
) -> GuardedReward:
    """`reward`, made safe for a training loop.

    If the batch call raises, each item is scored alone so only the failing ones become None. Non-finite values
    become None too. Both are counted into TRL's metrics as `rewards/<name>/exceptions`. With `timeout_seconds`, a
    call still running then scores its batch None (`rewards/<name>/timeouts`); Python cannot stop a thread, so the
    stuck call is left behind in a daemon thread. (The verified rewards bound their own time in worker processes.)

    >>> def shaky(completions, **kwargs):
    ...     return [1 / len(c) for c in completions]
    >>> guarded("shaky", shaky)(["ab", "", "abcd"])
    [0.5, None, 0.25]
    """
    return GuardedReward(name, reward, timeout_seconds)


@dataclass(frozen=True)
class GuardedReward:
    """The reward `guarded` returns: a class rather than a closure, so that it pickles whenever `reward` does."""

    name: str
    reward: Callable[..., list[float | None]]
    timeout_seconds: float | None = None

    @property
    def __name__(self) -> str:  # the name TRL logs the reward under
        return self.name

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        if self.timeout_seconds is None:
            return self._scored(completions, kwargs)
        done: queue.Queue[list[float | None]] = queue.Queue()
        threading.Thread(target=lambda: done.put(self._scored(completions, kwargs)), daemon=True).start()
        try:
            values = done.get(timeout=self.timeout_seconds)
            timed_out = 0.0
        except queue.Empty:
            logger.warning("reward %s took over %ss; its batch scores None", self.name, self.timeout_seconds)
            values, timed_out = [None] * len(completions), float(len(completions))
        log_metric = kwargs.get("log_metric")
        if log_metric is not None:
            log_metric(f"rewards/{self.name}/timeouts", timed_out)
        return values

    def _scored(self, completions: Sequence[Any], kwargs: dict[str, Any]) -> list[float | None]:
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
    """The reward's values as floats (None kept); a wrong count or a value that is not a number raises, so the
    failing items score None like any other reward error, instead of failing later in the NaN check or in TRL."""
    values = list(values)
    if len(values) != expected:
        raise ValueError(f"returned {len(values)} values for {expected} completions")
    return [None if value is None else _number(value) for value in values]


def _number(value: Any) -> float:
    if not isinstance(value, (str, bytes)):
        try:
            return float(value)  # int, bool, numpy and 0-d torch scalars
        except (TypeError, ValueError):
            pass
    raise TypeError(f"returned {value!r} ({type(value).__name__}); a reward returns numbers or None")


def no_verdict_as_group_mean(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """[completions, rewards] scores (NaN: the reward gave no verdict, None) with each NaN replaced by the mean of
    that reward over the rest of the completion's group, so an item one reward could not judge (a timed-out
    verification, a gold that cannot be read, a reward that raised) is neither rewarded nor punished by it. TRL sums
    the rewards with NaN as 0, which scores a correct answer whose check timed out like a wrong one wherever another
    reward (format) judged it. Rows no reward judged stay NaN, for TRL to leave out of the advantage; a reward that
    judged no item of a group stays NaN there (0 for the whole group: no effect on its advantages).

    >>> nan = float("nan")
    >>> no_verdict_as_group_mean(torch.tensor([[nan, 1.0], [0.0, 1.0], [1.0, 1.0], [nan, nan]]), 4).tolist()
    [[0.5, 1.0], [0.0, 1.0], [1.0, 1.0], [nan, nan]]
    """
    grouped = rewards.view(-1, group_size, rewards.size(1))  # (groups, group_size, rewards)
    means = torch.nanmean(grouped, dim=1, keepdim=True).expand_as(grouped)
    filled = torch.where(torch.isnan(grouped), means, grouped).reshape(rewards.shape)
    filled[torch.isnan(rewards).all(dim=1)] = torch.nan  # unscorable: TRL zeroes its advantage
    return filled


def no_verdict_as_mean(values: Sequence[float | None]) -> list[float]:
    """One reward's values with each None (no verdict) replaced by the mean of the judged ones (0 if none is): the
    same neutral score for a loss without groups (PPO), whose batch is the group.

    >>> no_verdict_as_mean([1.0, None, 0.0, 0.5]), no_verdict_as_mean([None, None])
    ([1.0, 0.5, 0.0, 0.5], [0.0, 0.0])
    """
    judged = [value for value in values if value is not None]
    neutral = sum(judged) / len(judged) if judged else 0.0
    return [neutral if value is None else value for value in values]
