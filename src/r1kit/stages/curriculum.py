"""A pass-rate curriculum for GRPO (`curriculum.enabled`): each training prompt is scored with k samples from the
stage's model, and GRPO trains on the prompts whose pass rate lies between the configured bounds.

Why: a group whose completions all get the same reward has zero advantage and teaches nothing; a prompt the model
always solves, or never does, gives exactly such groups. The pass-rate histogram is written to
RUN/<stage>/pass_rates.json (and shown in the report); a resumed stage reuses it, so it trains on the same prompts.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections import Counter
from collections.abc import Sequence

from datasets import Dataset

from r1kit import distributed
from r1kit.atomic import write_json
from r1kit.config.schema import SamplingConfig
from r1kit.prompts import chat_prompt
from r1kit.rewards import build_reward
from r1kit.stages.common import StageContext
from r1kit.stages.traces import sample

logger = logging.getLogger("r1kit")


def pass_rate_filter(rates: Sequence[float | None], low: float, high: float) -> tuple[list[int], dict[str, int]]:
    """Indices of the prompts whose pass rate is within [low, high], and the histogram of all rates.

    >>> pass_rate_filter([0.0, 0.25, 0.5, 1.0, None], 0.1, 0.9)
    ([1, 2], {'0.00': 1, '0.25': 1, '0.50': 1, '1.00': 1, 'unscored': 1})
    """
    kept = [i for i, rate in enumerate(rates) if rate is not None and low <= rate <= high]
    histogram = Counter("unscored" if rate is None else f"{rate:.2f}" for rate in rates)
    return kept, dict(sorted(histogram.items()))


def pass_rates(ctx: StageContext, model_reference: str, rows: Dataset) -> list[float | None]:
    """Share of k sampled completions per prompt whose answer verifies (None when no verdict could be had)."""
    config, settings = ctx.config, ctx.config.curriculum
    prompts = [chat_prompt(question, config.prompt.system) for question in rows["question"]]
    sampling = SamplingConfig(
        max_prompts=len(prompts),
        samples_per_prompt=settings.samples_per_prompt,
        max_new_tokens=config.grpo.max_completion_length,
        temperature=config.grpo.temperature,  # the rollouts' own temperature: the pass rate GRPO will see
        batch_size=config.evaluation.batch_size,
    )
    samples = sample(ctx, model_reference, prompts, sampling, desc="pass rates")
    # every prompt is scored: only the per-item time limit applies, not a training step's batch budget
    accuracy = build_reward("accuracy", **config.rewards.verification.model_dump() | {"batch_budget_seconds": math.inf})
    rates: list[float | None] = []
    for completions, gold in zip(samples, rows["solution"], strict=True):
        verdicts = [v for v in accuracy(completions, solution=[gold] * len(completions)) if v is not None]
        rates.append(statistics.fmean(v >= 1.0 for v in verdicts) if verdicts else None)
    return rates


def apply(ctx: StageContext, model_reference: str, train: Dataset) -> Dataset:
    """The training rows GRPO learns from under the curriculum (all rows when none falls within the bounds)."""
    settings = ctx.config.curriculum
    path = ctx.dir / "pass_rates.json"
    # a resumed stage trains on the prompts it chose before (the main process's reading: see r1kit.distributed)
    saved = distributed.from_main(json.loads(path.read_text()) if path.exists() else None)
    if saved is not None:
        return train.select(saved["trained_on"])
    scored = train.select(range(min(settings.max_prompts, len(train))))
    rates = pass_rates(ctx, model_reference, scored)
    kept, histogram = pass_rate_filter(rates, settings.min_pass_rate, settings.max_pass_rate)
    if not kept:
        logger.warning(
            "curriculum: no prompt has a pass rate within [%.2f, %.2f] (histogram %s); training on all %d scored",
            settings.min_pass_rate,
            settings.max_pass_rate,
            histogram,
            len(scored),
        )
    trained_on = kept or list(range(len(scored)))
    if distributed.is_main():  # the same rates in every process (sampling gathers them); one writes them
        write_json(
            path,
            {
                "samples_per_prompt": settings.samples_per_prompt,
                "bounds": [settings.min_pass_rate, settings.max_pass_rate],
                "histogram": histogram,
                "scored": len(scored),
                "kept": len(kept),
                "trained_on": trained_on,
                "rates": rates,
            },
        )
    logger.warning("curriculum: %d of %d prompts within the bounds; pass rates %s", len(kept), len(scored), histogram)
    return scored.select(trained_on)
