"""GRPO log-probs with each prompt forwarded once per group instead of once per completion.

A GRPO batch holds G completions of every prompt, and the prompt is often longer than the completion, so TRL's plain
path spends most of its forward and backward on identical prompt rows. Here the distinct prompts go through the
model once, with their key/value cache kept; the cache is gathered to the rows of their completions, which are then
forwarded on top of it. Gradients flow through the gather back into the shared prompt computation, so the loss and
its gradient are those of the plain path (the equivalence test checks both, in fp32 and bf16).

Positions match the plain path: without explicit position_ids, the model numbers positions by cache position,
padding included, in both.

The log-probs come from the LM head in chunks of positions, so the full-vocabulary fp32 logits of the whole batch
never exist at once; the backward recomputes each chunk's logits instead of keeping them. TRL has a fused kernel for
this, but off-GPU it falls back to many elementwise passes over every [positions, vocabulary] tile: measured on
SmolLM2's 49k vocabulary, 864 positions, 2 CPU cores, its backward took 2.2 s where checkpointing a plain
log-softmax took 0.26 s, with equal results. `TokenLogProbs` writes that gradient out by hand (softmax minus the
one-hot target), which makes about 13 passes over each tile where autograd through a recomputed log-softmax made ~23:
on this CPU those passes, not the LM head's matmuls, were most of the head's time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedModel

_POSITIONS_PER_CHUNK = 128  # full-vocabulary logits held at once: 128 × 49k × 4 bytes ≈ 25 MB for SmolLM2
# exp() of anything lower underflows below fp32's smallest normal number (1.2e-38); on x86 CPUs torch.exp then
# runs ~20× slower (measured: 2.3 ms → 47 ms on a 128 × 49k tile, flush-to-zero mode or not). Clamping there changes a
# softmax's sum by < 49k × 1.7e-38: nothing at fp32 precision.
_EXP_FLOOR = -87.0
# Eager attention keeps every layer's attention probabilities for the backward: allowed up to this many bytes.
_EAGER_ATTENTION_BYTES = 1024**3


# fields only some architectures have: a value other than None or 1 scales or caps the logits
_SCALED_HEAD = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")
# a hybrid's other layers (convolutions, state-space or linear attention: LFM2, Qwen3.5) keep caches of their own
_ATTENTION_LAYERS = {"full_attention", "sliding_attention", "chunked_attention"}


def unsupported_because(model: PreTrainedModel) -> str | None:
    """Why this path (and the fast sampler) does not reproduce `model`'s forward, or None where it does: decoder-only
    text models of attention layers, without logit scaling or soft-capping (Llama, Qwen2, Mistral, SmolLM, …)."""
    config, name = model.config.get_text_config(), type(model).__name__
    if config is not model.config or not hasattr(model, "model") or config.is_encoder_decoder:
        return f"{name} is not a decoder-only text model"
    scaled = [f"{key} {getattr(config, key)}" for key in _SCALED_HEAD if getattr(config, key, None) not in (None, 1.0)]
    if scaled:
        return f"{name} scales or caps its logits ({', '.join(scaled)})"
    others = sorted(set(getattr(config, "layer_types", None) or ()) - _ATTENTION_LAYERS)
    if others:
        return f"{name} has layers other than attention ({', '.join(others)})"
    # both paths score the backbone's hidden states with `lm_head`: ModernBERT's decoder has a prediction head
    # (dense, activation, norm) before its vocabulary projection, which they skipped
    if getattr(model, "lm_head", None) is not model.get_output_embeddings():
        return f"{name}'s output head is more than its lm_head"
    return None


def supports(model: PreTrainedModel) -> bool:
    return unsupported_because(model) is None


def shared_prefix_logps(
    model: PreTrainedModel,
    prompt_ids: torch.Tensor,  # (B, P), left-padded
    prompt_mask: torch.Tensor,  # (B, P)
    completion_ids: torch.Tensor,  # (B, C)
    completion_mask: torch.Tensor,  # (B, C), right-padded
    temperature: float,
    compute_entropy: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs (B, C) of the completions at `temperature`, and their entropies when asked.

    `model` is the causal LM (a LoRA-wrapped one's base model); its backbone is `model.model`.
    """
    # one prompt: the same ids and the same mask (a prompt that starts with the pad token id is told from a padded one)
    prompts = torch.cat([prompt_ids, prompt_mask.to(prompt_ids.dtype)], dim=1)  # (B, 2P)
    unique, row_to_prompt = torch.unique(prompts, dim=0, return_inverse=True)  # (U, 2P), (B,)
    width = prompt_ids.size(1)
    unique_prompts, unique_mask = unique[:, :width], unique[:, width:].to(prompt_mask.dtype)  # (U, P) each

    backbone = model.model
    cache = DynamicCache(config=model.config)
    prompt_hidden = backbone(
        input_ids=unique_prompts, attention_mask=unique_mask, past_key_values=cache, use_cache=True
    )
    cache.batch_select_indices(row_to_prompt)  # (U, …) → (B, …): a gather, so gradients reach the shared prompts
    with _attention_for(model, completion_ids.shape, prompt_ids.size(1)):  # the prompts' prefill keeps its kernel
        completion_hidden = backbone(
            input_ids=completion_ids,
            attention_mask=torch.cat([prompt_mask, completion_mask], dim=1),
            past_key_values=cache,
            use_cache=True,
        ).last_hidden_state  # (B, C, D)

    # The hidden state before each completion token predicts it: the prompt's last one, then the completion's own.
    last_prompt = prompt_hidden.last_hidden_state[:, -1:][row_to_prompt]  # (B, 1, D)
    predicting = torch.cat([last_prompt, completion_hidden[:, :-1]], dim=1)  # (B, C, D)

    scored = completion_mask.bool()
    lm_head = model.get_output_embeddings()
    hidden, targets = predicting[scored], completion_ids[scored]  # (N, D), (N,): the real completion tokens
    chunks = [
        TokenLogProbs.apply(hidden[start : start + _POSITIONS_PER_CHUNK], lm_head.weight, lm_head.bias,
                          targets[start : start + _POSITIONS_PER_CHUNK], temperature)
        for start in range(0, len(targets), _POSITIONS_PER_CHUNK)
    ]  # fmt: skip
    if not chunks:  # nothing to score: a differentiable zero keeps the batch connected to the graph
        zero = predicting.sum() * 0.0
        return zero.expand(scored.shape).float(), zero.detach().expand(
            scored.shape
        ).float() if compute_entropy else None
    # masked_scatter puts each scored position back in its place; padding positions are 0, as in TRL's path
    log_probs = torch.cat([logps for logps, _ in chunks])
    per_token = log_probs.new_zeros(scored.shape).masked_scatter(scored, log_probs)
    if not compute_entropy:
        return per_token, None
    entropy = torch.cat([entropy for _, entropy in chunks])
    return per_token, entropy.new_zeros(scored.shape).masked_scatter(scored, entropy)


@contextmanager
def _attention_for(model: PreTrainedModel, completion_shape: torch.Size, prompt_width: int) -> Iterator[None]:
    """Eager attention for this forward on a CPU, when its saved attention probabilities are small.

    Measured on SmolLM2-135M, 16 rows, 2 CPU cores: torch's CPU flash-attention kernel (what sdpa picks) made the
    loss's forward + backward 2.5 s at 64-token completions, 3.5 s at 96 and 9.6 s at 256, where eager attention
    (two matmuls and a softmax) made it 2.1, 2.8 and 8.0 s, with the same log-probs. Decoding one token at a time is
    the other way round, so the sampler keeps the model's own kernel. Eager keeps each layer's attention
    probabilities (rows × heads × completion × (prompt + completion)) for the backward, in fp32 and, in a lower
    precision, a copy in it too, hence the size bound."""
    config = model.config
    rows, completion = completion_shape
    probabilities = (
        config.num_hidden_layers * rows * config.num_attention_heads * completion * (prompt_width + completion)
    )
    kept_bytes = 4 + (model.dtype.itemsize if model.dtype != torch.float32 else 0)  # per probability
    eager = (
        model.device.type == "cpu"
        and config._attn_implementation != "eager"
        and probabilities * kept_bytes <= _EAGER_ATTENTION_BYTES
    )
    if not eager:
        yield
        return
    kernel = config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(kernel)


class TokenLogProbs(torch.autograd.Function):
    """Log-probs (N,) of `targets` under softmax((hidden · weightᵀ + bias) / temperature), and the entropies (N,) of
    those distributions (without gradient: in GRPO a metric and a token mask; the trainer leaves an entropy bonus to
    TRL's path). Keeps only the hidden states and each row's log-sum-exp; the backward recomputes the logits. The
    matmuls run in the autocast dtype the forward saw (else the hidden states' dtype), whatever autocast says when
    the backward runs."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature: float):
        device = hidden.device.type
        matmul_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
        logits = _scaled_logits(hidden, weight, bias, matmul_dtype, temperature)  # (N, V)
        top = logits.amax(-1, keepdim=True)  # (N, 1)
        unnormalised = (logits - top).clamp_(min=_EXP_FLOOR).exp_()  # (N, V)
        total = unnormalised.sum(-1)  # (N,)
        log_normaliser = top.squeeze(1) + total.log()  # (N,)
        # entropy = log Z − Σ p·logit, the sum as a batched dot product: one pass, no (N, V) temporary
        with torch.autocast(device, enabled=False):  # in fp32: under autocast bmm ran in bf16 (entropies below 0)
            expected_logit = torch.bmm(unnormalised[:, None, :].float(), logits[:, :, None].float()).view(-1) / total
        ctx.save_for_backward(hidden, weight, bias, targets, log_normaliser)
        ctx.temperature, ctx.matmul_dtype = temperature, matmul_dtype
        entropy = log_normaliser - expected_logit
        ctx.mark_non_differentiable(entropy)
        return logits.gather(1, targets[:, None]).squeeze(1) - log_normaliser, entropy

    @staticmethod
    def backward(ctx, grad_logps, _grad_entropy):
        hidden, weight, bias, targets, log_normaliser = ctx.saved_tensors
        dtype = ctx.matmul_dtype
        logits = _scaled_logits(hidden, weight, bias, dtype, ctx.temperature)  # (N, V), as the forward's
        # d log p(target) / d logit = one-hot(target) − softmax, and the temperature divides once more
        scale = grad_logps / ctx.temperature  # (N,)
        grad = logits.sub_(log_normaliser[:, None]).clamp_(min=_EXP_FLOOR).exp_()  # softmax
        grad.mul_(-scale[:, None])  # (N, V)
        grad[torch.arange(len(targets)), targets] += scale
        grad = grad.to(dtype)
        with torch.autocast(hidden.device.type, enabled=False):
            grad_hidden = (grad @ weight.to(dtype)).to(hidden.dtype) if ctx.needs_input_grad[0] else None
            grad_weight = (grad.T @ hidden.to(dtype)).to(weight.dtype) if ctx.needs_input_grad[1] else None
        grad_bias = grad.to(_at_least_fp32(dtype)).sum(0).to(bias.dtype) if ctx.needs_input_grad[2] else None
        return grad_hidden, grad_weight, grad_bias, None, None


def _scaled_logits(hidden, weight, bias, matmul_dtype: torch.dtype, temperature: float) -> torch.Tensor:
    """(hidden · weightᵀ + bias) / temperature, the matmul in `matmul_dtype` whatever autocast says, the result in
    at least fp32: the forward and the backward's recomputation get the same logits."""
    with torch.autocast(hidden.device.type, enabled=False):
        raw = F.linear(
            hidden.to(matmul_dtype), weight.to(matmul_dtype), None if bias is None else bias.to(matmul_dtype)
        )
    return raw.to(_at_least_fp32(matmul_dtype)).div_(temperature)


def _at_least_fp32(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)
