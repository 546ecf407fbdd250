"""`r1kit report`: one self-contained HTML page, drawn by a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import REPO, r1kit_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags for a closed network: no background connections, no first-run work, a throwaway profile.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


@pytest.fixture(scope="module")
def report(finished_run: Path) -> Path:
    done = r1kit_cli("report", str(finished_run), cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    return finished_run / "report.html"


def test_report_is_self_contained_with_plots_and_examples(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    assert "<script" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched from a network
    assert "@import" not in page and "url(http" not in page
    for needle in (
        "Evaluation",
        "accuracy (pass@1)",
        "Stage <code>sft</code>",
        "Stage <code>grpo</code>",
        "plot-grpo-rewards",
        "plot-grpo-format-compliance",
        "plot-grpo-completion-length",
        "plot-grpo-speed",
        "Alerts",
        "Best and worst completions",
        "zero_advantage",
        "Problems each stage fixed and broke",
    ):
        assert needle in page, needle


def test_the_report_shows_the_problems_a_stage_fixed_and_broke(tmp_path: Path) -> None:
    """From the evaluations' per-problem files: which problems changed between two stages, not only how many."""
    import json

    from r1kit.monitoring.report import write_report

    (tmp_path / "config.yaml").write_text("{}\n")
    verdicts = {"sft": [1.0, 0.0, 0.0, 1.0, None], "grpo": [1.0, 1.0, 0.0, 0.0, 1.0]}
    (tmp_path / "eval").mkdir()
    for label, scores in verdicts.items():
        rows = [
            {"question": f"What is {i} + {i}?", "gold": str(2 * i), "completion": f"{label} says {i}", "correct": c}
            for i, c in enumerate(scores)
        ]
        (tmp_path / "eval" / f"{label}.problems.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    change = {"difference": 0.0, "ci95": [-0.5, 0.5], "problems": 4}
    (tmp_path / "summary.json").write_text(
        json.dumps({"evaluations": {"sft": {}, "grpo": {}}, "paired": {"sft→grpo": change}})
    )
    page = write_report(tmp_path).read_text()
    assert "<b>sft→grpo</b>: 1 fixed, 1 broken, of 4 problems" in page  # the unjudged fifth left out
    fixed, broken = page.index("<b>fixed</b>"), page.index("<b>broken</b>")
    assert page.index("What is 1 + 1?") > fixed and "grpo says 1" in page[fixed:broken]
    assert page.index("What is 3 + 3?") > broken and "sft says 3" in page[broken:]


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian package `chromium`)")
def test_a_browser_draws_the_plots(report: Path, tmp_path: Path) -> None:
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, *profile, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    figures = re.findall(r"<figure class=\"plot\" id=\"(plot-[^\"]+)\">(.*?)</figure>", dom.stdout, re.DOTALL)
    assert len(figures) >= 8
    for name, svg in figures:
        assert "<svg" in svg and "<path" in svg, name

    shot = tmp_path / "report.png"
    done = subprocess.run(
        [CHROMIUM, *FLAGS, *profile, "--window-size=1280,2600", f"--screenshot={shot}", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    pixels = image.getdata()
    # matplotlib's first line colour (tab:blue) must be on screen: the plots were rendered, not just embedded
    blue = sum(1 for r, g, b in pixels if abs(r - 31) < 30 and abs(g - 119) < 30 and abs(b - 180) < 30)
    assert blue > 2000, blue
    assert len(set(image.resize((64, 64)).getdata())) > 50  # not a blank page


def test_a_reward_that_scored_nothing_is_drawn_without_a_legend_warning(tmp_path: Path) -> None:
    """A plug-in failing on every item left only missing values; matplotlib warned of a legend with no artists."""
    import json
    import warnings

    from r1kit.monitoring.report import write_report

    (tmp_path / "config.yaml").write_text("{}\n")
    rows = [
        {"stage": "grpo", "kind": "step", "step": step, "rewards/scalar/mean": None, "rewards/scalar/exceptions": 4.0}
        for step in range(1, 13)
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert "<svg" in write_report(tmp_path).read_text()


def test_a_long_runs_report_stays_small(tmp_path: Path) -> None:
    """Every logged step was drawn, with a dot each: a 30,000-step run's report was 45 MB of SVG. Drawn in spans of
    steps now, each plot a thousand points at most, the last span ending at the last step."""
    from r1kit.monitoring.report import write_report

    (tmp_path / "config.yaml").write_text("{}\n")
    rows = [
        {"stage": "grpo", "kind": "step", "step": step, "loss": 1.0 / step, "rewards/accuracy/mean": (step % 7) / 7,
         "rewards/accuracy/min": 0.0, "rewards/accuracy/max": 1.0, "quality/completion_tokens": 40.0 + step % 5}
        for step in range(1, 5001)
    ]  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    size = write_report(tmp_path).stat().st_size
    assert size < 1_000_000, size
    from r1kit.monitoring.report import in_spans

    spans = in_spans(rows, 1000)
    assert (
        len(spans) == 1000
        and spans[-1]["step"] == 5000
        and spans[0]["loss"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5) / 5)
    )


def test_a_figure_logged_every_other_step_is_drawn_as_a_line(tmp_path: Path) -> None:
    """Past 200 steps the dots go; a rollout figure logged every other step (grpo.num_iterations 2) was then drawn as
    points between gaps, which draw nothing: only its moving average showed."""
    from r1kit.monitoring.report import write_report

    (tmp_path / "config.yaml").write_text("{}\n")
    rows = [
        {"stage": "grpo", "kind": "step", "step": step, "loss": 1.0 / step}
        | ({"rewards/accuracy/mean": (step % 7) / 7} if step % 2 else {})
        for step in range(1, 401)
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    html = write_report(tmp_path).read_text()
    figure = html[html.index("plot-grpo-rewards") :]
    lines = re.findall(r'<path d="(M[^"]*)"', figure[: figure.index("</figure>")])
    assert sum(path.count("L ") >= 50 for path in lines) == 2  # the figure's line and its moving average


def test_a_reward_s_gap_its_band_and_a_huge_value_are_drawn_as_they_are(tmp_path: Path) -> None:
    """A reward that scored nothing from step 101 to 300 was drawn straight across the gap, its moving average after
    it mostly the values before; the band of a reward named `mean_length` read `rewards/min_length/min` (another
    reward's); a reward near the float maximum overflowed matplotlib's ticks and the whole report failed."""
    import matplotlib.axes

    from r1kit.monitoring.report import write_report

    (tmp_path / "config.yaml").write_text("{}\n")
    rows = [
        {"stage": "grpo", "kind": "step", "step": step, "loss": 1.0, "quality/completion_tokens": 40.0,
         "rewards/accuracy/mean": None if 100 < step <= 300 else (0.8 if step <= 100 else 0.2),
         "rewards/mean_length/mean": 0.5, "rewards/mean_length/min": 0.4, "rewards/mean_length/max": 0.6,
         "rewards/min_length/mean": 0.1, "rewards/min_length/min": -5.0, "rewards/min_length/max": 9.0,
         "rewards/huge/mean": 1.0, "rewards/huge/min": -1e308 if step == 7 else 0.0, "rewards/huge/max": 1e308,
         "rewards/once/mean": 0.3 if step <= 300 or step == 400 else None}
        for step in range(1, 401)
    ]  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    drawn: list[tuple[str, list, list, str | None]] = []
    bands: list[tuple[list, list]] = []
    plot, fill = matplotlib.axes.Axes.plot, matplotlib.axes.Axes.fill_between
    try:
        matplotlib.axes.Axes.plot = lambda ax, x, y, *a, **k: drawn.append((k["label"], list(x), list(y), k.get("marker"))) or plot(ax, x, y, *a, **k)  # fmt: skip
        matplotlib.axes.Axes.fill_between = lambda ax, x, low, high, **k: bands.append((list(low), list(high))) or fill(ax, x, low, high, **k)  # fmt: skip
        assert "<svg" in write_report(tmp_path).read_text()
    finally:
        matplotlib.axes.Axes.plot, matplotlib.axes.Axes.fill_between = plot, fill
    accuracy = [(label, x) for label, x, _, _ in drawn if any(step in x for step in (50, 350)) and label.startswith(("accuracy", "_"))]  # fmt: skip
    assert all(x[-1] <= 100 or x[0] > 300 for _, x in accuracy)  # no line across the gap
    after = next(y for label, x, y, _ in drawn if x[0] > 300 and label == "_nolegend_" and y[0] == pytest.approx(0.2))
    assert all(value == pytest.approx(0.2) for value in after)  # its trend starts again after the gap
    assert ([0.4] * 400, [0.6] * 400) in bands
    assert ([400], "o") in [(x, marker) for _, x, _, marker in drawn]  # a value logged once after a gap: a dot


def test_a_run_writes_its_report_as_it_ends_and_a_failure_is_said(tmp_path: Path, caplog) -> None:
    """report.html was written by `r1kit report` alone; written at the end of `r1kit run`, a report that fails (a
    damaged file of the run) is said, and the finished run stands."""
    import logging

    from r1kit.pipeline import _write_report
    from r1kit.runs import RunDir

    (tmp_path / "config.yaml").write_text("{}\n")
    rows = [{"stage": "grpo", "kind": "step", "step": step, "rewards/accuracy/mean": 0.5} for step in range(1, 9)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        _write_report(RunDir(tmp_path))
    assert "plot-grpo-rewards" in (tmp_path / "report.html").read_text() and "report: " in caplog.text
    (tmp_path / "summary.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        _write_report(RunDir(tmp_path))
    assert f"the report could not be written (RunDirError: {tmp_path / 'summary.json'} is damaged" in caplog.text
    assert f"`r1kit report {tmp_path}` tries again" in caplog.text


def test_an_evaluation_of_a_runs_model_written_later_has_its_own_table(finished_run: Path, tmp_path: Path) -> None:
    """`r1kit eval --model RUN` writes RUN/eval/eval.json; a pipeline run's report read only its summary's stages."""
    from r1kit.monitoring.report import write_report

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    done = r1kit_cli("eval", "--profile", "test", "--model", str(run), cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    page = write_report(run).read_text()
    assert "<p>Pass@1 by level (problems):</p>" in page  # the built-in task's groups named (was: "by group")
    run_table, later = page.split("Evaluated later (<code>r1kit eval</code>)</h2>")
    assert "<th>eval</th>" in later.split("</table>")[0] and "<th>eval</th>" not in run_table
    final = json.loads((run / "summary.json").read_text())["final_model"]
    assert f"<tr><th>model</th><td>{final}</td>" in later  # eval, eval_2 … said nothing of what they scored
    # one on other data: each column's data named, and no change between different problems
    other = r1kit_cli("eval", "--profile", "test", "--model", str(run), "--data", "word_problems", cwd=REPO)
    assert other.returncode == 0, other.stderr[-2000:]
    later = write_report(run).read_text().split("Evaluated later")[1].split("</table>")[0]
    assert "<th>held-out data</th>" in later and "word_problems" in later
    assert "<td class='change'></td>" in later and "pts</td>" not in later


def test_a_run_without_a_summary_shows_its_evaluations_in_stage_order(tmp_path: Path) -> None:
    """A killed run (no summary.json) listed its evaluations alphabetically: base, reasoning_rl, sft, and the change
    column compared base with sft; `r1kit eval`'s eval_10 came before eval_2, all in the run's own table."""
    from r1kit.monitoring.report import write_report

    (tmp_path / "eval").mkdir()
    (tmp_path / "config.yaml").write_text("{}\n")
    stages = [
        {"name": "sft", "kind": "sft", "folder": "01_sft", "status": "complete", "seconds": 60.0},
        {"name": "reasoning_rl", "kind": "grpo", "folder": "02_reasoning_rl", "status": "complete", "seconds": 90.0},
        {
            "name": "rejection_sampling",
            "kind": "rejection_sampling",
            "folder": "03_rejection_sampling",
            "status": "running",
            "seconds": None,
        },
    ]
    (tmp_path / "manifest.json").write_text(json.dumps({"stages": stages}))
    for stage in stages:
        (tmp_path / stage["folder"]).mkdir()
        (tmp_path / stage["folder"] / "manifest.json").write_text(json.dumps({"kind": stage["kind"]}))

    def evaluation(label: str, accuracy: float) -> None:
        result = {"label": label, "model": "/m", "problems": 4, "accuracy": accuracy, "format_rate": 1.0}
        (tmp_path / "eval" / f"{label}.json").write_text(json.dumps(result))

    for label, accuracy in (("base", 0.1), ("sft", 0.3), ("reasoning_rl", 0.6), ("eval", 0.7), ("eval_2", 0.75)):
        evaluation(label, accuracy)
    evaluation("eval_10", 0.8)
    page = write_report(tmp_path).read_text()
    own, later = page.split("<h2>Evaluation</h2>")[1].split("Evaluated later")
    assert re.findall(r"<th>([^<]*)</th>", own.split("</table>")[0])[:5] == [
        "",
        "base",
        "sft",
        "reasoning_rl",
        "change",
    ]
    assert "+50.0 pts" in own
    assert re.findall(r"<th>([^<]*)</th>", later.split("</table>")[0])[1:4] == ["eval", "eval_2", "eval_10"]
    assert f"<h1>r1kit run <code>{tmp_path.name}</code></h1>" in page  # was titled with its stage folders' names


def test_a_killed_runs_report_pairs_its_stages_from_their_evaluation_files(tmp_path: Path) -> None:
    """A run killed before its summary.json showed no paired change and no problem fixed or broken, though its eval
    files held the scores: RUN/manifest.json now says which evaluation each stage started from."""
    from r1kit.monitoring.report import write_report

    (tmp_path / "eval").mkdir()
    (tmp_path / "config.yaml").write_text("{}\n")
    stages = [
        {"name": "sft", "kind": "sft", "folder": "01_sft", "status": "complete", "started_from": "base"},
        {"name": "dpo", "kind": "dpo", "folder": "02_dpo", "status": "complete", "started_from": "sft"},
        {"name": "ppo", "kind": "ppo", "folder": "03_ppo", "status": "complete", "started_from": "sft"},
        {"name": "rloo", "kind": "rloo", "folder": "04_rloo", "status": "running", "started_from": None},
    ]
    stages = [stage | {"reached": stage["name"] != "rloo"} for stage in stages]
    (tmp_path / "manifest.json").write_text(json.dumps({"stages": stages}))
    questions = [f"What is {i} + 1?" for i in range(4)]
    # rloo's evaluation is of a model from before the killed command (`--from sft` redid what it started from): the
    # command never reached it, so it records no start model, and was paired as the run's last (base→rloo)
    evaluations = (("base", [0, 0, 0, 1]), ("sft", [1, 1, 0, 1]), ("dpo", [1, 1, 1, 1]), ("ppo", [1, 0, 0, 1]))
    for label, scores in (*evaluations, ("rloo", [0, 0, 0, 0])):
        result = {"label": label, "model": "/m", "problems": 4, "accuracy": sum(scores) / 4, "scores": scores}
        (tmp_path / "eval" / f"{label}.json").write_text(json.dumps(result | {"format_rate": 1.0}))
        rows = [
            {"question": q, "gold": "1", "completion": "x", "correct": c}
            for q, c in zip(questions, scores, strict=True)
        ]
        (tmp_path / "eval" / f"{label}.problems.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    page = write_report(tmp_path).read_text()
    # each stage against the model it started from (PPO against SFT, not DPO), then the whole run
    assert re.findall(r"<li>(\S+): ([+-]\d+\.\d) pts", page) == [
        ("base→sft", "+50.0"),
        ("sft→dpo", "+25.0"),
        ("sft→ppo", "-25.0"),
        ("base→ppo", "+25.0"),
    ]
    assert "<b>sft→ppo</b>: 0 fixed, 1 broken, of 4 problems" in page
    # data without gold answers (chat replies): no pair says "0 fixed, 0 broken, of 0 problems"
    for label, _ in evaluations:
        path = tmp_path / "eval" / f"{label}.problems.jsonl"
        rows = [json.loads(line) | {"correct": None} for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert "Problems each stage fixed and broke" not in write_report(tmp_path).read_text()
    # and rloo's stale evaluation stands apart: it was the table's last column, its change "from base" the run's
    own, stale = page.split("<h2>Evaluation</h2>")[1].split("Not reached by the killed command")
    assert re.findall(r"<th>([^<]*)</th>", own.split("</table>")[0])[1:6] == ["base", "sft", "dpo", "ppo", "change"]
    assert re.findall(r"<th>([^<]*)</th>", stale.split("</table>")[0])[1:3] == ["rloo", "change"]


@pytest.mark.parametrize(
    ("file", "text", "said"),
    [
        ("eval/base.json", '{"label": "base", "scores": [1', "base.json is damaged (Expecting"),
        ("eval/base.json", "[]", "base.json is damaged (a JSON list, not an object)"),
        ("summary.json", "{'evaluations': 1}", "summary.json is damaged (Expecting property name"),
    ],
)
def test_a_damaged_json_file_of_the_run_is_named(tmp_path: Path, file: str, text: str, said: str) -> None:
    """One cut-short or hand-edited evaluation or summary made `r1kit report` fail with "unexpected error (a bug in
    r1kit …): JSONDecodeError" (or an AttributeError), naming no file."""
    (tmp_path / "eval").mkdir()
    (tmp_path / "config.yaml").write_text("{}\n")
    (tmp_path / file).write_text(text)
    done = r1kit_cli("report", str(tmp_path), cwd=REPO)
    assert done.returncode == 1 and said in done.stderr and "unexpected error" not in done.stderr, done.stderr


def test_the_report_shows_the_majority_vote_beside_pass_at_k(tmp_path: Path) -> None:
    from r1kit.monitoring.report import write_report

    (tmp_path / "config.yaml").write_text("{}\n")
    sampled = {"dataset": "arithmetic", "problems": 8, "accuracy": 0.5, "pass_at_k": {"1": 0.4, "8": 0.75}}
    evaluations = {
        "sft": sampled | {"consensus": {"samples": 8, "accuracy": 0.5}},
        "grpo": sampled | {"consensus": {"samples": 8, "accuracy": 0.625}},
    }
    (tmp_path / "summary.json").write_text(json.dumps({"evaluations": evaluations}))
    page = write_report(tmp_path).read_text()
    row = re.search(r"<tr><th>cons@8 \(majority vote\)</th>(.*?)</tr>", page)
    assert row, page
    assert re.findall(r"<td[^>]*>([^<]*)</td>", row.group(1)) == ["50.0%", "62.5%", "+12.5 pts"]
    # votes of other sample counts: shown, but their difference is no change of the model
    evaluations["grpo"]["consensus"]["samples"] = 4
    (tmp_path / "summary.json").write_text(json.dumps({"evaluations": evaluations}))
    row = re.search(r"<tr><th>cons@n \(majority vote\)</th>(.*?)</tr>", write_report(tmp_path).read_text())
    assert row and re.findall(r"<td[^>]*>([^<]*)</td>", row.group(1)) == ["50.0%", "62.5%", ""]


def test_the_report_compares_only_evaluations_of_the_same_problems(tmp_path: Path) -> None:
    """Two evaluations of one data set's name and size with another split seed (other problems) got a change column;
    a stage run alone's evaluations named no model (an untrained model's read as the trained one getting worse); an
    outdated stage's evaluation (after --only) was listed as an `r1kit eval` result; the problems left out of pass@1
    were not said, and rows no column has (win rate) were printed empty."""
    from r1kit.monitoring.report import write_report

    (tmp_path / "config.yaml").write_text("{}\n")
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "manifest.json").write_text(json.dumps({"stage": "sft", "status": "complete"}))
    (tmp_path / "eval").mkdir()
    figures = {"dataset": "arithmetic", "problems": 2, "accuracy": 0.5, "format_rate": 1.0, "excluded": 1}
    for label, model, questions in (
        ("eval", tmp_path / "sft" / "model", ["What is 1 + 1?", "What is 2 + 2?"]),
        ("eval_2", tmp_path / "base", ["What is 3 + 3?", "What is 4 + 4?"]),
    ):
        (tmp_path / "eval" / f"{label}.json").write_text(json.dumps(figures | {"model": str(model)}))
        rows = "".join(json.dumps({"question": q, "correct": 1.0}) + "\n" for q in questions)
        (tmp_path / "eval" / f"{label}.problems.jsonl").write_text(rows)
    page = write_report(tmp_path).read_text()
    table = page.split("<h2>Evaluation</h2>")[1].split("</table>")[0]
    assert re.findall(r"<td class='change'>([^<]*)</td>", table) == [""] * len(re.findall("change'", table))
    assert "<tr><th>model</th><td>sft/model</td>" in table  # which model each column scored
    assert "<tr><th>left out of pass@1 (no readable gold)</th><td>1</td>" in table
    assert "win rate" not in table
    # a recipe run whose grpo stage --only left outdated: its evaluation is in no summary, and no `r1kit eval` result
    for label in ("eval", "eval_2"):
        (tmp_path / "eval" / f"{label}.json").unlink()
    (tmp_path / "eval" / "grpo.json").write_text(json.dumps(figures))
    (tmp_path / "summary.json").write_text(json.dumps({"evaluations": {"base": figures, "sft": figures}}))
    assert "Evaluated later" not in write_report(tmp_path).read_text()


def test_chat_samples_large_figures_and_a_redone_stage_read_right(tmp_path: Path) -> None:
    """Held-out samples of chat data (no gold answer) were each marked "excluded · gold None"; a perplexity of 49,152.3
    read 4.915e+04; a stage redone by --only logs after the stages that followed it, and its plots came last."""
    from r1kit.monitoring.report import write_report

    (tmp_path / "eval").mkdir()
    (tmp_path / "config.yaml").write_text("{}\n")
    stages = [
        {"name": name, "kind": name, "folder": f"0{i}_{name}", "status": "complete"}
        for i, name in enumerate(["sft", "grpo"], 1)
    ]
    (tmp_path / "manifest.json").write_text(json.dumps({"stages": stages}))
    steps = [{"stage": stage, "kind": "step", "step": 1, "train/loss": 1.0} for stage in ("grpo", "sft")]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(step) + "\n" for step in steps))
    sample = {"question": "Say hi.", "gold": None, "completion": "Hi!", "correct": None, "format": False}
    result = {"label": "base", "model": "/m", "problems": 1, "perplexity": 49152.3, "samples": [sample]}
    (tmp_path / "eval" / "base.json").write_text(json.dumps(result))
    page = write_report(tmp_path).read_text()
    assert "no gold answer" in page and "excluded" not in page and "gold None" not in page
    assert "49,152" in page and "e+04" not in page
    assert page.index("Stage <code>sft</code>") < page.index("Stage <code>grpo</code>")


def test_a_report_of_the_current_folder_names_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`r1kit report .` in the run folder gave a page titled "r1kit · " with an empty run name."""
    from r1kit.monitoring.report import write_report

    (tmp_path / "my_run").mkdir()
    (tmp_path / "my_run" / "config.yaml").write_text("{}\n")
    monkeypatch.chdir(tmp_path / "my_run")
    page = write_report(Path(".")).read_text(encoding="utf-8")
    assert "<title>r1kit · my_run</title>" in page and "<code>my_run</code>" in page
