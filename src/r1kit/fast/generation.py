"""GRPO rollouts from the current policy, faster than `model.generate` on a CPU.

Where the time of `model.generate` goes at batch 16 on this kind of machine: the key/value cache grows by
concatenation every token, scaled-dot-product attention runs its flash kernel on a single query, and each of the
~210 LoRA-wrapped linear layers runs three matmuls instead of one. So the sampler here:
1. keeps a plain copy of the model whose linear weights are the policy's with LoRA merged in (refreshed before every
   batch of rollouts, so the rollouts come from the policy being trained; the rounding difference between merged and
   unmerged bf16 weights is measured as a metric, see `R1kitGRPOTrainer`);
2. prefills each distinct prompt once, then copies its cache to the rows of its group;
3. decodes into a preallocated (static) cache, one token for all unfinished rows at a time, dropping rows as they end
   and stopping when all have ended;
4. on a CPU, attends a decode step's single query with two small matmuls and a softmax (`decode_attention`), where
   torch's CPU flash-attention kernel spent ~160 µs a layer setting up blocks for ~130 keys (measured 107 µs vs
   159 µs a call, 16 rows, SmolLM2's 9 query / 3 key-value heads).
Sampling semantics are the config's: temperature, top-p, top-k, min-p, EOS, max length. Each row draws from its own
random stream, seeded by the caller: a row's completion then depends on its prompt, the policy and its seed only, not
on which other rows share the batch, so one process sampling all rows and two processes sampling half each produce the
same completions (the GRPO trainer seeds a row by the run's seed, the step and the row's place in the global batch).
That holds exactly in fp32. In bf16 a prompt is left-padded to the widest prompt beside it, which shifts its rotary
positions and so its rounding: now and then a token drawn near a boundary of the inverse CDF differs (1 row of 16 in a
48-token test), as it may between any two batchings of bf16 matmuls.
"""

from __future__ import annotations

import copy
import logging

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from transformers import AttentionInterface, PreTrainedModel, StaticCache
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from r1kit.fast.shared_prefix import supports
from r1kit.models import eos_token_ids

DECODE_ATTENTION = "r1kit_decode"

logger = logging.getLogger("r1kit")


class PolicySampler:
    """Samples completions of token-id prompts from `policy` (a causal LM, LoRA-wrapped or not)."""

    @staticmethod
    def applies_to(model: PreTrainedModel) -> bool:
        """Whether it samples `model` (the causal LM, unwrapped) as `generate` would: a model family whose forward
        the fast paths reproduce, with a plain linear LM head, on a CPU (its tensors are built on the CPU; elsewhere
        `generate` or vLLM are the fast paths). Attention sinks (GPT-OSS) are a term its decoding attention has not."""
        return (
            model.device.type == "cpu"
            and supports(model)
            and type(model.get_output_embeddings()) is torch.nn.Linear
            and not any(name.endswith(".sinks") for name, _ in model.named_parameters())
        )

    def __init__(self, policy: PreTrainedModel, pad_token_id: int, eos_token_ids: list[int]):
        self.policy, self.pad_token_id = policy, pad_token_id
        self.eos = torch.tensor(eos_token_ids)
        base = policy.get_base_model() if isinstance(policy, PeftModel) else policy
        # LoRA-wrapped linear layers: their merged weights live in the copy; everything else is shared, not copied.
        self.lora_layers = {name: module for name, module in base.named_modules() if isinstance(module, LoraLayer)}
        state = {}
        for key, tensor in base.state_dict(keep_vars=True).items():
            if "lora_" in key:
                continue
            key = key.replace(".base_layer.", ".")
            layer = key.removesuffix(".weight")
            state[key] = torch.empty_like(tensor.detach()) if layer in self.lora_layers else tensor.detach()
        with torch.device("meta"):  # the structure only: every tensor is assigned below
            self.model = type(base)(copy.deepcopy(base.config))  # its own config: its attention kernel is its own
        self.model.load_state_dict(state, assign=True, strict=False)
        self.model.tie_weights()
        embeddings = base.get_input_embeddings()
        if (
            isinstance(embeddings, LoraLayer)
            and base.get_output_embeddings().weight is embeddings.get_base_layer().weight
        ):
            # LoRA on tied input embeddings changes the lookup, not the head, which stays the base weight; tied in
            # the copy, the head was the merged embedding (rollouts from another policy than the one trained)
            head = torch.nn.Parameter(base.get_output_embeddings().weight.detach(), requires_grad=False)
            self.model.get_output_embeddings().weight = head
        for name, buffer in base.named_buffers():  # computed, not saved: rotary frequencies
            module, _, attribute = name.replace(".base_layer.", ".").rpartition(".")
            setattr(self.model.get_submodule(module), attribute, buffer)
            if attribute == "inv_freq":
                self.model.get_submodule(module).original_inv_freq = buffer
        missing = [
            name for name, tensor in [*self.model.named_parameters(), *self.model.named_buffers()] if tensor.is_meta
        ]
        if missing:
            raise ValueError(f"cannot build a sampling copy of {type(base).__name__}: {missing[:3]} not set")
        self.model.requires_grad_(False).eval()
        self.model.generation_config = base.generation_config
        if base.device.type == "cpu" and base.config._attn_implementation in ("sdpa", "eager"):
            self.model.set_attn_implementation(DECODE_ATTENTION)

    @torch.no_grad()
    def refresh(self) -> None:
        """Copy the policy's current weights in: base weight plus the LoRA update (B·A·scale, computed in the
        adapter's precision), added in the base weight's dtype as PEFT's own merge does."""
        generator_modules = dict(self.model.named_modules())
        for name, layer in self.lora_layers.items():
            weight = layer.get_base_layer().weight
            delta = sum(layer.get_delta_weight(adapter) for adapter in layer.active_adapters)
            torch.add(weight, delta.to(weight.dtype), out=generator_modules[name].weight)

    @torch.inference_mode()
    def sample(
        self,
        prompts: list[list[int]],
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int | None = None,
        min_p: float | None = None,
        row_seeds: list[int] | None = None,
    ) -> tuple[list[list[int]], list[list[float]]]:
        """Completion token ids per prompt (through the first EOS, which is kept) and the log-probability of each
        sampled token under the temperature-scaled distribution (the one the loss computes).

        `row_seeds` seeds each row's random stream; by default the seeds are drawn from torch's global generator."""
        if row_seeds is None:
            row_seeds = torch.randint(2**62, (len(prompts),)).tolist()
        streams = [torch.Generator().manual_seed(seed) for seed in row_seeds]
        distinct = list(dict.fromkeys(map(tuple, prompts)))
        row_to_prompt = torch.tensor([distinct.index(tuple(p)) for p in prompts])  # (B,)
        width = max(map(len, distinct))
        prompt_ids = torch.tensor([[self.pad_token_id] * (width - len(p)) + list(p) for p in distinct])  # (U, P)
        prompt_mask = (torch.arange(width) >= torch.tensor([width - len(p) for p in distinct])[:, None]).long()

        total = width + max_new_tokens
        cache = StaticCache(config=self.model.config, max_cache_len=total)
        # positions counted from each prompt's first real token, as `generate` counts them (a model of absolute
        # positions decoded a left-padded prompt at shifted ones; rotary ones differed by rounding)
        hidden = self.model.model(
            input_ids=prompt_ids,
            attention_mask=prompt_mask,
            position_ids=(prompt_mask.cumsum(-1) - 1).clamp(min=0),
            past_key_values=cache,
            cache_position=torch.arange(width),
        ).last_hidden_state[:, -1]  # (U, D); through the LM head as a 2-D matmul, which copies no weight
        prompt_lengths = prompt_mask.sum(1)[row_to_prompt]  # (B,): the position of each row's first new token
        logits = self.model.lm_head(hidden.contiguous())[row_to_prompt]  # (B, V): for every row of each group
        for layer in cache.layers:  # (U, …) → (B, …): the group's rows share their prompt's keys and values
            layer.keys, layer.values = layer.keys[row_to_prompt], layer.values[row_to_prompt]
        # positions past the prompt are all real tokens; the causal mask keeps each step from seeing ahead
        attention_mask = torch.cat([prompt_mask[row_to_prompt], torch.ones(len(prompts), max_new_tokens).long()], 1)

        rows = torch.arange(len(prompts))  # the original row of each row still being decoded
        tokens = torch.full((len(prompts), max_new_tokens), self.pad_token_id)
        logprobs = torch.zeros(len(prompts), max_new_tokens)
        lengths = torch.full((len(prompts),), max_new_tokens)
        for step in range(max_new_tokens):
            probs = logits.float().mul_(1 / temperature).softmax(-1)  # (b, V)
            uniform = torch.cat([torch.rand(1, generator=streams[row]) for row in rows.tolist()])  # (b,)
            chosen = _sample(probs, uniform, top_p, top_k, min_p)  # (b,)
            tokens[rows, step] = chosen
            logprobs[rows, step] = probs.gather(1, chosen[:, None]).squeeze(1).log()
            ended = torch.isin(chosen, self.eos)
            lengths[rows[ended]] = step + 1
            if ended.all() or step + 1 == max_new_tokens:
                break
            if ended.any():  # drop finished rows: every later step is cheaper
                going = ~ended
                rows, chosen, attention_mask = rows[going], chosen[going], attention_mask[going]
                for layer in cache.layers:
                    layer.keys, layer.values = layer.keys[going], layer.values[going]
            logits = self.model(
                input_ids=chosen[:, None],
                attention_mask=attention_mask,
                position_ids=(prompt_lengths[rows] + step)[:, None],
                past_key_values=cache,
                cache_position=torch.tensor([width + step]),
                logits_to_keep=1,
            ).logits[:, -1]
        return (
            [tokens[row, : lengths[row]].tolist() for row in range(len(prompts))],
            [logprobs[row, : lengths[row]].tolist() for row in range(len(prompts))],
        )


def decode_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """Attention for one new token (query (B, H, 1, D) against keys/values (B, KV, L, D)), as transformers' sdpa
    computes it; anything else (a prompt's prefill, options it does not implement) goes to sdpa itself.

    The H query heads are viewed as KV groups of H / KV heads sharing a key/value head, so nothing is repeated."""
    if query.size(2) != 1 or dropout or kwargs.get("position_bias") is not None or kwargs.get("softcap") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    rows, heads, _, dim = query.shape
    scale = dim**-0.5 if scaling is None else scaling
    grouped = query.view(rows, key.size(1), heads // key.size(1), dim)  # (B, KV, H / KV, D)
    scores = torch.matmul(grouped, key.transpose(-1, -2)).float().mul_(scale)  # (B, KV, H / KV, L)
    if attention_mask is not None:  # sdpa's mask: (B, 1, 1, L), True (or 0.0) where the token may attend
        if attention_mask.dtype == torch.bool:
            scores.masked_fill_(~attention_mask, float("-inf"))
        else:
            scores.add_(attention_mask)
    output = torch.matmul(scores.softmax(-1).to(value.dtype), value)  # (B, KV, H / KV, D)
    return output.view(rows, 1, heads, dim), None  # (B, 1, H, D): what the attention module reshapes


AttentionInterface.register(DECODE_ATTENTION, decode_attention)
AttentionMaskInterface.register(DECODE_ATTENTION, sdpa_mask)


def sampler_for(model: PreTrainedModel, tokenizer) -> PolicySampler | None:
    """r1kit's sampler over `model` (LoRA-wrapped or not), ending completions at TRL's EOS tokens, where it applies;
    None where it does not, or where its sampling copy cannot be built for the architecture (then `generate`)."""
    if not PolicySampler.applies_to(model.get_base_model() if isinstance(model, PeftModel) else model):
        return None
    try:
        sampler = PolicySampler(model, tokenizer.pad_token_id, eos_token_ids(model, tokenizer))
        gap = _sampling_gap(sampler, model)
    except Exception as error:  # an architecture its copy cannot decode (a cache layer without keys: AttributeError)
        logger.warning("fast sampler unavailable (%s: %s); using model.generate", type(error).__name__, error)
        return None
    if gap > _LARGEST_GAP:
        logger.warning(
            "fast sampler unavailable: its log-probs differ from %s's own forward by %.2f nats a token; using "
            "model.generate",
            type(model).__name__,
            gap,
        )
        return None
    return sampler


# nats a token between the sampler's log-probs and the model's own forward beyond which its decoding is not the
# model's (bf16 rounding gives a few hundredths: 0.03 on the base SmolLM2)
_LARGEST_GAP = 0.5


@torch.no_grad()
def _sampling_gap(sampler: PolicySampler, model: PreTrainedModel) -> float:
    """Mean |log-prob| difference a token between the up to 4 tokens the sampler draws for each row of a small batch
    and the model's own forward over them: a model family the fast paths do not reproduce fails here (or raises), not
    in training. Two prompts of different lengths, two rows each, as a GRPO batch has them: the padding and the copy
    of a prompt's cache to its group are part of what is compared."""
    sampler.refresh()
    short, long = (
        [token % model.config.vocab_size for token in tokens] for tokens in ((11, 12, 13), (14, 15, 16, 17, 18))
    )
    prompts = [short, short, long, long]
    completions, sampled = sampler.sample(prompts, 4, row_seeds=[0, 1, 2, 3])
    training = model.training
    model.eval()  # no dropout in the comparison
    gaps = []
    try:
        for prompt, completion, logps in zip(prompts, completions, sampled, strict=True):
            logits = model(input_ids=torch.tensor([prompt + completion], device=model.device)).logits[0].float()
            taken = torch.tensor(completion, device=logits.device)[:, None]
            own = logits[len(prompt) - 1 : -1].log_softmax(-1).gather(1, taken).squeeze(1).cpu()
            gaps.append((own - torch.tensor(logps)).abs())
    finally:
        model.train(training)
    return torch.cat(gaps).mean().item()


def row_seeds(key: tuple[int, ...], first_row: int, rows: int) -> list[int]:
    """A seed for each of `rows` rows, numbered from `first_row` in the batch that `key` names (the run's seed, the
    step, …): a row gets the same seed however the batch is split between processes.

    >>> row_seeds((7, 3), 2, 2) == row_seeds((7, 3), 0, 4)[2:]
    True
    """
    return [hash((*key, first_row + row)) & (2**63 - 1) for row in range(rows)]


def restrict(probs: torch.Tensor, top_p: float, top_k: int | None, min_p: float | None) -> torch.Tensor:
    """Temperature-scaled probabilities (b, V) with the tokens `generate` would not sample set to 0 (not
    renormalised): its warpers' order (top-k, then top-p over what top-k left, then min-p) and its boundaries.

    >>> restrict(torch.tensor([[0.5, 0.3, 0.2]]), top_p=0.5, top_k=None, min_p=None)
    tensor([[0.5000, 0.0000, 0.0000]])
    >>> restrict(torch.tensor([[0.5, 0.3, 0.2]]), top_p=0.6, top_k=2, min_p=None)  # 0.6 of what top-k kept
    tensor([[0.5000, 0.0000, 0.0000]])
    """
    if top_k:
        kth = probs.topk(min(top_k, probs.size(-1)), dim=-1).values[:, -1:]
        probs = probs.masked_fill(probs < kth, 0.0)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(-1, descending=True)
        mass_above = sorted_probs.cumsum(-1) - sorted_probs  # of the likelier tokens
        # generate keeps the smallest set whose mass reaches top_p of what top-k left (so the likeliest token always)
        outside = mass_above >= top_p * sorted_probs.sum(-1, keepdim=True)
        probs = probs.scatter(1, order, sorted_probs.masked_fill(outside, 0.0))
    if min_p:  # relative to the likeliest token, so renormalising or not gives the same set
        probs = probs.masked_fill(probs < min_p * probs.max(-1, keepdim=True).values, 0.0)
    return probs


def _sample(
    probs: torch.Tensor, uniform: torch.Tensor, top_p: float, top_k: int | None, min_p: float | None
) -> torch.Tensor:
    """One token per row from temperature-scaled probabilities (b, V), restricted as `generate` restricts them, with
    the row's uniform number in [0, 1) (b,).

    Inverse-CDF sampling: one uniform number per row against the cumulative probabilities. `torch.multinomial`
    draws an exponential variate for every vocabulary entry (49k per row), which cost 16 ms of a ~60 ms decode step.
    """
    probs = restrict(probs, top_p, top_k, min_p)
    cumulative = probs.cumsum(-1)  # (b, V); restricted rows are not renormalised, so scale the draw instead
    total = cumulative[:, -1:]
    # token i covers [cumulative[i-1], cumulative[i]): the first entry above the draw, so a draw of exactly 0 takes
    # the first token with probability, not token 0; kept below the total, which float rounding could reach
    draw = torch.minimum(uniform[:, None] * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cumulative, draw, right=True).squeeze(1)
