"""Data-parallel runs: one process per GPU (a submitit task each), joined by torch.distributed.

A run given several tasks (Slurm: `--gpus N` per node, `--nodes M`) trains one model. Every rank
takes its slice of the same global batch (the data order is a function of (seed, step)),
DistributedDataParallel averages the gradients, so the update is the one-process update on the
whole batch up to the order of floating-point sums, and only rank 0 — the lead — writes to the
run's folder. Evaluations during training run on every rank (they are deterministic), so no rank
waits in a collective while another evaluates; the final one runs on the lead alone. Outside a
multi-task job every function here is a cheap no-op.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import submitit
import torch
import torch.distributed as dist


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_lead() -> bool:
    """Whether this process writes the run's files (rank 0, or the only process)."""
    return rank() == 0


@contextlib.contextmanager
def process_group() -> Iterator[None]:
    """Join the job's process group when submitit started several tasks for it: MASTER_ADDR,
    MASTER_PORT, RANK and WORLD_SIZE come from submitit's job environment, NCCL on GPUs and gloo on
    CPUs, each rank on the GPU of its local rank. A single task (or no job) is left alone."""
    try:
        tasks = submitit.JobEnvironment().num_tasks
    except RuntimeError:  # not inside a submitit job
        tasks = 1
    if tasks <= 1 or active():
        yield
        return
    env = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    if torch.cuda.is_available():
        torch.cuda.set_device(env.local_rank)
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def _device() -> torch.device:
    """Where this rank's collectives run: its GPU under NCCL, the CPU under gloo."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def sum_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """Element-wise sum of a small tensor over all ranks (one all-reduce); itself in one process."""
    if active():
        values = values.clone()
        dist.all_reduce(values)
    return values


def from_lead(flag: bool) -> bool:
    """The lead's value of `flag`, on every rank (e.g. whether it claimed the run)."""
    if not active():
        return flag
    value = torch.tensor([int(flag)], device=_device())
    dist.broadcast(value, src=0)
    return bool(value.item())


def same_on_all_ranks(value: int) -> bool:
    """Whether every rank holds the same integer (e.g. the step it resumed from)."""
    if not active():
        return True
    low, high = torch.tensor([value], device=_device()), torch.tensor([value], device=_device())
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    return low.item() == high.item()
