"""Trainer callbacks shared by every training stage (transformers `TrainerCallback`s, so any TRL trainer takes them)."""

from __future__ import annotations

import json
import logging
import math
import resource
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from r1kit import distributed
from r1kit.atomic import commit_folder
from r1kit.config.schema import CheckpointConfig, MonitoringConfig, ProfilerConfig
from r1kit.hardware import cpu_quota
from r1kit.monitoring.alerts import TrendAlerts
from r1kit.monitoring.console import step_block
from r1kit.monitoring.recorder import RolloutRecorder
from r1kit.runs import RunDir, checkpoint_step, complete_checkpoints

logger = logging.getLogger("r1kit")


@dataclass
class SideWork:
    """Wall and CPU seconds a stage spends inside its training loop on work that is not training (held-out
    evaluation during training): the speed figures (s/step, samples and tokens per second, MFU) leave them out."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0

    @contextmanager
    def timed(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - wall
            self.cpu_seconds += time.process_time() - cpu


def external_figures(record: dict[str, Any]) -> dict[str, float]:
    """The figures of a metrics record that TensorBoard and W&B take: numbers (a figure not measured is None), not
    the record's own keys.

    >>> external_figures({"stage": "grpo", "step": 3, "kind": "step", "time": 1.0, "loss": 0.5, "perf/mfu": None})
    {'loss': 0.5}
    """
    return {
        key: value
        for key, value in record.items()
        if key not in ("stage", "step", "kind", "time")
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    }


def first_in_line(trainer, monitor: TrainingMonitor) -> None:
    """Put `monitor` before the trainer's other callbacks: transformers adds the `report_to` integrations before the
    callbacks a trainer is given, so TensorBoard and W&B read each log before TrainingMonitor added r1kit's figures
    (speed, MFU, format rate, zero-advantage share, reward spreads) to it, and got none of them."""
    handler = trainer.callback_handler.callbacks
    handler.remove(monitor)
    handler.insert(0, monitor)


class TrainingMonitor(TrainerCallback):
    """Writes metrics.jsonl, completions.jsonl and alerts.jsonl at each logging step, and shows them. `resumed`: the
    checkpoint a resumed stage goes on from, which holds the tokens per step of the generation it is in."""

    FILE = "tokens_per_step.json"

    def __init__(
        self,
        run: RunDir,
        stage: str,
        config: MonitoringConfig,
        total_params: int,
        peak_flops: float | None,
        recorder: RolloutRecorder | None = None,
        nonfinite: NonFiniteGuard | None = None,
        side_work: SideWork | None = None,
        resumed: Path | None = None,
    ):
        self.run, self.stage, self.config = run, stage, config
        self.side_work = side_work or SideWork()
        self.total_params, self.peak_flops = total_params, peak_flops
        self.recorder, self.nonfinite = recorder, nonfinite
        self.alerts = TrendAlerts(config.alerts)
        self._window: list = []  # rollouts since the last best/worst examples
        self._last_examples_step = 0
        self._cpus = cpu_quota()  # read once: it comes from the affinity mask and cgroup files
        # (wall time, CPU time of this process, step, tokens seen) at the last log
        self._clock: tuple[float, float, int, int] | None = None
        self._flops_per_token = 6 * total_params  # every weight trained; on_train_begin counts the trained ones
        self._logged_tokens = 0  # TRL's cumulative `num_tokens`, as last logged
        # GRPO counts a generation's tokens at the step that generates them, and the optimizer steps after it train on
        # them (each on its share): they are spread over those steps, or a log at a generating step read them all as
        # its own (MFU × steps) and the others none
        self._steps_per_generation: float | None = None  # optimizer steps; None: each step counts its own tokens
        self._generated = 0  # GRPO's count of the tokens generated so far, as last read
        self._per_step = 0.0  # the latest generation's tokens, per step that trains on them
        # a stage resumed inside a generation's steps trains on rollouts it does not generate again: their tokens per
        # step are the checkpoint's (from 0, its steps logged no tokens/s nor MFU)
        if resumed is not None and (resumed / self.FILE).exists():
            self._per_step = json.loads((resumed / self.FILE).read_text(encoding="utf-8"))["per_step"]
        self._trained = 0.0  # the tokens spread over the steps so far

    def on_train_begin(self, args, state, control, **kwargs):
        # GRPO's and RLOO's configs have it, in micro-batches (its default, gradient_accumulation_steps: one optimizer
        # step); SFT, DPO and the others count each step's own batch
        micro_batches = getattr(args, "steps_per_generation", None)
        self._steps_per_generation = (
            None if micro_batches is None else max(micro_batches / args.gradient_accumulation_steps, 1.0)
        )
        self._generated = self._trained = state.num_input_tokens_seen  # a resumed stage's, from its checkpoint
        self._clock = self._reading(state)
        self._last_examples_step = state.global_step
        if torch.cuda.is_available():  # the stage's own peak: earlier stages and evaluations ran in this process
            torch.cuda.reset_peak_memory_stats()
        if state.global_step and state.is_world_process_zero:
            replay_alerts(self.alerts, self.run, self.stage)
        model = kwargs.get("model")
        trainable = (
            self.total_params if model is None else sum(p.numel() for p in model.parameters() if p.requires_grad)
        )
        # FLOPs per token: 2·N forward, 2·N for the backward's input gradients, 2 per trained weight for its gradient.
        # 6·N when every weight trains; ~4·N under LoRA, whose frozen weights get no gradient (6·N read 100%+ there).
        self._flops_per_token = 4 * self.total_params + 2 * min(trainable, self.total_params)

    def _reading(self, state) -> tuple[float, float, int, int]:
        # clocks that stop during side work: their differences are training time only
        wall = time.perf_counter() - self.side_work.seconds
        cpu = time.process_time() - self.side_work.cpu_seconds
        if self._steps_per_generation is not None:  # GRPO: its generations' tokens spread over the steps
            return wall, cpu, state.global_step, self._trained
        # the trainer's count where it keeps one (SFT); TRL's own `num_tokens` log (DPO, the reward model)
        return wall, cpu, state.global_step, state.num_input_tokens_seen or self._logged_tokens

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:  # the steps after the last multiple of logging_steps: logged too
            control.should_log = True
        if self._steps_per_generation is None:
            return
        if state.num_input_tokens_seen > self._generated:  # this step generated: the steps up to the next train on it
            self._per_step = (state.num_input_tokens_seen - self._generated) / self._steps_per_generation
            self._generated = state.num_input_tokens_seen
        self._trained += self._per_step

    def on_save(self, args, state, control, **kwargs):
        # before AtomicCheckpoints commits the staging folder, as TimeLimit's file
        if state.is_world_process_zero and self._steps_per_generation is not None:
            staged = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            (staged / self.FILE).write_text(json.dumps({"per_step": self._per_step}))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None:
            return
        self._logged_tokens = int(logs.get("num_tokens", self._logged_tokens))
        step_log = "train_loss" not in logs  # else the trainer's end-of-training summary, not a step
        # Every process logs at the same steps and scored its own share of the rollouts: the main process writes
        # statistics and examples of all of them.
        rollouts = distributed.gather(self.recorder.take()) if self.recorder else []
        if not state.is_world_process_zero:
            return
        if not step_log:
            self.run.append(
                "metrics.jsonl", {"stage": self.stage, "step": state.global_step, "kind": "summary", **logs}
            )
            # the last window's examples: the steps after the last step log (or a time limit's early stop) had none
            self._window += rollouts
            self._write_examples(state)
            return
        record: dict[str, Any] = {"stage": self.stage, "step": state.global_step, "kind": "step", "time": time.time()}
        record.update({key: value for key, value in logs.items() if key != "step"})
        if self.recorder:
            record.update(self.recorder.statistics(rollouts))
        record.update(self._performance(args, state))
        if self.nonfinite is not None:
            record["train/skipped_nonfinite_steps"] = self.nonfinite.skipped
            if self.nonfinite.overflows is not None:
                record["train/loss_scale_overflows"] = self.nonfinite.overflows
        self.run.append("metrics.jsonl", record)
        # r1kit's own figures into the logs TensorBoard's and W&B's callbacks read after this one (`first_in_line`);
        # where TRL logged a figure of the same name (rewards/<name>/mean), r1kit's: the one metrics.jsonl keeps
        logs.update(external_figures(record))
        block = step_block(record, state.max_steps)
        self.run.say(block)
        if self.config.progress:
            _write(block)

        for raised in self.alerts.check(record):
            report_alert(self.run, self.stage, raised, self.config.progress)

        self._window += rollouts
        # windows end at multiples of examples_every, so a resumed stage shows its examples at the same steps
        every = self.config.examples_every
        if state.global_step // every > self._last_examples_step // every or state.global_step >= state.max_steps:
            self._write_examples(state)

    def _write_examples(self, state) -> None:
        """The best and worst completions of the rollouts since the last examples, logged at this step."""
        if self.recorder and self._window:
            for example in self.recorder.extremes(self._window):
                # its own step (a window holds examples_every steps of rollouts), logged at the window's end
                self.run.append("completions.jsonl", {"stage": self.stage, **example, "logged_at": state.global_step})
                block = example_block(example)
                self.run.say(block)
                if self.config.progress:
                    _write(block)
        self._window, self._last_examples_step = [], state.global_step

    def _performance(self, args, state) -> dict[str, float | None]:
        now = self._reading(state)
        last = self._clock or now
        self._clock = now
        seconds, cpu_seconds, steps, tokens = (current - before for current, before in zip(now, last, strict=True))
        if steps <= 0 or seconds <= 0:
            return {}
        samples = steps * args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
        counted = tokens > 0  # a trainer that counts none (it read 0 tokens/s)
        perf: dict[str, float | None] = {
            "perf/step_seconds": seconds / steps,
            "perf/samples_per_second": samples / seconds,
            "perf/tokens_per_second": tokens / seconds if counted else None,
            # MFU estimate: the FLOPs of a forward and backward per token processed, against the measured matmul peak
            # `tokens` is every process's (the trainers gather it), `peak_flops` one device's
            "perf/mfu": (
                self._flops_per_token * tokens / seconds / (self.peak_flops * args.world_size)
                if self.peak_flops and counted
                else None
            ),
            **system_usage(cpu_seconds, seconds, self._cpus),
        }
        if torch.cuda.is_available():
            perf["perf/gpu_peak_memory_gb"] = torch.cuda.max_memory_allocated() / 1e9
            # Reserved by torch's caching allocator: what other processes cannot have, above what tensors hold.
            perf["perf/gpu_reserved_memory_gb"] = torch.cuda.memory_reserved() / 1e9
        return perf


def replay_alerts(alerts: TrendAlerts, run: RunDir, stage: str) -> None:
    """A resumed stage's alerts rebuilt from the steps it logged up to its checkpoint (the log past it was cut): the
    window and the alerts standing, as the interrupted run left them; each one standing was raised already and is not
    raised again."""
    for record in run.read("metrics.jsonl"):
        if record.get("stage") == stage and record.get("kind") == "step":
            alerts.check(record)


def report_alert(run: RunDir, stage: str, raised: dict[str, Any], progress: bool) -> None:
    """Into RUN/alerts.jsonl and onto the console: alerts are warnings, shown even without the progress display;
    notices are part of that display."""
    run.append("alerts.jsonl", {"stage": stage, **raised})
    where = f"[{stage} step {raised['step']}] {raised['kind']}: {raised['message']}"
    if raised["level"] == "alert":
        logger.warning("ALERT %s", where)  # into training.log too, as every log line
        return
    notice = f"  notice  {where}"
    run.say(notice)
    if progress:
        _write(notice)


def system_usage(cpu_seconds: float, seconds: float, cpus: int) -> dict[str, float]:
    """CPU and memory use over the last `seconds` of wall time.

    perf/cpu_percent is this process's CPU time (all its threads) as a share of the CPUs it may use (the affinity
    mask capped by the cgroup quota, as torch's thread pool is sized): 100 means it kept every one of them busy.
    Other processes on the machine do not count. perf/ram_percent is the system's used memory, as `free` shows it.
    """
    return {
        "perf/cpu_percent": 100 * cpu_seconds / (seconds * cpus),
        "perf/ram_percent": psutil.virtual_memory().percent,
        "perf/rss_gb": psutil.Process().memory_info().rss / 1e9,
        "perf/peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,  # Linux reports KiB
    }


def _write(text: str) -> None:
    """Print above the progress bar instead of through it."""
    from tqdm.auto import tqdm

    tqdm.write(text)


def example_block(example: dict[str, Any]) -> str:
    breakdown = "  ".join(f"{k} {v:.2f}" if v is not None else f"{k} –" for k, v in example["rewards"].items())
    completion = "".join(
        c if c.isprintable() else f"\\x{ord(c):02x}" for c in example["completion"].strip().replace("\n", "⏎ ")
    )
    if len(completion) > 300:
        completion = completion[:300] + " …"
    return f"  {example['kind']:5} total {example['total']:.2f} ({breakdown})\n        {completion}"


class NonFiniteGuard(TrainerCallback):
    """Skips an optimizer step whose gradients hold NaN or inf (a NaN loss gives NaN gradients).

    It runs after gradient clipping and before `optimizer.step()`, and drops every gradient: torch optimizers leave
    parameters without a gradient untouched (moments included), so the bad step is never applied.
    """

    FILE = "nonfinite_steps.json"

    def __init__(self) -> None:
        self.skipped = 0
        # fp16's loss scaler (a GPU without bf16: a T4, a V100) skips a step whose scaled gradients overflowed and
        # lowers its scale, by design early in a run and whenever it tries a larger one: its steps, not failures
        self.overflows: int | None = None  # None: no loss scaler

    @classmethod
    def resumed_from(cls, checkpoint: Path | None) -> NonFiniteGuard:
        """The guard with the counts of the run that wrote `checkpoint` (none, or one of an older r1kit: from 0). The
        checkpoint holds them: a step skipped after the last log before it was in its weights and in no log a resume
        keeps, and the count went back down."""
        guard = cls()
        if checkpoint is not None and (checkpoint / cls.FILE).exists():
            counts = json.loads((checkpoint / cls.FILE).read_text(encoding="utf-8"))
            guard.skipped, guard.overflows = counts["skipped"], counts["overflows"]
        return guard

    def on_save(self, args, state, control, **kwargs):
        # before AtomicCheckpoints commits the staging folder, as TimeLimit's file
        if state.is_world_process_zero:
            staged = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            (staged / self.FILE).write_text(json.dumps({"skipped": self.skipped, "overflows": self.overflows}))

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
        scaler = optimizer.scaler  # accelerate's optimizer (the trainer's): its GradScaler under fp16, else None
        scaling = scaler is not None and scaler.is_enabled()
        if scaling and self.overflows is None:
            self.overflows = 0
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if not grads or math.isfinite(torch.nn.utils.get_total_norm(grads).item()):
            return
        if scaling:  # the scaler skips this step itself (found_inf at unscale_)
            self.overflows += 1
            return
        for parameter in model.parameters():
            parameter.grad = None
        self.skipped += 1
        logger.warning(
            "step %d: non-finite loss or gradient, update skipped (%d so far)", state.global_step + 1, self.skipped
        )


class AtomicCheckpoints(TrainerCallback):
    """Makes each checkpoint complete or absent.

    The trainer writes `checkpoint-N` into a staging folder; once it has finished (on_save), the folder gets a
    completion marker and is renamed into the checkpoints folder. A kill mid-write leaves only staging debris,
    which a resume ignores and the next start removes. It keeps the newest `save_total_limit` complete checkpoints,
    and also every one whose step is a multiple of `keep_every` (milestones to compare or go back to), saved at those
    steps whatever save_steps is.
    """

    def __init__(
        self,
        staging: Path,
        checkpoints: Path,
        config: CheckpointConfig,
        also_write: Callable[[Any, Path], None] | None = None,
    ):
        self.staging, self.checkpoints = staging, checkpoints
        self.keep, self.keep_every = config.save_total_limit, config.keep_every
        self.also_write = also_write  # (model, staged checkpoint): what else a checkpoint holds (a LoRA base record)

    def on_step_end(self, args, state, control, **kwargs):
        # a milestone save_steps does not fall on (keep_every 30, save_steps 25) was never written, so never kept
        if self.keep_every is not None and state.global_step % self.keep_every == 0:
            control.should_save = True

    def on_save(self, args, state, control, **kwargs):
        # Under several processes each one writes its own part (its RNG state) into the staging checkpoint, with no
        # barrier in the trainer before this callback: the folder is committed once every process is done with it.
        distributed.wait()
        if not state.is_world_process_zero:
            return
        name = f"checkpoint-{state.global_step}"
        if self.also_write is not None:
            self.also_write(kwargs.get("model"), self.staging / name)
        commit_folder(self.staging / name, self.checkpoints / name, {"step": state.global_step})
        for old in complete_checkpoints(self.checkpoints)[: -self.keep]:
            if not self._milestone(old):
                shutil.rmtree(old)

    def _milestone(self, checkpoint: Path) -> bool:
        return self.keep_every is not None and checkpoint_step(checkpoint) % self.keep_every == 0


class TimeLimit(TrainerCallback):
    """Stops training once `minutes` of steps have passed, with a checkpoint and the model saved as at that step.

    The clock runs from the first step (model loading and set-up don't count) and is written into each checkpoint, so
    a resumed run goes on with what it had left. Under several processes the main process's clock decides for all of
    them: a process that stopped alone would leave the others waiting in a collective.
    """

    FILE = "time_spent.json"

    def __init__(self, minutes: float, spent_seconds: float = 0.0):
        self.limit, self.spent_before = minutes * 60, spent_seconds
        self._started: float | None = None

    @classmethod
    def resumed_from(cls, minutes: float, checkpoint: Path | None) -> TimeLimit:
        """The limit with the time already spent by the run that wrote `checkpoint` (none: a fresh start)."""
        spent = 0.0
        if checkpoint is not None and (checkpoint / cls.FILE).exists():
            spent = json.loads((checkpoint / cls.FILE).read_text(encoding="utf-8"))["seconds"]
        return cls(minutes, spent)

    def spent(self) -> float:
        return self.spent_before + (time.perf_counter() - self._started if self._started is not None else 0.0)

    def reached(self) -> bool:
        return self.spent() >= self.limit

    def on_step_begin(self, args, state, control, **kwargs):
        if self._started is None:
            self._started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if distributed.from_main(self.reached()) and not control.should_training_stop:
            # the steps since the last log are logged: their figures reach metrics.jsonl, the alerts and the report
            control.should_training_stop = control.should_save = control.should_log = True
            logger.warning(
                "time limit of %g min reached at step %d of %d: training stops here",
                self.limit / 60,
                state.global_step,
                state.max_steps,
            )

    def on_save(self, args, state, control, **kwargs):
        # Runs before AtomicCheckpoints commits the staging folder, so the file is part of the complete checkpoint.
        if state.is_world_process_zero:
            staged = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            (staged / self.FILE).write_text(json.dumps({"seconds": self.spent()}))


class QuietProgress(ProgressCallback):
    """The trainer's progress bar (steps, ETA) without its raw dict print at each log: the monitor prints instead."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass


class TorchProfiler(TrainerCallback):
    """Records a torch.profiler trace of a few steps: profile_trace.json (chrome://tracing) and profile_ops.txt; under
    several processes each writes its own (profile_trace.process1.json, …), where they wrote over one another."""

    def __init__(self, config: ProfilerConfig, out_dir: Path):
        self.config, self.out_dir = config, out_dir
        self.profiler: torch.profiler.profile | None = None
        self.suffix = ""

    def start(self, process_index: int, processes: int) -> None:
        """Before the first step (PPO, r1kit's own loop, calls start, step and stop itself)."""
        self.suffix = f".process{process_index}" if processes > 1 else ""
        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        schedule = torch.profiler.schedule(
            wait=self.config.wait, warmup=self.config.warmup, active=self.config.active, repeat=1
        )
        self.profiler = torch.profiler.profile(activities=activities, schedule=schedule, on_trace_ready=self._save)
        self.profiler.start()

    def step(self) -> None:
        if self.profiler is not None:
            self.profiler.step()

    def stop(self) -> None:
        if self.profiler is not None:
            self.profiler.stop()
            self.profiler = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start(args.process_index, args.world_size)

    def on_step_end(self, args, state, control, **kwargs):
        self.step()

    def on_train_end(self, args, state, control, **kwargs):
        self.stop()

    def _save(self, profiler: torch.profiler.profile) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        profiler.export_chrome_trace(str(self.out_dir / f"profile_trace{self.suffix}.json"))
        table = profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=40)
        (self.out_dir / f"profile_ops{self.suffix}.txt").write_text(table)
        logger.warning("profile written to %s", self.out_dir)
