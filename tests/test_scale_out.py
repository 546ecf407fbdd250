"""Scaling out through accelerate: every shipped launch config loads with accelerate's own loader, `--launch` runs a
command under `accelerate launch` in several processes, a run shares its evaluation and generation out between them
and writes its folder once, and two processes train as one process with gradient accumulation does."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from safetensors.torch import load_file

from r1kit.cli import accelerate_configs
from r1kit.runs import RunDir
from tests.conftest import REPO, r1kit_cli

CONFIGS = REPO / "src" / "r1kit" / "configs" / "accelerate"
EXPECTED = {
    # accelerate's MULTI_CPU type starts one process unless launched through mpirun; the multi-process launcher
    # (torchrun) with use_cpu starts N CPU processes, which accelerate then runs as MULTI_CPU over gloo.
    "cpu": "MULTI_GPU",
    "ddp": "MULTI_GPU",
    "deepspeed_zero2": "DEEPSPEED",
}
TWO_CPUS = ("--launch", "cpu", "--num_processes", "2")


def test_the_launch_configs_ship() -> None:
    assert set(EXPECTED) <= set(accelerate_configs())


@pytest.mark.parametrize("name", accelerate_configs())
def test_each_shipped_config_loads_with_accelerates_loader(name: str) -> None:
    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    if name in EXPECTED:
        assert config.distributed_type.value == EXPECTED[name]
    # the GPU configs leave the count to the launch (`--launch` counts the GPUs): 8 put several processes on a GPU
    assert (config.num_processes >= 2 if name == "cpu" else config.num_processes == -1) and config.num_machines == 1
    if config.distributed_type.value == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] in (2, 3)
    if name == "cpu":
        assert config.use_cpu


def test_config_show_under_launch_prints_the_config_once() -> None:
    """Each of the launched processes printed the whole config (and its notes)."""
    done = r1kit_cli("config", "show", "--profile", "test", *TWO_CPUS, "--beta", "0.1", cwd=REPO, fresh_process=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("\nrun:") + done.stdout.startswith("run:") == 1, done.stdout[:500]
    assert done.stderr.count("were read as r1kit's") == 1, done.stderr[-2000:]


def test_config_show_inside_another_job_s_process_prints_the_config() -> None:
    """A RANK in the environment (a shell inside another job's process) without a WORLD_SIZE above 1 is no launch of
    r1kit's: `config show` printed nothing there."""
    done = r1kit_cli("config", "show", "--profile", "test", cwd=REPO, env={"RANK": "1"}, fresh_process=True)
    assert done.returncode == 0 and done.stdout.startswith("run:"), (done.stdout[:300], done.stderr[-1000:])


def test_an_unknown_launch_config_is_a_config_error(tmp_path: Path) -> None:
    done = r1kit_cli("sft", "--profile", "test", "--launch", "nowhere", "--out", str(tmp_path / "run"), cwd=REPO)
    assert done.returncode == 2 and "--launch nowhere: neither a shipped config" in done.stderr


def test_a_bad_process_count_or_accelerate_config_is_one_line(tmp_path: Path, capsys) -> None:
    """accelerate's launcher stopped with a traceback (14 lines for -1, 61 for a config that is no YAML)."""
    from r1kit.cli import main

    broken = tmp_path / "broken.yaml"
    broken.write_text("distributed_type: [\n")
    no_kind = tmp_path / "no_kind.yaml"
    no_kind.write_text("num_processes: 2\n")
    lower = tmp_path / "lower.yaml"  # accelerate's values are case-sensitive: its own traceback
    lower.write_text("distributed_type: multi_gpu\n")
    for launch, count, said in (
        ("cpu", "-1", "--num_processes -1: give a count of 1 or more"),
        (str(broken), "2", f"--launch {broken}: not a readable accelerate config (line 2)"),
        (str(no_kind), "2", f"--launch {no_kind}: no distributed_type (NO, MULTI_CPU"),
        (str(lower), "2", f"--launch {lower}: distributed_type 'multi_gpu', none of accelerate's (NO, MULTI_CPU"),
    ):
        assert main(["sft", "--profile", "test", "--launch", launch, "--num_processes", count]) == 2
        assert said in capsys.readouterr().err


@pytest.mark.parametrize("name", ["deepspeed_zero2"])
def test_a_deepspeed_launch_without_deepspeed_is_one_line(name: str, tmp_path: Path, monkeypatch) -> None:
    """accelerate's launcher stopped with a 12-line traceback ending "DeepSpeed is not installed"."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda module, *a: None if module == "deepspeed" else real(module, *a)
    )
    done = r1kit_cli("sft", "--profile", "test", "--launch", name, "--out", str(tmp_path / "run"), cwd=REPO)
    assert done.returncode == 2 and "DeepSpeed is not installed: pip install deepspeed" in done.stderr, done.stderr


def test_a_process_count_without_launch_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from r1kit.cli import main

    # was: one process, and no word of it
    assert main(["sft", "--profile", "test", "--num_processes", "2", "--out", str(tmp_path / "run")]) == 2
    assert "--num_processes 2 sets the process count of --launch: add --launch cpu" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert main(["sft", "--profile", "test", "--num_processes", "0", "--out", str(tmp_path / "run")]) == 2  # was run
    assert "--num_processes 0 sets the process count of --launch" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_launch_is_refused_in_one_line_before_any_process_starts(tmp_path: Path) -> None:
    """A config error printed once a process, then torchrun's traceback, exit 1; `--launch ddp` on a machine without
    GPUs ran 8 CPU processes (its config said 8); a sharded-weights config (FSDP, ZeRO-3) failed at the save after
    the training; chat answered once a process."""
    out = ["--out", str(tmp_path / "run")]
    done = r1kit_cli("sft", "--profile", "test", *TWO_CPUS, "--sft.max_steps", "0", *out, cwd=REPO)
    assert done.returncode == 2 and done.stderr.count("config error: sft.max_steps") == 1, done.stderr[-2000:]
    assert "accelerate.commands.launch" not in done.stderr
    if not torch.cuda.is_available():
        done = r1kit_cli("sft", "--profile", "test", "--launch", "ddp", *out, cwd=REPO)
        assert done.returncode == 2 and "--launch ddp: this machine has no GPU for it" in done.stderr, done.stderr
    fsdp = tmp_path / "fsdp.yaml"
    fsdp.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: FSDP\nnum_processes: 2\n")
    done = r1kit_cli("sft", "--profile", "test", "--launch", str(fsdp), *out, cwd=REPO)
    assert done.returncode == 2 and "ZeRO-3 and FSDP shard them over the processes" in done.stderr, done.stderr
    mine = tmp_path / "mine.yaml"  # a CPU config of the user's own without a count (accelerate: -1, "pass it in")
    mine.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nuse_cpu: true\n")
    done = r1kit_cli("sft", "--profile", "test", "--launch", str(mine), *out, cwd=REPO)
    assert done.returncode == 2 and "a CPU config without a process count" in done.stderr, done.stderr
    done = r1kit_cli("chat", "--profile", "test", "--prompt", "hi", *TWO_CPUS, cwd=REPO)
    assert done.returncode == 2 and "chat runs in one process: leave out --launch" in done.stderr, done.stderr
    # a model folder that is not there: said by each process, then accelerate's traceback
    done = r1kit_cli("sft", "--profile", "test", *TWO_CPUS, "--model", str(tmp_path / "nope"), *out, cwd=REPO)
    assert done.returncode == 1 and done.stderr.count("r1kit: error: model folder not found") == 1, done.stderr
    assert "accelerate.commands.launch" not in done.stderr
    # so was data that is not there, or that the stage cannot use (SFT rows without a worked solution)
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(f'{{"question": "{i} + 1?", "solution": "{i + 1}"}}\n' for i in range(20)))
    for data, said in [(tmp_path / "nope.jsonl", "dataset file not found"), (answers, "worked solution")]:
        done = r1kit_cli("sft", "--profile", "test", *TWO_CPUS, "--dataset.name", str(data), *out, cwd=REPO)
        assert done.returncode == 1 and done.stderr.count("r1kit: error:") == 1, done.stderr
        assert said in done.stderr and "accelerate.commands.launch" not in done.stderr
    assert not (tmp_path / "run").exists()


def test_a_run_folder_that_refuses_the_command_is_said_once_before_any_process_starts(tmp_path: Path) -> None:
    """The main process alone opens the run folder: refused there (another config's finished work, a stage whose
    earlier stages never finished), it said so and the other process, waiting for it, failed with gloo's connection
    errors, then torchrun's traceback."""
    run = tmp_path / "run"
    alone("sft", "--profile", "test", "--sft.max_steps", "1", out=run)
    made = sorted(path.relative_to(run) for path in run.rglob("*"))
    changed = (
        "sft",
        "--profile",
        "test",
        "--sft.max_steps",
        "1",
        "--sft.optimization.learning_rate",
        "0.002",
        *TWO_CPUS,
    )
    done = r1kit_cli(*changed, "--out", str(run), cwd=REPO)
    assert done.returncode == 1 and done.stderr.count("r1kit: error:") == 1, done.stderr[-3000:]
    assert "holds a run with another config" in done.stderr and "accelerate.commands.launch" not in done.stderr
    assert sorted(path.relative_to(run) for path in run.rglob("*")) == made  # the refused command changed nothing
    done = r1kit_cli("run", "--profile", "test", "--only", "grpo", *TWO_CPUS, "--out", str(tmp_path / "new"), cwd=REPO)
    assert done.returncode == 1 and done.stderr.count("r1kit: error:") == 1, done.stderr[-3000:]
    assert "--only grpo: 01_sft, before it, never finished" in done.stderr
    assert "accelerate.commands.launch" not in done.stderr and not (tmp_path / "new").exists()


def test_the_launch_check_reads_an_evaluations_data_as_eval_does(tmp_path: Path) -> None:
    """A one-row file `r1kit eval` scores whole was refused under --launch ("too few to hold out …"): the check read
    it as training data."""
    from r1kit.cli import _check_inputs_once
    from r1kit.config.sources import resolve_config
    from r1kit.data.loading import DatasetError

    one = tmp_path / "one.jsonl"
    one.write_text('{"question": "2 + 3?", "solution": "5"}\n')
    resolved = resolve_config(profile="test", environ={}, overrides=["--data", str(one)])
    _check_inputs_once(resolved, argparse.Namespace(command="eval"))
    with pytest.raises(DatasetError, match="too few to hold out"):
        _check_inputs_once(resolved, argparse.Namespace(command="sft"))


def test_the_launch_check_reads_the_config_and_data_as_the_processes_do(tmp_path: Path) -> None:
    """The check read the folder with the config as given, not as the processes open it (chat data's plain prompt):
    the same command again in its finished folder was refused under --launch ("another config: prompt.system"); and
    it checked the data for 1 process, so a batch the 2 processes cannot fill was said by each, then torchrun's
    traceback."""
    from r1kit import distributed
    from r1kit.cli import _check_inputs_once
    from r1kit.config.sources import resolve_config
    from r1kit.data.loading import DatasetError

    chat = tmp_path / "chat.jsonl"
    turns = [
        [{"role": "user", "content": f"Name a colour {i}."}, {"role": "assistant", "content": "Blue."}]
        for i in range(40)
    ]
    chat.write_text("".join(json.dumps({"messages": messages}) + "\n" for messages in turns))
    args = ("sft", "--profile", "test", "--data", str(chat), "--sft.max_steps", "1")
    alone(*args, out=tmp_path / "run")
    resolved = resolve_config(
        profile="test", environ={}, overrides=[*args[3:], "--out", str(tmp_path / "run")], command="sft"
    )
    with distributed.planned(2):
        _check_inputs_once(resolved, argparse.Namespace(command="sft"))  # the processes go on with it: no refusal
    three = tmp_path / "three.jsonl"
    three.write_text("".join(json.dumps({"question": f"{i} + 1?", "solution": str(i + 1)}) + "\n" for i in range(3)))
    held_out = tmp_path / "held_out.jsonl"  # other problems: those of the training file would be left out of it
    held_out.write_text(json.dumps({"question": "9 + 1?", "solution": "10"}) + "\n")
    grpo = ["--data", str(three), "--dataset.test_split", str(held_out), "--per_device_train_batch_size", "4"]
    resolved = resolve_config(
        profile="test", environ={}, overrides=[*grpo, "--grpo.num_generations", "2"], command="grpo"
    )
    _check_inputs_once(resolved, argparse.Namespace(command="grpo"))  # one process: 2 prompts fill its batch
    with distributed.planned(2), pytest.raises(DatasetError, match="3 training prompt"):
        _check_inputs_once(resolved, argparse.Namespace(command="grpo"))
    assert not distributed.launched()


def steps(run: Path, stage: str) -> list[dict]:
    return [r for r in RunDir(run).read("metrics.jsonl") if r["stage"] == stage and r["kind"] == "step"]


def launched(*args: str, out: Path) -> str:
    """`r1kit ARGS --out OUT` under `accelerate launch` with two CPU processes; its console output (the launched
    processes write to the launching one's file descriptors: a process of its own)."""
    done = r1kit_cli(*args, *TWO_CPUS, "--out", str(out), cwd=REPO, fresh_process=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "r1kit.launcher --config_file" in done.stderr and "--num_processes 2" in done.stderr
    assert "find_unused_parameters=True" not in done.stderr  # was: each process warned of the search at every start
    notes = [line for line in done.stderr.splitlines() if line.startswith("r1kit: note:")]
    assert len(notes) == len(set(notes)), notes  # said by the main process alone (was: once a process)
    return done.stdout


def alone(*args: str, out: Path) -> None:
    done = r1kit_cli(*args, "--out", str(out), cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]


# Two processes with per-device batch b against one process with batch b and 2 accumulation steps: the same samples
# in each optimizer step, the same averaged gradient. fp32 keeps the arithmetic tight.
FP32 = ("--profile", "test", "--model.precision", "fp32")
LOSS_TOLERANCE = 1e-4  # |Δloss| per step, absolute (losses ≈ 6 here; measured: equal to every printed digit)


def test_sft_on_two_processes_matches_one_with_gradient_accumulation(tmp_path: Path) -> None:
    two, one = tmp_path / "two", tmp_path / "one"
    launched("sft", *FP32, "--learning_rate", "1e-3", out=two)  # a TRL name: its note said once
    alone("sft", *FP32, "--learning_rate", "1e-3", "--sft.batch_size.gradient_accumulation_steps", "2", out=one)

    # both processes trained: each saved its own RNG state into the (complete) checkpoint
    assert {p.name for p in (two / "sft" / "checkpoints").glob("checkpoint-*/rng_state_*.pth")} == {
        "rng_state_0.pth",
        "rng_state_1.pth",
    }
    curve_two, curve_one = steps(two, "sft"), steps(one, "sft")
    assert [r["step"] for r in curve_two] == [r["step"] for r in curve_one] == [1, 2, 3]
    for a, b in zip(curve_two, curve_one, strict=True):
        assert abs(a["loss"] - b["loss"]) <= LOSS_TOLERANCE, (a["step"], a["loss"], b["loss"])
        assert abs(a["grad_norm"] - b["grad_norm"]) <= LOSS_TOLERANCE, (a["step"], a["grad_norm"], b["grad_norm"])
        assert a["num_input_tokens_seen"] == b["num_input_tokens_seen"]  # the same samples in each step
    weights_two = load_file(str(two / "sft" / "model" / "model.safetensors"))
    weights_one = load_file(str(one / "sft" / "model" / "model.safetensors"))
    assert all(torch.allclose(weights_two[k], weights_one[k], atol=1e-5) for k in weights_one)


def half_unscorable(folder: Path) -> Path:
    """16 problems, every second one with a gold answer that cannot be read: the curriculum can never score those."""
    rows = [
        {"question": f"What is {i + 3} + {2 * i + 1}?", "solution": str(3 * i + 4) if i % 2 == 0 else "no answer"}
        for i in range(16)
    ]
    path = folder / "half_unscorable.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_grpo_on_two_processes_matches_one_with_gradient_accumulation(tmp_path: Path) -> None:
    """Each completion comes from its own random stream, seeded by the run's seed, the step and the row's place in the
    global batch, so one process sampling all 8 rows of a step and two processes sampling 4 each draw the same
    completions; rewards and advantages are then the same, and so is the averaged gradient. The loss path is TRL's in
    both layouts (r1kit's shared-prefix loss runs in one process only).

    The re-scored curriculum keeps only the prompts it could score, so the rollouts' other prompts are swapped for
    kept ones; each process swaps in its own share of the batch, and the logged count is the whole batch's (before,
    two processes logged the main process's share only)."""
    both = (*FP32, "--fast.shared_prefix", "false", "--data", str(half_unscorable(tmp_path)))
    both += ("--rewards.functions", "[cosine, format]", "--rewards.cosine.max_len", "64")  # rewards that vary
    both += ("--curriculum.enabled", "true", "--curriculum.max_prompts", "8", "--curriculum.samples_per_prompt", "2")
    both += ("--curriculum.rescore_every", "2", "--curriculum.min_pass_rate", "0.0")
    two, one = tmp_path / "two", tmp_path / "one"
    launched("grpo", *both, out=two)
    alone("grpo", *both, "--training.batch_size.gradient_accumulation_steps", "2", out=one)

    curve_two, curve_one = steps(two, "grpo"), steps(one, "grpo")
    assert [r["step"] for r in curve_two] == [r["step"] for r in curve_one] == [1, 2, 3]
    swapped = [r["curriculum/swapped_prompts"] for r in curve_one]
    assert sum(swapped) > 0 and [r["curriculum/swapped_prompts"] for r in curve_two] == swapped
    for a, b in zip(curve_two, curve_one, strict=True):
        assert a["quality/completions"] == b["quality/completions"] == 8
        assert a["quality/completion_tokens"] == b["quality/completion_tokens"]  # the same completions
        assert abs(a["rewards/cosine/mean"] - b["rewards/cosine/mean"]) <= 1e-6
        assert abs(a["loss"] - b["loss"]) <= LOSS_TOLERANCE, (a["step"], a["loss"], b["loss"])
        assert abs(a["grad_norm"] - b["grad_norm"]) <= LOSS_TOLERANCE, (a["step"], a["grad_norm"], b["grad_norm"])
    weights_two = load_file(str(two / "grpo" / "model" / "model.safetensors"))
    weights_one = load_file(str(one / "grpo" / "model" / "model.safetensors"))
    assert all(torch.allclose(weights_two[k], weights_one[k], atol=1e-5) for k in weights_one)


HALF_DEAD_REWARD = """
def half_dead(completions, prompts, **kwargs):
    # prompts with an odd digit count: every completion scores 0, a group with no learning signal; the others vary
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    digits = [sum(ch.isdigit() for ch in p[-1]["content"]) for p in prompts]
    return [0.0 if d % 2 else float(len(t) % 3) for d, t in zip(digits, texts)]
"""


@pytest.mark.parametrize("group_size", [4, 8])  # a group in each process's slice; one group across both slices
def test_dynamic_sampling_on_two_processes_matches_one(tmp_path: Path, group_size: int) -> None:
    """A group can span two processes' slices, so the batch is gathered, its dead groups replaced in the whole batch
    (the same fresh prompts and completions in every layout), and each process takes its slice back: the groups
    replaced, the losses and the weights are those of one process. Before, each process retried alone and TRL's
    gathers waited for the others: the run hung (the timeout fails the test)."""
    (tmp_path / "half_dead_reward.py").write_text(HALF_DEAD_REWARD)
    both = (*FP32, "--fast.shared_prefix", "false", "--dynamic_sampling.max_retries", "3")
    both += ("--grpo.num_generations", str(group_size))
    both += ("--rewards.functions", "[half_dead_reward:half_dead]")
    both += ("--data", "arithmetic")  # whose first batches hold dead groups of this reward (a story may not)
    env = {"PYTHONPATH": str(tmp_path)}
    two, one = tmp_path / "two", tmp_path / "one"
    done = r1kit_cli("grpo", *both, *TWO_CPUS, "--out", str(two), cwd=REPO, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    done = r1kit_cli(
        "grpo", *both, "--training.batch_size.gradient_accumulation_steps", "2", "--out", str(one), cwd=REPO, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]

    curve_two, curve_one = steps(two, "grpo"), steps(one, "grpo")
    assert [r["step"] for r in curve_two] == [r["step"] for r in curve_one] == [1, 2, 3]
    replaced = [r["dynamic_sampling/replaced_groups"] for r in curve_one]
    assert sum(replaced) > 0 and [r["dynamic_sampling/replaced_groups"] for r in curve_two] == replaced
    for a, b in zip(curve_two, curve_one, strict=True):
        assert a["dynamic_sampling/zero_advantage_groups_left"] == b["dynamic_sampling/zero_advantage_groups_left"]
        assert abs(a["loss"] - b["loss"]) <= LOSS_TOLERANCE, (a["step"], a["loss"], b["loss"])
        assert abs(a["grad_norm"] - b["grad_norm"]) <= LOSS_TOLERANCE, (a["step"], a["grad_norm"], b["grad_norm"])
    weights_two = load_file(str(two / "grpo" / "model" / "model.safetensors"))
    weights_one = load_file(str(one / "grpo" / "model" / "model.safetensors"))
    assert all(torch.allclose(weights_two[k], weights_one[k], atol=1e-5) for k in weights_one)


@pytest.mark.parametrize("recipe", ["default", "r1"])
def test_a_run_on_two_processes_evaluates_each_problem_once_and_writes_its_folder_once(
    tmp_path: Path, recipe: str
) -> None:
    out = tmp_path / "run"
    console = launched("run", "--recipe", recipe, "--profile", "test", "--evaluation.every_steps", "2", out=out)

    summary = json.loads((out / "summary.json").read_text())
    assert console.count("8 held-out problems ·") == 1  # the table's caption: printed by the main process only
    for label in summary["evaluations"]:
        result = json.loads((out / "eval" / f"{label}.json").read_text())
        # the problems were shared out, each generated by exactly one of the two processes, then gathered
        assert result["processes"] == 2 and result["problems_per_process"] == [4, 4] and result["problems"] == 8
        assert len(result["scores"]) == 8
    records = RunDir(out).read("metrics.jsonl")
    written = [(r["stage"], r["kind"], r["step"]) for r in records]
    assert len(written) == len(set(written))  # each line once: only the main process writes the logs
    assert {kind for _, kind, _ in written} >= {"step", "eval"}  # evaluation during training ran on both processes
    manifest = json.loads((out / "manifest.json").read_text())
    assert {stage["status"] for stage in manifest["stages"]} == {"complete"}
    if recipe == "r1":  # the data stages' files, written once and read by the stages after them in both processes
        rows = summary["stage_figures"]["cold_start"]["rows"]
        assert rows and (out / "01_cold_start" / "data.jsonl").read_text().count("\n") == rows
        assert (out / "02_sft" / "model" / "model.safetensors").exists()


def test_accelerates_own_cpu_launch_runs_two_processes(tmp_path: Path) -> None:
    """`accelerate launch --cpu --num_processes 2` alone starts one process (its multi-CPU mode needs mpirun); r1kit
    sees that and relaunches the command as two CPU processes, so this command scales out as the user meant."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2"]
    command += ["-m", "r1kit.cli", "run", "--profile", "test", "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "accelerate launch --cpu started 1 of 2 processes" in done.stderr
    summary = json.loads((out / "summary.json").read_text())
    for label in summary["evaluations"]:
        result = json.loads((out / "eval" / f"{label}.json").read_text())
        assert result["processes"] == 2 and result["problems_per_process"] == [4, 4] and len(result["scores"]) == 8


@pytest.mark.parametrize("update", ["clip", "trpo"])
def test_ppo_on_two_processes_matches_one(tmp_path: Path, update: str) -> None:
    """Each process samples half of a step's 4 prompts (rows seeded by their place in the step, so the same
    completions), advantages are whitened over the whole batch, and gradients (TRPO: g and every F·v) are averaged
    over the processes with each process's mean weighted by its share of the tokens. With one minibatch of the whole
    batch the update is then the one-process update."""
    both = (*FP32, "--ppo.policy_update", update, "--ppo.minibatch_size", "4", "--ppo.trpo_fisher_fraction", "1")
    both += ("--rewards.functions", "[cosine, format]", "--rewards.cosine.max_len", "64")  # rewards that vary
    two, one = tmp_path / "two", tmp_path / "one"
    launched("ppo", *both, out=two)
    alone("ppo", *both, out=one)

    curve_two, curve_one = steps(two, "ppo"), steps(one, "ppo")
    assert [r["step"] for r in curve_two] == [r["step"] for r in curve_one] == [1, 2]
    for a, b in zip(curve_two, curve_one, strict=True):
        for key in ("reward", "kl", "quality/completion_tokens", "loss/policy", "loss/value", "approx_kl"):
            assert a[key] == pytest.approx(b[key], abs=LOSS_TOLERANCE), (a["step"], key, a[key], b[key])
    weights_two = load_file(str(two / "ppo" / "model" / "model.safetensors"))
    weights_one = load_file(str(one / "ppo" / "model" / "model.safetensors"))
    assert all(torch.allclose(weights_two[k], weights_one[k], atol=1e-5) for k in weights_one)


def test_ddp_searches_for_unused_weights_only_in_a_mixture_of_experts(tiny_model: Path) -> None:
    """Off for a dense model (every weight takes part in each step: the search only warned); a mixture of experts can
    leave an expert without tokens in a step, and DDP without the search would then stop with an error."""
    from transformers import AutoModelForCausalLM, MixtralConfig, MixtralForCausalLM

    from r1kit.stages.common import routes_tokens

    assert not routes_tokens(AutoModelForCausalLM.from_pretrained(tiny_model))
    experts = MixtralConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, num_local_experts=4, num_experts_per_tok=1,
    )  # fmt: skip
    assert routes_tokens(MixtralForCausalLM(experts))


AVERAGED = """
import torch
from r1kit import distributed

distributed.start("cpu", "fp32")
rank = distributed.index()
a, b, c = (torch.nn.Parameter(torch.ones(n)) for n in (3, 2, 1))
a.grad = torch.full((3,), float(rank + 1))
if rank == 0:  # an expert no token reached in process 1 has no gradient there
    b.grad = torch.full((2,), 10.0)
distributed.average_gradients([a, b, c])  # c got a gradient nowhere (the policy's, under the value loss)
with open(f"rank{rank}.txt", "w") as out:  # a file each: two processes' prints to one pipe interleave
    out.write(f"{a.grad.tolist()} {b.grad.tolist()} {c.grad}")
distributed.finish()
"""


def test_gradients_some_processes_lack_are_averaged_as_zeros_there(tmp_path: Path) -> None:
    """The flat all-reduce held each process's gradients only: b's [10, 10] was mixed into a's, and the other
    process's smaller reduce broke the group."""
    script = tmp_path / "averaged.py"
    script.write_text(AVERAGED)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    for rank in (0, 1):
        assert (tmp_path / f"rank{rank}.txt").read_text() == "[1.5, 1.5, 1.5] [5.0, 5.0] None"


def test_an_accelerate_config_s_mixed_precision_gives_way_to_the_run_s(tmp_path: Path, monkeypatch) -> None:
    """`accelerate launch` exports its config's mixed_precision (the shipped GPU configs: bf16), which transformers
    takes where neither bf16 nor fp16 is set: `--model.precision fp32` trained under bf16 autocast while the run
    said fp32 (and DeepSpeed refused the mismatch)."""
    from trl import SFTConfig

    from r1kit.config.sources import resolve_config
    from r1kit.stages.common import setup

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    overrides = ["--out", str(tmp_path / "run"), "--model.precision", "fp32"]
    ctx, _, _ = setup(resolve_config(profile="test", environ={}, overrides=overrides).config, "test")
    assert ctx.hardware.precision == "fp32"
    args = SFTConfig(output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False, fp16=False, report_to=[])
    assert args.mixed_precision == "no"
    # outside a launch it is left unset: set by a bf16 run, it reached a later fp32 trainer in the same process
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")
    overrides = ["--out", str(tmp_path / "run2"), "--model.precision", "bf16"]
    setup(resolve_config(profile="test", environ={}, overrides=overrides).config, "test")
    assert "ACCELERATE_MIXED_PRECISION" not in os.environ


def test_a_trainer_sharding_its_weights_is_told_apart() -> None:
    """Launched by accelerate itself with FSDP or ZeRO-3 (no `--launch` to refuse it), a stage stops before training:
    its model could not be saved from the sharded weights after it."""
    from types import SimpleNamespace

    from r1kit.stages.common import shards_weights

    def trainer(fsdp: bool, zero_stage: int | None) -> SimpleNamespace:
        plugin = SimpleNamespace(zero_stage=zero_stage) if zero_stage else None
        state = SimpleNamespace(deepspeed_plugin=plugin)
        return SimpleNamespace(
            is_fsdp_enabled=fsdp, is_deepspeed_enabled=plugin is not None, accelerator=SimpleNamespace(state=state)
        )

    assert shards_weights(trainer(True, None)) and shards_weights(trainer(False, 3))
    assert not shards_weights(trainer(False, 2)) and not shards_weights(trainer(False, None))


def test_a_prompt_too_long_in_another_process_s_share_is_said(tmp_path: Path) -> None:
    """Generation counted the prompts that filled the model's context in its own process's share, and only the main
    process's warnings are shown: a long problem in the other's share got no reply without a word."""
    rows = [{"question": f"What is {i} + 1?", "solution": str(i + 1)} for i in range(7)]
    rows.append({"question": "Add these: " + " + ".join(["7"] * 700) + ".", "solution": "4900"})  # last: process 1's
    data = tmp_path / "held.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = ("eval", "--profile", "test", "--data", str(data), *TWO_CPUS, "--out", str(tmp_path / "e"))
    done = r1kit_cli(*args, cwd=REPO, fresh_process=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("1 prompt filling the model's whole context") == 1, done.stderr[-3000:]


def test_a_launched_command_s_failure_is_said_once(tmp_path: Path, tiny_model: Path) -> None:
    """An expected failure in the launched processes was printed once a process, then torchrun's report of the
    failed process and its ChildFailedError traceback (some 40 lines). Here each process finds the student to be
    its teacher (the cache's tiny model is the test profile's model)."""
    student = ("--distill.student", str(tiny_model))
    args = ("distill", *student, "--profile", "test", *TWO_CPUS, "--out", str(tmp_path / "d"))
    done = r1kit_cli(*args, cwd=REPO, fresh_process=True)
    assert done.returncode == 1, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("r1kit: error:")]
    assert len(errors) == 1 and "the student would be the teacher itself" in errors[0], done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "ChildFailedError" not in done.stderr, done.stderr[-3000:]


def test_a_launched_process_killed_by_a_signal_is_named(tmp_path: Path) -> None:
    """With torchrun's report left out, a process the out-of-memory killer ended (SIGKILL: it can say nothing) left
    the launch with exit code 1 and no word."""
    script = tmp_path / "killed.py"
    script.write_text(
        "import os, signal, time\n"
        "if os.environ.get('RANK') == '1':\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "time.sleep(5)\n"
    )
    config = REPO / "src" / "r1kit" / "configs" / "accelerate" / "cpu.yaml"
    command = [
        sys.executable,
        "-m",
        "r1kit.launcher",
        "--config_file",
        str(config),
        "--num_processes",
        "2",
        str(script),
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 128 + 9, done.stderr[-3000:]
    assert "r1kit: error: launched process 1 was killed by SIGKILL" in done.stderr, done.stderr[-3000:]
