"""`r1kit report RUN_DIR`: one self-contained HTML page of a run (inline CSS and SVG plots, nothing fetched).

It shows the evaluation table, the recipe's stages (status, time, figures, pass-rate histograms), per-stage plots
(each reward, format compliance, lengths, speed, memory, CPU and RAM use; noisy series with their moving average), the
alerts and notices, and the best and worst completions with their reward breakdown.
"""

from __future__ import annotations

import html
import io
import itertools
import math
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render straight to SVG
import matplotlib.pyplot as plt

from r1kit.atomic import write_atomic
from r1kit.monitoring.console import TIMING_PHASES, consensus_row, pass_k_name
from r1kit.runs import (
    KEPT_NOTHING,
    RunDir,
    RunDirError,
    eval_label_number,
    is_stage_folder,
    read_json,
    read_manifest,
    without_model,
    written_by_a_run,
)
from r1kit.stats import flipped, group_order, paired_changes

_EXAMPLES_SHOWN = 6  # per stage: the newest best/worst pairs
_CHANGED_SHOWN = 3  # per pair of evaluations: problems fixed, and problems broken
_SMOOTHED_FROM = 6  # logged steps from which a series also gets its moving average (a line per step is noise)
_MARKED_UP_TO = 200  # logged steps up to which each is drawn as a dot too
# points a plot draws at most: a longer run's steps are drawn in spans of consecutive ones (a 30,000-step run's report
# drew every step, 45 MB of SVG that a browser took seconds to open)
_MOST_POINTS = 1000

# (title, [(metric key, label)], y-axis label, percent?) — a plot is drawn when any of its keys was logged.
_PLOTS: list[tuple[str, list[tuple[str, str]], str, bool]] = [
    ("Format compliance", [("quality/format_rate", "strict format")], "share", True),
    (
        "Completion length",
        [
            ("quality/completion_tokens", "completion tokens"),
            ("quality/think_chars", "think chars"),
            ("quality/answer_chars", "answer chars"),
        ],
        "length",
        False,
    ),
    (
        "Learning signal",
        [("quality/zero_advantage_share", "zero-advantage groups"), ("quality/truncated_share", "truncated")],
        "share",
        True,
    ),
    ("Loss", [("loss", "loss")], "loss", False),
    ("Token accuracy", [("mean_token_accuracy", "token accuracy")], "share", True),
    # the preference stages' health: how often the chosen reply outscores the rejected one, and by how much
    (
        "Preference accuracy",
        [("rewards/accuracies", "chosen above rejected (DPO)"), ("accuracy", "chosen above rejected")],
        "share",
        True,
    ),
    (
        "Reward margin",
        [("rewards/margins", "chosen − rejected (DPO)"), ("margin", "chosen − rejected")],
        "margin",
        False,
    ),
    ("Gradient norm", [("grad_norm", "grad norm")], "norm", False),
    ("Speed", [("perf/tokens_per_second", "tokens/s")], "tokens/s", False),
    ("Step time", [("perf/step_seconds", "seconds/step")], "seconds", False),
    (
        "Where the time goes",
        [(f"timing/{phase}_seconds", phase) for phase in TIMING_PHASES],
        "seconds/step",
        False,
    ),
    ("Sampler vs policy", [("fast/sampling_logprob_gap", "mean |log-prob gap|")], "nats/token", False),
    (
        "Memory",
        [
            ("perf/rss_gb", "RSS"),
            ("perf/gpu_peak_memory_gb", "GPU peak"),
            ("perf/gpu_reserved_memory_gb", "GPU reserved"),
        ],
        "GB",
        False,
    ),
    # Percentages (0-100), not shares: CPU of the quota the process may use, RAM of the whole machine.
    ("System", [("perf/cpu_percent", "CPU %"), ("perf/ram_percent", "RAM %")], "percent", False),
]


def write_report(run_dir: Path) -> Path:
    """Write RUN_DIR/report.html and return its path."""
    run = RunDir(run_dir)
    if not run.root.exists():
        raise RunDirError(f"no run folder at {run.root}")
    if not run.root.is_dir():
        raise RunDirError(f"{run.root} is a file; r1kit report takes a run folder (the --out of a run)")
    if not run.path("config.yaml").exists():
        if is_stage_folder(run.root) and (run.root.parent / "config.yaml").exists():  # RUN/NN_<stage>: the run's
            raise RunDirError(f"{run.root} is a stage folder of a run: r1kit report {run.root.parent}")
        if any(run.root.glob("eval/*.json")):  # `r1kit eval --out FOLDER`: results, no run to report on
            raise RunDirError(
                f"{run.root} holds `r1kit eval` results, no r1kit run: `r1kit compare {run.root} OTHER` sets them "
                "beside another evaluation"
            )
        raise RunDirError(f"{run.root} holds no r1kit run (it has no config.yaml)")
    # the user's own config.yaml beside the runs it made: its runs were read as stages of one run
    inner = sorted(path.parent for path in run.root.glob("*/config.yaml"))
    recorded = read_manifest(run.root) or run.path("summary.json").exists()
    if inner and not (recorded or written_by_a_run(run)):
        raise RunDirError(f"{run.root} holds no r1kit run (its config.yaml is no run's): r1kit report {inner[0]}")
    logged = run.read("metrics.jsonl")
    metrics = [r for r in logged if r.get("kind") == "step"]
    during = [r for r in logged if r.get("kind") == "eval"]  # evaluation.every_steps
    stages = list(dict.fromkeys(r["stage"] for r in metrics))
    summary = read_json(run.path("summary.json")) if run.path("summary.json").exists() else {}
    # the run's own, then eval.json, eval_2.json, …, eval_10.json in the order they were written
    paths = sorted(run.root.glob("eval/*.json"), key=lambda path: (_later(path.stem), path.stem))
    written = {path.stem: read_json(path) for path in paths}
    # a stage run alone evaluates nothing itself: its `r1kit eval` results are its evaluations
    stage_list = _stage_list(run)  # read once: the manifests of every stage
    # in the recipe's order: a stage redone by --only logs after the stages that followed it
    named = [stage.get("name") for stage in stage_list]
    stages.sort(key=lambda stage: named.index(stage) if stage in named else len(named))
    evaluations = summary.get("evaluations") or _run_evaluations(stage_list, written) or written
    # `r1kit eval RUN`'s (eval, eval_2, …); a stage's own evaluation missing from the summary is an outdated one
    # (`--only` redid an earlier stage), no later evaluation
    later = {
        label: result
        for label, result in written.items()
        if label not in evaluations and eval_label_number(label) is not None
    }
    questions = {label: [row.get("question") for row in run.read_problems(label)] for label in written}

    # a recipe run has a summary (an interrupted one its RUN/manifest.json); a stage run alone (`r1kit sft`) only its
    # stage folder
    recipe = summary or read_manifest(run.root)
    command = "run" if recipe else " ".join(path.parent.name for path in sorted(run.root.glob("*/manifest.json")))
    name = run.root.resolve().name  # `r1kit report .` in the run folder: its own name, not ""
    body = [f"<h1>r1kit {_e(command or 'run')} <code>{_e(name)}</code></h1>", _overview(run, summary)]
    paired = summary.get("paired")
    not_reached: dict[str, Any] = {}
    if paired is None and evaluations is not written:  # a killed recipe run: its stages' changes from their files
        started_from = {stage["name"]: stage.get("started_from") for stage in stage_list if "name" in stage}
        taught_by = {stage["name"]: stage.get("taught_by") for stage in stage_list if "name" in stage}
        # a stage the killed command did not reach keeps the evaluation of a model that a redo (--from) may have
        # replaced the inputs of: beside the run's, not in its chain (manifests from before "reached" say nothing)
        unreached = {stage["name"] for stage in stage_list if stage.get("reached", True) is False}
        not_reached = {label: result for label, result in evaluations.items() if label in unreached}
        evaluations = {label: result for label, result in evaluations.items() if label not in unreached}
        scores = {label: result.get("scores") or [] for label, result in evaluations.items()}
        paired = paired_changes(scores, started_from, taught_by)
    if evaluations:
        # a stage run alone's are `r1kit eval` results of any model: each column names the one it scored
        models_in = run.root.resolve() if evaluations is written else None
        table = _eval_table(evaluations, questions, models_in)
        body += ["<h2>Evaluation</h2>", table, _paired(paired or {})]
        body += [_by_group(evaluations), _changed_problems(run, paired or {})]
    if not_reached:
        body += [
            "<h2>Not reached by the killed command</h2>",
            "<p>Evaluations of models made before it: where it redid an earlier stage (<code>--from</code>), they "
            "were trained on what it replaces. The next run redoes or keeps each stage.</p>",
            _eval_table(not_reached, questions),
        ]
    if later:  # its own table: it may score other data, so no change against the run's first column
        body += [
            "<h2>Evaluated later (<code>r1kit eval</code>)</h2>",
            _eval_table(later, questions, run.root.resolve()),
        ]
    if stage_list:
        body += ["<h2>Stages</h2>", _stages(run, stage_list)]
    for stage in stages:
        rows = [r for r in metrics if r["stage"] == stage]
        body += [f"<h2>Stage <code>{_e(stage)}</code> · {len(rows)} logged steps</h2>", '<div class="plots">']
        body += _stage_plots(stage, rows)
        evaluated = [r for r in during if r["stage"] == stage]
        steps = [r["step"] for r in evaluated]
        if any("eval/accuracy" in r for r in evaluated):  # data with gold answers
            series = [("eval/accuracy", "pass@1 (greedy)"), ("eval/format_rate", "format rate")]
            body.append(_figure(stage, "Held-out during training", steps, series, evaluated, "share", True))
        if any(r.get("eval/perplexity") is not None for r in evaluated):  # the only held-out figure of chat data
            series = [("eval/perplexity", "perplexity of the references")]
            body.append(_figure(stage, "Held-out perplexity", steps, series, evaluated, "perplexity", False))
        body.append("</div>")
    alerts = run.read("alerts.jsonl")
    body += ["<h2>Alerts and notices</h2>", _alerts(alerts)]
    examples = run.read("completions.jsonl")
    if examples:
        body += ["<h2>Best and worst completions</h2>", _examples(examples)]
    if evaluations:
        last = list(evaluations)[-1]
        samples = read_json(run.eval_path(last)).get("samples") if run.eval_path(last).exists() else None
        if samples:
            body += [f"<h2>Held-out samples ({_e(last)})</h2>", _samples(samples)]

    page = f"<!doctype html><html><head><meta charset='utf-8'><title>r1kit · {_e(name)}</title><style>{_CSS}</style></head><body>{''.join(body)}</body></html>"
    out = run.path("report.html")
    write_atomic(out, page)
    return out


# ----------------------------------------------------------------------------------------------------- sections


def _overview(run: RunDir, summary: dict[str, Any]) -> str:
    config = run.path("config.yaml").read_text(encoding="utf-8")  # write_report refuses a folder without one
    final = f"<p>Final model: <code>{_e(summary['final_model'])}</code></p>" if summary.get("final_model") else ""
    return f"{final}<details><summary>Resolved config</summary><pre>{_e(config)}</pre></details>"


def _by_group(evaluations: dict[str, dict[str, Any]]) -> str:
    """Pass@1 per group of problems (dataset.group_column) and evaluation, where the data has groups."""
    groups = sorted({g for e in evaluations.values() for g in (e.get("by_group") or {})}, key=group_order)
    if not groups:
        return ""
    head = "".join(f"<th>{_e(label)}</th>" for label in evaluations)
    lines = []
    for group in groups:
        cells = []
        for e in evaluations.values():
            found = (e.get("by_group") or {}).get(group)
            cells.append(f"<td>{_fmt(found['accuracy'], True)} ({found['problems']})</td>" if found else "<td>–</td>")
        lines.append(f"<tr><th>{_e(group)}</th>{''.join(cells)}</tr>")
    kind = next((e["group_column"] for e in evaluations.values() if e.get("group_column")), "group")  # level, task
    return (
        f"<p>Pass@1 by {_e(kind)} (problems):</p><table class='eval'><tr><th>{_e(kind)}</th>{head}</tr>"
        f"{''.join(lines)}</table>"
    )


def _later(label: str) -> tuple:
    """`r1kit eval`'s labels (eval, eval_2, …, eval_10) in the order they were written, after a run's own.

    >>> sorted(["eval_10", "eval", "sft", "eval_2"], key=_later)
    ['sft', 'eval', 'eval_2', 'eval_10']
    """
    number = eval_label_number(label)
    return (0, 0) if number is None else (1, number)


def _run_evaluations(stage_list: list[dict], written: dict[str, Any]) -> dict[str, Any]:
    """The run's own evaluations when it has no summary (killed, or a stage run alone): the base model's, then each
    stage's in the recipe's order (alphabetical order made the change column compare the wrong stages)."""
    order = ["base", *(stage.get("name") for stage in stage_list)]
    own = [label for label in written if eval_label_number(label) is None]
    own.sort(key=lambda label: order.index(label) if label in order else len(order))
    return {label: written[label] for label in own}


def _stage_list(run: RunDir) -> list[dict]:
    """A recipe's stages from RUN/manifest.json, or the stage run alone in RUN/<stage> from its own manifest."""
    recipe = read_manifest(run.root)
    if recipe:
        return recipe.get("stages", [])
    stages = []
    for folder in sorted(path.parent for path in run.root.glob("*/manifest.json")):
        manifest = read_manifest(folder)
        stages.append({"folder": folder.name, **{k: manifest.get(k) for k in ("kind", "status", "seconds")}})
    return stages


def _stages(run: RunDir, stage_list: list[dict]) -> str:
    """The recipe's stages: status (with why a stage has no model: "complete" alone read as a trained one), time,
    their own figures, and a pass-rate histogram where a curriculum made one."""
    lines, histograms = [], []
    for stage in stage_list:
        folder = run.root / stage["folder"]
        manifest = read_manifest(folder)
        figures = (manifest.get("output") or {}).get("metrics") or {}
        shown = ", ".join(f"{_e(k)} {_fmt(v, False)}" for k, v in figures.items())
        seconds = stage.get("seconds")
        status = stage["status"]
        if without_model(manifest) == KEPT_NOTHING:  # a stage that makes data is complete as it is
            status += f": {KEPT_NOTHING}; the model before it went on"
        lines.append(
            f"<tr><td>{_e(stage['folder'])}</td><td>{_e(stage['kind'])}</td><td>{_e(status)}</td>"
            f"<td>{_duration(seconds)}</td><td>{shown}</td></tr>"
        )
        if (folder / "pass_rates.json").exists():
            saved = read_json(folder / "pass_rates.json")
            cells = "".join(f"<td>{_e(rate)}: {n}</td>" for rate, n in saved["histogram"].items())
            histograms.append(
                f"<p>{_e(stage['folder'])}: pass rates of {saved['scored']} prompts ({saved['samples_per_prompt']} "
                f"samples each), {saved['kept']} within {saved['bounds']}</p><table><tr>{cells}</tr></table>"
            )
            # re-scored with the policy during training (`curriculum.rescore_every`); older runs have no such list
            for entry in saved.get("rescored", []):
                cells = "".join(f"<td>{_e(rate)}: {n}</td>" for rate, n in entry["histogram"].items())
                histograms.append(
                    f"<p>re-scored at step {entry['step']}: {entry['kept']} within {entry['bounds']}</p>"
                    f"<table><tr>{cells}</tr></table>"
                )
    head = "<tr><th>folder</th><th>kind</th><th>status</th><th>time</th><th>figures</th></tr>"
    return f"<table class='alerts'>{head}{''.join(lines)}</table>{''.join(histograms)}"


def moving_average(values: list[float], window: int) -> list[float]:
    """Mean of the last `window` values at each value: a series' own values, drawn at their own steps, so that its
    trend ends where the series stops (a reward that stopped scoring is not drawn on, flat, as a healthy one) and a
    series logged every few steps keeps one line.

    >>> moving_average([1.0, 3.0, 5.0, 7.0], 2)
    [1.0, 2.0, 4.0, 6.0]
    """
    return [sum(values[max(0, at - window + 1) : at + 1]) / min(window, at + 1) for at in range(len(values))]


def _paired(paired: dict[str, dict[str, Any]]) -> str:
    """Each stage's change on the same problems, with its 95% interval."""
    items = [
        f"<li>{_e(pair)}: {change['difference'] * 100:+.1f} pts, 95% interval [{change['ci95'][0] * 100:+.1f}, "
        f"{change['ci95'][1] * 100:+.1f}] over {change['problems']} problems</li>"
        for pair, change in paired.items()
        if change.get("difference") is not None
    ]
    return f"<p>Paired changes:</p><ul>{''.join(items)}</ul>" if items else ""


def _changed_problems(run: RunDir, pairs: Iterable[str]) -> str:
    """For each pair of evaluations on the same problems ("sft→grpo"), the problems the later model solves and the
    earlier did not (fixed) and the reverse (broken), with a few of each: what a stage changed, not only how much."""
    parts = []
    for pair in pairs:
        before, _, after = pair.partition("→")
        old, new = run.read_problems(before), run.read_problems(after)
        if not old or len(old) != len(new):  # an evaluation from before these files were written
            continue
        scores = [p["correct"] for p in old], [p["correct"] for p in new]
        fixed, broken = flipped(*scores)
        judged = sum(a is not None and b is not None for a, b in zip(*scores, strict=True))
        if not judged:  # no gold answer to judge by (chat data): nothing was fixed or broken
            continue
        cards = [
            f"<div class='example {css}'><div class='meta'><b>{verdict}</b> · gold {_e(old[i]['gold'])}</div>"
            f"<div class='prompt'>{_e(old[i]['question'])}</div><div class='meta'>{_e(before)}</div>"
            f"{_completion(old[i]['completion'])}<div class='meta'>{_e(after)}</div>{_completion(new[i]['completion'])}"
            "</div>"
            for verdict, css, changed in (("fixed", "correct", fixed), ("broken", "wrong", broken))
            for i in changed[:_CHANGED_SHOWN]
        ]
        parts.append(
            f"<p><b>{_e(pair)}</b>: {len(fixed)} fixed, {len(broken)} broken, of {judged} problems</p>"
            f"<div class='examples'>{''.join(cards)}</div>"
        )
    return "<h3>Problems each stage fixed and broke</h3>" + "".join(parts) if parts else ""


def _eval_table(
    evaluations: dict[str, dict[str, Any]], questions: dict[str, list[str]], models_in: Path | None = None
) -> str:
    """Evaluations side by side, each column's held-out data named where they differ; the change from the first to
    the last only between evaluations of the same problems (the same data, count and, where their problem files
    are kept, `questions`: another split seed gives others under the same name). `models_in`: a run folder; each
    column then names the model it scored (`r1kit eval`'s labels, eval, eval_2, …, do not), relative to that folder
    where inside it."""
    labels = list(evaluations)
    columns = list(evaluations.values())
    data = [f"{e.get('dataset')} ({e.get('problems')})" for e in columns]
    asked = {tuple(questions[label]) for label in labels if questions.get(label)}
    same_problems = len(set(data)) == 1 and len(asked) <= 1
    ks = sorted({k for e in columns for k in (e.get("pass_at_k") or {})}, key=int)
    # (row title, key, each column's value, a percentage, a change between the first and last column means something)
    rows = [
        ("accuracy (pass@1)", "accuracy", [e.get("accuracy") for e in columns], True, True),
        ("format rate", "format_rate", [e.get("format_rate") for e in columns], True, True),
    ]
    rows += [
        (pass_k_name(k), f"pass@{k}", [(e.get("pass_at_k") or {}).get(k) for e in columns], True, True) for k in ks
    ]
    consensus = consensus_row(columns)
    rows += [(consensus[0], "consensus", consensus[1], True, consensus[2])] if consensus else []
    rows += [
        (title, key, [e.get(key) for e in columns], percent, comparable)
        for title, key, percent, comparable in (
            ("mean completion tokens", "mean_completion_tokens", False, True),
            ("perplexity (reference text)", "perplexity", False, True),
            ("ROUGE-L", "rouge_l", True, True),
            ("win rate (reward model)", "win_rate", True, True),
            ("truncated", "truncated_rate", True, True),
            ("problems", "problems", False, False),
            ("left out of pass@1 (no readable gold)", "excluded", False, False),
        )
    ]
    rows = [row for row in rows if any(value is not None for value in row[2])]  # none has it (win rate, perplexity)
    head = "".join(f"<th>{_e(label)}</th>" for label in labels)
    lines = (
        []
        if same_problems
        else [f"<tr><th>held-out data</th>{''.join(f'<td>{_e(d)}</td>' for d in data)}<td></td></tr>"]
    )
    if models_in is not None:
        models = [_model_name(e.get("model"), models_in) for e in columns]
        lines.insert(0, f"<tr><th>model</th>{''.join(f'<td>{_e(m)}</td>' for m in models)}<td></td></tr>")
    for title, key, values, percent, comparable in rows:
        cells = "".join(f"<td>{_fmt(v, percent)}</td>" for v in values)
        change = ""
        if same_problems and len(values) > 1 and values[0] is not None and values[-1] is not None and comparable:
            delta = values[-1] - values[0]
            change = (
                f"{delta * 100:+.1f} pts" if percent else f"{delta:+.2f}" if key == "perplexity" else f"{delta:+.1f}"
            )
        lines.append(f"<tr><th>{title}</th>{cells}<td class='change'>{change}</td></tr>")
        if key == "accuracy":  # its 95% interval right below it
            intervals = [e.get("accuracy_ci95") for e in columns]
            cells = "".join(f"<td>{_fmt(i[0], True)}–{_fmt(i[1], True)}</td>" if i else "<td>–</td>" for i in intervals)
            lines.append(f"<tr><th>95% interval</th>{cells}<td></td></tr>")
    return f"<table class='eval'><tr><th></th>{head}<th>change</th></tr>{''.join(lines)}</table>"


def _model_name(model: str | None, run_root: Path) -> str:
    """A stage's model of the run by its folder (`02_sft/model`), another by its path.

    >>> _model_name("/runs/a/02_sft/model", Path("/runs/a")), _model_name("/models/x", Path("/runs/a"))
    ('02_sft/model', '/models/x')
    """
    if not model:
        return "?"
    path = Path(model)
    return str(path.relative_to(run_root)) if path.is_relative_to(run_root) else model


def _stage_plots(stage: str, rows: list[dict[str, Any]]) -> list[str]:
    rows = in_spans(rows, _MOST_POINTS)
    steps = [r["step"] for r in rows]
    reward_names = sorted(
        {
            k.split("/")[1]
            for r in rows
            for k in r
            if k.startswith("rewards/") and k.endswith("/mean") and k.count("/") == 2
        }
    )
    figures = []
    if reward_names:
        figures.append(
            _figure(
                stage,
                "Rewards",
                steps,
                [(f"rewards/{n}/mean", n) for n in reward_names],
                rows,
                "reward",
                False,
                band=True,
            )
        )
    for title, series, ylabel, percent in _PLOTS:
        if any(r.get(key) is not None for r in rows for key, _ in series):
            figures.append(_figure(stage, title, steps, series, rows, ylabel, percent))
    return figures


def in_spans(rows: list[dict[str, Any]], most: int) -> list[dict[str, Any]]:
    """`rows` (logged steps), or at most `most` rows where there are more: each the figures of a span of consecutive
    steps, at its last step: a figure's mean over the span, a batch's `…/min` and `…/max` their lowest and highest.

    >>> rows = [{"step": s, "loss": float(s), "rewards/a/min": -s, "rewards/a/max": s} for s in range(1, 7)]
    >>> in_spans(rows, 3) == [
    ...     {"step": 2, "loss": 1.5, "rewards/a/min": -2, "rewards/a/max": 2},
    ...     {"step": 4, "loss": 3.5, "rewards/a/min": -4, "rewards/a/max": 4},
    ...     {"step": 6, "loss": 5.5, "rewards/a/min": -6, "rewards/a/max": 6},
    ... ]
    True
    """
    if len(rows) <= most:
        return rows
    size = math.ceil(len(rows) / most)
    spans = []
    for start in range(0, len(rows), size):
        span = rows[start : start + size]
        merged: dict[str, Any] = {"step": span[-1]["step"]}
        for key in dict.fromkeys(key for row in span for key in row if key != "step"):
            values = [value for row in span if (value := _finite(row.get(key))) is not None]
            if values:  # a figure no step of the span has stays missing there
                merged[key] = (
                    min(values)
                    if key.endswith("/min")
                    else max(values)
                    if key.endswith("/max")
                    else sum(values) / len(values)
                )
        spans.append(merged)
    return spans


def _trend_label(label: str, steps: list[int], window: int) -> str:
    """The legend of a moving average over `window` plotted points, in steps: a point stands for several where the
    steps were logged every few (logging_steps) or merged into spans (`in_spans`), its usual spacing (a gap where the
    series logged nothing is no wider window).

    >>> _trend_label("loss", list(range(1, 101)), 12), _trend_label("loss", list(range(5, 5001, 5)), 125)
    ('loss (mean of 12 steps)', 'loss (mean of 625 steps)')
    >>> _trend_label("reward", [*range(1, 301), *range(701, 1001)], 75)
    'reward (mean of 75 steps)'
    """
    per_point = statistics.median(b - a for a, b in itertools.pairwise(steps)) if len(steps) > 1 else 1
    return f"{label} (mean of {round(window * per_point)} steps)"


def segments(logged: list[tuple[int, float]]) -> list[list[tuple[int, float]]]:
    """A series' (step, value) points cut where it skips more than twice its usual spacing (a reward that scored
    nothing for a while): drawn as a gap, not a line across it, and a moving average starts again after it.

    >>> [len(part) for part in segments([(1, 0.0), (2, 0.0), (3, 0.0), (10, 1.0), (11, 1.0)])]
    [3, 2]
    >>> [len(part) for part in segments([(2, 0.0), (4, 0.0), (6, 0.0), (8, 1.0)])]  # logged every other step
    [4]
    """
    if len(logged) < 3:
        return [logged] if logged else []
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(logged)]
    usual, parts = statistics.median(gaps), [[logged[0]]]
    for gap, point in zip(gaps, logged[1:], strict=True):
        if gap > 2 * usual:
            parts.append([])
        parts[-1].append(point)
    return parts


def _figure(stage, title, steps, series, rows, ylabel, percent, band=False) -> str:
    fig, ax = plt.subplots(figsize=(5.2, 3.0), dpi=100)
    for key, label in series:
        values = [_plottable(r.get(key)) for r in rows]
        if all(v is None for v in values):
            continue
        # its logged points alone: a figure logged every other step (a rollout figure under grpo.num_iterations 2)
        # is one line, not dots between gaps (which draw nothing without markers)
        logged = [(step, value) for step, value in zip(steps, values, strict=True) if value is not None]
        smoothed = len(steps) >= _SMOOTHED_FROM
        # matplotlib leaves a label that starts with "_" out of the legend (a plug-in reward `mod:_mine`): a space
        # in front keeps it
        label = f" {label}" if label.startswith("_") else label
        marker = "o" if len(logged) <= _MARKED_UP_TO else None
        window = max(3, len(logged) // 8)
        color = None
        for number, part in enumerate(segments(logged)):  # one legend entry for all of a series' parts
            shown = "_nolegend_" if number else label
            # a part of one point (a value logged once after a gap) draws nothing as a line: a dot
            line = ax.plot([step for step, _ in part], [value for _, value in part], markersize=2.5,
                           marker=marker or ("o" if len(part) == 1 else None),
                           linewidth=1.0 if smoothed else 1.6, label=shown, alpha=0.45 if smoothed else 1.0,
                           color=color)[0]  # fmt: skip
            color = line.get_color()
            if smoothed:  # what the trend is, through the step-to-step noise
                trend = moving_average([value for _, value in part], window)
                trend_label = "_nolegend_" if number else _trend_label(label, [step for step, _ in logged], window)
                ax.plot([step for step, _ in part], trend, color=color, linewidth=2.2, label=trend_label)
        if band:  # the spread of the reward within each step's batch (`rewards/NAME/mean`: its /min and /max)
            low, high = (
                [math.nan if (v := _plottable(r.get(key.removesuffix("/mean") + end))) is None else v for r in rows]
                for end in ("/min", "/max")
            )
            ax.fill_between(steps, low, high, color=color, alpha=0.12, linewidth=0)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if percent:
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.grid(alpha=0.3)
    labelled = ax.get_legend_handles_labels()[0]  # none where every value was missing (a reward that failed)
    if labelled and (len(series) > 1 or band or len(steps) >= _SMOOTHED_FROM):
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # drop the XML prologue: the SVG is inlined
    slug = f"{stage}-{title}".lower().replace(" ", "-")
    return f"<figure class='plot' id='plot-{_e(slug)}'>{svg}</figure>"


def _alerts(alerts: list[dict[str, Any]]) -> str:
    """Alerts and notices in the order they were raised, each row marked (and coloured) by its level."""
    levels = [a.get("level", "alert") for a in alerts]  # runs from before notices existed logged alerts only
    ok = "" if "alert" in levels else "<p class='ok'>No alerts were raised.</p>"
    if not alerts:
        return ok
    rows = "".join(
        f"<tr class='{_e(level)}'><td>{_e(a.get('stage', ''))}</td><td>{_e(a.get('step', ''))}</td><td>{_e(level)}</td>"
        f"<td class='kind'>{_e(a.get('kind', ''))}</td><td>{_e(a.get('message', ''))}</td></tr>"
        for a, level in zip(alerts, levels, strict=True)
    )
    head = "<tr><th>stage</th><th>step</th><th>level</th><th>kind</th><th>message</th></tr>"
    return f"{ok}<table class='alerts'>{head}{rows}</table>"


def _examples(examples: list[dict[str, Any]]) -> str:
    cards = []
    for stage in dict.fromkeys(e["stage"] for e in examples):
        newest = [e for e in examples if e["stage"] == stage][-_EXAMPLES_SHOWN:]
        for example in newest:
            breakdown = " · ".join(f"{_e(k)} {_fmt(v, False)}" for k, v in example.get("rewards", {}).items())
            cards.append(
                f"<div class='example {_e(example['kind'])}'><div class='meta'><b>{_e(example['kind'])}</b> · {_e(stage)} step {_e(example['step'])}"
                f" · total {_fmt(example.get('total'), False)} · {breakdown}</div>"
                f"<div class='prompt'>{_e(example.get('prompt', ''))}</div>{_completion(example.get('completion', ''))}</div>"
            )
    return f"<div class='examples'>{''.join(cards)}</div>"


def _samples(samples: list[dict[str, Any]]) -> str:
    cards = []
    for sample in samples[:8]:
        if sample.get("gold") is None:  # chat data: nothing to verify, nothing left out
            verdict, said = "reply", "<b>no gold answer</b>"
        else:
            verdict = {1.0: "correct", 0.0: "wrong"}.get(sample.get("correct"), "excluded")
            said = f"<b>{verdict}</b> · gold {_e(sample.get('gold'))}"
        cards.append(
            f"<div class='example {verdict}'><div class='meta'>{said}"
            f" · format {'✓' if sample.get('format') else '✗'}</div><div class='prompt'>{_e(sample.get('question', ''))}</div>"
            f"{_completion(sample.get('completion', ''))}</div>"
        )
    return f"<div class='examples'>{''.join(cards)}</div>"


def _completion(text: str) -> str:
    """A completion with its <think> and <answer> parts marked up."""
    escaped = _e(text)
    for tag, css in (("think", "think"), ("answer", "answer")):
        escaped = escaped.replace(f"&lt;{tag}&gt;", f"<span class='{css}'><span class='tag'>&lt;{tag}&gt;</span>")
        escaped = escaped.replace(f"&lt;/{tag}&gt;", f"<span class='tag'>&lt;/{tag}&gt;</span></span>")
    return f"<pre class='completion'>{escaped}</pre>"


# ----------------------------------------------------------------------------------------------------- helpers


def _e(value: Any) -> str:
    return html.escape(str(value))


def _finite(value: Any) -> float | None:
    return value if isinstance(value, int | float) and math.isfinite(value) else None


def _plottable(value: Any) -> float | None:
    """A value a figure can draw: finite and within matplotlib's axis arithmetic (a reward near the float maximum
    overflowed its ticks, and the whole report failed)."""
    return value if _finite(value) is not None and abs(value) < _LARGEST_PLOTTED else None


_LARGEST_PLOTTED = 1e300


def _fmt(value: Any, percent: bool) -> str:
    if value is None:
        return "–"
    if percent:
        return f"{value:.1%}"
    if isinstance(value, float):  # perplexity 499.4 against 499.5: not 499; 49,152.3: not 4.915e+04
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return _e(value)


def _duration(seconds: float | None) -> str:
    """A stage's time: seconds under a minute (a tiny test run's 1.7 s is not "0.0 min").

    >>> _duration(1.74), _duration(150.0), _duration(None)
    ('1.7 s', '2.5 min', '–')
    """
    if seconds is None:
        return "–"
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#1d2430;background:#fafbfc}
h1{font-size:24px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #dde2e8;padding-bottom:4px}
code{background:#eef1f5;padding:1px 5px;border-radius:4px}
table{border-collapse:collapse;margin:8px 0;background:#fff}th,td{border:1px solid #dde2e8;padding:5px 10px;text-align:right}
table.alerts td,table.alerts th{text-align:left}td.kind{font-weight:600;color:#b4441c}td.change{font-weight:600}
tr.notice td.kind{color:#2e9e5b}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:10px}
figure.plot{margin:0;background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:4px}figure.plot svg{width:100%;height:auto}
.examples{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:10px}
.example{background:#fff;border:1px solid #dde2e8;border-left:5px solid #8892a0;border-radius:6px;padding:8px}
.example.best,.example.correct{border-left-color:#2e9e5b}.example.worst,.example.wrong{border-left-color:#d0453a}
.meta{font-size:13px;color:#4a5565}.prompt{margin:6px 0;font-size:14px}
pre{white-space:pre-wrap;word-break:break-word;font-size:13px}pre.completion{background:#f4f6f9;padding:6px;border-radius:4px;margin:0}
.think{color:#5c6675;font-style:italic}.answer{color:#1d4ed8;font-weight:700}.tag{color:#9aa3af;font-weight:400;font-style:normal}
.ok{color:#2e9e5b}details pre{background:#fff;border:1px solid #dde2e8;padding:8px;max-height:400px;overflow:auto}
"""
