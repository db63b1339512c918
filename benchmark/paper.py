"""The paper's numbers (paper_values.csv, shipped as package data): facts, never edited."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import pandas as pd


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
