"""Interval arithmetic on hand-computed cases."""

from __future__ import annotations

import pytest

from r1kit.stats import paired_difference, wilson_interval


def test_wilson_interval_on_hand_computed_cases() -> None:
    # 50/100: center 0.5, half-width 1.96·sqrt(0.25/100 + 1.96²/40000) / (1 + 1.96²/100) = 0.0962
    assert wilson_interval(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    # 0/20: the lower bound is 0, the upper z²/(n + z²) = 3.8415/23.8415
    assert wilson_interval(0, 20) == pytest.approx((0.0, 0.16113), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_paired_difference_on_a_hand_computed_case() -> None:
    # differences 1, 0, 0, -1, 1 (the unscored pair left out): mean 0.2, sample variance 0.7, se sqrt(0.7/5)
    change = paired_difference([0, 1, 1, 1, 0, None], [1, 1, 1, 0, 1, 1])
    assert change["problems"] == 5 and change["difference"] == pytest.approx(0.2)
    half = 1.959964 * (0.7 / 5) ** 0.5
    assert change["ci95"] == pytest.approx([0.2 - half, 0.2 + half], abs=1e-5)
    assert (change["fixed"], change["broken"]) == (2, 1)  # 0 → 1 twice, 1 → 0 once
    assert paired_difference([None], [1])["difference"] is None
