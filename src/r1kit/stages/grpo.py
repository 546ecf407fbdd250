"""GRPO: reinforcement learning with rule-based rewards, the core of R1-Zero and of R1's reasoning RL.

Runnable alone (`r1kit grpo`) and from a recipe (the `reasoning_rl` stage of `r1` is this with its own rewards). Reads `training` (optimizer, batch, steps), `grpo` (sampling and
loss) and `rewards`. Load → build rewards → build trainer → train → save.
"""

from __future__ import annotations

from collections.abc import Sequence

from trl import GRPOConfig

from r1kit.config.schema import R1kitConfig
from r1kit.data.loading import grpo_rows
from r1kit.models import eos_token_ids, load_model, load_tokenizer
from r1kit.monitoring.recorder import RolloutRecorder
from r1kit.rewards import build_reward
from r1kit.rewards.guard import guarded
from r1kit.rewards.plugins import PluginReward, is_plugin, short_name
from r1kit.rewards.reward_model import resolve_reward_models
from r1kit.stages import curriculum
from r1kit.stages.common import (
    StageContext,
    StageInputs,
    StageOutput,
    callbacks,
    check_prompts_fill_a_batch,
    lora_config,
    reference_loading,
    stage_main,
    train_and_save,
    trainer_arguments,
)
from r1kit.stages.evaluate import EvaluateEvery
from r1kit.stages.grpo_trainer import R1kitGRPOTrainer

_VERIFIED = ("accuracy", "cosine")  # rewards that run math-verify


def build_rewards(config: R1kitConfig, completion_limit: int | None = None, end_tokens: Sequence[int] = ()) -> dict:
    """name → reward function, for the configured rewards (built-ins and plug-ins), each with its own parameters.
    A plug-in goes by its function's name. `completion_limit`: the stage's completion length limit, overlong's
    default (GRPO's grpo.max_completion_length unless given); a completion that reaches it without ending on one of
    `end_tokens` was cut, and arithmetic_steps leaves the step its text ends on unjudged."""
    rewards = {}
    for name in config.rewards.functions:
        params = config.rewards.params(name).model_dump(exclude={"weight"})
        if is_plugin(name):
            rewards[short_name(name)] = guarded(
                short_name(name), PluginReward(name, params), config.rewards.plugin_timeout_seconds
            )
            continue
        if name in _VERIFIED:
            params |= config.rewards.verification.model_dump()
        if name == "overlong" and params["max_length"] is None:
            params["max_length"] = completion_limit or config.grpo.max_completion_length
        if name == "arithmetic_steps":  # what cuts a completion
            params |= {"max_length": completion_limit or config.grpo.max_completion_length, "end_tokens": end_tokens}
        rewards[name] = guarded(name, build_reward(name, **params))
    return rewards


def reward_weights(config: R1kitConfig) -> dict[str, float]:
    """name → weight of each configured reward, named as `build_rewards` names it."""
    return {short_name(name): config.rewards.params(name).weight for name in config.rewards.functions}


def run(ctx: StageContext, inputs: StageInputs) -> StageOutput:
    config = resolve_reward_models(ctx.config, inputs.earlier)  # a reward model named by its stage → its folder
    train, first_kept = inputs.splits.train, None
    if config.curriculum.enabled:  # before the training model loads: the scoring copy is freed by then
        train, first_kept = curriculum.apply(ctx, inputs.model, train)  # first_kept: when re-scored in training
    rows = grpo_rows(train, config.prompt.system)
    # the curriculum's choice, and the rows of an earlier stage (data_from), are known only now: before any load
    check_prompts_fill_a_batch(
        len(rows), config.grpo_generation_batch(), config.grpo.num_generations, config.curriculum.enabled
    )
    # the re-scored curriculum's kept prompts, named by the rows' own prompts: what the trainer's rollouts carry
    kept = None if first_kept is None else curriculum.KeptPrompts(rows["prompt"], first_kept, config.run.seed)
    tokenizer = load_tokenizer(config.model, inputs.model)
    model = load_model(config.model, inputs.model, ctx.hardware, for_training=True)

    weights, ends = reward_weights(config), eos_token_ids(model, tokenizer)
    recorder = RolloutRecorder(weights, config.grpo.num_generations, config.grpo.max_completion_length, ends)
    reward_funcs = [recorder.tap(name, reward) for name, reward in build_rewards(config, end_tokens=ends).items()]

    args = GRPOConfig(
        **trainer_arguments(ctx, config.training, model),
        **config.grpo.model_dump(),  # the grpo section's keys are TRL's GRPOConfig parameters
        reward_weights=list(weights.values()),
        gradient_checkpointing=config.training.gradient_checkpointing,
        **reference_loading(ctx, model, config.grpo.beta),
    )
    trainer = R1kitGRPOTrainer(
        shared_prefix=config.fast.shared_prefix,
        fast_generation=config.fast.generation,
        resample_retries=config.dynamic_sampling.max_retries,
        step_credit=config.step_credit.weight,
        curriculum=kept,
        side_work=ctx.side_work,
        recorder=recorder,
        model=model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=rows,
        processing_class=tokenizer,
        peft_config=lora_config(config.model),
        callbacks=[
            *callbacks(ctx, config.training, model.num_parameters(), recorder=recorder),
            EvaluateEvery(ctx, inputs.splits.test, tokenizer),
        ],
    )
    if kept is not None:  # re-scored with the trainer's own sampler, where it has one
        trainer.add_callback(curriculum.Rescore(ctx, rows, kept, tokenizer, trainer.sampler))
    return StageOutput(model=train_and_save(trainer, tokenizer, ctx))


def main(config: R1kitConfig) -> StageOutput:
    """`r1kit grpo`: this stage alone, from model.name, into RUN/grpo."""
    return stage_main(config, "grpo", run)
