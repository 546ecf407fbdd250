"""Math verification that cannot hang or crash the caller, with a time budget per batch.

math-verify can take unbounded time on hostile input (deeply nested LaTeX, huge exponents), and its own timeouts use
`signal.alarm`, which only works in the main thread of the main process. r1kit runs it instead in warm worker
subprocesses: each item gets a hard deadline, a worker that misses it is killed and replaced, and that item's
verdict is `timeout` (score None, excluded from the advantage). This works from any thread or process.

A GRPO batch is verified as a whole, within one time budget:
1. each distinct gold answer is checked once (parsed, and compared with a plain number, which is where a hostile
   gold such as `16**2**5**19` hangs); a gold that cannot be parsed or hangs is None for its whole group at once;
2. the remaining (answer, gold) pairs are spread over the workers in parallel;
3. whatever is unfinished when the budget runs out is None (`over_budget`), counted.
Verdicts are remembered, so `accuracy` and `cosine` on the same batch verify each pair once.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import IO

FAILURE_STATUSES = ("timeout", "hostile_gold", "over_budget")


@dataclass(frozen=True)
class Verdict:
    score: float | None  # 1.0 correct, 0.0 wrong, None when it could not be decided
    status: str  # correct | wrong | unparseable_gold | hostile_gold | timeout | over_budget | error: ...

    @property
    def failed(self) -> bool:
        """A failure of the verifier (not of the model): worth counting and reporting."""
        return self.status in FAILURE_STATUSES or self.status.startswith("error")


SPAWN_ATTEMPTS = 3  # starts of a replacement worker the OS refused (fork/exec errors) before its slot stays empty


class VerifierWorkerError(RuntimeError):
    pass


class _Spawner:
    """Starts the workers from one thread that lives as long as the process. A worker asks the kernel to kill it when
    the thread that started it ends (PR_SET_PDEATHSIG, Linux): with this thread, when the process ends, killed too
    (SIGKILL, a scheduler's SIGTERM). A worker stuck in a computation never reads the end of its input, and went on
    at full CPU, its memory growing, after the training process was gone. A process forked from this one (a pool's
    worker) gets a spawner of its own: threads do not survive a fork."""

    def __init__(self) -> None:
        self._requests: queue.Queue | None = None  # the thread's, once started
        self._lock = threading.Lock()

    def popen(self, *args, **kwargs) -> subprocess.Popen:
        with self._lock:
            if self._requests is None:
                self._requests = queue.Queue()
                threading.Thread(target=self._serve, args=(self._requests,), daemon=True).start()
            requests = self._requests
        reply: queue.Queue = queue.Queue()
        requests.put((args, kwargs, reply))
        started = reply.get()
        if isinstance(started, BaseException):
            raise started
        return started

    @staticmethod
    def _serve(requests: queue.Queue) -> None:
        while True:
            args, kwargs, reply = requests.get()
            try:
                reply.put(subprocess.Popen(*args, **kwargs))
            except BaseException as error:  # the OS refused the fork (EFAULT, ENOMEM): the caller's to handle
                reply.put(error)


_spawner = _Spawner()
if hasattr(os, "register_at_fork"):  # a forked child has no thread of its parent's, and its locks may be held
    os.register_at_fork(after_in_child=_spawner.__init__)


class _Worker:
    """One verifier subprocess with a reader thread that turns its stdout lines into queue items."""

    def __init__(self, startup_timeout: float):
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the worker; closed in kill()
        self.process = _spawner.popen(
            [sys.executable, "-m", "r1kit.rewards._verify_worker", str(os.getpid())],
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

    def ask(self, request: dict[str, str], timeout: float) -> Verdict:
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
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


class _Memory:
    """Recent verdicts by key. Definite ones are kept (LRU); failures only briefly, so the sibling reward of the same
    step (called right after) reuses them but a later step tries again."""

    def __init__(self, size: int = 8192, failure_seconds: float = 10.0):
        self._size, self._failure_seconds = size, failure_seconds
        self._verdicts: OrderedDict[tuple, tuple[Verdict, float]] = OrderedDict()

    def get(self, key: tuple) -> Verdict | None:
        found = self._verdicts.get(key)
        if found is None or found[1] < time.monotonic():
            return None
        self._verdicts.move_to_end(key)
        return found[0]

    def put(self, key: tuple, verdict: Verdict, brief: bool = False) -> None:
        """Remember `verdict`; only briefly where it is a failure or `brief` (one that may not hold next time)."""
        transient = brief or verdict.status in ("timeout", "over_budget") or verdict.status.startswith("error")
        self._verdicts[key] = (verdict, time.monotonic() + self._failure_seconds if transient else float("inf"))
        self._verdicts.move_to_end(key)
        while len(self._verdicts) > self._size:
            self._verdicts.popitem(last=False)


class VerifierPool:
    """Warm verifier workers with a hard per-item time limit and a time budget per batch.

    >>> pool = VerifierPool(workers=1, timeout=10)
    >>> [v.score for v in pool.verify([("14", "14"), ("15", "14"), ("x", "no math at all")])]
    [1.0, 0.0, None]
    >>> pool.close()
    """

    def __init__(
        self, workers: int = 1, timeout: float = 5.0, batch_budget: float | None = None, startup_timeout: float = 120.0
    ):
        self.timeout = timeout
        self.batch_budget = batch_budget if batch_budget is not None else 4 * timeout
        self.startup_timeout = startup_timeout
        self._slots: list[_Worker | None] = [None] * workers
        self._spawning: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._golds = _Memory()
        self._pairs = _Memory()
        self._gold_timeouts: dict[str, int] = {}  # the golds whose check missed its limit, and how often

    def verify(self, items: list[tuple[str, str]]) -> list[Verdict]:
        """Verdicts for (answer, gold) pairs, in order, all within the batch budget."""
        with self._lock:
            # The workers' start (math-verify's imports, seconds on a busy machine) is not the batch's to pay: the
            # first batch of a run would otherwise run out of budget before its first verdict.
            self._start_workers()
            deadline = time.monotonic() + self.batch_budget
            verdicts: dict[tuple[str, str], Verdict] = {}
            todo: list[tuple[str, str]] = []
            for pair in dict.fromkeys(items):  # distinct pairs: a group often repeats an answer
                known = self._pairs.get(pair)
                if known is not None:
                    verdicts[pair] = known
                else:
                    todo.append(pair)
            checked = {gold: self._golds.get((gold,)) for gold in dict.fromkeys(gold for _, gold in todo)}
            golds = [gold for gold, verdict in checked.items() if verdict is None]
            first_strikes = set()
            gold_verdicts = self._run([{"gold": g} for g in golds], deadline)
            if math.isinf(self.batch_budget):  # scoring every item (evaluation): a gold that missed its limit once
                # is checked again at once, not at a later step: left out for one model only, it took a problem out
                # of that model's pass@1 and not of the next one's
                again = [i for i, verdict in enumerate(gold_verdicts) if verdict.status == "timeout"]
                for i, verdict in zip(again, self._run([{"gold": golds[i]} for i in again], deadline), strict=True):
                    if verdict.status != "timeout":
                        gold_verdicts[i] = verdict
            for gold, verdict in zip(golds, gold_verdicts, strict=True):
                if verdict.status == "ok":  # its strikes are forgotten (once evicted, a late miss is a first one)
                    self._gold_timeouts.pop(gold, None)
                if verdict.status == "timeout":
                    verdict = Verdict(None, "hostile_gold")  # it hung on a plain comparison: every answer would
                    self._gold_timeouts[gold] = self._gold_timeouts.get(gold, 0) + 1
                    if self._gold_timeouts[gold] == 1:  # a benign gold can miss it once on a loaded machine: it is
                        first_strikes.add(gold)  # checked again at a later step, and hostile for good the second time
                self._golds.put((gold,), verdict, brief=gold in first_strikes)
                checked[gold] = verdict
            pending = []
            for answer, gold in todo:
                if checked[gold].status != "ok":
                    verdicts[answer, gold] = checked[gold]
                else:
                    pending.append((answer, gold))
            # the shortest answers first: a few long ones that hang the verifier (`10**10**10**10**9`) used up the
            # batch budget of every group's plain numbers, judged after them in batch order
            pending.sort(key=lambda pair: len(pair[0]))
            judged = self._run([{"answer": answer, "gold": gold} for answer, gold in pending], deadline)
            for pair, verdict in zip(pending, judged, strict=True):
                verdicts[pair] = verdict
                # only what this call judged: remembered again at each read, a failure ("only briefly") never
                # expired for a pair asked every few seconds; a gold's failure is the gold memory's to keep
                self._pairs.put(pair, verdict)
            return [verdicts[pair] for pair in items]

    def _run(self, requests: list[dict[str, str]], deadline: float) -> list[Verdict]:
        """Answer `requests` in parallel over the workers; what is not done by `deadline` is `over_budget`."""
        if not requests:
            return []
        # no wait here for a worker being replaced (a timed-out gold's): the others go on, within the deadline
        verdicts: list[Verdict] = [Verdict(None, "over_budget")] * len(requests)
        todo: queue.Queue[int] = queue.Queue()
        for index in range(len(requests)):
            todo.put(index)
        threads = [
            threading.Thread(target=self._drain, args=(slot, requests, todo, verdicts, deadline))
            for slot in range(len(self._slots))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return verdicts

    def _drain(self, slot: int, requests, todo: queue.Queue[int], verdicts: list, deadline: float) -> None:
        while True:
            # the worker first, then an item: a slot whose worker is being replaced takes none while it waits
            worker = self._worker_by(slot, deadline, todo)
            if worker is None:
                return  # the budget is spent (the rest stay `over_budget`), or the other slots took every item
            try:
                index = todo.get_nowait()
            except queue.Empty:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            verdict = worker.ask(requests[index], min(self.timeout, left))
            if verdict.status == "timeout" or not worker.alive:
                # A worker past its deadline may be stuck forever, a dead one is gone: replace it in the background
                # (~2 s of imports) while the other workers go on.
                worker.kill()
                self._slots[slot] = None
                self._spawn(slot)
                if verdict.status == "timeout" and self.timeout > left:
                    verdict = Verdict(None, "over_budget")  # the budget ran out, not the item's own limit
            verdicts[index] = verdict

    def _worker_by(self, slot: int, deadline: float, todo: queue.Queue[int]) -> _Worker | None:
        """The slot's worker, waiting for a replacement being started until `deadline`, or None once no item is
        left to take."""
        while self._slots[slot] is None and time.monotonic() < deadline and not todo.empty():
            time.sleep(0.02)
        return self._slots[slot] if not todo.empty() else None

    def _spawn(self, slot: int) -> None:
        def start() -> None:
            # The OS can refuse a fork/exec for a moment (seen: EFAULT, "Bad address", on a busy 2-core machine); an
            # empty slot would leave the rest of the batch unverified, so the start is tried again.
            for _ in range(SPAWN_ATTEMPTS):
                try:
                    self._slots[slot] = _Worker(self.startup_timeout)
                    return
                except VerifierWorkerError:
                    return  # it started and did not come up: trying again would only wait as long again
                except OSError:
                    time.sleep(0.1)

        thread = threading.Thread(target=start, daemon=True)
        thread.start()
        self._spawning.append(thread)

    def _start_workers(self) -> None:
        for thread in self._spawning:
            thread.join()
        self._spawning.clear()
        for slot, worker in enumerate(self._slots):
            if worker is None or not worker.alive:
                self._slots[slot] = _Worker(self.startup_timeout)

    def close(self) -> None:
        with self._lock:
            for thread in self._spawning:
                thread.join()
            self._spawning.clear()
            for slot, worker in enumerate(self._slots):
                if worker is not None:
                    worker.kill()
                self._slots[slot] = None


_shared_pools: dict[tuple[int, float, float], VerifierPool] = {}


def shared_verifier(workers: int = 2, timeout: float = 2.0, batch_budget: float = 4.0) -> VerifierPool:
    """One warm pool per setting for the whole process (so rewards share its verdicts), closed at exit."""
    key = (workers, timeout, batch_budget)
    if key not in _shared_pools:
        _shared_pools[key] = VerifierPool(workers=workers, timeout=timeout, batch_budget=batch_budget)
    return _shared_pools[key]


@atexit.register
def _close_shared_pools() -> None:
    for pool in _shared_pools.values():
        pool.close()
