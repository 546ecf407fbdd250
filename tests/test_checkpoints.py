"""AtomicCheckpoints on fake checkpoint folders: which ones it commits and which ones it prunes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from r1kit.atomic import is_complete, json_digest
from r1kit.config.schema import CheckpointConfig
from r1kit.monitoring.callbacks import AtomicCheckpoints
from r1kit.runs import complete_checkpoints


def save_steps(tmp_path: Path, steps: range, main_process: bool = True, **config) -> list[str]:
    """Stage and save a checkpoint at each step as the trainer would; the checkpoint names left, oldest first."""
    staging, checkpoints = tmp_path / "staging", tmp_path / "checkpoints"
    callback = AtomicCheckpoints(staging, checkpoints, CheckpointConfig(**config))
    for step in steps:
        (staging / f"checkpoint-{step}").mkdir(parents=True)
        (staging / f"checkpoint-{step}" / "model.safetensors").write_text("weights")
        state = SimpleNamespace(global_step=step, is_world_process_zero=main_process)
        callback.on_save(None, state, None)
    left = sorted(checkpoints.glob("checkpoint-*"), key=lambda p: p.name)
    assert all(is_complete(p) for p in left)
    return [p.name for p in complete_checkpoints(checkpoints)]


@pytest.mark.parametrize(
    ("config", "kept"),
    [
        ({"save_total_limit": 2}, [11, 12]),
        ({"save_total_limit": 2, "keep_every": 5}, [5, 10, 11, 12]),
        ({"save_total_limit": 3, "keep_every": 4}, [4, 8, 10, 11, 12]),
        ({"save_total_limit": 1, "keep_every": 12}, [12]),  # the newest is a milestone too: kept once
    ],
)
def test_keeps_the_newest_and_every_milestone(tmp_path: Path, config: dict, kept: list[int]) -> None:
    assert save_steps(tmp_path, range(1, 13), **config) == [f"checkpoint-{step}" for step in kept]


def test_milestones_are_steps_not_save_counts(tmp_path: Path) -> None:
    # saved every 3 steps: steps 3, 6, …, 21; multiples of 4 among them are 12 and 24 (never saved)
    assert save_steps(tmp_path, range(3, 22, 3), save_total_limit=1, keep_every=4) == ["checkpoint-12", "checkpoint-21"]


def test_only_the_main_process_commits(tmp_path: Path) -> None:
    assert save_steps(tmp_path, range(1, 3), main_process=False, save_total_limit=2, keep_every=1) == []


def test_the_digest_of_a_dataset_column_holds_every_item() -> None:
    """A datasets Column is no JSON list: its digest was of its text, a preview of the first five items, so pairs
    built from other problems (a recipe's `data_from` rows) and a curriculum resumed on other data were taken as
    the same."""
    from datasets import Dataset

    first = Dataset.from_dict({"question": [str(i) for i in range(10)]})["question"]
    other = Dataset.from_dict({"question": [str(i) for i in range(9)] + ["changed"]})["question"]
    assert json_digest(first) != json_digest(other)
    assert json_digest(first) == json_digest([str(i) for i in range(10)])


def test_a_users_copy_of_a_checkpoint_is_no_checkpoint(tmp_path: Path) -> None:
    """A backup copy `checkpoint-2.bak` (with its completion marker) made --resume fail with "unexpected error (a bug
    in r1kit …): ValueError: invalid literal for int()", and pruning failed the same way after the next save."""
    import shutil

    save_steps(tmp_path, range(1, 3), save_total_limit=2)
    checkpoints = tmp_path / "checkpoints"
    shutil.copytree(checkpoints / "checkpoint-2", checkpoints / "checkpoint-2.bak")
    assert [p.name for p in complete_checkpoints(checkpoints)] == ["checkpoint-1", "checkpoint-2"]
    assert save_steps(tmp_path, range(3, 5), save_total_limit=2) == ["checkpoint-3", "checkpoint-4"]
    assert (checkpoints / "checkpoint-2.bak").is_dir()  # the user's copy is left alone
