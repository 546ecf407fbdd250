"""DAPO's dynamic sampling: prompt groups whose completions all got the same reward teach nothing (one advantage for
all, zero up to rounding), so they are replaced by groups of fresh prompts before the update.

`replace_groups` splices scored groups from one GRPO batch (TRL's output of `_generate_and_score_completions`) into
another. The two batches were padded separately, so each tensor is first padded to the wider of the two: prompts on
the left, completions and per-token values on the right, as TRL pads them.

Under several processes each holds a slice of the generation batch, and a group may span two slices. So the slices
are gathered (`gather_batch`), groups are found and replaced in the whole batch, identically in every process, and
each process takes its slice back (`process_rows`). Every process then makes the same collective calls, in the same
number: TRL's scoring gathers rewards across processes, and a process retrying alone would wait forever.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from accelerate import Accelerator

# per-row tensors of a scored GRPO batch: (pad on the left?, padding value); the token ids take the pad token
_PADDING = {
    "prompt_ids": (True, None),
    "prompt_mask": (True, 0),
    "completion_ids": (False, None),
    "completion_mask": (False, 0),
    "old_per_token_logps": (False, 0.0),
    "ref_per_token_logps": (False, 0.0),
    "sampling_per_token_logps": (False, 0.0),
    "importance_sampling_ratio": (False, 1.0),  # vLLM rollouts' correction: per token, or (B, 1) per sequence
}
SPLICEABLE = {*_PADDING, "advantages", "num_items_in_batch"}


def dead_groups(advantages: torch.Tensor, group_size: int) -> torch.Tensor:
    """Indices of the groups whose completions all have one advantage (identical rewards): zero, or a constant
    that TRL's float group mean leaves (rewards of 0.3 give 0.3 − mean(0.3, …) ≈ 1e-8, over its std + 1e-4) or its
    normalize_then_sum mode gives.

    >>> dead_groups(torch.tensor([0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 3e-4, 3e-4]), 2).tolist()
    [0, 2, 3]
    """
    return (~_has_signal(advantages, group_size)).nonzero().flatten()


def live_groups(advantages: torch.Tensor, group_size: int) -> torch.Tensor:
    """Indices of the groups with a learning signal (advantages that differ).

    >>> live_groups(torch.tensor([0.0, 0.0, 1.0, -1.0, 0.0, 0.0]), 2).tolist()
    [1]
    """
    return _has_signal(advantages, group_size).nonzero().flatten()


def _has_signal(advantages: torch.Tensor, group_size: int) -> torch.Tensor:
    groups = advantages.view(-1, group_size)
    return groups.amax(1) > groups.amin(1)  # (groups,): one advantage for all moves no completion against another


def replace_groups(
    batch: dict, groups: torch.Tensor, fresh: dict, fresh_groups: torch.Tensor, group_size: int, pad_token_id: int
) -> dict:
    """`batch` with its `groups` replaced, in place of each, by `fresh_groups` of `fresh` (same count)."""
    within = torch.arange(group_size, device=groups.device)  # the groups' own device (a GPU's, in training)
    rows = (groups[:, None] * group_size + within).flatten()
    fresh_rows = (fresh_groups[:, None] * group_size + within.to(fresh_groups.device)).flatten()
    spliced = dict(batch)
    for key, (left, value) in _PADDING.items():
        if key not in batch:
            continue
        ours, theirs = _same_width(batch[key], fresh[key], left, pad_token_id if value is None else value)
        ours = ours.clone()
        ours[rows] = theirs[fresh_rows]
        spliced[key] = ours
    spliced["advantages"] = batch["advantages"].clone()
    spliced["advantages"][rows] = fresh["advantages"][fresh_rows]
    # the loss normalises by the completion tokens of the batch (`dapo`): count the spliced batch's
    spliced["num_items_in_batch"] = spliced["completion_mask"].sum()
    return spliced


def _same_width(a: torch.Tensor, b: torch.Tensor, left: bool, value) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(a.size(1), b.size(1))

    def padded(t: torch.Tensor) -> torch.Tensor:
        missing = width - t.size(1)
        return F.pad(t, (missing, 0) if left else (0, missing), value=value) if missing else t

    return padded(a), padded(b)


def fresh_group_count(dead: int, group_size: int, processes: int) -> int:
    """Fresh groups to draw for `dead` dead ones: at least as many, and enough rows to split evenly between the
    processes (each generates an equal share, as TRL's gathers need).

    >>> fresh_group_count(1, 8, 2), fresh_group_count(1, 3, 2), fresh_group_count(3, 2, 4)
    (1, 2, 4)
    """
    step = processes // math.gcd(group_size, processes)  # groups whose rows split evenly
    return -(-dead // step) * step


def gather_batch(batch: dict, accelerator: Accelerator, pad_token_id: int) -> dict:
    """Every process's slice of a scored batch, concatenated in process order (the generation batch's order).
    Per-token tensors are first padded to the widest slice, on the side TRL pads them."""
    whole = dict(batch)
    for key, (left, value) in _PADDING.items():
        if key in batch:
            padded = accelerator.pad_across_processes(
                batch[key], dim=1, pad_index=pad_token_id if value is None else value, pad_first=left
            )
            whole[key] = accelerator.gather(padded)
    whole["advantages"] = accelerator.gather(batch["advantages"])
    return whole  # num_items_in_batch is already the whole batch's count (TRL gathers it)


def process_rows(whole: dict, accelerator: Accelerator) -> dict:
    """This process's slice of a gathered batch (equal slices, in process order)."""
    rows = whole["advantages"].size(0) // accelerator.num_processes
    mine = slice(accelerator.process_index * rows, (accelerator.process_index + 1) * rows)
    return {key: value[mine] if key in _PADDING or key == "advantages" else value for key, value in whole.items()}
