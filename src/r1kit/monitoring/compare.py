"""`r1kit compare A B [C …]`: evaluations of different runs side by side, each against the first with the paired change
on the same held-out problems and its 95% interval.

A run's own table pairs only its stages. Two runs (another learning rate, another recipe) are compared here: each
argument is a run folder (its final model's evaluation), an evaluation file (`RUN/eval/eval_2.json`, from `r1kit
eval`), or `RUN:LABEL` (the evaluation `LABEL` of a run: `base`, `sft`, …). Their per-problem scores are paired by
position, so they must score the same problems in the same order: the questions are checked where the evaluations
kept them (`eval/<label>.problems.jsonl`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from r1kit.config.sources import flatten
from r1kit.monitoring.console import print_eval_table
from r1kit.runs import (
    RECIPE_STAGE,
    RunDir,
    RunDirError,
    eval_label_number,
    final_model,
    is_stage_folder,
    no_model_said,
    outdated_stages,
    read_json,
    stage_of_folder,
)
from r1kit.stats import paired_difference


def compare(references: list[str]) -> dict[str, Any]:
    """Print the comparison table of the evaluations `references` name; return its figures (label → evaluation
    without per-problem scores, and `A→B` → paired change)."""
    if len(references) < 2:
        raise RunDirError("compare: name two evaluations or more (run folders, eval JSON files or RUN:LABEL)")
    found = [evaluation_file(reference) for reference in references]
    labels = _column_labels(found)
    evaluations = {label: _read_evaluation(path) for label, path in zip(labels, found, strict=True)}
    problems = {label: _problems(path) for label, path in zip(labels, found, strict=True)}
    first = labels[0]
    for label in labels[1:]:
        _check_same_problems(first, evaluations[first], problems[first], label, evaluations[label], problems[label])
    paired = {
        f"{first}→{label}": paired_difference(evaluations[first]["scores"], evaluations[label]["scores"])
        for label in labels[1:]
    }
    figures = {label: {k: v for k, v in e.items() if k not in ("samples", "scores", "key")} for label, e in
               evaluations.items()}  # fmt: skip
    print_eval_table(figures, title="r1kit compare", paired=paired)
    for label, path in zip(labels, found, strict=True):
        print(f"{label}: {path}")
    for label, path in zip(labels, found, strict=True):
        run = path.resolve().parent.parent
        if path.stem in outdated_stages(run):
            print(
                f"note: {label} is outdated: {path.stem} was trained from what an earlier stage made before that stage "
                "was redone (--only, or a redo stopped halfway), so its run's config is not what it was made with "
                f"(`r1kit run --out {run} --resume` redoes it)"
            )
    # what else differs: a change of score is the models' only where nothing else does
    for label, path in zip(labels[1:], found[1:], strict=True):
        if evaluations[first].get("dataset") != evaluations[label].get("dataset"):  # passed: their problems are equal
            print(
                f"note: {first} scored {evaluations[first].get('dataset')}, {label} {evaluations[label].get('dataset')}"
                ": the same questions and gold answers, paired"
            )
        for line in _asked_differently(first, evaluations[first], label, evaluations[label]):
            print(f"note: {line}")
        for line in _config_differences(first, found[0], label, path):
            print(line)
    return {"evaluations": figures, "paired": paired}


def paired_change(first: Path, other: Path) -> dict[str, Any]:
    """The paired change (`paired_difference`) from the evaluation in file `first` to the one in `other`; a
    RunDirError where they scored other problems, as `compare` refuses them, or asked their models otherwise (another
    completion limit, sampling or system prompt, which `compare` only notes): bench/grpo_sweep.py's pairing, whose
    table reports the change as the models'."""
    a, b = _read_evaluation(first), _read_evaluation(other)
    _check_same_problems(str(first), a, _problems(first), str(other), b, _problems(other))
    if asked := _asked_differently(str(first), a, str(other), b):
        raise RunDirError("; ".join(asked))
    return paired_difference(a["scores"], b["scores"])


def _read_evaluation(path: Path) -> dict[str, Any]:
    try:
        evaluation = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        evaluation = None
    if not isinstance(evaluation, dict) or not isinstance(evaluation.get("scores"), list):
        raise RunDirError(
            f"compare {path}: not an r1kit evaluation (the JSON `r1kit run` and `r1kit eval` write in RUN/eval/)"
        )
    return evaluation


# What an evaluation records of how its model was asked (older evaluations lack some: not compared).
_ASKED = {"system_prompt": "system prompt", "max_new_tokens": "completion limit", "sampling": "pass@k sampling"}


def _asked_differently(first: str, a: dict[str, Any], other: str, b: dict[str, Any]) -> list[str]:
    """A line for each setting two evaluations asked their models with differently.

    >>> _asked_differently("a", {"max_new_tokens": 8}, "b", {"max_new_tokens": 16})
    ["a and b were asked with another completion limit (8, 16): the change is not the models' alone"]
    """
    return [
        f"{first} and {other} were asked with another {name} ({_short(a[key])}, {_short(b[key])}): the change is not "
        "the models' alone"
        for key, name in _ASKED.items()
        if key in a and key in b and a[key] != b[key]
    ]


def _short(value: Any, width: int = 48) -> str:
    """A value as Python writes it, cut to `width` characters.

    >>> _short("a" * 60, 10), _short(5e-05)
    ("'aaaaaaaa…", '5e-05')
    """
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _config_differences(first: str, a: Path, other: str, b: Path) -> list[str]:
    """How the configs of the runs that made two evaluations differ, where both are in run folders."""
    configs = [path.parent.parent / "config.yaml" for path in (a, b)]
    if not all(config.is_file() for config in configs) or configs[0].resolve() == configs[1].resolve():
        return []
    was, now = (flatten(yaml.safe_load(config.read_text(encoding="utf-8")) or {}) for config in configs)
    # every key of either (a config of another r1kit version may lack some): one only the first has was left out
    keys = [key for key in dict.fromkeys([*now, *was]) if key != "run.output_dir"]
    changed = [(key, was.get(key), now.get(key)) for key in keys if was.get(key) != now.get(key)]
    shown = ", ".join(f"{key} {_short(was)} → {_short(now)}" for key, was, now in changed[:8])
    more = f" and {len(changed) - 8} more" if len(changed) > 8 else ""
    return [f"{other}'s run differs from {first}'s in {shown}{more}"] if changed else []


def evaluation_file(reference: str) -> Path:
    """The eval JSON a reference names: a file, `RUN:LABEL`, or a run folder (its final evaluation: the last of its
    summary.json; in a run not finished, that of its newest model, the one `eval --model RUN` takes; else its newest
    evaluation file)."""
    exists = Path(reference).expanduser().exists()  # a path with a ':' in it is a path
    folder, _, label = reference.rpartition(":") if ":" in reference and not exists else (reference, "", "")
    path = Path(folder).expanduser()
    if label:
        found = RunDir(path).eval_path(label)
        if not found.exists() and (why := no_model_said(path, label)):
            raise RunDirError(f"compare {reference}: {why}, so nothing of it was evaluated")
        if not found.exists():
            labels = sorted(p.stem for p in path.glob("eval/*.json"))
            raise RunDirError(f"compare {reference}: no evaluation {label!r} in {path} ({', '.join(labels) or 'none'})")
        return found
    if path.is_file():
        return path
    if not path.is_dir():
        raise RunDirError(f"compare {reference}: no such file or folder")
    summary = path / "summary.json"
    if summary.exists():  # a recipe run: its final model's evaluation
        labels = list(read_json(summary).get("evaluations") or [])
        if not labels or not RunDir(path).eval_path(labels[-1]).exists():  # its last stage redone, not finished
            raise RunDirError(f"compare {reference}: its final evaluation is not there (the run is being redone?)")
        return RunDir(path).eval_path(labels[-1])
    run, stage = path.resolve().parent, stage_of_folder(path.resolve().name)
    if is_stage_folder(path) and (run / "config.yaml").exists():  # a recipe's stage folder
        if scored := _evaluations_of(RunDir(run), path):
            return scored
        why = no_model_said(run, stage) or "its model has no evaluation in the run (yet)"
        raise RunDirError(f"compare {reference}: {why}")
    # a recipe run not finished: the model `eval`/`chat --model RUN` take, its newest (killed while evaluating its
    # last stage, the newest evaluation file is an earlier stage's); a stage run alone evaluates nothing itself
    newest = final_model(RunDir(path)) if (path / "config.yaml").exists() else None
    stage_folder = newest.resolve().parent if newest is not None else None
    if stage_folder is not None and stage_folder.parent == path.resolve() and RECIPE_STAGE.fullmatch(stage_folder.name):
        if scored := _evaluations_of(RunDir(path), stage_folder):
            return scored
        model = newest.resolve().relative_to(path.resolve())
        raise RunDirError(
            f"compare {reference}: its newest model, {model}, has no evaluation yet (the run was stopped before it?): "
            f"`r1kit run --resume --out {path}` finishes the run, or `r1kit eval --model {path}` scores it alone"
        )
    files = sorted(path.glob("eval/*.json"), key=_newest)
    if not files and not (path / "config.yaml").exists():
        raise RunDirError(
            f"compare {reference}: {path} holds no r1kit run (no config.yaml); name run folders, eval JSON files or "
            "RUN:LABEL"
        )
    if not files:
        raise RunDirError(
            f"compare {reference}: {path} holds no evaluation (a finished `r1kit run`, or `r1kit eval --model {path}`)"
        )
    return files[-1]


def _evaluations_of(run: RunDir, stage_folder: Path) -> Path | None:
    """The evaluation of a stage folder's model: the run's own of that stage, else the newest `r1kit eval` of it (a
    stage run alone evaluates nothing itself; `RUN:eval_2` names another), else None."""
    if run.eval_path(stage := stage_of_folder(stage_folder.name)).exists():
        return run.eval_path(stage)
    folder = stage_folder.resolve()
    scored = [run.eval_path(label) for label, model in run.later_evaluations().items() if model.is_relative_to(folder)]
    return max(scored, key=_newest) if scored else None


def _newest(file: Path) -> tuple[float, int]:
    """Sort key of evaluation files, newest last: by time, and `r1kit eval`'s numbering where times are equal (a copy,
    a filesystem of coarse times)."""
    return file.stat().st_mtime, eval_label_number(file.stem) or 0


def _column_labels(files: list[Path]) -> list[str]:
    """A column name for each evaluation: `<run folder>/<label>`, numbered where two are the same."""
    labels = []
    for path in files:
        run = path.resolve().parent.parent.name  # `compare .` names the folder, not ""
        base = f"{run}/{path.stem}" if path.parent.name == "eval" else path.stem
        label, count = base, 1
        while label in labels:
            count += 1
            label = f"{base} ({count})"
        labels.append(label)
    return labels


def _problems(path: Path) -> list[tuple[str, str | None]] | None:
    """The (question, gold answer) pairs an evaluation scored, in the order of its scores; None where it did not keep
    them (an evaluation of an older r1kit kept no gold: None for each)."""
    problems = path.with_name(f"{path.stem}.problems.jsonl")
    if not problems.exists():
        return None
    rows = [json.loads(line) for line in problems.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(row["question"], row.get("gold")) for row in rows]


def _kept_in_the_json(
    first: str, a: dict[str, Any], other: str, b: dict[str, Any]
) -> tuple[list[tuple[str, str | None]], list[tuple[str, str | None]]]:
    """The (question, gold) pairs an evaluation's JSON keeps (its first problems, `samples`), as many of each; a
    RunDirError where the problems of a group number differently (`by_group`: another draw of the same data)."""
    sizes = [{group: entry.get("problems") for group, entry in (e.get("by_group") or {}).items()} for e in (a, b)]
    if all(sizes) and sizes[0] != sizes[1]:
        raise RunDirError(
            f"compare: {first} and {other} scored other problems (their groups hold other numbers of them: "
            f"{_short(sizes[0])}, {_short(sizes[1])}); score both on the same data"
        )
    kept = [[(row.get("question"), row.get("gold")) for row in e.get("samples") or []] for e in (a, b)]
    shared = min(len(kept[0]), len(kept[1]))
    return kept[0][:shared], kept[1][:shared]


def _check_same_problems(
    first: str,
    a: dict[str, Any],
    a_problems: list[tuple[str, str | None]] | None,
    other: str,
    b: dict[str, Any],
    b_problems: list[tuple[str, str | None]] | None,
) -> None:
    """Paired scores mean the same problems in the same order: refused where the counts, or the kept questions or
    their gold answers, differ (a data file re-annotated in place keeps its questions: a change of score there is the
    golds', not the models')."""
    if len(a.get("scores") or []) != len(b.get("scores") or []) or not a.get("scores"):
        raise RunDirError(
            f"compare: {first} scored {len(a.get('scores') or [])} problems of {a.get('dataset')}, {other} "
            f"{len(b.get('scores') or [])} of {b.get('dataset')}: not the same held-out problems (score both with "
            "`r1kit eval --model M --data D` on the same data)"
        )
    if a.get("dataset") != b.get("dataset") and (a_problems is None or b_problems is None):
        raise RunDirError(
            f"compare: {first} scored {a.get('dataset')}, {other} {b.get('dataset')}: not the same held-out problems"
        )
    if a_problems is None or b_problems is None:  # an evaluation's JSON alone: its first problems and its groups' sizes
        a_problems, b_problems = _kept_in_the_json(first, a, other, b)
    a_questions, b_questions = [q for q, _ in a_problems], [q for q, _ in b_problems]
    if a_questions != b_questions:
        pairs = zip(a_questions, b_questions, strict=False)
        index = next((i for i, (x, y) in enumerate(pairs) if x != y), min(len(a_questions), len(b_questions)))
        if index >= min(len(a_questions), len(b_questions)):
            raise RunDirError(f"compare: {first} and {other} kept other problem lists; score both on the same data")
        raise RunDirError(
            f"compare: {first} and {other} scored other problems (problem {index + 1}: {a_questions[index][:60]!r} "
            f"and {b_questions[index][:60]!r}); score both on the same data"
        )
    golds = zip(a_problems, b_problems, strict=True)
    for index, ((_, x), (_, y)) in enumerate(golds):
        if x is not None and y is not None and x != y:
            raise RunDirError(
                f"compare: {first} and {other} scored the same questions against other gold answers (problem "
                f"{index + 1}: {str(x)[:40]!r} and {str(y)[:40]!r}); score both on the same data"
            )
