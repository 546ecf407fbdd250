"""A second held-out set in wordings r1kit's built-in task never uses, to check that a gain is not the templates'.

    .venv/bin/python bench/reworded_problems.py --out runs/reworded.jsonl
    r1kit eval --model RUN/02_grpo/model --data runs/reworded.jsonl --dataset.group_column group --out runs/reworded-grpo

The built-in task asks "What is / Compute / Calculate / Evaluate <expression>" and tells three stories (buy and give
away, boxes, spending). These problems need the same arithmetic (sums, differences, a product and a sum, numbers
up to about 70) but are asked in other words and other stories, written separately from `r1kit.data.synthetic`. Rows:
`question`, `solution`, `group` (`arithmetic` or `story`), the columns `r1kit eval` reads from a local file.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def _arithmetic(rng: random.Random) -> tuple[str, int]:
    a, b, c = rng.randint(2, 40), rng.randint(2, 30), rng.randint(1, 20)
    asks = [
        (f"Add {a} and {b}, then subtract {min(c, a + b)}.", a + b - min(c, a + b)),
        (f"Start with {a + b}. Take away {b}, then add {c}. What number do you end with?", a + c),
        (
            f"What do you get if you multiply {a % 9 + 2} by {b % 9 + 2} and then add {c}?",
            (a % 9 + 2) * (b % 9 + 2) + c,
        ),
        (f"Find the sum of {a}, {b} and {c}.", a + b + c),
        (f"Subtract {b} from {a + b}.", a),
        (f"{a} plus {b} minus {min(c, a + b)} equals what?", a + b - min(c, a + b)),
    ]
    return rng.choice(asks)


def _story(rng: random.Random) -> tuple[str, int]:
    a, b, c = rng.randint(5, 40), rng.randint(2, 25), rng.randint(1, 20)
    rows, per_row = rng.randint(2, 9), rng.randint(2, 9)
    stories = [
        (
            f"A baker makes {a} muffins in the morning and {b} in the afternoon. She sells {min(c, a + b)} of them. "
            "How many muffins are left?",
            a + b - min(c, a + b),
        ),
        (
            f"A bus has {a} passengers. At the first stop {min(b, a)} get off and {c} get on. "
            "How many passengers are on the bus now?",
            a - min(b, a) + c,
        ),
        (
            f"A garden has {rows} rows of {per_row} tulips. Someone picks {min(c, rows * per_row)} tulips. "
            "How many tulips remain?",
            rows * per_row - min(c, rows * per_row),
        ),
        (f"Sam scored {a} points in the first game and {b} in the second. How many points did he score in all?", a + b),
        (f"Lena had {a + b} dollars and spent {b} dollars on lunch. How much money does she have left?", a),
        (
            f"Each of {rows} shelves holds {per_row} jars, and {c} more jars stand on the table. "
            "How many jars are there altogether?",
            rows * per_row + c,
        ),
    ]
    return rng.choice(stories)


def problems(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows: dict[str, dict] = {}
    while len(rows) < count:
        group, make = rng.choice((("arithmetic", _arithmetic), ("story", _story)))
        question, answer = make(rng)
        rows.setdefault(question, {"question": question, "solution": str(answer), "group": group})
    return list(rows.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(row) + "\n" for row in problems(args.count, args.seed)))
    print(f"{args.count} problems → {args.out}")


if __name__ == "__main__":
    main()
