"""A trained reward model as a reward: the `reward_model` stage's sequence-classification model scores prompt +
completion, for GRPO, RLOO and PPO alongside (or instead of) the rule-based rewards.

The reward holds only the model's path and its batch settings, so it pickles like the rule-based rewards; the model
is loaded on the first call, once per process, and scores without gradients in batches.

`rewards.reward_model.path` may name a model folder (or hub id) or an earlier stage of the recipe. Stage names are
resolved by the stage that builds its rewards, which knows the earlier stages' outputs: it calls
`resolve_reward_models(config, inputs.earlier)` before `build_rewards(config)`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from r1kit.rewards.text import Completion, completion_text

if TYPE_CHECKING:
    from r1kit.config.schema import R1kitConfig


class RewardModelScorer:
    """A sequence-classification model (num_labels=1) and its tokenizer, scoring conversations in batches.

    A conversational prompt is rendered with the tokenizer's chat template, the completion as the assistant's reply
    (as TRL's RewardTrainer renders its training pairs); a plain-text prompt is joined to the completion as is.
    Sequences over `max_length` tokens keep their end, where the score is read.
    """

    def __init__(self, path: str, device: str = "auto"):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_source(path))
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "right"
        self.tokenizer.truncation_side = "left"  # the score is read at the last token: keep the end
        dtype = torch.float32 if device == "cpu" else "auto"
        # an adapter folder (LoRA trained with task_type SEQ_CLS, its score head saved with it) loads its base here
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=dtype)
        # The score is read at the last non-pad token, which the model finds through its pad_token_id.
        model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model = model.to(device).eval()

    def render(self, prompt: Completion | None, completion: Completion) -> str:
        reply = completion_text(completion)
        if prompt is None:
            prompt = []
        if isinstance(prompt, str):
            return prompt + reply
        messages = [*prompt, {"role": "assistant", "content": reply}]
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False)
        return "\n".join(f"{m['role']}: {m['content']}" for m in messages)

    def score(
        self,
        completions: Sequence[Completion],
        prompts: Sequence[Completion] | None = None,
        batch_size: int = 8,
        max_length: int | None = 1024,
    ) -> list[float]:
        """One score per (prompt, completion)."""
        import torch

        prompts = list(prompts) if prompts is not None else [None] * len(completions)
        texts = [self.render(p, c) for p, c in zip(prompts, completions, strict=True)]
        scores: list[float] = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                texts[start : start + batch_size],
                return_tensors="pt",
                padding=True,
                truncation=max_length is not None,
                max_length=max_length,
                add_special_tokens=False,
            ).to(self.device)
            with torch.inference_mode():
                logits = self.model(**batch).logits[:, 0]
            scores += [float(v) for v in logits.float().cpu()]
        return scores


def tokenizer_source(path: str) -> str:
    """Where a reward model's tokenizer is: its folder, or for an adapter folder saved without one, the base model
    its adapter_config.json names."""
    folder = Path(path).expanduser()
    adapter = folder / "adapter_config.json"
    if not adapter.is_file() or (folder / "tokenizer_config.json").is_file():
        return path
    return json.loads(adapter.read_text(encoding="utf-8"))["base_model_name_or_path"]


_SCORERS: dict[tuple[str, str], RewardModelScorer] = {}
_LOCK = threading.Lock()


def scorer(path: str, device: str = "auto") -> RewardModelScorer:
    """The process's scorer for `path`, loaded on first use."""
    key = (str(path), device)
    with _LOCK:
        if key not in _SCORERS:
            _SCORERS[key] = RewardModelScorer(str(path), device)
        return _SCORERS[key]


@dataclass(frozen=True)
class RewardModelReward:
    """The reward model's score of each prompt + completion (a real number; higher is preferred).

    Nothing loads until the first call, so the reward copies (and pickles) cheaply to other processes:

    >>> import copy
    >>> reward = RewardModelReward("runs/demo/02_reward_model/model")  # get_reward_model_reward checks the folder
    >>> reward.__name__, copy.deepcopy(reward) == reward
    ('reward_model', True)
    >>> reward(["<think>2 + 2 = 4</think><answer>4</answer>"], prompts=[[{"role": "user", "content": "2 + 2?"}]])
    ... # doctest: +SKIP
    [1.73]
    """

    __name__ = "reward_model"
    path: str
    batch_size: int = 8
    max_length: int | None = 1024
    device: str = "auto"

    def __call__(
        self, completions: Sequence[Completion], prompts: Sequence[Completion] | None = None, **kwargs: Any
    ) -> list[float | None]:
        found = scorer(self.path, self.device)
        return list(found.score(completions, prompts, self.batch_size, self.max_length))


def get_reward_model_reward(
    path: str | None = None, batch_size: int = 8, max_length: int | None = 1024, device: str = "auto"
) -> RewardModelReward:
    from r1kit.models import ModelError, is_reward_model, looks_local

    # errors of the user's input (one line, before training), not ValueErrors a caller would take for a bug
    if not path:
        raise ModelError(
            "the reward_model reward needs rewards.reward_model.path: a reward model folder or the name of an "
            "earlier reward_model stage"
        )
    if names_a_stage(path):
        raise ModelError(
            f"rewards.reward_model.path {path!r} is neither a model folder nor a hub id (owner/name); a stage's name "
            "is resolved to its model only inside `r1kit run`, for a reward_model stage before this one"
        )
    # checked now, before training: loaded on the first reward call, a wrong folder would only cost every batch's
    # rewards (the guard scores them None) while the run goes on without a reward signal
    folder = Path(path).expanduser()
    made = reward_model_in(folder)  # a run or stage folder, as model.name takes them
    if made is not None:
        folder = made
        path = str(made)
    if looks_local(str(path)) and not any((folder / name).is_file() for name in ("config.json", "adapter_config.json")):
        raise ModelError(
            f"rewards.reward_model.path {path}: not a model folder (no config.json or adapter_config.json); a "
            "reward_model stage saves its model in RUN/<stage>/model (RUN/NN_<stage>/model in a recipe)"
        )
    adapter = folder / "adapter_config.json"
    task = json.loads(adapter.read_text(encoding="utf-8")).get("task_type") if adapter.is_file() else "SEQ_CLS"
    if task != "SEQ_CLS":  # a policy's adapter would load with a random score head and score noise
        raise ModelError(
            f"rewards.reward_model.path {path}: a {task} adapter, not a reward model's (LoRA task_type SEQ_CLS)"
        )
    config = folder / "config.json"
    architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") if config.is_file() else None
    if architectures and not is_reward_model(architectures):  # a policy, loaded with a random score head: noise
        raise ModelError(
            f"rewards.reward_model.path {path}: a {', '.join(architectures)} model writes replies, it does not score "
            "them; give a reward model (a reward_model stage's, or one saved as *ForSequenceClassification)"
        )
    return RewardModelReward(str(path), batch_size, max_length, device)


def reward_model_in(folder: Path) -> Path | None:
    """The reward model a stage folder (RUN/<stage>/model) or a run folder (its one reward model stage) holds; None
    for a model folder itself, or where there is no such model or several."""
    from r1kit.models import is_reward_model

    if (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file():
        return None
    candidates = [folder / "model"] if (folder / "model").is_dir() else sorted(folder.glob("*/model"))
    found = [
        model
        for model in candidates
        if (model / "config.json").is_file()
        and is_reward_model(json.loads((model / "config.json").read_text(encoding="utf-8")).get("architectures"))
    ]
    return found[0] if len(found) == 1 else None


def names_a_stage(reference: str) -> bool:
    """A model reference that can only be a recipe stage's name: no folder here, and no hub id (owner/name).

    >>> names_a_stage("reward_model"), names_a_stage("OpenAssistant/reward-model-deberta-v3-large"), names_a_stage("/")
    (True, False, False)
    """
    return "/" not in reference and not Path(reference).expanduser().exists()


def resolve_model_path(path: str, earlier: Mapping[str, Any], key: str) -> str:
    """`path` when it is a folder or hub id; the model of the earlier stage it names otherwise.

    >>> from types import SimpleNamespace
    >>> resolve_model_path("rm", {"rm": SimpleNamespace(model="runs/x/02_rm/model")}, "rewards.reward_model.path")
    'runs/x/02_rm/model'
    >>> resolve_model_path("models/rm", {}, "rewards.reward_model.path")
    'models/rm'
    """
    if path in earlier:
        model = earlier[path].model
        if model is None:
            raise ValueError(f"{key}: stage {path!r} made no model")
        return str(model)
    return path


def resolve_reward_models(config: R1kitConfig, earlier: Mapping[str, Any]) -> R1kitConfig:
    """`config` with `rewards.reward_model.path` and `evaluation.reward_model` naming earlier stages replaced by
    those stages' model folders (`earlier`: stage name → its StageOutput). The config itself is left unchanged."""
    resolved = config.model_copy(deep=True)
    params = resolved.rewards.reward_model
    if params.path:
        params.path = resolve_model_path(params.path, earlier, "rewards.reward_model.path")
    evaluation = resolved.evaluation
    if evaluation.reward_model:
        evaluation.reward_model = resolve_model_path(evaluation.reward_model, earlier, "evaluation.reward_model")
    if evaluation.win_rate_against:
        evaluation.win_rate_against = resolve_model_path(
            evaluation.win_rate_against, earlier, "evaluation.win_rate_against"
        )
    return resolved
