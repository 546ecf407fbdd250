"""Evaluation: batched generation on held-out problems, pass@1 (greedy), format rate, and pass@k from n samples.

Runnable alone (`r1kit eval --model M --data D`) and by the pipeline. Reads the `evaluation` section.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import TrainerCallback

from r1kit.atomic import write_json
from r1kit.config.schema import R1kitConfig
from r1kit.data.loading import load_eval_rows
from r1kit.hardware import setup_hardware
from r1kit.models import load_model, load_tokenizer
from r1kit.monitoring.console import print_eval_table
from r1kit.prompts import chat_prompt
from r1kit.rewards import build_reward
from r1kit.rewards.text import split_r1
from r1kit.runs import RunDir
from r1kit.stages.common import StageContext, model_reference
from r1kit.stats import wilson_interval

logger = logging.getLogger("r1kit")

_SAMPLES_KEPT = 20  # completions stored in the JSON for a person to read


def pass_at_k(n: int, correct: int, k: int) -> float:
    """Unbiased pass@k estimate from n samples with `correct` right (Chen et al., 2021).

    >>> pass_at_k(n=4, correct=1, k=1), pass_at_k(n=4, correct=1, k=4)
    (0.25, 1.0)
    """
    if n - correct < k:
        return 1.0
    return 1.0 - math.comb(n - correct, k) / math.comb(n, k)


def generate(
    model,
    tokenizer,
    prompts: list[list[dict]],
    *,
    max_new_tokens: int,
    batch_size: int,
    samples: int = 1,
    temperature: float = 1.0,
    progress: bool = True,
    desc: str = "generating",
) -> tuple[list[list[str]], list[list[int]]]:
    """Completions (text, token count) per prompt: greedy when samples == 1, else `samples` sampled ones."""
    tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge
    texts: list[list[str]] = []
    lengths: list[list[int]] = []
    bar = tqdm(total=len(prompts), desc=desc, disable=not progress, leave=False)
    for start in range(0, len(prompts), batch_size):
        batch = [
            tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
            for p in prompts[start : start + batch_size]
        ]
        inputs = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.inference_mode():
            output = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=samples > 1,
                temperature=temperature if samples > 1 else None,
                top_p=None,
                top_k=None,
                num_return_sequences=samples,
                pad_token_id=tokenizer.pad_token_id,
            )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]  # (batch·samples, ≤ max_new_tokens)
        for row in range(0, new_tokens.shape[0], samples):
            group = new_tokens[row : row + samples]
            texts.append(tokenizer.batch_decode(group, skip_special_tokens=True))
            lengths.append([_generated_length(ids, tokenizer.pad_token_id, tokenizer.eos_token_id) for ids in group])
        bar.update(len(batch))
    bar.close()
    return texts, lengths


def _generated_length(ids: torch.Tensor, pad_id: int, eos_id: int) -> int:
    """Tokens generated up to and including the first eos (what follows is padding)."""
    ends = ((ids == eos_id) | (ids == pad_id)).nonzero()
    return int(ends[0, 0]) + 1 if len(ends) else len(ids)


def _accuracy(config: R1kitConfig):
    # Evaluation scores every item: only the per-item limit applies, not a training step's batch budget.
    return build_reward("accuracy", **config.rewards.verification.model_dump() | {"batch_budget_seconds": math.inf})


def greedy_scores(model, tokenizer, rows: Dataset, config: R1kitConfig, desc: str) -> dict[str, Any]:
    """Greedy pass@1, format rate and lengths of `model` on canonical rows, with each completion and its score."""
    settings = config.evaluation
    prompts = [chat_prompt(q, config.prompt.system) for q in rows["question"]]
    greedy, greedy_lengths = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=settings.max_new_tokens,
        batch_size=settings.batch_size,
        progress=config.monitoring.progress,
        desc=desc,
    )
    completions = [g[0] for g in greedy]
    scores = _accuracy(config)(completions, solution=list(rows["solution"]))
    scored = [s for s in scores if s is not None]
    formats = [split_r1(c) is not None for c in completions]
    lengths = [n[0] for n in greedy_lengths]
    return {
        "problems": len(rows),
        "excluded": len(scores) - len(scored),  # gold answer unparseable or verification failed
        "accuracy": statistics.fmean(scored) if scored else None,
        "accuracy_ci95": list(wilson_interval(sum(s > 0.5 for s in scored), len(scored))) if scored else None,
        "format_rate": statistics.fmean(formats) if formats else None,
        "mean_completion_tokens": statistics.fmean(lengths) if lengths else None,
        "truncated_rate": statistics.fmean(n >= settings.max_new_tokens for n in lengths) if lengths else None,
        "completions": completions,
        "scores": scores,
        "formats": formats,
    }


def evaluate(ctx: StageContext, model_reference: str, rows: Dataset, label: str) -> dict[str, Any]:
    """Evaluate a model on canonical rows; write RUN/eval/<label>.json and return the result."""
    config, settings = ctx.config, ctx.config.evaluation
    rows = rows.select(range(min(settings.max_samples or len(rows), len(rows))))
    tokenizer = load_tokenizer(config.model, model_reference)
    model = load_model(config.model, model_reference, ctx.hardware, for_training=False).eval()

    started = time.perf_counter()
    scored = greedy_scores(model, tokenizer, rows, config, desc=f"eval {label}")
    completions, formats = scored.pop("completions"), scored.pop("formats")
    # scored["scores"] stays: per problem, in order, for paired comparisons between models on the same problems
    result: dict[str, Any] = {
        "label": label,
        "model": model_reference,
        "dataset": config.dataset.name,
        **scored,
        "pass_at_k": {},
    }
    if settings.num_samples > 1:
        accuracy = _accuracy(config)
        sampled, _ = generate(
            model,
            tokenizer,
            [chat_prompt(q, config.prompt.system) for q in rows["question"]],
            max_new_tokens=settings.max_new_tokens,
            batch_size=max(1, settings.batch_size // settings.num_samples),
            samples=settings.num_samples,
            temperature=settings.temperature,
            progress=config.monitoring.progress,
            desc=f"pass@k {label}",
        )
        per_problem = []
        for samples, gold in zip(sampled, rows["solution"], strict=True):
            verdicts = accuracy(samples, solution=[gold] * len(samples))
            if all(v is not None for v in verdicts):
                per_problem.append(sum(v > 0.5 for v in verdicts))
        result["pass_at_k"] = {
            str(k): statistics.fmean(pass_at_k(settings.num_samples, c, k) for c in per_problem)
            if per_problem
            else None
            for k in settings.pass_k
        }
    result["seconds"] = time.perf_counter() - started
    result["samples"] = [
        {"question": q, "gold": g, "completion": c, "correct": s, "format": f}
        for q, g, c, s, f in list(
            zip(rows["question"], rows["solution"], completions, scored["scores"], formats, strict=True)
        )[:_SAMPLES_KEPT]
    ]
    write_json(ctx.run.eval_path(label), result)
    return result


class EvaluateEvery(TrainerCallback):
    """Greedy pass@1 and format rate on the first `evaluation.during_training_samples` held-out problems every
    `evaluation.every_steps` optimizer steps: a `kind: eval` record in metrics.jsonl, a console line, report curves."""

    def __init__(self, ctx: StageContext, stage: str, held_out: Dataset, tokenizer):
        settings = ctx.config.evaluation
        self.ctx, self.stage, self.tokenizer, self.every = ctx, stage, tokenizer, settings.every_steps
        self.rows = held_out.select(range(min(settings.during_training_samples, len(held_out))))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if not self.every or state.global_step % self.every or not state.is_world_process_zero:
            return
        padding_side, was_training = self.tokenizer.padding_side, model.training
        model.eval()
        try:
            scored = greedy_scores(
                model, self.tokenizer, self.rows, self.ctx.config, desc=f"eval @ {state.global_step}"
            )
        finally:  # the trainer's collator pads on its own side, and the model trains on
            self.tokenizer.padding_side = padding_side
            model.train(was_training)
        record = {"stage": self.stage, "kind": "eval", "step": state.global_step}
        record |= {f"eval/{key}": scored[key] for key in ("accuracy", "format_rate", "mean_completion_tokens")}
        self.ctx.run.append("metrics.jsonl", record)
        accuracy, formats = scored["accuracy"], scored["format_rate"]
        logger.warning(
            "  eval    [%s step %d] held-out pass@1 %s · format %.0f%% · %d problems",
            self.stage,
            state.global_step,
            "n/a" if accuracy is None else f"{accuracy:.1%}",
            100 * formats,
            scored["problems"],
        )


def main(config: R1kitConfig) -> dict[str, Any]:
    """`r1kit eval`: one model on the held-out rows of the data; the JSON goes to RUN/eval/eval.json."""
    hardware = setup_hardware(config.model.device, config.model.precision, config.model.threads)
    reference = model_reference(config)
    rows = load_eval_rows(config.dataset)
    run = RunDir(config.run.output_dir or Path("runs") / time.strftime("eval-%Y%m%d-%H%M%S"))
    result = evaluate(StageContext(config, run, hardware), reference, rows, "eval")
    print_eval_table({"eval": result}, title=f"r1kit eval · {config.model.name}")
    logger.warning("evaluation written to %s", run.eval_path("eval"))
    return result
