"""GRPO step benchmark: r1kit's fast paths against TRL's GRPOTrainer on the same work.

Every variant does the same work: the embedded SmolLM2-135M-Instruct, 2 prompts × 8 completions of exactly
`--tokens` tokens each (EOS ignored, so no variant gets shorter completions by chance), the same prompts, and the same
completion tokens for the loss. Variants, each in its own process (so that its peak RSS is its own):
- `trl`: TRL's GRPOTrainer with r1kit's settings: LoRA (r 16, all linear layers) on frozen bf16 weights, bf16
  autocast (fp32 weights and arithmetic under `--precision fp32`, as r1kit trains on a CPU without native bf16),
  r1kit's short system prompt, no gradient checkpointing. Rollouts from `model.generate`, loss from TRL's
  fused-LM-head path. The real peer.
- `r1kit`: the same trainer with r1kit's fast paths on (`fast.generation`, `fast.shared_prefix`).
- `tutorial`: TRL with the R1 tutorial's settings, for context: a full fp32 fine-tune (its bf16 needs a GPU),
  gradient checkpointing, the paper's long system prompt.
A step is generation + loss forward + backward + optimizer step (rewards are the same cheap call for all, ~10 ms,
and left out). Each phase is the median of `--repeats` measured steps after two warm-up steps (the first pays for
kernel selection, the second still grows the allocator's heap).

MFU counts model FLOPs: 2 × (parameters in matmuls) per token for the forward and as much again for the backward
where the base weights are frozen (input gradients only; LoRA's own are negligible), twice as much for the tutorial's
full fine-tune (weight gradients too; checkpointing's recomputed forward is not model work), over the tokens a path
actually processes (the shared-prefix path forwards each prompt once per group), against this machine's matmul peak
in the compared precision, measured once before the variants so that every MFU has the same yardstick.

    python bench/grpo_step.py                # all variants; the last line is JSON
    python bench/grpo_step.py --repeats 5
    python bench/grpo_step.py --precision fp32   # what r1kit runs on a CPU without native bf16 (the default there)
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROMPTS, GENERATIONS = 2, 8
VARIANTS = ("trl", "r1kit", "tutorial")
WARMUP = 2


def build(variant: str, tokens: int, precision: str):
    """The trainer, the prompts (token ids, each repeated for its group) and a fixed loss batch for `variant`."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    from r1kit.config.schema import R1kitConfig
    from r1kit.data.synthetic import generate
    from r1kit.hardware import setup_hardware
    from r1kit.models import builtin_model_path
    from r1kit.prompts import DEFAULT_SYSTEM_PROMPT, R1_SYSTEM_PROMPT, chat_prompt
    from r1kit.stages.grpo_trainer import R1kitGRPOTrainer

    setup_hardware(device="cpu")  # every variant trains on the CPU: its glibc set-up too
    tutorial = variant == "tutorial"
    path = builtin_model_path("smollm2-135m")
    tokenizer = AutoTokenizer.from_pretrained(path)
    bf16 = precision == "bf16" and not tutorial  # the tutorial's bf16 needs a GPU: a full fp32 fine-tune here
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if bf16 else torch.float32)
    system = R1_SYSTEM_PROMPT if tutorial else DEFAULT_SYSTEM_PROMPT
    questions = [row["question"] for row in generate("arithmetic", PROMPTS, seed=0)]
    conversations = [chat_prompt(q, system) for q in questions]
    defaults = R1kitConfig()
    args = GRPOConfig(
        output_dir="/tmp/r1kit-bench-grpo",
        per_device_train_batch_size=PROMPTS * GENERATIONS,
        num_generations=GENERATIONS,
        max_completion_length=tokens,
        temperature=defaults.grpo.temperature,
        learning_rate=5e-5,
        bf16=bf16,
        gradient_checkpointing=tutorial,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
    )
    lora = defaults.model.lora
    trainer = R1kitGRPOTrainer(
        shared_prefix=variant == "r1kit",
        fast_generation=variant == "r1kit",
        model=model,
        reward_funcs=lambda completions, **kwargs: [0.0] * len(completions),
        args=args,
        train_dataset=Dataset.from_dict({"prompt": conversations}),
        processing_class=tokenizer,
        peft_config=None
        if tutorial
        else LoraConfig(r=lora.rank, lora_alpha=lora.alpha, target_modules=lora.target_modules, task_type="CAUSAL_LM"),
    )
    trainer.create_optimizer()
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which this benchmark steps by hand
    if tutorial:  # Trainer.train() switches checkpointing on, and this benchmark steps the trainer by hand
        trainer.model.activation_checkpointing_enable(
            activation_checkpointing_kwargs=args.gradient_checkpointing_kwargs
        )
    # Equal work: exactly `tokens` tokens per completion, EOS or not.
    trainer.generation_config.min_new_tokens = tokens
    if trainer.sampler is not None:
        trainer.sampler.eos = torch.tensor([], dtype=torch.long)

    prompt_ids = [
        tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        for c in conversations
        for _ in range(GENERATIONS)
    ]
    width = max(map(len, prompt_ids))
    generator = torch.Generator().manual_seed(0)
    batch = {
        "prompt_ids": torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in prompt_ids]),
        "prompt_mask": torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids]),
        "completion_ids": torch.randint(100, 20000, (len(prompt_ids), tokens), generator=generator),
        "completion_mask": torch.ones(len(prompt_ids), tokens, dtype=torch.long),
        "advantages": torch.randn(len(prompt_ids), generator=generator),
        "num_items_in_batch": torch.tensor(len(prompt_ids) * tokens),
    }
    return trainer, prompt_ids, batch


def measure(variant: str, tokens: int, repeats: int, peak: float, precision: str) -> dict[str, float]:
    import torch

    trainer, prompt_ids, batch = build(variant, tokens, precision)
    model = trainer.model
    phases: dict[str, list[float]] = {"generation": [], "forward": [], "backward": [], "optimizer": []}
    for repeat in range(repeats + WARMUP):
        trainer.state.global_step = repeat  # the policy "changed": r1kit's sampler refreshes its merged weights
        times = [time.perf_counter()]
        trainer._generate_single_turn(prompt_ids, None, {}, GENERATIONS)
        times.append(time.perf_counter())
        model.train()
        loss = trainer._compute_loss(model, batch)
        times.append(time.perf_counter())
        loss.backward()
        times.append(time.perf_counter())
        trainer.optimizer.step()
        trainer.optimizer.zero_grad()
        times.append(time.perf_counter())
        if repeat >= WARMUP:
            for phase, start, end in zip(phases, times, times[1:], strict=False):
                phases[phase].append(end - start)
    result = {f"{phase}_seconds": statistics.median(values) for phase, values in phases.items()}
    result["step_seconds"] = sum(result.values())

    rows, completion = len(prompt_ids), tokens
    prompt_rows = len(set(map(tuple, prompt_ids))) if trainer.shared_prefix else rows
    width = batch["prompt_ids"].size(1)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings().weight.numel()
    body = sum(m.weight.numel() for m in base.modules() if isinstance(m, torch.nn.Linear)) - head
    # forward FLOPs of the tokens this path processes (backbone) and scores (LM head); the backward as much again
    # (input gradients), or twice as much where every weight trains (weight gradients too)
    forward_flops = 2 * body * (prompt_rows * width + rows * completion) + 2 * head * rows * completion
    backward_flops = forward_flops * (2 if variant == "tutorial" else 1)
    train_seconds = result["forward_seconds"] + result["backward_seconds"]
    result |= {
        "generation_tokens_per_second": rows * tokens / result["generation_seconds"],
        "train_tokens_per_second": rows * (width + completion) / train_seconds,
        f"train_mfu_{precision}": (forward_flops + backward_flops) / train_seconds / peak,
        "peak_gflops": peak / 1e9,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
        "prompt_tokens": width,
        "shared_prefix": trainer.shared_prefix,
        "fast_generation": trainer.sampler is not None,
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=64, help="tokens per completion (default 64)")
    parser.add_argument("--repeats", type=int, default=3, help="measured steps per variant (default 3)")
    parser.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        default="auto",
        help="the weights and arithmetic of r1kit and its peer: auto is bf16 on a CPU with native bf16, else fp32, as "
        "r1kit's model.precision auto chooses (default auto)",
    )
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # in a child process
    parser.add_argument("--peak", type=float, help=argparse.SUPPRESS)  # the parent's measured matmul peak, FLOP/s
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant, args.tokens, args.repeats, args.peak, args.precision)))
        return

    import torch

    from r1kit.hardware import cpu_has_native_bf16, measure_matmul_peak, setup_hardware

    precision = args.precision if args.precision != "auto" else "bf16" if cpu_has_native_bf16() else "fp32"
    if precision == "bf16" and not cpu_has_native_bf16():  # emulated, bf16 is ~20× slower: hours, never run here
        sys.exit(
            "bench/grpo_step.py --precision bf16: this CPU has no native bf16 (avx512_bf16 or amx_bf16), so bf16 is "
            "emulated, about 20 times slower, and r1kit trains in fp32 here: compare with --precision fp32 (auto)."
        )
    setup_hardware(device="cpu")  # the threads (and glibc set-up) every variant runs with on the CPU
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    peak = measure_matmul_peak(dtype)  # once: one yardstick for every variant's MFU
    results = {}
    for variant in VARIANTS:
        print(f"measuring {variant} ({precision}) …", file=sys.stderr, flush=True)
        command = [sys.executable, __file__, "--variant", variant, "--tokens", str(args.tokens), "--peak", str(peak)]
        command += ["--precision", precision]
        done = subprocess.run([*command, "--repeats", str(args.repeats)], capture_output=True, text=True, check=False)
        if done.returncode:
            sys.exit(f"{variant} failed:\n{done.stderr[-3000:]}")
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])

    ours, peer, tutorial = results["r1kit"], results["trl"], results["tutorial"]
    print(
        f"GRPO step, SmolLM2-135M, {PROMPTS} prompts × {GENERATIONS} completions of {args.tokens} tokens, "
        f"{ours['prompt_tokens']}-token prompts (tutorial: {tutorial['prompt_tokens']}); median of {args.repeats} steps"
    )
    print(f"{'':30}{'r1kit':>10}{'TRL same settings':>19}{'ratio':>8}{'TRL tutorial':>14}")
    rows = [
        ("step (s)", "step_seconds", ".2f", True),
        ("  generation (s)", "generation_seconds", ".2f", True),
        ("  loss forward (s)", "forward_seconds", ".2f", True),
        ("  backward (s)", "backward_seconds", ".2f", True),
        ("  optimizer (s)", "optimizer_seconds", ".3f", True),
        ("generation tokens/s", "generation_tokens_per_second", ".0f", False),
        ("train tokens/s (fwd+bwd)", "train_tokens_per_second", ".0f", False),
        (f"train MFU ({precision} peak)", f"train_mfu_{precision}", ".1%", False),
        ("peak RSS (GB)", "peak_rss_gb", ".2f", True),
    ]
    for label, key, fmt, lower_is_better in rows:
        ratio = peer[key] / ours[key] if lower_is_better else ours[key] / peer[key]
        print(f"{label:30}{ours[key]:>10{fmt}}{peer[key]:>19{fmt}}{ratio:>7.2f}x{tutorial[key]:>14{fmt}}")
    print(
        f"ratio: how many times better r1kit is than TRL with the same settings; {precision} matmul peak "
        f"{ours['peak_gflops']:.0f} GFLOP/s"
    )
    print(
        json.dumps(
            {
                "speedup_vs_trl_same_settings": round(peer["step_seconds"] / ours["step_seconds"], 3),
                "peak_rss_ratio_vs_trl": round(ours["peak_rss_gb"] / peer["peak_rss_gb"], 3),
                f"train_mfu_{precision}": round(ours[f"train_mfu_{precision}"], 3),
                "generation_speedup_vs_hf_generate": round(
                    ours["generation_tokens_per_second"] / peer["generation_tokens_per_second"], 3
                ),
                "speedup_vs_trl_tutorial_settings": round(tutorial["step_seconds"] / ours["step_seconds"], 3),
            }
        )
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()
