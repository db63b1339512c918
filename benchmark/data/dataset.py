"""An image dataset with fixed train / validation / test splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Fixed stratified fractions of every source. The validation split is what studies select on
# (learning rates, regularisers); the test split is what verdicts judge; the model or the
# few-shot probe trains on the train split only.
VAL_FRACTION, TEST_FRACTION = 0.1, 0.2


@dataclass(frozen=True)
class ImageDataset:
    """Images as uint8 tensors (N, C, H, W) with int64 labels; splits are fixed at load time."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]  # class names, in label order
    source: str  # the family its images come from: datasets of one source may share images
    provenance: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return self.train_x.shape[-1]

    @property
    def channels(self) -> int:
        return self.train_x.shape[1]

    def describe(self) -> str:
        """Provenance and the split sizes, for a run's record."""
        return (
            f"{self.provenance}; fixed splits: {len(self.train_y):,} train / "
            f"{len(self.val_y):,} validation / {len(self.test_y):,} test"
        )


def stratified_split(labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic per-class split into (train, val, test) indices, the same fractions per class."""
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test, n_val = round(len(idx) * TEST_FRACTION), round(len(idx) * VAL_FRACTION)
        test.append(idx[:n_test])
        val.append(idx[n_test : n_test + n_val])
        train.append(idx[n_test + n_val :])
    return tuple(np.sort(np.concatenate(part)) for part in (train, val, test))  # type: ignore[return-value]


def from_arrays(
    name: str, images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], source: str, provenance: str
) -> ImageDataset:
    train, val, test = stratified_split(labels)
    x = torch.from_numpy(images).unsqueeze(1)  # (N, 1, H, W) uint8
    y = torch.from_numpy(labels.astype(np.int64))
    provenance = f"{provenance}; split stratified by class (seed 0)"
    return ImageDataset(
        name, x[train], y[train], x[val], y[val], x[test], y[test], classes, source, provenance
    )
