"""DPO: Direct Preference Optimization of the input model on preference pairs (TRL's DPOTrainer), the classic-RLHF
alternative to a reward model plus RL. The input model is the frozen reference (with LoRA: the same model with its
adapter switched off).

Runnable alone (`r1kit dpo`) and from a recipe. Reads `dpo` (trainer settings, beta, loss) and `preferences` (the
pairs: a dataset, or built offline from the input model). Load → pairs → train → save → held-out preference accuracy
of the implicit reward.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from trl import DPOConfig, DPOTrainer

from r1kit import distributed
from r1kit.config.schema import R1kitConfig
from r1kit.data.preferences import Pair, trl_pairs
from r1kit.models import load_model, load_tokenizer
from r1kit.stages.common import (
    StageContext,
    StageInputs,
    StageOutput,
    callbacks,
    dropout_disabled,
    lora_config,
    pairs_that_fit,
    recomputes_activations,
    stage_main,
    train_and_save,
    trainer_arguments,
)
from r1kit.stages.evaluate import EvaluateEvery, completion_logprobs
from r1kit.stages.pairs import stage_pairs


def run(ctx: StageContext, inputs: StageInputs) -> StageOutput:
    config = ctx.config
    section = config.dpo
    tokenizer = load_tokenizer(config.model, inputs.model)
    pairs = stage_pairs(ctx, inputs.model, inputs.splits.train, tokenizer)
    model = load_model(config.model, inputs.model, ctx.hardware, for_training=True)

    args = DPOConfig(
        **trainer_arguments(ctx, section, model),
        beta=section.beta,
        loss_type=[section.loss_type],
        label_smoothing=section.label_smoothing,
        max_length=section.max_length,
        gradient_checkpointing=recomputes_activations(section.gradient_checkpointing, model, ctx.stage),
        disable_dropout=dropout_disabled(config.model),
    )
    # Without LoRA the reference is a frozen copy: loaded as the policy was (TRL would reload it by the config's
    # name, without model.revision or trust_remote_code, and the base of a merged adapter folder)
    reference = None
    if not config.model.lora.enabled:
        reference = load_model(config.model, inputs.model, ctx.hardware, for_training=True).requires_grad_(False)
    trainer = DPOTrainer(
        model=model,
        ref_model=reference,
        args=args,
        train_dataset=trl_pairs(pairs.train),
        processing_class=tokenizer,
        peft_config=lora_config(config.model),
        callbacks=[
            *callbacks(ctx, section, model.num_parameters()),
            EvaluateEvery(ctx, inputs.splits.test, tokenizer),
        ],
    )
    trained_pairs = pairs_that_fit(ctx, trainer, len(pairs.train), "dpo.max_length")
    folder = train_and_save(trainer, tokenizer, ctx)
    del trainer, model

    per_token = section.loss_type in PER_TOKEN_LOSSES
    accuracy, margin = implicit_reward_accuracy(ctx, str(folder), inputs.model, pairs.test, section.beta, per_token)
    metrics = {
        "train_pairs": trained_pairs,
        "held_out_pairs": len(pairs.test),
        "preference_accuracy": accuracy,
        "mean_reward_margin": margin,
        "pairs_source": pairs.source,
    }
    if pairs.skipped_rows:
        metrics["skipped_rows"] = pairs.skipped_rows
    return StageOutput(model=folder, metrics=metrics)


# TRL's losses that compare the replies' log-ratios per token (its "average scores"), not summed over the reply
PER_TOKEN_LOSSES = ("ipo", "sigmoid_norm")


def implicit_reward_accuracy(
    ctx: StageContext, policy: str, reference: str, pairs: Sequence[Pair], beta: float, per_token: bool = False
) -> tuple[float | None, float | None]:
    """DPO's implicit reward on held-out pairs, beta · (log π(y|x) − log π_ref(y|x)), per token of the reply where the
    loss trained it so (`per_token`: a summed one ranks a long reply apart from what ipo learned): the share of pairs
    where it ranks the chosen reply above the rejected one (ties half), and its mean margin."""
    if not pairs:
        return None, None
    config = ctx.config
    prompts = [p["prompt"] for p in pairs] * 2
    replies = [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]
    # several processes score a share of the replies each; every process gets all the log-probs, in order
    mine = distributed.shard(list(zip(prompts, replies, strict=True)))
    logprobs = {}
    for name, reference_model in (("policy", policy), ("reference", reference)):
        tokenizer = load_tokenizer(config.model, reference_model)
        model = load_model(config.model, reference_model, ctx.hardware, for_training=False).eval()
        scored = completion_logprobs(model, tokenizer, *map(list, zip(*mine, strict=True))) if mine else []
        logprobs[name] = distributed.gather([total / max(count, 1) if per_token else total for total, count in scored])
        del model
    rewards = [beta * (p - r) for p, r in zip(logprobs["policy"], logprobs["reference"], strict=True)]
    chosen, rejected = rewards[: len(pairs)], rewards[len(pairs) :]
    wins = [1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected, strict=True)]
    return statistics.fmean(wins), statistics.fmean(c - r for c, r in zip(chosen, rejected, strict=True))


def main(config: R1kitConfig) -> StageOutput:
    """`r1kit dpo`: this stage alone, from model.name, into RUN/dpo."""
    return stage_main(config, "dpo", run)
