"""Rewards that cannot hang or crash training: hard time limits in any thread or process, hostile input, fuzzing."""

from __future__ import annotations

import asyncio
import copy
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r1kit.rewards import REWARD_NAMES, build_reward, verifier
from r1kit.rewards.guard import guarded
from r1kit.rewards.verifier import VerifierPool
from tests.hostile import HOSTILE

TIMEOUT = 2.0  # seconds per verification in these tests


def all_rewards(timeout: float = TIMEOUT) -> dict:
    params = {
        "accuracy": {"timeout_seconds": timeout},
        "cosine": {"timeout_seconds": timeout},
        "overlong": {"max_length": 64},
    }
    return {name: build_reward(name, **params.get(name, {})) for name in REWARD_NAMES}


def call(name: str, reward, completions: list[str], gold: str = "4"):
    return reward(
        completions,
        solution=[gold] * len(completions),
        prompts=[[{"role": "user", "content": "How many apples are there in total?"}]] * len(completions),
        completion_ids=[[0] * min(len(c), 100) for c in completions],
    )


RANGES = {
    "accuracy": (0.0, 1.0),
    "format": (0.0, 1.0),
    "tag_count": (0.0, 1.0),
    "reasoning_steps": (0.0, 1.0),
    "arithmetic_steps": (0.0, 1.0),
    "cosine": (-0.5, 1.0),
    "repetition_penalty": (-0.1, 0.0),
    "language_consistency": (0.0, 1.0),
    "overlong": (-1.0, 0.0),
}


def assert_valid(name: str, values: list, count: int) -> None:
    assert isinstance(values, list) and len(values) == count
    low, high = RANGES[name]
    for value in values:
        assert value is None or (
            isinstance(value, float) and math.isfinite(value) and low - 1e-9 <= value <= high + 1e-9
        ), (name, value)


# ------------------------------------------------------------------------------------ any thread, any process


def test_correct_answer_scores_one_in_main_thread_worker_thread_and_subprocess() -> None:
    accuracy = build_reward("accuracy", timeout_seconds=10)
    assert accuracy(["<answer>14</answer>"], solution=["14"]) == [1.0]

    from_thread: list = []
    worker = threading.Thread(target=lambda: from_thread.append(accuracy(["<answer>14</answer>"], solution=["14"])))
    worker.start()
    worker.join(timeout=60)
    assert from_thread == [[1.0]]

    script = (
        "from r1kit.rewards import build_reward\n"
        "import threading\n"
        "out = []\n"
        "t = threading.Thread(target=lambda: out.append(build_reward('accuracy')(['<answer>14</answer>'], solution=['14'])))\n"
        "t.start(); t.join()\n"
        "print(out[0])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1.0]"


def test_a_hanging_verification_times_out_to_none_and_the_pool_recovers() -> None:
    pool = VerifierPool(workers=1, timeout=1.0, batch_budget=30.0)
    try:
        pool.verify([("1", "1")])  # a warm worker
        first_worker = pool._slots[0].process.pid
        started = time.monotonic()
        verdicts = pool.verify(
            [("10**10**10**10**10", "1"), ("14", "14"), ("\\frac{1}{2}", "0.5")]
        )  # sympy hangs on the first
        elapsed = time.monotonic() - started
        assert verdicts[0].status == "timeout" and verdicts[0].score is None and verdicts[0].failed
        assert [v.score for v in verdicts[1:]] == [1.0, 1.0]  # judged first: the shortest answers go first
        assert elapsed < 1.0 + 30  # the limit, plus the replacement worker's start
        assert [v.score for v in pool.verify([("6", "6")])] == [1.0]  # a fresh worker took over
        assert pool._slots[0].process.pid != first_worker
    finally:
        pool.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_the_workers_end_with_a_killed_process() -> None:
    """A worker stuck in a computation never reads the end of its input: after a kill -9 (or a scheduler's SIGTERM)
    of the training process it went on at full CPU, its memory growing, for good."""
    parent = (
        "from r1kit.rewards.verifier import VerifierPool\n"
        "pool = VerifierPool(workers=2, timeout=600, batch_budget=600)\n"
        "pool.verify([('1', '1')])\n"
        "print(' '.join(str(w.process.pid) for w in pool._slots), flush=True)\n"
        "pool.verify([('1', '16**2**5**19')])  # hangs in a worker\n"
    )
    process = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    workers = [int(pid) for pid in process.stdout.readline().split()]
    time.sleep(1.0)  # the hanging check under way
    process.kill()
    process.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.1)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    for pid in alive:  # what the test started, whatever it asserts
        os.kill(pid, signal.SIGKILL)
    assert not alive


def test_a_replacement_worker_the_os_refuses_once_is_started_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from r1kit.rewards import verifier

    pool = VerifierPool(workers=1, timeout=1.0, batch_budget=30.0)
    try:
        pool.verify([("1", "1")])  # a warm worker
        real, refused = subprocess.Popen, []

        def refusing_once(*args, **kwargs):
            if not refused:
                refused.append(True)
                raise OSError(14, "Bad address")  # what fork/exec raised on this machine, now and then
            return real(*args, **kwargs)

        monkeypatch.setattr(verifier.subprocess, "Popen", refusing_once)
        verdicts = pool.verify([("10**10**10**10**10", "1"), ("14", "14")])  # sympy hangs on the first
        assert verdicts[0].status == "timeout" and verdicts[1].score == 1.0
        assert pool.verify([("6", "6")])[0].score == 1.0 and refused  # its replacement, started on the second try
    finally:
        pool.close()


def test_timeouts_are_counted_in_the_metrics() -> None:
    logged: dict[str, float] = {}
    # 0.5 s: the hostile answer never finishes, and a fresh worker's first check of the gold fits even on a busy CPU
    # (at 0.05 s it sometimes did not: the gold was then taken for hostile and the plain answer scored None too)
    accuracy = build_reward("accuracy", timeout_seconds=0.5, batch_budget_seconds=30)
    hostile = [HOSTILE["huge_python_power"], "<answer>1</answer>"]
    values = accuracy(hostile, solution=["1", "1"], log_metric=lambda name, value: logged.__setitem__(name, value))
    assert values == [0.0, 1.0]  # an answer that hangs the verifier is wrong, as evaluation scores it
    assert logged == {
        "rewards/accuracy/timeouts": 1.0,
        "rewards/accuracy/unreadable_gold": 0.0,
        "rewards/accuracy/hostile_gold": 0.0,
        "rewards/accuracy/over_budget": 0.0,
        "rewards/accuracy/errors": 0.0,
    }


# ------------------------------------------------------------------------------------ hostile gold, batch budget

HOSTILE_GOLDS = ["16**2**5**19", "9^{9^{9^{9}}}", "(10^{10})!"]


def grpo_batch(gold: str) -> tuple[list[str], list[str]]:
    """A GRPO-shaped batch: 2 groups of 8 completions; the first group's gold is `gold`, the second's is 42."""
    first = [f"<think>guess</think><answer>{answer}</answer>" for answer in (16, 9, 0, 1, 2, 3, 4, 5)]
    second = [f"<think>6*7</think><answer>{answer}</answer>" for answer in (42, 41, 42, 40, 42, 43, 44, 42)]
    return first + second, [gold] * 8 + ["42"] * 8


@pytest.mark.parametrize("gold", HOSTILE_GOLDS)
def test_a_hostile_gold_costs_its_group_once_within_the_batch_budget(gold: str) -> None:
    budget = 4.0
    accuracy = build_reward("accuracy", timeout_seconds=2.0, batch_budget_seconds=budget)
    cosine = build_reward("cosine", timeout_seconds=2.0, batch_budget_seconds=budget)
    accuracy(["<answer>1</answer>"], solution=["1"])  # warm workers, as in training after the first step
    logged: dict[str, float] = {}
    completions, golds = grpo_batch(gold)

    started = time.monotonic()
    scores = accuracy(completions, solution=golds, log_metric=logged.__setitem__)
    cosine_scores = cosine(completions, solution=golds)  # shares the verdicts: no second wait
    elapsed = time.monotonic() - started

    assert scores[:8] == [None] * 8 and cosine_scores[:8] == [None] * 8
    assert scores[8:] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    assert logged["rewards/accuracy/hostile_gold"] == 8.0
    assert elapsed < budget + 1.0, f"took {elapsed:.1f}s"


def test_a_worker_being_replaced_leaves_the_batch_to_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hostile gold's worker is replaced in the background; the answers' phase waited for that start (~2 s of
    imports on a busy machine) before it began, and the worker's slot took an item it then held: five of six plain
    answers came back over budget."""
    pool = VerifierPool(workers=2, timeout=2.0, batch_budget=4.0)
    try:
        pool.verify([("1", "1")])  # both workers up
        started = verifier._Worker.__init__

        def slow_start(self, startup_timeout: float) -> None:
            time.sleep(2.0)
            started(self, startup_timeout)

        monkeypatch.setattr(verifier._Worker, "__init__", slow_start)
        verdicts = pool.verify([("7", "16**2**5**19")] + [(str(n), str(n)) for n in range(6)])
        assert verdicts[0].status == "hostile_gold"
        assert [v.status for v in verdicts[1:]] == ["correct"] * 6
    finally:
        pool.close()


def test_a_gold_that_misses_its_limit_once_is_checked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A gold whose plain check missed its time limit once (a loaded machine) was hostile for the rest of the run:
    its prompt scored None at every later step. A gold that hangs twice is hostile for good (not checked a third
    time); one whose check passed in between starts again from no miss."""
    pool = VerifierPool(workers=1, timeout=2.0, batch_budget=4.0)

    def forget() -> None:  # a later step (brief memories expired), or hours on (every verdict evicted)
        pool._golds, pool._pairs = verifier._Memory(failure_seconds=0.0), verifier._Memory(failure_seconds=0.0)

    real_run, stall, gold_checks = pool._run, [True], []

    def stalled(requests, deadline):  # a gold check stalls when told to, as on a machine busy with something else
        if requests and "answer" not in requests[0]:
            gold_checks.append(requests[0]["gold"])
            if stall and stall.pop():
                return [verifier.Verdict(None, "timeout")] * len(requests)
        return real_run(requests, deadline)

    monkeypatch.setattr(pool, "_run", stalled)
    forget()
    try:
        assert pool.verify([("14", "14")])[0].status == "hostile_gold"
        assert pool.verify([("14", "14")])[0].status == "correct"  # a later step: checked again
        forget()
        stall.append(True)
        assert pool.verify([("14", "14")])[0].status == "hostile_gold"  # a first miss again, not a second
        assert pool.verify([("14", "14")])[0].status == "correct"
        hostile = "16**2**5**19"
        assert [pool.verify([("7", hostile)])[0].status for _ in range(3)] == ["hostile_gold"] * 3
        assert gold_checks == ["14"] * 4 + [hostile] * 2  # hostile for good after its second time
    finally:
        pool.close()


def test_unfinished_items_past_the_batch_budget_are_none_and_counted() -> None:
    pool = VerifierPool(workers=1, timeout=5.0, batch_budget=1.0)
    try:
        pool.verify([("1", "1")])
        started = time.monotonic()
        verdicts = pool.verify([("10**10**10**10**10", "1"), ("2", "2"), ("3", "3")])
        elapsed = time.monotonic() - started
        # the shortest answers first: the plain ones are judged, the hanging one runs past the budget
        assert [v.status for v in verdicts] == ["over_budget", "correct", "correct"] and verdicts[0].score is None
        assert elapsed < 1.0 + 0.5
        # the killed worker is replaced in the background: the next batch is scored normally
        assert [v.score for v in pool.verify([("6", "6"), ("4", "3")])] == [1.0, 0.0]
    finally:
        pool.close()


def test_a_few_hanging_answers_leave_the_other_groups_their_verdicts() -> None:
    """Items were judged in batch order under one budget: four answers of the first group that hang the verifier
    took both workers' time, and the second group's plain answers were all over_budget (None: no signal)."""
    pool = VerifierPool(workers=2, timeout=1.0, batch_budget=2.0)
    try:
        pool.verify([("1", "1"), ("2", "2")])
        hanging = [(f"10**10**10**10**{k}", "7") for k in range(10, 14)]
        plain = [(str(n), "42") for n in range(38, 46)]
        verdicts = pool.verify([*hanging, *plain])
        assert [v.score for v in verdicts[4:]] == [float(n == 42) for n in range(38, 46)]
    finally:
        pool.close()


def test_a_failure_is_forgotten_though_its_pair_is_asked_again_and_again() -> None:
    """A failure (over_budget) is remembered only briefly, so that a later step verifies the pair again; but each
    batch that read it stored it again for as long, and a pair asked every few seconds ("12" for "12", in every
    step of an integer task) stayed unscored for the rest of the run."""
    from r1kit.rewards.verifier import _Memory

    pool = VerifierPool(workers=1, timeout=5.0, batch_budget=1.0)
    try:
        pool.verify([("1", "1")])
        pool._pairs = _Memory(failure_seconds=0.5)
        assert pool.verify([("10**10**10**10**10", "1"), ("12", "12")])[0].status == "over_budget"
        pool.batch_budget = 30.0
        statuses = []
        for _ in range(8):  # every 0.2 s, for longer than the failure is remembered
            statuses.append(pool.verify([("10**10**10**10**10", "1")])[0].status)
            time.sleep(0.2)
            if statuses[-1] != "over_budget":
                break
        assert statuses[-1] == "timeout"  # verified again (and judged: it hangs)
    finally:
        pool.close()


def test_evaluation_checks_a_gold_that_missed_its_limit_once_again_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A benign gold whose check missed its limit once (a busy machine) was hostile for ten seconds: its problem was
    left out of the model evaluated then and not of the next one, and the paired change compared other problems."""
    from r1kit.config.sources import resolve_config
    from r1kit.rewards.verifier import Verdict
    from r1kit.stages.evaluate import answer_scores

    gold, real_run, missed = "171717", VerifierPool._run, []

    def one_miss(self, requests, deadline):
        verdicts = real_run(self, requests, deadline)
        for index, request in enumerate(requests):
            if request == {"gold": gold} and not missed:
                missed.append(True)
                verdicts[index] = Verdict(None, "timeout")
        return verdicts

    monkeypatch.setattr(VerifierPool, "_run", one_miss)
    config = resolve_config(environ={}).config
    scores, _ = answer_scores(config, ["<answer>12</answer>", f"<answer>{gold}</answer>"], ["12", gold])
    assert missed and scores == [1.0, 1.0]


def test_the_workers_start_outside_the_first_batchs_budget() -> None:
    """The workers' start-up (math-verify's imports) counted against the first batch: with a budget shorter than
    it, every verdict of a run's first step was over_budget."""
    pool = VerifierPool(workers=1, timeout=5.0, batch_budget=0.3)
    try:
        assert [v.status for v in pool.verify([("14", "14"), ("15", "14")])] == ["correct", "wrong"]
    finally:
        pool.close()


def test_the_workers_verify_in_parallel() -> None:
    pool = VerifierPool(workers=2, timeout=1.5, batch_budget=30.0)
    try:
        pool.verify([("1", "1"), ("2", "2")])
        started = time.monotonic()
        verdicts = pool.verify([("10**10**10**10**10", "1"), ("10**10**10**10**11", "1"), ("5", "5")])
        elapsed = time.monotonic() - started
        assert [v.status for v in verdicts] == ["timeout", "timeout", "correct"]
        assert elapsed < 2 * 1.5  # two hanging items side by side, not one after the other
    finally:
        pool.close()


# ---------------------------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_completions_return_within_the_limit(case: str) -> None:
    for name, reward in all_rewards().items():
        started = time.monotonic()
        values = call(name, reward, [HOSTILE[case]])
        elapsed = time.monotonic() - started
        assert_valid(name, values, 1)
        # verification may use its limit once, then a worker restart; everything else is linear-time text work
        assert elapsed < TIMEOUT + 30, f"{name} took {elapsed:.1f}s on {case}"


def test_repetition_penalty_reads_megabyte_text_of_any_script_quickly() -> None:
    reward = build_reward("repetition_penalty")  # without completion_ids: the text itself is split into n-grams
    texts = [*HOSTILE.values(), "苹果" * 500_000, "".join(map(chr, range(0x4E00, 0x9FFF))) * 50]
    started = time.monotonic()
    values = reward(texts)
    assert time.monotonic() - started < 30
    assert_valid("repetition_penalty", values, len(texts))
    assert values[-2] == pytest.approx(-0.1, abs=1e-3)


def test_a_hostile_batch_mixed_with_normal_items_keeps_the_normal_verdicts() -> None:
    accuracy = build_reward("accuracy", timeout_seconds=TIMEOUT)
    completions = [
        "<answer>4</answer>",
        HOSTILE["huge_python_power"],
        "<answer>5</answer>",
        HOSTILE["nested_latex"],
        "<answer>4</answer>",
    ]
    values = accuracy(completions, solution=["4"] * 5)
    assert values == [1.0, 0.0, 0.0, 0.0, 1.0]  # one that hangs the verifier is wrong (as the group's mean, it
    # scored above an honest wrong answer: RL could learn to hang the verifier)


# ------------------------------------------------------------------------------------------------ fuzzing


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=300), tagged=st.booleans())
def test_every_reward_returns_valid_values_for_any_text(text: str, tagged: bool) -> None:
    completion = f"<think>{text}</think><answer>{text}</answer>" if tagged else text
    for name, reward in REWARDS.items():
        assert_valid(name, call(name, reward, [completion, text]), 2)
        if name == "repetition_penalty":  # call() passes token ids, which it prefers to the text
            assert_valid(name, reward([completion, text]), 2)
        assert_valid(
            name,
            reward(
                [[{"role": "assistant", "content": completion}]],
                solution=[text or "1"],
                prompts=[[{"role": "user", "content": text}]],
                completion_ids=[[1, 2]],
            ),
            1,
        )


REWARDS = all_rewards()


@settings(max_examples=40, deadline=None)
@given(gold=st.text(max_size=40))
def test_any_gold_answer_gives_a_verdict_or_none(gold: str) -> None:
    assert_valid("accuracy", REWARDS["accuracy"](["<answer>3</answer>"], solution=[gold]), 1)


# --------------------------------------------------------------------------------------------------- guard


def test_a_reward_that_raises_costs_only_its_failing_items() -> None:
    logged: dict[str, float] = {}

    def fragile(completions, **kwargs):
        return [1.0 if "ok" in c else float("nan") if "nan" in c else 1 / 0 for c in completions]

    values = guarded("fragile", fragile)(["ok", "boom", "nan", "ok"], log_metric=lambda n, v: logged.__setitem__(n, v))
    assert values == [1.0, None, None, 1.0]
    assert logged == {"rewards/fragile/exceptions": 2.0}


def test_a_reward_returning_text_scores_none_at_once() -> None:
    """Strings made the NaN check raise inside the guard's thread, and every step waited out the plug-in timeout."""
    logged: dict[str, float] = {}

    def texty(completions, **kwargs):
        return ["1.0" if "text" in c else 1 for c in completions]

    started = time.monotonic()
    reward = guarded("texty", texty, timeout_seconds=30)
    values = reward(["text", "number", "text"], log_metric=lambda n, v: logged.__setitem__(n, v))
    assert time.monotonic() - started < 5
    assert values == [None, 1.0, None]
    assert logged == {"rewards/texty/exceptions": 2.0, "rewards/texty/timeouts": 0.0}


def test_a_timed_out_reward_logs_nothing_into_a_later_batch() -> None:
    """The abandoned call finished during the next batch and logged into it: its exceptions count there (and none
    for its own batch), its `log_extra` column twice as long as the batch."""
    started = threading.Event()

    def slow_first(completions, log_extra=None, **kwargs):
        if not started.is_set():
            started.set()
            time.sleep(0.6)
            raise RuntimeError("late")  # then item by item, in the abandoned thread
        log_extra("length", [len(c) for c in completions])
        return [1.0] * len(completions)

    reward = guarded("plug", slow_first, timeout_seconds=0.4)
    metrics, extras = defaultdict(list), defaultdict(list)  # TRL's pending logs, flushed after each batch
    loggers = {"log_metric": lambda n, v: metrics[n].append(v), "log_extra": lambda c, vs: extras[c].extend(vs)}
    assert reward(["a", "bb"], **loggers) == [None, None] and dict(extras) == {}
    assert dict(metrics) == {"rewards/plug/exceptions": [0.0], "rewards/plug/timeouts": [2.0]}
    metrics.clear()
    values = reward(["a", "bb"], **loggers)  # waits for the first batch's call, which finishes meanwhile
    assert values == [1.0, 1.0] and dict(extras) == {"length": [1, 2]}
    assert dict(metrics) == {"rewards/plug/exceptions": [0.0], "rewards/plug/timeouts": [0.0]}


def test_a_reward_that_hangs_for_good_holds_one_thread_not_one_each_step() -> None:
    """Each batch started another call of the hung reward, in a thread Python cannot stop: one more spinning thread
    (sharing the GIL with training) every step."""
    release, calls = threading.Event(), []

    def hanging(completions, **kwargs):
        calls.append(len(completions))
        release.wait(30)
        return [1.0] * len(completions)

    reward = guarded("stuck", hanging, timeout_seconds=0.1)
    metrics = defaultdict(list)
    before = threading.active_count()
    try:
        for _ in range(4):
            assert reward(["a", "b"], log_metric=lambda n, v: metrics[n].append(v)) == [None, None]
        assert calls == [2] and threading.active_count() == before + 1
        assert metrics["rewards/stuck/timeouts"] == [2.0] * 4  # each batch's items, counted as timed out
        assert copy.copy(reward)._abandoned == []  # the thread it waits for is no part of a copy (nor a pickle)
    finally:
        release.set()
    assert reward(["a"]) == [1.0] and calls == [2, 1]  # once the call returns, the reward is called again


@pytest.mark.parametrize("raised", [SystemExit(3), asyncio.CancelledError()])
def test_a_reward_raising_what_is_not_an_exception_fails_at_once(raised: BaseException) -> None:
    """A plug-in that raised SystemExit or asyncio's CancelledError under a time limit ended its thread without an
    answer: every step waited out the whole limit (30 s by default) and counted a timeout, the error never said."""

    def exits(completions, **kwargs):
        raise raised

    metrics = defaultdict(list)
    started = time.monotonic()
    values = guarded("exits", exits, timeout_seconds=20)(["a", "b"], log_metric=lambda n, v: metrics[n].append(v))
    assert values == [None, None] and time.monotonic() - started < 10
    assert metrics["rewards/exits/exceptions"] == [2.0] and metrics["rewards/exits/timeouts"] == [0.0]


def test_a_batch_scored_item_by_item_logs_its_counts_once() -> None:
    """Each item logged its own count of 0 or 1 and TRL averaged them: 3 timeouts in a batch of 4 read 0.75."""
    metrics = defaultdict(list)

    def counting(completions, log_metric, **kwargs):
        if "boom" in completions:
            raise RuntimeError("one bad item")
        log_metric("rewards/counting/timeouts", float(completions.count("t")))
        log_metric("share_t", completions.count("t") / len(completions))  # a plug-in's own figure: averaged
        log_metric("rewards/counting/share_x", completions.count("x") / len(completions))  # under the prefix too
        return [1.0] * len(completions)

    values = guarded("counting", counting)(["t", "t", "x", "boom"], log_metric=lambda n, v: metrics[n].append(v))
    assert values == [1.0, 1.0, 1.0, None]
    assert dict(metrics) == {
        "rewards/counting/timeouts": [2.0],
        "share_t": [pytest.approx(2 / 3)],
        "rewards/counting/share_x": [pytest.approx(1 / 3)],
        "rewards/counting/exceptions": [1.0],
    }


def test_every_count_the_verified_rewards_log_is_summed_item_by_item() -> None:
    """The guard sums only the names it knows as counts: a count the verified rewards log must be one of them."""
    from r1kit.rewards.functions import _report_failures
    from r1kit.rewards.guard import ITEM_COUNTS
    from r1kit.rewards.verifier import Verdict

    logged = []
    _report_failures("accuracy", [Verdict(1.0, "correct")], {"log_metric": lambda name, value: logged.append(name)})
    assert logged and all(name.removeprefix("rewards/accuracy/") in ITEM_COUNTS for name in logged)


def test_a_reward_returning_the_wrong_count_is_isolated() -> None:
    assert guarded("short", lambda completions, **kw: [1.0])(["a", "b"]) == [1.0, 1.0]


# ---------------------------------------------------------------------------------------------- folders and paths


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path, monkeypatch) -> None:
    """Both took runs/<second>: the second took the first's over as a failed start and deleted its logs."""
    from r1kit.runs import RunDir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda pattern: "20261205-061500")
    first, second, evaluation = RunDir.new(), RunDir.new(), RunDir.new(prefix="eval-")
    assert [first.root.name, second.root.name, evaluation.root.name] == [
        "20261205-061500",
        "20261205-061500-2",
        "eval-20261205-061500",
    ]
    assert first.root.is_dir() and second.root.is_dir()


def test_a_runs_folder_that_is_a_dangling_link_is_said_not_looped_on(tmp_path, monkeypatch) -> None:
    """`runs` linked to an unmounted disk: mkdir raised FileExistsError for every numbered name, forever."""
    from r1kit.runs import RunDir, RunDirError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").symlink_to(tmp_path / "not-mounted" / "runs")
    with pytest.raises(RunDirError, match="runs is a link to nothing; choose a run folder with --out"):
        RunDir.new()


def test_files_are_written_as_utf8_whatever_the_locale_and_no_temporary_file_stays(tmp_path) -> None:
    """Under an ASCII locale the report's "·" failed to encode, and the temporary file stayed beside it."""
    target = tmp_path / "report.txt"
    code = f"from pathlib import Path; from r1kit.atomic import write_atomic; write_atomic(Path({str(target)!r}), '\\u00b7\\u2192 \\u00e9')"  # ASCII argv
    ascii_locale = {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "PATH": os.environ["PATH"]}
    done = subprocess.run([sys.executable, "-c", code], env=ascii_locale, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert target.read_bytes() == "·→ é".encode()

    from r1kit.atomic import write_atomic

    with pytest.raises(UnicodeEncodeError):
        write_atomic(tmp_path / "bad.txt", "a lone surrogate \ud800")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.txt"]
    # one left by a process killed between its write and its rename goes with the next write; a running one's stays
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed, running = tmp_path / f".report.txt.tmp-{ended.stdout.strip()}", tmp_path / f".report.txt.tmp-{os.getppid()}"
    killed.write_text("half"), running.write_text("being written")
    write_atomic(target, "again")
    assert sorted(p.name for p in tmp_path.iterdir()) == [running.name, "report.txt"]


def test_an_eval_folder_that_cannot_be_written_is_said_before_the_evaluation(tmp_path, capsys) -> None:
    """It evaluated, then failed to write: "unexpected error (a bug in r1kit …): NotADirectoryError"."""
    from r1kit.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["eval", "--profile", "test", "--out", str(blocker / "x")]) == 1
    err = capsys.readouterr().err
    assert f"run folder {blocker / 'x'} lies under {blocker}, which is a file" in err and "unexpected error" not in err
    assert "pass@1" not in err
    # a file or a link to nothing named as the folder itself was "not writable (File exists)"
    assert main(["eval", "--profile", "test", "--out", str(blocker)]) == 1
    assert f"run folder {blocker} is a file, not a folder; choose another with --out" in capsys.readouterr().err
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    assert main(["eval", "--profile", "test", "--out", str(tmp_path / "dangling")]) == 1
    assert f"run folder {tmp_path / 'dangling'} is a link to nothing" in capsys.readouterr().err


def test_a_home_folder_path_is_expanded_in_the_run_folder_and_model_name() -> None:
    """`--out=~/x` reached r1kit as written: --resume found no run there, and `--model=~/m` was taken for a hub id."""
    import os

    from r1kit.config.sources import resolve_config

    config = resolve_config(overrides=["--out", "~/runs/x", "--model", "~/models/m"], environ={}).config
    assert config.run.output_dir == os.path.expanduser("~/runs/x")
    assert config.model.name == os.path.expanduser("~/models/m")


def test_a_build_left_by_a_killed_process_is_removed_by_the_next(tmp_path) -> None:
    import os

    from r1kit.atomic import build_complete, is_complete

    dest = tmp_path / "model"
    dead = tmp_path / ".model.tmp-999999999"  # no such process
    dead.mkdir()
    (dead / "weights").write_text("half")
    mine = tmp_path / f".other.tmp-{os.getpid()}"  # another folder's build in progress: not this one's to remove
    mine.mkdir()
    build_complete(dest, lambda folder: (folder / "weights").write_text("v1"), {})
    assert not dead.exists() and mine.exists()
    build_complete(dest, lambda folder: (folder / "weights").write_text("v2"), {})  # replaces the first, whole
    assert is_complete(dest) and (dest / "weights").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == [mine.name, "model"]


def test_a_built_folder_is_readable_as_the_umask_allows_and_a_bracketed_names_leftover_goes(tmp_path) -> None:
    """safetensors writes weights for their owner alone (0600): a cache built in a container image by root, or a
    colleague's run, did not load. And a killed build of a folder named with `[` (a GGUF file's `[Q4]`) was never
    removed: its name was read as a pattern."""
    import os
    import stat

    from r1kit.atomic import build_complete

    def weights(folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"w")
        (folder / "model.safetensors").chmod(0o600)

    dest = tmp_path / "gguf-SmolLM2[Q4]-abc"
    killed = tmp_path / ".gguf-SmolLM2[Q4]-abc.tmp-deadbeef0001"
    killed.mkdir()
    mask = os.umask(0o027)
    try:
        build_complete(dest, weights, {})
    finally:
        os.umask(mask)
    assert stat.S_IMODE((dest / "model.safetensors").stat().st_mode) == 0o640  # 0o666 under the umask 027
    assert not killed.exists()


def _build_at_once(dest: str, tag: str, start, replace: bool) -> None:
    """One of several processes building `dest` at the same moment, slowly (a model conversion takes minutes)."""
    from r1kit.atomic import build_complete

    def build(folder: Path) -> None:
        with open(Path(dest).parent / "builds.log", "a") as log:
            log.write(tag + "\n")
        (folder / "part1").write_text(tag)
        time.sleep(0.2)
        (folder / "part2").write_text(tag)

    start.wait()
    build_complete(Path(dest), build, {"by": tag}, usable=None if replace else lambda folder: True)


@pytest.mark.parametrize("replace", [False, True])
def test_processes_building_one_folder_at_once_take_turns(tmp_path: Path, replace: bool) -> None:
    """Two runs converting the same cached model at once could fail in os.replace (a folder moved in between) or
    commit a folder holding parts of two builds; a cache's waiting process now uses the build it waited for."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    start = context.Event()
    dest = tmp_path / "cache" / "model"
    dest.parent.mkdir()
    builders = [context.Process(target=_build_at_once, args=(str(dest), str(i), start, replace)) for i in range(4)]
    for builder in builders:
        builder.start()
    start.set()
    for builder in builders:
        builder.join(60)
    assert [builder.exitcode for builder in builders] == [0, 0, 0, 0]
    parts = {(dest / name).read_text() for name in ("part1", "part2")}
    assert len(parts) == 1 and json.loads((dest / "r1kit_complete.json").read_text())["by"] in parts
    assert len((dest.parent / "builds.log").read_text().split()) == (4 if replace else 1)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["builds.log", "model"]  # nothing left aside


def test_a_dead_build_under_a_live_process_id_is_removed(tmp_path: Path) -> None:
    """A build folder was kept while a process of its id ran: in a container, pid 1 always runs, so a killed
    build's half a gigabyte stayed for good (and a live build in another container, under an id not running here,
    was deleted)."""
    from r1kit.atomic import build_complete

    dead = tmp_path / ".model.tmp-1"
    dead.mkdir()
    (dead / "weights").write_text("half")
    build_complete(tmp_path / "model", lambda folder: (folder / "weights").write_text("v1"), {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_evaluations_started_together_take_labels_of_their_own(tmp_path) -> None:
    """Both took eval_2 (the first free JSON name) and wrote one file: one result was lost."""
    from r1kit.runs import RunDir
    from r1kit.stages.evaluate import reserve_label

    run = RunDir(tmp_path)
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "eval.json").write_text("{}")  # an earlier evaluation
    assert [reserve_label(run), reserve_label(run)] == ["eval_2", "eval_3"]  # before either has written its JSON


def test_a_name_server_that_does_not_answer_does_not_hold_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub check's name lookup had no time limit: a silent name server held every hub load for its retries."""
    import socket

    from huggingface_hub import constants

    from r1kit import hub

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args: time.sleep(30))  # a name server that never answers
    monkeypatch.setattr(hub, "LOOKUP_SECONDS", 0.3)
    hub.unreachable.cache_clear()
    try:
        started = time.monotonic()
        assert "cannot be reached from this machine (no answer to its name in 0.3 s)" in hub.unreachable()
        assert time.monotonic() - started < 2
    finally:
        hub.unreachable.cache_clear()


def test_a_proxy_for_the_hub_endpoint_s_own_scheme_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """An http:// HF_ENDPOINT (a company mirror) behind HTTP_PROXY was taken for offline where its name does not
    resolve: only an https or all-protocols proxy counted. A host NO_PROXY names is reached directly: its name must
    resolve."""
    import socket

    from huggingface_hub import constants

    from r1kit import hub

    def unresolvable(*args):
        raise socket.gaierror("no such name")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://hf-mirror.corp.internal")
    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY",
                  "no_proxy"):  # fmt: skip
        monkeypatch.delenv(proxy, raising=False)

    def said() -> str | None:
        hub.unreachable.cache_clear()
        return hub.unreachable()

    try:
        assert "hf-mirror.corp.internal" in said()  # no proxy: its name must resolve
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
        assert said() is None
        monkeypatch.setenv("NO_PROXY", "corp.internal")
        assert "hf-mirror.corp.internal" in said()
        monkeypatch.delenv("NO_PROXY")
        monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")  # HTTP_PROXY does not carry https
        assert "huggingface.co" in said()
    finally:
        hub.unreachable.cache_clear()


def test_an_interrupted_run_in_a_new_folder_names_it_to_go_on(tmp_path, monkeypatch, capsys) -> None:
    """Ctrl-C said "run the same command again to continue", but without --out that starts a new runs/<time>."""
    from r1kit import cli
    from r1kit.runs import RunDir, keep_training_log, stop_training_log

    def interrupted(args, overrides):
        keep_training_log(RunDir(tmp_path))  # as a command does once its run folder is open
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_command", interrupted)
    try:
        assert cli.main(["sft", "--profile", "test"]) == 130  # before it trained: no config saved to --resume
        said = capsys.readouterr().err
        assert said.endswith(f"continue with the same command and --out {tmp_path}\n"), said
        (tmp_path / "config.yaml").write_text("run: {}\n")  # saved once the run trains
        assert cli.main(["sft", "--profile", "test"]) == 130
        assert f"with the same command and --out {tmp_path} --resume" in capsys.readouterr().err
        assert cli.main(["sft", "--profile", "test", "--out", str(tmp_path)]) == 130
        assert "run the same command again to continue from the last checkpoint" in capsys.readouterr().err
    finally:
        stop_training_log()


def test_a_reward_returning_a_mapping_is_refused_not_scored_by_its_keys() -> None:
    """`list({0: 0.9, 1: 0.2})` is [0, 1]: the completions were scored by their indices, and no exception counted."""
    metrics: dict[str, list[float]] = {}
    reward = guarded("by_index", lambda completions, **kw: {i: 0.9 for i in range(len(completions))})
    log = {"log_metric": lambda name, value: metrics.setdefault(name, []).append(value)}
    assert reward(["a", "b"], **log) == [None, None]
    assert metrics["rewards/by_index/exceptions"] == [2.0]
