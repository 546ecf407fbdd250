"""Checks of a valid config against this machine, run before any model is loaded."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

from r1kit import hardware
from r1kit.cache import cache_problem, cache_root, cache_setting
from r1kit.config.schema import R1kitConfig
from r1kit.config.sources import ConfigError


def check_machine(config: R1kitConfig, sources: Mapping[str, str] | None = None, command: str | None = None) -> None:
    """Raise ConfigError when the config asks for hardware or packages this machine does not have (one line for
    each problem, naming where the value came from when `sources`, the resolved config's, says). A stage's section
    counts where `command` (a stage alone, else the recipe) runs that stage: `r1kit dpo` needs no vLLM."""
    model = config.model
    problem = cache_problem(model.cache_dir, writing=False)  # written only where a model is built: checked there
    if problem:
        raise ConfigError(
            f"{cache_setting(model.cache_dir)}: {cache_root(model.cache_dir)} {problem}; point it at a writable folder"
        )
    devices = hardware.available_devices()
    if model.device != "auto" and model.device not in devices:
        available = f"model.device: {model.device} is not available here (available: {', '.join(devices)})"
        raise ConfigError(_with_source(available, sources or {}))
    device = hardware.pick_device(model.device)
    # every remaining problem at once: a config written for another machine is mended in one go, not one per run
    problems = []
    if model.precision != "auto" and not hardware.supports_precision(device, model.precision):
        why = {
            ("cpu", "bf16"): "this CPU has no native bf16 instructions (avx512_bf16 / amx_bf16)",
            ("cpu", "fp16"): "fp16 training is a GPU feature (a CPU has no fp16 matrix units; bf16 or fp32 there)",
        }.get((device, model.precision), f"{device} does not support it")
        problems.append(f"model.precision: {model.precision} on {device}: {why}; use auto or fp32")
    if model.tf32 and device != "cuda":
        problems.append(f"model.tf32: TF32 is an NVIDIA GPU feature, and this run is on {device}; set it to false")
    if model.attn_implementation == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        problems.append(
            "model.attn_implementation: flash_attention_2 needs the flash-attn package (and CUDA); use sdpa"
        )
    generates_with_vllm = config.grpo.use_vllm and "grpo" in config.kinds_on_run_values(command)
    if generates_with_vllm and device != "cuda":
        problems.append(
            f"grpo.use_vllm: vLLM generation needs a CUDA GPU, and this run is on {device}; set it to false"
        )
    elif generates_with_vllm and importlib.util.find_spec("vllm") is None:
        problems.append("grpo.use_vllm: the vllm package is not installed (pip install vllm)")
    integrations = {"tensorboard": config.monitoring.tensorboard.enabled, "wandb": config.monitoring.wandb.enabled}
    for name, enabled in integrations.items() if command not in ("chat", "eval") else ():  # they log to neither
        if enabled and importlib.util.find_spec(name) is None:
            problems.append(
                f"monitoring.{name}.enabled: the {name} package is not installed (pip install 'r1kit[{name}]', or "
                f"--monitoring.{name}.enabled false)"
            )
    if problems:
        raise ConfigError("\n".join(_with_source(problem, sources or {}) for problem in problems))


def _with_source(problem: str, sources: Mapping[str, str]) -> str:
    """`problem` ("key: …") with the key's source, as a validation error names it, where the user set it.

    >>> _with_source("model.tf32: no GPU", {"model.tf32": "cli:--tf32"})
    'model.tf32: no GPU (from cli:--tf32)'
    """
    source = sources.get(problem.partition(":")[0], "default")
    return problem if source == "default" else f"{problem} (from {source})"
