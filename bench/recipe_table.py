"""Run a recipe end to end and score every stage's model on a second, fixed held-out set (the issue's GSM8K subset).

    .venv/bin/python bench/recipe_table.py --recipe r1 --out runs/r1-bench --gsm8k ../shared/data/gsm8k/test.jsonl

With `--scored-run` the run folder is taken as it is (no `r1kit run`): the minutes are then the stages' own seconds
from their manifests, and stages whose GSM8K evaluation already exists are not scored again.

Prints a markdown table (per stage: built-in held-out pass@1 with its 95% interval, format rate, mean length; GSM8K
pass@1 with its interval) and, last, one JSON line with the same figures and the run's minutes. Extra arguments after
`--` go to `r1kit run` (e.g. `-- --profile dev`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path

import yaml

from r1kit.config.aliases import FLAG_ALIASES, PATH_ALIASES
from r1kit.config.sources import ConfigError, cli_layer


def r1kit(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "r1kit", *args], check=True)


def without(args: list[str], keys: tuple[str, ...], flags: Collection[str] = ()) -> list[str]:
    """`args` without the options that set `keys` (config keys, however spelt: `--data X`, `--dataset_name=X`; a key
    ending in "." is a section: `dataset.` drops every dataset key; `--config`, `--recipe`, `--profile` as such), nor
    the `flags` named, each with its value.

    >>> without(["--profile", "dev", "--dataset_name", "gsm", "--dataset.split.seed=3", "--seed", "1"], ("dataset.",))
    ['--profile', 'dev', '--seed', '1']
    """
    kept, value_next = [], False
    for arg in args:
        if value_next:
            value_next = False
            continue
        flag = arg.split("=", 1)[0]
        alias = FLAG_ALIASES.get(flag)
        key = alias.path if alias else PATH_ALIASES.get(flag.removeprefix("--"), flag.removeprefix("--"))
        if flag in flags or any(key == name or (name.endswith(".") and key.startswith(name)) for name in keys):
            value_next = "=" not in arg and not (alias and alias.value is not None)  # a switch takes no value
            continue
        kept.append(arg)
    return kept


# What the GSM8K evaluation sets itself: a run's model, data and folder given after `--` replaced them (every stage
# scored as the base model, the built-in task scored as "GSM8K"); the base model's run config holds the run's file,
# recipe and profile (a second --config was refused, after the whole recipe had run)
_EVAL_OWN = ("model.name", "dataset.", "run.output_dir")
_RUN_CONFIG = ("config", "recipe", "profile")
_RUN_ONLY = ("from", "only")  # `r1kit run`'s own options, which `r1kit eval` refused after the whole recipe had run
# How every model is asked on GSM8K, read from the run's config: the base model (scored with that config) took the
# recipe's or profile's values, each stage's model (scored as a trained model on other data) eval's defaults
_ASKED = ("max_new_tokens", "num_samples", "temperature", "pass_k")


def evaluation_flags(args: list[str]) -> dict[str, str]:
    """Each of `_ASKED`'s settings that `args` set as `r1kit eval` reads them → the flag that sets it.

    >>> evaluation_flags(["--temperature", "0.7", "--evaluation.pass_k=[1]", "--seed", "1"])
    {'temperature': '--temperature', 'pass_k': '--evaluation.pass_k'}
    """
    try:
        sources = cli_layer(args, "eval").value_sources
    except ConfigError:  # arguments eval refuses: its own call says so
        return {}
    read = {key.removeprefix("evaluation."): source.removeprefix("cli:") for key, source in sources.items()}
    return {key: flag for key, flag in read.items() if key in _ASKED}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", help="the recipe to run (default: r1); with --scored-run, only the table's label")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--gsm8k", type=Path, help="GSM8K test.jsonl; its first --problems rows are scored")
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--scored-run", action="store_true", help="score the finished run in --out; don't run it")
    args, run_args = parser.parse_known_args()
    run_args = [a for a in run_args if a != "--"]
    recipe = args.recipe or (None if args.scored_run else "r1")  # a scored run's folder does not name its recipe

    continued = (args.out / "manifest.json").exists()  # its finished stages are skipped: the call's time is not theirs
    started = time.perf_counter()
    if not args.scored_run:
        r1kit("run", "--recipe", recipe, "--out", str(args.out), *run_args)
    minutes = (time.perf_counter() - started) / 60
    summary = json.loads((args.out / "summary.json").read_text())
    if args.scored_run or continued:  # stage seconds exclude the held-out evaluations between stages
        stages = json.loads((args.out / "manifest.json").read_text())["stages"]
        minutes = sum(stage["seconds"] or 0 for stage in stages) / 60
        print(f"minutes: the stages' own seconds ({'scored run' if args.scored_run else 'a run continued'})")
    saved = args.out / "config.yaml"
    run_config = (yaml.safe_load(saved.read_text()) if saved.exists() else None) or {}
    evaluation = run_config.get("evaluation") or {}
    # The arguments after `--` that `r1kit eval` reads as one of these (`--temperature`, `--max_new_tokens` too): a
    # scored run's are the user's for its evaluations and win (a sample count and its pass@k together); a run's were
    # `r1kit run`'s (GRPO's temperature) and are left out, as the run's config says how it is scored (given both
    # ways, eval refused the pair)
    read_as = evaluation_flags(without(run_args, _EVAL_OWN + _RUN_ONLY + _RUN_CONFIG))
    own = set(read_as) if args.scored_run else set()
    own |= {"num_samples", "pass_k"} if own & {"num_samples", "pass_k"} else set()
    dropped = () if args.scored_run else set(read_as.values())
    asked = [
        f"--evaluation.{key}={json.dumps(evaluation[key])}" for key in _ASKED if key in evaluation and key not in own
    ]

    models = {"base": None}
    for stage in json.loads((args.out / "manifest.json").read_text())["stages"]:
        manifest = json.loads((args.out / stage["folder"] / "manifest.json").read_text())
        output = manifest["output"]
        if output["model"] and output["evaluate"]:
            models[stage["name"]] = str(args.out / output["model"])
    figures: dict[str, dict] = {}
    for label, evaluation in summary["evaluations"].items():
        figures[label] = {
            "pass@1": evaluation["accuracy"],
            "ci95": evaluation["accuracy_ci95"],
            "format_rate": evaluation["format_rate"],
            "mean_tokens": evaluation["mean_completion_tokens"],
            "perplexity": evaluation.get("perplexity"),
            "rouge_l": evaluation.get("rouge_l"),
            "win_rate": evaluation.get("win_rate"),
        }
        if args.gsm8k and label in models:
            out = args.out / "gsm8k" / label
            model = models[label] or str(args.out)  # base: the run's config names it
            model_args = ["--model", model] if models[label] else ["--config", str(args.out / "config.yaml")]
            if not (args.scored_run and (out / "eval" / "eval.json").exists()):
                # --problems last: a profile among the run's arguments (dev: 40) capped the problems scored
                given = without(run_args, _EVAL_OWN + _RUN_ONLY + (_RUN_CONFIG if label == "base" else ()), dropped)
                r1kit("eval", *given, *model_args, *asked, "--data", str(args.gsm8k), "--out", str(out),
                      "--dataset.max_test_samples", str(args.problems), "--evaluation.max_samples", str(args.problems))  # fmt: skip
            scored = json.loads((out / "eval" / "eval.json").read_text())
            figures[label] |= {"gsm8k_pass@1": scored["accuracy"], "gsm8k_ci95": scored["accuracy_ci95"],
                               "gsm8k_problems": scored["problems"]}  # fmt: skip

    problems = sorted({f["gsm8k_problems"] for f in figures.values() if "gsm8k_problems" in f})
    print(f"\n{recipe or args.out}: {minutes:.1f} min; stage figures: {json.dumps(summary['stage_figures'])}")
    print(f"GSM8K problems scored: {', '.join(map(str, problems))}\n" if problems else "")
    print(
        "| stage | pass@1 (built-in held-out) | 95% interval | format | mean tokens | perplexity | ROUGE-L | "
        "win rate | GSM8K pass@1 | 95% interval |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")

    def shown(value, pattern: str) -> str:
        return "–" if value is None else format(value, pattern)

    for label, f in figures.items():
        gsm_ci = f.get("gsm8k_ci95") or [None, None]
        ci = f["ci95"] or [None, None]  # chat data (rlhf_chat) has no pass@1
        print(
            f"| {label} | {shown(f['pass@1'], '.1%')} | {shown(ci[0], '.1%')}–{shown(ci[1], '.1%')} | "
            f"{shown(f['format_rate'], '.1%')} | {shown(f['mean_tokens'], '.1f')} | {shown(f['perplexity'], '.2f')} | {shown(f['rouge_l'], '.1%')} | "
            f"{shown(f['win_rate'], '.1%')} | {shown(f.get('gsm8k_pass@1'), '.1%')} | "
            f"{shown(gsm_ci[0], '.1%')}–{shown(gsm_ci[1], '.1%')} |"
        )
    print(json.dumps({"recipe": recipe, "minutes": round(minutes, 1), "stages": figures}))


if __name__ == "__main__":
    main()
