"""A pass-rate curriculum for GRPO (`curriculum.enabled`): each training prompt is scored with k samples from the
stage's model, and GRPO trains on the prompts whose pass rate lies between the configured bounds.

Why: a group whose completions all get the same reward has zero advantage and teaches nothing; a prompt the model
always solves, or never does, gives exactly such groups. The pass-rate histogram is written to
RUN/<stage>/pass_rates.json (and shown in the report); a resumed stage reuses it, so it trains on the same prompts.

With `curriculum.rescore_every` N > 0 the policy outgrows its first scores, so every N optimizer steps the scored
prompts are scored again with the policy being trained (`Rescore`) and the kept set follows. The trainer's data is
then all scored prompts; at each rollout a prompt outside the kept set gives its place to a kept one (`KeptPrompts`).
Each re-scoring is appended to pass_rates.json under `rescored`; a resumed stage restores the kept set of its
checkpoint's step and reuses a re-scoring already made instead of sampling it again.
"""

from __future__ import annotations

import json
import logging
import random
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import TrainerCallback

from r1kit import distributed
from r1kit.atomic import json_digest, write_json
from r1kit.config.schema import R1kitConfig, SamplingConfig
from r1kit.data.loading import DatasetError, drawn_indices
from r1kit.fast.generation import PolicySampler, row_seeds, sampler_for
from r1kit.models import load_model, load_tokenizer
from r1kit.prompts import chat_prompt
from r1kit.rewards.text import think_opened_by
from r1kit.stages.common import StageContext
from r1kit.stages.evaluate import sample_scores
from r1kit.stages.traces import sample_from

logger = logging.getLogger("r1kit")

# A scoring's rows hash (seed key…, prompt's place, sample); a rollout's rows hash (run seed, step, rollout ≥ 1, row).
# The scoring's keys, (run seed, SCORING) before training and (run seed, step, RESCORING) after a step, hold a negative
# number where a rollout's hold a step or a rollout: no scoring draws a rollout's random streams.
SCORING, RESCORING = -1, -2


def pass_rate_filter(rates: Sequence[float | None], low: float, high: float) -> tuple[list[int], dict[str, int]]:
    """Indices of the prompts whose pass rate is within [low, high], and the histogram of all rates.

    >>> pass_rate_filter([0.0, 0.25, 0.5, 1.0, None], 0.1, 0.9)
    ([1, 2], {'0.00': 1, '0.25': 1, '0.50': 1, '1.00': 1, 'unscored': 1})
    """
    kept = [i for i, rate in enumerate(rates) if rate is not None and low <= rate <= high]
    histogram = Counter("unscored" if rate is None else f"{rate:.2f}" for rate in rates)
    return kept, dict(sorted(histogram.items()))


def verified_rates(config: R1kitConfig, samples: Sequence[Sequence[str]], golds: Sequence[str]) -> list[float | None]:
    """Share of each prompt's completions whose answer verifies against its gold (None where the gold cannot be read
    or hangs the verifier; an answer it could not judge counts wrong, as in evaluation)."""
    rates: list[float | None] = []
    for scores in sample_scores(config, samples, golds)[0]:
        verdicts = [v for v in scores if v is not None]
        rates.append(statistics.fmean(v >= 1.0 for v in verdicts) if verdicts else None)
    return rates


def _sampling(config: R1kitConfig, prompts: int) -> SamplingConfig:
    return SamplingConfig(
        max_prompts=prompts,
        samples_per_prompt=config.curriculum.samples_per_prompt,
        max_new_tokens=config.grpo.max_completion_length,
        temperature=config.grpo.temperature,  # the rollouts' own temperature: the pass rate GRPO will see
        batch_size=config.evaluation.batch_size,
    )


def sampled(
    model,
    tokenizer,
    config: R1kitConfig,
    prompts: list[list[dict]],
    desc: str,
    sampler: PolicySampler | None,
    seed_key: tuple[int, ...],
) -> list[list[str]]:
    """`curriculum.samples_per_prompt` completions per prompt, as GRPO samples them (its temperature, restrictions of
    the distribution and length).

    With `sampler` (r1kit's fast sampler over `model`, where it applies) each prompt's rows are seeded by `seed_key`
    and the prompt's place, so any number of processes, or a resumed run, draws the same; else `model.generate`,
    seeded by `seed_key` (the same draws for the same processes and batches)."""
    settings, options = _sampling(config, len(prompts)), config.grpo.sampling_options()
    if sampler is None or options.pop("repetition_penalty") != 1.0:  # a penalty the sampler does not implement
        with torch.random.fork_rng():  # seeded by `seed_key` too: a resumed or --from run picks the same prompts
            torch.manual_seed(row_seeds(seed_key, 0, 1)[0])
            return sample_from(model, tokenizer, prompts, settings, config.monitoring.progress, desc, config.grpo).texts
    k, prompts_per_batch = settings.samples_per_prompt, max(1, settings.batch_size // settings.samples_per_prompt)
    share = distributed.shard(list(enumerate(prompts)))  # (place, prompt): a row's seed names its prompt's place
    texts: list[list[str]] = []
    bar = tqdm(
        total=len(share), desc=desc, disable=not (config.monitoring.progress and distributed.is_main()), leave=False
    )
    for start in range(0, len(share), prompts_per_batch):
        batch = share[start : start + prompts_per_batch]
        # the prompt's tokens as `generate` (and TRL's rollouts) make them: the chat template, no special tokens added
        chats = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for _, p in batch]
        ids = tokenizer(chats, add_special_tokens=False)["input_ids"]
        completions, _ = sampler.sample(
            [prompt for prompt in ids for _ in range(k)],
            settings.max_new_tokens,
            temperature=settings.temperature,
            **options,
            row_seeds=[s for place, _ in batch for s in row_seeds((*seed_key, place), 0, k)],
        )
        texts += [  # each with the start of the reply its chat template wrote, as `generate` gives them
            [
                think_opened_by(chat) + text
                for text in tokenizer.batch_decode(completions[row : row + k], skip_special_tokens=True)
            ]
            for chat, row in zip(chats, range(0, len(completions), k), strict=True)
        ]
        bar.update(len(batch))
    bar.close()
    return distributed.gather(texts)


def pass_rates(ctx: StageContext, model_reference: str, rows: Dataset) -> list[float | None]:
    """Pass rates of `rows` under the model at `model_reference` (a scoring copy, loaded before training)."""
    prompts = [chat_prompt(question, ctx.config.prompt.system) for question in rows["question"]]
    tokenizer = load_tokenizer(ctx.config.model, model_reference)
    model = load_model(ctx.config.model, model_reference, ctx.hardware, for_training=False).eval()
    sampler = sampler_for(model, tokenizer) if ctx.config.fast.generation else None
    samples = sampled(
        model, tokenizer, ctx.config, prompts, "pass rates", sampler, seed_key=(ctx.config.run.seed, SCORING)
    )
    return verified_rates(ctx.config, samples, rows["solution"])


class KeptPrompts:
    """The scored prompts GRPO may train on now (`kept`, row indices); at rollout time a prompt outside them gives
    its place to a kept one.

    >>> kept = KeptPrompts(["a", "b", "c"], kept=[1], seed=0)
    >>> kept.replacements(["a", "a", "b", "b"], step=3)
    [1, 1, None, None]
    >>> KeptPrompts(["a", "b", "a"], kept=[1, 2], seed=0).replacements(["a"], step=0)  # a kept copy of it: kept
    [None]
    """

    def __init__(self, prompts: Sequence[Any], kept: list[int], seed: int):
        # a prompt (as JSON) → its rows: a question twice in the data is one prompt, kept where either copy is (the
        # first copy's verdict alone swapped the kept one out, sometimes for itself)
        self.rows_of: dict[str, list[int]] = {}
        for row, prompt in enumerate(prompts):
            self.rows_of.setdefault(_key(prompt), []).append(row)
        self.seed = seed
        self.kept = kept

    def replacements(self, prompts: Sequence[Any], step: int) -> list[int | None]:
        """For each prompt, the row of the kept prompt that takes its place (None: it is kept itself).

        The pick depends only on the run's seed, the step and the prompt, so every copy of a prompt in a group, in any
        process, gets the same replacement, and a resumed run picks what the uninterrupted one picked."""
        allowed = set(self.kept)
        picks: list[int | None] = []
        for prompt in prompts:
            rows = self.rows_of[_key(prompt)]  # the trainer's data is the scored prompts: every one is known
            if allowed.intersection(rows):
                picks.append(None)
            else:
                picks.append(self.kept[random.Random(f"{self.seed}/{step}/{rows[0]}").randrange(len(self.kept))])
        return picks


def _key(prompt: Any) -> str:
    return json.dumps(prompt, sort_keys=True)


def apply(ctx: StageContext, model_reference: str, train: Dataset) -> tuple[Dataset, list[int] | None]:
    """The training rows GRPO learns from under the curriculum (all rows when none falls within the bounds), and,
    when the curriculum re-scores during training, the rows kept at first (the rows are then all scored prompts,
    and `KeptPrompts` over them tells the trainer's rollouts which to use)."""
    settings = ctx.config.curriculum
    path = ctx.dir / "pass_rates.json"
    # a resumed stage trains on the prompts it chose before (the main process's reading: see r1kit.distributed)
    saved = distributed.from_main(json.loads(path.read_text(encoding="utf-8")) if path.exists() else None)
    now = {
        "bounds": [settings.min_pass_rate, settings.max_pass_rate],
        "samples_per_prompt": settings.samples_per_prompt,
        "scored": min(settings.max_prompts, len(train)),
    }
    then = {key: saved[key] for key in now} if saved is not None else now
    if then != now:
        logger.warning(
            "curriculum: the resumed stage goes on with the prompts it chose (%s), not with the curriculum settings "
            "now (%s); start the stage afresh (without --resume) to score them again",
            json.dumps(then),
            json.dumps(now),
        )
    # a seeded draw: training data in a file's order may be sorted (by level), where the first N are one level alone
    scored = train.select(drawn_indices(len(train), saved["scored"] if saved else now["scored"], ctx.config.run.seed))
    problems = json_digest(scored["question"])
    if saved is None:
        saved = _choose(ctx, pass_rates(ctx, model_reference, scored), len(scored), fallback=range(len(scored)))
        saved["rescored"], saved["problems"] = [], problems
        if distributed.is_main():  # the same rates in every process (sampling gathers them); one writes them
            write_json(path, saved)
    # its choices are places among the problems it scored (a digest saved before 2026-12-06 was of the first five
    # questions alone, a datasets Column's preview: such a run resumes as it did, under that weaker check)
    elif saved.get("problems") not in (problems, json_digest(str(scored["question"]))):
        raise DatasetError(
            f"curriculum: the resumed stage's training problems are not those it scored ({path}): the data or its "
            "split changed since (dataset.*), or an earlier r1kit scored them; start the stage afresh (without "
            "--resume)"
        )
    if not settings.rescore_every:
        return scored.select(saved["trained_on"]), None
    return scored, saved["trained_on"]


def _choose(ctx: StageContext, rates: list[float | None], scored: int, fallback: Sequence[int]) -> dict[str, Any]:
    """The record of one scoring: its histogram, and the prompts trained on (`fallback` when none is in bounds)."""
    settings = ctx.config.curriculum
    kept, histogram = pass_rate_filter(rates, settings.min_pass_rate, settings.max_pass_rate)
    bounds = f"[{settings.min_pass_rate:.2f}, {settings.max_pass_rate:.2f}]"
    if not kept:
        logger.warning(
            "curriculum: no prompt has a pass rate within %s (histogram %s); training on %d prompts instead",
            bounds,
            histogram,
            len(fallback),
        )
    logger.warning("curriculum: %d of %d prompts within %s; pass rates %s", len(kept), scored, bounds, histogram)
    return {
        "samples_per_prompt": settings.samples_per_prompt,
        "bounds": [settings.min_pass_rate, settings.max_pass_rate],
        "histogram": histogram,
        "scored": scored,
        "kept": len(kept),
        "trained_on": kept or list(fallback),
        "rates": rates,
    }


class Rescore(TrainerCallback):
    """Every `curriculum.rescore_every` optimizer steps: the scored prompts scored again with the policy being trained
    (k samples each, at the rollout temperature), and `kept` set to those now within the bounds."""

    def __init__(self, ctx: StageContext, rows: Dataset, kept: KeptPrompts, tokenizer, sampler: PolicySampler | None):
        """`rows`: the trainer's GRPO rows (`prompt`, `solution`) of the scored prompts; `sampler`: the trainer's
        fast sampler (None where it does not apply: then `model.generate` through the adapters)."""
        self.ctx, self.kept, self.tokenizer, self.sampler = ctx, kept, tokenizer, sampler
        self.every = ctx.config.curriculum.rescore_every
        self.prompts, self.golds = rows["prompt"], rows["solution"]
        self.path = ctx.dir / "pass_rates.json"

    def _saved(self) -> dict[str, Any]:
        # the main process's reading: it alone writes the file (see r1kit.distributed)
        return distributed.from_main(
            json.loads(self.path.read_text(encoding="utf-8")) if distributed.is_main() else None
        )

    def on_train_begin(self, args, state, control, **kwargs):
        # a resumed run goes on with the kept set of its checkpoint's step (the first scoring's before any re-scoring)
        earlier = [entry for entry in self._saved()["rescored"] if entry["step"] <= state.global_step]
        if earlier:
            self.kept.kept = earlier[-1]["trained_on"]

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        # not where training ends (its last step, or the time limit, whose callback runs first): nothing would use it
        if step % self.every or step >= state.max_steps or control.should_training_stop:
            return
        saved = self._saved()
        made = [entry for entry in saved["rescored"] if entry["step"] == step]
        if made:  # scored at this step before the run was interrupted: the same policy, the same seed
            self.kept.kept = made[0]["trained_on"]
            return
        padding_side, was_training = self.tokenizer.padding_side, model.training
        model.eval()
        # Seeded by the step, with the training's random state left as it was: a resumed run samples the same.
        # Not training: the speed figures leave its time out.
        with self.ctx.side_work.timed(), torch.random.fork_rng():
            torch.manual_seed(args.seed + step)
            try:
                if self.sampler is not None:
                    self.sampler.refresh()  # this step's policy, LoRA merged (the rollouts refresh it the same way)
                samples = sampled(
                    model,
                    self.tokenizer,
                    self.ctx.config,
                    self.prompts,
                    f"pass rates @ {step}",
                    self.sampler,
                    seed_key=(args.seed, step, RESCORING),
                )
            finally:  # the trainer's collator pads on its own side, and the model trains on
                self.tokenizer.padding_side = padding_side
                model.train(was_training)
        entry = {"step": step} | _choose(
            self.ctx, verified_rates(self.ctx.config, samples, self.golds), len(self.prompts), fallback=self.kept.kept
        )
        self.kept.kept = entry["trained_on"]
        if distributed.is_main():
            write_json(self.path, saved | {"rescored": [*saved["rescored"], entry]})
