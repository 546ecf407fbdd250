"""RLOO: REINFORCE Leave-One-Out (TRL's RLOOTrainer), reinforcement learning whose baseline for each completion is
the mean reward of the prompt's other completions. It uses the same rewards as GRPO (`rewards`: the rule-based ones,
weighted, and a trained reward model when `reward_model` is listed).

Runnable alone (`r1kit rloo`) and from a recipe. Reads `rloo` (steps, optimizer, batch, sampling, KL) and `rewards`.
`rewards.reward_model.path` may name an earlier reward_model stage. Load → build rewards → train → save.
"""

from __future__ import annotations

from trl import RLOOConfig, RLOOTrainer

from r1kit.config.schema import R1kitConfig
from r1kit.data.loading import grpo_rows
from r1kit.models import eos_token_ids, load_model, load_tokenizer, own_generation_settings_aside
from r1kit.monitoring.recorder import RolloutRecorder
from r1kit.rewards.reward_model import resolve_reward_models
from r1kit.stages.common import (
    StageContext,
    StageInputs,
    StageOutput,
    callbacks,
    lora_config,
    reference_loading,
    stage_main,
    train_and_save,
    trainer_arguments,
)
from r1kit.stages.evaluate import EvaluateEvery
from r1kit.stages.grpo import build_rewards, reward_weights
from r1kit.stages.grpo_trainer import GroupRewards, RolloutsInCheckpoints


class R1kitRLOOTrainer(GroupRewards, RolloutsInCheckpoints, RLOOTrainer):
    """TRL's RLOOTrainer, scoring and checkpointing as r1kit's GRPO trainer does."""

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields):
        # the model's own generation settings aside, as GRPO's rollouts set them: TRL sets the temperature, top-p/k,
        # min-p and repetition penalty, and `generate` filled the rest from the model's (a shipped
        # no_repeat_ngram_size, min_new_tokens; its min_p where TRL's is None), so rollouts came from another
        # distribution than the loss and its KL compute
        with own_generation_settings_aside(self.accelerator.unwrap_model(self.model)):
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields)


def run(ctx: StageContext, inputs: StageInputs) -> StageOutput:
    config = resolve_reward_models(ctx.config, inputs.earlier)  # a reward model named by its stage → its folder
    section = config.rloo
    tokenizer = load_tokenizer(config.model, inputs.model)
    model = load_model(config.model, inputs.model, ctx.hardware, for_training=True)
    rows = grpo_rows(inputs.splits.train, config.prompt.system)

    weights, ends = reward_weights(config), eos_token_ids(model, tokenizer)
    recorder = RolloutRecorder(weights, section.num_generations, section.max_completion_length, ends)
    rewards = build_rewards(config, section.max_completion_length, ends)
    reward_funcs = [recorder.tap(name, reward) for name, reward in rewards.items()]

    args = RLOOConfig(
        **trainer_arguments(ctx, section, model),
        num_generations=section.num_generations,
        max_completion_length=section.max_completion_length,
        temperature=section.temperature,
        beta=section.beta,
        reward_weights=list(weights.values()),
        gradient_checkpointing=False,
        **reference_loading(ctx, model, section.beta),
    )
    trainer = R1kitRLOOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=rows,
        processing_class=tokenizer,
        peft_config=lora_config(config.model),
        callbacks=[
            *callbacks(ctx, section, model.num_parameters(), recorder=recorder),
            EvaluateEvery(ctx, inputs.splits.test, tokenizer),
        ],
    )
    model_dir = train_and_save(trainer, tokenizer, ctx)
    return StageOutput(model=model_dir, metrics={"steps": trainer.state.global_step, "train_prompts": len(rows)})


def main(config: R1kitConfig) -> StageOutput:
    """`r1kit rloo`: this stage alone, from model.name, into RUN/rloo."""
    return stage_main(config, "rloo", run)
