"""The run folder: where a run leaves everything a person or a resume needs.

RUN/
  config.yaml           the resolved config (repeat the run with --config RUN/config.yaml)
  metrics.jsonl         one line per logging step of every training stage
  completions.jsonl     best and worst completions with their reward breakdown
  alerts.jsonl          trend alerts raised during training
  eval/<label>.json     evaluation results (base, sft, final, …)
  <stage>/checkpoints/  resumable checkpoints, each complete or absent
  <stage>/model/        the stage's final model: a plain HF folder (safetensors, tokenizer, chat template)
  summary.json          the before/after table and where the final model is
  report.html           `r1kit report RUN`
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from r1kit.atomic import jsonable, write_atomic
from r1kit.config.schema import R1kitConfig
from r1kit.config.sources import flatten, to_yaml

logger = logging.getLogger("r1kit")

JSONL_LOGS = ("metrics.jsonl", "completions.jsonl", "alerts.jsonl")


class RunDirError(RuntimeError):
    """The run folder cannot be used (unwritable, disk full); raised before any training starts."""


class RunDir:
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()

    @classmethod
    def for_config(cls, config: R1kitConfig) -> RunDir:
        return cls(config.run.output_dir or Path("runs") / time.strftime("%Y%m%d-%H%M%S"))

    # ------------------------------------------------------------------------------------------------- paths

    def path(self, name: str) -> Path:
        return self.root / name

    def eval_path(self, label: str) -> Path:
        return self.root / "eval" / f"{label}.json"

    def checkpoints(self, stage: str) -> Path:
        return self.root / stage / "checkpoints"

    def model_dir(self, stage: str) -> Path:
        return self.root / stage / "model"

    # --------------------------------------------------------------------------------------------- preparing

    def create(self) -> None:
        """Create the folder and prove it writable: checked first, before any model is built or loaded."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test-{os.getpid()}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as error:
            raise RunDirError(
                f"run folder {self.root} is not writable ({error.strerror}); choose another with --out"
            ) from None

    def prepare(self, config: R1kitConfig, needed_bytes: int) -> None:
        """Prove the (created) folder roomy enough for the run, and save the resolved config."""
        free = shutil.disk_usage(self.root).free
        if free < needed_bytes:
            raise RunDirError(
                f"run folder {self.root}: {free / 1e9:.2f} GB free, but this run needs about {needed_bytes / 1e9:.2f} GB "
                "for checkpoints and models; free some space or choose another folder with --out"
            )
        write_atomic(self.path("config.yaml"), to_yaml(config))

    # ---------------------------------------------------------------------------------------------- logs

    def append(self, log: str, record: dict[str, Any]) -> None:
        with self.path(log).open("a") as stream:
            stream.write(json.dumps(record, default=jsonable) + "\n")

    def read(self, log: str) -> list[dict[str, Any]]:
        path = self.path(log)
        if not path.exists():
            return []
        records = []
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
        return records

    def truncate_logs(self, stage: str, after_step: int) -> None:
        """Drop a stage's log lines past `after_step`: a resume redoes those steps, so they must not appear twice."""
        for log in JSONL_LOGS:
            if self.path(log).exists():
                keep = [r for r in self.read(log) if r.get("stage") != stage or r.get("step", 0) <= after_step]
                write_atomic(self.path(log), "".join(json.dumps(r) + "\n" for r in keep))


def open_run(config: R1kitConfig) -> RunDir:
    """The run folder, created and writable: a new one, or an existing run to continue (same config, or --resume)."""
    run = RunDir.for_config(config)
    saved = run.path("config.yaml")
    if saved.exists():
        if not config.run.resume:
            before, now = flatten(yaml.safe_load(saved.read_text())), flatten(config.model_dump())
            changed = [key for key in now if key != "run.resume" and before.get(key) != now[key]]
            if changed:
                key = changed[0]
                raise RunDirError(
                    f"{run.root} holds a run with another config ({key}: {before.get(key)!r} there, {now[key]!r} now); "
                    "continue it with --resume, or choose another folder with --out"
                )
        logger.warning("continuing the run in %s", run.root)
    elif config.run.resume:
        raise RunDirError(f"--resume: no run to resume in {run.root} (it has no config.yaml)")
    run.create()
    return run


def disk_needed(model_reference: str, config: R1kitConfig) -> int:
    """Rough bytes a run writes: a model folder per stage, and checkpoints (optimizer state for a full fine-tune)."""
    folder = Path(model_reference)
    model_bytes = sum(f.stat().st_size for f in folder.glob("*.safetensors")) if folder.is_dir() else 0
    stages = 1 + int(config.sft.enabled)
    checkpoint_bytes = 0 if config.model.lora.enabled else 3 * model_bytes * config.training.checkpoint.save_total_limit
    return model_bytes * stages + checkpoint_bytes + 50_000_000


def run_of(model_path: str | Path) -> RunDir | None:
    """The run a path belongs to: the run folder itself, or a stage model inside it (RUN/<stage>/model)."""
    path = Path(model_path).expanduser()
    for candidate in (path, path.parent.parent):
        if (candidate / "config.yaml").exists() and (candidate / "eval").is_dir():
            return RunDir(candidate)
    return None


def final_model(run: RunDir) -> Path | None:
    """The final model of a finished run (from summary.json), or the newest complete stage model."""
    summary = run.path("summary.json")
    if summary.exists():
        return run.root / json.loads(summary.read_text())["final_model"]
    stages = sorted(run.root.glob("*/model/r1kit_complete.json"), key=lambda marker: marker.stat().st_mtime)
    return stages[-1].parent if stages else None
