"""Curriculum scoring benchmark: a re-scoring through r1kit's fast sampler against `model.generate`, same work.

A re-scoring (`curriculum.rescore_every`) samples k completions of every scored prompt from the policy being trained:
a LoRA-wrapped model. Both variants score the same prompts (the built-in task's first rows drawn with `run.seed`) with the same
model, adapters, temperature, completion limit and batch size, through `r1kit.stages.curriculum.sampled`, in one
process, each after one warm-up batch:
- `generate`: `model.generate` through the unmerged adapters (what re-scoring did before it used the sampler);
- `sampler`: the trainer's `PolicySampler` (LoRA merged into a copy, each prompt prefilled once, a static cache).
The adapters' B matrices are set to small random values, as a trained policy's are, so the two are not the base model.
Completions end at EOS, so each variant's time also depends on what it sampled: the mean completion length and the
mean pass rate are printed next to the times (the two draw different random numbers, so they differ a little).

    python bench/curriculum_scoring.py                              # the embedded SmolLM2-135M
    python bench/curriculum_scoring.py --model RUN/01_sft/model     # a cold-start SFT model: realistic lengths
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--data", default="mixed", help="built-in task whose training rows are scored")
    parser.add_argument("--prompts", type=int, default=64, help="prompts scored")
    parser.add_argument("--samples", type=int, default=4, help="samples per prompt (curriculum.samples_per_prompt)")
    args = parser.parse_args()

    import torch
    from peft import get_peft_model

    from r1kit.config.schema import R1kitConfig
    from r1kit.data.synthetic import generate as builtin_rows
    from r1kit.fast.generation import sampler_for
    from r1kit.hardware import setup_hardware
    from r1kit.models import builtin_model_path, load_model, load_tokenizer
    from r1kit.prompts import chat_prompt
    from r1kit.stages.common import lora_config
    from r1kit.stages.curriculum import RESCORING, sampled, verified_rates

    config = R1kitConfig.model_validate(
        {"curriculum": {"samples_per_prompt": args.samples}, "monitoring": {"progress": False}}
    )
    hardware = setup_hardware()
    reference = args.model or str(builtin_model_path("smollm2-135m"))
    tokenizer = load_tokenizer(config.model, reference)
    policy = get_peft_model(load_model(config.model, reference, hardware, for_training=True), lora_config(config.model))
    torch.manual_seed(0)
    for name, parameter in policy.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=1e-3)
    policy.eval()
    sampler = sampler_for(policy, tokenizer)
    if sampler is None:
        raise SystemExit(f"r1kit's fast sampler does not apply to {reference} on this machine: nothing to compare")
    sampler.refresh()

    rows = builtin_rows(args.data, args.prompts, seed=config.run.seed)
    prompts = [chat_prompt(row["question"], config.prompt.system) for row in rows]
    golds = [row["solution"] for row in rows]
    per_batch = max(1, config.evaluation.batch_size // args.samples)  # more samples than a batch: one prompt
    print(
        f"{args.prompts} prompts × {args.samples} samples, {per_batch} prompts a batch, temperature "
        f"{config.grpo.temperature}, ≤ {config.grpo.max_completion_length} tokens, {reference}"
    )
    figures = {}
    for variant, path in (("generate", None), ("sampler", sampler)):
        sampled(policy, tokenizer, config, prompts[:per_batch], "warm-up", path, seed_key=(1, 0, RESCORING))
        started = time.perf_counter()
        texts = sampled(policy, tokenizer, config, prompts, variant, path, seed_key=(0, 0, RESCORING))
        seconds = time.perf_counter() - started
        # the completions' text tokenized again (the sampling paths return text); a random model's garbage can
        # re-tokenize longer than it was generated, a trained model's reads back nearly as generated
        tokens = statistics.fmean(
            len(tokenizer(t, add_special_tokens=False)["input_ids"]) for group in texts for t in group
        )
        rates = [rate for rate in verified_rates(config, texts, golds) if rate is not None]
        figures[variant] = {"seconds": seconds, "mean_tokens": tokens, "mean_pass_rate": statistics.fmean(rates)}
        print(
            f"{variant:>9}: {seconds:6.1f} s  mean completion {tokens:5.1f} tokens (re-tokenized)  mean pass rate {figures[variant]['mean_pass_rate']:.3f}"
        )
    speedup = figures["generate"]["seconds"] / figures["sampler"]["seconds"]
    print(f"speed-up: {speedup:.2f}×")
    print(
        json.dumps(
            {
                "prompts": args.prompts,
                "samples_per_prompt": args.samples,
                "generate_seconds": round(figures["generate"]["seconds"], 2),
                "sampler_seconds": round(figures["sampler"]["seconds"], 2),
                "speedup": round(speedup, 2),
                "generate_mean_tokens": round(figures["generate"]["mean_tokens"], 1),
                "sampler_mean_tokens": round(figures["sampler"]["mean_tokens"], 1),
                "generate_mean_pass_rate": round(figures["generate"]["mean_pass_rate"], 3),
                "sampler_mean_pass_rate": round(figures["sampler"]["mean_pass_rate"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
