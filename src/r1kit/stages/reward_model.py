"""Reward model: a scalar head on the input model, trained on preference pairs to score the chosen reply above the
rejected one (TRL's RewardTrainer, Bradley-Terry loss). The first step of classic RLHF; its model scores completions
for RLOO, PPO or GRPO as the `reward_model` reward, and judges win rates in evaluation.

Runnable alone (`r1kit reward_model`) and from a recipe. Reads `reward_model` (trainer settings) and `preferences`
(the pairs: a dataset, or built offline from the input model). Load → pairs → train → save → held-out pairwise
accuracy. It is not a policy: the pipeline does not evaluate it on the held-out problems.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from peft import LoraConfig as PeftLoraConfig
from transformers import AutoModelForSequenceClassification, PreTrainedModel
from trl import RewardConfig, RewardTrainer
from trl.trainer.reward_trainer import suppress_seqcls_warning  # "score.weight newly initialized": expected

from r1kit import distributed
from r1kit.atomic import is_complete
from r1kit.config.schema import ModelConfig, R1kitConfig
from r1kit.data.preferences import Pair, trl_pairs
from r1kit.hardware import Hardware
from r1kit.models import ADAPTER_CONFIG, load_error, load_model, load_tokenizer, revision_of
from r1kit.rewards.reward_model import RewardModelScorer
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
from r1kit.stages.pairs import stage_pairs


def run(ctx: StageContext, inputs: StageInputs) -> StageOutput:
    config = ctx.config
    tokenizer = load_tokenizer(config.model, inputs.model)
    pairs = stage_pairs(ctx, inputs.model, inputs.splits.train, tokenizer)
    model = load_reward_model(config.model, inputs.model, ctx.hardware, for_training=True)
    model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at the last non-pad token

    section = config.reward_model
    args = RewardConfig(
        **trainer_arguments(ctx, section, model),
        max_length=section.max_length,
        center_rewards_coefficient=section.center_rewards_coefficient,
        gradient_checkpointing=recomputes_activations(section.gradient_checkpointing, model, ctx.stage),
        disable_dropout=dropout_disabled(config.model),
    )
    trainer = RewardTrainer(
        model=model,
        args=args,
        train_dataset=trl_pairs(pairs.train),
        processing_class=tokenizer,
        peft_config=sequence_lora_config(config.model),
        callbacks=callbacks(ctx, section, model.num_parameters()),
    )
    trained_in_fp32(trainer.model)
    trained_pairs = pairs_that_fit(ctx, trainer, len(pairs.train), "reward_model.max_length")
    folder = train_and_save(trainer, tokenizer, ctx)
    del trainer, model

    scorer = RewardModelScorer(str(folder), device=ctx.hardware.device)
    accuracy, margin = pairwise_accuracy(
        lambda prompts, replies: scorer.score(replies, prompts, max_length=section.max_length), pairs.test
    )
    metrics = {
        "train_pairs": trained_pairs,
        "held_out_pairs": len(pairs.test),
        "pairwise_accuracy": accuracy,
        "mean_margin": margin,
        "pairs_source": pairs.source,
    }
    if pairs.skipped_rows:
        metrics["skipped_rows"] = pairs.skipped_rows
    return StageOutput(model=folder, metrics=metrics, evaluate=False)


def load_reward_model(cfg: ModelConfig, reference: str, hardware: Hardware, for_training: bool) -> PreTrainedModel:
    """The input model with a fresh one-output score head (AutoModelForSequenceClassification, num_labels=1), in the
    dtype load_model would use."""
    dtype = torch.float32 if for_training and not cfg.lora.enabled else hardware.dtype
    if (Path(reference) / ADAPTER_CONFIG).exists():  # a policy's LoRA adapter (model.save_adapter)
        return _from_adapter(cfg, reference, hardware, for_training)
    try:
        with suppress_seqcls_warning():
            model = AutoModelForSequenceClassification.from_pretrained(
                reference,
                num_labels=1,
                revision=revision_of(cfg, reference),
                dtype=dtype,
                trust_remote_code=cfg.trust_remote_code,
                attn_implementation=None if cfg.attn_implementation == "auto" else cfg.attn_implementation,
            )
    except (OSError, ValueError) as error:
        raise load_error(reference, error) from error
    return model.to(hardware.device)


def _from_adapter(cfg: ModelConfig, adapter: str, hardware: Hardware, for_training: bool) -> PreTrainedModel:
    """A reward model from a LoRA adapter folder: from the whole model it was merged into (its run's
    RUN/<stage>/model beside it), else from the adapter merged into its base here. transformers loaded the adapter
    unmerged, TRL added a second one, and the stage failed at its final save."""
    merged = Path(adapter).parent / "model"
    if is_complete(merged):
        return load_reward_model(cfg, str(merged), hardware, for_training)
    with tempfile.TemporaryDirectory(prefix="r1kit-merged-") as folder:
        load_model(cfg, adapter, hardware, for_training=False).save_pretrained(folder)
        return load_reward_model(cfg, folder, hardware, for_training)


def trained_in_fp32(model: torch.nn.Module) -> None:
    """The weights that train in fp32 (master weights; the forward still runs in the run's precision under autocast).
    PEFT upcasts its LoRA weights, but the new score head it trains in full keeps the load dtype: fp16 gradients
    stopped the first step (the gradient scaler refuses to unscale them), bf16 ones lost the small updates."""
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()


def sequence_lora_config(cfg: ModelConfig) -> PeftLoraConfig | None:
    """model.lora for a sequence-classification model: PEFT then also trains the new score head in full."""
    found = lora_config(cfg)
    if found is not None:
        found.task_type = "SEQ_CLS"
    return found


def pairwise_accuracy(
    score: Callable[[list, list[str]], Sequence[float]], pairs: Sequence[Pair]
) -> tuple[float | None, float | None]:
    """(share of pairs whose chosen reply scores above the rejected one, ties counting half; mean score margin).

    >>> scores = {"good": 2.0, "bad": 1.0, "same": 1.0}
    >>> pairs = [{"prompt": [], "chosen": "good", "rejected": "bad"}, {"prompt": [], "chosen": "same", "rejected": "bad"}]
    >>> pairwise_accuracy(lambda prompts, replies: [scores[r] for r in replies], pairs)
    (0.75, 0.5)
    """
    if not pairs:
        return None, None
    mine = distributed.shard(pairs)  # several processes score a share each; every process gets all the scores
    prompts = [p["prompt"] for p in mine]
    chosen = distributed.gather(list(score(prompts, [p["chosen"] for p in mine])) if mine else [])
    rejected = distributed.gather(list(score(prompts, [p["rejected"] for p in mine])) if mine else [])
    wins = [1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected, strict=True)]
    return statistics.fmean(wins), statistics.fmean(c - r for c, r in zip(chosen, rejected, strict=True))


def main(config: R1kitConfig) -> StageOutput:
    """`r1kit reward_model`: this stage alone, from model.name, into RUN/reward_model."""
    return stage_main(config, "reward_model", run)
