"""What evaluators import: the prepared data (`Split`, `ProbeData`), the evaluation context, the
registry and `register`, and `check_probe` (the rules of a dataset probed or fine-tuned on, which
`evals.check` applies to the probe datasets and the fine-tuning evaluator to its own). It imports no
evaluator, so each evaluator's module imports it and the package (`benchmark.evals`) imports the
evaluators, with no import loop."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmark import data
from benchmark.config import RunConfig
from benchmark.errors import UserError
from benchmark.models import pre_logits

FEATURE_BATCH = 512
# A split whose prepared (float32) images take at most this many bytes is prepared once and kept;
# a larger one (CIFAR-100's 50k training images at 224 px: 30 GB) is prepared one batch at a time.
PREPARE_ONCE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Split:
    """One split of a probe (or the upstream) dataset: its uint8 images on the model's device, as
    stored, prepared for the model (resized to `size`, scaled to [-1, 1], `channels`) when read, so
    a large split costs its uint8 bytes whatever the resolution (CIFAR-100's 50k training images:
    150 MB, not the 30 GB of float32 at 224 px). `Split.of` prepares a small one once instead."""

    images: torch.Tensor  # uint8 (N, C, H, W)
    y: torch.Tensor  # on the CPU: the probes are numpy / scikit-learn
    size: int
    channels: int
    prepared: torch.Tensor | None = field(default=None, repr=False)  # all images, prepared once

    @classmethod
    def of(cls, images: torch.Tensor, y: torch.Tensor, size: int, channels: int) -> Split:
        """A split prepared once, here, if that takes at most PREPARE_ONCE_BYTES: every evaluation
        and fine-tuning step then indexes the prepared images instead of resizing them again. The
        same numbers either way: preparation is per image (a test holds them bitwise equal)."""
        small = len(images) * channels * size * size * 4 <= PREPARE_ONCE_BYTES
        return cls(images, y, size, channels, data.prepare(images, size, channels) if small else None)

    def joined(self, other: Split) -> Split:
        """This split's examples followed by `other`'s (prepared alike: at the same size)."""
        images, y = torch.cat([self.images, other.images]), torch.cat([self.y, other.y])
        if self.prepared is None or other.prepared is None:
            return Split(images, y, self.size, self.channels)
        return Split(images, y, self.size, self.channels, torch.cat([self.prepared, other.prepared]))

    def __len__(self) -> int:
        return len(self.y)

    def x(self, index: torch.Tensor | slice) -> torch.Tensor:
        """The images at `index`, prepared for the model."""
        if self.prepared is not None:
            return self.prepared[index]
        return data.prepare(self.images[index], self.size, self.channels)

    def batches(self, index: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
        """The split's (or `index`'s) images prepared, FEATURE_BATCH at a time, in order."""
        index = torch.arange(len(self), device=self.images.device) if index is None else index
        for i in range(0, len(index), FEATURE_BATCH):
            yield self.x(index[i : i + FEATURE_BATCH])


@torch.inference_mode()
def top1(model: nn.Module, split: Split) -> float:
    """The fraction of the split's images whose highest logit is their label."""
    logits = torch.cat([model(x) for x in split.batches()])
    return (logits.argmax(1).cpu() == split.y).float().mean().item()


class ProbeData:
    """Probe datasets held once per run on the model's device, as uint8, and each split prepared
    once per resolution where it is small enough (see Split.of)."""

    def __init__(self, size: int, channels: int, device: torch.device) -> None:
        self.size, self.channels, self.device = size, channels, device
        self._images: dict[tuple[str, str], torch.Tensor] = {}
        self._splits: dict[tuple[str, str, int], Split] = {}

    def split(self, name: str, which: str, size: int = 0) -> Split:
        """One split, prepared at `size` (0: the model's input size) from the stored uint8 images
        (fine-tuning at another resolution never resizes an already resized copy)."""
        size = size or self.size
        if (name, which, size) not in self._splits:
            ds = data.load(name)
            if (name, which) not in self._images:
                self._images[(name, which)] = getattr(ds, f"{which}_x").to(self.device)
            images, y = self._images[(name, which)], getattr(ds, f"{which}_y")
            self._splits[(name, which, size)] = Split.of(images, y, size, self.channels)
        return self._splits[(name, which, size)]

    def num_classes(self, name: str) -> int:
        return data.load(name).num_classes

    def image_size(self, name: str) -> int:
        """The side of the stored images (what fine-tuning crops from)."""
        return data.load(name).image_size


@dataclass
class EvalContext:
    """What an evaluator may read: the model (in eval mode), the run's config, the prepared data,
    whether this is the final evaluation (set by `evaluate`), and what was computed from this
    model so far (frozen features, upstream predictions), shared between evaluators and between
    the evaluations of one model: the trainer keeps the context of the model it early-stops on."""

    model: nn.Module
    cfg: RunConfig
    probes: ProbeData
    upstream_test: Split | None  # None for a run from a released checkpoint: no upstream images here
    upstream_train: Split | None = None  # a fixed sample of the run's training images (evals.upstream)
    run_dir: Path | None = None  # the run's folder, for an evaluator that stores arrays there (inspect)
    final: bool = True
    _computed: dict[Hashable, Any] = field(default_factory=dict)

    def cached(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """`compute()`, once per context: the model does not change while its context is in use."""
        if key not in self._computed:
            self._computed[key] = compute()
        return self._computed[key]

    def features(self, name: str, which: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Frozen representations (float64) of a probe split, or of some of its rows only (then a
        full-length array with NaN elsewhere, so a row read by mistake poisons the result instead of
        passing silently). Feature extraction is the cost of probing, so ask for the rows you need."""
        key = ("features", name, which, None if rows is None else rows.tobytes())
        return self.cached(key, lambda: self._extract(self.probes.split(name, which), rows))

    @torch.inference_mode()
    def _extract(self, split: Split, rows: np.ndarray | None) -> np.ndarray:
        index = None if rows is None else torch.from_numpy(rows).to(split.images.device)
        chunks = [
            pre_logits(self.model, x, self.cfg.eval.representation).float().cpu()
            for x in split.batches(index)
        ]
        feats = torch.cat(chunks).numpy().astype(np.float64)
        if rows is None:
            return feats
        full = np.full((len(split), feats.shape[1]), np.nan)
        full[rows] = feats
        return full


# The EvalConfig fields no one evaluator owns: which evaluators run and when (`evaluators`,
# `every_steps`, `early_stop`: the trainer reads them), the probe datasets that several evaluators and
# early stopping read, and the representation `EvalContext.features` extracts for all of them. Every
# other field is one registered evaluator's setting (`register(..., owns=...)`; a test holds this).
SHARED_SETTINGS = ("evaluators", "fewshot_datasets", "representation", "every_steps", "early_stop")


@dataclass(frozen=True)
class Evaluator:
    """A registered evaluator: `fn` measures, `describe` says what it measured (for the run's record
    and its report), `owns` names the EvalConfig fields that are its settings (a section of its own,
    as `finetune`, or single fields), and `check` refuses, before anything runs, a config it cannot
    run with (a UserError of one line naming the fix)."""

    name: str
    fn: Callable[[EvalContext], dict[str, float]]
    describe: Callable[[RunConfig], str]
    during_training: bool = False
    owns: tuple[str, ...] = ()
    check: Callable[[RunConfig], None] | None = None


EVALUATORS: dict[str, Evaluator] = {}


def register(
    name: str,
    describe: Callable[[RunConfig], str],
    during_training: bool = False,
    *,
    owns: tuple[str, ...] = (),
    check: Callable[[RunConfig], None] | None = None,
) -> Callable[[Callable[[EvalContext], dict[str, float]]], Callable[[EvalContext], dict[str, float]]]:
    """Register the decorated `fn(ctx) -> {metric key: value}` as evaluator `name` (see Evaluator)."""

    def add(fn: Callable[[EvalContext], dict[str, float]]) -> Callable[[EvalContext], dict[str, float]]:
        if name in EVALUATORS:
            raise ValueError(f"evaluator {name!r} is registered twice")
        EVALUATORS[name] = Evaluator(name, fn, describe, during_training, owns, check)
        return fn

    return add


def check_probe(cfg: RunConfig, name: str, channels: int, probed: bool, key: str = "") -> None:
    """One probe (or fine-tuning) dataset against the model pre-trained on cfg.data.dataset; `key`
    the setting that names it, as errors say it (default: the probes' or fine-tuning's)."""
    data.check_name(name)
    role = key or ("eval.fewshot_datasets" if probed else "eval.finetune.datasets")
    if not data.available(name):
        return  # priced by its published shape (a paper preset's ImageNet); `run` refuses it
    if data.is_streaming(name):  # (the upstream may stream; probes hold their splits in memory)
        raise UserError(
            f"{role}: dataset {name!r} streams from disk and cannot be a probe or fine-tuning dataset, whose "
            "splits are held in memory; choose one held in memory (CIFAR, Pets, Flowers, a small folder:)"
        )
    probe = data.spec(name)
    if probe.channels not in (channels, 1):
        fits = [n for n in data.SOURCES if data.spec(n).channels == channels]
        raise UserError(
            f"{role}: {name!r} has {probe.channels}-channel images, but the model reads the {channels} "
            f"channel(s) of its upstream {cfg.data.dataset!r}; probe with {channels}-channel data (e.g. "
            f"{', '.join(fits)}, fractal...) or pre-train on a {probe.channels}-channel upstream (e.g. "
            f"--set data.dataset={name})"
        )
    counts = data.class_counts(name)
    if len(counts) < 2:
        raise UserError(
            f"{role}: {name!r} has {len(counts)} class: a probe needs at least 2 (one class is always "
            "right); a folder: needs one sub-folder per class"
        )
    smallest = int(counts.min())
    if probed and max(cfg.eval.shots) > smallest:
        raise UserError(
            f"eval.shots={max(cfg.eval.shots)} exceeds the {smallest} training examples of the smallest class "
            f"of {name!r}; valid: shots from 1 to {smallest}, or a probe with more examples per class"
        )
