"""Shared fixtures: a private model cache (built-in models built once per session) and small helpers."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The tests run offline, as CI does: hub look-ups fail at once instead of retrying a closed network. huggingface_hub
# reads this when imported, so it is set before anything imports it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Under pytest-xdist's two workers (pyproject's addopts) each worker's torch takes one thread, as r1kit sizes its pool
# to a user's OMP_NUM_THREADS where fewer: two pools of two threads on 2 cores spin against each other (a kill -9
# test took 3 times as long). Commands in fresh processes inherit it.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
GSM8K = REPO.parent / "shared" / "data" / "gsm8k"


# The files that take longest (test_scale_out.py's accelerate launches ~4 minutes), in that order
_SLOWEST_FILES = ("test_scale_out.py", "test_pipeline.py", "test_recipes.py", "test_training.py", "test_rlhf.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest files first: a file runs on one worker (pyproject: `--dist loadfile`), and one of them started
    last kept one worker busy alone at the end."""
    order = {name: place for place, name in enumerate(_SLOWEST_FILES)}
    items.sort(key=lambda item: order.get(item.path.name, len(order)))  # stable: the others keep their order


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test builds built-in models into one session cache, never into the user's ~/.cache."""
    cache = Path(os.environ.get("PYTEST_R1KIT_CACHE") or tmp_path_factory.mktemp("r1kit-cache"))
    os.environ["R1KIT_CACHE"] = str(cache)
    return cache


@pytest.fixture(autouse=True)
def run_folder_let_go() -> Iterator[None]:
    """A test that opens a run folder in this process (setup, pipeline.run) lets go of it, as a command does."""
    yield
    from r1kit.runs import leave_run_folder

    leave_run_folder()


@pytest.fixture(scope="session")
def tiny_model(model_cache: Path) -> Path:
    from r1kit.models import builtin_model_path

    return builtin_model_path("tiny-random")


def r1kit_cli(
    *args: str, cwd: Path, timeout: float = 600, env: dict | None = None, fresh_process: bool = False
) -> subprocess.CompletedProcess:
    """Run `r1kit ARGS` as a command: its exit code and what it printed, as `subprocess.run` gives them.

    By default in this process: `python -m r1kit` only calls `r1kit.cli.main`, and a fresh process pays ~8 s of
    torch/transformers/peft imports (most of the suite's time, where ~70 commands run). A fresh process where the test
    needs one (`fresh_process`) or changes an environment variable (the libraries read some of them once, on import);
    `timeout` bounds a fresh process only."""
    command = [sys.executable, "-m", "r1kit", *args]
    if fresh_process or any(os.environ.get(key) != value for key, value in (env or {}).items()):
        return subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
        )
    out, err = io.StringIO(), io.StringIO()
    with _as_a_command(cwd, err), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = _exit_code(list(args))
    return subprocess.CompletedProcess(command, code, out.getvalue(), err.getvalue())


def _exit_code(argv: list[str]) -> int:
    from r1kit.cli import main

    try:
        return main(argv)
    except SystemExit as exiting:  # argparse's usage errors and --help
        return exiting.code if isinstance(exiting.code, int) else int(exiting.code is not None)


@contextlib.contextmanager
def _as_a_command(cwd: Path, err: io.StringIO) -> Iterator[None]:
    """What a command changes in its process is put back afterwards: the working folder, the environment, the
    logging set-up (pytest's handlers would keep r1kit's log lines from `err`: the console's format instead), torch's
    thread count, the signal handlers and the run's training.log handler."""
    import torch

    from r1kit.runs import stop_training_log

    root, here, environ = logging.getLogger(), Path.cwd(), dict(os.environ)
    handlers, level, threads = root.handlers[:], root.level, torch.get_num_threads()
    signals = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    console = logging.StreamHandler(err)
    console.setFormatter(logging.Formatter("%(message)s"))
    root.handlers = [console]
    root.setLevel(logging.WARNING)  # setLevel: the loggers' cached levels are cleared too
    os.chdir(cwd)
    try:
        yield
    finally:
        stop_training_log()
        os.chdir(here)
        os.environ.clear()
        os.environ.update(environ)
        root.handlers = handlers
        root.setLevel(level)
        torch.set_num_threads(threads)
        for number, handler in signals.items():
            signal.signal(number, handler)


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
