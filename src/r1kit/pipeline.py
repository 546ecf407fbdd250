"""The main job, `r1kit run`: evaluate the base model, cold-start SFT, GRPO, evaluate again, before/after table.

Every step leaves something complete in the run folder (an eval JSON, a stage model); running the pipeline again
on the same folder skips what is done and resumes the interrupted stage from its newest complete checkpoint.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from r1kit.atomic import write_json
from r1kit.config.schema import R1kitConfig
from r1kit.monitoring.console import print_eval_table
from r1kit.stages import grpo, sft
from r1kit.stages.common import setup, stage_done
from r1kit.stages.evaluate import evaluate
from r1kit.stats import paired_difference


def run(config: R1kitConfig) -> dict[str, Any]:
    ctx, base, splits = setup(config, "run")
    run_dir = ctx.run

    def evaluated(model: str, label: str) -> dict[str, Any]:
        path = run_dir.eval_path(label)
        return json.loads(path.read_text()) if path.exists() else evaluate(ctx, model, splits.test, label)

    def trained(stage: str, train: Callable[[], Path]) -> str:
        return str(run_dir.model_dir(stage)) if stage_done(ctx, stage) else str(train())

    evals = {"base": evaluated(base, "base")}
    current = base
    if config.sft.enabled:
        current = trained("sft", lambda: sft.train(ctx, current, splits))
        evals["sft"] = evaluated(current, "sft")
    current = trained("grpo", lambda: grpo.train(ctx, current, splits))
    evals["final"] = evaluated(current, "final")

    labels = list(evals)
    # each stage against the one before it, and the whole run, on the same problems
    pairs = dict.fromkeys([*itertools.pairwise(labels), (labels[0], labels[-1])])
    summary = {
        "run": str(run_dir.root),
        "final_model": str(Path(current).relative_to(run_dir.root)),
        "evaluations": {
            label: {k: v for k, v in result.items() if k not in ("samples", "scores")}
            for label, result in evals.items()
        },
        "paired": {
            f"{before}→{after}": paired_difference(evals[before]["scores"], evals[after]["scores"])
            for before, after in pairs
            if len(evals[before].get("scores") or []) == len(evals[after].get("scores") or []) > 0
        },
    }
    write_json(run_dir.path("summary.json"), summary)
    print_eval_table(summary["evaluations"], title=f"r1kit run · {run_dir.root}", paired=summary["paired"])
    return summary
