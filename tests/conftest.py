"""Shared fixtures: a private model cache (built-in models built once per session) and small helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# The tests run offline, as CI does: hub look-ups fail at once instead of retrying a closed network. huggingface_hub
# reads this when imported, so it is set before anything imports it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
GSM8K = REPO.parent / "shared" / "data" / "gsm8k"


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test builds built-in models into one session cache, never into the user's ~/.cache."""
    cache = Path(os.environ.get("PYTEST_R1KIT_CACHE") or tmp_path_factory.mktemp("r1kit-cache"))
    os.environ["R1KIT_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def tiny_model(model_cache: Path) -> Path:
    from r1kit.models import builtin_model_path

    return builtin_model_path("tiny-random")


def r1kit_cli(*args: str, cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real `r1kit` entry point in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "r1kit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def r1kit_killed_in_checkpoint_write(*args: str, step: int, cwd: Path) -> subprocess.CompletedProcess:
    """Run `r1kit` in a fresh process that kills itself with SIGKILL inside the trainer's checkpoint write at `step`:
    model and optimizer written, RNG and trainer state not yet."""
    driver = (
        "import os, signal, sys\n"
        "from transformers import Trainer\n"
        "original = Trainer._save_rng_state\n"
        "def dying(self, output_dir):\n"
        f"    if self.state.global_step == {step}:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return original(self, output_dir)\n"
        "Trainer._save_rng_state = dying\n"
        "from r1kit.cli import main\n"
        f"sys.exit(main({list(args)!r}))\n"
    )
    return subprocess.run([sys.executable, "-c", driver], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Path:
    """A whole `r1kit run` on the test profile (tiny model: base eval, SFT, GRPO, final eval)."""
    out = tmp_path_factory.mktemp("pipeline") / "run"
    done = r1kit_cli("run", "--profile", "test", "--out", str(out), cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return out
