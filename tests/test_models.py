"""Models by alias, folder or hub id; the embedded GGUF conversion; clear errors; safe loading."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from r1kit import hardware
from r1kit.config.schema import ModelConfig
from r1kit.hardware import Hardware
from r1kit.models import BUILTIN_MODELS, ModelError, builtin_model_path, load_model, load_tokenizer, resolve_model

CPU = Hardware(device="cpu", precision="fp32", threads=1)
SRC = Path(__file__).resolve().parents[1] / "src" / "r1kit"


def test_tiny_random_is_built_once_and_complete(tiny_model: Path) -> None:
    assert (tiny_model / "r1kit_complete.json").exists()
    stamp = (tiny_model / "model.safetensors").stat().st_mtime
    assert builtin_model_path("tiny-random") == tiny_model
    assert (tiny_model / "model.safetensors").stat().st_mtime == stamp  # not rebuilt


def test_an_interrupted_build_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(dest: Path) -> None:
        (dest / "config.json").write_text("{}")
        raise KeyboardInterrupt  # killed half way

    monkeypatch.setitem(BUILTIN_MODELS, "tiny-random", ("broken", broken))
    with pytest.raises(KeyboardInterrupt):
        builtin_model_path("tiny-random", cache_dir=str(tmp_path))
    assert list((tmp_path / "models").iterdir()) == []


def test_embedded_smollm2_converts_once_to_a_plain_folder(model_cache: Path) -> None:
    folder = builtin_model_path("smollm2-135m")
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    tokenizer = load_tokenizer(ModelConfig(), str(folder))
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n")  # ChatML
    model = load_model(ModelConfig(), str(folder), CPU, for_training=False)
    assert round(model.num_parameters() / 1e6, 1) == 134.5


def test_resolving_names() -> None:
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"  # a hub id
    with pytest.raises(ModelError, match="model folder not found"):
        resolve_model("./no/such/model")
    with pytest.raises(ModelError, match="is not a model folder"):
        resolve_model(str(SRC))
    with pytest.raises(ModelError, match=r"models\.py is a file, not a model folder \(model\.name takes"):
        resolve_model(str(SRC / "models.py"))  # was: "model folder not found", of a file that is there


def test_a_mistyped_path_inside_a_local_folder_is_not_taken_for_a_hub_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run1").mkdir()
    with pytest.raises(ModelError, match="model folder not found: run1/nosuch"):  # was: a hub download, "offline?"
        resolve_model("run1/nosuch")
    assert resolve_model("no-such-org/model") == "no-such-org/model"  # a hub id still passes


def test_offline_hub_id_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under the user's own HF_HUB_OFFLINE (the tests': conftest), the error blamed the network ("this machine may be
    offline"), though only the environment kept the hub from being asked."""
    from huggingface_hub import constants

    from r1kit import hub

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "unreachable", lambda: None)  # what r1kit finds where the user turned the hub off
    offline = r"cannot load model 'no-such-org/no-such-model': HF_HUB_OFFLINE is set in this environment, so only the"
    with pytest.raises(ModelError, match=offline):
        load_tokenizer(ModelConfig(), "no-such-org/no-such-model")


def test_a_tokenizer_without_chat_template_says_what_to_do(tiny_model: Path, tmp_path: Path) -> None:
    tokenizer = load_tokenizer(ModelConfig(), str(tiny_model))
    tokenizer.chat_template = None
    tokenizer.save_pretrained(tmp_path)
    (tmp_path / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(ModelError, match=r"has no chat template.*model.chat_template=chatml"):
        load_tokenizer(ModelConfig(), str(tmp_path))
    assert load_tokenizer(ModelConfig(chat_template="chatml"), str(tmp_path)).chat_template


def test_remote_code_does_not_run_unless_asked_for(tiny_model: Path, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (tmp_path / name).write_bytes((tiny_model / name).read_bytes())
    config = json.loads((tiny_model / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "evil.EvilModel"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\nfrom transformers import LlamaForCausalLM as EvilModel\n"
    )
    model = load_model(ModelConfig(), str(tmp_path), CPU, for_training=False)  # trust_remote_code off: built-in class
    assert type(model).__name__ == "LlamaForCausalLM" and not marker.exists()


def test_no_unsafe_deserialisation_in_r1kit() -> None:
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import|from) (c?pickle|dill|joblib)\b|pickle\.loads?\(", text, re.MULTILINE), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)


def test_precision_is_detected_not_assumed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: False)
    assert hardware.pick_precision("cpu") == "fp32" and not hardware.supports_precision("cpu", "bf16")
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: True)
    assert hardware.pick_precision("cpu") == "bf16" and hardware.supports_precision("cpu", "bf16")
    assert hardware.pick_precision("cpu", "fp32") == "fp32"


def test_bf16_instructions_are_read_from_x86_flags_and_arm_features(tmp_path: Path) -> None:
    """An Arm CPU lists `bf16` on its `Features` line: it was read as no bf16 (fp32 on a Graviton3)."""
    cases = {
        "flags\t\t: fpu avx512f avx512_bf16 amx_tile\n": True,
        "flags\t\t: fpu avx512f avx2\n": False,
        "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\nCPU implementer\t: 0x41\n": True,
        "Features\t: fp asimd sve\n": False,
        "model name\t: some CPU with bf16 in its name\n": False,
    }
    for index, (text, native) in enumerate(cases.items()):
        (tmp_path / str(index)).write_text(text)
        assert hardware.cpu_has_native_bf16(tmp_path / str(index)) is native, text


def test_a_gpu_that_only_emulates_bf16_gets_fp16(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch counts a T4's or V100's emulated bf16 as supported unless asked without emulation."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert hardware.pick_precision("cuda") == "fp16" and not hardware.supports_precision("cuda", "bf16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # an A100
    assert hardware.pick_precision("cuda") == "bf16" and hardware.supports_precision("cuda", "bf16")


def test_threads_follow_the_cpu_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # the test workers' one thread each (conftest)
    quota = hardware.cpu_quota()
    assert 1 <= quota <= os.cpu_count()
    hardware.setup_hardware(threads=1)
    assert torch.get_num_threads() == 1
    hardware.setup_hardware()
    assert torch.get_num_threads() == quota
    monkeypatch.undo()
    hardware.setup_hardware()  # the test process's threads again (one under xdist), for the tests after this one


def test_a_users_omp_num_threads_is_honoured_where_fewer(monkeypatch: pytest.MonkeyPatch) -> None:
    """OMP_NUM_THREADS=1 (two jobs side by side) was overridden: every core of the quota, oversubscribed."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        assert hardware.setup_hardware().threads == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "999")
        assert hardware.setup_hardware().threads == hardware.cpu_quota()  # never more than the quota
        assert hardware.setup_hardware(threads=1).threads == 1  # model.threads wins
    finally:
        monkeypatch.undo()  # the test process's own OMP_NUM_THREADS, if any (conftest's under xdist)
        hardware.setup_hardware()  # its threads again, for the tests after this one


def test_a_cpu_quota_on_the_processs_own_cgroup_counts(tmp_path: Path) -> None:
    """cgroup v2 with the quota on a slice (systemd-run -p CPUQuota=150%, a container sharing the host's cgroup
    namespace): only the root's cpu.max was read, and every core of the machine was used."""
    root = tmp_path / "cgroup"
    (root / "system.slice" / "job.scope").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory\n")
    for folder, limit in (("", "max"), ("system.slice", "150000"), ("system.slice/job.scope", "max")):
        (root / folder / "cpu.max").write_text(f"{limit} 100000\n")
    membership = tmp_path / "cgroup-membership"
    membership.write_text("0::/system.slice/job.scope\n")
    assert hardware._cgroup_cpu_limit(root, membership) == 1.5
    membership.write_text("0::/\n")  # a process at the root: no quota
    assert hardware._cgroup_cpu_limit(root, membership) is None
    # a cpu.max of another form ("max" alone, empty, a period of 0) failed every command (ValueError,
    # ZeroDivisionError): no quota read from it, the others still count
    membership.write_text("0::/system.slice/job.scope\n")
    for odd in ("max\n", "", "50000\n", "50000 0\n", "fifty 100000\n"):
        (root / "system.slice" / "job.scope" / "cpu.max").write_text(odd)
        assert hardware._cgroup_cpu_limit(root, membership) == 1.5
    (root / "cgroup.controllers").unlink()
    (root / "cpu.max").unlink()
    (root / "cpu").mkdir()  # v1
    (root / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text("0\n")
    assert hardware._cgroup_cpu_limit(root, membership) is None
    (root / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert hardware._cgroup_cpu_limit(root, membership) == 2.0


def tiny_gguf(folder: Path) -> Path:
    """A 2-layer llama GGUF with the embedded SmolLM2's tokenizer cut to its first 1,024 tokens, its weights random
    and quantised as that file's are (Q8_0 embeddings, Q4_1 layers): converted in ~2 s where the real file takes ~20
    (most of it reading 49,152 tokens and 48,900 merges)."""
    import importlib.util

    import numpy as np
    from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter
    from gguf.quants import quantize

    from r1kit.models import SMOLLM2_GGUF, SMOLLM2_PACKAGE

    real = GGUFReader(Path(importlib.util.find_spec(SMOLLM2_PACKAGE).submodule_search_locations[0]) / SMOLLM2_GGUF)
    vocab, width, ffn, kv_width = 1024, 64, 128, 32
    tokens = real.fields["tokenizer.ggml.tokens"].contents()[:vocab]
    kept = set(tokens)
    shape = {
        "llama.block_count": 2,
        "llama.embedding_length": width,
        "llama.feed_forward_length": ffn,
        "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": 2,
        "llama.rope.dimension_count": width // 4,
        "llama.vocab_size": vocab,
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": real.fields["tokenizer.ggml.token_type"].contents()[:vocab],
        # a merge whose parts or result fell outside the kept tokens would name tokens the vocabulary lacks
        "tokenizer.ggml.merges": [
            merge
            for merge in real.fields["tokenizer.ggml.merges"].contents()
            if merge.replace(" ", "") in kept and all(part in kept for part in merge.split(" "))
        ],
    }
    path = folder / "Tiny-Q4_1.gguf"
    writer = GGUFWriter(path, "llama")
    for key, field in real.fields.items():
        if not key.startswith("GGUF.") and key != "general.architecture":  # the writer's own
            writer.add_key_value(key, shape.get(key, field.contents()), *field.types[:2])
    rng = np.random.default_rng(0)

    def weight(name: str, rows: int, columns: int, kind: GGMLQuantizationType) -> None:
        writer.add_tensor(name, quantize(rng.normal(0, 0.02, (rows, columns)).astype(np.float32), kind), raw_dtype=kind)

    weight("token_embd.weight", vocab, width, GGMLQuantizationType.Q8_0)
    for block in range(2):
        for norm in ("attn_norm", "ffn_norm"):
            writer.add_tensor(f"blk.{block}.{norm}.weight", np.ones(width, np.float32))
        for name, rows, columns in [("attn_q", width, width), ("attn_k", kv_width, width), ("attn_v", kv_width, width)]:
            weight(f"blk.{block}.{name}.weight", rows, columns, GGMLQuantizationType.Q4_1)
        weight(f"blk.{block}.attn_output.weight", width, width, GGMLQuantizationType.Q4_1)
        weight(f"blk.{block}.ffn_gate.weight", ffn, width, GGMLQuantizationType.Q4_1)
        weight(f"blk.{block}.ffn_up.weight", ffn, width, GGMLQuantizationType.Q4_1)
        weight(f"blk.{block}.ffn_down.weight", width, ffn, GGMLQuantizationType.Q4_1)
    writer.add_tensor("output_norm.weight", np.ones(width, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_gguf_file_is_a_model(tmp_path: Path) -> None:
    """`--model path/to/file.gguf`: converted once into the cache, then evaluated like any model."""
    from tests.conftest import REPO, r1kit_cli

    gguf = tiny_gguf(tmp_path)
    args = ["eval", "--model", str(gguf), "--evaluation.max_samples", "2", "--evaluation.max_new_tokens", "4"]
    done = r1kit_cli(*args, "--out", str(tmp_path / "eval"), cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "eval" / "eval" / "eval.json").read_text())
    assert result["problems"] == 2
    folder = resolve_model(str(gguf))  # cached: no second conversion
    assert "gguf-Tiny-Q4_1" in folder and (Path(folder) / "r1kit_complete.json").exists()
    assert json.loads((Path(folder) / "config.json").read_text())["num_hidden_layers"] == 2
    with pytest.raises(ModelError, match="GGUF file not found"):
        resolve_model(str(tmp_path / "missing.gguf"))


def test_a_lora_adapter_is_saved_beside_the_merged_model_and_loads_on_its_base(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from tests.conftest import REPO, r1kit_cli

    out = tmp_path / "run"
    done = r1kit_cli("sft", "--profile", "test", "--model.save_adapter", "true", "--out", str(out), cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    adapter = out / "sft" / "adapter"
    assert (adapter / "adapter_config.json").exists() and not (adapter / "model.safetensors").exists()
    assert resolve_model(str(adapter)) == str(adapter)
    # checked as its base is (it trains on merged into it): a misspelt LoRA target passed unchecked
    from r1kit.models import check_model

    with pytest.raises(ModelError, match="v_prj is not a linear layer"):
        check_model(ModelConfig(lora={"target_modules": ["q_proj", "v_prj"]}), str(adapter))
    merged = AutoModelForCausalLM.from_pretrained(out / "sft" / "model", dtype=torch.float32)
    on_base = AutoModelForCausalLM.from_pretrained(adapter, dtype=torch.float32)
    ids = torch.tensor([[1, 5, 9, 42, 7]])
    with torch.no_grad():
        # bf16 training, merged in bf16: equal up to bf16 rounding of the merged weights
        assert torch.allclose(merged(ids).logits, on_base(ids).logits, atol=0.05)


def test_an_adapter_trained_on_an_adapter_names_the_weights_it_trained_on(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`r1kit grpo --model RUN/sft/adapter --model.save_adapter true`: the new adapter named the first base (the SFT
    adapter's training was lost when it loaded), and a run's relative base path loaded only from the run's folder."""
    import json
    import shutil

    from peft import get_peft_model

    from r1kit.config.schema import ModelConfig
    from r1kit.models import load_model, load_tokenizer, save_adapter
    from r1kit.stages.common import lora_config
    from tests.conftest import REPO

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_model, tmp_path / "base")
    cfg, cpu = ModelConfig(name="base"), hardware.setup_hardware("cpu", "fp32", 1)
    tokenizer = load_tokenizer(cfg, "base")

    def trained_adapter(start: str, dest: str):
        model = get_peft_model(load_model(cfg, start, cpu, for_training=True), lora_config(cfg))
        torch.manual_seed(len(dest))
        for name, parameter in model.named_parameters():
            if "lora_B" in name:  # as if trained: a LoRA starts as the identity
                torch.nn.init.normal_(parameter, std=0.5)
        save_adapter(model, tokenizer, Path(dest), ModelConfig())
        return model

    trained_adapter("base", "first")  # a relative base, as a run's runs/<stamp>/… is
    second = trained_adapter("first", "second")
    saved = json.loads((tmp_path / "first" / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == str(tmp_path / "base")
    ids = torch.tensor([[1, 5, 9, 42, 7]])
    monkeypatch.chdir(REPO)  # loaded from elsewhere
    with torch.no_grad():
        loaded = load_model(cfg, str(tmp_path / "second"), cpu, for_training=False)
        assert torch.allclose(second(ids).logits, loaded(ids).logits, atol=1e-4)


@pytest.mark.skipif(not hardware.keep_freed_memory(), reason="glibc only")
def test_keeping_freed_memory_stops_the_page_faults_of_every_new_large_tensor() -> None:
    """A step's worth of 25 MB tensors allocated and freed again and again: by default glibc hands the freed top of
    the heap back to the kernel and the next step page-faults on each 4 KB page again; with freed memory kept, the
    pages are reused (each case in a fresh process)."""
    script = """
import resource, sys, torch
from r1kit.hardware import keep_freed_memory
if sys.argv[1] == "keep":
    keep_freed_memory()
def step():
    tensors = [torch.ones(6_400_000) for _ in range(4)]  # 4 × 25.6 MB alive at once, then all freed
    return sum(t.sum() for t in tensors)
for _ in range(2):
    step()  # warm-up: the first allocations fault either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    faults = {
        mode: int(
            subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, check=True).stdout
        )
        for mode in ("default", "keep")
    }
    # ~6,250 pages a tensor, faulted again every step: 250,000 over the 10 steps where glibc hands every block back,
    # fewer where it keeps some (68,656 seen on one machine); at least some thousands a step either way
    assert faults["default"] > 10 * 2_000, faults
    # kept: usually 0; now and then the heap grows once or twice more (another allocation took its top): 6,250 each
    # (a default of 56,186 beside a kept 6,250 was seen: a tenth was too tight)
    assert faults["keep"] < min(15_000, faults["default"] / 3), faults


def test_a_stage_folder_given_as_a_model_names_its_model_or_says_it_made_none(tmp_path: Path) -> None:
    stage = tmp_path / "run" / "02_sft"
    (stage / "model").mkdir(parents=True)
    (stage / "model" / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=f"stage folder of a run: its model is {stage / 'model'}"):
        resolve_model(str(stage))  # was: "is not a model folder: it has no config.json"
    data_stage = tmp_path / "run" / "04_rejection_sampling"
    data_stage.mkdir()
    (data_stage / "manifest.json").write_text('{"status": "complete"}')
    with pytest.raises(ModelError, match="and that stage made no model"):
        resolve_model(str(data_stage))
    # a PPO checkpoint holds its loop's state alone (README said any stage's checkpoint can be evaluated)
    checkpoint = tmp_path / "run" / "03_ppo" / "checkpoints" / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    (checkpoint / "state.pt").write_bytes(b"")
    with pytest.raises(ModelError, match=f"a PPO checkpoint: .* is written to {tmp_path / 'run' / '03_ppo' / 'model'}"):
        resolve_model(str(checkpoint))


def test_a_lora_adapter_folder_loads_merged_on_its_base_model(tiny_model: Path, tmp_path: Path) -> None:
    """An adapter folder (model.save_adapter) loaded as transformers' adapter: TRL then wrapped it in a second LoRA
    and the final save failed, and without LoRA nothing trained."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    from r1kit.models import save_adapter

    torch.manual_seed(0)
    lora = PeftLoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    adapted = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), lora)
    for name, parameter in adapted.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.5)  # B starts at zero: an adapter that changes the outputs
    save_adapter(adapted, load_tokenizer(ModelConfig(), str(tiny_model)), tmp_path / "adapter", ModelConfig())
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        expected = adapted(ids).logits
    loaded = load_model(ModelConfig(), str(tmp_path / "adapter"), CPU, for_training=True)
    assert not isinstance(loaded, PeftModel) and not getattr(loaded, "_hf_peft_config_loaded", False)
    # PEFT had frozen the merged weights: a full fine-tune failed ("element 0 of tensors does not require grad")
    assert all(parameter.requires_grad for parameter in loaded.parameters())
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, expected, atol=1e-4)
    # saved by PEFT alone (no tokenizer beside it): its base's tokenizer (was "has no tokenizer": no eval, no chat)
    adapted.save_pretrained(tmp_path / "peft_only")
    tokenizer = load_tokenizer(ModelConfig(), str(tmp_path / "peft_only"))
    assert tokenizer.get_vocab() == load_tokenizer(ModelConfig(), str(tiny_model)).get_vocab()


def test_an_adapter_trained_with_added_tokens_loads_on_its_base(tiny_model: Path, tmp_path: Path) -> None:
    """An adapter whose tokenizer adds tokens (<think> as a token, its embeddings trained with modules_to_save, as
    PEFT's recipes do) did not load: "size mismatch for embed_tokens", the base's embeddings being smaller."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<think>", "</think>"]})
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    base.resize_token_embeddings(len(tokenizer))
    lora = PeftLoraConfig(r=4, target_modules=["q_proj", "v_proj"], modules_to_save=["embed_tokens"])
    adapted = get_peft_model(base, lora)
    adapted.save_pretrained(tmp_path / "adapter")
    tokenizer.save_pretrained(tmp_path / "adapter")
    loaded = load_model(ModelConfig(), str(tmp_path / "adapter"), CPU, for_training=True)
    assert loaded.get_input_embeddings().num_embeddings == len(tokenizer)
    ids = load_tokenizer(ModelConfig(), str(tmp_path / "adapter"))("<think>")["input_ids"]
    assert ids == tokenizer("<think>")["input_ids"] and max(ids) >= len(tokenizer) - 2  # the added token, read as one
    # a base with more embeddings than tokens (Qwen's, padded): the adapter saved fewer, which the base takes
    padded = AutoModelForCausalLM.from_pretrained(tiny_model)
    padded.resize_token_embeddings(len(tokenizer) + 62)
    padded.save_pretrained(tmp_path / "padded")
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(tmp_path / "padded")
    shrunk = AutoModelForCausalLM.from_pretrained(tmp_path / "padded")
    shrunk.resize_token_embeddings(len(tokenizer))
    get_peft_model(shrunk, lora).save_pretrained(tmp_path / "adapter_of_padded")
    loaded = load_model(ModelConfig(), str(tmp_path / "adapter_of_padded"), CPU, for_training=True)
    assert loaded.get_input_embeddings().num_embeddings == len(tokenizer)
    # the embeddings saved beside a LoRA on them, or beside trainable tokens, and PEFT's older .bin weights
    added = [len(tokenizer) - 2, len(tokenizer) - 1]
    ways = {
        "lora_on_embeddings": {"target_modules": ["q_proj", "v_proj", "embed_tokens"]},
        "trainable_tokens": {
            "target_modules": ["q_proj", "v_proj"],
            "trainable_token_indices": {"embed_tokens": added},
        },
        "bin": {"target_modules": ["q_proj", "v_proj"], "modules_to_save": ["embed_tokens", "lm_head"]},
    }
    for way, settings in ways.items():
        base = AutoModelForCausalLM.from_pretrained(tiny_model)
        base.resize_token_embeddings(len(tokenizer))
        get_peft_model(base, PeftLoraConfig(r=4, **settings)).save_pretrained(
            tmp_path / way, safe_serialization=way != "bin"
        )
        loaded = load_model(ModelConfig(), str(tmp_path / way), CPU, for_training=True)
        assert loaded.get_input_embeddings().num_embeddings == len(tokenizer), way


def test_an_adapter_of_a_moved_run_loads_on_its_runs_stage_model(tiny_model: Path, tmp_path: Path) -> None:
    """A run folder moved (or copied to another machine): its later stage's adapter named the earlier stage's model
    where the run was, and a checkpoint's adapter named it relative to the folder the run started in ("Repo id must
    be in the form …"). The same stage's model in the adapter's own run is its base; a base that is nowhere is said
    as the adapter's."""
    import shutil

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from r1kit.atomic import COMPLETE_MARKER
    from r1kit.models import save_adapter

    run = tmp_path / "moved" / "run"
    shutil.copytree(tiny_model, run / "01_sft" / "model")
    (run / "01_sft" / "model" / COMPLETE_MARKER).write_text("{}")
    adapted = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model), LoraConfig(r=2, target_modules="all-linear")
    )
    tokenizer = load_tokenizer(ModelConfig(), str(tiny_model))
    for folder, base in (
        (run / "02_grpo" / "adapter", "/where/the/run/was/01_sft/model"),
        (run / "02_grpo" / "checkpoints" / "checkpoint-3", "runs/run/01_sft/model"),
    ):
        adapted.peft_config["default"].base_model_name_or_path = base
        adapted.save_pretrained(folder)
        loaded = load_model(ModelConfig(), str(folder), CPU, for_training=False)
        assert loaded.config.vocab_size == adapted.config.vocab_size
    adapted.peft_config["default"].base_model_name_or_path = "/nowhere/base"
    save_adapter(adapted, tokenizer, tmp_path / "lone", ModelConfig())
    with pytest.raises(ModelError, match=r"lone is a LoRA adapter whose base model /nowhere/base \(its adapter_config"):
        load_model(ModelConfig(), str(tmp_path / "lone"), CPU, for_training=False)


def test_an_adapter_is_merged_only_onto_the_base_it_was_trained_on(tiny_model: Path, tmp_path: Path) -> None:
    """An adapter named its base by path alone: a run renamed and a new one started under its name (or its SFT stage
    redone), the old GRPO adapter and checkpoints were merged onto the new SFT model, a model no one trained, without
    a word. Its base's content is recorded beside it: the same stage's model of its own run is taken where that one
    matches, else it is refused."""
    import shutil

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from r1kit.atomic import COMPLETE_MARKER
    from r1kit.models import BASE_RECORD, save_adapter
    from r1kit.pipeline import _Hashes

    def made_again(folder: Path, seed: int) -> None:  # another model under the same path
        model = AutoModelForCausalLM.from_pretrained(folder)
        torch.manual_seed(seed)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.1)
        model.save_pretrained(folder)

    run = tmp_path / "run"
    base = shutil.copytree(tiny_model, run / "01_sft" / "model")
    (base / COMPLETE_MARKER).write_text("{}")
    adapted = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=2, target_modules="all-linear"))
    adapter = run / "02_grpo" / "adapter"
    save_adapter(adapted, load_tokenizer(ModelConfig(), str(base)), adapter, ModelConfig())
    assert (adapter / BASE_RECORD).is_file()
    ids = torch.tensor([[5, 6, 7, 8]])
    expected = load_model(ModelConfig(), str(adapter), CPU, for_training=False)(ids).logits.detach()
    fingerprint = _Hashes().base_of(str(adapter))  # what a run that starts from the adapter is keyed by, besides it
    assert list(fingerprint) == ["model.base"]
    # a model card or a clone's metadata beside the weights is the same model
    (base / "README.md").write_text("# my model\n")
    (base / ".git").mkdir()
    (base / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert torch.allclose(load_model(ModelConfig(), str(adapter), CPU, for_training=False)(ids).logits, expected)
    # renamed, and a new run under the old name: its own run's SFT model is the base
    shutil.move(run, tmp_path / "old")
    shutil.copytree(tiny_model, base)
    made_again(base, seed=1)
    assert _Hashes().base_of(str(tmp_path / "old" / "02_grpo" / "adapter")) == fingerprint  # the same model
    moved = load_model(ModelConfig(), str(tmp_path / "old" / "02_grpo" / "adapter"), CPU, for_training=False)
    assert torch.allclose(moved(ids).logits, expected, atol=1e-5)
    # its own run's SFT model made again as well: nothing holds what it was trained on. The adapter's files alone
    # keyed it: a run started from it was "complete, skipped" (and its base evaluation reused) on another model
    made_again(tmp_path / "old" / "01_sft" / "model", seed=2)
    assert _Hashes().base_of(str(tmp_path / "old" / "02_grpo" / "adapter")) != fingerprint
    with pytest.raises(ModelError, match=r"adapter is a LoRA adapter trained on another model than the one now at"):
        load_model(ModelConfig(), str(tmp_path / "old" / "02_grpo" / "adapter"), CPU, for_training=False)


def test_a_lora_adapter_on_the_hub_trains_on_merged_into_its_base(tiny_model: Path, tmp_path: Path) -> None:
    """A hub repo holding an adapter (`--model someone/tiny-lora`) was loaded unmerged by transformers and wrapped in a
    second adapter: the stage trained, then failed to save its model ("a bug in r1kit": UnboundLocalError). The hub
    is out of reach here, so the repo is put in a hub cache as a download leaves it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from r1kit.models import save_adapter
    from tests.conftest import REPO, r1kit_cli

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-lora"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    adapted = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model), LoraConfig(r=2, target_modules="all-linear")
    )
    save_adapter(adapted, load_tokenizer(ModelConfig(), str(tiny_model)), repo / "snapshots" / commit, ModelConfig())
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "run"
    done = r1kit_cli("sft", "--profile", "test", "--model", "someone/tiny-lora", "--out", str(out), cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "sft" / "model" / "model.safetensors").exists()


def test_chatml_on_a_base_model_ends_replies_with_its_turn_end(tiny_model: Path, tmp_path: Path) -> None:
    """model.chat_template=chatml kept a base model's <|endoftext|> as the end token: SFT taught <|im_end|>, and
    generation, stopping only at <|endoftext|>, ran every reply to the token limit."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = tmp_path / "base"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.eos_token, tokenizer.chat_template = "<|endoftext|>", None
    tokenizer.save_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    model.generation_config.eos_token_id = model.config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(base)

    cfg = ModelConfig(chat_template="chatml")
    chatml = load_tokenizer(cfg, str(base))
    end = chatml.convert_tokens_to_ids("<|im_end|>")
    assert chatml.eos_token_id == end != tokenizer.eos_token_id
    assert end in load_model(cfg, str(base), CPU, for_training=False).generation_config.eos_token_id


def test_a_base_model_s_own_chatml_template_ends_replies_with_its_turn_end(tiny_model: Path, tmp_path: Path) -> None:
    """Qwen2.5 base models ship a ChatML template with <|endoftext|> as EOS: SFT taught <|im_end|>, and evaluation,
    GRPO and chat stopped only at <|endoftext|>, running every reply to the token limit (the text after the turn's
    end breaking the format reward). The token the template ends a reply with is the end token now."""
    from transformers import AutoTokenizer

    from r1kit.models import turn_end

    base = tmp_path / "base"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)  # its own ChatML template kept
    tokenizer.eos_token = "<|endoftext|>"
    tokenizer.save_pretrained(base)
    loaded = load_tokenizer(ModelConfig(), str(base))
    assert turn_end(loaded) == loaded.eos_token == "<|im_end|>"
    # a template that ends a reply with its EOS, or with no special token, changes nothing
    ends_with_eos = "{% for m in messages %}{{ m['content'] }}{{ eos_token }}{% endfor %}"
    assert load_tokenizer(ModelConfig(chat_template=ends_with_eos), str(base)).eos_token == "<|endoftext|>"
    plain = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    assert load_tokenizer(ModelConfig(chat_template=plain), str(base)).eos_token == "<|endoftext|>"
    # the saved model stops there too for a plain transformers user: its generation config named <|endoftext|> alone
    from transformers import AutoModelForCausalLM

    from r1kit.models import save_for_inference

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    model.generation_config.eos_token_id = model.config.eos_token_id = tokenizer.eos_token_id
    save_for_inference(model, loaded, tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "generation_config.json").read_text())["eos_token_id"]
    assert saved == [loaded.eos_token_id, tokenizer.eos_token_id]


def test_a_template_transformers_renders_is_valid() -> None:
    """The config checked templates with a plain Jinja parse, which refused the loop controls and the
    `{% generation %}` tag transformers renders (Cohere2's and LFM2's own templates, TRL's training templates)."""
    template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{% continue %}{% endif %}"
        "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}{% endgeneration %}"
        "{% else %}{{ m['content'] }}{% endif %}{% if loop.index > 9 %}{% break %}{% endif %}{% endfor %}"
    )
    assert ModelConfig(chat_template=template).chat_template == template
    with pytest.raises(ValueError, match="not a valid Jinja chat template"):
        ModelConfig(chat_template="{% for m in messages %}{{ m['content'] }}")


def test_a_builtin_model_with_a_gguf_file_or_revision_is_refused() -> None:
    """`--model.gguf_file X.gguf` without the repo in model.name trained the built-in model without a word."""
    with pytest.raises(ModelError, match=r"model\.gguf_file is set, but model\.name 'tiny-random' is a built-in model"):
        resolve_model("tiny-random", gguf_file="Other-Q8_0.gguf")
    with pytest.raises(ModelError, match=r"model\.revision is set"):
        resolve_model("smollm2-135m", revision="abc123")


def test_a_local_model_with_a_revision_is_refused(tiny_model: Path) -> None:
    """`--model FOLDER --model.revision abc123` trained the folder as it is, at no commit, without a word; a run
    folder (its final model) too. The hub repo's own revision still passes."""
    from r1kit.config.sources import resolve_config
    from r1kit.stages.common import model_reference_of

    for name in (str(tiny_model), f"{tiny_model}:sft"):
        config = resolve_config(environ={}, overrides=["--model", name, "--model.revision", "abc123"]).config
        with pytest.raises(ModelError, match=r"model\.revision abc123 is set, but model\.name .* is a local folder"):
            model_reference_of(name, config)
    config = resolve_config(environ={}, overrides=["--model", str(tiny_model)]).config
    assert model_reference_of(str(tiny_model), config) == str(tiny_model)
    config = resolve_config(environ={}, overrides=["--model", "org/base", "--model.revision", "abc123"]).config
    assert model_reference_of("org/base", config) == "org/base"  # a hub id (out of reach here) is asked at its commit


def test_a_hub_models_weights_are_counted_for_the_disk_check(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hub id's weights counted 0 bytes (a fixed 50 MB was the whole estimate): a full fine-tune of a 7B model
    passed the disk check with a few GB free and filled the disk at its first checkpoint. From the hub cache here."""
    from huggingface_hub import constants

    from r1kit.config.sources import resolve_config
    from r1kit.models import weights_bytes
    from r1kit.runs import disk_needed

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--org--base"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(b"w" * 3_000_000)
    (snapshot / "config.json").write_text("{}")
    assert weights_bytes("org/base") == 3_000_000
    assert weights_bytes(str(tiny_model)) == (tiny_model / "model.safetensors").stat().st_size
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # never downloaded, and no hub to ask
    assert weights_bytes("org/other") is None
    # checked before the run (its config.json alone in the cache): the hub is asked, not "0 bytes"
    partial = tmp_path / "hub" / "models--org--partial"
    (partial / "refs").mkdir(parents=True)
    (partial / "refs" / "main").write_text("4567cdef")
    (partial / "snapshots" / "4567cdef").mkdir(parents=True)
    (partial / "snapshots" / "4567cdef" / "config.json").write_text("{}")
    assert weights_bytes("org/partial") is None
    full = resolve_config(environ={}, overrides=["--model", "org/base", "--model.lora.enabled", "false"]).config
    limit = full.training.checkpoint.save_total_limit
    assert disk_needed(3_000_000, full, "run") == 3_000_000 * (len(full.stages) + 3 * limit) + 50_000_000
    # a stage alone makes one model (it counted the default recipe's two), a data stage none
    assert disk_needed(3_000_000, full, "sft") == 3_000_000 * (1 + 3 * limit) + 50_000_000
    assert disk_needed(3_000_000, full, "cold_start") == 50_000_000


def test_a_chat_template_that_is_no_template_is_refused() -> None:
    """`ChatML` (not `chatml`) and a template file's name were taken as the template itself: every prompt was that
    text, eval and GRPO ran on it, and SFT's refusal told the user to set model.chat_template=chatml."""
    assert ModelConfig(chat_template="ChatML").chat_template == "chatml"
    with pytest.raises(ValueError, match=r"'templates/my_chat.jinja' is neither chatml nor a Jinja chat template"):
        ModelConfig(chat_template="templates/my_chat.jinja")


def test_a_model_folder_without_a_tokenizer_says_so(tiny_model: Path, tmp_path: Path) -> None:
    """A Trainer checkpoint saved without its tokenizer gave "You need to have sentencepiece or tiktoken installed"."""
    import shutil

    folder = tmp_path / "weights-only"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_model / name, folder / name)
    with pytest.raises(ModelError, match=r"weights-only has no tokenizer .*tokenizer.save_pretrained"):
        load_tokenizer(ModelConfig(), str(folder))


# Gemma 2's own chat template: a system message raises, and so does any order but user, assistant, user, ...
GEMMA2_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)


def test_a_chat_template_without_a_system_turn_gets_the_system_prompt_in_the_first_user_message(
    tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Gemma-style templates raise on a system role: r1kit refused them (a system prompt is how it asks), and
    `--prompt.system ""` did not lift the refusal. The system prompt now heads the first user message, as Gemma 3's
    template does itself; a template that fails for another reason is still a clear error."""
    tokenizer = load_tokenizer(ModelConfig(chat_template=GEMMA2_TEMPLATE), str(tiny_model))
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2 + 2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "3 + 3?"},
    ]
    asked = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    assert asked.endswith(
        "<start_of_turn>user\nBe brief.\n\n2 + 2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n"
        "<start_of_turn>user\n3 + 3?<end_of_turn>\n<start_of_turn>model\n"
    )
    alone = tokenizer.apply_chat_template(conversation[1:2], tokenize=False, add_generation_prompt=True)
    assert alone.endswith("<start_of_turn>user\n2 + 2?<end_of_turn>\n<start_of_turn>model\n")  # as the template has it
    assert "takes no system message (System role not supported)" in caplog.text
    caplog.clear()
    load_tokenizer(ModelConfig(chat_template=GEMMA2_TEMPLATE), str(tiny_model))
    assert "takes no system message" not in caplog.text  # said once per model, not at every stage and evaluation

    broken = "{{ raise_exception('Broken template') }}"
    with pytest.raises(ModelError, match=r"cannot ask with a system message \(Broken template\), nor with the system"):
        load_tokenizer(ModelConfig(chat_template=broken), str(tiny_model))


def test_a_chat_template_that_drops_the_system_message_silently_gets_it_in_the_first_user_message(
    tiny_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Some templates render the user and assistant turns alone (Phi-3-mini's of spring 2024): the system prompt,
    which asks for <think>/<answer>, was gone from training, evaluation and chat without a word."""
    users_only = (
        "{% for message in messages %}{% if message['role'] in ['user', 'assistant'] %}"
        "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    from r1kit.models import _say_system_folded

    _say_system_folded.cache_clear()  # said once a process: an earlier test's template may have said it
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        tokenizer = load_tokenizer(ModelConfig(chat_template=users_only), str(tiny_model))
    asked = [{"role": "system", "content": "Think first."}, {"role": "user", "content": "2 + 2?"}]
    shown = tokenizer.apply_chat_template(asked, tokenize=False, add_generation_prompt=True)
    assert shown == "<|im_start|>user\nThink first.\n\n2 + 2?<|im_end|>\n<|im_start|>assistant\n"
    assert "takes no system message (it leaves the system message out)" in caplog.text


def test_a_stage_trains_and_evaluates_with_a_template_without_a_system_turn(tmp_path: Path) -> None:
    """Before, `r1kit sft` with a Gemma-style template stopped at loading the tokenizer."""
    from tests.conftest import REPO, r1kit_cli

    out = tmp_path / "run"
    gemma = ("--model.chat_template", GEMMA2_TEMPLATE)
    done = r1kit_cli("sft", "--profile", "test", *gemma, "--sft.max_steps", "2", "--out", str(out), cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = "".join(
        path.read_text() for path in (out / "sft" / "model").glob("*") if path.suffix in (".json", ".jinja")
    )
    assert "System role not supported" in saved and "messages[1]['role'] == 'user'" in saved  # saved as it trained
    evaluated = r1kit_cli("eval", "--profile", "test", "--model", str(out), cwd=REPO)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "takes no system message" not in evaluated.stderr  # the saved template takes one


def hub_loads_recorded(monkeypatch: pytest.MonkeyPatch, *loaders: type) -> list[tuple[str, str | None]]:
    """The (reference, revision) of each `from_pretrained` call of `loaders`, each failing as an unreachable hub
    would: the hub is out of reach here, so the calls are recorded instead of answered."""
    asked: list[tuple[str, str | None]] = []

    def from_pretrained(reference: str, **kwargs) -> None:
        asked.append((reference, kwargs.get("revision")))
        raise OSError("not on this machine")

    for loader in loaders:
        monkeypatch.setattr(loader, "from_pretrained", from_pretrained)
    return asked


def test_model_revision_is_for_model_name_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """`model.revision` was passed when loading any model under the same settings: a distill student or cold start's
    refine model from another hub repo was asked for the teacher's commit ("revision not found", or other weights).
    The hub is out of reach here, so the loaders' calls are recorded instead of answered."""
    from r1kit import models

    asked = hub_loads_recorded(monkeypatch, models.AutoTokenizer, models.AutoModelForCausalLM)
    cfg = ModelConfig(name="org/teacher", revision="abc123")
    for reference in ("org/teacher", "org/student"):
        with pytest.raises(ModelError):
            load_tokenizer(cfg, reference)
        with pytest.raises(ModelError):
            load_model(cfg, reference, CPU, for_training=False)
    assert asked == [("org/teacher", "abc123")] * 2 + [("org/student", None)] * 2


def test_a_gguf_file_missing_from_a_local_folder_is_said_so(tiny_model: Path, tmp_path: Path) -> None:
    """It was answered as for a hub repo: "Checkout 'https://huggingface.co/…' … this machine may be offline"."""
    folder = tmp_path / "weights"
    folder.mkdir()
    with pytest.raises(ModelError, match=r"GGUF file not found: .*weights/missing.gguf"):
        resolve_model(str(folder), gguf_file="missing.gguf")


def test_weights_that_do_not_fit_their_config_name_the_folder(tiny_model: Path, tmp_path: Path) -> None:
    """A config.json edited away from its weights raised a RuntimeError reported as a bug in r1kit."""
    import shutil

    folder = shutil.copytree(tiny_model, tmp_path / "edited")
    config = json.loads((folder / "config.json").read_text())
    config["intermediate_size"] += 8
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="edited"):
        load_model(ModelConfig(), str(folder), CPU, for_training=False)


def test_an_alias_or_hub_id_asked_from_inside_a_run_folder_is_not_that_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`r1kit chat --model tiny-random` (or a hub id `org/model`) started in a run folder was taken as that run's
    model: asked with its system prompt and held-out data, an `eval` result written into it."""
    from r1kit.runs import run_of

    (tmp_path / "run" / "eval").mkdir(parents=True)
    (tmp_path / "run" / "config.yaml").write_text("prompt: {system: Answer like a pirate.}\n")
    monkeypatch.chdir(tmp_path / "run")
    assert run_of("tiny-random") is None and run_of("org/model") is None
    assert run_of(".") is not None and run_of(str(tmp_path / "run")).root == tmp_path / "run"


def test_an_adapter_of_a_hub_model_at_a_revision_loads_on_that_revision(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An adapter trained on `org/base` at `model.revision` recorded no revision: loaded alone (`--model ADAPTER`),
    it was merged into the repo's newest weights. The hub is out of reach, so the loaders' calls are recorded."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1kit import models
    from r1kit.models import save_adapter

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model), LoraConfig(r=2, target_modules="all-linear")
    )
    model.peft_config["default"].base_model_name_or_path = "org/base"  # as loaded from the hub
    save_adapter(
        model,
        AutoTokenizer.from_pretrained(tiny_model),
        tmp_path / "adapter",
        ModelConfig(name="org/base", revision="abc123"),
    )
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["revision"] == "abc123"
    asked = hub_loads_recorded(monkeypatch, models.AutoModelForCausalLM)
    with pytest.raises(ModelError):
        load_model(ModelConfig(name=str(tmp_path / "adapter")), str(tmp_path / "adapter"), CPU, for_training=False)
    assert asked == [("org/base", "abc123")]


def test_raw_chat_takes_a_base_model_without_a_chat_template(tiny_model: Path, tmp_path: Path) -> None:
    """`chat.raw` is for base models, yet it was refused for a tokenizer without a chat template ("set
    model.chat_template=chatml", which a tokenizer without <|im_end|> refuses too); its banner named a system prompt
    it does not send, and an empty raw prompt ended as "a bug in r1kit"."""
    import shutil

    from tests.conftest import REPO, r1kit_cli

    base = shutil.copytree(tiny_model, tmp_path / "base")
    (base / "chat_template.jinja").unlink(missing_ok=True)
    settings = json.loads((base / "tokenizer_config.json").read_text())
    settings.pop("chat_template", None)
    (base / "tokenizer_config.json").write_text(json.dumps(settings))
    asked = ("chat", "--model", str(base), "--chat.raw", "true", "--chat.max_new_tokens", "3")
    done = r1kit_cli(*asked, "--prompt", "Once upon a time", cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "raw text: no chat template, no system prompt" in " ".join(done.stdout.split())
    empty = r1kit_cli(*asked, "--prompt", "", cwd=REPO)
    assert empty.returncode == 1 and "chat.raw: an empty prompt gives the model no text to continue" in empty.stderr
    templated = r1kit_cli("chat", "--model", str(base), "--prompt", "hi", cwd=REPO)  # a chat prompt needs one
    assert templated.returncode == 1 and "has no chat template" in templated.stderr


def test_an_adapter_of_a_built_in_model_loads_after_its_cache_is_gone(tmp_path: Path) -> None:
    """A LoRA adapter of `tiny-random` (or the embedded SmolLM2) names the converted folder in the cache it trained
    with: with that cache cleared, or on another machine, it failed as a hub id ("the hub cannot be reached")."""
    import shutil

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1kit.models import save_adapter

    first = builtin_model_path("tiny-random", str(tmp_path / "cache_a"))
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(first), LoraConfig(r=2, target_modules="all-linear"))
    save_adapter(model, AutoTokenizer.from_pretrained(first), tmp_path / "adapter", ModelConfig())
    shutil.rmtree(tmp_path / "cache_a")
    cfg = ModelConfig(name=str(tmp_path / "adapter"), cache_dir=str(tmp_path / "cache_b"))
    loaded = load_model(cfg, str(tmp_path / "adapter"), CPU, for_training=False)
    assert loaded.num_parameters() > 0 and (tmp_path / "cache_b" / "models" / "tiny-random").is_dir()
    with pytest.raises(ModelError, match=r"'/nowhere/model': there is no such folder$"):
        load_model(ModelConfig(), "/nowhere/model", CPU, for_training=False)


def test_a_damaged_built_in_model_in_the_cache_is_built_again(tmp_path: Path, caplog) -> None:
    """A cached build cut short after it was complete (a disk error) never loaded again: "Error while deserializing
    header", with nothing saying it was the cache, nor that deleting it would help."""
    import logging

    from safetensors.torch import load_file

    cache = str(tmp_path / "cache")
    weights = builtin_model_path("tiny-random", cache) / "model.safetensors"
    whole = weights.stat().st_size
    with weights.open("r+b") as file:
        file.truncate(1000)
    with caplog.at_level(logging.WARNING, logger="r1kit"):
        assert builtin_model_path("tiny-random", cache) / "model.safetensors" == weights
    assert (
        "the cached build of the built-in model tiny-random is damaged" in caplog.text
        and "building it again" in caplog.text
    )
    assert weights.stat().st_size == whole and load_file(weights)
