"""GRPO step benchmark: r1kit's default settings next to plain TRL GRPOTrainer with the R1 tutorial's settings.

Same model (the embedded SmolLM2-135M-Instruct), task (built-in arithmetic), batch (2 prompts × 8 completions) and
completion limit. Each variant runs in its own process so its peak RSS is its own; both are measured by r1kit's
TrainingMonitor callback (step time, tokens/s, MFU against this machine's measured matmul peak for the precision in
use). The first step is a warm-up and is left out.

    python bench/grpo_step.py            # both variants, then the ratio
    python bench/grpo_step.py --steps 6  # more measured steps
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BATCH, GENERATIONS, MAX_COMPLETION = 16, 8, 128


def r1kit_variant(out: Path, steps: int) -> None:
    """r1kit's defaults: LoRA on bf16 weights, bf16 autocast where the CPU has it, short prompt, no checkpointing."""
    from r1kit.config.sources import resolve_config
    from r1kit.stages import grpo
    from r1kit.stages.common import setup

    config = resolve_config(
        environ={},
        overrides=[
            "--out",
            str(out),
            "--training.max_steps",
            str(steps),
            "--training.batch_size.per_device_train",
            str(BATCH),
            "--grpo.num_generations",
            str(GENERATIONS),
            "--grpo.max_completion_length",
            str(MAX_COMPLETION),
            "--monitoring.progress",
            "false",
            "--training.checkpoint.save_steps",
            "10000",
        ],
    ).config
    ctx, base, splits = setup(config, "bench")
    grpo.train(ctx, base, splits)


def tutorial_variant(out: Path, steps: int) -> None:
    """Plain TRL with the R1 tutorial's settings: full fp32 fine-tune (its bf16=True needs a GPU), gradient
    checkpointing, the paper's long system prompt, learning rate 5e-5, rewards accuracy + format."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from r1kit.config.schema import DatasetConfig, MonitoringConfig
    from r1kit.data.loading import grpo_rows, load_splits
    from r1kit.hardware import measure_matmul_peak, setup_hardware
    from r1kit.models import builtin_model_path
    from r1kit.monitoring.callbacks import TrainingMonitor
    from r1kit.prompts import R1_SYSTEM_PROMPT
    from r1kit.rewards import build_reward
    from r1kit.runs import RunDir

    setup_hardware()
    path = builtin_model_path("smollm2-135m")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path)
    rows = grpo_rows(load_splits(DatasetConfig()).train, R1_SYSTEM_PROMPT)
    args = GRPOConfig(
        output_dir=str(out / "trl"),
        max_steps=steps,
        per_device_train_batch_size=BATCH,
        num_generations=GENERATIONS,
        max_completion_length=MAX_COMPLETION,
        learning_rate=5e-5,
        gradient_checkpointing=True,
        bf16=False,
        use_cpu=True,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )
    run = RunDir(out)
    run.root.mkdir(parents=True, exist_ok=True)
    monitor = TrainingMonitor(
        run, "grpo", MonitoringConfig(progress=False), model.num_parameters(), measure_matmul_peak(torch.float32)
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[build_reward("accuracy"), build_reward("format")],
        args=args,
        train_dataset=rows,
        processing_class=tokenizer,
        callbacks=[monitor],
    )
    trainer.train()


def summarise(out: Path) -> dict[str, float]:
    from r1kit.runs import RunDir

    steps = [r for r in RunDir(out).read("metrics.jsonl") if r["stage"] == "grpo" and r["kind"] == "step"][
        1:
    ]  # no warm-up
    mean = lambda key: statistics.fmean(r[key] for r in steps)  # noqa: E731
    completion_tokens = statistics.fmean(r["completions/mean_length"] * BATCH for r in steps)
    return {
        "step_seconds": mean("perf/step_seconds"),
        "completion_tokens_per_second": completion_tokens / mean("perf/step_seconds"),
        "tokens_per_second": mean("perf/tokens_per_second"),
        "mfu": mean("perf/mfu"),
        "peak_rss_gb": max(r["perf/peak_rss_gb"] for r in steps),
        "mean_completion_tokens": completion_tokens / BATCH,
        "measured_steps": len(steps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4, help="steps per variant, the first one a warm-up (default 4)")
    parser.add_argument("--variant", choices=("r1kit", "tutorial"), help=argparse.SUPPRESS)  # child process
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.variant:
        {"r1kit": r1kit_variant, "tutorial": tutorial_variant}[args.variant](args.out, args.steps)
        print(json.dumps(summarise(args.out)))
        return

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("r1kit", "tutorial"):
            print(f"running {variant} ({args.steps} steps) …", file=sys.stderr, flush=True)
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--variant",
                    variant,
                    "--steps",
                    str(args.steps),
                    "--out",
                    f"{tmp}/{variant}",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode:
                sys.exit(f"{variant} failed:\n{done.stderr[-3000:]}")
            results[variant] = json.loads(done.stdout.strip().splitlines()[-1])

    rows = [
        ("step time (s)", "step_seconds", ".1f"),
        ("completion tokens/s", "completion_tokens_per_second", ".1f"),
        ("all tokens/s (fwd+bwd)", "tokens_per_second", ".0f"),
        ("MFU estimate", "mfu", ".1%"),
        ("peak RSS (GB)", "peak_rss_gb", ".2f"),
        ("mean completion tokens", "mean_completion_tokens", ".0f"),
    ]
    print(
        f"GRPO step, SmolLM2-135M, {BATCH // GENERATIONS} prompts × {GENERATIONS} completions, ≤{MAX_COMPLETION} tokens"
    )
    print(f"{'':26}{'r1kit':>12}{'TRL+tutorial':>14}{'ratio':>10}")
    for label, key, fmt in rows:
        mine, theirs = results["r1kit"][key], results["tutorial"][key]
        ratio = theirs / mine if key in ("step_seconds", "peak_rss_gb") else mine / theirs
        print(f"{label:26}{mine:>12{fmt}}{theirs:>14{fmt}}{ratio:>9.2f}x")
    print("ratio: how many times better r1kit is (faster, or less memory)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()
