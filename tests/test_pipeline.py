"""The commands end to end on the test profile, and nothing lost to a kill."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from rich.console import Console
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from r1kit.config.sources import resolve_config, to_yaml
from r1kit.runs import RunDir, RunDirError
from tests.conftest import REPO, r1kit_cli, r1kit_killed_in_checkpoint_write

VARIED_REWARDS = ["--rewards.functions", "[cosine, format]", "--rewards.cosine.max_len", "64"]


def grpo_steps(run: Path) -> list[int]:
    return [r["step"] for r in RunDir(run).read("metrics.jsonl") if r["stage"] == "grpo" and r["kind"] == "step"]


def grpo_rewards(run: Path) -> list[float]:
    """The mean total reward of each GRPO step."""
    records = RunDir(run).read("metrics.jsonl")
    return [r["rewards/total/mean"] for r in records if r["stage"] == "grpo" and r["kind"] == "step"]


def test_run_leaves_a_complete_run_folder(finished_run: Path) -> None:
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "completions.jsonl",
        "summary.json",
        "manifest.json",
        "eval/base.json",
        "eval/sft.json",
        "eval/grpo.json",
        "eval/grpo.problems.jsonl",
        "01_sft/model/model.safetensors",
        "01_sft/manifest.json",
        "02_grpo/model/model.safetensors",
        "02_grpo/manifest.json",
    ):
        assert (finished_run / name).exists(), name
    summary = json.loads((finished_run / "summary.json").read_text())
    assert list(summary["evaluations"]) == ["base", "sft", "grpo"] and summary["final_model"] == "02_grpo/model"
    assert {"accuracy", "format_rate", "pass_at_k", "mean_completion_tokens"} <= set(summary["evaluations"]["grpo"])
    assert AutoModelForCausalLM.from_pretrained(finished_run / "02_grpo" / "model").num_parameters() > 0
    stages = json.loads((finished_run / "manifest.json").read_text())["stages"]
    assert [(s["folder"], s["status"]) for s in stages] == [("01_sft", "complete"), ("02_grpo", "complete")]


def test_the_run_table_has_intervals_and_paired_changes(finished_run: Path) -> None:
    from r1kit.stats import paired_difference, wilson_interval

    summary = json.loads((finished_run / "summary.json").read_text())
    low, high = summary["evaluations"]["grpo"]["accuracy_ci95"]
    assert 0.0 <= low <= summary["evaluations"]["grpo"]["accuracy"] <= high <= 1.0
    assert set(summary["paired"]) == {"base→sft", "sft→grpo", "base→grpo"}
    assert summary["paired"]["base→grpo"]["problems"] == 8
    # each figure is that of the evaluations' own per-problem scores, each pair in its order
    scores = {label: json.loads((finished_run / "eval" / f"{label}.json").read_text())["scores"] for label in
              ("base", "sft", "grpo")}  # fmt: skip
    assert len(scores["grpo"]) == 8
    for label, evaluation in summary["evaluations"].items():
        judged = [s for s in scores[label] if s is not None]
        assert evaluation["accuracy_ci95"] == pytest.approx(list(wilson_interval(sum(judged), len(judged))))
    for pair, change in summary["paired"].items():
        before, after = pair.split("→")
        expected = paired_difference(scores[before], scores[after])
        assert change["ci95"] == pytest.approx(expected.pop("ci95")), pair
        assert {key: change[key] for key in expected} == pytest.approx(expected), pair
    # the built-in task's levels break pass@1 down (dataset.group_column): in `mixed`, each named with its task
    final = summary["evaluations"]["grpo"]
    levels = {f"arithmetic {level}" for level in (1, 2, 3, 4)} | {f"word_problem {kind}" for kind in (2, 3, 4)}
    assert final["by_group"] and set(final["by_group"]) <= levels
    assert sum(group["problems"] for group in final["by_group"].values()) == 8 - final["excluded"]
    assert final["group_column"] == "level"  # what a group is: the table said "by group, grpo: 1 …"
    # which evaluation each stage started from, for the report of a run killed before its summary
    stages = json.loads((finished_run / "manifest.json").read_text())["stages"]
    assert {stage["name"]: stage["started_from"] for stage in stages} == {"sft": "base", "grpo": "sft"}


def test_running_again_skips_finished_work_and_refuses_another_config(finished_run: Path) -> None:
    started = time.monotonic()
    again = r1kit_cli("run", "--profile", "test", "--out", str(finished_run), cwd=REPO)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "continuing the run" in again.stderr and "accuracy (pass@1)" in again.stdout
    assert "01_sft: complete, skipped" in again.stderr and "02_grpo: complete, skipped" in again.stderr
    assert time.monotonic() - started < 60

    # a change to the first stage would keep nothing of the finished run: refused, the way out named
    saved = (finished_run / "config.yaml").read_text()
    other = r1kit_cli("run", "--profile", "test", "--out", str(finished_run), "--sft.max_steps", "5", cwd=REPO)
    assert other.returncode == 1
    assert "holds a run with another config (sft.max_steps: 3 there, 5 now)" in other.stderr
    assert "continuing the run" not in other.stderr  # it said so, then refused to
    assert "--from sft" in other.stderr and "--out" in other.stderr and "as saved with --resume" in other.stderr
    # and the refused command left the saved config as it was: --resume continues the finished run as it was
    # (it had saved the refused settings, and the next --resume redid stages with them)
    assert (finished_run / "config.yaml").read_text() == saved
    resumed = r1kit_cli("run", "--out", str(finished_run), "--resume", cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "01_sft: complete, skipped" in resumed.stderr and "02_grpo: complete, skipped" in resumed.stderr


def test_settings_of_how_a_stage_runs_keep_its_finished_work(finished_run: Path, tmp_path: Path) -> None:
    """A finished run continued with more threads or other checkpoint spacing was refused as "another config"; and a
    run folder of an earlier r1kit, whose fingerprints held those settings, had every finished stage redone."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    for manifest in run.glob("0*/manifest.json"):  # as an earlier r1kit wrote them: threads in the fingerprint
        record = json.loads(manifest.read_text())
        record["fingerprint"]["config"] = "the digest of an earlier r1kit's settings"
        record["config"]["model"]["threads"] = None
        manifest.write_text(json.dumps(record))
    how = ["--model.threads", "1", "--sft.checkpoint.save_steps", "7", "--training.dataloader.pin_memory", "false"]
    again = r1kit_cli("run", "--profile", "test", "--out", str(run), *how, cwd=REPO)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "01_sft: complete, skipped" in again.stderr and "02_grpo: complete, skipped" in again.stderr


def test_scoring_fewer_held_out_problems_keeps_a_finished_runs_stages(finished_run: Path, tmp_path: Path) -> None:
    """A finished run given another dataset.max_test_samples was refused as discarding its first stage (the only way
    on, --from, trained every stage again), though the held-out count changes no training row; it scores anew."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    again = r1kit_cli("run", "--profile", "test", "--out", str(run), "--dataset.max_test_samples", "4", cwd=REPO)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "01_sft: complete, skipped" in again.stderr and "02_grpo: complete, skipped" in again.stderr
    for label in ("base", "sft", "grpo"):
        assert len(json.loads((run / "eval" / f"{label}.json").read_text())["scores"]) == 4, label
    assert json.loads((run / "summary.json").read_text())["paired"]["base→grpo"]["problems"] == 4


def test_a_kill_while_a_stage_is_cleared_for_its_redo_leaves_it_to_be_redone(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The redo of a changed stage deleted its folder file by file: killed half way, the folder kept its manifest
    ("complete") and a model without its tokenizer, and every later run skipped it as complete, then failed."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    rmtree = shutil.rmtree

    def killed_half_way(path, *args, **kwargs) -> None:
        folders = [Path(path)] if Path(path).name == "02_grpo" else list(Path(path).glob("02_grpo*"))  # or moved
        if folders:  # deleting the stage's folder
            for name in ("tokenizer.json", "tokenizer_config.json"):
                (folders[0] / "model" / name).unlink()
            raise KeyboardInterrupt  # the kill, with some of its files deleted
        rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", killed_half_way)
    redo = ["run", "--profile", "test", "--out", str(run), "--training.max_steps", "4"]
    assert r1kit_cli(*redo, cwd=REPO).returncode == 130
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    assert [p.parent.name for p in run.glob("*/manifest.json")] == ["01_sft"]  # what is left is no stage
    # the run as it was saved (config.yaml is saved once the redo has begun training): its grpo stage done again
    again = r1kit_cli("run", "--out", str(run), "--resume", cwd=REPO)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "02_grpo: complete, skipped" not in again.stderr
    assert (run / "02_grpo" / "model" / "tokenizer.json").exists()
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []  # the half-deleted folder is gone too


def test_an_evaluation_reused_after_a_kill_is_recorded_and_a_damaged_one_done_again(
    finished_run: Path, tmp_path: Path
) -> None:
    """Killed after a stage's evaluation was saved, before its manifest recorded it: the rerun reused the evaluation
    and the manifest never got it. A damaged evaluation file ended the rerun as "a bug" (JSONDecodeError)."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    manifest = json.loads((run / "01_sft" / "manifest.json").read_text())
    recorded = manifest.pop("evaluation")
    (run / "01_sft" / "manifest.json").write_text(json.dumps(manifest))
    (run / "eval" / "grpo.json").write_text('{"accuracy": 0.')  # cut off
    again = r1kit_cli("run", "--profile", "test", "--out", str(run), cwd=REPO)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((run / "01_sft" / "manifest.json").read_text())["evaluation"] == recorded
    assert f"{run / 'eval' / 'grpo.json'} is damaged (not an evaluation's JSON): evaluating again" in again.stderr
    assert json.loads((run / "eval" / "grpo.json").read_text())["problems"] > 0


def test_an_evaluation_saved_before_timeouts_counted_wrong_is_redone_where_it_left_problems_out(
    finished_run: Path, tmp_path: Path
) -> None:
    """An evaluation saved before answers the verifier timed out on were scored wrong (no `unverified_answers`) left
    those problems out: reused, the run's table compared stages over different problems."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    for label, excluded in (("base", 1), ("sft", 0)):
        path = run / "eval" / f"{label}.json"
        saved = json.loads(path.read_text())
        del saved["unverified_answers"]
        path.write_text(json.dumps(saved | {"excluded": excluded, "marker": label}))
    again = r1kit_cli("run", "--profile", "test", "--out", str(run), cwd=REPO)
    assert again.returncode == 0, again.stderr[-2000:]
    redone, kept = (json.loads((run / "eval" / f"{label}.json").read_text()) for label in ("base", "sft"))
    assert "marker" not in redone and redone["unverified_answers"] == 0 and redone["excluded"] == 0
    assert kept["marker"] == "sft"  # nothing left out: the same under both rules, reused


def test_another_spelling_of_the_run_folder_is_the_same_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`--out run/` for a run started with `--out /abs/run` read as another config: a failed start was started over,
    its logs and base evaluation deleted."""
    from r1kit.runs import leave_run_folder, open_run

    monkeypatch.chdir(tmp_path)
    config = resolve_config(profile="test", overrides=["--out", str(tmp_path / "run")], environ={}).config
    run = open_run(config, "run")
    run.save_config(config)
    (run.root / "training.log").write_text("the killed start's log\n")
    again = resolve_config(profile="test", overrides=["--out", "run/"], environ={}).config
    try:
        with caplog.at_level(logging.WARNING, logger="r1kit"):
            assert open_run(again, "run").root.resolve() == run.root.resolve()
    finally:
        leave_run_folder()
    assert "failed start" not in caplog.text
    assert (tmp_path / "run" / "training.log").read_text() == "the killed start's log\n"


def test_a_second_command_in_a_run_folder_at_work_is_refused(tmp_path: Path) -> None:
    """Two commands on one --out trained the same stage side by side, each resuming the other's checkpoints, and
    every step was logged twice."""
    out = tmp_path / "run"
    out.mkdir()
    lock = "import fcntl, os, sys, time; fcntl.flock(os.open(sys.argv[1], os.O_RDONLY), fcntl.LOCK_EX"
    hold = lock + "); print(1, flush=True); time.sleep(300)"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "1"  # a command at work in the folder
        refused = r1kit_cli("sft", "--profile", "test", "--out", str(out), cwd=REPO)
        assert refused.returncode == 1 and f"{out} is in use by another r1kit command still at work" in refused.stderr
        assert list(out.iterdir()) == []
    finally:
        holder.kill()
        holder.wait()
    assert r1kit_cli("sft", "--profile", "test", "--out", str(out), cwd=REPO).returncode == 0
    assert (
        subprocess.run([sys.executable, "-c", lock + " | fcntl.LOCK_NB)", str(out)]).returncode == 0
    )  # let go once the command ended


def test_resume_refuses_what_its_checkpoint_would_not_use(tmp_path: Path) -> None:
    """Killed after a stage saved its model but before its manifest said complete, `--resume --learning_rate` was
    accepted and recorded, and the stage finished from its checkpoint without it. `--resume` with fewer steps than
    the checkpoint had kept the longer-trained model under the lower count."""
    out = tmp_path / "run"
    args = ["sft", "--profile", "test", "--sft.checkpoint.save_steps", "1", "--out", str(out)]
    assert r1kit_cli(*args, cwd=REPO).returncode == 0
    manifest = json.loads((out / "sft" / "manifest.json").read_text())
    (out / "sft" / "manifest.json").write_text(json.dumps(manifest | {"status": "running"}))
    new_rate = r1kit_cli(*args, "--resume", "--learning_rate", "5e-4", cwd=REPO)  # sft's is 1e-3
    assert new_rate.returncode == 1, new_rate.stderr[-2000:]
    assert "--resume continues sft's checkpoint with its optimizer and learning-rate schedule" in new_rate.stderr
    # an adapter of another shape did not load (a crash, after config.yaml named the new rank)
    new_seed = r1kit_cli(*args, "--resume", "--run.seed", "7", cwd=REPO)  # it reordered the epoch it was in
    assert (
        new_seed.returncode == 1 and "run.seed: 42 there, 7 now; --resume continues sft's checkpoint" in new_seed.stderr
    )
    new_rank = r1kit_cli(*args, "--resume", "--model.lora.rank", "32", cwd=REPO)
    assert new_rank.returncode == 1, new_rank.stderr[-2000:]
    assert "model.lora.rank: 16 there, 32 now; --resume continues sft's checkpoint, which holds" in new_rank.stderr
    # a LoRA checkpoint loads as a model: the base it trains on is recorded in it, as beside a saved adapter
    assert (out / "sft" / "checkpoints" / "checkpoint-3" / "r1kit_base.json").is_file()
    shutil.rmtree(out / "sft" / "model")  # killed after its last checkpoint (step 3), before its model was saved
    saved = (out / "config.yaml").read_text()
    fewer = r1kit_cli(*args, "--resume", "--sft.max_steps", "2", cwd=REPO)
    assert fewer.returncode == 1, fewer.stderr[-2000:]
    assert (
        "sft.max_steps 2: sft's checkpoint is at step 3; --resume would keep its longer-trained model" in fewer.stderr
    )
    assert "Resume with 3 steps or more" in fewer.stderr
    assert not (out / "sft" / "model").exists() and (out / "config.yaml").read_text() == saved  # nothing written
    resumed = r1kit_cli(*args, "--resume", cwd=REPO)  # as it was saved
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (out / "sft" / "model" / "r1kit_complete.json").exists()
    # a learning rate set in a recipe's stage: the run-level keys alone were compared, and it was accepted
    recipe = tmp_path / "recipe.yaml"
    stage = "stages: [{name: sft, config: {sft: {checkpoint: {save_steps: 1}, optimization: {learning_rate: %s}}}}]\n"
    recipe.write_text(stage % "0.001")
    recipe_args = ["run", "--recipe", str(recipe), "--profile", "test", "--out", str(tmp_path / "recipe_run")]
    assert r1kit_cli(*recipe_args, cwd=REPO).returncode == 0
    folder = tmp_path / "recipe_run" / "01_sft"
    (folder / "manifest.json").write_text(
        json.dumps(json.loads((folder / "manifest.json").read_text()) | {"status": "running"})
    )
    (tmp_path / "new.yaml").write_text(stage % "0.0005")  # --resume takes the run's saved config, then this
    refused = r1kit_cli("run", "--config", str(tmp_path / "new.yaml"), "--out", recipe_args[-1], "--resume", cwd=REPO)
    assert refused.returncode == 1 and "sft.optimization.learning_rate: 0.001 there, 0.0005 now" in refused.stderr


@pytest.mark.parametrize("accumulation", ["1", "4"])
def test_resuming_a_stage_trained_by_epochs_refuses_fewer_than_its_checkpoint_made(
    tmp_path: Path, accumulation: str
) -> None:
    """Trained by epochs, `--resume` with fewer than the checkpoint had made was accepted (only max_steps was compared),
    and the longer-trained model kept under the lower count. The trainer rounds a share of an epoch's steps up (and
    counts passes in micro-batches), so the checkpoint of 0.1 epochs had made 0.11 passes: resumed with its own 0.1,
    it must go on."""
    out = tmp_path / "run"
    args = ["sft", "--profile", "test", "--sft.epochs", "0.1", "--sft.checkpoint.save_steps", "1", "--out", str(out)]
    args += ["--sft.batch_size.gradient_accumulation_steps", accumulation]
    assert r1kit_cli(*args, cwd=REPO).returncode == 0
    (last,) = sorted((out / "sft" / "checkpoints").glob("checkpoint-*"))[-1:]
    passes = json.loads((last / "trainer_state.json").read_text())["epoch"]
    assert passes > 0.1  # rounded up
    manifest = json.loads((out / "sft" / "manifest.json").read_text())
    (out / "sft" / "manifest.json").write_text(json.dumps(manifest | {"status": "running"}))
    shutil.rmtree(out / "sft" / "model")  # killed after its last checkpoint, before its model was saved
    fewer = r1kit_cli(*[a if a != "0.1" else "0.05" for a in args], "--resume", cwd=REPO)
    assert fewer.returncode == 1 and f"checkpoint has made {passes:g} passes over its data, of the 0.1" in fewer.stderr
    resumed = r1kit_cli(*args, "--resume", cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (out / "sft" / "model" / "r1kit_complete.json").exists()


def test_resuming_a_recipe_stage_whose_prompt_or_data_split_changed_starts_it_over(tmp_path: Path) -> None:
    """A recipe's interrupted GRPO stage went on from its checkpoint under `--resume --prompt.system …` or another
    built-in split (`--dataset.synthetic.num_examples`: its fingerprint names the task, not its rows): trained on
    another prompt, or on what are now held-out problems, as one model. A stage alone starts over; so does it now."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("stages: [{name: grpo}]\n")
    out = tmp_path / "run"
    args = [
        "run",
        "--recipe",
        str(recipe),
        "--profile",
        "test",
        "--out",
        str(out),
        "--training.checkpoint.save_steps",
        "1",
    ]
    assert r1kit_cli(*args, cwd=REPO).returncode == 0

    def interrupted() -> None:  # killed after its last checkpoint, before its model was saved
        manifest = json.loads((out / "01_grpo" / "manifest.json").read_text())
        (out / "01_grpo" / "manifest.json").write_text(json.dumps(manifest | {"status": "running"}))
        shutil.rmtree(out / "01_grpo" / "model")

    for change in (["--prompt.system", "Answer with a number."], ["--dataset.synthetic.num_examples", "120"]):
        interrupted()
        redone = r1kit_cli("run", "--out", str(out), "--resume", *change, cwd=REPO)
        assert redone.returncode == 0, redone.stderr[-2000:]
        assert f"01_grpo: its config changed ({change[0].removeprefix('--')}:" in redone.stderr
        assert "redoing it" in redone.stderr and "resuming from" not in redone.stderr
    interrupted()
    longer = r1kit_cli("run", "--out", str(out), "--resume", "--training.max_steps", "5", cwd=REPO)  # goes on
    assert longer.returncode == 0, longer.stderr[-2000:]
    assert "--resume goes on from its checkpoint with it" in longer.stderr and "resuming from" in longer.stderr


def test_resuming_a_stage_alone_whose_data_changed_starts_it_over(tmp_path: Path) -> None:
    """`r1kit sft --out RUN --resume` after the data file was edited went on from the old checkpoint and recorded
    the new data's hash: the next plain run said "nothing to do" of a model never trained on that data. (Then it was
    refused, and the plain command it advised was refused for the folder's finished work: nothing could redo it.)"""
    data = tmp_path / "problems.jsonl"
    rows = [
        {"question": f"What is {i} + 2?", "solution": str(i + 2), "reasoning": f"{i} + 2 = {i + 2}"} for i in range(12)
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = ["sft", "--profile", "test", "--data", str(data), "--out", str(tmp_path / "run")]
    assert r1kit_cli(*args, cwd=REPO).returncode == 0
    recorded = json.loads((tmp_path / "run" / "sft" / "manifest.json").read_text())["settings"]["inputs"]
    data.write_text(data.read_text().replace("What is ", "What's "))
    resumed = r1kit_cli(*args, "--resume", cwd=REPO)
    assert resumed.returncode == 0 and "sft: what it reads (data) changed since its work" in resumed.stderr
    assert "redoing it" in resumed.stderr and "resuming from" not in resumed.stderr
    assert json.loads((tmp_path / "run" / "sft" / "manifest.json").read_text())["settings"]["inputs"] != recorded
    steps = [r["step"] for r in RunDir(tmp_path / "run").read("metrics.jsonl") if r.get("kind") == "step"]
    assert steps == [1, 2, 3]  # trained again from step 0 on the new data, its old logs cleared


def test_a_finished_stage_alone_resumed_with_new_settings_is_redone_and_a_refusal_writes_nothing(
    tmp_path: Path,
) -> None:
    """`r1kit sft --out RUN --resume --sft.max_steps 2` on a finished 3-step stage "resumed" from its last checkpoint
    (step 3), trained nothing and recorded the old model under the new config; a new learning rate likewise, after
    which the plain command said "nothing to do". A refused `--resume` had saved its config.yaml first, so neither
    command worked any more; and config.yaml kept `resume: true`, so `--config RUN/config.yaml` resumed."""
    out = tmp_path / "run"
    args = ["sft", "--profile", "test", "--out", str(out)]
    assert r1kit_cli(*args, cwd=REPO).returncode == 0
    saved = (out / "config.yaml").read_text()
    data = tmp_path / "problems.jsonl"
    data.write_text(
        "".join(
            json.dumps({"question": f"What is {i} + 2?", "solution": str(i + 2), "reasoning": f"{i} + 2 = {i + 2}"})
            + "\n"
            for i in range(12)
        )
    )
    refused = r1kit_cli(*args, "--data", str(data), cwd=REPO)  # another config, and finished work: refused
    assert refused.returncode == 1 and "continue it with --resume" in refused.stderr, refused.stderr[-2000:]
    assert (out / "config.yaml").read_text() == saved
    # as the refusal says, with --resume: redone on the new data (it was refused again, "run without --resume",
    # which the first refusal had refused: the folder could not be redone at all)
    redone = r1kit_cli(*args, "--resume", "--data", str(data), cwd=REPO)
    assert redone.returncode == 0 and "what it reads (data, dataset.name) changed" in redone.stderr, redone.stderr[
        -2000:
    ]
    assert json.loads((out / "sft" / "manifest.json").read_text())["inputs"]["data"] == str(data)
    fewer = r1kit_cli(*args, "--resume", "--sft.max_steps", "2", cwd=REPO)
    assert fewer.returncode == 0 and "redoing it" in fewer.stderr, fewer.stderr[-2000:]
    steps = [r["step"] for r in RunDir(out).read("metrics.jsonl") if r.get("kind") == "step"]
    assert steps == [1, 2] and "resume: false" in (out / "config.yaml").read_text()
    again = r1kit_cli(*args, "--data", str(data), "--sft.max_steps", "2", cwd=REPO)
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr[-2000:]


def test_an_interrupted_stage_resumed_on_other_data_or_prompt_starts_over(tmp_path: Path) -> None:
    """`r1kit grpo --resume --data arithmetic --prompt.system …` went on from a checkpoint trained on `mixed` with the
    reasoning prompt, and recorded only the new ones: a built-in task or hub id has no content hash, and a stage's
    own settings may change under --resume (more steps). Its data, model and prompt are what it trains on."""
    out = tmp_path / "run"
    args = ["grpo", "--profile", "test", "--out", str(out)]
    assert r1kit_cli(*args, cwd=REPO).returncode == 0
    manifest = json.loads((out / "grpo" / "manifest.json").read_text())
    (out / "grpo" / "manifest.json").write_text(json.dumps(manifest | {"status": "running"}))  # killed after step 2
    shutil.rmtree(out / "grpo" / "model")
    shutil.rmtree(out / "grpo" / "checkpoints" / "checkpoint-3", ignore_errors=True)
    resumed = r1kit_cli(*args, "--resume", "--data", "arithmetic", cwd=REPO)
    assert resumed.returncode == 0 and "what it reads (dataset.name) changed" in resumed.stderr, resumed.stderr[-2000:]
    assert "resuming from" not in resumed.stderr
    steps = [r["step"] for r in RunDir(out).read("metrics.jsonl") if r.get("kind") == "step"]
    assert steps == [1, 2, 3]  # from step 0, once


def test_an_interrupted_stage_started_over_on_other_data_takes_new_optimizer_settings(tmp_path: Path) -> None:
    """On other data an interrupted stage starts over, yet a new learning rate with it was refused ("would be
    recorded and not used": a checkpoint's optimizer) and so was fewer steps than its checkpoint: no command could
    redo the folder."""
    out = tmp_path / "run"
    args = ["sft", "--profile", "test", "--out", str(out)]
    assert r1kit_cli(*args, "--sft.max_steps", "4", cwd=REPO).returncode == 0
    manifest = json.loads((out / "sft" / "manifest.json").read_text())
    (out / "sft" / "manifest.json").write_text(json.dumps(manifest | {"status": "running"}))  # killed at step 3
    shutil.rmtree(out / "sft" / "model")
    shutil.rmtree(out / "sft" / "checkpoints" / "checkpoint-4")
    new = ["--resume", "--data", "arithmetic", "--sft.optimization.learning_rate", "1e-4", "--sft.max_steps", "1"]
    redone = r1kit_cli(*args, *new, cwd=REPO)
    assert redone.returncode == 0 and "redoing it" in redone.stderr, redone.stderr[-2000:]
    assert [r["step"] for r in RunDir(out).read("metrics.jsonl") if r.get("kind") == "step"] == [1]


def test_a_finished_stage_alone_whose_model_is_gone_makes_it_again(tmp_path: Path) -> None:
    """Its model folder deleted, the same command said "complete …; nothing to do", and the next stage found no model
    in the run ("its stages are still running")."""
    out = tmp_path / "run"
    args = ["sft", "--profile", "test", "--out", str(out)]
    assert r1kit_cli(*args, cwd=REPO).returncode == 0
    shutil.rmtree(out / "sft" / "model")
    again = r1kit_cli(*args, cwd=REPO)
    assert again.returncode == 0 and "what it made" in again.stderr and "is gone; making it again" in again.stderr
    assert (out / "sft" / "model" / "r1kit_complete.json").exists()


def test_a_stage_alone_that_trains_nothing_keeps_its_work_under_a_lora_change(tmp_path: Path) -> None:
    """`r1kit cold_start` said "does not read model.lora.rank", then refused the folder for holding another config."""
    args = ["cold_start", "--profile", "test", "--out", str(tmp_path / "run")]
    assert r1kit_cli(*args, cwd=REPO).returncode == 0
    again = r1kit_cli(*args, "--model.lora.rank", "32", cwd=REPO)
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr[-2000:]


def test_from_a_later_stage_does_not_discard_the_finished_first_stage_unasked(finished_run: Path) -> None:
    sft_weights = finished_run / "01_sft" / "model" / "model.safetensors"
    written = sft_weights.stat().st_mtime
    args = ["run", "--profile", "test", "--out", str(finished_run), "--sft.max_steps", "5"]
    later = r1kit_cli(*args, "--from", "grpo", cwd=REPO)
    assert later.returncode == 1
    assert "another config (sft.max_steps: 3 there, 5 now)" in later.stderr and "--from sft" in later.stderr
    both = r1kit_cli(*args, "--from", "sft", "--only", "grpo", cwd=REPO)
    assert both.returncode == 2 and "--from and --only: give one" in both.stderr
    assert sft_weights.stat().st_mtime == written


def test_an_evaluation_is_reused_only_for_the_same_prompts_and_samples(tiny_model: Path, tmp_path: Path) -> None:
    """`--model.chat_template chatml` on a finished run retrained every stage but reused the base evaluation made
    with the model's own template, and pass@k's samples of another --seed were taken for this seed's."""
    from datasets import Dataset

    from r1kit.config.schema import R1kitConfig
    from r1kit.hardware import Hardware
    from r1kit.pipeline import _evaluation_key, _Hashes
    from r1kit.stages.common import StageContext

    problems = Dataset.from_list([{"question": "What is 2 + 3?", "solution": "5"}])

    def key(reference: str = str(tiny_model), **values) -> str:
        ctx = StageContext(R1kitConfig.model_validate(values), RunDir(tmp_path), Hardware("cpu", "fp32", 2))
        return _evaluation_key(ctx, reference, problems, _Hashes(), {})

    assert key() == key() != key(model={"chat_template": "chatml"})
    assert key() != key(rewards={"verification": {"timeout_seconds": 0.5}})  # a slow answer's verdict
    assert key(run={"seed": 1}) == key(run={"seed": 2})  # greedy: the seed changes nothing
    sampled = {"num_samples": 4, "pass_k": [1, 4]}
    assert key(run={"seed": 1}, evaluation=sampled) != key(run={"seed": 2}, evaluation=sampled)
    # a hub model is known by its id: another revision of it was scored as the one evaluated before
    hub = "org/model"
    assert key(hub) != key(hub, model={"revision": "0123abc"}) != key(hub, model={"gguf_file": "q8.gguf"})
    assert key(model={"revision": "0123abc"}) == key()  # a local folder is known by its content


def test_only_a_stage_whose_earlier_stages_never_ran_stops_before_any_work(tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = r1kit_cli("run", "--profile", "test", "--out", str(run), "--only", "grpo", cwd=REPO)
    assert done.returncode == 1 and "--only grpo: 01_sft, before it, never finished" in done.stderr
    assert not run.exists()  # the base model was not evaluated first, and no folder was made


def test_a_finished_first_stage_whose_data_file_changed_is_not_discarded_unasked(tmp_path: Path) -> None:
    """The data file's content was in no fingerprint: edited in place, its run was skipped as complete."""
    data = tmp_path / "problems.jsonl"
    rows = [
        {"question": f"What is {i} + 2?", "solution": str(i + 2), "reasoning": f"{i} + 2 = {i + 2}"} for i in range(12)
    ]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("stages: [{name: sft}]\n")
    args = ["run", "--recipe", str(recipe), "--profile", "test", "--data", str(data), "--out", str(tmp_path / "run")]
    assert r1kit_cli(*args, cwd=REPO).returncode == 0
    base_eval = tmp_path / "run" / "eval" / "base.json"
    key_before = json.loads(base_eval.read_text())["key"]
    data.write_text(data.read_text().replace("What is ", "What's "))  # every problem, held-out ones too
    again = r1kit_cli(*args, cwd=REPO)
    assert again.returncode == 1 and "holds finished training (01_sft) made from other inputs: its data" in again.stderr
    assert "--from sft" in again.stderr  # the way to redo it here
    assert json.loads(base_eval.read_text())["key"] == key_before  # refused: the base model was evaluated anew first
    # redone, the base model is evaluated again: its old evaluation was of other problems, and would have been paired
    # problem by problem with the new model's
    assert r1kit_cli(*args, "--from", "sft", cwd=REPO).returncode == 0
    assert json.loads(base_eval.read_text())["key"] != key_before
    problems = [json.loads(line)["question"] for line in (base_eval.parent / "base.problems.jsonl").open()]
    assert problems and all(question.startswith("What's") for question in problems)


def test_stages_after_one_redone_by_only_are_listed_as_outdated(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    done = r1kit_cli("run", "--profile", "test", "--out", str(run), "--sft.max_steps", "4", "--only", "sft", cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    # the new value is said (it read as a plain redo)
    assert re.search(
        r"01_sft: asked for by --from / --only, and its config changed \(sft.max_steps: \d+ → 4\)", done.stderr
    )
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    assert [(s["folder"], s["status"]) for s in stages] == [("01_sft", "complete"), ("02_grpo", "outdated")]
    # compared, chatted with or evaluated, the outdated model is used with a word (compare named only the config's
    # new sft setting as what differed, which its GRPO model was not trained from)
    from r1kit.monitoring.compare import compare
    from r1kit.stages.common import model_reference_of

    compare([f"{run}:sft", f"{run}:grpo"])
    assert "note: run/grpo is outdated: grpo was trained from what an earlier stage made before that stage" in (
        capsys.readouterr().out
    )
    config = resolve_config(environ={}).config
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        assert model_reference_of(f"{run}:grpo", config) == str(run / "02_grpo" / "model")
        assert model_reference_of(f"{run}:sft", config) == str(run / "01_sft" / "model")
    assert caplog.text.count("is outdated: grpo was trained from") == 1


def test_a_redo_that_dies_leaves_no_summary_of_the_models_it_replaced(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A redo that died halfway left the old summary.json beside the new config: the report showed the removed
    model's figures and final model, and `--model RUN` named a folder the redo had deleted."""
    import r1kit.stages.grpo
    from r1kit.pipeline import run as run_recipe
    from r1kit.runs import final_model

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)

    def dies(ctx, inputs):
        raise RuntimeError("killed halfway")

    monkeypatch.setattr(r1kit.stages.grpo, "run", dies)
    overrides = ["--out", str(run), "--training.max_steps", "2"]
    with pytest.raises(RuntimeError, match="killed halfway"):
        run_recipe(resolve_config(profile="test", overrides=overrides, environ={}).config)
    assert not (run / "summary.json").exists() and not (run / "02_grpo" / "model").exists()
    assert final_model(RunDir(run)) == run / "01_sft" / "model"


def test_a_redo_killed_halfway_leaves_the_stages_after_it_outdated(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stage at work was not counted as retrained: GRPO, made from the SFT model being replaced, stayed
    `complete`, and `r1kit eval --model RUN` took its model as the run's without a word."""
    import r1kit.stages.sft
    from r1kit.pipeline import run as run_recipe
    from r1kit.runs import final_model

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)

    def dies(ctx, inputs):
        raise RuntimeError("killed halfway")

    monkeypatch.setattr(r1kit.stages.sft, "run", dies)
    with pytest.raises(RuntimeError, match="killed halfway"):
        run_recipe(resolve_config(profile="test", overrides=["--out", str(run)], environ={}).config, from_stage="sft")
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    assert [(s["folder"], s["status"]) for s in stages] == [("01_sft", "running"), ("02_grpo", "outdated")]
    assert final_model(RunDir(run)) is None


def test_a_redo_killed_in_the_base_evaluation_leaves_the_run_as_it_was(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Evaluated after the redone stage was cleared (and before the manifest said so), a kill in the base evaluation
    left the run's manifest and summary naming a GRPO model trained from an SFT model that was gone."""
    import r1kit.pipeline
    from r1kit.runs import final_model

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    real = r1kit.pipeline._evaluated

    def killed_in_base(ctx, model, label, *args, **kwargs):
        if label == "base":
            raise KeyboardInterrupt
        return real(ctx, model, label, *args, **kwargs)

    monkeypatch.setattr(r1kit.pipeline, "_evaluated", killed_in_base)
    config = resolve_config(profile="test", overrides=["--out", str(run)], environ={}).config
    with pytest.raises(KeyboardInterrupt):
        r1kit.pipeline.run(config, from_stage="sft")
    assert (run / "01_sft" / "model").exists() and (run / "eval" / "sft.json").exists()
    assert final_model(RunDir(run)) == run / "02_grpo" / "model"  # the finished run's, from its summary


def test_a_stage_set_aside_after_only_stays_outdated(tmp_path: Path) -> None:
    """`--only sft_b` after `--only sft` wrote sft_c, still made from the old SFT model, as `complete`."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "stages: [{name: sft}, {name: sft_b, kind: sft, model_from: sft}, {name: sft_c, kind: sft, model_from: sft}]\n"
    )
    args = ["run", "--recipe", str(recipe), "--profile", "test", "--out", str(tmp_path / "run")]
    assert r1kit_cli(*args, cwd=REPO).returncode == 0
    assert r1kit_cli(*args, "--run.seed", "7", "--only", "sft", cwd=REPO).returncode == 0  # another SFT model
    done = r1kit_cli(*args, "--run.seed", "7", "--only", "sft_b", cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    stages = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]
    assert [s["status"] for s in stages] == ["complete", "complete", "outdated"]


def test_a_refused_only_leaves_the_evaluations_as_they_were(tmp_path: Path) -> None:
    """`--only grpo2` with new evaluation settings re-scored the base and SFT models (writing their evaluations)
    before it was refused for grpo, before it, not being complete with the new GRPO settings."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("stages: [{name: sft}, {name: grpo}, {name: grpo2, kind: grpo}]\n")
    run = tmp_path / "run"
    args = ["run", "--recipe", str(recipe), "--profile", "test", "--out", str(run)]
    assert r1kit_cli(*args, cwd=REPO).returncode == 0
    saved = {
        path: path.read_bytes() for path in [*run.glob("eval/*"), *run.glob("*/manifest.json"), run / "manifest.json"]
    }
    refused = r1kit_cli(
        *args, "--only", "grpo2", "--grpo.temperature", "0.9", "--evaluation.max_samples", "4", cwd=REPO
    )
    assert refused.returncode == 1 and "--only grpo2: 02_grpo, before it, is not complete" in refused.stderr
    assert {path: path.read_bytes() for path in saved} == saved


def test_a_complete_stage_whose_model_was_deleted_is_redone(finished_run: Path, tmp_path: Path) -> None:
    """It was skipped as complete, and the next stage failed to load its model ("there is no such folder")."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    shutil.rmtree(run / "01_sft" / "model")
    done = r1kit_cli("run", "--profile", "test", "--out", str(run), cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"01_sft: complete, but its model ({run / '01_sft' / 'model'}) is gone; redoing it" in done.stderr
    assert (run / "01_sft" / "model" / "r1kit_complete.json").exists()


def test_the_final_model_of_a_run_without_summary_is_no_reward_model(tmp_path: Path) -> None:
    """An rlhf run stopped in its DPO stage named its reward model (the newest complete model) as the run's model:
    `r1kit eval/chat --model RUN` refused it as a reward model instead of using the SFT model."""
    from r1kit.atomic import COMPLETE_MARKER
    from r1kit.runs import final_model

    for index, kind in enumerate(("sft", "reward_model")):
        stage = tmp_path / f"0{index + 1}_{kind}"
        (stage / "model").mkdir(parents=True)
        (stage / "manifest.json").write_text(json.dumps({"kind": kind, "status": "complete"}))
        (stage / "model" / COMPLETE_MARKER).write_text("{}")
        os.utime(stage / "model" / COMPLETE_MARKER, (1000 + index, 1000 + index))
    assert final_model(RunDir(tmp_path)) == tmp_path / "01_sft" / "model"


def test_a_runs_final_model_that_is_its_base_is_not_looked_for_inside_the_run(tmp_path: Path) -> None:
    """A recipe whose stages kept no model has the base as its final model: a hub id was joined onto the run folder
    (RUN/HuggingFaceTB/SmolLM2-135M-Instruct)."""
    from r1kit.runs import final_model

    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    for stored in ("HuggingFaceTB/SmolLM2-135M-Instruct", str(tmp_path / "base"), "02_grpo/model"):
        (run.root / "summary.json").write_text(json.dumps({"final_model": stored}))
        assert final_model(run) == (run.root / stored if stored.startswith("02_") else Path(stored))


def test_a_redone_stage_takes_the_later_evaluations_of_its_old_model_with_it(
    finished_run: Path, tmp_path: Path
) -> None:
    """`r1kit eval` results of a model that a changed setting then retrained stayed, read as the new model's by the
    report and compare."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    for data in ([], ["--data", "word_problems"]):  # eval.json and eval_2.json, both of the final (GRPO) model
        assert r1kit_cli("eval", "--profile", "test", "--model", str(run), *data, cwd=REPO).returncode == 0
    assert r1kit_cli("eval", "--profile", "test", "--model", str(run / "01_sft"), cwd=REPO).returncode == 0
    other = shutil.copytree(finished_run, tmp_path / "other")  # another run's GRPO model, scored into this run
    scored = r1kit_cli("eval", "--profile", "test", "--model", str(other), "--out", str(run), cwd=REPO)
    assert scored.returncode == 0
    shutil.rmtree(other)
    # and in the folder moved since (its evaluations name the models where they were: they were kept)
    run = run.rename(tmp_path / "moved")
    kept = ["eval_3.json", "eval_4.json"]  # of the SFT model, and of the other run's model (not this run's GRPO)
    redone = r1kit_cli("run", "--profile", "test", "--out", str(run), "--training.max_steps", "2", cwd=REPO)
    assert redone.returncode == 0, redone.stderr[-2000:]
    assert "02_grpo: removed the evaluations of its old model (eval, eval_2)" in redone.stderr
    assert sorted(p.name for p in (run / "eval").glob("eval*.json")) == kept


def test_an_outdated_stage_whose_inputs_are_unchanged_is_kept_and_said_so(finished_run: Path, tmp_path: Path) -> None:
    """After --only, a later stage whose inputs turned out the same was reported as plain "complete, skipped"."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["stages"][1]["status"] = "outdated"  # as `--only sft` leaves it, whether or not SFT's model changed
    (run / "manifest.json").write_text(json.dumps(manifest))
    again = r1kit_cli("run", "--profile", "test", "--out", str(run), cwd=REPO)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "02_grpo: complete, skipped (outdated, but what it reads is unchanged)" in again.stderr
    assert "01_sft: complete, skipped\n" in again.stderr
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    assert [s["status"] for s in stages] == ["complete", "complete"]


def test_the_saved_config_repeats_the_run(finished_run: Path) -> None:
    shown = r1kit_cli("config", "show", "--format", "json", "--config", str(finished_run / "config.yaml"), cwd=REPO)
    assert json.loads(shown.stdout)["model"]["name"] == "tiny-random"


def test_eval_command_with_pass_at_k(finished_run: Path, tmp_path: Path) -> None:
    done = r1kit_cli(
        "eval",
        "--model",
        str(finished_run),
        "--data",
        "arithmetic",
        "--profile",
        "test",
        "--out",
        str(tmp_path),
        "--evaluation.num_samples",
        "4",
        "--evaluation.pass_k",
        "[1, 2, 4]",
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert result["model"].endswith("02_grpo/model") and result["problems"] == 8
    problems = RunDir(tmp_path).read_problems("eval")  # every problem, in the order of the scores
    assert [p["correct"] for p in problems] == result["scores"] and all(p["question"] and p["gold"] for p in problems)
    assert all(p["group"] in {"1", "2", "3", "4"} for p in problems)  # the built-in task's levels
    assert set(result["pass_at_k"]) == {"1", "2", "4"} and "pass@4" in done.stdout
    assert result["sampling"] == {"num_samples": 4, "temperature": 0.8} and result["system_prompt"]
    assert result["sampled_unverified_answers"] == 0  # counted in the JSON, as the greedy answers' are
    consensus = result["consensus"]  # the majority vote of the 4 samples: right only where one of them is
    assert consensus["samples"] == 4 and 0.0 <= consensus["accuracy"] <= result["pass_at_k"]["4"]
    assert consensus["accuracy_ci95"][0] <= consensus["accuracy"] <= consensus["accuracy_ci95"][1]
    assert "cons@4 (majority vote)" in done.stdout

    # again into the same folder: kept beside the first (it was overwritten), with the same samples (they were drawn
    # from whatever random state the process was in)
    again = r1kit_cli(*done.args[3:], cwd=REPO)
    assert again.returncode == 0, again.stderr[-2000:]
    second = json.loads((tmp_path / "eval" / "eval_2.json").read_text())
    assert json.loads((tmp_path / "eval" / "eval.json").read_text()) == result
    assert second["pass_at_k"] == result["pass_at_k"] and second["consensus"] == consensus
    assert second["label"] == "eval_2"
    assert re.search(r"metric\s+┃\s+eval_2\s+┃", again.stdout)  # its column named as compare names it (was "eval")
    assert "pass@1 (sampled)" in done.stdout  # told apart from the greedy pass@1 row, not left out


def test_eval_names_and_scores_the_held_out_file_given(tiny_model: Path, tmp_path: Path) -> None:
    held_out = tmp_path / "held_out.jsonl"
    rows = [{"question": f"What is {n} + 1?", "solution": str(n + 1)} for n in range(3)]
    rows.append({"question": "What is x?", "solution": "?!"})  # a gold answer the verifier cannot read
    held_out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = ("eval", "--profile", "test", "--model", str(tiny_model), "--dataset.test_split", str(held_out))
    done = r1kit_cli(*args, "--out", str(tmp_path / "e"), cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "e" / "eval" / "eval.json").read_text())
    assert result["problems"] == 4 and result["dataset"] == str(held_out)  # was: the built-in task's own problems
    compact = "".join(done.stdout.split())  # the caption wraps at its width, a long path anywhere (xdist's folders)
    assert "4held-outproblems·" in compact and "held_out.jsonl" in compact
    capped = r1kit_cli(*done.args[3:], "--evaluation.max_samples", "3", cwd=REPO)  # was "3 held-out problems"
    assert capped.returncode == 0, capped.stderr[-2000:]
    assert "3 of 4 held-out problems (evaluation.max_samples)" in " ".join(capped.stdout.split())
    shown = " ".join(done.stdout.split())  # the table's caption wraps at its width
    assert result["excluded"] == 1 and "1 left out of pass@1 (no readable gold answer" in shown


def test_chat_one_shot(finished_run: Path) -> None:
    done = r1kit_cli(
        "chat", "--model", str(finished_run), "--prompt", "What is 12*13?", "--chat.max_new_tokens", "8", cwd=REPO
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shown = " ".join(done.stdout.split())  # the console wraps at its width
    said = ("answer:", "(no <answer> block)", "(the reply was cut: it reached chat.max_new_tokens (8)")
    assert any(what in shown for what in said)
    assert f"model {finished_run / '02_grpo' / 'model'} · system prompt: Solve the problem." in shown  # who answers


def test_interactive_chat_keeps_the_conversation_and_knows_its_commands(finished_run: Path) -> None:
    """`/exit` and `/help` went to the model as questions, and each question was asked alone, with no word of it.
    An empty line ended the session (a pasted problem with a blank line lost the rest of it)."""
    typed = 'What is 2+3?\n\n/help\n"""What is\n\n4+4?\n"""\n/clear\n/exit\nnever asked\n'
    command = [sys.executable, "-m", "r1kit", "chat", "--model", str(finished_run), "--chat.max_new_tokens", "8"]
    done = subprocess.run(command, cwd=REPO, input=typed, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    shown = " ".join(done.stdout.split())
    assert "/exit or Ctrl-D to quit · /help" in shown
    assert "/clear forgets the conversation so far" in shown and "(the conversation so far is forgotten)" in shown
    # two questions, the empty line, /help, /clear, /exit ("never asked" was not), the block's 3 more lines each "..."
    assert shown.count("you>") == 6 and shown.count("... ") >= 3
    # a mistyped command is said, not asked of the model (nor kept in the conversation)
    mistyped = subprocess.run(command, cwd=REPO, input="/exti\n/exit\n", capture_output=True, text=True, timeout=300)
    assert mistyped.returncode == 0 and "(no command /exti: /help lists them)" in mistyped.stdout
    assert not re.search(r"\(no <answer> block\)|\(the reply|answer: ", mistyped.stdout)  # what each reply ends with


@pytest.mark.parametrize("encoding", ["", "utf-8"])
def test_a_question_with_bytes_that_are_not_utf8_is_answered(finished_run: Path, encoding: str) -> None:
    """A Latin-1 "é" typed or piped in ended the session: "unexpected error (a bug in r1kit …): TextEncodeInput";
    under a UTF-8 locale (stdin strict; PYTHONIOENCODING stands in for one here), a UnicodeDecodeError."""
    command = [sys.executable, "-m", "r1kit", "chat", "--model", str(finished_run), "--chat.max_new_tokens", "4"]
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    done = subprocess.run(
        command, cwd=REPO, input=b"caf\xe9?\nWhat is 1+1?\n", capture_output=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert b"unexpected error" not in done.stderr and done.stdout.count(b"you>") == 3


def test_interactive_chat_feeds_the_kept_turns_back(
    finished_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The turns the chat keeps are what the next question is asked after (`reply`'s `earlier`): each reply without
    its thinking; /clear empties them, and chat.history false or chat.raw keeps none."""
    from r1kit.chat import main as chat_main
    from r1kit.chat import without_thinking
    from r1kit.stages.common import as_trained

    def chat(typed: str, *overrides: str) -> list[tuple[str, str]]:
        monkeypatch.setattr("sys.stdin", io.StringIO(typed))
        args = ["--model.name", str(finished_run), "--chat.max_new_tokens", "6", *overrides]
        return chat_main(as_trained(resolve_config(overrides=args, environ={})), None)

    kept = chat("What is 2+3?\nWhat is 4+4?\n")
    assert [question for question, _ in kept] == ["What is 2+3?", "What is 4+4?"]
    assert all(answer == without_thinking(answer) for _, answer in kept)
    assert [q for q, _ in chat("What is 2+3?\n/clear\nWhat is 4+4?\n")] == ["What is 4+4?"]
    assert chat("What is 2+3?\nWhat is 4+4?\n", "--chat.history", "false") == []
    assert chat("What is 2+3?\n", "--chat.raw", "true") == []
    capsys.readouterr()


def test_a_question_too_long_or_a_ctrl_c_ends_one_reply_not_the_conversation(
    finished_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pasted question longer than the model's context, or Ctrl-C while a reply was written, ended the whole chat
    (exit 1 or 130) and the questions after it were never asked."""
    from r1kit.chat import StreamRenderer
    from r1kit.chat import main as chat_main
    from r1kit.stages.common import as_trained

    feed = StreamRenderer.feed
    pressed = []

    def ctrl_c_in_the_first_reply(self, chunk: str) -> None:
        if not pressed:
            pressed.append(chunk)
            raise KeyboardInterrupt
        feed(self, chunk)

    monkeypatch.setattr(StreamRenderer, "feed", ctrl_c_in_the_first_reply)
    monkeypatch.setattr("sys.stdin", io.StringIO("What is 1+1?\n" + "word " * 3000 + "\nWhat is 4+4?\n"))
    args = ["--model.name", str(finished_run), "--chat.max_new_tokens", "6"]
    kept = chat_main(as_trained(resolve_config(overrides=args, environ={})), None)
    assert pressed and [question for question, _ in kept] == ["What is 4+4?"]  # the stopped and the too long: not kept
    shown = " ".join(capsys.readouterr().out.split())
    assert "(stopped)" in shown and "the model's whole context" in shown


def test_ctrl_c_keeps_the_earlier_turns_and_at_the_prompt_drops_only_the_question(
    finished_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C on a reply that had left earlier turns out to make room lost those turns with it; Ctrl-C at the `you>`
    prompt or inside a \"\"\" block (to drop a half-pasted question) ended the whole chat."""
    from r1kit.chat import StreamRenderer
    from r1kit.chat import main as chat_main
    from r1kit.stages.common import as_trained

    feed = StreamRenderer.feed
    replies = []

    def ctrl_c_in_the_second_reply(self, chunk: str) -> None:
        if self not in replies:
            replies.append(self)
        if len(replies) == 2:
            raise KeyboardInterrupt
        feed(self, chunk)

    class Typed(io.StringIO):  # a line "^C" is Ctrl-C pressed there
        def readline(self, *args) -> str:
            line = super().readline(*args)
            if line == "^C\n":
                raise KeyboardInterrupt
            return line

    def config(max_new_tokens: int):
        args = ["--model.name", str(finished_run), "--chat.max_new_tokens", str(max_new_tokens)]
        return as_trained(resolve_config(overrides=args, environ={}))

    limit = AutoConfig.from_pretrained(finished_run / "02_grpo" / "model").max_position_embeddings
    monkeypatch.setattr(StreamRenderer, "feed", ctrl_c_in_the_second_reply)
    tokenizer = AutoTokenizer.from_pretrained(finished_run / "02_grpo" / "model")
    words = limit
    while len(tokenizer("long " * words)["input_ids"]) > limit * 0.35:
        words = int(words * 0.9)
    question = ("long " * words).strip()  # two do not fit in half the context: the second leaves the first out
    monkeypatch.setattr("sys.stdin", Typed(f"{question}\n{question}\n"))
    kept = chat_main(config(limit // 2), None)  # the earlier turns get the other half of the context
    assert len(replies) == 2 and [q for q, _ in kept] == [question]  # the first turn is still the conversation's
    assert "(1 earliest turn left out: the context is full)" in capsys.readouterr().out

    monkeypatch.setattr(StreamRenderer, "feed", feed)
    monkeypatch.setattr("sys.stdin", Typed('What is 1+1?\n^C\n"""Solve:\n^C\nWhat is 4+4?\n'))
    kept = chat_main(config(4), None)
    assert [q for q, _ in kept] == ["What is 1+1?", "What is 4+4?"]
    assert " ".join(capsys.readouterr().out.split()).count("(cancelled; /exit or Ctrl-D quits)") == 2


def test_a_chat_turn_is_asked_after_the_earlier_ones_that_fit(finished_run: Path) -> None:
    from r1kit.chat import reply
    from r1kit.hardware import setup_hardware
    from r1kit.models import ModelError, load_model, load_tokenizer
    from r1kit.prompts import chat_prompt

    model_dir = str(finished_run / "02_grpo" / "model")
    config = resolve_config(profile="test", overrides=["--chat.max_new_tokens", "4"], environ={}).config
    tokenizer = load_tokenizer(config.model, model_dir)
    model = load_model(config.model, model_dir, setup_hardware("cpu", "fp32"), for_training=False)
    console = Console(file=io.StringIO())
    earlier = [("What is 1+1?", "<answer>2</answer>")]
    assert [m["role"] for m in chat_prompt("What is 2+3?", "S.", earlier)] == ["system", "user", "assistant", "user"]
    reply(model, tokenizer, "What is 2+3?", config, console, earlier)
    assert earlier == [("What is 1+1?", "<answer>2</answer>")]  # it fits: kept
    # a turn the context cannot hold any more goes first, the latest stay
    limit = model.config.max_position_embeddings
    earlier = [("long " * limit, "<answer>1</answer>"), ("What is 1+1?", "<answer>2</answer>")]
    reply(model, tokenizer, "What is 2+3?", config, console, earlier)
    assert earlier == [("What is 1+1?", "<answer>2</answer>")]
    # a reply longer than the context left (generate failed with an index error in its thread, and the chat waited
    # for the stream's end forever), a question longer than the whole context, and a generation that fails
    long_reply = config.model_copy(update={"chat": config.chat.model_copy(update={"max_new_tokens": 10 * limit})})

    def tokens(question: str) -> int:
        prompt = chat_prompt(question, config.prompt.system)
        return len(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_dict=True)["input_ids"])

    words = limit
    while tokens("long " * words) > limit - 8:  # a question that leaves a few tokens of context for the reply
        words = int(words * 0.95)
    assert isinstance(reply(model, tokenizer, "long " * words, long_reply, console), str)
    # a chat.max_new_tokens as long as the context: the earlier turns that fit are kept (every one was dropped), and
    # one that no longer fits is said to be left out
    earlier = [("What is 1+1?", "<answer>2</answer>")]
    reply(model, tokenizer, "What is 2+3?", long_reply, console, earlier)
    assert earlier == [("What is 1+1?", "<answer>2</answer>")]
    earlier = [("long " * (limit // 2), "<answer>1</answer>"), ("What is 1+1?", "<answer>2</answer>")]
    reply(model, tokenizer, "What is 2+3?", long_reply, console, earlier)
    assert earlier == [("What is 1+1?", "<answer>2</answer>")]
    assert "(1 earliest turn left out: the context is full)" in console.file.getvalue()
    kept = [("What is 1+1?", "<answer>2</answer>")]
    with pytest.raises(ModelError, match=r"the question takes \d+ tokens, the model's whole context"):
        reply(model, tokenizer, "long " * limit, config, console, kept)
    assert kept == [("What is 1+1?", "<answer>2</answer>")]  # a refused question drops no earlier turn
    model.generate = lambda **kwargs: 1 / 0
    with pytest.raises(ZeroDivisionError):
        reply(model, tokenizer, "What is 2+3?", config, console)


def test_chat_and_eval_ask_a_stage_model_with_the_system_prompt_its_stage_trained_with(tmp_path: Path) -> None:
    from r1kit.stages.common import as_trained

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "prompt: {system: Run prompt.}\ndataset: {name: word_problems}\n"
        "stages: [{name: sft}, {name: rl, kind: grpo, config: {prompt: {system: RL prompt.}, dataset: {name: mixed}}}]\n"
    )
    run = tmp_path / "run"
    # model folders as far as finding them goes
    for folder in ("eval", "01_sft/model", "02_rl/model", "02_rl/checkpoints/checkpoint-3"):
        (run / folder).mkdir(parents=True)
        (run / folder / "config.json").write_text("{}")
    (run / "config.yaml").write_text(to_yaml(resolve_config(recipe=str(recipe), environ={}).config))
    (run / "summary.json").write_text(json.dumps({"final_model": "02_rl/model"}))

    def asked_with(model: Path, *flags: str) -> str:
        return as_trained(resolve_config(overrides=["--model.name", str(model), *flags], environ={})).prompt.system

    assert asked_with(run) == "RL prompt."  # the run's final model: its stage's own prompt
    assert asked_with(run / "02_rl" / "model") == "RL prompt."
    assert asked_with(run / "01_sft" / "model") == "Run prompt."
    # a checkpoint of the stage: its stage's prompt and the run's held-out problems (the default prompt and data were
    # asked, and its evaluation went to a new folder)
    assert asked_with(run / "02_rl" / "checkpoints" / "checkpoint-3") == "RL prompt."
    assert asked_with(run, "--prompt.system", "Mine.") == "Mine."  # one the user gives wins

    def scored_on(*flags: str):
        return as_trained(resolve_config(overrides=["--model.name", str(run), *flags], environ={})).dataset

    # the run's held-out problems, as in its table (not the final stage's own training data), unless other data is
    # given
    assert scored_on().name == "word_problems"
    assert scored_on("--data", "arithmetic").name == "arithmetic"
    limited = scored_on("--dataset.max_test_samples", "5")  # the user's own dataset.* laid over the run's
    assert (limited.name, limited.max_test_samples) == ("word_problems", 5)
    # scored whole only where the data was named to score: `--config RUN/config.yaml` (the run's own data) scored its
    # training rows as held-out
    from r1kit.stages.common import data_named

    def named(*flags: str, config_file: str | None = None, environ: dict | None = None) -> bool:
        given = resolve_config(
            config_file=config_file, overrides=["--model.name", str(run), *flags], environ=environ or {}
        )
        return data_named(given)

    assert not named() and not named("--data", "word_problems") and named("--data", "arithmetic")
    assert not named(config_file=str(run / "config.yaml"))
    assert not named(environ={"R1KIT_DATASET_NAME": "word_problems"})
    assert named(environ={"R1KIT_DATASET_NAME": "arithmetic"})  # other data: its rows are no training rows
    # the local file it trained on, given with --data: its held-out rows too (the whole file, training rows and all,
    # was scored: a sweep's `-- --data FILE` paired models on problems they had trained on)
    data, other = tmp_path / "sums.jsonl", tmp_path / "other.jsonl"
    for path in (data, other):
        path.write_text("".join(json.dumps({"question": f"{i} + 1?", "solution": str(i + 1)}) + "\n" for i in range(9)))
    own = tmp_path / "own"
    for folder in ("eval", "01_sft/model"):
        (own / folder).mkdir(parents=True)
    (own / "01_sft" / "model" / "config.json").write_text("{}")
    split = ["--dataset.split.seed", "7"]
    (own / "config.yaml").write_text(
        to_yaml(resolve_config(overrides=["--data", str(data), *split], environ={}).config)
    )
    (own / "summary.json").write_text(json.dumps({"final_model": "01_sft/model"}))
    trained_on = resolve_config(overrides=["--model.name", str(own), "--data", str(data)], environ={})
    assert not data_named(trained_on)
    assert as_trained(trained_on).dataset.split.seed == 7  # held out as its run held it out (eval's seed: its rows)
    assert data_named(resolve_config(overrides=["--model.name", str(own), "--data", str(other)], environ={}))


def test_eval_of_a_runs_model_scores_what_its_table_scored(tmp_path: Path) -> None:
    """A run with its own evaluation settings (a dev profile's 40 problems, `--evaluation.max_samples 4`) had its model
    scored by `r1kit eval --model RUN` on the default's problems and answer limit: `compare` refused the pair."""
    from r1kit.stages.common import as_trained

    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    (run / "sft" / "model").mkdir(parents=True)
    (run / "sft" / "model" / "config.json").write_text("{}")
    table = ["--evaluation.max_samples", "4", "--evaluation.max_new_tokens", "8", "--evaluation.num_samples", "2"]
    table += ["--evaluation.pass_k", "[1, 2]", "--evaluation.every_steps", "3"]
    (run / "config.yaml").write_text(
        to_yaml(resolve_config(overrides=["--data", "arithmetic", *table], environ={}).config)
    )
    (run / "summary.json").write_text(json.dumps({"final_model": "sft/model"}))

    def scored_with(*flags: str, profile: str = "default"):
        given = resolve_config(profile=profile, overrides=["--model.name", str(run), *flags], environ={})
        return as_trained(given).evaluation

    scored = scored_with()
    assert (scored.max_samples, scored.max_new_tokens, scored.num_samples) == (4, 8, 2)
    assert scored.every_steps is None  # how it evaluated while training is no setting of the table's
    assert scored_with("--evaluation.max_samples", "6").max_samples == 6  # the user's own
    assert scored_with("--data", "word_problems").max_samples == 200  # other data: eval's own settings
    # the run's pass_k beside the user's fewer samples read 100% (n - c < k): the k that fit in them
    sampled = scored_with("--evaluation.num_samples", "1")
    assert (sampled.num_samples, sampled.pass_k) == (1, [1])
    warmer = scored_with("--evaluation.temperature", "0.5")  # the run's samples, at the user's temperature
    assert (warmer.num_samples, warmer.pass_k, warmer.temperature) == (2, [1, 2], 0.5)
    assert scored_with(profile="test").max_samples == 8  # a profile named is the user's too


def test_a_runs_own_config_is_read_back_whatever_command_and_processes_made_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`r1kit eval`, `chat` and a stage training on from a run read its config.yaml as a plain `r1kit run`: a PPO
    stage's overlong reward was checked against GRPO's length limit, a 2-process run's batch against 1 process, and
    each such run could not be evaluated, chatted with or trained from."""
    from r1kit.stages.common import as_trained

    ppo = ["--reward_funcs", "accuracy,format,overlong", "--ppo.max_new_tokens", "64"]
    made = {
        "ppo": resolve_config(
            profile="test", overrides=[*ppo, "--rewards.overlong.soft_cache", "32"], environ={}, command="ppo"
        ).config,
    }
    monkeypatch.setenv("WORLD_SIZE", "2")  # as in each of the 2 launched processes
    made["grpo"] = resolve_config(
        profile="test", overrides=["--per_device_train_batch_size", "2"], environ={}, command="grpo"
    ).config
    monkeypatch.delenv("WORLD_SIZE")
    for stage, config in made.items():
        run = tmp_path / stage
        (run / stage / "model").mkdir(parents=True)
        (run / stage / "model" / "config.json").write_text("{}")
        (run / stage / "manifest.json").write_text("{}")
        (run / "config.yaml").write_text(to_yaml(config))
        asked = as_trained(resolve_config(overrides=["--model.name", str(run / stage / "model")], environ={}))
        assert asked.prompt == config.prompt


def test_a_stage_run_alone_is_a_run_folder_for_eval_chat_and_report(tmp_path: Path) -> None:
    from r1kit.monitoring.compare import evaluation_file
    from r1kit.monitoring.report import write_report
    from r1kit.stages.common import as_trained, loadable_model, setup

    out = tmp_path / "sft_alone"
    done = r1kit_cli("sft", "--profile", "test", "--out", str(out), "--prompt.system", "Answer in one word.", cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"score its model on the held-out rows: r1kit eval --model {out}" in done.stderr  # it scores nothing itself
    # the run folder, the stage folder and RUN:STAGE (as compare names it) stand for its model, asked as trained
    for model in (out, out / "sft", out / "sft" / "model", f"{out}:sft"):
        resolved = resolve_config(overrides=["--model.name", str(model)], environ={})
        assert as_trained(resolved).prompt.system == "Answer in one word."
        assert loadable_model(resolved.config) == str(out / "sft" / "model")
    # a stage trains on from a run or stage folder too (the Kaggle flow: SFT, then GRPO on its output)
    for model in (out, out / "sft"):
        overrides = ["--model.name", str(model), "--out", str(tmp_path / f"next_{model.name}")]
        assert setup(resolve_config(profile="test", overrides=overrides, environ={}).config, "grpo")[1] == str(
            out / "sft" / "model"
        )
    # evaluated into its own run folder, where the report finds it (was: ./runs/eval-<time>, which no report reads)
    evaluated = r1kit_cli("eval", "--profile", "test", "--model", str(out), cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads((out / "eval" / "eval.json").read_text())["model"].endswith("sft/model")
    assert not (tmp_path / "runs").exists()
    page = write_report(out).read_text()
    assert "<td>sft</td><td>sft</td><td>complete</td>" in page and "train_rows" in page
    assert "<h2>Evaluation</h2>" in page and "<h1>r1kit sft <code>sft_alone</code></h1>" in page  # was: "r1kit run"
    # compare names the stage folder's model by its `r1kit eval` (was: "its model has no evaluation in the run")
    assert evaluation_file(str(out / "sft")) == out / "eval" / "eval.json"


def test_a_run_on_relative_data_paths_is_evaluated_from_another_folder(tmp_path: Path) -> None:
    """`r1kit eval --model RUN` scores the run's held-out problems, but the run's config.yaml keeps its data paths as
    given: from another folder "dataset file not found: d.jsonl". config.yaml's first line names the folder the
    command ran in, and the run's relative data and held-out files are found from there."""
    from r1kit.data.synthetic import generate

    started, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    started.mkdir(), elsewhere.mkdir()
    for name, seed, rows in (("d.jsonl", 1, 40), ("h.jsonl", 2, 3)):
        (started / name).write_text("".join(json.dumps(row) + "\n" for row in generate("arithmetic", rows, seed)))
    args = ("sft", "--profile", "test", "--data", "d.jsonl", "--dataset.test_split", "h.jsonl", "--out", "run")
    assert r1kit_cli(*args, cwd=started).returncode == 0
    assert RunDir(started / "run").started_in() == started

    evaluated = r1kit_cli("eval", "--profile", "test", "--model", str(started / "run"), cwd=elsewhere)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    result = json.loads((started / "run" / "eval" / "eval.json").read_text())
    assert result["dataset"] == str(started / "h.jsonl") and result["problems"] == 3
    again = r1kit_cli(*args, cwd=started)  # the header is no setting: the same command still has nothing to do
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr[-3000:]


def test_an_edited_plug_in_reward_is_new_work(tmp_path: Path) -> None:
    """A stage scored by a plug-in reward said "nothing to do" after the reward's code was edited: the model trained
    on the old reward was kept."""
    from r1kit.rewards.plugins import load_plugin

    module = tmp_path / "edited_in_a_test.py"  # a name of its own: the commands run in this process, which keeps it
    module.write_text("def short(completions, **kw):\n    return [1.0 for c in completions]\n")
    args = ("grpo", "--profile", "test", "--rewards.functions", "[format, 'edited_in_a_test:short']", "--out", "run")
    try:
        assert r1kit_cli(*args, cwd=tmp_path).returncode == 0
        again = r1kit_cli(*args, cwd=tmp_path)
        assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr[-3000:]
        module.write_text("def short(completions, **kw):\n    return [0.0 for c in completions]\n")
        edited = r1kit_cli(*args, cwd=tmp_path)
        assert edited.returncode == 0, edited.stderr[-3000:]
        assert "nothing to do" not in edited.stderr and "reward edited_in_a_test:short" in edited.stderr
    finally:
        sys.modules.pop("edited_in_a_test", None)
        load_plugin.cache_clear()


def test_a_failed_start_rerun_with_more_threads_keeps_its_base_evaluation(tmp_path: Path) -> None:
    """A run killed before its first stage finished, rerun with another thread count (how it runs, not what it
    makes), was taken for a failed start of another config: its base evaluation and logs were deleted and redone."""
    args = ("run", "--stages", "[{name: sft}]", "--profile", "test", "--out", "run")
    assert r1kit_cli(*args, cwd=tmp_path).returncode == 0
    run = tmp_path / "run"
    shutil.rmtree(run / "01_sft")
    (run / "summary.json").unlink()  # as a run killed in its first stage leaves it
    evaluated = (run / "eval" / "base.json").read_text()
    again = r1kit_cli(*args, "--model.threads", "1", cwd=tmp_path)
    assert again.returncode == 0 and "failed start" not in again.stderr, again.stderr[-3000:]
    assert (run / "eval" / "base.json").read_text() == evaluated  # reused, not scored again


def test_saying_the_golds_are_words_leaves_a_finished_stage_as_it_is(tmp_path: Path) -> None:
    """dataset.word_answers only lets the data check accept words: set on a finished run (one started before the
    check refused all-word data), it refused the run as "another config", and --resume trained it again."""
    rows = [
        {"question": f"Is {i} even?", "solution": "12" if i == 0 else ("Yes" if i % 2 == 0 else "No")}
        for i in range(40)
    ]
    (tmp_path / "yes_no.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = ("grpo", "--profile", "test", "--data", "yes_no.jsonl", "--out", "run")
    assert r1kit_cli(*args, cwd=tmp_path).returncode == 0
    said = r1kit_cli(*args, "--dataset.word_answers", "true", cwd=tmp_path)
    assert said.returncode == 0 and "nothing to do" in said.stderr, said.stderr[-3000:]


def test_resume_with_a_config_file_and_no_folder_makes_none(tmp_path: Path, monkeypatch) -> None:
    """`r1kit sft --config my.yaml --resume` made runs/<time>, left it empty, and said it had nothing to resume."""
    from r1kit.runs import RunDirError, open_run

    monkeypatch.chdir(tmp_path)
    config = resolve_config(profile="test", overrides=["--resume"], environ={}).config
    with pytest.raises(RunDirError, match="--resume: name the run to continue with --out"):
        open_run(config, "sft")
    assert not (tmp_path / "runs").exists()


def test_a_run_continued_from_another_folder_is_continued_again_from_there(tmp_path: Path) -> None:
    """Continued from another folder (its data named absolutely), a run's config.yaml named that folder as the one its
    relative paths are from, and its finished stage's manifest (`d.jsonl`, from the first folder) was read from there:
    the same command again, and --resume, were refused as "another config" of finished training."""
    from r1kit.data.synthetic import generate

    started, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    started.mkdir(), elsewhere.mkdir()
    (started / "d.jsonl").write_text("".join(json.dumps(row) + "\n" for row in generate("arithmetic", 40, 1)))
    recipe = ("--stages", "[{name: sft}]", "--profile", "test", "--out", str(started / "run"))
    assert r1kit_cli("run", *recipe, "--data", "d.jsonl", cwd=started).returncode == 0
    for _ in range(2):
        again = r1kit_cli("run", *recipe, "--data", str(started / "d.jsonl"), cwd=elsewhere)
        assert again.returncode == 0 and "01_sft: complete, skipped" in again.stderr, again.stderr[-3000:]
    resumed = r1kit_cli("run", "--out", str(started / "run"), "--resume", cwd=elsewhere)
    assert resumed.returncode == 0 and "01_sft: complete, skipped" in resumed.stderr, resumed.stderr[-3000:]


@pytest.mark.parametrize("stage", ["sft", "sft2"])
def test_sft_alone_on_chat_replies_asks_with_the_plain_prompt_and_saves_it(stage: str, tmp_path: Path) -> None:
    """Chat data under the default reasoning prompt was trained to ignore its prompt, with only a warning (sft2: not
    even that); the prompt that trained is what eval and chat ask with, so it is saved with the run."""
    from r1kit.prompts import GENERAL_SYSTEM_PROMPT
    from r1kit.stages.common import as_trained, with_trained_prompt

    chat = tmp_path / "chat.jsonl"
    turns = [
        [{"role": "user", "content": f"Name colour {i}."}, {"role": "assistant", "content": "Blue."}] for i in range(12)
    ]
    chat.write_text("".join(json.dumps({"messages": row}) + "\n" for row in turns))
    out = tmp_path / "run"
    args = (stage, "--profile", "test", "--data", str(chat), "--sft.max_steps", "1", "--sft2.general_ratio", "0")
    args += ("--out", str(out))
    done = r1kit_cli(*args, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "so training, evaluation and chat ask with the plain prompt" in done.stderr
    resolved = resolve_config(overrides=["--model.name", str(out)], environ={})
    assert as_trained(resolved).prompt.system == GENERAL_SYSTEM_PROMPT
    # a stage that trains on from it does so with that prompt too (PPO asked it with the reasoning prompt), unless
    # the user sets one
    assert with_trained_prompt(resolved, "ppo").prompt.system == GENERAL_SYSTEM_PROMPT
    mine = resolve_config(overrides=["--model.name", str(out), "--prompt.system", "Mine."], environ={})
    assert with_trained_prompt(mine, "ppo").prompt.system == "Mine."
    # scored on the rows the stage held out, not on the whole file, training rows and all
    held_out = int(re.search(r"(\d+) held-out", done.stderr).group(1))
    evaluated = r1kit_cli("eval", "--profile", "test", "--model", str(out), cwd=REPO)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads((out / "eval" / "eval.json").read_text())["held_out_rows"] == held_out < 12
    again = r1kit_cli(*args, cwd=REPO)  # the same command: its saved config matches, nothing to do
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr[-2000:]


def test_a_stage_alone_in_a_recipe_runs_folder_is_refused(finished_run: Path) -> None:
    """`r1kit sft --out RECIPE_RUN` was accepted: it wrote RUN/sft beside 01_sft and replaced the recipe's config.yaml
    with its own (the default stages), which `r1kit run --out RUN --resume` then ran."""
    saved = (finished_run / "config.yaml").read_text()
    for extra in ([], ["--resume"]):
        done = r1kit_cli("sft", "--profile", "test", "--out", str(finished_run), *extra, cwd=REPO)
        assert done.returncode == 1 and "holds a recipe run (its stages 01_sft, 02_grpo)" in done.stderr, done.stderr
    assert (finished_run / "config.yaml").read_text() == saved and not (finished_run / "sft").exists()


def test_a_recipe_run_in_a_stage_alone_s_folder_is_refused(tmp_path: Path) -> None:
    """`r1kit run --out FOLDER` of a finished `r1kit sft --out FOLDER` took it over: its SFT cut the stage's log lines
    (the same label), replaced its config.yaml, and the stage could no longer be resumed."""
    out = tmp_path / "alone"
    assert r1kit_cli("sft", "--profile", "test", "--out", str(out), cwd=REPO).returncode == 0
    saved, logged = (out / "config.yaml").read_text(), (out / "metrics.jsonl").read_text()
    for extra in ([], ["--resume"]):
        done = r1kit_cli("run", "--profile", "test", "--out", str(out), *extra, cwd=REPO)
        assert done.returncode == 1 and "holds a stage run alone (sft): `r1kit run` runs a recipe" in done.stderr
    assert (out / "config.yaml").read_text() == saved and (out / "metrics.jsonl").read_text() == logged
    assert not list(out.glob("0*_*"))


def test_a_hand_written_config_in_the_out_folder_is_not_taken_for_a_failed_start(tmp_path: Path) -> None:
    """`r1kit run --config u1/config.yaml --profile smoke --out u1`: the user's file was taken for a failed start's,
    deleted with the folder's logs and replaced by the run's config, its profiles gone."""
    out = tmp_path / "u1"
    out.mkdir()
    mine = "# my settings\nmodel: {name: tiny-random}\nprofiles:\n  smoke: {sft: {max_steps: 1}, training: {max_steps: 1}}\n"
    (out / "config.yaml").write_text(mine)
    done = r1kit_cli("run", "--config", str(out / "config.yaml"), "--profile", "smoke", "--out", str(out), cwd=REPO)
    assert done.returncode == 1 and "config.yaml is no r1kit run's config" in done.stderr, done.stderr[-2000:]
    assert (out / "config.yaml").read_text() == mine
    # nor is a `config show` dump of every section (an earlier r1kit's run config has them too, beside its log)
    dump = r1kit_cli("config", "show", "--profile", "test", cwd=REPO).stdout
    (out / "config.yaml").write_text("# my notes\n" + dump)
    done = r1kit_cli("sft", "--profile", "test", "--out", str(out), cwd=REPO)
    assert done.returncode == 1 and "config.yaml is no r1kit run's config" in done.stderr, done.stderr[-2000:]
    assert (out / "config.yaml").read_text() == "# my notes\n" + dump


def test_a_folder_of_data_named_like_a_stage_is_no_recipe_run(tmp_path: Path) -> None:
    args = ("sft", "--profile", "test", "--out", "run")
    assert r1kit_cli(*args, cwd=tmp_path).returncode == 0
    (tmp_path / "run" / "00_data").mkdir()  # the user's: no stage manifest in it
    again = r1kit_cli(*args, cwd=tmp_path)
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr[-3000:]


def test_chat_sampling_and_raw_prompt_options(finished_run: Path) -> None:
    from r1kit.chat import reply
    from r1kit.hardware import setup_hardware
    from r1kit.models import load_model, load_tokenizer
    from r1kit.rewards.text import extract_answer

    model_dir = str(finished_run / "02_grpo" / "model")
    config = resolve_config(
        profile="test", overrides=["--chat.raw", "true", "--chat.max_new_tokens", "6"], environ={}
    ).config
    tokenizer = load_tokenizer(config.model, model_dir)
    model = load_model(config.model, model_dir, setup_hardware("cpu", "fp32"), for_training=False)
    console = Console(file=io.StringIO())
    raw = reply(model, tokenizer, "12*13=", config, console)
    assert len(tokenizer(raw, add_special_tokens=False)["input_ids"]) <= 6 + 1
    sampled_config = config.model_copy(update={"chat": config.chat.model_copy(update={"temperature": 1.5})})
    torch.manual_seed(0)
    replies = {reply(model, tokenizer, "What is 2+3?", sampled_config, console) for _ in range(4)}
    assert len(replies) > 1  # sampling at temperature 1.5 varies; greedy (the default) would not
    # a reply not asked for <answer> (raw text, or a chat model's plain prompt) is not marked as lacking one
    assert "(no <answer> block)" not in console.file.getvalue()
    asked = config.model_copy(update={"chat": config.chat.model_copy(update={"raw": False})})
    for system, marked in (("You are a helpful assistant.", False), (asked.prompt.system, True)):
        console = Console(file=io.StringIO())
        prompt = asked.prompt.model_copy(update={"system": system})
        text = reply(model, tokenizer, "What is 2+3?", asked.model_copy(update={"prompt": prompt}), console)
        shown = console.file.getvalue()
        assert marked or "(no <answer> block)" not in shown
        if marked and extract_answer(text) is None:  # said, or that the reply was cut before one (6 tokens)
            assert "(no <answer> block)" in shown or "(the reply was cut: it reached chat.max_new_tokens (6)" in shown


# --------------------------------------------------------------------------------------------- bad input


def test_bad_model_and_folder_inputs_are_clear_errors(tmp_path: Path) -> None:
    missing = r1kit_cli("eval", "--model", str(tmp_path / "nowhere"), "--profile", "test", cwd=REPO)
    assert missing.returncode == 1 and "model folder not found" in missing.stderr
    offline = r1kit_cli(
        "eval", "--model", "no-such-org/no-such-model", "--profile", "test", cwd=REPO, env={"HF_HUB_OFFLINE": "1"}
    )
    assert offline.returncode == 1 and "cannot load model 'no-such-org/no-such-model'" in offline.stderr
    # without HF_HUB_OFFLINE, as a user runs it, against a hub whose name resolves nowhere (as on a machine without
    # network): the answer comes at once (it was 30-50 s of retries, each printed twice); a name without a slash is
    # first a folder that is not there
    unset = ("HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
    nowhere = {key: value for key, value in os.environ.items() if key not in unset} | {
        "HF_ENDPOINT": "https://hub.invalid"
    }
    started = time.monotonic()
    command = [sys.executable, "-m", "r1kit", "eval", "--model", "out9", "--profile", "test", "--out", str(tmp_path)]
    typo = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=nowhere)
    assert typo.returncode == 1 and time.monotonic() - started < 25 and "Retrying" not in typo.stderr
    assert "cannot load model 'out9': there is no folder 'out9' here, and the hub (hub.invalid) cannot be reached" in (
        typo.stderr
    )
    # a stage whose model cannot be loaded leaves no empty run folder behind (the corrected command took it over)
    no_model = r1kit_cli("sft", "--profile", "test", "--model.name", str(tmp_path / "nowhere"), "--out",
                         str(tmp_path / "sft_run"), cwd=REPO)  # fmt: skip
    assert no_model.returncode == 1 and "model folder not found" in no_model.stderr
    assert not (tmp_path / "sft_run").exists()
    unwritable = r1kit_cli("run", "--profile", "test", "--out", "/proc/r1kit-cannot-write-here", cwd=REPO)
    assert unwritable.returncode == 1 and "is not writable" in unwritable.stderr
    assert "Loading weights" not in unwritable.stderr  # refused before any model was loaded


# ------------------------------------------------------------------------------------------- kill, resume

GRPO_ARGS = [
    "grpo",
    "--profile",
    "test",
    "--training.max_steps",
    "24",
    "--training.checkpoint.save_steps",
    "2",
    *VARIED_REWARDS,
]


def test_resume_from_another_folder_reads_the_run_s_relative_paths_from_where_it_started(
    tmp_path: Path, tiny_model: Path
) -> None:
    """--resume read the saved config's relative model and data paths from the current folder: a model folder
    `tinycopy` became a hub id ("cannot load model 'tinycopy'")."""
    work, elsewhere, out = tmp_path / "work", tmp_path / "elsewhere", tmp_path / "run"
    elsewhere.mkdir()
    shutil.copytree(tiny_model, work / "tinycopy")
    done = r1kit_cli(
        "sft", "--profile", "test", "--model", "tinycopy", "--sft.max_steps", "1", "--out", str(out), cwd=work
    )
    assert done.returncode == 0, done.stderr[-2000:]
    again = r1kit_cli("sft", "--out", str(out), "--resume", cwd=elsewhere)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"--resume works in {work}" in again.stderr and "nothing to do" in again.stderr


def test_a_run_folder_named_as_a_student_is_read_by_its_model_not_its_logs(finished_run: Path, tmp_path: Path) -> None:
    """The whole run folder was hashed: `r1kit eval --model RUN` or `r1kit report RUN` writing into it made a distill
    stage reading it as its student "changed", cleared and redone."""
    from r1kit.stages.common import local_inputs

    run = shutil.copytree(finished_run, tmp_path / "student_run")
    config = resolve_config(overrides=["--distill.student", str(run)], environ={}).config
    before = local_inputs(config, str(run / "02_grpo" / "model"), "distill")
    (run / "eval" / "eval_9.json").write_text("{}")  # as `r1kit eval --model RUN` writes
    (run / "report.html").write_text("<html></html>")
    assert local_inputs(config, str(run / "02_grpo" / "model"), "distill") == before
    assert before["student"] == before["model"]  # the run stands for its final model


def test_a_run_folder_named_from_the_home_folder_is_that_run(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--distill.student=~/runs/s1` (the shell leaves that ~) failed: "…/s1 is not a model folder: it has no
    config.json" (the run folder was not recognised as one)."""
    from r1kit.stages.common import model_reference_of

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "s1").symlink_to(finished_run)
    config = resolve_config(environ={}).config
    assert model_reference_of("~/s1", config) == str(tmp_path / "s1" / "02_grpo" / "model")


def test_a_stage_s_held_out_files_are_read_by_their_content(tmp_path: Path, tiny_model: Path) -> None:
    """A built-in task's held-out file decides which training rows are left out (their reworded twins), and the
    held-out pairs the preference accuracy a stage reports; neither was hashed, so an edited file left the stage
    "complete, nothing to do" on its old result."""
    from r1kit.stages.common import files_read, local_inputs

    held, pairs = tmp_path / "held.jsonl", tmp_path / "pairs.jsonl"
    held.write_text('{"question": "What is 1 + 1?", "solution": "2"}\n')
    pairs.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n')
    flags = ["--dataset.test_split", str(held), "--preferences.dataset", str(pairs)]
    config = resolve_config(overrides=[*flags, "--preferences.test_split", str(held)], environ={}).config
    assert files_read(config, "sft") == {"held_out": str(held)}
    assert files_read(config, "dpo") == {"held_out": str(held), "held_out_pairs": str(held), "preferences": str(pairs)}
    before = local_inputs(config, str(tiny_model), "sft")
    held.write_text('{"question": "What is 2 + 2?", "solution": "4"}\n')
    assert local_inputs(config, str(tiny_model), "sft")["held_out"] != before["held_out"]
    # a stage an earlier r1kit finished, which recorded no held-out input, is not redone for it
    out = tmp_path / "run"
    args = ["sft", "--profile", "test", "--sft.max_steps", "1", "--dataset.test_split", str(held), "--out", str(out)]
    assert r1kit_cli(*args, cwd=REPO).returncode == 0
    manifest = json.loads((out / "sft" / "manifest.json").read_text())
    del manifest["settings"]["inputs"]["held_out"]
    (out / "sft" / "manifest.json").write_text(json.dumps(manifest))
    again = r1kit_cli(*args, cwd=REPO)
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr[-2000:]


def test_a_checkpoint_holds_its_optimizer_and_adapter_shape_not_what_applies_on_resume() -> None:
    """Every model.lora.* key was refused on --resume (alpha and dropout apply to a loaded adapter; a full
    fine-tune's checkpoint has none), PPO's policy learning rate under TRPO (unused), and an adaptive KL start was
    accepted and not used."""
    from r1kit.runs import _held_by_a_checkpoint as held

    lora, full = {"model.lora.enabled": True}, {"model.lora.enabled": False}
    assert (
        held("model.lora.rank", lora) and held("model.lora.target_modules", lora) and held("model.lora.enabled", full)
    )
    assert not any(held(key, lora) for key in ("model.lora.alpha", "model.lora.dropout", "sft.max_steps"))
    assert not held("model.lora.rank", full)
    assert held("sft.optimization.learning_rate", lora) and not held("sft.optimization.max_grad_norm", lora)
    assert held("ppo.learning_rate", {"ppo.policy_update": "clip"}) and not held(
        "ppo.learning_rate", {"ppo.policy_update": "trpo"}
    )
    assert held("ppo.kl_coef", {"ppo.adaptive_kl": True}) and not held("ppo.kl_coef", {"ppo.adaptive_kl": False})


def test_kill_9_mid_training_then_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [*GRPO_ARGS, "--out", str(out)]
    process = subprocess.Popen(
        [sys.executable, "-m", "r1kit", *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not grpo_steps(out) or max(grpo_steps(out)) < 7):
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = max(grpo_steps(out))
    assert killed_at < 24 and not (out / "grpo" / "model").exists()

    # a new learning rate would be saved in config.yaml while the checkpoint's schedule trained on: refused, and
    # nothing written (the resume below continues the run as it was)
    new_rate = r1kit_cli(*args, "--resume", "--learning_rate", "1e-3", cwd=REPO)
    assert new_rate.returncode == 1 and "training.optimization.learning_rate: " in new_rate.stderr
    assert "--resume continues grpo's checkpoint with its optimizer and learning-rate schedule" in new_rate.stderr

    resumed = r1kit_cli(*args, "--resume", cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    assert grpo_steps(out) == list(range(1, 25))  # no step lost, none twice
    assert (out / "grpo" / "model" / "r1kit_complete.json").exists()
    # the stage's time is the whole stage's: the killed run's, up to the checkpoint resumed from, counts too
    manifest = json.loads((out / "grpo" / "manifest.json").read_text())
    resumed_part = manifest["finished_at"] - manifest["started_at"]
    assert manifest["seconds_before_resume"] > 0.5  # model load and the steps to the checkpoint: above the slack
    assert manifest["seconds"] == pytest.approx(manifest["seconds_before_resume"] + resumed_part, abs=0.2)


def test_resume_refuses_new_curriculum_settings() -> None:
    """`--resume --curriculum.max_pass_rate 0.5` was said to keep the prompts the stage chose, then its later
    re-scorings used the new bounds: one stage, two curricula."""
    from r1kit.runs import _held_by_a_checkpoint

    assert _held_by_a_checkpoint("curriculum.max_pass_rate", {"curriculum.enabled": True})
    assert _held_by_a_checkpoint("curriculum.samples_per_prompt", {"curriculum.enabled": True})
    assert not _held_by_a_checkpoint("curriculum.max_pass_rate", {"curriculum.enabled": False})  # no curriculum
    assert _held_by_a_checkpoint("curriculum.enabled", {"curriculum.enabled": False})  # turned off on resume


def test_a_stage_resumed_in_a_later_epoch_trains_on_that_epochs_prompts(tmp_path: Path) -> None:
    """8 prompts, 4 a step: 2 steps an epoch. Resumed from checkpoint-2 (the first epoch's end), the stage trained
    steps 3 and 4 on the first epoch's prompts in the first epoch's order again (TRL's sampler draws each epoch's
    order from a generator seeded once, which a resume restarted)."""

    def prompts_by_step(run: Path) -> dict[int, list[str]]:
        shown = RunDir(run).read("completions.jsonl")
        return {step: sorted({e["prompt"] for e in shown if e["step"] == step}) for step in range(1, 5)}

    args = ["grpo", "--profile", "test", "--dataset.max_train_samples", "8", "--grpo.num_generations", "2"]
    args += ["--training.batch_size.per_device_train", "8", "--training.max_steps", "4"]
    args += ["--training.checkpoint.save_steps", "2", "--monitoring.examples_every", "1"]
    killed = r1kit_killed_in_checkpoint_write(*args, "--out", str(tmp_path / "resumed"), step=4, cwd=REPO)
    assert killed.returncode == -signal.SIGKILL
    resumed = r1kit_cli(*args, "--out", str(tmp_path / "resumed"), cwd=REPO)
    assert resumed.returncode == 0 and "checkpoint-2" in resumed.stderr, resumed.stderr[-2000:]
    assert r1kit_cli(*args, "--out", str(tmp_path / "whole"), cwd=REPO).returncode == 0
    whole = prompts_by_step(tmp_path / "whole")
    assert whole[3] != whole[1]  # the second epoch's order is another
    assert prompts_by_step(tmp_path / "resumed") == whole


def test_kill_9_during_a_checkpoint_write_then_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [*GRPO_ARGS, "--training.max_steps", "8", "--out", str(out)]
    # Die inside the trainer's checkpoint write at step 6: model and optimizer written, RNG and state not yet.
    killed = r1kit_killed_in_checkpoint_write(*args, step=6, cwd=REPO)
    assert killed.returncode == -signal.SIGKILL
    assert (out / "grpo" / ".staging" / "checkpoint-6").exists()  # the half-written checkpoint
    assert sorted(p.name for p in (out / "grpo" / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-4"]

    resumed = r1kit_cli(*args, cwd=REPO)  # re-running the same command continues the run
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr and "checkpoint-4" in resumed.stderr
    assert grpo_steps(out) == list(range(1, 9))
    assert sorted(p.name for p in (out / "grpo" / "checkpoints").iterdir()) == ["checkpoint-6", "checkpoint-8"]

    # the resumed steps sampled and scored what an uninterrupted run does: rollouts are seeded by step and row
    whole = tmp_path / "whole"
    assert r1kit_cli(*args[:-1], str(whole), cwd=REPO).returncode == 0
    resumed_rewards, whole_rewards = grpo_rewards(out), grpo_rewards(whole)
    assert resumed_rewards == pytest.approx(whole_rewards, abs=1e-6)
    # and raised the alerts it does, each once (they were raised again at the first step after the resume)
    raised = [[(a["key"], a["step"]) for a in RunDir(folder).read("alerts.jsonl")] for folder in (out, whole)]
    assert raised[0] == raised[1] and raised[1]


def test_a_run_folder_in_a_stage_folder_of_another_run_is_refused(tmp_path: Path) -> None:
    """`--out RUN/01_sft/next` was taken: redoing 01_sft deletes its folder, and the run in it with it. A run folder
    beside the user's own config.yaml is no stage folder."""
    from r1kit.runs import check_run_folder, leave_run_folder, open_run

    run = tmp_path / "project" / "run"
    (run / "01_sft").mkdir(parents=True)
    (run / "config.yaml").write_text("{}")
    (run / "manifest.json").write_text("{}")
    (run / "01_sft" / "manifest.json").write_text("{}")
    (tmp_path / "project" / "config.yaml").write_text("{}")  # the user's own config, beside the run folder
    for out in (run / "01_sft" / "next", run / "01_sft", run / "01_sft" / "a" / "b"):
        config = resolve_config(environ={}, overrides=["--out", str(out)]).config
        for check in (check_run_folder, open_run):
            with pytest.raises(RunDirError, match=r"01_sft is a stage folder of the run in .*run, deleted with all"):
                check(config, "sft")
    assert sorted(p.name for p in (run / "01_sft").iterdir()) == ["manifest.json"]  # nothing was made
    for out in (tmp_path / "project" / "other", run / "eval" / "new"):  # beside the run, or in no stage folder
        config = resolve_config(environ={}, overrides=["--out", str(out)]).config
        assert open_run(config, "sft").root == out
        leave_run_folder()


def test_a_folder_without_room_is_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match=r"GB free, but this run needs about .* choose another folder with --out"):
        run = RunDir(tmp_path / "run")
        run.create()
        run.prepare(needed_bytes=10**18)
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_a_finished_stage_run_again_alone_is_left_as_it_is(
    tmp_path: Path, tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same `r1kit grpo` again: its result stands. Before, it trained on from its last checkpoint (step 3 of 3):
    a 4th step, another model, each time. Changed data, or a model retrained in place under the same name, is
    another input. With --resume and another setting the finished stage is redone (before, it "resumed" from its
    checkpoint at max_steps: nothing trained, the old model recorded under the new setting)."""
    from transformers import AutoModelForCausalLM

    from r1kit.cli import main

    out, data, model = tmp_path / "run", tmp_path / "problems.jsonl", tmp_path / "model"
    shutil.copytree(tiny_model, model)
    data.write_text("".join(json.dumps({"question": f"{i} + 2?", "solution": str(i + 2)}) + "\n" for i in range(16)))
    args = ["grpo", "--profile", "test", "--model", str(model), "--data", str(data), "--out", str(out)]
    args += ["--training.max_steps", "2"]  # its checkpoint at its last step, as the 3rd of 3 was
    weights = out / "grpo" / "model" / "model.safetensors"
    assert main(args) == 0
    made = weights.read_bytes()
    assert main(args) == 0
    assert f"grpo: complete in {out / 'grpo'} with this config, model and data; nothing to do" in caplog.text
    assert weights.read_bytes() == made
    assert main([*args, "--sft.max_steps", "7"]) == 0  # a key grpo does not read: the same work, not a refusal
    assert caplog.text.count("nothing to do") == 2
    with data.open("a") as rows:  # the data changed: trained again from the start (before: resumed at the end)
        rows.write(json.dumps({"question": "9 + 9?", "solution": "18"}) + "\n")
    assert main(args) == 0
    assert caplog.text.count("nothing to do") == 2 and "grpo: what it reads (data) changed" in caplog.text
    retrained = AutoModelForCausalLM.from_pretrained(model)
    with torch.no_grad():
        retrained.lm_head.weight.mul_(1.5)
    retrained.save_pretrained(model)  # the same folder, other weights
    assert main(args) == 0
    assert caplog.text.count("nothing to do") == 2 and "grpo: what it reads (model) changed" in caplog.text
    assert "resuming from" not in caplog.text  # trained from the start each time (before: resumed at its last step)
    assert main([*args, "--resume", "--training.optimization.learning_rate", "0.5"]) == 0
    assert "resuming from" not in caplog.text and caplog.text.count("changed since its work") == 3
    assert [r["step"] for r in RunDir(out).read("metrics.jsonl") if r["kind"] == "step"] == [1, 2]


def test_another_recipe_into_a_finished_run_is_refused(finished_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before, the run went on: the rlhf recipe's 02_reward_model trained beside the default run's 02_grpo, and the
    run's config, manifest and summary were the new recipe's; r1's 02_sft and this run's 01_sft shared one label in
    the logs and evaluations."""
    from r1kit.cli import main

    saved = (finished_run / "config.yaml").read_text()
    for recipe, stage in (("rlhf", "02_grpo"), ("r1", "01_sft")):
        assert main(["run", "--profile", "test", "--recipe", recipe, "--out", str(finished_run)]) == 1
        err = capsys.readouterr().err
        assert f"holds stage {stage} of another recipe" in err and "--out" in err, err
    assert (finished_run / "config.yaml").read_text() == saved
    assert sorted(p.name for p in finished_run.glob("0*")) == ["01_sft", "02_grpo"]


def test_a_refused_run_leaves_a_failed_start_s_logs_and_evaluations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Opening the folder took over the failed start (its logs and evaluations deleted, "starting over with this
    config") before the plan was refused: a refused command changed the folder."""
    from r1kit.cli import main
    from r1kit.runs import open_run, stop_training_log

    root = tmp_path / "run"
    config = resolve_config(recipe="r1", profile="test", overrides=["--out", str(root)], environ={}).config
    open_run(config, "run").save_config(config)
    (root / "01_cold_start").mkdir()  # killed in its first stage
    (root / "01_cold_start" / "manifest.json").write_text('{"stage": "cold_start", "kind": "cold_start"}')
    for name in ("eval/base.json", "metrics.jsonl", "training.log"):
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_text("{}\n")
    before = sorted(p for p in root.rglob("*") if p.is_file())
    assert main(["run", "--profile", "test", "--recipe", "rlhf", "--out", str(root)]) == 1
    stop_training_log()
    err = capsys.readouterr().err
    assert "holds stage 01_cold_start of another recipe" in err and "starting over" not in err, err
    assert sorted(p for p in root.rglob("*") if p.is_file()) == before


NAME_LOOKUPS = """
import socket, sys
looked_up = []
real = socket.getaddrinfo
socket.getaddrinfo = lambda host, *args, **kwargs: looked_up.append(str(host)) or real(host, *args, **kwargs)
from r1kit.cli import main
code = main(sys.argv[1:])
print("looked up:", sorted(set(looked_up)), "exit", code)
"""


def test_a_training_stage_contacts_no_host(tmp_path: Path) -> None:
    """TRL's trainers send usage telemetry to huggingface.co when they start (seen as a name lookup); r1kit turns it
    off unless the user's environment sets HF_HUB_DISABLE_TELEMETRY. Run as a user runs it: not in offline mode
    (which the tests otherwise set, and which stops telemetry too)."""
    unset = ("HF_HUB_DISABLE_TELEMETRY", "HF_HUB_OFFLINE")
    env = {key: value for key, value in os.environ.items() if key not in unset}
    command = [sys.executable, "-c", NAME_LOOKUPS, "grpo", "--profile", "test", "--out", str(tmp_path / "run")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "looked up: [] exit 0" in done.stdout  # was: ['huggingface.co']


def test_the_chat_renderer_starts_in_the_thinking_a_template_opened() -> None:
    """R1-distill and Qwen3 templates end the prompt with <think>: the reply's thinking was shown as plain text."""
    from r1kit.chat import StreamRenderer
    from r1kit.rewards.text import extract_answer

    console = Console(file=io.StringIO())
    renderer = StreamRenderer(console, thinking=True)
    for chunk in ["2 + 3 ", "= 5\n</th", "ink>\n", "<answer>5</answer>"]:
        renderer.feed(chunk)
    renderer.close()
    shown = console.file.getvalue()
    assert shown.index("── thinking ──") < shown.index("2 + 3 = 5") < shown.index("── answer ──")
    assert extract_answer(renderer.text) == "5"


def test_a_chat_reply_is_shown_as_written_without_emoji() -> None:
    """rich's default console read a ratio's `:b:` (a:b:c), `:x:` or `:100:` in a reply as emoji codes."""
    from r1kit.chat import StreamRenderer

    console = Console(file=io.StringIO())
    renderer = StreamRenderer(console, thinking=True)
    renderer.feed("The ratio a:b:c is 2:3:4, :x: and :100:.</think>\n<answer>a:b:c</answer>")
    renderer.close()
    shown = console.file.getvalue()
    assert "a:b:c is 2:3:4, :x: and :100:." in shown and "a:b:c" in shown.split("── answer ──")[1]


def test_a_chat_reply_that_ends_inside_its_thinking_says_why(tiny_model: Path) -> None:
    """A reply cut off while thinking (R1-distill's template opens <think>, and 4 tokens end it) showed its thinking
    and nothing more: no answer, no word of the limit it hit."""
    from r1kit.chat import reply
    from r1kit.hardware import setup_hardware
    from r1kit.models import load_model, load_tokenizer

    opens = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<think>\n{% endif %}"
    config = resolve_config(
        overrides=["--model", str(tiny_model), "--model.chat_template", opens, "--chat.max_new_tokens", "4"], environ={}
    ).config
    tokenizer = load_tokenizer(config.model, str(tiny_model))
    model = load_model(config.model, str(tiny_model), setup_hardware("cpu", "fp32"), for_training=False)
    console = Console(file=io.StringIO(), width=400)
    reply(model, tokenizer, "What is 2+3?", config, console)
    shown = console.file.getvalue()
    assert "── thinking ──" in shown and "(no <answer> block)" not in shown
    assert "(the reply ended inside its thinking: it reached chat.max_new_tokens (4): raise it" in shown
    # cut after its thinking (inside the answer block the template opens): "(no <answer> block)" was said
    opens_answer = opens.replace("<think>\n{% endif %}", "<think>2+3</think>\n<answer>{% endif %}")
    config = config.model_copy(update={"model": config.model.model_copy(update={"chat_template": opens_answer})})
    console = Console(file=io.StringIO(), width=400)
    reply(model, load_tokenizer(config.model, str(tiny_model)), "What is 2+3?", config, console)
    shown = console.file.getvalue()
    assert "(no <answer> block)" not in shown and "ended inside its thinking" not in shown
    assert "(the reply was cut: it reached chat.max_new_tokens (4): raise it" in shown


def test_an_interrupted_chat_reply_stops_its_generation() -> None:
    """Ctrl-C printed "interrupted" at once, and the process ended only when the generation reached max_new_tokens."""
    from threading import Event

    from r1kit.chat import _StopWhenSet

    stop = Event()
    criterion = _StopWhenSet(stop)
    ids = torch.zeros(2, 3, dtype=torch.long)
    assert criterion(ids, None).tolist() == [False, False]
    stop.set()
    assert criterion(ids, None).tolist() == [True, True]


def test_a_folder_named_as_a_stage_where_the_command_runs_is_not_that_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `reward_model` folder holding a reward model in the working folder hid the rlhf recipe's reward_model stage
    from the bookkeeping: PPO and RLOO recorded that folder's hash, and were not redone once the stage retrained."""
    from r1kit.pipeline import _reads
    from r1kit.stages.common import files_read

    model = tmp_path / "reward_model" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForSequenceClassification"]}))
    monkeypatch.chdir(tmp_path)
    config = resolve_config(recipe="rlhf", profile="test", environ={}).config
    ppo = next(spec for spec in config.stages if spec.stage_kind == "ppo")
    read = files_read(config.for_stage(ppo), "ppo", ["sft", "reward_model", "dpo"])
    assert read["reward_model"] == "reward_model"  # the stage, by its name (was the folder's model here)
    assert "reward_model" in _reads(config)[ppo.name]
    assert files_read(config.for_stage(ppo), "ppo")["reward_model"] == str(Path("reward_model/model"))  # alone


def test_a_model_replaced_while_it_is_evaluated_writes_no_figures(
    tiny_model: Path, tmp_path: Path, monkeypatch
) -> None:
    """`r1kit eval` beside a run that redid the model's stage wrote the old model's figures under the new model's
    path: `compare` and the report then showed two results for one model."""
    from datasets import Dataset

    from r1kit.config.schema import R1kitConfig
    from r1kit.hardware import Hardware
    from r1kit.models import ModelError
    from r1kit.stages import evaluate as evaluation
    from r1kit.stages.common import StageContext

    model = shutil.copytree(tiny_model, tmp_path / "run" / "02_grpo" / "model")
    scores = evaluation.greedy_scores

    def redone_meanwhile(*args, **kwargs):
        result = scores(*args, **kwargs)
        shutil.copytree(tiny_model, tmp_path / "new_model")
        os.replace(model, tmp_path / "old_model")
        os.replace(tmp_path / "new_model", model)  # as commit_folder puts a redone stage's model in place
        return result

    monkeypatch.setattr(evaluation, "greedy_scores", redone_meanwhile)
    ctx = StageContext(
        R1kitConfig(evaluation={"max_new_tokens": 4}), RunDir(tmp_path / "run"), Hardware("cpu", "fp32", 2)
    )
    problems = Dataset.from_list([{"question": "What is 2 + 3?", "solution": "5"}])
    with pytest.raises(ModelError, match="was replaced while it was evaluated"):
        evaluation.evaluate(ctx, str(model), problems, "eval")
    assert not (tmp_path / "run" / "eval").exists()

    # removed (a stage redone clears its folder first, and trains for minutes): refused too; a checkpoint its run
    # let go of (save_total_limit) is gone for good, and its figures are still its own
    checkpoint = shutil.copytree(tiny_model, tmp_path / "run" / "02_grpo" / "checkpoints" / "checkpoint-2")
    redone = shutil.copytree(tiny_model, tmp_path / "run" / "03_rloo" / "checkpoints" / "checkpoint-2")
    # the model, the checkpoint alone (let go), the checkpoint with its stage's folder (the stage being redone)
    cases = ((model, model, False), (checkpoint, checkpoint, True), (redone, redone.parents[1], False))
    for label, (evaluated, removed, written) in zip(("model", "let_go", "redone"), cases, strict=True):

        def removed_meanwhile(*args, removed=removed, **kwargs):
            result = scores(*args, **kwargs)
            shutil.rmtree(removed)
            return result

        monkeypatch.setattr(evaluation, "greedy_scores", removed_meanwhile)
        if written:
            evaluation.evaluate(ctx, str(evaluated), problems, label)
        else:
            with pytest.raises(ModelError, match="was removed while it was evaluated"):
                evaluation.evaluate(ctx, str(evaluated), problems, label)
        assert (tmp_path / "run" / "eval" / f"{label}.json").exists() == written


def test_the_evaluations_of_a_run_moved_aside_stay_its_own(tmp_path: Path) -> None:
    """`mv runs/exp runs/exp_v1`, then the same command again: exp_v1's evaluation named the new run's model, and
    stood for it (an evaluation written before the run folder was recorded is read as it was)."""
    moved = tmp_path / "exp_v1"
    (moved / "eval").mkdir(parents=True)
    before = str(tmp_path / "exp")
    (tmp_path / "exp" / "02_grpo" / "model").mkdir(parents=True)  # the new run where the old one was
    written = {"eval": {"model": f"{before}/02_grpo/model", "run_folder": before}, "eval_2": {"model": f"{before}/x"}}
    for label, result in written.items():
        (moved / "eval" / f"{label}.json").write_text(json.dumps(result))
    found = RunDir(moved).later_evaluations()
    assert found == {"eval": (moved / "02_grpo" / "model").resolve(), "eval_2": Path(f"{before}/x").resolve()}
