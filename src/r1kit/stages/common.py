"""What every training stage shares: trainer arguments from the config, LoRA, callbacks, resume, final save."""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel
from transformers import PreTrainedTokenizerBase, Trainer, set_seed
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.utils import logging as hf_logging

from r1kit.atomic import build_complete, is_complete
from r1kit.config.schema import ModelConfig, R1kitConfig, SFTConfig, TrainingConfig
from r1kit.data.loading import Splits, load_splits
from r1kit.hardware import Hardware, measure_matmul_peak, setup_hardware
from r1kit.models import ModelError, check_model, resolve_model, save_adapter, save_for_inference
from r1kit.monitoring.callbacks import (
    AtomicCheckpoints,
    NonFiniteGuard,
    QuietProgress,
    TorchProfiler,
    TrainingMonitor,
    complete_checkpoints,
)
from r1kit.monitoring.recorder import RolloutRecorder
from r1kit.runs import RunDir, disk_needed, final_model, open_run, run_of

logger = logging.getLogger("r1kit")


@dataclass
class StageContext:
    """What a stage needs besides its config: where it writes and what it runs on."""

    config: R1kitConfig
    run: RunDir
    hardware: Hardware


def setup(config: R1kitConfig, command: str) -> tuple[StageContext, str, Splits]:
    """Start a stage or the pipeline: hardware, seed, run folder (checked before training), base model, data."""
    hardware = setup_hardware(config.model.device, config.model.precision, config.model.threads)
    quiet_libraries(config.monitoring.progress)
    set_seed(config.run.seed)
    run = open_run(config)
    base = resolve_model(config.model.name, config.model.cache_dir, config.model.gguf_file, config.model.revision)
    check_model(config.model, base)
    run.prepare(config, disk_needed(base, config))
    splits = load_splits(config.dataset)
    skipped = f" ({splits.skipped_rows} bad rows skipped)" if splits.skipped_rows else ""
    logger.warning(
        "r1kit %s → %s | model %s | %s: %d train / %d held-out%s | %s",
        command,
        run.root,
        config.model.name,
        splits.source,
        len(splits.train),
        len(splits.test),
        skipped,
        hardware.describe(),
    )
    return StageContext(config, run, hardware), base, splits


def model_reference(config: R1kitConfig) -> str:
    """model.name made loadable; a run folder stands for its final model."""
    run = run_of(config.model.name)
    if run is not None and Path(config.model.name).resolve() == run.root.resolve():
        final = final_model(run)
        if final is None:
            raise ModelError(f"run {run.root} has no finished model yet")
        return str(final)
    return resolve_model(config.model.name, config.model.cache_dir, config.model.gguf_file, config.model.revision)


def quiet_libraries(progress: bool) -> None:
    """Library noise off: load/tokenize progress bars unless progress is on, and a deprecation warning that TRL's own
    config triggers in transformers (nothing a user can act on)."""
    warnings.filterwarnings("ignore", message=r".*`(is_)?gradient_checkpointing` is deprecated", category=FutureWarning)
    if not progress:
        datasets.disable_progress_bars()
        hf_logging.disable_progress_bar()


def staging_dir(run: RunDir, stage: str) -> Path:
    return run.root / stage / ".staging"


def trainer_arguments(ctx: StageContext, stage: str, section: SFTConfig | TrainingConfig) -> dict[str, Any]:
    """Keyword arguments common to TRL's SFTConfig and GRPOConfig, from a stage's config section."""
    config, hardware = ctx.config, ctx.hardware
    reporters = [
        name
        for name, on in (
            ("tensorboard", config.monitoring.tensorboard.enabled),
            ("wandb", config.monitoring.wandb.enabled),
        )
        if on
    ]
    # transformers configures these integrations from the environment.
    if config.monitoring.wandb.enabled:
        os.environ.setdefault("WANDB_PROJECT", config.monitoring.wandb.project)
    if config.monitoring.tensorboard.enabled:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(ctx.run.root / "tensorboard" / stage)
    return {
        "output_dir": str(staging_dir(ctx.run, stage)),
        "run_name": config.monitoring.wandb.run_name or f"{ctx.run.root.name}-{stage}",
        "max_steps": section.max_steps or -1,
        "num_train_epochs": section.epochs or 1.0,
        "per_device_train_batch_size": section.batch_size.per_device_train,
        "gradient_accumulation_steps": section.batch_size.gradient_accumulation_steps,
        "learning_rate": section.optimization.learning_rate,
        "weight_decay": section.optimization.weight_decay,
        "warmup_steps": section.optimization.warmup_ratio,  # a float below 1 is a share of the steps
        "lr_scheduler_type": section.optimization.lr_scheduler,
        "max_grad_norm": section.optimization.max_grad_norm,
        "logging_steps": config.monitoring.logging_steps,
        "save_strategy": "steps",
        "save_steps": section.checkpoint.save_steps,
        "save_total_limit": None,  # AtomicCheckpoints keeps the newest complete ones
        "report_to": reporters or "none",
        "seed": config.run.seed,
        "disable_tqdm": not config.monitoring.progress,
        "dataloader_num_workers": section.dataloader.num_workers,
        "dataloader_pin_memory": section.dataloader.pin_memory,
        "tf32": config.model.tf32 or None,  # None: leave torch's default (False would touch CUDA settings)
        "bf16": hardware.precision == "bf16",
        "fp16": hardware.precision == "fp16",
        "use_cpu": hardware.device == "cpu",
    }


def lora_config(model: ModelConfig) -> PeftLoraConfig | None:
    if not model.lora.enabled:
        return None
    return PeftLoraConfig(
        r=model.lora.rank,
        lora_alpha=model.lora.alpha,
        lora_dropout=model.lora.dropout,
        target_modules=model.lora.target_modules,
        task_type="CAUSAL_LM",
    )


def callbacks(
    ctx: StageContext,
    stage: str,
    section: SFTConfig | TrainingConfig,
    total_params: int,
    recorder: RolloutRecorder | None = None,
) -> list:
    """Monitoring, non-finite step guard, atomic checkpoints, and the profiler when asked for."""
    monitoring = ctx.config.monitoring
    guard = NonFiniteGuard()
    peak = measure_matmul_peak(ctx.hardware.dtype, ctx.hardware.device)
    found = [
        guard,
        TrainingMonitor(ctx.run, stage, monitoring, total_params, peak, recorder=recorder, nonfinite=guard),
        AtomicCheckpoints(staging_dir(ctx.run, stage), ctx.run.checkpoints(stage), section.checkpoint),
    ]
    if monitoring.profiler.enabled:
        found.append(TorchProfiler(monitoring.profiler, ctx.run.root / stage / "profile"))
    return found


def prepare_resume(ctx: StageContext, stage: str) -> Path | None:
    """The checkpoint to resume from (the newest complete one), with the stage's logs cut back to it.

    Staging debris of a kill mid-save is removed; log lines past the checkpoint are dropped because the resumed
    run redoes those steps, so metrics.jsonl continues without duplicate or missing steps.
    """
    shutil.rmtree(staging_dir(ctx.run, stage), ignore_errors=True)
    found = complete_checkpoints(ctx.run.checkpoints(stage))
    if not found:
        ctx.run.truncate_logs(stage, after_step=0)
        return None
    latest = found[-1]
    step = int(latest.name.rsplit("-", 1)[1])
    ctx.run.truncate_logs(stage, after_step=step)
    logger.warning("%s: resuming from %s (step %d)", stage, latest, step)
    return latest


def train_and_save(trainer: Trainer, tokenizer: PreTrainedTokenizerBase, ctx: StageContext, stage: str) -> Path:
    """Train (resuming when a complete checkpoint exists) and save the stage's final model, complete or absent."""
    trainer.remove_callback(PrinterCallback)  # TrainingMonitor prints each logging step instead
    if ctx.config.monitoring.progress:
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(QuietProgress())
    trainer.train(resume_from_checkpoint=str(resume) if (resume := prepare_resume(ctx, stage)) else None)
    dest = ctx.run.model_dir(stage)
    if trainer.accelerator.is_main_process:  # one writer under `accelerate launch`
        if ctx.config.model.save_adapter and isinstance(trainer.model, PeftModel):  # before merging it away
            adapter = ctx.run.adapter_dir(stage)
            build_complete(adapter, lambda folder: save_adapter(trainer.model, tokenizer, folder), {"stage": stage})
        build_complete(dest, lambda folder: save_for_inference(trainer.model, tokenizer, folder), {"stage": stage})
        shutil.rmtree(staging_dir(ctx.run, stage), ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return dest


def stage_done(ctx: StageContext, stage: str) -> bool:
    return is_complete(ctx.run.model_dir(stage))
