"""What the policy generated: every GRPO batch, seen through the reward functions.

TRL calls each reward function with the same batch of completions, one after the other. `RolloutRecorder.tap`
wraps the reward functions so the recorder collects, per batch, the completions, their token lengths and every
reward's values. The monitor turns a window of batches into quality statistics and best/worst examples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from r1kit import distributed
from r1kit.rewards.functions import count_reasoning_steps, cut_at_limit
from r1kit.rewards.text import THINK_CLOSE, THINK_OPEN, completion_text, extract_answer, prompt_text, split_r1


@dataclass
class Rollout:
    """One generation batch as one process scored it: num_generations consecutive completions share a prompt (with
    several processes, a group may continue in another process's batch)."""

    step: int
    prompts: list[str]
    completions: list[str]
    lengths: list[int]  # completion tokens
    truncated: list[bool]  # cut at the token limit: no end token there (one that ends on the last token is complete)
    rewards: dict[str, list[float | None]] = field(default_factory=dict)
    batch: int = 0  # which of the step's generation batches (dynamic sampling's retries are batches too)
    first_row: int = 0  # the place of this process's first completion in that batch (processes hold equal slices)
    # the reward each completion was trained on, where the trainer computes it itself (PPO: its missing-EOS penalty,
    # a missing verdict at the batch's mean); None: the weighted sum of the rewards (`totals`)
    trained_on: list[float] | None = None
    # prompt groups (their places in the whole generation batch) that were not trained on: dynamic sampling replaced
    # them, or had no use for them (a fresh batch's groups beyond those it needed)
    left_out: set[int] = field(default_factory=set)
    groups: list[int] | None = None  # each completion's group place, once groups were left out (else from first_row)

    def trained_part(self, num_generations: int) -> Rollout:
        """This batch without the groups left out of training: what the statistics and examples describe."""
        if not self.left_out:
            return self
        places = self.group_places(num_generations)
        rows = [i for i, place in enumerate(places) if place not in self.left_out]

        def pick(values: list) -> list:
            return [values[i] for i in rows]

        return replace(
            self,
            prompts=pick(self.prompts),
            completions=pick(self.completions),
            lengths=pick(self.lengths),
            truncated=pick(self.truncated),
            rewards={name: pick(values) for name, values in self.rewards.items()},
            trained_on=None if self.trained_on is None else pick(self.trained_on),
            groups=pick(places),
            left_out=set(),
        )

    def group_places(self, num_generations: int) -> list[int]:
        """Each completion's prompt group: its place in the whole generation batch."""
        if self.groups is not None:
            return self.groups
        return [(self.first_row + i) // num_generations for i in range(len(self.completions))]

    def totals(self, weights: dict[str, float]) -> list[float | None]:
        """Weighted reward per completion, None-values skipped, None if every reward was None (for the console and
        the examples; the trainer counts a None at its group's mean of that reward); what the trainer trained on
        where it said (`trained_on`)."""
        if self.trained_on is not None:
            return list(self.trained_on)
        totals: list[float | None] = []
        for index in range(len(self.completions)):
            values = [(weights[name], v[index]) for name, v in self.rewards.items() if v[index] is not None]
            totals.append(sum(w * value for w, value in values) if values else None)
        return totals


@dataclass
class RolloutRecorder:
    weights: dict[str, float]
    num_generations: int
    max_completion_length: int
    end_token_ids: Sequence[int] = ()  # the tokens that end a completion (EOS, end of turn)
    rollouts: list[Rollout] = field(default_factory=list)
    _batch: Any = None  # the completions list object of the batch being scored

    def tap(self, name: str, reward: Callable[..., list[float | None]]) -> Callable[..., list[float | None]]:
        """`reward`, recording its values for the current batch."""

        def recorded_reward(completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
            values = reward(completions, **kwargs)
            if completions is not self._batch:  # the first reward of a new batch
                self._batch = completions
                state = kwargs.get("trainer_state")
                ids = kwargs.get("completion_ids") or [[]] * len(completions)
                step = (state.global_step + 1) if state is not None else 0  # the step being computed
                self.rollouts.append(
                    Rollout(
                        step=step,
                        batch=sum(rollout.step == step for rollout in self.rollouts),
                        first_row=distributed.index() * len(completions),
                        prompts=[prompt_text(p) for p in kwargs.get("prompts") or [""] * len(completions)],
                        completions=[completion_text(c) for c in completions],
                        lengths=[len(row) for row in ids],
                        truncated=[cut_at_limit(row, self.max_completion_length, self.end_token_ids) for row in ids],
                    )
                )
            self.rollouts[-1].rewards[name] = list(values)
            return values

        recorded_reward.__name__ = name
        return recorded_reward

    def latest(self) -> Rollout | None:
        """The batch recorded last in this process (the rollouts being scored), None before the first."""
        return self.rollouts[-1] if self.rollouts else None

    def take(self) -> list[Rollout]:
        """The batches recorded since the last call."""
        taken, self.rollouts = self.rollouts, []
        return taken

    # ------------------------------------------------------------------------------------------------ statistics

    def statistics(self, rollouts: list[Rollout]) -> dict[str, float | None]:
        """Per-reward mean/std/min/max, the weighted total, and generation-quality figures of a window."""
        stats: dict[str, float | None] = {}
        rollouts = [rollout.trained_part(self.num_generations) for rollout in rollouts]
        if not rollouts:
            return stats
        for name in rollouts[0].rewards:
            stats.update(_describe(f"rewards/{name}", [v for r in rollouts for v in r.rewards.get(name, [])]))
        totals = [t for r in rollouts for t in r.totals(self.weights)]
        stats.update(_describe("rewards/total", totals))

        texts = [c for r in rollouts for c in r.completions]
        lengths = [n for r in rollouts for n in r.lengths]
        thinks = [len(t) for t in (_think(c) for c in texts) if t is not None]
        answers = [len(a) for a in (extract_answer(c) for c in texts) if a is not None]
        stats["quality/completions"] = len(texts)  # scored in the window, by every process
        stats["quality/format_rate"] = _mean([float(split_r1(c) is not None) for c in texts])
        stats["quality/completion_tokens"] = _mean([float(n) for n in lengths])
        stats["quality/think_chars"] = _mean([float(n) for n in thinks])
        stats["quality/answer_chars"] = _mean([float(n) for n in answers])
        stats["quality/truncated_share"] = _mean([float(cut) for r in rollouts for cut in r.truncated])
        stats["quality/reasoning_steps"] = _mean([float(count_reasoning_steps(c)) for c in texts])
        stats["quality/zero_advantage_share"] = _mean([float(_all_equal(g)) for g in self._prompt_groups(rollouts)])
        return stats

    def _prompt_groups(self, rollouts: list[Rollout]) -> list[list[float | None]]:
        """The total rewards of each prompt group (num_generations consecutive completions of a generation batch),
        from every process's rollouts: with several processes a group can be split between two of them (TRL hands
        each an equal slice of the batch, and gathers the rewards before the advantages)."""
        groups: dict[tuple[int, int, int], list[dict[str, float | None]]] = {}
        for rollout in rollouts:
            for index, place in enumerate(rollout.group_places(self.num_generations)):
                scores = {name: values[index] for name, values in rollout.rewards.items()}
                groups.setdefault((rollout.step, rollout.batch, place), []).append(scores)
        return [self._group_totals(group) for group in groups.values()]

    def _group_totals(self, group: list[dict[str, float | None]]) -> list[float | None]:
        """A group's weighted totals as the trainer sums them (`no_verdict_as_group_mean`): a reward's missing
        verdict counts at its mean over the group, a completion no reward judged is None (left out)."""
        means = {}
        for name in self.weights:
            judged = [scores[name] for scores in group if scores.get(name) is not None]
            means[name] = sum(judged) / len(judged) if judged else None
        totals: list[float | None] = []
        for scores in group:
            if all(value is None for value in scores.values()):
                totals.append(None)
                continue
            total = 0.0
            for name, weight in self.weights.items():
                value = means[name] if scores.get(name) is None else scores[name]
                total += 0.0 if value is None else weight * value  # judged nowhere in the group: no part of it
            totals.append(total)
        return totals

    def extremes(self, rollouts: list[Rollout]) -> list[dict[str, Any]]:
        """The best and the worst completion of a window by total reward, each with its reward breakdown; one, of kind
        "all equal", where every total is the same (the usual case early in RL: the same completion was shown twice,
        as the best and as the worst)."""
        scored = []
        for rollout in (rollout.trained_part(self.num_generations) for rollout in rollouts):
            for index, total in enumerate(rollout.totals(self.weights)):
                if total is not None:
                    scored.append((total, rollout, index))
        if not scored:
            return []
        best, worst = max(scored, key=lambda s: s[0]), min(scored, key=lambda s: s[0])
        tied = math.isclose(best[0], worst[0], abs_tol=1e-9)  # 0.1 + 0.2 and 0.3: the same total, printed so
        shown = (("all equal", best),) if tied else (("best", best), ("worst", worst))
        return [
            {
                "kind": kind,
                "step": rollout.step,
                "total": total,
                "rewards": {name: values[index] for name, values in rollout.rewards.items()},
                "prompt": rollout.prompts[index],
                "completion": rollout.completions[index],
                "tokens": rollout.lengths[index],
            }
            for kind, (total, rollout, index) in shown
        ]


def _think(text: str) -> str | None:
    start = text.find(THINK_OPEN)
    end = text.find(THINK_CLOSE, start + 1)
    return text[start + len(THINK_OPEN) : end].strip() if 0 <= start < end else None


def _all_equal(group: list[float | None]) -> bool:
    """Identical rewards across a prompt's group: zero advantage, no learning signal from this prompt."""
    finite = [v for v in group if v is not None]
    return len(finite) < 2 or max(finite) - min(finite) < 1e-9


def _mean(values: list[float]) -> float | None:
    # a plain sum: statistics.fmean raises OverflowError on finite values near the float maximum (a reward may
    # return 1e308), where this gives inf
    return sum(values) / len(values) if values else None


def _describe(prefix: str, values: list[float | None]) -> dict[str, float | None]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {f"{prefix}/mean": None, f"{prefix}/std": None, f"{prefix}/min": None, f"{prefix}/max": None}
    mean = _mean(finite)
    return {
        f"{prefix}/mean": mean,
        f"{prefix}/std": math.sqrt(_mean([(v - mean) * (v - mean) for v in finite]))
        if math.isfinite(mean)
        else math.inf,
        f"{prefix}/min": min(finite),
        f"{prefix}/max": max(finite),
    }
