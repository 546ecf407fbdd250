"""What machine are we on: device, precision and CPU threads, detected rather than assumed."""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch

# CPU flags that give native bf16 matrix instructions (x86's on its `flags` line, Arm's `bf16` on its `Features`
# line). Without them bf16 on CPU is emulated and slower than fp32.
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


@dataclass(frozen=True)
class Hardware:
    device: str  # "cuda", "mps" or "cpu"
    precision: str  # "bf16", "fp16" or "fp32": what training and generation run in
    threads: int  # torch intra-op threads (CPU)

    @property
    def dtype(self) -> torch.dtype:
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.precision]

    def describe(self) -> str:
        return f"{self.device} · {self.precision} · {self.threads} threads"


def available_devices() -> list[str]:
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.insert(0, "cuda")
    if torch.backends.mps.is_available():
        devices.insert(0, "mps")
    return devices


def pick_device(requested: str = "auto") -> str:
    """cuda → mps → cpu when `requested` is "auto" (cpu where an accelerate launch asks for the CPUs: `--launch cpu`
    on a machine with GPUs put every process on them); otherwise the requested one (validated elsewhere)."""
    from r1kit.distributed import cpu_launch

    if requested != "auto":
        return requested
    if cpu_launch():
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@cache
def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when the CPU advertises bf16 matrix instructions (Linux's cpuinfo: x86 flags, Arm features)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8")
    except OSError:
        return False
    flags = next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), "")
    return any(flag in flags.partition(":")[2].split() for flag in _BF16_CPU_FLAGS)


def supports_precision(device: str, precision: str) -> bool:
    if precision == "fp32":
        return True
    if device == "cuda":
        return precision == "fp16" or torch.cuda.is_bf16_supported(including_emulation=False)
    if device == "cpu":
        return precision == "bf16" and cpu_has_native_bf16()
    return precision == "fp16"  # mps


def pick_precision(device: str, requested: str = "auto") -> str:
    """bf16 where the hardware runs it natively, fp16 on older GPUs, else fp32."""
    if requested != "auto":
        return requested
    if device == "cuda":
        # without emulation: a T4 or V100 (compute capability 7.x) runs bf16 only emulated, far slower than fp16
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    if device == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def cpu_quota() -> int:
    """CPUs this process may really use: the affinity mask, capped by a cgroup CPU quota when one is set."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_cpu_limit()
    return max(1, min(cpus, math.ceil(quota))) if quota else cpus


def _cgroup_cpu_limit(
    root: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")
) -> float | None:
    """The tightest CPU quota (in CPUs) on this process's cgroup and those above it, or None. cgroup v2: the
    process's own group is named in /proc/self/cgroup (`0::/system.slice/job.scope`), and a quota set on it or on
    a slice above it (systemd-run -p CPUQuota=, a container sharing the host's cgroup namespace) is not the
    root's; v1: the cpu controller's root.

    >>> _cgroup_cpu_limit(Path("/nonexistent"), Path("/nonexistent")) is None
    True
    """
    if (root / "cgroup.controllers").exists() or (root / "cpu.max").exists():  # v2
        own = next((line[3:].strip() for line in _lines(membership) if line.startswith("0::")), "/")
        group, quotas = root / own.lstrip("/"), []
        for folder in [group, *group.parents]:
            quota = _quota(" ".join(_lines(folder / "cpu.max")).split()[:2])
            quotas += [] if quota is None else [quota]
            if folder == root:
                break
        return min(quotas) if quotas else None
    v1 = [line for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us") for line in _lines(root / "cpu" / name)[:1]]
    return _quota(v1)


def _quota(fields: list[str]) -> float | None:
    """CPUs of a cgroup's `quota period` pair, or None where it sets none ("max", v1's -1) or cannot be read (a
    kernel or container runtime that writes something else: the machine's CPUs count then, not a crash of every
    command).

    >>> _quota(["150000", "100000"]), _quota(["max", "100000"]), _quota(["-1", "100000"]), _quota(["max"]), _quota([])
    (1.5, None, None, None, None)
    """
    try:
        quota, period = (int(field) for field in fields)
    except ValueError:  # "max", a field missing or more, not a number
        return None
    return quota / period if quota > 0 and period > 0 else None


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []


def setup_hardware(device: str = "auto", precision: str = "auto", threads: int | None = None) -> Hardware:
    """Resolve the device and precision, and size torch's thread pool to the CPU quota (each process launched on this
    machine to its share of it: more threads than cores only slows every process down), or to the user's
    OMP_NUM_THREADS where fewer (`model.threads` wins over both)."""
    from r1kit.distributed import launched, local_count

    chosen_device = pick_device(device)
    share = max(1, cpu_quota() // local_count())
    # a user's OMP_NUM_THREADS (two jobs side by side) was overridden; a launcher's (torchrun sets 1 for each process it
    # starts) is not the user's: the share decides there
    asked = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not launched() and asked.isdigit() and int(asked) > 0:
        share = min(share, int(asked))
    n_threads = threads or share
    torch.set_num_threads(n_threads)
    if chosen_device == "cpu":
        keep_freed_memory()
    return Hardware(device=chosen_device, precision=pick_precision(chosen_device, precision), threads=n_threads)


def measure_matmul_peak(dtype: torch.dtype, device: str = "cpu", size: int = 1024, seconds: float = 1.0) -> float:
    """Measured dense matmul throughput in FLOP/s: the denominator of an honest MFU estimate on this machine."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    torch.matmul(a, b)  # warm-up: first call pays for kernel selection
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.matmul(a, b)
        count += 1
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * count / (time.perf_counter() - start)


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 * 1024**2  # glibc's ceiling for the mmap threshold on 64-bit systems
_NEVER_TRIM = 2**31 - 1  # the largest trim threshold mallopt takes (an int): the heap's free top is never returned


@cache
def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed blocks up to 32 MB for reuse instead of handing them back to the kernel.

    By default a block over a (dynamic) threshold is mmapped and unmapped on free, so every step's fresh activation
    and logits tensors page-fault on every 4 KB page as the kernel zeroes it again: measured on a GRPO loss step of
    SmolLM2-135M (2 CPU cores), ~600k page faults and elementwise ops over the [positions, vocabulary] logits 5–10×
    slower than on reused memory. With the threshold fixed at its maximum and no trimming, the faults drop to ~0.
    Peak RSS is unchanged (what is kept is what the next step allocates again). False where libc is not glibc."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name)
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM)
    )
