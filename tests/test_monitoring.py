"""Monitoring pieces on hand-made inputs: the rollout statistics, each alert and notice rule, the per-step metrics,
the console block, the report's alerts table, chat rendering."""

from __future__ import annotations

import io
import math
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from rich.console import Console
from transformers import TrainerControl

from r1kit.chat import StreamRenderer
from r1kit.config.schema import AlertsConfig, MonitoringConfig, ProfilerConfig
from r1kit.monitoring.alerts import TrendAlerts
from r1kit.monitoring.callbacks import TrainingMonitor
from r1kit.monitoring.console import step_block
from r1kit.monitoring.recorder import Rollout, RolloutRecorder
from r1kit.monitoring.report import _alerts
from r1kit.runs import RunDir

GOOD = "<think>\nStep 1: 2 + 2 = 4\n</think>\n<answer>4</answer>"


def recorded_batch(
    recorder: RolloutRecorder, completions: list[str], accuracy: list[float | None], step: int = 0
) -> None:
    state = SimpleNamespace(global_step=step)
    kwargs = {
        # one prompt per group of num_generations consecutive completions, as TRL batches them
        "prompts": [
            [{"role": "user", "content": f"q{i // recorder.num_generations}"}] for i in range(len(completions))
        ],
        "completion_ids": [[0] * len(c) for c in completions],
        "trainer_state": state,
    }
    recorder.tap("accuracy", lambda c, **k: accuracy)(completions, **kwargs)
    recorder.tap("format", lambda c, **k: [1.0 if c_.startswith("<think>") else 0.0 for c_ in c])(completions, **kwargs)


def test_a_completion_that_ends_on_the_last_token_allowed_is_not_truncated() -> None:
    recorder = RolloutRecorder({"format": 1.0}, num_generations=3, max_completion_length=4, end_token_ids=[2])
    ids = [[5, 6, 7, 2], [5, 6, 7, 8], [5, 2]]  # ended at the limit, cut at it, ended early
    recorder.tap("format", lambda c, **k: [1.0] * len(c))(["a", "b", "c"], completion_ids=ids)
    assert recorder.rollouts[0].truncated == [False, True, False]
    assert recorder.statistics(recorder.rollouts)["quality/truncated_share"] == 1 / 3


def test_a_group_split_between_processes_is_judged_whole() -> None:
    """With 2 processes of 4 completions and 8 generations a prompt, each process scored half a group: the halves
    [1, 1, 1, 1] and [0, 0, 0, 0] were each counted as a zero-advantage group, though the group has a signal."""
    recorder = RolloutRecorder({"accuracy": 1.0, "format": 1.0}, num_generations=8, max_completion_length=40)
    for accuracy in ([1.0] * 4, [0.0] * 4):  # the two processes' batches of one step (one prompt), as gathered
        recorded_batch(recorder, [GOOD] * 4, accuracy, step=3)
    assert [(r.batch, r.first_row) for r in recorder.rollouts] == [(0, 0), (1, 0)]  # as one process records them
    recorder.rollouts[1].batch, recorder.rollouts[1].first_row = 0, 4  # as process 1 records its half
    assert recorder.statistics(recorder.rollouts)["quality/zero_advantage_share"] == 0.0
    # two groups of one prompt in one batch (a fresh draw may repeat a prompt) stay two groups, both without signal
    recorder = RolloutRecorder({"accuracy": 1.0, "format": 1.0}, num_generations=2, max_completion_length=40)
    recorded_batch(recorder, [GOOD] * 4, [1.0, 1.0, 0.0, 0.0], step=3)
    recorder.rollouts[0].prompts = ["q"] * 4
    assert recorder.statistics(recorder.rollouts)["quality/zero_advantage_share"] == 1.0


def test_recorder_statistics_and_extremes() -> None:
    recorder = RolloutRecorder({"accuracy": 1.0, "format": 0.5}, num_generations=2, max_completion_length=40)
    # group 1 has different rewards, group 2 identical ones (zero advantage)
    recorded_batch(recorder, [GOOD, "no tags, 5", GOOD, GOOD], [1.0, 0.0, 1.0, 1.0])
    stats = recorder.statistics(recorder.rollouts)
    assert (
        stats["rewards/accuracy/mean"] == 0.75
        and stats["rewards/accuracy/min"] == 0.0
        and stats["rewards/accuracy/max"] == 1.0
    )
    assert stats["rewards/total/max"] == 1.5 and stats["rewards/total/min"] == 0.0
    assert stats["quality/format_rate"] == 0.75
    assert stats["quality/zero_advantage_share"] == 0.5
    assert stats["quality/truncated_share"] == 0.75  # three completions are 40+ characters long here
    assert stats["quality/reasoning_steps"] == 0.75
    best, worst = recorder.extremes(recorder.take())
    assert (best["kind"], best["total"], worst["kind"], worst["total"]) == ("best", 1.5, "worst", 0.0)
    assert worst["rewards"] == {"accuracy": 0.0, "format": 0.0} and worst["completion"] == "no tags, 5"
    assert recorder.rollouts == []
    # every total the same (early RL: all 0): one example, said to be one of equals, not the same one as best and worst
    recorded_batch(recorder, ["no tags, 5", "no tags, 6"], [0.0, 0.0])
    assert [(e["kind"], e["completion"]) for e in recorder.extremes(recorder.take())] == [("all equal", "no tags, 5")]


def test_recorder_treats_none_as_missing_not_zero() -> None:
    recorder = RolloutRecorder({"accuracy": 1.0, "format": 1.0}, num_generations=2, max_completion_length=100)
    recorded_batch(recorder, [GOOD, GOOD], [None, None])
    stats = recorder.statistics(recorder.rollouts)
    assert stats["rewards/accuracy/mean"] is None and stats["rewards/total/mean"] == 1.0


def alerts_over(records: list[dict], **config) -> list[dict]:
    monitor = TrendAlerts(AlertsConfig(window=4, **config))
    return [alert for record in records for alert in monitor.check(record)]


@pytest.mark.parametrize(
    ("records", "kind"),
    [
        ([{"step": s, "rewards/total/mean": 0.5} for s in range(4)], "plateau"),
        ([{"step": s, "quality/format_rate": v} for s, v in enumerate([0.9, 0.9, 0.4, 0.3])], "drop"),
        ([{"step": s, "rewards/accuracy/mean": v} for s, v in enumerate([0.8, 0.8, 0.3, 0.3])], "drop"),
        ([{"step": s, "quality/completion_tokens": v} for s, v in enumerate([40, 40, 100, 120])], "length_blowup"),
        ([{"step": s, "quality/zero_advantage_share": 0.9} for s in (1, 2)], "zero_advantage"),
        ([{"step": s, "quality/truncated_share": 1.0} for s in (1, 2)], "truncated"),
        ([{"step": 1, "loss": float("nan")}], "non_finite"),
        ([{"step": 1, "grad_norm": float("inf")}], "non_finite"),
        # a plug-in returning a bare float: every item scored None, blamed on the task by the zero-advantage alert
        ([{"step": 1, "rewards/scalar/mean": None, "rewards/scalar/exceptions": 4.0}], "failing_reward"),
        ([{"step": 1, "rewards/slow/mean": None, "rewards/slow/timeouts": 4.0}], "failing_reward"),
        # the verifier's batch time ran out before any item (was: only the zero-advantage alert, blaming the task)
        ([{"step": 1, "rewards/accuracy/mean": None, "rewards/accuracy/over_budget": 4.0}], "failing_reward"),
        ([{"step": 1, "rewards/accuracy/mean": None, "rewards/accuracy/errors": 4.0}], "failing_reward"),
        ([{"step": s, "rewards/total/mean": 0.5, "entropy": 0.004} for s in (1, 2)], "entropy_collapse"),
        ([{"step": s, "rewards/total/mean": 0.5, "kl": 0.8} for s in (1, 2)], "kl"),
    ],
)
def test_each_alert_rule_fires(records: list[dict], kind: str) -> None:
    assert (kind, "alert") in [(a["kind"], a["level"]) for a in alerts_over(records)]


def test_the_kl_alert_reads_ppos_kl_per_completion_token() -> None:
    """r1kit's PPO logs its KL per completion (as its KL target reads it), TRL's GRPO and RLOO per token: 6 nats over
    40-token completions is 0.15 a token, no drift; 40 is 1 a token."""

    def raised(kl: float, kl_per_completion: bool) -> bool:
        record = {"step": 1, "rewards/total/mean": 0.5, "kl": kl, "quality/completion_tokens": 40.0}
        monitor = TrendAlerts(AlertsConfig(window=4), kl_per_completion=kl_per_completion)
        return [a["kind"] for record in [record] * 2 for a in monitor.check(record)] == ["kl"]

    assert (raised(6, True), raised(40, True), raised(6, False)) == (False, True, True)
    # healthy figures raise neither (the default run's entropy is 0.02–0.03 nats a token)
    healthy = {"step": 1, "rewards/total/mean": 0.5, "entropy": 0.025, "kl": 0.05, "quality/completion_tokens": 40.0}
    assert alerts_over([healthy] * 2) == []


def test_a_dpo_step_raises_no_rollout_alert() -> None:
    """TRL's DPO logs `rewards/chosen`, `rewards/margins` and `entropy`: read as rollout figures, a confident DPO
    policy got the entropy-collapse alert, advising a higher rollout temperature for a stage without rollouts."""
    dpo = {"step": 5, "loss": 0.4, "entropy": 0.006, "rewards/chosen": 0.3, "rewards/rejected": -0.2,
           "rewards/accuracies": 0.9, "rewards/margins": 0.5, "logps/chosen": -3.0}  # fmt: skip
    assert alerts_over([dpo] * 4) == []
    assert [a["kind"] for a in alerts_over([dpo | {"rewards/total/mean": 0.5}] * 2)] == ["entropy_collapse"]


def test_a_non_finite_step_raises_again_after_a_finite_one() -> None:
    """SFT's records have no rollout figures: a non-finite step's alert stayed active for good, never raised again."""
    records = [{"step": s, "loss": value} for s, value in enumerate([math.nan, 1.0, math.nan, 1.0], start=1)]
    assert [a["step"] for a in alerts_over(records) if a["kind"] == "non_finite"] == [1, 3]


def test_fp16_loss_scaler_overflows_are_its_steps_not_non_finite_alerts() -> None:
    """Under fp16 (a GPU without bf16: a T4, a V100) the loss scaler skips a step whose scaled gradients overflowed
    and lowers its scale, by design early in a run: each was counted as a non-finite loss, with a new alert. The
    trainer's order (clip_grad_norm_ unscales, on_pre_optimizer_step, the scaler's step) is played on the CPU."""
    from types import SimpleNamespace

    from r1kit.monitoring.callbacks import NonFiniteGuard

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 1))
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    guard, records = NonFiniteGuard(), []
    for step in range(1, 4):
        with torch.autocast("cpu", dtype=torch.float16):
            loss = model(torch.randn(4, 8) * 30).pow(2).mean()  # its fp16 gradient × 2**16 overflows
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        guard.on_pre_optimizer_step(None, SimpleNamespace(global_step=step - 1), None, model=model,
                                    optimizer=SimpleNamespace(scaler=scaler))  # fmt: skip
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
        records.append({"step": step, "loss": loss.item(), "grad_norm": norm.item(),
                        "train/skipped_nonfinite_steps": guard.skipped,
                        "train/loss_scale_overflows": guard.overflows})  # fmt: skip
    assert scaler.get_scale() < 2.0**16 and guard.overflows >= 1 and guard.skipped == 0
    assert not [a for a in alerts_over(records) if a["kind"] == "non_finite"]
    # a non-finite loss is one still
    assert [a["kind"] for a in alerts_over([{**records[0], "loss": math.nan}])] == ["non_finite"]


def test_a_reward_failing_on_some_items_or_scoring_none_by_design_is_not_failing() -> None:
    partly = {"step": 1, "rewards/accuracy/mean": 0.5, "rewards/accuracy/exceptions": 1.0}
    unreadable_gold = {"step": 2, "rewards/accuracy/mean": None, "rewards/accuracy/exceptions": 0.0}
    assert not [a for a in alerts_over([partly, unreadable_gold]) if a["kind"] == "failing_reward"]


def test_healthy_training_raises_no_alert() -> None:
    records = [
        {
            "step": s,
            "rewards/total/mean": 0.2 + 0.1 * s,
            "quality/format_rate": 0.5 + 0.1 * s,
            "quality/completion_tokens": 40 + s,
            "quality/zero_advantage_share": 0.2,
            "loss": 0.1,
        }
        for s in range(6)
    ]
    raised = alerts_over(records)
    assert [a for a in raised if a["level"] == "alert"] == []
    assert {(a["kind"], a["level"]) for a in raised} == {("improvement", "notice")}  # the rising reward and format


def test_an_improving_reward_gives_one_notice() -> None:
    rising = [0.1, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]  # the rise holds over every full window: noticed once
    raised = alerts_over([{"step": s, "rewards/accuracy/mean": v} for s, v in enumerate(rising)])
    assert [(a["kind"], a["level"], a["key"], a["step"]) for a in raised] == [
        ("improvement", "notice", "improvement:rewards/accuracy/mean", 3)
    ]
    assert raised[0]["message"] == "rewards/accuracy/mean rose 150% (0.1 → 0.25)"


@pytest.mark.parametrize(
    "values",
    [
        [0.5] * 8,  # flat
        [0.5, 0.52, 0.55, 0.57, 0.6, 0.62, 0.6, 0.63],  # rising, but by less than drop_share over a window
        [0.0, 0.0, 0.0, 0.0, 0.2, 0.2],  # from zero: no notice while the earlier half of the window is at zero
    ],
)
def test_no_notice_without_a_clear_improvement(values: list[float]) -> None:
    assert alerts_over([{"step": s, "quality/format_rate": v} for s, v in enumerate(values)]) == []


def test_an_alert_fires_once_until_it_clears() -> None:
    monitor = TrendAlerts(AlertsConfig(window=2))  # shares are averaged over the last 2 logs
    shares = [1.0, 1.0, 0.1, 0.1, 1.0, 1.0]
    raised = [a["step"] for s, v in enumerate(shares) for a in monitor.check({"step": s, "quality/truncated_share": v})]
    assert raised == [1, 5]  # not on a first log alone (one step of a few groups), nor again at step 4 (0.55)


def test_a_share_alert_waits_for_a_quarter_of_its_window_and_holds_until_clearly_below() -> None:
    """The zero-advantage alert fired on a run's first log (2 groups of 8: "100% … over the last 1 logs" one run in
    four at half the groups dead), and a share hovering at its threshold raised it again every few steps."""
    monitor = TrendAlerts(AlertsConfig(window=20))  # five logs at least
    shares = [1.0] * 5 + [0.5] * 3 + [0.7, 0.7, 0.9, 0.9]  # means: 1.0 at step 4, 0.79 at step 9, 0.8 at step 10
    raised = [
        a["step"] for s, v in enumerate(shares) for a in monitor.check({"step": s, "quality/zero_advantage_share": v})
    ]
    assert raised == [4]  # held through 0.79 (above 0.72, 10% under 0.8): not raised again at step 10


def test_one_noisy_step_does_not_raise_a_share_alert() -> None:
    shares = [0.0, 0.0, 1.0, 0.0]
    assert alerts_over([{"step": s, "quality/zero_advantage_share": v} for s, v in enumerate(shares)]) == []


def test_console_block_shows_the_three_sections() -> None:
    record = {
        "stage": "grpo",
        "step": 5,
        "loss": 0.01,
        "rewards/accuracy/mean": 0.5,
        "rewards/accuracy/std": 0.5,
        "rewards/total/mean": 1.2,
        "quality/format_rate": 0.9,
        "quality/completion_tokens": 40.0,
        "quality/truncated_share": 0.0,
        "perf/step_seconds": 17.0,
        "perf/mfu": 0.02,
    }
    block = step_block(record | {"perf/cpu_percent": 87.4, "perf/ram_percent": 41.6}, 30)
    assert "[grpo] step 5/30" in block and "accuracy 0.5±0.5" in block and "total 1.2" in block
    assert "format 90%" in block and "17 s/step" in block and "MFU 2.0%" in block
    assert "CPU 87%" in block and "RAM 42%" in block


def test_each_logging_step_records_cpu_ram_and_gpu_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # CPU machines: fake the two CUDA readings
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: 2e9)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda: 3e9)
    resets = []  # the peak is the stage's own: earlier stages and evaluations ran in the same process
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda: resets.append(1))
    run = RunDir(tmp_path)
    monitor = TrainingMonitor(run, "grpo", MonitoringConfig(progress=False), total_params=1000, peak_flops=None)
    args = SimpleNamespace(per_device_train_batch_size=2, gradient_accumulation_steps=1, world_size=1)
    state = SimpleNamespace(global_step=0, max_steps=4, num_input_tokens_seen=0, is_world_process_zero=True)
    monitor.on_train_begin(args, state, None)
    busy_until = time.perf_counter() + 0.05
    while time.perf_counter() < busy_until:  # CPU time for the monitor to measure
        pass
    state.global_step = 2
    monitor.on_log(args, state, None, logs={"loss": 0.5})
    (record,) = run.read("metrics.jsonl")
    assert 0 < record["perf/cpu_percent"] <= 100
    assert 0 < record["perf/ram_percent"] <= 100
    assert (record["perf/gpu_peak_memory_gb"], record["perf/gpu_reserved_memory_gb"]) == (2.0, 3.0)
    assert resets == [1]  # at the stage's start


def test_speed_figures_leave_out_evaluation_during_training(tmp_path: Path) -> None:
    """A held-out evaluation inside the training loop (evaluation.every_steps) is not training: s/step, samples and
    tokens per second and MFU were read over the wall time with it (an SFT run logged 171 s/step, 235 s of it eval)."""
    from r1kit.monitoring.callbacks import SideWork

    run, side_work = RunDir(tmp_path), SideWork()
    monitor = TrainingMonitor(
        run, "sft", MonitoringConfig(progress=False), total_params=300, peak_flops=None, side_work=side_work
    )
    args = SimpleNamespace(per_device_train_batch_size=2, gradient_accumulation_steps=1, world_size=1)
    state = SimpleNamespace(global_step=0, max_steps=4, num_input_tokens_seen=0, is_world_process_zero=True)
    monitor.on_train_begin(args, state, None)
    time.sleep(0.05)  # training
    with side_work.timed():
        time.sleep(0.5)  # the evaluation
    state.global_step = 1
    monitor.on_log(args, state, None, logs={"loss": 0.5})
    (record,) = run.read("metrics.jsonl")
    assert 0.05 <= record["perf/step_seconds"] < 0.3 and side_work.seconds >= 0.5


@pytest.mark.parametrize(
    ("frozen", "flops_per_token", "processes"), [(False, 6 * 300, 1), (True, 4 * 300 + 2 * 60, 1), (False, 6 * 300, 4)]
)
def test_mfu_counts_weight_gradients_of_the_trained_weights_only(
    tmp_path: Path, frozen: bool, flops_per_token: int, processes: int
) -> None:
    """6·N FLOPs a token when every weight trains; under LoRA the frozen weights get no gradient: 4·N + 2·trained.
    The token count is every process's, the peak one device's: 4 processes read 4× the MFU."""
    model = torch.nn.Sequential(torch.nn.Linear(12, 20, bias=False), torch.nn.Linear(6, 10, bias=False))  # 300
    model[0].requires_grad_(not frozen)  # 240 frozen, 60 trained
    run = RunDir(tmp_path)
    monitor = TrainingMonitor(run, "grpo", MonitoringConfig(progress=False), total_params=300, peak_flops=1e6)
    args = SimpleNamespace(per_device_train_batch_size=2, gradient_accumulation_steps=1, world_size=processes)
    state = SimpleNamespace(global_step=0, max_steps=4, num_input_tokens_seen=0, is_world_process_zero=True)
    monitor.on_train_begin(args, state, None, model=model)
    time.sleep(0.05)
    state.global_step, state.num_input_tokens_seen = 1, 100
    monitor.on_log(args, state, None, logs={"loss": 0.5})
    (record,) = run.read("metrics.jsonl")
    expected = flops_per_token * 100 / record["perf/step_seconds"] / 1e6 / processes
    assert record["perf/mfu"] == pytest.approx(expected, rel=1e-6)
    # a step that trains on the rollouts before it (grpo.num_iterations 2) counts no token: no figure, not 0
    time.sleep(0.05)
    state.global_step = 2
    monitor.on_log(args, state, None, logs={"loss": 0.4})
    reused = run.read("metrics.jsonl")[-1]
    assert reused["perf/mfu"] is None and reused["perf/tokens_per_second"] is None and reused["perf/step_seconds"] > 0


def test_grpo_tokens_are_spread_over_the_steps_that_train_on_a_generation(tmp_path: Path) -> None:
    """With a generation batch of two steps (grpo.generation_batch_size), the generating step's log read all its
    tokens as its own (tokens/s and MFU × 2) and the next step's none."""
    run = RunDir(tmp_path)
    monitor = TrainingMonitor(run, "grpo", MonitoringConfig(progress=False), total_params=300, peak_flops=1e6)
    args = SimpleNamespace(
        per_device_train_batch_size=2, gradient_accumulation_steps=1, world_size=1, steps_per_generation=2
    )
    state = SimpleNamespace(global_step=0, max_steps=4, num_input_tokens_seen=0, is_world_process_zero=True)
    monitor.on_train_begin(args, state, None)
    for step, seen in ((1, 200), (2, 200), (3, 500), (4, 500)):  # generations at steps 1 and 3
        time.sleep(0.02)
        state.global_step, state.num_input_tokens_seen = step, seen
        monitor.on_step_end(args, state, TrainerControl())
        monitor.on_log(args, state, None, logs={"loss": 0.5})
    records = run.read("metrics.jsonl")
    tokens = [r["perf/tokens_per_second"] * r["perf/step_seconds"] for r in records]
    assert tokens == pytest.approx([100, 100, 150, 150], rel=1e-6)
    # steps_per_generation counts micro-batches: with gradient accumulation 2, a generation of 2 feeds one step
    run.path("metrics.jsonl").unlink()
    args.gradient_accumulation_steps, state.global_step, state.num_input_tokens_seen = 2, 0, 0
    monitor.on_train_begin(args, state, None)
    for step, seen in ((1, 200), (2, 500)):
        time.sleep(0.02)
        state.global_step, state.num_input_tokens_seen = step, seen
        monitor.on_step_end(args, state, TrainerControl())
        monitor.on_log(args, state, None, logs={"loss": 0.5})
    tokens = [r["perf/tokens_per_second"] * r["perf/step_seconds"] for r in run.read("metrics.jsonl")]
    assert tokens == pytest.approx([200, 300], rel=1e-6)


def test_a_stage_resumed_inside_a_generations_steps_keeps_their_tokens_per_step(tmp_path: Path) -> None:
    """Resumed from a checkpoint inside a generation's steps, the steps training on its restored rollouts generate
    nothing: they counted 0 tokens, and their logs showed no tokens/s nor MFU."""
    run, config = RunDir(tmp_path), MonitoringConfig(progress=False)
    args = SimpleNamespace(
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        world_size=1,
        steps_per_generation=2,
        output_dir=str(tmp_path / "staging"),
    )
    state = SimpleNamespace(global_step=0, max_steps=4, num_input_tokens_seen=0, is_world_process_zero=True)
    first = TrainingMonitor(run, "grpo", config, total_params=300, peak_flops=1e6)
    first.on_train_begin(args, state, None)
    state.global_step, state.num_input_tokens_seen = 1, 200  # step 1 generates for steps 1 and 2
    first.on_step_end(args, state, TrainerControl())
    checkpoint = tmp_path / "staging" / "checkpoint-1"
    checkpoint.mkdir(parents=True)
    first.on_save(args, state, TrainerControl())  # then killed
    resumed = TrainingMonitor(run, "grpo", config, total_params=300, peak_flops=1e6, resumed=checkpoint)
    resumed.on_train_begin(args, state, None)
    time.sleep(0.02)
    state.global_step = 2  # trains on the restored rollouts: nothing generated
    resumed.on_step_end(args, state, TrainerControl())
    resumed.on_log(args, state, None, logs={"loss": 0.5})
    record = run.read("metrics.jsonl")[-1]
    assert record["perf/tokens_per_second"] * record["perf/step_seconds"] == pytest.approx(100, rel=1e-6)


def test_the_last_window_of_examples_is_written_when_no_log_falls_on_the_last_step(tmp_path: Path) -> None:
    """Examples were written only at a step log at least examples_every steps after the last: the rollouts after the
    last such log (a time limit's early stop, or a last log before max_steps) were never shown."""
    run = RunDir(tmp_path)
    recorder = RolloutRecorder({"a": 1.0}, 2, 16)
    config = MonitoringConfig(progress=False, examples_every=10)
    monitor = TrainingMonitor(run, "grpo", config, total_params=10, peak_flops=None, recorder=recorder)
    args = SimpleNamespace(per_device_train_batch_size=2, gradient_accumulation_steps=1, world_size=1)
    state = SimpleNamespace(global_step=0, max_steps=30, num_input_tokens_seen=0, is_world_process_zero=True)
    monitor.on_train_begin(args, state, None)
    for step in range(1, 31):
        completions = [f"good {step}", f"bad {step}"]
        recorder.rollouts.append(Rollout(step, ["p", "p"], completions, [3, 3], [False, False], {"a": [1.0, 0.0]}))
        state.global_step = step
        if step % 4 == 0:  # logging_steps 4: no log at step 30
            monitor.on_log(args, state, None, logs={"loss": 0.1})
    monitor.on_log(args, state, None, logs={"train_loss": 0.1})  # the trainer's summary at the end of training
    examples = run.read("completions.jsonl")
    # windows end at the first log at or past each multiple of 10 (12, 20), and the summary writes the rest
    assert sorted({e["logged_at"] for e in examples}) == [12, 20, 30]
    assert min(e["step"] for e in examples if e["logged_at"] == 30) > 20  # from the steps after the last window


def test_the_report_shows_notices_apart_from_alerts() -> None:
    alert = {"stage": "grpo", "step": 4, "kind": "plateau", "level": "alert", "message": "flat"}
    notice = {"stage": "grpo", "step": 6, "kind": "improvement", "level": "notice", "message": "rose"}
    legacy = {"stage": "grpo", "step": 8, "kind": "drop", "message": "fell"}  # logged before levels existed
    both = _alerts([alert, notice, legacy])
    assert both.count("<tr class='alert'>") == 2 and both.count("<tr class='notice'>") == 1
    assert "No alerts were raised" not in both
    only_notices = _alerts([notice])
    assert "No alerts were raised" in only_notices and "<tr class='notice'>" in only_notices
    assert _alerts([]) == "<p class='ok'>No alerts were raised.</p>"


@pytest.mark.parametrize(
    "chunks",
    [
        ["<think>12*13 is 156</think>\n<answer>156</answer>"],
        ["<thi", "nk>12*13 ", "is 156</th", "ink>\n<ans", "wer>15", "6</answer>"],  # tags split across chunks
        list("<think>12*13 is 156</think>\n<answer>156</answer>"),
    ],
)
def test_stream_renderer_separates_think_and_answer(chunks: list[str]) -> None:
    out = io.StringIO()
    renderer = StreamRenderer(Console(file=out, width=200))
    for chunk in chunks:
        renderer.feed(chunk)
    renderer.close()
    shown = out.getvalue()
    assert "── thinking ──\n12*13 is 156" in shown and "── answer ──\n156" in shown
    assert "<think>" not in shown and "</answer>" not in shown
    assert renderer.text == "".join(chunks)


def test_an_answer_tag_mentioned_while_thinking_is_shown_as_thinking() -> None:
    out = io.StringIO()
    renderer = StreamRenderer(Console(file=out, width=200))
    for chunk in ["<think>The format is <answer>X</answer>, so", " 2+3=5</think>", "<answer>5</answer>"]:
        renderer.feed(chunk)
    renderer.close()
    shown = out.getvalue()
    assert shown.count("── answer ──") == 1 and "── answer ──\n5" in shown
    assert "The format is <answer>X</answer>, so 2+3=5" in shown  # all of it thinking, the tags as written


def test_the_eval_table_names_what_its_groups_are(capsys: pytest.CaptureFixture[str]) -> None:
    """The breakdown read "by group, sft: 1 94% (35) …", the levels unnamed."""
    from r1kit.monitoring.console import print_eval_table

    figures = {"label": "sft", "dataset": "arithmetic", "problems": 2, "accuracy": 0.5, "accuracy_ci95": [0.1, 0.9]}
    figures |= {"format_rate": 1.0, "mean_completion_tokens": 9.0, "truncated_rate": 0.0}
    groups = {"1": {"problems": 1, "accuracy": 1.0}, "2": {"problems": 1, "accuracy": 0.0}}
    print_eval_table({"sft": figures | {"by_group": groups, "group_column": "level"}}, title="t")
    assert "by level, sft: 1 100% (1)  2 0% (1)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("series", "kind"),
    [
        ([-0.1, -0.1, -0.45, -0.45], "drop"),  # a cosine reward below zero getting worse
        ([0.0, 0.0, -0.6, -0.6], "drop"),  # a repetition penalty from none to much
        ([-0.5, -0.5, -0.1, -0.1], "improvement"),
        ([0.0, 0.0, 0.02, 0.02], None),  # a small move near zero is noise
    ],
)
def test_rewards_at_or_below_zero_can_drop_and_improve(series: list[float], kind: str | None) -> None:
    """The rules skipped a series whose earlier level was 0 or below: penalties getting worse raised nothing."""
    raised = alerts_over([{"step": s, "rewards/repetition/mean": v} for s, v in enumerate(series)])
    assert [a["kind"] for a in raised] == ([kind] if kind else [])


@pytest.mark.parametrize(
    ("accuracy", "format_", "zero_advantage"),
    [
        ([1.0, None, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], 1.0),  # the unjudged one at the group's mean: all equal
        ([1.0, None], [0.0, 1.0], 0.0),  # 0.0 + 1.0 against 1.0 + 1.0: a signal
    ],
)
def test_a_missing_verdict_counts_in_the_zero_advantage_share_as_the_trainer_scores_it(
    accuracy: list[float | None], format_: list[float], zero_advantage: float
) -> None:
    """The share counted a reward's None as 0 while the trainer takes it at the group's mean of that reward
    (`no_verdict_as_group_mean`): a group without signal was counted as one with, and the other way round."""
    from r1kit.rewards.guard import no_verdict_as_group_mean

    recorder = RolloutRecorder({"accuracy": 1.0, "format": 1.0}, num_generations=len(accuracy), max_completion_length=9)
    batch = ["x"] * len(accuracy)  # one batch: both rewards score the same list
    recorder.tap("accuracy", lambda c, **k: accuracy)(batch)
    recorder.tap("format", lambda c, **k: format_)(batch)
    assert recorder.statistics(recorder.rollouts)["quality/zero_advantage_share"] == zero_advantage
    scores = torch.tensor([[float("nan") if a is None else a, f] for a, f in zip(accuracy, format_, strict=True)])
    totals = no_verdict_as_group_mean(scores, len(accuracy)).sum(dim=1)
    assert float(totals.max() == totals.min()) == zero_advantage  # the trainer's view


def test_a_huge_finite_reward_is_logged_not_a_crash() -> None:
    """statistics.fmean raised OverflowError on rewards near the float maximum, inside the trainer's logging."""
    recorder = RolloutRecorder({"big": 1.0}, num_generations=2, max_completion_length=9)
    recorder.tap("big", lambda c, **k: [1e308, 1e308])(["a", "b"])
    stats = recorder.statistics(recorder.rollouts)
    assert stats["rewards/big/mean"] == float("inf") and stats["rewards/big/max"] == 1e308
    assert alerts_over([{"step": s, "rewards/total/mean": 1e308} for s in range(4)])  # a plateau, not an error


def test_steps_without_rollouts_leave_the_rollout_alerts_as_they_were() -> None:
    """With grpo.num_iterations 2, every other logged step trains on the rollouts before it and has no reward
    figures: the plateau never fired, and a drop or a failing reward was raised again at every step with rollouts."""
    flat = [{"step": s, "loss": 0.1} | ({"rewards/total/mean": 0.5} if s % 2 else {}) for s in range(12)]
    assert [a["kind"] for a in alerts_over(flat)] == ["plateau"]
    alerts = TrendAlerts(AlertsConfig(window=8, plateau_min_change=0.0))
    levels = [0.8] * 8 + [0.2] * 16
    dropping = [{"step": s} | ({"rewards/accuracy/mean": v} if s % 2 else {}) for s, v in enumerate(levels)]
    assert [a["key"] for record in dropping for a in alerts.check(record)] == ["drop:rewards/accuracy/mean"]
    failing = {"rewards/slow/mean": None, "rewards/slow/timeouts": 4.0}
    records = [{"step": s} | (failing if s % 2 else {}) for s in range(8)]
    assert [a["kind"] for a in alerts_over(records)] == ["failing_reward"]


def test_the_eval_table_shows_pass_at_k_that_only_an_earlier_column_has(capsys: pytest.CaptureFixture[str]) -> None:
    """`r1kit compare A B` with pass@k in A only showed no pass@k row: the rows were those of the last column."""
    from r1kit.monitoring.console import print_eval_table

    figures = {"dataset": "arithmetic", "problems": 2, "accuracy": 0.5, "format_rate": 1.0}
    figures |= {"mean_completion_tokens": 9.0, "truncated_rate": 0.0}
    print_eval_table({"A": figures | {"pass_at_k": {"4": 0.75}}, "B": figures}, title="t")
    assert "pass@4" in capsys.readouterr().out


def test_the_eval_table_shows_a_split_in_brackets(capsys: pytest.CaptureFixture[str]) -> None:
    """A hub dataset's held-out data is "openai/gsm8k [test]": rich read "[test]" as a style tag and dropped it."""
    from r1kit.monitoring.console import print_eval_table

    figures = {"dataset": "openai/gsm8k [test]", "problems": 2, "accuracy": 0.5, "format_rate": 1.0}
    figures |= {"mean_completion_tokens": 9.0, "truncated_rate": 0.0}
    print_eval_table({"[b]sft": figures}, title="r1kit run [runs/a]")
    out = " ".join(capsys.readouterr().out.split())  # the caption wraps
    assert "openai/gsm8k [test]" in out and "[b]sft" in out and "[runs/a]" in out


def test_the_eval_table_of_data_without_gold_answers_says_so_and_no_emoji(capsys: pytest.CaptureFixture[str]) -> None:
    """Chat data's table said "6 left out of pass@1 (no readable gold answer)", as if the others were scored; a
    file's name with `:x:` in it was printed as an emoji."""
    from r1kit.monitoring.console import print_eval_table

    figures = {"dataset": "chat:x:.jsonl", "problems": 6, "excluded": 6, "accuracy": None, "format_rate": 1.0}
    figures |= {"mean_completion_tokens": 9.0, "truncated_rate": 0.0}
    print_eval_table({"sft": figures}, title="t")
    out = " ".join(capsys.readouterr().out.split())
    assert "no readable gold answer: pass@1 not measured" in out and "left out" not in out
    assert "chat:x:.jsonl" in out


def test_a_wide_eval_table_is_printed_whole_into_a_file_or_pipe(capsys: pytest.CaptureFixture[str]) -> None:
    """The rlhf recipe's five columns, its output sent to a file: rich's 80 columns cut them ("0.0%–32…")."""
    from r1kit.monitoring.console import print_eval_table

    figures = {"dataset": "arithmetic", "problems": 8, "accuracy": 0.5, "accuracy_ci95": [0.125, 0.875]}
    figures |= {"format_rate": 1.0, "mean_completion_tokens": 9.0, "perplexity": 1.23, "truncated_rate": 0.0}
    print_eval_table(dict.fromkeys(("base", "sft", "dpo", "ppo", "rloo"), figures), title="r1kit run")
    out = capsys.readouterr().out
    assert out.count("12.5%–87.5%") == 5 and "perplexity (reference text)" in out and "change base→rloo" in out


def test_the_preference_stages_accuracy_and_margin_are_plotted() -> None:
    """DPO's rewards/accuracies and margins, the reward model's accuracy and margin: logged, never drawn."""
    from r1kit.monitoring.report import _stage_plots

    for accuracy, margin in (("rewards/accuracies", "rewards/margins"), ("accuracy", "margin")):
        rows = [{"step": i + 1, "loss": 0.7, accuracy: 0.5 + 0.05 * i, margin: 0.1 * i} for i in range(8)]
        shown = "".join(_stage_plots("dpo", rows))
        assert "Preference accuracy" in shown and "Reward margin" in shown


def test_a_reward_whose_name_starts_with_an_underscore_is_in_the_plot_legend() -> None:
    """matplotlib leaves labels starting with "_" out of the legend: a plug-in `mod:_mine` had lines and no name."""
    import re

    from r1kit.monitoring.report import _figure

    rows = [{"rewards/_mine/mean": 0.1 * i} for i in range(12)]
    svg = _figure("grpo", "t", list(range(12)), [("rewards/_mine/mean", "_mine")], rows, "reward", False)
    assert "_mine" in re.findall(r"<!-- (.*?) -->", svg)[-1]  # the legend's last entry: its moving average


def test_an_example_keeps_its_own_step_and_goes_with_the_window_a_resume_redoes(tmp_path: Path) -> None:
    """Examples were labelled with the step their window closed at (every one of steps 1–5 read "step 5"); a resume
    still drops the examples of a window that closed after its checkpoint, whatever step they came from."""
    from r1kit.runs import RunDir

    run = RunDir(tmp_path)
    run.append("completions.jsonl", {"stage": "grpo", "kind": "best", "step": 2, "logged_at": 5})
    run.append("completions.jsonl", {"stage": "grpo", "kind": "best", "step": 7, "logged_at": 10})
    run.append("metrics.jsonl", {"stage": "grpo", "kind": "step", "step": 5})
    run.append("metrics.jsonl", {"stage": "grpo", "kind": "step", "step": 10})
    run.truncate_logs("grpo", after_step=8)  # the window of steps 6–10 is redone, its step-7 example with it
    assert [e["step"] for e in run.read("completions.jsonl")] == [2]
    assert [r["step"] for r in run.read("metrics.jsonl")] == [5]


def test_the_profiler_writes_a_trace_for_each_process(tmp_path: Path) -> None:
    """Every process of an `accelerate launch` run wrote the same two files, one over another."""
    from r1kit.monitoring.callbacks import TorchProfiler

    settings = ProfilerConfig(wait=0, warmup=1, active=1)
    for index, world in ((0, 1), (1, 2)):
        profiler = TorchProfiler(settings, tmp_path)
        args = SimpleNamespace(process_index=index, world_size=world)
        profiler.on_train_begin(args, None, None)
        for _ in range(3):
            torch.ones(64, 64) @ torch.ones(64, 64)
            profiler.on_step_end(args, None, None)
        profiler.on_train_end(args, None, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "profile_ops.process1.txt",
        "profile_ops.txt",
        "profile_trace.json",
        "profile_trace.process1.json",
    ]
