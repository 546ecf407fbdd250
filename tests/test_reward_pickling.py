"""Every built-in reward pickles and scores the same in another process, as TRL's asynchronous GRPO and
process-pool reward workers need."""

from __future__ import annotations

import multiprocessing
import operator
import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from r1kit.rewards import REWARD_NAMES, build_reward
from r1kit.rewards.guard import guarded

PARAMS = {"overlong": {"max_length": 10, "soft_cache": 4}, "repetition_penalty": {"max_penalty": -1.0}}

COMPLETIONS = [
    "<think>Step 1: 6 * 7 = 42\nStep 2: check it</think>\n<answer>42</answer>",
    [{"role": "assistant", "content": "<think>我不知道。我不知道。我不知道。我不知道。</think><answer>41</answer>"}],
]
KWARGS = {
    "solution": ["42", "42"],
    "prompts": [[{"role": "user", "content": "What is six times seven, written as a number?"}]] * 2,
    "completion_ids": [[1, 2, 3, 4, 5, 6, 7, 8, 9], [4, 5, 6] * 4],
}


def built(name: str):
    return build_reward(name, **PARAMS.get(name, {}))


@pytest.mark.parametrize("name", REWARD_NAMES)
def test_each_reward_pickles_with_its_name_and_parameters(name: str) -> None:
    reward = built(name)
    for original in (reward, guarded(name, reward)):
        copy = pickle.loads(pickle.dumps(original))
        assert copy.__name__ == name
        assert copy(COMPLETIONS, **KWARGS) == original(COMPLETIONS, **KWARGS)


def test_unpickled_rewards_score_the_same_in_a_spawned_worker_process() -> None:
    rewards = [guarded(name, built(name)) for name in REWARD_NAMES]
    expected = [reward(COMPLETIONS, **KWARGS) for reward in rewards]
    # spawn, not fork: the worker imports r1kit afresh, as TRL's asynchronous GRPO worker does
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(operator.call, reward, COMPLETIONS, **KWARGS) for reward in rewards]
        assert [future.result(timeout=120) for future in futures] == expected
