"""Cold start: long chain-of-thought SFT data in the <think>/<answer> format, before any RL (R1 paper, §2.3.1).

Runnable alone (`r1kit cold_start`) and from a recipe (the `r1` recipe's first stage; the `sft` stage after it trains
on what it writes). Reads `cold_start` (methods, sampling), `filters`, `prompt` and, of `rewards`, the verification's
timeout. Four ways to a trace, as in the paper:
- convert: the data's own worked solutions (GSM8K steps, NuminaMath solutions, Bespoke-Stratos / ShareGPT thoughts);
- few_shot: the model shown worked long-CoT examples, then the problem;
- direct: the model asked to reason step by step and verify its result;
- refine: R1-Zero outputs (another model's, or this one's) normalised to <think>/<answer>, filler stripped.
Every trace then passes the same judge (well-formed, reasons, no loops, one language, verified answer) and is
deduplicated; the dataset is written with its counts kept and dropped by reason.
"""

from __future__ import annotations

import logging
from collections import Counter

from r1kit.config.schema import R1kitConfig
from r1kit.data.loading import drawn_indices
from r1kit.models import load_tokenizer, refuse_a_template_that_drops_reasoning
from r1kit.prompts import R1_SYSTEM_PROMPT, chat_prompt, r1_completion
from r1kit.stages.common import StageContext, StageInputs, StageOutput, model_named, stage_main
from r1kit.stages.traces import (
    KEPT,
    TraceJudge,
    best_of,
    normalise,
    sample,
    strip_filler,
    trace_row,
    verifiable_prompts,
    write_dataset,
)

logger = logging.getLogger("r1kit")

DIRECT_INSTRUCTION = (
    "Reason through the problem step by step inside <think> </think>. Before you finish, check the result with a "
    "second calculation. Then give only the final answer inside <answer> </answer>."
)


def run(ctx: StageContext, inputs: StageInputs) -> StageOutput:
    settings = ctx.config.cold_start
    rows = inputs.splits.train.to_list()
    worked = [row for row in rows if row["reasoning"] and row["solution"]]
    # the problems the model is sampled on: those with a gold answer, as only a verified trace is kept
    sampled = any(method != "convert" for method in settings.methods)
    generated_from = verifiable_prompts(ctx, inputs.splits.train, settings.max_prompts) if sampled else []
    if "few_shot" in settings.methods and worked:  # before any work; the examples are earlier assistant turns
        refuse_a_template_that_drops_reasoning(
            load_tokenizer(ctx.config.model, inputs.model),
            inputs.model,
            None,
            "few_shot would show the model its examples' answers without their worked reasoning",
            "cold_start: ",
            earlier_turn=True,
        )
    judge = TraceJudge(ctx.config)
    kept: list[dict] = []
    stats: dict[str, dict] = {}
    for method in settings.methods:
        if method == "convert":
            found, counts = _converted(rows, judge)
        else:
            if method == "few_shot" and not worked:
                logger.warning("cold_start: few_shot skipped: the data has no worked solutions to show")
                continue
            found, counts = _sampled(ctx, inputs, method, generated_from, worked, judge)
        kept += found
        stats[method] = dict(counts)
        logger.warning("cold_start %s: %d kept, dropped %s", method, len(found), _dropped(counts))
    distinct = _deduplicated(kept)
    # a seeded draw over every method's traces: the first N were all convert's (the methods' order), or one level's
    # of sorted data
    limit = len(distinct) if settings.max_rows is None else settings.max_rows
    rows_kept = [distinct[i] for i in drawn_indices(len(distinct), limit, ctx.config.run.seed)]
    # every trace the methods kept is accounted for: a row, a duplicate of another, or one past cold_start.max_rows
    cut = {"duplicates": len(kept) - len(distinct), "past_max_rows": len(distinct) - len(rows_kept)}
    kept = rows_kept
    summary = {"rows": len(kept), "methods": stats, "dropped": _total_dropped(stats), **cut}
    dataset = write_dataset(ctx, kept, summary, "cold_start")
    return StageOutput(
        dataset=dataset, metrics={"rows": len(kept), **{f"kept_{m}": s["kept"] for m, s in stats.items()}, **cut}
    )


def _converted(rows: list[dict], judge: TraceJudge) -> tuple[list[dict], Counter]:
    """The data's worked solutions as R1 traces, through the same judge as generated ones (it catches bad gold)."""
    counts: Counter = Counter()
    candidates = [row for row in rows if row["reasoning"] and row["solution"]]
    counts["no_worked_solution"] = len(rows) - len(candidates)
    traces = [r1_completion(strip_filler(row["reasoning"]) or row["reasoning"], row["solution"]) for row in candidates]
    reasons = judge(traces, [row["question"] for row in candidates], [row["solution"] for row in candidates])
    kept = [trace_row(row, t, "convert") for row, t, r in zip(candidates, traces, reasons, strict=True) if r == "kept"]
    counts.update(reasons)
    counts["kept"] = len(kept)  # also when none is: the stage's metrics read it
    return kept, counts


def _sampled(
    ctx: StageContext, inputs: StageInputs, method: str, rows: list[dict], worked: list[dict], judge: TraceJudge
) -> tuple[list[dict], Counter]:
    settings = ctx.config.cold_start
    if method == "refine":
        # R1-Zero's outputs: an earlier stage's model by its name (the paper's flow), a model, or the start model
        refined = settings.refine_from
        model = model_named(refined, inputs, ctx.config, "cold_start.refine_from") if refined else inputs.model
        prompts = [chat_prompt(row["question"], R1_SYSTEM_PROMPT) for row in rows]  # the R1-Zero prompt
    else:
        model = inputs.model
        prompts = [_prompt(method, row, worked, settings.few_shot_examples, ctx.config) for row in rows]
    samples = sample(ctx, model, prompts, settings, desc=f"cold_start {method}")
    counts: Counter = Counter()
    kept: list[dict] = []
    for row, completions, cuts in zip(rows, samples.texts, samples.truncated, strict=True):
        counts["truncated"] += sum(cuts)  # cut at max_new_tokens: its reasoning stops mid-sentence
        # normalise first: the point of these methods is turning loosely formatted reasoning into clean traces
        normalised = [normalise(c) for c, cut in zip(completions, cuts, strict=True) if not cut]
        counts["no_answer"] += sum(n is None for n in normalised)
        traces = [r1_completion(*n) for n in normalised if n is not None]
        reasons = judge(traces, [row["question"]] * len(traces), [row["solution"]] * len(traces))
        counts.update(reasons)
        chosen = best_of(traces, reasons, keep=settings.samples_per_prompt)
        counts["repeated_sample"] += reasons.count(KEPT) - len(chosen)  # the same reasoning as another sample's
        kept += [trace_row(row, t, method) for t in chosen]
    counts["kept"] = len(kept)  # after per-problem deduplication: each sample is kept or has one drop reason
    return kept, counts


def _prompt(method: str, row: dict, worked: list[dict], shots: int, config: R1kitConfig) -> list[dict]:
    if method == "direct":
        return chat_prompt(f"{row['question']}\n\n{DIRECT_INSTRUCTION}", config.prompt.system)
    examples = [w for w in worked if w["question"] != row["question"]][:shots]
    # worked long-CoT examples as earlier turns of the conversation
    earlier = [(example["question"], r1_completion(example["reasoning"], example["solution"])) for example in examples]
    return chat_prompt(row["question"], config.prompt.system, earlier)


def _deduplicated(rows: list[dict]) -> list[dict]:
    seen, unique = set(), []
    for row in rows:
        key = (row["question"], " ".join(row["reasoning"].lower().split()))
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique


def _dropped(counts: Counter) -> str:
    dropped = {reason: n for reason, n in counts.items() if reason != "kept" and n}
    return ", ".join(f"{reason} {n}" for reason, n in sorted(dropped.items())) or "none"


def _total_dropped(stats: dict[str, dict]) -> dict[str, int]:
    total: Counter = Counter()
    for counts in stats.values():
        total.update({reason: n for reason, n in counts.items() if reason != "kept"})
    return dict(total)


def main(config: R1kitConfig) -> StageOutput:
    """`r1kit cold_start`: build the data alone, from model.name and dataset.name, into RUN/cold_start."""
    return stage_main(config, "cold_start", run)
