"""What a plan costs before anything runs: each run's training FLOPs and its time on a named
accelerator, without training and without the data (`data.spec` gives a dataset's shape).

A run from a released checkpoint (`model.checkpoint`, no pre-training) is priced by what it does
instead: the forward passes of its evaluators (the probes' features, inspect's two models) and its
fine-tuning (`eval.finetune`), counted the same way on the meta device; its `RunCost.work` says so,
and so does every line that prints it.

FLOPs are counted, never assumed: `flops.train_flops_per_image` on the model built on the meta
device (free even for ViT-H), times the images the run sees. Time comes from a throughput table,
images/s per (model, image size): the shipped H100 table (benchmark/throughput/h100.json) by default, or
the `results/bench.json` that `vitbench bench` wrote on the machine at hand. A model the table has
not measured is timed at the achieved FLOP/s of the measured model of its family (ViT, BiT ResNet,
hybrid) nearest in FLOPs per image, and says so.

Torch and the datasets are imported only when a cost is computed: `status` and `report` import
this module through `plan` and load neither.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from benchmark.config import ModelConfig, RunConfig
from benchmark.errors import UserError
from benchmark.sizes import family_of, parse_model

# Said once wherever FLOPs are printed.
CONVENTION = (
    "training FLOPs by torch's FLOP counter: forward + backward of one step, a multiply-add counted as "
    "2 FLOPs, attention through explicit matmuls (the math path) so its products are counted"
)
# Said beside it where a run from a released checkpoint is priced.
EVAL_CONVENTION = (
    "a run from a released checkpoint (no pre-training) is priced by what it does: the forward passes of its "
    "evaluators, counted by the same counter on one eval-mode forward pass of the encoder (no backward; about "
    "1/3 of a training step's FLOPs), over every image they read, once (few-shot: its shots' training images "
    "at most, all of validation and test; linear: all of train and test; inspect: 128 + 6 images through the "
    "checkpoint and through its untrained architecture), and fine-tuning: training FLOPs per image at "
    "eval.finetune.image_size × steps × batch × (lrs + 1: one per lr chosen from, one with the chosen lr on "
    "train + dev), with its validation and test passes; probe sizes from the data's listing where it is here, "
    "else the published split sizes; timed at the model's training FLOP/s in the table"
)
SHIPPED = "throughput/h100.json"
# The model-shape overrides: a run with any of them is not the named model a table measured.
SHAPE_FIELDS = ("depth", "width", "heads", "mlp", "patch", "resnet_width")


@dataclass(frozen=True)
class Measured:
    """One row of a throughput table: a named model's training speed at one image size."""

    arch: str
    image_size: int
    img_per_s: float
    flops_per_image: float | None  # training FLOPs per image as the table gives them (None: not given)
    mode: str  # "eager" or "torch.compile"

    @property
    def name(self) -> str:
        return f"{self.arch} @{self.image_size}px"


@dataclass(frozen=True)
class ThroughputTable:
    device: str
    source: str  # where the figures come from, said wherever they are used
    rows: tuple[Measured, ...]

    @property
    def label(self) -> str:
        return f"{self.device} ({self.source})"


TRAINING, EVALUATION = "training", "evaluation"


@dataclass(frozen=True)
class RunCost:
    model: str  # the arch, with any shape overrides
    image_size: int
    images: int  # images seen in training: steps × batch (EVALUATION: the evaluators' forward and fine-tuning images)
    flops: float  # training FLOPs (EVALUATION: forward_flops + finetune_flops)
    seconds: float | None  # on the table's device; None when no model of its family was measured
    basis: str  # how the time was obtained: measured, extrapolated from which model, or why none
    # What `images` and `flops` count: pre-training (TRAINING), or, for a run from a released
    # checkpoint, its evaluation (EVALUATION): the evaluators' forward passes and the fine-tuning.
    work: str = TRAINING
    forward_flops: float = 0.0  # EVALUATION: the evaluators' forward passes
    finetune_flops: float = 0.0  # EVALUATION: the fine-tuning steps (forward + backward)
    checkpoint: str = ""  # the released checkpoint it starts from (model.checkpoint)


def load_table(path: Path | None = None) -> ThroughputTable:
    """The shipped H100 table (path None), or a JSON table in the format `vitbench bench` writes
    (`{"device": ..., "train": [{"arch", "image_size", "img_per_s", "train_gflop_per_img"}, ...]}`)."""
    if path is None:
        text = files("benchmark").joinpath(SHIPPED).read_text()
    else:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise UserError(
                f"--gpu-table {path}: cannot be read ({exc.strerror or exc}); give the JSON that "
                "`vitbench bench` writes (RESULTS/bench.json), or leave the flag out for the shipped H100 table"
            ) from None
    try:
        stored = json.loads(text)
        rows = tuple(
            Measured(
                arch=str(row["arch"]),
                image_size=int(row["image_size"]),
                img_per_s=float(row["img_per_s"]),
                flops_per_image=None
                if row.get("train_gflop_per_img") is None
                else row["train_gflop_per_img"] * 1e9,
                # `vitbench bench` times eager training steps and does not record the mode.
                mode=str(row.get("mode", "eager")),
            )
            for row in stored["train"]
        )
        device = str(stored["device"])
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        problem = f"missing {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
        raise UserError(
            f"--gpu-table {path}: not a throughput table ({problem}); expected the JSON `vitbench bench` writes: "
            '{"device": ..., "train": [{"arch", "image_size", "img_per_s", "train_gflop_per_img"}, ...]}'
        ) from None
    if not rows or any(r.img_per_s <= 0 or not math.isfinite(r.img_per_s) for r in rows):
        raise UserError(f"--gpu-table {path}: needs at least one row, each with img_per_s > 0")
    source = stored.get("source") or f"measured by `vitbench bench` ({path}), eager"
    return ThroughputTable(device, source, rows)


def _arch_key(arch: str) -> str:
    """ "ViT-B/16" and "B/16" name one model; so do "R50x1+ViT-B/16" and "R50x1+B/16"."""
    return parse_model(arch).name


def _model_label(m: ModelConfig) -> str:
    overrides = [f"{name}={getattr(m, name)}" for name in SHAPE_FIELDS if getattr(m, name)]
    return m.arch + (f" ({', '.join(overrides)})" if overrides else "")


def run_cost(cfg: RunConfig, table: ThroughputTable) -> RunCost:
    """A run's images, training FLOPs and time on `table`'s device; for a run from a released
    checkpoint, its evaluation's (`eval_cost`)."""
    from benchmark import data

    if cfg.model.checkpoint:
        return eval_cost(cfg, table)
    spec = data.spec(cfg.data.dataset)
    size = cfg.data.image_size or spec.image_size
    # As the trainer does: train_examples keeps a subset (0 or more than the split: all of it), and
    # a subset smaller than the batch caps the batch.
    examples = (
        cfg.data.train_examples if 0 < cfg.data.train_examples < spec.train_examples else spec.train_examples
    )
    images = cfg.optim.steps * min(cfg.optim.batch_size, examples)
    from benchmark.flops import meta_train_flops_per_image  # torch, only once a cost is computed

    per_image = meta_train_flops_per_image(cfg.model, size, spec.channels, spec.num_classes)
    seconds, basis = _time(cfg.model, size, images, per_image, table)
    return RunCost(_model_label(cfg.model), size, images, images * per_image, seconds, basis)


def _time(
    model: ModelConfig, size: int, images: float, per_image: float, table: ThroughputTable
) -> tuple[float | None, str]:
    """Seconds on the table's device: at the measured images/s of this very model, else at the
    achieved FLOP/s of the nearest (in FLOPs per image) measured model of the same family."""
    named = not any(getattr(model, name) for name in SHAPE_FIELDS)
    for row in table.rows:
        if named and _arch_key(row.arch) == _arch_key(model.arch) and row.image_size == size:
            return images / row.img_per_s, f"measured ({row.mode})"
    kin = family_of(model.arch)
    peers = [r for r in table.rows if r.flops_per_image and parse_model(r.arch).family == kin.name]
    if not peers:
        return None, f"no estimate: the table measured no {kin.label} model with its FLOPs per image"
    ref = min(peers, key=lambda r: abs(math.log(r.flops_per_image / per_image)))
    achieved = ref.img_per_s * ref.flops_per_image
    return (
        images * per_image / achieved,
        f"extrapolated from {ref.name}'s measured {achieved / 1e12:.0f} TFLOP/s ({ref.mode})",
    )


# --- a run from a released checkpoint: its evaluation -----------------------------------------

# The on-disk datasets' published split sizes, for pricing a probe whose folder is not here:
# (official training images, official test images, classes). The dev split is held out of the
# training images as `formats.FORMATS[name].dev_fraction` says (benchmark/data/formats.py).
PUBLISHED_SPLITS = {
    "cifar10": (50_000, 10_000, 10),  # Krizhevsky (2009): 5 batches of 10,000 + a test batch
    "cifar100": (50_000, 10_000, 100),
    "pets": (3_680, 3_669, 37),  # Parkhi et al. (2012): annotations/trainval.txt, test.txt
    "flowers102": (2_040, 6_149, 102),  # Nilsback & Zisserman (2008): setid's trnid + valid, tstid
    "imagenet1k": (1_281_167, 50_000, 1_000),  # ILSVRC-2012: train, val (the test split here)
}


@dataclass(frozen=True)
class Splits:
    """A probe dataset's split sizes and classes, and where they come from."""

    train: int
    val: int
    test: int
    classes: int
    source: str  # "listed", "published" or "loaded"


def probe_splits(name: str) -> Splits | None:
    """The split sizes of dataset `name` without decoding an image: an on-disk format's from its
    listing, else (its folder absent or unreadable here) the published sizes (PUBLISHED_SPLITS); a
    fractal's from its name; an offline source's from the loaded dataset (small). None where they
    cannot be known here (JFT-300M, a `folder:` or the ImageNet-21k tree that is not here)."""
    from benchmark import data
    from benchmark.data import formats, fractals

    if formats.is_format(name):
        req = formats.parse(name)
        if req.location.exists():
            try:
                listing = formats.listing(req)
            except UserError:
                listing = None
            if listing is not None:
                dev = round(req.format.dev_fraction * len(listing.pool))
                return Splits(len(listing.pool) - dev, dev, len(listing.test), len(listing.classes), "listed")
        if req.format.name not in PUBLISHED_SPLITS:
            return None
        pool, test, classes = PUBLISHED_SPLITS[req.format.name]
        dev = round(req.format.dev_fraction * pool)
        return Splits(pool - dev, dev, test, classes, "published")
    if fractals.is_fractal(name):
        f = fractals.parse(name)
        held = f.categories * fractals.EVAL_PER_CLASS
        return Splits(f.train_examples, held, held, f.categories, "loaded")
    if name in data.SOURCES:
        ds = data.load(name)
        return Splits(len(ds.train_y), len(ds.val_y), len(ds.test_y), ds.num_classes, "loaded")
    return None


@functools.cache
def meta_forward_flops_per_image(model: ModelConfig, image_size: int, channels: int) -> float:
    """FLOPs of one eval-mode forward pass of the model `model` describes, per image, counted by
    torch's FLOP counter on the meta device (as flops.meta_train_flops_per_image counts a training
    step; a 1-class head: the probes read the encoder's features, and a head is a rounding error)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from benchmark.models import build_model, math_attention

    with torch.device("meta"):
        net = build_model(model, 1, image_size, channels).eval()
        images = torch.empty(2, channels, image_size, image_size)
        with torch.no_grad(), math_attention(net), FlopCounterMode(display=False) as counter:
            net(images)
    return counter.get_total_flops() / 2


FEATURE_EVALUATORS = ("fewshot", "fewshot_lso", "linear")


def eval_cost(cfg: RunConfig, table: ThroughputTable) -> RunCost:
    """A run from a released checkpoint: no pre-training; its evaluators' forward passes and its
    fine-tuning (EVAL_CONVENTION), each timed at the model's training FLOP/s at its resolution."""
    from benchmark import data
    from benchmark.evals import finetune as ft_eval
    from benchmark.evals import inspect as inspect_eval
    from benchmark.evals import position
    from benchmark.flops import meta_train_flops_per_image

    ev, model = cfg.eval, cfg.model
    channels = data.spec(cfg.data.dataset).channels
    size = cfg.data.image_size or data.spec(cfg.data.dataset).image_size
    forward: dict[int, int] = {}  # resolution -> images through the encoder
    tuned: dict[tuple[int, int], int] = {}  # (resolution, classes) -> images fine-tuned on
    uncounted: list[str] = []
    splits = {name: probe_splits(name) for name in dict.fromkeys(ev.fewshot_datasets)}

    def seen(at: int, images: int) -> None:
        forward[at] = forward.get(at, 0) + images

    # The features of a split are computed once and shared (EvalContext.features): few-shot's
    # shots' rows of train (every seed's draw: at most classes × largest shots × seeds) and all of
    # val and test; linear's all of train and test.
    few = any(e in ev.evaluators for e in ("fewshot", "fewshot_lso"))
    linear = "linear" in ev.evaluators
    for name, s in splits.items() if few or linear else ():
        if s is None:
            uncounted.append(f"the probes' forward passes on {name} (its split sizes are not known here)")
            continue
        pool = min(s.train, s.classes * max(ev.shots) * ev.fewshot_seeds) if few else 0
        seen(size, pool + (s.train if linear else 0) + (s.val if few else 0) + s.test)
    if "inspect" in ev.evaluators:
        # its sample and Fig. 6's rollout images, through the checkpoint and its untrained architecture
        seen(size, 2 * (inspect_eval.IMAGES + inspect_eval.ROLLOUT_IMAGES))
    if "position" in ev.evaluators:
        seen(size, position.QUADRANTS * (position.TRAIN_PER_CLASS + position.TEST_PER_CLASS))
    if "finetune" in ev.evaluators:
        at = ev.finetune.image_size or size
        for name in ft_eval.datasets(ev):
            s = splits.get(name) or probe_splits(name)
            if s is None:
                uncounted.append(f"fine-tuning on {name} (its classes and split sizes are not known here)")
                continue
            key = (at, s.classes)
            tuned[key] = tuned.get(key, 0) + ft_eval.steps(ev.finetune, name) * ev.finetune.batch * (
                len(ev.finetune.lrs) + 1
            )
            seen(at, s.val * len(ev.finetune.lrs) + s.test)  # each lr's dev score, the chosen one's test
    unpriced = [e for e in ev.evaluators if e not in (*FEATURE_EVALUATORS, "inspect", "position", "finetune")]
    uncounted += [f"evaluator {e} (not priced for a run from a released checkpoint)" for e in unpriced]

    seconds: float | None = 0.0
    timed: list[str] = []
    forward_flops = finetune_flops = 0.0
    parts = [(at, n, meta_forward_flops_per_image(model, at, channels), None) for at, n in forward.items()]
    parts += [(at, n, meta_train_flops_per_image(model, at, channels, k), k) for (at, k), n in tuned.items()]
    for at, images, per_image, classes in parts:
        flops = images * per_image
        if classes is None:
            forward_flops += flops
        else:
            finetune_flops += flops
        # Timed as the training images of equal FLOPs: at the model's training FLOP/s at `at`.
        step = meta_train_flops_per_image(model, at, channels, classes or 1)
        took, how = _time(model, at, flops / step, step, table)
        seconds = None if took is None or seconds is None else seconds + took
        timed.append(f"{at} px {how}")
    basis = "forward + fine-tuning FLOPs at the model's training FLOP/s, " + (
        " and ".join(dict.fromkeys(timed)) or "nothing to count"
    )
    if uncounted:
        basis += f" (not counted: {', '.join(uncounted)})"
    images = sum(forward.values()) + sum(tuned.values())
    return RunCost(
        _model_label(model),
        size,
        images,
        forward_flops + finetune_flops,
        seconds,
        basis,
        work=EVALUATION,
        forward_flops=forward_flops,
        finetune_flops=finetune_flops,
        checkpoint=model.checkpoint,
    )


FLOP_UNITS = (("exaFLOPs", 1e18), ("petaFLOPs", 1e15), ("teraFLOPs", 1e12), ("gigaFLOPs", 1e9))


def flop_unit(flops: float) -> tuple[str, float]:
    """The largest unit in which `flops` is at least 1 (Table 6 counts in exaFLOPs)."""
    return next(((name, scale) for name, scale in FLOP_UNITS if flops >= scale), FLOP_UNITS[-1])


def significant(value: float, digits: int = 3) -> str:
    """`value` to `digits` significant digits, without an exponent: 224, 0.0123, 1,570."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{round(value, decimals):,.{decimals}f}"


def format_flops(flops: float) -> str:
    name, scale = flop_unit(flops)
    return f"{significant(flops / scale)} {name}"


def gpu_time(seconds: float) -> str:
    """GPU time in the unit that reads well: 26,000 GPU-hours, 12 GPU-minutes, 0.27 GPU-seconds."""
    for unit, scale in (("GPU-hours", 3600), ("GPU-minutes", 60)):
        if seconds >= scale:
            return f"{significant(seconds / scale)} {unit}"
    return f"{significant(seconds)} GPU-seconds"


def total(costs: list[RunCost], table: ThroughputTable) -> str:
    """'N runs, F of training, T GPU-hours on DEVICE' (and how many runs have no time estimate);
    runs from a released checkpoint: 'F forward + fine-tuning FLOPs (forward F1, fine-tuning F2)'."""
    timed = [c.seconds for c in costs if c.seconds is not None]
    hours = f"{gpu_time(sum(timed))} on {table.device}"
    if len(timed) < len(costs):
        hours += f" for {len(timed)} of them ({len(costs) - len(timed)} without an estimate)"
    return f"{len(costs)} runs, {flops_text(costs)}, {hours}"


def flops_text(costs: list[RunCost]) -> str:
    """What the runs' FLOPs count, in words: training, or forward + fine-tuning, or both."""
    trained = [c for c in costs if c.work == TRAINING]
    evaluated = [c for c in costs if c.work == EVALUATION]
    parts = []
    if trained or not evaluated:
        parts.append(f"{format_flops(sum(c.flops for c in trained))} of training")
    if evaluated:
        forward, tuned = sum(c.forward_flops for c in evaluated), sum(c.finetune_flops for c in evaluated)
        split = f"forward {format_flops(forward)}, " + (
            f"fine-tuning {format_flops(tuned)}" if tuned else "no fine-tuning"
        )
        parts.append(f"{format_flops(forward + tuned)} forward + fine-tuning FLOPs ({split})")
    return " and ".join(parts)


def bases(costs: list[RunCost]) -> str:
    """How the hours were obtained, with the number of runs each way: '30 measured (torch.compile);
    10 extrapolated from B/16 @224px's measured 346 TFLOP/s (torch.compile)'."""
    counts: dict[str, int] = {}
    for c in costs:
        counts[c.basis] = counts.get(c.basis, 0) + 1
    return "; ".join(f"{n} {basis}" for basis, n in counts.items())
