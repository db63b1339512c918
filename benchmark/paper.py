"""The paper's numbers (paper_values.csv, shipped as package data): facts, never edited."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from importlib.resources import files
from typing import Any

import pandas as pd

# §4.1's datasets as the paper counts them (Table 6's exaFLOPs use 303M images per JFT epoch).
JFT_IMAGES, JFT_CLASSES = 303_000_000, 18_291
IMAGENET_IMAGES = 1_281_167  # ILSVRC-2012's training split
IMAGENET21K_IMAGES = 14_197_122  # ImageNet-21k, fall 2011 release


@cache
def _all() -> pd.DataFrame:
    with files("benchmark").joinpath("paper_values.csv").open() as f:
        return pd.read_csv(f)


# Our FLOP count of Table 6's models (benchmark.flops.count_table6), stored as package data so a
# report reads it and never builds a model: written by `python -m benchmark.flops`.
TABLE6_ACCOUNTING = "table6_accounting.csv"


@cache
def table6_accounting() -> pd.DataFrame:
    """The stored Table 6 accounting: one row per (model, epochs) of Table 6, the paper's and our
    exaFLOPs and their difference in % (see benchmark.flops.count_table6 for what is counted)."""
    # The python engine parses floats as Python does, so they read back bit for bit (the C
    # engine's float_precision="round_trip" does too, but pandas 3 deprecates it).
    with files("benchmark").joinpath(TABLE6_ACCOUNTING).open() as f:
        return pd.read_csv(f, engine="python")


def paper_values(**filters: Any) -> pd.DataFrame:
    """Rows of the paper's tables, filtered by column equality, e.g. paper_values(source="table8")."""
    df = _all()
    for column, value in filters.items():
        df = df[df[column] == value]
    return df.reset_index(drop=True)


def parse_variant(variant: str) -> dict[str, str]:
    """'pos_embed=1d;inject=stem' -> {'pos_embed': '1d', 'inject': 'stem'}."""
    if not isinstance(variant, str) or not variant:
        return {}
    return dict(part.split("=", 1) for part in variant.split(";") if "=" in part)


# Fig. 5's "average over 5 datasets" (most likely these; PAPER.md) and their chance accuracy.
AVERAGE5 = {
    "ImageNet": 1000,
    "CIFAR-10": 10,
    "CIFAR-100": 100,
    "Oxford-IIIT-Pets": 37,
    "Oxford-Flowers-102": 102,
}


# The paper's names of the transfer datasets the suite fine-tunes on (benchmark.presets.PAPER_TRANSFER).
PAPER_NAMES = {"cifar100": "CIFAR-100", "pets": "Oxford-IIIT-Pets", "flowers102": "Oxford-Flowers-102"}


def finetuned_gap(
    a: Mapping[str, Any], b: Mapping[str, Any], evals: Sequence[str] = tuple(AVERAGE5)
) -> tuple[float, float, float]:
    """The paper's fine-tuned accuracy of the rows `a` minus those of `b` (each a `paper_values`
    filter that picks one model's row per dataset), averaged over `evals`, with the two models' mean
    accuracy and the datasets' mean chance (fractions): what benchmark.judge.above_chance scales a
    predicted effect from."""

    def accuracy(rows: Mapping[str, Any]) -> pd.Series:
        picked = paper_values(**rows).set_index("eval")["value"].reindex(list(evals)) / 100
        if picked.isna().any():
            raise ValueError(f"the paper has no complete row for {dict(rows)} on {', '.join(evals)}")
        return picked

    x, y = accuracy(a), accuracy(b)
    chance = sum(1 / AVERAGE5[e] for e in evals) / len(evals)
    return float((x - y).mean()), float((x + y).mean() / 2), chance


def paper_evals(datasets: Sequence[str]) -> tuple[str, ...]:
    """The paper's names of those of the suite's `datasets` it tabulates; all of PAPER_NAMES' if none."""
    return tuple(PAPER_NAMES[d] for d in datasets if d in PAPER_NAMES) or tuple(PAPER_NAMES.values())


def table5_gap(
    model_a: str, model_b: str, evals: Sequence[str], pretrain: str = "ImageNet-21k"
) -> tuple[float, float, float]:
    """Table 5's fine-tuned accuracy of `model_a` minus `model_b`, both pre-trained on `pretrain`,
    averaged over `evals` (`finetuned_gap`)."""
    rows = {"source": "table5", "pretrain": pretrain}
    return finetuned_gap({**rows, "model": model_a}, {**rows, "model": model_b}, evals)


def table6_gap(
    model_a: str,
    model_b: str,
    epochs: int = 7,
    epochs_b: int | None = None,
    evals: Sequence[str] = tuple(AVERAGE5),
) -> tuple[float, float, float]:
    """Table 6's fine-tuned accuracy of `model_a` minus `model_b`, averaged over `evals` (the 5
    datasets unless given; `finetuned_gap`)."""
    b_epochs = epochs if epochs_b is None else epochs_b
    return finetuned_gap(
        {"source": "table6", "model": model_a, "epochs": epochs},
        {"source": "table6", "model": model_b, "epochs": b_epochs},
        evals,
    )


def table6_compute(model: str, epochs: int) -> float:
    """Table 6's pre-training compute of `model` at `epochs` epochs of JFT, in FLOPs (its exaFLOPs
    column × 1e18)."""
    rows = paper_values(source="table6", model=model)
    rows = rows[rows["epochs"] == epochs]
    if rows.empty:
        raise ValueError(f"Table 6 has no {model} at {epochs} epochs")
    return float(rows["exaflops"].iloc[0]) * 1e18
