"""Formula-driven upstream data in the manner of FractalDB (Kataoka et al., ACCV 2020), the
offline stand-in for JFT-300M's nested subsets (§4.2, Fig. 4): sizes over orders of magnitude
from one pool, rendered in seconds, nothing downloaded.

A category is a random iterated function system (IFS) searched as FractalDB's `ifs_search.py`
does: 2–7 affine maps (x, y) -> (a x + b y + e, c x + d y + f) with a..f drawn uniformly in
[-1, 1], each map chosen with probability proportional to |ad - bc|, kept only if its attractor,
drawn with 100,000 chaos-game points on a 512x512 canvas (6 px margin), hits at least 20% of the
pixels (FractalDB's "filling rate" 0.2). Candidate j of category c is a pure function of
(version, seed, c, j) and category c is the first candidate that passes, so the categories of
`fractal10x…` are the first ten of `fractal100x…`.

An image is the category's attractor drawn by the chaos game with FractalDB's per-instance
variations, each drawn per image:
- weights: one of the six parameters a..f, in every map at once, times a factor uniform in
  [0.8, 1.2] (FractalDB's weight grid scales one parameter by 0.8, 0.9, 1.1 or 1.2; a continuous
  factor gives every image its own shape instead of 25 per category);
- flips: left-right and up-down, each with probability 1/2 (FractalDB renders all four);
- intensity: one grey channel, black background, POINTS_PER_PIXEL points per pixel; a pixel hit
  n times gets the grey FractalDB's 512-px point drawing would have there once resized (below),
  times a stroke brightness uniform in [0.4, 1.0] per image (FractalDB draws grey 127). No
  3-channel variant: FractalDB's colour is a hue cycled along the orbit, which costs a channel
  gather per point; one grey channel is what the models here read.
Image i of category c in split s is a pure function of (version, seed, c, s, i, size): the
randomness is a counter-based hash of those, never a stateful generator, so the bytes do not
depend on how many images are rendered at once, and `fractal100x128`'s training images are the
first 128 per category of `fractal100x1280`'s. The splits are different index streams: the
validation and test images (EVAL_PER_CLASS each per category) are the same for every K.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from benchmark.data import cache
from benchmark.data.dataset import ImageDataset
from benchmark.errors import UserError

# Bump when any rendered byte would change: it keys the disk cache and is in the provenance.
VERSION = 1
SEED = 0
EVAL_PER_CLASS = 20  # validation images per category, and as many test images
DEFAULT_SIZE = 32
MAPS = (2, 7)  # FractalDB's np.random.randint(2, 8)
FILL_RATE, SEARCH_CANVAS, SEARCH_MARGIN, SEARCH_POINTS = 0.2, 512, 6, 100_000
WEIGHT_RANGE, BRIGHTNESS_RANGE = (0.8, 1.2), (0.4, 1.0)
POINTS_PER_PIXEL = 2.0  # chaos-game points per pixel (FractalDB: 100,000 on 512², 0.38 per pixel)
# A pixel hit n times gets the grey FractalDB's 512-px point drawing would have there once resized
# to our size, in expectation: the fraction of its (512/size)² sub-pixels hit by the n·(100,000 /
# points) points FractalDB draws for our one, 1 - exp(-n · COVER_PER_POINT).
COVER_PER_POINT = SEARCH_POINTS / (POINTS_PER_PIXEL * SEARCH_CANVAS**2)
WALKERS = 16  # independent chaos-game orbits per image: wide array ops instead of long loops
BURN_IN = 20  # steps each orbit takes from the origin before its points count
CHUNK = 512  # images rendered at once (bounds memory; the bytes do not depend on it)

NAME = re.compile(r"fractal(\d+)x(\d+)(?:@(\d+))?")
GRAMMAR = (
    "fractal<categories>x<train images per category>[@<pixels>], e.g. fractal100x1280 or fractal10x64@64"
)
_STREAM_CATEGORY, _STREAM_IMAGE = 1, 2
SPLITS = ("train", "val", "test")
SOURCE = "fractal-ifs"  # one source for every fractal dataset: they share categories and images


@dataclass(frozen=True)
class FractalSpec:
    """What a fractal dataset's name says: categories, training images per category, pixels."""

    categories: int
    per_class: int
    size: int = DEFAULT_SIZE
    seed: int = SEED

    @property
    def name(self) -> str:
        suffix = "" if self.size == DEFAULT_SIZE else f"@{self.size}"
        return f"fractal{self.categories}x{self.per_class}{suffix}"

    @property
    def train_examples(self) -> int:
        return self.categories * self.per_class

    def provenance(self) -> str:
        return (
            f"FractalDB-style IFS fractals rendered by vitbench (benchmark/data/fractals.py, generator "
            f"v{VERSION}, seed {self.seed}): {self.categories} categories (2–7 affine maps, parameters "
            f"uniform in [-1, 1], filling rate ≥ {FILL_RATE} at {SEARCH_CANVAS} px), {self.per_class:,} "
            f"train + {EVAL_PER_CLASS} validation + {EVAL_PER_CLASS} test images per category, "
            f"{self.size}x{self.size} grey, per-image weight ×{WEIGHT_RANGE[0]}–{WEIGHT_RANGE[1]}, "
            f"flips, stroke brightness {BRIGHTNESS_RANGE[0]}–{BRIGHTNESS_RANGE[1]}"
        )


def is_fractal(name: str) -> bool:
    return name.startswith("fractal")


def parse(name: str) -> FractalSpec:
    """The spec a name asks for; a malformed one is a one-line UserError naming the grammar."""
    m = NAME.fullmatch(name)
    if m is None:
        raise UserError(f"malformed fractal dataset name {name!r}; expected {GRAMMAR}")
    categories, per_class, size = int(m[1]), int(m[2]), int(m[3] or DEFAULT_SIZE)
    if categories < 2 or per_class < 1 or not 8 <= size <= 512:
        raise UserError(
            f"fractal dataset {name!r} needs ≥ 2 categories, ≥ 1 image per category and 8–512 pixels; "
            f"expected {GRAMMAR}"
        )
    return FractalSpec(categories, per_class, size)


# --- counter-based randomness ---------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser over uint64 arrays (wrapping arithmetic): a bijection whose outputs
    pass statistical tests even for consecutive inputs, so hash(key + counter) is a random stream."""
    with np.errstate(over="ignore"):  # numpy scalars warn on the wrap-around the hash relies on
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _key(*parts: int | np.ndarray) -> np.ndarray:
    """A 64-bit key hashed from integers (broadcast over arrays)."""
    h = np.uint64(0)
    for part in parts:
        with np.errstate(over="ignore"):
            h = _mix(h ^ (np.asarray(part).astype(np.uint64) * _GOLDEN + _GOLDEN))
    return np.asarray(h)


def _uniform(key: np.ndarray, counter: int | np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1): element `counter` of the stream `key` (53 random bits)."""
    with np.errstate(over="ignore"):
        z = _mix(key + np.asarray(counter).astype(np.uint64) * _GOLDEN)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


# --- the chaos game ---------------------------------------------------------------------------


def _sample_ifs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate IFSs for (m,) keys: params (m, 7, 6) as a..f (unused maps zero) and map
    probabilities (m, 7) proportional to |det| (FractalDB's ifs_search)."""
    n_maps = MAPS[0] + np.floor(_uniform(keys, 0) * (MAPS[1] - MAPS[0] + 1)).astype(int)
    params = _uniform(keys[:, None], 1 + np.arange(MAPS[1] * 6)).reshape(-1, MAPS[1], 6) * 2.0 - 1.0
    used = np.arange(MAPS[1])[None, :] < n_maps[:, None]
    params *= used[:, :, None]
    det = np.abs(params[:, :, 0] * params[:, :, 3] - params[:, :, 1] * params[:, :, 2])
    total = det.sum(axis=1, keepdims=True)
    # All maps singular (measure zero): any probabilities do, the attractor fails the fill test.
    uniform = used / used.sum(axis=1, keepdims=True)
    return params, np.where(total > 0, det / np.where(total > 0, total, 1.0), uniform)


def _alias_tables(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias tables (m, n) for drawing map k with probability probs[:, k] from one
    uniform: slot s = floor(u n) keeps s if frac(u n) < keep[s], else takes alias[s]. Exact, and
    two gathers per draw instead of a search over the cumulative probabilities."""
    m, n = probs.shape
    keep, alias = np.ones((m, n)), np.tile(np.arange(n), (m, 1))
    for row in range(m):
        scaled = probs[row] * n
        small = [k for k in range(n) if scaled[k] < 1.0]
        large = [k for k in range(n) if scaled[k] >= 1.0]
        while small and large:
            s, g = small.pop(), large.pop()
            keep[row, s], alias[row, s] = scaled[s], g
            scaled[g] -= 1.0 - scaled[s]
            (small if scaled[g] < 1.0 else large).append(g)
        # What is left (rounding) has probability one of keeping its own slot.
    return keep, alias


def _chaos_game(
    params: np.ndarray, tables: tuple[np.ndarray, np.ndarray], keys: np.ndarray, walkers: int, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Points (steps, m, walkers) of m IFSs' attractors: `walkers` orbits per IFS from the
    origin, each step one map drawn by its alias tables (`_alias_tables`), after BURN_IN
    discarded steps. A step reads 16 random bits, so map probabilities resolve to 1/65,536.
    Orbits that leave float64 give non-finite points (`_pixels` flags them)."""
    m, n_maps = params.shape[:2]
    a, b, c, d, e, f = (np.ascontiguousarray(params[:, :, k]).ravel() for k in range(6))
    keep, alias = tables[0].ravel(), (tables[1] + (np.arange(m) * n_maps)[:, None]).ravel()
    base = np.repeat(np.arange(m) * n_maps, walkers)
    key = np.repeat(keys, walkers)
    counter = np.tile(np.arange(walkers), m) + 10_000  # past the counters the IFS and image draws use
    x, y = np.zeros(m * walkers), np.zeros(m * walkers)
    xs, ys = np.empty((steps, m * walkers), np.float32), np.empty((steps, m * walkers), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(BURN_IN + steps):
            # One 64-bit hash gives four steps 16 random bits each: the hash is the dearest op.
            lane = t % 4
            if lane == 0:
                bits = _mix(key + (counter + t // 4 * walkers).astype(np.uint64) * _GOLDEN)
            u = ((bits >> np.uint64(16 * lane)) & np.uint64(0xFFFF)).astype(np.float64) * (n_maps / 65536.0)
            slot = u.astype(np.int64)
            j = base + slot
            i = np.where(u - slot < keep.take(j), j, alias.take(j))  # take: faster than a[i]
            x, y = a.take(i) * x + b.take(i) * y + e.take(i), c.take(i) * x + d.take(i) * y + f.take(i)
            if t >= BURN_IN:
                xs[t - BURN_IN], ys[t - BURN_IN] = x, y
    return xs.reshape(steps, m, walkers), ys.reshape(steps, m, walkers)


def _pixels(xs: np.ndarray, ys: np.ndarray, grid: int, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """The pixel of each point (steps, m, walkers), as a flat index into (m, grid, grid), after
    scaling each image's points to the canvas less a margin (x and y separately, as FractalDB
    does); and whether each image's points were all finite (else its pixels are meaningless)."""
    m = xs.shape[1]
    # NaN and ±inf reach the extremes, so finite extremes mean finite points. Reducing the long
    # contiguous axis first keeps the passes vectorised.
    bounds = [(v.min(axis=0).min(axis=1), v.max(axis=0).max(axis=1)) for v in (xs, ys)]
    finite = np.logical_and.reduce([np.isfinite(e) for pair in bounds for e in pair])
    flat = (np.arange(m, dtype=np.int64) * grid * grid)[None, :, None]
    for v, (lo, hi), stride in ((xs, bounds[0], 1), (ys, bounds[1], grid)):
        if not finite.all():
            v = np.where(finite[None, :, None], v, np.float32(0.0))
            lo, hi = np.where(finite, lo, 0.0), np.where(finite, hi, 0.0)
        scale = np.float32(grid - 2 * margin) / np.maximum(hi - lo, np.float32(1e-30))
        # The maximum lands on grid - margin: one pixel past the canvas when margin is 0.
        offset = np.float32(margin) - lo * scale
        pixel = np.minimum((v * scale[None, :, None] + offset[None, :, None]).astype(np.int32), grid - 1)
        flat = flat + pixel * stride
    return flat.ravel(), finite


# --- categories -------------------------------------------------------------------------------

SEARCH_WALKERS, SEARCH_BATCH = 1000, 32


def workers() -> int:
    """Processes that render (and search) at once: one per core (env VITBENCH_RENDER_WORKERS).
    Every image is a pure function of its key, so the bytes do not depend on it (tested)."""
    return int(os.environ.get("VITBENCH_RENDER_WORKERS", len(os.sched_getaffinity(0))))


def _parallel_map(fn: Callable[..., np.ndarray], *args: Sequence[Any]) -> list[np.ndarray]:
    """map(fn, *args) over worker processes (in this process with one worker or one item)."""
    n = min(workers(), len(args[0]))
    if n <= 1:
        return list(map(fn, *args))
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(fn, *args))


def filling_rate(params: np.ndarray, probs: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """FractalDB's filling rate of each IFS: the fraction of a SEARCH_CANVAS² canvas (less a
    SEARCH_MARGIN margin, scaled as the images are) that SEARCH_POINTS chaos-game points hit;
    0 for an orbit that leaves float64."""
    parts = [slice(lo, lo + SEARCH_BATCH) for lo in range(0, len(keys), SEARCH_BATCH)]
    rates = _parallel_map(
        _filling_rate, [params[p] for p in parts], [probs[p] for p in parts], [keys[p] for p in parts]
    )
    return np.concatenate(rates)


def _filling_rate(params: np.ndarray, probs: np.ndarray, keys: np.ndarray) -> np.ndarray:
    xs, ys = _chaos_game(params, _alias_tables(probs), keys, SEARCH_WALKERS, SEARCH_POINTS // SEARCH_WALKERS)
    pixels, finite = _pixels(xs, ys, SEARCH_CANVAS, SEARCH_MARGIN)
    hit = np.zeros((len(finite), SEARCH_CANVAS, SEARCH_CANVAS), bool)
    hit.ravel()[pixels] = True  # cheaper than np.bincount where only a hit matters
    return np.count_nonzero(hit, axis=(1, 2)) / SEARCH_CANVAS**2 * finite


def search_categories(n: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """The first n categories: category c is the first candidate j = 0, 1, ... of the stream
    (version, seed, c, j) whose filling rate reaches FILL_RATE. Returns params (n, 7, 6), probs
    (n, 7), fill (n,) and the candidate index (n,) each was found at."""
    out = {
        "params": np.zeros((n, MAPS[1], 6)),
        "probs": np.zeros((n, MAPS[1])),
        "fill": np.zeros(n),
        "candidate": np.zeros(n, np.int64),
    }
    pending, j = np.arange(n), 0
    while pending.size:  # one candidate for every category still open per round
        keys = _key(VERSION, seed, _STREAM_CATEGORY, pending, j)
        params, probs = _sample_ifs(keys)
        fill = filling_rate(params, probs, keys)
        ok = fill >= FILL_RATE
        for field, value in (("params", params), ("probs", probs), ("fill", fill)):
            out[field][pending[ok]] = value[ok]
        out["candidate"][pending[ok]] = j
        pending, j = pending[~ok], j + 1
    return out


# --- images -----------------------------------------------------------------------------------


def render(
    categories: dict[str, np.ndarray],
    labels: np.ndarray,
    index: np.ndarray,
    split: int,
    size: int,
    seed: int = SEED,
    chunk: int = CHUNK,
) -> np.ndarray:
    """Images uint8 (N, size, size): image index[k] of category labels[k] in `split`. Each is a
    pure function of (version, seed, category, split, index, size), whatever `chunk` is."""
    tables = _alias_tables(categories["probs"])
    parts = [slice(lo, lo + chunk) for lo in range(0, len(labels), chunk)]
    if not parts:
        return np.empty((0, size, size), np.uint8)
    one = functools.partial(_render_chunk, categories["params"], tables, split=split, size=size, seed=seed)
    return np.concatenate(_parallel_map(one, [labels[p] for p in parts], [index[p] for p in parts]))


def _render_chunk(
    params: np.ndarray,
    tables: tuple[np.ndarray, np.ndarray],
    labels: np.ndarray,
    index: np.ndarray,
    split: int,
    size: int,
    seed: int,
) -> np.ndarray:
    m = len(labels)
    keys = _key(VERSION, seed, _STREAM_IMAGE, labels, split, index)
    draws = _uniform(keys[:, None], np.arange(5))  # counters 0-4: this image's perturbations
    # FractalDB's weights: one parameter of a..f, in every map, scaled (probabilities unchanged).
    which = np.minimum((draws[:, 0] * 6).astype(np.int64), 5)
    factor = WEIGHT_RANGE[0] + (WEIGHT_RANGE[1] - WEIGHT_RANGE[0]) * draws[:, 1]
    p = params[labels].copy()
    p[np.arange(m), :, which] *= factor[:, None]
    points = round(POINTS_PER_PIXEL * size * size)
    xs, ys = _chaos_game(p, (tables[0][labels], tables[1][labels]), keys, WALKERS, -(-points // WALKERS))
    # An image whose perturbed orbit left float64 would come out as one dot (its finite flag is
    # ignored): none does among the 128,000 training images of fractal100x1280 (seed 0), whose sparsest
    # image lights 3.4% of its pixels.
    pixels, _ = _pixels(xs, ys, size, round(size * SEARCH_MARGIN / SEARCH_CANVAS))
    counts = np.bincount(pixels, minlength=m * size * size).reshape(m, size, size)
    cover = -np.expm1(-COVER_PER_POINT * counts)
    brightness = BRIGHTNESS_RANGE[0] + (BRIGHTNESS_RANGE[1] - BRIGHTNESS_RANGE[0]) * draws[:, 4]
    img = np.rint(cover * brightness[:, None, None] * 255.0).astype(np.uint8)
    img = np.where((draws[:, 2] < 0.5)[:, None, None], img[:, :, ::-1], img)  # left-right
    img = np.where((draws[:, 3] < 0.5)[:, None, None], img[:, ::-1, :], img)  # up-down
    return img


# --- datasets, cached ---------------------------------------------------------------------------


def _generator() -> dict[str, object]:
    """Every constant the bytes depend on: it keys the cache beside VERSION (bumped by hand)."""
    return {
        "version": VERSION, "maps": MAPS, "fill_rate": FILL_RATE, "search_canvas": SEARCH_CANVAS,
        "search_margin": SEARCH_MARGIN, "search_points": SEARCH_POINTS, "search_walkers": SEARCH_WALKERS,
        "weights": WEIGHT_RANGE, "brightness": BRIGHTNESS_RANGE, "points_per_pixel": POINTS_PER_PIXEL,
        "walkers": WALKERS, "burn_in": BURN_IN,
    }  # fmt: skip


def _tag(meta: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:10]


def categories(n: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """The first n categories (`search_categories`), through the disk cache: the search is the
    slow part (about 3% of candidates pass FractalDB's filling rate)."""
    meta = {"generator": _generator(), "seed": seed, "categories": n}
    name = f"fractal-ifs-v{VERSION}-seed{seed}-{n}cat-categories-{_tag(meta)}.bin"
    return cache.load_or_build(name, meta, lambda: search_categories(n, seed))


def layout(categories: int, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, index) of a split's rows: index-major, every category once per index, so the
    first n·C rows of a split are its first n images per category (nested and balanced)."""
    return np.tile(np.arange(categories), per_class), np.repeat(np.arange(per_class), categories)


def build(spec: FractalSpec) -> dict[str, np.ndarray]:
    """The images of the three splits, `{split}_x` uint8 (N, size, size), rendered."""
    cats = categories(spec.categories, spec.seed)
    counts = {"train": spec.per_class, "val": EVAL_PER_CLASS, "test": EVAL_PER_CLASS}
    return {
        f"{split}_x": render(
            cats, *layout(spec.categories, counts[split]), SPLITS.index(split), spec.size, spec.seed
        )
        for split in SPLITS
    }


def cache_name(spec: FractalSpec) -> tuple[str, dict[str, object]]:
    """The cache file's name (readable: generator version, seed, sizes; then a digest of every
    parameter) and the parameters its header must match."""
    meta = {
        "generator": _generator(), "seed": spec.seed, "categories": spec.categories,
        "per_class": spec.per_class, "eval_per_class": EVAL_PER_CLASS, "size": spec.size,
    }  # fmt: skip
    name = (
        f"fractal-ifs-v{VERSION}-seed{spec.seed}-{spec.categories}cat-{spec.per_class}train-"
        f"{EVAL_PER_CLASS}eval-{spec.size}px-{_tag(meta)}.bin"
    )
    return name, meta


def load(name: str, seed: int = SEED) -> ImageDataset:
    """The dataset a name asks for, from the disk cache or rendered into it."""
    spec = dataclasses.replace(parse(name), seed=seed)
    file, meta = cache_name(spec)
    arrays = cache.load_or_build(file, meta, lambda: build(spec))
    splits = []
    for split in SPLITS:
        x = torch.from_numpy(arrays[f"{split}_x"]).unsqueeze(1)  # (N, 1, size, size) uint8
        splits += [x, torch.from_numpy(np.tile(np.arange(spec.categories), len(x) // spec.categories))]
    return ImageDataset(name, *splits, classes(spec.categories), SOURCE, spec.provenance())


def classes(n: int) -> tuple[str, ...]:
    return tuple(f"ifs{c}" for c in range(n))


def render_throughput(images: int = 2048, size: int = DEFAULT_SIZE) -> float:
    """Images/s of the renderer at `size` with its `workers()` processes, for `vitbench bench`. It
    draws candidate IFSs unfiltered, skipping the search: a point costs the same whatever the maps."""
    keys = _key(VERSION, SEED, _STREAM_CATEGORY, np.arange(10), 0)
    params, probs = _sample_ifs(keys)
    labels, index = layout(10, -(-images // 10))
    t0 = time.perf_counter()
    render({"params": params, "probs": probs}, labels, index, 0, size)
    return len(labels) / (time.perf_counter() - t0)
