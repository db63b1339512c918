"""Image datasets by name, fixed splits, and the pre-processing the paper uses (resize, pixels
scaled to [-1, 1]): the offline sources, the rendered fractals, and the paper's datasets read from
their on-disk formats (`formats.py`; large ones stream). Nothing here downloads.

Every dataset has train / validation / test splits (`dataset.py`), and `role()` says, from the
datasets' sources and classes, whether probing one after pre-training on another measures
transfer or reads back the pre-training data.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.data import formats, fractals, offline
from benchmark.data.dataset import ImageDataset
from benchmark.data.specs import PAPER, DatasetSpec
from benchmark.errors import UserError

__all__ = [
    "SOURCES",
    "DatasetSpec",
    "ImageDataset",
    "available",
    "check_name",
    "class_counts",
    "describe",
    "is_streaming",
    "load",
    "prepare",
    "random_shift",
    "role",
    "spec",
    "streaming",
    "subset",
]  # fmt: skip

SOURCES: dict[str, Callable[[], ImageDataset]] = {
    "mnist5k": offline.mnist5k,
    "mnist0to4": offline.mnist0to4,
    "mnist5to9": offline.mnist5to9,
    "digits": offline.digits,
    "shapes": offline.shapes,
}


# --- the kinds of dataset, and names resolved to them ----------------------------------------------


@dataclass(frozen=True)
class Resolved:
    """A dataset name resolved once: the kind that reads it and what the name asks for (a
    fractal's FractalSpec, an on-disk format's formats.Request, a paper dataset's DatasetSpec,
    an offline source's name)."""

    name: str
    kind: Kind
    request: Any


class Kind(ABC):
    """One family of dataset names: how a name of it is recognised, and how its dataset is read,
    shaped, counted and identified. The defaults work from the loaded dataset, as the offline
    sources' must; the other kinds answer from the name or a listing, decoding nothing."""

    @abstractmethod
    def parse(self, name: str) -> Any:
        """What `name` asks for; None when it is not this kind's. A malformed name of this kind
        is a one-line UserError naming its grammar."""

    def names(self) -> tuple[str, ...]:
        """The literal names an unknown-name error lists."""
        return ()

    def grammar(self) -> str | None:
        """The grammar an unknown-name error gives, for a kind of composed names."""
        return None

    @abstractmethod
    def load(self, r: Resolved) -> ImageDataset: ...

    def spec(self, r: Resolved) -> DatasetSpec:
        ds = load(r.name)
        return DatasetSpec(ds.image_size, ds.channels, ds.num_classes, len(ds.train_y), ds.provenance)

    def available(self, r: Resolved) -> bool:
        return True

    def class_counts(self, r: Resolved) -> np.ndarray:
        ds = load(r.name)
        return ds.train_y.bincount(minlength=ds.num_classes).numpy()

    def is_streaming(self, r: Resolved) -> bool:
        return False

    def streaming(self, r: Resolved) -> formats.StreamingDataset:
        raise UserError(
            f"dataset {r.name!r} is held in memory: read it with load; streamed: {formats.grammar()}"
        )

    def identity(self, r: Resolved) -> tuple[str, tuple[str, ...]]:
        """The dataset's source family and class names (`role`)."""
        ds = load(r.name)
        return ds.source, ds.classes

    def source(self, r: Resolved) -> str:
        """The dataset's source family alone, known where its images need not be (`role`)."""
        return self.identity(r)[0]


class _Fractal(Kind):
    """The rendered fractals: everything but the images follows from the name."""

    def parse(self, name: str) -> fractals.FractalSpec | None:
        return fractals.parse(name) if fractals.is_fractal(name) else None

    def grammar(self) -> str:
        return fractals.GRAMMAR

    def load(self, r: Resolved) -> ImageDataset:
        return fractals.load(r.name)

    def spec(self, r: Resolved) -> DatasetSpec:
        s = r.request
        return DatasetSpec(s.size, 1, s.categories, s.train_examples, s.provenance())

    def class_counts(self, r: Resolved) -> np.ndarray:
        return np.full(r.request.categories, r.request.per_class)

    def identity(self, r: Resolved) -> tuple[str, tuple[str, ...]]:
        return fractals.SOURCE, fractals.classes(r.request.categories)


class _OnDisk(Kind):
    """The paper's datasets in their on-disk formats (`formats.FORMATS`), answered from their
    listings; large ones stream."""

    def parse(self, name: str) -> formats.Request | None:
        return formats.parse(name) if formats.is_format(name) else None

    def grammar(self) -> str:
        return formats.grammar()

    def load(self, r: Resolved) -> ImageDataset:
        return formats.load(r.request)

    def spec(self, r: Resolved) -> DatasetSpec:
        return formats.spec(r.request)

    def available(self, r: Resolved) -> bool:
        return r.request.location.exists()

    def class_counts(self, r: Resolved) -> np.ndarray:
        return formats.train_counts(r.request)

    def is_streaming(self, r: Resolved) -> bool:
        return formats.is_streaming(r.request)

    def streaming(self, r: Resolved) -> formats.StreamingDataset:
        return formats.streaming(r.request)

    def identity(self, r: Resolved) -> tuple[str, tuple[str, ...]]:
        return formats.identity(r.request)

    def source(self, r: Resolved) -> str:
        return formats.source(r.request)


class _Offline(Kind):
    """The offline sources (`SOURCES`): small, so every answer comes from the loaded dataset."""

    def parse(self, name: str) -> str | None:
        return name if name in SOURCES else None

    def names(self) -> tuple[str, ...]:
        return tuple(SOURCES)

    def load(self, r: Resolved) -> ImageDataset:
        return SOURCES[r.name]()


class _PaperOnly(Kind):
    """The paper's datasets no format reads (JFT-300M): their published shape, for planning and
    pricing; their images are never read."""

    def parse(self, name: str) -> DatasetSpec | None:
        return PAPER[name] if name in self.names() else None

    def names(self) -> tuple[str, ...]:
        return tuple(n for n in PAPER if not formats.is_format(n))

    def load(self, r: Resolved) -> ImageDataset:
        raise UserError(
            f"dataset {r.name!r} ({r.request.provenance}) cannot be read by this version: it is known for "
            f"planning and pricing only; offline datasets: {', '.join(sorted(SOURCES))}"
        )

    def spec(self, r: Resolved) -> DatasetSpec:
        return r.request

    def available(self, r: Resolved) -> bool:
        return False

    def source(self, r: Resolved) -> str:
        return r.name


# A name is the first kind's that parses it: a fractal's prefix and a format's names come first.
KINDS: tuple[Kind, ...] = (_Fractal(), _OnDisk(), _Offline(), _PaperOnly())


def resolve(name: str) -> Resolved:
    """A dataset name's kind and what it asks for, parsed once; an unknown or malformed name is a
    one-line UserError naming the valid ones."""
    for kind in KINDS:
        request = kind.parse(name)
        if request is not None:
            return Resolved(name, kind, request)
    valid = [*sorted(n for kind in KINDS for n in kind.names()), *filter(None, (k.grammar() for k in KINDS))]
    raise UserError(f"unknown dataset {name!r}; valid: {', '.join(valid)}")


# --- datasets by name ------------------------------------------------------------------------------


def check_name(name: str) -> None:
    """Validate a dataset name without loading it (for plan-time checks)."""
    resolve(name)


@functools.cache
def load(name: str) -> ImageDataset:
    """Load a dataset by name (cached per process); a streamed one is refused (`streaming`)."""
    r = resolve(name)
    return r.kind.load(r)


def spec(name: str) -> DatasetSpec:
    """A dataset's shape for planning: published sizes for the paper's datasets and what the name
    says for the fractal ones (no images needed), the file lists' for the on-disk formats, the
    loaded dataset's for the offline ones."""
    r = resolve(name)
    return r.kind.spec(r)


def available(name: str) -> bool:
    """Whether the dataset's images can be read here: always for the offline and fractal ones; for
    an on-disk format, when its folder exists; never for JFT-300M (known for pricing only)."""
    r = resolve(name)
    return r.kind.available(r)


def class_counts(name: str) -> np.ndarray:
    """Training examples per class (the dev split held out), from labels alone: no image is
    decoded for a fractal or an on-disk dataset. What few-shot sampling draws its shots from."""
    r = resolve(name)
    return r.kind.class_counts(r)


def is_streaming(name: str) -> bool:
    """Whether a dataset is read from disk per batch (`streaming`) rather than held in memory."""
    r = resolve(name)
    return r.kind.is_streaming(r)


def streaming(name: str) -> formats.StreamingDataset:
    """An on-disk dataset's splits as torch Datasets of (uint8 (3, PX, PX), label)."""
    r = resolve(name)
    return r.kind.streaming(r)


def describe(name: str) -> str:
    """Provenance and split sizes, for a run's record (a streamed dataset is listed, not decoded)."""
    r = resolve(name)
    return r.kind.streaming(r).provenance if r.kind.is_streaming(r) else load(name).describe()


def role(probe: str, upstream: str) -> str:
    """What probing `probe` after pre-training on `upstream` measures: "transfer: ..." when the
    model never saw the probe's images nor (for one source) its classes; "read-back: ..." when the
    probe re-uses pre-training images or labels. An upstream whose images are not here (a released
    checkpoint's ImageNet-21k) is compared by its source alone, and the answer says so."""
    p, u = resolve(probe), resolve(upstream)
    if not u.kind.available(u):
        unknown = "its classes not compared: the pre-training images are not here"
        if p.kind.source(p) == u.kind.source(u):
            return f"read-back: the pre-training source ({unknown})"
        # The paper's own pre-training sets were de-duplicated against the downstream test sets (§4.1).
        return (f"transfer: images never seen in pre-training (another source; {unknown}; the paper de-duplicated "
                "its pre-training data against the downstream test sets, §4.1)")  # fmt: skip
    (p_source, p_classes), (u_source, u_classes) = p.kind.identity(p), u.kind.identity(u)
    shared = [c for c in p_classes if c in u_classes]
    if p_source == u_source:
        if shared:
            return f"read-back: the pre-training source with classes it trained on ({_few(shared)})"
        return "transfer: images and classes never seen in pre-training (same source, other classes)"
    concepts = f"; classes {_few(shared)} are ones pre-training saw as concepts" if shared else ""
    return f"transfer: images never seen in pre-training (another source){concepts}"


def _few(names: list[str], shown: int = 10) -> str:
    """Class names for a sentence: ImageNet-1k shares its 1,000 with ImageNet-21k."""
    more = f" and {len(names) - shown:,} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


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
    """Translate each image by up to 1/8 of its size (zero-pad in [-1, 1] space, then crop), on the
    device `x` and `generator` live on: one gather for the whole batch, nothing read back to the host."""
    n, _, h, w = x.shape
    pad = max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad), value=-1.0).permute(0, 2, 3, 1)  # (n, H, W, C)
    offsets = torch.randint(
        0, 2 * pad + 1, (n, 2), generator=generator, device=x.device
    )  # (dy, dx) per image
    rows = offsets[:, :1] + torch.arange(h, device=x.device)  # (n, h)
    cols = offsets[:, 1:] + torch.arange(w, device=x.device)  # (n, w)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def inception_crop(
    x: torch.Tensor,
    size: int,
    generator: torch.Generator,
    area: tuple[float, float] = (0.05, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: bool = True,
) -> torch.Tensor:
    """The paper's fine-tuning pre-processing (App. B.1.1): an inception crop of each image,
    resized to `size`×`size`, mirrored left-right with probability 1/2 when `flip`; on the device
    `x` and `generator` live on, one `grid_sample` for the whole batch, nothing read back.

    Each crop covers a fraction of the image drawn uniformly from `area` (big_vision's
    `inception_crop` default: 5% to all of it) with a width/height ratio drawn uniformly from
    `ratio`, placed uniformly where it fits: ten tries per image, the whole image when none fits
    (as TF's sampler that big_vision calls). Boxes are continuous, not whole pixels. The resize is
    bilinear without antialiasing, as TF's; growing an image that is the same as `prepare`'s.
    """
    n, tries = len(x), 10
    u = torch.rand(n, tries, 4, generator=generator, device=x.device)
    fraction = area[0] + (area[1] - area[0]) * u[..., 0]
    aspect = ratio[0] + (ratio[1] - ratio[0]) * u[..., 1]
    w, h = (fraction * aspect).sqrt(), (fraction / aspect).sqrt()  # fractions of the image's sides
    left, top = (1 - w) * u[..., 2], (1 - h) * u[..., 3]
    fits = (w <= 1) & (h <= 1)
    first = fits.int().argmax(1, keepdim=True)  # the first try that fits

    def chosen(per_try: torch.Tensor, whole: float) -> torch.Tensor:
        return torch.where(fits.any(1), per_try.gather(1, first)[:, 0], whole)

    w, h, left, top = chosen(w, 1.0), chosen(h, 1.0), chosen(left, 0.0), chosen(top, 0.0)
    coin = torch.rand(n, generator=generator, device=x.device)
    mirror = torch.where(coin < 0.5, -1.0, 1.0) if flip else torch.ones_like(w)
    # affine_grid maps output coordinates in [-1, 1] to input ones: scale by the box's side
    # (negated to mirror), shift to the box's centre.
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2] = w * mirror, 2 * left + w - 1
    theta[:, 1, 1], theta[:, 1, 2] = h, 2 * top + h - 1
    grid = F.affine_grid(theta, [n, x.shape[1], size, size], align_corners=False)
    # "border" clamps at the edge as F.interpolate does, so the whole image, unmirrored, is a plain resize.
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
