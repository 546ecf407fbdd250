"""Interval arithmetic on hand-computed cases."""

from __future__ import annotations

import pytest

from r1kit.stats import accuracy_by_group, paired_difference, wilson_interval


def test_wilson_interval_on_hand_computed_cases() -> None:
    # 50/100: center 0.5, half-width 1.96·sqrt(0.25/100 + 1.96²/40000) / (1 + 1.96²/100) = 0.0962
    assert wilson_interval(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    # 0/20: the lower bound is 0, the upper z²/(n + z²) = 3.8415/23.8415
    assert wilson_interval(0, 20) == pytest.approx((0.0, 0.16113), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_paired_difference_on_a_hand_computed_case() -> None:
    # differences 1, 0, 0, -1, 1 (the unscored pair left out): mean 0.2, sample variance 0.7, se sqrt(0.7/5), and
    # Student's t for 4 degrees of freedom, 2.776 (the normal's 1.96 made the interval of 5 problems too narrow)
    change = paired_difference([0, 1, 1, 1, 0, None], [1, 1, 1, 0, 1, 1])
    assert change["problems"] == 5 and change["difference"] == pytest.approx(0.2)
    half = 2.776 * (0.7 / 5) ** 0.5
    assert change["ci95"] == pytest.approx([0.2 - half, 1.0], abs=1e-5)  # the upper end clipped at +100 points
    # 12 problems, 3 fixed and 1 broken: mean 1/6, sample variance (4 − 12/36)/11 = 1/3, se 1/6, t for 11 d.f. 2.201;
    # its lower end goes down to the exact one given the 4 changed: 3 of 4 fixed, Clopper-Pearson's lower rate q
    # solves P(X >= 3) = 4q³ − 3q⁴ = 0.025, q = 0.19412, so 4/12 × (2q − 1) = −0.20392 (t's: −0.20017)
    twelve = paired_difference([0, 0, 0, 1] + [1] * 4 + [0] * 4, [1, 1, 1, 0] + [1] * 4 + [0] * 4)
    assert twelve["ci95"] == pytest.approx([4 / 12 * (2 * 0.19412 - 1), 1 / 6 + 2.201 / 6], abs=1e-5)
    assert (change["fixed"], change["broken"]) == (2, 1)  # 0 → 1 twice, 1 → 0 once
    assert paired_difference([None], [1])["difference"] is None
    assert paired_difference([0], [1])["ci95"] == [-1.0, 1.0]  # one problem says nothing either way


def test_a_paired_interval_is_never_certain_and_stays_within_plus_minus_one() -> None:
    # all 5 problems fixed: the differences' spread is 0, and Wilson's bound for 0 of 5 (±3.8415/8.8415) still read
    # as a gain; given 5 changed, all fixed has probability 0.5⁵ each way, McNemar's exact p = 0.0625: the exact
    # lower rate is 0.025^(1/5) = 0.47818, the difference 2 × 0.47818 − 1 (the upper end clipped at +100 points)
    assert paired_difference([0] * 5, [1] * 5)["ci95"] == pytest.approx([2 * 0.025 ** (1 / 5) - 1, 1.0], abs=1e-4)
    assert paired_difference([1] * 5, [0] * 5)["ci95"] == pytest.approx([-1.0, 1 - 2 * 0.025 ** (1 / 5)], abs=1e-4)
    # 4 fixed, none broken of 200 (exact p = 0.125) read as a gain, [+0.0, +4.0] points; 6 of 6 (p = 0.031) is one
    four = paired_difference([0] * 200, [1] * 4 + [0] * 196)["ci95"]
    assert four[0] == pytest.approx(4 / 200 * (2 * 0.025 ** (1 / 4) - 1), abs=1e-6) and four[0] < 0
    six = paired_difference([0] * 200, [1] * 6 + [0] * 194)["ci95"]
    assert six[0] == pytest.approx(6 / 200 * (2 * 0.025 ** (1 / 6) - 1), abs=1e-6) and six[0] > 0
    # 49 of 50 fixed: the normal interval's upper end, 0.98 + 1.96·sqrt(0.0196/50) = 1.019, is clipped at 1
    assert paired_difference([0] * 50, [1] * 49 + [0])["ci95"][1] == 1.0
    # one of 200 fixed: at least as wide as when none changed (±3.8415/203.8415), not narrower
    one, none = paired_difference([0] * 200, [1] + [0] * 199)["ci95"], paired_difference([0] * 200, [0] * 200)["ci95"]
    assert one[1] - one[0] >= none[1] - none[0] == pytest.approx(2 * 3.8415 / 203.8415, abs=1e-4)


def test_groups_are_listed_in_reading_order() -> None:
    by = accuracy_by_group([1.0, 0.0, 1.0, 1.0], ["10", "2", "1", "hard"])
    assert list(by) == ["1", "2", "10", "hard"]  # as text, "10" came before "2"
    # a numeric level column's missing value reads "nan": it compared false with every level and scrambled them
    by = accuracy_by_group([1.0] * 6, ["3", "nan", "1", "10", "2", "hard"])
    assert list(by) == ["1", "2", "3", "10", "hard", "nan"]


def test_majority_vote_on_hand_written_completions() -> None:
    from r1kit.stages.evaluate import majority_correct

    right, wrong = 1.0, 0.0
    # two right answers written two ways vote together against a repeated wrong one
    assert majority_correct(
        ["<think>a</think><answer>12</answer>", "<answer>13</answer>", "<answer>13</answer>", "<answer>12.0</answer>",
         "<answer>\\boxed{12}</answer>"],
        [right, wrong, wrong, right, right],
    )  # fmt: skip
    # the same wrong number written three ways (1,200 / $1200 / 1200.0) outvotes two right ones
    assert not majority_correct(
        ["<answer>1,200</answer>", "<answer>$1200</answer>", "<answer>1200.0</answer>", "<answer>1100</answer>",
         "<answer>1100</answer>"],
        [wrong, wrong, wrong, right, right],
    )  # fmt: skip
    # completions cut off while thinking do not vote: one right answer against none
    assert majority_correct(["<think>3 * 4 = 12, then", "<think>so 5", "<answer>7</answer>"], [wrong, wrong, right])
    assert not majority_correct(["<think>3 * 4 = 12, then", "<think>so"], [wrong, wrong])  # no answer at all
    # a tie goes to the answer voted first, right or wrong
    assert majority_correct(["<answer>7</answer>", "<answer>8</answer>"], [right, wrong])
    assert not majority_correct(["<answer>8</answer>", "<answer>7</answer>"], [wrong, right])


def test_a_wrong_answer_written_several_ways_votes_once() -> None:
    """cons@n counted "1/2", "0.5" and "\\frac{1}{2}" as three answers, so two right samples outvoted them."""
    from r1kit.rewards import build_reward
    from r1kit.stages.evaluate import consensus

    samples = [["<answer>1/2</answer>", "<answer>3</answer>", "<answer>0.5</answer>", "<answer>\\frac{1}{2}</answer>",
                "<answer>3</answer>"], ["<answer>12</answer>", "So it is 13.", "13 apples", "The answer: 13",
                "<answer>12</answer>"], ["<answer>12</answer>", "So it is 13.", "14 apples", "<answer>12</answer>"]]  # fmt: skip
    verdicts = [[0.0, 1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]]
    # prose answers (a base model's) are read as the verifier reads them; two different wrong answers stay two
    assert consensus(samples, verdicts, build_reward("accuracy")) == [False, False, True]


def test_votes_keep_numbers_apart_that_only_look_alike() -> None:
    """The vote dropped every comma ("1,2" voted with "12") and rounded to 28 digits (two 33-digit answers voted
    together), so two different wrong answers could outvote a right one."""
    from r1kit.stages.evaluate import majority_correct

    right, wrong = 1.0, 0.0
    assert majority_correct(
        ["<answer>7</answer>", "<answer>1,2</answer>", "<answer>12</answer>"], [right, wrong, wrong]
    )
    big = "265252859812191058636308480000000"
    assert majority_correct(
        ["<answer>7</answer>", f"<answer>{big}</answer>", f"<answer>{big[:-1]}1</answer>"], [right, wrong, wrong]
    )
    # separators still vote together
    assert not majority_correct(["<answer>7</answer>", "<answer>-12,000</answer>", "<answer>-12000</answer>"],
                                [right, wrong, wrong])  # fmt: skip


def test_an_answer_that_hangs_the_verifier_is_wrong_not_left_out() -> None:
    """Evaluation left out a problem whose answer the verifier timed out on, as it does one whose gold it cannot
    read: a model answering every problem it could not solve with a power tower scored 100%, and two models were
    scored on different problems. Only the gold decides what is left out now."""
    from r1kit.config.sources import resolve_config
    from r1kit.stages.evaluate import answer_scores
    from tests.hostile import HOSTILE

    config = resolve_config(overrides=["--rewards.verification.timeout_seconds", "0.5"], environ={}).config
    tower = HOSTILE["huge_power_tower"]
    scores = answer_scores(config, ["<answer>2</answer>", tower, "<answer>5</answer>", "<answer>4</answer>"],
                           ["2", "4", "see the steps above", None])  # fmt: skip
    assert scores == ([1.0, 0.0, None, None], 1)  # one answer unjudged, scored wrong and counted
    # a gold that makes the verifier raise is the gold's failure: left out, even for the answer written as it
    assert answer_scores(config, ["<answer>\\frac{1}{0}</answer>", "<answer>7</answer>"], ["\\frac{1}{0}"] * 2) == (
        [None, None],
        0,
    )


def test_the_vote_verifies_pairs_of_wrong_answers_only_where_they_could_win() -> None:
    """Every pair of distinct wrong answers was verified on every problem, also where no right answer was sampled
    or the right ones outnumber all the wrong: cons@64 of a weak model took about an hour of verification."""
    from r1kit.stages.evaluate import consensus

    asked = []

    def accuracy(answers, solution):  # the verifier's signature; records what it was asked
        asked.extend(zip(answers, solution, strict=True))
        return [0.0] * len(answers)

    wrong = [f"<answer>{n}</answer>" for n in range(10, 16)]
    assert consensus([wrong], [[0.0] * 6], accuracy) == [False] and not asked  # nothing right: wrong
    right = ["<answer>7</answer>"] * 4
    assert consensus([right + wrong[:3]], [[1.0] * 4 + [0.0] * 3], accuracy) == [True] and not asked  # 4 > 3
    assert consensus([right[:2] + wrong[:3]], [[1.0] * 2 + [0.0] * 3], accuracy) == [True] and len(asked) == 3
