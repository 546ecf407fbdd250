"""Rejection sampling: k samples per problem from the RL model, the best verified trace kept (R1 paper, §2.3.3).

Runnable alone (`r1kit rejection_sampling`) and from a recipe (after reasoning RL; `sft2` trains on what it writes).
Reads `rejection_sampling` (k, prompts, temperature) and `filters`. A sample is accepted when it is well-formed,
reasons, does not loop, stays in the problem's language and its answer verifies; per problem the shortest accepted
ones are kept, duplicates dropped. Acceptance rates go by group (dataset.group_column: the built-in tasks' `level`
by default).
"""

from __future__ import annotations

import logging

from r1kit.config.schema import R1kitConfig
from r1kit.stages.common import StageContext, StageInputs, StageOutput, stage_main
from r1kit.stages.traces import best_verified, verifiable_prompts, write_dataset

logger = logging.getLogger("r1kit")


def run(ctx: StageContext, inputs: StageInputs) -> StageOutput:
    settings = ctx.config.rejection_sampling
    rows = verifiable_prompts(ctx, inputs.splits.train, settings.max_prompts)
    kept, stats = best_verified(ctx, inputs.model, rows, settings, settings.keep_per_prompt, "rejection_sampling")
    by_group = "".join(f", {group} {share:.0%}" for group, share in stats["problem_acceptance_by_group"].items())
    logger.warning(
        "rejection sampling: %d of %d problems accepted (%.0f%%%s), %d rows; dropped %s",
        round(stats["problem_acceptance"] * len(rows)),
        len(rows),
        100 * stats["problem_acceptance"],
        by_group,
        len(kept),
        stats["dropped"],
    )
    dataset = write_dataset(ctx, kept, stats, "rejection_sampling")
    return StageOutput(
        dataset=dataset,
        metrics={
            "rows": len(kept),
            "problem_acceptance": stats["problem_acceptance"],
            "sample_acceptance": stats["sample_acceptance"],
        },
    )


def main(config: R1kitConfig) -> StageOutput:
    """`r1kit rejection_sampling`: sample and filter alone, from model.name, into RUN/rejection_sampling."""
    return stage_main(config, "rejection_sampling", run)
