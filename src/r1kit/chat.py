"""`r1kit chat`: talk to a trained model, its thinking and its answer shown apart as the tokens stream in."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Callable
from threading import Event, Thread

import torch
from rich.console import Console
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer, set_seed

from r1kit.config.schema import R1kitConfig
from r1kit.hardware import setup_hardware
from r1kit.models import (
    ModelError,
    check_model,
    context_limit,
    eos_token_ids,
    load_model,
    load_tokenizer,
    own_generation_settings_aside,
    plain_generation_config,
)
from r1kit.prompts import chat_prompt
from r1kit.rewards.text import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    THINK_CLOSE,
    THINK_OPEN,
    after_thinking,
    extract_answer,
    think_opened_by,
)
from r1kit.stages.common import loadable_model, quiet_libraries

_STYLES = {"text": "", "think": "dim italic", "answer": "bold green"}
_SWITCHES = {THINK_OPEN: "think", THINK_CLOSE: "text", ANSWER_OPEN: "answer", ANSWER_CLOSE: "text"}
_HEADINGS = {"think": "\n── thinking ──\n", "answer": "\n── answer ──\n"}


_QUIT = "/exit or Ctrl-D"
_BLOCK = '"""'  # a line that opens (and one that closes) a question of several lines
_A_COMMAND = re.compile(r"/[A-Za-z]+")
_COMMANDS = {
    "/help": f"/clear forgets the conversation so far (chat.history keeps it; false asks each question alone); a "
    f"question of several lines goes between two {_BLOCK} lines; {_QUIT} quits",
    "/clear": "(the conversation so far is forgotten)",
}


class _StopWhenSet(StoppingCriteria):
    """Ends a generation running in its thread once `event` is set."""

    def __init__(self, event: Event):
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        return torch.full((input_ids.size(0),), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class StreamRenderer:
    """Prints streamed text, switching style at the R1 tags, even when a tag arrives split over two chunks."""

    def __init__(self, console: Console, thinking: bool = False):
        """`thinking`: the prompt itself opened <think> (R1-distill and Qwen3 templates), so the reply starts inside it."""
        self.console = console
        self.mode = "text"
        self.pending = ""
        self.text = ""
        if thinking:
            self.feed(THINK_OPEN)

    def feed(self, chunk: str) -> None:
        self.text += chunk
        self.pending += chunk
        while True:
            # inside the thinking only its end switches: an <answer> the model mentions while thinking is thinking
            switches = [THINK_CLOSE] if self.mode == "think" else _SWITCHES
            found = [(self.pending.find(tag), tag) for tag in switches if tag in self.pending]
            if not found:
                break
            position, tag = min(found)
            self._emit(self.pending[:position])
            self.mode = _SWITCHES[tag]
            if self.mode in _HEADINGS:
                self.console.print(_HEADINGS[self.mode], end="", style="bold", markup=False, highlight=False)
            self.pending = self.pending[position + len(tag) :]
        # keep back a tail that could be the start of a tag (at most one character short of the longest tag)
        longest = min(len(self.pending), max(map(len, _SWITCHES)) - 1)
        keep = max(
            (k for k in range(1, longest + 1) if any(t.startswith(self.pending[-k:]) for t in _SWITCHES)), default=0
        )
        self._emit(self.pending[: len(self.pending) - keep])
        self.pending = self.pending[len(self.pending) - keep :]

    def close(self) -> None:
        self._emit(self.pending)
        self.pending = ""
        self.console.print()

    def _emit(self, text: str) -> None:
        if text:
            # the model's words as written: rich's default read the :b: of a ratio a:b:c as an emoji
            self.console.print(text, end="", style=_STYLES[self.mode], markup=False, highlight=False, emoji=False)


def without_thinking(text: str) -> str:
    """A reply as an earlier turn of the conversation: its <think> block left out, as DeepSeek-R1's multi-turn use
    feeds back only the final answer (the reasoning would crowd the context and is not what was said).

    >>> without_thinking("<think>\\n2 + 3 = 5\\n</think>\\n<answer>5</answer>"), without_thinking("<think>2 + 3")
    ('<answer>5</answer>', '')
    >>> without_thinking("2 + 3 = 5\\n</think>\\nIt is 5.")  # a template that opens <think> itself
    'It is 5.'
    >>> without_thinking("<think>a</think>It is <think>b</think>5.")
    'It is 5.'
    """
    close = text.find(THINK_CLOSE)
    if close >= 0 and THINK_OPEN not in text[:close]:  # the chat template opened the first block (R1-distill models)
        text = text[close + len(THINK_CLOSE) :]
    said = []
    while (start := text.find(THINK_OPEN)) >= 0:  # every block, not the first alone
        said.append(text[:start])
        end = text.find(THINK_CLOSE, start)
        text = "" if end < 0 else text[end + len(THINK_CLOSE) :]  # cut off while thinking: nothing more was said
    return ("".join(said) + text).strip()


def readable(text: str) -> str:
    r"""`text` with the bytes that were not UTF-8 (Python reads them as lone surrogates, which the tokenizer refuses:
    one such byte ended the session as "a bug in r1kit") as replacement characters.

    >>> readable(b"caf\xe9?".decode("utf-8", "surrogateescape"))  # a Latin-1 byte, read as Python reads stdin
    'caf�?'
    """
    if not any("\ud800" <= c <= "\udfff" for c in text):
        return text
    try:  # the bytes stdin held, each undecodable one a replacement character
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate that no byte stands for: "?"
        return text.encode("utf-8", "replace").decode("utf-8")


def read_question(read_line: Callable[[bool], str]) -> str | None:
    r"""The next question from `read_line(inside_a_block)` (which raises EOFError at the end of the input), or None
    at its end. Empty lines are skipped: one ended the session, and a pasted problem with a blank line lost its later
    lines. The lines between two lines of three double quotes (`_BLOCK`) are one question: a pasted problem was asked
    line by line. The block ends at a line of those quotes alone, or at a line ending in them where they close none
    opened inside it and open no string: pasted code's docstrings cut the question there, and the block's own closing
    line opened another (the block on one line is one question).

    >>> typed = iter(["", _BLOCK + "Solve:", "", "x + y = 3", _BLOCK, "next"])
    >>> read_question(lambda inside: next(typed)), read_question(lambda inside: next(typed))
    ('Solve:\n\nx + y = 3', 'next')
    >>> docstring = "    " + _BLOCK + "One." + _BLOCK
    >>> typed = iter([_BLOCK, "def f():", docstring, "    return 1", _BLOCK, _BLOCK + "2 + 2?" + _BLOCK])
    >>> read_question(lambda inside: next(typed)) == "\n".join(["def f():", docstring, "    return 1"])
    True
    >>> read_question(lambda inside: next(typed))
    '2 + 2?'
    >>> typed = iter([_BLOCK + "Solve for x:", "  x + 2 = 5" + _BLOCK, "next"])
    >>> read_question(lambda inside: next(typed)), read_question(lambda inside: next(typed))
    ('Solve for x:\n  x + 2 = 5', 'next')
    >>> typed = iter([_BLOCK, "def add(a, b):", "    " + _BLOCK + "Add a", "    and b." + _BLOCK, _BLOCK, "next"])
    >>> read_question(lambda inside: next(typed)).count(_BLOCK), read_question(lambda inside: next(typed))
    (2, 'next')
    >>> typed = iter([_BLOCK, "def f(x):", "    " + _BLOCK, "    Square x.", "    " + _BLOCK, "q = " + _BLOCK, _BLOCK])
    >>> read_question(lambda inside: next(typed)).count(_BLOCK)  # indented quotes alone, a string opened: kept
    3
    >>> typed = iter([_BLOCK, "What does x = " + _BLOCK + "abc start?", _BLOCK, "next"])
    >>> read_question(lambda inside: next(typed)) == "What does x = " + _BLOCK + "abc start?"
    True
    >>> read_question(lambda inside: next(typed))
    'next'
    """
    while True:
        line = readable(read_line(False)).strip()
        if line.startswith(_BLOCK):
            break
        if line:
            return line
    if len(line) >= 2 * len(_BLOCK) and line.endswith(_BLOCK):  # the block on one line
        return line[len(_BLOCK) : -len(_BLOCK)].strip() or read_question(read_line)
    lines = [line[len(_BLOCK) :]]
    while True:
        try:
            line = readable(read_line(True)).rstrip()
        except EOFError:  # the input ended inside the block: what it holds is the question
            return "\n".join(lines).strip() or None
        if line == _BLOCK:  # the quotes alone at the line's start: the end, whatever the question's text holds
            return "\n".join(lines).strip() or read_question(read_line)
        lines.append(line)
        # the question's last line and `"""`: quotes that close none its text opened, and open no string (`x = """`);
        # indented quotes alone are a pasted docstring's
        before = line[: -len(_BLOCK)]
        opens = before.rstrip().endswith(("=", "(", ",", "[")) or not before.strip()
        if line.endswith(_BLOCK) and not opens and "\n".join(lines).count(_BLOCK) % 2:
            lines[-1] = before
            return "\n".join(lines).strip() or read_question(read_line)


def reply(
    model, tokenizer, question: str, config: R1kitConfig, console: Console, earlier: list[tuple[str, str]] | None = None
) -> str:
    """Generate an answer with the `chat` settings, streaming it to the console; returns the full text. `earlier`:
    the conversation's (question, reply) turns before it, kept by `main`; the oldest are dropped from it where the
    prompt and the reply would not fit the model's context."""
    settings = config.chat
    limit = context_limit(model)  # None: nothing is dropped
    if settings.raw:  # the text as it is: no chat template, no system prompt
        if not question:  # no token to go on from (generate failed on an empty tensor, "a bug in r1kit")
            raise ModelError("chat.raw: an empty prompt gives the model no text to continue")
        inputs = tokenizer(question, return_tensors="pt")
    else:
        kept = [] if earlier is None else list(earlier)
        # the reply's room, at most half the context: a chat.max_new_tokens as long as the context left no room for
        # any earlier turn (the reply is cut to the context left anyway, below)
        room = float("inf") if limit is None else limit - min(settings.max_new_tokens, limit // 2)
        while True:
            inputs = tokenizer.apply_chat_template(
                chat_prompt(question, config.prompt.system, kept),
                add_generation_prompt=True,
                return_tensors="pt",
                return_dict=True,
            )
            if not kept or inputs["input_ids"].size(1) <= room:
                break
            del kept[0]
    prompt_tokens = inputs["input_ids"].size(1)
    if limit is not None and prompt_tokens >= limit:  # the conversation is kept as it was for the next question
        raise ModelError(f"chat: the question takes {prompt_tokens} tokens, the model's whole context ({limit})")
    if earlier is not None and not settings.raw:
        if len(kept) < len(earlier):
            dropped = len(earlier) - len(kept)
            said = f"({dropped} earliest turn{'s' if dropped > 1 else ''} left out: the context is full)"
            console.print(said, style="dim", markup=False)
        earlier[:] = kept  # in place: the conversation goes on without the turns that no longer fit
    # a reply longer than the context left failed inside generate (an index error)
    max_new_tokens = settings.max_new_tokens if limit is None else min(settings.max_new_tokens, limit - prompt_tokens)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    # the chat settings alone (an instruct model's own repetition penalty or top-k would apply otherwise, and
    # transformers' default top-k 50 under sampling), as evaluation decodes
    generation_config = plain_generation_config(
        max_new_tokens,
        tokenizer.pad_token_id,
        eos_token_ids(model, tokenizer),
        temperature=settings.temperature if settings.temperature > 0 else None,
        top_p=settings.top_p,
        top_k=settings.top_k,
    )
    stop = Event()  # Ctrl-C stops the generation too (it went on to max_new_tokens before the process could end)
    failed: list[BaseException] = []
    written: list[int] = []  # the reply's tokens

    def generate() -> None:
        try:
            with own_generation_settings_aside(model):
                output = model.generate(
                    **inputs.to(model.device),
                    generation_config=generation_config,
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_StopWhenSet(stop)]),
                )
            written.append(output.size(1) - prompt_tokens)
        except BaseException as error:  # the stream would wait for its end forever: end it, raise it below
            failed.append(error)
            streamer.end()

    generation = Thread(target=generate, daemon=True)
    generation.start()
    prompt_end = tokenizer.decode(inputs["input_ids"][0, -8:])
    renderer = StreamRenderer(console, thinking=bool(think_opened_by(prompt_end)))
    try:
        for chunk in streamer:
            renderer.feed(chunk)
    finally:
        stop.set()
        generation.join()
    renderer.close()
    if failed:
        raise failed[0]
    answer = extract_answer(after_thinking(renderer.text))  # one mentioned while thinking is not the answer
    cut = written == [max_new_tokens]  # generation stopped at the limit, not at the end of the reply
    limit = (
        "it reached the end of the model's context"
        if max_new_tokens < settings.max_new_tokens
        else f"it reached chat.max_new_tokens ({max_new_tokens}): raise it for a longer reply"
    )
    if renderer.mode == "think":  # its thinking never closed: there is no answer to show
        why = limit if cut else "the model stopped there"
        console.print(f"(the reply ended inside its thinking: {why})", style="bold", markup=False)
    elif answer is not None:
        console.print(f"answer: {answer}", style="bold", markup=False, emoji=False)
    elif cut:  # inside its answer block, say: a block that never closed is no answer
        console.print(f"(the reply was cut: {limit})", style="bold", markup=False)
    elif "<answer>" in config.prompt.system and not settings.raw:  # only a reply asked for that format lacks it
        console.print("(no <answer> block)", style="bold", markup=False)
    return renderer.text


def main(config: R1kitConfig, prompt: str | None) -> list[tuple[str, str]]:
    """`r1kit chat`; `config` as `as_trained` gives it (a run's model is asked as it was trained). Returns the
    conversation it ended with: the (question, reply without thinking) turns it kept."""
    reference = loadable_model(config)
    check_model(config.model, reference, training=False)
    hardware = setup_hardware(config.model.device, config.model.precision, config.model.threads)
    quiet_libraries(config.monitoring.progress)  # no weight-loading bar before the conversation
    tokenizer = load_tokenizer(config.model, reference, templated=not config.chat.raw)  # raw: a base model's too
    model = load_model(config.model, reference, hardware, for_training=False).eval()
    set_seed(config.run.seed)  # chat.temperature > 0 samples: the same seed, the same replies
    console = Console(emoji=False)  # a question, a model's or file's name as written (:x: is no emoji)
    if isinstance(sys.stdin, io.TextIOWrapper):  # strict UTF-8 under most locales: one Latin-1 byte raised
        sys.stdin.reconfigure(errors="surrogateescape")  # read as Python reads it under the C locale; see readable()
    # which model and prompt answer: a run folder stands for its final stage's model, asked as that stage trained
    asked = (
        "raw text: no chat template, no system prompt" if config.chat.raw else f"system prompt: {config.prompt.system}"
    )
    console.print(f"model {reference} · {asked}", style="dim", markup=False)
    if prompt is not None:
        reply(model, tokenizer, readable(prompt), config, console)
        return []
    console.print(f"r1kit chat · {config.model.name} · {_QUIT} to quit · /help", style="bold", markup=False)
    earlier: list[tuple[str, str]] = []  # the conversation so far, when chat.history keeps it
    while True:
        try:
            question = read_question(
                lambda inside: console.input("[dim]...[/dim] " if inside else "[bold]you>[/bold] ")
            )
        except EOFError:
            break
        except KeyboardInterrupt:  # a half-typed question or block dropped, as Python's prompt does; not the session
            console.print(f"\n(cancelled; {_QUIT} quits)", style="dim", markup=False)
            continue
        if question is None or question in ("/exit", "/quit"):
            break
        if question in _COMMANDS:
            if question == "/clear":
                earlier.clear()
            console.print(_COMMANDS[question], style="dim", markup=False)
            continue
        if _A_COMMAND.fullmatch(question):  # a mistyped one (/exti) was asked of the model, and kept in the history
            console.print(f"(no command {question}: /help lists them)", style="dim", markup=False)
            continue
        before = list(earlier)  # the turns reply() may leave out to make room for this question's
        try:
            answered = reply(model, tokenizer, question, config, console, earlier)
        except ModelError as error:  # a question too long for the model: said, and the conversation goes on
            console.print(f"({error})", style="bold", markup=False)
            continue
        except KeyboardInterrupt:  # Ctrl-C stops the reply being written, not the conversation; the turn is not kept
            earlier[:] = before  # nor are the earlier turns left out to make room for it lost
            console.print("\n(stopped)", style="bold", markup=False)
            continue
        if config.chat.history and not config.chat.raw:
            earlier.append((question, without_thinking(answered)))
    return earlier
