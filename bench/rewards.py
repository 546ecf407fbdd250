"""Reward benchmark: accuracy verifications per second, and the worst case on hostile completions.

    python bench/rewards.py

Prints verifications/s for 1,000 mixed completions (one batch call, as GRPO makes them) with 1 and 2 verifier
workers, the per-batch latency of TRL-sized batches (16), and the slowest reward call on each hostile completion
(tests/hostile.py) with the default 5 s verification limit.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from r1kit.data.synthetic import generate  # noqa: E402
from r1kit.rewards import REWARD_NAMES, build_reward  # noqa: E402
from r1kit.rewards.verifier import shared_verifier  # noqa: E402
from tests.hostile import HOSTILE  # noqa: E402


def mixed_completions(count: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Completions as a policy in training writes them: right and wrong answers, tagged or not, boxed, rambling."""
    rng = random.Random(seed)
    completions, golds = [], []
    for row in generate("mixed", count, seed=seed):
        gold = str(row["solution"])
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
        golds.append(gold if rng.random() > 0.02 else "no numeric gold")  # a few unparseable gold answers
    return completions, golds


def main() -> None:
    completions, golds = mixed_completions(1000)
    print("accuracy reward, 1,000 mixed completions in one call:")
    for workers in (1, 2):
        accuracy = build_reward("accuracy", workers=workers)
        accuracy(completions[:4], solution=golds[:4])  # start the warm workers outside the timing
        started = time.perf_counter()
        scores = accuracy(completions, solution=golds)
        seconds = time.perf_counter() - started
        print(
            f"  {workers} worker(s): {len(completions) / seconds:8.0f} verifications/s "
            f"({sum(s == 1.0 for s in scores)} correct, {sum(s is None for s in scores)} excluded)"
        )
        shared_verifier(workers, 5.0).close()

    accuracy = build_reward("accuracy")
    latencies = []
    for start in range(0, 320, 16):
        started = time.perf_counter()
        accuracy(completions[start : start + 16], solution=golds[start : start + 16])
        latencies.append(time.perf_counter() - started)
    print(
        f"  batches of 16 (one GRPO step): median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )

    print("hostile completions, slowest reward call each (limit 5 s per verification):")
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


if __name__ == "__main__":
    main()
