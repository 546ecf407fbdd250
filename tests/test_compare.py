"""`r1kit compare`: evaluations of different runs, paired on the same held-out problems."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from r1kit.cli import main
from r1kit.stats import paired_difference


def _evaluation(
    run: Path,
    label: str,
    scores: list[float],
    questions: list[str],
    golds: list[str] | None = None,
    dataset: str = "arithmetic",
) -> Path:
    """An evaluation as `r1kit run` / `r1kit eval` write it: RUN/eval/<label>.json and its problems file."""
    (run / "eval").mkdir(parents=True, exist_ok=True)
    figures = {"label": label, "dataset": dataset, "problems": len(scores), "excluded": 0}
    figures |= {"accuracy": sum(scores) / len(scores), "format_rate": 1.0, "mean_completion_tokens": 30.0}
    figures |= {"truncated_rate": 0.0, "scores": scores}
    path = run / "eval" / f"{label}.json"
    path.write_text(json.dumps(figures))
    golds = golds or [str(2 * i) for i in range(len(scores))]
    rows = [{"question": q, "gold": g, "correct": s} for q, g, s in zip(questions, golds, scores, strict=True)]
    path.with_name(f"{label}.problems.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


QUESTIONS = [f"What is {i} + {i}?" for i in range(8)]


def test_two_runs_final_models_are_paired_on_the_same_problems(tmp_path: Path, capsys) -> None:
    first, second = tmp_path / "lr_low", tmp_path / "lr_high"
    _evaluation(first, "sft", [0, 0, 1, 1, 0, 0, 1, 0], QUESTIONS)
    _evaluation(first, "grpo", [0, 1, 1, 1, 0, 0, 1, 0], QUESTIONS)
    (first / "summary.json").write_text(json.dumps({"evaluations": {"base": {}, "sft": {}, "grpo": {}}}))
    _evaluation(second, "eval", [1, 1, 1, 1, 0, 1, 1, 0], QUESTIONS)  # a stage run alone, then `r1kit eval`
    _evaluation(second, "eval_2", [1, 1, 1, 1, 1, 1, 1, 1], QUESTIONS)  # written later: its newest evaluation

    assert main(["compare", str(first), f"{first}:sft", str(second)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps lines at the terminal's width
    expected = paired_difference([0, 1, 1, 1, 0, 0, 1, 0], [1] * 8)  # the run's final model against eval_2
    low, high = expected["ci95"]
    assert "lr_low/grpo" in out and "lr_low/sft" in out and "lr_high/eval_2" in out
    assert f"paired change lr_low/grpo→lr_high/eval_2: +{expected['difference'] * 100:.1f} pts" in out
    assert f"[{low * 100:+.1f}, {high * 100:+.1f}] over 8 problems" in out and "4 fixed, 0 broken" in out
    assert "paired change lr_low/grpo→lr_low/sft: -12.5 pts" in out


def test_evaluations_of_other_problems_are_refused(tmp_path: Path, capsys) -> None:
    a = _evaluation(tmp_path / "a", "eval", [1, 0, 1, 0, 1, 0, 1, 0], QUESTIONS)
    b = _evaluation(
        tmp_path / "b", "eval", [1, 0, 1, 0, 1, 0, 1, 0], [*QUESTIONS[:3], "What is 9 + 9?", *QUESTIONS[4:]]
    )
    assert main(["compare", str(a), str(b)]) == 1
    err = capsys.readouterr().err
    assert "a/eval and b/eval scored other problems (problem 4: 'What is 3 + 3?' and 'What is 9 + 9?')" in err
    c = _evaluation(tmp_path / "c", "eval", [1, 0, 1], QUESTIONS[:3])
    assert main(["compare", str(a), str(c)]) == 1
    assert "scored 8 problems of arithmetic, c/eval 3 of arithmetic: not the same held-out problems" in (
        capsys.readouterr().err
    )


def test_the_same_questions_against_other_gold_answers_are_refused(tmp_path: Path, capsys) -> None:
    """A data file re-annotated in place (or another release of a benchmark) keeps its questions: compare paired the
    two and called the golds' change the models' ("+50.0 pts, above zero"), naming only the last data set."""
    golds = [str(2 * i) for i in range(8)]
    a = _evaluation(tmp_path / "a", "eval", [0, 0, 0, 0, 1, 1, 1, 1], QUESTIONS, golds, "gsm8k.jsonl")
    fixed = ["99", *golds[1:]]
    b = _evaluation(tmp_path / "b", "eval", [1] * 8, QUESTIONS, fixed, "gsm8k_platinum.jsonl")
    assert main(["compare", str(a), str(b)]) == 1
    err = capsys.readouterr().err
    assert "a/eval and b/eval scored the same questions against other gold answers (problem 1: '0' and '99')" in err
    # the same problems in two files: paired, and both named
    c = _evaluation(tmp_path / "c", "eval", [1] * 8, QUESTIONS, golds, "gsm8k_copy.jsonl")
    assert main(["compare", str(a), str(c)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "gsm8k.jsonl and gsm8k_copy.jsonl" in out  # the table's caption
    assert "note: a/eval scored gsm8k.jsonl, c/eval gsm8k_copy.jsonl: the same questions and gold answers" in out
    # an evaluation of an older r1kit kept no gold answers: its questions alone are compared
    older = tmp_path / "older" / "eval" / "eval.problems.jsonl"
    shutil.copytree(tmp_path / "c", tmp_path / "older")
    older.write_text("".join(json.dumps({"question": q}) + "\n" for q in QUESTIONS))
    assert main(["compare", str(b), str(tmp_path / "older")]) == 0


def test_a_folder_s_newest_evaluation_at_the_same_time_is_the_later_r1kit_eval(tmp_path: Path) -> None:
    """Two evaluation files of one time (a copy, a filesystem of coarse times) were ordered by name: eval.json was
    taken as newer than eval_2.json."""
    import os

    from r1kit.monitoring.compare import evaluation_file

    (tmp_path / "config.yaml").write_text("{}\n")
    second = _evaluation(tmp_path, "eval_2", [1] * 8, QUESTIONS)
    first = _evaluation(tmp_path, "eval", [0] * 8, QUESTIONS)
    for path in (first, second):
        os.utime(path, (1_000_000, 1_000_000))
    assert evaluation_file(str(tmp_path)) == second


def test_the_sweep_s_pairing_refuses_evaluations_of_other_problems(tmp_path: Path) -> None:
    """bench/grpo_sweep.py paired the SFT model's scores with a variant's by position without a look at the
    problems: a variant trained and scored on another task was "paired" with it."""
    from r1kit.monitoring.compare import paired_change
    from r1kit.runs import RunDirError

    a = _evaluation(tmp_path / "a", "eval", [1, 0, 1, 0, 1, 0, 1, 0], QUESTIONS)
    b = _evaluation(tmp_path / "b", "eval", [1, 1, 1, 0, 1, 0, 1, 0], QUESTIONS)
    assert paired_change(a, b) == paired_difference([1, 0, 1, 0, 1, 0, 1, 0], [1, 1, 1, 0, 1, 0, 1, 0])
    other = _evaluation(tmp_path / "c", "eval", [1] * 8, [f"Add {i} and {i}." for i in range(8)])
    with pytest.raises(RunDirError, match="scored other problems"):
        paired_change(a, other)


def test_what_else_differs_between_the_evaluations_is_said(tmp_path: Path, capsys) -> None:
    """A paired change between models asked with another prompt or limit, or trained with another config, was shown
    as the models' alone; the user diffed config.yaml by hand."""
    first = _evaluation(tmp_path / "a", "grpo", [1, 0, 1, 0], QUESTIONS[:4])
    other = _evaluation(tmp_path / "b", "grpo", [1, 1, 1, 0], QUESTIONS[:4])
    # the first run's config holds a setting the other's lacks (saved by another r1kit): it was not said
    for path, prompt, limit, rate, more in (
        (first, "Think.", 96, 1e-3, {"beta": 0.1}),
        (other, "Answer.", 8, 5e-4, {}),
    ):
        path.write_text(json.dumps(json.loads(path.read_text()) | {"system_prompt": prompt, "max_new_tokens": limit}))
        config = {"run": {"output_dir": str(path.parent.parent)}, "training": {"learning_rate": rate, **more}}
        (path.parent.parent / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "note: a/grpo and b/grpo were asked with another system prompt ('Think.', 'Answer.')" in out
    assert "another completion limit (96, 8)" in out
    # not output_dir
    assert (
        "b/grpo's run differs from a/grpo's in training.learning_rate 0.001 → 0.0005, training.beta 0.1 → None\n" in out
    )


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("nowhere", "compare nowhere: no such file or folder"),
        ("empty", "compare empty: empty holds no r1kit run (no config.yaml); name run folders"),  # was: eval it
        ("run", "compare run: run holds no evaluation"),
        ("a:sft2", "no evaluation 'sft2' in a (eval)"),
        # stages without a model: said, not "no evaluation 'distill' in a (eval, sft)"
        ("a:distill", "compare a:distill: stage distill (distill) made no model (it kept nothing to train on), so"),
        ("a:rejection_sampling", "stage rejection_sampling (rejection_sampling) makes data, not a model, so"),
        ("rows.jsonl", "compare rows.jsonl: not an r1kit evaluation"),  # was: "unexpected error: JSONDecodeError"
        ("other.json", "compare other.json: not an r1kit evaluation"),
    ],
)
def test_a_reference_to_no_evaluation_is_a_clear_error(
    reference: str, message: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    _evaluation(tmp_path / "a", "eval", [1, 0], QUESTIONS[:2])
    (tmp_path / "empty").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("{}\n")
    for folder, output in (("04_rejection_sampling", {"dataset": "04_rejection_sampling/data"}), ("06_distill", {})):
        (tmp_path / "a" / folder).mkdir()
        kind = folder[3:]
        manifest = {"stage": kind, "kind": kind, "status": "complete", "output": {"model": None, **output}}
        (tmp_path / "a" / folder / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "rows.jsonl").write_text('{"question": "q"}\n{"question": "r"}\n')
    (tmp_path / "other.json").write_text("{}")
    assert main(["compare", "a", reference]) == 1
    err = capsys.readouterr().err
    assert err.startswith("r1kit: error: ") and message in err and len(err.strip().splitlines()) == 1


def test_a_real_runs_stages_compare_as_its_own_table_pairs_them(finished_run: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / "again"
    shutil.copytree(finished_run, copy)
    assert main(["compare", f"{finished_run}:sft", str(copy)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    summary = json.loads((finished_run / "summary.json").read_text())
    change = summary["paired"]["sft→grpo"]
    assert f"paired change run/sft→again/grpo: {change['difference'] * 100:+.1f} pts" in out
    # a stage folder of the run stands for its model's evaluation (was: "holds no evaluation")
    assert main(["compare", str(finished_run / "01_sft"), str(copy)]) == 0
    assert f"paired change run/sft→again/grpo: {change['difference'] * 100:+.1f} pts" in " ".join(
        capsys.readouterr().out.split()
    )


def test_a_run_stopped_in_its_last_evaluation_is_not_compared_by_an_earlier_stage(
    finished_run: Path, tmp_path: Path
) -> None:
    """Killed while evaluating its last stage (its model saved, no summary.json), `compare RUN` took the newest
    evaluation file, the SFT model's, while `eval`/`chat --model RUN` take the GRPO model."""
    from r1kit.monitoring.compare import evaluation_file
    from r1kit.runs import RunDirError

    stopped = tmp_path / "stopped"
    shutil.copytree(finished_run, stopped)
    (stopped / "summary.json").unlink()
    (stopped / "eval" / "grpo.json").unlink()
    with pytest.raises(RunDirError, match=r"its newest model, 02_grpo/model, has no evaluation yet"):
        evaluation_file(str(stopped))
    # `r1kit eval --model RUN` scored it: that evaluation is the run's
    scored = _evaluation(stopped, "eval", [1.0] * 8, QUESTIONS)
    scored.write_text(json.dumps(json.loads(scored.read_text()) | {"model": str(stopped / "02_grpo" / "model")}))
    assert evaluation_file(str(stopped)) == scored


def test_a_run_beside_the_users_own_config_is_no_stage_folder(finished_run: Path, tmp_path: Path) -> None:
    """A run in a folder holding the user's config.yaml was taken for a stage folder of a run there: a run killed
    before its summary was refused as "its model has no evaluation in the run (yet)"."""
    from r1kit.monitoring.compare import evaluation_file
    from r1kit.monitoring.report import write_report
    from r1kit.runs import RunDirError

    project = tmp_path / "project"
    project.mkdir()
    (project / "config.yaml").write_text("sft: {max_steps: 3}\n")  # the user's own
    killed = project / "killed"
    shutil.copytree(finished_run, killed)
    (killed / "summary.json").unlink()  # killed in GRPO: its newest model is SFT's
    shutil.rmtree(killed / "02_grpo")
    (killed / "eval" / "grpo.json").unlink()
    assert evaluation_file(str(killed)) == killed / "eval" / "sft.json"
    # nor is `r1kit eval --out` results' folder there a stage folder, and the project's folder is no run to report on
    results = project / "results"
    shutil.copytree(finished_run / "eval", results / "eval")
    with pytest.raises(RunDirError, match=r"holds `r1kit eval` results, no r1kit run"):
        write_report(results)
    with pytest.raises(RunDirError, match=r"project holds no r1kit run \(its config.yaml is no run's\): r1kit report"):
        write_report(project)


def test_a_stage_run_alone_and_moved_is_compared_by_its_newest_evaluation(tmp_path: Path) -> None:
    """A stage run alone writes no summary.json: its `r1kit eval` results name the model where the run was, so once
    the run moved, the unfinished-recipe rule found no evaluation of its model and refused."""
    from r1kit.atomic import COMPLETE_MARKER
    from r1kit.monitoring.compare import evaluation_file

    run = tmp_path / "moved"
    (run / "sft" / "model").mkdir(parents=True)
    (run / "sft" / "model" / COMPLETE_MARKER).write_text("{}")
    (run / "sft" / "manifest.json").write_text('{"kind": "sft", "status": "complete"}')
    (run / "config.yaml").write_text("{}\n")
    scored = _evaluation(run, "eval", [1.0, 0.0], QUESTIONS[:2])
    scored.write_text(json.dumps(json.loads(scored.read_text()) | {"model": "/where/it/was/sft/model"}))
    assert evaluation_file(str(run)) == scored


def test_perplexity_near_one_shows_its_change(tmp_path: Path, capsys) -> None:
    """1.127 and 1.153 read 1.1 and 1.2 with a change of +0.0."""
    for run, perplexity in (("a", 1.127), ("b", 1.153)):
        path = _evaluation(tmp_path / run, "eval", [1, 0], QUESTIONS[:2])
        path.write_text(json.dumps(json.loads(path.read_text()) | {"perplexity": perplexity}))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1.13 │ 1.15 │ +0.03" in out


def test_a_path_with_a_colon_and_evaluations_without_their_problems(tmp_path: Path, capsys) -> None:
    """A folder with ':' in its name was read as RUN:LABEL; without the problems files, equal counts of different data
    were paired."""
    a = _evaluation(tmp_path / "run:a", "eval", [1, 0], QUESTIONS[:2])
    b = _evaluation(tmp_path / "b", "eval", [1, 1], QUESTIONS[:2])
    assert main(["compare", str(a), str(b)]) == 0
    b.write_text(json.dumps(json.loads(b.read_text()) | {"dataset": "gsm8k.jsonl"}))
    b.with_name("eval.problems.jsonl").unlink()
    capsys.readouterr()
    assert main(["compare", str(a), str(b)]) == 1
    assert "scored arithmetic, b/eval gsm8k.jsonl: not the same held-out problems" in capsys.readouterr().err


def test_evaluations_copied_without_their_problems_are_compared_by_what_their_json_keeps(
    tmp_path: Path, capsys
) -> None:
    """Two draws of the same data set, each JSON copied on its own: paired as the same problems (same data set name
    and count), though their kept first problems and their groups' sizes differ."""

    def copied(name: str, questions: list[str], groups: dict[str, int]) -> Path:
        path = _evaluation(tmp_path / name, "eval", [1, 0, 1, 0, 1, 0, 1, 0], questions)
        path.with_name("eval.problems.jsonl").unlink()
        samples = [{"question": q, "gold": str(2 * i)} for i, q in enumerate(questions[:4])]
        by_group = {group: {"problems": count, "accuracy": 0.5} for group, count in groups.items()}
        path.write_text(json.dumps(json.loads(path.read_text()) | {"samples": samples, "by_group": by_group}))
        return path

    a = copied("a", QUESTIONS, {"1": 4, "2": 4})
    other_draw = copied("b", [*QUESTIONS[1:], "What is 9 + 9?"], {"1": 4, "2": 4})
    assert main(["compare", str(a), str(other_draw)]) == 1
    assert "scored other problems (problem 1: 'What is 0 + 0?' and 'What is 1 + 1?')" in capsys.readouterr().err
    other_groups = copied("c", QUESTIONS, {"1": 5, "2": 3})
    assert main(["compare", str(a), str(other_groups)]) == 1
    assert "their groups hold other numbers of them" in capsys.readouterr().err
    same = copied("d", QUESTIONS, {"1": 4, "2": 4})
    assert main(["compare", str(a), str(same)]) == 0


def test_a_stage_folder_names_its_models_newest_r1kit_eval_and_never_a_hub_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stage run alone evaluates nothing itself, so `compare RUN/<stage>` found nothing ("its model has no
    evaluation in the run"); its `r1kit eval` results are what scored it. An evaluation of a model named by an alias
    or hub id (`r1kit eval --model tiny-random --out RUN`) was read as a path from the current folder: from inside the
    stage folder, as one of the stage's own."""
    from r1kit.monitoring.compare import evaluation_file
    from r1kit.runs import RunDir, RunDirError

    run = tmp_path / "run"
    stage = run / "sft"
    (stage / "model").mkdir(parents=True)
    (stage / "manifest.json").write_text("{}")
    (run / "config.yaml").write_text("{}\n")
    for label, model in (("eval", str(stage / "model")), ("eval_2", "tiny-random"), ("eval_3", "model")):
        path = _evaluation(run, label, [1.0, 0.0], QUESTIONS[:2])
        path.write_text(json.dumps(json.loads(path.read_text()) | {"model": model}))
    monkeypatch.chdir(stage)
    assert set(RunDir(run).later_evaluations()) == {"eval"}
    assert evaluation_file(str(stage)) == run / "eval" / "eval.json"
    (run / "eval" / "eval.json").unlink()
    with pytest.raises(RunDirError, match="its model has no evaluation in the run"):
        evaluation_file(str(stage))
