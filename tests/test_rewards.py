"""Every reward on hand-written completions, in both TRL completion forms."""

from __future__ import annotations

import doctest
import inspect
import time

import pytest

from r1kit.rewards import REWARD_NAMES, build_reward
from r1kit.rewards.text import boxed_contents, extract_answer, split_r1
from tests.hostile import HOSTILE

GOOD = "<think>\n6 * 7 = 42\n</think>\n<answer>42</answer>"


def as_messages(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


@pytest.mark.parametrize("name", REWARD_NAMES)
def test_each_reward_has_a_passing_docstring_example(name: str) -> None:
    reward = build_reward(name, **({"max_length": 10, "soft_cache": 4} if name == "overlong" else {}))
    tests = doctest.DocTestFinder(recurse=False).find(reward, name, globs=vars(inspect.getmodule(reward)))
    examples = sum(len(t.examples) for t in tests)
    assert examples, f"{name} has no docstring example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    assert runner.failures == 0


def test_unknown_reward_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown reward 'nope'; valid: accuracy, format, tag_count"):
        build_reward("nope")


# ------------------------------------------------------------------------------------------------------ accuracy


def test_accuracy_reads_the_answer_tag_that_math_verify_alone_misses() -> None:
    accuracy = build_reward("accuracy")
    assert accuracy(["<answer>14</answer>"], solution=["14"]) == [1.0]
    assert accuracy([as_messages("<answer>14</answer>")], solution=["14"]) == [1.0]


MATRIX = "\\begin{pmatrix} %s \\\\ %s \\end{pmatrix}"


@pytest.mark.parametrize(
    ("answer", "gold", "score"),
    [
        # a LaTeX command's word argument made the answer "text with words", read plainly: a matrix as its last number
        (MATRIX % (7, 2), MATRIX % (1, 2), 0.0),
        ("2", MATRIX % (1, 2), 0.0),
        (MATRIX % (1, 2), MATRIX % (1, 2), 1.0),
        ("\\boxed{%s}" % (MATRIX % (1, 2)), MATRIX % (1, 2), 1.0),  # was 0.0
        ("3", "3\\sqrt{2} \\text{ units}", 0.0),
        ("3\\sqrt{2}", "3\\sqrt{2} \\text{ units}", 1.0),  # was 0.0
        # a mixed number, as 2\frac{1}{2} already read: 2 1/2 was two halves
        ("2 1/2", "5/2", 1.0),
        ("2 1/2", "1", 0.0),
        ("-2 1/2", "-\\frac{5}{2}", 1.0),
        # anywhere in the answer: read apart, "2" and "1/2" were a hedge (or 2·½·k·m as LaTeX)
        ("2 1/2 hours", "\\frac{5}{2}", 1.0),
        ("It takes 2 1/2 hours.", "5/2", 1.0),
        ("1 1/2 cups", "1.5", 1.0),
        ("2 1/2 km", "2.5", 1.0),
        ("2 1/2 hours", "2", 0.0),
        # said with `and`: it read as 1/2 (the last number), right against a gold 1/2 and wrong against 5/2
        ("2 and 1/2", "5/2", 1.0),
        ("2 and 1/2", "1/2", 0.0),
        ("It takes 1 and 3/4 hours.", "7/4", 1.0),
        ("3 and 5/2", "11/2", 0.0),  # a fraction of one or more: two numbers, not a mixed one
    ],
)
def test_accuracy_reads_latex_with_word_arguments_and_mixed_numbers(answer: str, gold: str, score: float) -> None:
    assert build_reward("accuracy")([f"<think>x</think><answer>{answer}</answer>"], solution=[gold]) == [score]


@pytest.mark.parametrize(
    ("answer", "gold", "score"),
    [
        ("4 or 5", "5", 0.0),  # math-verify read the last number: a hedge scored correct
        ("either 3 or 4", "4", 0.0),
        ("3 (or maybe 4)", "4", 0.0),
        ("1 2 3 4 5", "5", 0.0),
        ("2 000", "2000", 1.0),  # spaced thousands are one number
        ("x = 3 or x = -2", "-2, 3", 1.0),  # the roots a set gold asks for
        ("5 apples", "5", 1.0),
        # other ways of offering two numbers: each scored as its last number
        ("3 and 5", "5", 0.0),
        ("3; 5", "5", 0.0),
        ("3 & 5", "5", 0.0),
        ("4 to 5", "5", 0.0),
        ("4 \\lor 5", "5", 0.0),
        ("$4$ $5$", "5", 0.0),
        ("$4$; $5$", "5", 0.0),
        ("\\boxed{A} \\boxed{B}", "B", 0.0),  # two options boxed: the last one was read
        ("5 and 5", "5", 1.0),
        ("2/3 and 4/6", "2/3", 1.0),  # one value twice
        ("3 4/4", "4", 1.0),  # a mixed number, not 3 and 4/4
        # the number read denied or bounded: math-verify read it, and each scored right
        ("not 7", "7", 0.0),
        ("7 is wrong", "7", 0.0),
        ("fewer than 7", "7", 0.0),
        ("x > 7", "7", 0.0),
        ("\\ge 7", "7", 0.0),
        ("7 or more", "7", 0.0),
        ("Ava has 8 apples, not 7.", "7", 0.0),  # the answer, then the number it denies: 8
        ("Ava has 7 apples, not 8.", "7", 1.0),
        ("12 (not 13)", "12", 1.0),
        ("$7$ (not $8$)", "7", 1.0),
        ("7 dollars (not 8 dollars)", "8", 0.0),  # a unit after the denied number: the denial still read
        ("7 km (not 8 km)", "7", 1.0),
        ("Ava has 8 apples, not 7 apples.", "8", 1.0),
        ("7 (not 8 - I misread it)", "7", 1.0),
        ("6 hours, not 8 as they planned", "6", 1.0),
        # no bound: an arrow, a remark in brackets, a hedge that bounds nothing
        ("12 - 5 => 7", "7", 1.0),
        ("x -> 7", "7", 1.0),
        ("7 (x > 0)", "7", 1.0),
        ("3 (never 4)", "3", 1.0),
        ("7 or so", "7", 1.0),
    ],
)
def test_alternatives_are_no_answer_to_a_one_number_gold(answer: str, gold: str, score: float) -> None:
    assert build_reward("accuracy")([f"<think>x</think><answer>{answer}</answer>"], solution=[gold]) == [score]
    # prose after the thinking names other numbers on its way to the answer: not a hedge
    prose = "<think>x</think> There were 3 or 4 boxes at first; counted again, the answer is 7."
    assert build_reward("accuracy")([prose], solution=["7"]) == [1.0]


def test_an_answer_that_broke_the_box_reading_is_wrong_not_excluded() -> None:
    """`\\boxed .` crashed the box reading (an AttributeError): scored None, the group's mean, where a wrong answer
    scores 0. (0/0, whose sympy check raised in a worker after some earlier answers, is guarded as well; that
    depends on sympy's cache and does not reproduce reliably, so it is not asserted here.)"""
    accuracy = build_reward("accuracy", workers=1)
    completions = [f"<think>x</think><answer>{answer}</answer>" for answer in ("\\boxed . B", "\\boxed ,")]
    assert accuracy(completions, solution=["B", "B"]) == [0.0, 0.0]


def test_an_answer_block_inside_the_thinking_is_no_answer() -> None:
    """A complete <answer> block mentioned in the thinking overrode the answer after it, and a reply cut off while
    thinking scored by the one it mentioned."""
    accuracy = build_reward("accuracy")
    completions = [
        "<think>I must reply as <answer>...</answer>. 3 + 4 = 7</think>\nThe answer is \\boxed{7}.",
        "<think>Reply as <answer>X</answer>. 3 + 4 = 7</think>\n<answer>7",
        "<think>Format: <answer>7</answer>. Hmm, 3 + 4 is",
    ]
    assert accuracy(completions, solution=["7"] * 3) == [1.0, 1.0, 0.0]


def test_accuracy_uses_the_last_answer_block() -> None:
    assert build_reward("accuracy")(["<answer>3</answer> no wait <answer>14</answer>"], solution=["14"]) == [1.0]


def test_accuracy_checks_mathematical_equality() -> None:
    accuracy = build_reward("accuracy")
    completions = [
        "<answer>0.5</answer>",
        "<answer>\\frac{1}{2}</answer>",
        "<answer>1/3</answer>",
        "<answer>42.0</answer>",
    ]
    assert accuracy(completions, solution=["1/2", "0.5", "0.5", "42"]) == [1.0, 1.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("answer", "gold", "score"),
    [
        ("2^{999999}", "2^{1000000}", 0.0),  # math-verify alone reads both as 2
        ("2^{1000000}", "2^{1000000}", 1.0),
        ("10^{100}", "10^{100}+1", 0.0),  # numeric tolerance would call it equal
        ("10^{100}+1", "10^{100}+1", 1.0),
        ("1024", "2^{10}", 1.0),
        ("\\frac{2}{6}", "\\frac{1}{3}", 1.0),
        ("\\frac{333333333}{1000000000}", "\\frac{1}{3}", 0.0),
        ("x^2+1", "1+x^2", 1.0),
        ("14 apples", "14", 1.0),
    ],
)
def test_accuracy_compares_integers_and_fractions_exactly(answer: str, gold: str, score: float) -> None:
    assert build_reward("accuracy")([f"<answer>{answer}</answer>"], solution=[gold]) == [score]


@pytest.mark.parametrize(
    ("answer", "gold", "score"),
    [
        ("3:45", "3:30", 0.0),  # read plainly as its first number, 3: was 1.0
        ("3", "3:30", 0.0),  # was 1.0
        ("1:3", "1:2", 0.0),  # was 1.0
        ("2:3", "$2:1$", 0.0),  # was 1.0
        ("3:30", "3:30", 1.0),
        ("The meeting starts at 3:30 pm.", "3:30", 1.0),
        ("12:30:00", "12:30", 0.0),  # a time of three parts is no h:mm
        ("3:4", "0.75", 1.0),  # a ratio against a number: 3/4
        ("12:00", "12:00", 1.0),  # a time on the hour: no ratio 12/0 (its gold was unreadable, every answer None)
        ("11:00", "12:00", 0.0),
        ("5:00", "5", 1.0),
        ("3:5", "0.75", 0.0),
    ],
)
def test_accuracy_reads_a_time_or_a_ratio_whole(answer: str, gold: str, score: float) -> None:
    assert build_reward("accuracy")([f"<answer>{answer}</answer>"], solution=[gold]) == [score]


@pytest.mark.parametrize(
    ("answer", "gold", "score"),
    [
        ("\\frac{1}{2}.", "\\frac{1}{2}", 1.0),  # was 0: as LaTeX with its full stop, a string
        ("2\\sqrt{3}.", "2\\sqrt{3}", 1.0),
        ("2^{10}.", "1024", 1.0),
        ("(1, 2).", "(1, 2)", 1.0),
        ("2x+1.", "2x+1", 1.0),
        ("2^{10}.", "2", 0.0),  # was 1: its first number
        ("(1, 2).", "2", 0.0),
        ("2x+1,", "2", 0.0),
        ("3:30.", "3:30", 1.0),  # was 0: the time's full stop hid it
        ("The meeting starts at 3:30.", "3:30", 1.0),
        ("The ratio is 3:1.", "3:1", 1.0),
        ("The ratio is 3:1.5", "3:1", 0.0),
        ("7 students are not in the club.", "7", 1.0),  # was 0: taken for a denial
        ("12 eggs are not broken.", "12", 1.0),
        ("7 is not the answer", "7", 0.0),
        ("$7$ is not right", "7", 0.0),
        ("7 is not the final answer", "7", 0.0),  # right after the number, "is not" denies it still
        ("x = 7 is not a solution", "7", 0.0),
        ("7 is not accurate", "7", 0.0),
        ("12 are not broken.", "12", 1.0),  # "are not" without a verdict repeats the question
        ("x = 7 is not negative", "7", 1.0),
        ("7 isn't right", "7", 0.0),
        ("7 isn’t right", "7", 0.0),  # a curly apostrophe
        ("7 is not a valid answer", "7", 0.0),
        ("7 is definitely not right", "7", 0.0),
        ("7 students are not right-handed.", "7", 1.0),
        ("12 cm^2.", "12", 1.0),  # a unit before the full stop (the stop dropped after the unit: read as algebra)
        ("3 m/s.", "3", 1.0),
    ],
)
def test_accuracy_reads_an_answer_ending_a_sentence(answer: str, gold: str, score: float) -> None:
    assert build_reward("accuracy")([f"<think>...</think>\n<answer>{answer}</answer>"], solution=[gold]) == [score]


@pytest.mark.parametrize(
    ("answer", "gold", "score"),
    [
        ("(5, 2)", "(1, 2)", 0.0),  # a pair, plainly read as its last number 2
        ("(1,2)", "\\left( 1, 2 \\right)", 1.0),
        ("(1, 2)", "[1, 2]", 0.0),  # an open interval is not a closed one
        ("[1,2]", "[1, 2]", 1.0),
        ("7, 2", "1, 2", 0.0),  # roots
        ("2, 1", "1, 2", 1.0),
        ("x = 1, 2", "1, 2", 1.0),
        ("3", "-1, 3", 0.0),  # half the roots
        ("0", "10\\,000", 0.0),  # LaTeX's thin space between thousands, read as 10 times 000
        ("10,000", "10\\,000", 1.0),
        ("\\boxed{1\\,000\\,000}", "1000000", 1.0),
        ("1", "\\$1,\\!000", 0.0),  # MATH's money: an unclosed $ that read as 1
        ("1000", "\\$1,\\!000", 1.0),
        ("−5", "-5", 1.0),  # a Unicode minus
        ("- 5", "-5", 1.0),
        ("(-5)", "-5", 1.0),
        ("5", "−5", 0.0),
        ("1,5", "1.5", 1.0),  # no space after the comma: a decimal comma, not two roots
        ("12 + 9 = 21, 21 * 2 = 42", "42", 1.0),  # a chain: still its last number
        ("1e-5", "0.00001", 1.0),  # E notation (read as Euler's e minus 5: wrong)
        ("2.5e3", "2500", 1.0),
        ("2500", "2.5E3", 1.0),
        ("2.5e3", "25000", 0.0),
    ],
)
def test_accuracy_reads_pairs_lists_spaced_thousands_and_minus_signs(answer: str, gold: str, score: float) -> None:
    assert build_reward("accuracy")([f"<answer>{answer}</answer>"], solution=[gold]) == [score]


@pytest.mark.parametrize(
    ("answer", "gold", "score"),
    [
        ("2", "2x+1", 0.0),  # plain algebra was read as its first number
        ("2x + 1", "2x+1", 1.0),
        ("3y", "3x", 0.0),
        ("5", "5n", 0.0),
        ("x+1", "x + 1", 1.0),
        ("4", "4 - y", 0.0),
        ("y = 2x + 3", "2x+3", 1.0),
        ("-x", "-x", 1.0),  # was an unreadable gold
        ("C", "B", 0.0),  # a multiple-choice letter
        ("B", "B", 1.0),
        ("x = 5", "5", 1.0),
        ("-2.1", "-2,1", 0.0),  # roots written without a space, as NuminaMath's boxed answers are
        ("-2, 1", "-2,1", 1.0),
        ("1", "1,-2", 0.0),
        ("3,5,7", "3, 5, 7", 1.0),
        ("1,234,567", "1234567", 1.0),
        ("1", "\\$1{,}000", 0.0),  # MATH's {,} thousands separator
        ("1000", "\\$1{,}000", 1.0),
        ("3 − 5", "-2", 1.0),  # a Unicode minus between numbers
        ("3 − 5", "5", 0.0),
        ("４２", "42", 1.0),  # fullwidth digits
        ("12 cm^2", "12", 1.0),  # a unit with a power, read as LaTeX: 12 c m squared
        ("9.8 m/s^2", "9.8", 1.0),
        ("5 cm", "5", 1.0),
        ("x = 1,000", "1000", 1.0),  # thousands in an equation, not a list
        ("n = 12,500", "12500", 1.0),
        ("x = -1,000", "-1000", 1.0),  # signed thousands, not the roots -1 and 0
        ("-1,000", "-1000", 1.0),
        ("x = 1,000,000", "1000000", 1.0),
        ("5 x", "5x", 1.0),  # a variable, not a unit
        ("7 x", "7", 0.0),
        ("5 m", "5", 1.0),
        ("3 pi", "3\\pi", 1.0),  # pi, not a unit of two letters (3 pi was read 3)
        ("3 pi", "3", 0.0),
        ("2π", "2\\pi", 1.0),
        ("-\\$5", "-5", 1.0),  # minus five dollars (read as nothing)
        ("- $5", "-5", 1.0),
        ("-$5", "5", 0.0),
        ("so 12 - $5$", "5", 1.0),  # math's $…$ after a minus, not a currency sign
        ("B.", "B", 1.0),  # a multiple-choice letter as answers write it
        ("**B**", "B", 1.0),
        ("Option B", "B", 1.0),
        ("The answer is (C)", "\\text{(C)}", 1.0),
        ("(A) 12", "B", 0.0),
        ("i", "I", 1.0),  # a choice, not the imaginary unit
        ("$B$", "B", 1.0),  # a letter written as math is still math-verify's
        ("So it is \\boxed{\\text{C}}.", "C", 1.0),
        ("I think the answer is C", "I", 0.0),  # a sentence that starts with a letter names no option
        ("A quick check gives D", "A", 0.0),
        ("V = 12", "V", 0.0),
        ("*" * 16000, "B", 0.0),  # a degenerate rollout: judged at once, not timed out
    ],
)
def test_accuracy_reads_plain_algebra_tight_lists_units_and_unicode(answer: str, gold: str, score: float) -> None:
    assert build_reward("accuracy")([f"<answer>{answer}</answer>"], solution=[gold]) == [score]


@pytest.mark.parametrize(
    ("answer", "gold", "score"),
    [
        ("x < 6", "6", 0.0),  # an inequality was read as its last number: correct for 6, and 6 for it
        ("5 < x < 6", "6", 0.0),
        ("6", "x > 6", 0.0),
        ("x < 6", "x > 6", 0.0),
        ("6 < x", "x > 6", 1.0),
        ("x >= 6", "x \\ge 6", 1.0),  # was wrong
        ("x ≤ 6", "x \\le 6", 1.0),
        ("-3 and 3", "3", 0.0),  # the ± hedge: the minus sign was not read
        ("3 and -3", "-3", 0.0),
        ("-3 to 3", "3", 0.0),
        ("4 - 3", "1", 1.0),  # a difference, no hedge
        ("12 -5 = 7", "7", 1.0),
        ("-3 -4 = -7", "-7", 1.0),
        ("Monday", "\\text{Monday}", 1.0),  # a word asked, a word answered: was wrong
        ("even", "\\text{even}", 1.0),
        ("Tuesday", "\\text{Monday}", 0.0),
        ("Monday", "5", 0.0),
        ("٤٢", "42", 1.0),  # Arabic-Indic, Persian and Devanagari digits were wrong
        ("۴۲", "42", 1.0),
        ("४२", "42", 1.0),
        # Unicode's math, working in brackets, Markdown's italics and one-word golds
        ("5²", "5", 0.0),  # math-verify dropped the superscript: 5² was 5
        ("5²", "25", 1.0),
        ("10⁶", "1000000", 1.0),
        ("x² + 1", "x^2+1", 1.0),
        ("12 cm²", "12", 1.0),
        ("2½", "2", 0.0),  # was right: the fraction dropped
        ("2½", "5/2", 1.0),
        ("½", "1/2", 1.0),
        ("2⅓", "7/3", 1.0),
        ("√16", "4", 1.0),
        ("2√3", "2\\sqrt{3}", 1.0),
        ("–3", "-3", 1.0),  # an en dash for the minus sign: was 3
        ("–3", "3", 0.0),
        ("Answer: - 5", "-5", 1.0),  # a spaced minus after a colon: was 5
        ("Answer: - 5", "5", 0.0),
        ("A = 25 cm²", "25", 1.0),  # a unit's square: not an exponent (cm as c times m)
        ("8 m³/h", "8", 1.0),
        ("18 (24 - 6)", "18", 1.0),  # its working in brackets: the last number, 6, was read
        ("20 (4 × 5)", "20", 1.0),
        ("3 (1.5 + 1.5)", "3", 1.0),
        ("15 (after 3 days)", "15", 1.0),  # a remark
        ("12 (3 x 4)", "12", 1.0),
        ("3 (or maybe 4)", "3", 0.0),  # a hedge in them stays a hedge
        ("5 (maybe 6)", "5", 0.0),
        ("2 (x - 3)", "2x - 6", 1.0),  # algebra, not working
        ("3 (x + 1)", "3", 0.0),
        ("*14*", "14", 1.0),  # Markdown's italics (its bold was read)
        ("(2)*(3)*(4)", "24", 1.0),  # no italics
        ("*(1, 2)*", "(1,2)", 1.0),  # a whole answer in italics
        ("*x* = *5*", "5", 1.0),  # several italic words
        ("5 (could be 6)", "5", 0.0),  # hedges
        ("5 (6, 7)", "5", 0.0),
        ("4 (xy - 1)", "4xy-4", 1.0),  # a product of two letters: algebra
        ("25 cm²!", "25", 1.0),
        ("4 m² + 1", "4m^2+1", 1.0),  # a square in algebra, not a unit's
        ("yes", "Yes", 1.0),  # a word gold: unreadable (no reward for the whole group) unless written \text{Yes}
        ("Yes.", "Yes", 1.0),
        ("**Yes**", "Yes", 1.0),
        ("N_o", "No", 0.0),  # marks at a word's ends only
        ("**\\text{Yes}**", "Yes", 1.0),
        ("Sunday.", "\\text{Sunday}", 1.0),
        ("No", "Yes", 0.0),
        ("5", "Yes", 0.0),
    ],
)
def test_accuracy_reads_inequalities_signed_hedges_words_and_every_scripts_digits(
    answer: str, gold: str, score: float
) -> None:
    assert build_reward("accuracy")([f"<answer>{answer}</answer>"], solution=[gold]) == [score]


@pytest.mark.parametrize(
    ("answer", "gold", "score"),
    [
        ("2 or 2.5", "2.5", 0.0),  # a decimal gold: hedges, denials and bounds were read as its last number
        ("not 2.5", "2.5", 0.0),
        ("2.5 or more", "2.5", 0.0),
        ("$2$ $2.5$", "2.5", 0.0),
        ("not 25%", "25\\%", 0.0),
        ("12.4, not 12.5", "12.5", 0.0),
        ("12.5, not 12.4", "12.5", 1.0),
        ("4\\sqrt{2} or 3\\sqrt{2}", "3\\sqrt{2}", 0.0),
        ("2.5", "2.5", 1.0),
        ("The answer is (B).", "B", 1.0),  # a full stop after the option's closing mark
        ("The correct answer is **B**.", "B", 1.0),
        ("**Answer: B**", "B", 1.0),
        ("The answer is (C).", "B", 0.0),
        ("-.5", "-0.5", 1.0),  # no leading zero
        ("-.25", "-1/4", 1.0),
        ("-0.5", "-.5", 1.0),
        ("- .5", "0.5", 0.0),  # its sign kept
        ("12.5\\%", "12.5", 1.0),  # a decimal percentage as written (50\\% for 50 already was)
        ("\\boxed{12.5\\%}", "12.5", 1.0),
        ("12.5", "12.5\\%", 1.0),
        ("12.4\\%", "12.5", 0.0),
        ("0.5 (or 50%)", "0.5", 1.0),  # one value written two ways is no hedge
        ("1/2 or 0.5", "0.5", 1.0),
        ("$12.50$ or $12.5$", "12.5", 1.0),
        ("$2.5$ $2.5$", "2.5", 1.0),
        ("0.5 or 0.6", "0.5", 0.0),
        ("1 234.5", "1234.5", 1.0),  # thousands spaced as print does
        ("$2$ $500.5$", "500.5", 0.0),  # not two blocks of math
        ("5" + "%" * 3000, "5", 1.0),  # a run of percent signs is read in one pass (each was a retry)
    ],
)
def test_accuracy_reads_decimal_golds_choices_bare_decimals_and_percentages(
    answer: str, gold: str, score: float
) -> None:
    assert build_reward("accuracy")([f"<answer>{answer}</answer>"], solution=[gold]) == [score]


@pytest.mark.parametrize(
    ("completion", "score"),
    [
        ("<think>\n3 * 4 = 12, 12 - 2 = 10. Then she buys", 0.0),  # cut off while thinking: no answer yet
        ("<think>2 + 2 = 5? no, 10</think><answer>5", 0.0),  # an answer block left open: what it says
        ("<think>2 + 2 = 4</think><answer>10", 1.0),
        ("<think>2 + 2 = 4</think>\n\nSo she has \\boxed{10}.", 1.0),  # an R1-distill reply: prose after </think>
        ("<think>10 is tempting</think> It is 12.", 0.0),
        ("<think>It goes in <answer> tags: 10, then", 0.0),  # an <answer> mentioned while thinking
    ],
)
def test_accuracy_reads_no_answer_in_a_reply_cut_off_while_thinking(completion: str, score: float) -> None:
    assert build_reward("accuracy")([completion], solution=["10"]) == [score]


def test_accuracy_without_tags_falls_back_to_boxed_then_whole_text() -> None:
    accuracy = build_reward("accuracy")
    assert accuracy(["so the result is \\boxed{12}", "The total is 12."], solution=["12", "12"]) == [1.0, 1.0]
    assert accuracy(["I have no idea."], solution=["12"]) == [0.0]


def test_accuracy_excludes_unparseable_gold_instead_of_scoring_it() -> None:
    accuracy = build_reward("accuracy")
    assert accuracy(["<answer>7</answer>"] * 3, solution=["not math at all", "", None]) == [None, None, None]


def test_accuracy_excludes_broken_latex_gold() -> None:
    """math-verify keeps the text of an unclosed LaTeX group as a string (or reads its first number: 2^{ as 2), so a
    broken gold would score every answer 0 and a copy of itself 1."""
    accuracy = build_reward("accuracy")
    broken = ["\\frac{", "\\sqrt{", "2^{", "\\frac{1}{2", "{", "\\text{", "\\frac{}{}"]
    assert accuracy(["<answer>2</answer>"] * len(broken), solution=broken) == [None] * len(broken)
    assert accuracy([f"<answer>{gold}</answer>" for gold in broken], solution=broken) == [None] * len(broken)


@pytest.mark.parametrize(
    "answer", ["\\$18", "\\$18.00", "The total is \\$18.", "\\$18 per hour", "+18", "x = +18", "`18`", "$\\$18$"]
)
def test_accuracy_reads_money_signs_and_markdown_as_written(answer: str) -> None:
    accuracy = build_reward("accuracy")
    assert accuracy([f"<answer>{answer}</answer>"], solution=["18"]) == [1.0]
    assert accuracy([f"<answer>{answer}</answer>"], solution=["19"]) == [0.0]


def test_accuracy_takes_a_full_worked_solution_as_gold() -> None:
    numina_solution = "We add the two parts, giving $3 + 4 = 7$. The answer is $\\boxed{7}$."
    assert build_reward("accuracy")(["<answer>7</answer>"], solution=[numina_solution]) == [1.0]


def test_accuracy_reports_failures_through_log_metric() -> None:
    logged = []
    build_reward("accuracy")(["<answer>1</answer>"], solution=["1"], log_metric=lambda n, v: logged.append((n, v)))
    assert ("rewards/accuracy/timeouts", 0.0) in logged and ("rewards/accuracy/errors", 0.0) in logged


# -------------------------------------------------------------------------------------------------------- format


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD, 1.0),
        ("  \n<think>a</think>   <answer>1</answer>\n", 1.0),
        ("<think>a</think><answer>1</answer><answer>2</answer>", 0.0),  # the tutorial's regex accepted this
        ("<think>a</think><think>b</think><answer>1</answer>", 0.0),
        ("<answer>1</answer><think>a</think>", 0.0),
        ("<think>a</think> and so <answer>1</answer>", 0.0),
        ("Sure! <think>a</think><answer>1</answer>", 0.0),
        ("<think>a</think><answer>1</answer> Hope this helps", 0.0),
        ("<think></think><answer>1</answer>", 0.0),
        ("<think>a</think><answer> </answer>", 0.0),
        ("<think>a</think>", 0.0),
        ("", 0.0),
    ],
)
def test_format_is_strict(text: str, expected: float) -> None:
    assert build_reward("format")([text]) == [expected]
    assert build_reward("format")([as_messages(text)]) == [expected]


def test_tag_count_gives_partial_credit_per_tag() -> None:
    tag_count = build_reward("tag_count")
    texts = [GOOD, "<think>x</think>", "<think>x<think>y</think>", "<answer>1</answer>", "nothing"]
    assert tag_count(texts) == [1.0, 0.5, 0.25, 0.5, 0.0]


# ------------------------------------------------------------------------------------------------- reasoning


def test_reasoning_steps_counts_indicators_and_caps_at_one() -> None:
    reward = build_reward("reasoning_steps")
    texts = ["Step 1: add\nStep 2: subtract\nStep 3: done\nStep 4: check", "First, add.", "1. a\n2. b", "just 42"]
    assert reward(texts) == [1.0, pytest.approx(1 / 3), pytest.approx(2 / 3), 0.0]
    assert build_reward("reasoning_steps", target_steps=1)(["First, add."]) == [1.0]
    # a line that starts with a decimal is arithmetic, not a numbered step ("0." read as step 0)
    assert reward(["<think>0.5 * 40 = 20\n1.5 + 2 = 3.5\n2.25 * 4 = 9</think>"]) == [0.0]
    # nor one that starts with a negative number, or a bold heading: a bullet's mark is followed by a space
    assert reward(["<think>\n-5 + 3 = -2\n-4 - 1 = -5\n**Answer**\n**Done**</think>"]) == [0.0]
    assert reward(["<think>\n- add\n* subtract\n- check</think>"]) == [1.0]
    # the first step written right after <think>, indented bullets and "•" bullets count (they did not)
    assert reward(["<think>1. add\n2. double\n3. check</think>", "<think>- add\n- double\n- check</think>"]) == [
        1.0,
        1.0,
    ]
    assert reward(["<think>\n  - add\n  - double\n  - check</think>", "<think>\n• add\n• double\n• check</think>"]) == [
        1.0,
        1.0,
    ]


def test_arithmetic_steps_checks_big_results_and_written_decimals_exactly() -> None:
    """A float's relative tolerance passed a step of a million or more off by a unit: `1234 * 5678 = 7006650`."""
    reward = build_reward("arithmetic_steps")
    steps = ["1234 * 5678 = 7006650", "1000000 + 1 = 1000000", "1234 * 5678 = 7006652", "22 / 7 = 3.142857142857142857"]
    assert reward([f"<think>{step}</think><answer>1</answer>" for step in steps]) == [0.0, 0.0, 1.0, 1.0]


def test_arithmetic_steps_scores_the_share_of_true_equalities() -> None:
    reward = build_reward("arithmetic_steps")
    texts = [
        GOOD,
        "<think>\n40 - 9 = 27\n27 + 4 = 31\n</think>\n<answer>31</answer>",  # one slip, one true step
        "<think>\n81 + 43 = 81 + 40 + 3 = 121 + 3 = 124\n</think>\n<answer>124</answer>",  # a chain: 3 checks
        "<think>48/2 = 24 and 24 × 3 = 72.</think><answer>72</answer>",  # prose around, × and a full stop
        "<think>\n3 * (4 + 1) = 16\n</think>\n<answer>15</answer>",
    ]
    assert reward(texts) == [1.0, 0.5, 1.0, 1.0, 0.0]
    assert reward([as_messages(texts[1])]) == [0.5]
    # one false step in prose: a clause's comma, or a full stop before the next step, hid it (1.0 or no verdict)
    prose = ["3 + 4 = 8, then 8 * 2 = 16.", "48 / 2 = 25. 25 + 48 = 73.", "She has 15 + 5 = 20 dollars. 20 / 4 = 6"]
    assert reward([f"<think>{text}</think><answer>1</answer>" for text in prose]) == [0.5, 0.5, 0.5]


@pytest.mark.parametrize(
    "step",
    [
        "Maila read 12 x 2 = 24 pages",  # GSM8K's own solutions write x for times
        "1,200 + 300 = 1,500",  # thousands separators
        "20% of 50 = 10",
        "1/2 of 10 = 5",
        "3/5 x 100 = 60",
        "100 x .20 = 20",
        "20 − 13 = 7",  # the Unicode minus sign
        "$40 – $4 = $36",  # an en dash, and dollar signs
        "12 \\times 2 = 24",
        "3 times 4 = 12",
        "10 minus 3 = 7",
        "10 plus 5 = 15",
        "20 divided by 4 = 5",
        "3 multiplied by 4 = 12",
        "100 / 3 = 33.33",  # a result rounded where it is written
        "2/3 = 0.667",
        # R1-distill's inline math, Markdown's bullets and bold: unchecked, slips in them went unpunished
        "\\( 3 \\times 4 = 12 \\)",
        "\n- 12 + 9 = 21",
        "\n* 3 + 4 = 7",
    ],
)
def test_arithmetic_steps_reads_steps_as_people_write_them(step: str) -> None:
    reward = build_reward("arithmetic_steps")
    assert reward([f"<think>{step}</think><answer>1</answer>"]) == [1.0]
    slipped = step.replace("= ", "= 1")  # the same step with a wrong result
    assert reward([f"<think>{slipped}</think><answer>1</answer>"]) == [0.0]


def test_a_false_step_before_an_arrow_or_after_a_mentioned_answer_tag_counts() -> None:
    """`3 + 4 = 8 -> 8 + 1 = 9` dropped its false step (the run ended in `8 -`) and scored 1.0; an `<answer>` named
    in the thinking cut the steps after it off (None)."""
    reward = build_reward("arithmetic_steps")
    assert reward(["<think>3 + 4 = 8 -> 8 + 1 = 9</think><answer>9</answer>"]) == [0.5]
    mention = "<think>\nI must reply with <answer> tags.\n12 + 9 = 22\n22 * 2 = 44\n</think>\n<answer>44</answer>"
    assert reward([mention]) == [0.5]
    assert reward(["<think>2**3 = 8</think><answer>8</answer>"]) == [None]  # a power, not bold: unchecked
    bold = [f"<think>12 + 9 = **{result}**</think><answer>1</answer>" for result in (21, 22)]
    assert reward(bold) == [1.0, 0.0]  # Markdown's bold result: was unchecked


def test_arithmetic_steps_checks_a_chain_s_last_link() -> None:
    """`12 + 9 = 21 = 22` scored 1.0: a pair of bare numbers was skipped in a chain too (as `1 = 1` padding is)."""
    reward = build_reward("arithmetic_steps")
    assert reward(["<think>12 + 9 = 21 = 22</think><answer>22</answer>"]) == [0.5]
    assert reward(["<think>12 + 9 = 21 = 21.0</think><answer>21</answer>"]) == [1.0]  # padding: no step


def test_arithmetic_steps_leaves_a_cut_off_side_unchecked() -> None:
    """A run of arithmetic characters that starts or ends mid-expression is not a false step."""
    reward = build_reward("arithmetic_steps")
    cut = ["5 apples - 3 = 2", "2^3 = 8", "12,34 = 1234", "11:00-8:00 = 3", "60 students x 2/3 = 40", "100 = 5A"]
    cut += ["1/2 = 50%", "double 5 = 10", "twice 6 = 12", "√16 = 4", "10 % 3 = 1", "the 3 boxes minus 1 = 2"]
    cut += ["17 / 5 = 3 remainder 2", "60 / 7 = 8 weeks and 4 days"]  # a quotient and its remainder in words
    cut += ["17 / 5 = 3, remainder 2", "17 / 5 = 3. The remainder is 2."]  # after a comma, a full stop
    assert reward([f"<think>{text}</think><answer>1</answer>" for text in cut]) == [None] * len(cut)
    # a completion the token limit cut inside a result: `1200 + 34 = 12` of a `1234` being written was a false step
    limit = ["<think>\n12 + 9 = 21\n1200 + 34 = 12", "<think>\n1200 + 34 = 12", "<think>\n1200 + 34 = 12\n"]
    at_limit = build_reward("arithmetic_steps", max_length=6, end_tokens=[2])
    assert at_limit(limit, completion_ids=[[0] * 6] * 3) == [1.0, None, 0.0]  # a line ended is a step written
    assert at_limit(limit, completion_ids=[[0] * 5 + [2]] * 3) == [0.5, 0.0, 0.0]  # ended on its last token
    # one that ended on its own (fewer tokens than the limit) is judged whole: a wrong last step is no free step
    assert at_limit(limit, completion_ids=[[0] * 5] * 3) == reward(limit) == [0.5, 0.0, 0.0]
    # cut right after a decimal point or a thousands comma (tokenizers that split digits stop there): was a false step
    points = ["<think>\n10 / 4 = 2.", "<think>\n1,200 + 34 = 1,", "<think>\n10 / 4 = 2.\n"]
    assert at_limit(points, completion_ids=[[0] * 6] * 3) == [None, None, 0.0]


def test_padding_with_true_steps_does_not_buy_back_a_slip() -> None:
    """The share of true steps paid for padding: `1 + 1 = 2` written ten times before a slip scored 10/11, a true step
    repeated as much. A step counts once, and with the problem a true step counts only where it works on its
    numbers (given in digits or words) or on such a step's results."""
    reward = build_reward("arithmetic_steps")
    slip = "12 + 9 = 22\n"
    repeated, trivial = "12 + 3 = 15\n" * 10 + slip, "".join(f"{n} + 1 = {n + 1}\n" for n in range(30, 40)) + slip
    texts = [f"<think>{steps}</think><answer>22</answer>" for steps in (repeated, trivial)]
    assert reward(texts) == [0.5, pytest.approx(10 / 11)]  # without the problem: only the repetition is seen
    problem = "What is 12 + 9 + 3?"
    assert reward(texts, prompts=[problem] * 2) == [0.5, 0.0]
    worked = "<think>\n12 + 9 = 21\n21 + 3 = 24\n1 + 1 = 2\n</think>\n<answer>24</answer>"
    assert reward([worked], prompts=[[{"role": "user", "content": problem}]]) == [1.0]
    assert reward(["<think>1 + 1 = 2</think><answer>2</answer>"], prompts=[problem]) == [None]
    in_words = "<think>2 * 3 = 6\n6 + 25 = 31</think><answer>31</answer>"
    assert reward([in_words], prompts=["Two bags of three apples and twenty-five pears: how many fruits?"]) == [1.0]
    latex = "<think>12500 * 0.2 = 2500\n12500 - 2500 = 10000</think><answer>10000</answer>"  # MATH's thousands
    assert reward([latex], prompts=["A car costs $\\$12{,}500$ and loses $20\\%$ of its value."]) == [1.0]


def test_a_rounded_result_holds_only_where_it_is_rounded_right() -> None:
    reward = build_reward("arithmetic_steps")
    steps = ["10 / 3 = 3", "22 / 7 = 3.2", "2/3 = 0.66", "15 / 7 = 2.14", "0.5 + 0.25 = 0.75"]
    assert reward([f"<think>{step}</think><answer>1</answer>" for step in steps]) == [0.0, 0.0, 0.0, 1.0, 1.0]


def test_arithmetic_steps_has_no_verdict_without_checkable_steps() -> None:
    reward = build_reward("arithmetic_steps")
    texts = [
        "<think>I just know it.</think><answer>7</answer>",
        "<think>x = 5, so y = 2x</think><answer>10</answer>",  # algebra, not arithmetic
        "<think>10 / 0 = 3</think><answer>3</answer>",  # no value to compare
        "<think>think</think><answer>2 + 2 = 5</answer>",  # the answer block is not a step
    ]
    assert reward(texts) == [None, None, None, None]


def test_a_short_answer_of_a_digit_flood_is_judged_wrong_quickly() -> None:
    """The check for a denied or bounded number read a run of digits in quadratic time: 8,000 digits, one "word",
    hit the verifier's time limit (no verdict) instead of being wrong."""
    started = time.monotonic()
    assert build_reward("accuracy")(["<answer>" + "7" * 8000 + "</answer>"], solution=["7"]) == [0.0]
    assert time.monotonic() - started < 2


def test_arithmetic_steps_reads_a_flood_of_digits_or_equations_quickly() -> None:
    reward = build_reward("arithmetic_steps")
    started = time.monotonic()
    flood, chain = reward([HOSTILE["digit_flood_in_thinking"], HOSTILE["endless_equation_chain"]])
    assert time.monotonic() - started < 10
    assert flood is None  # a million-digit side is not a written step: nothing checked
    assert chain == 1.0  # 100,000 true equalities (9 * 9 = 9 * 9 = … = 81), each checked
    # a collapsed policy's whitespace (SmolLM2 has a 64-space token: 1,024 tokens are 65k spaces) took 17 s, quadratic
    # in the run's length; and a flood of nested \boxed{ (read by the multiple-choice check) too
    started = time.monotonic()
    assert reward([" " * 65_000, "\t" * 65_000]) == [None, None]
    assert boxed_contents("\\boxed{" * 30_000) == []
    assert time.monotonic() - started < 2


def test_arithmetic_steps_reads_a_label_before_a_step_as_a_label() -> None:
    """`Day 1 = 4 * 5 = 20` checked `1 = 4 * 5`, a false step: a right solution scored 0.75 (and step credit pushed
    its right step down)."""
    reward = build_reward("arithmetic_steps")
    worked = "<think>\nDay 1: 4 * 5 = 20 pages\nDay 2 = 4 * 5 + 2 = 22 pages\nTotal = 20 + 22 = 42\n</think>"
    assert reward([worked + "<answer>42</answer>"]) == [1.0]
    assert reward(["<think>Week 3 = 7 * 3 = 22</think><answer>22</answer>"]) == [0.0]  # its step still checked
    # a word before a step of two sides is no label: `We get 100 = 50 * 3` is a false step
    assert reward(["<think>We get 100 = 50 * 3. So 40 = 5 * 8.</think><answer>100</answer>"]) == [0.5]


def test_cosine_orders_short_and_long_right_and_wrong() -> None:
    cosine = build_reward("cosine", max_len=200)
    short_right, long_right = "<answer>7</answer>", "<think>" + "thinking " * 20 + "</think><answer>7</answer>"
    short_wrong, long_wrong = "<answer>8</answer>", "<think>" + "thinking " * 20 + "</think><answer>8</answer>"
    r = dict(
        zip(
            ["sr", "lr", "sw", "lw"],
            cosine([short_right, long_right, short_wrong, long_wrong], solution=["7"] * 4),
            strict=True,
        )
    )
    assert 1.0 >= r["sr"] > r["lr"] >= 0.8  # concise correct answers earn most
    assert -0.5 <= r["sw"] < r["lw"] <= -0.1  # short wrong answers are punished most
    assert cosine(["<answer>7</answer>" + "x" * 5000], solution=["7"]) == [pytest.approx(0.8)]  # capped at max_len


def test_cosine_needs_no_accuracy_kwarg_and_skips_unparseable_gold() -> None:
    assert build_reward("cosine")(["<answer>7</answer>"], solution=["no gold here"]) == [None]


def test_repetition_penalty_factory_returns_the_reward_function() -> None:
    reward = build_reward("repetition_penalty", ngram_size=2, max_penalty=-1.0)
    assert callable(reward) and reward.__name__ == "repetition_penalty"
    assert reward(["a b a b a b", "a b c d", "", "one"]) == [pytest.approx(-0.6), 0.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        build_reward("repetition_penalty", max_penalty=0.5)


# The same short piece of reasoning in four languages; three of them put no spaces between words.
REASONING = {
    "en": "First, Sam has five apples and buys three more at the market. Then his sister gives him two apples, but "
    "he eats one on the way home. So the count is five plus three plus two minus one, which is nine apples.",
    "zh": "首先，小明有五个苹果，又在市场上买了三个。接着姐姐给了他两个苹果，但是他在回家的路上吃掉了一个。"
    "所以苹果的数量是五加三加二减一，等于九个苹果。",
    "ja": "まず、サムはりんごを五個持っていて、市場でさらに三個買いました。それから姉が二個くれましたが、"
    "帰り道で一個食べてしまいました。したがって、りんごの数は五たす三たす二ひく一で、九個です。",
    "th": "ก่อนอื่น แซมมีแอปเปิ้ลห้าผล และซื้อเพิ่มอีกสามผลที่ตลาด จากนั้นพี่สาวของเขาให้แอปเปิ้ลอีกสองผล "
    "แต่เขากินไปหนึ่งผลระหว่างทางกลับบ้าน ดังนั้นจำนวนแอปเปิ้ลคือห้าบวกสามบวกสองลบหนึ่ง ซึ่งเท่ากับเก้าผล",
}


def test_repetition_penalty_catches_loops_in_scripts_without_spaces() -> None:
    reward = build_reward("repetition_penalty", max_penalty=-1.0)
    looped = reward([text * 20 for text in REASONING.values()])
    assert looped[0] == pytest.approx(-0.95, abs=0.01)  # English: 19 of 20 copies repeat the first
    for language, value in zip(REASONING, looped, strict=True):
        assert value == pytest.approx(looped[0], abs=0.01), language


def test_repetition_penalty_leaves_normal_text_in_any_script_alone() -> None:
    reward = build_reward("repetition_penalty", max_penalty=-1.0)
    assert reward(list(REASONING.values())) == [0.0, 0.0, 0.0, 0.0]
    assert reward([[{"role": "assistant", "content": REASONING["zh"]}]]) == [0.0]
    # a few Chinese words in English text keep the word n-grams: "五个" is one word among the English ones
    assert reward(["Sam has five apples, 五个 in Chinese, and buys three more."]) == [0.0]


def test_repetition_penalty_counts_words_in_training_as_outside_it() -> None:
    """With TRL's completion_ids it counted tokens: a number's digits (one token each) were repetition in training,
    and the same reply scored otherwise outside it. The tutorial counts words."""
    reward = build_reward("repetition_penalty", max_penalty=-1.0)
    text = "<think>We compute 3333333 + 4444444 = 7777777.</think><answer>7777777</answer>"
    digits = [[10, 11, 12, 13] + [3] * 7 + [14] + [4] * 7 + [15] + [7] * 7]
    assert reward([text], completion_ids=digits) == reward([text]) == [0.0]
    assert build_reward("repetition_penalty", max_penalty=-1.0, unit="tokens")([text], completion_ids=digits)[0] < 0


def test_repetition_penalty_counts_token_ngrams_when_trl_passes_completion_ids() -> None:
    reward = build_reward("repetition_penalty", ngram_size=2, max_penalty=-0.5, unit="tokens")
    ids = [[5, 6, 7, 5, 6, 8, 5, 6], [1, 2, 3, 4], [9] * 6, [3]]
    # bigrams of the first: (5,6) (6,7) (7,5) (5,6) (6,8) (8,5) (5,6): 7 bigrams, 5 distinct -> 2/7 repeated
    expected = [pytest.approx(-0.5 * 2 / 7), 0.0, pytest.approx(-0.5 * 4 / 5), 0.0]
    assert reward(["text that the tokens win over"] * 4, completion_ids=ids) == expected
    # the tokens decide, not the words: repeated words in different tokens are not repetition
    assert reward(["a b a b a b"], completion_ids=[[1, 2, 3, 4, 5, 6]]) == [0.0]


def test_overlong_ramps_down_near_the_limit() -> None:
    reward = build_reward("overlong", max_length=100, soft_cache=20)
    ids = [[0] * n for n in (10, 80, 90, 100, 120)]
    assert reward([""] * 5, completion_ids=ids) == [0.0, 0.0, -0.5, -1.0, -1.0]
    with pytest.raises(ValueError, match="overlong scores token counts: pass completion_ids"):
        reward([""], solution=["1"])  # called as the other rewards are, without TRL's token ids


def test_language_consistency_follows_the_prompt_language() -> None:
    reward = build_reward("language_consistency")
    english_prompt = [{"role": "user", "content": "How many apples does Sam have after buying three more?"}]
    french_prompt = [{"role": "user", "content": "Combien de pommes Sam a-t-il après en avoir acheté trois?"}]
    english = "<think>Sam has five apples and buys three more apples.</think><answer>8</answer>"
    french = "<think>Sam a cinq pommes et il en achète encore trois.</think><answer>8</answer>"
    assert reward([english, french], prompts=[english_prompt, english_prompt]) == [1.0, 0.0]
    assert reward([french], prompts=[french_prompt]) == [1.0]
    assert reward(["<answer>8</answer>"], prompts=[english_prompt]) == [None]  # no words to judge


def test_a_short_or_unsure_question_takes_its_language_from_the_whole_prompt() -> None:
    """ "Evaluate 9 - 4." reads as French at 0.35 (an English trace for it scored 0), "What is 3 + 4?" has too few
    letters (a Chinese trace went unjudged): with the run's system prompt, both are English."""
    reward = build_reward("language_consistency")
    system = {"role": "system", "content": "Think step by step inside think tags, then give the final answer."}
    english = "<think>We take nine and subtract four from it, which leaves five in the end.</think><answer>5</answer>"
    chinese = "<think>我们先把三和四加在一起，得到七。然后再检查一遍这个结果，确认没有错误。</think><answer>7</answer>"
    evaluate, short = (
        [system, {"role": "user", "content": "Evaluate 9 - 4."}],
        [system, {"role": "user", "content": "What is 3 + 4?"}],
    )
    assert reward([english, chinese], prompts=[evaluate, short]) == [1.0, 0.0]


def test_a_question_s_variables_are_not_its_language() -> None:
    """ "If $x+y=10$ and $x-y=2$, find $x$." read as Spanish (y: "and") at 0.81, over the English system prompt: an
    English reply scored 0. Its math and one-letter variables are no evidence; a Spanish question still is."""
    reward = build_reward("language_consistency")
    system = {"role": "system", "content": "Think step by step inside think tags, then give the final answer."}
    english = (
        "<think>Adding the two equations gives 2x = 12, so x = 6. Then y = 4. We check that both equations hold for "
        "these values.</think><answer>6</answer>"
    )
    asked = [
        "If $x+y=10$ and $x-y=2$, find $x$.",
        "Let x = 5 and y = 2. Compute x^2 - y^2.",
        "Si x + y = 10 y x - y = 2, ¿cuánto vale x?",
    ]
    prompts = [[system, {"role": "user", "content": question}] for question in asked]
    assert reward([english] * 3, prompts=prompts) == [1.0, 1.0, 0.0]
    # a short question: "Find $y$." with the system prompt is English; a Spanish one whose "y" (and) was all it said of
    # its language is still Spanish, with the English system prompt too
    assert reward([english], prompts=[[system, {"role": "user", "content": "Find $y$."}]]) == [1.0]
    spanish = "<think>Sumamos tres y cuatro, y obtenemos siete. Lo comprobamos otra vez.</think><answer>7</answer>"
    short = [[system, {"role": "user", "content": question}] for question in ("Suma 3 y 4.", "Multiplica 6 y 9.")]
    assert reward([spanish] * 2, prompts=short) == [1.0, 1.0]


def test_language_consistency_reads_english_with_names_and_units_as_english() -> None:
    """Worked solutions like GSM8K's: short lines of names and units, which fastText alone reads as Portuguese or
    Italian (1.4% of GSM8K's gold solutions scored below 0.9); a sentence in another language still counts against."""
    reward = build_reward("language_consistency", language="en")
    english = [
        "<think>Mira jogs x miles per day\nIn 5 days she jogs 5x = 25 miles, so x = 5.</think><answer>5</answer>",
        "<think>Let L = Leeward Center\nChrysler = L + 11\nTogether 2L + 11 = 35 floors, so L = 12.</think>",
        "<think>3 packs with 10 cards each is 3 * 10 = 30 cards.\npacks of cards cards per pack cards\n</think>",
    ]
    assert reward(english) == [1.0, 1.0, 1.0]
    mixed = (
        "<think>First we find how many apples each basket holds, then multiply by the baskets.\n"
        "Ensuite nous multiplions le nombre de paniers par le nombre de pommes dans chaque panier.</think>"
    )
    assert 0.3 < reward([mixed])[0] < 0.7
    # a sentence in another language within an English line: read with the line, it counted as English (1.0)
    first = "Ava starts with 27 pencils and then she gets 3 more pencils from her teacher, so 27 + 3 = 30 pencils."
    last = "Then she gives 8 of them away to a friend, so 30 - 8 = 22 pencils are left at the end."
    for switched in (
        "Ensuite elle donne huit crayons à son amie, donc il en reste vingt-deux.",
        "然后她把八支铅笔送给了她的好朋友，所以我们需要从三十支里面减去八支。",
    ):
        assert reward([f"<think>{first} {switched} {last}</think><answer>22</answer>"])[0] < 0.8


def test_text_helpers() -> None:
    assert extract_answer("<answer>1</answer> <answer> 2 </answer>") == "2"
    assert extract_answer("<answer>unclosed") is None
    assert split_r1(GOOD) == ("6 * 7 = 42", "42")
