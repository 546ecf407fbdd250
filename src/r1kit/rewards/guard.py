"""Rewards that cannot crash training: a reward that raises or hangs costs the failing items (None), not the run;
and what such a None (no verdict) weighs in a group's advantages."""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch

logger = logging.getLogger(__name__)

# What r1kit's rewards log under `rewards/<name>/` that counts items: summed when a batch is scored item by item. Any
# other figure, a plug-in's own under that prefix included, is the items' mean.
ITEM_COUNTS = frozenset({"exceptions", "timeouts", "unreadable_gold", "hostile_gold", "over_budget", "errors"})


def guarded(
    name: str, reward: Callable[..., list[float | None]], timeout_seconds: float | None = None
) -> GuardedReward:
    """`reward`, made safe for a training loop.

    If the batch call raises, each item is scored alone so only the failing ones become None. Non-finite values
    become None too. Both are counted into TRL's metrics as `rewards/<name>/exceptions`. With `timeout_seconds`, a
    call still running then scores its batch None (`rewards/<name>/timeouts`); Python cannot stop a thread, so the
    stuck call is left behind in a daemon thread, whose logs (`log_metric`, `log_extra`) are dropped. The next call
    waits for it up to the same limit, and scores its batch None without calling the reward if it is still running:
    a reward that hangs for good holds one thread, not one more each step. (The verified rewards bound their own time
    in worker processes.)

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
    # the call left running at its time limit, if any (at most one: `__call__` starts none while it runs)
    _abandoned: list[threading.Thread] = field(default_factory=list, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:  # a thread does not pickle; a copy starts with none
        return {key: value for key, value in self.__dict__.items() if key != "_abandoned"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in {**state, "_abandoned": []}.items():
            object.__setattr__(self, key, value)

    @property
    def __name__(self) -> str:  # the name TRL logs the reward under
        return self.name

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        logged, finished = _Logged(), True
        if self.timeout_seconds is None:
            values, failures = self._scored(completions, kwargs, logged, threading.Event())
        elif self._still_running():
            logger.warning(
                "reward %s is still running a call it started over %ss ago (it hangs?); its batch scores None "
                "without calling it again",
                self.name,
                2 * self.timeout_seconds,
            )
            values, failures, finished = [None] * len(completions), 0, False
        else:
            done: queue.Queue[tuple[list[float | None], int]] = queue.Queue()
            abandoned = threading.Event()  # set at the time limit: the call's item-by-item loop stops
            scoring = partial(self._scored, completions, kwargs, logged, abandoned)

            def score() -> None:
                try:
                    done.put(scoring())
                except BaseException as error:  # SystemExit, asyncio's CancelledError: the thread ended unanswered,
                    # and every step waited out the time limit for a "timeout"
                    logger.warning("reward %s raised %r; its batch scores None", self.name, error)
                    done.put(([None] * len(completions), len(completions)))

            thread = threading.Thread(target=score, daemon=True)
            thread.start()
            try:
                values, failures = done.get(timeout=self.timeout_seconds)
            except queue.Empty:
                abandoned.set()
                self._abandoned.append(thread)
                logger.warning("reward %s took over %ss; its batch scores None", self.name, self.timeout_seconds)
                values, failures, finished = [None] * len(completions), 0, False
        if finished:  # what an abandoned call logs (later, while another batch is scored) is no part of either
            logged.replay(kwargs)
        log_metric = kwargs.get("log_metric")
        if log_metric is not None:  # one value of each for every batch, in the batch it belongs to
            log_metric(f"rewards/{self.name}/exceptions", float(failures))
            if self.timeout_seconds is not None:
                log_metric(f"rewards/{self.name}/timeouts", 0.0 if finished else float(len(completions)))
        return values

    def _still_running(self) -> bool:
        """Whether the call abandoned at its time limit is still running after waiting for it up to that limit again."""
        for thread in self._abandoned:
            thread.join(self.timeout_seconds)
        self._abandoned[:] = [thread for thread in self._abandoned if thread.is_alive()]
        return bool(self._abandoned)

    def _scored(
        self, completions: Sequence[Any], kwargs: dict[str, Any], logged: _Logged, abandoned: threading.Event
    ) -> tuple[list[float | None], int]:
        """The batch's values (non-finite ones None) and how many items failed (raised, or not a finite number);
        what the reward logs goes into `logged`."""
        try:
            values = _checked(self.reward(completions, **logged.capturing(kwargs)), len(completions))
            raised = 0
        except Exception as error:
            logger.warning("reward %s raised %r; scoring the batch item by item", self.name, error)
            logged.clear()  # the failed batch call's logs: the items log their own
            values, raised, items = [], 0, []
            for index in range(len(completions)):
                if abandoned.is_set():  # past the time limit: nobody waits for the rest
                    return [None] * len(completions), len(completions)
                item = _Logged()
                try:
                    item_kwargs = item.capturing(_item_kwargs(kwargs, index, len(completions)))
                    values += _checked(self.reward(completions[index : index + 1], **item_kwargs), 1)
                    items.append(item)
                except Exception:
                    values.append(None)
                    raised += 1
                    items.append(None)
            logged.merge_items(items, counts={f"rewards/{self.name}/{count}" for count in ITEM_COUNTS})
        non_finite = sum(value is not None and not math.isfinite(value) for value in values)
        return [value if value is None or math.isfinite(value) else None for value in values], raised + non_finite


@dataclass
class _Logged:
    """What a reward call logs through TRL's `log_metric` and `log_extra`, held back until the call is known to count:
    a call abandoned at its time limit used to log into whichever later batch was pending when it finished."""

    metrics: dict[str, list[float]] = field(default_factory=dict)
    extras: dict[str, list[Any]] = field(default_factory=dict)

    def capturing(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """`kwargs` with the loggers TRL passed replaced by this record's."""
        own = {"log_metric": self._metric, "log_extra": self._extra}
        return {key: own.get(key, value) if value is not None else value for key, value in kwargs.items()}

    def _metric(self, name: str, value: float) -> None:
        self.metrics.setdefault(name, []).append(value)

    def _extra(self, column: str, values: list[Any]) -> None:
        self.extras.setdefault(column, []).extend(values)

    def clear(self) -> None:
        self.metrics.clear()
        self.extras.clear()

    def merge_items(self, items: list[_Logged | None], counts: set[str]) -> None:
        """The logs of a batch scored item by item (None: an item that raised), as one batch's: a metric named in
        `counts` (counts of items: timeouts, unreadable gold) is the items' sum, any other the items' mean (it was the
        mean of N batches of one, which divided every count by N); each extra column holds one value per completion,
        None for an item that gave none."""
        scored = [item for item in items if item is not None]
        for name in dict.fromkeys(name for item in scored for name in item.metrics):
            values = [value for item in scored for value in item.metrics.get(name, [])]
            self.metrics[name] = [sum(values) if name in counts else sum(values) / len(values)]
        for column in dict.fromkeys(column for item in scored for column in item.extras):
            self.extras[column] = [
                item.extras[column][0] if item is not None and len(item.extras.get(column, [])) == 1 else None
                for item in items
            ]

    def replay(self, kwargs: dict[str, Any]) -> None:
        """Log what was held back through the loggers TRL passed (those it did not pass are not called)."""
        log_metric, log_extra = kwargs.get("log_metric"), kwargs.get("log_extra")
        for name, values in self.metrics.items():
            for value in values if log_metric is not None else []:
                log_metric(name, value)
        for column, values in self.extras.items():
            if log_extra is not None:
                log_extra(column, values)


def _item_kwargs(kwargs: dict[str, Any], index: int, size: int) -> dict[str, Any]:
    """The kwargs of one item: per-completion lists are sliced, everything else (trainer_state, …) passed as is."""
    return {
        key: value[index : index + 1] if isinstance(value, list) and len(value) == size else value
        for key, value in kwargs.items()
    }


def _checked(values: Sequence[float | None], expected: int) -> list[float | None]:
    """The reward's values as floats (None kept); a wrong count or a value that is not a number raises, so the
    failing items score None like any other reward error, instead of failing later in the NaN check or in TRL. A
    mapping or a set is refused: listed, it gives its keys (`{0: 0.9, 1: 0.2}` scored 0 and 1) or no order."""
    if isinstance(values, Mapping | Set):
        raise TypeError(f"returned a {type(values).__name__}; a reward returns a list with one score per completion")
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
