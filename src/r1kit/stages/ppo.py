"""PPO: r1kit's own trainer (TRL removed its PPOTrainer), with TRPO's natural-gradient step as the other update.

One step: sample a completion for each of `prompts_per_step` training prompts → score each (the `rewards` section's
rule-based rewards, weighted as in GRPO, plus an optional reward model) → per-token rewards: a KL penalty to the
input model on every token, the sequence score on the last → values from a linear head on the policy's last hidden
state → GAE advantages → update: `ppo_epochs` passes of PPO's clipped surrogate and clipped value loss over
minibatches (`policy_update: clip`), or one TRPO step on the policy while AdamW fits the value head (`trpo`).
The reference is the input model: with LoRA, the policy with its adapter disabled (no second copy).

Shapes: B completions, P prompt width (left-padded), T completion width (right-padded), V vocabulary, D hidden size.
The math is in small pure functions first, tested by hand; the stage's loop follows.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from peft import PeftModel, get_peft_model
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import TrainerState

from r1kit import distributed
from r1kit.atomic import build_complete
from r1kit.config.schema import PPOConfig, R1kitConfig
from r1kit.config.sources import ConfigError
from r1kit.data.loading import grpo_rows
from r1kit.fast.generation import row_seeds, sampler_for
from r1kit.hardware import cpu_quota
from r1kit.models import (
    eos_token_ids,
    load_model,
    load_tokenizer,
    own_generation_settings_aside,
    plain_generation_config,
    save_adapter,
    save_for_inference,
)
from r1kit.monitoring.alerts import TrendAlerts
from r1kit.monitoring.callbacks import (
    TorchProfiler,
    example_block,
    external_figures,
    replay_alerts,
    report_alert,
    system_usage,
)
from r1kit.monitoring.recorder import RolloutRecorder
from r1kit.rewards.reward_model import resolve_reward_models
from r1kit.rewards.text import think_opened_by
from r1kit.runs import complete_checkpoints
from r1kit.stages.common import StageContext, StageInputs, StageOutput, lora_config, prepare_resume, stage_main
from r1kit.stages.evaluate import EvaluateEvery
from r1kit.stages.grpo import build_rewards, reward_weights

logger = logging.getLogger("r1kit")
_KEEP_CHECKPOINTS = 2


# ----------------------------------------------------------------------------------------------------- the math


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def whiten(
    x: torch.Tensor, mask: torch.Tensor, total: Callable[[torch.Tensor], torch.Tensor] = lambda sum_: sum_
) -> torch.Tensor:
    """Mean 0, std 1 over the masked entries (zeros elsewhere): advantages on one scale whatever the rewards'.
    `total` turns a sum over this batch into one over the whole batch (the sum over processes, data-parallel)."""
    count = total(mask.sum()).clamp(min=1)
    mean = total((x * mask).sum()) / count
    return (x - mean) * torch.rsqrt(total(((x - mean) ** 2 * mask).sum()) / count + 1e-8) * mask


def kl_penalty_rewards(
    logps: torch.Tensor, ref_logps: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """Per-token rewards (B, T): -kl_coef·(logp - ref_logp) on each completion token (the sampled-token estimate of
    KL to the reference), and each sequence's score (B,) added on its last token."""
    rewards = -kl_coef * (logps - ref_logps) * mask
    last = mask.sum(1).long().clamp(min=1) - 1  # (B,)
    rewards[torch.arange(len(scores)), last] += scores
    return rewards


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over completion tokens: (advantages, returns = advantages + values), (B, T).
    Past a completion's end rewards and values are 0, so its last token bootstraps from 0 (the episode ends)."""
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(len(rewards), device=rewards.device)
    for t in reversed(range(rewards.size(1))):
        next_value = values[:, t + 1] if t + 1 < rewards.size(1) else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    return advantages * mask, (advantages + values) * mask


def clipped_policy_loss(
    logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, cliprange: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate, as a loss to minimise; also the share of tokens where the clip binds and the
    approximate KL ½·mean(log ratio²), both detached."""
    log_ratio = logps - old_logps
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - cliprange, 1 + cliprange)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).float(), mask)
    return loss, clipfrac.detach(), (0.5 * masked_mean(log_ratio**2, mask)).detach()


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, cliprange_value: float
) -> torch.Tensor:
    """½·mean of the larger squared error of the new values and of the new values clipped around the old ones."""
    clipped = old_values + (values - old_values).clamp(-cliprange_value, cliprange_value)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


def adaptive_kl_coef(kl_coef: float, kl: float, target: float, horizon: int, n_samples: int) -> float:
    """Ziegler et al.'s controller: the coefficient grows when the KL is above target, shrinks below it; the
    proportional error is clipped to ±0.2 and the change spread over `horizon` samples."""
    error = min(max(kl / target - 1.0, -0.2), 0.2)
    return kl_coef * (1.0 + error * n_samples / horizon)


def adaptive_kl_stuck(section: PPOConfig) -> str | None:
    """Why ppo.adaptive_kl would leave kl_coef about fixed, or None. Each step moves it by at most ±0.2 ·
    prompts_per_step / kl_horizon: TRL's horizon of 10,000 completions is meant for batches of hundreds.

    >>> print(adaptive_kl_stuck(PPOConfig(adaptive_kl=True, prompts_per_step=8, max_steps=20)))
    ppo.adaptive_kl: 20 steps of 8 completions move kl_coef by 0.3% at most (kl_horizon 10000): about fixed; give ppo.kl_horizon the run's 160 completions or fewer
    >>> adaptive_kl_stuck(PPOConfig(adaptive_kl=True, prompts_per_step=8, max_steps=20, kl_horizon=160)) is None
    True
    """
    most = (1 + 0.2 * section.prompts_per_step / section.kl_horizon) ** section.max_steps - 1
    if not section.adaptive_kl or most >= 0.1:
        return None
    return (
        f"ppo.adaptive_kl: {section.max_steps} steps of {section.prompts_per_step} completions move kl_coef by "
        f"{100 * most:.1f}% at most (kl_horizon {section.kl_horizon}): about fixed; give ppo.kl_horizon the run's "
        f"{section.max_steps * section.prompts_per_step} completions or fewer"
    )


def conjugate_gradient(
    matrix_vector: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int, tolerance: float = 1e-10
) -> torch.Tensor:
    """x ≈ A⁻¹b for a symmetric positive-definite A given only as a product A·v (here A is the Fisher matrix)."""
    x, residual = torch.zeros_like(b), b.clone()
    direction, squared = b.clone(), b @ b
    for _ in range(iters):
        if squared < tolerance:  # solved (or b = 0: nothing to solve)
            break
        product = matrix_vector(direction)
        alpha = squared / (direction @ product)
        x += alpha * direction
        residual -= alpha * product
        new_squared = residual @ residual
        direction = residual + (new_squared / squared) * direction
        squared = new_squared
    return x


def line_search(
    evaluate: Callable[[torch.Tensor], tuple[float, float]],
    full_step: torch.Tensor,
    max_kl: float,
    shrink: float,
    max_backtracks: int,
) -> tuple[float, float, float]:
    """Backtracking along `full_step`: the first fraction (1, shrink, shrink², …) whose step improves the surrogate
    and keeps the KL within `max_kl`; `evaluate(step)` gives (improvement, kl). Returns (fraction, improvement, kl),
    (0, 0, 0) when no fraction is accepted (no step). NaN fails both tests, so it is never accepted."""
    fraction = 1.0
    for _ in range(max_backtracks + 1):
        improvement, kl = evaluate(fraction * full_step)
        if improvement > 0 and kl <= max_kl:
            return fraction, improvement, kl
        fraction *= shrink
    return 0.0, 0.0, 0.0


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


@torch.no_grad()
def _assign(params: list[torch.Tensor], flat: torch.Tensor) -> None:
    for param, chunk in zip(params, flat.split([p.numel() for p in params]), strict=True):
        param.copy_(chunk.view_as(param))


def trpo_step(
    params: list[torch.Tensor],
    gradient: torch.Tensor,
    kl_hessian_vector: Callable[[torch.Tensor], torch.Tensor],
    evaluate: Callable[[torch.Tensor], tuple[float, float]],
    section: PPOConfig,
    average: Callable[[torch.Tensor], torch.Tensor] = lambda vector: vector,
) -> tuple[float, float, float]:
    """One natural-gradient step on `params`: x ≈ F⁻¹g by conjugate gradient, where g is the surrogate's (flat)
    `gradient` and F·v the Hessian-vector product of the mean KL(old‖new) at the old policy (zero gradient there, so
    its Hessian is the Fisher matrix), `kl_hessian_vector(v)`, plus damping·v; step sqrt(2·max_kl / xᵀFx)·x, then the
    line search. `evaluate(old)` gives (improvement, kl) at the current parameters, `old` the flat parameters the
    step started from. Returns (step fraction,
    improvement, kl); the parameters are left moved by the accepted step, or unmoved. Data-parallel, `average` makes
    g and each F·v the mean over the processes, so every process takes the same step.
    """
    g = average(gradient)
    if not g.any():  # e.g. every reward equal and no KL penalty yet: all advantages 0, nothing to do
        return 0.0, 0.0, 0.0

    def fisher_vector(v: torch.Tensor) -> torch.Tensor:
        return average(kl_hessian_vector(v)) + section.trpo_damping * v

    x = conjugate_gradient(fisher_vector, g, section.trpo_cg_iters)
    curvature = (x @ fisher_vector(x)).item()
    if not (curvature > 0 and math.isfinite(curvature)):
        return 0.0, 0.0, 0.0
    old = _flat(params).detach().clone()

    def moved(step: torch.Tensor) -> tuple[float, float]:
        _assign(params, old + step)
        return evaluate(old)

    full_step = math.sqrt(2 * section.trpo_max_kl / curvature) * x  # where the quadratic KL model reaches max_kl
    fraction, improvement, new_kl = line_search(
        moved, full_step, section.trpo_max_kl, section.trpo_backtrack_ratio, section.trpo_max_backtracks
    )
    _assign(params, old + fraction * full_step)
    return fraction, improvement, new_kl


# ------------------------------------------------------------------------------------------------- rollouts


@dataclass
class Rollout:
    """A scored batch of completions, with everything the update reads."""

    input_ids: torch.Tensor  # (B, P+T): left-padded prompt | right-padded completion
    attention_mask: torch.Tensor  # (B, P+T)
    mask: torch.Tensor  # (B, T) float: 1 on completion tokens (EOS included)
    logps: torch.Tensor  # (B, T) log-probs of the sampled tokens under the rollout policy
    values: torch.Tensor  # (B, T)
    hidden: torch.Tensor  # (B, T, D) fp32 features the values came from (TRPO fits the value head on them)
    advantages: torch.Tensor  # (B, T)
    returns: torch.Tensor  # (B, T)

    @property
    def tokens(self) -> torch.Tensor:
        return self.input_ids[:, -self.mask.size(1) :]

    def rows(self, index: torch.Tensor) -> Rollout:
        return Rollout(*(getattr(self, f.name)[index] for f in fields(self)))


def forward(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, width: int, temperature: float, states=False):
    """Temperature-scaled fp32 logits (B, T, V) at the T completion positions, and the last hidden states (B, T, D)
    there when asked. Position P-1+t predicts completion token t: its hidden state is the state token t is chosen
    in, so it also gives that token's value."""
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        # counted from each row's first real token, as `generate` counts them: a left-padded prompt's padding would
        # shift the positions of a model with absolute position embeddings (GPT-2)
        position_ids=(attention_mask.cumsum(1) - 1).clamp(min=0),
        logits_to_keep=width + 1,  # the LM head skips the prompt
        output_hidden_states=states,
        use_cache=False,
    )
    logits = out.logits[:, :-1].float() / temperature
    return logits, out.hidden_states[-1][:, -width - 1 : -1].float() if states else None


def token_logps(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return logits.log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1)


def prompt_indices(n_rows: int, step: int, count: int, seed: int) -> list[int]:
    """The rows of step `step` (0-based): consecutive slices of seeded permutations, one per pass over the data,
    so a resumed run sees the prompts the uninterrupted one would have."""
    indices = []
    for position in range(step * count, (step + 1) * count):
        epoch, offset = divmod(position, n_rows)
        order = torch.randperm(n_rows, generator=torch.Generator().manual_seed(seed + epoch))
        indices.append(int(order[offset]))
    return indices


# ---------------------------------------------------------------------------------------------------- trainer


def _no_completions_table(column: str, values: list) -> None:
    """TRL's `log_extra` (a reward's own columns in its completions table): PPO keeps no such table, and a reward
    that logs one scores the same."""


class PPOTrainer:
    """The policy (LoRA or full), its value head, the reference, the rewards, and the loop with its checkpoints."""

    def __init__(self, ctx: StageContext, model, reference, tokenizer, rows, rewards: dict, evaluate: EvaluateEvery):
        self.ctx, self.section = ctx, ctx.config.ppo
        # each reward tapped, so the best and worst completions go to RUN/completions.jsonl as under TRL's trainers
        weights = {name: weight for name, (_, weight) in rewards.items()}
        self.eos = eos_token_ids(model, tokenizer)
        self.recorder = RolloutRecorder(weights, 1, self.section.max_new_tokens, self.eos)
        rewards = {name: (self.recorder.tap(name, reward), weight) for name, (reward, weight) in rewards.items()}
        self.model, self.reference, self.tokenizer, self.rows, self.rewards = model, reference, tokenizer, rows, rewards
        self.evaluate = evaluate  # the held-out slice every evaluation.every_steps, as TRL's trainers get it
        self.policy = {name: p for name, p in model.named_parameters() if p.requires_grad}
        size = model.config.get_text_config().hidden_size
        self.head = torch.nn.Linear(size, 1, device=model.device)  # fp32; zeros: every value starts at 0
        torch.nn.init.zeros_(self.head.weight), torch.nn.init.zeros_(self.head.bias)
        groups = [{"params": list(self.head.parameters()), "lr": self.section.value_learning_rate}]
        if self.section.policy_update == "clip":  # TRPO moves the policy itself; AdamW fits only the value head
            groups.append({"params": list(self.policy.values()), "lr": self.section.learning_rate})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
        self.kl_coef, self.step = self.section.kl_coef, 0
        self.skipped_steps = 0  # steps with an update dropped for a non-finite loss or gradient
        self._skipped_now = 0  # updates dropped in the current step
        self.last: dict = {}  # the newest step's record, kept in checkpoints: a finished run's figures on a re-run
        # Data-parallel: each process samples and trains on an equal share of each step's prompts; gradients (and
        # TRPO's vectors) are averaged over the processes, so they all keep the same weights.
        self.processes = distributed.count()
        distributed.broadcast_parameters([*self.policy.values(), *self.head.parameters()])
        for name in ("prompts_per_step", "minibatch_size"):
            if getattr(self.section, name) % self.processes:
                raise ConfigError(
                    f"ppo.{name} ({getattr(self.section, name)}) must be a multiple of the {self.processes} processes"
                )
        self.sampler = sampler_for(model, tokenizer) if ctx.config.fast.generation else None

    # --------------------------------------------------------------------------------------------- rollouts

    def sample(self, prompts: list[list[int]], first_row: int = 0) -> list[list[int]]:
        """Completion ids per prompt, through the first EOS (kept), at the section's temperature. The fast sampler
        seeds each row by the run's seed, the step and its place in the step's batch (`first_row` + its index), so
        any number of processes samples the same completions."""
        section = self.section
        if self.sampler is not None:
            self.sampler.refresh()  # the policy's current weights
            seeds = row_seeds((self.seed, self.step), first_row, len(prompts))
            return self.sampler.sample(
                prompts, section.max_new_tokens, temperature=section.temperature, row_seeds=seeds
            )[0]
        width, pad = max(map(len, prompts)), self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.model.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.model.device)
        config = plain_generation_config(section.max_new_tokens, pad, self.eos, temperature=section.temperature)
        with torch.no_grad(), own_generation_settings_aside(self.model):
            out = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, width:].tolist()
        return [row[: next((i + 1 for i, t in enumerate(row) if t in self.eos), len(row))] for row in out]

    def score(
        self, prompts: list, openings: list[str], solutions: list, completion_ids: list[list[int]]
    ) -> tuple[torch.Tensor, dict]:
        """Sequence rewards (B,): the weighted sum of every reward (less ppo.missing_eos_penalty for a reply cut at the
        limit), and each one's mean. An item a reward gave no
        verdict (None) counts at that reward's mean over the batch's judged items, not at 0, so a correct answer
        whose check timed out is not scored as a wrong one (0 where the reward judged none). `openings`: what each
        prompt's chat template wrote of the reply (`think_opened_by`)."""
        texts = self.tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
        # conversational, as TRL's: the reply as the model gives it, after any <think> its chat template opened
        completions = [[{"role": "assistant", "content": o + text}] for o, text in zip(openings, texts, strict=True)]
        total, means = torch.zeros(len(texts)), {}
        # what TRL's trainers pass every reward besides (a plug-in that ramps up by trainer_state.global_step failed
        # under PPO alone): the step being scored as their TrainerState holds it
        epoch = self.step * self.section.prompts_per_step / len(self.rows)
        state = TrainerState(global_step=self.step, max_steps=self.section.max_steps, epoch=epoch)
        for name, (reward, weight) in self.rewards.items():
            logged: dict[str, float] = {}  # what the reward, its verifier and its guard count
            values = reward(
                completions,
                prompts=prompts,
                solution=solutions,
                completion_ids=completion_ids,
                trainer_state=state,
                log_metric=logged.__setitem__,
                log_extra=_no_completions_table,
            )
            # the batch's counts, which the failing-reward alert reads; as plain numbers: a plug-in's numpy float went
            # into the checkpoint's state, which then failed to load (weights_only)
            means |= {key: None if value is None else float(value) for key, value in logged.items()}
            judged = [None if v is None else float(v) for v in values]
            # the mean of what it judged over the whole batch, every process's share of it (one process's own share
            # filled an item with its neighbour's score, or 0 where it judged none of its rows)
            verdicts = [v for v in judged if v is not None]
            summed, counted = distributed.all_sum(torch.tensor([sum(verdicts), len(verdicts)], dtype=torch.float64))
            mean = (summed / counted).item() if counted else None
            total += weight * torch.tensor([(mean or 0.0) if v is None else v for v in judged])
            means[f"rewards/{name}/mean"] = mean  # of what it judged (None: nothing), not of the fill
        if self.section.missing_eos_penalty:  # a reply cut at the limit scores that much less
            cut = torch.tensor([float(ids[-1] not in self.eos) for ids in completion_ids])
            total -= self.section.missing_eos_penalty * cut
        means["rewards/total/mean"] = total.mean().item()  # the reward trained on: the plateau alert watches it
        if self.recorder.rollouts:  # the examples are ranked by it too
            self.recorder.rollouts[-1].trained_on = total.tolist()
        return total, means

    @torch.no_grad()
    def rollout(self, step: int) -> tuple[Rollout, dict]:
        section, tokenizer = self.section, self.tokenizer
        everyone = prompt_indices(len(self.rows), step, section.prompts_per_step, self.seed)
        share = len(everyone) // self.processes
        first = distributed.index() * share  # this process's consecutive share of the step's prompts
        picked = [self.rows[i] for i in everyone[first : first + share]]
        prompts = [row["prompt"] for row in picked]
        texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
        prompt_ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
        completion_ids = self.sample(prompt_ids, first)
        openings = [think_opened_by(text) for text in texts]
        scores, stats = self.score(prompts, openings, [row["solution"] for row in picked], completion_ids)

        pad, width, length = tokenizer.pad_token_id, max(map(len, prompt_ids)), max(map(len, completion_ids))
        pairs = list(zip(prompt_ids, completion_ids, strict=True))
        ids = [[pad] * (width - len(p)) + p + c + [pad] * (length - len(c)) for p, c in pairs]
        attention = [[0] * (width - len(p)) + [1] * (len(p) + len(c)) + [0] * (length - len(c)) for p, c in pairs]
        device = self.model.device
        input_ids, attention_mask = torch.tensor(ids, device=device), torch.tensor(attention, device=device)
        mask = attention_mask[:, width:].float()  # (B, T)
        tokens = input_ids[:, width:]

        with self._mixed_precision():  # the forwards; sampling ran in the weights' own dtype
            logps, ref_logps, hidden, entropy = [], [], [], []
            for rows in torch.arange(len(ids)).split(section.minibatch_size):  # chunks: a smaller memory peak
                logits, features = forward(
                    self.model, input_ids[rows], attention_mask[rows], length, section.temperature, True
                )
                logps.append(token_logps(logits, tokens[rows]))
                hidden.append(features)
                entropy.append(-(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1))
                if self.kl_coef or section.adaptive_kl:
                    with self._reference() as reference:
                        ref = forward(reference, input_ids[rows], attention_mask[rows], length, section.temperature)[0]
                    ref_logps.append(token_logps(ref, tokens[rows]))
            logps, hidden = torch.cat(logps), torch.cat(hidden)
            ref_logps = torch.cat(ref_logps) if ref_logps else logps
            values = self.head(hidden).squeeze(-1).float()  # (B, T), fp32 for GAE whatever autocast ran

        rewards = kl_penalty_rewards(logps, ref_logps, scores.to(device), mask, self.kl_coef)
        advantages, returns = gae(rewards, values, mask, section.gamma, section.lam)
        if section.whiten_advantages:  # over the whole step's batch, every process's share
            advantages = whiten(advantages, mask, distributed.all_sum)
        batch = Rollout(input_ids, attention_mask, mask, logps, values, hidden, advantages, returns)
        stats |= {
            "reward": scores.mean().item(),
            # per completion, as the KL target reads it; not measured without a penalty (no reference forward)
            "kl": ((logps - ref_logps) * mask).sum(1).mean().item() if ref_logps is not logps else None,
            "entropy": masked_mean(torch.cat(entropy), mask).item(),
            "quality/completion_tokens": mask.sum(1).mean().item(),
            "quality/truncated_share": sum(c[-1] not in self.eos for c in completion_ids) / len(completion_ids),
        }
        return batch, self._averaged(stats)

    def _averaged(self, stats: dict) -> dict:
        """Each figure's mean over the processes (equal shares: the figure of the whole batch for per-completion
        means); a figure a process has none of (None, or missing: a reward that judged nothing there, a count a
        timed-out call did not write) is the others' mean."""
        if self.processes == 1:
            return stats
        # every process's keys, in one order (a count may be missing in one: a call that timed out there)
        keys = sorted(set(distributed.gather(list(stats))))
        values = [(0.0, 0.0) if stats.get(key) is None else (float(stats[key]), 1.0) for key in keys]
        sums, counts = distributed.all_sum(torch.tensor(values, dtype=torch.float64)).unbind(1)
        means = [total / count if count else None for total, count in zip(sums.tolist(), counts.tolist(), strict=True)]
        return dict(zip(keys, means, strict=True))

    def _token_share(self, mask: torch.Tensor) -> torch.Tensor:
        """This process's tokens over the mean tokens per process: a local masked mean times it, averaged over the
        processes, is the masked mean over all of them (1 in one process)."""
        return mask.sum() * self.processes / distributed.all_sum(mask.sum()).clamp(min=1)

    def _mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """Its mean over the processes (itself in one process)."""
        return distributed.all_sum(tensor) / self.processes

    @contextmanager
    def _reference(self):
        """The reference model: a separate frozen copy, or the policy with its LoRA adapter disabled."""
        if self.reference is not None:
            yield self.reference
        else:
            with self.model.disable_adapter():
                yield self.model

    # ---------------------------------------------------------------------------------------------- updates

    def update_clip(self, batch: Rollout) -> dict:
        section, totals = self.section, {"loss/policy": 0.0, "loss/value": 0.0, "clipfrac": 0.0, "approx_kl": 0.0}
        count, grad_norms = 0, []
        for _ in range(section.ppo_epochs):
            for rows in torch.randperm(len(batch.mask)).split(section.minibatch_size // self.processes):
                part = batch.rows(rows)
                logits, hidden = forward(
                    self.model, part.input_ids, part.attention_mask, part.mask.size(1), section.temperature, True
                )
                policy_loss, clipfrac, approx_kl = clipped_policy_loss(
                    token_logps(logits, part.tokens), part.logps, part.advantages, part.mask, section.cliprange
                )
                values = self.head(hidden).squeeze(-1)
                value_loss = clipped_value_loss(values, part.values, part.returns, part.mask, section.cliprange_value)
                grad_norms.append(
                    self._optimize((policy_loss + section.vf_coef * value_loss) * self._token_share(part.mask))
                )
                for key, value in zip(totals, (policy_loss, value_loss, clipfrac, approx_kl), strict=True):
                    totals[key] += value.item()
                count += 1
        # NaN when any update was skipped: the non-finite alert names the step
        return self._averaged({key: value / count for key, value in totals.items()}) | {
            "grad_norm": sum(grad_norms) / len(grad_norms)
        }

    def update_trpo(self, batch: Rollout) -> dict:
        """One TRPO step on the policy, every forward over `minibatch_size` completions at a time: a (B, T, V) tensor
        of the whole batch is gigabytes at a large vocabulary, so sums over the batch are taken chunk by chunk."""
        section, params = self.section, list(self.policy.values())
        value_loss = self._fit_values(batch)
        width, tokens = batch.mask.size(1), batch.mask.sum().clamp(min=1)
        chunks = torch.arange(len(batch.mask)).split(section.minibatch_size)
        share = self._token_share(batch.mask)

        def logits_of(part: Rollout) -> torch.Tensor:  # (b, T, V) log-probs at the current parameters
            logits = forward(self.model, part.input_ids, part.attention_mask, width, section.temperature)[0]
            return logits.log_softmax(-1)

        # The math kernel of attention: the flash one on CPU has no double backward, and one kernel for every
        # forward here keeps the old and new policies' numbers comparable.
        with sdpa_kernel(SDPBackend.MATH):
            # the surrogate Σ ratio·A over the batch's tokens and its gradient, at the old parameters (ratio 1 there)
            gradient, old_logps = torch.zeros_like(_flat(params)), []
            for rows in chunks:
                part = batch.rows(rows)
                logps = logits_of(part).gather(-1, part.tokens[..., None]).squeeze(-1)  # (b, T)
                old_logps.append(logps.detach())  # this forward's own: the ratio is exactly 1 at the old parameters
                surrogate = ((logps - logps.detach()).exp() * part.advantages * part.mask).sum() / tokens * share
                gradient += _flat(torch.autograd.grad(surrogate, params))
            old_logps = torch.cat(old_logps)
            surrogate = (batch.advantages * batch.mask).sum() / tokens * share
            # The Fisher products (a double backward each, cg_iters + 1 of them) dominate the step's time, so they
            # use every k-th completion, as OpenAI baselines' TRPO does; the gradient and line search use all.
            fisher = batch.rows(slice(None, None, max(1, round(1 / section.trpo_fisher_fraction))))
            fisher_chunks = torch.arange(len(fisher.mask)).split(section.minibatch_size)
            fisher_tokens, fisher_share = fisher.mask.sum().clamp(min=1), self._token_share(fisher.mask)

            def kl_gradient(rows: torch.Tensor) -> torch.Tensor:  # flat graph of ∇KL(old‖new) over those rows
                part = fisher.rows(rows)
                sub = logits_of(part)
                kl = ((sub.detach().exp() * (sub.detach() - sub)).sum(-1) * part.mask).sum() / fisher_tokens
                return _flat(torch.autograd.grad(kl * fisher_share, params, create_graph=True))

            # every chunk's graph is kept for all the products (the Fisher rows' share of the batch, as before the
            # chunks): rebuilt for each product, the step took up to 4 times as long
            held = [kl_gradient(rows) for rows in fisher_chunks]

            def kl_hessian_vector(v: torch.Tensor) -> torch.Tensor:
                product = torch.zeros_like(v)
                for grad_kl in held:
                    product += _flat(torch.autograd.grad(grad_kl @ v, params, retain_graph=True))
                return product

            @torch.no_grad()
            def evaluate(old_weights: torch.Tensor) -> tuple[float, float]:  # (surrogate gain, mean KL(old‖new))
                moved, gain, new_kl = _flat(params).clone(), tokens.new_zeros(()), tokens.new_zeros(())
                for rows in chunks:
                    part = batch.rows(rows)
                    _assign(params, old_weights)  # the old policy's whole distribution, one chunk at a time
                    old = logits_of(part)
                    _assign(params, moved)
                    new = logits_of(part)
                    ratio = (new.gather(-1, part.tokens[..., None]).squeeze(-1) - old_logps[rows]).exp()
                    gain += (ratio * part.advantages * part.mask).sum() / tokens * share
                    new_kl += ((old.exp() * (old - new)).sum(-1) * part.mask).sum() / tokens * share
                both = self._mean(torch.stack([gain - surrogate, new_kl]))  # the whole batch's
                return both[0].item(), both[1].item()

            fraction, improvement, new_kl = trpo_step(
                params, gradient, kl_hessian_vector, evaluate, section, self._mean
            )
        surrogate = self._mean(surrogate.detach())  # the whole batch's
        return {
            "loss/policy": 0.0 - (surrogate.item() + improvement),  # 0.0 -: no "-0" when nothing moved
            "loss/value": self._mean(torch.tensor(value_loss)).item(),
            "approx_kl": new_kl,
            "trpo/step_fraction": fraction,
            "trpo/improvement": improvement,
        }

    def _fit_values(self, batch: Rollout) -> float:
        """The value head alone on the rollout's (fixed) features: `ppo_epochs` passes of AdamW over minibatches."""
        losses = []
        for _ in range(self.section.ppo_epochs):
            for rows in torch.randperm(len(batch.mask)).split(self.section.minibatch_size // self.processes):
                part = batch.rows(rows)
                values = self.head(part.hidden).squeeze(-1)
                loss = clipped_value_loss(values, part.values, part.returns, part.mask, self.section.cliprange_value)
                self._optimize(loss * self._token_share(part.mask))
                losses.append(loss.item())
        return sum(losses) / len(losses)

    def _optimize(self, loss: torch.Tensor) -> float:
        """One optimizer step on `loss`; its gradient's norm before clipping. A non-finite gradient (a NaN loss gives
        one) is dropped with the step, as `NonFiniteGuard` does under TRL's trainers: one such step would turn every
        weight into NaN."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainable = [p for group in self.optimizer.param_groups for p in group["params"]]
        distributed.average_gradients(trainable)  # before clipping: every process clips the same gradient
        norm = torch.nn.utils.clip_grad_norm_(trainable, self.section.max_grad_norm).item()
        if not math.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)  # parameters without a gradient are left as they are
            self._skipped_now += 1
            return norm
        self.optimizer.step()
        return norm

    # ------------------------------------------------------------------------------------------------- loop

    @property
    def seed(self) -> int:
        return self.ctx.config.run.seed

    def _mixed_precision(self):
        """bf16 autocast over a full fine-tune's fp32 master weights, as TRL's trainers run one (a LoRA's frozen
        weights are bf16 already). fp16 would need a gradient scaler: a full fine-tune there runs in fp32."""
        hardware, full = self.ctx.hardware, not self.ctx.config.model.lora.enabled
        return torch.autocast(hardware.device, dtype=torch.bfloat16, enabled=full and hardware.precision == "bf16")

    def train(self) -> dict:
        ctx = self.ctx
        # the trend alerts TRL's trainers get from TrainingMonitor
        alerts = TrendAlerts(ctx.config.monitoring.alerts, kl_per_completion=True)
        cpus = cpu_quota()  # as TRL's trainers' steps are measured (TrainingMonitor)
        resume = prepare_resume(ctx)
        if resume is not None:
            self.load(resume)
            if distributed.is_main():
                replay_alerts(alerts, ctx.run, ctx.stage)
        tensorboard = _tensorboard(ctx) if distributed.is_main() else None
        profiling = ctx.config.monitoring.profiler
        profiler = TorchProfiler(profiling, ctx.dir / "profile") if profiling.enabled else None
        if profiler is not None:
            profiler.start(distributed.index(), distributed.count())
        try:
            self._steps(alerts, cpus, tensorboard, profiler)
        finally:
            if tensorboard is not None:
                tensorboard.close()
            if profiler is not None:
                profiler.stop()
        return self.last

    def _steps(self, alerts: TrendAlerts, cpus: int, tensorboard, profiler: TorchProfiler | None) -> None:
        ctx, section = self.ctx, self.section
        window, examples_every = [], ctx.config.monitoring.examples_every  # rollouts since the last best/worst
        while self.step < section.max_steps:
            started, cpu_started = time.time(), time.process_time()
            batch, stats = self.rollout(self.step)
            stats["perf/rollout_seconds"] = time.time() - started
            with self._mixed_precision():
                stats |= self.update_clip(batch) if section.policy_update == "clip" else self.update_trpo(batch)
            stats["loss"] = stats["loss/policy"] + section.vf_coef * stats["loss/value"]  # what the alerts watch
            if self._skipped_now:
                self.skipped_steps += 1
                logger.warning(
                    "%s step %d: non-finite loss or gradient, %d update(s) skipped (%d step(s) so far)",
                    ctx.stage,
                    self.step + 1,
                    self._skipped_now,
                    self.skipped_steps,
                )
                self._skipped_now = 0
            stats["train/skipped_nonfinite_steps"] = self.skipped_steps
            stats["kl_coef"] = self.kl_coef  # the one this step's rewards used
            if section.adaptive_kl:
                self.kl_coef = adaptive_kl_coef(
                    self.kl_coef, stats["kl"], section.target_kl, section.kl_horizon, section.prompts_per_step
                )
            self.step += 1
            stats["perf/step_seconds"] = time.time() - started
            # CPU share and memory as TRL's trainers log them: the stage's peak shows in the report and on the console
            stats |= system_usage(time.process_time() - cpu_started, stats["perf/step_seconds"], cpus)
            rollouts = distributed.gather(self.recorder.take())  # every process scored its share of the prompts
            for rollout in rollouts:
                rollout.step = self.step
            # the figures TRL's trainers log (format rate, reward spreads, lengths: the format alert reads them); one
            # completion per prompt has no group to share an advantage with
            figures = self.recorder.statistics(rollouts)
            figures.pop("quality/zero_advantage_share", None)
            stats = figures | stats  # the step's own where both have one (the total reward trained on)
            self.last = {"stage": ctx.stage, "step": self.step, "kind": "step", "time": time.time(), **stats}
            window += rollouts
            due = self.step % examples_every == 0 or self.step == section.max_steps
            if distributed.is_main():
                ctx.run.append("metrics.jsonl", self.last)
                for key, value in external_figures(self.last).items() if tensorboard else ():
                    tensorboard.add_scalar(f"train/{key}", value, self.step)  # TRL's trainers' tag names
                for raised in alerts.check(self.last):
                    report_alert(ctx.run, ctx.stage, raised, ctx.config.monitoring.progress)
                for example in self.recorder.extremes(window) if due else []:
                    ctx.run.append("completions.jsonl", {"stage": ctx.stage, **example, "logged_at": self.step})
                    ctx.run.say(example_block(example))
            window = [] if due else window
            shown = " · ".join(
                f"{key} {'n/a' if stats[key] is None else format(stats[key], '.4g')}"
                for key in ("reward", "kl", "kl_coef", "loss/policy")
            )
            line = (
                f"{ctx.stage} step {self.step}/{section.max_steps}: {shown} · {stats['perf/step_seconds']:.1f}s"
                f" · {stats['perf/rss_gb']:.2f} GB RSS"
            )
            if ctx.config.monitoring.progress:
                logger.warning("%s", line)  # onto the console and into training.log
            elif distributed.is_main():
                ctx.run.say(line)
            self.evaluate.after_step(self.model, self.step, distributed.is_main())
            if profiler is not None:
                profiler.step()
            if (self.step % section.save_steps == 0 or self.step == section.max_steps) and distributed.is_main():
                self.save(self.step)

    def save(self, step: int) -> None:
        """A resumable checkpoint, complete or absent: trainable policy weights, value head, optimizer, KL
        coefficient, RNG; the newest two are kept."""
        state = {
            "step": step,
            "kl_coef": self.kl_coef,
            "skipped_steps": self.skipped_steps,
            "last": self.last,
            "policy": {name: p.detach().cpu().clone() for name, p in self.policy.items()},
            "value_head": self.head.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": torch.get_rng_state(),  # the sampler draws from torch's global generator
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        folder = self.ctx.run.checkpoints(self.ctx.folder)
        build_complete(folder / f"checkpoint-{step}", lambda dest: torch.save(state, dest / "state.pt"), {"step": step})
        for old in complete_checkpoints(folder)[:-_KEEP_CHECKPOINTS]:
            shutil.rmtree(old)

    def load(self, checkpoint) -> None:
        state = torch.load(checkpoint / "state.pt", weights_only=True)
        with torch.no_grad():
            for name, tensor in state["policy"].items():
                self.policy[name].copy_(tensor)
        self.head.load_state_dict(state["value_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.last = state["step"], state.get("last", {})  # older checkpoints: no `last`
        if self.section.adaptive_kl:  # the controller's coefficient is state; a fixed one is the config's (--resume)
            self.kl_coef = state["kl_coef"]
        self.skipped_steps = state.get("skipped_steps", 0)  # checkpoints written before it was counted
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])


# ------------------------------------------------------------------------------------------------------ stage


def _tensorboard(ctx: StageContext):
    """A TensorBoard writer into RUN/tensorboard/<stage> where monitoring.tensorboard asks for one, as transformers'
    integration writes TRL's trainers' logs; else None. W&B is said to be left out: TRL's integration logs it for the
    trainers it runs, and this one is r1kit's."""
    if ctx.config.monitoring.wandb.enabled:
        logger.warning(
            "%s: r1kit's PPO writes no W&B logs; its figures are in metrics.jsonl, the report and TensorBoard "
            "(monitoring.tensorboard.enabled)",
            ctx.stage,
        )
    if not ctx.config.monitoring.tensorboard.enabled:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(ctx.run.root / "tensorboard" / ctx.stage))


def reward_functions(config: R1kitConfig, inputs: StageInputs, end_tokens: Sequence[int]) -> dict:
    """name → (reward function, weight): the `rewards` section's rewards, built as GRPO builds them (a listed
    `reward_model` included, its path a folder, hub id or earlier reward_model stage; `end_tokens` end a reply)."""
    rules = resolve_reward_models(config, inputs.earlier)  # a reward model named by its stage → its folder
    weights = reward_weights(rules)
    built = build_rewards(rules, config.ppo.max_new_tokens, end_tokens)
    return {name: (reward, weights[name]) for name, reward in built.items()}


def _value_head_of_the_ppo_stage_before(head: torch.nn.Linear, model: Path) -> None:
    """A PPO stage that trains on from another PPO stage's model starts its value head where that one's ended (saved
    beside its model, RUN/<stage>/value_head.pt): its values fit the policy it continues, and the first updates' GAE
    is not computed against values of 0. A checkpoint's head, on resume, replaces it."""
    saved = model.parent / "value_head.pt"
    if not saved.is_file():
        return
    state = torch.load(saved, weights_only=True, map_location=head.weight.device)
    if state["weight"].shape != head.weight.shape:  # another model's hidden size
        return
    head.load_state_dict(state)
    logger.warning("ppo: the value head starts from %s, where the PPO stage before ended it", saved)


def run(ctx: StageContext, inputs: StageInputs) -> StageOutput:
    config = ctx.config
    tokenizer = load_tokenizer(config.model, inputs.model)
    model = load_model(config.model, inputs.model, ctx.hardware, for_training=True)
    reference = None
    if (peft := lora_config(config.model)) is not None:
        model = get_peft_model(model, peft)
    elif config.ppo.kl_coef or config.ppo.adaptive_kl:  # a full fine-tune: a frozen copy, in the policy's dtype
        reference = load_model(config.model, inputs.model, ctx.hardware, for_training=True).requires_grad_(False)
        reference.eval()
    model.eval()  # no dropout: rollout and update log-probs come from the same function
    if peft is not None and config.model.lora.dropout > 0:  # accepted by every other stage: said, not ignored
        logger.warning(
            "ppo: model.lora.dropout %g is not applied: PPO trains without dropout, so that its probability ratios "
            "compare the rollout's and the update's log-probs of one function",
            config.model.lora.dropout,
        )
    if (stuck := adaptive_kl_stuck(config.ppo)) is not None:
        logger.warning("%s", stuck)
    rows = grpo_rows(inputs.splits.train, config.prompt.system)
    evaluate = EvaluateEvery(ctx, inputs.splits.test, tokenizer)
    rewards = reward_functions(config, inputs, eos_token_ids(model, tokenizer))
    trainer = PPOTrainer(ctx, model, reference, tokenizer, rows, rewards, evaluate)
    _value_head_of_the_ppo_stage_before(trainer.head, Path(inputs.model))
    last = trainer.train()

    dest = ctx.run.model_dir(ctx.folder)
    if distributed.is_main():  # every process holds the same weights; the main one saves
        ctx.dir.mkdir(parents=True, exist_ok=True)  # the value head: for a later PPO stage, not for inference
        staged = ctx.dir / f".value_head.pt.tmp-{os.getpid()}"
        torch.save(trainer.head.state_dict(), staged)
        os.replace(staged, ctx.dir / "value_head.pt")
        marker = {"stage": ctx.stage}
        if config.model.save_adapter and isinstance(model, PeftModel):  # before merging it away
            adapter = ctx.run.adapter_dir(ctx.folder)
            build_complete(adapter, lambda folder: save_adapter(model, tokenizer, folder, config.model), marker)
        build_complete(dest, lambda folder: save_for_inference(model, tokenizer, folder), marker)
    distributed.wait()
    metrics = {key: last[key] for key in ("reward", "kl", "kl_coef") if last.get(key) is not None}
    return StageOutput(model=dest, metrics={"steps": trainer.step, **metrics})


def main(config: R1kitConfig) -> StageOutput:
    """`r1kit ppo`: this stage alone, from model.name, into RUN/ppo."""
    return stage_main(config, "ppo", run)
