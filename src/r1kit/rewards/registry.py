"""Rewards by name: `build_reward("cosine", max_len=500)`."""

from __future__ import annotations

from typing import Any

REWARD_NAMES = (
    "accuracy",
    "format",
    "tag_count",
    "reasoning_steps",
    "arithmetic_steps",
    "cosine",
    "repetition_penalty",
    "language_consistency",
    "overlong",
)

# Rewards scored by a trained model rather than by rules: configured like the others, but they load weights, so the
# rule-based suites (REWARD_NAMES) leave them out.
MODEL_REWARD_NAMES = ("reward_model",)

KNOWN_REWARDS = (*REWARD_NAMES, *MODEL_REWARD_NAMES)

# Rewards that compare the answer with the row's gold `solution`: on data without gold answers they score nothing.
GOLD_REWARDS = ("accuracy", "cosine")

# Rewards that read the <think>/<answer> form or a gold answer: a rollout stage scored by the others alone (a reward
# model on chat data) asks with the plain prompt
REASONING_REWARDS = (*GOLD_REWARDS, "format", "tag_count", "reasoning_steps", "arithmetic_steps")


def build_reward(name: str, **params: Any):
    """The reward callable `name` with TRL's signature, built with `params`.

    >>> build_reward("format")(["<think>a</think><answer>1</answer>"])
    [1.0]
    >>> build_reward("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown reward 'nope'; valid: accuracy, format, tag_count, reasoning_steps, arithmetic_steps, cosine, repetition_penalty, language_consistency, overlong, reward_model
    """
    from r1kit.rewards import functions as f  # imported here so the config schema can list names cheaply
    from r1kit.rewards.reward_model import get_reward_model_reward

    factories = {
        "accuracy": f.get_accuracy_reward,
        "format": lambda: f.format,
        "tag_count": lambda: f.tag_count,
        "reasoning_steps": f.get_reasoning_steps_reward,
        "arithmetic_steps": f.get_arithmetic_steps_reward,
        "cosine": f.get_cosine_reward,
        "repetition_penalty": f.get_repetition_penalty_reward,
        "language_consistency": f.get_language_consistency_reward,
        "overlong": f.get_overlong_reward,
        "reward_model": get_reward_model_reward,
    }
    if name not in factories:
        raise ValueError(f"unknown reward {name!r}; valid: {', '.join(KNOWN_REWARDS)}")
    return factories[name](**params)
