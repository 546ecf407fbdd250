"""Preference pairs for the `reward_model` and `dpo` stages: a pairwise dataset (`preferences.dataset`), or pairs
built offline from the stage's input model: its judged samples on the training problems (a verified-correct reply
against a wrong or malformed one) and its answers to general prompts against degraded copies."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset

from r1kit import distributed
from r1kit.atomic import write_atomic, write_json
from r1kit.data.loading import DatasetError
from r1kit.data.preferences import (
    Message,
    Pair,
    PairSplits,
    general_pairs,
    general_prompts,
    load_pairs,
    sample_pairs,
    split_pairs,
)
from r1kit.models import refuse_a_template_that_drops_reasoning
from r1kit.prompts import GENERAL_SYSTEM_PROMPT, chat_prompt, r1_completion
from r1kit.stages.common import StageContext
from r1kit.stages.evaluate import Generations
from r1kit.stages.traces import (
    KEPT,
    TraceJudge,
    drawn_rows,
    greedy_answers,
    reasons_said,
    sample,
    samples_key,
    usable_general_answers,
)

logger = logging.getLogger("r1kit")


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


def builtin_pairs(ctx: StageContext, model_reference: str, rows: Dataset) -> tuple[list[Pair], dict[str, Any]]:
    """Pairs made offline from `model_reference`: its samples on the first training problems (judged like every
    generated trace), the data's own replies of chat rows and its answers to general prompts, each against a
    degraded copy; with counts of what was made."""
    config = ctx.config
    settings = config.preferences.sampling
    first = drawn_rows(rows, settings.max_prompts, config.preferences.seed)
    # chat rows have no gold answer to judge samples by: their own reference reply is the chosen one
    chat = [row for row in first if row["response"] and not row["solution"]]
    replies = general_pairs(
        [chat_prompt(row["question"], config.prompt.system) for row in chat],
        [row["response"] for row in chat],
        config.preferences.seed,
    )
    problems = [row for row in first if row["solution"]]
    prompts = [chat_prompt(row["question"], config.prompt.system) for row in problems]
    no_samples = Generations([], [], [], [])
    samples = sample(ctx, model_reference, prompts, settings, desc="preference samples") if prompts else no_samples
    judge = TraceJudge(config)
    flat = [trace for group in samples.texts for trace in group]
    questions = [row["question"] for row, group in zip(problems, samples.texts, strict=True) for _ in group]
    golds = [row["solution"] for row, group in zip(problems, samples.texts, strict=True) for _ in group]
    cuts = [cut for group in samples.truncated for cut in group]
    flat_reasons = judge(flat, questions, golds, truncated=cuts) if flat else []
    reasons, start = [], 0
    for group in samples.texts:
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
    pairs = math_pairs(prompts, samples.texts, reasons, references, settings.pairs_per_prompt)

    general: list[Pair] = []
    requests = general_prompts()[: settings.general_prompts]
    dropped: Counter[str] = Counter()
    if requests:
        chats = [chat_prompt(q, GENERAL_SYSTEM_PROMPT) for q in requests]
        answers = greedy_answers(
            ctx, model_reference, chats, settings.general_max_new_tokens, settings.batch_size, "general answers"
        )
        # a cut or looping answer as the preferred reply taught the reward model and DPO to prefer cut, looping text
        limit = "preferences.sampling.general_max_new_tokens"
        usable, dropped = usable_general_answers(answers, config.filters.max_repetition, limit, whole_sentences=True)
        kept = [(chat, answer) for chat, answer in zip(chats, usable, strict=True) if answer is not None]
        general = general_pairs([chat for chat, _ in kept], [answer for _, answer in kept], config.preferences.seed)
        if dropped:
            logger.warning(
                "preference pairs: %d of the model's %d general answers make no pair (%s)",
                dropped.total(),
                len(requests),
                reasons_said(dropped),
            )
    kept = sum(r == KEPT for group in reasons for r in group)
    stats = {
        "problems": len(problems),
        "samples": len(flat),
        "samples_kept": kept,
        "references_used": sum(1 for why, ref in zip(reasons, references, strict=True) if ref and KEPT not in why),
        "math_pairs": len(pairs),
        "reply_pairs": len(replies),
        "general_prompts": len(requests),
        "general_answers_dropped": dict(dropped),
        "general_pairs": len(general),
    }
    return pairs + replies + general, stats


# Through a template that drops the reasoning (DeepSeek-R1-Distill's), two replies with one answer and different
# reasoning score and train alike.
_TOLD_APART = "the pairs would be told apart by their answers alone"


def stage_pairs(ctx: StageContext, model_reference: str, rows: Dataset, tokenizer) -> PairSplits:
    """The pairs a preference stage trains and is scored on, its `tokenizer`'s chat template checked against them:
    `preferences.dataset` when set, else the built-in pairs from `model_reference` on `rows` (the training
    problems)."""
    if ctx.config.preferences.dataset:
        pairs = load_pairs(ctx.config.preferences, ctx.config.dataset.on_bad_row)
        replies = (str(pair[side]) for pair in pairs.train for side in ("chosen", "rejected"))
        refuse_a_template_that_drops_reasoning(tokenizer, model_reference, replies, _TOLD_APART, f"{ctx.stage}: ")
        return pairs
    # worked solutions: the template is checked before they are sampled
    refuse_a_template_that_drops_reasoning(tokenizer, model_reference, None, _TOLD_APART, f"{ctx.stage}: ")
    return _built_in_pairs(ctx, model_reference, rows)


def _built_in_pairs(ctx: StageContext, model_reference: str, rows: Dataset) -> PairSplits:
    """The built-in pairs from `model_reference` on `rows`, cached in RUN/<stage>/pairs.jsonl. Pairs another stage
    of the run built from the same model (by content) with the same settings are copied, not sampled again: the
    `rlhf` recipe's reward model and DPO train on the same pairs."""
    config = ctx.config
    prefs = config.preferences

    path, meta_path = ctx.dir / "pairs.jsonl", ctx.dir / "pairs.json"
    key = samples_key(config, model_reference, rows, preferences=prefs.model_dump())
    source = f"built-in pairs from {model_reference}"

    def same_key(meta: Path) -> bool:
        return (
            meta.exists()
            and (meta.parent / "pairs.jsonl").exists()
            and json.loads(meta.read_text(encoding="utf-8"))["key"] == key
        )

    if distributed.is_main() and not same_key(meta_path):
        built = next((meta for meta in sorted(ctx.run.root.glob("*/pairs.json")) if same_key(meta)), None)
        if built is not None:
            logger.warning(
                "%s: reusing the preference pairs in %s (same model, same settings)", ctx.stage, built.parent
            )
            write_atomic(path, (built.parent / "pairs.jsonl").read_text(encoding="utf-8"))
            write_atomic(meta_path, built.read_text(encoding="utf-8"))
    # the main process's reading decides for all: see r1kit.distributed
    cached = distributed.from_main(same_key(meta_path))
    if cached:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
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
    train, test = sample_pairs(train, prefs.max_pairs, prefs.seed), sample_pairs(test, prefs.max_held_out, prefs.seed)
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
