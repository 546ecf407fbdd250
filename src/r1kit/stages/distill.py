"""Distillation: the final model as teacher writes verified traces, a student is fine-tuned on them (R1 paper, §2.4).

Runnable alone (`r1kit distill`, teacher = model.name, student = distill.student) and from a recipe (the `r1` recipe's last stage: the teacher is
the latest model, the student by default the run's untouched base model, or an earlier stage's model by its name). Reads `distill` (student, sampling) for the
teacher's traces, `filters` for what is kept, and `sft` for the student's training.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

from r1kit.config.schema import DistillConfig, R1kitConfig
from r1kit.data.loading import read_rows, sft_rows
from r1kit.models import ModelError
from r1kit.runs import names_one_path
from r1kit.stages import sft
from r1kit.stages.common import (
    StageContext,
    StageInputs,
    StageOutput,
    stage_main,
    student_model_settings,
    student_of,
)
from r1kit.stages.traces import best_verified, samples_key, verifiable_prompts, write_dataset

logger = logging.getLogger("r1kit")


def refuse_own_student(ctx: StageContext, inputs: StageInputs) -> None:
    """Run alone, the base is model.name, the teacher: unless distill.student names another, it would learn its own
    traces (a recipe's plan refuses that before any stage runs)."""
    if same_model(student_of(ctx.config.distill.student, inputs, ctx.config), inputs.model):
        raise ModelError(
            f"distill: the student would be the teacher itself ({inputs.model}); set distill.student to the model "
            "to train (a smaller one; the rejection_sampling and sft2 stages train a model on its own traces)"
        )


def same_model(student: str, teacher: str) -> bool:
    """One model named twice: the same reference, or one local folder written two ways (`teacher`, its full path)."""
    return student == teacher or names_one_path(student, teacher, None)


def teacher_sampling(settings: DistillConfig) -> dict[str, Any]:
    """The distill settings the teacher's traces are made with, which key them: not the student's."""
    return settings.model_dump(exclude={"student", "student_chat_template"})


def run(ctx: StageContext, inputs: StageInputs) -> StageOutput:
    settings = ctx.config.distill
    student = student_of(settings.student, inputs, ctx.config)
    if same_model(
        student, inputs.model
    ):  # in a recipe (alone: refused before): the stages meant to teach it made no model
        logger.warning(
            "distill: its teacher is its student itself (%s): the stages before it that were to make the teacher made "
            "no model; nothing to distill",
            student,
        )
        return StageOutput(metrics={"teacher_rows": 0, "teacher_acceptance": 0.0})
    traces, stats_path = ctx.dir / "data.jsonl", ctx.dir / "stats.json"
    key = samples_key(ctx.config, inputs.model, inputs.splits.train, sampling=teacher_sampling(settings))
    # stats.json is written after data.jsonl: the traces are whole; a redone stage's folder was cleared before
    saved = json.loads(stats_path.read_text(encoding="utf-8")) if stats_path.exists() else {}
    if saved.get("traces_key") == key and traces.exists():
        # killed while the student trained, before its first checkpoint too: on the traces it trains on (sampling
        # them again took the teacher's whole run, and under another process count draws other traces)
        kept, dataset, stats = read_rows(traces).to_list(), traces, saved
        if "problem_acceptance" not in stats:  # saved before it was apart from the groups (then under "all")
            stats["problem_acceptance"] = stats["problem_acceptance_by_group"].pop("all", 0.0)
        logger.warning("distill: resuming on the %d teacher traces sampled before (%s)", len(kept), traces)
    else:  # a new teacher or sampling settings (a --resume that changed them) sample again; the student's checkpoints
        # of the old traces are then not gone on from (sft.train's keep_checkpoints_of)
        rows = verifiable_prompts(ctx, inputs.splits.train, settings.max_prompts)
        # the teacher may be any reasoning model (an R1-Distill, Qwen3): its traces are read in whatever form it writes
        kept, stats = best_verified(
            ctx, inputs.model, rows, settings, settings.keep_per_prompt, "distill", any_format=True
        )
        dataset = write_dataset(ctx, kept, stats | {"traces_key": key}, "distill")

    if not kept:  # said by write_dataset; a student trained on nothing would only be a copy of itself
        return StageOutput(dataset=dataset, metrics={"teacher_rows": 0, "teacher_acceptance": 0.0})
    logger.warning("distill: %d teacher traces from %s → student %s", len(kept), inputs.model, student)
    if settings.student_chat_template is not None:  # the student's own template; model.chat_template is the teacher's
        ctx = replace(ctx, config=ctx.config.model_copy(update={"model": student_model_settings(ctx.config)}))
    model, length = sft.train(ctx, student, sft_rows(read_rows(dataset), ctx.config.prompt.system), inputs.splits.test)
    return StageOutput(
        model=model,
        dataset=dataset,
        metrics={
            "teacher_rows": len(kept),
            "teacher_acceptance": stats["problem_acceptance"],
            **length,
        },
    )


def main(config: R1kitConfig) -> StageOutput:
    """`r1kit distill`: teacher model.name, into RUN/distill."""
    return stage_main(config, "distill", run, refuse=refuse_own_student)
