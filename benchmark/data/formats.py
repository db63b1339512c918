"""The paper's datasets read from their real on-disk formats, under one data root.

Each format is one `Format` record in FORMATS (its name, folder, dev split, source family, how to
obtain and download it) and its lister, which reads its annotations or folders, checks them, and
gives its images' paths (or CIFAR's arrays) and labels; listing, decoding, caching, splitting,
streaming and describing are the same code for every format. Names are parsed once into a
`Request` (format, pixels, folder) that every function below takes.

Where: `$VITBENCH_DATA` (the CLI's `--data-root` sets it), else `~/data`: the `root` torchvision's
downloaders are given, so `download()` and a user's own torchvision download both land where this
module reads. Expected layouts (torchvision's, checked against its source):
- `cifar10`: `cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta` (python pickles);
  `cifar100`: `cifar-100-python/train, test, meta` (fine labels).
- `pets`: `oxford-iiit-pet/images/*.jpg`, `annotations/trainval.txt`, `annotations/test.txt`.
- `flowers102`: `flowers-102/jpg/image_%05d.jpg`, `imagelabels.mat`, `setid.mat`.
- `imagenet1k`: `imagenet/train/<wnid>/*.JPEG`, `imagenet/val/<wnid>/*.JPEG` (val sorted into
  class folders, as torchvision.datasets.ImageNet leaves it); its val folder is the test split.
- `imagenet21k`: `imagenet21k/train/<wnid>/*`, and `imagenet21k/val/<wnid>/*` as the test split
  where present (the processed ImageNet-21K-P release has both); without it, a seeded 1% of the
  images is held out as test (the fall 2011 release has no test split).
- `folder:<path>`: `<path>/train/<class>/*` and `<path>/test/<class>/*`, or a single tree
  `<path>/<class>/*` from which a seeded 20% (dataset.TEST_FRACTION) is held out as test. A
  relative path is taken from the working directory; give an absolute one on a cluster.

Splits (App. B.1.1; big_vision's transfer configs): a dev split, the `val` split that studies
select on, is held out of the official training images by a seeded permutation: 2% for CIFAR,
10% for Pets and Flowers, 1% for ImageNet (and the 21k tree), 10% for a folder. `test` is the
official test split. The final run of the protocol trains on `train` + `val`. Flowers' official
training images are setid's `trnid` + `valid` (2,040: the train+val of VTAB's `trainval`);
big_vision's public transfer.py instead takes tfds' `train` (`trnid` only, 1,020), and the paper
does not say which. Its test split is `tstid` (6,149).

Pixels: a name may end in `@PX`. The stored uint8 image is the source's shorter side resized to PX
(PIL bilinear, antialiased when shrinking) and centre-cropped to PX x PX, 3 channels. Defaults:
CIFAR's native 32, and 224 elsewhere: the paper's pre-training resolution, the size every model
sees before a resolution change, and Pets or Flowers at 1.1-1.2 GB in memory (at 384 they would
take 3.3-3.6 GB); the trainer resizes to the model's input per batch (`data.prepare`).

What is verified, by design no more: CIFAR's pickles for their structure (keys, dtypes, shapes,
one integer label in range per image), image files for being decodable and within MAX_PIXELS, and
the decode cache for every source file's path, size and modification time. Pixel values are not
checked against the published checksums: zeroed or altered pixel bytes of a CIFAR batch, or an
image edited with its size and mtime kept, go undetected (`--download` checks the archives' MD5s
when it fetches them; re-download to repair a suspect copy).

Memory: a dataset whose decoded images exceed IN_MEMORY_BYTES, and ImageNet always, streams:
`streaming(req)` gives torch Datasets over the file lists, decoding per item; `load(req)`
refuses it. Smaller ones load in memory, decoded once into the disk cache (`cache.py`), keyed by
the pixels and every source file's path, size and modification time.
"""

from __future__ import annotations

import codecs
import errno
import functools
import hashlib
import os
import pickle
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmark.data import cache
from benchmark.data.dataset import TEST_FRACTION, VAL_FRACTION, ImageDataset
from benchmark.data.specs import PAPER, DatasetSpec
from benchmark.errors import UserError

VERSION = 1  # bump when a decoded byte would change: it keys the disk cache
ROOT_ENV = "VITBENCH_DATA"
DEFAULT_SIZE = 224
IN_MEMORY_BYTES = 2 * 1024**3
# The largest image decoded (width x height), checked from the header before decoding (`decode`):
# 64 megapixels, far above any image of the paper's datasets, decode to 192 MB of RGB. PIL's own
# check only warned up to twice its 89 megapixels (a 12000x12000 PNG of 140 kB decoded to 432 MB,
# with a warning); this hard limit replaces it, so that PIL does not warn before the refusal.
MAX_PIXELS = 64 * 1024**2
Image.MAX_IMAGE_PIXELS = None
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}  # torchvision's
_NAME = re.compile(r"(?P<base>.+?)(?:@(?P<px>\d+))?")


@dataclass(frozen=True)
class Format:
    """Everything that differs between on-disk formats; the rest of this module lists, verifies,
    decodes, caches, splits, streams and describes them all alike. Adding a format is one of these
    in FORMATS and its lister: nothing else names a format."""

    name: str  # the dataset's name; a format without a `folder` is named `<name>:<path>`
    folder: str | None  # where it lives under the data root; None: wherever its name's path says
    dev_fraction: float  # the dev split held out of the official training images (App. B.1.1)
    source: str | None  # its source family, for `data.role`; None: the folder it is read from
    obtain: str  # how to get it: the end of every missing- or corrupt-data error
    # Its images (or arrays) and labels, checked as they are listed, without decoding a pixel.
    lister: Callable[[Request], Listing]
    download: Callable[[Path], None] | None = None  # fetches it into a data root (`--download`)
    # The pixels of the arrays its lister reads whole (CIFAR's pickles: 32), used as they are at
    # that size; None: a lister of image files, decoded at whatever size a name asks.
    native: int | None = None
    streams: bool = False  # always streamed, however few its images (ImageNet)

    def locate(self, base: str) -> Path | None:
        """The folder a name (without its @PX) reads, or None when the name is not this format's."""
        if self.folder is not None:
            return data_root() / self.folder if base == self.name else None
        prefix = f"{self.name}:"
        if base.startswith(prefix) and base != prefix:
            return Path(base[len(prefix) :]).expanduser().resolve()
        return None


@dataclass(frozen=True)
class Request:
    """What a name asks for: a format, its pixels, and the folder it is read from (fixed when the
    name is parsed, so the per-process caches below are keyed by it)."""

    name: str
    format: Format
    size: int
    location: Path


def data_root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or Path.home() / "data").expanduser()


def grammar() -> str:
    """The names FORMATS accepts, for error messages."""
    names = [f.name if f.folder else f"{f.name}:<path>" for f in FORMATS.values()]
    return f"{', '.join(names[:-1])} or {names[-1]}, each with an optional @<pixels> (8-1024)"


def is_format(name: str) -> bool:
    """Whether a name is an on-disk format's (well-formed or not: `parse` says which)."""
    m = _NAME.fullmatch(name)
    return m is not None and any(
        m["base"] == f.name if f.folder else name.startswith(f"{f.name}:") for f in FORMATS.values()
    )


def parse(name: str) -> Request:
    """The request a name makes; a malformed one is a one-line UserError naming the grammar."""
    if m := _NAME.fullmatch(name):
        for fmt in FORMATS.values():
            location = fmt.locate(m["base"])
            if location is not None:
                size = int(m["px"] or 0) or fmt.native or DEFAULT_SIZE  # @0 too asks for the default
                if not 8 <= size <= 1024:
                    raise UserError(f"dataset {name!r} asks for {size} pixels; expected {grammar()}")
                return Request(name, fmt, size, location)
    raise UserError(f"malformed dataset name {name!r}; expected {grammar()}")


def problem(req: Request, path: Path, what: str) -> UserError:
    """The one-line error a lister raises for missing or corrupt data: the dataset, the path, and
    how to obtain it."""
    return UserError(
        f"dataset {req.name!r}: {what}: {path}; {req.format.obtain} (data root: ${ROOT_ENV} or --data-root, "
        f"now {data_root()})"
    )


# --- what a lister gives: a dataset's images and labels, without decoding ------------------------


@dataclass(frozen=True)
class Files:
    """A split's images without their pixels: paths relative to `base` as one numpy bytes array (a
    DataLoader worker's copy of 14M names costs their bytes, not 14M Python objects) and labels."""

    base: Path
    rel: np.ndarray
    labels: np.ndarray

    @classmethod
    def of(cls, base: Path, rel: list[str], labels: list[int]) -> Files:
        return cls(base, np.array([os.fsencode(r) for r in rel], dtype=bytes), np.asarray(labels, np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, i: int) -> Path:
        return self.base / os.fsdecode(self.rel[i])

    def take(self, idx: np.ndarray) -> Files:
        return Files(self.base, self.rel[idx], self.labels[idx])


@dataclass(frozen=True)
class Arrays:
    """A split read whole at its format's native pixels (CIFAR's pickles): uint8 (N, 3, PX, PX)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Listing:
    """What a dataset holds, from its annotations, folder names or arrays: the official training
    images (the dev split is held out of these), the test images, the class names."""

    pool: Files | Arrays
    test: Files | Arrays
    classes: tuple[str, ...]


# --- CIFAR: the python pickles, read by our own reader -----------------------------------------

# Everything a CIFAR pickle may name: numpy's array reconstruction (any numpy version, any
# protocol) and the bytes of a Python 3 protocol-2 pickle. Nothing else runs on unpickling.
_PICKLE_GLOBALS = {
    "_reconstruct": np.ndarray.__reduce__(np.zeros(1))[0],
    "_frombuffer": np.zeros(1).__reduce_ex__(5)[0],
    "ndarray": np.ndarray, "dtype": np.dtype, "scalar": np.zeros(1, np.int64).sum().__reduce__()[0],
    "encode": codecs.encode,
}  # fmt: skip


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if module.split(".")[0] in ("numpy", "_codecs") and name in _PICKLE_GLOBALS:
            return _PICKLE_GLOBALS[name]
        raise pickle.UnpicklingError(f"unexpected {module}.{name}")


def _unpickle(req: Request, path: Path) -> dict[str, object]:
    """A CIFAR file's dict with str keys (the files hold Python 2 strings: bytes or str keys
    depending on the decoding, both accepted)."""
    try:
        with open(path, "rb") as f:
            entry = _CifarUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise problem(req, path, "missing file") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise problem(req, path, f"corrupt or truncated file ({type(exc).__name__}: {exc})") from None
    if not isinstance(entry, dict):
        raise problem(req, path, "corrupt file (not a dict)")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


def _text(value: object) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def _list_cifar(
    req: Request, *, train: tuple[str, ...], test: tuple[str, ...], meta: str, labels: str, names: str
) -> Listing:
    """The `train` and `test` pickles' images (32 px) and `labels`, the `meta` pickle's class
    `names`, checked: every key present, (N, 3072) uint8 images, one label in range per image."""
    folder = req.location
    if not folder.is_dir():
        raise problem(req, folder, "no such folder")
    classes = _unpickle(req, folder / meta).get(names)
    if not isinstance(classes, list | tuple) or not classes:
        raise problem(req, folder / meta, f"corrupt file (no {names!r} list)")
    splits = []
    for files in (train, test):
        xs, ys = [], []
        for file in files:
            entry = _unpickle(req, folder / file)
            x, y = entry.get("data"), entry.get(labels)
            ok = (
                isinstance(x, np.ndarray)
                and x.dtype == np.uint8
                and x.ndim == 2
                and x.shape[1] == 3 * 32 * 32
            )
            if not ok or not isinstance(y, list | np.ndarray) or len(y) != len(x):
                raise problem(
                    req, folder / file, f"corrupt file (needs 'data' (N, 3072) uint8 and {labels!r})"
                )
            y = _labels(req, folder / file, y, labels)
            if y.size and not 0 <= y.min() <= y.max() < len(classes):
                raise problem(req, folder / file, f"corrupt file (labels outside 0..{len(classes) - 1})")
            xs.append(x.reshape(-1, 3, 32, 32))
            ys.append(y)
        splits.append(Arrays(np.concatenate(xs), np.concatenate(ys)))
    return Listing(*splits, tuple(_text(n) for n in classes))


def _labels(req: Request, path: Path, labels: list | np.ndarray, key: str) -> np.ndarray:
    """A CIFAR file's labels as int64, one integer per image; strings, numbers beyond int64 and
    nested lists are a corrupt file, named before anything trains."""
    try:
        y = np.asarray(labels)
    except ValueError:  # ragged nested lists
        y = np.asarray(labels, dtype=object)
    if y.ndim != 1:
        raise problem(req, path, f"corrupt file ({key!r} must hold one label per image, got shape {y.shape})")
    if y.size and y.dtype.kind not in "iu":
        raise problem(
            req, path, f"corrupt file ({key!r} must hold integer labels, got {y.dtype.name} values)"
        )
    return y.astype(np.int64)


# --- image files: listings without pixels --------------------------------------------------------


def _read_lines(req: Request, path: Path) -> list[list[str]]:
    try:
        return [line.split() for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        raise problem(req, path, "missing file") from None


def _list_pets(req: Request) -> Listing:
    """torchvision's OxfordIIITPet: `<image id> <class 1..37> <species> <breed>` per line; a class
    is named from its image ids (`american_bulldog_12` -> "American Bulldog"), as torchvision does."""
    root, splits, names = req.location, [], {}
    for split in ("trainval", "test"):
        rows = _read_lines(req, root / "annotations" / f"{split}.txt")
        if any(len(r) != 4 or not r[1].isdigit() or int(r[1]) < 1 for r in rows):
            raise problem(
                req, root / "annotations" / f"{split}.txt", "corrupt file (expected 4 fields a line)"
            )
        for image_id, label, *_ in rows:
            names[int(label) - 1] = " ".join(p.title() for p in image_id.rsplit("_", 1)[0].split("_"))
        splits.append(Files.of(root / "images", [f"{r[0]}.jpg" for r in rows], [int(r[1]) - 1 for r in rows]))
    if sorted(names) != list(range(len(names))):
        raise problem(req, root / "annotations", "corrupt annotations (class ids are not 1..N)")
    return Listing(*splits, tuple(names[c] for c in range(len(names))))


def _list_flowers(req: Request) -> Listing:
    """torchvision's Flowers102: 1-based labels of image_%05d.jpg in imagelabels.mat, image ids per
    split in setid.mat; train = trnid + valid (see the module's docstring), test = tstid."""
    from scipy.io import loadmat
    from torchvision.datasets import Flowers102

    root, mats = req.location, {}
    for file, keys in (("imagelabels.mat", ("labels",)), ("setid.mat", ("trnid", "valid", "tstid"))):
        try:
            mat = loadmat(root / file, squeeze_me=True)
            mats.update({k: np.atleast_1d(mat[k]).astype(np.int64) for k in keys})
        except FileNotFoundError:
            raise problem(req, root / file, "missing file") from None
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise problem(req, root / file, f"corrupt file ({type(exc).__name__}: {exc})") from None
    labels = mats["labels"] - 1

    def split(ids: np.ndarray) -> Files:
        if ids.size and not 1 <= ids.min() <= ids.max() <= len(labels):
            raise problem(req, root / "setid.mat", "corrupt file (image ids outside imagelabels.mat)")
        return Files.of(root / "jpg", [f"image_{i:05d}.jpg" for i in ids], labels[ids - 1].tolist())

    classes = tuple(Flowers102.classes[: labels.max() + 1])
    return Listing(split(np.concatenate([mats["trnid"], mats["valid"]])), split(mats["tstid"]), classes)


def _scan(req: Request, folder: Path, classes: tuple[str, ...] | None) -> tuple[tuple[str, ...], Files]:
    """A class-per-folder tree (sorted, as torchvision's ImageFolder): its classes and images. A
    test tree must use the training tree's classes."""
    found = sorted(name for name, kind in _entries(req, folder) if kind == "dir" and not name.startswith("."))
    if classes is not None and not set(found) <= set(classes):
        raise problem(
            req,
            folder,
            f"classes not in the training tree ({', '.join(sorted(set(found) - set(classes))[:3])})",
        )
    classes = classes or tuple(found)
    label = {name: c for c, name in enumerate(classes)}  # 21k classes: no list.index per class
    rel, labels = [], []
    for name in found:
        images = sorted(
            entry
            for entry, kind in _entries(req, folder / name)
            if kind == "file" and Path(entry).suffix.lower() in IMAGE_SUFFIXES
        )
        rel += [f"{name}/{image}" for image in images]
        labels += [label[name]] * len(images)
    if not rel:
        raise problem(req, folder, "no images in class folders")
    return classes, Files.of(folder, rel, labels)


def _entries(req: Request, folder: Path) -> list[tuple[str, str]]:
    """(name, "dir" | "file" | "other") of a folder's entries, links followed. A link that loops or
    an entry that cannot be read is the one-line error naming it, not an OSError."""
    out = []
    try:
        with os.scandir(folder) as it:
            for e in it:
                try:
                    kind = "dir" if e.is_dir() else "file" if e.is_file() else "other"
                except OSError as exc:
                    what = "a symbolic link that loops" if exc.errno == errno.ELOOP else "an unreadable entry"
                    raise problem(
                        req, Path(e.path), f"{what} ({exc.strerror}); remove it or point it at an image"
                    ) from None
                out.append((e.name, kind))
    except OSError as exc:
        raise problem(req, folder, f"unreadable folder ({exc.strerror})") from None
    return out


def _list_tree(req: Request, *, test: str, held_out: float | None = None, flat: bool = False) -> Listing:
    """A class-per-folder tree: train/ and its `test` folder (ImageNet's val/, a folder's test/).
    Without that folder, a seeded `held_out` fraction of train/ is the test split, where the format
    has none of its own (the 21k tree, a folder); a `flat` format (a folder) may be one tree."""
    root = req.location
    train = root if flat and not (root / "train").is_dir() else root / "train"
    if not train.is_dir():
        raise problem(req, train, "no such folder")
    classes, pool = _scan(req, train, None)
    if (root / test).is_dir():
        return Listing(pool, _scan(req, root / test, classes)[1], classes)
    if held_out is None:
        raise problem(req, root / test, "no such folder")
    rest, held = hold_out(len(pool), held_out)
    return Listing(pool.take(rest), pool.take(held), classes)


# --- the formats ----------------------------------------------------------------------------------


def _torchvision(dataset: str, root: Path) -> None:
    """torchvision.datasets' `dataset` downloaded into `root` (imported here: it is slow to import)."""
    from torchvision import datasets

    getattr(datasets, dataset)(root, download=True)


_TV = "run with --download, or unpack"
# Source families, for `data.role`: CIFAR-10 and CIFAR-100 are both labelled from the 80 Million
# Tiny Images with mutually exclusive classes: one source, other classes. ImageNet-1k's classes
# and training images are among ImageNet-21k's: one source, shared classes (read-back).
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            name="cifar10", folder="cifar-10-batches-py", dev_fraction=0.02, source="tiny-images",
            obtain=f"{_TV} https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz in the data root",
            lister=partial(_list_cifar, train=tuple(f"data_batch_{i}" for i in range(1, 6)), test=("test_batch",),
                           meta="batches.meta", labels="labels", names="label_names"),
            download=partial(_torchvision, "CIFAR10"), native=32,
        ),
        Format(
            name="cifar100", folder="cifar-100-python", dev_fraction=0.02, source="tiny-images",
            obtain=f"{_TV} https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz in the data root",
            lister=partial(_list_cifar, train=("train",), test=("test",), meta="meta", labels="fine_labels",
                           names="fine_label_names"),
            download=partial(_torchvision, "CIFAR100"), native=32,
        ),
        Format(
            name="pets", folder="oxford-iiit-pet", dev_fraction=0.1, source="oxford-iiit-pet",
            obtain=f"{_TV} images.tar.gz and annotations.tar.gz of https://www.robots.ox.ac.uk/~vgg/data/pets/ "
            "in <data root>/oxford-iiit-pet",
            lister=_list_pets, download=partial(_torchvision, "OxfordIIITPet"),
        ),
        Format(
            name="flowers102", folder="flowers-102", dev_fraction=0.1, source="oxford-flowers102",
            obtain=f"{_TV} 102flowers.tgz in <data root>/flowers-102 beside imagelabels.mat and setid.mat, all "
            "from https://www.robots.ox.ac.uk/~vgg/data/flowers/102/",
            lister=_list_flowers, download=partial(_torchvision, "Flowers102"),
        ),
        Format(
            name="imagenet1k", folder="imagenet", dev_fraction=0.01, source="imagenet",
            obtain="download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from https://image-net.org "
            "and sort both into a folder per wnid (torchvision.datasets.ImageNet does val with the devkit)",
            lister=partial(_list_tree, test="val"), streams=True,
        ),
        Format(
            name="imagenet21k", folder="imagenet21k", dev_fraction=0.01, source="imagenet",
            obtain="download ImageNet-21k from https://image-net.org (e.g. the processed ImageNet-21K-P, "
            "train/ and val/ with a folder per wnid)",
            lister=partial(_list_tree, test="val", held_out=0.01), streams=True,
        ),
        Format(
            name="folder", folder=None, dev_fraction=VAL_FRACTION, source=None,
            obtain="give a folder holding train/<class>/ and test/<class>/ image folders, or a folder per class",
            lister=partial(_list_tree, test="test", held_out=TEST_FRACTION, flat=True),
        ),
    )
}  # fmt: skip


def named() -> tuple[str, ...]:
    """The formats read from the data root by name (every one but `folder:<path>`), as registered
    now: a record added later is listed too."""
    return tuple(name for name, f in FORMATS.items() if f.folder)


@functools.cache
def listing(req: Request) -> Listing:
    """A dataset's images (or arrays) and labels, listed and checked once per process."""
    return req.format.lister(req)


def hold_out(n: int, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) indices of n: the first round(fraction·n) of a seeded permutation are held
    out, as big_vision's `train[:98%]` / `train[98%:]` slices of a shuffled split (not stratified)."""
    perm = np.random.default_rng(seed).permutation(n)
    k = round(fraction * n)
    return np.sort(perm[k:]), np.sort(perm[:k])


# --- pixels ---------------------------------------------------------------------------------------


def fit(image: Image.Image, size: int) -> np.ndarray:
    """uint8 (3, size, size): the shorter side resized to `size` and the centre cropped, in one
    resampling of the centre square (PIL bilinear: antialiased when shrinking)."""
    w, h = image.size
    m = min(w, h)
    box = ((w - m) / 2, (h - m) / 2, (w + m) / 2, (h + m) / 2)
    square = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR, box=box)
    return np.asarray(square).transpose(2, 0, 1).copy()


def decode(req: Request, path: Path) -> np.ndarray:
    """One image file at the request's pixels; an unreadable one, or one beyond MAX_PIXELS (known
    from its header, before any pixel is decoded), is the one-line error."""
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                raise problem(req, path, _too_large(*image.size))
            image.draft("RGB", (req.size, req.size))  # JPEG: let libjpeg shrink by 2-8x while decoding
            return fit(image, req.size)
    except FileNotFoundError:
        raise problem(req, path, "missing image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise problem(req, path, f"corrupt image ({exc})") from None


def _too_large(width: int, height: int) -> str:
    return (
        f"an image of {width:,}x{height:,} pixels, beyond the pixel limit of {MAX_PIXELS:,} "
        "(benchmark.data.formats.MAX_PIXELS); shrink it or remove it"
    )


def _decode_all(req: Request, files: Files) -> np.ndarray:
    """Every image of `files`, decoded on threads (PIL releases the GIL while decoding)."""
    out = np.empty((len(files), 3, req.size, req.size), np.uint8)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for i, image in enumerate(pool.map(lambda i: decode(req, files.path(i)), range(len(files)))):
            out[i] = image
    return out


def _fingerprint(files: list[Files]) -> str:
    """A digest of every source file's path, size and modification time: a changed, added or
    removed image makes a new cache entry."""
    h = hashlib.sha256()
    for part in files:
        for i in range(len(part)):
            st = part.path(i).stat()
            h.update(b"%s\0%d\0%d\n" % (part.rel[i], st.st_size, st.st_mtime_ns))
    return h.hexdigest()


def _pixels(req: Request) -> tuple[np.ndarray, np.ndarray]:
    """The pool's and the test split's images at the request's pixels: arrays read whole resized
    when asked for other than their native pixels, image files decoded through the disk cache."""
    lst = listing(req)
    if isinstance(lst.pool, Arrays):
        x, tx = lst.pool.images, lst.test.images
        if req.size == req.format.native:
            return x, tx
        return tuple(
            np.stack([fit(Image.fromarray(i.transpose(1, 2, 0)), req.size) for i in a]) for a in (x, tx)
        )
    try:
        digest = _fingerprint([lst.pool, lst.test])
    except FileNotFoundError as exc:
        raise problem(req, Path(exc.filename), "missing image") from None
    except OSError as exc:
        raise problem(req, Path(exc.filename), f"unreadable image ({exc.strerror})") from None
    fmt = req.format
    meta = {"version": VERSION, "dataset": fmt.name, "size": req.size, "files": digest}
    label = fmt.name if fmt.folder else f"{fmt.name}-{req.location.name}"  # a file name, not a path
    arrays = cache.load_or_build(
        f"{label}-{req.size}px-{digest[:10]}.bin",
        meta,
        lambda: {"pool": _decode_all(req, lst.pool), "test": _decode_all(req, lst.test)},
    )
    return arrays["pool"], arrays["test"]


# --- datasets -----------------------------------------------------------------------------------


def _provenance(req: Request, lst: Listing, dev: int) -> str:
    how = f"{req.size}x{req.size} (shorter side resized, centre crop, PIL bilinear)"
    if req.size == req.format.native:
        how = f"native {req.size}x{req.size}"
    return (
        f"{req.format.name} read from {req.location} ({len(lst.classes)} classes, 3 channels, {how}); dev "
        f"split: {req.format.dev_fraction:.0%} of the {len(lst.pool):,} official training images held out "
        f"(seed 0), test: the official test split ({len(lst.test):,})"
    )


def _dev_split(req: Request, lst: Listing) -> tuple[np.ndarray, np.ndarray]:
    """(train, dev) indices of the pool: the format's dev fraction held out (seed 0)."""
    return hold_out(len(lst.pool), req.format.dev_fraction)


def is_streaming(req: Request) -> bool:
    """Always for ImageNet, never for arrays read whole (CIFAR: 180 MB at 32 px; the trainer
    resizes to the model's input per batch), else when the decoded images would exceed
    IN_MEMORY_BYTES."""
    if req.format.streams:
        return True
    if req.format.native:
        return False
    lst = listing(req)
    return (len(lst.pool) + len(lst.test)) * 3 * req.size**2 > IN_MEMORY_BYTES


def load(req: Request) -> ImageDataset:
    """An in-memory dataset: uint8 (N, 3, PX, PX) splits train / val (the dev split) / test."""
    if is_streaming(req):
        raise UserError(
            f"dataset {req.name!r} streams from disk (more than {IN_MEMORY_BYTES / 1024**3:.0f} GiB decoded, "
            f"or ImageNet): read it with benchmark.data.streaming({req.name!r}), not load"
        )
    lst = listing(req)
    keep, dev = _dev_split(req, lst)
    x, tx = (torch.from_numpy(np.ascontiguousarray(a)) for a in _pixels(req))
    y, ty = torch.from_numpy(lst.pool.labels), torch.from_numpy(lst.test.labels)
    return ImageDataset(
        req.name,
        x[keep],
        y[keep],
        x[dev],
        y[dev],
        tx,
        ty,
        lst.classes,
        source(req),
        _provenance(req, lst, len(dev)),
    )


class ImageFiles(torch.utils.data.Dataset):
    """A split read from disk per item: (uint8 (3, PX, PX) tensor, label)."""

    def __init__(self, req: Request, files: Files) -> None:
        self.req, self.files = req, files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(decode(self.req, self.files.path(i))), int(self.files.labels[i])


@dataclass(frozen=True)
class StreamingDataset:
    """torch Datasets of the three splits, and what a trainer needs to know without decoding."""

    name: str
    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset  # the dev split
    test: torch.utils.data.Dataset
    classes: tuple[str, ...]
    image_size: int
    source: str
    provenance: str
    channels: int = 3

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def split_sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def streaming(req: Request) -> StreamingDataset:
    """Any format's splits as torch Datasets: image files decoded per item; arrays as they are."""
    lst = listing(req)
    if isinstance(lst.pool, Arrays):
        ds = load(req)
        splits = [
            torch.utils.data.TensorDataset(*(getattr(ds, f"{s}_{a}") for a in "xy"))
            for s in ("train", "val", "test")
        ]
        return StreamingDataset(req.name, *splits, ds.classes, req.size, ds.source, ds.provenance)
    keep, dev = _dev_split(req, lst)
    splits = [ImageFiles(req, f) for f in (lst.pool.take(keep), lst.pool.take(dev), lst.test)]
    provenance = _provenance(req, lst, len(dev))
    return StreamingDataset(req.name, *splits, lst.classes, req.size, source(req), provenance)


def spec(req: Request) -> DatasetSpec:
    """The shape for planning, from the listing (no image decoded); ImageNet's published one
    when its folder is absent (the published sizes count every training image, the listed ones
    the train split without the 1% dev split)."""
    if req.format.name in PAPER and not req.location.exists():
        return replace(PAPER[req.format.name], image_size=req.size)
    lst = listing(req)
    keep, dev = _dev_split(req, lst)
    return DatasetSpec(req.size, 3, len(lst.classes), len(keep), _provenance(req, lst, len(dev)))


def train_counts(req: Request) -> np.ndarray:
    """Images per class of the train split (the official training images less the dev split),
    from the labels alone."""
    lst = listing(req)
    keep, _ = _dev_split(req, lst)
    return np.bincount(lst.pool.labels[keep], minlength=len(lst.classes))


def source(req: Request) -> str:
    """The source family: the format's, or a folder's own (`folder:<path>`)."""
    return req.format.source or f"{req.format.name}:{req.location}"


def identity(req: Request) -> tuple[str, tuple[str, ...]]:
    """A dataset's source family and class names, without decoding an image."""
    return source(req), listing(req).classes


def download(name: str, root: Path) -> None:
    """Fetch a dataset with its downloader into `root` (needs internet; never in tests)."""
    req = parse(name)
    if req.format.download is None:
        fetched = ", ".join(f.name for f in FORMATS.values() if f.download)
        raise UserError(f"--download fetches {fetched} only; for {name!r}: {req.format.obtain}")
    req.format.download(root)
