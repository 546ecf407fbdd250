"""Supervised fine-tuning: the cold start of R1, teaching the <think>/<answer> format from worked solutions.

Runnable alone (`r1kit sft`) and by the pipeline. Reads the `sft` section. Load → build → train → save:
the model folder it returns is a plain HF folder with the LoRA adapters merged in.
"""

from __future__ import annotations

from pathlib import Path

from trl import SFTConfig, SFTTrainer

from r1kit.config.schema import R1kitConfig
from r1kit.data.loading import Splits, sft_rows
from r1kit.models import load_model, load_tokenizer
from r1kit.stages.common import StageContext, callbacks, lora_config, setup, train_and_save, trainer_arguments
from r1kit.stages.evaluate import EvaluateEvery

STAGE = "sft"


def train(ctx: StageContext, model_reference: str, splits: Splits) -> Path:
    config = ctx.config
    tokenizer = load_tokenizer(config.model, model_reference)
    model = load_model(config.model, model_reference, ctx.hardware, for_training=True)
    rows = sft_rows(splits.train, config.prompt.system)

    args = SFTConfig(
        **trainer_arguments(ctx, STAGE, config.sft),
        max_length=config.sft.max_length,
        completion_only_loss=True,  # learn the answer, not the prompt (works with SmolLM2's template as is)
        include_num_input_tokens_seen="non_padding",
        gradient_checkpointing=False,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=rows,
        processing_class=tokenizer,
        peft_config=lora_config(config.model),
        callbacks=[
            *callbacks(ctx, STAGE, config.sft, model.num_parameters()),
            EvaluateEvery(ctx, STAGE, splits.test, tokenizer),
        ],
    )
    return train_and_save(trainer, tokenizer, ctx, STAGE)


def main(config: R1kitConfig) -> Path:
    """`r1kit sft`: this stage alone, from model.name, into the run folder."""
    ctx, base, splits = setup(config, STAGE)
    return train(ctx, base, splits)
