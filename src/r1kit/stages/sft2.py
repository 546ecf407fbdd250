"""SFT 2: accepted reasoning traces mixed with general, non-reasoning chat data (R1 paper, §2.3.3).

Runnable alone (`r1kit sft2`, reasoning rows from dataset.name) and from a recipe (the `r1` recipe trains it on what
`rejection_sampling` wrote). Reads `sft2` (the mix) and `sft` (training). General data comes from `sft2.general_dataset`
(a chat file or hub id: messages, ShareGPT, Dolly), or, offline by default, from the base model's own answers to the
general prompts shipped with r1kit, as the paper reused its base model's pipeline for non-reasoning data. General rows
are trained with a plain assistant prompt, so the model keeps answering them without the reasoning format.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from importlib import resources

from datasets import Dataset, concatenate_datasets

from r1kit.config.schema import DatasetConfig, R1kitConfig, SFT2Config
from r1kit.data.loading import (
    DatasetError,
    drawn_indices,
    has_sft_rows,
    is_local_data,
    load_all_rows,
    say_unused_hub_parts,
    sft_rows,
)
from r1kit.prompts import GENERAL_SYSTEM_PROMPT, chat_prompt
from r1kit.stages import sft
from r1kit.stages.common import GOLDS_READ, StageContext, StageInputs, StageOutput, stage_main
from r1kit.stages.traces import greedy_answers, has_reasoning_tags, reasons_said, usable_general_answers

logger = logging.getLogger("r1kit")


def run(ctx: StageContext, inputs: StageInputs) -> StageOutput:
    config, settings = ctx.config, ctx.config.sft2
    accepted = inputs.splits.train
    reasoning = sft_rows(accepted, config.prompt.system) if has_sft_rows(accepted) else None
    kept = len(reasoning) if reasoning is not None else 0  # the general mix is sized by the rows that train
    if kept < len(accepted):
        logger.warning(
            "sft2: %d of %d rows have no worked solution or reply to train on; left out", len(accepted) - kept,
            len(accepted),
        )  # fmt: skip
    if not kept:  # chat alone, sized for no trace, would only wear the reasoning model down (and be the run's final)
        logger.warning("sft2: no reasoning trace to train on (none in its data); the model goes on unchanged")
        return StageOutput(metrics={"reasoning_rows": 0, "general_rows": 0})
    wanted = general_wanted(kept, settings.general_ratio)
    general = _general_rows(ctx, inputs, wanted)
    logger.warning("sft2: %d reasoning rows + %d general rows", kept, len(general))
    if len(general) < wanted:  # the shipped prompts run out, or answers were dropped
        logger.warning(
            "sft2: %d general rows of the %d sft2.general_ratio %.2f asks for: they are %.0f%% of the mix; %s",
            len(general),
            wanted,
            settings.general_ratio,
            100 * len(general) / (len(general) + kept),
            "sft2.general_dataset has no more rows with a reply"
            if settings.general_dataset
            else "give more with sft2.general_dataset",
        )
    parts = [reasoning]
    if general:
        chat = Dataset.from_list(
            [{"question": q, "reasoning": None, "solution": None, "response": r} for q, r in general]
        )
        parts.append(sft_rows(chat, GENERAL_SYSTEM_PROMPT))
    rows = concatenate_datasets(parts).shuffle(seed=config.run.seed)
    model, length = sft.train(ctx, inputs.model, rows, inputs.splits.test)
    return StageOutput(model=model, metrics={"reasoning_rows": kept, "general_rows": len(general), **length})


def general_wanted(reasoning_rows: int, ratio: float) -> int:
    """How many general rows make them `ratio` of the mix of `reasoning_rows` (at least 1): none at ratio 0, else at
    least one (rounding gave none for 1 or 2 traces at 0.2, and asked the sampler for 0 prompts).

    >>> general_wanted(100, 0.2), general_wanted(2, 0.2), general_wanted(100, 0.0)
    (25, 1, 0)
    """
    if ratio <= 0:
        return 0
    return max(1, round(reasoning_rows * ratio / (1 - ratio)))


def check_general_data(settings: SFT2Config, held_out: Collection[str]) -> None:
    """sft2.general_dataset loads and holds replies SFT 2 may train on (`general_replies`): read by a recipe before
    any stage trains (an unreachable hub id, or a file without usable replies, failed once every stage before SFT 2
    had). Its first rows are read; the whole of it only where they hold none (a million-row chat dump is read whole
    once, by the stage)."""
    try:
        usable = _usable(_replies(settings, first=GOLDS_READ), held_out)
    except DatasetError:  # none in its first rows: the whole data decides, with its own error
        usable = []
    if not usable:
        general_replies(settings, held_out)


def _usable(pairs: list[tuple[str, str]], held_out: Collection[str]) -> list[tuple[str, str]]:
    """`pairs` but those asking a `held_out` question and replies with reasoning tags."""
    return [(q, r) for q, r in pairs if q not in held_out and not has_reasoning_tags(r)]


def _replies(settings: SFT2Config, first: int | None = None) -> list[tuple[str, str]]:
    """The (question, reply) pairs of sft2.general_dataset (of its `first` rows)."""
    hub = {"subset": settings.general_subset, "train_split": settings.general_split}
    if is_local_data(settings.general_dataset):  # a file is read whole: said under sft2's own keys
        if first is None:  # said by the stage that reads it all, not by the check of its first rows
            say_unused_hub_parts(
                settings.general_dataset,
                ("sft2.general_subset", settings.general_subset),
                ("sft2.general_split", settings.general_split, type(settings).model_fields["general_split"].default),
            )
        hub = {}
    general = DatasetConfig(name=settings.general_dataset, on_bad_row="skip", **hub)
    rows, _ = load_all_rows(general, first)  # its bad rows are said by the loader, each with its reason
    pairs = [(row["question"], row["response"]) for row in rows if row["response"]]
    if not pairs:  # math rows have no reply to imitate; SFT 2 would quietly train without the general data
        read = f"first {len(rows)}" if len(rows) == first else str(len(rows))
        raise DatasetError(
            f"sft2.general_dataset {settings.general_dataset}: none of its {read} rows has a reply (chat data: "
            "messages, conversations, or instruction/response columns)"
        )
    return pairs


def general_replies(settings: SFT2Config, held_out: Collection[str]) -> list[tuple[str, str]]:
    """The (question, reply) pairs of sft2.general_dataset that SFT 2 may train on: all of it (general data has no
    held-out part: the stage's held-out problems are the task's), but the `held_out` problems every model is scored
    on (`held_out`: their questions, every one of them) and reasoning replies, which the general prompt does not ask
    for (a chat dump of math conversations holds both). A DatasetError where none is left."""
    pairs = _replies(settings)
    usable = _usable(pairs, held_out)
    if len(usable) < len(pairs):
        logger.warning(
            "sft2.general_dataset %s: %d of its %d replies left out (a held-out problem's question, or reasoning "
            "tags in the reply)",
            settings.general_dataset,
            len(pairs) - len(usable),
            len(pairs),
        )
    if not usable:
        raise DatasetError(f"sft2.general_dataset {settings.general_dataset}: no reply is left to train on")
    return usable


def _general_rows(ctx: StageContext, inputs: StageInputs, wanted: int) -> list[tuple[str, str]]:
    """Up to `wanted` general (question, response) pairs: from the configured data, else the base model's answers."""
    settings = ctx.config.sft2
    if not wanted:
        return []
    if settings.general_dataset:
        pairs = general_replies(settings, inputs.splits.held_out.questions)
        return [pairs[i] for i in drawn_indices(len(pairs), wanted, ctx.config.run.seed)]  # a file may be sorted
    questions = shipped_general_prompts()[:wanted]
    answers = greedy_answers(
        ctx,
        inputs.base,
        [chat_prompt(q, GENERAL_SYSTEM_PROMPT) for q in questions],
        settings.general_max_new_tokens,
        ctx.config.evaluation.batch_size,
        "general answers",
    )
    usable, dropped = usable_general_answers(answers, ctx.config.filters.max_repetition, "sft2.general_max_new_tokens")
    pairs = [(question, answer) for question, answer in zip(questions, usable, strict=True) if answer is not None]
    if dropped:  # say why, or "0 general rows" reads like a bug
        logger.warning(
            "sft2: %d of the base model's %d general answers dropped (%s)",
            dropped.total(),
            len(questions),
            reasons_said(dropped),
        )
    return pairs


def shipped_general_prompts() -> list[str]:
    text = (resources.files("r1kit") / "configs" / "general_prompts.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def main(config: R1kitConfig) -> StageOutput:
    """`r1kit sft2`: the mix alone, from model.name, into RUN/sft2."""
    return stage_main(config, "sft2", run)
