"""Per-token credit from checked arithmetic steps (`step_credit`): which token completes each step, the process
advantages, and a GRPO update that lowers a wrong step where the outcome rewards give no signal at all."""

from __future__ import annotations

import math
import random
from functools import partial
from pathlib import Path

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig

from r1kit.rewards.step_credit import process_advantages, step_verdicts, token_ends
from r1kit.stages.grpo_trainer import R1kitGRPOTrainer

RIGHT = "<think>\n12 + 9 = 21\n21 - 4 = 17\n</think>\n<answer>17</answer>"
WRONG = "<think>\n12 + 9 = 21\n21 - 4 = 18\n</think>\n<answer>18</answer>"  # the second step is a slip


def verdicts_of(tokenizer, text: str, cut: bool = False) -> tuple[list[int], list[tuple[int, bool]]]:
    decode = partial(tokenizer.decode, skip_special_tokens=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids, step_verdicts(decode(ids), token_ends(decode, ids), cut=cut)


def test_each_step_is_judged_at_the_token_that_completes_it(tiny_model: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    ids, verdicts = verdicts_of(tokenizer, WRONG)
    assert [holds for _, holds in verdicts] == [True, False]
    lines = [tokenizer.decode(ids[: token + 1]).rsplit("\n", 1)[-1] for token, _ in verdicts]
    assert lines == ["12 + 9 = 21", "21 - 4 = 18"]  # up to and including the right side's last digit
    # the answer block is not a step, and a completion without equalities has none
    assert [h for _, h in verdicts_of(tokenizer, "<think>1 + 2 = 3</think><answer>4 + 4 = 9</answer>")[1]] == [True]
    # nor is a number said to equal itself (`3 = 3`: free padding that held)
    assert verdicts_of(tokenizer, "<think>3 = 3</think><answer>3</answer>")[1] == []
    assert verdicts_of(tokenizer, "<think>I know it.</think><answer>7</answer>")[1] == []
    # a completion the token limit cut inside a result (`1234` being written, one digit a token) is not blamed for
    # that step, which was judged false; the steps before the cut are judged
    cut = "<think>\n12 + 9 = 21\n1200 + 34 = 12"
    assert [holds for _, holds in verdicts_of(tokenizer, cut, cut=True)[1]] == [True]
    assert [holds for _, holds in verdicts_of(tokenizer, cut)[1]] == [True, False]  # it ended there: a false step


def test_token_ends_match_decoding_every_prefix(tiny_model: Path) -> None:
    # random ids split characters across tokens (and decode to replacement characters) wherever bytes fall
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    decode = partial(tokenizer.decode, skip_special_tokens=True)
    generator = random.Random(0)
    texts = ["<think>\n37 + 48 = 85 é 中文 😀\n</think>\n<answer>85</answer>" * 3]
    for ids in [tokenizer(text)["input_ids"] for text in texts] + [
        [generator.randrange(tokenizer.vocab_size) for _ in range(generator.randrange(1, 40))] for _ in range(100)
    ]:
        assert token_ends(decode, ids) == [len(decode(ids[: count + 1])) for count in range(len(ids))]
    # linear: each token's share is decoded with at most 8 tokens before it, and the whole text once (the check)
    decoded: list[int] = []
    ids = tokenizer(texts[0] * 20)["input_ids"]
    token_ends(lambda part: decoded.append(len(part)) or decode(part), ids)
    assert sorted(decoded)[-2] <= 9 and decoded.count(len(ids)) == 1
    # a decoder that is not local (its text depends on the whole length) is decoded prefix by prefix
    counted = lambda ids: "x" * len(ids) ** 2  # noqa: E731
    assert token_ends(counted, list(range(12))) == [(count + 1) ** 2 for count in range(12)]


def test_process_advantages_blame_a_wrong_step_and_are_zero_when_all_steps_agree() -> None:
    # steps: row 0 true at token 2, false at token 5; row 1 true at 1 and 4 → mean 0.75, std 0.5
    advantages = process_advantages([[(2, True), (5, False)], [(1, True), (4, True)]], 7, group_size=2)
    assert torch.allclose(advantages[0], torch.tensor([-1.0, -1.0, -1.0, -1.5, -1.5, -1.5, 0.0]))
    assert torch.allclose(advantages[1], torch.tensor([1.0, 1.0, 0.5, 0.5, 0.5, 0.0, 0.0]))
    assert not process_advantages([[(2, True)], [(1, True), (4, True)]], 7, group_size=2).any()  # nothing to tell apart
    assert not process_advantages([[], []], 7, group_size=2).any()


def test_process_advantages_are_normalised_within_each_prompt_s_group() -> None:
    """Normalised over the whole batch, a prompt whose completions all stepped right had every completion pushed up,
    and one whose completions all slipped every completion pushed down: a difference between prompts, with no
    completion of a group set against another (DeepSeekMath normalises over a question's outputs)."""
    all_right, all_wrong = [[(1, True)], [(1, True)]], [[(1, False)], [(1, False)]]
    assert not process_advantages([*all_right, *all_wrong], 3, group_size=2).any()
    mixed = process_advantages([*all_right, [(0, True)], [(0, False)]], 3, group_size=2)
    assert not mixed[:2].any() and mixed[2, 0] > 0 > mixed[3, 0]


def trainer_with_step_credit(tiny_model: Path, tmp_path: Path, weight: float) -> R1kitGRPOTrainer:
    torch.manual_seed(0)
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, num_generations=2, max_completion_length=8,
        learning_rate=0.05, max_steps=1, use_cpu=True, report_to="none", save_strategy="no",
        gradient_checkpointing=False,
    )  # fmt: skip
    prompt = [{"role": "user", "content": "What is 12 + 9 - 4?"}]
    trainer = R1kitGRPOTrainer(
        step_credit=weight,
        model=AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32),
        reward_funcs=lambda completions, **kwargs: [1.0] * len(completions),  # the outcome tells nothing apart
        args=args,
        train_dataset=Dataset.from_dict({"prompt": [prompt]}),
        processing_class=AutoTokenizer.from_pretrained(tiny_model),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop, read by the loss
    trainer.model.train()
    return trainer


def scored_batch(trainer: R1kitGRPOTrainer, texts: tuple[str, str] = (RIGHT, WRONG)) -> dict:
    """A group of two completions (the two above), as `_generate_and_score_completions` returns it, outcome
    advantages 0."""
    tokenizer = trainer.processing_class
    prompt = tokenizer("What is 12 + 9 - 4?")["input_ids"]
    completions = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    width = max(map(len, completions))
    return {
        "prompt_ids": torch.tensor([prompt, prompt]),
        "prompt_mask": torch.ones(2, len(prompt), dtype=torch.long),
        "completion_ids": torch.tensor([c + [tokenizer.pad_token_id] * (width - len(c)) for c in completions]),
        "completion_mask": torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in completions]),
        "advantages": torch.zeros(2),
        "num_items_in_batch": torch.tensor(sum(map(len, completions))),
    }


def completion_logps(trainer: R1kitGRPOTrainer, batch: dict) -> torch.Tensor:
    input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    with torch.no_grad():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, input_ids, attention_mask, batch["completion_ids"].size(1)
        )
    return (logps * batch["completion_mask"]).sum(1)


def test_step_credit_teaches_where_the_outcome_reward_cannot(tiny_model: Path, tmp_path: Path) -> None:
    trainer = trainer_with_step_credit(tiny_model, tmp_path, weight=1.0)
    batch = scored_batch(trainer)
    batch["advantages"] = batch["advantages"].unsqueeze(1) + trainer._process_advantages(batch)
    assert trainer._metrics["train"]["step_credit/false_step_share"] == [0.25]  # 1 of the 4 steps
    assert (batch["advantages"][1][batch["completion_mask"][1].bool()] <= 0).all()  # the slip's completion
    before = completion_logps(trainer, batch)
    optimizer = torch.optim.SGD([p for p in trainer.model.parameters() if p.requires_grad], lr=0.05)
    for _ in range(3):
        optimizer.zero_grad()
        trainer.compute_loss(trainer.model, batch).backward()
        optimizer.step()
    after = completion_logps(trainer, batch)
    assert after[1] < before[1]  # the completion with the wrong step got less likely
    assert after[0] - after[1] > before[0] - before[1]

    # outcome rewards alone: identical rewards, zero advantages, no gradient at all
    plain = trainer_with_step_credit(tiny_model, tmp_path, weight=0.0)
    plain.compute_loss(plain.model, scored_batch(plain)).backward()
    assert all(not p.grad.any() for p in plain.model.parameters() if p.grad is not None)


def test_step_credit_pays_nothing_for_padding_with_true_steps(tiny_model: Path, tmp_path: Path) -> None:
    """Each true step raised the credit of every token before it: `1 + 1 = 2` padded before a slip made that
    completion the group's better one. True steps count where they work on the prompt's numbers, each once."""
    trainer = trainer_with_step_credit(tiny_model, tmp_path, weight=1.0)
    padded = "<think>\n1 + 1 = 2\n2 + 2 = 4\n12 + 9 = 22\n12 + 9 = 22\n</think>\n<answer>18</answer>"
    slip = "<think>\n12 + 9 = 22\n</think>\n<answer>18</answer>"
    assert not trainer._process_advantages(scored_batch(trainer, (padded, slip))).any()  # the same single slip
    assert trainer._metrics["train"]["step_credit/false_step_share"] == [1.0]
    # a batch with no step checked has no share: 0.0 read as every step right, and diluted a window's mean
    trainer._process_advantages(scored_batch(trainer, ("<think>Hm.</think><answer>7</answer>",) * 2))
    assert math.isnan(trainer._metrics["train"]["step_credit/false_step_share"][-1])


def test_grpo_trains_with_step_credit(tiny_model: Path, tmp_path: Path) -> None:
    """TRL's training step (shuffling, splitting, the loss) takes the [rows, tokens] advantages."""
    trainer = trainer_with_step_credit(tiny_model, tmp_path, weight=1.0)
    trainer.train()
    logged = trainer.state.log_history[0]
    assert "step_credit/false_step_share" in logged and logged["step_credit/steps_per_completion"] >= 0
    # a random model's 8 tokens hold no checkable step, so its process advantages are 0 and train nothing: with
    # process advantages that differ by token, TRL's step must train on them (its outcome advantages are all 0)
    trainer = trainer_with_step_credit(tiny_model, tmp_path, weight=1.0)
    trainer._process_advantages = lambda batch: torch.linspace(-1, 1, batch["completion_ids"].numel()).view(
        batch["completion_ids"].shape
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    assert any(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters() if n in before)
