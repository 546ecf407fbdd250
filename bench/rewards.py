"""Reward benchmark: completions the accuracy reward scores per second, and the worst case on hostile completions.

    python bench/rewards.py

Prints completions scored/s for 1,000 mixed completions (one batch call, as GRPO makes them) with 1 and 2 verifier
workers, the per-batch latency of TRL-sized batches (16, each of numbers no earlier call verified), the slowest reward
call on each hostile completion (tests/hostile.py), and the worst GRPO-shaped batch (2 groups of 8, accuracy then cosine, as a step scores them) over
a hostile mix in which a quarter of the groups have an adversarial gold answer, against the batch budget. All with
r1kit's default verification settings. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from r1kit.config.schema import VerificationConfig  # noqa: E402
from r1kit.data.synthetic import generate  # noqa: E402
from r1kit.rewards import REWARD_NAMES, build_reward  # noqa: E402
from r1kit.rewards.verifier import shared_verifier  # noqa: E402
from tests.hostile import HOSTILE  # noqa: E402

DEFAULTS = VerificationConfig()
HOSTILE_GOLDS = [
    "16**2**5**19",
    "9^{9^{9^{9}}}",
    "(10^{10})!",
    "10**10**10**10**10",
    "\\frac{" * 300 + "1" + "}{2}" * 300,
]


def mixed_completions(count: int, seed: int = 0, offset: int = 0) -> tuple[list[str], list[str]]:
    """Completions as a policy in training writes them: right and wrong answers, tagged or not, boxed, rambling.
    `offset` is added to every gold (and answer): other numbers, so verdicts another call left in the verifier's
    memory do not answer for them."""
    rng = random.Random(seed)
    completions, golds = [], []
    for row in generate("mixed", count, seed=seed):
        gold = str(int(row["solution"]) + offset)
        wrong = str(int(gold) + rng.choice([-3, -1, 1, 2, 10]))
        answer = gold if rng.random() < 0.5 else wrong
        completions.append(
            rng.choice(
                [
                    f"<think>\n{row['reasoning']}\n</think>\n<answer>{answer}</answer>",
                    f"<think>{row['reasoning']}</think><answer>The answer is {answer}.</answer>",
                    f"Let me compute. {row['reasoning']} So the result is \\boxed{{{answer}}}.",
                    f"{row['reasoning']}\nTherefore the total is {answer} {rng.choice(['apples', 'coins', ''])}",
                    "<think>I am not sure.</think><answer>"
                    + rng.choice(["\\frac{1}{2}", "x+1", "seven", answer + ".0"])
                    + "</answer>",
                ]
            )
        )
        # a few unparseable golds (no digit: "… 0" would be read as 0), other text where the numbers are
        golds.append(gold if rng.random() > 0.02 else "no numeric gold" + (" either" if offset else ""))
    return completions, golds


def main() -> None:
    # no options: --help says what it measures instead of running it
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    completions, golds = mixed_completions(1000)
    print("accuracy reward, 1,000 mixed completions in one call:")
    for workers in (1, 2):
        accuracy = build_reward("accuracy", workers=workers)
        accuracy(completions[:4], solution=golds[:4])  # start the warm workers outside the timing
        started = time.perf_counter()
        scores = accuracy(completions, solution=golds)
        seconds = time.perf_counter() - started
        print(  # completions, not verifications: the pool verifies a repeated (answer, gold) pair once
            f"  {workers} worker(s): {len(completions) / seconds:8.0f} completions scored/s "
            f"({sum(s == 1.0 for s in scores)} correct, {sum(s is None for s in scores)} excluded)"
        )
        shared_verifier(workers, DEFAULTS.timeout_seconds, DEFAULTS.batch_budget_seconds).close()

    accuracy = build_reward("accuracy")
    accuracy(["<answer>1</answer>"], solution=["1"])  # warm workers
    latencies = []
    for batch in range(20):
        # numbers not seen yet, each batch its own: the pool remembers verdicts and golds it checked (the 1,000
        # above stay below 10^6; batches drawing from one pool of golds found most of theirs checked already)
        fresh, fresh_golds = mixed_completions(16, seed=1 + batch, offset=10**6 * (batch + 1))
        started = time.perf_counter()
        accuracy(fresh, solution=fresh_golds)
        latencies.append(time.perf_counter() - started)
    print(
        f"  batches of 16 (one GRPO step): median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )

    print(f"hostile completions, slowest reward call each (limit {DEFAULTS.timeout_seconds:.0f} s per verification):")
    rewards = {name: build_reward(name, **({"max_length": 128} if name == "overlong" else {})) for name in REWARD_NAMES}
    worst_case = 0.0
    for case, text in HOSTILE.items():
        slowest, slowest_name = 0.0, ""
        for name, reward in rewards.items():
            started = time.perf_counter()
            reward(
                [text],
                solution=["4"],
                prompts=[[{"role": "user", "content": "How many apples?"}]],
                completion_ids=[[0] * 128],
            )
            elapsed = time.perf_counter() - started
            if elapsed > slowest:
                slowest, slowest_name = elapsed, name
        worst_case = max(worst_case, slowest)
        print(f"  {case:26} {slowest:6.2f} s  ({slowest_name})")
    print(f"  worst case: {worst_case:.2f} s")

    worst_batch, worst_total = hostile_batches(completions, golds)
    print(
        json.dumps(
            {
                "hostile_worst_batch_seconds": round(worst_batch, 2),
                "hostile_worst_step_seconds": round(worst_total, 2),
                "batch_budget_seconds": DEFAULTS.batch_budget_seconds,
            }
        )
    )


def hostile_batches(completions: list[str], golds: list[str], batches: int = 24) -> tuple[float, float]:
    """GRPO-shaped batches (2 groups of 8) over a hostile mix: a quarter of the groups get an adversarial gold shared
    by the group, some completions are hostile. Returns the worst accuracy call and the worst accuracy + cosine step."""
    rng = random.Random(1)
    accuracy, cosine = build_reward("accuracy"), build_reward("cosine")
    accuracy(completions[:2], solution=golds[:2])  # warm workers, as after a run's first step
    worst_batch = worst_total = 0.0
    hostile_texts = list(HOSTILE.values())
    for batch in range(batches):
        batch_completions, batch_golds = [], []
        for group in range(2):
            start = (batch * 2 + group) * 8
            gold = rng.choice(HOSTILE_GOLDS) if rng.random() < 0.25 else golds[start]
            group_completions = completions[start : start + 8]
            if rng.random() < 0.25:
                group_completions[rng.randrange(8)] = rng.choice(hostile_texts)
            batch_completions += group_completions
            batch_golds += [gold] * 8
        started = time.perf_counter()
        accuracy(batch_completions, solution=batch_golds)
        middle = time.perf_counter()
        cosine(batch_completions, solution=batch_golds)
        ended = time.perf_counter()
        worst_batch, worst_total = max(worst_batch, middle - started), max(worst_total, ended - started)
    print(
        f"hostile mix, {batches} GRPO-shaped batches of 16 (budget {DEFAULTS.batch_budget_seconds:.0f} s a batch): "
        f"worst accuracy call {worst_batch:.2f} s, worst accuracy + cosine {worst_total:.2f} s"
    )
    return worst_batch, worst_total


if __name__ == "__main__":
    main()
