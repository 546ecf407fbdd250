"""The main job on the real embedded model (~10 minutes on 2 cores with bf16): `.venv/bin/python -m pytest -m slow`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, r1kit_cli

pytestmark = pytest.mark.slow  # one xdist worker runs a file (pyproject: loadfile), so the run is made once


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("real") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("OMP_NUM_THREADS", raising=False)  # every core, as a user's run (an xdist worker has one thread)
        done = r1kit_cli("run", "--out", str(out), "--monitoring.progress", "false", cwd=REPO, timeout=45 * 60)
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def test_the_main_job_teaches_format_and_accuracy(real_run: Path) -> None:
    evaluations = json.loads((real_run / "summary.json").read_text())["evaluations"]
    base, *_, final = evaluations.values()  # labelled by stage (base, sft, grpo): there is no "final" (a KeyError)
    assert final["format_rate"] >= 0.95 > base["format_rate"]
    assert final["accuracy"] >= base["accuracy"] + 0.25


def test_chat_shows_the_thinking_and_the_answer(real_run: Path) -> None:
    done = r1kit_cli("chat", "--model", str(real_run), "--prompt", "What is 12*13?", cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "── thinking ──" in done.stdout and "── answer ──" in done.stdout and "answer: " in done.stdout


def test_the_report_of_a_real_run(real_run: Path) -> None:
    assert "plot-grpo-rewards" in (real_run / "report.html").read_text()  # written by the run as it ended
    done = r1kit_cli("report", str(real_run), cwd=REPO)
    assert done.returncode == 0 and "plot-grpo-rewards" in (real_run / "report.html").read_text()
