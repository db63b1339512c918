"""Compute-efficiency fronts (Fig. 5): the best accuracy a model family reaches for a given
pre-training compute, and how much compute two families need for the same accuracy.

Cells are (compute, accuracy) points, one per trained configuration (means over seeds). A family's
front keeps the points no cheaper point beats; between two front points accuracy is interpolated
linearly in log-compute, as Fig. 5 plots it. Nothing is extrapolated beyond a front's ends: where
two fronts' accuracies do not overlap, no compute can be matched and the functions say so (NaN).
"""

from __future__ import annotations

import numpy as np

LEVELS = 21  # accuracy levels spread over the overlap of two fronts


def front(compute: np.ndarray, accuracy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Pareto front (compute ascending, accuracy strictly ascending) of a family's points."""
    compute, accuracy = np.asarray(compute, dtype=float), np.asarray(accuracy, dtype=float)
    order = np.lexsort((-accuracy, compute))  # cheapest first; at equal compute the best first
    keep, best = [], -np.inf
    for i in order:
        if accuracy[i] > best:
            keep.append(i)
            best = accuracy[i]
    return compute[keep], accuracy[keep]


def compute_for(fr: tuple[np.ndarray, np.ndarray], level: float) -> float:
    """The compute at which the front first reaches `level` (log-linear between front points);
    NaN outside the accuracies the front spans."""
    c, a = fr
    if not a[0] <= level <= a[-1]:
        return float("nan")
    return float(np.exp(np.interp(level, a, np.log(c))))


def accuracy_at(fr: tuple[np.ndarray, np.ndarray], compute: float) -> float:
    """The front's accuracy at `compute` (log-linear between front points); NaN outside its range."""
    c, a = fr
    if not c[0] <= compute <= c[-1]:
        return float("nan")
    return float(np.interp(np.log(compute), np.log(c), a))


def compute_ratio(slow: tuple[np.ndarray, np.ndarray], fast: tuple[np.ndarray, np.ndarray]) -> float:
    """How many times more compute `slow` needs than `fast` for the same accuracy: the geometric
    mean of the ratio over LEVELS accuracies spread across the range both fronts span (Fig. 5's
    "2–4× less compute to attain the same performance"). NaN when the ranges do not overlap."""
    low, high = max(slow[1][0], fast[1][0]), min(slow[1][-1], fast[1][-1])
    if low > high:
        return float("nan")
    levels = np.linspace(low, high, LEVELS)
    ratios = [compute_for(slow, x) / compute_for(fast, x) for x in levels]
    return float(np.exp(np.mean(np.log(ratios))))


def ratio_bound(
    slow: tuple[np.ndarray, np.ndarray], fast: tuple[np.ndarray, np.ndarray]
) -> tuple[float, str]:
    """Where two fronts' accuracies do not overlap, what the compute ratio (slow ÷ fast) is bounded by:
    `fast` entirely below `slow`: slow already beats fast's best at its cheapest point, so the ratio at
    fast's best accuracy is at most slow's cheapest compute ÷ fast's compute there ("upper"); `fast`
    entirely above: at least slow's dearest compute ÷ fast's cheapest ("lower"). (nan, "") when they overlap."""
    if fast[1][-1] < slow[1][0]:
        return float(slow[0][0] / fast[0][-1]), "upper"
    if slow[1][-1] < fast[1][0]:
        return float(slow[0][-1] / fast[0][0]), "lower"
    return float("nan"), ""
