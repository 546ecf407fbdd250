"""Several processes under `accelerate launch` (or torchrun): who writes the run folder, and how evaluation and
generation share out their prompts.

One process (nothing launched) is the common case and stays exactly as it was: every helper here is then a no-op
that never touches accelerate or torch.distributed. Launched with N processes:
- generation is split into N contiguous shares, one per process, and gathered back in order on every process, so
  each process goes on with the same, complete results (`shard`, `gather`);
- only the main process writes the run folder (`is_main`); the others `wait` where they then read what it wrote;
- a decision taken from the run folder's state (a stage complete, a result cached) is the main process's, sent to all
  (`from_main`): a process that read the folder a moment later, after the main process wrote to it, would otherwise
  skip work that holds a collective operation, and every other process would wait for it forever.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import torch
    from accelerate import PartialState

T = TypeVar("T")

# Why ZeRO-3 and FSDP are refused before any work: each process holds a shard of every weight, and a stage's model is
# saved (LoRA merged in) from the main process's whole weights, which there are empty shards; gathering them is not
# built yet (and untested without a GPU).
SHARDED_WEIGHTS = (
    "r1kit saves a stage's model from whole weights, and ZeRO-3 and FSDP shard them over the processes (gathering "
    "them is not built yet): use ddp, or deepspeed_zero2 (optimizer state and gradients sharded, weights whole)"
)

# What torchrun (accelerate's multi-process launcher) and the MPI launchers set: the number of processes, in all and
# on this machine (read as accelerate reads them, without importing it for a single process).
_WORLD_SIZE = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
_LOCAL_SIZE = ("LOCAL_WORLD_SIZE", "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE")
_cpu: bool | None = None  # the run's device is the CPU: set by `start`, before anything joins the process group


def _env_int(names: Sequence[str], default: int = 1) -> int:
    for name in names:
        value = os.environ.get(name, "")
        if value.strip().isdigit():
            return int(value)
    return default


def launched_count() -> int:
    """Processes in the run, as its launcher set them in the environment (1 when not launched), or those a launch is
    about to start while the launching process checks the command for them (`planned`). Readable before anything
    joins the process group, so the config's batch rules can check it."""
    return _planned or _env_int(_WORLD_SIZE)


_planned: int | None = None  # the processes `r1kit --launch` will start, while it checks the command for them


@contextmanager
def planned(processes: int) -> Iterator[None]:
    """The batch rules read `processes` (`launched_count`) while the launching process checks a command for the
    processes it will start; it is not one of them (`launched` stays False: it joins no process group)."""
    global _planned
    _planned = processes
    try:
        yield
    finally:
        _planned = None


def launched_index() -> int:
    """This process's rank as its launcher set it in the environment (0 when not launched), readable before anything
    joins the process group."""
    return _env_int(_RANK, default=0)


def launched() -> bool:
    """Running as one of several processes."""
    return _env_int(_WORLD_SIZE) > 1


def local_count() -> int:
    """Processes launched on this machine (1 when not launched): they share its CPUs."""
    return _env_int(_LOCAL_SIZE) if launched() else 1


def start(device: str, precision: str) -> None:
    """Join the process group now, for the run's device: the first process-group set-up fixes the backend (gloo on
    CPUs, nccl on GPUs), and the trainer later asks for the same. Processes other than the main one keep r1kit's
    console lines to errors, so the console shows each line once. The run's precision is the trainers' whatever an
    accelerate config says: its `mixed_precision`, which `accelerate launch` exports, is what transformers falls
    back on where neither bf16 nor fp16 is set, so an fp32 run trained under bf16 autocast, and DeepSpeed refused
    it. Only a launcher's value is replaced: set in a process that goes on (tests, a notebook), it would reach a
    later trainer of another precision."""
    global _cpu
    _cpu = device == "cpu"
    if "ACCELERATE_MIXED_PRECISION" in os.environ:
        os.environ["ACCELERATE_MIXED_PRECISION"] = {"fp32": "no"}.get(precision, precision)
    if launched() and not is_main():
        logging.getLogger("r1kit").setLevel(logging.ERROR)


def _state() -> PartialState:
    # PartialState is one shared state per process; the trainer's arguments reset and rebuild it with the same device
    # choice, so it is looked up at each use rather than kept.
    from accelerate import PartialState

    cpu = _cpu if _cpu is not None else cpu_launch() or not _has_gpu()
    return PartialState(cpu=cpu)


def cpu_launch() -> bool:
    """Whether an accelerate launch asked for the CPUs (its config's `use_cpu`, exported as ACCELERATE_USE_CPU), the
    value read as accelerate's `str_to_bool` reads it."""
    return os.environ.get("ACCELERATE_USE_CPU", "").strip().lower() in ("y", "yes", "t", "true", "on", "1")


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def count() -> int:
    """The number of processes (1 when not launched)."""
    return _state().num_processes if launched() else 1


def index() -> int:
    """This process's index (0 when not launched)."""
    return _state().process_index if launched() else 0


def is_main() -> bool:
    """The process that writes the run folder and prints."""
    return not launched() or _state().is_main_process


def wait() -> None:
    """Every process waits here for the others (after the main process wrote what they read next)."""
    if launched():
        _state().wait_for_everyone()


def shard(items: Sequence[T]) -> list[T]:
    """This process's contiguous share of `items`, in order (all of them when not launched). Shares differ in size
    by at most one item; a process may get none."""
    if not launched():
        return list(items)
    with _state().split_between_processes(list(items)) as share:
        return list(share)


def gather(share: Sequence[T]) -> list[T]:
    """Every process's share, concatenated in process order, on every process: the inverse of `shard`."""
    if not launched():
        return list(share)
    from accelerate.utils import gather_object

    _state()  # the shared state gather_object reads
    return list(gather_object(list(share)))


def finish() -> None:
    """Leave the process group once the command is done, on every process. Left to the interpreter's exit, gloo's
    worker threads were now and then torn down mid-way, and a process ended in "terminate called without an active
    exception" (SIGABRT) after its work was written (pytorch/pytorch#190489)."""
    if not launched():
        return
    import torch.distributed

    if torch.distributed.is_initialized():
        _state().wait_for_everyone()  # no process still in a collective operation with the others
        torch.distributed.destroy_process_group()


def from_main(value: T) -> T:
    """The main process's `value`, on every process."""
    if not launched():
        return value
    from accelerate.utils import broadcast_object_list

    _state()
    return broadcast_object_list([value], from_process=0)[0]


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of `tensor` over every process, on every process (`tensor` itself when not launched)."""
    if not launched():
        return tensor
    import torch.distributed as dist

    # on the process group's device: NCCL, accelerate's backend on GPUs, reduces no CPU tensor (PPO's statistics)
    device = _state().device
    total = tensor.detach().to(device, copy=True)
    dist.all_reduce(total)
    return total.to(tensor.device)


def broadcast_parameters(parameters: Sequence[torch.Tensor]) -> None:
    """Copy the main process's values of `parameters` into every process, as DDP does when it wraps a model, for a
    loop that is not DDP-wrapped: freshly initialised weights (a LoRA adapter, a value head) then start equal."""
    if not launched():
        return
    import torch.distributed as dist

    _state()
    for parameter in parameters:
        dist.broadcast(parameter.data, src=0)


def average_gradients(parameters: Sequence[torch.Tensor]) -> None:
    """Replace each parameter's gradient by its mean over the processes, as DDP's backward does, for a training loop
    that is not DDP-wrapped (r1kit's PPO). One flat all-reduce for all of them."""
    if not launched():
        return
    import torch

    # Every process reduces the same layout: a parameter that got a gradient in some process but not in this one (an
    # expert no token reached here) counts as zeros, as under DDP, rather than shifting the flat vector (or hanging
    # the reduce). One that got none anywhere (the policy's, under the value loss) keeps none: the optimizer skips it.
    present = all_sum(torch.tensor([float(p.grad is not None) for p in parameters]))
    used = [p for p, anywhere in zip(parameters, present.tolist(), strict=True) if anywhere]
    for p in used:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in used]
    if not grads:
        return
    flat = all_sum(torch.cat([g.reshape(-1) for g in grads])) / count()
    for grad, chunk in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        grad.copy_(chunk.view_as(grad))


@contextmanager
def main_first() -> Iterator[None]:
    """The main process runs the block first (builds what is missing), the others after it (and find it built)."""
    if not launched():
        yield
        return
    with _state().main_process_first():
        yield
