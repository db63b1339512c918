"""The scale of each preset, shared by the studies, and the grid helper studies declare runs with.

Every study judges transfer the same way at a given scale, so the protocol lives here once: at
`smoke` and `cpu`, pre-train on MNIST digits 0–4 and probe digits 5–9 (images and classes never
seen), the UCI digits and procedural shapes (`benchmark.data.role` says which each is); at `gpu`,
pre-train on formula-driven fractals and probe the same three. A study
takes `base(preset)` and changes only what it ablates. A preset without a base is an error, never
a silent fall-back to another scale.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from benchmark import metrics
from benchmark.config import DataConfig, EvalConfig, ModelConfig, OptimConfig, RunConfig, steps_for_epochs
from benchmark.errors import UserError
from benchmark.paper import JFT_IMAGES

UPSTREAM = "mnist0to4"
TRANSFER = ("mnist5to9", "digits", "shapes")

BASES: dict[str, RunConfig] = {
    # A check of the pipeline in seconds per run; its numbers mean nothing.
    "smoke": RunConfig(
        model=ModelConfig(arch="Mu/7"),
        data=DataConfig(dataset=UPSTREAM, train_examples=500),
        optim=OptimConfig(steps=30, warmup_steps=5, batch_size=64),
        eval=EvalConfig(fewshot_datasets=TRANSFER, shots=(1, 5), fewshot_seeds=2),
    ),
    # Minutes per study on 2 CPU cores: ViT-Mu/7 (4 layers, width 64, a 4x4 grid of 7x7 patches),
    # 400 steps of batch 128 on the 1,750 training images of digits 0–4 (~29 epochs).
    "cpu": RunConfig(
        model=ModelConfig(arch="Mu/7"),
        data=DataConfig(dataset=UPSTREAM),
        optim=OptimConfig(lr=2e-3, weight_decay=0.1, batch_size=128, steps=400, warmup_steps=40),
        eval=EvalConfig(fewshot_datasets=TRANSFER, shots=(1, 5, 10, 25), fewshot_seeds=3),
    ),
    # One GPU, offline, minutes per run: ViT-Ti/8 at 64 px (an 8x8 grid, as B/16 has 14x14 at 224) for
    # 2,000 steps of batch 256 (5 epochs) on 100,000 formula-driven images of 100 fractal categories,
    # rendered on the machine (no download); judged on transfer to the same shipped datasets, at 64 px.
    "gpu": RunConfig(
        model=ModelConfig(arch="Ti/8"),
        data=DataConfig(dataset="fractal100x1000@64", augment="shift"),
        optim=OptimConfig(lr=1e-3, weight_decay=0.1, batch_size=256, steps=2000, warmup_steps=200),
        eval=EvalConfig(fewshot_datasets=TRANSFER, shots=(1, 5, 10, 25), fewshot_seeds=3),
    ),
    # The paper's own scale (§4.1, Table 3): ViT-B/16 at 224 px on JFT-300M for 7 epochs of batch 4096,
    # Adam lr 8e-4, weight decay 0.1, 10k warm-up steps, linear decay; judged by ImageNet 5-shot. JFT
    # is private: planned and priced here; a user runs it on ImageNet-21k (`--set data.dataset=...`).
    "paper": RunConfig(
        model=ModelConfig(arch="B/16"),
        data=DataConfig(dataset="jft300m", image_size=224),
        optim=OptimConfig(
            lr=8e-4,
            weight_decay=0.1,
            batch_size=4096,
            steps=steps_for_epochs(7, JFT_IMAGES, 4096),
            warmup_steps=10_000,
        ),
        eval=EvalConfig(fewshot_datasets=("imagenet1k",), shots=(1, 5, 10, 25), fewshot_seeds=3),
    ),
}


def base(preset: str) -> RunConfig:
    if preset not in BASES:
        raise UserError(f"no base configuration for preset {preset!r}; valid: {', '.join(BASES)}")
    return BASES[preset]


def grid(base_cfg: RunConfig, cells: Iterable[Mapping[str, Any]], seeds: Sequence[int]) -> list[RunConfig]:
    """One run per (cell, seed): each cell a mapping of dotted config paths to values."""
    return [base_cfg.replace(**cell, seed=seed) for cell in cells for seed in seeds]


def product(**axes: Sequence[Any]) -> list[dict[str, Any]]:
    """Cells of a full grid: product(**{"model.pool": [...], "optim.lr": [...]}) -> [{...}, ...].
    Keys are dotted config paths (pass them with ** since they contain dots)."""
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]


def transfer_mean(
    df: pd.DataFrame, shots: int = 5, split: str = "test", protocol: str = "fewshot"
) -> pd.Series:
    """Few-shot accuracy averaged over the transfer datasets: the number the studies judge (test)
    or select on (val). The paper's counterpart is ImageNet 5-shot after JFT pre-training."""
    return df[[metrics.fewshot(d, shots, split, protocol=protocol) for d in TRANSFER]].mean(axis=1)
