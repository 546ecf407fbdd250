"""r1kit's PPO stage: its math against numbers worked out by hand, and the stage on the tiny random model."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from r1kit import hardware
from r1kit.config.schema import PPOConfig
from r1kit.config.sources import resolve_config
from r1kit.models import plain_generation_config
from r1kit.stages import ppo
from r1kit.stages.common import StageInputs, StageOutput, setup
from tests.conftest import REPO, r1kit_cli


def close(actual: torch.Tensor, expected: list) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected), atol=1e-6, rtol=1e-5)


# ------------------------------------------------------------------------------------------------------- the math


def test_gae_by_hand() -> None:
    # gamma 0.9, lam 0.8 (gamma·lam = 0.72); row 0 has 3 tokens, row 1 ends after 2 (its third entries are padding,
    # with junk reward and value that must not leak in).
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 5.0]])
    values = torch.tensor([[0.5, 0.6, 0.7], [0.5, 0.6, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    advantages, returns = ppo.gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # row 0: δ2 = 1 + 0.9·0 - 0.7 = 0.3;  δ1 = 0 + 0.9·0.7 - 0.6 = 0.03;  δ0 = 0 + 0.9·0.6 - 0.5 = 0.04
    #        A2 = 0.3;  A1 = 0.03 + 0.72·0.3 = 0.246;  A0 = 0.04 + 0.72·0.246 = 0.21712
    #        returns = A + V = 0.71712, 0.846, 1.0
    # row 1: δ1 = 1 + 0.9·0 - 0.6 = 0.4 (the episode ends: no bootstrap from the padding's 9.0);  δ0 = 0.04
    #        A1 = 0.4;  A0 = 0.04 + 0.72·0.4 = 0.328;  returns = 0.828, 1.0, 0 (padding)
    close(advantages, [[0.21712, 0.246, 0.3], [0.328, 0.4, 0.0]])
    close(returns, [[0.71712, 0.846, 1.0], [0.828, 1.0, 0.0]])


def test_whitened_advantages_have_mean_zero_and_unit_std_over_the_mask() -> None:
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    white = ppo.whiten(torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, 5.0]]), mask)
    assert abs(ppo.masked_mean(white, mask).item()) < 1e-6
    assert abs(ppo.masked_mean(white**2, mask).item() - 1) < 1e-5 and white[0, 2] == 0


@pytest.mark.parametrize(
    ("advantage", "ratio", "loss", "clipped"),
    [
        # cliprange 0.2: loss = max(-A·r, -A·clip(r, 0.8, 1.2))
        (1.0, 1.1, -1.1, False),  # inside the range: the plain surrogate
        (1.0, 1.5, -1.2, True),  # A > 0 pushed above 1.2: capped at -1.2 (no gain from moving further)
        (1.0, 0.5, -0.5, False),  # A > 0 below 0.8: max(-0.5, -0.8) = -0.5, the unclipped (pessimistic) term
        (-1.0, 1.5, 1.5, False),  # A < 0 above 1.2: max(1.5, 1.2) = 1.5, unclipped
        (-1.0, 0.5, 0.8, True),  # A < 0 pushed below 0.8: max(0.5, 0.8) = 0.8, capped
    ],
)
def test_clipped_policy_loss(advantage: float, ratio: float, loss: float, clipped: bool) -> None:
    logps = torch.tensor([[math.log(ratio)]], requires_grad=True)
    value, clipfrac, approx_kl = ppo.clipped_policy_loss(
        logps, torch.zeros(1, 1), torch.tensor([[advantage]]), torch.ones(1, 1), cliprange=0.2
    )
    assert value.item() == pytest.approx(loss)
    assert clipfrac.item() == float(clipped)
    assert approx_kl.item() == pytest.approx(0.5 * math.log(ratio) ** 2)  # ½·(log r)²
    value.backward()
    # where the clip binds the token has no gradient; elsewhere d(-A·r)/d(log r) = -A·r
    assert logps.grad.item() == pytest.approx(0.0 if clipped else -advantage * ratio)


def test_clipped_value_loss() -> None:
    old, returns, mask = torch.tensor([[1.0]]), torch.tensor([[2.0]]), torch.ones(1, 1)
    # cliprange_value 0.2 around the old value 1.0: clipped value in [0.8, 1.2]
    # new 1.1, inside: (1.1 - 2)² = 0.81 both ways → ½·0.81
    assert ppo.clipped_value_loss(torch.tensor([[1.1]]), old, returns, mask, 0.2).item() == pytest.approx(0.405)
    # new 1.8, past the clip toward the return: max((1.8-2)², (1.2-2)²) = max(0.04, 0.64) → ½·0.64
    assert ppo.clipped_value_loss(torch.tensor([[1.8]]), old, returns, mask, 0.2).item() == pytest.approx(0.32)
    # new 0.0, away from the return: max((0-2)², (0.8-2)²) = max(4, 1.44) → ½·4
    assert ppo.clipped_value_loss(torch.tensor([[0.0]]), old, returns, mask, 0.2).item() == pytest.approx(2.0)


def test_kl_penalty_rewards() -> None:
    logps = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -1.0, -7.0]])
    ref_logps = torch.tensor([[-1.5, -2.0, -0.3], [-1.2, -1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards = ppo.kl_penalty_rewards(logps, ref_logps, torch.tensor([2.0, -1.0]), mask, kl_coef=0.1)
    # row 0: -0.1·(0.5, 0, -0.2) = (-0.05, 0, 0.02), its score 2 on the last token → (-0.05, 0, 2.02)
    # row 1: -0.1·(0.2, 0) = (-0.02, 0), its score -1 on its last token (index 1); the padding stays 0
    close(rewards, [[-0.05, 0.0, 2.02], [-0.02, -1.0, 0.0]])


def test_adaptive_kl_controller_moves_toward_the_target() -> None:
    # error = clip(kl/target - 1, ±0.2); coef·(1 + error·n/horizon) with n/horizon = 10/100
    assert ppo.adaptive_kl_coef(0.1, kl=12.0, target=6.0, horizon=100, n_samples=10) == pytest.approx(0.102)  # +0.2
    assert ppo.adaptive_kl_coef(0.1, kl=3.0, target=6.0, horizon=100, n_samples=10) == pytest.approx(0.098)  # -0.2
    assert ppo.adaptive_kl_coef(0.1, kl=6.6, target=6.0, horizon=100, n_samples=10) == pytest.approx(0.101)  # +0.1
    assert ppo.adaptive_kl_coef(0.1, kl=6.0, target=6.0, horizon=100, n_samples=10) == pytest.approx(0.1)


def test_an_adaptive_kl_horizon_that_could_zero_the_coefficient_is_refused() -> None:
    """A KL below target multiplies the coefficient by 1 - 0.2 · 8 / 1 = -0.6 at kl_horizon 1: it went 0.05, -0.03,
    0.018 (a reward for leaving the input model), or stayed 0 for good at a horizon of 1.6."""
    from r1kit.config.schema import R1kitConfig

    with pytest.raises(ValueError, match=r"kl_horizon 1 with adaptive_kl true and prompts_per_step 8: .* above 1\.6"):
        R1kitConfig(ppo={"adaptive_kl": True, "kl_horizon": 1, "prompts_per_step": 8})
    assert R1kitConfig(ppo={"adaptive_kl": True, "kl_horizon": 2, "prompts_per_step": 8}).ppo.kl_horizon == 2
    assert R1kitConfig(ppo={"kl_horizon": 1, "prompts_per_step": 8}).ppo.kl_horizon == 1  # a fixed coefficient


def test_conjugate_gradient_solves_a_small_spd_system() -> None:
    a, b = torch.tensor([[4.0, 1.0], [1.0, 3.0]]), torch.tensor([1.0, 2.0])
    # A⁻¹ = 1/11·[[3, -1], [-1, 4]], so x = 1/11·(3 - 2, -1 + 8) = (1/11, 7/11); CG is exact in 2 iterations
    close(ppo.conjugate_gradient(lambda v: a @ v, b, iters=2), [1 / 11, 7 / 11])
    spd = torch.randn(6, 6, generator=torch.Generator().manual_seed(0))
    spd = spd @ spd.T + 6 * torch.eye(6)
    rhs = torch.arange(6.0)
    torch.testing.assert_close(ppo.conjugate_gradient(lambda v: spd @ v, rhs, iters=20), torch.linalg.solve(spd, rhs))


def _toy(step: torch.Tensor) -> tuple[float, float]:
    """A toy trust region along (1, 0): improvement is the gain g·s = s₀, KL is |s|²."""
    return step[0].item(), (step @ step).item()


def test_line_search_shrinks_a_step_that_breaks_the_trust_region() -> None:
    # full step (1, 0): KL 1 > 0.3; halved: KL 0.25 <= 0.3 and improvement 0.5 > 0 → accepted at fraction 0.5
    fraction, improvement, kl = ppo.line_search(_toy, torch.tensor([1.0, 0.0]), 0.3, shrink=0.5, max_backtracks=5)
    assert (fraction, improvement, kl) == (0.5, 0.5, 0.25)


def test_line_search_takes_no_step_when_none_is_acceptable() -> None:
    # only 1 backtrack: fractions 1 (KL 1) and 0.5 (KL 0.25) both exceed max_kl 0.1
    assert ppo.line_search(_toy, torch.tensor([1.0, 0.0]), 0.1, 0.5, max_backtracks=1) == (0.0, 0.0, 0.0)
    # a step that makes things worse at every size (improvement < 0) is never taken, however small its KL
    assert ppo.line_search(_toy, torch.tensor([-1.0, 0.0]), 10.0, 0.5, max_backtracks=8) == (0.0, 0.0, 0.0)


def test_trpo_step_on_a_categorical_policy_stays_in_the_trust_region() -> None:
    # a 4-action softmax policy; actions 0 and 1 have positive advantage: the step moves probability to them,
    # within KL(old‖new) <= max_kl, through the real double-backprop Fisher products and the line search
    theta = torch.zeros(4, requires_grad=True)
    advantages = torch.tensor([1.0, 0.5, -0.5, -1.0])
    old = theta.detach().log_softmax(-1)
    new_logps = theta.log_softmax(-1)
    surrogate = (new_logps.exp() * advantages).sum()  # Σ p_old·(p/p_old)·A
    kl = (old.exp() * (old - new_logps)).sum()

    def evaluate(_start: torch.Tensor | None = None) -> tuple[float, float]:  # its old policy is `old`, kept above
        with torch.no_grad():
            now = theta.log_softmax(-1)
            return ((now.exp() * advantages).sum() - surrogate).item(), (old.exp() * (old - now)).sum().item()

    section = PPOConfig(trpo_max_kl=0.01, trpo_damping=0.0, trpo_cg_iters=10)
    (gradient,) = torch.autograd.grad(surrogate, theta, retain_graph=True)
    (grad_kl,) = torch.autograd.grad(kl, theta, create_graph=True)

    def kl_hessian_vector(v: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(grad_kl @ v, theta, retain_graph=True)[0]

    fraction, improvement, step_kl = ppo.trpo_step([theta], gradient, kl_hessian_vector, evaluate, section)
    assert fraction > 0 and improvement > 0 and 0 < step_kl <= 0.01
    probs = theta.detach().softmax(-1)
    assert probs[0] > probs[1] > 0.25 > probs[2] > probs[3]
    assert step_kl == pytest.approx(evaluate()[1])  # the parameters hold the accepted step


# ------------------------------------------------------------------------------------------------- the stage

# cosine scores wrong answers by length, so even a random model's completions get different rewards: a signal.
VARIED_REWARDS = ("--rewards.functions", "[cosine, format]", "--rewards.cosine.max_len", "64")


def ppo_stage(tmp_path: Path, *overrides: str):
    config = resolve_config(
        profile="test", environ={}, overrides=["--out", str(tmp_path / "run"), *VARIED_REWARDS, *overrides]
    ).config
    ctx, base, splits = setup(config, "test")
    return ctx.for_stage(config, "ppo", "ppo"), StageInputs(model=base, base=base, splits=splits)


def changed(before: Path, after: Path) -> list[str]:
    old, new = load_file(str(before / "model.safetensors")), load_file(str(after / "model.safetensors"))
    # in the saved dtype: a bf16 save differs from its fp32 base by rounding alone
    return [name for name in old if not torch.equal(old[name].to(new[name].dtype), new[name])]


def steps(ctx) -> list[dict]:
    return [r for r in ctx.run.read("metrics.jsonl") if r["stage"] == "ppo" and r["kind"] == "step"]


def test_log_probs_of_a_left_padded_row_are_those_of_the_unpadded_one_with_absolute_positions() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=16)).eval()
    tokens = torch.tensor([[5, 6, 7, 8, 9, 10]])  # a 3-token prompt, a 3-token completion
    padded = torch.cat([torch.zeros(1, 2, dtype=torch.long), tokens], 1)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1]])
    alone, _ = ppo.forward(model, tokens, torch.ones_like(tokens), width=3, temperature=1.0)
    after_padding, _ = ppo.forward(model, padded, mask, width=3, temperature=1.0)
    torch.testing.assert_close(after_padding, alone)


def test_a_ppo_stage_after_another_starts_its_value_head_where_that_one_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The value head was saved "for a later PPO stage", which started from zero values all the same."""
    ctx, inputs = ppo_stage(tmp_path / "first")
    first = ppo.run(ctx, inputs)
    ended = torch.load(ctx.dir / "value_head.pt", weights_only=True)
    started = []
    real = ppo.PPOTrainer.train
    monkeypatch.setattr(ppo.PPOTrainer, "train", lambda self: started.append(self.head.weight.clone()) or real(self))
    later, later_inputs = ppo_stage(tmp_path / "later")
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        ppo.run(later, replace(later_inputs, model=first.model))
    assert torch.equal(started[0], ended["weight"]) and ended["weight"].abs().sum() > 0
    assert f"the value head starts from {ctx.dir / 'value_head.pt'}" in caplog.text
    started.clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="r1kit"):  # from a model no PPO stage made: zeros
        ppo.run(*ppo_stage(tmp_path / "from_base", "--model.lora.dropout", "0.3"))
    assert started[0].abs().sum() == 0
    assert "ppo: model.lora.dropout 0.3 is not applied" in caplog.text  # accepted, and ignored without a word


def test_rollouts_through_generate_sample_the_distribution_the_loss_computes(tiny_model: Path) -> None:
    """Where r1kit's sampler does not apply (a GPU), `generate` samples the rollouts: the model's own settings (an
    instruct model's repetition penalty) must not reshape the distribution, or the ratio and KL are off-policy."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    shaping = {"repetition_penalty": 1.5, "no_repeat_ngram_size": 2, "top_k": 5, "top_p": 0.5, "min_p": 0.2}
    shaping |= {"typical_p": 0.5, "epsilon_cutoff": 0.01, "eta_cutoff": 0.01, "min_new_tokens": 6}
    for setting, value in shaping.items():
        setattr(model.generation_config, setting, value)
    config = plain_generation_config(6, pad_token_id=0, eos_token_ids=[2], temperature=0.7)
    config.update(output_scores=True, output_logits=True, return_dict_in_generate=True)
    ids = torch.tensor([[5, 7, 9, 5, 7, 9]])
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
    for sampled, logits in zip(out.scores, out.logits, strict=True):
        torch.testing.assert_close(sampled.log_softmax(-1), (logits / 0.7).log_softmax(-1))


@pytest.mark.parametrize("update", ["clip", "trpo"])
def test_two_ppo_steps_train_log_and_save(tmp_path: Path, tiny_model: Path, update: str) -> None:
    # TRPO's run also penalises replies cut at the limit (TRL's --missing_eos_penalty, which r1kit lacked)
    penalty = ["--missing_eos_penalty", "10"] if update == "trpo" else []
    ctx, inputs = ppo_stage(tmp_path, "--ppo.policy_update", update, *penalty)
    output = ppo.run(ctx, inputs)

    assert changed(tiny_model, output.model), f"{update}: no weight changed"
    records = steps(ctx)
    assert [r["step"] for r in records] == [1, 2]
    keys = ["reward", "kl", "kl_coef", "loss", "loss/policy", "loss/value", "approx_kl", "entropy", "time"]
    for key in keys if update == "trpo" else [*keys, "grad_norm"]:  # TRPO's policy step takes no gradient norm
        assert all(math.isfinite(r[key]) for r in records), key
    assert all(r["train/skipped_nonfinite_steps"] == 0 for r in records)
    # memory and CPU as TRL's trainers log them (PPO logged neither: the rlhf recipe's peak went unseen)
    assert all(r["perf/rss_gb"] > 0 and r["perf/peak_rss_gb"] > 0 and r["perf/cpu_percent"] > 0 for r in records)
    # cosine and format give at most ±2 a reply; every reply of the random model is cut at the limit
    assert all((r["reward"] < -8) == (update == "trpo") and r["quality/truncated_share"] == 1 for r in records)
    if update == "trpo":
        assert all(0 < r["trpo/step_fraction"] <= 1 and r["approx_kl"] <= 0.01 for r in records)
    else:
        assert all(0 <= r["clipfrac"] <= 1 for r in records)
    assert AutoModelForCausalLM.from_pretrained(output.model).num_parameters() > 0
    head = torch.load(ctx.dir / "value_head.pt", weights_only=True)
    assert head["weight"].abs().sum() > 0  # the value head was trained from its zero start
    assert output.metrics["steps"] == 2
    # trend alerts, as TRL's trainers get them (PPO wrote none): the random model's completions all hit the limit
    assert [(a["stage"], a["kind"]) for a in ctx.run.read("alerts.jsonl")] == [("ppo", "truncated")]
    # and the best and worst completions with their rewards (PPO wrote none to RUN/completions.jsonl)
    examples = ctx.run.read("completions.jsonl")
    assert {(e["stage"], e["kind"]) for e in examples} == {("ppo", "best"), ("ppo", "worst")}
    assert max(e["step"] for e in examples) == 2 and {e["logged_at"] for e in examples} <= {1, 2}  # a resume cuts by it
    assert all(set(e["rewards"]) == {"cosine", "format"} and e["completion"] is not None for e in examples)
    # ranked by the reward PPO trained on (its missing-EOS penalty included), which the records hold as the total
    assert all((e["total"] < -8) == (update == "trpo") for e in examples)
    assert all(r["rewards/total/mean"] == pytest.approx(r["reward"]) for r in records)
    assert all(r["rewards/cosine/unreadable_gold"] == 0 for r in records)  # the verifier's counts, as GRPO logs them


def test_a_trpo_step_taken_a_completion_at_a_time_is_the_one_taken_on_the_whole_batch(
    tmp_path: Path, tiny_model: Path
) -> None:
    """TRPO's update held the whole batch's (B, T, V) log-probs three times over, whatever `minibatch_size` said (10 GB a
    tensor at a 150k vocabulary); its sums are now taken chunk by chunk. The step must not change with the chunks."""
    weights = []
    for minibatch in ("4", "1"):  # the whole batch of 4 in one chunk, and one completion at a time
        ctx, inputs = ppo_stage(
            tmp_path / minibatch,
            *("--ppo.policy_update", "trpo", "--ppo.max_steps", "1", "--ppo.minibatch_size", minibatch),
            *("--ppo.trpo_fisher_fraction", "1.0"),  # every completion in the Fisher products: 4 chunks of them too
        )
        output = ppo.run(ctx, inputs)
        assert steps(ctx)[0]["trpo/step_fraction"] > 0  # a step was taken
        weights.append(load_file(str(output.model / "model.safetensors")))
    assert changed(tiny_model, output.model)
    for name in weights[0]:
        torch.testing.assert_close(weights[1][name], weights[0][name], atol=1e-5, rtol=1e-4)


def test_a_failing_reward_under_ppo_is_said_not_trained_on_as_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PPO passed its rewards no log_metric and logged a reward that judged nothing as a mean of 0: the failing-reward
    alert could never fire (a broken plug-in trained on as 0 without a word), nor the plateau one (no total)."""
    (tmp_path / "broken_reward.py").write_text("def broken(completions, **kwargs):\n    raise RuntimeError('bug')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ctx, inputs = ppo_stage(
        tmp_path, "--rewards.functions", "[format, broken_reward:broken]", "--ppo.kl_coef", "0", "--eval_steps", "1"
    )
    output = ppo.run(ctx, inputs)
    records = steps(ctx)
    assert all(r["rewards/broken/mean"] is None and r["rewards/broken/exceptions"] > 0 for r in records)
    # without a KL penalty no reference forward runs: the KL is not measured (it was logged as 0 however far it went)
    assert all(r["kl"] is None for r in records) and "kl" not in output.metrics
    # the held-out slice is scored between steps, as under TRL's trainers (PPO accepted --eval_steps and ran none)
    evals = [r for r in ctx.run.read("metrics.jsonl") if r["stage"] == "ppo" and r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [1, 2] and all(0 <= r["eval/format_rate"] <= 1 for r in evals)
    assert ("ppo", "failing_reward") in [(a["stage"], a["kind"]) for a in ctx.run.read("alerts.jsonl")]


def scored_by_plug_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str, source: str):
    """The PPO stage scored by `format` and the plug-in reward `module:function`, its module written from `source`."""
    (tmp_path / f"{spec.split(':')[0]}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return ppo_stage(tmp_path, "--rewards.functions", f"[format, {spec}]")


def test_a_ppo_run_whose_reward_logs_numpy_numbers_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plug-in's `log_metric("…", np.std(v))` went as a numpy float into the checkpoint's state, which then failed
    to load (`weights_only`): every resume of the run crashed."""
    source = (
        "import numpy as np\n"
        "def scored(completions, log_metric=None, **kwargs):\n"
        "    values = [float(len(c[0]['content']) % 3) for c in completions]\n"
        "    log_metric('rewards/scored/spread', np.float64(np.std(values)))\n"
        "    return values\n"
    )
    ctx, inputs = scored_by_plug_in(tmp_path, monkeypatch, "np_reward:scored", source)
    ppo.run(ctx, inputs)
    (ctx.run.checkpoints(ctx.folder) / "checkpoint-2" / "r1kit_complete.json").unlink()  # killed in step 2
    (ctx.run.root / "ppo" / "model" / "r1kit_complete.json").unlink()
    ppo.run(ctx, inputs)
    assert [r["step"] for r in steps(ctx)] == [1, 2] and all(
        type(r["rewards/scored/spread"]) is float for r in steps(ctx)
    )


def test_ppo_passes_its_rewards_what_trls_trainers_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plug-in with TRL's documented signature (trainer_state, log_extra) raised at every PPO call, where GRPO and
    RLOO pass both: PPO trained without it, its alert saying only that it raised."""
    source = (
        "def ramp(completions, trainer_state, log_extra, log_metric, **kwargs):\n"
        "    log_metric('rewards/ramp/step', trainer_state.global_step)\n"
        "    log_extra('ramp', [1.0] * len(completions))\n"
        "    return [min(1.0, trainer_state.global_step / trainer_state.max_steps)] * len(completions)\n"
    )
    ctx, inputs = scored_by_plug_in(tmp_path, monkeypatch, "ramp_reward:ramp", source)
    ppo.run(ctx, inputs)
    records = steps(ctx)
    assert [(r["rewards/ramp/step"], r["rewards/ramp/mean"]) for r in records] == [(0, 0.0), (1, 0.5)]
    assert all(r["rewards/ramp/exceptions"] == 0 for r in records)


def test_ppo_records_a_profile_when_asked(tmp_path: Path) -> None:
    """monitoring.profiler.enabled was accepted by PPO, r1kit's own loop, and wrote nothing without a word."""
    profiled = ["--monitoring.profiler.enabled", "true", "--monitoring.profiler.wait", "0"]
    ctx, inputs = ppo_stage(tmp_path, *profiled, "--monitoring.profiler.active", "1")  # warm-up 1: both steps
    ppo.run(ctx, inputs)
    assert "ProfilerStep" in (ctx.dir / "profile" / "profile_trace.json").read_text()
    assert (ctx.dir / "profile" / "profile_ops.txt").stat().st_size > 0


def test_ppo_skips_a_non_finite_update_and_raises_the_alert(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One NaN loss turned every weight into NaN, and PPO logged no loss or gradient norm for the alert to see."""
    plain = ppo.clipped_policy_loss

    def nan_loss(*args, **kwargs):
        loss, clipfrac, approx_kl = plain(*args, **kwargs)
        return loss * float("nan"), clipfrac, approx_kl

    monkeypatch.setattr(ppo, "clipped_policy_loss", nan_loss)
    ctx, inputs = ppo_stage(tmp_path, "--model.lora.enabled", "false")
    output = ppo.run(ctx, inputs)

    assert not changed(tiny_model, output.model)  # every update dropped, none applied
    records = steps(ctx)
    assert all(math.isnan(r["grad_norm"]) and math.isnan(r["loss"]) for r in records)
    assert [r["train/skipped_nonfinite_steps"] for r in records] == [1, 2]  # steps, as the alert says
    raised = {a["key"] for a in ctx.run.read("alerts.jsonl")}
    # each newly skipped step raises the count again (it fired once, and said "1 step(s) … so far" to the end),
    # once: not a second and third alert for its loss and its gradient norm
    assert {key for key in raised if key.startswith("non_finite")} == {"non_finite:skipped:1", "non_finite:skipped:2"}
    said = [a["message"] for a in ctx.run.read("alerts.jsonl") if a["key"] == "non_finite:skipped:1"]
    assert said == ["loss is nan, grad_norm is nan: 1 step(s) with a non-finite loss or gradient skipped so far"]
    # the count goes on from the checkpoint a resume starts from (step 2 redone: 1 from step 1, then its own)
    (ctx.run.checkpoints(ctx.folder) / "checkpoint-2" / "r1kit_complete.json").unlink()
    ppo.run(ctx, inputs)
    assert [r["train/skipped_nonfinite_steps"] for r in steps(ctx)] == [1, 2]


def test_ppo_resumes_from_its_newest_checkpoint(tmp_path: Path) -> None:
    ctx, inputs = ppo_stage(tmp_path)
    ppo.run(ctx, inputs)
    first = steps(ctx)
    checkpoints = ctx.run.checkpoints(ctx.folder)
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-1", "checkpoint-2"]
    # as after a kill during step 2: its checkpoint never completed
    (checkpoints / "checkpoint-2" / "r1kit_complete.json").unlink()
    ppo.run(ctx, inputs)
    again = steps(ctx)
    assert [r["step"] for r in again] == [1, 2]  # step 2 redone once, not logged twice
    assert len(ctx.run.read("alerts.jsonl")) == 1  # the alert standing at the checkpoint is not raised again
    # the policy, value head, optimizer and RNG came back: step 2 samples and scores the same completions
    assert again[1]["reward"] == pytest.approx(first[1]["reward"])
    assert again[1]["loss/value"] == pytest.approx(first[1]["loss/value"], rel=1e-3)
    # run again once finished: no step to train, and the figures are the last step's, not lost
    finished = ppo.run(ctx, inputs)
    assert [r["step"] for r in steps(ctx)] == [1, 2]
    assert finished.metrics["reward"] == pytest.approx(again[1]["reward"]) and "kl" in finished.metrics
    # resumed with another fixed KL coefficient (`--resume --ppo.kl_coef`), step 2 uses it: the checkpoint's was kept
    (checkpoints / "checkpoint-2" / "r1kit_complete.json").unlink()
    (ctx.run.root / "ppo" / "model" / "r1kit_complete.json").unlink()
    ppo.run(
        ctx.for_stage(
            ctx.config.model_copy(update={"ppo": ctx.config.ppo.model_copy(update={"kl_coef": 0.5})}), "ppo", "ppo"
        ),
        inputs,
    )
    assert [r["kl_coef"] for r in steps(ctx)] == [first[0]["kl_coef"], 0.5]


def test_resuming_ppo_refuses_what_its_optimizer_holds(tmp_path: Path) -> None:
    """PPO's learning rates are its own keys (no `optimization` section): a new one was recorded and the checkpoint's
    kept; a new update method failed to load the optimizer ("different number of parameter groups")."""
    out = tmp_path / "run"
    args = ["ppo", "--profile", "test", "--ppo.max_steps", "2", *VARIED_REWARDS, "--out", str(out)]
    assert r1kit_cli(*args, cwd=REPO).returncode == 0
    manifest = json.loads((out / "ppo" / "manifest.json").read_text())
    (out / "ppo" / "manifest.json").write_text(json.dumps(manifest | {"status": "running"}))  # as if killed
    for key, value in (
        ("ppo.learning_rate", "0.01"),
        ("ppo.value_learning_rate", "0.1"),
        ("ppo.policy_update", "trpo"),
    ):
        refused = r1kit_cli(*args, "--resume", f"--{key}", value, cwd=REPO)
        assert (
            refused.returncode == 1
            and f"{key}: " in refused.stderr
            and "--resume continues ppo's checkpoint" in (refused.stderr)
        ), refused.stderr[-2000:]


def test_ppo_adds_a_reward_model_named_by_an_earlier_stage(tmp_path: Path, tiny_model: Path) -> None:
    folder = tmp_path / "rm"  # a reward model: the tiny model with a fresh scalar head (random, but it scores)
    AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=1).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    ctx, inputs = ppo_stage(
        tmp_path,
        "--ppo.max_steps",
        "1",
        "--rewards.functions",
        "[accuracy, reward_model]",
        "--rewards.reward_model.path",
        "rm",
    )
    inputs.earlier["rm"] = StageOutput(model=folder)
    ppo.run(ctx, inputs)
    (record,) = steps(ctx)
    assert record["rewards/reward_model/mean"] != 0 and math.isfinite(record["rewards/reward_model/mean"])


@pytest.mark.skipif(not hardware.cpu_has_native_bf16(), reason="bf16 needs a CPU with native bf16")
def test_a_full_fine_tune_runs_its_forwards_in_the_runs_precision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full fine-tune keeps fp32 master weights: PPO's own loop ran every forward in fp32 whatever
    model.precision said (TRL's trainers autocast)."""
    seen, original = [], ppo.forward

    def spying(model, input_ids, *args, **kwargs):
        kind = input_ids.device.type
        seen.append(torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None)
        return original(model, input_ids, *args, **kwargs)

    monkeypatch.setattr(ppo, "forward", spying)
    overrides = ("--model.lora.enabled", "false", "--model.precision", "bf16", "--ppo.max_steps", "1")
    ppo.run(*ppo_stage(tmp_path, *overrides))
    assert seen and set(seen) == {torch.bfloat16}
