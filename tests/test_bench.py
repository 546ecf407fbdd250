"""Every benchmark script under bench/ answers --help with its usage, without running the benchmark."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPTS = sorted(path.name for path in (REPO / "bench").glob("*.py") if not path.name.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_benchmark_answers_help_without_running(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:")  # bench/rewards.py ran its whole benchmark instead
    assert not any(line.startswith("{") for line in done.stdout.splitlines())  # no result line: nothing was measured


def test_the_recipe_table_of_a_chat_data_run_shows_no_pass_at_1(tmp_path) -> None:
    """A run on chat data (`--recipe rlhf_chat --data FILE`) has no pass@1: the table failed formatting None after the
    whole recipe had run."""
    import json

    chat = {"accuracy": None, "accuracy_ci95": None, "format_rate": None, "mean_completion_tokens": 12.5}
    chat |= {"perplexity": 3.2, "rouge_l": 0.21, "win_rate": 0.6}
    (tmp_path / "summary.json").write_text(json.dumps({"evaluations": {"sft": chat}, "stage_figures": {}}))
    (tmp_path / "manifest.json").write_text(
        json.dumps({"stages": [{"name": "sft", "folder": "01_sft", "seconds": 60}]})
    )
    (tmp_path / "01_sft").mkdir()
    (tmp_path / "01_sft" / "manifest.json").write_text(json.dumps({"output": {"model": None, "evaluate": True}}))
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "recipe_table.py"), "--out", str(tmp_path), "--scored-run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| sft | – | –––" in done.stdout and "| 3.20 | 21.0% | 60.0% |" in done.stdout


def test_a_sweep_variant_keeps_the_commas_of_a_list_value() -> None:
    """`--variant r:--rewards.functions=[accuracy,format]` was cut at every comma: `[accuracy` and `format]`."""
    spec = importlib.util.spec_from_file_location("grpo_sweep", REPO / "bench" / "grpo_sweep.py")
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    assert sweep.variant_options("--rewards.functions=[accuracy,format],--grpo.beta=0.04,") == [
        "--rewards.functions=[accuracy,format]",
        "--grpo.beta=0.04",
    ]
    assert sweep.variant_options("") == []


def test_a_sweep_refuses_results_of_another_model_or_other_options(tmp_path: Path) -> None:
    """Results in OUT were reused by folder name alone: a sweep from a new SFT model, or a variant asked with another
    learning rate, reported the old figures under the new model and options, without a word."""
    spec = importlib.util.spec_from_file_location("grpo_sweep", REPO / "bench" / "grpo_sweep.py")
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    (tmp_path / "sft-eval" / "eval").mkdir(parents=True)
    (tmp_path / "sft-eval" / "eval" / "eval.json").write_text(json.dumps({"model": "/runs/old/02_sft/model"}))
    assert sweep.evaluated("/runs/new", tmp_path / "sft-eval", []).exists()  # made before the sweep kept its model
    (tmp_path / "sft-eval" / "sweep_model.json").write_text(json.dumps({"model": "/runs/old"}))
    with pytest.raises(SystemExit, match="is an evaluation of /runs/old, not of /runs/new"):
        sweep.evaluated("/runs/new", tmp_path / "sft-eval", [])
    assert sweep.evaluated("/runs/old", tmp_path / "sft-eval", []).exists()  # its own (a run folder): reused
    (tmp_path / "lr" / "grpo" / "model").mkdir(parents=True)
    made = {"minutes": 3.0, "model": "/m", "options": ["--learning_rate=1e-4"], "common": []}
    (tmp_path / "lr" / "sweep_minutes.json").write_text(json.dumps(made))
    assert sweep.trained_minutes("/m", tmp_path / "lr", ["--learning_rate=1e-4"], []) == 3.0
    with pytest.raises(SystemExit, match="lr holds a variant made from another model or with other options"):
        sweep.trained_minutes("/m", tmp_path / "lr", ["--learning_rate=9e-4"], [])
    (tmp_path / "lr" / "sweep_minutes.json").write_text(json.dumps({"minutes": 3.0}))  # a sweep's before this one
    assert sweep.trained_minutes("/m", tmp_path / "lr", ["--learning_rate=9e-4"], []) == 3.0


def bench_module(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_sweep_asks_each_variant_as_its_sft_model_was_asked_and_pairs_nothing_else(tmp_path: Path) -> None:
    """The SFT model was scored with its run's completion limit (`r1kit eval` takes a trained model's from its run),
    each variant with a new grpo run's default, and the pair was reported as the models' change without a word."""
    from r1kit.monitoring.compare import paired_change
    from r1kit.runs import RunDirError

    sweep = bench_module("grpo_sweep")
    sampled = {"max_new_tokens": 256, "sampling": {"num_samples": 4, "temperature": 0.7}}
    assert sweep.as_asked(sampled) == [
        "--evaluation.max_new_tokens=256",
        "--evaluation.num_samples=4",
        "--evaluation.temperature=0.7",
    ]
    assert sweep.as_asked({"max_new_tokens": 128}) == ["--evaluation.max_new_tokens=128"]  # greedy
    files = []
    for name, limit in (("sft", 16), ("variant", 128)):
        evaluation = {"scores": [1.0, 0.0], "problems": 2, "max_new_tokens": limit, "system_prompt": "Think."}
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps(evaluation))
    with pytest.raises(RunDirError, match=r"were asked with another completion limit \(16, 128\)"):
        paired_change(*files)
    files[1].write_text(files[0].read_text())
    assert paired_change(*files)["difference"] == 0.0


def test_a_sweep_variant_s_own_options_come_after_the_common_ones(tmp_path: Path, monkeypatch) -> None:
    """`-- --training.max_steps 2` replaced a variant's `--training.max_steps=1` (the last value of a key wins), and
    the table listed the variant's option; a `--model` after `--` replaced the model evaluated."""
    sweep = bench_module("grpo_sweep")
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(sweep, "r1kit", lambda *args: calls.append(args))
    common = ["--profile", "test", "--training.max_steps", "2", "--model", "other"]
    (tmp_path / "steps1").mkdir()
    sweep.trained_minutes("/sft", tmp_path / "steps1", ["--training.max_steps=1"], common)
    assert calls[-1][-1] == "--training.max_steps=1" and calls[-1][-4:-1] == ("/sft", "--out", str(tmp_path / "steps1"))
    (tmp_path / "sft-eval-81525323").mkdir()  # the folder of these options
    sweep.evaluated("/sft", tmp_path / "sft-eval", common)
    assert calls[-1][-4:-2] == ("--model", "/sft")


def test_the_recipe_table_of_a_continued_run_reports_its_stages_minutes(tmp_path: Path, monkeypatch, capsys) -> None:
    """Run again on a finished folder (the retry after a failure), the table reported the skipping call's minutes as
    the recipe's."""
    table = bench_module("recipe_table")
    run = tmp_path / "run"
    evaluation = {"accuracy": 0.5, "accuracy_ci95": [0.1, 0.9], "format_rate": 1.0, "mean_completion_tokens": 9.0}
    (run / "01_sft").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"evaluations": {"base": evaluation}, "stage_figures": {}}))
    (run / "manifest.json").write_text(json.dumps({"stages": [{"name": "sft", "folder": "01_sft", "seconds": 90}]}))
    (run / "01_sft" / "manifest.json").write_text(json.dumps({"output": {"model": None, "evaluate": True}}))
    (run / "config.yaml").write_text("evaluation: {temperature: 0.0}\n")
    calls: list[tuple[str, ...]] = []

    def r1kit(*args: str) -> None:  # the run: every stage complete, skipped; each evaluation writes its result
        calls.append(args)
        if args[0] == "eval":
            out = Path(args[args.index("--out", args.index("--data")) + 1])
            (out / "eval").mkdir(parents=True)
            (out / "eval" / "eval.json").write_text(
                json.dumps({"accuracy": 0.0, "accuracy_ci95": [0, 1], "problems": 5})
            )

    monkeypatch.setattr(table, "r1kit", r1kit)
    argv = ["recipe_table.py", "--recipe", "default", "--out", str(run), "--gsm8k", "gsm8k.jsonl", "--"]
    monkeypatch.setattr(sys, "argv", [*argv, "--temperature", "0.7"])
    table.main()
    out = capsys.readouterr().out
    assert json.loads(out.splitlines()[-1])["minutes"] == 1.5 and "a run continued" in out
    # the run's --temperature was GRPO's: eval read it as its own, beside the run's evaluation.temperature, and
    # refused the pair
    (base,) = [call for call in calls if call[0] == "eval"]
    assert "--temperature" not in base and "--evaluation.temperature=0.0" in base


def test_the_recipe_table_scores_gsm8k_whatever_the_run_was_given(tmp_path: Path, monkeypatch) -> None:
    """Arguments after `--` replaced the GSM8K evaluation's own: `--model X` scored every stage as X, `--data
    arithmetic` scored the built-in task as "GSM8K", and `--config FILE` was refused beside the run's config.yaml after
    the whole recipe had run."""
    table = bench_module("recipe_table")
    run = tmp_path / "run"
    evaluation = {"accuracy": 0.5, "accuracy_ci95": [0.1, 0.9], "format_rate": 1.0, "mean_completion_tokens": 9.0}
    (run / "01_sft").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"evaluations": {"base": evaluation, "sft": evaluation}, "stage_figures": {}}))  # fmt: skip
    (run / "manifest.json").write_text(json.dumps({"stages": [{"name": "sft", "folder": "01_sft", "seconds": 60}]}))
    (run / "01_sft" / "manifest.json").write_text(json.dumps({"output": {"model": "01_sft/model", "evaluate": True}}))
    calls: list[tuple[str, ...]] = []

    def r1kit(*args: str) -> None:
        calls.append(args)
        out = Path(args[args.index("--out", args.index("--data")) + 1])
        (out / "eval").mkdir(parents=True)
        (out / "eval" / "eval.json").write_text(json.dumps({"accuracy": 0.0, "accuracy_ci95": [0, 1], "problems": 5}))

    monkeypatch.setattr(table, "r1kit", r1kit)
    given = ["--config", "my.yaml", "--model", "X", "--data", "arithmetic", "--dataset.split.seed=3", "--seed", "1"]
    given += ["--model_name_or_path=X", "--dataset_name", "arithmetic", "--output_dir", "runs/x"]  # TRL's spellings
    given += ["--from", "sft", "--only=sft"]  # `r1kit run`'s own: eval refused them after the whole recipe had run
    # the run's evaluation settings (a recipe's or profile's) ask every model: the stages were asked with eval's own
    (run / "config.yaml").write_text("# ran in /x\nevaluation: {max_new_tokens: 16, pass_k: [1, 4]}\n")
    argv = ["recipe_table.py", "--out", str(run), "--scored-run", "--gsm8k", "gsm8k.jsonl", "--problems", "5", "--"]
    monkeypatch.setattr(sys, "argv", [*argv, *given])
    table.main()
    base, sft = calls
    assert base[:4] == ("eval", "--seed", "1", "--config") and base[4] == str(run / "config.yaml")
    assert sft[:6] == ("eval", "--config", "my.yaml", "--seed", "1", "--model") and sft[6] == str(run / "01_sft/model")
    for call in calls:
        assert call.count("--data") == 1 and call[call.index("--data") + 1] == "gsm8k.jsonl"
        assert not {"X", "--dataset.split.seed=3", "--model_name_or_path=X", "--dataset_name", "runs/x"} & set(call)
        assert not {"--from", "sft", "--only=sft"} & set(call)
        assert {"--evaluation.max_new_tokens=16", "--evaluation.pass_k=[1, 4]"} <= set(call)
    # what the arguments after `--` set themselves wins (a sample count and its pass@k together)
    calls.clear()
    shutil.rmtree(run / "gsm8k")
    mine = ["--max_new_tokens", "512", "--evaluation.num_samples=8"]  # eval's bare name too
    monkeypatch.setattr(sys, "argv", [*argv, *given, *mine])
    table.main()
    for call in calls:
        assert "--evaluation.max_new_tokens=16" not in call and "--evaluation.pass_k=[1, 4]" not in call
        assert call[call.index("--max_new_tokens") + 1] == "512"
