"""Built-in reasoning tasks with exact gold answers and step-by-step traces, generated from a seed.

Rows have the canonical columns (see `r1kit.data.adapters`): `question`, `solution` (the exact answer), `reasoning`
(one line per operation, the trace a cold-start SFT learns from), plus `task` and `level` for reporting.
"""

from __future__ import annotations

import random
from collections.abc import Callable

Row = dict[str, object]

BUILTIN_TASKS = ("arithmetic", "word_problems", "mixed")


def _chain(rng: random.Random, operands: int, high: int) -> tuple[str, str, str]:
    """a ± b ± c …, evaluated left to right, never going negative (small models find negatives much harder)."""
    total = rng.randint(1, high)
    expression, steps = str(total), []
    for _ in range(operands - 1):
        value = rng.randint(1, high)
        op = "-" if value <= total and rng.random() < 0.5 else "+"
        result = total - value if op == "-" else total + value
        steps.append(f"{total} {op} {value} = {result}")
        expression += f" {op} {value}"
        total = result
    return expression, str(total), "\n".join(steps)


def _product_then_add(rng: random.Random) -> tuple[str, str, str]:
    a, b, c = rng.randint(2, 9), rng.randint(2, 12), rng.randint(1, 30)
    product = a * b
    op = "-" if c <= product and rng.random() < 0.5 else "+"
    result = product - c if op == "-" else product + c
    return f"{a} * {b} {op} {c}", str(result), f"{a} * {b} = {product}\n{product} {op} {c} = {result}"


# Difficulty levels: two operands, three, precedence (a product, then a sum or difference), four bigger ones.
_LEVELS: dict[int, Callable[[random.Random], tuple[str, str, str]]] = {
    1: lambda rng: _chain(rng, 2, 20),
    2: lambda rng: _chain(rng, 3, 20),
    3: _product_then_add,
    4: lambda rng: _chain(rng, 4, 50),
}
_ASK = ("What is {}?", "Compute {}.", "Calculate {}.", "Evaluate {}.")


def arithmetic_row(rng: random.Random) -> Row:
    level = rng.choice(list(_LEVELS))
    expression, answer, reasoning = _LEVELS[level](rng)
    question = rng.choice(_ASK).format(expression)
    return {"question": question, "solution": answer, "reasoning": reasoning, "task": "arithmetic", "level": level}


_NAMES = ("Ava", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo")
_ITEMS = ("apples", "marbles", "stickers", "books", "pencils", "cookies", "coins", "shells")


def _buy_and_give(rng: random.Random) -> tuple[str, int, str]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    a, b = rng.randint(2, 30), rng.randint(2, 20)
    c = rng.randint(1, a + b)
    question = (
        f"{name} has {a} {item}. {name} gets {b} more and then gives {c} away. How many {item} does {name} have now?"
    )
    return question, a + b - c, f"{a} + {b} = {a + b}\n{a + b} - {c} = {a + b - c}"


def _boxes(rng: random.Random) -> tuple[str, int, str]:
    item = rng.choice(_ITEMS)
    per_box, boxes, extra = rng.randint(2, 9), rng.randint(2, 9), rng.randint(1, 20)
    question = (
        f"There are {boxes} boxes with {per_box} {item} in each, and {extra} loose {item}. How many {item} are there?"
    )
    total = per_box * boxes
    return question, total + extra, f"{boxes} * {per_box} = {total}\n{total} + {extra} = {total + extra}"


def _spend(rng: random.Random) -> tuple[str, int, str]:
    name = rng.choice(_NAMES)
    money, cost = rng.randint(10, 60), rng.randint(1, 9)
    count = rng.randint(1, money // cost)
    spent = cost * count
    question = (
        f"{name} has {money} dollars and buys {count} toys that cost {cost} dollars each. How many dollars are left?"
    )
    return question, money - spent, f"{count} * {cost} = {spent}\n{money} - {spent} = {money - spent}"


def word_problem_row(rng: random.Random) -> Row:
    # `level` names the kind of story (2 buy and give away, 3 boxes, 4 spend), each two steps; not a difficulty
    level, make = rng.choice(list(enumerate((_buy_and_give, _boxes, _spend), start=2)))
    question, answer, reasoning = make(rng)
    return {
        "question": question,
        "solution": str(answer),
        "reasoning": reasoning,
        "task": "word_problem",
        "level": level,
    }


def generate(task: str, num_examples: int, seed: int) -> list[Row]:
    """`num_examples` distinct rows of a built-in task.

    >>> generate("arithmetic", 2, seed=0)[0]["question"]
    'Calculate 3 + 17 + 33 - 32.'
    """
    makers = {
        "arithmetic": (arithmetic_row,),
        "word_problems": (word_problem_row,),
        "mixed": (arithmetic_row, word_problem_row),
    }
    if task not in makers:
        raise ValueError(f"unknown built-in task {task!r}; valid: {', '.join(BUILTIN_TASKS)}")
    rng = random.Random(seed)
    rows: dict[str, Row] = {}
    attempts = 0
    while len(rows) < num_examples:
        attempts += 1
        if attempts > 50 * num_examples:
            raise ValueError(f"task {task!r} cannot produce {num_examples} distinct problems")
        row = rng.choice(makers[task])(rng)
        if task == "mixed":  # a level is a difficulty of arithmetic and a kind of story: each named with its task
            row["level"] = f"{row['task']} {row['level']}"
        rows.setdefault(str(row["question"]), row)  # distinct questions: held-out problems never appear in train
    return list(rows.values())
