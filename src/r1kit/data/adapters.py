"""Adapters from the formats of common reasoning datasets to r1kit's canonical row.

Canonical row:
- `question`: the user's problem (required);
- `solution`: the gold final answer that `accuracy` verifies (None for open-ended data);
- `reasoning`: a worked solution, the thinking a cold-start SFT imitates (None if the source has none);
- `response`: a reference reply for plain SFT on chat data (None for math data).

Each adapter takes one raw row and returns the canonical row, or raises `BadRow` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from r1kit.prompts import r1_completion
from r1kit.rewards.text import ANSWER_CLOSE, ANSWER_OPEN, THINK_OPEN, last_boxed, split_r1

CANONICAL_COLUMNS = ("question", "solution", "reasoning", "response")

Canonical = dict[str, str | None]


class BadRow(ValueError):
    """A raw row that lacks what its format needs. `field` names the culprit."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"field {field!r} {problem}")
        self.field, self.problem = field, problem


def required_text(row: Mapping[str, Any], field: str) -> str:
    value = row.get(field)
    if value is None:
        raise BadRow(field, "is missing")
    if not isinstance(value, str) or not value.strip():
        raise BadRow(field, f"must be non-empty text (got {value!r:.60})")
    return not_printed_messages(value, field).strip()


# a list of chat messages printed as text: `[{'role': 'user', …` (pandas' to_csv of a column of messages)
_PRINTED_MESSAGES = re.compile(r"\s*\[\s*\{\s*['\"](?:role|from|content|value)['\"]\s*:")
_CHAT_SPEAKER = re.compile(
    r"""['"]role['"]\s*:\s*['"](?:user|assistant|system|tool|developer)['"]"""
    r"""|['"]from['"]\s*:\s*['"](?:human|gpt|user|assistant|system)['"]""",
    re.IGNORECASE,
)
_TURN_WORDS_KEY = re.compile(r"""['"](?:content|value)['"]\s*:""")


def _messages(text: str) -> bool:
    """Whether `text`, opening as printed messages, is a list of chat turns: it ends the list, a turn's speaker is a
    chat role (`'role': 'user'`, ShareGPT's `'from': 'gpt'`) and its words a key. Not parsed: numpy prints a list
    the datasets library handed to pandas without commas between turns, a tool call as `array(…)`; and a JSON reply
    of flights `{"from": "JFK", "value": 420}` names no chat role.

    >>> _messages("[{'role': 'user', 'content': 'q', 'refusal': None}\\n {'role': 'assistant', 'content': 'a'}]")
    True
    >>> _messages('[{"from": "JFK", "to": "LAX", "value": 420}]'), _messages('[{"role": "admin", "value": 3}]')
    (False, False)
    >>> _messages('[{"role": "user", "content": "2+2?"}]\\nThen: messages += [{"role": "assistant", "content": r}]')
    False
    """
    said = text.strip()
    one_list = _closing_bracket(said) == len(said) - 1  # not a list quoted, prose, then another
    return one_list and said.endswith("}]") and bool(_CHAT_SPEAKER.search(said)) and bool(_TURN_WORDS_KEY.search(said))


def _closing_bracket(text: str) -> int | None:
    """Where the bracket opening `text` closes (quoted text skipped, as Python and JSON quote it), or None."""
    depth, quote, escaped = 0, "", False
    for place, char in enumerate(text):
        if quote:
            escaped, quote = (not escaped and char == "\\"), ("" if char == quote and not escaped else quote)
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
            if depth == 0:
                return place
    return None


def not_printed_messages(text: str, field: str) -> str:
    """`text`, unless it is a list of chat messages printed as text: a table's cell (pandas' to_csv of a column of
    messages) was trained on as the words of a question or reply, brackets and roles included.

    >>> not_printed_messages("[1, 2] is a list", "prompt")
    '[1, 2] is a list'
    >>> not_printed_messages('[{"from": "A", "to": "B", "km": 3}] How far?', "question")  # JSON in a question
    '[{"from": "A", "to": "B", "km": 3}] How far?'
    >>> not_printed_messages('[{"from": "JFK", "to": "LAX", "value": 420}]', "output")  # a JSON reply
    '[{"from": "JFK", "to": "LAX", "value": 420}]'
    >>> not_printed_messages("[{'role': 'user', 'content': 'Hi'}]", "prompt")
    Traceback (most recent call last):
    r1kit.data.adapters.BadRow: field 'prompt' holds chat messages printed as text ([{'role': 'user', 'content': 'Hi'}]…); save the rows as JSON lines (pandas: to_json(path, orient="records", lines=True)) to keep them messages
    """
    if _PRINTED_MESSAGES.match(text) and _messages(text):
        raise BadRow(
            field,
            f"holds chat messages printed as text ({text:.40}…); save the rows as JSON lines (pandas: "
            'to_json(path, orient="records", lines=True)) to keep them messages',
        )
    return text


def answer_text(value: Any) -> str | None:
    """A gold answer as text: numbers in JSON/CSV files become their text, a whole number read as a float (a column
    with one blank cell or one 2.5 is read as floats) without ".0"; None for a missing or empty answer.

    >>> answer_text(72), answer_text(72.0), answer_text(2.5), answer_text(" 1/2 "), answer_text(float("nan"))
    ('72', '72', '2.5', '1/2', None)
    >>> answer_text(0.00001), answer_text(-2.5e-7)
    ('0.00001', '-0.00000025')
    """
    if isinstance(value, float):
        if value != value:  # NaN: pandas' empty CSV cell
            return None
        # positional: "1e-05" is no answer the verifier reads as 0.00001
        return str(int(value)) if value.is_integer() else format(Decimal(repr(value)), "f")
    text = None if value is None else str(value).strip()
    return text or None


def gold_text(row: Mapping[str, Any], field: str) -> str | None:
    """`row[field]`, a gold answer (or worked solution), as text (`answer_text`): a one-item list as its item
    (`["3"]`), any other list or a mapping a BadRow (it became its Python text, `['3', '4']`, in the SFT targets, and
    the verifier could not read it).

    >>> gold_text({"answer": ["3"]}, "answer"), gold_text({"answer": 3}, "answer"), gold_text({}, "answer")
    ('3', '3', None)
    """
    value = row.get(field)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, list | dict):
        kind = "a list" if isinstance(value, list) else "a mapping"
        raise BadRow(field, f"is {kind} ({value!r:.60}); a gold answer is text or a number")
    return answer_text(value)


def r1kit_row(row: Mapping[str, Any]) -> Canonical:
    """{question, solution[, reasoning]}: r1kit's own format (the built-in tasks and plain Q/A files). With an
    `answer` beside them (MATH's and NuminaMath's way), that is the gold and the solution its worked reasoning: the
    whole solution taken as the gold, the verifier read its last number.

    >>> r1kit_row({"question": "q", "solution": "3 + 1 = 4 apples, 1 more.", "answer": 4})["solution"]
    '4'
    >>> r1kit_row({"question": "q", "solution": "4", "answer": "3 + 1 = 4 apples, 1 more."})["reasoning"]  # swapped
    '3 + 1 = 4 apples, 1 more.'

    Without one, a worked solution that ends in GSM8K's `#### 72` line or a \boxed{} answer is split as those
    formats' are: its answer the gold, the text the reasoning (the whole text as the gold left SFT nothing to learn).

    >>> r1kit_row({"question": "q", "solution": "48 + 24 = 72.\\n#### 72"}) | {"question": None}
    {'question': None, 'solution': '72', 'reasoning': '48 + 24 = 72.', 'response': None}
    >>> r1kit_row({"question": "q", "solution": "10^6\\n#### 1,000,000"})["solution"]
    '1000000'
    """
    worked_text, answer = gold_text(row, "solution"), gold_text(row, "answer")
    if answer is None and worked_text is not None:  # the answer inside it, whatever the lengths (10^6 #### 1,000,000)
        if split := gsm8k_split(worked_text):
            gold, steps = split
            return _canonical(row, gold, row.get("reasoning") or steps)
        boxed = last_boxed(worked_text) if worked(worked_text) else None
        if boxed is not None:
            return _canonical(row, boxed, row.get("reasoning") or worked_text)
    if answer is None:
        if worked_text is None:
            raise BadRow("solution", "is missing")
        return _canonical(row, worked_text, row.get("reasoning"))
    # `answer` is the gold, unless it is the longer and reads as the worked text and `solution` does not (the columns
    # the other way round): taking the shorter of the two lost a LaTeX answer longer than its brief solution
    longer = worked_text is not None and len(answer) > len(worked_text)
    if longer and _reads_worked(answer) and not _reads_worked(worked_text):
        answer, worked_text = worked_text, answer
    # GSM8K's worked text beside its answer: the steps without the calculator notes and the `####` line, as above
    split = gsm8k_split(worked_text) if worked_text is not None else None
    return _canonical(row, answer, row.get("reasoning") or (split[1] if split else worked_text))


_PROSE_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")  # a word, not a LaTeX command's name (\infty, \cup)


def _reads_worked(text: str) -> bool:
    """Whether `text` reads as a worked solution rather than a final answer: several lines, or a sentence's words.

    >>> _reads_worked("3 + 1 = 4 apples, 1 more."), _reads_worked("(-\\infty,-2)\\cup(3,\\infty)"), _reads_worked("Factor: x")
    (True, False, False)
    """
    return "\n" in text.strip() or len(_PROSE_WORD.findall(text)) >= 2


def _canonical(row: Mapping[str, Any], solution: str, reasoning: Any) -> Canonical:
    return {
        "question": required_text(row, "question"),
        "solution": solution,
        "reasoning": reasoning.strip() if isinstance(reasoning, str) and reasoning.strip() else None,
        "response": None,
    }


_CALCULATOR = re.compile(r"<<[^>]*>>")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")  # 1,234,567; not the decimal comma of 3,5
# a markdown heading after `####` (`#### Final Answer: \boxed{42}`), not GSM8K's answer line (`#### 72`, `#### 3/4`)
_HEADING = re.compile(r"[A-Za-z][A-Za-z ]*:|.*\\boxed\{")


def _heading_answer(final: str) -> str | None:
    """The answer a markdown heading's line gives: its boxed answer, else the words after its colon; None for none.

    >>> _heading_answer(" Final Answer: $\\\\boxed{5}$"), _heading_answer(" Answer: 1,072"), _heading_answer(" Answer:")
    ('5', '1072', None)
    """
    if boxed := last_boxed(final):
        return boxed
    _, colon, after = final.partition(":")
    return (colon and _THOUSANDS.sub("", after.strip())) or None


def gsm8k_row(row: Mapping[str, Any]) -> Canonical:
    """GSM8K: {question, answer} where the answer's steps end with a `#### 72` line (a markdown `#### Final Answer:
    \\boxed{72}` heading: the boxed answer).

    >>> gsm8k_row({"question": "q", "answer": "2 + 3 = <<2+3=5>>5\\n#### Final Answer: $\\\\boxed{5}$"})["solution"]
    '5'
    """
    answer = required_text(row, "answer")
    steps, marker, final = answer.rpartition("####")
    if not marker or not final.strip():
        raise BadRow("answer", "has no final '#### <answer>' line")
    heading = _HEADING.match(final.strip()) and _heading_answer(final)
    return {
        "question": required_text(row, "question"),
        "solution": heading or _THOUSANDS.sub("", final.strip()),
        "reasoning": _CALCULATOR.sub("", steps).strip() or None,  # drop calculator annotations <<48/2=24>>
        "response": None,
    }


def worked(solution: str) -> str | None:
    r"""A solution that works the problem out: one with words besides its \boxed{} answer, else None (a bare
    `$\boxed{5}$` is a final answer, and as a worked solution SFT would learn to think nothing).

    >>> worked("$\\boxed{5}$"), worked("2 + 3 = 5, so \\boxed{5}.")
    (None, '2 + 3 = 5, so \\boxed{5}.')
    """
    boxed = last_boxed(solution)
    rest = re.sub(r"\\boxed\s*\{", "", solution).replace(boxed, "", 1) if boxed else solution
    return solution if re.search(r"\w", rest) else None


_NO_ANSWER = ("proof", "notfound")  # NuminaMath-1.5's `answer` of a proof, or of a problem whose answer was not found


def numina_row(row: Mapping[str, Any]) -> Canonical:
    """NuminaMath (-TIR/-CoT): {problem, solution} with the final answer in \\boxed{}; an `answer` column
    (MATH-500, OpenR1-Math) is the final answer itself. A solution with neither is its own gold (math-verify can
    still find an unboxed final answer in it) and no worked solution: SFT would learn to paste it into <answer>.

    >>> numina_row({"problem": "2x = 6?", "solution": "Halve both sides: x = 3."})["reasoning"] is None
    True
    """
    given = gold_text(row, "answer")
    if given is not None and given.strip().lower() in _NO_ANSWER:
        raise BadRow("answer", f"is {given.strip()!r}, NuminaMath-1.5's mark of a problem without a final answer")
    if given and not gold_text(row, "solution"):  # the gold alone: enough for GRPO and evaluation, not for SFT
        return {"question": required_text(row, "problem"), "solution": given, "reasoning": None, "response": None}
    solution = required_text(row, "solution")
    gold = given or last_boxed(solution)
    return {
        "question": required_text(row, "problem"),
        "solution": gold or solution,
        "reasoning": worked(solution) if gold else None,
        "response": None,
    }


def _turns(row: Mapping[str, Any], field: str, shape: str) -> list[Mapping[str, Any]]:
    """The list of chat turns in `field`, each an object (a plain string is not a turn: whose words would it be?)."""
    turns = row.get(field)
    if not isinstance(turns, list) or not turns:
        raise BadRow(field, f"must be a non-empty list of {shape} turns")
    for position, turn in enumerate(turns):
        if not isinstance(turn, Mapping):
            raise BadRow(field, f"turn {position} must be a {shape} object (got {type(turn).__name__} {turn!r:.40})")
    return turns


def text_of_parts(parts: list[Any]) -> str:
    """The text parts of OpenAI-style content joined by newlines ('' when it has none).

    >>> text_of_parts([{"type": "text", "text": "What is"}, {"type": "image"}, {"type": "text", "text": "2 + 2?"}])
    'What is\\n2 + 2?'
    """
    texts = [part.get("text") for part in parts if isinstance(part, Mapping) and part.get("type") == "text"]
    return "\n".join(text.strip() for text in texts if isinstance(text, str) and text.strip())


def said_text(content: Any, field: str) -> str:
    """A chat turn's words: its text, or the text parts of OpenAI-style content ([{type: text, text: …}, …]) joined
    by newlines (`text_of_parts`); anything else (a number, an image part alone) is a bad row.

    >>> said_text([{"type": "text", "text": " 2 + 2? "}], "messages"), said_text("4", "messages")
    ('2 + 2?', '4')
    """
    if isinstance(content, list):
        content = text_of_parts(content)
    if not isinstance(content, str) or not content.strip():
        raise BadRow(field, f"has a turn whose content must be text or text parts (got {content!r:.40})")
    return content.strip()


_THOUGHT = re.compile(r"<\|begin_of_thought\|>(.*?)<\|end_of_thought\|>", re.DOTALL)
_SOLUTION = re.compile(r"<\|begin_of_solution\|>(.*?)(?:<\|end_of_solution\|>|$)", re.DOTALL)  # a cut one too
_THINK_BLOCK = re.compile(r"\s*<think>(.*?)</think>(.*)", re.DOTALL)  # an R1-style reply (OpenThoughts3)
_END_MARK = re.compile(r"(?:<\|[A-Za-z_]+\|>|</s>|<eos>)\Z")  # an end token left at a reply's end


def _without_end_marks(text: str) -> str:
    """`text` without the end tokens a chat template left at its end (`<|im_end|>`, `</s>`), stripped."""
    text = text.strip()
    while found := _END_MARK.search(text):
        text = text[: found.start()].rstrip()
    return text


def _sharegpt_turn(turn: Mapping[str, Any]) -> tuple[Any, Any]:
    """(speaker, words) of a ShareGPT turn: {from, value}, or {role, content} as Unsloth's standardize_sharegpt
    leaves the same column."""
    return turn.get("from", turn.get("role")), turn.get("value", turn.get("content"))


def sharegpt_row(row: Mapping[str, Any]) -> Canonical:
    """ShareGPT / Bespoke-Stratos: {system, conversations: [{from, value}, …]} ({role, content} turns too), the reply
    read as `_reply` reads one, a plain reply's boxed answer its gold. A reply with Bespoke's thought but no
    \\boxed{} answer (its code and puzzle rows) keeps the thought as its reference reply's <think> block.

    >>> thought = "<|begin_of_thought|>Try 1.<|end_of_thought|><|begin_of_solution|>def f(): return 1<|end_of_solution|>"
    >>> sharegpt_row({"conversations": [{"role": "user", "content": "f?"}, {"role": "assistant", "content": thought}]})
    {'question': 'f?', 'solution': None, 'reasoning': 'Try 1.', 'response': '<think>\\nTry 1.\\n</think>\\n<answer>def f(): return 1</answer>'}
    """
    turns = [_sharegpt_turn(turn) for turn in _turns(row, "conversations", "{from, value}")]
    user_index = next((i for i, (who, _) in enumerate(turns) if who in ("user", "human")), None)
    if user_index is None or not turns[user_index][1]:
        raise BadRow("conversations", "has no user turn")
    user = said_text(turns[user_index][1], "conversations")
    # the reply to the question: an assistant's greeting before it is not the answer
    reply = next((words for who, words in turns[user_index + 1 :] if who in ("assistant", "gpt")), None)
    if not reply:
        raise BadRow("conversations", "has no assistant turn after the first user turn")
    return _reply(user, said_text(reply, "conversations"), gold_of_plain_reply=True)


def r1_parts(text: str) -> tuple[str, str, str] | None:
    """(what comes before <think>, the reasoning, the answer) of a text holding a worked example in R1 format after
    it: from <think> to the last </answer>, the strict form the format reward asks for (`split_r1`), else None. What
    follows </answer> (an end-of-text token a notebook appended) is left out.

    >>> r1_parts("What is 2 + 3? <think>2 + 3 = 5</think>\\n<answer>5</answer>")
    ('What is 2 + 3?', '2 + 3 = 5', '5')
    >>> r1_parts("The answer is 5."), r1_parts("<think></think><answer>5</answer>")
    (None, None)
    >>> r1_parts("Q? <think>2 + 3 = 5</think> So: <answer>5</answer>") is None  # text between the blocks
    True
    >>> r1_parts("Q? <think>2 + 3 = 5</think><answer>5</answer><|endoftext|>")
    ('Q?', '2 + 3 = 5', '5')
    """
    think, end = text.find(THINK_OPEN), text.rfind(ANSWER_CLOSE)
    parts = split_r1(text[think : end + len(ANSWER_CLOSE)]) if 0 <= think < end else None
    return (text[:think].strip(), *parts) if parts else None


def _reply(question: str, reply: str, gold_of_plain_reply: bool = False) -> Canonical:
    """A chat row's canonical form. A reply in R1 format is a worked solution with its gold answer (which the
    accuracy reward and evaluation verify). A reply whose thinking is marked otherwise (Bespoke-Stratos'
    <|begin_of_thought|>, an R1-distill <think> block followed by prose) is a worked solution where its final part
    boxes an answer (the gold; never one boxed in the thinking), else a reference reply with its thinking in a
    <think> block, so SFT does not learn to answer those without thinking. Any other reply is a reference reply
    (`gold_of_plain_reply`: with the answer it boxes as its gold, as ShareGPT math data gives it)."""
    worked = split_r1(reply)  # the whole reply is the worked example, in the form the format reward asks for
    if worked:
        return {"question": question, "solution": worked[1], "reasoning": worked[0], "response": reply}
    thought, solution, think = _THOUGHT.search(reply), _SOLUTION.search(reply), _THINK_BLOCK.match(reply)
    reasoning = thought.group(1).strip() if thought else None
    after_thinking = _without_end_marks(think.group(2)) if think else ""  # an end token alone is no answer
    # Bespoke-Stratos' form: its thought marker, or its solution marker first, after a <think> block at most (a
    # reply only naming the marker is a plain one)
    if solution and (thought or (after_thinking if think else reply).lstrip().startswith("<|begin_of_solution|>")):
        final = solution.group(1).strip()
        if think and not thought:
            reasoning = think.group(1).strip() or None
    elif think and ANSWER_OPEN not in think.group(2) and after_thinking:
        reasoning, final = think.group(1).strip() or None, after_thinking
    else:  # a plain reply (with an <answer> block after its thinking, R1's form broken, or nothing: one too)
        after = think.group(2) if think else reply  # a guess boxed in the thinking is no gold
        gold = last_boxed(after) if gold_of_plain_reply else None
        return {"question": question, "solution": gold, "reasoning": None, "response": reply}
    gold = last_boxed(final)
    return {
        "question": question,
        "solution": gold,
        "reasoning": reasoning,
        "response": r1_completion(reasoning, final) if reasoning and not gold else final,
    }


def messages_row(row: Mapping[str, Any]) -> Canonical:
    """Chat messages (smoltalk …): {messages: [{role, content}, …]}; the first user turn and the reply to it."""
    messages = _turns(row, "messages", "{role, content}")
    user_index = next((i for i, m in enumerate(messages) if m.get("role") == "user"), None)
    if user_index is None or not messages[user_index].get("content"):
        raise BadRow("messages", "has no user message")
    reply = next((m.get("content") for m in messages[user_index + 1 :] if m.get("role") == "assistant"), None)
    if not reply:
        raise BadRow("messages", "has no assistant reply after the first user message")
    return _reply(said_text(messages[user_index]["content"], "messages"), said_text(reply, "messages"))


def dolly_row(row: Mapping[str, Any]) -> Canonical:
    """Dolly: {instruction, context, response}; a non-empty context is appended to the instruction."""
    context = row.get("context")
    question = required_text(row, "instruction")
    if isinstance(context, str) and context.strip():
        question = f"{question}\n\n{context.strip()}"
    return _reply(question, required_text(row, "response"))  # a reply with its thinking: as chat rows


def alpaca_row(row: Mapping[str, Any]) -> Canonical:
    """Alpaca: {instruction, input, output}; a non-empty input is appended to the instruction, and a file of
    {input, output} alone is read the same way."""
    parts = [row.get(field) for field in ("instruction", "input")]
    question = "\n\n".join(part.strip() for part in parts if isinstance(part, str) and part.strip())
    if not question:
        raise BadRow("instruction", "and input are both missing or empty")
    return _reply(question, required_text(row, "output"))  # R1-distilled data in Alpaca's columns: as chat rows


def _said(row: Mapping[str, Any], field: str, role: str) -> str:
    """A prompt-completion field's text: plain text, or the `role` turn of its {role, content} messages (the last
    user turn of a prompt, the first assistant turn of a completion)."""
    value = row.get(field)
    if isinstance(value, list):
        said = [turn.get("content") for turn in _turns(row, field, "{role, content}") if turn.get("role") == role]
        said = said[-1:] if role == "user" else said[:1]
        if not said or not said[0]:
            raise BadRow(field, f"has no {role} message with text")
        return said_text(said[0], field)
    return required_text(row, field)


def prompt_completion_row(row: Mapping[str, Any]) -> Canonical:
    """TRL's prompt-completion rows: {prompt, completion}, each text or {role, content} messages."""
    return _reply(_said(row, "prompt", "user"), _said(row, "completion", "assistant"))


def gsm8k_split(worked_text: str) -> tuple[str, str] | None:
    """GSM8K's worked answer as (gold, steps): the answer after its last `####` line (thousands commas dropped) and
    the steps before it without their calculator notes (`<<48/2=24>>`); None for text without one.

    >>> gsm8k_split("48/2 = <<48/2=24>>24 clips.\\n#### 1,024"), gsm8k_split("So \\\\boxed{5}.")
    (('1024', '48/2 = 24 clips.'), None)
    """
    steps, marker, final = worked_text.rpartition("####")
    if not (marker and final.strip() and "\n" not in final.strip() and steps.strip()):
        return None
    if _HEADING.match(final.strip()):  # a markdown `#### Final Answer: \boxed{5}` heading: the answer it gives
        answer = _heading_answer(final)
        return (answer, _CALCULATOR.sub("", steps).strip()) if answer else None
    return _THOUSANDS.sub("", final.strip()), _CALCULATOR.sub("", steps).strip()


def prompt_solution_row(row: Mapping[str, Any]) -> Canonical:
    """TRL's prompt-only rows with a gold answer, as open-r1 and the R1 tutorial's `make_conversation` make them:
    {prompt, solution}, the prompt text or {role, content} messages (its last user turn is the question), the
    solution a final answer, or a worked one whose \\boxed{} answer is the gold.

    >>> prompt_solution_row({"prompt": [{"role": "user", "content": "2 + 3?"}], "solution": "So \\\\boxed{5}."})
    {'question': '2 + 3?', 'solution': '5', 'reasoning': 'So \\\\boxed{5}.', 'response': None}
    >>> prompt_solution_row({"prompt": "2 + 3?", "solution": "2 + 3 = <<2+3=5>>5.\\n#### 5"})["reasoning"]
    '2 + 3 = 5.'
    >>> prompt_solution_row({"prompt": "2 + 3?", "solution": "2 + 3 = 5.\\n#### Final answer: \\\\boxed{5}"})["solution"]
    '5'
    >>> prompt_solution_row({"prompt": "Half of 3/2?", "solution": "3/2 / 2 = 3/4.\\n#### 3/4"})["solution"]
    '3/4'
    """
    solution = gold_text(row, "solution")
    if solution is None:
        raise BadRow("solution", "is missing")
    if split := gsm8k_split(solution):  # GSM8K's worked answer in this shape: its `#### 72` line
        gold, steps = split
        return {"question": _said(row, "prompt", "user"), "solution": gold, "reasoning": steps, "response": None}
    boxed = last_boxed(solution)
    return {
        "question": _said(row, "prompt", "user"),
        "solution": boxed or solution,
        "reasoning": worked(solution) if boxed else None,
        "response": None,
    }


# One exchange written out as text: "User: …\n\nAssistant: …" (the RLHF notebook's formatted_text), "Human: …"
# (Anthropic-HH), "### Human: … ### Assistant: …" (Guanaco), after an optional "System: …" line. A turn's marker
# starts the text, a line or a "###" section, so "Assistant:" inside a sentence is text; the reply runs to the next
# user turn, whose exchange is left out (counted by left_out_turns).
_TURN = r"(?:^|\n|###)\s*(?:###\s*)?"
# A question or reply ends at a character that is not white space (`(?<!\s)`): tried at every position inside a run
# of white space, the turn after it cost time square in the run's length (30,000 spaces took 12 s a row).
_DIALOGUE = re.compile(
    rf"\A\s*(?:(?:###\s*)?System\s*:[^\n]*)?{_TURN}(?:User|Human)\s*:\s*(?P<question>\S.*?)(?<!\s)\s*{_TURN}"
    rf"Assistant\s*:\s*(?P<reply>\S.*?)(?<!\s)\s*(?={_TURN}(?:User|Human)\s*:|\Z)",
    re.DOTALL | re.IGNORECASE,
)


# A run of more than two blank lines, as two: matched around it, the dialogue's lazy turns cost cubic time in its
# length (800 whitespace lines took 12 s a row, with no time limit on loading). Shorter runs (two blank lines between
# two functions) and the line ends (CRLF) are kept as written.
# (started where no space or tab is before it: inside a long run of them, each start scanned the rest of it)
_BLANK_LINES = re.compile(r"(?<![ \t])(?:[ \t]*\r?\n){4,}")


def _few_blank_lines(text: str) -> str:
    return _BLANK_LINES.sub(lambda run: "".join(re.findall(r"\r?\n", run.group())[:3]), text)


def _dialogue(text: str) -> re.Match | None:
    return _DIALOGUE.match(_few_blank_lines(text))


# A chat template's turns written into the text (`apply_chat_template` in a notebook): the last user turn of ChatML,
# Llama 3, Zephyr / Phi-3 / GLM
_TEMPLATE_USER = (
    re.compile(r"<\|im_start\|>user\s*(.*?)<\|im_end\|>", re.S),
    re.compile(r"<\|start_header_id\|>user<\|end_header_id\|>\s*(.*?)<\|eot_id\|>", re.S),
    re.compile(r"<\|user\|>\s*(.*?)(?:</s>|<\|end\|>|<\|assistant\|>)", re.S),
)
_SECTION = re.compile(r"^###\s*([A-Za-z][A-Za-z ]*?)\s*:", re.M)  # Alpaca's `### Instruction:`, `### Question:`


def templated_question(prompt: str) -> str:
    """The question of a text's prompt part: where a chat template's markup is written into it, its last user turn
    (the template, its system prompt and its tokens were taken for the question, and SFT asked that whole text under
    r1kit's own prompt); in `### Section:` form, the sections before `### Response:` (an Alpaca instruction and its
    input, a question and its context), without their headers; else the text as written.

    >>> templated_question("What is 6 + 3?")
    'What is 6 + 3?'
    >>> templated_question("<|im_start|>system\\nBe brief.<|im_end|>\\n<|im_start|>user\\nWhat is 6 + 3?<|im_end|>")
    'What is 6 + 3?'
    >>> templated_question("### Instruction:\\nAdd them.\\n\\n### Input:\\n6 and 3\\n\\n### Response:")
    'Add them.\\n\\n6 and 3'
    >>> templated_question("### Instruction:\\nBe a math expert.\\n\\n### Question:\\nWhat is 6 + 3?\\n\\n### Response:")
    'Be a math expert.\\n\\nWhat is 6 + 3?'
    """
    for pattern in _TEMPLATE_USER:
        if (turns := pattern.findall(prompt)) and turns[-1].strip():
            return turns[-1].strip()
    parts = _SECTION.split(prompt)  # [before, name, body, name, body, …]
    names, bodies = [name.strip().lower() for name in parts[1::2]], [body.strip() for body in parts[2::2]]
    if len(names) >= 2 and names[-1] == "response" and not bodies[-1]:  # every section before it, markup left out
        return "\n\n".join(body for body in [parts[0].strip(), *bodies[:-1]] if body) or prompt
    return prompt


def text_row(row: Mapping[str, Any]) -> Canonical:
    """{text}: a whole example in one string (TRL's `dataset_text_field`, the notebooks' `text` and `formatted_text`):
    a question, then <think>reasoning</think><answer>answer</answer>; or a "User: …" (or "Human: …") turn, then
    "Assistant: …", its reply.

    >>> text_row({"text": "What is 2 + 3?\\n<think>2 + 3 = 5</think><answer>5</answer>"})["solution"]
    '5'
    >>> text_row({"text": "User: Name a colour.\\n\\nAssistant: Blue."})["response"]
    'Blue.'
    """
    text = required_text(row, "text")
    parts, dialogue = r1_parts(text), _dialogue(text)
    if parts is not None and parts[0] and dialogue is None:
        question, reasoning, answer = parts
        return {"question": templated_question(question), "solution": answer, "reasoning": reasoning, "response": None}
    if dialogue is None:
        raise BadRow(
            "text",
            "must hold a question, then <think>reasoning</think><answer>answer</answer>, or a 'User: …' turn, then "
            "'Assistant: …': r1kit trains a model to answer prompts, not on free text",
        )
    return _reply(dialogue["question"], dialogue["reply"])


_CHAT_FIELDS = {"sharegpt": "conversations", "messages": "messages"}


def left_out_turns(row: Mapping[str, Any], fmt: str) -> bool:
    """Whether a chat row holds more than its canonical row keeps: its own system message, or turns after the first
    exchange (a canonical row is one question and one reply).

    >>> turn = lambda role: {"role": role, "content": "…"}
    >>> left_out_turns({"messages": [turn("user"), turn("assistant")]}, "messages")
    False
    >>> left_out_turns({"messages": [turn("system"), turn("user"), turn("assistant")]}, "messages")
    True
    >>> left_out_turns({"messages": [turn("user"), turn("assistant"), turn("user"), turn("assistant")]}, "messages")
    True
    >>> left_out_turns({"problem": "…", "solution": "…", "prompt": [turn("system"), turn("user")]}, "numina")
    True
    """
    if fmt == "numina":  # the R1 tutorial's processed rows: the problem, and a `prompt` with its system message
        prompt = row.get("prompt")
        roles = [turn.get("role") for turn in prompt if isinstance(turn, Mapping)] if isinstance(prompt, list) else []
        return "system" in roles
    if fmt in ("prompt_completion", "prompt_solution"):  # a conversational prompt: its last user turn is kept
        prompt = row.get("prompt")
        speakers = (
            [turn.get("role") for turn in prompt if isinstance(turn, Mapping)] if isinstance(prompt, list) else []
        )
        return "system" in speakers or speakers.count("user") > 1
    if fmt == "text":  # an exchange written out: a turn after its reply, or a system line before it
        text = _few_blank_lines(str(row.get("text") or ""))
        dialogue = _DIALOGUE.match(text)
        return dialogue is not None and (
            dialogue.end() < len(text.rstrip()) or bool(re.match(r"\s*(?:###\s*)?System\s*:", text, re.IGNORECASE))
        )
    if fmt not in _CHAT_FIELDS:
        return False
    turns = row.get(_CHAT_FIELDS[fmt]) or []
    speakers = [_sharegpt_turn(turn)[0] for turn in turns if isinstance(turn, Mapping)]
    own_system = isinstance(row.get("system"), str) and bool(row["system"].strip())  # ShareGPT's top-level field
    return own_system or "system" in speakers or len([who for who in speakers if who != "system"]) > 2


def with_gold_column(canonical: Canonical, row: Mapping[str, Any]) -> Canonical:
    """A row's gold answer from its own `solution` or `answer` column where its format's fields give none: a chat
    file that keeps the turns for SFT and a gold answer for RL (its gold column was dropped, and GRPO refused the
    file as having no answers).

    >>> turns = [{"role": "user", "content": "6 + 2?"}, {"role": "assistant", "content": "It is 8."}]
    >>> with_gold_column(messages_row({"messages": turns}), {"messages": turns, "answer": 8})["solution"]
    '8'
    """
    if canonical["solution"] is not None:
        return canonical
    for field in ("solution", "answer"):
        try:
            gold = gold_text(row, field)
        except BadRow:  # not one answer (TriviaQA's {value, aliases}): the row stands as its format reads it
            continue
        if gold:
            return canonical | {"solution": gold}
    return canonical


ADAPTERS: dict[str, Callable[[Mapping[str, Any]], Canonical]] = {
    "r1kit": r1kit_row,
    "gsm8k": gsm8k_row,
    "numina": numina_row,
    "sharegpt": sharegpt_row,
    "messages": messages_row,
    "dolly": dolly_row,
    "alpaca": alpaca_row,
    "prompt_completion": prompt_completion_row,
    "prompt_solution": prompt_solution_row,
    "text": text_row,
}


def detect_format(columns: list[str], first_rows: Sequence[Mapping[str, Any]]) -> str:
    """The format whose signature columns are present (GSM8K's: its `####` line in one of the first rows: one bad
    row first is a bad row, not another format).

    >>> detect_format(["question", "answer"], [{"answer": "no marker"}, {"answer": "3 + 4 = 7\\n#### 7"}])
    'gsm8k'
    >>> detect_format(["question", "answer"], [{"answer": "7"}]), detect_format(["problem", "answer"], [])
    ('r1kit', 'numina')
    >>> detect_format(["prompt", "chosen", "rejected"], [])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: its columns ['chosen', 'prompt', 'rejected'] are preference pairs, not problems: ...
    """
    present = set(columns)
    if {"problem", "solution"} <= present:
        return "numina"
    if "conversations" in present:
        return "sharegpt"
    if "messages" in present:
        return "messages"
    if {"instruction", "response"} <= present:
        return "dolly"
    if "output" in present and present & {"instruction", "input"}:
        return "alpaca"
    if {"prompt", "completion"} <= present:
        return "prompt_completion"
    if {"question", "answer"} <= present and any("####" in str(row.get("answer", "")) for row in first_rows):
        return "gsm8k"
    if {"question", "solution"} <= present:
        return "r1kit"
    if {"prompt", "solution"} <= present:  # after r1kit's: its rows made conversational keep their question
        return "prompt_solution"
    # a final answer without worked steps (AIME's, a quiz's): read as r1kit's and NuminaMath's formats read it, the
    # answer column the gold (it was refused as a format not told, which either format reads)
    if {"question", "answer"} <= present:
        return "r1kit"
    if {"problem", "answer"} <= present:
        return "numina"
    if "text" in present:
        return "text"
    if {"chosen", "rejected"} <= present:
        raise ValueError(
            f"its columns {sorted(present)} are preference pairs, not problems: the preference stages (reward_model, "
            "dpo) read pairs from preferences.dataset (--preferences.dataset FILE); dataset.name holds the problems"
        )
    raise ValueError(
        f"cannot tell the dataset format from its columns {sorted(present)}; set dataset.format to one of "
        f"{', '.join(ADAPTERS)} (r1kit: question + solution or answer, gsm8k: question + answer with '####', numina: "
        "problem + solution or answer, sharegpt: conversations, messages: messages, dolly: instruction + response, alpaca: instruction + "
        "input + output, prompt_completion: prompt + completion, prompt_solution: prompt + solution, text: a question then <think>…</think>"
        "<answer>…</answer>, or 'User: …' then 'Assistant: …', in one string), or rename columns "
        "to them with dataset.columns (e.g. {problem: question, answer: solution})"
    )
