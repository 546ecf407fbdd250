"""Every benchmark script under bench/ answers --help with its usage, without running the benchmark."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPTS = sorted(path.name for path in (REPO / "bench").glob("*.py") if not path.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_benchmark_answers_help_without_running(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:")  # bench/rewards.py ran its whole benchmark instead
    assert not any(line.startswith("{") for line in done.stdout.splitlines())  # no result line: nothing was measured


def test_the_recipe_table_of_a_chat_data_run_shows_no_pass_at_1(tmp_path) -> None:
    """A run on chat data (`--recipe rlhf_chat --data FILE`) has no pass@1: the table failed formatting None after the
    whole recipe had run."""
    import json

    chat = {"accuracy": None, "accuracy_ci95": None, "format_rate": None, "mean_completion_tokens": 12.5}
    chat |= {"perplexity": 3.2, "rouge_l": 0.21, "win_rate": 0.6}
    (tmp_path / "summary.json").write_text(json.dumps({"evaluations": {"sft": chat}, "stage_figures": {}}))
    (tmp_path / "manifest.json").write_text(
        json.dumps({"stages": [{"name": "sft", "folder": "01_sft", "seconds": 60}]})
    )
    (tmp_path / "01_sft").mkdir()
    (tmp_path / "01_sft" / "manifest.json").write_text(json.dumps({"output": {"model": None, "evaluate": True}}))
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "recipe_table.py"), "--out", str(tmp_path), "--scored-run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| sft | – | –––" in done.stdout and "| 3.20 | 21.0% | 60.0% |" in done.stdout


def test_a_sweep_variant_keeps_the_commas_of_a_list_value() -> None:
    """`--variant r:--rewards.functions=[accuracy,format]` was cut at every comma: `[accuracy` and `format]`."""
    spec = importlib.util.spec_from_file_location("grpo_sweep", REPO / "bench" / "grpo_sweep.py")
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    assert sweep.variant_options("--rewards.functions=[accuracy,format],--grpo.beta=0.04,") == [
        "--rewards.functions=[accuracy,format]",
        "--grpo.beta=0.04",
    ]
    assert sweep.variant_options("") == []


def test_a_sweep_refuses_results_of_another_model_or_other_options(tmp_path: Path) -> None:
    """Results in OUT were reused by folder name alone: a sweep from a new SFT model, or a variant asked with another
    learning rate, reported the old figures under the new model and options, without a word."""
    spec = importlib.util.spec_from_file_location("grpo_sweep", REPO / "bench" / "grpo_sweep.py")
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    (tmp_path / "sft-eval" / "eval").mkdir(parents=True)
    (tmp_path / "sft-eval" / "eval" / "eval.json").write_text(json.dumps({"model": "/runs/old/02_sft/model"}))
    assert sweep.evaluated("/runs/new", tmp_path / "sft-eval", []).exists()  # made before the sweep kept its model
    (tmp_path / "sft-eval" / "sweep_model.json").write_text(json.dumps({"model": "/runs/old"}))
    with pytest.raises(SystemExit, match="is an evaluation of /runs/old, not of /runs/new"):
        sweep.evaluated("/runs/new", tmp_path / "sft-eval", [])
    assert sweep.evaluated("/runs/old", tmp_path / "sft-eval", []).exists()  # its own (a run folder): reused
    (tmp_path / "lr" / "grpo" / "model").mkdir(parents=True)
    made = {"minutes": 3.0, "model": "/m", "options": ["--learning_rate=1e-4"], "common": []}
    (tmp_path / "lr" / "sweep_minutes.json").write_text(json.dumps(made))
    assert sweep.trained_minutes("/m", tmp_path / "lr", ["--learning_rate=1e-4"], []) == 3.0
    with pytest.raises(SystemExit, match="lr holds a variant made from another model or with other options"):
        sweep.trained_minutes("/m", tmp_path / "lr", ["--learning_rate=9e-4"], [])
    (tmp_path / "lr" / "sweep_minutes.json").write_text(json.dumps({"minutes": 3.0}))  # a sweep's before this one
    assert sweep.trained_minutes("/m", tmp_path / "lr", ["--learning_rate=9e-4"], []) == 3.0
