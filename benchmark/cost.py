"""What a plan costs before anything runs: each run's training FLOPs and its time on a named
accelerator, without training and without the data (`data.spec` gives a dataset's shape).

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


@dataclass(frozen=True)
class RunCost:
    model: str  # the arch, with any shape overrides
    image_size: int
    images: int  # images seen in training: steps × batch
    flops: float  # training FLOPs
    seconds: float | None  # on the table's device; None when no model of its family was measured
    basis: str  # how the time was obtained: measured, extrapolated from which model, or why none


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
    """A run's images, training FLOPs and time on `table`'s device."""
    from benchmark import data

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
    model: ModelConfig, size: int, images: int, per_image: float, table: ThroughputTable
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
    """'N runs, F of training, T GPU-hours on DEVICE' (and how many runs have no time estimate)."""
    flops = sum(c.flops for c in costs)
    timed = [c.seconds for c in costs if c.seconds is not None]
    hours = f"{gpu_time(sum(timed))} on {table.device}"
    if len(timed) < len(costs):
        hours += f" for {len(timed)} of them ({len(costs) - len(timed)} without an estimate)"
    return f"{len(costs)} runs, {format_flops(flops)} of training, {hours}"


def bases(costs: list[RunCost]) -> str:
    """How the hours were obtained, with the number of runs each way: '30 measured (torch.compile);
    10 extrapolated from B/16 @224px's measured 346 TFLOP/s (torch.compile)'."""
    counts: dict[str, int] = {}
    for c in costs:
        counts[c.basis] = counts.get(c.basis, 0) + 1
    return "; ".join(f"{n} {basis}" for basis, n in counts.items())
