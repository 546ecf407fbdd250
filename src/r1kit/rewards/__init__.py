"""Rule-based rewards for R1-style RL, each a pure function with TRL's reward signature."""

from r1kit.rewards.registry import REWARD_NAMES, build_reward

__all__ = ["REWARD_NAMES", "build_reward"]
