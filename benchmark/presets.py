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

from benchmark import metrics, released
from benchmark.config import (
    DataConfig,
    EvalConfig,
    FinetuneConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    steps_for_epochs,
)
from benchmark.errors import UserError
from benchmark.paper import IMAGENET21K_IMAGES, JFT_IMAGES
from benchmark.power import Pilot
from benchmark.sizes import parse_model

UPSTREAM = "mnist0to4"
TRANSFER = ("mnist5to9", "digits", "shapes")
PAPER_TRANSFER = ("cifar100", "pets", "flowers102")
# Table 4 / App. B.1.1, as the original code ran it (vit_jax configs/common.py): batch 512 accumulated
# over 8 micro-batches, 384 px, SGD momentum 0.9 with 500 warm-up steps then cosine decay, lrs
# {0.001, 0.003, 0.01, 0.03}, 10,000 steps on CIFAR and 500 on Pets and Flowers (the released code has
# no preset for those two: its 500 warm-up steps then span the whole run), inception crop + flip.
FINETUNE = FinetuneConfig(
    datasets=PAPER_TRANSFER,
    image_size=384,
    batch=512,
    micro_batch=64,
    warmup=500,
    augment="inception_flip",
    lrs=(0.001, 0.003, 0.01, 0.03),
    steps=500,
    steps_by_dataset=("cifar100=10000",),
)
# JFT-300M, for the studies whose claims are about its scale (data_scaling, compute): planned and
# priced only. Table 3's ViT-B recipe: 7 epochs at batch 4096, lr 8e-4, weight decay 0.1, no dropout;
# judged by ImageNet 5-shot (ImageNet is not inside JFT), fine-tuned on ImageNet at 224 px (384 is
# no multiple of H/14's patch; the bill counts pre-training only).
JFT = {
    "data.dataset": "jft300m", "model.dropout": 0.0, "optim.lr": 8e-4, "optim.weight_decay": 0.1,
    "optim.steps": steps_for_epochs(7, JFT_IMAGES, 4096), "eval.fewshot_datasets": ("imagenet1k",),
    "eval.finetune.datasets": ("imagenet1k",), "eval.finetune.image_size": 0,
    "eval.finetune.steps_by_dataset": ("imagenet1k=20000",), "eval.finetune.lrs": (0.003, 0.01, 0.03, 0.06),
}  # fmt: skip


def curve(steps: int) -> dict[str, Any]:
    """Eight cheap evaluations along a run: the upstream train and test top-1 the fit gate reads
    (benchmark.fit), no transfer curves unless a study asks for them (head_type's Fig. 9)."""
    return {"every_steps": max(1, steps // 8), "transfer_curves": False}


BASES: dict[str, RunConfig] = {
    # A check of the pipeline in seconds per run; its numbers mean nothing.
    "smoke": RunConfig(
        model=ModelConfig(arch="Mu/7"),
        data=DataConfig(dataset=UPSTREAM, train_examples=500),
        optim=OptimConfig(steps=30, warmup_steps=5, batch_size=64),
        eval=EvalConfig(fewshot_datasets=TRANSFER, shots=(1, 5), fewshot_seeds=2, **curve(30)),
    ),
    # Minutes per study on 2 CPU cores: ViT-Mu/7 (4 layers, width 64, a 4x4 grid of 7x7 patches),
    # 400 steps of batch 128 on the 1,750 training images of digits 0–4 (~29 epochs).
    "cpu": RunConfig(
        model=ModelConfig(arch="Mu/7"),
        data=DataConfig(dataset=UPSTREAM),
        optim=OptimConfig(lr=2e-3, weight_decay=0.1, batch_size=128, steps=400, warmup_steps=40),
        eval=EvalConfig(fewshot_datasets=TRANSFER, shots=(1, 5, 10, 25), fewshot_seeds=3, **curve(400)),
    ),
    # One GPU, offline, minutes per run: ViT-Ti/8 at 64 px (an 8x8 grid, as B/16 has 14x14 at 224) for
    # 2,000 steps of batch 256 (5 epochs) on 100,000 formula-driven images of 100 fractal categories,
    # rendered on the machine (no download); judged on transfer to the same shipped datasets, at 64 px.
    "gpu": RunConfig(
        model=ModelConfig(arch="Ti/8"),
        data=DataConfig(dataset="fractal100x1000@64", augment="shift"),
        optim=OptimConfig(lr=1e-3, weight_decay=0.1, batch_size=256, steps=2000, warmup_steps=200),
        eval=EvalConfig(fewshot_datasets=TRANSFER, shots=(1, 5, 10, 25), fewshot_seeds=3, **curve(2000)),
    ),
    # The paper's scale with public data (§4.1, Table 3's ImageNet-21k recipe; JFT-300M is private):
    # ViT-B/16 at 224 px, 90 epochs of ImageNet-21k at batch 4096, Adam lr 1e-3, weight decay 0.03,
    # dropout 0.1, 10k warm-up steps, linear decay. Judged on transfer: 5-shot on CIFAR-100, Pets and
    # Flowers-102 (ImageNet-1k's classes are inside ImageNet-21k, so probing it reads classes back), and
    # fine-tuned with Table 4's protocol. The studies of data and compute price JFT itself (JFT below).
    "paper": RunConfig(
        model=ModelConfig(arch="B/16", dropout=0.1),
        data=DataConfig(dataset="imagenet21k", image_size=224),
        optim=OptimConfig(
            lr=1e-3,
            weight_decay=0.03,
            batch_size=4096,
            steps=steps_for_epochs(90, IMAGENET21K_IMAGES, 4096),
            warmup_steps=10_000,
        ),
        eval=EvalConfig(
            fewshot_datasets=PAPER_TRANSFER, shots=(1, 5, 10, 25), fewshot_seeds=3, finetune=FINETUNE
        ),
    ),
}


# Each preset's seed-to-seed noise of the judged transfer 5-shot accuracy, for `vitbench plan`'s
# power lines where no finished run of the same configs measures it (benchmark.power).
_CPU_PILOT = Pilot(
    sd=0.0127, level=0.295, chance=(1 / 5 + 1 / 10 + 1 / 10) / 3,
    source="pos_embed's cpu runs at main@22ad7c0: pooled sd over 8 cells of 5 seeds, 1.27 pts at 29.5%",
)  # fmt: skip
PILOT: dict[str, Pilot] = {"smoke": _CPU_PILOT, "cpu": _CPU_PILOT, "cpu-long": _CPU_PILOT}


def base(preset: str) -> RunConfig:
    if preset not in BASES:
        raise UserError(f"no base configuration for preset {preset!r}; valid: {', '.join(BASES)}")
    return BASES[preset]


BASES["cpu-long"] = BASES["cpu"]  # the cpu scale with longer sweeps (data_scaling, compute)
# The authors' released ImageNet-21k checkpoints (benchmark.released): nothing is pre-trained (0
# steps); each run names its checkpoint (`checkpoint`), whose file the plan pins by its sha256, and
# goes straight to its evaluators. The upstream is named for the record, never read. Transfer is the
# paper's: 5-shot on CIFAR-100, Pets and Flowers-102 at the checkpoints' 224 px, Table 4's fine-tuning.
BASES["released"] = RunConfig(
    model=released.model_config("vit_base_patch16_224.orig_in21k"),
    data=DataConfig(dataset="imagenet21k", image_size=224),
    optim=OptimConfig(steps=0, warmup_steps=0),
    eval=EvalConfig(
        fewshot_datasets=PAPER_TRANSFER, shots=(1, 5, 10, 25), fewshot_seeds=3, finetune=FINETUNE
    ),
)


def checkpoint(name: str) -> dict[str, Any]:
    """A cell that starts from the released checkpoint `name`: the model section it implies, and
    Table 4's fine-tuning resolution where its patch divides it, else the part of it the original
    code's unpadded patch convolution reads (H/14: the 27x27 patches of 14 px, 378 of 384 px)."""
    model = released.model_config(name)
    patch, size = parse_model(model.arch).patch, FINETUNE.image_size
    fine_tune = {"eval.finetune.image_size": size // patch * patch} if patch and size % patch else {}
    return {
        "model.arch": model.arch,
        "model.prelogits": model.prelogits,
        "model.checkpoint": name,
        **fine_tune,
    }


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
    return df[[metrics.fewshot(d, shots, split, protocol=protocol) for d in probes(df)]].mean(axis=1)


def finetune_mean(df: pd.DataFrame) -> pd.Series:
    """Each run's fine-tuned test top-1 averaged over the datasets it was fine-tuned on: the
    fine-tuned counterpart of `transfer_mean` (the paper's Fig. 3 and Table 5 view)."""
    return df[[metrics.key("finetune", d, "top1") for d in finetuned_on(df)]].mean(axis=1)


def from_checkpoints(df: pd.DataFrame) -> bool:
    """Whether every run starts from a released checkpoint (the `released` preset: nothing trained here)."""
    return bool(df["model.checkpoint"].astype(bool).all())


def chance(df: pd.DataFrame, datasets: Sequence[str]) -> float:
    """Chance accuracy averaged over `datasets` (1 / their classes), from what the runs recorded:
    the level a predicted effect is scaled from (benchmark.judge.above_chance)."""
    classes = {name: rec["classes"] for records in df["datasets"] for name, rec in records.items()}
    return sum(1 / classes[name] for name in datasets) / len(datasets)


def probes(df: pd.DataFrame) -> tuple[str, ...]:
    """The transfer datasets a preset's runs were probed on, from their configs (one tuple per preset)."""
    return _same(df, "eval.fewshot_datasets")


def finetuned_on(df: pd.DataFrame) -> tuple[str, ...]:
    """The datasets the finetune evaluator ran on (eval.finetune.datasets, else the probe datasets)."""
    return _same(df, "eval.finetune.datasets") or probes(df)


def _same(df: pd.DataFrame, column: str) -> tuple[str, ...]:
    values = set(map(tuple, df[column]))
    if len(values) != 1:
        raise ValueError(f"the runs differ in {column}: {sorted(values)}; a study judges one set of datasets")
    return values.pop()
