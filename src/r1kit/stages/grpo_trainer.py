"""r1kit's GRPO trainer: TRL's `GRPOTrainer` with r1kit's fast rollout and loss paths, and where the time goes.

Subclassing is TRL's documented hook here: the overridden steps keep TRL's signatures and fall back to TRL's own
code wherever a fast path does not apply (several processes, DeepSpeed/FSDP, vLLM or continuous batching,
gradient checkpointing, vision inputs, MoE auxiliary losses, a LoRA on the LM head, generation options the sampler
does not implement, a model whose sampling copy cannot be built, or `fast.* false`), so accelerate, DeepSpeed and
vLLM keep working as in TRL.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

import torch
from accelerate.utils import gather_object
from peft import PeftModel
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOTrainer
from trl.trainer.utils import RepeatSampler

from r1kit.fast.dynamic_sampling import (
    SPLICEABLE,
    dead_groups,
    fresh_group_count,
    gather_batch,
    live_groups,
    process_rows,
    replace_groups,
)
from r1kit.fast.generation import row_seeds, sampler_for
from r1kit.fast.shared_prefix import shared_prefix_logps, supports, unsupported_because
from r1kit.models import own_generation_settings_aside
from r1kit.monitoring.callbacks import SideWork
from r1kit.monitoring.console import TIMING_PHASES
from r1kit.monitoring.recorder import RolloutRecorder
from r1kit.rewards.functions import cut_at_limit
from r1kit.rewards.guard import no_verdict_as_group_mean
from r1kit.rewards.step_credit import process_rows_advantages, step_verdicts, token_ends
from r1kit.rewards.text import reply_with, think_opened_by
from r1kit.stages.curriculum import RESCORING, KeptPrompts

logger = logging.getLogger("r1kit")

ROLLOUTS_FILE = "rollouts_{process}.pt"  # in a checkpoint inside a generation cycle: the rollouts left to train on
RESAMPLING = RESCORING - 1  # the seed-key tag of dynamic sampling's prompt draws (the curriculum's are -1 and -2)


class GroupRewards:
    """How TRL's group trainers (GRPO, RLOO) score under r1kit:
    - the rewards read each reply as the model gives it: where the chat template's generation prompt opens `<think>`
      itself (DeepSeek-R1-Distill), TRL decodes only the tokens after it, and the strict format would score every
      completion 0, so the opening is put back in front (`think_opened_by`);
    - an item a reward gave no verdict (None) counts at its group's mean of that reward, not at 0
      (`no_verdict_as_group_mean`). TRL's `_calculate_rewards` returns the whole generation batch's rewards, gathered
      from every process, so groups are whole."""

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        openings: dict[str, str] = {}  # each prompt comes num_generations times: rendered once
        replies = []
        for prompt, completion in zip(prompts, completions, strict=True):
            key = repr(prompt)
            if key not in openings:
                openings[key] = think_opened_by(self._rendered_prompt(prompt))
            replies.append(reply_with(openings[key], completion))
        rewards = super()._calculate_rewards(inputs, prompts, replies, completion_ids_list)
        group_size = self.num_generations if self.model.training else self.num_generations_eval
        return no_verdict_as_group_mean(rewards, group_size)

    def _rendered_prompt(self, prompt) -> str:
        """The text the model continued: a plain prompt as is, a conversation through the chat template."""
        if isinstance(prompt, str):
            return prompt
        return self.processing_class.apply_chat_template(
            prompt, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
        )


class RolloutsInCheckpoints:
    """How TRL's group trainers (GRPO, RLOO) checkpoint under r1kit: a generation's rollouts are trained on over
    several optimizer steps where num_iterations > 1 or steps_per_generation exceeds gradient_accumulation_steps, and
    a checkpoint inside such a cycle keeps them (each process its own), as TRL keeps its adaptive-entropy state.
    Resumed without them, TRL generated afresh at the checkpoint step, for prompts already trained on, and the run
    went off the uninterrupted one's course. The prompts' order goes on as it would in any epoch
    (`EpochOrderSampler`)."""

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        generate_every = self.args.steps_per_generation * self.num_iterations  # micro-batches
        if self._buffered_inputs is not None and self._step % generate_every:
            folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            torch.save({"step": self._step, "rollouts": self._buffered_inputs}, self._rollouts_in(folder))

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None and (saved := self._rollouts_in(Path(checkpoint))).exists():
            state = torch.load(saved, map_location=self.accelerator.device, weights_only=True)
            self._step, self._buffered_inputs = state["step"], state["rollouts"]

    def _rollouts_in(self, checkpoint: Path) -> Path:
        """This process's rollouts file in a checkpoint folder."""
        return checkpoint / ROLLOUTS_FILE.format(process=self.accelerator.process_index)

    _epoch_order: EpochOrderSampler | None = None  # the training prompts' sampler, told each epoch's number

    def _get_train_sampler(self, dataset=None):
        """TRL's sampler, resumable in any epoch (`EpochOrderSampler`)."""
        made = super()._get_train_sampler(dataset)
        self._epoch_order = EpochOrderSampler(
            data_source=made.data_source,
            mini_repeat_count=made.mini_repeat_count,
            batch_size=made.batch_size,
            repeat_count=made.repeat_count,
            shuffle=made.shuffle,
            seed=made.seed,
        )
        return self._epoch_order

    def _run_epoch(self, model, epoch, *args, **kwargs):
        # told here: transformers' own `set_epoch` call does not reach a sampler under several processes resumed
        # mid-epoch (accelerate's batch-sampler shard, wrapped to skip the batches trained)
        if self._epoch_order is not None:
            self._epoch_order.set_epoch(epoch)
        return super()._run_epoch(model, epoch, *args, **kwargs)


class EpochOrderSampler(RepeatSampler):
    """TRL's RepeatSampler, whose order in epoch k is that of an uninterrupted run's also after a resume. It draws each
    epoch's order from one generator seeded once and ignored `set_epoch`, so a resumed run started its order over: a
    GRPO stage resumed in its second epoch trained on the first epoch's prompts in the first epoch's order again (a
    curriculum's few kept prompts make a second epoch common). Told its epoch, it replays the orders before it."""

    def set_epoch(self, epoch: int) -> None:
        if self.shuffle and self.seed is not None:
            self.generator.manual_seed(self.seed)
            for _ in range(epoch):  # the orders of the epochs before this one
                torch.randperm(self.num_samples, generator=self.generator)


class R1kitGRPOTrainer(GroupRewards, RolloutsInCheckpoints, GRPOTrainer):
    def __init__(
        self,
        *args,
        shared_prefix: bool = True,
        fast_generation: bool = True,
        resample_retries: int = 0,
        step_credit: float = 0.0,
        curriculum: KeptPrompts | None = None,
        side_work: SideWork | None = None,
        recorder: RolloutRecorder | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.recorder = recorder  # the rollouts the monitor describes: told which groups dynamic sampling left out
        # evaluation and re-scoring between steps: not part of any step's time
        self.side_work = side_work or SideWork()
        self._side_seconds_at_close = self.side_work.seconds
        self.curriculum = curriculum  # a re-scored curriculum: rollouts only of the prompts it keeps now
        self.resample_retries = resample_retries  # DAPO dynamic sampling: 0 is off
        self.step_credit = step_credit  # weight of the process advantage from checked steps: 0 is off
        self.shared_prefix = (
            shared_prefix
            and self._single_plain_process()
            and not self.args.gradient_checkpointing  # it turns the cache off, and the shared prompt lives there
            and self.args.entropy_coef == 0.0  # an entropy bonus needs the entropy's gradient: TRL's kernel has it
            and not self.args.use_adaptive_entropy
        )
        # None where it does not apply, or its sampling copy cannot be built: then TRL's generation
        self.sampler = (
            sampler_for(self.model, self._tokenizer) if fast_generation and self._fast_generation_applies() else None
        )
        if (shared_prefix or fast_generation) and (reason := unsupported_because(self._causal_lm(self.model))):
            logger.warning("fast.shared_prefix, fast.generation: TRL's own paths are used (%s)", reason)
        lacks = self._options_the_sampler_lacks()
        if fast_generation and lacks:  # slower rollouts: say why
            logger.warning(
                "fast.generation: TRL's generation samples the rollouts (r1kit's sampler has no %s)", ", ".join(lacks)
            )
        self._sampled_at_step: int | None = None  # the optimizer step the sampler's weights are from
        self._rollouts_this_step = 0  # sampler calls at that step (dynamic sampling adds some): part of row seeds
        self._scored_at: int | None = None  # the optimizer step the rollouts being trained on were made at
        self._said_unspliceable = False
        self._prompt_keys: list[str] | None = None  # each training row's prompt (its repr), read once for resampling
        self._loss_logps: torch.Tensor | None = (
            None  # the last log-probs computed (the loss's), for the mismatch metric
        )
        self._phase_seconds: dict[str, float] = defaultdict(float)
        self._step_started: float | None = None

    def _plain_model(self) -> bool:
        """Whole weights in every process (no DeepSpeed or FSDP sharding), a model the fast paths know."""
        causal_lm = self._causal_lm(self.model)
        return (
            not (self.is_deepspeed_enabled or self.is_fsdp_enabled)
            and supports(causal_lm)
            and type(causal_lm.get_output_embeddings()) is torch.nn.Linear  # no adapter on the LM head
        )

    def _single_plain_process(self) -> bool:
        # The shared-prefix loss calls the model's modules directly: under DDP that would skip the gradient sync.
        return self.accelerator.num_processes == 1 and self._plain_model()

    def _options_the_sampler_lacks(self) -> list[str]:
        """Generation options of TRL's config that r1kit's sampler does not implement, where set."""
        return ["repetition_penalty"] * (self.repetition_penalty != 1.0) + list(self.args.generation_kwargs or {})

    def _fast_generation_applies(self) -> bool:
        return (
            self._plain_model()
            and not (self.use_vllm or self.use_transformers_continuous_batching or self._is_vlm or self.tools)
            and not self._options_the_sampler_lacks()
        )

    @staticmethod
    def _causal_lm(model):
        return model.get_base_model() if isinstance(model, PeftModel) else model

    # ------------------------------------------------------------------------------------------ the loss path

    def _get_per_token_logps_and_entropies(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        **multimodal,
    ):
        if not self.shared_prefix or compute_aux_loss or any(value is not None for value in multimodal.values()):
            found = super()._get_per_token_logps_and_entropies(
                model,
                input_ids,
                attention_mask,
                logits_to_keep,
                batch_size,
                compute_entropy,
                compute_aux_loss,
                **multimodal,
            )
            # the sampling gap on this path too: gradient checkpointing or a mixture of experts' router loss send the
            # loss here, where the sampler's drift went unmeasured
            self._loss_logps = found[0]
            return found
        causal_lm = self._causal_lm(self.accelerator.unwrap_model(model))
        split = input_ids.size(1) - logits_to_keep  # prompt | completion
        batch_size = batch_size or input_ids.size(0)  # chunks, as TRL's path: a smaller memory peak
        logps, entropies = [], []
        for start in range(0, input_ids.size(0), batch_size):
            rows = slice(start, start + batch_size)
            with self.accelerator.autocast():
                chunk_logps, chunk_entropies = shared_prefix_logps(
                    causal_lm,
                    input_ids[rows, :split],
                    attention_mask[rows, :split],
                    input_ids[rows, split:],
                    attention_mask[rows, split:],
                    self.temperature,
                    compute_entropy,
                )
            logps.append(chunk_logps)
            entropies.append(chunk_entropies)
        self._loss_logps = torch.cat(logps)
        return self._loss_logps, torch.cat(entropies) if compute_entropy else None, None

    def _compute_loss(self, model, inputs):
        loss = super()._compute_loss(model, inputs)
        sampled = inputs.get("sampling_per_token_logps")
        # only in the optimizer step the rollouts were made at: a later one (num_iterations > 1, or a generation batch
        # of several steps) measures how far training has moved the policy since
        first_pass = self._scored_at == self.state.global_step
        if (
            first_pass
            and sampled is not None
            and self._loss_logps is not None
            and self._loss_logps.shape == sampled.shape
        ):
            # how far the sampler's policy (merged LoRA weights) is from the one the loss differentiates
            mask = inputs["completion_mask"].bool()
            if mask.any():  # every completion masked (mask_truncated_completions, all cut): no token, no figure
                gap = (self._loss_logps.detach() - sampled)[mask].abs().mean()
                self._metrics["train"]["fast/sampling_logprob_gap"].append(gap.item())
        return loss

    # ------------------------------------------------------------------------------------------- rollouts

    def _generate_and_score_completions(self, inputs):
        # the scoring phase: what this takes besides generation and rewards (the old-policy and reference forwards,
        # tokenising, dynamic sampling's splicing, step credit); the backward pass no longer absorbs it
        return self._timed_apart("scoring", self._scored_batch, inputs)

    def _scored_batch(self, inputs):
        if self.model.training:  # an evaluation's rollouts are neither trained on nor the curriculum's
            self._scored_at = self.state.global_step
            if self.curriculum is not None:
                inputs = self._kept_rows(inputs)
        batch = super()._generate_and_score_completions(inputs)
        if not self.model.training or not (self.resample_retries or self.step_credit):
            return batch
        if set(batch) - SPLICEABLE:  # parts it cannot splice or credit (images, tools): said once, not skipped silently
            if not self._said_unspliceable:
                logger.warning(
                    "grpo: rollouts with %s: dynamic sampling and step credit are off for them",
                    ", ".join(sorted(set(batch) - SPLICEABLE)),
                )
                self._said_unspliceable = True
            return batch
        if self.resample_retries:
            batch = self._replace_dead_groups(batch, [row["prompt"] for row in inputs])
        if self.step_credit:
            batch["advantages"] = batch["advantages"].unsqueeze(1) + self.step_credit * self._process_advantages(batch)
        return batch

    def _replace_dead_groups(self, batch: dict, prompts: list) -> dict:
        """DAPO's dynamic sampling on the whole generation batch (gathered from every process, where there are
        several: see r1kit.fast.dynamic_sampling); each process returns with its own slice of the result. `prompts`:
        this process's rows' prompts, which no fresh group repeats."""
        size, pad, replaced = self.num_generations, self._tokenizer.pad_token_id, 0
        accelerator, several = self.accelerator, self.accelerator.num_processes > 1
        whole = gather_batch(batch, accelerator, pad) if several else batch
        drawn = {repr(prompt) for prompt in (gather_object(prompts) if several else prompts)}
        # TRL logs each scoring's reward, its spread and lengths: the retries' rollouts are not the batch trained on
        logged = {key: len(values) for key, values in self._metrics["train"].items()}
        # and counts each scoring's tokens as seen: those of the batch trained on count, not the retries' (throughput
        # and MFU read the count as trained tokens)
        seen, original_tokens = self.state.num_input_tokens_seen, _tokens(whole)
        original = self.recorder.latest() if self.recorder else None  # this batch as the rewards saw it
        for retry in range(self.resample_retries):
            dead = dead_groups(whole["advantages"], size)  # the same in every process: the same whole batch
            if not len(dead):
                break
            rows = self._fresh_rows(fresh_group_count(len(dead), size, accelerator.num_processes), retry, drawn)
            drawn |= {repr(row["prompt"]) for row in rows}
            share = len(rows) // accelerator.num_processes
            mine = rows[accelerator.process_index * share : (accelerator.process_index + 1) * share]
            fresh = super()._generate_and_score_completions(mine)
            fresh_recorded = self.recorder.latest() if self.recorder else None
            fresh = gather_batch(fresh, accelerator, pad) if several else fresh
            alive = live_groups(fresh["advantages"], size)[: len(dead)]
            if len(alive):
                whole = replace_groups(whole, dead[: len(alive)], fresh, alive, size, pad)
                replaced += len(alive)
            if original is not None and fresh_recorded is not None:  # the monitor describes what trains
                original.left_out |= set(dead[: len(alive)].tolist())
                fresh_recorded.left_out = set(range(len(fresh["advantages"]) // size)) - set(alive.tolist())
        for key, values in self._metrics["train"].items():
            del values[logged.get(key, 0) :]
        self.state.num_input_tokens_seen = seen - original_tokens + _tokens(whole)
        self._metrics["train"]["num_tokens"] = [self.state.num_input_tokens_seen]
        self._metrics["train"]["dynamic_sampling/replaced_groups"].append(float(replaced))
        self._metrics["train"]["dynamic_sampling/zero_advantage_groups_left"].append(
            float(len(dead_groups(whole["advantages"], size)))
        )
        return process_rows(whole, accelerator) if several else whole

    def _process_advantages(self, batch: dict) -> torch.Tensor:
        """[rows, completion tokens] process advantages of the batch's checked arithmetic steps (`step_credit`), each
        normalised within its prompt's group. Under several processes a group may span two processes' rows: the
        steps of the whole generation batch are gathered (process order is the batch's order) and each process
        keeps its own rows."""
        decode = partial(self._tokenizer.decode, skip_special_tokens=True)
        # each row's prompt as the policy read it: true steps count where they work on its numbers (`counted_steps`)
        prompts = [
            decode([token for token, kept in zip(ids, mask, strict=True) if kept])
            for ids, mask in zip(batch["prompt_ids"].tolist(), batch["prompt_mask"].tolist(), strict=True)
        ]
        steps = []
        rows = zip(batch["completion_ids"].tolist(), batch["completion_mask"].tolist(), prompts, strict=True)
        for ids, mask, prompt in rows:
            ids = ids[: sum(mask)]
            cut = cut_at_limit(ids, self.max_completion_length, self.eos_token_ids)  # its last number may be cut short
            steps.append(step_verdicts(decode(ids), token_ends(decode, ids), prompt, cut) if ids else [])
        by_process = gather_object([steps])  # one list per process, in process order
        verdicts = [holds for rows in by_process for row in rows for _, holds in row]
        completions = sum(map(len, by_process))
        self._metrics["train"]["step_credit/steps_per_completion"].append(len(verdicts) / completions)
        # no step checked is no share (0.0 read as every step right; TRL's log leaves NaN out of a window's mean)
        false_share = verdicts.count(False) / len(verdicts) if verdicts else math.nan
        self._metrics["train"]["step_credit/false_step_share"].append(false_share)
        width = batch["completion_ids"].size(1)
        advantages = process_rows_advantages(by_process, self.accelerator.process_index, width, self.num_generations)
        return advantages.to(batch["advantages"].device)

    def _kept_rows(self, inputs: list[dict]) -> list[dict]:
        """The rollout's rows, each prompt the curriculum no longer keeps replaced by one it keeps."""
        picks = self.curriculum.replacements([row["prompt"] for row in inputs], self.state.global_step)
        # each process holds its share of the generation batch (a group may span two): the whole batch's count
        mine = torch.tensor([float(sum(pick is not None for pick in picks))], device=self.accelerator.device)
        swapped = self.accelerator.gather(mine).sum().item()
        self._metrics["train"]["curriculum/kept_prompts"].append(float(len(self.curriculum.kept)))
        self._metrics["train"]["curriculum/swapped_prompts"].append(swapped / self.num_generations)
        return [row if pick is None else self.train_dataset[pick] for row, pick in zip(inputs, picks, strict=True)]

    def _fresh_rows(self, groups: int, retry: int, drawn: set[str] = frozenset()) -> list[dict]:
        """`groups` training prompts drawn at random without replacement (those the curriculum keeps, when it is
        re-scored), none of the prompts `drawn` (their repr) this step unless the pool has too few others, each
        repeated for its group. The draw is seeded by the run's seed, the step and the retry: every process draws the
        same prompts, and a resumed run draws what the uninterrupted one would have."""
        pool = self.curriculum.kept if self.curriculum is not None else range(len(self.train_dataset))
        if self._prompt_keys is None:  # one read of the column: a row read per prompt of the pool is slow
            self._prompt_keys = [repr(prompt) for prompt in self.train_dataset["prompt"]]
        # a rollout's seeds hash (seed, step, rollout ≥ 1, row): RESAMPLING < 0 keeps this draw out of their streams.
        # One optimizer step may generate several times (steps_per_generation < gradient accumulation): each of its
        # generations draws other prompts, or one gradient would count the same fresh groups twice.
        key = (self.args.seed, self.state.global_step, RESAMPLING)
        generation = self._step % self.args.gradient_accumulation_steps  # within the step; the same on a resume
        draws = torch.Generator().manual_seed(row_seeds(key, generation * self.resample_retries + retry, 1)[0])
        order = [pool[place] for place in torch.randperm(len(pool), generator=draws).tolist()]
        new = [index for index in order if self._prompt_keys[index] not in drawn]
        order = new + [index for index in order if self._prompt_keys[index] in drawn]  # a small pool repeats last
        picks = [order[draw % len(order)] for draw in range(groups)]
        return [self.train_dataset[index] for index in picks for _ in range(self.num_generations)]

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        if self.sampler is None or images is not None or multimodal_fields:
            # the model's own generation settings aside, as r1kit's sampler has none of them: `generate` filled what
            # TRL's config leaves unset from them (a shipped no_repeat_ngram_size, min_p, min_new_tokens)
            with own_generation_settings_aside(self.accelerator.unwrap_model(self.model)):
                return super()._generate_single_turn(
                    prompt_ids, images, multimodal_fields, num_generations, has_tool_images
                )
        if self._sampled_at_step != self.state.global_step:  # the policy has changed since the last rollouts
            self.sampler.refresh()
            self._sampled_at_step, self._rollouts_this_step = self.state.global_step, 0
        self._rollouts_this_step += 1
        return self.sampler.sample(
            prompt_ids,
            self.max_completion_length,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            min_p=self.min_p,
            # Seeded by the run's seed, the step, the rollout within the step and the row's place in the global batch
            # (TRL gives each process an equal, consecutive slice of it): any number of processes draws the same
            # completions (in fp32; bf16 rounding may differ, see r1kit.fast.generation), and a resumed run draws
            # those the uninterrupted one would have.
            row_seeds=row_seeds(
                (self.args.seed, self.state.global_step, self._rollouts_this_step),
                self.accelerator.process_index * len(prompt_ids),
                len(prompt_ids),
            ),
        )

    # --------------------------------------------------------------------------------- where the time goes

    def _timed(self, phase: str, call, *args, **kwargs):
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            self._phase_seconds[phase] += time.perf_counter() - started

    def _timed_apart(self, phase: str, call, *args, **kwargs):
        """`call`'s time, less the phases timed within it, counted to `phase`."""
        before, started = sum(self._phase_seconds.values()), time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            self._phase_seconds[phase] += time.perf_counter() - started - (sum(self._phase_seconds.values()) - before)

    def _generate(self, prompts):
        return self._timed("generation", super()._generate, prompts)

    def _calculate_rewards(self, *args, **kwargs):
        return self._timed("reward", super()._calculate_rewards, *args, **kwargs)

    def compute_loss(self, *args, **kwargs):
        return self._timed("forward", super().compute_loss, *args, **kwargs)

    def training_step(self, model, inputs, num_items_in_batch):
        if self._step_started is None:
            self._step_started = time.perf_counter()
        # what training_step spends outside generation, rewards, scoring and the forward: the backward pass
        output = self._timed_apart("backward", super().training_step, model, inputs, num_items_in_batch)
        if self._step % self.current_gradient_accumulation_steps == 0:  # an optimizer step is complete
            self._close_step()
        return output

    def _close_step(self) -> None:
        """Log this optimizer step's phases; `other` is the rest of the wall time since the previous step ended
        (the optimizer step, data loading, callbacks), less side work (evaluation, re-scoring) in between."""
        now = time.perf_counter()
        measured = sum(self._phase_seconds[phase] for phase in TIMING_PHASES if phase != "other")
        side = self.side_work.seconds - self._side_seconds_at_close
        self._side_seconds_at_close = self.side_work.seconds
        self._phase_seconds["other"] = max(0.0, now - self._step_started - measured - side)
        for phase in TIMING_PHASES:
            self._metrics["train"][f"timing/{phase}_seconds"].append(self._phase_seconds[phase])
        self._phase_seconds.clear()
        self._step_started = now


def _tokens(batch: dict) -> int:
    """Prompt and completion tokens of a scored batch (whole: gathered from every process), as TRL counts them: a
    completion cut at the limit counts its whole length, the batch's width, where `mask_truncated_completions` has
    zeroed its mask (every other completion's mask holds one token at least, its EOS)."""
    lengths = batch["completion_mask"].sum(dim=1)  # (rows,)
    lengths = torch.where(lengths > 0, lengths, batch["completion_mask"].shape[1])
    return int(batch["prompt_mask"].sum().item() + lengths.sum().item())
