"""The run folder: where a run leaves everything a person or a resume needs.

RUN/
  config.yaml           the resolved config (repeat the run with --config RUN/config.yaml), after a first line
                        naming the folder the command ran in (its relative paths are from there)
  metrics.jsonl         one line per logging step of every training stage
  completions.jsonl     best and worst completions with their reward breakdown
  alerts.jsonl          trend alerts raised during training
  training.log          what r1kit says on the console, step blocks included, timed (`tail -f` it)
  eval/<label>.json     evaluation results (base, sft, final, …)
  eval/<label>.problems.jsonl  each held-out problem: question, gold, completion, score, format, group
  <stage>/checkpoints/  resumable checkpoints, each complete or absent
  <stage>/model/        the stage's final model: a plain HF folder (safetensors, tokenizer, chat template)
  <stage>/adapter/      its LoRA adapter alone, with model.save_adapter
  summary.json          the before/after table and where the final model is
  report.html           `r1kit report RUN`
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from r1kit.atomic import (
    COMPLETE_MARKER,
    folder_problem,
    hold_folder,
    is_complete,
    jsonable,
    let_go_of,
    remove_leftovers,
    write_atomic,
)
from r1kit.config.aliases import for_stage
from r1kit.config.schema import R1kitConfig
from r1kit.config.sources import LEAF_PATHS, flatten, to_yaml
from r1kit.stages.registry import MAKES, READS, how_it_runs, stage_reads

logger = logging.getLogger("r1kit")

JSONL_LOGS = ("metrics.jsonl", "completions.jsonl", "alerts.jsonl")
TRAINING_LOG = "training.log"
_STARTED_IN = "# started in "  # config.yaml's first line: the folder its relative paths are from
_LOG_TIME = "%Y-%m-%d %H:%M:%S"  # each line of training.log, r1kit's log lines and `RunDir.say`'s alike


class _TrainingLog(logging.FileHandler):
    """r1kit's log lines into RUN/training.log as well as onto the console."""


def keep_training_log(run: RunDir) -> None:
    """From now on r1kit's log lines also go to RUN/training.log (the run's until the next one in this process)."""
    stop_training_log()
    handler = _TrainingLog(run.root / TRAINING_LOG, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", _LOG_TIME))
    logging.getLogger("r1kit").addHandler(handler)


def training_log_run() -> Path | None:
    """The run folder whose training.log this process keeps, if any (the run an interrupted command was in)."""
    handlers = [h for h in logging.getLogger("r1kit").handlers if isinstance(h, _TrainingLog)]
    return Path(handlers[-1].baseFilename).parent if handlers else None


class RunDirError(RuntimeError):
    """The run folder cannot be used (unwritable, disk full); raised before any training starts."""


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
    return records


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object r1kit wrote into a run folder (summary.json, an evaluation); a RunDirError naming the file where
    it is not one (cut short by a full disk, edited by hand), instead of the JSON library's words.

    >>> read_json(Path("/nonexistent/summary.json"))
    Traceback (most recent call last):
    r1kit.runs.RunDirError: /nonexistent/summary.json cannot be read: it is not there
    """
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{path} cannot be read: it is not there") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunDirError(f"{path} is damaged ({error}): not the JSON r1kit writes; move it aside") from None
    if not isinstance(value, dict):
        raise RunDirError(f"{path} is damaged (a JSON {type(value).__name__}, not an object): move it aside")
    return value


def eval_label(number: int) -> str:
    """The label of the `number`th `r1kit eval` written into a run folder: eval, eval_2, eval_3, …"""
    return "eval" if number == 1 else f"eval_{number}"


def eval_label_number(label: str) -> int | None:
    """Which `r1kit eval` of its run folder `label` is, or None for a run's own evaluation (base, a stage).

    >>> eval_label_number("eval"), eval_label_number("eval_10"), eval_label_number("sft"), eval_label_number("eval_x")
    (1, 10, None, None)
    """
    name, _, number = label.rpartition("_")
    if label == "eval":
        return 1
    return int(number) if name == "eval" and number.isdigit() else None


class RunDir:
    def __init__(self, root: str | Path, continued: bool = False):
        self.root = Path(root).expanduser()
        self.continued = continued  # open_run found a run here to go on with

    @classmethod
    def new(cls, prefix: str = "") -> RunDir:
        """A new folder runs/<prefix>YYYYmmdd-HHMMSS, created now: a second run started in the same second gets `-2`
        (two runs took one folder, and the second deleted the first's logs as a failed start's)."""
        stamp = prefix + time.strftime("%Y%m%d-%H%M%S")
        for number in itertools.count(1):
            root = Path("runs") / (stamp if number == 1 else f"{stamp}-{number}")
            try:
                root.mkdir(parents=True)
                return cls(root)
            except FileExistsError:
                if not root.exists() and not root.is_symlink():  # `runs` is a dangling link: no number makes room
                    raise RunDirError(
                        f"cannot create {root}: {root.parent} is a link to nothing; choose a run folder with --out"
                    ) from None
                continue
            except OSError as error:
                raise RunDirError(f"cannot create {root} ({error.strerror}); choose a run folder with --out") from None
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------------------------------------- paths

    def path(self, name: str) -> Path:
        return self.root / name

    def eval_path(self, label: str) -> Path:
        return self.root / "eval" / f"{label}.json"

    def problems_path(self, label: str) -> Path:
        """Every evaluated problem of evaluation `label`, one JSON line each, in the order of eval.json's scores."""
        return self.root / "eval" / f"{label}.problems.jsonl"

    def checkpoints(self, stage: str) -> Path:
        return self.root / stage / "checkpoints"

    def model_dir(self, stage: str) -> Path:
        return self.root / stage / "model"

    def adapter_dir(self, stage: str) -> Path:
        return self.root / stage / "adapter"

    # --------------------------------------------------------------------------------------------- preparing

    def say(self, text: str) -> None:
        """`text` (a step block, an example) into RUN/training.log, beside r1kit's log lines."""
        with (self.root / TRAINING_LOG).open("a", encoding="utf-8") as log:
            log.write(f"{time.strftime(_LOG_TIME)} {text}\n")

    def create(self) -> None:
        """Create the folder and prove it writable: checked first, before any model is built or loaded."""
        if (problem := folder_problem(self.root.absolute())) is not None:  # a file or a dangling link: "File exists"
            raise RunDirError(f"run folder {self.root} {problem}; choose another with --out")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test-{os.getpid()}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as error:
            raise RunDirError(
                f"run folder {self.root} is not writable ({error.strerror}); choose another with --out"
            ) from None

    def prepare(self, needed_bytes: int) -> None:
        """Prove the (created) folder roomy enough for the run."""
        free = shutil.disk_usage(self.root).free
        if free < needed_bytes:
            raise RunDirError(
                f"run folder {self.root}: {free / 1e9:.2f} GB free, but this run needs about {needed_bytes / 1e9:.2f} GB "
                "for checkpoints and models; free some space or choose another folder with --out"
            )

    def save_config(self, config: R1kitConfig) -> None:
        """Save the resolved config: what --resume continues and what the next command is compared with. Saved only
        once the command is going to train, so a refused command leaves the folder's config as it was. Its first
        line, a comment, names the folder the command ran in: its relative paths are from there. `run.resume` is saved
        false: it is how that command went on, not a setting (`--config RUN/config.yaml --out NEW` resumed nothing)."""
        header = f"{_STARTED_IN}{Path.cwd()} (relative paths below are from there)\n"
        unresumed = config.model_copy(update={"run": config.run.model_copy(update={"resume": False})})
        write_atomic(self.path("config.yaml"), header + to_yaml(unresumed))

    def started_in(self) -> Path | None:
        """The folder the run's command ran in (its config.yaml's first line), or None (an earlier r1kit's run, or no
        config.yaml that can be read)."""
        try:
            with self.path("config.yaml").open(encoding="utf-8") as saved:
                first = saved.readline().rstrip("\n")
        except (OSError, UnicodeDecodeError):
            return None
        found = re.fullmatch(rf"{re.escape(_STARTED_IN)}(.+) \(relative paths below are from there\)", first)
        return Path(found.group(1)) if found else None

    def finished_work(self) -> list[str]:
        """Finished work a restart would lose (paths inside the run), the newest last within each stage: complete
        stages (a data stage leaves no model), stage models and complete checkpoints."""
        markers = [*self.root.glob(f"*/model/{COMPLETE_MARKER}"), *self.root.glob(f"*/checkpoints/*/{COMPLETE_MARKER}")]
        found = {str(marker.parent.relative_to(self.root)) for marker in markers}
        found |= {
            manifest.parent.name
            for manifest in self.root.glob("*/manifest.json")
            if read_manifest(manifest.parent).get("status") == "complete"
        }
        # checkpoint-10 after checkpoint-9
        return sorted(
            found, key=lambda path: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]
        )

    # ---------------------------------------------------------------------------------------------- logs

    def append(self, log: str, record: dict[str, Any]) -> None:
        with self.path(log).open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(record, default=jsonable) + "\n")

    def read(self, log: str) -> list[dict[str, Any]]:
        """The records of a JSONL log of the run folder (metrics.jsonl, …); none when it is not there."""
        return _read_jsonl(self.path(log))

    def later_evaluations(self) -> dict[str, Path]:
        """Label → evaluated model folder of each `r1kit eval` of this run's models (eval.json, eval_2.json, …). A
        model under where this folder was when the evaluation was written is its model here, wherever the folder is
        now (moved: a redone stage kept the old model's evaluation as the new one's)."""
        found = {}
        for path in sorted(self.root.glob("eval/eval*.json")):
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
                model, written_in = saved.get("model"), saved.get("run_folder")
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                continue
            if not (isinstance(model, str) and Path(model).is_absolute()):  # an alias or hub id is none of ours
                continue
            evaluated = Path(model)
            # moved aside, a new run may stand where it was: its model there is not the one evaluated
            if isinstance(written_in, str) and evaluated.is_relative_to(written_in):
                evaluated = self.root / evaluated.relative_to(written_in)
            found[path.stem] = evaluated.resolve()
        return found

    def read_problems(self, label: str) -> list[dict[str, Any]]:
        """Every problem of evaluation `label` (see problems_path); none for an evaluation made without the file."""
        return _read_jsonl(self.problems_path(label))

    def truncate_logs(self, stage: str, after_step: int) -> None:
        """Drop a stage's log lines logged past `after_step`: a resume redoes those steps, so they must not appear
        twice. A line is logged at its `step`, an example of a window of rollouts at the window's end (`logged_at`)."""
        for log in JSONL_LOGS:
            if self.path(log).exists():
                keep = [
                    r
                    for r in self.read(log)
                    if r.get("stage") != stage or r.get("logged_at", r.get("step", 0)) <= after_step
                ]
                write_atomic(self.path(log), "".join(json.dumps(r) + "\n" for r in keep))


def changes_said(changed: list[tuple[str, Any, Any]], shown: int = 3) -> str:
    """The settings a saved config and this one differ in, in words (the first few: one said alone hid the others).

    >>> changes_said([("sft.max_steps", 2, 3), ("sft.optimization.learning_rate", 1e-5, 1e-4)])
    'sft.max_steps: 2 there, 3 now; sft.optimization.learning_rate: 1e-05 there, 0.0001 now'
    >>> changes_said([("a", 1, 2)] * 5)
    'a: 1 there, 2 now; a: 1 there, 2 now; a: 1 there, 2 now; and 2 more'
    """
    said = "; ".join(f"{key}: {before!r} there, {now!r} now" for key, before, now in changed[:shown])
    return said + (f"; and {len(changed) - shown} more" if len(changed) > shown else "")


def stop_training_log() -> None:
    """r1kit's log lines no longer go to the training.log of the run this process last kept one for."""
    r1kit_logger = logging.getLogger("r1kit")
    for handler in [h for h in r1kit_logger.handlers if isinstance(h, _TrainingLog)]:
        r1kit_logger.removeHandler(handler)
        handler.close()


def open_run(config: R1kitConfig, command: str | None = None) -> RunDir:
    """The run folder of `r1kit COMMAND`, created and writable: a new one, or an existing run to continue (same
    config, or --resume).

    The rule for a folder that holds a run with another config: finished work (a complete stage, a stage model, a
    complete checkpoint) is never overwritten; a failed start that finished no stage is taken over, so the command
    with its mistake corrected just runs. For a recipe run (`run`), each stage's manifest decides what a change
    redoes; for a stage run alone, only the keys it reads (its sections and the seed) are its config.
    """
    stop_training_log()  # an earlier run's in this process (a notebook) gets nothing of this one
    _refuse_resuming_a_new_folder(config)
    if config.run.output_dir:
        _refuse_a_stage_folder_of_another_run(Path(config.run.output_dir))
    run = RunDir(config.run.output_dir) if config.run.output_dir else RunDir.new()
    if run.root.is_dir():  # before anything in it is read or changed
        _work_alone_in(run.root)
        remove_leftovers(run.root)  # a stage folder a killed redo was deleting: no finished work of the run
    changed = _changes_taken(run, config, command)
    if changed is not None and (not changed or run.finished_work()):  # with changes: a recipe run's stages decide
        run.continued = True
        if command != "run":  # a recipe run says so once its stages' plan is accepted: it may still be refused
            logger.warning("continuing the run in %s", run.root)
    elif changed:
        logger.warning(
            "%s holds a failed start that finished no stage (%s); starting over with this config",
            run.root,
            changes_said(changed),
        )
        # What the failed start wrote belongs to the old config: its logs, and evaluations of what may be another
        # model or data set.
        evaluations = [*run.root.glob("eval/*.json"), *run.root.glob("eval/*.problems.jsonl")]
        for stale in [*map(run.path, [*JSONL_LOGS, TRAINING_LOG, "summary.json"]), *evaluations]:
            stale.unlink(missing_ok=True)
    run.create()
    _work_alone_in(run.root)  # a new folder, locked once it exists (one that was there is held already)
    return run


def check_run_folder(config: R1kitConfig, command: str) -> None:
    """`open_run`'s refusals, with nothing opened, created or locked: under `--launch` the launching process says
    them once, before any process starts (the main process alone opens the folder: refused there, it left the others
    waiting for it, each then failing with its own connection error)."""
    _refuse_resuming_a_new_folder(config)
    if not config.run.output_dir:
        return
    _refuse_a_stage_folder_of_another_run(Path(config.run.output_dir))
    run = RunDir(config.run.output_dir)
    if run.root.is_dir() and run.root.resolve() not in _RUN_LOCK:  # a folder this process works in stays held
        if not hold_folder(run.root, wait=False):
            raise RunDirError(_IN_USE.format(root=run.root))
        let_go_of(run.root)
    _changes_taken(run, config, command)


def _refuse_resuming_a_new_folder(config: R1kitConfig) -> None:
    """--resume with --config and no --out (without --config the CLI finds the newest run): a new folder was made,
    left empty, and said to hold nothing to resume."""
    if config.run.resume and not config.run.output_dir:
        raise RunDirError(
            "--resume: name the run to continue with --out (without --config, --resume continues the newest run "
            "under runs/ as it saved its config)"
        )


def _refuse_a_stage_folder_of_another_run(root: Path) -> None:
    """A run folder in a stage folder of another run (`--out RUN/01_sft/next`, or `RUN/01_sft` itself) was accepted:
    redone, that stage deletes its folder, and the run in it. A stage folder holds a manifest and no config (a run
    folder holds both), in a folder with a config."""
    path = root.expanduser().resolve()
    for inner, outer in itertools.pairwise([path, *path.parents]):
        stage = (inner / "manifest.json").exists() and not (inner / "config.yaml").exists()
        if stage and (outer / "config.yaml").exists():
            raise RunDirError(
                f"--out {root}: {inner} is a stage folder of the run in {outer}, deleted with all it holds when that "
                "stage is redone; choose a folder outside it"
            )


def _changes_taken(run: RunDir, config: R1kitConfig, command: str | None) -> list[tuple[str, Any, Any]] | None:
    """The changes of the run saved in `run` that `r1kit COMMAND` with `config` takes ([]: it goes on as saved;
    changes: a recipe run's, whose stages decide, or a failed start's, taken over), None for a folder without one;
    a RunDirError where the command would discard finished work, or resume nothing."""
    saved = run.path("config.yaml")
    if not saved.exists():
        if config.run.resume:
            raise RunDirError(f"--resume: no run to resume in {run.root} (it has no config.yaml)")
        return None
    if not written_by_a_run(run):
        # the user's own, which a failed start's clean-up deleted and the run's config replaced (its profiles too)
        raise RunDirError(
            f"{run.root}/config.yaml is no r1kit run's config: the run would replace it with its own; keep your config "
            "elsewhere (--config FILE) or choose another folder with --out"
        )
    recipe_stages = sorted(manifest.parent.name for manifest in run.root.glob("[0-9][0-9]_*/manifest.json"))
    if command in READS and recipe_stages:  # its config.yaml would replace the recipe's (and --resume then ran that)
        raise RunDirError(
            f"{run.root} holds a recipe run (its stages {', '.join(recipe_stages)}): `r1kit {command}` runs a stage "
            f"alone in a folder of its own (choose one with --out), or redo the recipe's stage with `r1kit run --out "
            f"{run.root} --only STAGE`"
        )
    alone = sorted(
        manifest.parent.name for manifest in run.root.glob("*/manifest.json") if manifest.parent.name in READS
    )
    if command == "run" and alone:  # the recipe's stage would cut the log lines of the one run alone (the same label)
        raise RunDirError(
            f"{run.root} holds a stage run alone ({', '.join(alone)}): `r1kit run` runs a recipe in a folder of its "
            f"own (choose one with --out), or continue that stage with `r1kit {alone[0]} --out {run.root} --resume`"
        )
    if config.run.resume:
        _refuse_what_a_checkpoint_would_not_use(run, _changed_keys(saved, config), config, command)
        return []
    changed = _changed_keys(saved, config)
    if command in READS:  # a stage alone: a key it does not read, or of how it runs, changes nothing it made
        changed = [c for c in changed if (stage_reads(command, c[0]) and not how_it_runs(c[0])) or c[0] == "run.seed"]
    elif command == "run":  # how it runs or is watched: a failed start rerun with more threads keeps its evaluations
        changed = [c for c in changed if not how_it_runs(c[0]) and not c[0].startswith("monitoring.")]
    if changed and command != "run" and (finished := run.finished_work()):
        raise RunDirError(
            f"{run.root} holds a run with another config ({changes_said(changed)}) and finished "
            f"work ({finished[-1]}); continue it with --resume, or choose another folder with --out"
        )
    return changed


def written_by_a_run(run: RunDir) -> bool:
    """Whether `run`'s config.yaml is a run's: headed with the folder its command ran in, or (an earlier r1kit's)
    every section written out beside its training.log, or beside a run's work (a stage, its logs). Every section
    alone is also a `config show` dump of the user's, which was written over. A run in a folder inside is not this
    folder's (a user's config.yaml beside the runs it made)."""
    stages = any(is_stage_folder(manifest.parent) for manifest in run.root.glob("*/manifest.json"))
    if run.started_in() is not None or stages or run.path("metrics.jsonl").exists():
        return True
    try:
        saved = yaml.safe_load(run.path("config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return True  # damaged: a run's whose changes say nothing can be trusted (`_changed_keys`)
    whole = isinstance(saved, dict) and set(R1kitConfig.model_fields) <= set(saved)
    return bool(run.finished_work()) or (whole and run.path(TRAINING_LOG).exists())


def leave_run_folder() -> None:
    """Let go of the run folder this process worked in (its lock), once its command is over."""
    if _RUN_LOCK:
        let_go_of(_RUN_LOCK.pop())


_IN_USE = (
    "{root} is in use by another r1kit command still at work there; wait for it to end (or stop it), or choose "
    "another folder with --out"
)
_RUN_LOCK: list[Path] = []  # the run folder this process works in, locked


def _work_alone_in(root: Path) -> None:
    """Hold the run folder's lock for as long as this process works in it (a kill releases it): a second `r1kit`
    command on the same folder trained the same stage beside the first, each resuming the other's checkpoints, and
    every step was logged twice. The folder of an earlier command of this process (a notebook, the tests) is let go."""
    if root.resolve() in _RUN_LOCK:
        return
    leave_run_folder()
    if not hold_folder(root, wait=False):
        raise RunDirError(_IN_USE.format(root=root))
    _RUN_LOCK.append(root.resolve())


def complete_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first: `checkpoint-N` folders (a user's copy, `checkpoint-2.bak`, is none)."""
    if not folder.exists():
        return []
    named = [p for p in folder.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name)]
    found = [p for p in named if p.is_dir() and is_complete(p)]
    return sorted(found, key=checkpoint_step)


def checkpoint_step(checkpoint: Path) -> int:
    """The step in a `checkpoint-N` folder's name."""
    return int(checkpoint.name.rsplit("-", 1)[1])


def checkpoint_epoch(checkpoint: Path) -> float | None:
    """The passes over its data a checkpoint has made (its trainer_state.json's `epoch`), None where unrecorded."""
    try:
        epoch = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8")).get("epoch")
    except (OSError, ValueError, AttributeError):  # no state file, or not a JSON object: nothing to compare
        return None
    return float(epoch) if isinstance(epoch, int | float) else None


def stage_of_folder(name: str) -> str:
    """The stage a run's folder holds: a recipe's `NN_<stage>`, or a stage run alone's `<stage>`.

    >>> stage_of_folder("03_reasoning_rl"), stage_of_folder("sft")
    ('reasoning_rl', 'sft')
    """
    return re.sub(r"^\d\d_", "", name)


KEPT_NOTHING = "made no model (it kept nothing to train on)"


def stage_folders(run_root: Path, stage: str) -> list[Path]:
    """Where a stage of the run may be: a recipe's `NN_<stage>`, or a stage run alone's `<stage>`."""
    return [*run_root.glob(f"[0-9][0-9]_{stage}"), run_root / stage]


def without_model(manifest: dict[str, Any]) -> str | None:
    """Why a stage manifest's finished stage has no model, or None (not finished, or it has one): its kind makes
    data (rejection sampling), or `KEPT_NOTHING` (distillation without a kept trace)."""
    if manifest.get("status") != "complete" or (manifest.get("output") or {}).get("model"):
        return None
    return KEPT_NOTHING if "model" in MAKES.get(manifest.get("kind", ""), ()) else "makes data, not a model"


def modelless_stage(run_root: Path, stage: str) -> tuple[str, str] | None:
    """(its kind, why) of a finished stage of the run that has no model (`without_model`), or None."""
    for folder in stage_folders(run_root, stage):
        manifest = read_manifest(folder)
        if why := without_model(manifest):
            return manifest.get("kind", "?"), why
    return None


def no_model_said(run_root: Path, stage: str) -> str | None:
    """`modelless_stage` in words, for a message.

    >>> no_model_said(Path("nowhere"), "sft") is None
    True
    """
    found = modelless_stage(run_root, stage)
    return f"stage {stage} ({found[0]}) {found[1]}" if found else None


def outdated_stages(run_root: Path) -> set[str]:
    """The stages a recipe run's manifest.json lists as outdated: complete, but made from what an earlier stage made
    before that stage was redone (by `--only`, or by a redo stopped halfway). The next `r1kit run` of the folder
    checks them."""
    stages = read_manifest(run_root).get("stages") or []
    return {stage["name"] for stage in stages if stage.get("status") == "outdated"}


RECIPE_STAGE = re.compile(r"\d\d_.+")  # a recipe's stage folder, NN_<stage>


def is_stage_folder(folder: Path) -> bool:
    """Whether `folder` holds a stage's manifest (a damaged one too), not a recipe run's own (which lists its stages),
    or none yet under a recipe stage's name (`NN_<stage>`, killed before it wrote one): a run in a folder with the
    user's config.yaml was taken for a stage folder of a run there."""
    if (folder / "manifest.json").is_file():
        return "stages" not in read_manifest(folder)
    return RECIPE_STAGE.fullmatch(folder.name) is not None and not (folder / "config.yaml").exists()


def read_manifest(folder: Path) -> dict[str, Any]:
    """A stage folder's manifest.json; empty where there is none, or one a person damaged (r1kit writes it atomically,
    so a kill leaves the old one or the new one)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def changed_keys(
    before: dict[str, Any], now: dict[str, Any], missing_as: dict[str, Any] | None = None
) -> list[tuple[str, Any, Any]]:
    """(key, value before, value now) for every leaf of `now` whose value differs from `before`'s; a key `before`
    lacks is read from `missing_as` (a config an earlier r1kit saved: a setting added since is at its default).

    >>> changed_keys({"sft": {"max_steps": 60, "lr": 1e-3}}, {"sft": {"max_steps": 20, "lr": 1e-3}})
    [('sft.max_steps', 60, 20)]
    >>> changed_keys({"sft": {}}, {"sft": {"split": "train"}}, missing_as={"sft.split": "train"})
    []
    """
    was, now, missing = flatten(before), flatten(now), missing_as or {}
    earlier = {key: was[key] if key in was else missing.get(key) for key in now}
    return [(key, earlier[key], value) for key, value in now.items() if earlier[key] != value]


def _refuse_what_a_checkpoint_would_not_use(
    run: RunDir, changed: list[tuple[str, Any, Any]], config: R1kitConfig, command: str | None
) -> None:
    """An interrupted stage resumes with its checkpoint's optimizer and learning-rate schedule, so a new learning
    rate, weight decay, schedule or warm-up for it (`--resume --learning_rate …`) would be saved in config.yaml and
    never used; a new LoRA shape would not load its checkpoint; and fewer steps than its checkpoint has would leave
    the longer-trained model under the lower count. All refused before anything is written. `max_grad_norm` is read
    at each step, and applies."""
    if command in READS and any(names_what_it_trains_on(key) for key, _, _ in changed):
        return  # a stage alone with another model, data or prompt starts over (stage_main): no checkpoint is used
    if command in READS:  # a stage alone trains in RUN/<stage>
        stages = {command: (command, config)}
    else:  # a recipe's stages in RUN/NN_<stage>
        stages = {
            f"{index:02d}_{spec.name}": (spec.stage_kind, config.for_stage(spec))
            for index, spec in enumerate(config.stages, start=1)
        }
    for folder, (kind, stage_config) in stages.items():
        # a checkpoint, and the stage not marked complete (its model may be saved already: killed before its
        # manifest said so, the stage goes on from the checkpoint all the same)
        saved = complete_checkpoints(run.checkpoints(folder))
        manifest = read_manifest(run.root / folder)
        if not saved or manifest.get("status") == "complete":
            continue
        # a recipe stage's manifest holds the settings its checkpoint trained with, its own `config:` laid over the
        # run's (the run-level keys alone missed a learning rate set in the recipe's stage)
        trained_with, values = flatten(manifest.get("config") or {}), flatten(stage_config.model_dump())
        changes = (
            [(key, was, values.get(key)) for key, was in trained_with.items() if _held_by_a_checkpoint(key, values)]
            if trained_with
            else [change for change in changed if _held_by_a_checkpoint(change[0], values)]
        )
        for key, before, now in (change for change in changes if change[1] != change[2]):
            if stage_reads(kind, key):
                if key.startswith("model.lora.") or key == "ppo.policy_update":
                    held = ", which holds the weights it trains as they were, so it would not load"
                elif key == "ppo.kl_coef":
                    held = " with its adaptive KL coefficient, so the new start would be recorded and not used"
                elif key.startswith("curriculum."):
                    held = (
                        " with the prompts its curriculum chose, so the new value would be recorded and used only by "
                        "its later re-scorings"
                    )
                else:
                    held = " with its optimizer and learning-rate schedule, so the new value would be recorded and not used"
                raise RunDirError(
                    f"{key}: {before!r} there, {now!r} now; --resume continues {folder}'s checkpoint{held}. Resume "
                    "without it, or train anew into another folder (--out)"
                )
        # its data order and sampling drawn with the seed it started with: a new one reorders the epoch it is in,
        # some rows then trained twice and others never
        seeded = _trained_with(trained_with, changed, "seed", "run.seed")
        if seeded is not None and seeded != config.run.seed:
            raise RunDirError(
                f"run.seed: {seeded!r} there, {config.run.seed!r} now; --resume continues {folder}'s checkpoint, whose "
                "data order and sampling were drawn with its seed. Resume without it, or train anew into another "
                "folder (--out)"
            )
        steps_key = for_stage("training.max_steps", kind, LEAF_PATHS.__contains__)
        max_steps = values.get(steps_key) if steps_key else None
        step = checkpoint_step(saved[-1])
        if isinstance(max_steps, int) and 0 < max_steps < step:
            raise RunDirError(
                f"{steps_key} {max_steps}: {folder}'s checkpoint is at step {step}; --resume would keep its "
                f"longer-trained model under the lower count. Resume with {step} steps or more, or train anew "
                "into another folder (--out)"
            )
        # trained by epochs (no max_steps), fewer than it trained toward and than the passes over its data its
        # checkpoint has made (the trainer's record: it rounds a pass's steps up, so the epochs it trained toward may
        # end a little past themselves, and resume as they were)
        epochs_key = for_stage("training.epochs", kind, LEAF_PATHS.__contains__)
        epochs, passes = values.get(epochs_key) if epochs_key else None, checkpoint_epoch(saved[-1])
        before = _trained_with(trained_with, changed, epochs_key)
        fewer = isinstance(epochs, int | float) and isinstance(before, int | float) and epochs < before
        if max_steps is None and fewer and passes is not None and epochs < passes - 1e-6:
            raise RunDirError(
                f"{epochs_key} {epochs:g}: {folder}'s checkpoint has made {passes:g} passes over its data, of the "
                f"{before:g} it trained toward; --resume would keep its longer-trained model under the lower count. "
                f"Resume with {passes:g} epochs or more, or train anew into another folder (--out)"
            )


def _trained_with(
    manifest: dict[str, Any], changed: list[tuple[str, Any, Any]], key: str | None, changed_key: str | None = None
) -> Any:
    """The value of `key` an interrupted stage's checkpoint trained with: its manifest's (flattened `config`), else,
    for a manifest without one, the run config's saved value where it changed (`changed_key`, if named otherwise)."""
    if manifest:
        return manifest.get(key)
    return next((before for name, before, _ in changed if name == (changed_key or key)), None)


_LORA_SHAPE = ("model.lora.rank", "model.lora.target_modules")


def _held_by_a_checkpoint(key: str, values: dict[str, Any]) -> bool:
    """A setting a checkpoint holds, for a stage whose (flattened) settings are `values`: its optimizer and schedule
    (`max_grad_norm` is read at each step; PPO's own learning rates, the value head's always, the policy's under the
    clipped update; its update method, which sets the optimizer's groups; an adaptive KL coefficient, the controller's
    state), the shape of what it trains (LoRA on or off, and its rank and targets while on: a checkpoint of
    another shape does not load; alpha and dropout apply to it), and a curriculum's settings (the prompts it chose; a
    re-scoring under new bounds mixed two curricula in one stage)."""
    if ".optimization." in key:
        return not key.endswith(".max_grad_norm")
    if key.startswith("model.lora."):
        return key == "model.lora.enabled" or (key in _LORA_SHAPE and bool(values.get("model.lora.enabled")))
    if key == "ppo.learning_rate":  # the policy's: TRPO moves the policy without it
        return values.get("ppo.policy_update") == "clip"
    if key == "ppo.kl_coef":  # an adaptive coefficient's start: the controller's value is in the checkpoint
        return bool(values.get("ppo.adaptive_kl"))
    if key.startswith("curriculum."):  # the prompts it trains on, chosen when it started (pass_rates.json)
        return key == "curriculum.enabled" or bool(values.get("curriculum.enabled"))
    return key in ("ppo.value_learning_rate", "ppo.policy_update")


def _changed_keys(saved: Path, config: R1kitConfig) -> list[tuple[str, Any, Any]]:
    """(key, saved value, new value) for every key whose value differs from the saved config's."""
    try:
        before = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError):
        before = {}  # a damaged config.yaml: nothing in it can be trusted to match
    started = RunDir(saved.parent).started_in()
    before = before if isinstance(before, dict) else {}
    defaults = flatten(R1kitConfig().model_dump())  # the settings an earlier r1kit did not save: at their defaults
    # the folder's own name is no change: another spelling of it (`--out s9/`), or the folder moved, is the same run
    same = ("run.resume", "run.output_dir")
    return [
        change
        for change in changed_keys(before, config.model_dump(), defaults)
        if change[0] not in same and not names_one_path(change[1], change[2], started)
    ]


def names_what_it_trains_on(key: str) -> bool:
    """Whether a setting names a stage's model, data or prompt (a change of it is new inputs, which a stage alone
    starts over on, not a setting an interrupted stage goes on with), rather than saying how it trains or how many
    held-out problems are scored.

    >>> [names_what_it_trains_on(k) for k in ("model.name", "dataset.name", "prompt.system", "sft.max_steps")]
    [True, True, True, False]
    >>> names_what_it_trains_on("dataset.max_test_samples")
    False
    """
    if key in ("model.name", "model.revision", "model.gguf_file"):
        return True
    return key.startswith(("dataset.", "prompt.")) and not how_it_runs(key)


def manifest_started_in(manifest: dict[str, Any], run_started_in: Path | None) -> Path | None:
    """The folder a stage manifest's relative paths are from: the one its command ran in, where it says (a later
    command of the run, run from another folder, saves the run's config.yaml with its own), else the run's."""
    return Path(manifest["started_in"]) if manifest.get("started_in") else run_started_in


def names_one_path(saved: Any, now: Any, started_in: Path | None) -> bool:
    """Whether a setting's saved value and its value now name one existing file or folder: `saved` as the command that
    saved it wrote it (relative paths from the folder it ran in, `started_in`; unknown: from here), `now` from here.
    `--model s1` then `--model $PWD/s1` was another config: refused, and `--resume` then redid the finished stage.

    >>> names_one_path("/tmp", "/tmp/", None), names_one_path("/tmp", "/var", None), names_one_path(1, 1, None)
    (True, False, False)
    >>> names_one_path("A conversation " * 30, "Think step by step", None)  # a prompt: no path, however long
    False
    """
    if not isinstance(saved, str) or not isinstance(now, str) or not saved or not now:
        return False
    before = Path(saved).expanduser()
    if not before.is_absolute() and started_in is not None:
        before = started_in / before
    after = Path(now).expanduser()
    try:  # a long text is no path: a component over 255 bytes (the R1 system prompt) raises "File name too long"
        return before.exists() and after.exists() and before.resolve() == after.resolve()
    except (OSError, ValueError):
        return False


def disk_needed(model_bytes: int, config: R1kitConfig, command: str) -> int:
    """Rough bytes `r1kit COMMAND` writes, of a model whose weights take `model_bytes`: a model folder per stage that
    makes one (a recipe's, or the stage run alone: not the default recipe's two; a data stage's none), and
    checkpoints (optimizer state for a full fine-tune).

    >>> config = R1kitConfig.model_validate({"stages": [{"name": "cold_start"}, {"name": "sft"}, {"name": "grpo"}]})
    >>> disk_needed(10**9, config, "run") // 10**9, disk_needed(10**9, config, "sft") // 10**9
    (2, 1)
    """
    kinds = [spec.stage_kind for spec in config.stages] if command == "run" else [command]
    models = sum(bool(MAKES.get(kind, set()) & {"model", "reward_model"}) for kind in kinds)
    limit = config.training.checkpoint.save_total_limit
    checkpoint_bytes = 0 if config.model.lora.enabled or not models else 3 * model_bytes * limit
    return model_bytes * models + checkpoint_bytes + 50_000_000


def run_of(model_path: str | Path) -> RunDir | None:
    """The run a path belongs to: the run folder itself, a stage folder in it (RUN/<stage>), a stage model inside
    it (RUN/<stage>/model) or a checkpoint of a stage (RUN/<stage>/checkpoints/checkpoint-N). A run folder has its
    config.yaml and evaluations (`r1kit run`) or a stage's manifest (a stage run alone). None for a path that does
    not exist: an alias or hub id (`tiny-random`, `org/model`) asked from inside a run folder was taken as that run's
    model, with its system prompt and held-out data."""
    path = Path(model_path).expanduser()
    if not path.exists():
        return None
    if path.parent.name == "checkpoints":  # RUN/<stage>/checkpoints/checkpoint-N: its stage's
        path = path.parent
    for candidate in (path, path.parent, path.parent.parent):
        made = (candidate / "eval").is_dir() or any(candidate.glob("*/manifest.json"))
        if (candidate / "config.yaml").exists() and made:
            return RunDir(candidate)
    return None


def stage_named(reference: str) -> tuple[RunDir, str] | None:
    """(the run, the stage) of `RUN:STAGE`, a stage's model named as `r1kit compare` names evaluations; None for any
    other reference (a folder, an alias, a hub id)."""
    folder, _, stage = reference.rpartition(":")
    run = run_of(folder) if folder else None
    return (run, stage) if run is not None else None


def model_folder_of(reference: str) -> Path:
    """The model folder a run folder (its final model), a stage folder (RUN/NN_<stage>: its model) or `RUN:STAGE`
    stands for; any other reference as a path. A model named by such a reference is hashed by this: the run's logs,
    evaluations and report change without its model changing.

    >>> model_folder_of("data.jsonl")
    PosixPath('data.jsonl')
    """
    named = stage_named(reference)
    if named is not None:
        run, stage = named
        return next((folder / "model" for folder in stage_folders(run.root, stage) if (folder / "model").is_dir()),
                    Path(reference))  # fmt: skip
    path = Path(reference).expanduser()
    if (path / "config.yaml").is_file() and (found := final_model(RunDir(path))) is not None:
        return found
    if (path / "manifest.json").is_file() and (path / "model").is_dir():
        return path / "model"
    return path


def final_model(run: RunDir) -> Path | None:
    """The final model of a finished run (from summary.json), or the newest complete stage model that writes text
    (an rlhf run stopped in its DPO stage: its SFT model, not the reward model after it) and is not outdated (made
    from what a redo killed halfway replaces)."""
    summary = run.path("summary.json")
    if summary.exists():
        final = read_json(summary)["final_model"]
        # a stage's model, relative to the run; else the base model itself (no stage kept a model)
        return run.root / final if re.fullmatch(r"\d\d_[^/]+/model", final) else Path(final)
    outdated = outdated_stages(run.root)
    stages = sorted(
        (
            marker
            for marker in run.root.glob(f"*/model/{COMPLETE_MARKER}")
            if "reward_model" not in MAKES.get(read_manifest(marker.parent.parent).get("kind"), ())
            and stage_of_folder(marker.parent.parent.name) not in outdated
        ),
        key=lambda marker: marker.stat().st_mtime,
    )
    return stages[-1].parent if stages else None
