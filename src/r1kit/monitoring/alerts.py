"""Trend alerts: the quiet failures of RL on language models, noticed over a moving window of logged steps.

Besides alerts (level "alert"), the rules raise notices (level "notice") when a reward or format compliance clearly
improves, so the turns a run takes for the better are on record next to the ones for the worse.
Each rule fires once when its condition starts to hold, and again only after it has cleared.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from r1kit.config.schema import AlertsConfig

# Series watched for drops and improvements: the per-reward means and format compliance.
_WATCHED_PREFIX, _WATCHED_SUFFIX = "rewards/", "/mean"


def _rollout_figure(key: str) -> bool:
    """Whether `key` is a figure of scored rollouts: the quality of completions, or a reward's (`rewards/NAME/mean`,
    its spread, its failure counts). TRL's DPO logs `rewards/chosen`, `rewards/margins` (a pair's implicit reward) and
    `entropy` too, and got GRPO's entropy-collapse alert with its advice on the rollout temperature.

    >>> _rollout_figure("rewards/accuracy/mean"), _rollout_figure("quality/format_rate"), _rollout_figure("rewards/chosen")
    (True, True, False)
    """
    return key.startswith("quality/") or (key.startswith("rewards/") and key.count("/") >= 2)


_NOTICE_KINDS = {"improvement"}  # every other kind is an alert
_LEVEL_FLOOR = 0.1  # a drop or rise is measured against at least this level: rewards are about unit-sized
# The counts of items a reward could not score (rewards/<name>/<count>), and why. A gold answer that cannot be read is
# none of them: it is said before training (the data check), and a reward may score nothing by design.
_FAILURES = {
    "exceptions": "it raised or returned something that is not a number",
    "timeouts": "it timed out",
    "over_budget": "the batch's verification time ran out first: rewards.verification.batch_budget_seconds",
    "errors": "the verifier failed",
    "hostile_gold": "their gold answers hang the verifier",
}


class TrendAlerts:
    def __init__(self, config: AlertsConfig, kl_per_completion: bool = False):
        self.config = config
        # a trainer's "kl": TRL's GRPO and RLOO log it per completion token, r1kit's PPO per completion (as its KL
        # target reads it); the alert compares it per token
        self.kl_per_completion = kl_per_completion
        self.history: deque[dict[str, Any]] = deque(maxlen=config.window)
        self.active: set[str] = set()

    def check(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """Alerts and notices raised by this logged record: [{kind, level, key, message, step}]. The rules on
        rollouts read the records that have rollout figures: a step that trains on an earlier step's rollouts
        (grpo.num_iterations > 1) has none, and leaves those rules as they were."""
        holding: dict[str, str] = {}
        holding.update(self._non_finite(record))
        if any(map(_rollout_figure, record)):
            self.history.append(record)
            holding.update(self._failing_rewards(record))
            holding.update(self._thresholds())
            if len(self.history) == self.history.maxlen:
                holding.update(self._trends())
        else:
            holding.update(dict.fromkeys(key for key in self.active if not key.startswith("non_finite:")))
        raised = [
            _raised(key, message, record.get("step")) for key, message in holding.items() if key not in self.active
        ]
        self.active = set(holding)
        return raised

    # ---------------------------------------------------------------------------------------------------- rules

    @staticmethod
    def _non_finite(record: dict[str, Any]) -> dict[str, str]:
        """One alert for a step whose loss or gradient norm is not finite (it raised one for each, and one for the
        count of skipped steps): keyed by that count where the run counts them, so each newly skipped step raises
        it again. Under fp16's loss scaler a gradient overflow is the scaler's step, not a failure: only the loss
        counts there."""
        values = {key: record.get(key) for key in ("loss", "grad_norm")}
        if "train/loss_scale_overflows" in record:  # fp16: an overflowed gradient is the loss scaler's to skip
            values.pop("grad_norm")
        bad = [
            f"{key} is {value}"
            for key, value in values.items()
            if isinstance(value, float) and not math.isfinite(value)
        ]
        skipped = int(record.get("train/skipped_nonfinite_steps") or 0)
        if skipped:
            said = f"{', '.join(bad)}: " if bad else ""
            message = f"{said}{skipped} step(s) with a non-finite loss or gradient skipped so far"
            return {f"non_finite:skipped:{skipped}": message}
        return {"non_finite:step": f"{', '.join(bad)}: the step's update was skipped"} if bad else {}

    @staticmethod
    def _failing_rewards(record: dict[str, Any]) -> dict[str, str]:
        """A reward that scored nothing at a logged step because every call raised, returned what is not a number,
        or timed out, or its verifier ran out of time or failed (`_FAILURES`): it gives no signal, which the
        zero-advantage alert would otherwise blame on the task."""
        found = {}
        for key, failures in record.items():
            name, _, what = key.removeprefix(_WATCHED_PREFIX).rpartition("/")
            failed = key.startswith(_WATCHED_PREFIX) and what in _FAILURES and failures
            if failed and record.get(f"{_WATCHED_PREFIX}{name}{_WATCHED_SUFFIX}") is None:
                found[f"failing_reward:{name}"] = (
                    f"reward {name} scored none of the completions it was given ({failures:g} {what}: "
                    f"{_FAILURES[what]}); it gives no learning signal. The log's 'reward {name} …' lines say why"
                )
        return found

    def _thresholds(self) -> dict[str, str]:
        """Shares and levels averaged over the window, once it holds a quarter of its logs (two at least): one step
        of a few prompt groups is too noisy to alert on (at half the groups dead, two groups a step opened one run in
        four with "100% … over the last 1 logs"). A rule that holds holds on until its mean is 10% clear of its
        threshold: a share hovering at it raised its alert again every few steps."""
        found: dict[str, str] = {}
        history = list(self.history)
        if len(history) < max(2, self.config.window // 4):
            return found

        def beyond(key: str, value: float | None, limit: float, above: bool = True) -> bool:
            clear = 0.9 if key in self.active else 1.0  # the margin a holding rule's mean must clear
            if value is None:
                return False
            return value >= limit * clear if above else value < limit / clear

        truncated = _mean(history, "quality/truncated_share")
        if beyond("truncated", truncated, self.config.truncated_max):
            found["truncated"] = (
                f"{truncated:.0%} of completions hit the length limit over the last {len(history)} logs: "
                "raise the stage's limit (grpo.max_completion_length, rloo.max_completion_length or "
                "ppo.max_new_tokens) or penalise length (overlong reward)"
            )
        zero = _mean(history, "quality/zero_advantage_share")
        if beyond("zero_advantage", zero, self.config.zero_advantage_max):
            found["zero_advantage"] = (
                f"{zero:.0%} of prompt groups got identical rewards over the last {len(history)} logs (zero "
                "advantage, no learning signal): the task is too hard or too easy for the model, or the rewards "
                "cannot tell completions apart"
            )
        entropy = _mean(history, "entropy")
        if beyond("entropy_collapse", entropy, self.config.entropy_min, above=False):
            found["entropy_collapse"] = (
                f"the policy's token entropy averaged {entropy:.3g} nats over the last {len(history)} logs: its samples "
                "are nearly all alike, so a group's completions have little to compare (raise the rollout "
                "temperature, or lower the learning rate)"
            )
        kl = _mean([self._kl_per_token(record) for record in history], "kl")
        if beyond("kl", kl, self.config.kl_max):
            found["kl"] = (
                f"the KL to the reference model averaged {kl:.3g} nats a completion token over the last "
                f"{len(history)} logs: the policy drifts far from it (lower the learning rate, or raise the KL "
                "coefficient)"
            )
        return found

    def _kl_per_token(self, record: dict[str, Any]) -> dict[str, Any]:
        """{"kl": the record's KL per completion token} (empty where it has none)."""
        kl, tokens = record.get("kl"), record.get("quality/completion_tokens")
        if not self.kl_per_completion:
            return {"kl": kl}
        return {"kl": kl / tokens} if isinstance(kl, int | float) and isinstance(tokens, int | float) and tokens else {}

    def _trends(self) -> dict[str, str]:
        found = {}
        half = len(self.history) // 2
        earlier, recent = list(self.history)[:half], list(self.history)[half:]

        totals = [r.get("rewards/total/mean") for r in self.history]
        if all(t is not None for t in totals) and max(totals) - min(totals) < self.config.plateau_min_change:
            found["plateau"] = (
                f"total reward stayed within {max(totals) - min(totals):.3g} over the last {len(totals)} logs "
                f"(plateau at {sum(totals) / len(totals):.3g})"
            )

        watched = {"quality/format_rate"} | {
            key for key in self.history[-1] if key.startswith(_WATCHED_PREFIX) and key.endswith(_WATCHED_SUFFIX)
        }
        # One threshold both ways, relative to the earlier level's size, at least _LEVEL_FLOOR: penalties (repetition,
        # ≤ 0) and a cosine reward below zero move too.
        share = self.config.drop_share
        for key in sorted(watched):
            before, now = _mean(earlier, key), _mean(recent, key)
            if before is None or now is None:
                continue
            moved = share * max(abs(before), _LEVEL_FLOOR)
            change = (
                f"{abs(now - before) / abs(before):.0%} ({before:.3g} → {now:.3g})"
                if before
                else f"from 0 to {now:.3g}"
            )
            if now < before - moved:
                found[f"drop:{key}"] = f"{key} fell {change}"
            elif now > before + moved and before:  # from zero: noticed once the earlier half is off zero too
                found[f"improvement:{key}"] = f"{key} rose {change}"

        before, now = _mean(earlier, "quality/completion_tokens"), _mean(recent, "quality/completion_tokens")
        if before and now and now > before * self.config.length_blowup_factor:
            found["length_blowup"] = (
                f"mean completion length grew {now / before:.1f}x ({before:.0f} → {now:.0f} tokens)"
            )
        return found


def _raised(key: str, message: str, step: Any) -> dict[str, Any]:
    """The record of a rule starting to hold; its key names the rule and the series (`drop:quality/format_rate`)."""
    kind = key.split(":")[0]
    return {
        "kind": kind,
        "level": "notice" if kind in _NOTICE_KINDS else "alert",
        "key": key,
        "message": message,
        "step": step,
    }


def _mean(records: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in records if isinstance(r.get(key), int | float) and math.isfinite(r[key])]
    return sum(values) / len(values) if values else None  # statistics.fmean raises OverflowError near float max
