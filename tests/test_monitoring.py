"""Monitoring pieces on hand-made inputs: the rollout statistics, each alert rule, the console block, chat rendering."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from rich.console import Console

from r1kit.chat import StreamRenderer
from r1kit.config.schema import AlertsConfig
from r1kit.monitoring.alerts import TrendAlerts
from r1kit.monitoring.console import step_block
from r1kit.monitoring.recorder import RolloutRecorder

GOOD = "<think>\nStep 1: 2 + 2 = 4\n</think>\n<answer>4</answer>"


def recorded_batch(
    recorder: RolloutRecorder, completions: list[str], accuracy: list[float | None], step: int = 0
) -> None:
    state = SimpleNamespace(global_step=step)
    kwargs = {
        "prompts": [[{"role": "user", "content": "q"}]] * len(completions),
        "completion_ids": [[0] * len(c) for c in completions],
        "trainer_state": state,
    }
    recorder.tap("accuracy", lambda c, **k: accuracy)(completions, **kwargs)
    recorder.tap("format", lambda c, **k: [1.0 if c_.startswith("<think>") else 0.0 for c_ in c])(completions, **kwargs)


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
        ([{"step": 1, "quality/zero_advantage_share": 0.9}], "zero_advantage"),
        ([{"step": 1, "quality/truncated_share": 1.0}], "truncated"),
        ([{"step": 1, "loss": float("nan")}], "non_finite"),
        ([{"step": 1, "grad_norm": float("inf")}], "non_finite"),
    ],
)
def test_each_alert_rule_fires(records: list[dict], kind: str) -> None:
    assert kind in [a["kind"] for a in alerts_over(records)]


def test_healthy_training_raises_nothing() -> None:
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
    assert alerts_over(records) == []


def test_an_alert_fires_once_until_it_clears() -> None:
    monitor = TrendAlerts(AlertsConfig(window=2))  # shares are averaged over the last 2 logs
    shares = [1.0, 1.0, 0.1, 0.1, 1.0, 1.0]
    raised = [a["step"] for s, v in enumerate(shares) for a in monitor.check({"step": s, "quality/truncated_share": v})]
    assert raised == [0, 5]


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
    block = step_block(record, 30)
    assert "[grpo] step 5/30" in block and "accuracy 0.5±0.5" in block and "total 1.2" in block
    assert "format 90%" in block and "17 s/step" in block and "MFU 2.0%" in block


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
