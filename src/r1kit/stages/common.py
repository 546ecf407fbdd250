"""What every training stage shares: trainer arguments from the config, LoRA, callbacks, resume, final save."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, set_seed
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.utils import logging as hf_logging

from r1kit import distributed
from r1kit.atomic import (
    COMPLETE_MARKER,
    build_complete,
    commit_folder,
    content_hash,
    is_complete,
    jsonable,
    remove_folder,
    sampled_hash,
    write_json,
)
from r1kit.config.schema import (
    DatasetConfig,
    ModelConfig,
    PairTrainingConfig,
    R1kitConfig,
    SFTConfig,
    TrainingConfig,
    home_expanded,
)
from r1kit.config.sources import ConfigError, ResolvedConfig, flatten, resolve_config, set_path
from r1kit.data.loading import (
    NO_SFT_ROWS,
    DatasetError,
    Splits,
    counted,
    has_sft_rows,
    is_local_data,
    load_splits,
    names_a_file,
    r1_target,
    split_is_file,
)
from r1kit.hardware import Hardware, measure_matmul_peak, setup_hardware
from r1kit.models import (
    ALL_LINEAR,
    ModelError,
    check_model,
    load_tokenizer,
    looks_local,
    record_base,
    refuse_a_template_that_drops_reasoning,
    resolve_model,
    revision_of,
    save_adapter,
    save_for_inference,
    weights_bytes,
)
from r1kit.monitoring.callbacks import (
    AtomicCheckpoints,
    NonFiniteGuard,
    QuietProgress,
    SideWork,
    TimeLimit,
    TorchProfiler,
    TrainingMonitor,
    first_in_line,
)
from r1kit.monitoring.recorder import RolloutRecorder
from r1kit.prompts import DEFAULT_SYSTEM_PROMPT, GENERAL_SYSTEM_PROMPT
from r1kit.rewards.functions import unreadable_golds
from r1kit.rewards.plugins import is_plugin, plugin_source
from r1kit.rewards.registry import GOLD_REWARDS, REASONING_REWARDS
from r1kit.rewards.reward_model import resolve_model_path, reward_model_in
from r1kit.rewards.text import WORD_GOLD
from r1kit.runs import (
    RunDir,
    RunDirError,
    changed_keys,
    checkpoint_step,
    complete_checkpoints,
    disk_needed,
    final_model,
    keep_training_log,
    manifest_started_in,
    model_folder_of,
    names_one_path,
    names_what_it_trains_on,
    no_model_said,
    open_run,
    outdated_stages,
    read_manifest,
    run_of,
    stage_folders,
    stage_named,
    stage_of_folder,
)
from r1kit.stages.registry import (
    HOW_IT_RUNS,
    MAKES,
    PAIR_KINDS,
    READS,
    READS_NOT,
    READS_PART,
    ROLLOUT_KINDS,
)

logger = logging.getLogger("r1kit")


@dataclass
class StageContext:
    """What a stage needs besides its config: where it writes and what it runs on.

    `stage` is the stage's name (its label in logs and evaluations); `folder` its folder in the run, RUN/NN_<name>
    inside a recipe, RUN/<name> when the stage runs alone.
    """

    config: R1kitConfig
    run: RunDir
    hardware: Hardware
    stage: str = "eval"
    folder: str = "eval"
    side_work: SideWork = field(default_factory=SideWork)  # evaluation during training, left out of speed figures

    def for_stage(self, config: R1kitConfig, stage: str, folder: str) -> StageContext:
        return StageContext(config, self.run, self.hardware, stage, folder)

    @property
    def dir(self) -> Path:
        return self.run.root / self.folder


@dataclass
class StageInputs:
    """What a stage starts from: the latest model, the run's first model, the data, and what earlier stages made."""

    model: str
    base: str
    splits: Splits
    earlier: dict[str, StageOutput] = field(default_factory=dict)  # stage name → its output


@dataclass
class StageOutput:
    """What a stage leaves: a model (evaluated on the held-out problems), a dataset (canonical rows, JSONL), or both,
    and its own figures for the manifest and the table."""

    model: Path | None = None
    dataset: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    evaluate: bool = True  # a reward model has no answers to score

    def to_json(self, root: Path) -> dict[str, Any]:
        return {
            "model": str(self.model.relative_to(root)) if self.model else None,
            "dataset": str(self.dataset.relative_to(root)) if self.dataset else None,
            "metrics": self.metrics,
            "evaluate": self.evaluate,
        }

    def gone(self) -> Path | None:
        """What a finished stage made (its model, its data set) that is no longer there (deleted by hand), if any."""
        if self.model is not None and not is_complete(self.model):
            return self.model
        return self.dataset if self.dataset is not None and not self.dataset.exists() else None

    @classmethod
    def from_json(cls, record: dict[str, Any], root: Path) -> StageOutput:
        return cls(
            model=root / record["model"] if record.get("model") else None,
            dataset=root / record["dataset"] if record.get("dataset") else None,
            metrics=record.get("metrics") or {},
            evaluate=record.get("evaluate", True),
        )


def stage_main(
    config: R1kitConfig,
    kind: str,
    run: Callable[[StageContext, StageInputs], StageOutput],
    refuse: Callable[[StageContext, StageInputs], None] | None = None,
) -> StageOutput:
    """A stage run alone (`r1kit <stage>`): from model.name and dataset.name, into RUN/<stage>. Its figures (held-out
    preference accuracy, kept and dropped traces, skipped rows, …) go to RUN/<stage>/manifest.json, as in a recipe,
    and onto the console. `refuse` raises for inputs the stage cannot use, before its folder is touched."""
    ctx, base, splits = setup(config, kind, check=stage_data_check(kind))
    config = ctx.config  # with the prompt setup chose for chat data
    ctx = ctx.for_stage(config, kind, kind)
    given = StageInputs(model=base, base=base, splits=splits)
    if refuse is not None:  # before a redo clears the stage's folder and its config is saved: a refusal leaves them
        refuse(ctx, given)
    # what the stage made depends on, as in a recipe: the config sections it reads, the seed, and the content of the
    # local files and folders it reads (a model retrained in place under the same name is another input)
    settings = {
        "config": json.loads(json.dumps(stage_values(config, kind), default=jsonable)),
        "inputs": local_inputs(config, base, kind),
    }
    done = distributed.from_main(read_manifest(ctx.dir))
    before = done.get("settings") or {}
    started_in = manifest_started_in(done, distributed.from_main(ctx.run.started_in()))
    changes = config_changes(before.get("config", {}), config, kind, started_in)
    config_changed = bool(changes)
    # what it trains on named anew: another model, data or prompt (a built-in task or a hub id has no content hash)
    renamed = [key for key, _, _ in changes if names_what_it_trains_on(key)]
    inputs, now = before.get("inputs", {}), settings["inputs"]
    # an input that changed, is gone or is new; one that r1kit did not record before 2026-12-05 is no change there
    changed = [
        name
        for name in {**inputs, **now}
        if inputs.get(name) != now.get(name) and (name in inputs or not _recorded_lately(name))
    ]
    same = "inputs" in before and not changed and not config_changed
    made = StageOutput.from_json(done["output"], ctx.run.root) if done.get("status") == "complete" else None
    if made is not None and (gone := made.gone()) is not None:
        # what it made is gone (deleted by hand): "nothing to do" left a run without it; the stage goes on as an
        # interrupted one (a model from its last checkpoint, saved again without training)
        logger.warning("%s: complete in %s, but what it made, %s, is gone; making it again", kind, ctx.dir, gone)
        made = None
    if made is not None and same:
        # the same command again: its result stands (training on from the last checkpoint would add steps)
        logger.warning("%s: complete in %s with this config, model and data; nothing to do", kind, ctx.dir)
        return made_a_model(kind, made, ctx.dir)
    worked = done.get("status") == "complete" or bool(complete_checkpoints(ctx.run.checkpoints(ctx.folder)))
    other_inputs = bool(changed and "inputs" in before) or bool(renamed)
    if done and not same and (other_inputs or not config.run.resume or done.get("status") == "complete"):
        # made (or begun) from other inputs: its checkpoints would carry them into this run, so it starts over, under
        # --resume too (going on from them recorded the new inputs; refused instead, with the plain command refused
        # for the folder's other config, the folder could not be redone at all); so does a finished stage under
        # --resume (its last checkpoint is its model: "resuming" it trained nothing, and kept the old model under the
        # new config, as a recipe's finished stage is redone)
        changed += renamed or (["its config"] if config_changed else [])
        changed = changed or ["its inputs, which the r1kit that made it did not record"]
        if worked:
            logger.warning(
                "%s: what it reads (%s) changed since its work in %s; redoing it", kind, ", ".join(changed), ctx.dir
            )
        clear_stage(ctx)  # else a start that failed before its first checkpoint: there is no work to speak of
    if distributed.is_main():  # once it is going to train: a refused command leaves the folder's config as it was
        ctx.run.save_config(config)
    output, record = run_recorded(ctx, kind, given, run, settings=settings)
    if distributed.is_main():
        figures = " · ".join(
            f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
            for key, value in output.metrics.items()
            if isinstance(value, int | float | str)
        )
        logger.warning(
            "%s done in %.0f s%s → %s",
            kind,
            record["seconds"],
            f": {figures}" if figures else "",
            ctx.dir / "manifest.json",
        )
        if output.model is not None and output.evaluate:  # a stage alone scores nothing at its end (a recipe does)
            logger.warning("score its model on the held-out rows: r1kit eval --model %s", ctx.run.root)
        elif output.model is not None:  # a reward model scores replies: it is used, not evaluated
            logger.warning(
                "use it to score rollouts or models: --rewards.reward_model.path %s or --evaluation.reward_model %s",
                output.model,
                output.model,
            )
    return made_a_model(kind, output, ctx.dir)


def made_a_model(kind: str, output: StageOutput, folder: Path) -> StageOutput:
    """`output` of a stage run alone, unless its kind makes a model and it made none (distillation that kept no
    teacher trace, SFT 2 with no row): the command then fails, as a user who asked for a model has none. In a recipe
    the latest model goes on instead, and the run's table says so."""
    if "model" in MAKES[kind] and output.model is None:
        raise DatasetError(
            f"{kind} made no model: it kept nothing to train on (the warnings above say why; its figures are in "
            f"{folder / 'manifest.json'})"
        )
    return output


def clear_stage(ctx: StageContext) -> None:
    """Remove what a stage made (its folder, its log lines, its evaluation, and the later `r1kit eval` results of its
    model, which would be read as the new model's), so it is done again from the start."""
    if distributed.is_main():
        later = [
            label for label, model in ctx.run.later_evaluations().items() if model.is_relative_to(ctx.dir.resolve())
        ]
        # at once: deleted file by file, a kill half way left a manifest that said complete beside a model without
        # its tokenizer, skipped as complete by every later run
        remove_folder(ctx.dir)
        ctx.run.truncate_logs(ctx.stage, after_step=0)
        for label in [ctx.stage, *later]:
            ctx.run.eval_path(label).unlink(missing_ok=True)
            ctx.run.problems_path(label).unlink(missing_ok=True)
        if later:
            logger.warning("%s: removed the evaluations of its old model (%s)", ctx.folder, ", ".join(later))
    distributed.wait()  # cleared before any process works in it again


def stage_values(config: R1kitConfig, kind: str) -> dict[str, Any]:
    """The part of the config that shapes what a stage of `kind` makes: the sections it reads (less the settings of
    how it runs), and the seed."""
    part = READS_PART.get(kind, {})
    include: dict[str, Any] = {name: True for name in READS[kind]}
    for section, dotted in part.items():  # "verification.timeout_seconds" → {"verification": {"timeout_seconds": …}}
        nested: Any = True
        for key in reversed(dotted.split(".")):
            nested = {key: nested}
        include[section] = nested
    how = {name: {*HOW_IT_RUNS.get(name, ()), *HOW_IT_RUNS["*"]} for name in READS[kind]}
    for section, _, key in (path.partition(".") for path in READS_NOT.get(kind, ())):
        if section in how:  # of a section it reads (model.lora), not of a common one
            how[section].add(key)
    return {"seed": config.run.seed, **config.model_dump(include=include, exclude=how)}


def config_changes(
    saved: dict[str, Any], config: R1kitConfig, kind: str, started_in: Path | None = None
) -> list[tuple[str, Any, Any]]:
    """(key, saved value, value now) for each setting of `stage_values` that differs from a stage's saved one. A
    setting the saved config lacks (added to r1kit since) counts only where it is not at its default, and one it has
    that r1kit no longer counts (a setting of how a stage runs) is left out: a run folder of an earlier r1kit keeps its
    finished work. A path written another way (`s1`, `$PWD/s1`; `started_in`: the folder the saved one was written
    from) is no change: what it names is compared by content (`local_inputs`).

    >>> from r1kit.config.schema import R1kitConfig
    >>> saved = stage_values(R1kitConfig(), "sft") | {"seed": 7}
    >>> del saved["sft"]["max_steps"]
    >>> config_changes(saved, R1kitConfig(), "sft")
    [('seed', 7, 42)]
    """
    now = json.loads(json.dumps(stage_values(config, kind), default=jsonable))
    changes = changed_keys(saved, now, missing_as=flatten(stage_values(R1kitConfig(), kind)))
    return [change for change in changes if not names_one_path(change[1], change[2], started_in)]


def files_read(config: R1kitConfig, kind: str, stages: Collection[str] = ()) -> dict[str, str]:
    """What a stage of `kind` reads besides its model and data, by role: held-out files, preference pairs, general
    chat data, a distillation student, a reward model to score rollouts, the model whose outputs cold start refines;
    each a file, folder, hub id or (in a recipe) the name of one of `stages`, the earlier ones. Unset ones left
    out."""
    rewards, dataset, pairs = config.rewards, config.dataset, config.preferences
    refines = kind == "cold_start" and "refine" in config.cold_start.methods
    named = {
        # a held-out file decides which rows train (a built-in task's twins of them are left out), and the held-out
        # pairs the preference accuracy a stage reports
        "held_out": dataset.test_split if dataset.test_split and names_a_file(dataset) else None,
        "held_out_pairs": pairs.test_split
        if kind in PAIR_KINDS and pairs.dataset and pairs.test_split and split_is_file(pairs.dataset, pairs.test_split)
        else None,
        "refine_model": config.cold_start.refine_from if refines else None,
        "preferences": config.preferences.dataset if kind in PAIR_KINDS else None,
        "general_data": config.sft2.general_dataset if kind == "sft2" else None,
        "student": config.distill.student if kind == "distill" else None,
        # a run or stage folder as the reward model: the model in it (its logs and report change, not the model)
        # (a stage's name first: a folder of that name where the command runs is not what the recipe means)
        "reward_model": _reward_model_read(rewards.reward_model.path, stages)
        if kind in ROLLOUT_KINDS and "reward_model" in rewards.functions and rewards.reward_model.path
        else None,
    }
    for spec in rewards.functions if kind in ROLLOUT_KINDS else ():  # a plug-in reward's code: edited, it scores anew
        named[f"{_PLUGIN}{spec}"] = plugin_source(spec) if is_plugin(spec) else None
    return {role: value for role, value in named.items() if value}


_PLUGIN = "reward "  # files_read's role of a plug-in reward's module file


def _reward_model_read(path: str, stages: Collection[str]) -> str:
    """The reward model `rewards.reward_model.path` names: an earlier stage by its name, else the model folder in the
    run or stage folder it names (its logs and report change, not the model), else the path as given."""
    if path in stages:
        return path
    return str(reward_model_in(Path(path).expanduser()) or path)


# Inputs a stage's manifest records since 2026-12-05: a finished stage whose manifest lacks them is not redone for them
_RECORDED_SINCE_DECEMBER = ("held_out", "held_out_pairs", "refine_model")


def _recorded_lately(role: str) -> bool:
    """Whether a stage's manifest records the input `role` only since December 2026 (a plug-in reward's file: since
    the 7th): missing from a manifest, it is no change."""
    return role in _RECORDED_SINCE_DECEMBER or role.startswith(_PLUGIN)


def local_inputs(config: R1kitConfig, base: str, kind: str) -> dict[str, str]:
    """The content hash of each local file or folder a stage of `kind` run alone reads: its model (`base`,
    resolved), data, and `files_read`; hub ids left out."""
    data = config.dataset.name if is_local_data(config.dataset.name) else None
    named = {"model": base, "data": data, **files_read(config, kind)}
    paths = {key: model_folder_of(value) for key, value in named.items() if value}
    return {key: content_hash(path) for key, path in paths.items() if path.exists()}


def run_recorded(
    ctx: StageContext,
    kind: str,
    inputs: StageInputs,
    run: Callable[[StageContext, StageInputs], StageOutput],
    **facts: Any,
) -> tuple[StageOutput, dict[str, Any]]:
    """Run a stage with its RUN/<folder>/manifest.json: `running` while it works, then `complete` with its time and
    output (model, dataset, figures). `facts` go in too (a recipe adds the fingerprint and config it resumes by)."""
    before = seconds_before_resume(read_manifest(ctx.dir), ctx.run.checkpoints(ctx.folder))
    record = {
        "stage": ctx.stage,
        "kind": kind,
        "status": "running",
        **facts,
        "inputs": {"model": inputs.model, "data": data_read(ctx.config, kind, inputs)},
        "started_at": time.time(),
        "started_in": str(Path.cwd()),  # where its config's relative paths are from (a later command may run elsewhere)
        "seconds_before_resume": before,
    }
    if distributed.is_main():  # the run folder is the main process's to write (see r1kit.distributed)
        write_json(ctx.dir / "manifest.json", record)
    started = time.perf_counter()
    output = run(ctx, inputs)
    record |= {"status": "complete", "seconds": round(before + time.perf_counter() - started, 1)}
    record["finished_at"] = time.time()
    record["output"] = output.to_json(ctx.run.root)
    if distributed.is_main():
        write_json(ctx.dir / "manifest.json", record)
    return output, record


def seconds_before_resume(previous: dict[str, Any], checkpoints: Path) -> float:
    """The time a stage's interrupted runs spent up to the newest checkpoint it resumes from, so that its manifest's
    `seconds` is the whole stage's and not its last part's. `previous`: the manifest the last of them left (status
    `running`, with when it started and what the runs before it had spent). A run killed before writing a checkpoint
    left nothing to resume from, and adds nothing.

    >>> seconds_before_resume({"status": "complete", "seconds": 80.0}, Path("no-checkpoints"))
    0.0
    """
    saved = complete_checkpoints(checkpoints)
    if previous.get("status") != "running" or "started_at" not in previous or not saved:
        return 0.0
    newest = (saved[-1] / COMPLETE_MARKER).stat().st_mtime
    return round(previous.get("seconds_before_resume", 0.0) + max(0.0, newest - previous["started_at"]), 1)


def data_read(config: R1kitConfig, kind: str, inputs: StageInputs) -> str:
    """What a stage of `kind` trains on, in words, for its manifest."""
    if kind not in PAIR_KINDS:
        return inputs.splits.source
    if config.preferences.dataset:
        return f"preference pairs from {config.preferences.dataset}"
    return f"preference pairs built from {inputs.model} on {inputs.splits.source}"


def check_named_models(config: R1kitConfig, command: str, running: Collection[str] = ()) -> None:
    """The students and refined models the command's stages name (not an earlier stage's model, nor the base): their
    configs load, they write text, and their tokenizers have a chat template, checked before any work (a hub id
    offline or a student without a template failed once the stages before it had trained and its teacher had
    sampled). `running`: the stages of a recipe this command may train (the pipeline's plan: not those --only leaves
    aside, nor complete ones it keeps)."""
    if command == "run":
        stages = [
            (config.for_stage(spec), spec.stage_kind, [s.name for s in config.stages[:i]])
            for i, spec in enumerate(config.stages)
            if spec.name in running
        ]
    else:
        stages = [(config, command, [])]
    keys = {"student": ("distill.student", True), "refine_model": ("cold_start.refine_from", False)}
    for stage, kind, earlier in stages:
        for role, named in files_read(stage, kind).items():
            if role not in keys or named is None or named == "base" or named in earlier:
                continue
            key, trains = keys[role]
            reference = model_reference_of(named, stage)
            check_model(stage.model, reference, training=trains, key=key)
            if role != "student":
                load_tokenizer(stage.model, reference)
                continue
            # the template the student trains with: one that drops the teacher's reasoning was found only once every
            # trace was sampled (in the r1 recipe, after every stage before)
            refuse_a_template_that_drops_reasoning(
                load_tokenizer(student_model_settings(stage), reference),
                reference,
                None,
                "distillation would teach it the teacher's answers without their worked reasoning",
                "distill: ",
                key="distill.student_chat_template",
            )
    if command != "run":
        return
    # a stage that fine-tunes on the R1 traces an earlier stage writes, through a template that drops them, was
    # refused once it started: after the base model's evaluation and the stages before it had worked
    kinds = [spec.stage_kind for spec in config.stages]
    for index, spec in enumerate(config.stages):
        on_traces = spec.stage_kind == "sft2" or (
            spec.stage_kind == "sft" and {"cold_start", "rejection_sampling"} & set(kinds[:index])
        )
        if spec.name in running and on_traces:
            stage = config.for_stage(spec)
            reference = model_reference_of(stage.model.name, stage)
            refuse_a_template_that_drops_reasoning(
                load_tokenizer(stage.model, reference),
                reference,
                None,
                "it would learn the traces' answers without their worked reasoning",
                f"{spec.name}: ",
            )


def setup(
    config: R1kitConfig, command: str, check: Callable[[R1kitConfig, Splits], None] | None = None
) -> tuple[StageContext, str, Splits]:
    """Start a stage or the pipeline: hardware, seed, data (`check`ed), run folder (checked before training), base
    model."""
    hardware = setup_hardware(config.model.device, config.model.precision, config.model.threads)
    distributed.start(hardware.device, hardware.precision)
    quiet_libraries(config.monitoring.progress)
    set_seed(config.run.seed)
    # before the run folder: data that cannot be read, or that a stage cannot use, leaves no folder behind
    config, splits = read_data(config, command, check)
    # Under several processes the run folder is the main process's: it opens (or takes over) the folder and saves
    # the config; the others use the folder it chose (a name from the clock could differ by a second between them).
    new_folder = not config.run.output_dir or not Path(config.run.output_dir).expanduser().exists()
    run = open_run(config, command) if distributed.is_main() else None
    try:
        with distributed.main_first():  # a built-in model is built once, by the main process; the others find it
            base = model_reference_of(config.model.name, config)  # a run or stage folder: the model it made
        check_model(config.model, base)
        if command != "run":  # a recipe checks those of the stages it will train (its plan)
            check_named_models(config, command)
    except Exception:
        if run is not None and new_folder and not any(run.root.iterdir()):  # a failed start leaves no empty folder
            run.root.rmdir()
        raise
    if run is not None:
        weights = weights_bytes(base, revision_of(config.model, base))
        if weights is None:
            logger.warning("the size of %s is not known here: the free disk space is not checked for it", base)
        run.prepare(disk_needed(weights or 0, config, command))
        # a new folder's config at once (it is a run from the start); an existing run's is replaced only once the
        # command is going to train (stage_main, r1kit.pipeline), so a refused command leaves it as it was
        if command != "run" and not run.path("config.yaml").exists():
            run.save_config(config)
    run = RunDir(*distributed.from_main((str(run.root), run.continued) if run is not None else None))
    if distributed.is_main():
        keep_training_log(run)
    skipped = f" ({counted(splits.skipped_rows, 'bad row')} skipped)" if splits.skipped_rows else ""
    data = f"{splits.source}: {len(splits.train)} train / {len(splits.test)} held-out{skipped}"
    if command in PAIR_KINDS and config.preferences.dataset:  # it trains on its pairs; the problems score its model
        data = f"pairs {config.preferences.dataset} | scored on {splits.source}: {len(splits.test)} held-out{skipped}"
    # a TRL user's learning rate is meant for all the weights, and r1kit trains a LoRA adapter by default: say which
    lora = config.model.lora
    trains = f"LoRA r{lora.rank}" if lora.enabled else "all weights"
    logger.warning(
        "r1kit %s → %s | model %s (%s) | %s | %s",
        command,
        run.root,
        config.model.name,
        trains,
        data,
        hardware.describe(),
    )
    return StageContext(config, run, hardware), base, splits


GOLDS_READ = 256  # the first training rows whose gold answers are read before a rollout stage: a wrong column shows


def no_worked_solutions(rows: datasets.Dataset) -> bool:
    """Whether none of the first GOLDS_READ rows has a worked solution to write as <think>/<answer> (chat replies)."""
    first = rows.select(range(min(GOLDS_READ, len(rows))))
    return not any(r1_target(row) for row in first)


def read_data(
    config: R1kitConfig, command: str, check: Callable[[R1kitConfig, Splits], None] | None = None
) -> tuple[R1kitConfig, Splits]:
    """The data `r1kit COMMAND` reads (DatasetError where it cannot be read), `check`ed, and the config with the
    prompt chosen for chat data."""
    splits = load_splits(config.dataset)
    if command != "run":  # a stage alone from a run's model, scored on data split otherwise than that run's
        say_scored_training_problems(config, splits.test["question"], command)
    config = plain_prompt_for_chat_data(config, command, splits)
    if check is not None:
        check(config, splits)
    return config, splits


def stage_data_check(kind: str) -> Callable[[R1kitConfig, Splits], None]:
    """What a stage run alone checks of its data (`check_data`), before any work."""
    return lambda config, splits: check_data(config, kind, splits.train, f"{splits.source}: {kind}")


def plain_prompt_for_chat_data(config: R1kitConfig, command: str, splits: Splits) -> R1kitConfig:
    """`r1kit sft`, `sft2`, `reward_model`, `dpo` or `run` on chat replies (no worked solution to write as
    <think>/<answer>) under the default reasoning prompt: the plain prompt instead, said, and saved with the run's
    config, so eval and chat ask as it trained (the built-in pairs of a preference stage were the rows' plain replies
    behind the reasoning prompt, beside general pairs behind the plain one). So do `r1kit ppo`, `rloo` and `grpo`
    scored by none of the rewards that read that form or a gold answer (a reward model trained behind the plain
    prompt judged rollouts of the reasoning one). A prompt the user set is kept (check_data warns where it asks for
    <think>). `r1kit run` does so only for a recipe none of whose stages writes, judges or rewards the R1 form (the
    r1 recipe on chat rows with gold answers asked every stage, rejection sampling and distillation included, with the
    plain prompt)."""
    if command == "run":
        trains_on_replies = not any(
            _asks_for_the_r1_form(config.for_stage(spec), spec.stage_kind) for spec in config.stages
        )
    else:
        trains_on_replies = command in ("sft", "sft2", *PAIR_KINDS) or (
            command in ROLLOUT_KINDS and not _asks_for_the_r1_form(config, command)
        )
    if not trains_on_replies or config.prompt.system != DEFAULT_SYSTEM_PROMPT:
        return config
    first = splits.train.select(range(min(GOLDS_READ, len(splits.train))))
    if not no_worked_solutions(first) or not has_sft_rows(first):
        return config
    logger.warning(
        "%s: the rows are chat replies without worked solutions, so training, evaluation and chat ask with the plain "
        "prompt %r, not the reasoning one (set prompt.system for another)",
        command,
        GENERAL_SYSTEM_PROMPT,
    )
    return config.model_copy(update={"prompt": config.prompt.model_copy(update={"system": GENERAL_SYSTEM_PROMPT})})


# The kinds that write or judge traces in the R1 form (sft2: the reasoning rows rejection sampling kept, beside general
# ones behind the plain prompt)
TRACE_KINDS = ("cold_start", "rejection_sampling", "sft2", "distill")


def _asks_for_the_r1_form(config: R1kitConfig, kind: str) -> bool:
    """A stage of `kind` writes or judges R1 traces, or samples rollouts scored by a reward that reads the form or a
    gold answer: it asks with the reasoning prompt whatever the rows' replies."""
    rewarded = kind in ROLLOUT_KINDS and bool(set(config.rewards.functions) & set(REASONING_REWARDS))
    return kind in TRACE_KINDS or rewarded


def check_prompts_fill_a_batch(
    prompts: int, generation_batch: int, num_generations: int, curriculum: bool, kind: str = "grpo"
) -> None:
    """GRPO's (or RLOO's, `kind`) training prompts fill one generation batch: TRL's sampler drops a batch it cannot
    fill with distinct prompts, so fewer trained no step at all, and the stage "finished" with its input model.
    `curriculum`: the prompts are those the curriculum scores or chose."""
    per_batch = generation_batch // num_generations
    if prompts < per_batch:
        whose = (
            " for the curriculum (it scores curriculum.max_prompts and keeps those within its pass-rate bounds)"
            if curriculum
            else ""
        )
        knobs = (
            "rloo.batch_size's per_device_train and gradient_accumulation_steps"
            if kind == "rloo"
            else "grpo.generation_batch_size, or training.batch_size's per_device_train and gradient_accumulation_steps"
        )
        raise DatasetError(
            f"{kind}: {prompts} training prompt(s){whose}, fewer than the {per_batch} distinct prompts one generation "
            f"batch samples ({generation_batch} completions, {num_generations} per prompt): give more problems, or "
            f"sample fewer a step ({knobs})"
        )


def check_data(config: R1kitConfig, kind: str, rows: datasets.Dataset, where: str, count_prompts: bool = True) -> None:
    """`rows` have what a stage of `kind` (with its `config`) needs, checked before any work: an SFT stage needs worked
    solutions or replies; a rollout stage scored by gold answers needs gold answers the verifier can read; GRPO's and
    RLOO's prompts that fill a generation batch, unless `count_prompts` is off (a recipe's finished stage, which another
    process count would not train again). `where` names the data and the stage in the message."""
    if kind == "sft" and not has_sft_rows(rows):
        raise DatasetError(f"{where}: {NO_SFT_ROWS}")
    first = rows.select(range(min(GOLDS_READ, len(rows))))
    if kind in ("sft", "sft2", *PAIR_KINDS) and "<think>" in config.prompt.system and no_worked_solutions(rows):
        # chat replies trained behind a prompt asking for <think>/<answer> teach the model to ignore its prompt
        logger.warning(
            "%s: the rows are chat replies, without worked solutions to write as <think>/<answer>, and prompt.system "
            "asks for that format; for plain chat data set --prompt.system %r (training, evaluation and chat all "
            "use it), unless a later stage asks for the format",
            where,
            GENERAL_SYSTEM_PROMPT,
        )
    if kind in ("rejection_sampling", "distill", "cold_start") and not any(rows["solution"]):  # after all the work
        raise DatasetError(
            f"{where}: no row has a gold answer, and {kind} keeps only the traces whose answer verifies against it; "
            "use data with answers"
        )
    if kind == "grpo" and count_prompts:  # a curriculum's: at most those it scores, and checked again once chosen
        curriculum = config.curriculum.enabled
        prompts = min(len(rows), config.curriculum.max_prompts) if curriculum else len(rows)
        check_prompts_fill_a_batch(prompts, config.grpo_generation_batch(), config.grpo.num_generations, curriculum)
    if kind == "rloo" and count_prompts:
        check_prompts_fill_a_batch(
            len(rows), config.rloo.generation_batch(), config.rloo.num_generations, curriculum=False, kind="rloo"
        )
    gold = [name for name in config.rewards.functions if name in GOLD_REWARDS]
    if kind not in ROLLOUT_KINDS or not gold:
        return
    if not any(rows["solution"]):
        raise DatasetError(
            f"{where}: no row has a gold answer, and its rewards {', '.join(gold)} compare answers with it (they "
            "would score nothing); use data with answers, or rewards that need none (rewards.functions; classic "
            "RLHF on chat data, PPO and RLOO scored by a reward model alone: r1kit run --recipe rlhf_chat)"
        )
    golds = first["solution"]
    given = [str(gold).strip() for gold in golds if gold]
    letters = all(len(gold) == 1 and gold.isupper() for gold in given)  # multiple choice: the option's letter
    if given and all(WORD_GOLD.fullmatch(gold) for gold in given) and not letters and not config.dataset.word_answers:
        raise DatasetError(
            f"{where}: the first {len(given)} gold answers are all words ({', '.join(sorted(map(repr, set(given)))[:4])}"
            "): a column of labels rather than final answers? Point dataset.columns at the answers; if these words "
            "are the answers (yes/no data), set --dataset.word_answers true"
        )
    unreadable = unreadable_golds(golds, **config.rewards.verification.model_dump())
    if not unreadable:
        return
    example = f"row {unreadable[0] + 1}: {str(golds[unreadable[0]] or '')[:60]!r}"
    if len(unreadable) == len(golds):
        raise DatasetError(
            f"{where}: none of the first {len(golds)} gold answers holds an answer the verifier can read ({example}), "
            f"and its rewards {', '.join(gold)} compare answers with them (they would score nothing); point the "
            "answer column at final answers (dataset.columns), or use rewards that need none (rewards.functions)"
        )
    logger.warning(
        "%s: %d of the first %d gold answers hold no answer the verifier can read (%s); the rewards comparing answers "
        "with them (%s) leave those prompts out (no reward, not 0), counted as rewards/<name>/unreadable_gold",
        where,
        len(unreadable),
        len(golds),
        example,
        ", ".join(gold),
    )


def loadable_model(config: R1kitConfig) -> str:
    """model.name made loadable; a run folder stands for its final model."""
    return model_reference_of(config.model.name, config)


def _trained_with(config: R1kitConfig) -> tuple[R1kitConfig, R1kitConfig] | None:
    """The config of the run that trained model.name and that of the stage that made it (a recipe stage's own
    `config:` laid over the run's); None for a model r1kit did not train. Its relative data paths are made absolute
    from the folder the run ran in, so they are found from any other."""
    named = stage_named(config.model.name)  # RUN:STAGE names a model of RUN
    run = named[0] if named is not None else run_of(config.model.name)
    if run is None:
        return None
    # read as `eval` reads a config: the rules of a command it trains with (the batch for the processes it ran in,
    # GRPO's limits under a PPO stage alone) held when it was made, and refused the run's own config here
    trained = resolve_config(config_file=str(run.path("config.yaml")), environ={}, command="eval").config
    trained = trained.model_copy(update={"dataset": _data_from(trained.dataset, run.started_in())})
    stage = trained
    # RUN/NN_<stage>/model or RUN/NN_<stage>/checkpoints/checkpoint-N (a run folder: its final model)
    model = Path(loadable_model(config))
    stage_folder = (model.parent.parent if model.parent.name == "checkpoints" else model.parent).name
    for index, spec in enumerate(trained.stages, start=1):
        if stage_folder == f"{index:02d}_{spec.name}":
            stage = trained.for_stage(spec)
    return trained, stage


def say_scored_training_problems(config: R1kitConfig, questions: Collection[str], command: str) -> None:
    """Say how many of the held-out `questions` a command scores the model of config.model.name's run trained on,
    where they are not that run's held-out problems: other data (a built-in task half of another's, `mixed`), or the
    run's data split otherwise (`--dataset.split.seed 7`). Its own held-out problems were never trained on."""
    found = _trained_with(config)
    if found is None or any(config.dataset == trained.dataset for trained in found):
        return
    trained_on: set[str] = set()
    run_data, stage_data = (trained.dataset for trained in found)
    for dataset in [run_data] if stage_data == run_data else [run_data, stage_data]:
        try:
            trained_on.update(load_splits(dataset).train["question"])
        except DatasetError as error:  # moved or changed since: not checked, and said
            logger.warning("%s: the training problems of %s are not known here (%s)", command, config.model.name, error)
            return
    both = sum(question in trained_on for question in questions)
    if both:
        logger.warning(
            "%s: %d of the %d held-out problems scored are training problems of %s (its run's data, split as it "
            "was): their score is not a held-out figure; its run's own held-out problems are scored without dataset.* "
            "settings",
            command,
            both,
            len(questions),
            config.model.name,
        )


def _data_from(dataset: DatasetConfig, folder: Path | None) -> DatasetConfig:
    """`dataset` with its relative local files (data, held-out file) joined onto `folder`, the one a run ran in."""
    if folder is None:
        return dataset
    name, held_out = dataset.name, dataset.test_split
    if is_local_data(name) and not Path(name).expanduser().is_absolute():
        name = str(folder / name)
    if held_out is not None and names_a_file(dataset) and not Path(held_out).expanduser().is_absolute():
        held_out = str(folder / held_out)
    return dataset.model_copy(update={"name": name, "test_split": held_out})


def with_trained_prompt(resolved: ResolvedConfig, command: str) -> R1kitConfig:
    """The config of a stage run alone: a model trained by r1kit trains on with the system prompt it was trained
    with unless the user sets one (PPO from a chat SFT model asked with the reasoning prompt it never saw)."""
    config = resolved.config
    found = _trained_with(config)
    if found is None or resolved.sources.get("prompt.system") != "default":
        return config
    prompt = found[1].prompt
    if prompt.system != config.prompt.system:
        logger.warning(
            "%s: %s was trained with the system prompt %r, so it trains on with it (set prompt.system for another)",
            command,
            config.model.name,
            prompt.system,
        )
    return config.model_copy(update={"prompt": prompt})


# How a run's table scored its models (how many problems, how long an answer, pass@k's sampling): `eval` of a run's
# model takes them too, so it scores what the table scored (a dev-profile run's 40 problems were scored as the
# default's 200, which `compare` then refused to pair)
_TABLE_SETTINGS = ("max_samples", "max_new_tokens", "batch_size", "temperature", "num_samples", "pass_k")


def as_trained(resolved: ResolvedConfig) -> R1kitConfig:
    """The config to evaluate or chat with: a model trained by r1kit is asked with the system prompt it was trained
    with (its stage's own, a recipe stage's `config: {prompt: ...}`, else its run's) and scored on its run's data
    (the same held-out problems as the run's table, scored as the table scored them: `_TABLE_SETTINGS`), each unless
    the user gives one."""
    config = resolved.config
    found = _trained_with(config)
    if found is None:
        return config
    stage = found[1]
    update: dict[str, Any] = {}
    if resolved.sources.get("prompt.system") == "default":
        update["prompt"] = stage.prompt
    own = _own_data(resolved, found)
    if own is not None:  # its run's (or stage's) data as it was split, with the user's own dataset.* over it
        given = {
            key: value
            for key, value in flatten(config.dataset.model_dump(), "dataset.").items()
            if resolved.sources.get(key, "default").startswith(("cli:", "env:", "file:"))
        }
        data = own.model_dump()
        for key, value in given.items():
            set_path(data, key.removeprefix("dataset."), value)
        update["dataset"] = type(own).model_validate(data)
        run = found[0].evaluation  # every stage of its table was scored with them
        table = {key: getattr(run, key) for key in _TABLE_SETTINGS if not _set_by_user(resolved, f"evaluation.{key}")}
        if "pass_k" in table and "num_samples" not in table:  # the user's sample count: the run's k that fit in it
            table["pass_k"] = [k for k in run.pass_k if k <= config.evaluation.num_samples] or [1]
        update["evaluation"] = type(config.evaluation).model_validate(config.evaluation.model_dump() | table)
    return config.model_copy(update=update)


def _set_by_user(resolved: ResolvedConfig, key: str) -> bool:
    """Whether the user set `key` for this command: on its command line, in the environment, in a --config file or
    through a --profile named."""
    return resolved.sources.get(key, "default").startswith(("cli:", "env:", "file:", "profile:"))


def _own_data(resolved: ResolvedConfig, found: tuple[R1kitConfig, R1kitConfig]) -> DatasetConfig | None:
    """The data settings the model trained with that the evaluation scores on: its run's where no data is named (the
    held-out problems of the run's table, not a final stage's own data), else those of the run or stage that trained
    on the data named (held out with their split: eval's default split scored training rows); None for other data."""
    if resolved.sources.get("dataset.name") == "default":
        return found[0].dataset
    given = resolved.config.dataset.name
    for trained in (config.dataset for config in found):
        if given == trained.name or (
            Path(given).expanduser().exists() and Path(given).expanduser().resolve() == Path(trained.name).resolve()
        ):
            return trained
    return None


def data_named(resolved: ResolvedConfig) -> bool:
    """Whether `r1kit eval` was given data to score whole: data other than what the model's run (or its stage) trained
    on, named anywhere (`--data`, a --config file, R1KIT_DATASET_NAME). The run's own data is scored on its held-out
    split, however it is named: `--config RUN/config.yaml`, or `--data FILE` of the file it trained on, scored its
    training rows as held-out."""
    if resolved.sources["dataset.name"] == "default":
        return False
    found = _trained_with(resolved.config)
    if found is None:
        return True
    if _own_data(resolved, found) is None:
        return True
    logger.info("eval: %s is the data the model trained on: its held-out rows are scored", resolved.config.dataset.name)
    return False


def student_of(named: str | None, inputs: StageInputs, config: R1kitConfig) -> str:
    """The student: the model distill.student names (`model_named`), else the run's base model."""
    return inputs.base if named is None else model_named(named, inputs, config, "distill.student")


def student_model_settings(config: R1kitConfig) -> ModelConfig:
    """The model settings the distill student trains with: the run's, with its own chat template where
    distill.student_chat_template sets one (model.chat_template is then the teacher's alone)."""
    own = config.distill.student_chat_template
    return config.model if own is None else config.model.model_copy(update={"chat_template": own})


def model_named(name: str, inputs: StageInputs, config: R1kitConfig, key: str) -> str:
    """The model of the earlier recipe stage `name` names (`sft`; the setting `key` names it), the run's base model
    for `base` (as `model_from` reads it: it was loaded as a hub id, after every stage before had trained), else that
    model reference made loadable (`model_reference_of`)."""
    if name == "base":
        return inputs.base
    if name in inputs.earlier:
        if inputs.earlier[name].model is None:  # it kept nothing to train on (said in its log), as model_from says
            raise RunDirError(f"{key}: stage {name!r} made no model in this run (see its log)")
        return resolve_model_path(name, inputs.earlier, key)
    return model_reference_of(name, config)


def model_reference_of(name: str, config: R1kitConfig) -> str:
    """A model alias, hub id, folder, run folder (its final model), stage folder of a run (its model) or `RUN:STAGE`
    (the model of that stage of the run, as `r1kit compare` names evaluations) made loadable, with the config's model
    options."""
    same = name == config.model.name  # gguf_file and revision belong to model.name
    revision = config.model.revision if same else None
    name = home_expanded(name)  # `--distill.student=~/runs/a`: the shell leaves that ~ as written
    named = stage_named(name)
    if revision and (named is not None or looks_local(name)):  # transformers loads a folder as it is, at no commit
        raise ModelError(
            f"model.revision {revision} is set, but model.name {name} is a local folder or file, which has no "
            "revisions: check that commit out in it, or name the hub repo in model.name"
        )
    if named is not None:
        run, stage = named
        found = [folder / "model" for folder in stage_folders(run.root, stage) if is_complete(folder / "model")]
        if not found and (why := no_model_said(run.root, stage)):
            raise ModelError(f"{name}: {why}; its manifest.json in {run.root} says what it did")
        if not found:
            made = run.root.glob(f"*/model/{COMPLETE_MARKER}")
            stages = sorted(stage_of_folder(marker.parent.parent.name) for marker in made)
            raise ModelError(
                f"{name}: no stage {stage!r} with a finished model in {run.root} ({', '.join(stages) or 'none'})"
            )
        name = str(found[0])
    run = run_of(name)
    if run is not None and Path(name).resolve() == run.root.resolve():
        final = final_model(run)
        if final is None:
            raise ModelError(
                f"run {run.root} has no finished model: its stages are still running or made none (see their "
                "manifest.json)"
            )
        _say_if_outdated(final)
        return str(final)
    if run is not None:
        _say_if_outdated(Path(name))
    stage_model = Path(name).expanduser() / "model"
    if run is not None and is_complete(stage_model):  # RUN/NN_<stage>: what that stage made
        return resolve_model(str(stage_model))
    model = config.model
    return resolve_model(name, model.cache_dir, model.gguf_file if same else None, revision)


def _say_if_outdated(model: Path) -> None:
    """A stage model of a recipe run (RUN/NN_<stage> or its model folder) that `--only` left outdated is used as
    asked, with a word: it was made from what an earlier stage made before being redone."""
    path = model.expanduser().resolve()
    folder = path.parent if path.name == "model" else path
    stage = stage_of_folder(folder.name)
    if stage in outdated_stages(folder.parent):
        logger.warning(
            "%s is outdated: %s was trained from what an earlier stage made before that stage was redone "
            "(`r1kit run --out %s --resume` redoes it)",
            model,
            stage,
            folder.parent,
        )


def quiet_libraries(progress: bool) -> None:
    """Library noise off: load/tokenize progress bars unless progress is on, and a deprecation warning that TRL's own
    config triggers in transformers (nothing a user can act on)."""
    warnings.filterwarnings(
        "ignore", message=r".*`(is_)?gradient_checkpointing(_enable|_disable)?` is deprecated", category=FutureWarning
    )
    if not progress:
        datasets.disable_progress_bars()
        hf_logging.disable_progress_bar()


def staging_dir(ctx: StageContext) -> Path:
    return ctx.dir / ".staging"


def reference_loading(ctx: StageContext, model: PreTrainedModel, beta: float) -> dict[str, Any]:
    """GRPOConfig's and RLOOConfig's arguments for a full fine-tune's KL reference (`beta` above 0), which TRL loads
    by the policy's name (a hub id, or the merged weights' folder): as the policy was loaded, remote code and hub
    revision alike. Without a reference to load (beta 0, or LoRA's adapter turned off) no revision is passed: TRL
    said it "will be ignored" for the policy, which r1kit loads itself.

    A policy merged from an adapter folder exists in memory only (its name is the adapter's folder, which TRL cannot
    load: "Unrecognized model", RLOO's default beta from any adapter): its weights are saved as the reference in the
    stage's folder, and the policy named by them; anew at each start (another adapter, or its base changed, in the
    same folder would otherwise be compared with an old one)."""
    config = ctx.config
    found: dict[str, Any] = {"trust_remote_code": config.model.trust_remote_code}
    if beta == 0 or config.model.lora.enabled:
        return found
    if config.model.revision:
        found["model_init_kwargs"] = {"revision": config.model.revision}
    named = Path(model.config._name_or_path)
    if named.is_dir() and not (named / "config.json").is_file():
        reference = ctx.dir / "reference"
        with distributed.main_first():  # the main process writes it, the others find it written
            if distributed.is_main():
                staging = reference.with_name(f".{reference.name}.partial")
                shutil.rmtree(staging, ignore_errors=True)
                model.save_pretrained(staging)
                commit_folder(staging, reference, {"merged_from": str(named)})
        model.name_or_path = model.config._name_or_path = str(reference.resolve())
    return found


# [the WANDB_PROJECT r1kit set, the one it found]: a later command in the same process (a notebook's cells) reads the
# user's, not the project an earlier command's config named
_WANDB_PROJECT_SET: list[str | None] = []


def trainer_arguments(ctx: StageContext, section: SFTConfig | TrainingConfig, model: PreTrainedModel) -> dict[str, Any]:
    """Keyword arguments common to TRL's SFTConfig and GRPOConfig, from a stage's config section and its `model`."""
    config, hardware = ctx.config, ctx.hardware
    reporters = [
        name
        for name, on in (
            ("tensorboard", config.monitoring.tensorboard.enabled),
            ("wandb", config.monitoring.wandb.enabled),
        )
        if on
    ]
    # transformers configures these integrations from the environment.
    if config.monitoring.wandb.enabled:  # the project set in the config over the shell's WANDB_PROJECT, not under it
        shells = os.environ.get("WANDB_PROJECT")
        if _WANDB_PROJECT_SET and shells == _WANDB_PROJECT_SET[0]:  # an earlier command's in this process (a notebook)
            shells = _WANDB_PROJECT_SET[1]
        project = config.monitoring.wandb.project or shells or "r1kit"
        _WANDB_PROJECT_SET[:] = [project, shells]
        os.environ["WANDB_PROJECT"] = project
    if config.monitoring.tensorboard.enabled:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(ctx.run.root / "tensorboard" / ctx.stage)
    return {
        "output_dir": str(staging_dir(ctx)),
        "run_name": config.monitoring.wandb.run_name or f"{ctx.run.root.name}-{ctx.stage}",
        "max_steps": section.max_steps or -1,
        "num_train_epochs": section.epochs or 1.0,
        "per_device_train_batch_size": section.batch_size.per_device_train,
        "gradient_accumulation_steps": section.batch_size.gradient_accumulation_steps,
        "learning_rate": section.optimization.learning_rate,
        "weight_decay": section.optimization.weight_decay,
        "warmup_steps": section.optimization.warmup_ratio,  # a float below 1 is a share of the steps
        "lr_scheduler_type": section.optimization.lr_scheduler,
        "max_grad_norm": section.optimization.max_grad_norm,
        "logging_steps": config.monitoring.logging_steps,
        "save_strategy": "steps",
        "save_steps": section.checkpoint.save_steps,
        "save_total_limit": None,  # AtomicCheckpoints keeps the newest complete ones
        "report_to": reporters or "none",
        "seed": config.run.seed,
        "disable_tqdm": not config.monitoring.progress,
        "dataloader_num_workers": section.dataloader.num_workers,
        "dataloader_pin_memory": section.dataloader.pin_memory,
        "tf32": config.model.tf32 or None,  # None: leave torch's default (False would touch CUDA settings)
        "bf16": hardware.precision == "bf16",
        "fp16": hardware.precision == "fp16",
        "use_cpu": hardware.device == "cpu",
        # In a dense model every trainable weight (LoRA's or the full model's) takes part in each step's loss, so
        # DDP's search for unused ones costs a graph walk a step and warns that it found none (transformers turns it
        # on for PEFT models); a mixture of experts may leave an expert without tokens in a step, and needs it.
        "ddp_find_unused_parameters": routes_tokens(model),
    }


def routes_tokens(model: PreTrainedModel) -> bool:
    """Whether `model` is a mixture of experts (its config counts experts under one of transformers' names)."""
    config = model.config
    return any(getattr(config, name, None) for name in ("num_experts", "num_local_experts", "n_routed_experts"))


def dropout_disabled(model: ModelConfig) -> bool:
    """TRL's `disable_dropout` for the DPO and reward-model trainers, which default it to on and then set every
    dropout to 0, LoRA's too (model.lora.dropout did nothing there): on unless LoRA dropout is asked for, as the GRPO
    and RLOO trainers, which default it to off, keep it."""
    return not (model.lora.enabled and model.lora.dropout > 0)


def lora_config(model: ModelConfig) -> PeftLoraConfig | None:
    if not model.lora.enabled:
        return None
    return PeftLoraConfig(
        r=model.lora.rank,
        lora_alpha=model.lora.alpha,
        lora_dropout=model.lora.dropout,
        # PEFT takes its every-linear-layer choice as a string, not as a list holding it
        target_modules=ALL_LINEAR if model.lora.target_modules == [ALL_LINEAR] else model.lora.target_modules,
        task_type="CAUSAL_LM",
    )


def callbacks(
    ctx: StageContext,
    section: SFTConfig | TrainingConfig | PairTrainingConfig,
    total_params: int,
    recorder: RolloutRecorder | None = None,
) -> list:
    """Monitoring, non-finite step guard, the time limit if set, atomic checkpoints, and the profiler when asked for."""
    monitoring = ctx.config.monitoring
    resumed = complete_checkpoints(ctx.run.checkpoints(ctx.folder))
    guard = NonFiniteGuard.resumed_from(resumed[-1] if resumed else None)
    peak = measure_matmul_peak(ctx.hardware.dtype, ctx.hardware.device)
    found = [
        guard,
        TrainingMonitor(
            ctx.run,
            ctx.stage,
            monitoring,
            total_params,
            peak,
            recorder,
            nonfinite=guard,
            side_work=ctx.side_work,
            resumed=resumed[-1] if resumed else None,
        ),
    ]
    if section.time_limit_minutes is not None:  # before AtomicCheckpoints: it writes into the staged checkpoint
        found.append(TimeLimit.resumed_from(section.time_limit_minutes, resumed[-1] if resumed else None))
    # a LoRA checkpoint loads as a model (`--model RUN/NN_x/checkpoints/checkpoint-N`): with its base's record
    checkpoints = ctx.run.checkpoints(ctx.folder)
    found.append(AtomicCheckpoints(staging_dir(ctx), checkpoints, section.checkpoint, also_write=record_base))
    if monitoring.profiler.enabled:
        found.append(TorchProfiler(monitoring.profiler, ctx.dir / "profile"))
    return found


def prepare_resume(ctx: StageContext) -> Path | None:
    """The checkpoint to resume from (the newest complete one), with the stage's logs cut back to it.

    Staging debris of a kill mid-save is removed; log lines past the checkpoint are dropped because the resumed
    run redoes those steps, so metrics.jsonl continues without duplicate or missing steps.
    """
    # Every process resumes from the checkpoint the main process found; only the main process clears and cuts, and
    # the others wait for it before any of them writes into the staging folder again.
    found = distributed.from_main(complete_checkpoints(ctx.run.checkpoints(ctx.folder)))
    latest = found[-1] if found else None
    step = checkpoint_step(latest) if latest else 0
    if distributed.is_main():
        shutil.rmtree(staging_dir(ctx), ignore_errors=True)
        ctx.run.truncate_logs(ctx.stage, after_step=step)
    distributed.wait()
    if latest:
        logger.warning("%s: resuming from %s (step %d)", ctx.stage, latest, step)
    return latest


_TRAINED_ON = "checkpoints_trained_on.json"  # in a stage's folder: what its checkpoints trained on (rows, model)


def keep_checkpoints_of(ctx: StageContext, rows_key: str, trained: str | None = None) -> None:
    """Keep the stage's checkpoints only where they trained on the rows `rows_key` digests, and the model `trained`
    (a reference) where given: a --resume whose new settings change the rows (sft2's general data or ratio,
    distillation's traces) went on from steps of the old ones, and its model mixed both; one with another student
    (`r1kit distill --resume --distill.student …`) put the old student's steps on the new one. Where they differ the
    checkpoints are removed and training starts from step 0; checkpoints of an r1kit that recorded neither are kept."""
    folder = ctx.run.checkpoints(ctx.folder)
    if distributed.is_main():
        record = ctx.dir / _TRAINED_ON
        # "trained_model": what the model holds (an earlier record's "model" was its path: not compared)
        now = {"rows": rows_key, "trained_model": _model_key(trained)}
        before = json.loads(record.read_text(encoding="utf-8")) if record.exists() else {}
        changed = [what.removeprefix("trained_") for what, key in now.items() if before.get(what) not in (None, key)]
        if changed and complete_checkpoints(folder):
            logger.warning(
                "%s: its training %s changed since its checkpoints; it starts again from step 0",
                ctx.stage,
                " and ".join(changed),
            )
            shutil.rmtree(folder)
        write_json(record, now)
    distributed.wait()


def _model_key(reference: str | None) -> str | None:
    """A trained model as the checkpoints' record keeps it: a local one by what it holds (`sampled_hash`: the same
    model copied to another path, a node's local disk, is the same; another fine-tune of it is not), a hub id as
    given."""
    if reference is None:
        return None
    path = Path(reference).expanduser()
    return sampled_hash(path) if path.exists() else reference


def pairs_that_fit(ctx: StageContext, trainer: Trainer, given: int, setting: str) -> int:
    """How many of the `given` training pairs TRL kept: it leaves out, without a word, a pair whose chosen or
    rejected reply (the reward model), or whose prompt alone (DPO), does not fit in the stage's max_length `setting`;
    said where some but not all were (none left is train_and_save's error)."""
    kept = len(trainer.train_dataset)
    if 0 < kept < given:
        logger.warning(
            "%s: %d of its %d training pairs do not fit in %s (%d tokens) and are left out by TRL; raise it to train "
            "on them",
            ctx.stage,
            given - kept,
            given,
            setting,
            trainer.args.max_length,
        )
    return kept


def recomputes_activations(asked: bool, model: PreTrainedModel, stage: str) -> bool:
    """Gradient checkpointing where asked and the model can do it (transformers refuses it, at the trainer's start,
    for a model that cannot: some trust_remote_code ones), said where it cannot."""
    if asked and not model.supports_gradient_checkpointing:
        logger.warning("%s: %s cannot recompute activations; it trains without", stage, type(model).__name__)
    return asked and model.supports_gradient_checkpointing


def shards_weights(trainer: Trainer) -> bool:
    """Whether the trainer's accelerate setup splits every weight over the processes (FSDP, DeepSpeed ZeRO-3)."""
    deepspeed = trainer.accelerator.state.deepspeed_plugin if trainer.is_deepspeed_enabled else None
    return trainer.is_fsdp_enabled or (deepspeed is not None and deepspeed.zero_stage == 3)


def train_and_save(trainer: Trainer, tokenizer: PreTrainedTokenizerBase, ctx: StageContext) -> Path:
    """Train (resuming when a complete checkpoint exists) and save the stage's final model, complete or absent."""
    if shards_weights(trainer):  # launched by accelerate itself: `--launch` refused it before starting
        raise ConfigError(f"{ctx.stage}: {distributed.SHARDED_WEIGHTS}")
    trainer.remove_callback(PrinterCallback)  # TrainingMonitor prints each logging step instead
    first_in_line(trainer, next(c for c in trainer.callback_handler.callbacks if isinstance(c, TrainingMonitor)))
    if ctx.config.monitoring.progress:
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(QuietProgress())
    if len(trainer.train_dataset) == 0:  # TRL dropped every row at max_length; its sampler would fail on none
        raise DatasetError(
            f"{ctx.stage}: no training row is left: each is longer than the stage's max_length once tokenized; raise "
            "it (sft.max_length for SFT, SFT 2 and distillation; dpo.max_length; reward_model.max_length)"
        )
    resume = prepare_resume(ctx)
    limit = next((c for c in trainer.callback_handler.callbacks if isinstance(c, TimeLimit)), None)
    if resume is not None and (
        0 < trainer.args.max_steps <= checkpoint_step(resume) or (limit is not None and limit.reached())
    ):
        # Nothing is left to train (killed after the last checkpoint, or the time limit's, before the model was
        # saved): its weights are the stage's. trainer.train would run one more step before it checks either.
        trainer._load_from_checkpoint(str(resume))
        trainer.state.global_step = checkpoint_step(resume)  # the steps it took, for the stage's figures
    else:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    dest = ctx.run.model_dir(ctx.folder)
    marker = {"stage": ctx.stage}
    if trainer.accelerator.is_main_process:  # one writer under `accelerate launch`
        if ctx.config.model.save_adapter and isinstance(trainer.model, PeftModel):  # before merging it away
            adapter = ctx.run.adapter_dir(ctx.folder)
            build_complete(
                adapter, lambda folder: save_adapter(trainer.model, tokenizer, folder, ctx.config.model), marker
            )
        build_complete(dest, lambda folder: save_for_inference(trainer.model, tokenizer, folder), marker)
        shutil.rmtree(staging_dir(ctx), ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return dest
