"""Summaries over seeds and the comparisons that claim checks use.

A difference counts as real when it exceeds two standard errors of the difference of two means
(≈ a 95% interval). With one seed per cell there is no spread of its own, so the standard error
uses the study's pooled within-cell standard deviation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd


def summarize(df: pd.DataFrame, by: Sequence[str], metric: str) -> pd.DataFrame:
    """mean, std, n per cell; the std is NaN for single-seed cells."""
    grouped = df.groupby(list(by), dropna=False)[metric]
    out = grouped.agg(mean="mean", std="std", n="count").reset_index()
    return out


def pooled_std(df: pd.DataFrame, by: Sequence[str], metric: str) -> float:
    """The within-cell standard deviation pooled over all cells with two or more seeds."""
    num, dof = 0.0, 0
    for _, group in df.groupby(list(by), dropna=False)[metric]:
        if len(group) > 1:
            num += float(np.var(group, ddof=1)) * (len(group) - 1)
            dof += len(group) - 1
    return math.sqrt(num / dof) if dof else float("nan")


def se_diff(sd: float, n_a: int, n_b: int) -> float:
    """Standard error of the difference of two cell means, given the pooled seed std."""
    return sd * math.sqrt(1.0 / n_a + 1.0 / n_b)


def fmt_mean_std(mean: float, std: float, n: int, scale: float = 100.0, digits: int = 1) -> str:
    if n > 1 and not math.isnan(std):
        return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f} (n={n})"
    return f"{mean * scale:.{digits}f} (n={n})"


def welch_se(std_a: float, n_a: int, std_b: float, n_b: int) -> float:
    """Standard error of the difference of two cell means from those two cells' own spreads
    (Welch): right when cells differ in stability, e.g. across a learning-rate sweep."""
    return math.sqrt(std_a**2 / n_a + std_b**2 / n_b)
