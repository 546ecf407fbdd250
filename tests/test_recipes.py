"""Recipes and the R1 pipeline: every shipped recipe resolves, the `r1` recipe runs every stage into its own folder
with manifests, a second run skips finished stages, a changed stage is redone with those after it, and a kill -9
mid-stage resumes it. The trace filters are tested on hand-written completions."""

from __future__ import annotations

import importlib
import json
import logging
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from r1kit.config.sources import SECTION_PATHS, ConfigError, list_recipes, resolve_config
from r1kit.prompts import GENERAL_SYSTEM_PROMPT
from r1kit.runs import RunDir, RunDirError
from r1kit.stages.registry import READS, STAGES
from r1kit.stages.traces import (
    KEPT,
    TraceJudge,
    acceptance_by_group,
    best_of,
    normalise,
    strip_filler,
    write_dataset,
)
from tests.conftest import REPO, r1kit_cli, r1kit_killed_in_checkpoint_write

R1_FOLDERS = ["01_cold_start", "02_sft", "03_reasoning_rl", "04_rejection_sampling", "05_sft2", "06_distill"]


@pytest.mark.parametrize("recipe", list_recipes())
def test_every_shipped_recipe_resolves_to_registered_stages(recipe: str) -> None:
    config = resolve_config(recipe=recipe, environ={}).config
    for spec in config.stages:
        module = importlib.import_module(STAGES[spec.stage_kind])
        assert callable(module.run) and callable(module.main) and set(READS[spec.stage_kind]) <= set(SECTION_PATHS)
        config.for_stage(spec)  # each stage's own values validate


def test_a_stage_config_is_laid_over_the_run_config() -> None:
    config = resolve_config(recipe="r1", environ={}).config
    rl = next(spec for spec in config.stages if spec.name == "reasoning_rl")
    assert config.for_stage(rl).rewards.functions == ["accuracy", "format", "language_consistency"]
    assert config.rewards.functions == ["accuracy", "format", "tag_count"]  # the run's own rewards untouched


def test_a_stage_config_reads_the_tutorials_names_as_the_file_does(tmp_path: Path, capsys) -> None:
    from r1kit.cli import main

    file = tmp_path / "recipe.yaml"
    file.write_text("stages:\n  - name: grpo\n    config: {training.learning_rate: 1.0e-4, training.max_steps: 3}\n")
    resolved = resolve_config(recipe=str(file), environ={})
    stage = resolved.config.for_stage(resolved.config.stages[0])
    assert (stage.training.optimization.learning_rate, stage.training.max_steps) == (1e-4, 3)
    assert "training.learning_rate → training.optimization.learning_rate (recipe.yaml, stage grpo)" in resolved.notes
    # the precision is the run's (one device for every stage): a stage's own was accepted and not used
    file.write_text("stages: [{name: grpo, config: {training.precision.bf16: false}}]\n")
    with pytest.raises(ConfigError, match=r"stages: grpo: model.precision cannot be set for one stage"):
        resolve_config(recipe=str(file), environ={})
    file.write_text("stages: [{name: grpo, config: {training.precision.tf32: true}}]\n")  # checked before any work
    assert main(["config", "show", "--recipe", str(file)]) == 2
    assert "model.tf32: TF32 is an NVIDIA GPU feature" in capsys.readouterr().err  # was: a crash at grpo's turn
    file.write_text("stages: [{name: grpo, config: {callbacks.comprehensive_logging: true}}]\n")
    with pytest.raises(ConfigError, match=r"recipe.yaml: stage grpo: callbacks.comprehensive_logging is not an r1kit"):
        resolve_config(recipe=str(file), environ={})


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ("[{name: sft}, {name: sft}]", r"listed twice; give each stage its own name \(from file:.*recipe.yaml\)"),
        ("[{name: sft, kind: nonsense}]", "unknown kind 'nonsense'"),
        ("[{name: sft2, data_from: later}, {name: later, kind: cold_start}]", "data_from 'later' is not an earlier"),
        (
            "[{name: grpo, config: {training: {max_steps: 0}}}]",
            r"stages: grpo: its config is invalid: training.max_steps: .*greater than or equal to 1 \(got 0\) "
            r"\(from file:.*recipe.yaml\)$",  # the stage and the file it is in
        ),
        (
            "[{name: grpo, config: {trainig: {max_steps: 3}}}]",
            r"stages: grpo: unknown key 'trainig.max_steps' in its config \(from file:.*recipe.yaml\); did you mean "
            "'training.max_steps'",
        ),
        ("[{name: grpo, config: {run: {seed: 1}}}]", "cannot set 'run'"),
        # a key the stage does not read would change nothing, without a word
        (
            "[{name: sft, config: {training: {optimization: {learning_rate: 0.1}}}}]",
            "stages: sft: training.optimization.learning_rate is not read by a sft stage .* its own setting is "
            "sft.optimization.learning_rate",
        ),
        ("[{name: sft}, {name: rl, kind: grpo, config: {sft: {max_steps: 3}}}]", "sft.max_steps is not read by a grpo"),
        # the run table's evaluation is the run's (was: accepted, and every model scored with the run's settings)
        (
            "[{name: sft, config: {evaluation: {max_new_tokens: 4, max_samples: 3}}}, {name: grpo}]",
            r"stages: sft: evaluation.max_samples is the run's: every stage's model is evaluated with the same",
        ),
        ("[{name: base, kind: sft}, {name: rl, kind: grpo}]", "'base' names the run's untouched model"),
        # what a stage asks an earlier one for must be something that kind writes, known before anything trains
        (
            "[{name: cs, kind: cold_start}, {name: rl, kind: grpo, model_from: cs}]",
            "a cold_start stage writes no model",
        ),
        ("[{name: sft}, {name: sft2, data_from: sft}]", "data_from 'sft': a sft stage writes no dataset"),
        ("[{name: rm, kind: reward_model}, {name: rl, kind: grpo, model_from: rm}]", "stages that write one: none"),
        ("[{name: sft}, {name: d, kind: distill}, {name: s2, kind: sft2, data_from: base}]", "not an earlier stage"),
        # a misspelt key or a bare name: was pydantic's "stages.confg: Extra inputs are not permitted"
        ("[{name: sft, confg: {sft: {max_steps: 3}}}]", "stages: sft: unknown key 'confg'; did you mean 'config'"),
        ("[{name: sft}, {name: grpo, model_form: sft}]", "stages: grpo: unknown key 'model_form'; did you mean"),
        ("[sft, grpo]", "stages: 'sft' is a name alone; write each stage as a mapping: - name: sft"),
    ],
)
def test_bad_stage_lists_are_config_errors(tmp_path: Path, stages: str, message: str) -> None:
    file = tmp_path / "recipe.yaml"
    file.write_text(f"stages: {stages}\n")
    with pytest.raises(ConfigError, match=message):
        resolve_config(recipe=str(file), environ={})


# ---------------------------------------------------------------------------------------------- the r1 recipe


def _general_chat_file(folder: Path) -> Path:
    """A few Dolly-style rows, so sft2's general data comes from a file (the tiny model's own answers are blank)."""
    rows = [{"instruction": f"Name a colour, please ({i}).", "context": "", "response": "Blue."} for i in range(6)]
    path = folder / "general.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def r1_run(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> tuple[Path, list[str]]:
    folder = tmp_path_factory.mktemp("r1")
    args = ["run", "--recipe", "r1", "--profile", "test", "--out", str(folder / "run")]
    args += ["--sft2.general_dataset", str(_general_chat_file(folder))]
    done = r1kit_cli(*args, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    (folder / "stderr.txt").write_text(done.stderr)  # its log, for the tests that read what it said
    return folder / "run", args


def test_r1_recipe_writes_every_stage_folder_and_manifest(r1_run: tuple[Path, list[str]]) -> None:
    run, _ = r1_run
    assert sorted(p.name for p in run.iterdir() if p.name[:2].isdigit()) == R1_FOLDERS
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    assert [s["status"] for s in stages] == ["complete"] * 6
    for folder in R1_FOLDERS:
        manifest = json.loads((run / folder / "manifest.json").read_text())
        assert manifest["status"] == "complete" and manifest["seconds"] >= 0
        assert manifest["fingerprint"]["inputs"]["model"]  # what it started from, by content hash
        assert "seed" in manifest["config"]
    cold_start = json.loads((run / "01_cold_start" / "stats.json").read_text())
    assert cold_start["methods"]["convert"]["kept"] > 0 and cold_start["rows"] > 0
    # every kept trace accounted for (was: 72 kept, 40 rows, the 32 cut by cold_start.max_rows nowhere)
    kept = sum(method["kept"] for method in cold_start["methods"].values())
    assert kept == cold_start["rows"] + cold_start["duplicates"] + cold_start["past_max_rows"]
    assert cold_start["past_max_rows"] > 0  # the test profile keeps 40 rows
    assert (run / "02_sft" / "model" / "model.safetensors").exists()
    assert (run / "03_reasoning_rl" / "model" / "model.safetensors").exists()
    assert json.loads((run / "03_reasoning_rl" / "manifest.json").read_text())["evaluation"]["problems"] == 8
    assert "problem_acceptance_by_group" in json.loads((run / "04_rejection_sampling" / "stats.json").read_text())
    # the tiny model's samples all fail: sft2 has no trace to train on (chat alone made the run's final model) and
    # distillation no teacher trace
    sft2 = json.loads((run / "05_sft2" / "manifest.json").read_text())["output"]
    assert sft2["metrics"] == {"reasoning_rows": 0, "general_rows": 0} and sft2["model"] is None
    summary = json.loads((run / "summary.json").read_text())
    assert list(summary["evaluations"]) == ["base", "sft", "reasoning_rl"]
    assert summary["final_model"] == "03_reasoning_rl/model"
    assert summary["made_no_model"] == ["sft2", "distill"]  # said under the table, which has a column per model
    said = (run.parent / "stderr.txt").read_text()  # the keys to change, named with their section (were bare)
    # the tiny model never ends a reply: the remedy for replies cut at the limit (was: "sample more")
    assert "most replies were cut at distill.max_new_tokens: give them more room" in said
    assert json.loads((run / "06_distill" / "stats.json").read_text())["rows"] == 0


def test_the_report_lists_the_stages(r1_run: tuple[Path, list[str]]) -> None:
    from r1kit.monitoring.report import write_report

    page = write_report(r1_run[0]).read_text()
    assert page.count("<td>complete</td>") == 4 and "<td>04_rejection_sampling</td>" in page
    assert "<td>05_sft2</td><td>sft2</td><td>complete: made no model" in page  # no trace to train on
    # distillation kept no trace of the tiny model: its row says so ("complete" alone read as a trained stage)
    assert "<td>06_distill</td><td>distill</td><td>complete: made no model (it kept nothing to train on" in page


def test_r1_recipe_again_skips_finished_stages_and_redoes_a_changed_one(r1_run: tuple[Path, list[str]]) -> None:
    run, args = r1_run
    started = time.monotonic()
    again = r1kit_cli(*args, cwd=REPO)
    assert again.returncode == 0, again.stderr[-2000:]
    assert all(f"{folder}: complete, skipped" in again.stderr for folder in R1_FOLDERS)
    assert time.monotonic() - started < 45

    sft_model = (run / "02_sft" / "model" / "model.safetensors").stat().st_mtime
    changed = r1kit_cli(*args, "--rejection_sampling.samples_per_prompt", "3", cwd=REPO)
    assert changed.returncode == 0, changed.stderr[-2000:]
    assert (
        "04_rejection_sampling: its config changed (rejection_sampling.samples_per_prompt: 2 → 3); redoing it; what it "
        "made is replaced (another --out keeps both)"  # a finished run redone in place lost the one to compare with
    ) in changed.stderr
    assert "03_reasoning_rl: complete, skipped" in changed.stderr
    assert "05_sft2: complete, skipped" in changed.stderr  # same (empty) accepted data: same inputs, kept
    assert (run / "02_sft" / "model" / "model.safetensors").stat().st_mtime == sft_model
    stats = json.loads((run / "04_rejection_sampling" / "stats.json").read_text())
    assert stats["samples"] == 3 * stats["problems"]


def test_r1_recipe_keeps_its_data_stages_when_grpos_rewards_change(
    r1_run: tuple[Path, list[str]], tmp_path: Path
) -> None:
    """Cold start, rejection sampling and distillation verify answers (rewards.verification) and add up no reward,
    but a change of rewards.functions (here one reasoning_rl's own list overrides) redid them, and refused the run:
    its first stage, cold start, would be lost."""
    run, args = r1_run
    shutil.copytree(run, tmp_path / "run")
    moved = [str(tmp_path / "run") if arg == str(run) else arg for arg in args]
    assert r1kit_cli(*moved, cwd=REPO).returncode == 0  # the fixture's settings again (other tests change some)
    again = r1kit_cli(*moved, "--reward_funcs", "accuracy", "format", cwd=REPO)
    assert again.returncode == 0, again.stderr[-2000:]
    assert all(f"{folder}: complete, skipped" in again.stderr for folder in R1_FOLDERS)
    # of the verification settings, the time an answer has decides a verdict; the workers and batch budget do not
    from r1kit.stages.common import stage_values

    def judging(*overrides: str) -> dict:
        return stage_values(resolve_config(overrides=list(overrides), environ={}).config, "cold_start")

    assert (
        judging("--rewards.verification.workers", "1", "--rewards.verification.batch_budget_seconds", "9") == judging()
    )
    assert judging("--rewards.verification.timeout_seconds", "3") != judging()
    verification = r1kit_cli(*moved, "--rewards.verification.timeout_seconds", "3", cwd=REPO)
    assert verification.returncode == 1  # what they judge with: the first stage's change is refused, as before
    assert "01_cold_start" in verification.stderr and "rewards.verification.timeout_seconds" in verification.stderr


def test_only_and_from_name_stages_of_the_recipe(r1_run: tuple[Path, list[str]]) -> None:
    run, args = r1_run
    unknown = r1kit_cli(*args, "--only", "ppo", cwd=REPO)
    assert unknown.returncode == 2 and "--only ppo: not a stage of this recipe" in unknown.stderr
    saved = json.loads((run / "04_rejection_sampling" / "manifest.json").read_text())["config"]
    samples = str(saved["rejection_sampling"]["samples_per_prompt"])  # as the stage was last run
    config = (run / "config.yaml").read_text()
    refused = r1kit_cli(*args, "--rejection_sampling.samples_per_prompt", samples, "--sft.max_steps", "4",
                        "--only", "distill", cwd=REPO)  # fmt: skip
    assert refused.returncode == 1 and "--only distill: 02_sft, before it, is not complete with this config" in (
        refused.stderr
    )
    assert (run / "config.yaml").read_text() == config  # was: saved with the refused settings, which --resume used
    only = r1kit_cli(*args, "--rejection_sampling.samples_per_prompt", samples, "--only", "distill", cwd=REPO)
    assert only.returncode == 0, only.stderr[-2000:]
    assert "06_distill: asked for by --from / --only" in only.stderr and "02_sft: complete, skipped" in only.stderr
    assert "distill made no model: it kept nothing to train on" in only.stderr
    # a stage in the middle: the later ones read what it redid (sft2 the rejection-sampled data), and are left
    # outdated; they crashed the run (KeyError: 'rejection_sampling') once it stopped leaving at --only's stage
    samples = ["--rejection_sampling.samples_per_prompt", samples]
    middle = r1kit_cli(*args, *samples, "--only", "reasoning_rl", "--training.max_steps", "2", cwd=REPO)
    assert middle.returncode == 0, middle.stderr[-2000:]
    stages = {s["name"]: s["status"] for s in json.loads((run / "manifest.json").read_text())["stages"]}
    assert [stages[name] for name in ("reasoning_rl", "rejection_sampling", "sft2", "distill")] == (
        ["complete"] + ["outdated"] * 3
    )
    assert json.loads((run / "summary.json").read_text())["final_model"] == "03_reasoning_rl/model"


def _steps(run: Path, stage: str) -> list[int]:
    return [r["step"] for r in RunDir(run).read("metrics.jsonl") if r["stage"] == stage and r["kind"] == "step"]


def test_a_stage_on_the_data_of_one_that_kept_no_row_goes_on(tmp_path: Path) -> None:
    """Rejection sampling on the rows of a cold start that kept none ended the run as "a bug": the empty dataset read
    back had no columns ("Column 'solution' doesn't exist")."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "stages: [{name: cold_start, config: {cold_start: {methods: [direct]}}},\n"
        "         {name: rejection_sampling, data_from: cold_start}]\n"
    )
    out = tmp_path / "run"
    done = r1kit_cli("run", "--recipe", str(recipe), "--profile", "test", "--out", str(out), cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "01_cold_start" / "stats.json").read_text())["rows"] == 0  # the tiny model's: none
    assert json.loads((out / "02_rejection_sampling" / "stats.json").read_text())["rows"] == 0


def test_kill_9_mid_stage_resumes_that_stage(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", "--profile", "test", "--out", str(out), "--training.max_steps", "8"]
    args += ["--training.checkpoint.save_steps", "2"]
    process = subprocess.Popen(
        [sys.executable, "-m", "r1kit", *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not _steps(out, "grpo") or max(_steps(out, "grpo")) < 3):
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert json.loads((out / "02_grpo" / "manifest.json").read_text())["status"] == "running"
    stages = json.loads((out / "manifest.json").read_text())["stages"]  # the run's list says so too (and the report)
    assert [stage["status"] for stage in stages] == ["complete", "running"]
    from r1kit.monitoring.report import write_report  # the killed run's report pairs what it evaluated

    assert "<li>base→sft: " in write_report(out).read_text()

    # --resume with more steps goes on from the checkpoint (it cleared the stage: "its config changed; redoing it")
    resumed = r1kit_cli("run", "--out", str(out), "--resume", "--training.max_steps", "10", cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "01_sft: complete, skipped" in resumed.stderr and "grpo: resuming from" in resumed.stderr
    assert "02_grpo: its config changed (training.max_steps: 8 → 10); --resume goes on" in resumed.stderr
    assert _steps(out, "grpo") == list(range(1, 11))  # no step lost, none twice
    assert json.loads((out / "02_grpo" / "manifest.json").read_text())["status"] == "complete"


# ------------------------------------------------------------------------------------------------ trace filters


def test_normalise_turns_loose_reasoning_into_r1_parts() -> None:
    assert normalise("<think>Okay, so 2 + 2 = 4</think><answer>4</answer>") == ("2 + 2 = 4", "4")
    assert normalise("Hmm. 5 * 3 = 15, then \\boxed{15}") == ("5 * 3 = 15, then \\boxed{15}", "15")
    assert normalise("<think>6 - 1 = 5</think>\nThe answer is 5.") == ("6 - 1 = 5", "5")
    assert normalise("no answer at all") is None
    # a GSM8K-style answer line after the think block keeps the block as the reasoning
    assert normalise("<think>12 + 30 = 42</think>\n#### 42") == ("12 + 30 = 42", "42")
    assert normalise("<think>12 + 30 = 42</think>\nSo 42\n#### 42") == ("12 + 30 = 42", "42")
    assert strip_filler("Alright, let me think.\n7 + 1 = 8") == "7 + 1 = 8"
    # words that begin like a filler are words ("Sophia" lost "So", "Umar" "Um", "Wells" "Well")
    names = "Sophia sold 12.\nSome of them.\nUmar has 3.\nOksana, Wells Fargo."
    assert strip_filler(names) == names
    # nor are the words before a hyphen, or a phrase that starts a sentence of reasoning: they were cut
    # ("-known formula", "problem carefully: …", "if 7 divides 21")
    reasoning = "Well-known formula: a + b.\nSo-called primes.\nLet me think about this problem: 3 + 4 = 7.\nLet me see if 7 divides 21."
    assert strip_filler(reasoning) == reasoning
    assert strip_filler("Let's see: 3 + 4 = 7\nLet me think about it.\n7 - 1 = 6") == "3 + 4 = 7\n7 - 1 = 6"
    # a think block and a bare answer after it (its docstring's shape) was dropped as having no answer
    assert normalise("<think>2 + 2 = 4</think> 4") == ("2 + 2 = 4", "4")
    assert normalise("<think>2 + 2 = 4</think>\nSo we have 4 apples.\nThey are red.") is None  # no answer line


def test_the_judge_names_why_a_trace_is_dropped() -> None:
    config = resolve_config(environ={}).config
    judge = TraceJudge(config)
    traces = [
        "<think>We add 3 and 4 to get 7.</think><answer>7</answer>",  # kept
        "<think>We add 3 and 4 to get 8.</think><answer>8</answer>",  # wrong
        "We add 3 and 4 to get 7. <answer>7</answer>",  # malformed
        "<think>Okay, so let me think.</think><answer>7</answer>",  # too short: filler only (was kept, and preferred)
        "<think>" + "add the numbers and " * 12 + "</think><answer>7</answer>",  # repetitive
        "<think>Nous additionnons trois et quatre pour obtenir sept pommes.</think><answer>7</answer>",  # language
        # the R1 paper's other two filters: code blocks, long paragraphs
        "<think>We add 3 and 4:\n```python\nprint(3 + 4)\n```\nwhich gives 7.</think><answer>7</answer>",
        "<think>"
        + " ".join(f"step {n} adds {n} to {n + 1}." for n in range(80))
        + "\n\nSo 7.</think><answer>7</answer>",
    ]
    reasons = judge(traces, ["What is 3 + 4? Add the two numbers."] * len(traces), ["7"] * len(traces))
    assert reasons == [
        "kept", "wrong", "malformed", "too_short", "repetitive", "wrong_language", "code_block", "long_paragraph"
    ]  # fmt: skip
    # a long thinking of short paragraphs is no long paragraph, also written without its blank lines (strip_filler:
    # cold start's traces) or read through in_r1_form (distillation's)
    from r1kit.stages.traces import in_r1_form

    paragraphs = [
        " ".join(f"Then {n} + {k} = {n + k} holds." for n in range(24 * k, 24 * k + 24)) for k in (1, 2, 3, 4)
    ]
    long = "<think>" + "\n\n".join(paragraphs) + "\nSo 3 + 4 = 7.</think><answer>7</answer>"  # 4 × 144 words
    for trace in (long, strip_filler(long), in_r1_form(long)):
        assert judge([trace], ["What is 3 + 4? Add the two numbers."], ["7"]) == ["kept"]
    # each can be turned off
    lenient = ["--filters.drop_code_blocks", "false", "--filters.max_paragraph_words", "null"]
    judge = TraceJudge(resolve_config(environ={}, overrides=lenient).config)
    assert judge(traces[-2:], ["What is 3 + 4? Add the two numbers."] * 2, ["7"] * 2) == ["kept", "kept"]


def test_a_teachers_trace_in_r1_distills_form_is_judged_in_r1_form() -> None:
    """Distillation's teacher may be an R1-Distill model (its answer after </think>, boxed): its right traces were
    all `malformed`, and `r1kit distill` from such a teacher made no model."""
    from r1kit.stages.traces import in_r1_form

    judge = TraceJudge(resolve_config(environ={}).config)
    distilled = "<think>\nAva has 27 + 3 = 30 pencils. Then 30 - 8 = 22.\n</think>\n\nAva has 22 now.\n\n\\boxed{22}"
    question = ["Ava has 27 pencils, gets 3 and gives away 8. How many now?"]
    assert judge([distilled], question, ["22"]) == ["malformed"]
    assert judge([in_r1_form(distilled)], question, ["22"]) == ["kept"]
    assert in_r1_form("I cannot say.") == "I cannot say."  # no answer to read: left to be judged malformed


def test_a_trace_in_r1_tags_that_hedges_is_not_rebuilt_into_a_clean_one() -> None:
    """Distillation and the cold start rebuilt a hedged trace in R1 tags from one of its parts (the last of two answer
    blocks, the first of two think blocks, the words before a retraction after </answer>), which the judge kept and
    the student trained on, where rejection sampling's strict judge refused the same samples."""
    from r1kit.stages.traces import in_r1_form

    judge = TraceJudge(resolve_config(environ={}).config)
    question = ["Ava has 27 pencils, gets 3 and gives away 8. How many now?"]
    hedges = [
        "<think>27 + 3 = 30, and 30 - 8 = 22.</think><answer>21</answer><answer>22</answer>",
        "<think>27 + 3 = 30.</think><think>30 - 8 = 21, so 22?</think><answer>22</answer>",
        "<think>27 + 3 = 30, then 30 - 8 = 22.</think><answer>22</answer>\nWait, the answer is 21.",
    ]
    for hedge in hedges:
        assert normalise(hedge) is None
        assert judge([in_r1_form(hedge)], question, ["22"]) == ["malformed"]
    # a model's doubled opening keeps its whole reasoning: still a trace
    doubled = "<think>\n\n<think>27 + 3 = 30, then 30 - 8 = 22.</think><answer>22</answer>"
    assert normalise(doubled) == ("27 + 3 = 30, then 30 - 8 = 22.", "22")
    assert judge([in_r1_form(doubled)], question, ["22"]) == ["kept"]


def test_trace_keys_made_before_the_readability_filters_stay_valid() -> None:
    """The two filters added (code blocks, long paragraphs) entered every key at their defaults: an interrupted
    distillation of an older run sampled its teacher again, and the built-in pairs were made again."""
    from datasets import Dataset

    from r1kit.config.schema import R1kitConfig
    from r1kit.stages.distill import teacher_sampling
    from r1kit.stages.traces import samples_key

    rows = Dataset.from_list([{"question": "1+1?", "solution": "2"}])

    def key(**filters) -> str:
        config = R1kitConfig(filters=filters)
        return samples_key(config, "org/teacher", rows, sampling=teacher_sampling(config.distill))

    assert key() == "5378f3acc382d9e6"  # the key of a default config before the two filters existed
    assert key(drop_code_blocks=False) != key() != key(max_paragraph_words=100)


def test_the_loop_filter_keeps_reasoning_that_restates_its_quantities() -> None:
    """Word 3-grams counted restated quantities as a loop: 184 of GSM8K's 7,473 gold worked solutions (this one
    among them) were dropped as repetitive, and so was a long trace that checks its answer a second way."""
    from r1kit.stages.traces import loops

    gsm8k = (
        "Roque takes 2*3 = 6 hours a week to walk to work. Roque takes 6*2 = 12 hours a week to walk to and from "
        "work. Roque takes 1*2 = 2 hours a week to bike to work. Roque takes 2*2 = 4 hours a week to bike to and "
        "from work. In total, Roque takes 12+4 = 16 hour a week to go to and from work."
    )
    assert not loops(gsm8k, TraceJudge(resolve_config(environ={}).config).max_repetition)
    assert loops("We add 3 and 4 to get 7. Then we add 3 and 4 to get 7. " * 4, 0.3)


def test_the_judge_keeps_a_right_trace_to_a_short_question_in_another_language() -> None:
    """A question with fewer than 8 letters ("Was ist 7 × 8?", "计算 7 × 8") took the language of the whole
    conversation, the English system prompt's: a right trace in the question's language was dropped as wrong_language
    by cold start, rejection sampling and distillation (and GRPO's reward scored it 0). A question told with little
    confidence still takes the system prompt's ("Compute $\\tan 225^\\circ$." reads as Spanish at 0.31)."""
    judge = TraceJudge(resolve_config(environ={}).config)
    english = "<think>Seven times eight is fifty-six, so the answer is 56.</think><answer>56</answer>"
    french = "<think>Sept fois huit font cinquante-six, donc la réponse est 56.</think><answer>56</answer>"
    asked = {
        "Was ist 7 × 8?": "<think>Sieben mal acht ist sechsundfünfzig, also ist die Antwort 56.</think><answer>56</answer>",
        "计算 7 × 8": "<think>七乘以八等于五十六，所以答案是五十六。</think><answer>56</answer>",
        "What is 7 × 8?": english,
        "Compute $\\tan 225^\\circ$.": english,  # the judge reads the language here, whatever the gold
        "Integrate sin x dx.": english,
        "Evaluate 7 × 8.": french,
    }
    reasons = judge(list(asked.values()), list(asked), ["56"] * len(asked))
    assert reasons == ["kept", "kept", "kept", "kept", "kept", "wrong_language"]


def test_the_judge_counts_the_words_of_a_thinking_written_without_spaces() -> None:
    """A Chinese or Japanese <think> block has no spaces: one word, too short for filters.min_think_words (3), so
    cold start, rejection sampling and distillation kept none of their traces."""
    judge = TraceJudge(resolve_config(environ={}).config)
    chinese = "<think>小明原来有5个苹果，吃掉了2个，所以剩下5减2等于3个苹果。</think><answer>3</answer>"
    japanese = (
        "<think>りんごは最初に5個ありました。2個食べたので、5から2を引くと3個になります。</think><answer>3</answer>"
    )
    questions = ["小明有5个苹果，吃了2个，还剩几个？", "りんごが5個あり、2個食べました。残りは何個ですか？"]
    assert judge([chinese, japanese], questions, ["3", "3"]) == ["kept", "kept"]
    assert judge(["<think>五个</think><answer>5</answer>"], ["五是几？"], ["5"]) == ["too_short"]
    # a paragraph's length: a word every 3 characters, as the repetition filter reads these scripts (a character a
    # word dropped a Chinese paragraph of ~110 words under filters.max_paragraph_words 300, an English one of 200 kept)
    steps = "".join(f"第{n}步，我们把{n}和{n + 1}相加，得到{2 * n + 1}。" for n in range(1, 25))
    assert 400 < len(steps) < 900
    trace = f"<think>{steps}所以答案是49。</think><answer>49</answer>"
    assert judge([trace], ["把这些数加起来，最后一步得到多少？"], ["49"]) == ["kept"]


def test_the_judge_gives_every_trace_a_verdict_whatever_the_batch_budget() -> None:
    """The batch budget bounds a GRPO step's rewards; a data filter must judge every trace, or on a busy machine its
    later traces are dropped as unverifiable (seen: all 72 gold traces of a two-process cold start)."""
    overrides = ["--rewards.verification.batch_budget_seconds", "1e-6"]
    judge = TraceJudge(resolve_config(environ={}, overrides=overrides).config)
    traces = [f"<think>We add {n} and 4 to get {n + 4}.</think><answer>{n + 4}</answer>" for n in range(20)]
    golds = [str(n + 4) for n in range(20)]
    assert judge(traces, ["Add the two numbers."] * 20, golds) == ["kept"] * 20


def test_a_cold_start_conversion_that_keeps_nothing_counts_zero_kept() -> None:
    from r1kit.stages.cold_start import _converted

    judge = TraceJudge(resolve_config(environ={}).config)
    rows = [{"question": "What is 3 + 4?", "reasoning": "7", "solution": "7"}] * 2  # a thinking too short to keep
    kept, counts = _converted(rows, judge)
    stats = dict(counts)  # as the stage stores them; its metrics read stats["kept"], a KeyError when none was kept
    assert kept == [] and stats["kept"] == 0 and stats["too_short"] == 2


def test_cold_start_without_a_row_limit_keeps_every_distinct_trace(tmp_path: Path) -> None:
    """cold_start.max_rows is unset by default (the test profile sets it): the stage crashed on `len - None`."""
    from r1kit.stages import cold_start
    from r1kit.stages.common import StageInputs, setup

    config = resolve_config(
        profile="test", environ={}, overrides=["--out", str(tmp_path / "run"), "--cold_start.methods", "[convert]"]
    ).config
    config = config.model_copy(update={"cold_start": config.cold_start.model_copy(update={"max_rows": None})})
    ctx, base, splits = setup(config, "test")
    output = cold_start.run(ctx.for_stage(config, "cold_start", "cold_start"), StageInputs(base, base, splits))
    stats = json.loads((tmp_path / "run" / "cold_start" / "stats.json").read_text())
    assert stats["past_max_rows"] == 0 and output.metrics["rows"] == stats["rows"] > 40
    assert stats["rows"] + stats["duplicates"] == stats["methods"]["convert"]["kept"]


def test_a_trace_cut_at_the_token_limit_is_dropped_even_where_it_parses() -> None:
    judge = TraceJudge(resolve_config(environ={}).config)
    trace = "<think>We add the numbers: 12 + 30 = 42, which we check by 42 - 30 = 12.</think><answer>42</answer>"
    assert judge([trace, trace], ["Add 12 and 30."] * 2, ["42", "42"], truncated=[True, False]) == ["truncated", KEPT]


def test_traces_for_a_built_in_template_are_judged_in_the_runs_language() -> None:
    """An English trace for "Evaluate 3 + 17 + 33 - 32." (read as French at 0.35) was dropped as wrong_language."""
    judge = TraceJudge(resolve_config(environ={}).config)
    thinking = (
        "The first number is three and the second is seventeen, so their sum is twenty. Adding thirty three gives "
        "fifty three, and taking away thirty two leaves twenty one."
    )
    trace = f"<think>\n{thinking}\n</think>\n<answer>21</answer>"
    assert judge([trace], ["Evaluate 3 + 17 + 33 - 32."], ["21"]) == [KEPT]


def test_sampled_traces_do_not_depend_on_what_drew_random_numbers_before(tmp_path: Path) -> None:
    """A resumed run skips the training stage before rejection sampling: its data must be what the whole run drew."""
    import torch

    from r1kit.config.schema import SamplingConfig
    from r1kit.prompts import chat_prompt
    from r1kit.stages.common import setup
    from r1kit.stages.traces import sample

    config = resolve_config(profile="test", environ={}, overrides=["--out", str(tmp_path / "run")]).config
    ctx, base, _ = setup(config, "test")
    prompts = [chat_prompt(f"What is {n} + 2?", config.prompt.system) for n in range(3)]
    settings = SamplingConfig(max_prompts=3, samples_per_prompt=2, max_new_tokens=8, temperature=1.0)
    first = sample(ctx, base, prompts, settings, desc="first").texts
    torch.rand(1000)  # as a training stage would
    assert sample(ctx, base, prompts, settings, desc="again").texts == first


def test_cold_start_sampling_counts_completions_cut_at_the_limit(tmp_path: Path) -> None:
    """normalise made a trace of a cut completion ending in a boxed answer, its reasoning stopping mid-sentence."""
    from r1kit.stages import cold_start
    from r1kit.stages.common import StageInputs, setup

    overrides = ["--out", str(tmp_path / "run"), "--cold_start.methods", "[direct]", "--cold_start.max_new_tokens", "3"]
    config = resolve_config(profile="test", environ={}, overrides=overrides).config
    ctx, base, splits = setup(config, "test")
    cold_start.run(ctx.for_stage(config, "cold_start", "cold_start"), StageInputs(base, base, splits))
    direct = json.loads((tmp_path / "run" / "cold_start" / "stats.json").read_text())["methods"]["direct"]
    sampled = config.cold_start.max_prompts * config.cold_start.samples_per_prompt
    assert direct["truncated"] == sampled and direct["kept"] == 0  # 3 tokens: every completion is cut


def test_cold_start_counts_a_sample_that_repeats_another_of_its_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two identical good samples made one row, and the other was under no drop reason: the per-method reasons no
    longer added up to the samples drawn."""
    from r1kit.stages import cold_start
    from r1kit.stages.common import StageInputs
    from r1kit.stages.evaluate import Generations

    config = resolve_config(environ={}).config
    good = "<think>We add 12 and 30 to get 42, and check it: 42 - 30 = 12.</think><answer>42</answer>"
    drawn = Generations([[good, good, "no answer here"]], [[20, 20, 3]], [[False, False, False]], [0])
    monkeypatch.setattr(cold_start, "sample", lambda ctx, model, prompts, settings, desc: drawn)
    ctx = SimpleNamespace(config=config)
    row = {"question": "Add 12 and 30.", "solution": "42", "group": None}
    kept, counts = cold_start._sampled(ctx, StageInputs("m", "m", None), "direct", [row], [], TraceJudge(config))
    assert len(kept) == 1 and counts["repeated_sample"] == 1 and sum(counts.values()) == 3, counts


def test_few_shot_examples_are_earlier_turns_with_their_reasoning(tmp_path: Path) -> None:
    """An empty prompt.system sent an empty system message (the other prompts send none, so the template's own
    default applies); a template that drops an assistant turn's <think> (DeepSeek-R1-Distill's) showed the examples'
    answers alone: refused before any sampling."""
    from r1kit.config.schema import ModelConfig
    from r1kit.models import builtin_model_path, drops_reasoning, load_tokenizer
    from r1kit.stages.cold_start import _prompt
    from tests.test_rlhf import DISTILL_LIKE_TEMPLATE

    config = resolve_config(overrides=["--prompt.system", ""], environ={}).config
    worked = [{"question": "What is 2 + 3?", "reasoning": "2 + 3 = 5", "solution": "5"}]
    prompt = _prompt("few_shot", {"question": "What is 4 + 4?"}, worked, 1, config)
    assert [m["role"] for m in prompt] == ["user", "assistant", "user"] and "2 + 3 = 5" in prompt[1]["content"]
    # Qwen3's kind of template keeps the last reply's <think> and strips it from replies before the last question:
    # where the few-shot examples sit
    qwen3_like = (
        "{% for m in messages %}{% set c = m['content'] %}{% if m['role'] == 'assistant' and not loop.last %}"
        "{% set c = c.split('</think>')[-1] %}{% endif %}<|im_start|>{{ m['role'] }}\n{{ c }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    tokenizer = load_tokenizer(ModelConfig(chat_template=qwen3_like), str(builtin_model_path("tiny-random")))
    assert not drops_reasoning(tokenizer) and drops_reasoning(tokenizer, earlier_turn=True)
    for template in (DISTILL_LIKE_TEMPLATE, qwen3_like):
        out = tmp_path / f"run{len(template)}"
        flags = ["--cold_start.methods", "[convert, few_shot]", "--model.chat_template", template]
        done = r1kit_cli("cold_start", "--profile", "test", *flags, "--out", str(out), cwd=REPO)
        assert done.returncode == 1 and "few_shot would show the model its examples' answers" in done.stderr
        assert not (out / "cold_start" / "stats.json").exists()


def test_a_template_that_drops_the_traces_is_refused_before_the_recipe_works(tmp_path: Path) -> None:
    """The r1 recipe through a template that drops a reply's <think> block (R1-Distill's) was refused at its SFT
    stage, after the base model's evaluation and the cold start had run; the fixed command was then refused as
    another config over finished work."""
    from tests.test_rlhf import DISTILL_LIKE_TEMPLATE

    out = tmp_path / "run"
    args = ("run", "--recipe", "r1", "--profile", "test", "--model.chat_template", DISTILL_LIKE_TEMPLATE)
    done = r1kit_cli(*args, "--out", str(out), cwd=REPO)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "sft: the chat template of" in done.stderr and "drops the reasoning" in done.stderr, done.stderr[-2000:]
    assert not (out / "eval").exists() and not (out / "01_cold_start").exists()


def test_best_of_keeps_the_shortest_distinct_accepted_traces() -> None:
    traces = ["<think>long way round</think><answer>7</answer>", "<think>short</think><answer>7</answer>"] * 2
    assert best_of(traces, ["kept", "kept", "kept", "wrong"], keep=2) == [traces[1], traces[0]]
    assert best_of(traces, ["wrong"] * 4, keep=1) == []


def test_acceptance_by_group() -> None:
    """The share over all problems was a group named "all" too (a group of that name changed it), and groups sorted
    as text ("10" before "2")."""
    assert acceptance_by_group(["a", "b", "b"], [False, True, False]) == {"a": 0.0, "b": 0.5}
    assert acceptance_by_group([None, None], [True, True]) == {}
    assert list(acceptance_by_group(["10", "2", "all"], [True, True, False])) == ["2", "10", "all"]


def test_no_trace_kept_names_the_remedy_for_its_commonest_reason(tmp_path: Path, caplog) -> None:
    """Replies all cut at max_new_tokens were told to sample more or relax the filters, which keep none either."""
    ctx = SimpleNamespace(stage="rejection_sampling", dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        write_dataset(ctx, [], {"dropped": {"truncated": 16, "wrong": 2}}, "rejection_sampling")
    assert "most replies were cut at rejection_sampling.max_new_tokens: give them more room" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        write_dataset(ctx, [], {"dropped": {"truncated": 1, "wrong": 15}}, "rejection_sampling")
    assert "sample more (rejection_sampling.samples_per_prompt" in caplog.text
    assert json.loads((tmp_path / "stats.json").read_text())["dropped"]["wrong"] == 15
    # cold start's rows without a worked solution to convert are rows, not traces: they outnumbered the cut replies
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        write_dataset(ctx, [], {"dropped": {"no_worked_solution": 10, "truncated": 8, "wrong": 1}}, "cold_start")
    assert "most replies were cut at cold_start.max_new_tokens: give them more room" in caplog.text


# ------------------------------------------------------------------------------------------- pass-rate curriculum


def test_the_pass_rate_filter_keeps_prompts_within_the_bounds() -> None:
    from r1kit.stages.curriculum import pass_rate_filter

    rates = [0.0, 0.25, 0.5, 0.75, 1.0, None, 0.5]
    assert pass_rate_filter(rates, 0.25, 0.75)[0] == [1, 2, 3, 6]
    assert pass_rate_filter(rates, 0.0, 1.0)[0] == [0, 1, 2, 3, 4, 6]  # an unscored prompt is never kept
    assert pass_rate_filter(rates, 0.9, 0.95) == (
        [],
        {"0.00": 1, "0.25": 1, "0.50": 2, "0.75": 1, "1.00": 1, "unscored": 1},
    )


@pytest.mark.parametrize("min_pass_rate", ["0.1", "0.0"])
def test_grpo_with_the_curriculum_writes_pass_rates_and_trains(tmp_path: Path, min_pass_rate: str) -> None:
    out = tmp_path / "run"
    args = ["grpo", "--profile", "test", "--out", str(out), "--curriculum.enabled", "true"]
    args += ["--curriculum.max_prompts", "8", "--curriculum.samples_per_prompt", "2"]
    done = r1kit_cli(*args, "--curriculum.min_pass_rate", min_pass_rate, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    saved = json.loads((out / "grpo" / "pass_rates.json").read_text())
    assert saved["scored"] == 8 and sum(saved["histogram"].values()) == 8 and len(saved["rates"]) == 8
    low, high = saved["bounds"]
    within = [i for i, rate in enumerate(saved["rates"]) if rate is not None and low <= rate <= high]
    assert saved["kept"] == len(within), saved
    # the tiny random model solves nothing: at 0.1 no prompt is within, and it trains on all of them, saying so; at
    # 0.0 every unsolved prompt is within, and it trains on those
    assert bool(within) == (min_pass_rate == "0.0")
    if within:
        assert saved["trained_on"] == within and "curriculum: no prompt has a pass rate within" not in done.stderr
    else:
        assert saved["trained_on"] == list(range(8)) and "curriculum: no prompt has a pass rate within" in done.stderr
    assert (out / "grpo" / "model" / "model.safetensors").exists()


def test_no_re_scoring_where_the_time_limit_stops_training(tmp_path: Path) -> None:
    """The time limit stops training at a step where a re-scoring falls due: it sampled every scored prompt anyway
    (minutes on a real model), after the budget, for a kept set nothing would train on."""
    out = tmp_path / "run"
    args = ["grpo", "--profile", "test", "--out", str(out), "--curriculum.enabled", "true"]
    args += ["--curriculum.max_prompts", "8", "--curriculum.samples_per_prompt", "2", "--curriculum.rescore_every", "1"]
    done = r1kit_cli(*args, "--training.max_steps", "6", "--training.time_limit_minutes", "0.00001", cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "time limit of" in done.stderr
    assert json.loads((out / "grpo" / "pass_rates.json").read_text())["rescored"] == []


def test_grpo_with_fewer_prompts_than_one_generation_batch_is_refused(tmp_path: Path) -> None:
    """TRL's sampler dropped the one batch it could not fill: 0 steps trained, the input model saved as the stage's,
    "grpo done"."""
    out = tmp_path / "run"
    args = ["grpo", "--profile", "test", "--out", str(out), "--curriculum.enabled", "true"]
    args += ["--curriculum.max_prompts", "1", "--curriculum.samples_per_prompt", "2"]
    done = r1kit_cli(*args, "--training.batch_size.per_device_train", "8", cwd=REPO)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "grpo: 1 training prompt(s) for the curriculum (it scores curriculum.max_prompts" in done.stderr
    assert "fewer than the 2 distinct prompts one generation batch samples (8 completions, 4 per prompt)" in done.stderr
    assert not (out / "grpo" / "model").exists()
    # without a curriculum, the data's prompts are counted before any work: a finished stage "redone" with a larger
    # batch under --resume had been cleared (its model gone) and its config.yaml rewritten, then refused
    data = tmp_path / "sums.jsonl"
    data.write_text(
        "".join(json.dumps({"question": f"What is {i} + 2?", "solution": str(i + 2)}) + "\n" for i in range(12))
    )
    args = ["grpo", "--profile", "test", "--out", str(tmp_path / "plain"), "--data", str(data)]
    assert r1kit_cli(*args, cwd=REPO).returncode == 0
    saved = (tmp_path / "plain" / "config.yaml").read_text()
    larger = r1kit_cli(*args, "--resume", "--training.batch_size.per_device_train", "64", cwd=REPO)
    assert larger.returncode == 1 and "grpo: 10 training prompt(s), fewer than the 16 distinct" in larger.stderr
    assert (tmp_path / "plain" / "grpo" / "model" / "model.safetensors").exists()
    assert (tmp_path / "plain" / "config.yaml").read_text() == saved


def test_a_re_scored_curriculum_resumes_with_its_kept_set_and_shows_in_the_report(tmp_path: Path) -> None:
    from r1kit.monitoring.report import write_report

    config = tmp_path / "rescored.yaml"
    config.write_text(
        "stages: [{name: grpo}]\n"
        "curriculum: {enabled: true, max_prompts: 8, samples_per_prompt: 2, rescore_every: 2, min_pass_rate: 0.0}\n"
    )
    out = tmp_path / "run"
    args = ["run", "--profile", "test", "--config", str(config), "--training.max_steps", "8", "--out", str(out)]
    # Die inside the checkpoint write of step 6: after that step's re-scoring was saved, before the checkpoint was.
    killed = r1kit_killed_in_checkpoint_write(*args, step=6, cwd=REPO)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    path = out / "01_grpo" / "pass_rates.json"
    assert [entry["step"] for entry in json.loads(path.read_text())["rescored"]] == [2, 4, 6]

    resumed = r1kit_cli(*args, cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr and "checkpoint-4" in resumed.stderr
    saved = json.loads(path.read_text())
    assert [entry["step"] for entry in saved["rescored"]] == [2, 4, 6]  # step 6's re-scoring reused, none at 8
    for entry in [saved, *saved["rescored"]]:  # each scoring keeps what lies within the bounds, or all it had
        within = [i for i, rate in enumerate(entry["rates"]) if rate is not None and rate <= 0.9]
        assert entry["kept"] == len(within) and entry["trained_on"] == (within or saved["trained_on"])
        assert sum(entry["histogram"].values()) == 8
    steps = [r["step"] for r in RunDir(out).read("metrics.jsonl") if r["kind"] == "step"]
    assert steps == list(range(1, 9)) and all(
        r["curriculum/kept_prompts"] >= 1 for r in RunDir(out).read("metrics.jsonl") if r["kind"] == "step"
    )
    assert "re-scored at step 6" in write_report(out).read_text()


# ------------------------------------------------------------------------------------------------- the rlhf recipe


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["--evaluation.reward_model", "reward_modl"], "evaluation.reward_model 'reward_modl': not a folder here"),
        (
            ["--evaluation.win_rate_against", "sfft"],
            r"win_rate_against 'sfft': .* makes a model \(sft, dpo, ppo, rloo\)",
        ),
        (["--evaluation.reward_model", "dpo"], r"makes a reward model \(reward_model\)"),
    ],
)
def test_stage_names_given_as_models_are_checked_before_any_work(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    from r1kit import pipeline

    config = resolve_config(recipe="rlhf", profile="test", overrides=overrides, environ={}).config
    config.run.output_dir = str(tmp_path / "run")
    with pytest.raises(ConfigError, match=message):
        pipeline.run(config)
    assert not (tmp_path / "run").exists()


def test_a_reward_model_path_naming_a_later_or_misspelt_stage_is_refused_up_front(tmp_path: Path) -> None:
    from r1kit import pipeline

    for path in ("reward_modl", "rm_later"):
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(
            "stages:\n  - name: sft\n  - name: rl\n    kind: grpo\n    config:\n      rewards:\n"
            f"        functions: [accuracy, reward_model]\n        reward_model: {{path: {path}}}\n"
            "  - name: rm_later\n    kind: reward_model\n"
        )
        config = resolve_config(recipe=str(recipe), profile="test", environ={}).config
        problem = r"that stage runs after rl" if path == "rm_later" else r"\(none\)"
        with pytest.raises(ConfigError, match=rf"stages: rl: rewards.reward_model.path '{path}'.* {problem}"):
            pipeline.run(config)


def test_a_reward_model_flag_for_the_rl_stages_is_not_checked_on_the_sft_stage(tmp_path: Path) -> None:
    """Set on the command line, it was refused for sft (which reads no rewards) as naming a stage that makes a reward
    model "(none)" before it."""
    from r1kit import pipeline

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("stages: [{name: sft}, {name: rm, kind: reward_model}, {name: rl, kind: grpo}]\n")
    flags = ["--rewards.functions", "[accuracy, reward_model]", "--rewards.reward_model.path", "rm"]
    config = resolve_config(recipe=str(recipe), profile="test", overrides=flags, environ={}).config
    config.run.output_dir = str(tmp_path / "run")
    with pytest.raises(RunDirError, match="--only rl: 01_sft, 02_rm, before it, never finished"):
        pipeline.run(config, only="rl")  # past the reference checks, stopped before any work


def test_a_stage_trains_on_its_own_dataset_and_is_evaluated_on_the_runs(tmp_path: Path) -> None:
    """Seed 001's flow sets each stage's data in its config. It was recorded and ignored: the stage trained on the
    run's data."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("stages: [{name: sft, config: {dataset: {name: word_problems}}}]\n")
    out = tmp_path / "run"
    done = r1kit_cli("run", "--recipe", str(recipe), "--profile", "test", "--out", str(out), cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stages: sft trains on built-in task word_problems" in done.stderr
    assert json.loads((out / "01_sft" / "manifest.json").read_text())["inputs"]["data"] == "built-in task word_problems"
    problems = [json.loads(line)["question"] for line in (out / "eval" / "sft.problems.jsonl").read_text().splitlines()]
    base = [json.loads(line)["question"] for line in (out / "eval" / "base.problems.jsonl").read_text().splitlines()]
    assert problems == base and json.loads((out / "eval" / "sft.json").read_text())["dataset"] == "mixed"  # the run's
    recipe.write_text("stages: [{name: cs, kind: cold_start}, {name: sft, data_from: cs, config: {dataset: {}}}]\n")
    with pytest.raises(ConfigError, match="data_from 'cs' and its own dataset both name the data it trains on"):
        resolve_config(recipe=str(recipe), environ={})  # a config error, before any work (and in `config show`)


def test_a_stages_own_data_leaves_out_the_runs_held_out_problems(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every model is scored on the run's held-out problems; a stage trained on its own data (the `arithmetic` task
    under a `mixed` run) trained on 46 of the 300 word for word and on reworded twins of 24 more ("Evaluate 10 + 5."
    held out, "Compute 10 + 5." trained), with a warning for the 46 alone."""
    from r1kit.data.loading import load_splits
    from r1kit.pipeline import _own_data

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("stages: [{name: sft, config: {dataset: {name: arithmetic}}}, {name: grpo}]\n")
    config = resolve_config(recipe=str(recipe), environ={}).config
    splits = load_splits(config.dataset)
    alone = load_splits(config.for_stage(config.stages[0]).dataset).train
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        own = _own_data(config, splits.held_out)["sft"].train
    held_questions, held_steps = set(splits.test["question"]), set(splits.test["reasoning"])
    assert not held_questions & set(own["question"]) and held_questions & set(alone["question"])
    assert not held_steps & set(own["reasoning"]) and held_steps & set(alone["reasoning"])
    dropped = len(alone) - len(own)
    assert f"stages: sft: {dropped} rows of built-in task arithmetic are the run's held-out problems" in caplog.text


def test_a_finished_grpo_stages_prompts_are_not_counted_against_this_commands_batch() -> None:
    """A finished run continued on more processes (a larger generation batch, which no fingerprint holds) was refused
    for too few prompts in its GRPO stage, which it would skip."""
    from r1kit.data.loading import DatasetError, load_splits
    from r1kit.pipeline import _check_data

    config = resolve_config(profile="test", environ={}, overrides=["--grpo.generation_batch_size", "4096"]).config
    splits = load_splits(config.dataset)
    _check_data(config, splits, {}, finished={"01_sft", "02_grpo"})
    with pytest.raises(DatasetError, match=r"grpo: \d+ training prompt\(s\), fewer than the 1024 distinct prompts"):
        _check_data(config, splits, {}, finished={"01_sft"})


def test_a_distilled_student_is_paired_with_its_teacher_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run paired the student only with the model it started from (the base): how much it lost against its
    teacher (README's r1 table, the R1 paper's comparison) was not computed. The tiny model never answers right, so
    the teacher's verified traces are the worked solutions."""
    from r1kit import pipeline
    from r1kit.prompts import r1_completion
    from r1kit.stages import distill
    from r1kit.stages.traces import trace_row

    def worked_solutions(ctx, model, rows, settings, keep, source, any_format=False):
        kept = [trace_row(row, r1_completion(row["reasoning"], row["solution"]), source) for row in rows]
        return kept, {"problem_acceptance": 1.0, "problem_acceptance_by_group": {}, "rows": len(kept), "dropped": {}}

    monkeypatch.setattr(distill, "best_verified", worked_solutions)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("stages: [{name: sft}, {name: distill}]\n")
    out = tmp_path / "run"
    steps = ["--sft.max_steps", "1", "--distill.max_prompts", "2", "--out", str(out)]
    summary = pipeline.run(resolve_config(recipe=str(recipe), profile="test", overrides=steps, environ={}).config)
    assert list(summary["paired"]) == ["base→sft", "base→distill", "sft→distill"]
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    assert [(stage["started_from"], stage["taught_by"]) for stage in stages] == [("base", None), ("base", "sft")]


def test_a_distilled_student_is_scored_with_the_chat_template_it_trained_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With model.chat_template (the teacher's) and distill.student_chat_template both set, the student trained with
    its own template but the run's table asked it with the teacher's."""
    from r1kit import pipeline
    from r1kit.prompts import r1_completion
    from r1kit.stages import distill, evaluate
    from r1kit.stages.traces import trace_row

    def worked_solutions(ctx, model, rows, settings, keep, source, any_format=False):
        kept = [trace_row(row, r1_completion(row["reasoning"], row["solution"]), source) for row in rows]
        return kept, {"problem_acceptance": 1.0, "problem_acceptance_by_group": {}, "rows": len(kept), "dropped": {}}

    student = (
        "{% for m in messages %}### {{ m['role'] }}:\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}### assistant:\n{% endif %}"
    )
    asked: dict[str, str] = {}
    load_tokenizer = evaluate.load_tokenizer

    def recorded(settings, reference, *args, **kwargs):
        tokenizer = load_tokenizer(settings, reference, *args, **kwargs)
        asked[Path(reference).parent.name] = tokenizer.chat_template
        return tokenizer

    monkeypatch.setattr(distill, "best_verified", worked_solutions)
    monkeypatch.setattr(evaluate, "load_tokenizer", recorded)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("stages: [{name: sft}, {name: distill}]\n")
    steps = ["--sft.max_steps", "1", "--distill.max_prompts", "2", "--out", str(tmp_path / "run")]
    steps += ["--model.chat_template", "chatml", "--distill.student_chat_template", student]
    pipeline.run(resolve_config(recipe=str(recipe), profile="test", overrides=steps, environ={}).config)
    assert asked["02_distill"] == student and asked["01_sft"] != student


def test_sft2_leaves_out_every_held_out_question_whatever_the_count_scored(tmp_path: Path, caplog) -> None:
    """SFT 2's general data was checked against the held-out problems dataset.max_test_samples drew to score: a
    finished stage, kept when the count grew (it changes no training row elsewhere), had trained on problems then
    scored."""
    from r1kit.config.schema import DatasetConfig, SFT2Config
    from r1kit.data.loading import load_splits
    from r1kit.stages.sft2 import general_replies

    held_out = [{"question": f"What is {i} + 2?", "solution": str(i + 2)} for i in range(8)]
    training = [{"question": f"What is {i} + 3?", "solution": str(i + 3)} for i in range(8)]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in held_out))
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in training))
    chat = [{"instruction": row["question"], "response": "It is that."} for row in held_out]
    chat += [{"instruction": f"Name colour {i}.", "response": "Blue."} for i in range(4)]
    (tmp_path / "general.jsonl").write_text("".join(json.dumps(row) + "\n" for row in chat))
    data = DatasetConfig(name=str(tmp_path / "train.jsonl"), test_split=str(tmp_path / "test.jsonl"))
    splits = load_splits(data.model_copy(update={"max_test_samples": 2}))
    assert len(splits.test) == 2 and len(splits.held_out.questions) == 8
    general = SFT2Config(general_dataset=str(tmp_path / "general.jsonl"), general_split="train_sft")
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        kept = general_replies(general, splits.held_out.questions)
    assert [question for question, _ in kept] == [f"Name colour {i}." for i in range(4)]
    # a hub split named for a general file: said under its own key (was dataset.train_split's, with held-out words)
    general_file = tmp_path / "general.jsonl"
    assert (
        f"sft2.general_split 'train_sft' names a split of a hub dataset; {general_file} is read whole, so"
        in caplog.text
    )
    assert "dataset.train_split" not in caplog.text


def test_a_stage_s_own_data_leaves_out_every_held_out_problem_of_the_run(tmp_path: Path) -> None:
    """A stage with its own dataset left out only the run's problems dataset.max_test_samples scored (46 of the 300
    held-out arithmetic problems were in its training), and SFT 2 with its own data filtered its general replies by
    its own held-out problems, not the run's: both were kept, finished, when the count grew."""
    from r1kit.data.loading import load_splits
    from r1kit.pipeline import _own_data

    rows = [{"question": f"What is {i} + 2?", "solution": str(i + 2)} for i in range(40)]
    (tmp_path / "own.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "stages: [{name: sft, config: {dataset: {name: arithmetic}}}, "
        f"{{name: sft2, config: {{dataset: {{name: {tmp_path / 'own.jsonl'}}}}}}}]\n"
    )
    config = resolve_config(recipe=str(recipe), overrides=["--dataset.max_test_samples", "5"], environ={}).config
    splits = load_splits(config.dataset)  # the run's: the built-in arithmetic task, 5 of its 300 held out scored
    own = _own_data(config, splits.held_out)
    assert len(splits.test) == 5 and not splits.held_out.questions & set(own["sft"].train["question"])
    assert own["sft2"].held_out.questions >= splits.held_out.questions  # what its general replies leave out


def test_sft2_general_data_is_read_before_any_stage_trains(tmp_path: Path) -> None:
    """A file of no replies (or a hub id offline) as sft2.general_dataset failed once cold start, SFT, RL and
    rejection sampling had run."""
    from r1kit.data.loading import DatasetError, load_splits
    from r1kit.pipeline import _check_data

    no_replies = tmp_path / "problems.jsonl"
    no_replies.write_text(
        "".join(json.dumps({"question": f"{i} + 1?", "solution": str(i + 1)}) + "\n" for i in range(4))
    )
    config = resolve_config(recipe="r1", overrides=["--sft2.general_dataset", str(no_replies)], environ={}).config
    splits = load_splits(config.dataset)
    with pytest.raises(DatasetError, match=r"sft2.general_dataset .*problems.jsonl: none of its 4 rows has a reply"):
        _check_data(config, splits, {}, finished=set())
    _check_data(config, splits, {}, finished={"05_sft2"})  # finished: not read again
    # replies SFT 2 would leave out (reasoning tags) are no general data either
    thinking = tmp_path / "thinking.jsonl"
    reply = {"instruction": "Hi?", "response": "<think>greet</think>Hello."}
    thinking.write_text("".join(json.dumps(reply | {"instruction": f"Hi {i}?"}) + "\n" for i in range(4)))
    config = resolve_config(recipe="r1", overrides=["--sft2.general_dataset", str(thinking)], environ={}).config
    with pytest.raises(DatasetError, match=r"thinking.jsonl: no reply is left to train on"):
        _check_data(config, splits, {}, finished=set())
    unread = ["--sft2.general_dataset", str(thinking), "--sft2.general_ratio", "0"]  # at ratio 0 it is never read
    _check_data(resolve_config(recipe="r1", overrides=unread, environ={}).config, splits, {}, finished=set())


def test_rloo_with_fewer_prompts_than_one_generation_batch_is_refused() -> None:
    """As GRPO's: TRL's RLOO sampler dropped the batch it could not fill, trained 0 steps and "rloo done" saved its
    input model as the stage's (in the rlhf recipe, RLOO's row of the run's table)."""
    from r1kit.data.loading import DatasetError, load_splits
    from r1kit.stages.common import check_data

    batch = ["--rloo.batch_size.per_device_train", "16", "--rloo.batch_size.gradient_accumulation_steps", "16"]
    config = resolve_config(profile="test", environ={}, overrides=[*batch, "--dataset.max_train_samples", "36"]).config
    train = load_splits(config.dataset).train
    with pytest.raises(
        DatasetError, match=r"rloo: 36 training prompt\(s\), fewer than the 128 distinct prompts .*rloo.batch_size"
    ):
        check_data(config, "rloo", train, "data: rloo")
    check_data(config, "rloo", train, "data: rloo", count_prompts=False)  # a finished stage's: not counted
    check_data(config, "grpo", train, "data: grpo")  # its own batch: filled


def test_what_each_rlhf_stage_reads_decides_what_a_change_redoes() -> None:
    """DPO, PPO and RLOO each start from SFT; PPO and RLOO also read the reward model, DPO its pairs file."""
    from r1kit.pipeline import _reads, _same_work
    from r1kit.stages.common import files_read

    config = resolve_config(recipe="rlhf", overrides=["--preferences.dataset", "pairs.jsonl"], environ={}).config
    reads = _reads(config)
    assert reads == {"sft": set(), "reward_model": {"sft"}, "dpo": {"sft"}, "ppo": {"sft", "reward_model"},
                     "rloo": {"sft", "reward_model"}}  # fmt: skip
    stages = {spec.name: config.for_stage(spec) for spec in config.stages}
    assert files_read(stages["dpo"], "dpo") == {"preferences": "pairs.jsonl"}
    assert files_read(stages["ppo"], "ppo") == {"reward_model": "reward_model"}  # an earlier stage, by name
    assert files_read(stages["sft"], "sft") == {}  # it reads no rewards, preferences or student
    # the default recipe: GRPO starts from the latest model, SFT's
    assert _reads(resolve_config(environ={}).config) == {"sft": set(), "grpo": {"sft"}}
    # a manifest from before an input was recorded keeps its work; a recorded input that changed does not
    from r1kit.stages.common import stage_values

    sft = config.stages[0]
    saved = {"fingerprint": {"config": "c", "inputs": {"model": "m1", "dpo.model": "d1"}}, "config": {"seed": -1}}
    assert _same_work(saved, {"config": "c", "inputs": {"model": "m1", "data": "x"}}, config, sft, None)
    assert not _same_work(saved, {"config": "c", "inputs": {"model": "m2", "data": "x"}}, config, sft, None)
    assert not _same_work(saved, {"config": "c2", "inputs": {"model": "m1"}}, config, sft, None)
    # an earlier r1kit's fingerprint (another digest: it held model.threads, since left out) with the same settings:
    # every finished stage of such a folder was redone, "its config changed (config: '?' → '?')"
    earlier = {**stage_values(config, "sft"), "model": {**stage_values(config, "sft")["model"], "threads": None}}
    saved["config"] = json.loads(json.dumps(earlier))
    assert _same_work(saved, {"config": "c2", "inputs": {"model": "m1"}}, config, sft, None)


def test_a_lora_change_keeps_the_stages_that_train_nothing() -> None:
    """Cold start and rejection sampling train no adapter, yet a --model.lora.rank change on a finished r1 run was
    refused as discarding its cold start ("finished training (01_cold_start)")."""
    from r1kit.stages.common import config_changes, stage_values
    from r1kit.stages.registry import reads

    before = resolve_config(recipe="r1", environ={}).config
    after = resolve_config(recipe="r1", overrides=["--model.lora.rank", "8"], environ={}).config
    for kind in ("cold_start", "rejection_sampling"):
        assert config_changes(stage_values(before, kind), after, kind) == []
        assert not reads(kind, "model.lora.rank") and reads(kind, "model.chat_template")
    assert config_changes(stage_values(before, "sft"), after, "sft") == [("model.lora.rank", 16, 8)]


def test_another_distillation_student_is_new_work(tmp_path: Path) -> None:
    """The student was an input only where named by a path: a --resume that named one where the default (the base
    model) had trained went on from the old student's checkpoint, the new one recorded as its start."""
    from datasets import Dataset

    from r1kit.data.loading import HeldOut, Splits
    from r1kit.pipeline import _changed_inputs, _fingerprint, _Hashes
    from r1kit.stages.common import StageInputs, StageOutput

    config = resolve_config(recipe="r1", environ={}).config
    spec = next(spec for spec in config.stages if spec.stage_kind == "distill")
    models = {name: tmp_path / name for name in ("base", "sft", "other")}
    for name, folder in models.items():
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"name": name}))  # a model folder, as far as a hash goes
    rows = Dataset.from_dict({"question": ["q"]})
    splits = Splits(train=rows, test=rows, source="arithmetic", held_out=HeldOut(frozenset(["q"]), frozenset()))
    inputs = StageInputs(model="teacher", base=str(models["base"]), splits=splits,
                         earlier={"sft": StageOutput(model=models["sft"])})  # fmt: skip

    def fingerprint(student: str | None) -> dict:
        stage = config.for_stage(spec)
        stage.distill.student = student
        return _fingerprint(stage, inputs, spec, _Hashes())

    default = fingerprint(None)
    for student in ("sft", str(models["other"])):  # an earlier stage's model, a folder
        assert _changed_inputs(default, fingerprint(student)) == ["student"]
        assert _changed_inputs(fingerprint(student), default) == ["student"]
    assert _changed_inputs(fingerprint("sft"), fingerprint(str(models["sft"]))) == []  # the same model, named twice


def test_verifier_workers_keep_the_teachers_traces_and_pairs() -> None:
    """Distillation's traces and the preference pairs are keyed by what judged them: `--rewards.verification.workers
    1` on a --resume sampled them all again (and discarded the student's checkpoints), though the judge verifies every
    answer to the per-answer time limit whatever the workers and the batch budget."""
    from datasets import Dataset

    from r1kit.stages.traces import samples_key

    rows = Dataset.from_dict({"question": ["q"], "solution": ["1"]})

    def key(*overrides: str) -> str:
        return samples_key(resolve_config(overrides=list(overrides), environ={}).config, "teacher", rows, sampling={})

    default = key()
    assert key("--rewards.verification.workers", "1", "--rewards.verification.batch_budget_seconds", "60") == default
    assert key("--rewards.verification.timeout_seconds", "5") != default  # a longer limit may verify more answers


@pytest.mark.parametrize("policy_update", ["clip", "trpo"])
def test_rlhf_recipe_runs_every_stage_with_perplexity_rouge_and_win_rate(tmp_path: Path, policy_update: str) -> None:
    out = tmp_path / "run"
    args = ["run", "--recipe", "rlhf", "--profile", "test", "--out", str(out), "--ppo.policy_update", policy_update]
    done = r1kit_cli(*args, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    folders = ["01_sft", "02_reward_model", "03_dpo", "04_ppo", "05_rloo"]
    assert sorted(p.name for p in out.iterdir() if p.name[:2].isdigit()) == folders
    for folder in folders:
        assert (out / folder / "model" / "config.json").exists(), folder
    for label in ("base", "sft", "dpo", "ppo", "rloo"):
        result = json.loads((out / "eval" / f"{label}.json").read_text())
        assert result["perplexity"] > 1.0 and 0.0 <= result["rouge_l"] <= 1.0, label
    for label in ("dpo", "ppo", "rloo"):  # judged against the SFT model by the trained reward model
        assert 0.0 <= json.loads((out / "eval" / f"{label}.json").read_text())["win_rate"] <= 1.0
    # the SFT model's reference completions were generated once, for all three
    (reference,) = (out / "eval" / "win_rate_reference").iterdir()
    assert len(json.loads(reference.read_text())) == 8
    reward_model = json.loads((out / "02_reward_model" / "manifest.json").read_text())["output"]
    assert reward_model["evaluate"] is False and 0.0 <= reward_model["metrics"]["pairwise_accuracy"] <= 1.0
    summary = json.loads((out / "summary.json").read_text())
    assert "reward_model" not in summary["evaluations"]
    # each method against the SFT model it started from, not against the method before it in the list
    assert set(summary["paired"]) == {"base→sft", "sft→dpo", "sft→ppo", "sft→rloo", "base→rloo"}
    ppo_steps = [r for r in RunDir(out).read("metrics.jsonl") if r["stage"] == "ppo" and r["kind"] == "step"]
    assert [r["step"] for r in ppo_steps] == [1, 2]
    assert "rewards/reward_model/mean" in ppo_steps[-1]  # the recipe lists the trained reward model for PPO
    # DPO starts from the same SFT model with the same settings: it trains on the reward model's pairs, not new ones
    assert "dpo: reusing the preference pairs in" in done.stderr
    pairs = [(out / folder / "pairs.jsonl").read_text() for folder in ("02_reward_model", "03_dpo")]
    assert pairs[0] and pairs[0] == pairs[1]
    if policy_update == "clip":  # PPO and RLOO start from SFT and read no DPO output: a DPO change keeps them
        changed = r1kit_cli(*args, "--dpo.beta", "0.3", cwd=REPO)
        assert changed.returncode == 0, changed.stderr[-3000:]
        assert "03_dpo: its config changed (dpo.beta: 0.1 → 0.3)" in changed.stderr
        assert "04_ppo: complete, skipped" in changed.stderr and "05_rloo: complete, skipped" in changed.stderr
        only = r1kit_cli(*args, "--dpo.beta", "0.4", "--only", "dpo", cwd=REPO)
        assert only.returncode == 0, only.stderr[-3000:]
        stages = json.loads((out / "manifest.json").read_text())["stages"]
        assert {s["name"]: s["status"] for s in stages}["ppo"] == "complete"  # not outdated: it reads no DPO output
        # the stages after --only's stay in the run's summary and final model (were cut: RLOO's model was no longer
        # the run's final one, and `r1kit chat --model RUN` talked to DPO's)
        assert "04_ppo: complete, skipped" in only.stderr and "05_rloo: complete, skipped" in only.stderr
        summary = json.loads((out / "summary.json").read_text())
        assert list(summary["evaluations"]) == ["base", "sft", "dpo", "ppo", "rloo"]
        assert summary["final_model"] == "05_rloo/model" and "base→rloo" in summary["paired"]


def test_rlhf_on_chat_data_scores_ppo_and_rloo_with_the_reward_model_alone(tmp_path: Path) -> None:
    """The rlhf recipe on instruction data stopped at PPO (its accuracy reward needs gold answers), and the fix its
    message named did not reach a recipe stage; the built-in pairs needed gold answers too."""
    rows = [{"instruction": f"Name a colour, please ({i}).", "response": f"Blue is a colour, number {i}."} for i in
            range(12)]  # fmt: skip
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = ["run", "--profile", "test", "--data", str(data), "--out", str(tmp_path / "run")]
    refused = r1kit_cli(*args, "--recipe", "rlhf", cwd=REPO)
    assert refused.returncode == 1 and "r1kit run --recipe rlhf_chat" in refused.stderr
    done = r1kit_cli(*args, "--recipe", "rlhf_chat", cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "run: the rows are chat replies without worked solutions" in done.stderr  # asked with the plain prompt
    run = tmp_path / "run"
    # and every stage trained with it, and the run saved it (only the table had asked with it)
    saved = yaml.safe_load((run / "config.yaml").read_text())["prompt"]["system"]
    sft_prompt = json.loads((run / "01_sft" / "manifest.json").read_text())["config"]["prompt"]["system"]
    assert saved == sft_prompt == GENERAL_SYSTEM_PROMPT
    stats = json.loads((run / "02_reward_model" / "pairs.json").read_text())["stats"]
    assert stats["reply_pairs"] > 0 and stats["math_pairs"] == 0  # the data's own replies against degraded copies
    ppo = [r for r in RunDir(run).read("metrics.jsonl") if r["stage"] == "ppo" and r["kind"] == "step"]
    assert ppo and [key for key in ppo[-1] if key.startswith("rewards/") and key.endswith("/mean")] == [
        "rewards/reward_model/mean",
        "rewards/total/mean",  # the weighted sum PPO trained on
    ]
    assert 0.0 <= json.loads((run / "eval" / "rloo.json").read_text())["win_rate"] <= 1.0
