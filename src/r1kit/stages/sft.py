"""Supervised fine-tuning: the cold start of R1, teaching the <think>/<answer> format from worked solutions.

Runnable alone (`r1kit sft`) and from a recipe. Reads the `sft` section. Load → build → train → save: the model
folder it returns is a plain HF folder with the LoRA adapters merged in. `train` is also what `sft2` and `distill`
call with their own rows.
"""

from __future__ import annotations

import logging
from pathlib import Path

from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from r1kit.atomic import json_digest
from r1kit.config.schema import R1kitConfig
from r1kit.data.loading import sft_rows
from r1kit.models import (
    load_model,
    load_tokenizer,
    refuse_a_template_that_drops_reasoning,
    refuse_a_template_that_opens_thinking,
)
from r1kit.stages.common import (
    StageContext,
    StageInputs,
    StageOutput,
    callbacks,
    keep_checkpoints_of,
    lora_config,
    stage_main,
    train_and_save,
    trainer_arguments,
)
from r1kit.stages.evaluate import EvaluateEvery

logger = logging.getLogger("r1kit")


def run(ctx: StageContext, inputs: StageInputs) -> StageOutput:
    if not len(inputs.splits.train):  # data_from a stage that kept no row (it said so): nothing to learn from
        logger.warning("sft: its data has no rows; the model goes on unchanged")
        return StageOutput(metrics={"train_rows": 0})
    rows = sft_rows(inputs.splits.train, ctx.config.prompt.system)
    model, length = train(ctx, inputs.model, rows, inputs.splits.test)
    return StageOutput(model=model, metrics={"train_rows": len(rows) - length["rows_dropped"], **length})


def train(ctx: StageContext, model_reference: str, rows: Dataset, held_out: Dataset) -> tuple[Path, dict[str, int]]:
    """Fine-tune `model_reference` on TRL prompt-completion rows: the stage's model folder, and how many rows
    sft.max_length cut and dropped."""
    config = ctx.config
    keep_checkpoints_of(ctx, json_digest([rows["prompt"], rows["completion"]]), trained=model_reference)
    tokenizer = load_tokenizer(config.model, model_reference)
    _check_the_template_keeps_the_reasoning(tokenizer, rows, model_reference)
    model = load_model(config.model, model_reference, ctx.hardware, for_training=True)

    args = SFTConfig(
        **trainer_arguments(ctx, config.sft, model),
        max_length=config.sft.max_length,
        completion_only_loss=True,  # learn the answer, not the prompt (works with SmolLM2's template as is)
        include_num_input_tokens_seen="non_padding",
        gradient_checkpointing=config.sft.gradient_checkpointing,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=rows,
        processing_class=tokenizer,
        peft_config=lora_config(config.model),
        callbacks=[
            *callbacks(ctx, config.sft, model.num_parameters()),
            EvaluateEvery(ctx, held_out, tokenizer),
        ],
    )
    length = _say_what_the_length_limit_cut(rows, trainer.train_dataset, config.sft.max_length)
    return train_and_save(trainer, tokenizer, ctx), length


def _check_the_template_keeps_the_reasoning(tokenizer, rows: Dataset, model_reference: str) -> None:
    """TRL renders each row through the chat template, and some templates drop an assistant reply's reasoning
    (DeepSeek-R1-Distill's keeps only what follows </think>, for multi-turn chat): the model would learn the answers
    without the worked solutions. One that opens <think> itself is refused for replies without any reasoning."""
    replies = [row["completion"][-1]["content"] for row in rows.select(range(min(len(rows), 8)))]
    refuse_a_template_that_drops_reasoning(
        tokenizer, model_reference, replies, "SFT would learn answers without their worked solutions"
    )
    # every row: SFT 2's reasoning rows may come after its first general ones
    every_reply = (completion[-1]["content"] for completion in rows["completion"])
    refuse_a_template_that_opens_thinking(tokenizer, model_reference, every_reply, "sft: ")


def _say_what_the_length_limit_cut(rows: Dataset, prepared: Dataset, max_length: int) -> dict[str, int]:
    """TRL cuts each tokenized row at max_length, keeping its start, and drops rows left without a completion token:
    a long worked solution loses its end, <answer> included, without a word from TRL. The counts of both."""
    ids = prepared["input_ids"]
    # a row of exactly max_length tokens may fit whole: it then ends as the rows that fit end (the template's end of
    # turn), which a row cut mid-completion does not
    ending = _common_ending([row for row in ids if len(row) < max_length])
    cut = sum(len(row) >= max_length and not (ending and row[-len(ending) :] == ending) for row in ids)
    dropped = len(rows) - len(prepared)
    if cut or dropped:
        logger.warning(
            "sft: %d of %d rows are longer than sft.max_length (%d tokens): %d are cut at the limit (the end of "
            "their completion, with its answer, is not learned) and %d dropped (no completion token left); raise "
            "--sft.max_length to keep them whole",
            cut + dropped,
            len(rows),
            max_length,
            cut,
            dropped,
        )
    return {"rows_cut": cut, "rows_dropped": dropped}


def _common_ending(rows: list[list[int]], longest: int = 8) -> list[int]:
    """The last tokens every row ends with (at most `longest`; none where there is no row).

    >>> _common_ending([[5, 1, 2], [7, 1, 2], [2]]), _common_ending([[5, 1], [7, 2]]), _common_ending([])
    ([2], [], [])
    """
    if not rows:
        return []
    size = 0
    while size < min(longest, *map(len, rows)) and len({row[-size - 1] for row in rows}) == 1:
        size += 1
    return rows[0][len(rows[0]) - size :]


def main(config: R1kitConfig) -> StageOutput:
    """`r1kit sft`: this stage alone, from model.name, into RUN/sft."""
    return stage_main(config, "sft", run)
