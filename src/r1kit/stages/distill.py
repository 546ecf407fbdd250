"""Distillation: the final model as teacher writes verified traces, a student is fine-tuned on them (R1 paper, §2.4).

Runnable alone (`r1kit distill`, teacher = model.name) and from a recipe (the `r1` recipe's last stage: the teacher is
the latest model, the student by default the run's untouched base model). Reads `distill` (student, sampling) for the
teacher's traces, `filters` for what is kept, and `sft` for the student's training.
"""

from __future__ import annotations

import logging
from collections import Counter

from r1kit.config.schema import R1kitConfig
from r1kit.data.loading import read_rows, sft_rows
from r1kit.prompts import chat_prompt
from r1kit.stages import sft
from r1kit.stages.common import StageContext, StageInputs, StageOutput, model_reference_of, stage_main
from r1kit.stages.traces import TraceJudge, acceptance_by_group, best_of, first_rows, sample, trace_row, write_dataset

logger = logging.getLogger("r1kit")


# The config sections this stage reads: a change in one of them redoes it (and the stages after it).
CONFIG_SECTIONS = ("model", "prompt", "dataset", "sft", "distill", "filters", "rewards")


def run(ctx: StageContext, inputs: StageInputs) -> StageOutput:
    settings = ctx.config.distill
    rows = first_rows(inputs.splits.train, settings.max_prompts)
    prompts = [chat_prompt(row["question"], ctx.config.prompt.system) for row in rows]
    samples = sample(ctx, inputs.model, prompts, settings, desc="teacher traces")

    judge = TraceJudge(ctx.config)
    kept, accepted, dropped = [], [], Counter()
    for row, completions in zip(rows, samples, strict=True):
        reasons = judge(completions, [row["question"]] * len(completions), [row["solution"]] * len(completions))
        dropped.update(reason for reason in reasons if reason != "kept")
        chosen = best_of(completions, reasons, settings.keep_per_prompt)
        kept += [trace_row(row, trace, "distill") for trace in chosen]
        accepted.append(bool(chosen))
    by_group = acceptance_by_group([row.get("group") for row in rows], accepted)
    stats = {"problems": len(rows), "rows": len(kept), "acceptance_by_group": by_group, "dropped": dict(dropped)}
    dataset = write_dataset(ctx, kept, stats)

    if not kept:  # said by write_dataset; a student trained on nothing would only be a copy of itself
        return StageOutput(dataset=dataset, metrics={"teacher_rows": 0, "teacher_acceptance": 0.0})
    student = model_reference_of(settings.student, ctx.config) if settings.student else inputs.base
    logger.warning("distill: %d teacher traces from %s → student %s", len(kept), inputs.model, student)
    model = sft.train(ctx, student, sft_rows(read_rows(dataset), ctx.config.prompt.system), inputs.splits.test)
    return StageOutput(
        model=model, dataset=dataset, metrics={"teacher_rows": len(kept), "teacher_acceptance": by_group["all"]}
    )


def main(config: R1kitConfig) -> StageOutput:
    """`r1kit distill`: teacher model.name, into RUN/distill."""
    return stage_main(config, "distill", run)
