"""Single-step drills: each arithmetic step of the built-in task's worked solutions asked as a problem of its own.

    .venv/bin/python bench/step_drills.py --out runs/drills.jsonl
    r1kit grpo --model RUN/01_sft/model --data runs/drills.jsonl --out runs/drill-grpo \
        --training.max_steps 100 --training.batch_size.per_device_train 32 --dataset.split.test_size 0.02
    r1kit eval --model runs/drill-grpo --data arithmetic --out runs/drill-eval

RUN is a run on the arithmetic task (`r1kit run --data arithmetic`), as in the README: the default run trains on
`mixed`, whose training rows hold many of the arithmetic task's held-out problems.

Every wrong answer of the SFT models holds a false step (`37 + 48 = 75`, README), so this asks whether RL on the
steps alone, one bit per step instead of one per problem, teaches the arithmetic the problems need. The steps come
from problems drawn with another seed than the built-in tasks' that are not among their problems (training and
held-out, of `arithmetic` and of `mixed`), and no step is one of those problems: a level-1 problem ("What is 3 + 17?") is a single step, and asked
as a drill it would be a held-out problem trained on. Rows: `question` ("What is 37 + 48?"), `solution`,
`reasoning` (the step), one row per distinct step. `--min-operand N` keeps steps with an operand of at least N.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

from r1kit.config.schema import SyntheticConfig
from r1kit.data.synthetic import generate

_ASK = ("What is {}?", "Compute {}.", "Calculate {}.")


def _expression(question: str) -> str:
    """The expression a built-in arithmetic question asks about ("What is 3 + 17?" → "3 + 17")."""
    return re.sub(r"^(?:What is|Compute|Calculate|Evaluate) (.*)[?.]$", r"\1", question)


def drills(problems: int, seed: int, min_operand: int = 0) -> list[dict[str, str]]:
    defaults = SyntheticConfig()
    mixed = generate("mixed", defaults.num_examples, defaults.seed)
    builtin = generate("arithmetic", defaults.num_examples, defaults.seed) + [
        row for row in mixed if row["task"] == "arithmetic"
    ]
    # a one-step built-in problem (level 1) is a step itself: asked as a drill, it would be a held-out problem
    taken = {row["question"] for row in builtin} | {_expression(row["question"]) for row in builtin}
    rows, seen = [], set()
    for problem in generate("arithmetic", problems, seed):
        if problem["question"] in taken:
            continue
        for step in str(problem["reasoning"]).splitlines():
            expression, result = step.split(" = ")
            operands = [int(n) for n in re.findall(r"\d+", expression)]
            if expression in seen or expression in taken or max(operands) < min_operand:
                continue
            seen.add(expression)
            question = random.Random(expression).choice(_ASK).format(expression)
            rows.append({"question": question, "solution": result, "reasoning": step})
    random.Random(seed).shuffle(rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--problems", type=int, default=4000, help="built-in problems whose steps are drilled")
    parser.add_argument("--seed", type=int, default=999)
    parser.add_argument("--min-operand", type=int, default=0)
    args = parser.parse_args()
    rows = drills(args.problems, args.seed, args.min_operand)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(f"{len(rows)} drills → {args.out}")


if __name__ == "__main__":
    main()
