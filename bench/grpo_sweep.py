"""Sweep GRPO settings from one SFT model, each variant scored on the same held-out problems against that model.

    .venv/bin/python bench/grpo_sweep.py --model runs/r1/02_sft/model --out runs/sweep \
        --variant base: --variant lr2e-4:--training.optimization.learning_rate=2e-4 \
        --variant curriculum:--curriculum.enabled=true,--training.optimization.learning_rate=2e-4

Each `--variant NAME:ARGS` (ARGS: comma-separated `r1kit grpo` options, `--key=value`; a list value keeps its
commas: `--rewards.functions=[accuracy,format]`) runs `r1kit grpo --model MODEL`
with those options into OUT/NAME, then `r1kit eval` of its model on the held-out split. The SFT model itself is
evaluated once. Prints a markdown table (pass@1, its 95% interval, paired change against the SFT model with its 95%
interval, format rate, minutes) and, last, one JSON line with the same figures. Extra options after `--` go to every
`r1kit` call (e.g. `-- --evaluation.max_samples 200`), under the variant's own options (a variant's setting wins). A variant or evaluation already in OUT is reused where it was
made from the same model with the same options (an evaluation: the same extra options), and refused where not (its
folder named: remove it, or choose another OUT); the pairing is refused where two evaluations scored other problems (a
variant trained on other data: `r1kit grpo --model SFT` does not take the SFT run's dataset, so pass `--data` after
`--`). Every model is scored on the held-out split of that data: of a local file, the rows a run trained on it holds
out (`r1kit eval --data FILE` of the file a model's run trained on), so the SFT model's run must have trained on the
same file, or the SFT model is scored on the whole file and the pairing refused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from r1kit.monitoring.compare import paired_change


def r1kit(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "r1kit", *args], check=True)


def evaluated(model: str, out: Path, common: list[str]) -> Path:
    """The eval JSON of `model` with the `common` options, made once: each set of options its own folder. One of
    another model (the folder's name does not say which) is refused: it was paired as this one's."""
    if common:
        out = out.with_name(f"{out.name}-{hashlib.sha256(json.dumps(common).encode()).hexdigest()[:8]}")
    found, asked = out / "eval" / "eval.json", out / "sweep_model.json"  # the --model it was asked for, as given
    if not found.exists():
        r1kit("eval", *common, "--model", model, "--out", str(out))  # the last value of a key wins
        asked.write_text(json.dumps({"model": model}))
    elif asked.exists() and not same_model(recorded := json.loads(asked.read_text())["model"], model):
        sys.exit(f"{found} is an evaluation of {recorded}, not of {model}: remove it")
    return found


def same_model(recorded: str, model: str) -> bool:
    """Whether the model an evaluation was asked for is `model` (a folder wherever named from, an alias, a hub id)."""
    return recorded == model or Path(recorded).expanduser().resolve() == Path(model).expanduser().resolve()


def trained_minutes(model: str, out: Path, options: list[str], common: list[str]) -> float | None:
    """Minutes `r1kit grpo` took for this variant: measured now, or as recorded when it ran before. A variant made
    from another model or with other options (the folder's name does not say) is refused: its figures were reported
    under this one's options."""
    record, made_with = out / "sweep_minutes.json", {"model": model, "options": options, "common": common}
    if (out / "grpo" / "model").exists():
        recorded = json.loads(record.read_text()) if record.exists() else {}
        kept = {key: recorded[key] for key in made_with if key in recorded}  # a sweep before 2026-12-06 kept none
        model_differs = "model" in kept and not same_model(kept.pop("model"), model)
        if model_differs or any(kept[key] != made_with[key] for key in kept):
            sys.exit(f"{out} holds a variant made from another model or with other options: remove it")
        return recorded.get("minutes")
    started = time.perf_counter()
    r1kit("grpo", *common, "--model", model, "--out", str(out), *options)  # a variant's own options win
    minutes = round((time.perf_counter() - started) / 60, 1)
    record.write_text(json.dumps({"minutes": minutes, **made_with}))
    return minutes


def as_asked(evaluation: dict) -> list[str]:
    """`r1kit eval` options that ask a model as `evaluation` asked its own: its completion limit and sampling.

    >>> as_asked({"max_new_tokens": 256, "sampling": {"num_samples": 4, "temperature": 0.7}})
    ['--evaluation.max_new_tokens=256', '--evaluation.num_samples=4', '--evaluation.temperature=0.7']
    """
    sampling = evaluation.get("sampling") or {}
    asked = {"max_new_tokens": evaluation.get("max_new_tokens"), **sampling}
    return [f"--evaluation.{key}={value}" for key, value in asked.items() if value is not None]


def variant_options(options: str) -> list[str]:
    """A variant's `r1kit grpo` options: a comma starts a new one only before "--", so a list keeps its commas.

    >>> variant_options("--rewards.functions=[accuracy,format],--grpo.beta=0.04")
    ['--rewards.functions=[accuracy,format]', '--grpo.beta=0.04']
    """
    return [option for option in re.split(r",(?=--|$)", options) if option]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the SFT model every variant starts from")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variant", action="append", required=True, help="NAME:--key=value,--key=value")
    args, common = parser.parse_known_args()
    common = [a for a in common if a != "--"]

    reference_file = evaluated(args.model, args.out / "sft-eval", common)
    reference = json.loads(reference_file.read_text())
    # each variant's model is asked as the SFT model was (its run's completion limit and sampling, which `r1kit eval`
    # takes from the run that trained a model): a new grpo run's defaults were paired with them
    asked = as_asked(reference)
    rows = []
    for variant in args.variant:
        name, _, options = variant.partition(":")
        out = args.out / name
        minutes = trained_minutes(args.model, out, variant_options(options), common)
        result_file = evaluated(str(out / "grpo" / "model"), out / "eval-run", [*common, *asked])
        result = json.loads(result_file.read_text())
        change = paired_change(reference_file, result_file)  # refused where they scored or asked otherwise
        rows.append({"variant": name, "options": options, "pass@1": result["accuracy"],
                     "ci95": result["accuracy_ci95"], "change": change["difference"], "change_ci95": change["ci95"],
                     "format_rate": result["format_rate"], "minutes": minutes})  # fmt: skip

    print(f"\nSFT model: pass@1 {reference['accuracy']:.1%} on {reference['problems']} held-out problems\n")
    print("| variant | options | pass@1 | 95% interval | paired change vs SFT | 95% interval | format | minutes |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | `{r['options'] or 'defaults'}` | {r['pass@1']:.1%} | {r['ci95'][0]:.1%}–{r['ci95'][1]:.1%}"
            f" | {r['change'] * 100:+.1f} pts | [{r['change_ci95'][0] * 100:+.1f}, {r['change_ci95'][1] * 100:+.1f}]"
            f" | {r['format_rate']:.1%} | {r['minutes']} |"
        )
    print(json.dumps({"sft_pass@1": reference["accuracy"], "variants": rows}))


if __name__ == "__main__":
    main()
