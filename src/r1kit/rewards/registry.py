"""Rewards by name: `build_reward("cosine", max_len=500)`."""

from __future__ import annotations

from typing import Any

REWARD_NAMES = (
    "accuracy",
    "format",
    "tag_count",
    "reasoning_steps",
    "cosine",
    "repetition_penalty",
    "language_consistency",
    "overlong",
)


def build_reward(name: str, **params: Any):
    """The reward callable `name` with TRL's signature, built with `params`.

    >>> build_reward("format")(["<think>a</think><answer>1</answer>"])
    [1.0]
    >>> build_reward("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown reward 'nope'; valid: accuracy, format, tag_count, reasoning_steps, cosine, repetition_penalty, language_consistency, overlong
    """
    from r1kit.rewards import functions as f  # imported here so the config schema can list names cheaply

    factories = {
        "accuracy": f.get_accuracy_reward,
        "format": lambda: f.format,
        "tag_count": lambda: f.tag_count,
        "reasoning_steps": f.get_reasoning_steps_reward,
        "cosine": f.get_cosine_reward,
        "repetition_penalty": f.get_repetition_penalty_reward,
        "language_consistency": f.get_language_consistency_reward,
        "overlong": f.get_overlong_reward,
    }
    if name not in factories:
        raise ValueError(f"unknown reward {name!r}; valid: {', '.join(REWARD_NAMES)}")
    return factories[name](**params)
