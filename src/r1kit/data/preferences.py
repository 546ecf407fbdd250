"""Preference pairs for the reward model and DPO: adapters from pairwise formats to r1kit's canonical pair, a loader
for files and hub datasets, and built-in pairs made offline from a model.

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

Built-in pairs (no download): a model's samples on the training problems, its verified-correct ones against its
wrong or malformed ones; and its answers to general prompts against degraded copies (cut short, sentences shuffled,
or a sentence looped).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r1kit.data.adapters import BadRow, _text
from r1kit.data.loading import DatasetError, _load_file, is_local_data, split_is_file

if TYPE_CHECKING:
    from datasets import Dataset

    from r1kit.config.schema import PreferencesConfig
    from r1kit.stages.common import StageContext

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


def _prompt(row: Mapping[str, Any], field: str = "prompt") -> list[Message]:
    """The prompt as chat messages: a text becomes one user message; messages must end with the user's turn."""
    value = row.get(field)
    if isinstance(value, str) or value is None:
        return [{"role": "user", "content": _text(row, field)}]
    messages = _messages(value, field)
    if messages[-1]["role"] != "user":
        raise BadRow(field, "must end with a user message (the turn the replies answer)")
    return messages


def _reply(row: Mapping[str, Any], field: str) -> str:
    """A reply as text: the text itself, or the final assistant message of a message list."""
    value = row.get(field)
    if value is None:
        raise BadRow(field, "is missing")
    if isinstance(value, str):
        text = value
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


def pairs_row(row: Mapping[str, Any]) -> Pair:
    """TRL's preference format: prompt, chosen, rejected as text or chat messages.

    >>> pairs_row({"prompt": "2 + 2?", "chosen": "4", "rejected": [{"role": "assistant", "content": "5"}]})
    {'prompt': [{'role': 'user', 'content': '2 + 2?'}], 'chosen': '4', 'rejected': '5'}
    """
    if row.get("prompt") is None and isinstance(row.get("chosen"), list):  # conversations with an implicit prompt
        chosen, rejected = _messages(row["chosen"], "chosen"), _messages(row.get("rejected"), "rejected")
        prompt = chosen[:-1]
        if not prompt or prompt[-1]["role"] != "user":
            raise BadRow("chosen", "has no user message before its final reply (and the row has no prompt)")
        if rejected[:-1] != prompt:
            raise BadRow("rejected", "does not start with the same conversation as chosen")
        return _pair(prompt, _reply(row, "chosen"), _reply(row, "rejected"))
    return _pair(_prompt(row), _reply(row, "chosen"), _reply(row, "rejected"))


def ultrafeedback_row(row: Mapping[str, Any]) -> Pair:
    """UltraFeedback-binarized: prompt text; chosen and rejected conversations ending with the assistant's reply.

    >>> ultrafeedback_row({
    ...     "prompt": "Name a colour.",
    ...     "chosen": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
    ...     "rejected": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "No."}],
    ... })["chosen"]
    'Blue.'
    """
    question = _text(row, "prompt")
    for side in ("chosen", "rejected"):
        if isinstance(row.get(side), str):
            raise BadRow(side, "must be a conversation (a list of {role, content} messages) in UltraFeedback rows")
    context = _messages(row.get("chosen"), "chosen")[:-1]
    prompt = context if context and context[-1]["role"] == "user" else [{"role": "user", "content": question}]
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
    return split_hh(_text(row, "chosen"), _text(row, "rejected"))


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
            f"rejected columns; set preferences.format to one of {', '.join(PAIR_FORMATS)} (pairs: prompt + chosen + "
            "rejected, hh: Anthropic-HH chosen/rejected dialogues, ultrafeedback: prompt + chosen/rejected "
            "conversations)"
        )
    chosen = first_row.get("chosen")
    if "prompt" not in present and isinstance(chosen, str):
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


def adapt_pairs(raw: Iterable[Mapping[str, Any]], fmt: str, source: str, on_bad_row: str) -> tuple[list[Pair], int]:
    """Canonical pairs of raw rows in format `fmt`; a bad row stops with its file, row and field (or is skipped)."""
    adapter = PAIR_ADAPTERS[fmt]
    pairs, skipped, seen = [], 0, 0
    for index, row in enumerate(raw):
        seen += 1
        try:
            pairs.append(adapter(row))
        except BadRow as bad:
            if on_bad_row == "error":
                raise DatasetError(
                    f"{source}: row {index + 1}: {bad} ({fmt} preference format); fix the row or set dataset.on_bad_row=skip"
                ) from None
            skipped += 1
    if not seen:
        raise DatasetError(f"{source}: the preference dataset is empty")
    if not pairs:
        raise DatasetError(f"{source}: all {seen} rows are unusable as {fmt} preference pairs")
    return pairs, skipped


def _load_raw(name: str, subset: str | None, split: str) -> Dataset:
    """A local file as a whole, or a split of a hub dataset."""
    if is_local_data(name):
        return _load_file(Path(name).expanduser())
    from datasets import load_dataset

    try:
        return load_dataset(name, subset, split=split)
    except Exception as error:
        raise DatasetError(
            f"cannot load preference dataset {name!r} (split {split!r}) from the Hugging Face hub: "
            f"{' '.join(str(error).split())} Offline? Use a local .jsonl/.json/.parquet file, or leave "
            "preferences.dataset unset for the built-in pairs."
        ) from error


def load_pairs(cfg: PreferencesConfig, on_bad_row: str = "error") -> PairSplits:
    """Training and held-out pairs from `cfg.dataset` (a local file or a hub id)."""
    if not cfg.dataset:
        raise ValueError("preferences.dataset is not set")
    source = cfg.dataset
    raw = _load_raw(cfg.dataset, cfg.subset, cfg.train_split)
    fmt = cfg.format
    if fmt == "auto":
        try:
            fmt = detect_pair_format(raw.column_names, raw[0] if len(raw) else {})
        except ValueError as error:
            raise DatasetError(f"{source}: {error}") from None
    train, skipped = adapt_pairs(raw, fmt, source, on_bad_row)
    if cfg.test_split:
        held_is_file = split_is_file(cfg.dataset, cfg.test_split)
        held_source = cfg.test_split if held_is_file else f"{source} [{cfg.test_split}]"
        raw_test = _load_raw(cfg.test_split if held_is_file else cfg.dataset, cfg.subset, cfg.test_split)
        test, skipped_test = adapt_pairs(raw_test, fmt, held_source, on_bad_row)
        skipped += skipped_test
    else:
        train, test = split_pairs(train, cfg.held_out, cfg.seed)
        if not test:  # split by prompt, so no prompt is on both sides: one prompt leaves none to hold out
            logger.warning(
                "%s: every pair has the same prompt, so none is held out and pairwise accuracy is not measured; "
                "give preferences.test_split a file of other prompts",
                source,
            )
    return PairSplits(
        train=train[: cfg.max_pairs] if cfg.max_pairs else train,
        test=test[: cfg.max_held_out],
        source=f"{source} ({fmt})",
        skipped_rows=skipped,
    )


def split_pairs(pairs: list[Pair], held_out: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(training, held-out) pairs, split by prompt so that no prompt is on both sides; order kept within each.

    >>> pairs = [{"prompt": [{"role": "user", "content": str(i % 5)}], "chosen": "a", "rejected": "b"} for i in range(10)]
    >>> train, test = split_pairs(pairs, 0.2, seed=0)
    >>> len(train), len(test), {p["prompt"][0]["content"] for p in test} & {p["prompt"][0]["content"] for p in train}
    (8, 2, set())
    """
    keys = list(dict.fromkeys(_prompt_key(p) for p in pairs))
    if len(keys) < 2:
        return list(pairs), []
    random.Random(seed).shuffle(keys)
    held = set(keys[: min(len(keys) - 1, max(1, round(held_out * len(keys))))])
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


def math_pairs(
    prompts: Sequence[list[Message]],
    samples: Sequence[Sequence[str]],
    reasons: Sequence[Sequence[str]],
    references: Sequence[str | None],
    pairs_per_prompt: int,
) -> list[Pair]:
    """Pairs from judged samples (TraceJudge's reasons): a kept sample (correct and well-formed), else the problem's
    reference solution, against a rejected one (wrong, malformed, looping …; not `unverifiable`, whose answer could
    not be checked). At most `pairs_per_prompt` pairs per problem, no reply twice.

    >>> prompt = [{"role": "user", "content": "1 + 1?"}]
    >>> math_pairs([prompt], [["<think>1+1=2</think><answer>2</answer>", "3", "3"]], [["kept", "malformed", "malformed"]],
    ...            [None], pairs_per_prompt=2)
    [{'prompt': [{'role': 'user', 'content': '1 + 1?'}], 'chosen': '<think>1+1=2</think><answer>2</answer>', 'rejected': '3'}]
    """
    from r1kit.stages.traces import KEPT

    pairs = []
    for prompt, group, why, reference in zip(prompts, samples, reasons, references, strict=True):
        chosen = _unique(t for t, r in zip(group, why, strict=True) if r == KEPT)
        if not chosen and reference:
            chosen = [reference.strip()]
        rejected = _unique(t for t, r in zip(group, why, strict=True) if r not in (KEPT, "unverifiable"))
        rejected = [t for t in rejected if t not in chosen]
        if not chosen:
            continue
        for index, worse in enumerate(rejected[:pairs_per_prompt]):
            pairs.append({"prompt": prompt, "chosen": chosen[index % len(chosen)], "rejected": worse})
    return pairs


def _unique(texts: Iterable[str]) -> list[str]:
    """Non-empty texts, stripped, first occurrence only."""
    return list(dict.fromkeys(t.strip() for t in texts if t.strip()))


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def sentences(text: str) -> list[str]:
    """
    >>> sentences("One. Two!\\nThree")
    ['One.', 'Two!', 'Three']
    """
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def truncated(text: str) -> str | None:
    """The first third of the words (None when there are too few to cut)."""
    words = text.split()
    return " ".join(words[: len(words) // 3]) if len(words) >= 3 else None


def shuffled(text: str, rng: random.Random) -> str | None:
    """The sentences in another order (None with fewer than two distinct sentences)."""
    parts = sentences(text)
    if len(set(parts)) < 2:
        return None
    order = parts[:]
    while order == parts:
        rng.shuffle(order)
    return " ".join(order)


def repeated(text: str) -> str | None:
    """The first sentence looped four times, as a degenerate model writes (None for an empty text)."""
    parts = sentences(text)
    if not parts:
        return None
    return " ".join([parts[0]] * 4)


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


def builtin_pairs(ctx: StageContext, model_reference: str, rows: Dataset) -> tuple[list[Pair], dict[str, Any]]:
    """Pairs made offline from `model_reference`: its samples on the first training problems (judged like every
    generated trace) and its answers to general prompts against degraded copies; with counts of what was made."""
    from r1kit.models import load_model, load_tokenizer
    from r1kit.prompts import GENERAL_SYSTEM_PROMPT, chat_prompt, r1_completion
    from r1kit.stages.evaluate import generate
    from r1kit.stages.traces import KEPT, TraceJudge, first_rows, sample

    config = ctx.config
    settings = config.preferences.sampling
    problems = first_rows(rows, settings.max_prompts)
    prompts = [chat_prompt(row["question"], config.prompt.system) for row in problems]
    samples = sample(ctx, model_reference, prompts, settings, desc="preference samples") if prompts else []
    judge = TraceJudge(config)
    flat = [trace for group in samples for trace in group]
    questions = [row["question"] for row, group in zip(problems, samples, strict=True) for _ in group]
    golds = [row["solution"] for row, group in zip(problems, samples, strict=True) for _ in group]
    flat_reasons = judge(flat, questions, golds) if flat else []
    reasons, start = [], 0
    for group in samples:
        reasons.append(flat_reasons[start : start + len(group)])
        start += len(group)

    references: list[str | None] = [None] * len(problems)
    if settings.reference_fallback:
        worked = [i for i, row in enumerate(problems) if row.get("reasoning") and row.get("solution")]
        texts = [r1_completion(problems[i]["reasoning"], problems[i]["solution"]) for i in worked]
        asked = [problems[i]["question"] for i in worked]
        verdicts = judge(texts, asked, [problems[i]["solution"] for i in worked]) if worked else []
        for i, text, verdict in zip(worked, texts, verdicts, strict=True):
            references[i] = text if verdict == KEPT else None
    pairs = math_pairs(prompts, samples, reasons, references, settings.pairs_per_prompt)

    general: list[Pair] = []
    requests = general_prompts()[: settings.general_prompts]
    if requests:
        tokenizer = load_tokenizer(config.model, model_reference)
        model = load_model(config.model, model_reference, ctx.hardware, for_training=False).eval()
        chats = [chat_prompt(q, GENERAL_SYSTEM_PROMPT) for q in requests]
        answers = generate(
            model,
            tokenizer,
            chats,
            max_new_tokens=settings.general_max_new_tokens,
            batch_size=settings.batch_size,
            progress=config.monitoring.progress,
            desc="general answers",
        ).texts
        general = general_pairs(chats, [a[0] for a in answers], config.preferences.seed)
        del model
    kept = sum(r == KEPT for group in reasons for r in group)
    stats = {
        "problems": len(problems),
        "samples": len(flat),
        "samples_kept": kept,
        "references_used": sum(1 for why, ref in zip(reasons, references, strict=True) if ref and KEPT not in why),
        "math_pairs": len(pairs),
        "general_prompts": len(requests),
        "general_pairs": len(general),
    }
    return pairs + general, stats


def stage_pairs(ctx: StageContext, model_reference: str, rows: Dataset) -> PairSplits:
    """The pairs a preference stage trains and is scored on: `preferences.dataset` when set, else the built-in pairs
    from `model_reference` on `rows` (the training problems), cached in RUN/<stage>/pairs.jsonl. Pairs another stage
    of the run built from the same model (by content) with the same settings are copied, not sampled again: the
    `rlhf` recipe's reward model and DPO train on the same pairs."""
    from r1kit import distributed
    from r1kit.atomic import content_hash, write_atomic, write_json

    config = ctx.config
    prefs = config.preferences
    if prefs.dataset:
        return load_pairs(prefs, config.dataset.on_bad_row)

    path, meta_path = ctx.dir / "pairs.jsonl", ctx.dir / "pairs.json"
    key = hashlib.sha256(
        json.dumps(
            {
                "model": content_hash(Path(model_reference)) if Path(model_reference).exists() else model_reference,
                "preferences": prefs.model_dump(),
                "dataset": config.dataset.model_dump(),
                "system": config.prompt.system,
                "filters": config.filters.model_dump(),
                "seed": config.run.seed,
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()
    source = f"built-in pairs from {model_reference}"

    def same_key(meta: Path) -> bool:
        return meta.exists() and (meta.parent / "pairs.jsonl").exists() and json.loads(meta.read_text())["key"] == key

    if distributed.is_main() and not same_key(meta_path):
        built = next((meta for meta in sorted(ctx.run.root.glob("*/pairs.json")) if same_key(meta)), None)
        if built is not None:
            logger.warning(
                "%s: reusing the preference pairs in %s (same model, same settings)", ctx.stage, built.parent
            )
            write_atomic(path, (built.parent / "pairs.jsonl").read_text())
            write_atomic(meta_path, built.read_text())
    # the main process's reading decides for all: see r1kit.distributed
    cached = distributed.from_main(same_key(meta_path))
    if cached:
        meta = json.loads(meta_path.read_text())
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        strip = ("split",)
        return PairSplits(
            train=[{k: v for k, v in r.items() if k not in strip} for r in records if r["split"] == "train"],
            test=[{k: v for k, v in r.items() if k not in strip} for r in records if r["split"] == "test"],
            source=source,
            stats=meta.get("stats", {}),
        )

    pairs, stats = builtin_pairs(ctx, model_reference, rows)
    if not pairs:
        raise DatasetError(
            f"{ctx.stage}: no preference pair could be built from {model_reference} ({json.dumps(stats)}): no "
            "problem had both a verified-correct reply and a rejected one, and no general answer could be degraded. "
            "Sample more (preferences.sampling.samples_per_prompt, max_prompts), or set preferences.dataset"
        )
    train, test = split_pairs(pairs, prefs.held_out, prefs.seed)
    train, test = (train[: prefs.max_pairs] if prefs.max_pairs else train), test[: prefs.max_held_out]
    stats |= {"train_pairs": len(train), "held_out_pairs": len(test)}
    lines = [
        json.dumps({"split": split, **p}, ensure_ascii=False)
        for split, part in (("train", train), ("test", test))
        for p in part
    ]
    if distributed.is_main():  # the same pairs in every process (generation gathers them); one writes them
        write_atomic(path, "".join(line + "\n" for line in lines))
        write_json(meta_path, {"key": key, "model": str(model_reference), "stats": stats})
    distributed.wait()
    return PairSplits(train=train, test=test, source=source, stats=stats)
