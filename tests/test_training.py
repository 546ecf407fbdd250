"""Training stages on the tiny random model: parameters change, metrics are logged, bad steps are skipped."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from r1kit.config.sources import ConfigError, resolve_config
from r1kit.data.loading import DatasetError, sft_rows
from r1kit.models import ModelError
from r1kit.monitoring.callbacks import TimeLimit
from r1kit.runs import RunDir, complete_checkpoints
from r1kit.stages import distill, grpo, ppo, rejection_sampling, rloo, sft
from r1kit.stages.common import StageInputs, StageOutput, setup
from r1kit.stages.evaluate import Generations, generate


def context(tmp_path: Path, *overrides: str):
    config = resolve_config(profile="test", environ={}, overrides=["--out", str(tmp_path / "run"), *overrides]).config
    return setup(config, "test")


def train_output(stage, ctx, base: str, splits) -> StageOutput:
    """A stage alone, as `r1kit <stage>` runs it: into RUN/<stage>."""
    name = stage.__name__.rsplit(".", 1)[1]
    ctx = ctx.for_stage(ctx.config, name, name)
    return stage.run(ctx, StageInputs(model=base, base=base, splits=splits))


def train(stage, ctx, base: str, splits) -> Path:
    """A training stage alone: its model folder."""
    return train_output(stage, ctx, base, splits).model


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> list[str]:
    """Weights that differ, compared in the saved dtype: a bf16 save of an untrained fp32 model differs in fp32 by
    rounding alone (15 of 20 tensors "changed" at a learning rate of 1e-30)."""
    return [name for name in before if not torch.equal(before[name].to(after[name].dtype), after[name])]


def step_records(run: RunDir, stage: str) -> list[dict]:
    return [r for r in run.read("metrics.jsonl") if r["stage"] == stage and r["kind"] == "step"]


# cosine scores wrong answers by length, so even a random model's completions get different rewards: a signal.
VARIED_REWARDS = ("--rewards.functions", "[cosine, format]", "--rewards.cosine.max_len", "64")


def test_grpo_two_steps_change_parameters_and_log_metrics(tmp_path: Path) -> None:
    ctx, base, splits = context(
        tmp_path, "--training.max_steps", "2", "--monitoring.examples_every", "2", *VARIED_REWARDS
    )
    model_dir = train(grpo, ctx, base, splits)

    assert changed(weights(Path(base)), weights(model_dir)), "GRPO did not change any weight"
    records = step_records(ctx.run, "grpo")
    assert [r["step"] for r in records] == [1, 2]
    assert all(r["grad_norm"] > 0 and r["quality/zero_advantage_share"] < 1 for r in records)  # a signal each step
    for key in (
        "loss",
        "rewards/cosine/mean",
        "rewards/cosine/std",
        "rewards/cosine/min",
        "rewards/cosine/max",
        "rewards/total/mean",
        "quality/format_rate",
        "quality/completion_tokens",
        "quality/truncated_share",
        "quality/zero_advantage_share",
        "quality/reasoning_steps",
        "perf/step_seconds",
        "perf/tokens_per_second",
        "perf/mfu",
        "perf/rss_gb",
        "rewards/cosine/timeouts",
        "rewards/cosine/exceptions",
    ):
        assert key in records[-1], key
    examples = ctx.run.read("completions.jsonl")
    assert {e["kind"] for e in examples} == {"best", "worst"}
    assert set(examples[0]["rewards"]) == {"cosine", "format"}
    # one window of two steps, shown at its end, each example with the step it was generated at
    assert {e["logged_at"] for e in examples} == {2} and {e["step"] for e in examples} <= {1, 2}
    # what the console showed, to follow with tail -f: r1kit's log lines and each step's block (seed 003)
    log = (ctx.run.root / "training.log").read_text()
    assert "r1kit test →" in log and "[grpo] step 2/2" in log, log[-2000:]
    # the final model is a plain HF folder
    loaded = AutoModelForCausalLM.from_pretrained(model_dir)
    assert loaded.num_parameters() > 0 and (model_dir / "chat_template.jinja").exists()


def test_sft_changes_parameters_and_logs_loss(tmp_path: Path) -> None:
    ctx, base, splits = context(tmp_path, "--sft.max_steps", "2")
    model_dir = train(sft, ctx, base, splits)
    assert changed(weights(Path(base)), weights(model_dir))
    records = step_records(ctx.run, "sft")
    assert [r["step"] for r in records] == [1, 2] and all("loss" in r and "mean_token_accuracy" in r for r in records)


def test_full_fine_tune_without_lora(tmp_path: Path) -> None:
    ctx, base, splits = context(
        tmp_path, "--sft.max_steps", "1", "--model.lora.enabled", "false", "--sft.optimization.warmup_ratio", "0"
    )
    model_dir = train(sft, ctx, base, splits)
    assert len(changed(weights(Path(base)), weights(model_dir))) > 5  # every layer moves, not only LoRA targets


class _Snapshots(TrainerCallback):
    def __init__(self):
        self.by_step: dict[int, dict[str, torch.Tensor]] = {}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.by_step[state.global_step] = {
            n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
        }


def test_a_non_finite_step_is_skipped_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, base, splits = context(tmp_path, "--sft.max_steps", "3", "--sft.optimization.warmup_ratio", "0")
    snapshots = _Snapshots()
    real_load, real_callbacks = sft.load_model, sft.callbacks
    calls = {"n": 0}

    def poisoned_load(*args, **kwargs):
        model = real_load(*args, **kwargs)

        def nan_on_second_step(module, inputs, output):
            if module.training and torch.is_grad_enabled():
                calls["n"] += 1
                if calls["n"] == 2:  # as a diverged model would: every output the loss may be built from is NaN
                    for name in ("loss", "logits", "log_probs"):
                        if getattr(output, name, None) is not None:
                            setattr(output, name, getattr(output, name) * float("nan"))
            return output

        model.register_forward_hook(nan_on_second_step)
        return model

    monkeypatch.setattr(sft, "load_model", poisoned_load)
    monkeypatch.setattr(sft, "callbacks", lambda *a, **k: [*real_callbacks(*a, **k), snapshots])
    train(sft, ctx, base, splits)

    step1, step2, step3 = snapshots.by_step[1], snapshots.by_step[2], snapshots.by_step[3]
    assert all(torch.equal(step1[n], step2[n]) for n in step1), "the NaN step was applied"
    assert any(not torch.equal(step2[n], step3[n]) for n in step2), "training stopped after the NaN step"
    assert all(torch.isfinite(p).all() for p in step3.values())
    assert step_records(ctx.run, "sft")[-1]["train/skipped_nonfinite_steps"] == 1
    assert any(a["kind"] == "non_finite" for a in ctx.run.read("alerts.jsonl"))
    # the checkpoints hold the count: resumed from the metrics logged before a checkpoint, a step skipped after the
    # last log went uncounted (and its alert, logged later, was cut with the logs)
    from r1kit.monitoring.callbacks import NonFiniteGuard
    from r1kit.runs import complete_checkpoints

    checkpoint = complete_checkpoints(ctx.run.checkpoints("sft"))[-1]
    assert NonFiniteGuard.resumed_from(checkpoint).skipped == 1


def test_a_forced_collapse_raises_an_alert(tmp_path: Path) -> None:
    # Strict format on a random model: every completion scores 0, every group has zero advantage.
    ctx, base, splits = context(tmp_path, "--training.max_steps", "2", "--rewards.functions", "[format]")
    train(grpo, ctx, base, splits)
    alerts = ctx.run.read("alerts.jsonl")
    assert any(a["kind"] == "zero_advantage" and a["stage"] == "grpo" for a in alerts)
    assert step_records(ctx.run, "grpo")[-1]["quality/zero_advantage_share"] == 1.0


def test_checkpoints_are_complete_plain_folders(tmp_path: Path) -> None:
    ctx, base, splits = context(
        tmp_path,
        "--training.max_steps",
        "3",
        "--training.checkpoint.save_steps",
        "1",
        "--training.checkpoint.save_total_limit",
        "2",
        *VARIED_REWARDS,
    )
    train(grpo, ctx, base, splits)
    checkpoints = sorted(p.name for p in ctx.run.checkpoints("grpo").iterdir())
    assert checkpoints == ["checkpoint-2", "checkpoint-3"]  # the newest two, each complete
    for name in checkpoints:
        folder = ctx.run.checkpoints("grpo") / name
        assert json.loads((folder / "r1kit_complete.json").read_text())["step"] == int(name.split("-")[1])
        assert (folder / "adapter_model.safetensors").exists() and (folder / "optimizer.pt").exists()
        assert (folder / "tokenizer.json").exists() and (folder / "chat_template.jinja").exists()
    assert not (ctx.run.root / "grpo" / ".staging").exists()
    # transformers loads a checkpoint directly (the base model plus the LoRA adapter saved in it)
    model = AutoModelForCausalLM.from_pretrained(ctx.run.checkpoints("grpo") / "checkpoint-3")
    assert model.num_parameters() > 0


def test_a_milestone_between_saves_is_saved_and_kept(tmp_path: Path) -> None:
    """keep_every 2 with save_steps 3 (the tutorial's every_n_steps beside save_steps): no checkpoint was written
    at steps 2 and 4, so no milestone was ever kept."""
    steps = ["--sft.max_steps", "5", "--sft.checkpoint.save_steps", "3", "--sft.checkpoint.save_total_limit", "1"]
    ctx, base, splits = context(tmp_path, *steps, "--sft.checkpoint.keep_every", "2")
    train(sft, ctx, base, splits)
    checkpoints = sorted(p.name for p in ctx.run.checkpoints("sft").iterdir())
    assert checkpoints == ["checkpoint-2", "checkpoint-4", "checkpoint-5"]  # the milestones, and the newest


def test_tensorboard_integration_writes_events(tmp_path: Path) -> None:
    ctx, base, splits = context(
        tmp_path, "--training.max_steps", "2", "--monitoring.tensorboard.enabled", "true", *VARIED_REWARDS
    )
    train(grpo, ctx, base, splits)
    assert {"train/loss", "train/perf/step_seconds", "train/quality/zero_advantage_share"} <= tensorboard_tags(
        ctx.run.root / "tensorboard" / "grpo"
    )  # r1kit's own figures too: TensorBoard's callback read each log before TrainingMonitor added them
    # r1kit's PPO wrote none: its figures, TRL's trainers' own included (format rate), under the same names
    ctx, base, splits = context(
        tmp_path / "ppo", "--ppo.max_steps", "1", "--monitoring.tensorboard.enabled", "true", *VARIED_REWARDS
    )
    train(ppo, ctx, base, splits)
    assert {"train/loss", "train/kl_coef", "train/quality/format_rate"} <= tensorboard_tags(
        ctx.run.root / "tensorboard" / "ppo"
    )
    assert "quality/format_rate" in step_records(ctx.run, "ppo")[-1]  # in metrics.jsonl: the format alert reads it


def every_other_unjudged(completions, **kwargs) -> list[float | None]:
    """A reward (for the test below) that judges every other completion: 1, none, 0, none, 1, …"""
    return [None if i % 2 else float(i % 4 == 0) for i in range(len(completions))]


def test_tensorboard_shows_the_figures_metrics_jsonl_keeps(tmp_path: Path) -> None:
    """TRL logs rewards/<name>/std of its rewards with the unjudged items at their group's mean; metrics.jsonl
    keeps r1kit's, of the judged ones: TensorBoard and W&B showed TRL's under the same name."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    reward = "tests.test_training:every_other_unjudged"
    ctx, base, splits = context(
        tmp_path,
        "--training.max_steps",
        "1",
        "--monitoring.tensorboard.enabled",
        "true",
        "--rewards.functions",
        f"[format, '{reward}']",
    )
    train(grpo, ctx, base, splits)
    kept = step_records(ctx.run, "grpo")[-1]["rewards/every_other_unjudged/std"]
    (events,) = (ctx.run.root / "tensorboard" / "grpo").rglob("events.out.tfevents.*")
    shown = EventAccumulator(str(events)).Reload().Scalars("train/rewards/every_other_unjudged/std")
    assert kept == pytest.approx(0.5, abs=0.05) and shown[-1].value == pytest.approx(kept, rel=1e-5)


def test_the_configs_wandb_project_wins_over_the_shells(tmp_path: Path, monkeypatch) -> None:
    """`--wandb_project` set WANDB_PROJECT only where the shell had not: an exported one won over the command line."""
    from r1kit.stages.common import trainer_arguments

    for project, expected in ((["--monitoring.wandb.project", "mine"], "mine"), ([], "exported")):
        monkeypatch.setenv("WANDB_PROJECT", "exported")
        ctx, base, _ = context(tmp_path, "--monitoring.wandb.enabled", "true", *project)
        ctx = ctx.for_stage(ctx.config, "sft", "sft")
        trainer_arguments(ctx, ctx.config.sft, AutoModelForCausalLM.from_pretrained(base))
        assert os.environ["WANDB_PROJECT"] == expected
    # commands in one process (a notebook's cells): the next one without a project had the last one's
    monkeypatch.delenv("WANDB_PROJECT")
    for project, expected in ((["--monitoring.wandb.project", "mine"], "mine"), ([], "r1kit")):
        ctx, base, _ = context(tmp_path, "--monitoring.wandb.enabled", "true", *project)
        ctx = ctx.for_stage(ctx.config, "sft", "sft")
        trainer_arguments(ctx, ctx.config.sft, AutoModelForCausalLM.from_pretrained(base))
        assert os.environ["WANDB_PROJECT"] == expected


def tensorboard_tags(folder: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events in folder.rglob("events.out.tfevents.*"):
        tags |= set(EventAccumulator(str(events)).Reload().Tags()["scalars"])
    return tags


def test_the_steps_after_the_last_logging_step_are_logged(tmp_path: Path) -> None:
    """With logging_steps 2, a 3-step stage logged step 2 alone, and one stopped by its time limit at step 1 nothing:
    the last steps' figures never reached metrics.jsonl, the alerts or the report."""
    ctx, base, splits = context(tmp_path, "--training.max_steps", "3", "--monitoring.logging_steps", "2")
    train(grpo, ctx, base, splits)
    assert [r["step"] for r in step_records(ctx.run, "grpo")] == [2, 3]
    limited = ("--sft.max_steps", "50", "--sft.time_limit_minutes", "0.00001", "--monitoring.logging_steps", "2")
    ctx, base, splits = context(tmp_path / "limited", *limited)
    train(sft, ctx, base, splits)
    assert [r["step"] for r in step_records(ctx.run, "sft")] == [1]


def test_a_time_limit_stops_training_with_a_checkpoint_that_keeps_the_time_spent(tmp_path: Path) -> None:
    # 0.6 ms: the limit is reached within the first step, which still completes and is saved (no warm-up: the first
    # step's learning rate would be 0, and only a bf16 save's rounding would tell the weights apart)
    ctx, base, splits = context(
        tmp_path, "--sft.max_steps", "50", "--sft.time_limit_minutes", "0.00001", "--sft.optimization.warmup_ratio", "0"
    )
    model_dir = train(sft, ctx, base, splits)
    assert [r["step"] for r in step_records(ctx.run, "sft")] == [1]
    assert changed(weights(Path(base)), weights(model_dir))
    checkpoint = ctx.run.checkpoints("sft") / "checkpoint-1"
    spent = json.loads((checkpoint / TimeLimit.FILE).read_text())["seconds"]
    assert spent > 0
    # a resumed run starts its clock from what the interrupted one had spent
    assert TimeLimit.resumed_from(5.0, checkpoint).spent() >= spent
    assert TimeLimit.resumed_from(5.0, None).spent() == 0.0
    # killed after the limit's checkpoint, before the model was saved: the resume trains no step past the limit
    saved = weights(model_dir)
    shutil.rmtree(model_dir)
    assert changed(saved, weights(train(sft, ctx, base, splits))) == []
    assert [r["step"] for r in step_records(ctx.run, "sft")] == [1]


def test_distill_trains_the_student_on_the_teachers_verified_traces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    # A random model never answers right, so the teacher is made to: full fine-tuning memorises one worked problem.
    data = tmp_path / "one_problem.jsonl"
    data.write_text((json.dumps({"question": "What is 2 + 3?", "answer": "2 + 3 = 5\n#### 5"}) + "\n") * 12)
    held_out = tmp_path / "held_out.jsonl"  # a problem's rows are held out whole: another problem to score
    held_out.write_text(json.dumps({"question": "What is 1 + 1?", "answer": "1 + 1 = 2\n#### 2"}) + "\n")
    ctx, base, splits = context(
        tmp_path,
        "--data", str(data),
        "--dataset.test_split", str(held_out),
        "--model.lora.enabled", "false",
        "--sft.max_steps", "80",
        "--sft.optimization.learning_rate", "1e-2",
        "--sft.optimization.lr_scheduler", "constant",
        "--sft.optimization.warmup_ratio", "0",
        "--distill.max_prompts", "1",
        "--distill.max_new_tokens", "32",
        "--distill.temperature", "0.05",
        "--distill.student", "cold",  # an earlier stage of the recipe, by its name (was looked up as a hub id)
    )  # fmt: skip
    teacher = train(sft, ctx, base, splits)
    # the student fine-tunes 2 steps on the trace (its 80 steps, the teacher's memorising, took most of a minute)
    student_steps = ctx.config.sft.model_copy(update={"max_steps": 2})
    ctx = ctx.for_stage(ctx.config.model_copy(update={"sft": student_steps}), "distill", "distill")
    earlier = {"cold": StageOutput(model=Path(base))}  # the stage named, whose model is the untouched base here
    output = distill.run(ctx, StageInputs(model=str(teacher), base=str(teacher), splits=splits, earlier=earlier))

    assert output.metrics["teacher_rows"] == 1 and output.metrics["teacher_acceptance"] == 1.0
    kept = [json.loads(line) for line in Path(output.dataset).read_text(encoding="utf-8").splitlines()]
    assert [(row["reasoning"], row["solution"], row["source"]) for row in kept] == [("2 + 3 = 5", "5", "distill")]
    # the student is the untouched base model, fine-tuned on that trace
    assert output.model is not None and changed(weights(Path(base)), weights(Path(output.model)))

    # resumed after a kill while the student trained: on the traces it had, not sampled again by the teacher
    (ctx.dir / "model").rename(ctx.dir / "model_before")
    monkeypatch.setattr(distill, "best_verified", lambda *a, **k: pytest.fail("the teacher sampled again"))
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        again = distill.run(ctx, StageInputs(model=str(teacher), base=str(teacher), splits=splits, earlier=earlier))
    assert "distill: resuming on the 1 teacher traces sampled before" in caplog.text
    assert again.metrics["teacher_rows"] == 1 and again.metrics["teacher_acceptance"] == 1.0
    # killed before the student's first checkpoint: the same (the teacher sampled again); its traces' statistics
    # written before the share over all problems was apart from the groups (it failed after the student trained)
    shutil.rmtree(ctx.dir / "model")
    shutil.rmtree(ctx.run.checkpoints(ctx.folder))
    saved = json.loads((ctx.dir / "stats.json").read_text())
    all_problems = {"problem_acceptance_by_group": {"all": saved.pop("problem_acceptance")}}
    (ctx.dir / "stats.json").write_text(json.dumps(saved | all_problems))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        again = distill.run(ctx, StageInputs(model=str(teacher), base=str(teacher), splits=splits, earlier=earlier))
    assert "distill: resuming on the 1 teacher traces sampled before" in caplog.text
    assert again.metrics["teacher_acceptance"] == 1.0
    # other sampling settings (a --resume that changed them), or another teacher: its traces are sampled again
    hotter = ctx.config.model_copy(update={"distill": ctx.config.distill.model_copy(update={"temperature": 0.9})})
    for config, model in ((hotter, teacher), (ctx.config, ctx.dir / "model_before")):  # the last: another model
        with pytest.raises(pytest.fail.Exception, match="the teacher sampled again"):
            distill.run(ctx.for_stage(config, "distill", "distill"),
                        StageInputs(model=str(model), base=str(model), splits=splits, earlier=earlier))  # fmt: skip


def test_checkpoints_of_other_training_rows_are_not_gone_on_from(tmp_path: Path, caplog) -> None:
    """`--resume` with new sft2 data settings (general_dataset, general_ratio) went on from the checkpoints of the old
    rows and recorded the new mix; distillation's new traces likewise (its student's checkpoints)."""
    ctx, base, splits = context(tmp_path, "--sft.max_steps", "2", "--sft.checkpoint.save_steps", "1")
    rows = sft_rows(splits.train, ctx.config.prompt.system)
    sft.train(ctx, base, rows, splits.test)
    shutil.rmtree(ctx.run.model_dir(ctx.folder))  # killed after its last checkpoint, before the model was saved
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        sft.train(ctx, base, rows, splits.test)  # the same rows: its checkpoint stands
    assert "resuming from" in caplog.text and "rows changed" not in caplog.text
    shutil.rmtree(ctx.run.model_dir(ctx.folder))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        sft.train(ctx, base, rows.select(range(len(rows) // 2)), splits.test)
    assert f"{ctx.stage}: its training rows changed since its checkpoints; it starts again from step 0" in caplog.text
    assert "resuming from" not in caplog.text
    assert [p.name for p in complete_checkpoints(ctx.run.checkpoints(ctx.folder))] == ["checkpoint-1", "checkpoint-2"]
    # the same model copied elsewhere (a node's local disk): its checkpoints stand
    shutil.rmtree(ctx.run.model_dir(ctx.folder))
    copied = shutil.copytree(base, tmp_path / "copied")
    half = rows.select(range(len(rows) // 2))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        sft.train(ctx, str(copied), half, splits.test)
    assert "resuming from" in caplog.text and "changed" not in caplog.text
    # the same rows, another model (`r1kit distill --resume --distill.student …`): the old student's steps went on
    shutil.rmtree(ctx.run.model_dir(ctx.folder))
    other = AutoModelForCausalLM.from_pretrained(base)
    torch.nn.init.normal_(other.get_output_embeddings().weight)
    other.save_pretrained(shutil.copytree(base, tmp_path / "other_student"))  # its tokenizer, other weights
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        sft.train(ctx, str(tmp_path / "other_student"), half, splits.test)
    assert f"{ctx.stage}: its training model changed since its checkpoints" in caplog.text
    assert "resuming from" not in caplog.text
    # a record of an earlier r1kit named the model by its path: not compared, the checkpoints kept
    shutil.rmtree(ctx.run.model_dir(ctx.folder))
    record = ctx.dir / "checkpoints_trained_on.json"
    record.write_text(
        json.dumps({"rows": json.loads(record.read_text())["rows"], "model": str(tmp_path / "elsewhere")})
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        sft.train(ctx, str(tmp_path / "other_student"), half, splits.test)
    assert "resuming from" in caplog.text and "changed" not in caplog.text


def test_a_recipe_s_distillation_whose_teacher_fell_back_to_its_student_makes_no_model(tmp_path: Path, caplog) -> None:
    """`--distill.student reasoning_rl` under the r1 recipe passed the plan (sft2 would teach), then sft2 made no model,
    the teacher fell back to reasoning_rl and the run failed at its last stage, its summary gone."""
    ctx, base, splits = context(tmp_path, "--distill.student", "reasoning_rl")
    ctx = ctx.for_stage(ctx.config, "distill", "distill")
    earlier = {"reasoning_rl": StageOutput(model=Path(base)), "sft2": StageOutput()}
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        output = distill.run(ctx, StageInputs(model=base, base=base, splits=splits, earlier=earlier))
    assert output.model is None and output.metrics["teacher_rows"] == 0
    assert "distill: its teacher is its student itself" in caplog.text


def test_a_student_named_by_a_stage_must_be_an_earlier_model(tmp_path: Path) -> None:
    from r1kit.pipeline import _check_stage_references

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("stages: [{name: sft}, {name: distill, config: {distill: {student: grpo}}}, {name: grpo}]\n")
    config = resolve_config(recipe=str(recipe), environ={}).config
    with pytest.raises(
        ConfigError, match=r"distill.student 'grpo': .* a stage of this recipe that makes a model \(sft\)"
    ):
        _check_stage_references(config)
    # its teacher (the latest model before it, or its model_from) was refused only once distillation started
    for stages, teacher in (
        ("[{name: sft}, {name: grpo}, {name: distill, config: {distill: {student: grpo}}}]", "grpo"),
        ("[{name: sft}, {name: grpo}, {name: distill, model_from: sft, config: {distill: {student: sft}}}]", "sft"),
    ):
        recipe.write_text(f"stages: {stages}\n")
        config = resolve_config(recipe=str(recipe), environ={}).config
        with pytest.raises(ConfigError, match=rf"distill.student '{teacher}' is its teacher .* itself"):
            _check_stage_references(config)
    recipe.write_text("stages: [{name: sft}, {name: grpo}, {name: distill, config: {distill: {student: sft}}}]\n")
    _check_stage_references(resolve_config(recipe=str(recipe), environ={}).config)  # an earlier model: a student
    # found only once the stages before it had trained (and the teacher had sampled): a misspelt stage, loaded as a
    # hub id; the base model as the default student where no stage before it makes a model (it is the teacher)
    for stages, message in (
        ("[{name: sft}, {name: distill, config: {distill: {student: sfft}}}]", r"distill.student 'sfft': .* \(sft\)"),
        ("[{name: cold_start}, {name: distill}]", r"distill.student \(unset: the run's base model\) is its teacher"),
    ):
        recipe.write_text(f"stages: {stages}\n")
        with pytest.raises(ConfigError, match=rf"stages: distill: {message}"):
            _check_stage_references(resolve_config(recipe=str(recipe), environ={}).config)
    for student in ("tiny-random", "gpt2", "runs/a:sft"):  # a built-in model, a hub id without a slash, RUN:STAGE
        recipe.write_text(
            f"stages: [{{name: sft}}, {{name: distill, config: {{distill: {{student: '{student}'}}}}}}]\n"
        )
        _check_stage_references(resolve_config(recipe=str(recipe), environ={}).config)


def test_the_student_or_model_refined_named_base_or_by_a_stage_that_made_none(tmp_path: Path) -> None:
    """`distill.student: base` (as `model_from: base` reads) was loaded as a hub id named "base", once every stage
    before it had trained and the teacher had sampled."""
    from r1kit.runs import RunDirError
    from r1kit.stages.common import model_named, student_of

    ctx, base, splits = context(tmp_path)
    inputs = StageInputs(
        model="the/teacher", base=str(base), splits=splits, earlier={"sft": StageOutput(model=Path(base))}
    )
    assert student_of("base", inputs, ctx.config) == str(base)
    assert model_named("base", inputs, ctx.config, "cold_start.refine_from") == str(base)
    # a stage that kept nothing to train on made no model: "unexpected error (a bug …): ValueError", after training
    inputs.earlier["sft"] = StageOutput()
    with pytest.raises(RunDirError, match=r"distill\.student: stage 'sft' made no model in this run"):
        student_of("sft", inputs, ctx.config)


def test_a_named_student_is_checked_before_any_work(tiny_model: Path, tmp_path: Path) -> None:
    """A student without a chat template (or a hub id offline) failed once the stages before it had trained and the
    teacher had sampled: the remedy the error names, the run-wide model.chat_template, then changed the first stage."""
    import shutil

    from r1kit.models import ModelError
    from r1kit.pipeline import run

    student = shutil.copytree(tiny_model, tmp_path / "student")
    (student / "chat_template.jinja").unlink(missing_ok=True)
    settings = json.loads((student / "tokenizer_config.json").read_text())
    settings.pop("chat_template", None)
    (student / "tokenizer_config.json").write_text(json.dumps(settings))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"stages: [{{name: sft}}, {{name: distill, config: {{distill: {{student: '{student}'}}}}}}]\n")
    out = tmp_path / "run"
    config = resolve_config(recipe=str(recipe), profile="test", overrides=["--out", str(out)], environ={}).config
    with pytest.raises(ModelError, match="has no chat template"):
        run(config)
    assert not (out / "01_sft").exists()
    run(config, only="sft")  # a stage the command does not run is not checked (offline, its student may be away)
    assert (out / "01_sft" / "model").exists()
    # a complete stage that will be redone (its config changed: here none recorded) is checked
    (out / "02_distill").mkdir()
    (out / "02_distill" / "manifest.json").write_text(json.dumps({"status": "complete", "fingerprint": None}))
    with pytest.raises(ModelError, match="has no chat template"):
        run(config)
    from r1kit.pipeline import check_inputs

    check_inputs(config, only="sft")  # a stage --only leaves aside is not read, however odd its manifest
    with pytest.raises(ModelError, match="cannot load model 'no-such-org/student'"):  # a stage alone, a hub id offline
        distill.main(
            resolve_config(
                profile="test",
                overrides=["--distill.student", "no-such-org/student", "--out", str(tmp_path / "alone")],
                environ={},
            ).config
        )


def test_the_model_cold_start_refines_may_be_an_earlier_stages(tmp_path: Path) -> None:
    """The paper's flow (R1-Zero's outputs refined into cold-start data) passed every check with the stage's name,
    then failed once the stages before it had trained: the name was loaded as a hub id. A misspelt one too."""
    from r1kit import pipeline

    recipe = tmp_path / "recipe.yaml"
    refines = "{name: cold_start, model_from: base, config: {cold_start: {methods: [refine], refine_from: %s}}}"
    recipe.write_text(f"stages: [{{name: zero, kind: grpo}}, {refines % 'zerro'}]\n")
    config = resolve_config(recipe=str(recipe), profile="test", environ={}).config
    with pytest.raises(ConfigError, match=r"cold_start.refine_from 'zerro': .* makes a model \(zero\)"):
        pipeline.run(config)
    recipe.write_text(f"stages: [{{name: zero, kind: grpo}}, {refines % 'zero'}]\n")
    out = tmp_path / "run"
    overrides = ["--out", str(out), "--training.max_steps", "1", "--cold_start.max_prompts", "2"]
    pipeline.run(resolve_config(recipe=str(recipe), profile="test", overrides=overrides, environ={}).config)
    manifest = json.loads((out / "02_cold_start" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and "zero.model" in manifest["fingerprint"]["inputs"]


def test_distill_alone_without_a_student_would_train_the_teacher_and_is_refused(tmp_path: Path) -> None:
    """Run alone, the run's base model is model.name, the teacher: it was fine-tuned on its own traces. Refused
    before the stage's folder is touched: it was refused inside the stage, once a redo had cleared its folder."""
    config = resolve_config(profile="test", environ={}, overrides=["--out", str(tmp_path / "run")]).config
    with pytest.raises(ModelError, match=r"the student would be the teacher itself.*set distill.student"):
        distill.main(config)
    assert not (tmp_path / "run" / "distill").exists()  # no manifest, no trace sampled


def test_distill_whose_student_is_the_teacher_s_folder_written_another_way_is_refused(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--model.name teacher --distill.student /full/path/to/teacher` sampled the teacher and trained it on its own
    traces: the two references were compared as text."""
    shutil.copytree(tiny_model, tmp_path / "teacher")
    monkeypatch.chdir(tmp_path)
    for student in (str(tmp_path / "teacher"), "./teacher/"):
        overrides = ["--out", str(tmp_path / "run"), "--model.name", "teacher", "--distill.student", student]
        config = resolve_config(profile="test", environ={}, overrides=overrides).config
        with pytest.raises(ModelError, match=r"the student would be the teacher itself"):
            distill.main(config)
        assert not (tmp_path / "run" / "distill").exists()


def test_a_stage_alone_that_makes_no_model_fails(tmp_path: Path, tiny_model: Path) -> None:
    """`r1kit distill` whose teacher kept no trace ended complete, with exit code 0 and no student."""
    student = shutil.copytree(tiny_model, tmp_path / "student")
    overrides = ["--out", str(tmp_path / "run"), "--distill.max_prompts", "2", "--distill.max_new_tokens", "8"]
    overrides += ["--distill.student", str(student)]
    config = resolve_config(profile="test", environ={}, overrides=overrides).config
    for _ in range(2):  # and the same command again, which finds the stage complete
        with pytest.raises(DatasetError, match="distill made no model: it kept nothing to train on"):
            distill.main(config)


def sums_data(folder: Path) -> Path:
    """Twelve problems `What is i + 2?` with their answers, which a teacher stub answers from the question."""
    data = folder / "sums.jsonl"
    data.write_text(
        "".join(json.dumps({"question": f"What is {i} + 2?", "solution": str(i + 2)}) + "\n" for i in range(12))
    )
    return data


def test_distill_reads_a_teacher_that_answers_after_its_thinking(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An R1-Distill teacher writes its answer after </think> (boxed): every right trace was `malformed`, and the
    stage made no model. (A tiny model writes no such trace: the teacher's samples are given.)"""
    from r1kit.stages import traces

    def teacher(ctx, model_reference, prompts, settings, desc):
        answers = [re.search(r"What is (\d+) \+ (\d+)", p[-1]["content"]) for p in prompts]
        texts = [
            [f"<think>\nAdding gives {int(a[1]) + int(a[2])}.\n</think>\n\n\\boxed{{{int(a[1]) + int(a[2])}}}"]
            for a in answers
        ]
        return Generations(texts, [[9]] * len(texts), [[False]] * len(texts), [0] * len(texts))

    monkeypatch.setattr(traces, "sample", teacher)
    data = sums_data(tmp_path)
    student = shutil.copytree(tiny_model, tmp_path / "student")
    ctx, base, splits = context(
        tmp_path, "--data", str(data), "--distill.student", str(student), "--sft.max_steps", "1"
    )
    ctx = ctx.for_stage(ctx.config, "distill", "distill")
    output = distill.run(ctx, StageInputs(model=base, base=base, splits=splits))
    assert output.metrics["teacher_acceptance"] == 1.0 and output.model is not None


def test_a_student_whose_template_drops_the_reasoning_is_refused_before_sampling_and_may_have_its_own(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An R1-Distill-like student was refused only inside its SFT, after the teacher had sampled every problem (in the
    r1 recipe, after every stage before), and the advice, model.chat_template, re-templated the teacher too."""
    from r1kit.stages import traces
    from tests.test_rlhf import DISTILL_LIKE_TEMPLATE

    asked = []

    def teacher(ctx, model_reference, prompts, settings, desc):
        asked.append(ctx.config.model.chat_template)
        sums = [int(re.search(r"What is (\d+) \+ 2", p[-1]["content"])[1]) + 2 for p in prompts]
        texts = [[f"<think>\nAdding gives {n}.\n</think>\n<answer>{n}</answer>"] for n in sums]
        return Generations(texts, [[9]] * len(texts), [[False]] * len(texts), [0] * len(texts))

    monkeypatch.setattr(traces, "sample", teacher)
    data = sums_data(tmp_path)
    student = shutil.copytree(tiny_model, tmp_path / "student")
    settings = json.loads((student / "tokenizer_config.json").read_text()) | {"chat_template": DISTILL_LIKE_TEMPLATE}
    (student / "tokenizer_config.json").write_text(json.dumps(settings))
    (student / "chat_template.jinja").unlink(missing_ok=True)
    overrides = ["--out", str(tmp_path / "run"), "--data", str(data), "--distill.student", str(student)]
    overrides += ["--sft.max_steps", "1"]
    config = resolve_config(profile="test", environ={}, overrides=overrides).config
    with pytest.raises(ModelError, match=r"distill: the chat template of .* set distill.student_chat_template=chatml"):
        distill.main(config)
    assert asked == []  # before the teacher sampled anything
    config = resolve_config(
        profile="test", environ={}, overrides=[*overrides, "--distill.student_chat_template", "chatml"]
    ).config
    output = distill.main(config)
    assert output.model is not None and asked == [None]  # the teacher asked with its own template


def test_sft_of_chat_replies_through_a_template_that_opens_thinking_is_refused(
    tmp_path: Path, tiny_model: Path
) -> None:
    """Seed 000's model and data: an R1-Distill template (its generation prompt opens <think>) and smoltalk's replies.
    TRL left the opening out of the training sequence; chat then showed every reply as thinking never closed, and
    evaluation's ROUGE-L read no answer."""
    from tests.test_rlhf import DISTILL_LIKE_TEMPLATE

    model = shutil.copytree(tiny_model, tmp_path / "distill_like")
    settings = json.loads((model / "tokenizer_config.json").read_text()) | {"chat_template": DISTILL_LIKE_TEMPLATE}
    (model / "tokenizer_config.json").write_text(json.dumps(settings))
    (model / "chat_template.jinja").unlink(missing_ok=True)
    chat = tmp_path / "chat.jsonl"
    turns = [
        [{"role": "user", "content": f"Hi {i}!"}, {"role": "assistant", "content": f"Hello {i}."}] for i in range(8)
    ]
    chat.write_text("".join(json.dumps({"messages": turn}) + "\n" for turn in turns))
    overrides = ["--model.name", str(model), "--data", str(chat), "--sft.max_steps", "1", "--out", str(tmp_path / "r")]
    config = resolve_config(profile="test", environ={}, overrides=overrides).config
    with pytest.raises(ModelError, match=r"sft: the chat template of .* opens <think> at the start of every reply"):
        sft.main(config)
    chatml = resolve_config(profile="test", environ={}, overrides=[*overrides, "--model.chat_template", "chatml"])
    assert sft.main(chatml.config).model is not None  # the way the message names


def test_sft_says_how_many_rows_the_length_limit_cuts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """TRL cut long worked solutions at sft.max_length, <answer> and all, without a word (a fifth of GSM8K at 256)."""
    ctx, base, splits = context(tmp_path, "--sft.max_steps", "1", "--sft.max_length", "140")
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        output = sft.run(ctx.for_stage(ctx.config, "sft", "sft"), StageInputs(model=base, base=base, splits=splits))
    assert re.search(r"sft: \d+ of \d+ rows are longer than sft.max_length \(140 tokens\): \d+ are cut", caplog.text)
    figures = output.metrics  # the manifest's: rows dropped at the limit are not counted as trained
    assert figures["rows_cut"] > 0 and figures["train_rows"] == len(splits.train) - figures["rows_dropped"]


def test_a_row_that_fits_the_length_limit_exactly_is_not_counted_as_cut() -> None:
    """TRL leaves no trace of a row's length before truncation, and a row of exactly sft.max_length tokens, its end
    of turn included, was counted as cut ("its answer is not learned")."""
    from datasets import Dataset

    from r1kit.stages.sft import _say_what_the_length_limit_cut

    end = [7, 9]  # the template's end of turn, as every row that fits ends
    prepared = Dataset.from_dict({"input_ids": [[1, 2, *end], [3, *end], [4, 5, 6, 8], [1, *end]]})
    rows = Dataset.from_dict({"text": ["a"] * 5})  # one dropped by TRL
    assert _say_what_the_length_limit_cut(rows, prepared, 4) == {"rows_cut": 1, "rows_dropped": 1}


def test_a_stage_alone_after_a_start_that_failed_early_does_not_speak_of_redoing_work(tmp_path: Path, caplog) -> None:
    """After "a failed start ... starting over", the stage said its inputs "changed since its work; redoing it"."""
    from r1kit.stages.common import stage_main

    overrides = ["--out", str(tmp_path / "run"), "--sft.max_steps", "1"]
    config = resolve_config(profile="test", environ={}, overrides=overrides).config
    (tmp_path / "run" / "sft").mkdir(parents=True)  # the manifest a start with other settings left, and no checkpoint
    (tmp_path / "run" / "sft" / "manifest.json").write_text(json.dumps({"status": "running", "settings": {}}))
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        stage_main(config, "sft", sft.run)
    assert "changed since its work" not in caplog.text and (tmp_path / "run" / "sft" / "model").exists()


def test_a_max_length_that_leaves_no_row_is_a_clear_error(tmp_path: Path) -> None:
    """SFT (and DPO, the reward model) with every row over max_length stopped with "unexpected error: num_samples=0"."""
    ctx, base, splits = context(tmp_path, "--sft.max_steps", "1", "--sft.max_length", "16")
    with pytest.raises(DatasetError, match=r"sft: no training row is left: .* \(sft.max_length for SFT"):
        train(sft, ctx, base, splits)


@pytest.mark.parametrize("kind", ["reward_model", "dpo"])
def test_pairs_over_max_length_are_said_and_not_counted_as_trained(kind: str, tmp_path: Path, caplog) -> None:
    """TRL leaves out a pair longer than max_length without a word; the manifest counted it among train_pairs."""
    from r1kit.stages import dpo, reward_model

    long_prompt = "Q? " + "word " * 120
    rows = [
        {"prompt": long_prompt if i % 2 else f"Q{i}?", "chosen": f"good answer {i}", "rejected": f"bad {i}"}
        for i in range(12)
    ]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    overrides = ("--preferences.dataset", str(pairs), f"--{kind}.max_length", "48", f"--{kind}.max_steps", "1")
    ctx, base, splits = context(tmp_path, *overrides)
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        output = train_output({"dpo": dpo, "reward_model": reward_model}[kind], ctx, base, splits)
    said = re.search(
        rf"{kind}: (\d+) of its (\d+) training pairs do not fit in {kind}.max_length \(48 tokens\)", caplog.text
    )
    left_out, given = int(said.group(1)), int(said.group(2))
    assert given == 9 and left_out > 0  # 12 pairs, 3 held out
    assert output.metrics["train_pairs"] == given - left_out


def test_cold_start_draws_its_rows_over_sorted_data_and_samples_only_problems_with_gold(tmp_path: Path, caplog) -> None:
    """cold_start.max_rows kept the first rows (of data sorted by level: one level alone; of several methods: the
    converted solutions alone), and the problems the model was sampled on included rows without a gold answer, whose
    samples could never be kept."""
    from r1kit.data.synthetic import generate
    from r1kit.stages import cold_start

    problems = sorted(generate("arithmetic", 60, seed=3), key=lambda row: row["level"])
    replies = [f"<think>\n{p['reasoning']}\n</think>\n<answer>{p['solution']}</answer>" for p in problems]
    rows = [[{"role": "user", "content": p["question"]}, {"role": "assistant", "content": r}] for p, r in
            zip(problems, replies, strict=True)]  # fmt: skip
    for i in range(0, 60, 2):  # chat rows: nothing to verify a sample against
        rows[i][1]["content"] = "Blue."
    data, held_out = tmp_path / "sorted.jsonl", tmp_path / "held_out.jsonl"  # a held-out file keeps the order
    data.write_text("".join(json.dumps({"messages": row}) + "\n" for row in rows))
    held_out.write_text(json.dumps({"question": "What is 1 + 1?", "solution": "2"}) + "\n")
    overrides = (
        "--data",
        str(data),
        "--dataset.test_split",
        str(held_out),
        "--cold_start.methods",
        "[convert, direct]",
    )
    ctx, base, splits = context(tmp_path, *overrides, "--cold_start.max_rows", "10", "--cold_start.max_prompts", "8")
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        output = train_output(cold_start, ctx, base, splits)
    kept = [json.loads(line)["question"] for line in output.dataset.read_text().splitlines()]
    levels = {p["question"]: p["level"] for p in problems}
    assert len(kept) == 10 and len({levels[question] for question in kept}) >= 3  # was: the first two levels
    # direct sampled problems with a gold answer only (the tiny model's samples are cut at the limit, never judged)
    assert "cold_start: 30 of 60 training rows have no gold answer to verify traces against; left out" in caplog.text


def test_evaluation_during_sft_on_chat_data_gives_the_replies_perplexity(tmp_path: Path, caplog) -> None:
    """Chat data has no gold answers: each evaluation inside SFT printed "pass@1 n/a · format 0%" after generating
    for nothing. It now scores the held-out replies' perplexity (math data gets it beside pass@1) and draws it."""
    from r1kit.monitoring.report import write_report

    chat = tmp_path / "chat.jsonl"
    turns = [
        [{"role": "user", "content": f"Name colour {i}."}, {"role": "assistant", "content": "Blue."}] for i in range(12)
    ]
    chat.write_text("".join(json.dumps({"messages": row}) + "\n" for row in turns))
    every = ("--sft.max_steps", "2", "--evaluation.every_steps", "1", "--prompt.system", "Be brief.")
    ctx, base, splits = context(tmp_path, "--data", str(chat), *every)
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        train(sft, ctx, base, splits)
    during = [r for r in ctx.run.read("metrics.jsonl") if r["kind"] == "eval"]
    assert [r["step"] for r in during] == [1, 2] and all(r["eval/perplexity"] > 1 for r in during)
    assert not any("eval/accuracy" in r for r in during)  # nothing generated to be scored against no gold
    assert re.search(r"eval    \[sft step 1\] held-out perplexity [\d.e+]+ · \d+ problems", caplog.text)
    page = write_report(ctx.run.root).read_text()
    assert "Held-out perplexity" in page and "Held-out during training" not in page

    ctx, base, splits = context(tmp_path / "math", *every[:4])  # the built-in task: both
    train(sft, ctx, base, splits)
    during = [r for r in ctx.run.read("metrics.jsonl") if r["kind"] == "eval"]
    assert all("eval/accuracy" in r and r["eval/perplexity"] > 1 for r in during)


def test_sft2_without_a_reasoning_trace_makes_no_model(tmp_path: Path, caplog) -> None:
    """Rejection sampling that kept no trace left sft2 fine-tuning the reasoning model on 8 chat rows alone (first
    without a word, then with one): that model went on to be distillation's teacher and the run's final model."""
    from r1kit.stages import sft2

    chat = tmp_path / "chat.jsonl"
    chat.write_text("".join(json.dumps({"instruction": f"Say hi {i}.", "response": "Hi."}) + "\n" for i in range(8)))
    ctx, base, splits = context(tmp_path, "--sft2.general_dataset", str(chat), "--sft.max_steps", "1")
    no_traces = splits.train.select([])
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        output = sft2.run(
            ctx.for_stage(ctx.config, "sft2", "sft2"),
            StageInputs(model=base, base=base, splits=replace(splits, train=no_traces)),
        )
    assert output.model is None and output.metrics == {"reasoning_rows": 0, "general_rows": 0}
    assert "sft2: no reasoning trace to train on (none in its data); the model goes on unchanged" in caplog.text


def test_sft2_general_data_leaves_out_held_out_problems_and_reasoning_replies(tmp_path: Path, caplog) -> None:
    """sft2.general_dataset was read whole: a chat dump holding a held-out problem trained on it, and a reply in
    <think>/<answer> tags was trained under the general prompt, which asks for none."""
    from r1kit.stages import sft2

    chat = tmp_path / "chat.jsonl"
    ctx, base, splits = context(tmp_path, "--sft2.general_dataset", str(chat))
    held_out = splits.test["question"][0]
    rows = [{"instruction": f"Say hi {i}.", "response": "Hi."} for i in range(8)]
    rows += [{"instruction": held_out, "response": "It is 7."}, {"instruction": "Add 2 and 5.", "response": R1_REPLY}]
    chat.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        pairs = sft2._general_rows(ctx, StageInputs(model=base, base=base, splits=splits), wanted=10)
    assert sorted(q for q, _ in pairs) == sorted(f"Say hi {i}." for i in range(8))
    assert f"sft2.general_dataset {chat}: 2 of its 10 replies left out" in caplog.text


R1_REPLY = "<think>2 + 5 = 7</think><answer>7</answer>"


# DeepSeek-R1-Distill's template ends its generation prompt with "<think>\n": the model writes the rest of the block
R1_DISTILL_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)


@pytest.mark.parametrize("stage", [grpo, rloo, ppo], ids=["grpo", "rloo", "ppo"])
def test_rewards_read_the_think_a_chat_template_opened(tmp_path: Path, stage) -> None:
    """The generated text starts inside the block the template opened: read without it, the strict format scored
    every completion 0. tag_count gives 0.25 for the one <think> the random model's replies then hold."""
    name = stage.__name__.rsplit(".", 1)[1]
    ctx, base, splits = context(
        tmp_path,
        *("--model.chat_template", R1_DISTILL_TEMPLATE, "--rewards.functions", "[tag_count]"),
        *("--training.max_steps" if name == "grpo" else f"--{name}.max_steps", "1"),
    )
    train(stage, ctx, base, splits)
    records = step_records(ctx.run, name)
    assert records and all(r["rewards/tag_count/mean"] >= 0.25 for r in records)
    assert all(e["completion"].startswith("<think>\n") for e in ctx.run.read("completions.jsonl"))


def test_evaluation_reads_the_think_a_chat_template_opened(tiny_model: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.chat_template = R1_DISTILL_TEMPLATE
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    prompts = [[{"role": "user", "content": "What is 2 + 2?"}], [{"role": "user", "content": "What is 3 + 4?"}]]
    out = generate(
        model, tokenizer, prompts, max_new_tokens=4, batch_size=2, samples=2, temperature=1.0, progress=False
    )
    assert [len(texts) for texts in out.texts] == [2, 2]
    assert all(text.startswith("<think>\n") for texts in out.texts for text in texts)
    assert all(n <= 4 for lengths in out.lengths for n in lengths)  # the opening is not counted as generated


def test_near_the_context_end_a_short_prompts_reply_is_not_cut_to_its_batchs_longest(tiny_model: Path, caplog) -> None:
    """With little context left (GPT-2's 1024 positions, a long max_new_tokens), a batch's replies were all cut to
    the room its longest prompt left: a short prompt's reply, its truncation and verdict depended on its batch, and
    every prompt of the batch was counted as cut."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    short = [{"role": "user", "content": "What is 2 + 3?"}]
    long = [{"role": "user", "content": "What is 2 + 3? " + "Add the numbers and show every step. " * 6}]
    width = len(tokenizer.apply_chat_template(long, add_generation_prompt=True, return_dict=True)["input_ids"])
    model.config.max_position_embeddings = width + 20
    alone = generate(model, tokenizer, [short], max_new_tokens=40, batch_size=1, progress=False)
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        together = generate(model, tokenizer, [short, long], max_new_tokens=40, batch_size=2, progress=False)
    assert together.texts[0] == alone.texts[0] and together.lengths[0] == alone.lengths[0] == [40]
    assert together.lengths[1][0] <= 20
    assert "1 prompt left fewer than max_new_tokens (40)" in caplog.text


def greedy_texts(model, tokenizer, max_new_tokens: int = 12) -> Generations:
    prompts = [[{"role": "user", "content": f"What is {n} + {n}?"}] for n in range(3)]
    return generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=3, progress=False)


def test_greedy_evaluation_takes_none_of_the_models_own_generation_settings(tiny_model: Path) -> None:
    """An instruct model ships a repetition penalty (Qwen2.5's 1.05), which made "greedy" pass@1 another decoding."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    plain = greedy_texts(model, tokenizer).texts
    model.generation_config.repetition_penalty = 5.0
    model.generation_config.no_repeat_ngram_size = 2
    model.generation_config.min_new_tokens = 12
    assert greedy_texts(model, tokenizer).texts == plain
    # settings whose neutral value is None were filled from the model's: beam search, a forced end, banned tokens
    first = tokenizer(plain[0][0], add_special_tokens=False)["input_ids"][0]
    model.generation_config.update(num_beams=4, forced_eos_token_id=2, suppress_tokens=[first], bad_words_ids=[[first]])
    again = greedy_texts(model, tokenizer)
    assert (
        again.texts == plain
        and again.truncated == greedy_texts(AutoModelForCausalLM.from_pretrained(tiny_model), tokenizer).truncated
    )
    assert model.generation_config.num_beams == 4  # the model's own, back after generating


def test_a_reply_cut_inside_its_answer_has_no_answer_in_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    """`<answer>12` of a model writing 125, cut at evaluation.max_new_tokens, scored right for a gold 12 (greedy
    pass@1, pass@k and cons@n alike); a reply that closed its answer is read as ever."""
    from datasets import Dataset

    from r1kit.config.sources import resolve_config
    from r1kit.stages import evaluate

    replies = ["<think>\n5 * 25 = 125\n</think>\n<answer>12", "<think>\n6 * 2 = 12\n</think>\n<answer>12</answer>"]
    # without an answer block, the number the limit cut (prose after </think>, a base model's reply) was read too;
    # a number before more words is whole
    replies += ["<think>\n5 * 25 = 125\n</think>\nThe answer is 12", "5 * 25 = 12", "6 * 2 = 12, so the"]
    generated = evaluate.Generations([[reply] for reply in replies], [[30]] * 5, [[True]] * 5, [0] * 5)
    monkeypatch.setattr(evaluate, "generate", lambda *args, **kwargs: generated)
    rows = Dataset.from_dict(
        {"question": ["5 * 25?", "6 * 2?", "5 * 25?", "5 * 25?", "6 * 2?"], "solution": ["12"] * 5}
    )
    config = resolve_config(environ={}).config
    scored = evaluate.greedy_scores(None, None, rows, config, "eval")
    assert scored["scores"] == [0.0, 1.0, 0.0, 0.0, 1.0]
    # ROUGE-L compares what pass@1 read: the cut `<answer>12` matched the gold whole
    assert evaluate.answers_and_references(scored["answered"][:1], rows.select([0]))[0] == ["\n"]  # no answer
    rows = rows.select([0, 1])
    # a prompt filling the model's whole context got no reply (0 tokens): not in the mean length of the replies
    generated = evaluate.Generations([[replies[1]], [""]], [[30], [0]], [[False], [True]], [0, 0])
    assert evaluate.greedy_scores(None, None, rows, config, "eval")["mean_completion_tokens"] == 30


def test_a_completion_ended_by_the_models_own_end_token_is_not_truncated(tiny_model: Path) -> None:
    """generate stops at every end token of the generation config (an end-of-turn token, chatml's <|im_end|>):
    counted with the tokenizer's eos alone, such a completion was 'truncated' and its trace dropped."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    first = greedy_texts(model, tokenizer, max_new_tokens=1)
    assert first.truncated == [[True]] * 3  # the limit of one token ended each
    firsts = tokenizer(first.texts[0][0], add_special_tokens=False)["input_ids"][:1]
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, *firsts]
    ended = greedy_texts(model, tokenizer)
    assert ended.lengths[0] == [1] and ended.truncated[0] == [False]


def test_one_sample_at_a_temperature_is_sampled_not_greedy(tiny_model: Path) -> None:
    """The trace stages sample with samples_per_prompt 1 too: that was greedy whatever their temperature and seed."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    prompts = [[{"role": "user", "content": "What is 2 + 2?"}]]
    drawn = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        drawn.append(generate(model, tokenizer, prompts, max_new_tokens=8, batch_size=1, temperature=3.0).texts)
    assert drawn[0] != drawn[1]


def test_sft_through_a_template_that_drops_the_reasoning_is_refused(tmp_path: Path) -> None:
    """DeepSeek-R1-Distill's template keeps only what follows </think> in an assistant turn: SFT learned
    '<answer>5</answer>' without its worked solution, with only TRL's prefix-mismatch warning."""
    dropping = R1_DISTILL_TEMPLATE.replace(
        "{{ m['content'] }}",
        "{% if m['role'] == 'assistant' %}{{ m['content'].split('</think>')[-1] }}{% else %}{{ m['content'] }}{% endif %}",
    )
    ctx, base, splits = context(tmp_path, "--model.chat_template", dropping, "--sft.max_steps", "1")
    with pytest.raises(ModelError, match=r"drops the reasoning .* model.chat_template=chatml"):
        train(sft, ctx, base, splits)
    # a template that keeps it trains: two steps, as the first of a warm-up is at learning rate 0 (fp32: a few
    # steps' merged LoRA update is below bf16's rounding of the weights)
    kept = ("--model.chat_template", R1_DISTILL_TEMPLATE, "--sft.max_steps", "2", "--model.precision", "fp32")
    ctx, base, splits = context(tmp_path / "kept", *kept)
    assert changed(weights(Path(base)), weights(train(sft, ctx, base, splits)))


@pytest.mark.parametrize("stage", [sft, rejection_sampling], ids=["sft", "rejection_sampling"])
def test_a_stage_whose_data_from_kept_nothing_passes_on(tmp_path: Path, stage) -> None:
    """The r1 recipe's cold start that keeps no trace: sft failed saying the data had no worked solution (train
    with grpo), rejection_sampling with KeyError 'all'."""
    ctx, base, splits = context(tmp_path)
    output = train_output(stage, ctx, base, replace(splits, train=splits.train.select([])))
    assert output.model is None
    assert output.metrics.get("train_rows", output.metrics.get("rows")) == 0


def test_sft2_says_when_the_general_rows_fall_short_of_its_ratio(tmp_path: Path, caplog) -> None:
    """Too few general rows (8, against 0.5 of 40 traces) quietly made them a smaller share of the mix; every row of
    the general data is used (a tenth of it was held out, unused, and a one-row file refused)."""
    from r1kit.stages import sft2

    chat = tmp_path / "chat.jsonl"
    chat.write_text("".join(json.dumps({"instruction": f"Say hi {i}.", "response": "Hi."}) + "\n" for i in range(8)))
    ctx, base, splits = context(
        tmp_path, "--sft2.general_dataset", str(chat), "--sft2.general_ratio", "0.5", "--sft.max_steps", "1"
    )
    traces = splits.train.select(range(40))
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        sft2.run(
            ctx.for_stage(ctx.config, "sft2", "sft2"),
            StageInputs(model=base, base=base, splits=replace(splits, train=traces)),
        )
    assert (
        "sft2: 8 general rows of the 40 sft2.general_ratio 0.50 asks for: they are 17% of the mix; sft2.general_dataset "
        "has no more rows with a reply" in caplog.text
    )
    chat.write_text(json.dumps({"instruction": "Say hi.", "response": "Hi."}) + "\n")  # one row: was a DatasetError
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        out = sft2.run(
            ctx.for_stage(ctx.config, "sft2", "sft2_one_row"),
            StageInputs(model=base, base=base, splits=replace(splits, train=traces)),
        )
    assert out.metrics["general_rows"] == 1


def test_sft2_draws_its_general_rows_across_a_sorted_file(tmp_path: Path) -> None:
    """The general mix was the file's first rows: of a file sorted by topic, one topic alone."""
    from r1kit.stages import sft2

    chat = tmp_path / "chat.jsonl"
    rows = [{"instruction": f"{topic} question {i}?", "response": "An answer."} for topic in ("cooking", "history")
            for i in range(20)]  # fmt: skip
    chat.write_text("".join(json.dumps(row) + "\n" for row in rows))
    ctx, base, splits = context(tmp_path, "--sft2.general_dataset", str(chat))
    drawn = sft2._general_rows(ctx, StageInputs(model=base, base=base, splits=splits), 10)
    assert len(drawn) == 10 and {question.split()[0] for question, _ in drawn} == {"cooking", "history"}


def test_sft2_loads_the_general_datas_own_split_of_a_hub_dataset(tmp_path: Path) -> None:
    """UltraChat's chat rows are its train_sft split: sft2 could only ask a hub dataset for `train`."""
    from r1kit.data.loading import DatasetError
    from r1kit.stages import sft2

    overrides = ("--sft2.general_dataset", "no-such-org/chat", "--sft2.general_split", "train_sft")
    ctx, base, splits = context(tmp_path, *overrides)
    with pytest.raises(DatasetError, match=r"cannot load dataset 'no-such-org/chat' \(split 'train_sft'\)"):
        sft2._general_rows(ctx, StageInputs(model=base, base=base, splits=splits), 4)


def test_sft2_sizes_its_general_mix_by_the_reasoning_rows_that_train(tmp_path: Path, caplog) -> None:
    """Rows without a worked solution were left out of training but counted: `reasoning_rows 40` in the manifest and
    a general mix sized for 40 where 20 trained."""
    from r1kit.stages import sft2

    chat = tmp_path / "chat.jsonl"
    chat.write_text("".join(json.dumps({"instruction": f"Say hi {i}.", "response": "Hi."}) + "\n" for i in range(8)))
    ctx, base, splits = context(
        tmp_path, "--sft2.general_dataset", str(chat), "--sft2.general_ratio", "0.2", "--sft.max_steps", "1"
    )
    traces = splits.train.select(range(40)).map(lambda row, i: row | ({"reasoning": None} if i % 2 else {}),
                                                with_indices=True)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        out = sft2.run(
            ctx.for_stage(ctx.config, "sft2", "sft2"),
            StageInputs(model=base, base=base, splits=replace(splits, train=traces)),
        )
    assert out.metrics["reasoning_rows"] == 20 and out.metrics["general_rows"] == 5  # 20 × 0.2 / 0.8
    assert "sft2: 20 of 40 rows have no worked solution or reply to train on; left out" in caplog.text


def test_generated_replies_end_where_the_models_positions_do(tiny_model: Path, caplog) -> None:
    """A model with learned positions (GPT-2's) failed inside `generate` with an IndexError, shown as a bug in r1kit,
    whenever the prompt and max_new_tokens went past them; chat already cut the reply where the context ends."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    prompts = [[{"role": "user", "content": "What is 2 + 3?"}]]
    text = tokenizer.apply_chat_template(prompts[0], tokenize=False, add_generation_prompt=True)
    width = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=len(tokenizer), n_positions=width + 8)
    model = GPT2LMHeadModel(config).eval()
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        generated = generate(model, tokenizer, prompts, max_new_tokens=50, batch_size=1, progress=False, desc="eval")
    assert generated.lengths[0][0] <= 8
    assert f"eval: 1 prompt left fewer than max_new_tokens (50) of the model's {width + 8} positions" in caplog.text
    # a prompt that fills the context gets an empty reply, cut, and is named: it stopped the whole evaluation (or a
    # rejection-sampling stage after the RL before it)
    longer = [*prompts, [{"role": "user", "content": "What is 4 + 4? " * 20}], *prompts]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        generated = generate(
            model, tokenizer, longer, max_new_tokens=50, batch_size=3, samples=2, temperature=1.0, progress=False
        )
    assert generated.texts[1] == ["", ""] and generated.truncated[1] == [True, True] and generated.lengths[1] == [0, 0]
    assert all(0 < n <= 8 for n in generated.lengths[0] + generated.lengths[2])
    assert f"1 prompt filling the model's whole context ({width + 8} tokens) got no reply" in caplog.text
    assert "'What is 4 + 4? What is" in caplog.text


def test_evaluation_during_training_draws_from_a_held_out_file_sorted_by_level(tmp_path: Path) -> None:
    """The problems scored between training steps were a held-out file's first: of a file sorted by level, level 1
    alone in every curve; they are chosen as evaluation.max_samples chooses (a seeded draw kept in order)."""
    from r1kit.stages.evaluate import EvaluateEvery

    rows = [
        {"question": f"L{level} q{i}", "solution": str(i), "level": level} for level in (1, 2, 3) for i in range(20)
    ]
    held_out, train = tmp_path / "sorted.jsonl", tmp_path / "train.jsonl"
    held_out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    train.write_text("".join(json.dumps(row | {"question": f"T{row['question']}"}) + "\n" for row in rows))
    overrides = ("--data", str(train), "--dataset.test_split", str(held_out), "--evaluation.during_training_samples")
    ctx, _, splits = context(tmp_path, *overrides, "8")
    scored = EvaluateEvery(ctx.for_stage(ctx.config, "sft", "sft"), splits.test, tokenizer=None).rows
    assert len(scored) == 8 and len(set(scored["group"])) > 1
    assert scored["question"] == sorted(scored["question"], key=lambda q: (q[:2], int(q.split("q")[1])))
    task, _, task_splits = context(tmp_path / "task", "--evaluation.during_training_samples", "8")
    built_in = EvaluateEvery(task.for_stage(task.config, "sft", "sft"), task_splits.test, tokenizer=None).rows
    assert built_in["question"] == task_splits.test["question"][:8]  # the split's share: its first (seeded already)


def test_a_reply_past_the_models_positions_is_scored_up_to_there(tiny_model: Path, caplog) -> None:
    """A reference solution longer than a GPT-2 model's positions failed perplexity with an IndexError, losing the
    whole evaluation (and a training run at its evaluation step)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from r1kit.stages.evaluate import completion_logprobs, perplexity

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=len(tokenizer), n_positions=64)
    model = GPT2LMHeadModel(config).eval()
    prompts = [[{"role": "user", "content": "2 + 2?"}]] * 2
    replies = ["<think>" + " step" * 200 + "</think><answer>4</answer>", "<answer>4</answer>"]
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        scored = completion_logprobs(model, tokenizer, prompts, replies)
    assert "1 of 2 replies scored run past the model's 64 positions" in caplog.text
    prompt_tokens = len(tokenizer.apply_chat_template(prompts[0], add_generation_prompt=True, tokenize=True))
    assert 0 < scored[0][1] <= 64 - prompt_tokens and scored[1][1] > 0
    assert math.isfinite(perplexity(model, tokenizer, prompts, replies))


def test_curriculum_scoring_through_generate_is_seeded(tmp_path: Path, tiny_model: Path) -> None:
    """Without r1kit's sampler (a GPU, fast.generation false) the pass rates drew from torch's global state: a
    resumed or --from run chose other prompts to train on."""
    from r1kit.stages import curriculum

    ctx, _, _ = context(tmp_path, "--curriculum.samples_per_prompt", "2", "--grpo.temperature", "1.5")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    prompts = [[{"role": "user", "content": f"What is {n} + 1?"}] for n in range(2)]
    drawn = []
    for _ in range(2):
        torch.rand(1000)  # whatever ran before
        drawn.append(curriculum.sampled(model, tokenizer, ctx.config, prompts, "pass rates", None, (0, -1)))
    assert drawn[0] == drawn[1]


def test_a_resumed_curriculum_says_it_keeps_its_earlier_choice(tmp_path: Path, caplog) -> None:
    """Under --resume the stage's pass_rates.json was reused whatever the curriculum settings had become."""
    from r1kit.atomic import json_digest
    from r1kit.data.loading import DatasetError, drawn_indices
    from r1kit.stages import curriculum

    ctx, base, splits = context(tmp_path, "--curriculum.min_pass_rate", "0.6", "--curriculum.max_prompts", "4")
    ctx = ctx.for_stage(ctx.config, "grpo", "grpo")
    scored = splits.train.select(drawn_indices(len(splits.train), 4, ctx.config.run.seed))
    saved = {"bounds": [0.1, 0.9], "samples_per_prompt": ctx.config.curriculum.samples_per_prompt, "scored": 4}
    saved |= {"trained_on": [0, 1], "rescored": [], "problems": json_digest(scored["question"])}
    ctx.dir.mkdir(parents=True, exist_ok=True)
    (ctx.dir / "pass_rates.json").write_text(json.dumps(saved))
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        rows, _ = curriculum.apply(ctx, base, splits.train)
    assert rows["question"] == scored.select([0, 1])["question"]  # the earlier choice, as the checkpoints trained on
    assert 'goes on with the prompts it chose ({"bounds": [0.1, 0.9]' in caplog.text
    # its choice is places among the problems it scored: on other training problems (the data or the split changed)
    # it trained on other prompts than it said, or failed with an IndexError
    with pytest.raises(DatasetError, match="the resumed stage's training problems are not those it scored"):
        curriculum.apply(ctx, base, splits.train.select(range(2, len(splits.train))))


def test_the_prompts_a_stage_samples_are_drawn_across_a_sorted_file(tmp_path: Path, caplog) -> None:
    """The first N of a training file in its order (sorted by level) were one level alone; chat rows of mixed data
    took the place of problems whose traces could verify."""
    from datasets import Dataset

    from r1kit.stages.traces import verifiable_prompts

    ctx, _, _ = context(tmp_path)
    ctx = ctx.for_stage(ctx.config, "rejection_sampling", "rejection_sampling")
    rows = [
        {"question": f"{level} {i}?", "solution": str(i), "group": str(level)} for level in (1, 2, 3) for i in range(30)
    ]
    rows += [{"question": f"chat {i}", "solution": None, "group": None} for i in range(10)]
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        drawn = verifiable_prompts(ctx, Dataset.from_list(rows), 20)
    assert len(drawn) == 20 and {row["group"] for row in drawn} == {"1", "2", "3"}
    assert "rejection_sampling: 10 of 100 training rows have no gold answer to verify traces against" in caplog.text
    # a problem in several rows (k traces each, as rejection sampling and distill write them) is drawn once: it was
    # sampled, and kept, once a row
    twice = [row | {"reasoning": reasoning} for row in rows[:30] for reasoning in ("one way", "another")]
    drawn = verifiable_prompts(ctx, Dataset.from_list(twice), 100)
    assert sorted(row["question"] for row in drawn) == sorted(row["question"] for row in rows[:30])


def test_sft_trains_with_gradient_checkpointing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed 003 enables it for SFT on long traces: r1kit sft refused the flag, having no such setting."""
    checkpointed = []

    class Recording(sft.SFTTrainer):
        def training_step(self, model, *args, **kwargs):
            checkpointed.append(self.model.is_gradient_checkpointing)
            return super().training_step(model, *args, **kwargs)

    monkeypatch.setattr(sft, "SFTTrainer", Recording)
    ctx, base, splits = context(tmp_path, "--sft.max_steps", "2", "--sft.gradient_checkpointing", "true")
    assert changed(weights(Path(base)), weights(train(sft, ctx, base, splits)))
    assert checkpointed == [True, True]


def test_a_taken_over_failed_start_keeps_no_training_log_of_it(tmp_path: Path) -> None:
    """A failed start's folder taken over by the corrected command dropped its metrics but kept its training.log, and
    this process's handler still wrote into the old run's log."""
    ctx, _, _ = context(tmp_path, "--sft.max_steps", "1")
    ctx.run.say("[sft] step 1/3 of the failed start")
    ctx.run.path("config.yaml").write_text(
        ctx.run.path("config.yaml").read_text().replace("max_steps: 1", "max_steps: 2")
    )
    context(tmp_path, "--sft.max_steps", "3")
    assert "of the failed start" not in (ctx.run.root / "training.log").read_text()
