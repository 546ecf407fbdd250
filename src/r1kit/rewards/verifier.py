"""Math verification that cannot hang or crash the caller.

math-verify can take unbounded time on hostile input (deeply nested LaTeX, huge exponents), and its own timeouts use
`signal.alarm`, which only works in the main thread of the main process. r1kit runs it instead in warm worker
subprocesses: each item gets a hard deadline, a worker that misses it is killed and replaced, and that item's
verdict is `timeout` (score None, excluded from the advantage). This works from any thread or process.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import queue
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from typing import IO


@dataclass(frozen=True)
class Verdict:
    score: float | None  # 1.0 correct, 0.0 wrong, None when it could not be decided
    status: str  # correct | wrong | unparseable_gold | timeout | error: ...

    @property
    def failed(self) -> bool:
        """A failure of the verifier (not of the model): worth counting and reporting."""
        return self.status == "timeout" or self.status.startswith("error")


class VerifierWorkerError(RuntimeError):
    pass


class _Worker:
    """One verifier subprocess with a reader thread that turns its stdout lines into queue items."""

    def __init__(self, startup_timeout: float):
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the worker; closed in kill()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "r1kit.rewards._verify_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
        )
        self.replies: queue.Queue[dict | None] = queue.Queue()
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()
        try:
            ready = self.replies.get(timeout=startup_timeout)
        except queue.Empty:
            ready = None
        if not ready or not ready.get("ready"):
            self.kill()
            raise VerifierWorkerError(f"verifier worker did not start: {self._stderr_tail()}")

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.replies.put(json.loads(line))
        self.replies.put(None)  # EOF: the process died

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:] or "(no output)"

    def ask(self, answer: str, gold: str, timeout: float) -> Verdict:
        try:
            self.process.stdin.write(json.dumps({"answer": answer, "gold": gold}) + "\n")
            self.process.stdin.flush()
            reply = self.replies.get(timeout=timeout)
        except queue.Empty:
            return Verdict(None, "timeout")
        except (BrokenPipeError, OSError):
            reply = None
        if reply is None:
            return Verdict(None, f"error: verifier worker died: {self._stderr_tail()[-300:]}")
        return Verdict(reply["score"], reply["status"])

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self._stderr):
            with contextlib.suppress(OSError):
                stream.close()


class VerifierPool:
    """Warm verifier workers with a hard per-item time limit.

    >>> pool = VerifierPool(workers=1, timeout=10)
    >>> [v.score for v in pool.verify([("14", "14"), ("15", "14"), ("x", "not math")])]
    [1.0, 0.0, None]
    >>> pool.close()
    """

    def __init__(self, workers: int = 1, timeout: float = 5.0, startup_timeout: float = 120.0):
        self.timeout = timeout
        self.startup_timeout = startup_timeout
        self._size = workers
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()

    def verify(self, items: list[tuple[str, str]]) -> list[Verdict]:
        """Verdicts for (answer, gold) pairs, in order. Items are spread over the workers."""
        if not items:
            return []
        with self._lock:
            self._start_workers()
            verdicts: list[Verdict | None] = [None] * len(items)
            todo: queue.Queue[int] = queue.Queue()
            for index in range(len(items)):
                todo.put(index)
            threads = [
                threading.Thread(target=self._drain, args=(slot, items, todo, verdicts))
                for slot in range(len(self._workers))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return verdicts  # type: ignore[return-value]

    def _start_workers(self) -> None:
        while len(self._workers) < self._size:
            self._workers.append(_Worker(self.startup_timeout))

    def _drain(self, slot: int, items, todo: queue.Queue[int], verdicts: list) -> None:
        while True:
            try:
                index = todo.get_nowait()
            except queue.Empty:
                return
            answer, gold = items[index]
            verdict = self._workers[slot].ask(answer, gold, self.timeout)
            if verdict.status == "timeout" or not self._workers[slot].alive:
                # A worker past its deadline may be stuck forever, a dead one is gone: replace it (~2 s of imports).
                self._workers[slot].kill()
                self._workers[slot] = _Worker(self.startup_timeout)
            verdicts[index] = verdict

    def close(self) -> None:
        with self._lock:
            for worker in self._workers:
                worker.kill()
            self._workers.clear()


_shared_pools: dict[tuple[int, float], VerifierPool] = {}


def shared_verifier(workers: int = 1, timeout: float = 5.0) -> VerifierPool:
    """One warm pool per (workers, timeout) for the whole process, closed at exit."""
    key = (workers, timeout)
    if key not in _shared_pools:
        _shared_pools[key] = VerifierPool(workers=workers, timeout=timeout)
    return _shared_pools[key]


@atexit.register
def _close_shared_pools() -> None:
    for pool in _shared_pools.values():
        pool.close()
