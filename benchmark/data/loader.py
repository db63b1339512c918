"""The order of the training examples, and the batches of a run of steps on the device.

The order is a pure function of (seed, epoch): a resumed run draws exactly the batches an
uninterrupted one would. Batches reach the step as uint8 images already on the device, from one
of two paths with the same order:

- `in_memory`: the whole training set sits on the device as uint8 (a 100k-image, 64 px set is
  0.4 GB); a batch is one gather, with no host round trip.
- `streamed`: a dataset too large for that is read by a DataLoader with worker processes, pinned
  memory and non-blocking copies, a few batches ahead of the step.

Pre-processing and augmentation happen on the device after either (benchmark.data.prepare,
random_shift).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

Batch = tuple[torch.Tensor, torch.Tensor]
PREFETCH = 4  # batches each worker reads ahead of the step


def epoch_permutation(epoch: int, n: int, seed: int) -> torch.Tensor:
    """The order of the training examples in one epoch: a pure function of (seed, epoch)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> torch.Tensor:
    """The examples of one step: slices of a fresh permutation each epoch, from (seed, epoch)."""
    return next(step_indices(n, step, step + 1, min(batch_size, n), seed))


def step_indices(
    n: int, start: int, stop: int, batch_size: int, seed: int, device: torch.device | None = None
) -> Iterator[torch.Tensor]:
    """The example indices of steps [start, stop): each epoch's permutation made once (and copied
    to `device` once), each step's batch a slice of it."""
    per_epoch = n // batch_size
    order: tuple[int, torch.Tensor] | None = None
    for step in range(start, stop):
        epoch, i = divmod(step, per_epoch)
        if order is None or order[0] != epoch:
            order = (epoch, epoch_permutation(epoch, n, seed).to(device))
        yield order[1][i * batch_size : (i + 1) * batch_size]


def in_memory(
    x: torch.Tensor, y: torch.Tensor, start: int, stop: int, batch_size: int, seed: int
) -> Iterator[Batch]:
    """The batches of steps [start, stop) from tensors on the device: a batch is one index into them."""
    for idx in step_indices(len(y), start, stop, batch_size, seed, x.device):
        yield x[idx], y[idx]


class StepBatches(Sampler[list[int]]):
    """`step_indices` as a DataLoader's batch sampler."""

    def __init__(self, n: int, start: int, stop: int, batch_size: int, seed: int) -> None:
        self.n, self.start, self.stop, self.batch_size, self.seed = n, start, stop, batch_size, seed

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        for idx in step_indices(self.n, self.start, self.stop, self.batch_size, self.seed):
            yield idx.tolist()


def streamed(
    dataset: Dataset,
    n: int,
    start: int,
    stop: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    workers: int,
) -> Iterator[Batch]:
    """The batches of steps [start, stop) read from `dataset` (items: a uint8 (C, H, W) image and its
    label) by `workers` processes, pinned and copied without waiting where the device is a GPU."""
    cuda = device.type == "cuda"
    loader = DataLoader(
        dataset,
        batch_sampler=StepBatches(n, start, stop, batch_size, seed),
        num_workers=workers,
        pin_memory=cuda,
        prefetch_factor=PREFETCH if workers else None,
    )
    for x, y in loader:
        yield x.to(device, non_blocking=cuda), y.to(device, non_blocking=cuda)


def gather(dataset: Dataset, indices: Sequence[int], workers: int) -> Batch:
    """The items at `indices` as two tensors (uint8 images, labels) on the host, read by `workers` processes."""
    batches = DataLoader(Subset(dataset, list(indices)), batch_size=256, num_workers=workers)
    xs, ys = zip(*batches, strict=True)
    return torch.cat(xs), torch.cat(ys)
