"""Verifier worker process: reads JSON requests on stdin, answers one JSON line per request on stdout.

Runs as `python -m r1kit.rewards._verify_worker`. The parent (`r1kit.rewards.verifier.VerifierPool`) enforces the
time limit by killing this process, so math-verify's own `signal.alarm` timeouts are switched off here.

Requests:
- `{"gold": g}`: can `g` be verified against at all? Parses it and compares it with a plain number, which is where a
  hostile gold (`16**2**5**19`, `(10^{10})!`) hangs: the parent then gives up on the gold's whole group at once.
- `{"answer": a, "gold": g}`: is `a` mathematically equal to `g`?
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import sys
import unicodedata
from decimal import Decimal
from fractions import Fraction

from r1kit.rewards.text import NUMBER_RUN, NUMBER_WINDOW, WORD_GOLD, boxed_contents, denial_dropped

_LATEX_DELIMITERS = ("$", "\\(", "\\[", "\\boxed")
_LATEX_SYNTAX = ("\\", "^", "{")  # a bare expression written in LaTeX: 2^{10}, \frac{1}{2}, 10^{100}+1
# What math-verify reads right only as LaTeX too, as plainly read each is its first or last number: a pair or an
# interval, (1, 2), [0, 1]; a list of roots (`a_list`); algebra written plainly, 2x+1, x + 1, 5n, -x, or a lone
# letter (a multiple-choice answer, B).
_BRACKETED = re.compile(r"\s*[(\[]")
_LIST = re.compile(r"\s*(?:[A-Za-z]\s*=\s*)?[-+]?\d+(?:\.\d+)?(?:\s*,\s*[-+]?\d+(?:\.\d+)?)+\s*")
_ALGEBRA = re.compile(
    r"\d\s*[A-Za-z](?![A-Za-z])|[A-Za-z]\s*[-+*/^=<>]|[-+*/^=<>]\s*[A-Za-z]|^\s*[-+]?\s*[A-Za-z]\s*$"
)  # an inequality too, x > 6: plainly read, its last number (6 scored correct for it, and it for 6)
_THOUSANDS_NUMBER = re.compile(r"\s*(?:[A-Za-z]\s*=\s*)?[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?\s*")  # -1,000; x = 1,000,000
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")  # a word, not a LaTeX command such as \frac
# a LaTeX command's word argument, \begin{pmatrix} or \text{ units}: LaTeX, not words (read plainly, a matrix was its
# last number: any other matrix ending in it scored correct)
_LATEX_WORD_ARGUMENT = re.compile(r"\\(?:begin|end|text|textbf|mathrm|mathbf|operatorname)\s*\{[^{}]*\}")
# a number and its unit, 5 cm, 12 cm^2, 9.8 m/s^2: the number (as LaTeX, cm^2 would be c times m squared)
_UNIT = re.compile(
    r"(\s*[-+]?\d[\d,]*(?:\.\d+)?)\s+(?:[A-Za-z]{2,3}|[A-Zmgsl])(?:/[A-Za-z]{1,3})?(?:\^\d|\^\{\d\})?\s*"
)  # a unit of two or three letters, a capital (25 C, 5 T) or m, g, s, l: 5 x is five times x
# 2 1/2: two and a half (as 2\frac{1}{2} reads), anywhere in the text ("2 1/2 hours"; read apart, a hedge); also said
# `2 and 1/2` where the fraction is below one (`3 and 5/2` is two numbers)
_MIXED_NUMBER = re.compile(
    r"(?<![\w./])([-+]?)(\d+)[ \t]+(and[ \t]+)?(\d+)/(\d+)(?![\w/]|\.\d)", re.IGNORECASE
)  # a full stop may end it
# A multiple-choice letter as answers write it: B, (B), B., **B**, B) 12, Option B, The answer is (C)., **Answer: B**;
# text may follow the letter only after its closing mark ("I think…" names no option)
_CHOICE = re.compile(
    r"\**(?:(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)(?:\s+is)?\s*:?\s*\**\s*)?\**\(?([A-Za-z])[).:]?\**"
    r"\.?(?:(?<=[).:*])\s.*)?",
    re.IGNORECASE | re.DOTALL,
)
_CHOICE_GOLD = re.compile(r"\s*(?:\\text\{\s*)?\(?\s*([A-Z])\s*\)?\s*\}?\s*")
_WORDS = re.compile(r"\s*[A-Za-z]+(?: [A-Za-z]+){0,3}\s*")  # Monday, even, no solution
# a number, then its working or a remark in brackets: `18 (24 - 6)` (math-verify read the last number, 6); one space
# at least, as 2(3) is a product (`said_around` tells working from algebra and hedges)
_NUMBER_THEN_BRACKETS = re.compile(r"\s*(\$?[-+]?\d[\d,]*(?:\.\d+)?)\s+\(([^()]*)\)\s*\.?\s*")
_HEDGE_WORD = re.compile(
    r"\b(?:or|maybe|perhaps|possibly|probably|also|alternatively|otherwise|could|might|either|unless)\b|\?",
    re.IGNORECASE,
)
_TIMES_BETWEEN_NUMBERS = re.compile(r"(?<=\d)\s*[xX·]\s*(?=\d)")  # 3 x 4: times, not a variable
# x, xy: a variable or a product of two, not a word, "i.e." or a short word of a remark
_VARIABLE = re.compile(r"(?<![A-Za-z])(?!(?:is|of|to|so|by|in|on|at|an|as|be|it|if)\b)[A-Za-z]{1,2}(?![A-Za-z.])")
_NUMBERS_ALONE = re.compile(r"[-+]?[\d\s.,;]*\d[\d\s.,;]*")  # 6, or 6, 7: numbers and no working
# a unit's square or cube after a number, where the unit ends the answer: 25 cm², 8 m³/h (as an exponent, cm would be
# read as c·m); not in algebra, 4 m² + 1
_UNIT_POWER = re.compile(r"(\d\s+(?:[A-Za-z]{2,3}|[A-Zmgsl]))[²³](?=\s*(?:/[A-Za-z]|[.,;:!?)]|$))")
# a word answer as written: **Yes**, \text{Monday}., *even*! (marks at its ends only: N_o is no No)
_WORD_IN_TEXT = re.compile(r"\s*\\text(?:bf)?\s*\{([^{}]*)\}\s*[.!]?\s*")
_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")  # \text{(C)} → (C)


def choice(gold: str, answer: str) -> bool | None:
    """Whether an answer names a multiple-choice gold's letter (one capital letter: B, (C), \\text{(C)}), any case
    (math-verify reads B. or Option B as nothing, and I as the imaginary unit); None where the gold is no letter or
    the answer names none this way (math-verify then judges it: $B$, \\mathrm{B}).

    >>> choice("B", "**B**"), choice("\\\\text{(C)}", "The answer is C."), choice("B", "(A) 12"), choice("5", "5")
    (True, True, False, None)
    >>> choice("B", "So it is \\\\boxed{\\\\text{B}}."), choice("I", "I think it is C"), choice("B", "*" * 9000)
    (True, None, None)
    >>> choice("B", "\\\\boxed{A} \\\\boxed{B}")  # two options boxed
    False
    >>> choice("B", "The answer is (B)."), choice("B", "**Answer: B**"), choice("B", "**Answer:** (B)."), choice("I", "I! Hm")
    (True, True, True, None)
    """
    letter = _CHOICE_GOLD.fullmatch(gold)
    if letter is None:
        return None
    boxes = boxed_contents(answer)
    if len({_option_named(box) for box in boxes} - {None}) > 1:  # \boxed{A} \boxed{B}: two options, a hedge
        return False
    named = _option_named(boxes[-1] if boxes and boxes[-1] else answer)
    return None if named is None else named == letter.group(1)


def _option_named(said: str) -> str | None:
    """The option letter a short text names (upper case), or None."""
    for _ in range(3):  # \text{\textbf{C}}
        said = _WRAPPER.sub(r"\1", said)
    said = said.replace("$", "").strip()
    named = _CHOICE.fullmatch(said) if len(said) <= _SHORT else None
    return None if named is None else named.group(1).upper()


_SHORT = 200  # characters: an answer block that may be a bare LaTeX expression
_END_PUNCTUATION = re.compile(r"\s*[.,;]+\s*$")
# a time (3:30) or a ratio (2:1): read plainly, math-verify keeps its first number (3:45 was 3:30)
_COLON_PAIR = re.compile(r"(?<![\d:])(?<!\d\.)(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)(?![\d:]|\.\d)")
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
_SIGN_PLUS = re.compile(r"(^|=)(\s*)\+(?=\s*\d)")  # "+18", "x = +18": a sign, which math-verify does not read
_SIGN_MINUS = re.compile(r"(^|[=:])(\s*)-\s*(?=\d)")  # "- 5", "Answer: - 5": the sign math-verify reads, "-5"
_BARE_DECIMAL = re.compile(r"(?<![\w.])\.(?=\d)")  # .5, -.5 (math-verify reads -.5 as nothing): 0.5, -0.5
_DASH_MINUS = re.compile(r"(^|[=(:])(\s*)[–—]\s*(?=\d)")  # "–3", "x = —3": an en or em dash for a minus sign
# Unicode's superscripts, fractions and root as LaTeX writes them (math-verify drops them: 5² was 5, 2½ was 2)
_SUPERSCRIPTS = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻]+")
_SUPERSCRIPT_ASCII = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻", "0123456789+-")
_VULGAR_FRACTION = re.compile(r"(\d?)\s*([¼½¾⅐⅑⅒⅓⅔⅕⅖⅗⅘⅙⅚⅛⅜⅝⅞])")
_ROOT = re.compile(r"√\s*(\d+(?:\.\d+)?|\([^()]*\)|\{[^{}]*\})")
# a whole answer in italics, *(1, 2)*
_ITALIC = re.compile(r"\s*\*([^*]+)\*\s*")
# single-asterisk Markdown emphasis, *14* (2*3*4, (2)*(3)*(4) and **14** are left alone)
_EMPHASIS = re.compile(r"(?<![\w*)])\*(?=[^*\s(])([^*]*?[^*\s)])\*(?![\w*(])")
# thousands spaced as LaTeX does, 10\,000 and MATH's 1,\!000 (read as 10 times 000, 1 times 000): 10000, 1,000
_THOUSANDS_SPACE = re.compile(r"(?<=\d)(,?)(?:\\[,!;: ])+(?=\d{3}(?!\d))")
_FULLWIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}  # ４２ (fullwidth forms of ASCII): 42
_PI = re.compile(r"(?<![A-Za-z\\])(?:pi|π)(?![A-Za-z])")  # 3 pi, 2π: π (as a unit, `pi` made 3 pi read 3)
_AT_LEAST = re.compile(r"\s*(?:>=|≥)\s*")  # x >= 6, x ≥ 6: as LaTeX writes it, \ge
_AT_MOST = re.compile(r"\s*(?:<=|≤)\s*")
# -$5, -\$5: minus five dollars (a currency sign after the sign, not math's delimiter)
# a number in E notation, a short exponent (1e99999 written out would be the verifier's undoing): math-verify reads
# 1e-5 as Euler's e minus 5
_E_NOTATION = re.compile(r"\s*([-+]?\d+(?:\.\d+)?[eE][-+]?\d{1,2})\s*")
_SIGNED_DOLLAR = re.compile(r"(^|=|\s)([-+])\s*\\?\$(?=\s*\d[^$]*$)")  # no $ after it: not math's "- $5$"


def plain(text: str) -> str:
    """How answers are written, as math-verify reads them: fullwidth digits and signs (４２) and every script's
    decimal digits (٤٢, ४२) as ASCII, every Unicode minus (−) as -, Markdown code marks dropped (`18`), LaTeX's
    thousands spacing (10\\,000, 1,\\!000, 1{,}000) as plain digits, >= and ≤ as \\ge and \\le, an escaped dollar
    outside math (\\$18, as Markdown needs it) as a dollar sign and one after a sign dropped (-$5), pi and π as \\pi,
    a plus sign before a number dropped (+18), a minus sign before one written -5 (- 5), a mixed number as its
    improper fraction (2 1/2 as 5/2), a number's unit dropped (5 cm) and one in E notation written out (1e-5),
    Unicode's superscripts, fractions and √ as LaTeX (`_unicode_math`), and Markdown's italics dropped (*14*).

    >>> plain("\\$1,\\!000"), plain("10\\,000"), plain("x = − 5"), plain("+18"), plain("４２"), plain("9.8 m/s^2")
    ('$1,000', '10000', 'x = -5', '18', '42', '9.8')
    >>> plain("٤٢"), plain("۴۲"), plain("४२")
    ('42', '42', '42')
    >>> plain("-\\$5"), plain("3 pi"), plain("2π"), plain("pizza"), plain("x >= 6"), plain("x≤6")
    ('-5', '3 \\\\pi', '2\\\\pi', 'pizza', 'x \\\\ge 6', 'x \\\\le 6')
    >>> plain("-2 1/2"), plain("It takes 2 1/2 hours."), plain("2 1/2."), plain("3 4/4"), plain("1 2/3/4")
    ('-5/2', 'It takes 5/2 hours.', '5/2.', '16/4', '1 2/3/4')
    >>> plain("2 and 1/2"), plain("1 And 3/4 hours"), plain("3 and 5/2"), plain("2 and 1/0")
    ('5/2', '7/4 hours', '3 and 5/2', '2 and 1/0')
    >>> plain("1e-5"), plain("2.5E3"), plain("-3e+02"), plain("2e"), plain("1e999")
    ('0.00001', '2500', '-300', '2e', '1e999')
    >>> plain("5²"), plain("x⁻¹"), plain("2½"), plain("½"), plain("√16"), plain("2√(x+1)"), plain("12 cm²")
    ('5^{2}', 'x^{-1}', '5/2', '1/2', '\\\\sqrt{16}', '2\\\\sqrt{x+1}', '12')
    >>> plain("–3"), plain("x = —3"), plain("1–3"), plain("Answer: - 5"), plain("*14*"), plain("2*3*4")
    ('-3', 'x = -3', '1–3', 'Answer: -5', '14', '2*3*4')
    >>> plain("(2)*(3)*(4)"), plain("A = 25 cm²"), plain("8 m³/h"), plain("5 x²")
    ('(2)*(3)*(4)', 'A = 25 cm', '8', '5 x^{2}')
    >>> plain("-.5"), plain("- .25"), plain("x = .5"), plain("3.5"), plain("v1.5"), plain("end..5")
    ('-0.5', '-0.25', 'x = 0.5', '3.5', 'v1.5', 'end..5')
    """
    text = text.translate(_FULLWIDTH).replace("\u2212", "-").replace("{,}", ",").replace("\u2044", "/")
    if not text.isascii():
        text = _unicode_math(text)
    if not text.isascii():  # math-verify reads ASCII digits only
        text = "".join(str(unicodedata.decimal(char)) if char.isdecimal() else char for char in text)
    text = _AT_MOST.sub(r" \\le ", _AT_LEAST.sub(r" \\ge ", text))
    text = _BARE_DECIMAL.sub("0.", _THOUSANDS_SPACE.sub(r"\1", text.replace("`", "")))
    text = _PI.sub(r"\\pi", _SIGNED_DOLLAR.sub(r"\1\2", text))
    if not _UNESCAPED_DOLLAR.search(text):
        text = text.replace("\\$", "$")
    text = _MIXED_NUMBER.sub(_improper, text)
    unit = _UNIT.fullmatch(text)
    if unit:
        text = unit.group(1)
    if scientific := _E_NOTATION.fullmatch(text):
        text = format(Decimal(scientific.group(1)), "f")
    if italic := _ITALIC.fullmatch(text):
        text = italic.group(1)
    return _SIGN_MINUS.sub(r"\1\2-", _SIGN_PLUS.sub(r"\1\2", _EMPHASIS.sub(r"\1", text)))


def _unicode_math(text: str) -> str:
    """Superscripts as exponents (5² as 5^{2}; a unit's, 25 cm², dropped), vulgar fractions as fractions (½ as 1/2,
    2½ as the mixed number 2 1/2), √ as \\sqrt, and an en or em dash before a number (not between two) as a minus
    sign."""
    text = _UNIT_POWER.sub(r"\1", text)
    text = _SUPERSCRIPTS.sub(lambda run: "^{" + run.group().translate(_SUPERSCRIPT_ASCII) + "}", text)
    text = _VULGAR_FRACTION.sub(_vulgar_fraction, text)
    text = _ROOT.sub(lambda root: "\\sqrt{" + root.group(1).strip("(){}") + "}", text)
    return _DASH_MINUS.sub(r"\1\2-", text)


def _vulgar_fraction(match: re.Match) -> str:
    value = Fraction(unicodedata.numeric(match.group(2))).limit_denominator(10)
    written = f"{value.numerator}/{value.denominator}"
    return f"{match.group(1)} {written}" if match.group(1) else written


def said_around(number: str, inside: str) -> bool:
    """Whether brackets after a number hold its working or a remark, so that the number is the answer: `18 (24 - 6)`,
    `15 (after 3 days)`, `100 (10^2)`, `12 (3 x 4)`; not algebra (`2 (x - 3)`, `6 (\\sqrt{2})`: products), a hedge
    (`5 (maybe 6)`, `5 (could be 6)`) or other numbers alone (`5 (6)`, `5 (6, 7)`).

    >>> said_around("18", "24 - 6"), said_around("15", "after 3 days"), said_around("12", "3 x 4")
    (True, True, True)
    >>> said_around("2", "i.e. 1 + 1"), said_around("4", "xy - 1"), said_around("5", "6, 7")
    (True, False, False)
    >>> said_around("2", "x - 3"), said_around("6", "\\\\sqrt{2}"), said_around("5", "maybe 6"), said_around("5", "6")
    (False, False, False, False)
    """
    if "\\" in inside or _HEDGE_WORD.search(inside):
        return False
    if _NUMBERS_ALONE.fullmatch(inside):  # the same number again (1,000 (1000)) at most
        written = inside.replace(",", "").strip()
        return re.fullmatch(r"[-+]?\d+(?:\.\d+)?", written) is not None and float(written) == float(
            number.lstrip("$").replace(",", "")
        )
    algebra = _VARIABLE.search(_TIMES_BETWEEN_NUMBERS.sub("*", inside)) and re.search(r"[-+*/^=]", inside)
    return not algebra


def word_said(answer: str) -> str:
    """An answer with the marks around a word taken off: `**Yes**`, `Yes.`, `\\text{Monday}.`, `*even*!` (not inside
    it: `N_o` stays).

    >>> word_said("**Yes**"), word_said("Yes."), word_said("\\\\text{Monday}."), word_said("N_o"), word_said("$No$")
    ('Yes', 'Yes', 'Monday', 'N_o', 'No')
    """
    said = answer.strip().strip("*_$ ")
    if wrapped := _WORD_IN_TEXT.fullmatch(said):  # **\\text{Yes}**
        said = wrapped.group(1)
    return said.strip("*_$ ").rstrip(".!").strip("*_$ ")


def _improper(mixed: re.Match) -> str:
    """A mixed number as its improper fraction, 2 1/2 as 5/2 (what math-verify reads in a sentence too; 3 4/4 is 4,
    as 3\\frac{4}{4} reads), `2 and 1/2` too; one over 0, and `3 and 5/2`, stay as written."""
    sign, said_and = mixed.group(1), mixed.group(3)
    whole, numerator, denominator = (int(mixed.group(index)) for index in (2, 4, 5))
    if denominator == 0 or (said_and and numerator >= denominator):
        return mixed.group()
    return f"{sign}{whole * denominator + numerator}/{denominator}"


# a number with its minus sign where it stands alone (-3 and 3), not a difference's (4-3, 12 -5)
_SIGNED_NUMBER = re.compile(r"(?<![\w)\]])(?<!\d\s)-?\d+(?:\.\d+)?|\d+(?:\.\d+)?")
_OR = re.compile(r"\bor\b", re.IGNORECASE)
_JOINED = re.compile(r"\s*(?:and|to|;|&|\\lor|\\land)\s*", re.IGNORECASE)  # 3 and 5, 4 to 5, 3; 5, 4 \lor 5
_HEDGE_WORDS = 8  # an answer of at most this many words is judged for alternatives
_THOUSANDS_GROUP = re.compile(r"\d{3}(?:\.\d+)?")  # the 000.50 of 12 000.50: one number spaced as print does
# one value as an alternative writes it: 0.5, -3, 1/2, 50%, \frac{1}{2}
_ONE_VALUE = re.compile(r"([-+]?\d+(?:\.\d+)?)(?:/(\d+))?(%?)|\\frac\{(\d+)\}\{(\d+)\}")
_PERCENT = re.compile(r"(?<=\d)(?:[ \t]*\\?%)+")  # 12.5%, 12.5\%: a run of them at once (5%%%… in one pass)


def hedged(text: str) -> bool:
    """Two numbers offered as alternatives, `4 or 5`, `-3 and 3`, `1 2 3 4 5` (spaced thousands, 2 000, are one number), `$4$ $5$`
    or two different ones joined, `3 and 5`, `4 to 5`, `3; 5`: for a gold that is one number, no answer (math-verify
    reads the last one, so a hedge scored correct).

    >>> hedged("4 or 5"), hedged("3 (or maybe 4)"), hedged("1 2 3 4 5"), hedged("2 000"), hedged("\\frac{1}{2}")
    (True, True, True, False, False)
    >>> hedged("3 and 5"), hedged("4 to 5"), hedged("3; 5"), hedged("$4$ $5$"), hedged("5 and 5"), hedged("2^{10}")
    (True, True, True, True, False, False)
    >>> hedged("2/3 and 4/6"), hedged("1/2 and 3"), hedged("-3 and 3"), hedged("3 and -3"), hedged("4 - 3")
    (False, False, True, True, False)
    >>> hedged("12 -5 = 7"), hedged("-3 -4 = -7"), hedged("$4$ $-5$"), hedged("$2$ $2.5$")
    (False, False, True, True)
    >>> hedged("1/2 (or 0.5)"), hedged("0.5 or 50%"), hedged("1 234.5"), hedged("1/2 or 0.6"), hedged("2 or 2 or 3")
    (False, False, False, True, True)
    >>> hedged("$2.5$ $2.5$"), hedged("$4$ $4.0$"), hedged("$2$ $500.5$"), hedged(".5 or 5")
    (False, False, True, True)
    """
    alternatives = {_value_said(part) for part in _OR.split(text)} if _OR.search(text) else set()
    if len(alternatives) == 1 and None not in alternatives:
        return False  # one value written two ways: 1/2 (or 0.5), 0.5 or 50%
    found = list(_SIGNED_NUMBER.finditer(text))
    for first, second in itertools.pairwise(found):
        written = text[first.end() : second.start()]
        between = written.replace("$", " ")
        # print's spaced thousands (2 000, 1 234.5), not two blocks of math (`$2$ $500.5$`)
        thousands = "$" not in written and _THOUSANDS_GROUP.fullmatch(second.group())
        spaced = between.isspace() and not thousands
        if _OR.search(between) or (spaced and float(first.group()) != float(second.group())):  # `$4$ $4$`: one
            return True
        # numbers standing alone: 2/3 and 4/6 are one value twice, not 3 and 4
        before, after = text[: first.start()][-1:], text[second.end() :][:1]
        alone = before not in ("/", "^", "_") and after != "/"
        if alone and _JOINED.fullmatch(between) and float(first.group()) != float(second.group()):
            return True
    return False


def _value_said(part: str) -> Fraction | None:
    """The value of one alternative written alone (`0.5`, `(1/2)`, `$50\\%$.`; a percentage as its share), else None.

    >>> _value_said(" 50%)"), _value_said("$\\\\frac{3}{4}$ "), _value_said("0.75."), _value_said("x = 2")
    (Fraction(1, 2), Fraction(3, 4), Fraction(3, 4), None)
    """
    said = _ONE_VALUE.fullmatch(part.replace("\\%", "%").strip(" \t$()[]").rstrip(".,;:"))  # .5 keeps its point
    if said is None:
        return None
    number, over, percent, numerator, denominator = said.groups()
    if numerator is not None:
        return Fraction(int(numerator), int(denominator)) if int(denominator) else None
    if over is not None and int(over) == 0:
        return None
    value = Fraction(number) / (int(over) if over else 1)
    return value / 100 if percent else value


_BOUND_BEFORE = re.compile(  # "not 7", "fewer than 7", "< 7" (not an arrow's =>, ->), "\ge 7"
    r"(?:\b(?:not|never|fewer than|less than|more than|greater than|at least|at most)|(?<![=-])[<>]|[≤≥≠]"
    r"|\\(?:le|ge|lt|gt|leq|geq|neq|ne)\b)[ \t]*\$?[ \t]*-?$",
    re.IGNORECASE,
)
_BOUND_AFTER = re.compile(  # "7 is wrong", "$7$ is not right", "7 isn't a valid solution", "7 or more"; a verdict must
    # follow "not": "7 students are not in the club", "12 are not broken", "7 are not right-handed" give their number
    r"\$?[ \t]*(?:(?:[a-z]+ )?(?:is|are)(?: (?:definitely |clearly |certainly |also )?not|n['’]t) (?:exactly |quite )?"
    r"(?:right|correct|true|valid|possible|accurate|it|(?:the |an? |my |our )?"
    r"(?:final |right |correct |valid |possible |only )?(?:answer|solution|option|value|result|root)s?)(?![\w-])"
    r"|(?:[a-z]+ )?(?:is|are) (?:wrong|incorrect)\b|or (?:fewer|more|less)\b)",
    re.IGNORECASE,
)
# a remark after the answer, `7 (x > 0)`, is not what math-verify reads (a denial in brackets is: denial_dropped)
_REMARK = re.compile(r"\((?![^()]*\b(?:not|never)[ \t]+\$?-?\d)[^()]*\)", re.IGNORECASE)


def not_exactly(text: str) -> bool:
    """The answer's last number (the one math-verify reads) denied or bounded rather than given: for a gold that is
    one number, no answer (`not 7`, `fewer than 7`, `< 7` scored right for 7).

    >>> not_exactly("not 7"), not_exactly("fewer than 7"), not_exactly("x \\ge 7"), not_exactly("7 is wrong")
    (True, True, True, True)
    >>> not_exactly("7 or more"), not_exactly("$7$ is not right")
    (True, True)
    >>> not_exactly("7"), not_exactly("x = 7"), not_exactly("7 over 2"), not_exactly("x > 0, so x = 7")
    (False, False, False, False)
    >>> not_exactly("12 - 5 => 7"), not_exactly("x -> 7"), not_exactly("7 (x > 0)")
    (False, False, False)
    >>> not_exactly("7 students are not in the club."), not_exactly("12 are not broken."), not_exactly("7 is not a solution")
    (False, False, True)
    >>> not_exactly("7 apples is not correct"), not_exactly("7 apples are not the answer"), not_exactly("7 isn't right")
    (True, True, True)
    """
    read = _REMARK.sub(" ", text)
    numbers = list(NUMBER_RUN.finditer(read))
    if not numbers:
        return False
    last = numbers[-1]
    before, after = (
        read[max(0, last.start() - NUMBER_WINDOW) : last.start()],
        read[last.end() : last.end() + NUMBER_WINDOW],
    )
    return bool(_BOUND_BEFORE.search(before) or _BOUND_AFTER.match(after))


def a_list(text: str) -> bool:
    """Numbers and commas that are a list of roots: spaced (-1, 3), signed (-2,1, 1,-2) or of three numbers or more
    (3,5,7), unless written as thousands (-1,000, x = 1,000,000). Two unsigned ones, 1,5, are a decimal comma.

    >>> a_list("-1, 3"), a_list("-2,1"), a_list("3,5,7"), a_list("1,5"), a_list("x = 1, 2"), a_list("1.5")
    (True, True, True, False, True, False)
    >>> a_list("-1,000"), a_list("x = -1,000"), a_list("1,000,000"), a_list("-2,100, 3")
    (False, False, False, True)
    """
    if not _LIST.fullmatch(text) or _THOUSANDS_NUMBER.fullmatch(text):
        return False
    return ", " in text or "-" in text or text.count(",") > 1


def colon_pairs(text: str) -> list[tuple[float, float]]:
    """Every time or ratio written in `text`, as its two numbers.

    >>> colon_pairs("at 3:30 or 10:05 pm"), colon_pairs("12:30:00"), colon_pairs("ratio 2 : 1.5")
    ([(3.0, 30.0), (10.0, 5.0)], [], [(2.0, 1.5)])
    """
    return [(float(a), float(b)) for a, b in _COLON_PAIR.findall(plain(text))]


def colon_pair(gold: str) -> tuple[float, float] | None:
    """A gold that is one time or ratio (`3:30`, `$2:1$`), as its two numbers; else None.

    >>> colon_pair("3:30"), colon_pair("$2:1$"), colon_pair("3"), colon_pair("x:y")
    ((3.0, 30.0), (2.0, 1.0), None, None)
    """
    text = plain(gold).strip().strip("$").strip()
    match = _COLON_PAIR.fullmatch(text)
    return (float(match.group(1)), float(match.group(2))) if match else None


def balanced(text: str) -> bool:
    """Every { closed: an unclosed one (`\\frac{`, `2^{`) is broken LaTeX, which math-verify reads in part (2^{ as 2)."""
    depth = 0
    for match in re.finditer(r"\\[{}]|[{}]", text):
        if len(match.group()) == 1:
            depth += 1 if match.group() == "{" else -1
            if depth < 0:
                return False
    return depth == 0


def die_with_parent(parent: int) -> None:
    """Be killed when the parent process ends, however it ends (Linux; elsewhere a worker ends when its input does):
    stuck in a computation, a worker never reads the end of its input, and outlived a killed training process at full
    CPU. The signal comes when the parent's thread that started this one ends: the parent's spawner thread, which
    lives as long as the parent."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it ended before the line above
        sys.exit(0)


def main() -> None:
    if len(sys.argv) > 1:  # the parent's process id
        die_with_parent(int(sys.argv[1]))
    # With its timeouts disabled, math-verify warns on every call; the parent's hard limit replaces them.
    logging.disable(logging.WARNING)
    import sympy
    from math_verify import parse, verify

    def read(text: str) -> list:
        """math-verify's parse, reading a short bare LaTeX expression as LaTeX; [] for text with no mathematical
        value.

        Undelimited, math-verify reads `2^{999999}` as its first number, 2 (so it would equal `2^{1000000}`), and
        `x^2+1` as nothing; delimited as `$…$` they parse as written. Text with words (`14 apples`) or without LaTeX
        syntax (`16**2`) keeps the plain reading. What math-verify could only keep as a string (`\\frac{`) has no
        value: as a gold it is unparseable, as an answer wrong (otherwise two broken strings would compare equal).
        """
        if len(text) <= _SHORT and not any(mark in text for mark in _LATEX_DELIMITERS):
            # a sentence's full stop, `\\frac{1}{2}.`: as LaTeX it made the whole answer a string, or its first number
            # (before `plain`, which reads a unit at the text's end: `12 cm^2.`)
            text = _END_PUNCTUATION.sub("", text)
        text = plain(text)
        if (after := _NUMBER_THEN_BRACKETS.fullmatch(text)) and said_around(*after.groups()):
            text = after.group(1)
        if len(text) <= _SHORT and not balanced(text):
            return []  # a broken answer; a long text (a worked solution) is read where math-verify finds its answer
        as_latex = []
        words = _WORD.search(_LATEX_WORD_ARGUMENT.sub(" ", text))
        if len(text) <= _SHORT and not any(mark in text for mark in _LATEX_DELIMITERS) and not words:
            bracketed, listed, algebra = _BRACKETED.match(text), a_list(text), _ALGEBRA.search(text)
            if algebra and not listed and not bracketed:  # x = 1,000: as LaTeX the comma would make a list
                text = _THOUSANDS_COMMA.sub("", text)
            # 3:4 against 0.75: as LaTeX, 3/4 (plainly, 3); not a time on the hour (12:00 is no 12/0)
            ratio = (pair := _COLON_PAIR.fullmatch(text)) and float(pair.group(2)) != 0
            if any(mark in text for mark in _LATEX_SYNTAX) or bracketed or listed or algebra or ratio:
                as_latex = parse(f"${text}$", parsing_timeout=None)
        parsed = as_latex or parse(text, parsing_timeout=None)
        return parsed if parsed and not isinstance(parsed[0], str) else []

    def one_number(parsed: list) -> bool:
        """Whether a parsed gold is one number, exact or not (12.5, 25\\%, 3\\sqrt{2}): a short answer to it that
        offers several, denies or bounds its number is no answer."""
        value = parsed[0] if parsed else None
        try:
            return isinstance(value, sympy.Basic) and bool(value.is_number)
        except Exception:  # sympy's assumptions may raise on odd values (0/0)
            return False

    def exact(parsed: list):
        """The value of an exact rational number (no floats, no symbols), else None (math-verify judges it then)."""
        value = parsed[0] if parsed else None
        try:
            rational = isinstance(value, sympy.Basic) and value.is_number and value.is_rational
        except Exception:  # 0/0: is_rational raises once sympy's cache holds some facts (InconsistentAssumptions)
            return None
        return value.doit() if rational and not value.has(sympy.Float) else None

    golds: dict[str, list] = {}

    def gold_of(gold: str) -> list:
        if gold not in golds:
            # a word (Yes, Monday) as LaTeX text: plainly read it is nothing (an unreadable gold)
            golds[gold] = read(gold) or (read(f"\\text{{{gold.strip()}}}") if WORD_GOLD.fullmatch(gold) else [])
        return golds[gold]

    def check_gold(gold: str) -> tuple[float | None, str]:
        if colon_pair(gold) is not None:  # a time or a ratio: judged by its two numbers (judge)
            return 1.0, "ok"
        parsed = gold_of(gold)
        if not parsed:
            return None, "unparseable_gold"
        exact(parsed)  # what judge() computes of the gold
        verify(parsed, parse("0", parsing_timeout=None), timeout_seconds=None, raise_on_error=True)
        return 1.0, "ok"

    def judge(answer: str, gold: str, as_written: bool = False) -> tuple[float | None, str]:
        picked = choice(gold, answer)
        if picked is not None:
            return (1.0, "correct") if picked else (0.0, "wrong")
        paired = colon_pair(gold)
        if paired is not None:  # a time or a ratio asked: the answer's last one, both parts as written
            said = colon_pairs(answer)
            return (1.0, "correct") if said and said[-1] == paired else (0.0, "wrong")
        gold_parsed = gold_of(gold)
        if not gold_parsed:
            return None, "unparseable_gold"
        gold_value = exact(gold_parsed)
        # one number asked, a short answer (a decimal or a root as well as an integer: `2 or 2.5` scored right)
        short_to_one = one_number(gold_parsed) and len(answer.split()) <= _HEDGE_WORDS
        if short_to_one:
            answer = denial_dropped(answer)
            if not_exactly(plain(answer)):
                return 0.0, "wrong"
        answer_parsed = read(answer)
        said = word_said(answer)
        if not answer_parsed and gold_value is None and _WORDS.fullmatch(said):
            # a word asked (Yes, MATH's \text{Sunday}): a word answered is read as LaTeX text too (plainly, as
            # nothing: a right answer scored wrong)
            answer_parsed = read(f"\\text{{{said}}}")
        if not answer_parsed:
            return 0.0, "wrong"
        answer_value = exact(answer_parsed)
        # one number asked, alternatives given (in a short answer: prose after </think> names other numbers too)
        if short_to_one and hedged(plain(answer)):
            return 0.0, "wrong"
        if gold_value is not None and answer_value is not None:
            # Integers and fractions compare exactly: math-verify's numeric tolerance would pass a near miss on a
            # huge number (10^{100} for 10^{100}+1).
            correct = bool(gold_value == answer_value)
        else:
            correct = verify(gold_parsed, answer_parsed, timeout_seconds=None, raise_on_error=True)
        if not correct and not as_written and _PERCENT.search(answer + gold):
            # 12.5\\% for 12.5 (math-verify reads 50\\% as 50 but 12.5\\% only as 0.125): the number as written too
            return judge(_PERCENT.sub("", answer), _PERCENT.sub("", gold), as_written=True)
        return (1.0, "correct") if correct else (0.0, "wrong")

    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if "answer" in request:
                score, status = judge(request["answer"], request["gold"])
            else:
                score, status = check_gold(request["gold"])
        except Exception as error:  # a verifier bug must cost one item, not the worker
            score, status = None, f"error: {type(error).__name__}: {error}"[:300]
        out.write(json.dumps({"score": score, "status": status}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
