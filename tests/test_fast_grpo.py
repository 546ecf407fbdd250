"""The shared-prefix GRPO loss path computes what TRL's plain path computes, and trains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from trl import GRPOConfig

from r1kit.fast import generation
from r1kit.fast.generation import decode_attention
from r1kit.fast.shared_prefix import TokenLogProbs
from r1kit.monitoring.callbacks import SideWork
from r1kit.monitoring.console import TIMING_PHASES
from r1kit.stages.grpo_trainer import R1kitGRPOTrainer

GROUPS, GENERATIONS = 3, 4


def trainer_for(
    tiny_model: Path,
    tmp_path: Path,
    dtype: torch.dtype,
    shared_prefix: bool,
    fast_generation: bool = True,
    side_work: SideWork | None = None,
    targets: tuple[str, ...] = ("q_proj", "v_proj", "up_proj"),
    **arguments,
) -> R1kitGRPOTrainer:
    """A GRPO trainer on the tiny model; `arguments` are more of GRPOConfig's."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    prompts = [[{"role": "user", "content": f"What is {a} + {a * 3}?"}] for a in range(1, 7)]
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"),
        num_generations=GENERATIONS,
        learning_rate=1e-2,
        temperature=0.7,
        bf16=dtype == torch.bfloat16,
        use_cpu=True,
        report_to="none",
        logging_steps=1,
        gradient_checkpointing=False,  # TRL's default is on; the shared prefix needs the cache it turns off
        **{"per_device_train_batch_size": GROUPS * GENERATIONS, "max_completion_length": 12, "max_steps": 2}
        | {"save_strategy": "no", **arguments},
    )
    return R1kitGRPOTrainer(
        shared_prefix=shared_prefix,
        fast_generation=fast_generation,
        side_work=side_work,
        model=model,
        reward_funcs=lambda completions, **kw: [float(len(c[0]["content"]) % 3) for c in completions],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=tokenizer,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=list(targets), task_type="CAUSAL_LM"),
    )


def fixed_batch(tokenizer, shuffle: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    """GROUPS prompts of different lengths (left-padded), each with GENERATIONS completions of different lengths
    (right-padded), rows optionally shuffled as TRL shuffles a generation batch."""
    prompts = ["Add 2 and 3.", "What is 12 times 13? Think step by step.", "Hi"]
    rows = []
    for group, prompt in enumerate(prompts):
        prompt_ids = tokenizer(prompt)["input_ids"]
        for index in range(GENERATIONS):
            rows.append((prompt_ids, tokenizer(f"<think>{group * 7 + index * 11}</think>" + " x" * index)["input_ids"]))
    if shuffle:
        rows = [rows[i] for i in torch.randperm(len(rows), generator=torch.Generator().manual_seed(1))]
    width_p = max(len(p) for p, _ in rows)
    width_c = max(len(c) for _, c in rows)
    pad = tokenizer.pad_token_id
    ids = [[pad] * (width_p - len(p)) + p + c + [pad] * (width_c - len(c)) for p, c in rows]
    mask = [[0] * (width_p - len(p)) + [1] * (len(p) + len(c)) + [0] * (width_c - len(c)) for p, c in rows]
    return torch.tensor(ids), torch.tensor(mask), width_c


@pytest.mark.parametrize(
    ("dtype", "tolerance", "gradient_tolerance"), [(torch.float32, 1e-4, 1e-3), (torch.bfloat16, 0.02, 0.1)]
)
def test_shared_prefix_log_probs_and_loss_gradient_match_trl(
    tiny_model: Path, tmp_path: Path, dtype, tolerance, gradient_tolerance, monkeypatch: pytest.MonkeyPatch
) -> None:
    from r1kit.stages import grpo_trainer

    # each path is the one named: the shared-prefix kernel on the fast one only (else it is compared with itself)
    kernel_calls = []
    kernel = grpo_trainer.shared_prefix_logps
    monkeypatch.setattr(grpo_trainer, "shared_prefix_logps", lambda *a, **k: kernel_calls.append(1) or kernel(*a, **k))
    # trained adapters: with LoRA B at zero every lora_A gradient is zero on both paths, and compares nothing
    fast = with_trained_adapters(trainer_for(tiny_model, tmp_path, dtype, shared_prefix=True))
    assert fast.shared_prefix
    input_ids, attention_mask, completion_width = fixed_batch(fast.processing_class, shuffle=True)
    completion_mask = attention_mask[:, -completion_width:].float()
    advantages = torch.linspace(-1, 1, len(input_ids)).unsqueeze(1)

    def logps_and_grads(shared_prefix: bool):
        fast.shared_prefix = shared_prefix  # the same model and weights, the other path
        fast.model.zero_grad()
        logps, entropies, _ = fast._get_per_token_logps_and_entropies(
            fast.model, input_ids, attention_mask, completion_width, compute_entropy=True
        )
        # a GRPO-style objective: advantage-weighted log-probs over the completion tokens
        (-(logps * advantages * completion_mask).sum() / completion_mask.sum()).backward()
        grads = {n: p.grad.float().clone() for n, p in fast.model.named_parameters() if p.grad is not None}
        return logps.detach().float(), entropies.detach().float(), grads

    fast_logps, fast_entropy, fast_grads = logps_and_grads(True)
    assert kernel_calls
    kernel_calls.clear()
    plain_logps, plain_entropy, plain_grads = logps_and_grads(False)
    assert not kernel_calls
    scored = completion_mask.bool()
    assert torch.allclose(fast_logps[scored], plain_logps[scored], atol=tolerance, rtol=0)
    assert torch.allclose(fast_entropy[scored], plain_entropy[scored], atol=tolerance, rtol=0)
    assert (fast_logps[~scored] == 0).all()
    assert fast_grads.keys() == plain_grads.keys() and fast_grads  # LoRA weights, nothing else
    assert all(grad.abs().max() > 0 for grad in plain_grads.values())
    for name, grad in plain_grads.items():
        scale = grad.abs().max()
        assert (fast_grads[name] - grad).abs().max() / scale < gradient_tolerance, name


def test_a_prompt_that_starts_with_the_pad_token_is_not_taken_for_a_padded_one(
    tiny_model: Path, tmp_path: Path
) -> None:
    """Two prompts with the same ids, one starting with the pad token id, the other padded to the same width: the
    shared prefix took them for one prompt and gave one row the other's mask."""
    fast = with_trained_adapters(trainer_for(tiny_model, tmp_path, torch.float32, shared_prefix=True))
    pad = fast.processing_class.pad_token_id
    prompt, completion = [pad, 11, 12, 13], [21, 22, 23]
    input_ids = torch.tensor([prompt + completion] * 2)
    attention_mask = torch.tensor([[1] * 7, [0] + [1] * 6])

    def logps(shared_prefix: bool) -> torch.Tensor:
        fast.shared_prefix = shared_prefix
        with torch.no_grad():
            return fast._get_per_token_logps_and_entropies(fast.model, input_ids, attention_mask, 3)[0]

    assert torch.allclose(logps(True), logps(False), atol=1e-4, rtol=0)
    assert not torch.allclose(logps(False)[0], logps(False)[1], atol=1e-3)  # the two rows do differ


def test_a_draw_of_zero_never_samples_a_token_the_restriction_left_out() -> None:
    """Inverse-CDF sampling took token 0 for a draw of exactly 0 (about 1 in 2^24 draws), even where top-k had
    left it out or its probability was 0."""
    probs = torch.tensor([[0.05, 0.5, 0.45], [0.0, 0.3, 0.7], [0.2, 0.3, 0.5]])
    tokens = generation._sample(probs, torch.tensor([0.0, 0.0, 0.9999999]), top_p=1.0, top_k=2, min_p=None)
    assert tokens.tolist() == [1, 1, 2]
    top_one = generation._sample(probs, torch.tensor([0.0, 0.5, 1 - 2**-24]), top_p=1.0, top_k=1, min_p=None)
    assert top_one.tolist() == [1, 2, 2]


@pytest.mark.parametrize(
    "cycle", [{"num_iterations": 3}, {"steps_per_generation": 3, "per_device_train_batch_size": GENERATIONS}]
)
def test_a_run_resumed_inside_a_generation_cycle_trains_as_the_uninterrupted_one(
    tiny_model: Path, tmp_path: Path, cycle: dict
) -> None:
    """A generation's rollouts trained on over 3 optimizer steps, the run stopped at a checkpoint after the second:
    resumed, TRL generated afresh at step 3 (from other weights, for prompts already trained on) instead of training
    on the cycle's last share, and went on off the uninterrupted run's course."""
    from transformers import TrainerCallback

    class StopAtTwo(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            control.should_training_stop = state.global_step == 2

    settings = {"max_steps": 4, "save_strategy": "steps", "save_steps": 2, **cycle}
    straight = trainer_for(tiny_model, tmp_path / "straight", torch.float32, shared_prefix=True, **settings)
    straight.train()
    stopped = trainer_for(tiny_model, tmp_path / "stopped", torch.float32, shared_prefix=True, **settings)
    stopped.add_callback(StopAtTwo())
    stopped.train()
    assert stopped.state.global_step == 2
    resumed = trainer_for(tiny_model, tmp_path / "stopped", torch.float32, shared_prefix=True, **settings)
    resumed.train(resume_from_checkpoint=str(tmp_path / "stopped" / "out" / "checkpoint-2"))

    def generated(trainer) -> list[int]:  # the steps that made rollouts (the others log no reward)
        return [log["step"] for log in trainer.state.log_history if "reward" in log]

    assert generated(straight) == generated(resumed) == [1, 4]  # the resumed one's step 1: from the checkpoint
    trained = {name: p for name, p in straight.model.named_parameters() if p.requires_grad}
    assert all(torch.equal(p, trained[name]) for name, p in resumed.model.named_parameters() if p.requires_grad)


def test_dynamic_samplings_fresh_prompts_are_drawn_by_step_as_a_resumed_run_draws_them(
    tiny_model: Path, tmp_path: Path
) -> None:
    """One generator for the whole run: a run resumed at step 2 drew step 0's fresh prompts again."""
    through = trainer_for(tiny_model, tmp_path, torch.float32, shared_prefix=False)
    draws = {}
    for step in range(3):
        through.state.global_step = step
        draws[step] = [row["prompt"] for row in through._fresh_rows(2, retry=0)]
    resumed = trainer_for(tiny_model, tmp_path, torch.float32, shared_prefix=False)
    resumed.state.global_step = 2
    assert [row["prompt"] for row in resumed._fresh_rows(2, retry=0)] == draws[2]
    assert draws[2] != draws[0]
    # a step that generates twice (steps_per_generation below gradient accumulation) draws other prompts the second
    # time: one gradient counted the same fresh groups twice
    resumed.resample_retries, resumed.args.gradient_accumulation_steps, resumed._step = 1, 2, 1
    assert [row["prompt"] for row in resumed._fresh_rows(2, retry=0)] != draws[2]


def test_dynamic_samplings_fresh_prompts_are_new_to_the_step(tiny_model: Path, tmp_path: Path) -> None:
    """The draw was with replacement over the whole pool: a fresh group could be the dead prompt it replaced, a live
    group of the batch, or the other fresh group (7 steps in 20 drew one prompt twice)."""
    trainer = trainer_for(tiny_model, tmp_path, torch.float32, shared_prefix=False)
    prompts = [repr(prompt) for prompt in trainer.train_dataset["prompt"]]  # 6 distinct prompts
    in_batch = set(prompts[:2])
    for step in range(20):
        trainer.state.global_step = step
        fresh = [repr(row["prompt"]) for row in trainer._fresh_rows(3, retry=0, drawn=in_batch)]
        groups = fresh[:: trainer.num_generations]
        assert len(set(groups)) == 3 and not set(groups) & in_batch
        assert fresh == [prompt for prompt in groups for _ in range(trainer.num_generations)]
    # a pool with too few new prompts takes the drawn ones last, then repeats
    assert len({repr(row["prompt"]) for row in trainer._fresh_rows(8, retry=0, drawn=in_batch)}) == 6


def test_token_log_probs_gradient_and_entropy_are_those_of_a_log_softmax() -> None:
    """The LM-head chunk function's hand-written backward against autograd's numerical gradient (fp64), and its
    entropy and log-probs against a plain log-softmax."""
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(5, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(7, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    bias = torch.randn(7, dtype=torch.float64, generator=generator, requires_grad=True)
    targets = torch.tensor([0, 6, 3, 3, 1])
    assert torch.autograd.gradcheck(
        lambda h, w, b: TokenLogProbs.apply(h, w, b, targets, 0.7)[0], (hidden, weight, bias)
    )
    logps, entropy = TokenLogProbs.apply(hidden, weight, bias, targets, 0.7)
    reference = ((hidden @ weight.T + bias) / 0.7).log_softmax(-1)
    assert torch.allclose(logps, reference[torch.arange(5), targets])
    assert torch.allclose(entropy, -(reference.exp() * reference).sum(-1))
    assert not entropy.requires_grad
    # under bf16 autocast, logits as a language model's (±40): the entropy's sum ran in bf16, off by 0.1 nats and below 0
    hidden = torch.randn(64, 576, generator=generator).bfloat16()
    weight = (torch.randn(4096, 576, generator=generator) * 0.12).bfloat16()
    weight[:8] *= 3.0  # a few likely tokens
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, entropy = TokenLogProbs.apply(hidden, weight, None, torch.zeros(64, dtype=torch.long), 0.7)
        logits = torch.nn.functional.linear(hidden, weight).float() / 0.7  # the bf16 logits it works from
    exact = -(logits.log_softmax(-1).exp() * logits.log_softmax(-1)).sum(-1)
    assert logits.abs().max() > 30 and (entropy - exact).abs().max() < 0.01 and entropy.min() >= 0


@pytest.mark.parametrize("padded", [False, True])
def test_decode_attention_is_sdpa_for_one_query(padded: bool) -> None:
    """The sampler's attention for a decode step (grouped query heads, sdpa's boolean mask) equals sdpa's."""
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(4, 6, 1, 8, generator=generator)  # 6 query heads share 2 key/value heads
    key, value = torch.randn(2, 4, 2, 11, 8, generator=generator)
    mask = torch.ones(4, 1, 1, 11, dtype=torch.bool)
    mask[1, ..., :3] = False  # a left-padded row
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 3, True
    mask = mask if padded else None
    expected, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.3)
    got, _ = decode_attention(module, query, key, value, mask, scaling=0.3)
    assert got.shape == expected.shape == (4, 1, 6, 8)
    assert torch.allclose(got, expected, atol=1e-6)


def test_training_through_the_shared_prefix_path_changes_the_adapters(tiny_model: Path, tmp_path: Path) -> None:
    trainer = trainer_for(tiny_model, tmp_path, torch.float32, shared_prefix=True)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    changed = [n for n, p in trainer.model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert changed and all("lora_" in n for n in changed)
    phases = [key for key in trainer.state.log_history[0] if key.startswith("timing/")]
    # scoring: the old-policy and reference forwards, tokenising, splicing, which the backward's time used to absorb
    assert {f"timing/{phase}_seconds" for phase in TIMING_PHASES} == set(phases) and "scoring" in TIMING_PHASES


def test_side_work_between_steps_is_not_counted_as_a_steps_other_time(tiny_model: Path, tmp_path: Path) -> None:
    """A held-out evaluation (or a curriculum re-scoring) after a step ran inside the next step's `other` time."""
    import time

    from transformers import TrainerCallback

    side_work = SideWork()

    class Evaluation(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            with side_work.timed():
                time.sleep(1.0)

    trainer = trainer_for(tiny_model, tmp_path, torch.float32, shared_prefix=True, side_work=side_work)
    trainer.add_callback(Evaluation())
    trainer.train()
    others = [log["timing/other_seconds"] for log in trainer.state.log_history if "timing/other_seconds" in log]
    assert len(others) == 2 and max(others) < 0.5 and side_work.seconds >= 2.0


def test_the_switches_give_trls_paths(tiny_model: Path, tmp_path: Path) -> None:
    plain = trainer_for(tiny_model, tmp_path, torch.float32, shared_prefix=False, fast_generation=False)
    assert not plain.shared_prefix and plain.sampler is None


def test_a_repetition_penalty_samples_with_trls_generation(
    tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The sampler has no repetition penalty: with one, TRL's generation samples the rollouts (said), and trains."""
    plain = trainer_for(
        tiny_model, tmp_path, torch.float32, shared_prefix=True, repetition_penalty=1.3, top_k=4, min_p=0.05
    )
    assert plain.sampler is None and plain.shared_prefix  # the loss path still applies
    assert "TRL's generation samples the rollouts (r1kit's sampler has no repetition_penalty)" in caplog.text
    before = {n: p.detach().clone() for n, p in plain.model.named_parameters() if p.requires_grad}
    plain.train()
    assert any(not torch.equal(p, before[n]) for n, p in plain.model.named_parameters() if p.requires_grad)


def test_rollouts_fall_back_to_trls_generation_where_no_sampling_copy_can_be_built(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args, **kwargs):
        raise ValueError("cannot build a sampling copy of TestModel: ['lm_head.weight'] not set")

    monkeypatch.setattr(generation.PolicySampler, "__init__", refuse)  # an architecture the copy cannot rebuild
    trainer = trainer_for(tiny_model, tmp_path, torch.float32, shared_prefix=True)
    assert trainer.sampler is None
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()  # TRL's generate produces the rollouts
    assert any(not torch.equal(p, before[n]) for n, p in trainer.model.named_parameters() if p.requires_grad)


# ---------------------------------------------------------------------------------------------------- rollouts


def with_trained_adapters(trainer: R1kitGRPOTrainer) -> R1kitGRPOTrainer:
    """LoRA B matrices start at zero; random ones make the merged weights differ from the base's."""
    torch.manual_seed(3)
    for name, parameter in trainer.model.named_parameters():
        if "lora_B" in name or "lora_embedding" in name:  # an embedding's A starts at zero too
            torch.nn.init.normal_(parameter, std=0.2)
    trainer.sampler.refresh()
    return trainer


def test_greedy_rollouts_equal_generate_on_the_policy(tiny_model: Path, tmp_path: Path) -> None:
    trainer = with_trained_adapters(trainer_for(tiny_model, tmp_path, torch.float32, shared_prefix=True))
    tokenizer = trainer.processing_class
    prompts = [tokenizer("Add 2 and 3.")["input_ids"]] * 2 + [tokenizer("What is 12 times 13? Think.")["input_ids"]] * 2
    completions, _ = trainer.sampler.sample(prompts, max_new_tokens=10, top_k=1)  # top-1: greedy
    width = max(map(len, prompts))
    padded = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in prompts])
    mask = (padded != tokenizer.pad_token_id).long()
    with torch.no_grad():
        generated = trainer.model.generate(
            input_ids=padded,
            attention_mask=mask,
            max_new_tokens=10,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )[:, width:]
    for ours, theirs in zip(completions, generated.tolist(), strict=True):
        assert ours == theirs[: len(ours)]
        assert len(ours) == 10 or ours[-1] in trainer.eos_token_ids  # ends at an EOS, which is kept, or at the limit


@pytest.mark.parametrize("targets", [("q_proj", "v_proj", "up_proj"), ("q_proj", "v_proj", "embed_tokens")])
def test_sampled_log_probs_are_the_policys(tiny_model: Path, tmp_path: Path, targets: tuple[str, ...]) -> None:
    """What the sampler reports for each sampled token is the training path's log-prob of it (fp32). With LoRA on
    the tied input embeddings, the sampler's head was the merged embedding (6 nats off) and the policy's the base."""
    trainer = trainer_for(tiny_model, tmp_path, torch.float32, shared_prefix=True, targets=targets)
    trainer = with_trained_adapters(trainer)
    tokenizer = trainer.processing_class
    prompts = [tokenizer("What is 4 + 4?")["input_ids"]] * 3 + [tokenizer("Hi")["input_ids"]] * 3
    torch.manual_seed(0)
    completions, sampled = trainer.sampler.sample(prompts, max_new_tokens=8, temperature=0.7)
    width_p, width_c = max(map(len, prompts)), max(map(len, completions))
    pad = tokenizer.pad_token_id
    ids = torch.tensor(
        [
            [pad] * (width_p - len(p)) + p + c + [pad] * (width_c - len(c))
            for p, c in zip(prompts, completions, strict=True)
        ]
    )
    mask = torch.tensor(
        [
            [0] * (width_p - len(p)) + [1] * (len(p) + len(c)) + [0] * (width_c - len(c))
            for p, c in zip(prompts, completions, strict=True)
        ]
    )
    trainer.shared_prefix = False  # TRL's own path as the reference
    with torch.no_grad():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, width_c)
    for row, values in enumerate(sampled):
        assert torch.allclose(logps[row, : len(values)], torch.tensor(values), atol=1e-4)


@pytest.mark.parametrize(
    ("top_p", "top_k", "min_p"), [(0.9, 0, None), (0.6, 5, None), (1.0, 0, 0.1), (0.8, 10, 0.05), (0.5, 3, 0.3)]
)
def test_the_sampler_samples_from_the_tokens_generate_keeps(top_p: float, top_k: int, min_p: float | None) -> None:
    """Top-k, top-p and min-p restrict the distribution as transformers' warpers do, in `generate`'s order (top-p is
    a share of what top-k left)."""
    from transformers.generation import MinPLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    logits = torch.randn(256, 40, generator=torch.Generator().manual_seed(0)) * 3 / 0.7  # temperature-scaled
    warped = logits
    for warper, applies in ((TopKLogitsWarper(max(top_k, 1)), top_k), (TopPLogitsWarper(top_p), top_p < 1.0)):
        warped = warper(None, warped) if applies else warped
    warped = MinPLogitsWarper(min_p)(None, warped) if min_p else warped
    kept = generation.restrict(logits.softmax(-1), top_p, top_k, min_p) > 0
    assert torch.equal(kept, warped.isfinite())
    assert 0 < kept.sum() < kept.numel()


@pytest.mark.parametrize("shared_prefix", [True, False])
def test_training_with_the_fast_sampler_logs_the_sampling_gap(
    shared_prefix: bool, tiny_model: Path, tmp_path: Path
) -> None:
    """With the loss on TRL's path (no shared prefix, as gradient checkpointing or a router loss have it), the gap
    was not measured: the sampler's drift went unseen where it was most likely."""
    trainer = trainer_for(tiny_model, tmp_path, torch.bfloat16, shared_prefix=shared_prefix)
    assert trainer.sampler is not None and trainer.shared_prefix == shared_prefix
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    assert any(not torch.equal(p, before[n]) for n, p in trainer.model.named_parameters() if p.requires_grad)
    gaps = [log["fast/sampling_logprob_gap"] for log in trainer.state.log_history if "fast/sampling_logprob_gap" in log]
    assert gaps and all(0 <= gap < 0.1 for gap in gaps)  # bf16 rounding of merged vs unmerged weights


def test_the_sampling_gap_is_not_training_drift_under_a_generation_batch_of_several_steps(
    tiny_model: Path, tmp_path: Path
) -> None:
    """With generation_batch_size twice a step's batch, the second step trains on rollouts the first step's weights
    sampled: its "gap" was how far that step had moved the policy (0.04), shown as the sampler's error (1e-7)."""
    trainer = trainer_for(
        tiny_model, tmp_path, torch.float32, shared_prefix=True, generation_batch_size=2 * GROUPS * GENERATIONS
    )
    assert trainer.args.steps_per_generation == 2 and trainer.args.gradient_accumulation_steps == 1
    trainer.train()
    gaps = [log["fast/sampling_logprob_gap"] for log in trainer.state.log_history if "fast/sampling_logprob_gap" in log]
    assert gaps and all(gap < 1e-4 for gap in gaps), gaps  # fp32: the merged and unmerged weights agree


def test_no_sampling_gap_is_logged_when_every_completion_is_masked(tiny_model: Path, tmp_path: Path) -> None:
    """With mask_truncated_completions and every completion cut, the gap's mean over no token was NaN, logged."""
    trainer = trainer_for(
        tiny_model,
        tmp_path,
        torch.float32,
        shared_prefix=True,
        max_completion_length=2,
        mask_truncated_completions=True,
    )
    trainer.train()
    logs = [log for log in trainer.state.log_history if "completions/clipped_ratio" in log]
    assert logs and all(log["completions/clipped_ratio"] == 1.0 for log in logs)
    assert all(log.get("fast/sampling_logprob_gap", 0.0) is not None for log in logs), logs


# --------------------------------------------------------------------------------------------- dynamic sampling


def test_replace_groups_pads_both_batches_alike() -> None:
    from r1kit.fast.dynamic_sampling import replace_groups

    batch = {
        "prompt_ids": torch.tensor([[5, 6], [5, 6], [7, 8], [7, 8]]),
        "prompt_mask": torch.ones(4, 2, dtype=torch.long),
        "completion_ids": torch.tensor([[1, 0], [1, 0], [2, 2], [3, 0]]),
        "completion_mask": torch.tensor([[1, 0], [1, 0], [1, 1], [1, 0]]),
        "advantages": torch.tensor([0.0, 0.0, 0.5, -0.5]),
        "num_items_in_batch": torch.tensor(5),
    }
    fresh = {  # wider prompts and completions
        "prompt_ids": torch.tensor([[9, 9, 9], [9, 9, 9]]),
        "prompt_mask": torch.ones(2, 3, dtype=torch.long),
        "completion_ids": torch.tensor([[4, 4, 4], [4, 0, 0]]),
        "completion_mask": torch.tensor([[1, 1, 1], [1, 0, 0]]),
        "advantages": torch.tensor([1.0, -1.0]),
        "num_items_in_batch": torch.tensor(4),
    }
    # vLLM rollouts' importance-sampling ratios per token: unknown to the splice, they turned dynamic sampling off
    batch["importance_sampling_ratio"] = torch.full((4, 2), 0.5)
    fresh["importance_sampling_ratio"] = torch.full((2, 3), 2.0)
    spliced = replace_groups(batch, torch.tensor([0]), fresh, torch.tensor([0]), group_size=2, pad_token_id=0)
    assert spliced["importance_sampling_ratio"].tolist() == [[2.0] * 3, [2.0] * 3, [0.5, 0.5, 1.0], [0.5, 0.5, 1.0]]
    assert spliced["prompt_ids"].tolist() == [[9, 9, 9], [9, 9, 9], [0, 7, 8], [0, 7, 8]]  # prompts padded left
    assert spliced["prompt_mask"].tolist() == [[1, 1, 1], [1, 1, 1], [0, 1, 1], [0, 1, 1]]
    assert spliced["completion_ids"].tolist() == [[4, 4, 4], [4, 0, 0], [2, 2, 0], [3, 0, 0]]  # completions right
    assert spliced["advantages"].tolist() == [1.0, -1.0, 0.5, -0.5]
    assert spliced["num_items_in_batch"].item() == 4 + 3  # the spliced batch's completion tokens
    # on the training device (a GPU's): the group offsets were made on the CPU, a device mismatch at the first splice
    on_meta = {key: value.to("meta") for key, value in batch.items()}
    fresh_on_meta = {key: value.to("meta") for key, value in fresh.items()}
    groups = torch.tensor([0], device="meta")
    assert replace_groups(on_meta, groups, fresh_on_meta, groups, 2, 0)["completion_ids"].shape == (4, 3)


@pytest.mark.parametrize(("same_reward", "size"), [(1.0, 4), (0.3, 8)])
def test_dynamic_sampling_replaces_a_constant_reward_group_and_counts_it(
    same_reward: float, size: int, tiny_model: Path, tmp_path: Path
) -> None:
    """A group of 8 rewards of 0.3 has advantages of about 1e-4, not 0 (TRL's float mean): it was kept as live. The
    monitor describes the batch trained on (it counted the replaced group and the retries' unused ones)."""
    import random

    from r1kit.fast.dynamic_sampling import dead_groups
    from r1kit.monitoring.recorder import RolloutRecorder

    def reward(completions, prompts, **kwargs):  # a group on a "same" prompt all score alike: no learning signal
        return [same_reward if "same" in p[-1]["content"] else random.random() for p in prompts]

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    prompts = [[{"role": "user", "content": text}] for text in ["same 1+1?", "vary 2+2?", "vary 3+3?", "vary 4+4?"]]
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=2 * size, num_generations=size,
        max_completion_length=6, max_steps=2, use_cpu=True, report_to="none", save_strategy="no",
        gradient_checkpointing=False, seed=3,
    )  # fmt: skip
    recorder = RolloutRecorder({"reward": 1.0}, num_generations=size, max_completion_length=6)
    trainer = R1kitGRPOTrainer(
        resample_retries=4,
        recorder=recorder,
        model=model,
        reward_funcs=recorder.tap("reward", reward),
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=AutoTokenizer.from_pretrained(tiny_model),
    )
    rows = [{"prompt": prompts[0]}] * size + [{"prompt": prompts[1]}] * size  # the first group has no signal
    trainer.model.train()  # as in a training step: dynamic sampling is for training batches only
    batch = trainer._generate_and_score_completions(rows)
    assert len(dead_groups(batch["advantages"], size)) == 0
    metrics = trainer._metrics["train"]
    assert metrics["dynamic_sampling/replaced_groups"] == [1.0]
    # the logged reward and spread are the first rollouts' (the retry's are not logged over them)
    assert len(metrics["reward"]) == len(metrics["frac_reward_zero_std"]) == 1
    first_prompt = trainer.processing_class.decode(batch["prompt_ids"][0], skip_special_tokens=True)
    assert "vary" in first_prompt and batch["num_items_in_batch"] == batch["completion_mask"].sum()
    # the tokens seen are the batch's trained on (the retries' counted too, raising throughput and MFU)
    trained = batch["prompt_mask"].sum() + batch["completion_mask"].sum()
    assert trainer.state.num_input_tokens_seen == trained and metrics["num_tokens"] == [trained]
    described = recorder.statistics(recorder.take())
    assert described["quality/completions"] == 2 * size and described["quality/zero_advantage_share"] == 0.0
    trainer.train()  # and it trains through it


def test_dynamic_sampling_counts_the_tokens_of_the_batch_trained_on_with_cut_completions_masked(
    tiny_model: Path, tmp_path: Path, monkeypatch
) -> None:
    """With mask_truncated_completions, a replaced group's completions cut at the limit stayed counted as seen (TRL
    counts them whole; the mask said 0), raising throughput and MFU."""
    import random

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    eos, limit, size = tokenizer.eos_token_id, 6, 4

    def cut_or_short(self, prompt_ids, *args, **kwargs):  # "same" prompts: cut at the limit; the others end at EOS
        return [[7] * limit if "same" in tokenizer.decode(ids) else [7, 8, eos] for ids in prompt_ids], None

    monkeypatch.setattr(R1kitGRPOTrainer, "_generate_single_turn", cut_or_short)
    prompts = [[{"role": "user", "content": text}] for text in ["same 1+1?", "vary 2+2?", "vary 3+3?", "vary 4+4?"]]
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=2 * size, num_generations=size,
        max_completion_length=limit, max_steps=1, use_cpu=True, report_to="none", save_strategy="no",
        gradient_checkpointing=False, seed=3, mask_truncated_completions=True,
    )  # fmt: skip
    trainer = R1kitGRPOTrainer(
        resample_retries=2,
        model=AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32),
        reward_funcs=lambda completions, prompts, **kwargs: [
            1.0 if "same" in p[-1]["content"] else random.random() for p in prompts
        ],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=tokenizer,
    )
    trainer.model.train()
    batch = trainer._generate_and_score_completions([{"prompt": prompts[0]}] * size + [{"prompt": prompts[1]}] * size)
    assert trainer._metrics["train"]["dynamic_sampling/replaced_groups"] == [1.0]
    completion_tokens = 2 * size * 3  # every group trained on ends at EOS after 3 tokens
    assert trainer.state.num_input_tokens_seen == batch["prompt_mask"].sum() + completion_tokens


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_a_reward_without_a_verdict_neither_rewards_nor_punishes_the_item(
    tiny_model: Path, tmp_path: Path, algorithm: str
) -> None:
    """accuracy None (a timed-out check) with format 1: the item's advantage is 0 as if its accuracy were its
    group's mean, not the advantage of a wrong answer; an item no reward judged has advantage 0."""
    from trl import RLOOConfig

    from r1kit.stages.rloo import R1kitRLOOTrainer

    def accuracy(completions, **kwargs):  # per group of 4: no verdict, wrong, right, no verdict
        return [[None, 0.0, 1.0, None][index % 4] for index in range(len(completions))]

    def formatted(completions, **kwargs):  # judges all but the last of each group
        return [None if index % 4 == 3 else 1.0 for index in range(len(completions))]

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    prompts = [[{"role": "user", "content": "1+1?"}], [{"role": "user", "content": "2+2?"}]]
    trainer_class, config_class = {
        "grpo": (R1kitGRPOTrainer, GRPOConfig), "rloo": (R1kitRLOOTrainer, RLOOConfig)
    }[algorithm]  # fmt: skip
    args = config_class(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, num_generations=4, max_completion_length=4,
        max_steps=1, use_cpu=True, report_to="none", save_strategy="no", gradient_checkpointing=False,
    )  # fmt: skip
    trainer = trainer_class(
        model=model,
        reward_funcs=[accuracy, formatted],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=AutoTokenizer.from_pretrained(tiny_model),
    )
    trainer.model.train()
    batch = trainer._generate_and_score_completions([{"prompt": p} for p in prompts for _ in range(4)])
    # rewards per group: 1.5, 1, 2 and unscorable. GRPO: mean 1.5, std 0.5, so 0, −1, +1, 0. RLOO: each less the
    # mean of the others, 1.5 − 1.5, 1 − 1.75, 2 − 1.25, unscorable 0 (then scaled by the batch's std)
    advantages = batch["advantages"].view(2, 4)
    assert advantages[:, 0].abs().max() < 1e-3 and (advantages[:, 3] == 0).all()
    assert (advantages[:, 1] < 0).all() and torch.allclose(advantages[:, 2], -advantages[:, 1])
    if algorithm == "grpo":
        torch.testing.assert_close(batch["advantages"], torch.tensor([0.0, -1.0, 1.0, 0.0] * 2), atol=1e-3, rtol=0)


# ------------------------------------------------------------------------------------------ re-scored curriculum


def test_the_kept_prompts_replace_the_others_alike_in_every_copy() -> None:
    from r1kit.stages.curriculum import KeptPrompts

    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(6)]
    kept = KeptPrompts(prompts, kept=[1, 4], seed=0)
    rollout = [prompts[0]] * 3 + [prompts[1]] * 3 + [prompts[5]] * 3
    picks = kept.replacements(rollout, step=7)
    assert picks[3:6] == [None] * 3  # a kept prompt stays
    assert len(set(picks[:3])) == 1 and len(set(picks[6:])) == 1  # a group's copies all get the same one
    assert {picks[0], picks[6]} <= {1, 4}
    assert KeptPrompts(prompts, kept=[1, 4], seed=0).replacements(rollout, step=7) == picks  # a resumed run's pick
    assert {KeptPrompts(prompts, [1, 4], seed=0).replacements([prompts[0]], step)[0] for step in range(40)} == {1, 4}
    with pytest.raises(KeyError):  # the trainer's data is the scored prompts: a stranger is a bug, not a keep
        kept.replacements([[{"role": "user", "content": "unknown"}]], step=0)
    # a question twice in the data is one prompt: kept where either copy is (the first copy's verdict swapped a kept
    # one out, sometimes for itself, and counted it as a swap)
    twice = [prompts[0], prompts[1], prompts[0]]
    assert {KeptPrompts(twice, [1, 2], seed=0).replacements([prompts[0]], step)[0] for step in range(20)} == {None}


def test_rollouts_under_a_re_scored_curriculum_are_of_kept_prompts_only(tiny_model: Path, tmp_path: Path) -> None:
    from r1kit.stages.curriculum import KeptPrompts

    seen: list[str] = []

    def reward(completions, prompts, **kwargs):
        seen.extend(p[-1]["content"] for p in prompts)
        return [float(len(c[0]["content"]) % 3) for c in completions]

    torch.manual_seed(0)
    prompts = [[{"role": "user", "content": f"What is {a} + {a * 3}?"}] for a in range(1, 7)]
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=GROUPS * GENERATIONS,
        num_generations=GENERATIONS, max_completion_length=6, max_steps=2, use_cpu=True, report_to="none",
        logging_steps=1, save_strategy="no", gradient_checkpointing=False,
    )  # fmt: skip
    kept = KeptPrompts(prompts, kept=[1, 4], seed=0)
    trainer = R1kitGRPOTrainer(
        curriculum=kept,
        resample_retries=2,  # dynamic sampling's fresh prompts come from the kept ones too
        model=AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32),
        reward_funcs=reward,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=AutoTokenizer.from_pretrained(tiny_model),
    )
    trainer.train()
    assert seen and set(seen) == {prompts[1][0]["content"], prompts[4][0]["content"]}
    logged = [log for log in trainer.state.log_history if "curriculum/swapped_prompts" in log]
    assert len(logged) == 2 and all(log["curriculum/kept_prompts"] == 2 for log in logged)
    # 2 steps of 3 prompts from 6 (one epoch, each once): the 4 outside the kept set were swapped
    assert sum(log["curriculum/swapped_prompts"] for log in logged) == 4


def scoring_config(temperature: float):
    from r1kit.config.schema import R1kitConfig

    return R1kitConfig.model_validate(
        {
            "grpo": {"temperature": temperature, "max_completion_length": 8},
            "curriculum": {"samples_per_prompt": 2},
            "evaluation": {"batch_size": 4},  # 2 prompts a batch: 3 prompts take two
            "monitoring": {"progress": False},
        }
    )


def test_scoring_through_the_sampler_equals_generate_on_the_policy(tiny_model: Path, tmp_path: Path) -> None:
    """The curriculum's fast scoring samples what `model.generate` samples through the adapters: at a near-zero
    temperature both are the greedy completions, which must match."""
    from r1kit.stages.curriculum import RESCORING, sampled

    trainer = with_trained_adapters(trainer_for(tiny_model, tmp_path, torch.float32, shared_prefix=True))
    assert trainer.sampler is not None
    config, tokenizer = scoring_config(temperature=1e-5), trainer.processing_class
    prompts = [[{"role": "user", "content": q}] for q in ("Add 2 and 3.", "What is 12 times 13?", "Hi")]
    fast = sampled(trainer.model, tokenizer, config, prompts, "fast", trainer.sampler, seed_key=(0, 5, RESCORING))
    plain = sampled(trainer.model, tokenizer, config, prompts, "plain", None, seed_key=(0, 5, RESCORING))
    assert len(fast) == 3 and all(len(texts) == 2 for texts in fast)
    assert fast == plain and any(text for texts in fast for text in texts)


def test_scoring_restricts_the_distribution_as_the_rollouts_do(tiny_model: Path, tmp_path: Path) -> None:
    """grpo.top_k (and top_p, min_p) reach the curriculum's scorings on both paths; a repetition penalty, which the
    sampler does not implement, sends them through `generate`. At top-k 1 every sample is the greedy completion."""
    from r1kit.stages.curriculum import RESCORING, sampled

    trainer = with_trained_adapters(trainer_for(tiny_model, tmp_path, torch.float32, shared_prefix=True))
    tokenizer = trainer.processing_class
    prompts = [[{"role": "user", "content": q}] for q in ("Add 2 and 3.", "What is 12 times 13?", "Hi")]

    def scored(sampler, **grpo) -> list[list[str]]:
        config = scoring_config(temperature=1.0)
        config.grpo = config.grpo.model_copy(update=grpo)
        return sampled(trainer.model, tokenizer, config, prompts, "s", sampler, seed_key=(0, 5, RESCORING))

    greedy = scored(None, top_k=1)
    assert all(texts[0] == texts[1] for texts in greedy)  # top-k 1 samples the likeliest token only
    assert scored(trainer.sampler, top_k=1) == greedy
    penalised = scored(trainer.sampler, top_k=1, repetition_penalty=5.0)
    assert penalised == scored(None, top_k=1, repetition_penalty=5.0) and penalised != greedy


def test_fast_scoring_is_seeded_by_its_key(tiny_model: Path, tmp_path: Path) -> None:
    from r1kit.stages.curriculum import RESCORING, sampled

    trainer = with_trained_adapters(trainer_for(tiny_model, tmp_path, torch.float32, shared_prefix=True))
    config, tokenizer = scoring_config(temperature=1.0), trainer.processing_class
    prompts = [[{"role": "user", "content": f"What is {a} + {a}?"}] for a in range(4)]

    def scored(step: int) -> list[list[str]]:
        torch.manual_seed(step)  # torch's global random state plays no part
        return sampled(trainer.model, tokenizer, config, prompts, "s", trainer.sampler, seed_key=(0, step, RESCORING))

    assert scored(4) == scored(4)  # a resumed run re-scores what the uninterrupted one did
    assert scored(4) != scored(6)


def test_a_model_family_the_sampler_cannot_decode_falls_back_to_generate(
    tiny_model: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPT passed the family check and crashed in the first decode step of every rollout: its learned absolute
    positions came from the mask, and the sampler gave none. Positions are now counted from each prompt's first real
    token, as `generate` counts them, and OPT samples what `generate` samples; a family whose decoding still fails
    (its cache layers without keys) falls back to `generate`, saying so."""
    from transformers import OPTConfig, OPTForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    config = OPTConfig(
        vocab_size=512, hidden_size=64, num_hidden_layers=2, ffn_dim=128, num_attention_heads=4, word_embed_proj_dim=64
    )
    config._attn_implementation = "sdpa"
    opt = OPTForCausalLM(config)
    sampler = generation.sampler_for(opt, tokenizer)
    assert sampler is not None and generation._sampling_gap(sampler, opt) < 1e-3

    def no_keys(*args, **kwargs):
        raise AttributeError("'LinearAttentionLayer' object has no attribute 'keys'")

    monkeypatch.setattr(generation.PolicySampler, "sample", no_keys)
    with caplog.at_level("WARNING", logger="r1kit"):
        assert generation.sampler_for(opt, tokenizer) is None
    assert "fast sampler unavailable" in caplog.text
    monkeypatch.undo()
    llama = AutoModelForCausalLM.from_pretrained(tiny_model).train()
    sampler = generation.sampler_for(llama, tokenizer)  # a family it reproduces: its check passes, the mode is kept
    assert sampler is not None and generation._sampling_gap(sampler, llama) < 1e-3 and llama.training


@pytest.mark.parametrize("family", ["lfm2", "granite"])
def test_a_family_the_fast_paths_do_not_reproduce_trains_on_trls_paths_and_says_why(
    family: str, tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A hybrid of convolution and attention layers (LFM2; Qwen3.5's linear attention alike) passed the family check:
    the sampler and the shared-prefix loss crashed on its caches. A family left out (Granite's scaled logits) fell back
    without a word."""
    from transformers import GraniteConfig, Lfm2Config

    sizes = {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4}
    sizes |= {"num_key_value_heads": 2, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
    config = {
        "lfm2": Lfm2Config(num_hidden_layers=4, layer_types=["conv", "full_attention"] * 2, **sizes),
        "granite": GraniteConfig(num_hidden_layers=2, logits_scaling=8.0, **sizes),
    }[family]
    torch.manual_seed(0)
    folder = tmp_path / family
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    with caplog.at_level("WARNING", logger="r1kit"):
        trainer = trainer_for(folder, tmp_path, torch.float32, shared_prefix=True, targets=("q_proj", "v_proj"))
    assert trainer.sampler is None and not trainer.shared_prefix
    reason = {"lfm2": "has layers other than attention (conv)", "granite": "scales or caps its logits"}[family]
    assert (
        f"fast.shared_prefix, fast.generation: TRL's own paths are used ({type(trainer.model.get_base_model()).__name__} {reason}"
        in caplog.text
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    assert any(not torch.equal(p, before[n]) for n, p in trainer.model.named_parameters() if p.requires_grad)


def test_trls_generation_leaves_the_models_own_settings_aside_as_the_sampler_does(
    tiny_model: Path, tmp_path: Path
) -> None:
    """A model shipped with `no_repeat_ngram_size` or `min_new_tokens`: transformers' `generate` filled the settings
    TRL's config leaves unset from them, so TRL's path sampled another distribution than r1kit's sampler (greedy here,
    top_k 1: the sampler repeated a token, `generate` could not)."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)

    def rollout(fast: bool) -> list[int]:
        model = AutoModelForCausalLM.from_pretrained(tiny_model)
        model.generation_config.update(no_repeat_ngram_size=2, min_new_tokens=12)
        args = GRPOConfig(
            output_dir=str(tmp_path), num_generations=4, per_device_train_batch_size=4, top_k=1, max_completion_length=12,
            use_cpu=True, report_to="none", gradient_checkpointing=False, save_strategy="no",
        )  # fmt: skip
        trainer = R1kitGRPOTrainer(
            fast_generation=fast,
            model=model,
            reward_funcs=lambda completions, **kwargs: [0.0] * len(completions),
            args=args,
            train_dataset=Dataset.from_dict({"prompt": ["Hi"] * 4}),
            processing_class=tokenizer,
        )
        assert (trainer.sampler is not None) == fast
        ids, _ = trainer._generate_single_turn([tokenizer("What is 12 times 13?")["input_ids"]], None, {}, 1)
        assert model.generation_config.no_repeat_ngram_size == 2  # the model's own, back after the rollout
        return ids[0]

    assert rollout(fast=False) == rollout(fast=True)


def test_shared_prefix_eager_attention_is_for_the_completions_and_counts_what_it_keeps(tiny_model: Path) -> None:
    """Eager attention ran the prompts' prefill too (U × heads × P² probabilities per layer, counted nowhere) and its
    bound counted the probabilities at the model's element size, where eager keeps them in fp32 as well."""
    from r1kit.fast import shared_prefix

    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation="sdpa")
    kernels: list[str] = []
    forward = model.model.forward
    model.model.forward = lambda *a, **k: kernels.append(model.config._attn_implementation) or forward(*a, **k)
    prompt, completion = torch.tensor([[5, 6, 7]] * 2), torch.tensor([[8, 9], [10, 11]])
    shared_prefix.shared_prefix_logps(model, prompt, torch.ones_like(prompt), completion, torch.ones_like(completion), 1.0, False)  # fmt: skip
    assert kernels == ["sdpa", "eager"]
    config = model.config
    per_probability = config.num_hidden_layers * config.num_attention_heads * 2 * (3 + 2)
    limit = shared_prefix._EAGER_ATTENTION_BYTES
    with shared_prefix._attention_for(model.bfloat16(), torch.Size([limit // (6 * per_probability) + 1, 2]), 3):
        assert config._attn_implementation == "sdpa"  # 6 bytes a probability in bf16: past the bound
    with shared_prefix._attention_for(model, torch.Size([limit // (6 * per_probability), 2]), 3):
        assert config._attn_implementation == "eager"


def test_the_sampler_stands_aside_for_a_head_or_attention_it_does_not_compute() -> None:
    """ModernBERT's decoder has a prediction head before its vocabulary projection, and the sampler drew each
    rollout's first token from that head's `hidden_size` outputs; GPT-OSS's attention sinks were left out of its
    decoding attention. Both passed its log-prob check (0.49 and 0.06 nats a token, under 0.5): `generate` samples
    them now."""
    import transformers

    from r1kit.fast.generation import PolicySampler

    common = {"vocab_size": 128, "hidden_size": 32, "intermediate_size": 32, "num_hidden_layers": 2}
    heads = {"num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16}
    sinks = transformers.GptOssConfig(**common, **heads, num_local_experts=2, num_experts_per_tok=1,
                                      layer_types=["full_attention"] * 2)  # fmt: skip
    prediction_head = transformers.ModernBertDecoderConfig(**common, num_attention_heads=2, pad_token_id=0)
    plain = transformers.LlamaConfig(**common, **heads)
    applies = {
        type(config).__name__: PolicySampler.applies_to(transformers.AutoModelForCausalLM.from_config(config))
        for config in (sinks, prediction_head, plain)
    }
    assert applies == {"GptOssConfig": False, "ModernBertDecoderConfig": False, "LlamaConfig": True}
    # nor does the shared-prefix loss, which scored ModernBERT's backbone with its vocabulary projection alone
    from r1kit.fast.shared_prefix import unsupported_because

    modernbert = transformers.AutoModelForCausalLM.from_config(prediction_head)
    assert "output head is more than its lm_head" in unsupported_because(modernbert)
