"""Inspection at the end of training (§4.5; Figs. 6, 7, 10, 11), for the inspect study.

The final model and the same run's untrained initialisation are measured side by side
(benchmark.inspection) on one stratified sample of the upstream test split (or of the dataset
`eval.inspect_images` names: a released checkpoint's upstream is not here): 128 images, as §4.5
averages attention distances over 128, as equal per class as the classes allow, drawn with a fixed
seed so every model of a study sees the same images. The initialisation is the null without
structure: a claim of learned structure (local heads, distance growing with depth, row/column
position embeddings) is judged against it, paired per seed. The arrays go to the run's
`inspect.npz`; small summaries become metrics (`inspect/<images>/<trained|init>_<measure>`), so
the study's report reads stored files only.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from benchmark import data, inspection, metrics, released
from benchmark.config import RunConfig
from benchmark.errors import UserError
from benchmark.evals.base import EvalContext, check_probe, register
from benchmark.models import build_model
from benchmark.storage import write_atomic

ARRAYS = "inspect.npz"  # in the run's folder, beside result.json
IMAGES = 128  # §4.5 / Fig. 7 right: attention distances averaged over 128 images
SAMPLE_SEED = 0  # one sample for every run, so models are compared on the same images
ROLLOUT_IMAGES = 6  # Fig. 6's images: the sample's first, of distinct classes where there are as many
TOP_COMPONENTS = 4  # the filter summary: variance share of the first 4 principal components


def initial_model(cfg: RunConfig, num_classes: int, size: int, channels: int) -> nn.Module:
    """The run's model as it was before its first step, rebuilt as the trainer builds it
    (torch.manual_seed(cfg.seed), then build_model on the CPU), leaving the caller's RNG untouched.
    For a released checkpoint: its architecture as timm initialises it from the run's seed."""
    if cfg.model.checkpoint:
        return released.untrained(cfg.model.checkpoint, size, cfg.seed)
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(cfg.seed)
        return build_model(cfg.model, num_classes, size, channels)


def summary(m: inspection.Measurement, uniform: float) -> dict[str, float]:
    """The scalars the study judges and tabulates, from one model's measurement."""
    d = m.distance
    out = {
        "layer1_max_px": d[0].max(),
        "layer1_min_px": d[0].min(),
        "layer1_mean_px": d[0].mean(),
        "last_mean_px": d[-1].mean(),
        # how far the heads are from position-blind attention, whichever way
        "off_uniform_px": np.abs(d - uniform).mean(),
    }
    if (stem := m.similarity.get("stem")) is not None:
        out["rowcol_contrast"] = inspection.row_column_contrast(stem)
        out["row_contrast"] = inspection.axis_contrast(stem, "row")
        out["column_contrast"] = inspection.axis_contrast(stem, "column")
    if m.explained is not None:
        out[f"filters_top{TOP_COMPONENTS}_explained"] = m.explained[:TOP_COMPONENTS].sum()
    return {k: float(v) for k, v in out.items()}


def metrics_of(
    measured: dict[str, inspection.Measurement], uniform: float, token_px: float, dataset: str
) -> dict[str, float]:
    """The run's metrics: `inspect/<dataset>/<state>_<measure>` per state (trained, init), and the
    distance of uniform attention and the patch step they are judged against."""
    out = {metrics.key("inspect", dataset, "uniform_px"): uniform}
    out[metrics.key("inspect", dataset, "token_px")] = token_px
    for state, m in measured.items():
        out |= {metrics.key("inspect", dataset, f"{state}_{k}"): v for k, v in summary(m, uniform).items()}
    return out


def arrays_of(measured: dict[str, inspection.Measurement]) -> dict[str, np.ndarray]:
    """The per-state arrays of inspect.npz, keyed `<state>/<measure>` (`<state>/similarity/<table>`)."""
    out = {}
    for state, m in measured.items():
        out |= {f"{state}/distance": m.distance, f"{state}/rollout": m.rollout}
        if m.components is not None:
            out |= {f"{state}/components": m.components, f"{state}/explained": m.explained}
        out |= {f"{state}/similarity/{table}": sim for table, sim in m.similarity.items()}
    return out


def images_of(cfg: RunConfig) -> str:
    """The dataset whose test images are inspected: eval.inspect_images, else the upstream."""
    return cfg.eval.inspect_images or cfg.data.dataset


def _describe(cfg: RunConfig) -> str:
    model = (
        f"the released checkpoint {cfg.model.checkpoint} and its architecture as timm initialises it, untrained "
        f"(seed {cfg.seed})"
        if cfg.model.checkpoint
        else f"the final model and its untrained initialisation (seed {cfg.seed}, rebuilt as the trainer builds it)"
    )
    return (
        f"{model}, each on {IMAGES} test images of {images_of(cfg)} stratified by class (seed {SAMPLE_SEED}): "
        "mean attention distance per head (weights from an explicit, non-fused pass), attention rollout "
        f"of {ROLLOUT_IMAGES} images, position-embedding cosine similarity, patch-filter PCA; arrays in "
        f"{ARRAYS}"
    )


def _check(cfg: RunConfig) -> None:
    """A run from a released checkpoint has no upstream images here: it names the images to inspect."""
    if cfg.eval.inspect_images:
        check_probe(
            cfg, cfg.eval.inspect_images, data.spec(cfg.data.dataset).channels, False, "eval.inspect_images"
        )
    elif cfg.model.checkpoint:
        raise UserError(
            f"the inspect evaluator measures a released checkpoint ({cfg.model.checkpoint}) on images this run "
            "reads: set eval.inspect_images to a dataset held in memory, e.g. eval.inspect_images=pets"
        )


@register("inspect", _describe, owns=("inspect_images",), check=_check)
@torch.no_grad()
def inspect_model(ctx: EvalContext) -> dict[str, float]:
    images_from = images_of(ctx.cfg)
    model = ctx.model
    test = ctx.probes.split(images_from, "test") if ctx.cfg.eval.inspect_images else ctx.upstream_test
    if test is None:
        raise ValueError("the inspect evaluator has no images: the run has no upstream test split")
    if getattr(model, "patch_embed", None) is None:
        raise ValueError(f"{ctx.cfg.model.arch} has no attention to inspect (a BiT ResNet)")
    sample = inspection.stratified_sample(test.y.numpy(), IMAGES, SAMPLE_SEED)
    images = test.x(torch.from_numpy(sample).to(test.images.device))
    device = next(model.parameters()).device
    init = initial_model(ctx.cfg, model.num_classes, test.size, test.channels).to(device).eval()
    grid = tuple(model.patch_embed.grid_size)
    token_px = (test.size / grid[0], test.size / grid[1])
    uniform = inspection.uniform_distance(grid, token_px, model.num_prefix_tokens)
    measured = {"trained": inspection.measure(model, images, ROLLOUT_IMAGES)}
    measured["init"] = inspection.measure(init, images, ROLLOUT_IMAGES)
    arrays = {
        "sample": sample,
        "labels": test.y.numpy()[sample],
        "grid": np.array(grid),
        "token_px": np.array(token_px),
        "uniform": np.array(uniform),
        "images": images[:ROLLOUT_IMAGES].float().cpu().numpy(),
        **arrays_of(measured),
    }
    if ctx.run_dir is None:
        raise ValueError(
            "the inspect evaluator stores its arrays in the run's folder: give the context a run_dir"
        )
    write_atomic(ctx.run_dir / ARRAYS, lambda f: np.savez_compressed(f, **arrays))
    return metrics_of(measured, uniform, token_px[0], images_from)
