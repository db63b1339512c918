"""The paper's numbers (paper_values.csv, shipped as package data): facts, never edited."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import pandas as pd

# §4.1's datasets as the paper counts them (Table 6's exaFLOPs use 303M images per JFT epoch).
JFT_IMAGES, JFT_CLASSES = 303_000_000, 18_291
IMAGENET_IMAGES = 1_281_167  # ILSVRC-2012's training split
IMAGENET21K_IMAGES = 14_197_122  # ImageNet-21k, fall 2011 release


@cache
def _all() -> pd.DataFrame:
    with files("benchmark").joinpath("paper_values.csv").open() as f:
        return pd.read_csv(f)


def paper_values(**filters: str) -> pd.DataFrame:
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
