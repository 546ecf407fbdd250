"""Trend alerts: the quiet failures of RL on language models, noticed over a moving window of logged steps.

Each rule fires once when its condition starts to hold, and again only after it has cleared.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from typing import Any

from r1kit.config.schema import AlertsConfig

# Series watched for drops: the per-reward means and format compliance.
_DROP_WATCHED_PREFIX, _DROP_WATCHED_SUFFIX = "rewards/", "/mean"


class TrendAlerts:
    def __init__(self, config: AlertsConfig):
        self.config = config
        self.history: deque[dict[str, Any]] = deque(maxlen=config.window)
        self.active: set[str] = set()

    def check(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """Alerts raised by this logged record: [{kind, message, step, …}]."""
        self.history.append(record)
        holding: dict[str, str] = {}
        holding.update(self._non_finite(record))
        holding.update(self._thresholds())
        if len(self.history) == self.history.maxlen:
            holding.update(self._trends())
        raised = [
            {"kind": kind.split(":")[0], "key": kind, "message": message, "step": record.get("step")}
            for kind, message in holding.items()
            if kind not in self.active
        ]
        self.active = set(holding)
        return raised

    # ---------------------------------------------------------------------------------------------------- rules

    @staticmethod
    def _non_finite(record: dict[str, Any]) -> dict[str, str]:
        found = {}
        for key in ("loss", "grad_norm"):
            value = record.get(key)
            if isinstance(value, float) and not math.isfinite(value):
                found[f"non_finite:{key}"] = f"{key} is {value}: the step's update was skipped"
        if record.get("train/skipped_nonfinite_steps"):
            found["non_finite:skipped"] = (
                f"{int(record['train/skipped_nonfinite_steps'])} step(s) with a non-finite loss or gradient skipped so far"
            )
        return found

    def _thresholds(self) -> dict[str, str]:
        """Shares averaged over the window: one step of a few prompt groups is too noisy to alert on."""
        found = {}
        history = list(self.history)
        truncated = _mean(history, "quality/truncated_share")
        if truncated is not None and truncated >= self.config.truncated_max:
            found["truncated"] = (
                f"{truncated:.0%} of completions hit the length limit over the last {len(history)} logs: "
                "raise grpo.max_completion_length or penalise length (overlong reward)"
            )
        zero = _mean(history, "quality/zero_advantage_share")
        if zero is not None and zero >= self.config.zero_advantage_max:
            found["zero_advantage"] = (
                f"{zero:.0%} of prompt groups got identical rewards over the last {len(history)} logs (zero "
                "advantage, no learning signal): the task is too hard or too easy for the model, or the rewards "
                "cannot tell completions apart"
            )
        return found

    def _trends(self) -> dict[str, str]:
        found = {}
        half = len(self.history) // 2
        earlier, recent = list(self.history)[:half], list(self.history)[half:]

        totals = [r.get("rewards/total/mean") for r in self.history]
        if all(t is not None for t in totals) and max(totals) - min(totals) < self.config.plateau_min_change:
            found["plateau"] = (
                f"total reward stayed within {max(totals) - min(totals):.3g} over the last {len(totals)} logs "
                f"(plateau at {statistics.fmean(totals):.3g})"
            )

        watched = {"quality/format_rate"} | {
            key
            for key in self.history[-1]
            if key.startswith(_DROP_WATCHED_PREFIX) and key.endswith(_DROP_WATCHED_SUFFIX)
        }
        for key in sorted(watched):
            before, now = _mean(earlier, key), _mean(recent, key)
            if before is not None and now is not None and before > 0 and now < before * (1 - self.config.drop_share):
                found[f"drop:{key}"] = f"{key} fell {1 - now / before:.0%} ({before:.3g} → {now:.3g})"

        before, now = _mean(earlier, "quality/completion_tokens"), _mean(recent, "quality/completion_tokens")
        if before and now and now > before * self.config.length_blowup_factor:
            found["length_blowup"] = (
                f"mean completion length grew {now / before:.1f}x ({before:.0f} → {now:.0f} tokens)"
            )
        return found


def _mean(records: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in records if isinstance(r.get(key), int | float) and math.isfinite(r[key])]
    return statistics.fmean(values) if values else None
