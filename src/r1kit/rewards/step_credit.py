"""Per-token credit from checked arithmetic steps: GRPO's process supervision (DeepSeekMath, Shao et al. 2024,
§4.1.3) with a rule-based step checker in place of a learned process reward model.

An outcome reward blames every token of a wrong completion alike, and a group whose completions all get the same
reward teaches nothing. Each arithmetic equality in the thinking is a step the checker can judge on its own ("40 - 9 =
27" is wrong wherever it appears), so every step gets a reward: 1 if it holds, 0 if not. The step rewards of a prompt's
group are normalised (minus their mean, over their std), and a token's process advantage is the sum of the normalised
rewards of the steps that end at or after it: the reward-to-go, as in the paper, since a step depends on every token
before it. The trainer adds it, times a weight, to the usual outcome advantage.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

import torch

from r1kit.rewards.functions import counted_steps, written_steps

# A character is at most 4 bytes, so at most 4 tokens of a byte-level tokenizer: a window of 8 tokens before a token
# holds the start of the character it ends, and decoding it alone gives the same tail as decoding the whole prefix.
_DECODE_WINDOW = 8


def token_ends(decode, ids: Sequence[int]) -> list[int]:
    """The length of the decoded text after each token of `ids` (`decode`: token ids → text).

    Each token's share is read from decoding it with the few tokens before it, not alone: a byte-level tokenizer
    splits a character across tokens, and a SentencePiece one drops the space of a text's first token. Decoding every
    prefix whole is quadratic in the completion's length; it is what a tokenizer whose decoding is not local gets (the
    window's total does not match the whole text's length).

    >>> token_ends(lambda ids: "".join(["12", " +", " 3"][i] for i in ids), [0, 1, 2])
    [2, 4, 6]
    """
    ends, end = [], 0
    for count in range(len(ids)):
        start = max(0, count - _DECODE_WINDOW)
        end += len(decode(ids[start : count + 1])) - len(decode(ids[start:count]))
        ends.append(end)
    if ids and ends[-1] != len(decode(ids)):
        return [len(decode(ids[: count + 1])) for count in range(len(ids))]
    return ends


def step_verdicts(
    text: str, ends: Sequence[int], given: str | None = None, cut: bool = False
) -> list[tuple[int, bool]]:
    """(token, holds) for each step of the thinking (`written_steps`: of a completion the token limit `cut`, not the
    step its text ends on) that counts (`counted_steps`: once each, and with the problem `given`, true ones only where
    they work on its numbers: padding with true steps would raise every token's credit before it), where `token` is
    the index of the token that completes its right side; `ends` as from `token_ends`.

    >>> step_verdicts("4 + 5 = 9\\n5 - 2 = 2<answer>", [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 27])
    [(4, True), (9, False)]
    >>> step_verdicts("1 + 1 = 2\\n4 + 5 = 9<answer>", [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 27], given="4 + 5?")
    [(9, True)]
    """
    counted = counted_steps(written_steps(text, cut), given)
    return [(bisect_left(ends, step.end), step.holds) for step in counted if step.end <= ends[-1]]


def process_advantages(steps: Sequence[Sequence[tuple[int, bool]]], width: int, group_size: int) -> torch.Tensor:
    """[rows, width] process advantages: each step's reward (1 holds, 0 not) normalised over the steps of its group
    (the `group_size` consecutive rows of one prompt's completions, as the paper normalises over a question's
    outputs: a prompt whose completions all step right is not pushed above one whose completions all slip), summed
    into each token from the steps that end at or after it. All zero for a group whose steps all agree.

    >>> process_advantages([[(1, True), (3, False)], [(0, True)]], 4, group_size=2)
    tensor([[-0.5774, -0.5774, -1.1547, -1.1547],
            [ 0.5774,  0.0000,  0.0000,  0.0000]])
    """
    advantages = torch.zeros(len(steps), width)
    for first in range(0, len(steps), group_size):
        group = steps[first : first + group_size]
        rewards = torch.tensor([float(holds) for row in group for _, holds in row])
        if len(rewards) < 2 or rewards.std() == 0:
            continue
        mean, std = rewards.mean(), rewards.std()
        for row, row_steps in enumerate(group, start=first):
            for token, holds in row_steps:
                advantages[row, : token + 1] += (float(holds) - mean) / std
    return advantages


def process_rows_advantages(
    steps_by_process: Sequence[Sequence[Sequence[tuple[int, bool]]]], process: int, width: int, group_size: int
) -> torch.Tensor:
    """[rows, width] process advantages of process `process`'s rows, from every process's steps in process order (the
    generation batch's order): a group may span two processes' rows and is normalised whole.

    >>> halves = [[[(0, True)]], [[(0, False)]]]  # one group of 2, a row in each of 2 processes
    >>> process_rows_advantages(halves, 0, 1, 2), process_rows_advantages(halves, 1, 1, 2)
    (tensor([[0.7071]]), tensor([[-0.7071]]))
    """
    steps = [row for rows in steps_by_process for row in rows]
    first = sum(map(len, steps_by_process[:process]))
    # this process's steps end within its own width; another's may end past it
    widest = max([width, *(token + 1 for row in steps for token, _ in row)])
    return process_advantages(steps, widest, group_size)[first : first + len(steps_by_process[process]), :width]
