"""Reading completions: plain text out of TRL's completion forms, and the R1 tags out of the text.

Everything here is plain string scanning, or patterns that cannot backtrack or read a bounded window, so hostile
completions such as megabyte strings or thousands of tags cost linear time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)

Completion = str | Sequence[dict[str, Any]]

LETTERS = re.compile(r"[^\W\d_]+")  # runs of letters in any script
# A gold answer that is one word (Yes, Monday): compared as text. Longer text is no answer (a wrong column: "see the
# worked solution"); MATH writes its phrases as \text{no solution}.
WORD_GOLD = re.compile(r"\s*[A-Za-z]+\s*")

# Scripts that do not put spaces between words, where a text split on spaces is one long "word".
_UNSPACED = re.compile(
    "["
    "\u0e00-\u0eff"  # Thai, Lao
    "\u0f00-\u0fff"  # Tibetan
    "\u1000-\u109f\ua9e0-\ua9ff\uaa60-\uaa7f"  # Myanmar
    "\u1780-\u17ff\u19e0-\u19ff"  # Khmer
    "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f"  # Hiragana, Katakana, halfwidth Katakana
    "\u3100-\u312f\u31a0-\u31bf"  # Bopomofo
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"  # CJK ideographs
    "]"
)


def completion_text(completion: Completion) -> str:
    """The text of a completion given as a string or as TRL's list of chat messages.

    >>> completion_text([{"role": "assistant", "content": "<answer>4</answer>"}])
    '<answer>4</answer>'
    """
    if isinstance(completion, str):
        return completion
    return "".join(message.get("content") or "" for message in completion)


def think_opened_by(rendered_prompt: str) -> str:
    """The start of the reply a chat template writes itself: the `<think>` (and what follows it) that ends its
    generation prompt, as DeepSeek-R1-Distill's `<｜Assistant｜><think>\\n` does; else "".

    The model generates only what comes after it, so rewards, evaluation and traces put it back in front of the
    generated text (`reply_with`): the reply as the model gives it, which the strict format expects to open with it.

    >>> think_opened_by("<｜User｜>2+2?<｜Assistant｜><think>\\n"), think_opened_by("<|im_start|>assistant\\n")
    ('<think>\\n', '')
    """
    if not rendered_prompt.rstrip().endswith(THINK_OPEN):
        return ""
    return rendered_prompt[rendered_prompt.rfind(THINK_OPEN) :]


def reply_with(opening: str, completion: Completion) -> Completion:
    """`completion` (a string or TRL's assistant messages) with `opening` in front of its text.

    >>> reply_with("<think>\\n", "4</think><answer>4</answer>")
    '<think>\\n4</think><answer>4</answer>'
    >>> reply_with("<think>\\n", [{"role": "assistant", "content": "4</think>"}])
    [{'role': 'assistant', 'content': '<think>\\n4</think>'}]
    """
    if not opening:
        return completion
    if isinstance(completion, str):
        return opening + completion
    first, *rest = completion
    return [{**first, "content": opening + (first.get("content") or "")}, *rest]


# Characters per word, roughly, in the scripts written without spaces: a Chinese word is one or two characters, a
# Japanese one two or three, a Thai one about four code points (vowel and tone marks are code points of their own).
CHARACTERS_PER_WORD = 3


def written_without_spaces(text: str) -> bool:
    """Whether most letters of `text` are of a script written without spaces between words (Chinese, Japanese,
    Thai, Lao, Khmer, Myanmar, Tibetan).

    >>> written_without_spaces("小明有五个苹果。"), written_without_spaces("The answer is 五个苹果 (five apples).")
    (True, False)
    """
    letters = "".join(LETTERS.findall(text))
    return 2 * len(_UNSPACED.sub("", letters)) < len(letters)


def prompt_text(prompt: Completion) -> str:
    """The user's words of a prompt: the last user message of a conversation, or the string itself."""
    if isinstance(prompt, str):
        return prompt
    user_messages = [m.get("content") or "" for m in prompt if m.get("role") == "user"]
    return user_messages[-1] if user_messages else ""


def extract_answer(text: str) -> str | None:
    """Content of the last complete <answer>…</answer> block, or None.

    >>> extract_answer("<think>2+2</think><answer> 4 </answer>")
    '4'
    >>> extract_answer("no tags, answer 4") is None
    True
    """
    end = text.rfind(ANSWER_CLOSE)
    if end < 0:
        return None
    start = text.rfind(ANSWER_OPEN, 0, end)
    if start < 0:
        return None
    return text[start + len(ANSWER_OPEN) : end].strip()


# \boxed{…}, or \boxed 5 (one token: what follows the space may not be a delimiter or a mark that ends a token)
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{|\\boxed\s+(?=[^\s{$.,;])")
_BOX_TOKEN = re.compile(r"[^\s$.,;]+")


def last_boxed(text: str) -> str | None:
    r"""Content of the last \boxed{…} (braces balanced), or None.

    >>> last_boxed(r"so $\boxed{\frac{1}{2}}$ and \boxed{3}")
    '3'
    >>> last_boxed(r"Hence $\boxed 5$."), last_boxed(r"\boxed {7}"), last_boxed(r"\fbox{8}")  # MATH writes these too
    ('5', '7', '8')
    >>> last_boxed(r"\boxed ."), last_boxed(r"\boxed{3} then \boxed ,")  # no token: no box
    (None, '3')
    """
    found = list(_BOX.finditer(text))
    return _box_content(text, found[-1]) if found else None


def boxed_contents(text: str) -> list[str]:
    r"""The content of every \boxed{…} in order (one whose braces never close left out).

    >>> boxed_contents(r"\boxed{A} or \boxed{B}, \boxed{"), boxed_contents(r"\boxed{\boxed{1} + 2} \boxed 3")
    (['A', 'B'], ['\\boxed{1} + 2', '1', '3'])
    """
    closing, opened = {}, []  # each "{"'s matching "}", in one pass (one scan per box was quadratic in nested boxes)
    for position, char in enumerate(text):
        if char == "{":
            opened.append(position)
        elif char == "}" and opened:
            closing[opened.pop()] = position
    contents = []
    for box in _BOX.finditer(text):
        if not box.group().endswith("{"):  # \boxed 5: the one token after it
            contents.append(_BOX_TOKEN.match(text, box.end()).group())
        elif (end := closing.get(box.end() - 1)) is not None:
            contents.append(text[box.end() : end].strip())
    return contents


def _box_content(text: str, box: re.Match) -> str | None:
    if not box.group().endswith("{"):  # \boxed 5: the one token after it
        return _BOX_TOKEN.match(text, box.end()).group()
    depth, begin = 0, box.end()
    for position in range(begin - 1, len(text)):
        depth += {"{": 1, "}": -1}.get(text[position], 0)
        if depth == 0:
            return text[begin:position].strip()
    return None


def thinking_part(text: str) -> str:
    """The part of a completion that holds its steps: the text before its answer block, the first <answer> after
    its last </think> (an `<answer>` named in the thinking is a mention: cut there, the steps after it went
    unchecked; steps an R1-distill model writes after </think> count too); the whole text where it has none.

    >>> thinking_part("<think>Reply in <answer> tags. 3 + 4 = 7</think> So 7.<answer>7</answer>")
    '<think>Reply in <answer> tags. 3 + 4 = 7</think> So 7.'
    >>> thinking_part("3 + 4 = 7<answer>7</answer>"), thinking_part("<think>3 + 4 =")
    ('3 + 4 = 7', '<think>3 + 4 =')
    """
    thought = text.rfind(THINK_CLOSE)
    answer = text.find(ANSWER_OPEN, max(thought, 0))
    return text if answer < 0 else text[:answer]


def after_thinking(text: str) -> str:
    """What follows the last </think>: tags and numbers inside the thinking are mentions, not its answer; '' for a
    reply cut off while thinking; the whole text where it does not think in tags.

    >>> after_thinking("<think>Reply as <answer>X</answer>. 3 + 4 = 7</think><answer>7</answer>")
    '<answer>7</answer>'
    >>> after_thinking("<think>Reply as <answer>X</answer>. 3 + 4 ="), after_thinking("<answer>7</answer>")
    ('', '<answer>7</answer>')
    """
    thought = text.rfind(THINK_CLOSE)
    if thought >= 0:
        return text[thought + len(THINK_CLOSE) :]
    return "" if THINK_OPEN in text else text


def answer_part(text: str) -> str:
    """The part of a completion that holds its answer, for verification: the last complete <answer> block, or what
    follows an <answer> left open (the strict format scores the missing tag); where the reply has no <answer> but
    closed its thinking, what follows `</think>` (R1-distill models answer in prose there); nothing where it was cut
    off while thinking (a number met there is not its answer); the whole text where it uses no tags (a base model).

    >>> answer_part("<think>2+2</think><answer>4</answer>"), answer_part("<think>2+2</think> It is 4.")
    ('4', ' It is 4.')
    >>> answer_part("<think>3 * 4 = 12, then"), answer_part("<think>4</think><answer>5"), answer_part("It is 4.")
    ('', '5', 'It is 4.')
    >>> answer_part("<think>Put it in <answer> tags. 3 * 4 = 12, then")
    ''
    >>> answer_part("<think>Reply as <answer>X</answer>. 3 + 4 = 7</think> It is 7."), answer_part("<think><answer>7</answer>")
    (' It is 7.', '')
    """
    text = after_thinking(text)
    answer = extract_answer(text)
    if answer is not None:
        return answer
    opened = text.rfind(ANSWER_OPEN)
    return text[opened + len(ANSWER_OPEN) :] if opened >= 0 else text


def split_r1(text: str) -> tuple[str, str] | None:
    """(think, answer) of a completion in the strict R1 format, else None.

    Strict: exactly one <think>…</think> followed by exactly one <answer>…</answer>, nothing but whitespace
    around and between them, and neither block empty.

    >>> split_r1("<think>3*4=12</think>\\n<answer>12</answer>")
    ('3*4=12', '12')
    >>> split_r1("<think>a</think><answer>1</answer><answer>2</answer>") is None
    True
    """
    body = text.strip()
    if not (body.startswith(THINK_OPEN) and body.endswith(ANSWER_CLOSE)):
        return None
    if any(body.count(tag) != 1 for tag in TAGS):
        return None
    think_end = body.index(THINK_CLOSE)
    answer_start = body.index(ANSWER_OPEN)
    if answer_start < think_end or body[think_end + len(THINK_CLOSE) : answer_start].strip():
        return None
    think = body[len(THINK_OPEN) : think_end].strip()
    answer = body[answer_start + len(ANSWER_OPEN) : -len(ANSWER_CLOSE)].strip()
    if not think or not answer:
        return None
    return think, answer


# A number as written (1,000.5, 3/4), and how many characters beside one are read for its denial or bound: each
# pattern reads a bounded window beside one number, so a rollout's flood of digits or spaces is read in linear time.
NUMBER_RUN = re.compile(r"\d[\d.,/]*")
NUMBER_WINDOW = 40
# "8 apples, not 7", "12 (never 13)": a number denied after the answer (math-verify reads the last number)
_DENIED = re.compile(r"[,;]?[ \t]*\(?(?:and |but )?(?:not|never)[ \t]+\$?-?$", re.IGNORECASE)
# what may follow a denied number within the window: no other number or bracket ("8 dollars).", "8 - I misread it)")
_UNIT_AFTER = re.compile(r"[^\d()]*\)?[^\d()]*")


def denial_dropped(text: str) -> str:
    """`text` without a number it denies after its answer: `8 apples, not 7` is 8 (math-verify read 7).

    >>> denial_dropped("Ava has 8 apples, not 7."), denial_dropped("12 (never 13)"), denial_dropped("not 7")
    ('Ava has 8 apples', '12', 'not 7')
    >>> denial_dropped("$7$ (not $8$)"), denial_dropped("7, not 70%"), denial_dropped("7 dollars (not 8 dollars)")
    ('$7$', '7', '7 dollars')
    >>> denial_dropped("Ava has 8 apples, not 7 apples."), denial_dropped("$7 (not $8 as first computed)")
    ('Ava has 8 apples', '$7')
    """
    numbers = list(NUMBER_RUN.finditer(text))
    if len(numbers) < 2 or not _UNIT_AFTER.fullmatch(text[numbers[-1].end() :][:NUMBER_WINDOW]):
        return text  # one number, or more than its unit after the last one: no denial at the end
    denial = _DENIED.search(text[max(numbers[-2].end(), numbers[-1].start() - NUMBER_WINDOW) : numbers[-1].start()])
    if denial is None:
        return text
    return text[: numbers[-1].start() - len(denial.group())].rstrip(" \t,;")  # a number run takes its comma
