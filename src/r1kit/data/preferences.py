"""Preference pairs for the reward model and DPO: adapters from pairwise formats to r1kit's canonical pair, a loader
for files and hub datasets, and the pieces of built-in pairs that need no model (general prompts, degraded answers;
`r1kit.stages.pairs` samples the model).

Canonical pair:
- `prompt`: the conversation the replies answer, a list of chat messages ending with the user's turn;
- `chosen`: the preferred reply (text);
- `rejected`: the other reply (text).

Each adapter takes one raw row and returns the canonical pair, or raises `BadRow` naming the field. Formats:
- `pairs`: prompt, chosen, rejected, each as text or as chat messages (TRL's standard and conversational preference
  formats; without a prompt column, chosen and rejected are whole conversations sharing their beginning);
- `hh`: Anthropic-HH, chosen and rejected are whole dialogues "\\n\\nHuman: … \\n\\nAssistant: …" that differ only
  in the final reply;
- `ultrafeedback`: UltraFeedback-binarized, a prompt text and chosen / rejected conversations [user, assistant].

Built-in pairs (no download, `r1kit.stages.pairs`): a model's samples on the training problems, its verified-correct
ones against its wrong or malformed ones; and its answers to general prompts against degraded copies (cut short,
sentences shuffled, or a sentence looped: `degrade`).
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r1kit.data.adapters import BadRow, answer_text, not_printed_messages, required_text
from r1kit.data.loading import (
    DETECTED_FROM,
    DatasetError,
    Raw,
    counted,
    held_out_file,
    load_raw,
    renamed,
    split_is_file,
)

if TYPE_CHECKING:
    from datasets import Dataset

    from r1kit.config.schema import PreferencesConfig

logger = logging.getLogger("r1kit")

Message = dict[str, str]
Pair = dict[str, Any]

PAIR_FORMATS = ("pairs", "hh", "ultrafeedback")
_ROLES = ("system", "user", "assistant", "tool")


# ------------------------------------------------------------------------------------------------------ adapters


def _messages(value: Any, field: str) -> list[Message]:
    """A list of {role, content} chat messages, checked."""
    if value is None:
        raise BadRow(field, "is missing")
    if not isinstance(value, list) or not value:
        raise BadRow(field, "must be text or a non-empty list of {role, content} messages")
    messages = []
    for position, message in enumerate(value):
        if not isinstance(message, Mapping):
            raise BadRow(field, f"message {position} must be a {{role, content}} object (got {message!r:.40})")
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES:
            raise BadRow(field, f"message {position} has no valid role (got {role!r:.30}; valid: {', '.join(_ROLES)})")
        if not isinstance(content, str):
            raise BadRow(field, f"message {position} must have text content (got {content!r:.40})")
        messages.append({"role": role, "content": content})
    return messages


_HH_PROMPT = re.compile(r"\A\s*Human\s*:")


def _prompt(row: Mapping[str, Any], field: str = "prompt") -> list[Message]:
    """The prompt as chat messages: a text becomes one user message, an Anthropic-HH dialogue up to the reply's
    `Assistant:` (Dahoas/rm-static, full-hh-rlhf) its turns; messages must end with the user's turn.

    >>> _prompt({"prompt": "\\n\\nHuman: Hi\\n\\nAssistant: Hello.\\n\\nHuman: 2 + 2?\\n\\nAssistant:"})[1:]
    [{'role': 'assistant', 'content': 'Hello.'}, {'role': 'user', 'content': '2 + 2?'}]
    """
    value = row.get(field)
    if isinstance(value, str) and _HH_PROMPT.match(value):
        turns = hh_dialogue(value, field)
        if turns[-1]["role"] == "assistant" and not turns[-1]["content"]:
            turns = turns[:-1]  # the reply's own `Assistant:`, left empty
        if turns[-1]["role"] != "user":
            raise BadRow(field, "is a Human/Assistant dialogue that must end with a Human turn (the one replied to)")
        return turns
    if isinstance(value, str) or value is None:
        return [{"role": "user", "content": required_text(row, field)}]
    messages = _messages(value, field)
    if messages[-1]["role"] != "user":
        raise BadRow(field, "must end with a user message (the turn the replies answer)")
    return messages


def _reply(row: Mapping[str, Any], field: str) -> str:
    """A reply as text: the text itself, or the final assistant message of a message list."""
    value = row.get(field)
    if value is None:
        raise BadRow(field, "is missing")
    if isinstance(value, str | int | float) and not isinstance(value, bool):  # a reply "0": a number in the file
        text = not_printed_messages(value, field) if isinstance(value, str) else answer_text(value)
        if text is None:  # NaN: a blank cell of a table
            raise BadRow(field, "is missing")
    else:
        messages = _messages(value, field)
        if messages[-1]["role"] != "assistant":
            raise BadRow(field, "must end with an assistant message (the reply)")
        text = messages[-1]["content"]
    if not text.strip():
        raise BadRow(field, "is an empty reply")
    return text.strip()


def _pair(prompt: list[Message], chosen: str, rejected: str) -> Pair:
    if chosen == rejected:
        raise BadRow("rejected", "is the same reply as chosen (nothing to prefer)")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


# The prompt's column: TRL's name, else Intel/orca_dpo_pairs' and Alpaca-style pair files' (their rows were read as
# Anthropic-HH dialogues, and no setting named the column)
_PROMPT_COLUMNS = ("prompt", "question", "instruction")


def prompt_column(row: Mapping[str, Any]) -> str:
    """The column holding a pair's prompt (`prompt`, else `question` or `instruction`, the first one given).

    >>> prompt_column({"system": "", "question": "2 + 2?", "chosen": "4", "rejected": "5"})
    'question'
    """
    return next((field for field in _PROMPT_COLUMNS if row.get(field) is not None), "prompt")


def pairs_row(row: Mapping[str, Any]) -> Pair:
    """TRL's preference format: prompt (or question, instruction), chosen, rejected as text or chat messages.

    >>> pairs_row({"prompt": "2 + 2?", "chosen": "4", "rejected": [{"role": "assistant", "content": "5"}]})
    {'prompt': [{'role': 'user', 'content': '2 + 2?'}], 'chosen': '4', 'rejected': '5'}
    """
    asked = prompt_column(row)
    if asked == "instruction" and isinstance(row["instruction"], str):  # Alpaca-style: its input is part of the ask
        given = [row[field].strip() for field in ("input", "context") if isinstance(row.get(field), str)]
        row = {**row, "instruction": "\n\n".join([row["instruction"].strip(), *filter(None, given)])}
    if row.get(asked) is None and isinstance(row.get("chosen"), list):  # conversations with an implicit prompt
        if isinstance(row.get("rejected"), str):
            raise BadRow(
                "rejected",
                "is text while chosen is a conversation and the row has no prompt: give rejected as a conversation "
                "too, or the question as a prompt column",
            )
        chosen, rejected = _messages(row["chosen"], "chosen"), _messages(row.get("rejected"), "rejected")
        prompt = chosen[:-1]
        if not prompt or prompt[-1]["role"] != "user":
            raise BadRow("chosen", "has no user message before its final reply (and the row has no prompt)")
        if rejected[:-1] != prompt:
            raise BadRow("rejected", "does not start with the same conversation as chosen")
        return _pair(prompt, _reply(row, "chosen"), _reply(row, "rejected"))
    return _pair(_prompt(row, asked), _reply(row, "chosen"), _reply(row, "rejected"))


def turns_left_out(row: Mapping[str, Any]) -> bool:
    """Whether a pairs row with its own prompt holds conversation in a reply that the pair leaves out: a reply is its
    final assistant message, so earlier turns of a message-list reply count unless they repeat the prompt.

    >>> say = lambda role, text: {"role": role, "content": text}
    >>> turns_left_out({"prompt": "Hi", "chosen": [say("user", "Hi"), say("assistant", "Hello")], "rejected": "Go"})
    False
    >>> turns_left_out({"prompt": "Hi", "chosen": [say("user", "Bye"), say("assistant", "Hello")], "rejected": "Go"})
    True
    """
    prompt = row.get(prompt_column(row))
    if prompt is None:
        return False
    asked = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    replies = [row.get(field) for field in ("chosen", "rejected")]
    return any(isinstance(reply, list) and len(reply) > 1 and reply[:-1] != asked for reply in replies)


def ultrafeedback_row(row: Mapping[str, Any]) -> Pair:
    """UltraFeedback-binarized: prompt text; chosen and rejected conversations ending with the assistant's reply.

    >>> ultrafeedback_row({
    ...     "prompt": "Name a colour.",
    ...     "chosen": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
    ...     "rejected": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "No."}],
    ... })["chosen"]
    'Blue.'
    """
    question = required_text(row, "prompt")
    for side in ("chosen", "rejected"):
        if isinstance(row.get(side), str):
            raise BadRow(side, "must be a conversation (a list of {role, content} messages) in UltraFeedback rows")
    context = _messages(row.get("chosen"), "chosen")[:-1]
    answered = _messages(row.get("rejected"), "rejected")[:-1]
    # a side that is its reply alone answers the prompt; one that names its conversation must end with the prompt
    # (either side: a reply-only rejected beside a whole chosen was refused, a reply-only chosen accepted)
    asked, known = {"role": "user", "content": question}, context or answered
    both_named = bool(context) and bool(answered)
    if both_named and answered != context:
        raise BadRow("rejected", "does not answer the same conversation as chosen")
    # the prompt is compared as read (stripped): "Name a colour.\n" in both was refused
    if known and not both_named and (known[-1]["role"], known[-1]["content"].strip()) != ("user", question):
        side = "chosen" if context else "rejected"
        raise BadRow(side, "does not answer the prompt: its last user message is another text")
    prompt = known if known and known[-1]["role"] == "user" else [asked]
    return _pair(prompt, _reply(row, "chosen"), _reply(row, "rejected"))


_HH_MARKER = re.compile(r"\n\n(Human|Assistant):")


def hh_dialogue(text: str, field: str) -> list[Message]:
    """The turns of an Anthropic-HH dialogue.

    >>> hh_dialogue("\\n\\nHuman: Hi there\\n\\nAssistant: Hello!", "chosen")
    [{'role': 'user', 'content': 'Hi there'}, {'role': 'assistant', 'content': 'Hello!'}]
    """
    body = text if text.startswith("\n\n") else "\n\n" + text.lstrip()
    parts = _HH_MARKER.split(body)  # ["", "Human", " words", "Assistant", " words", …]
    if parts[0].strip() or len(parts) < 3:
        raise BadRow(field, "must be a dialogue of '\\n\\nHuman: …' and '\\n\\nAssistant: …' turns")
    return [
        {"role": "user" if speaker == "Human" else "assistant", "content": words.strip()}
        for speaker, words in zip(parts[1::2], parts[2::2], strict=True)
    ]


def split_hh(chosen: str, rejected: str) -> Pair:
    """Anthropic-HH dialogues → their shared prompt and the two final replies.

    >>> split_hh("\\n\\nHuman: 2 + 2?\\n\\nAssistant: 4", "\\n\\nHuman: 2 + 2?\\n\\nAssistant: 5")
    {'prompt': [{'role': 'user', 'content': '2 + 2?'}], 'chosen': '4', 'rejected': '5'}
    """
    replies, prompts = {}, {}
    for side, text in (("chosen", chosen), ("rejected", rejected)):
        turns = hh_dialogue(text, side)
        if turns[-1]["role"] != "assistant":
            raise BadRow(side, "must end with an Assistant reply")
        if not turns[-1]["content"]:
            raise BadRow(side, "ends with an empty Assistant reply")
        if len(turns) < 2 or turns[-2]["role"] != "user":
            raise BadRow(side, "has no Human turn before its final reply")
        prompts[side], replies[side] = turns[:-1], turns[-1]["content"]
    if prompts["rejected"] != prompts["chosen"]:
        raise BadRow("rejected", "does not share the chosen dialogue's prompt (they may differ only in the last reply)")
    return _pair(prompts["chosen"], replies["chosen"], replies["rejected"])


def hh_row(row: Mapping[str, Any]) -> Pair:
    """Anthropic-HH: {chosen, rejected}, each a whole dialogue."""
    return split_hh(required_text(row, "chosen"), required_text(row, "rejected"))


PAIR_ADAPTERS: dict[str, Callable[[Mapping[str, Any]], Pair]] = {
    "pairs": pairs_row,
    "hh": hh_row,
    "ultrafeedback": ultrafeedback_row,
}


def detect_pair_format(columns: Sequence[str], first_row: Mapping[str, Any]) -> str:
    """The pairwise format whose signature columns are present.

    >>> detect_pair_format(["chosen", "rejected"], {"chosen": "\\n\\nHuman: hi\\n\\nAssistant: hello"})
    'hh'
    """
    present = set(columns)
    if not {"chosen", "rejected"} <= present:
        raise ValueError(
            f"cannot tell the preference format from its columns {sorted(present)}: preference data needs chosen and "
            f"rejected columns; set preferences.format to one of {', '.join(PAIR_FORMATS)} (pairs: prompt (or "
            "question, instruction) + chosen + rejected, hh: Anthropic-HH chosen/rejected dialogues, ultrafeedback: "
            "prompt + chosen/rejected conversations); other column names are renamed with preferences.columns"
        )
    chosen = first_row.get("chosen")
    if present.isdisjoint(_PROMPT_COLUMNS) and isinstance(chosen, str):
        return "hh"
    if isinstance(chosen, list) and any(isinstance(m, Mapping) and m.get("role") == "user" for m in chosen):
        return "ultrafeedback" if "prompt" in present and isinstance(first_row.get("prompt"), str) else "pairs"
    return "pairs"


# --------------------------------------------------------------------------------------------------------- loading


@dataclass
class PairSplits:
    """Training and held-out pairs, where they came from, and the bad rows skipped."""

    train: list[Pair]
    test: list[Pair]
    source: str
    skipped_rows: int = 0
    stats: dict[str, Any] = field(default_factory=dict)


def adapt_pairs(read: Raw, fmt: str, source: str, on_bad_row: str) -> tuple[list[Pair], int]:
    """Canonical pairs of rows in format `fmt`; a bad row stops with its file, place and field (or is skipped)."""
    adapter = PAIR_ADAPTERS[fmt]
    pairs, skipped, seen, cut = [], [], 0, 0
    for index, row in enumerate(read.rows):
        seen += 1
        try:
            pairs.append(adapter(row))
            cut += fmt == "pairs" and turns_left_out(row)
        except BadRow as bad:
            if on_bad_row == "error":
                raise DatasetError(
                    f"{source}: {read.fault(index, bad)} ({fmt} preference format); fix the row or set "
                    "dataset.on_bad_row=skip"
                ) from None
            skipped.append(read.fault(index, bad))
    if skipped and pairs:  # which and why, as the problem rows' are said: the count alone left the user to find them
        logger.warning(
            "%s: %d bad preference row(s) skipped (dataset.on_bad_row skip): %s%s",
            source,
            len(skipped),
            "; ".join(skipped[:3]),
            ", …" if len(skipped) > 3 else "",
        )
    if not seen:
        raise DatasetError(f"{source}: the preference dataset is empty")
    if not pairs:  # why, as the problem rows say it: the format was blamed for pairs whose replies were the same
        raise DatasetError(
            f"{source}: all {seen} rows are unusable as {fmt} preference pairs ({'; '.join(skipped[:3])}); if they "
            f"are in another format, set preferences.format (one of {', '.join(PAIR_FORMATS)})"
        )
    if cut:
        logger.warning(
            "%s: %d of %d pairs hold earlier turns in a reply, other than the prompt; each reply is its final "
            "assistant message, asked with the row's prompt (the other turns are left out)",
            source,
            cut,
            seen,
        )
    return pairs, len(skipped)


_READ_PAIRS: dict[str, PairSplits] = {}


def _file_state(name: str | None) -> tuple[int, int] | None:
    path = Path(name).expanduser() if name else None
    return (path.stat().st_mtime_ns, path.stat().st_size) if path and path.is_file() else None


def load_pairs(cfg: PreferencesConfig, on_bad_row: str = "error") -> PairSplits:
    """Training and held-out pairs from `cfg.dataset` (a local file or a hub id).

    Read once a process for the same settings and unchanged files: a recipe reads a local file up front, then its
    reward model and DPO stages read it again, and each read printed the file's warnings (skipped rows, no
    held-out prompt) once more."""
    if not cfg.dataset:
        raise ValueError("preferences.dataset is not set")
    key = json.dumps([cfg.model_dump(), on_bad_row, _file_state(cfg.dataset), _file_state(cfg.test_split)])
    if key not in _READ_PAIRS:
        _READ_PAIRS[key] = _read_pairs(cfg, on_bad_row)
    return _READ_PAIRS[key]


def _pair_format(cfg: PreferencesConfig, raw: Dataset, source: str) -> str:
    """preferences.format, or the format `raw`'s columns and first row with a chosen reply say where it is auto (a
    first row without one, bad, told an Anthropic-HH file as `pairs`: every row refused)."""
    if cfg.format != "auto":
        return cfg.format
    first = next((row for row in raw.select(range(min(DETECTED_FROM, len(raw)))) if row.get("chosen") is not None), {})
    try:
        return detect_pair_format(raw.column_names, first)
    except ValueError as error:
        raise DatasetError(f"{source}: {error}") from None


def _renamed_pairs(read: Raw, cfg: PreferencesConfig, source: str) -> Raw:
    return renamed(read, cfg.columns, source, "preferences.columns")


def _read_pairs(cfg: PreferencesConfig, on_bad_row: str) -> PairSplits:
    source = cfg.dataset
    offline = "Use a local .jsonl/.json/.parquet file, or leave preferences.dataset unset for the built-in pairs."
    raw = _renamed_pairs(
        load_raw(cfg.dataset, cfg.subset, cfg.train_split, "preference dataset", offline, on_bad_row), cfg, source
    )
    fmt = _pair_format(cfg, raw.rows, source)
    train, skipped = adapt_pairs(raw, fmt, source, on_bad_row)
    skipped += raw.skipped
    if cfg.test_split:
        held_is_file = split_is_file(cfg.dataset, cfg.test_split)
        held_source = cfg.test_split if held_is_file else f"{source} [{cfg.test_split}]"
        held = str(held_out_file(cfg.test_split, "preferences.test_split")) if held_is_file else cfg.dataset
        raw_test = _renamed_pairs(
            load_raw(held, cfg.subset, cfg.test_split, "preference dataset", offline, on_bad_row), cfg, held_source
        )
        # told from its own columns, as a held-out file of problems is: it may be in another format
        held_format = _pair_format(cfg, raw_test.rows, held_source)
        test, skipped_test = adapt_pairs(raw_test, held_format, held_source, on_bad_row)
        skipped += skipped_test + raw_test.skipped
        # as a held-out file's problems are: pairs of its prompts are not trained on (scored, they measure memory)
        held_prompts, trained = {_prompt_key(pair) for pair in test}, len(train)
        train = [pair for pair in train if _prompt_key(pair) not in held_prompts]
        if len(train) < trained:
            logger.warning(
                "%s: %s with a prompt of the held-out file %s left out of training (scored, it would measure memory)",
                source,
                counted(trained - len(train), "training pair"),
                held_source,
            )
        if not train:
            raise DatasetError(
                f"{source}: every training pair has a prompt of the held-out file {held_source} (the same file "
                "twice?): give pairs to train on whose prompts are not held out"
            )
    else:
        train, test = split_pairs(train, cfg.held_out, cfg.seed)
        if not test:  # split by prompt, so no prompt is on both sides: one prompt leaves none to hold out
            logger.warning(
                "%s: every pair has the same prompt, so none is held out and pairwise accuracy is not measured; "
                "give preferences.test_split a file of other prompts",
                source,
            )
    return PairSplits(
        train=sample_pairs(train, cfg.max_pairs, cfg.seed),
        test=sample_pairs(test, cfg.max_held_out, cfg.seed),
        source=f"{source} ({fmt})",
        skipped_rows=skipped,
    )


def sample_pairs(pairs: list[Pair], limit: int | None, seed: int) -> list[Pair]:
    """At most `limit` pairs drawn with `seed`, in file order: the first ones of a file sorted by subset (HH's
    harmless rows before its helpful ones) would all be of one kind.

    >>> sample_pairs(list(range(10)), 3, 0), sample_pairs([1, 2], 3, 0), sample_pairs([1, 2], None, 0)
    ([0, 6, 9], [1, 2], [1, 2])
    """
    if limit is None or len(pairs) <= limit:
        return pairs
    return [pairs[i] for i in sorted(random.Random(seed).sample(range(len(pairs)), limit))]


def split_pairs(pairs: list[Pair], held_out: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(training, held-out) pairs, split by prompt so that no prompt is on both sides; order kept within each. The
    held-out prompts are drawn until their pairs come as near `held_out` of the pairs as whole prompts allow (at least
    one prompt, never all): a prompt with many pairs no longer takes most of the data to the held-out side.

    >>> pairs = [{"prompt": [{"role": "user", "content": str(i % 5)}], "chosen": "a", "rejected": "b"} for i in range(10)]
    >>> train, test = split_pairs(pairs, 0.2, seed=0)
    >>> len(train), len(test), {p["prompt"][0]["content"] for p in test} & {p["prompt"][0]["content"] for p in train}
    (8, 2, set())
    """
    counts = Counter(_prompt_key(p) for p in pairs)
    keys = list(counts)
    if len(keys) < 2:
        return list(pairs), []
    random.Random(seed).shuffle(keys)
    wanted = max(1, round(held_out * len(pairs)))
    held: set[str] = set()
    taken = 0  # pairs of the held prompts
    for key in keys:
        if len(held) == len(keys) - 1 or taken >= wanted:
            break
        if taken + counts[key] <= wanted:
            held.add(key)
            taken += counts[key]
    if not held:  # every prompt has more pairs than the share: the one with fewest
        held.add(min(keys, key=counts.__getitem__))
    return [p for p in pairs if _prompt_key(p) not in held], [p for p in pairs if _prompt_key(p) in held]


def _prompt_key(pair: Pair) -> str:
    return json.dumps(pair["prompt"], sort_keys=True)


def trl_pairs(pairs: Sequence[Pair]) -> Dataset:
    """TRL's conversational preference rows: prompt messages, chosen and rejected each one assistant message."""
    from datasets import Dataset

    def reply(text: str) -> list[Message]:
        return [{"role": "assistant", "content": text}]

    return Dataset.from_dict(
        {
            "prompt": [p["prompt"] for p in pairs],
            "chosen": [reply(p["chosen"]) for p in pairs],
            "rejected": [reply(p["rejected"]) for p in pairs],
        }
    )


# ------------------------------------------------------------------------------------------------ built-in pairs


# a sentence's end and the white space after it (captured: a degraded copy keeps a reply's line breaks, else "has no
# line break" alone told a rejected multi-line reply from its chosen one)
_SENTENCE_END = re.compile(r"((?<=[.!?])[ \t]*\n\s*|(?<=[.!?])[ \t]+|\n\s*)")
_LIST_MARK = re.compile(r"(?:\d+|[A-Za-z])\.")  # "1." of a numbered line: no sentence of its own


def sentence_pieces(text: str) -> list[tuple[str, str]]:
    """Each sentence of `text` with the white space after it ("" after the last); a list item's mark stays with it.

    >>> sentence_pieces("One. Two!\\nThree"), sentence_pieces("Tips:\\n1. Sleep. Rest.")
    ([('One.', ' '), ('Two!', '\\n'), ('Three', '')], [('Tips:', '\\n'), ('1. Sleep.', ' '), ('Rest.', '')])
    """
    split = _SENTENCE_END.split(text.strip())
    pieces: list[tuple[str, str]] = []
    for sentence, space in zip(split[::2], [*split[1::2], ""], strict=True):
        if pieces and _LIST_MARK.fullmatch(pieces[-1][0]):
            sentence = pieces.pop()[0] + " " + sentence
        if sentence:
            pieces.append((sentence, space))
    return pieces


def sentences(text: str) -> list[str]:
    """
    >>> sentences("One. Two!\\nThree")
    ['One.', 'Two!', 'Three']
    """
    return [sentence for sentence, _ in sentence_pieces(text)]


def truncated(text: str) -> str | None:
    """The first third of the words, cut where they end in `text` (None when there are too few to cut).

    >>> truncated("Tips:\\n1. Sleep early.\\n2. Rest.")
    'Tips:\\n1.'
    """
    words = list(re.finditer(r"\S+", text))
    return text[: words[len(words) // 3 - 1].end()] if len(words) >= 3 else None


def shuffled(text: str, rng: random.Random) -> str | None:
    """The sentences in another order, the white space between them where it was (None with fewer than two distinct
    sentences)."""
    pieces = sentence_pieces(text)
    parts = [sentence for sentence, _ in pieces]
    if len(set(parts)) < 2:
        return None
    order = parts[:]
    while order == parts:
        rng.shuffle(order)
    return "".join(sentence + space for sentence, (_, space) in zip(order, pieces, strict=True))


def repeated(text: str) -> str | None:
    """The first sentence looped four times, as a degenerate model writes, on lines of their own where the reply's
    sentences are (None for an empty text)."""
    pieces = sentence_pieces(text)
    if not pieces:
        return None
    sentence, space = pieces[0]
    return (space if "\n" in space else " ").join([sentence] * 4)


def degrade(text: str, rng: random.Random) -> tuple[str, str] | None:
    """(how, worse copy) of a reply: truncated, shuffled or repeated, picked at random among those that change it.

    >>> degrade("The sky is blue. Grass is green. Snow is white.", random.Random(0))[0] in ("truncated", "shuffled", "repeated")
    True
    """
    text = text.strip()
    candidates = [
        (how, worse)
        for how, worse in (
            ("truncated", truncated(text)),
            ("shuffled", shuffled(text, rng)),
            ("repeated", repeated(text)),
        )
        if worse and worse.strip() and worse.strip() != text
    ]
    return rng.choice(candidates) if candidates else None


def general_pairs(prompts: Sequence[list[Message]], answers: Sequence[str], seed: int) -> list[Pair]:
    """Each answer against a degraded copy of it; empty or undegradable answers make no pair."""
    rng = random.Random(seed)
    pairs = []
    for prompt, answer in zip(prompts, answers, strict=True):
        found = degrade(answer, rng)
        if found is not None:
            pairs.append({"prompt": prompt, "chosen": answer.strip(), "rejected": found[1]})
    return pairs


_FALLBACK_GENERAL_PROMPTS = (
    "What is the capital of France?",
    "Give three tips for getting better sleep.",
    "Write a haiku about autumn leaves.",
    "Explain in two sentences what a library is for.",
    "Name three animals that live in the ocean.",
    "How do I politely decline an invitation to a party?",
    "Describe a sunny beach in one sentence.",
    "Suggest a name for a small bakery.",
)


def general_prompts() -> list[str]:
    """The general prompts shipped with r1kit (configs/general_prompts.txt), or a few built in."""
    try:
        text = resources.files("r1kit").joinpath("configs/general_prompts.txt").read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return list(_FALLBACK_GENERAL_PROMPTS)
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")] or list(_FALLBACK_GENERAL_PROMPTS)
