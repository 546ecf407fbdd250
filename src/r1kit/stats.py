"""Intervals for held-out accuracy: a gain inside the noise is no gain.

- `wilson_interval`: the 95% interval of a pass rate (Wilson score interval: sound at 0% and 100% and for small n,
  where the normal approximation gives impossible bounds).
- `paired_difference`: the change between two models scored on the same problems, with the 95% interval of the mean
  per-problem difference (pairing removes the problems' own difficulty from the noise); for right/wrong scores, at
  least as wide as the exact interval given the problems that changed (McNemar's exact test).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile

# Student's t 97.5% quantiles for 1 to 30 degrees of freedom (standard tables); past 30, `t95` expands around Z95.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


def t95(degrees: int) -> float:
    """Student's t 97.5% quantile: the 95% interval of a mean of degrees + 1 values, whose spread is estimated from
    them (the normal's 1.96 is too narrow for few problems: 2.26 for 10).

    >>> t95(9), round(t95(30), 3), round(t95(60), 3), round(t95(199), 3)
    (2.262, 2.042, 2.0, 1.972)
    """
    if degrees < 1:  # no spread to estimate (_T95[-1] would have been read)
        raise ValueError(f"a t interval needs at least 1 degree of freedom, not {degrees}")
    if degrees <= len(_T95):
        return _T95[degrees - 1]
    z = Z95  # Cornish-Fisher expansion of t in 1/degrees, within 0.001 of the tables from 30 on
    return z + (z**3 + z) / (4 * degrees) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * degrees**2)


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson interval of a pass rate of successes / n.

    >>> [round(x, 4) for x in wilson_interval(11, 200)]
    [0.031, 0.0958]
    >>> wilson_interval(0, 10)[0], wilson_interval(10, 10)[1], wilson_interval(0, 3)[0]  # was 5.55e-17 at 0 of 3
    (0.0, 1.0, 0.0)
    """
    if n == 0:
        return 0.0, 1.0
    rate = successes / n
    center = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # at 0 or n successes the bound is exactly 0 or 1: the formula leaves float dust there (5.55e-17)
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == n else min(1.0, center + half)
    return low, high


def clopper_pearson(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial rate: the rates at which as many successes or more (fewer or as
    many) have probability (1 − level) / 2, found by bisection.

    >>> [round(x, 4) for x in clopper_pearson(4, 4)], [round(x, 4) for x in clopper_pearson(0, 10)]
    ([0.3976, 1.0], [0.0, 0.3085])
    >>> [round(x, 4) for x in clopper_pearson(11, 14)]
    [0.492, 0.9534]
    """
    tail = (1 - level) / 2
    low = 0.0 if successes == 0 else _rate_where(lambda p: _at_least(successes, n, p) >= tail)
    high = 1.0 if successes == n else _rate_where(lambda p: _at_least(successes + 1, n, p) > 1 - tail)
    return low, high


def _at_least(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), 0 < p < 1 (terms in log space: n may be thousands)."""
    log_p, log_q, log_n_factorial = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    terms = (
        log_n_factorial - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
        for i in range(k, n + 1)
    )
    return min(1.0, sum(map(math.exp, terms)))


def _rate_where(reached: Callable[[float], bool]) -> float:
    """The least rate in (0, 1) at which `reached` (false below it, true above) holds, to 1e-12."""
    below, above = 0.0, 1.0
    while above - below > 1e-12:
        middle = (below + above) / 2
        below, above = (below, middle) if reached(middle) else (middle, above)
    return above


def flipped(before: Sequence[float | None], after: Sequence[float | None]) -> tuple[list[int], list[int]]:
    """Indices of the problems both scored that went from wrong to right (fixed) and from right to wrong (broken).

    >>> flipped([0, 0, 1, 1, None], [1, 0, 0, 1, 1])
    ([0], [2])
    """
    both = [(i, a, b) for i, (a, b) in enumerate(zip(before, after, strict=True)) if a is not None and b is not None]
    return [i for i, a, b in both if a < 0.5 <= b], [i for i, a, b in both if b < 0.5 <= a]


def paired_difference(before: Sequence[float | None], after: Sequence[float | None]) -> dict:
    """Mean of after − before over the problems both scored (None: not scored), with its 95% interval, and how many
    problems went from wrong to right (`fixed`) and from right to wrong (`broken`): a small change can hide much churn.

    The interval is Student's t interval of the mean of the per-problem differences, kept within [−1, 1]. Where every
    score is right or wrong, it is widened to hold the exact interval given the problems that changed: fixed of
    fixed + broken as a binomial rate q (Clopper-Pearson), the difference (fixed + broken) / n × (2q − 1). With few
    changes, all one way, the t interval is too narrow: 4 fixed and none broken of 200 read as a gain, where McNemar's
    exact test gives p = 0.125.

    >>> d = paired_difference([0, 0, 1, 1, 0, 1], [1, 0, 1, 0, 1, 1])
    >>> d["problems"], round(d["difference"], 4), [round(x, 4) for x in d["ci95"]], d["fixed"], d["broken"]
    (6, 0.1667, [-0.6234, 0.9568], 2, 1)
    >>> [round(x, 4) for x in paired_difference([1, 0] * 4, [1, 0] * 4)["ci95"]]  # nothing changed, 8 problems
    [-0.3244, 0.3244]
    >>> [round(x, 4) for x in paired_difference([0] * 5, [1] * 5)["ci95"]]  # every problem fixed: not certainty
    [-0.0436, 1.0]
    >>> [round(x, 4) for x in paired_difference([0] * 200, [1] * 4 + [0] * 196)["ci95"]]  # 4 fixed of 200
    [-0.0041, 0.0396]
    >>> [round(x, 4) for x in paired_difference([0.5, 0, 1], [1, 0.5, 1])["ci95"]]  # not right/wrong: t alone
    [-0.3838, 1.0]
    """
    pairs = [(a, b) for a, b in zip(before, after, strict=True) if a is not None and b is not None]
    n = len(pairs)
    if n == 0:
        return {"problems": 0, "difference": None, "ci95": None, "fixed": 0, "broken": 0}
    differences = [b - a for a, b in pairs]
    mean = sum(differences) / n
    variance = sum((d - mean) ** 2 for d in differences) / (n - 1) if n > 1 else 0.0
    # Where every problem changed alike (none, or all fixed) the differences' spread is 0, and so would the normal
    # interval be ("[+0.0, +0.0]" over 8 problems), and with few changes it is too narrow. The half-width is at least
    # the Wilson bound of the share of problems that could have gone the other way, none of n seen.
    half = max(t95(n - 1) * math.sqrt(variance / n), wilson_interval(0, n)[1]) if n > 1 else 2.0  # n 1: [−1, +1]
    low, high = mean - half, mean + half
    fixed, broken = flipped(before, after)
    changed = len(fixed) + len(broken)
    if changed and all(score in (0, 1) for pair in pairs for score in pair):
        q_low, q_high = clopper_pearson(len(fixed), changed)
        low, high = min(low, changed / n * (2 * q_low - 1)), max(high, changed / n * (2 * q_high - 1))
    return {
        "problems": n,
        "difference": mean,
        "ci95": [max(-1.0, low), min(1.0, high)],
        "fixed": len(fixed),
        "broken": len(broken),
    }


def paired_changes(
    scores: Mapping[str, Sequence[float | None]],
    started_from: Mapping[str, str | None],
    taught_by: Mapping[str, str | None] | None = None,
) -> dict[str, dict]:
    """The paired change of each evaluated model against the evaluation of the model it started from
    (`started_from`: label → that label, or None) and, for a distilled student, of its teacher (`taught_by`), then
    of the last evaluation against the first, keyed "before→after"; a pair whose scores differ in count, or are
    empty, is left out. `scores` is in run order.

    >>> changes = paired_changes({"base": [0, 1], "sft": [1, 1], "grpo": [1, 0]}, {"sft": "base", "grpo": "sft"})
    >>> list(changes), changes["base→sft"]["difference"]
    (['base→sft', 'sft→grpo', 'base→grpo'], 0.5)
    >>> list(paired_changes({"base": [0, 1], "sft": [1, 1], "distill": [1, 0]}, {"sft": "base", "distill": "base"},
    ...                     {"distill": "sft"}))
    ['base→sft', 'base→distill', 'sft→distill']
    """
    labels, taught_by = list(scores), taught_by or {}
    steps = [
        (before[label], label)
        for label in labels[1:]
        for before in (started_from, taught_by)
        if before.get(label) in scores
    ]
    pairs = dict.fromkeys([*steps, (labels[0], labels[-1])] if labels else [])
    return {
        f"{before}→{after}": paired_difference(scores[before], scores[after])
        for before, after in pairs
        if before != after and len(scores[before]) == len(scores[after]) > 0
    }


def accuracy_by_group(scores: Sequence[float | None], groups: Sequence[str | None]) -> dict[str, dict]:
    """Pass@1 per group of problems (a difficulty level, a task) with its 95% Wilson interval; problems without a
    group or a score are left out. Empty when no problem has a group.

    >>> by = accuracy_by_group([1.0, 0.0, 1.0, None, 1.0], ["1", "1", "2", "2", None])
    >>> {g: (v["problems"], v["accuracy"]) for g, v in by.items()}
    {'1': (2, 0.5), '2': (1, 1.0)}
    """
    found: dict[str, list[float]] = {}
    for score, group in zip(scores, groups, strict=True):
        if score is not None and group is not None:
            found.setdefault(group, []).append(score)
    return {
        group: {
            "problems": len(values),
            "accuracy": sum(values) / len(values),
            "ci95": list(wilson_interval(sum(v > 0.5 for v in values), len(values))),
        }
        for group, values in sorted(found.items(), key=lambda item: group_order(item[0]))
    }


def group_order(group: str) -> tuple:
    """Groups in reading order: numbers by value (level 2 before level 10), then names ("nan", a numeric column's
    missing value, and "inf" among them: NaN compares false with everything and broke the order).

    >>> sorted(["10", "2", "b", "1.5", "a"], key=group_order)
    ['1.5', '2', '10', 'a', 'b']
    >>> sorted(["3", "nan", "1", "10", "2", "inf", "hard"], key=group_order)
    ['1', '2', '3', '10', 'hard', 'inf', 'nan']
    """
    try:
        value = float(group)
    except ValueError:
        return (1, 0.0, group)
    return (0, value, group) if math.isfinite(value) else (1, 0.0, group)
