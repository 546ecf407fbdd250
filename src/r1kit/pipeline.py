"""`r1kit run`: a recipe's stages in order, each into RUN/NN_<name>, each model evaluated on the same held-out problems.

RUN/manifest.json lists the stages and their status. RUN/NN_<name>/manifest.json holds what the stage ran with (its
resolved config), what it consumed (content hashes of its model and data), its figures, its evaluation and its time.

Running the same command again skips every complete stage whose config and inputs are unchanged and resumes an
interrupted one from its newest complete checkpoint. A stage whose config or inputs changed is redone, and so is every
later stage that reads what it made (its model, its dataset, or its name in the config), with one line saying why. A
change that would discard every finished stage is refused (that is another run: `--out`, or `--from FIRST_STAGE` to
redo it here). `--from STAGE` redoes a stage and those after it; `--only STAGE` runs one stage on the complete stages
before it; the complete stages after it that read what it made are then listed as outdated in RUN/manifest.json
until the next run checks them, and those that read nothing of it stay in the run's summary. A stage's own `dataset`
(in its recipe config) is the data it trains on; every model is evaluated on the run's held-out problems.
"""

from __future__ import annotations

import difflib
import importlib
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from datasets import Dataset

from r1kit import distributed
from r1kit.atomic import content_hash, json_digest, write_json
from r1kit.config.schema import R1kitConfig, StageSpec, VerificationConfig
from r1kit.config.sources import ConfigError
from r1kit.data.loading import HeldOut, Splits, is_local_data, load_splits, read_rows, without_held_out
from r1kit.data.preferences import load_pairs
from r1kit.models import adapter_base_named, base_hash, looks_local
from r1kit.monitoring.console import print_eval_table
from r1kit.rewards.reward_model import names_a_stage
from r1kit.runs import (
    RunDir,
    RunDirError,
    changes_said,
    complete_checkpoints,
    manifest_started_in,
    model_folder_of,
    names_what_it_trains_on,
    outdated_stages,
    read_manifest,
    stage_named,
)
from r1kit.stages.common import (
    StageContext,
    StageInputs,
    StageOutput,
    check_data,
    check_named_models,
    clear_stage,
    config_changes,
    files_read,
    read_data,
    run_recorded,
    setup,
    stage_values,
    student_model_settings,
    student_of,
)
from r1kit.stages.evaluate import evaluate, in_file_order, judge_folders, judges_named
from r1kit.stages.registry import MAKES, PAIR_KINDS, ROLLOUT_KINDS, STAGES
from r1kit.stages.sft2 import check_general_data
from r1kit.stats import paired_changes

logger = logging.getLogger("r1kit")


def check_inputs(config: R1kitConfig, from_stage: str | None = None, only: str | None = None) -> R1kitConfig:
    """What `run` checks before it opens its run folder (the recipe, the data, its stages' own data, the plan against
    the run folder), with nothing opened: under `--launch` the launching process says a refusal once, before any
    process starts. The config the run goes on with (chat data's prompt)."""
    return read_data(config, "run", _checks(config, from_stage, only, {}, []))[0]


def _checks(
    config: R1kitConfig,
    from_stage: str | None,
    only: str | None,
    own_data: dict[str, Splits],
    planned: list[tuple[dict[str, bool], dict[str, dict[str, Any]]]],
) -> Callable[[R1kitConfig, Splits], None]:
    """The run's checks of its recipe, now, and the check of its data `setup` makes before the run folder opens: it
    fills `own_data` (stage → the data set of its own) and `planned` (the plan, `_plan`'s)."""
    names = [spec.name for spec in config.stages]
    for flag, name in (("--from", from_stage), ("--only", only)):
        if name is not None and name not in names:
            raise ConfigError(f"{flag} {name}: not a stage of this recipe ({', '.join(names)})")
    if from_stage is not None and only is not None:
        raise ConfigError("--from and --only: give one (--from redoes a stage and those after it, --only one stage)")
    _check_stage_references(config)
    _check_stage_files(config)

    def check(config: R1kitConfig, splits: Splits) -> None:  # before the run folder: bad data leaves none behind
        # and before any work: a stage's bad data file costs nothing
        own_data.update(_own_data(config, splits.held_out))
        # and the plan, before the folder is opened: a refused run changes nothing in it (opening it clears a failed
        # start's logs and evaluations)
        folder = Path(config.run.output_dir).expanduser() if config.run.output_dir else None
        planned.append(_plan(config, folder, from_stage, only))
        _check_data(config, splits, own_data, finished=_finished(planned[0][1]))
        check_named_models(config, "run", _may_train(config, planned[0], only, folder))

    return check


def _may_train(
    config: R1kitConfig, plan: tuple[dict[str, bool], dict[str, dict[str, Any]]], only: str | None, folder: Path | None
) -> list[str]:
    """The stages a command may train, as far as can be told before any model is read: those --only leaves aside
    are not, and a complete one is where --from forces it, its config changed or it reads one that may train (a
    changed input of another kind is found when the stage is reached)."""
    forced, manifests = plan
    run_started_in = RunDir(folder).started_in() if folder is not None else None
    reads, training = _reads(config), []
    for index, spec in enumerate(config.stages, start=1):
        if only is not None and spec.name != only:
            continue
        manifest = manifests.get(f"{index:02d}_{spec.name}") or {}
        if forced[spec.name] or manifest.get("status") != "complete" or reads[spec.name] & set(training):
            training.append(spec.name)
            continue
        stage = config.for_stage(spec)
        saved = (manifest.get("fingerprint") or {}).get("config")
        started_in = manifest_started_in(manifest, run_started_in)  # its relative paths, as the run loop reads them
        if saved != json_digest(stage_values(stage, spec.stage_kind)) and _changed(
            manifest.get("config") or {}, stage, spec, started_in
        ):
            training.append(spec.name)
    return training


def run(config: R1kitConfig, from_stage: str | None = None, only: str | None = None) -> dict[str, Any]:
    own_data: dict[str, Splits] = {}
    planned: list[tuple[dict[str, bool], dict[str, dict[str, Any]]]] = []
    check = _checks(config, from_stage, only, own_data, planned)
    # the models the win rate's settings name (a stage's: None until made)
    judges = judge_folders(config, [spec.name for spec in config.stages])
    ctx, base, splits = setup(config, "run", check=check)
    config = ctx.config  # with the prompt setup chose for chat data: every stage trains, and the run saves, with it
    run_dir = ctx.run
    started_in = run_dir.started_in()  # where its stages' relative paths are from: read before it is saved again
    hashes = _Hashes()
    plan, manifests = planned[0]
    outdated = _outdated(run_dir)  # listed so by an earlier --only: checked below
    if run_dir.continued:
        logger.warning("continuing the run in %s", run_dir.root)

    evals: dict[str, dict[str, Any]] = {}  # label → its evaluation, the base model's first
    # --only: the evaluations of the stages before its stage wait until that stage passed its checks (a refused
    # command changes nothing: new evaluation settings had redone the saved evaluations first)
    holding = only is not None
    waiting: list[tuple[str, Callable[[], dict[str, Any]]]] = []

    def evaluated_in_turn(label: str, evaluation: Callable[[], dict[str, Any]]) -> None:
        """evals[label] = evaluation(), once: now, or with those waiting once `holding` ends."""
        waiting.append((label, evaluation))
        while waiting and not holding:
            label, evaluation = waiting.pop(0)
            if label not in evals:
                evals[label] = evaluation()

    # The base model's evaluation: after the first stage's refusal (a refused command changes nothing), before its
    # work is cleared (a kill in this evaluation leaves the run as it was).
    base_evaluated = partial(
        evaluated_in_turn, "base", partial(_evaluated, ctx, base, "base", splits.test, hashes, judges=judges)
    )

    outputs: dict[str, StageOutput] = {}
    labels = {base: "base"}  # model → the label it is evaluated under
    started_from: dict[str, str | None] = {}  # stage label → the label of the model it trained (None: not evaluated)
    taught_by: dict[str, str | None] = {}  # a distillation stage's label → its teacher's
    trained: set[str] = set()  # the stages this command (re)trained: complete ones reading them are outdated
    reads = _reads(config)
    left_out: set[str] = set()  # after --only's stage: those that read what it redid, or what was left out
    model = base
    for index, spec in enumerate(config.stages, start=1):
        folder = f"{index:02d}_{spec.name}"
        past_only = only is not None and only in outputs  # --only's stage is done: the others stay as they are
        if past_only and reads[spec.name] & (trained | left_out):
            left_out.add(spec.name)  # outdated: listed so in RUN/manifest.json, and checked by the next run
            continue
        stage_ctx = ctx.for_stage(config.for_stage(spec), spec.name, folder)
        inputs = _inputs(spec, base, model, own_data.get(spec.name, splits), outputs)
        fingerprint = _fingerprint(stage_ctx.config, inputs, spec, hashes)
        manifest = manifests.get(folder, {})  # as the main process read it before any work: one decision for all
        paths_from = manifest_started_in(manifest, started_in)
        same = _same_work(manifest, fingerprint, stage_ctx.config, spec, paths_from)
        gone = _output_gone(manifest, run_dir.root)
        if manifest.get("status") == "complete" and same and not plan[spec.name] and not gone:
            output = StageOutput.from_json(manifest["output"], run_dir.root)
            checked = " (outdated, but what it reads is unchanged)" if spec.name in outdated else ""
            logger.warning("%s: complete, skipped%s", folder, checked)
            base_evaluated()
        elif past_only:
            left_out.add(spec.name)  # after --only's stage, one not complete with this config: left as it is
            continue
        elif only is not None and spec.name != only:
            raise RunDirError(
                f"--only {only}: {folder}, before it, is not complete with this config and what it reads"
                f"{f' (its {gone} is gone)' if gone else ''}; run without --only first"
            )
        else:
            redone = _why_redone(
                stage_ctx, spec, manifest, fingerprint, plan[spec.name], first=index == 1, started_in=paths_from
            )
            if gone and not redone:
                redone = f"{folder}: complete, but its {gone} is gone; redoing it"
            holding = False  # the stage to train passed its checks
            base_evaluated()
            if distributed.is_main():  # an interrupted run's manifest and report show which stage was at work
                if not trained:  # the first stage this command trains: no refusal of the plan can come any more
                    run_dir.save_config(config)
                    # the summary of the run before, whose models this one replaces (a redo killed halfway would
                    # leave its figures and final model beside the new config)
                    run_dir.path("summary.json").unlink(missing_ok=True)
                _write_run_manifest(
                    run_dir, config, outputs, trained | {spec.name}, reads, (started_from, taught_by), spec.name
                )
            if redone:
                logger.warning("%s", redone)
                clear_stage(stage_ctx)
            output = _run_stage(stage_ctx, spec, inputs, fingerprint)
            trained.add(spec.name)
        outputs[spec.name] = output
        if output.model is not None and output.evaluate:
            # distillation trains its student (the base model unless distill.student), not the teacher it reads
            start = (
                student_of(stage_ctx.config.distill.student, inputs, config)
                if spec.stage_kind == "distill"
                else inputs.model
            )
            started_from[spec.name] = labels.get(start)
            if spec.stage_kind == "distill":  # what the student lost against its teacher (R1 paper, §4.1)
                taught_by[spec.name] = labels.get(inputs.model)
            model = str(output.model)
            labels[model] = spec.name
            made = _judges_made(config, judges, outputs)
            asking = ctx
            if spec.stage_kind == "distill":  # the student is asked with the chat template it trained with
                student = student_model_settings(stage_ctx.config)
                asking = replace(ctx, config=ctx.config.model_copy(update={"model": student}))
            evaluated_in_turn(
                spec.name, partial(_evaluated, asking, model, spec.name, splits.test, hashes, stage_ctx.dir, made)
            )
        if distributed.is_main() and not holding:
            _write_run_manifest(run_dir, config, outputs, trained, reads, (started_from, taught_by))
    if distributed.is_main() and left_out:  # set aside after --only's stage: outdated where complete
        _write_run_manifest(run_dir, config, outputs, trained, reads, (started_from, taught_by), set_aside=left_out)

    makers = {spec.name for spec in config.stages if "model" in MAKES[spec.stage_kind]}
    summary = _summary(run_dir, model, evals, outputs, (started_from, taught_by), makers)
    if distributed.is_main():  # every process ends with the same summary; one writes and shows it
        if not trained:  # every stage skipped: settings that redo no stage are saved too
            run_dir.save_config(config)
        write_json(run_dir.path("summary.json"), summary)
        print_eval_table(summary["evaluations"], title=f"r1kit run · {run_dir.root}", paired=summary["paired"])
        for name, figures in summary["stage_figures"].items():
            logger.warning("  %s: %s", name, ", ".join(f"{key} {value}" for key, value in figures.items()))
        for name in summary["made_no_model"]:  # not in the table, which has a column per model
            logger.warning(
                "  %s made no model: it kept nothing to train on (its warnings say why); the model before it went on",
                name,
            )
        if config.monitoring.report:
            _write_report(run_dir)
    return summary


def _write_report(run_dir: RunDir) -> None:
    """RUN/report.html, said; a failure is said, not raised: the run is done and saved, the report only shows it."""
    try:
        from r1kit.monitoring.report import write_report  # matplotlib: imported where a report is drawn

        logger.warning("report: %s", write_report(run_dir.root))
    except Exception as error:
        logger.warning(
            "the report could not be written (%s: %s); `r1kit report %s` tries again",
            type(error).__name__,
            " ".join(str(error).split())[:300],
            run_dir.root,
        )


# ------------------------------------------------------------------------------------------------------- planning


def _plan(
    config: R1kitConfig, root: Path | None, from_stage: str | None, only: str | None
) -> tuple[dict[str, bool], dict[str, dict[str, Any]]]:
    """Stage name → forced to run again (by --from or --only), and the manifest of every stage folder in the run
    folder `root` (None: a new one; NN_<name> → manifest, read once by the main process). Three refusals: --only on
    a stage whose earlier stages never finished, another recipe's stages in the folder, and a change that would
    discard the finished first stage unasked (with or without --from / --only, unless they name the first stage)."""
    names = [spec.name for spec in config.stages]
    folders = [f"{index:02d}_{name}" for index, name in enumerate(names, 1)]
    start = names.index(from_stage) if from_stage else names.index(only) if only else len(names)
    forced = {name: index >= start and (only is None or name == only) for index, name in enumerate(names)}
    found = root.glob("*/manifest.json") if root is not None else []
    manifests = distributed.from_main(
        {path.parent.name: read_manifest(path.parent) for path in found} if distributed.is_main() else None
    )
    if only is not None:
        unfinished = [folder for folder in folders[:start] if manifests.get(folder, {}).get("status") != "complete"]
        if unfinished:
            raise RunDirError(
                f"--only {only}: {', '.join(unfinished)}, before it, never finished in {root or 'a new run folder'}; "
                "run without --only first"
            )
    _check_same_stages(config, root, manifests)
    first, done = config.stages[0], manifests.get(folders[0], {})
    if forced[first.name] or done.get("status") != "complete":
        return forced, manifests
    started_in = manifest_started_in(done, RunDir(root).started_in() if root is not None else None)
    changed = _changed(done.get("config", {}), config.for_stage(first), first, started_in)
    if changed:
        asked = (
            f" (--from {from_stage} would redo it too)"
            if from_stage
            else f" (--only {only} needs it complete with this config)"
            if only
            else ""
        )
        go_on = "without the changed setting" if config.run.resume else "with --resume (without the changed setting)"
        raise RunDirError(
            f"{root} holds a run with another config ({changes_said(changed)}) and finished "
            f"training (01_{first.name}); nothing of it would be kept{asked}. Continue it as saved {go_on}, redo it "
            f"here with --from {names[0]}, or choose another folder with --out"
        )
    return forced, manifests


def _check_same_stages(config: R1kitConfig, root: Path | None, manifests: dict[str, dict[str, Any]]) -> None:
    """A run folder holds one recipe's stages: a stage folder (in `manifests`, folder → its manifest) where this
    recipe has another stage (or none) was made by another recipe, whose folders, logs and evaluations this run would
    mix with its own."""
    expected = {f"{i:02d}_{spec.name}": spec.stage_kind for i, spec in enumerate(config.stages, 1)}
    other = sorted(
        folder
        for folder, manifest in manifests.items()
        if folder[:2].isdigit() and manifest.get("kind") not in (None, expected.get(folder))
    )
    if other:
        raise RunDirError(
            f"{root} holds stage {other[0]} of another recipe (this recipe's stages: {', '.join(expected)}); "
            "run that recipe again (--recipe, or --config RUN/config.yaml), or choose another folder with --out"
        )


def _check_stage_references(config: R1kitConfig) -> None:
    """Model settings that name a stage (a reward model; the win rate's judge and reference) name one that makes
    such a model, checked before any work: the stage reading them would find a misspelt name only after the stages
    before it had trained, and the win rate would silently stay empty."""
    kinds = {spec.name: spec.stage_kind for spec in config.stages}

    def check(key: str, value: str | None, made: str, stages: dict[str, str]) -> None:
        if value and names_a_stage(value) and (value not in stages or made not in MAKES[stages[value]]):
            makers = [name for name, kind in stages.items() if made in MAKES[kind]]
            raise ConfigError(
                f"{key} {value!r}: not a folder here, a hub id (owner/name), or a stage of this recipe that makes a "
                f"{made.replace('_', ' ')} ({', '.join(makers) or 'none'})"
            )

    for index, spec in enumerate(config.stages):  # models named by their stage: one before it that makes a model
        stage, earlier = config.for_stage(spec), {name: kinds[name] for name in list(kinds)[:index]}
        named = {  # a misspelt stage was loaded as a hub id once the stages before it had trained
            "cold_start.refine_from": stage.cold_start.refine_from
            if spec.stage_kind == "cold_start" and "refine" in stage.cold_start.methods
            else None,
            "distill.student": stage.distill.student if spec.stage_kind == "distill" else None,
        }
        for key, value in named.items():
            if value and _meant_as_a_stage(value, kinds):
                check(f"stages: {spec.name}: {key}", value, "model", earlier)
        if spec.stage_kind != "distill":
            continue
        student = stage.distill.student
        makers = [name for name, kind in earlier.items() if "model" in MAKES[kind]]
        teacher = spec.model_from or (makers[-1] if makers else "base")
        if (student or "base") == teacher:  # refused only once distillation started, after the stages before it
            said = f"distill.student {student!r} is" if student else "distill.student (unset: the run's base model) is"
            raise ConfigError(
                f"stages: {spec.name}: {said} its teacher (the model it starts from) itself; name an earlier stage's "
                "model or another model, or put a stage that makes a model before it"
            )
    check("evaluation.reward_model", config.evaluation.reward_model, "reward_model", kinds)
    check("evaluation.win_rate_against", config.evaluation.win_rate_against, "model", kinds)
    for index, spec in enumerate(config.stages):
        stage = config.for_stage(spec)
        # only the stages that score rollouts load it (an SFT stage before the reward model is trained reads no rewards)
        if spec.stage_kind in ROLLOUT_KINDS and "reward_model" in stage.rewards.functions:
            earlier = {name: kinds[name] for name in list(kinds)[:index]}
            path = stage.rewards.reward_model.path
            later = [name for name in list(kinds)[index:] if "reward_model" in MAKES[kinds[name]]]
            where = f"stages: {spec.name}: rewards.reward_model.path"
            if path in later and names_a_stage(path):
                raise ConfigError(
                    f"{where} {path!r}: that stage runs after {spec.name}; its reward model does not "
                    "exist yet when this stage runs"
                )
            check(where, path, "reward_model", earlier)


def _meant_as_a_stage(value: str, stages: dict[str, str]) -> bool:
    """Whether a model setting's value names a stage of the recipe, or nearly does (`sfft`): a hub id without a slash
    (`gpt2`), a built-in alias or `RUN:STAGE` of another run is none.

    >>> stages = {"sft": "sft", "grpo": "grpo"}
    >>> [_meant_as_a_stage(v, stages) for v in ("sft", "sfft", "gpt2", "tiny-random", "runs/a:sft")]
    [True, True, False, False, False]
    """
    return value in stages or (names_a_stage(value) and bool(difflib.get_close_matches(value, stages, cutoff=0.75)))


# The files of `files_read` whose existence is checked up front: the key that names each, and what looks local.
# (A reward model may name an earlier stage: `_check_stage_references` checks it.)
_LOCAL_FILES = {
    "general_data": ("sft2.general_dataset", is_local_data),
    "student": ("distill.student", looks_local),
    "refine_model": ("cold_start.refine_from", looks_local),
    "preferences": ("preferences.dataset", is_local_data),
}


def _check_stage_files(config: R1kitConfig) -> None:
    """Files and folders a later stage reads (its general chat data, its preference pairs, its student model, the
    model cold start refines) exist, checked before any work: the stage would find a typo only after the stages
    before it had trained."""
    for spec in config.stages:
        for role, value in files_read(config.for_stage(spec), spec.stage_kind).items():
            if role not in _LOCAL_FILES:
                continue
            key, local = _LOCAL_FILES[role]
            if local(value) and not model_folder_of(value).exists():  # RUN:STAGE: that stage's model
                named = stage_named(value)
                what = f"no stage {named[1]!r} with a model in {named[0].root}" if named else "no such file or folder"
                raise ConfigError(f"stages: {spec.name}: {key} {value!r}: {what}")


def _own_data(config: R1kitConfig, held_out: HeldOut) -> dict[str, Splits]:
    """Stage name → the data it trains on, for each stage whose own config sets `dataset`. Every model is still
    evaluated on the run's held-out problems (`held_out`: all of them, those dataset.max_test_samples leaves unscored
    too), so the stages' scores stay paired, and those problems (with a built-in task's reworded twins) are left out
    of its training, as the held-out part of its own data is, and out of what it draws from elsewhere (SFT 2's general
    replies)."""
    own = {}
    for spec in config.stages:
        if "dataset" in spec.config:
            dataset = config.for_stage(spec).dataset
            data = load_splits(dataset)
            train = without_held_out(data.train, held_out, dataset)
            if len(train) < len(data.train):
                logger.warning(
                    "stages: %s: %d rows of %s are the run's held-out problems (or a built-in task's rewording of "
                    "one), on which every model is scored: left out of its training",
                    spec.name,
                    len(data.train) - len(train),
                    data.source,
                )
            own[spec.name] = replace(data, train=train, held_out=data.held_out | held_out)
            logger.warning("stages: %s trains on %s (%d rows; its own dataset)", spec.name, data.source, len(train))
    return own


def _finished(manifests: dict[str, dict[str, Any]]) -> set[str]:
    """The folders (NN_<stage>) whose stage is complete."""
    return {folder for folder, manifest in manifests.items() if manifest.get("status") == "complete"}


def _check_data(config: R1kitConfig, splits: Splits, own_data: dict[str, Splits], finished: set[str]) -> None:
    """The data each stage trains on has what it needs, checked before the base evaluation: a stage's problems, SFT
    2's general data (a hub id offline, no reply to train on), and a local preference-pairs file read whole (a bad
    pair found by DPO, after SFT had trained, could only be skipped by a dataset.on_bad_row that redoes SFT).
    `finished`: the folders of complete stages, whose GRPO prompts are not
    counted against this command's batch (continued on more processes, a finished run was refused for a stage it
    skips; one redone is counted by the stage)."""
    for index, spec in enumerate(config.stages, start=1):
        stage = config.for_stage(spec)
        if spec.data_from is None:  # an earlier stage's dataset does not exist yet
            data = own_data.get(spec.name, splits)
            where = f"{data.source}: stages: {spec.name} ({spec.stage_kind})"
            count = f"{index:02d}_{spec.name}" not in finished
            check_data(stage, spec.stage_kind, data.train, where, count_prompts=count)
        prefs = stage.preferences
        if spec.stage_kind in PAIR_KINDS and prefs.dataset is not None and is_local_data(prefs.dataset):
            load_pairs(prefs, stage.dataset.on_bad_row)  # read once: the stages reuse it
        general = stage.sft2.general_dataset and stage.sft2.general_ratio > 0  # at 0 it is never read
        if spec.stage_kind == "sft2" and general and f"{index:02d}_{spec.name}" not in finished:
            check_general_data(stage.sft2, own_data.get(spec.name, splits).held_out.questions)


def _inputs(spec: StageSpec, base: str, latest: str, splits: Splits, outputs: dict[str, StageOutput]) -> StageInputs:
    """What a stage starts from; `splits`: the run's data, or the stage's own."""
    model = latest if spec.model_from is None else base if spec.model_from == "base" else outputs[spec.model_from].model
    if model is None:  # a model-making stage that kept nothing to train on (said in its log) makes none
        raise RunDirError(f"{spec.name}: model_from {spec.model_from!r} made no model in this run (see its log)")
    if spec.data_from:
        dataset = outputs[spec.data_from].dataset
        if dataset is None:
            raise ConfigError(f"stages: {spec.name}: data_from {spec.data_from!r} wrote no dataset")
        splits = replace(splits, train=read_rows(dataset), source=str(dataset))
    return StageInputs(model=str(model), base=base, splits=splits, earlier=dict(outputs))


def _fingerprint(config: R1kitConfig, inputs: StageInputs, spec: StageSpec, hashes: _Hashes) -> dict[str, Any]:
    """What a stage's result depends on: its config and the content of what it reads (its model, its data, and the
    files or earlier stages of `files_read`). A stage that reads nothing of a redone stage (PPO beside DPO, both from
    SFT) is kept."""
    consumed = {
        "model": hashes.of(inputs.model),
        **hashes.base_of(inputs.model),
        "data": hashes.of(inputs.splits.source),
    }
    if spec.stage_kind == "distill":  # the model it trains, however named (unset: the base): another is new work
        consumed["student"] = hashes.of(student_of(config.distill.student, inputs, config))
    for role, reference in files_read(config, spec.stage_kind, inputs.earlier).items():
        if role == "student":
            continue
        earlier = inputs.earlier.get(reference)
        if earlier is None:  # a file, folder or hub id
            consumed[role] = hashes.of(reference)
            continue
        for kind, path in (("model", earlier.model), ("dataset", earlier.dataset)):  # an earlier stage, by name
            if path is not None:
                consumed[f"{reference}.{kind}"] = hashes.of(str(path))
    return {"config": json_digest(stage_values(config, spec.stage_kind)), "inputs": consumed}


def _output_gone(manifest: dict[str, Any], root: Path) -> str | None:
    """What a complete stage's manifest says it made (its model folder, its data set) and is no longer there (a person
    deleted it): skipped as complete, the next stage or the evaluation failed to load it."""
    if manifest.get("status") != "complete":
        return None
    made = manifest.get("output") or {}
    gone = [what for what in ("model", "dataset") if made.get(what) and not (root / made[what]).exists()]
    return f"{gone[0]} ({root / made[gone[0]]})" if gone else None


def _same_work(
    manifest: dict[str, Any], now: dict[str, Any], config: R1kitConfig, spec: StageSpec, started_in: Path | None
) -> bool:
    """Whether a stage's saved work fits: the same config (by its digest, or setting by setting for a folder of an
    earlier r1kit, or one whose paths are written another way: `config_changes`), and the same content of every
    input both record (a manifest written before r1kit recorded an input keeps its work rather than being redone for
    it)."""
    saved = manifest.get("fingerprint", {})
    same_config = saved.get("config") == now["config"] or not _changed(
        manifest.get("config", {}), config, spec, started_in
    )
    return same_config and not _changed_inputs(saved, now)


def _changed_inputs(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    before, after = saved.get("inputs", {}), now["inputs"]
    return [name for name in after if name in before and before[name] != after[name]]


def _changed(
    saved: dict[str, Any], config: R1kitConfig, spec: StageSpec, started_in: Path | None
) -> list[tuple[str, Any, Any]]:
    """`config_changes` of a stage's saved config (`started_in`: the folder the run's relative paths are from)."""
    if not saved:
        return [("config", "(none saved)", "this one")]
    return config_changes(saved, config, spec.stage_kind, started_in)


def _why_redone(
    ctx: StageContext,
    spec: StageSpec,
    manifest: dict[str, Any],
    fingerprint: dict,
    forced: bool,
    first: bool,
    started_in: Path | None,
) -> str | None:
    """Why a stage folder's work no longer fits (config or inputs changed, or redo asked for), to be said before it
    is cleared; None where it stands: an interrupted stage with the same fingerprint keeps its checkpoints and
    resumes. The finished first stage made from other inputs (its data file edited, say) is not discarded unasked,
    as `_plan` refuses a change of its config: refused here, before anything is written."""
    if not manifest or (_same_work(manifest, fingerprint, ctx.config, spec, started_in) and not forced):
        return None
    change = ""
    changes = _changed(manifest.get("config", {}), ctx.config, spec, started_in)
    if changes:
        key, before, now = changes[0]
        change = f"its config changed ({key}: {before!r} → {now!r})"
    if forced:  # the change is said too: --only with a new value read as a plain redo
        why = "asked for by --from / --only" + (f", and {change}" if change else "")
    elif change and _resumable(ctx, manifest, fingerprint, [key for key, _, _ in changes]):
        # `--resume --training.max_steps 100`: goes on from its checkpoint, as a stage run alone does (a new
        # optimizer setting is refused before this, open_run's check)
        logger.warning("%s: %s; --resume goes on from its checkpoint with it", ctx.folder, change)
        return None
    elif change:
        why = change
    else:
        changed = ", ".join(_changed_inputs(manifest.get("fingerprint", {}), fingerprint))
        if first and manifest.get("status") == "complete":
            raise RunDirError(
                f"{ctx.run.root} holds finished training ({ctx.folder}) made from other inputs: its {changed} changed "
                f"since; nothing of it would be kept. Redo it here with --from {spec.name}, or choose another folder "
                "with --out"
            )
        why = f"what it reads changed ({changed})"
    finished = manifest.get("status") == "complete"  # work the user may have meant to compare
    replaced = "; what it made is replaced (another --out keeps both)" if finished else ""
    return f"{ctx.folder}: {why}; redoing it{replaced}"


def _resumable(ctx: StageContext, manifest: dict[str, Any], fingerprint: dict, changed: list[str]) -> bool:
    """--resume of an interrupted stage (a complete checkpoint, no final model) that reads the same inputs: the same
    fingerprint, and no `changed` setting that names its model, data or prompt (a built-in task's other split or a new
    system prompt kept the checkpoint, trained on what are now held-out problems; a stage alone starts over)."""
    return (
        ctx.config.run.resume
        and manifest.get("status") != "complete"
        and not _changed_inputs(manifest.get("fingerprint", {}), fingerprint)
        and not any(map(names_what_it_trains_on, changed))
        and bool(complete_checkpoints(ctx.run.checkpoints(ctx.folder)))
    )


def _run_stage(ctx: StageContext, spec: StageSpec, inputs: StageInputs, fingerprint: dict) -> StageOutput:
    module = importlib.import_module(STAGES[spec.stage_kind])
    logger.warning("%s: starting (%s from %s)", ctx.folder, spec.stage_kind, inputs.model)
    facts = {"fingerprint": fingerprint, "config": stage_values(ctx.config, spec.stage_kind)}
    return run_recorded(ctx, spec.stage_kind, inputs, module.run, **facts)[0]


# ----------------------------------------------------------------------------------------------------- evaluation


def _judges_made(
    config: R1kitConfig, judges: dict[str, str | None], outputs: dict[str, StageOutput]
) -> dict[str, str | None]:
    """`judges` (`judge_folders`) with a recipe stage named there mapped to its model once made."""
    named = judges_named(config)
    made = {name: str(output.model) for name, output in outputs.items() if output.model is not None}
    return {key: folder if folder is not None else made.get(named[key]) for key, folder in judges.items()}


def _evaluated(
    ctx: StageContext,
    model: str,
    label: str,
    held_out: Dataset,
    hashes: _Hashes,
    manifest: Path | None = None,
    judges: dict[str, str | None] | None = None,
) -> dict[str, Any]:
    """A model's evaluation with the run's settings (every stage on the same problems and prompt), reused while the
    model, the held-out problems and the evaluation settings are the same; also recorded in the stage's manifest."""
    key = _evaluation_key(ctx, model, held_out, hashes, judges or {})
    path = ctx.run.eval_path(label)
    # one decision for all
    saved = distributed.from_main(_saved_evaluation(path))
    # one saved before timed-out answers were scored wrong (no unverified_answers) left some problems out where it
    # excluded any: scored again, so every stage of the table counts the same problems
    scored_alike = saved is not None and ("unverified_answers" in saved or not saved.get("excluded"))
    if saved is not None and saved.get("key") == key and scored_alike:
        result = saved
    else:
        result = evaluate(ctx, model, held_out, label, judges=judges, key=key)
    if distributed.is_main() and manifest is not None:  # a reused one too: killed before its manifest recorded it
        record = read_manifest(manifest)
        if record.get("evaluation") != _figures(result):
            record["evaluation"] = _figures(result)
            write_json(manifest / "manifest.json", record)
    distributed.wait()  # written before any process goes on to read the run folder
    return result


def _saved_evaluation(path: Path) -> dict[str, Any] | None:
    """An evaluation saved in the run folder, or None (none, or damaged: it is done again, said)."""
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        saved = None
    if not isinstance(saved, dict):
        logger.warning("%s is damaged (not an evaluation's JSON): evaluating again", path)
        return None
    return saved


def _evaluation_key(
    ctx: StageContext, model: str, held_out: Dataset, hashes: _Hashes, judges: dict[str, str | None]
) -> str:
    """What an evaluation's result depends on: the model and judges by content, the problems, the settings, the
    prompts' text, the verification's time limit and the numerics; an evaluation saved under the same key is
    reused."""
    config = ctx.config
    settings = config.evaluation
    # the reward model scoring and the model the win rate is against, by content (None: a stage's, not yet made)
    judged = {key: None if folder is None else hashes.of(folder) for key, folder in judges.items()}
    timeout = config.rewards.verification.timeout_seconds
    # a hub model is known by its id alone: which revision (or GGUF file of the repo) is part of what it is
    hub = [config.model.revision, config.model.gguf_file] if not model_folder_of(model).exists() else []
    return json_digest(
        {
            "model": hashes.of(model),
            **hashes.base_of(model),  # an adapter's base
            **({"revision": hub} if any(hub) else {}),  # none set: the key of the evaluations saved before it
            "judges": judged,
            "evaluation": settings.model_dump(exclude={"every_steps", "during_training_samples"}),
            "dataset": config.dataset.model_dump(),
            # the problems themselves: a data file edited in place keeps its name, and an evaluation of the old
            # problems would be paired problem by problem with one of the new
            "problems": json_digest(held_out.to_dict()),
            "numerics": [ctx.hardware.device, ctx.hardware.precision],  # bf16 and fp32 greedy answers differ
            "prompt": config.prompt.system,
            "chat_template": config.model.chat_template,  # the prompts' text
            # an answer whose verification outlasts it scores wrong (as the stages that judge samples read it); at
            # its default, left out: the evaluations saved before it was in the key stay valid
            **({"verification_timeout": timeout} if timeout != VerificationConfig().timeout_seconds else {}),
            "seed": config.run.seed if settings.num_samples > 1 else None,  # pass@k's samples; greedy has no seed
            # a held-out file's first rows were scored before: saved evaluations of them are not paired with a draw
            **({"drawn_from_the_file": True} if in_file_order(config.dataset) else {}),
        }
    )


# ------------------------------------------------------------------------------------------------------- summary


def _write_run_manifest(
    run_dir: RunDir,
    config: R1kitConfig,
    outputs: dict[str, StageOutput],
    trained: set[str],
    reads: dict[str, set[str]],
    compared_with: tuple[dict[str, str | None], dict[str, str | None]],
    running: str = "",
    set_aside: set[str] = frozenset(),
) -> None:
    """Each stage's status, and the evaluation of the model it started from and a student's teacher's
    (`compared_with`: `paired_changes`'s started_from and taught_by; the report of a run killed before its summary
    pairs them). A complete stage this command has not reached that reads (`reads`, directly or through
    another) a stage it trained or is training (`trained`), or that it set aside after --only's stage (`set_aside`:
    made from what has changed since, or with another config), is `outdated`: the next run checks it (it is kept only
    if its inputs are the same as before)."""
    stages = []
    for index, spec in enumerate(config.stages, start=1):
        folder = f"{index:02d}_{spec.name}"
        manifest = read_manifest(run_dir.root / folder)
        status = "running" if spec.name == running else manifest.get("status", "pending")
        if status == "complete" and spec.name not in outputs and (reads[spec.name] & trained or spec.name in set_aside):
            status = "outdated"
        stages.append(
            {
                "name": spec.name,
                "kind": spec.stage_kind,
                "folder": folder,
                "status": status,
                "seconds": manifest.get("seconds"),
                "started_from": compared_with[0].get(spec.name),
                "taught_by": compared_with[1].get(spec.name),
                "reached": spec.name in outputs,  # by this command: a stage it did not reach may predate a redo
            }
        )
    write_json(run_dir.path("manifest.json"), {"stages": stages})


def _outdated(run_dir: RunDir) -> set[str]:
    """The stages RUN/manifest.json lists as outdated (`_write_run_manifest`), as the main process read it."""
    return set(distributed.from_main(sorted(outdated_stages(run_dir.root)) if distributed.is_main() else None))


def _reads(config: R1kitConfig) -> dict[str, set[str]]:
    """Stage name → the earlier stages whose output it reads, directly or through another: its start model (the
    latest model unless model_from), its data_from, and stages its config names (`files_read`)."""
    reads: dict[str, set[str]] = {}
    latest = None
    for spec in config.stages:
        start = latest if spec.model_from is None else spec.model_from
        named = files_read(config.for_stage(spec), spec.stage_kind, reads).values()
        direct = {name for name in (start, spec.data_from, *named) if name in reads}
        reads[spec.name] = direct.union(*(reads[name] for name in direct))
        if "model" in MAKES[spec.stage_kind]:
            latest = spec.name
    return reads


def _summary(
    run_dir: RunDir,
    final: str,
    evals: dict[str, dict[str, Any]],
    outputs: dict[str, StageOutput],
    compared_with: tuple[dict[str, str | None], dict[str, str | None]],
    makers: set[str],
) -> dict[str, Any]:
    final_path = Path(final)
    if final_path.is_relative_to(run_dir.root):  # a stage's model, relative to the run (which may be moved)
        final_model = str(final_path.relative_to(run_dir.root))
    else:  # the base model where no stage kept one: a folder made absolute, a hub id or alias as it is
        final_model = str(final_path.resolve()) if final_path.exists() else final
    return {
        "run": str(run_dir.root),
        "final_model": final_model,
        "evaluations": {label: _figures(result) for label, result in evals.items()},
        # each stage against the model it started from (rlhf's DPO, PPO and RLOO all against SFT, not each other;
        # none for a student that was not evaluated), a student against its teacher too, and the whole run, on the
        # same problems
        "paired": paired_changes({label: e.get("scores") or [] for label, e in evals.items()}, *compared_with),
        "stage_figures": {name: output.metrics for name, output in outputs.items() if output.metrics},
        # a stage that kept nothing to train on (distillation without a kept trace): the model before it went on
        "made_no_model": [name for name, output in outputs.items() if name in makers and output.model is None],
    }


def _figures(evaluation: dict[str, Any]) -> dict[str, Any]:
    """An evaluation's figures, for a manifest or the summary: without its examples, per-problem scores and key."""
    return {k: v for k, v in evaluation.items() if k not in ("samples", "scores", "key")}


# ------------------------------------------------------------------------------------------------------- hashing


class _Hashes:
    """Content hashes of models and datasets, each computed once per run."""

    def __init__(self) -> None:
        self._known: dict[str, str] = {}

    def of(self, reference: str) -> str:
        if reference not in self._known:
            path = model_folder_of(reference)  # a run folder or RUN:STAGE: its model, not its logs
            self._known[reference] = content_hash(path) if path.exists() else reference
        return self._known[reference]

    def base_of(self, reference: str) -> dict[str, str]:
        """{"model.base": its hash} for a LoRA adapter folder, which stands for itself merged onto that base (a base
        made again since makes it another model); nothing for another model. A key apart from the adapter's own: the
        stage manifests saved before it stay valid (an adapter's evaluations saved before are made again, once)."""
        path = model_folder_of(reference)
        base = adapter_base_named(path) if path.is_dir() else None
        return {"model.base": base_hash(Path(base))} if base else {}  # its config and weights
