"""Every benchmark script under bench/ answers --help with its usage, without running the benchmark."""

from __future__ import annotations

import subprocess
import sys

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
