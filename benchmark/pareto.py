"""Compute-efficiency fronts (Fig. 5): the best accuracy a model family reaches for a given
pre-training compute, and how two families' fronts compare, with real uncertainty intervals.

A family is a set of cells (trained configurations), each with its measured compute (fixed by the
design, not resampled) and an accuracy per seed. Its front keeps the cells that no cheaper cell
beats (at equal compute, the best); between two front points accuracy is interpolated linearly in
log-compute, as Fig. 5 plots it, and past the last front point, up to the family's dearest cell,
the front stays flat (the best accuracy reachable with that compute). Nothing is extrapolated.

Two statistics, each a `stats.Comparison` whose draws come from `stats.bootstrap_cells` (the seed
noise of every cell involved, so front membership changes from draw to draw as it would between
reruns):

- `front_ratio`: log2 of how many times more compute `slow` needs than `fast` for the same
  accuracy, averaged over the accuracies both fronts reach (the mean horizontal distance between
  the fronts on Fig. 5's log axis). Where the fronts share no accuracy it is undefined: such draws
  stay NaN and are counted (`Comparison.n_undefined`), never replaced by a bound.
- `front_gap`: `high` − `low` front accuracy at the smallest or the largest compute both families
  span (the design fixes both budgets), or the change of that gap between them.

Their coverage, and the error rates of the verdicts judged on them, are measured in
tests/test_pareto.py and tests/test_judge.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from benchmark import stats

Families = Mapping[str, Mapping[str, float]]  # family -> {cell: its measured compute}


def front(compute: ArrayLike, accuracy: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The Pareto front (compute ascending, accuracy strictly ascending) of a family's points."""
    compute, accuracy = np.asarray(compute, dtype=float), np.asarray(accuracy, dtype=float)
    order = np.lexsort((-accuracy, compute))  # cheapest first; at equal compute the best first
    keep, best = [], -np.inf
    for i in order:
        if accuracy[i] > best:
            keep.append(i)
            best = accuracy[i]
    return compute[keep], accuracy[keep]


@dataclass(frozen=True)
class _Family:
    """A family's cells grouped by equal compute, cheapest first, and their log-compute."""

    groups: tuple[tuple[str, ...], ...]
    log_compute: np.ndarray  # (k,), strictly ascending

    @classmethod
    def of(cls, cells: Mapping[str, float]) -> _Family:
        if not cells:
            raise ValueError("a family needs at least one cell")
        compute = np.array([float(c) for c in cells.values()])
        if not (np.isfinite(compute).all() and (compute > 0).all()):
            raise ValueError(f"compute must be finite and > 0, got {dict(cells)}")
        levels = np.unique(compute)
        names = list(cells)
        groups = tuple(
            tuple(n for n, c in zip(names, compute, strict=True) if c == level) for level in levels
        )
        return cls(groups, np.log(levels))

    def accuracy(self, means: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """At each compute, cheapest first, the best of the family's cells there. (The statistics loop
        over these few levels with whole arrays of draws: far faster than a short last axis.)"""
        return [np.maximum.reduce([np.asarray(means[c], dtype=float) for c in g]) for g in self.groups]


def _envelope(acc: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Along compute: the best accuracy so far, and the index of the front point that holds it."""
    best, holder = [acc[0]], [np.zeros(acc[0].shape, dtype=int)]
    for j in range(1, len(acc)):
        new = acc[j] > best[-1]
        best.append(np.where(new, acc[j], best[-1]))
        holder.append(np.where(new, j, holder[-1]))
    return best, holder


def _accuracy_at(acc: list[np.ndarray], log_compute: np.ndarray, log_budget: float) -> np.ndarray:
    """The front's accuracy at a budget inside the family's compute range (flat past its last point)."""
    j = int(np.searchsorted(log_compute, log_budget, side="right")) - 1
    best, holder = _envelope(acc[: j + 1])
    a_prev, c_prev = best[-1], log_compute[holder[-1]]
    a_next, c_next = a_prev, c_prev
    found = np.zeros(a_prev.shape, dtype=bool)
    for i in range(j + 1, len(acc)):  # the next front point: the first cell to beat a_prev
        first = ~found & (acc[i] > a_prev)
        a_next, c_next = np.where(first, acc[i], a_next), np.where(first, log_compute[i], c_next)
        found |= first
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(found, a_prev + (a_next - a_prev) * (log_budget - c_prev) / (c_next - c_prev), a_prev)


def _log_compute_mean(
    acc: list[np.ndarray], log_compute: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """The mean over accuracies in [lo, hi] (within the front's range) of the log-compute at which the
    front first reaches each accuracy: an exact integral of the front's piecewise-linear inverse, whose
    segments run from the best accuracy so far (at the compute of the point holding it) to each new
    front point; at lo == hi, its value there."""
    best, holder = _envelope(acc)
    area = np.zeros(lo.shape)
    at = np.full(lo.shape, log_compute[0])  # lo at the cheapest cell's accuracy: its compute
    placed = lo <= acc[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in range(1, len(acc)):
            a0, a1, c0, c1 = best[i - 1], best[i], log_compute[holder[i - 1]], log_compute[i]
            slope = np.where(a1 > a0, (c1 - c0) / (a1 - a0), 0.0)  # a1 == a0: a dominated cell, no segment
            p, q = np.clip(a0, lo, hi), np.clip(a1, lo, hi)
            area += np.where(q > p, (q - p) * (c0 + slope * ((p + q) / 2 - a0)), 0.0)
            here = ~placed & (a1 >= lo)
            at = np.where(here, c0 + slope * (lo - a0), at)
            placed |= here
        return np.where(hi > lo, area / (hi - lo), at)


def _ratio_statistic(
    families: Families, slow: str, fast: str
) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
    s, f = _Family.of(families[slow]), _Family.of(families[fast])

    def statistic(means: Mapping[str, np.ndarray]) -> np.ndarray:
        a_s, a_f = s.accuracy(means), f.accuracy(means)
        lo = np.maximum(a_s[0], a_f[0])  # the cheapest cell always opens a front
        hi = np.minimum(np.maximum.reduce(a_s), np.maximum.reduce(a_f))
        defined = hi >= lo
        lo = np.where(defined, lo, hi)  # keeps the arithmetic finite where the answer is NaN anyway
        diff = _log_compute_mean(a_s, s.log_compute, lo, hi) - _log_compute_mean(a_f, f.log_compute, lo, hi)
        return np.where(defined, diff / math.log(2), np.nan)

    return statistic


AT = Literal["smallest", "largest", "change"]


def _gap_statistic(
    families: Families, high: str, low: str, at: AT
) -> Callable[[Mapping[str, np.ndarray]], np.ndarray]:
    h, lo_f = _Family.of(families[high]), _Family.of(families[low])
    small = max(h.log_compute[0], lo_f.log_compute[0])
    large = min(h.log_compute[-1], lo_f.log_compute[-1])

    def statistic(means: Mapping[str, np.ndarray]) -> np.ndarray:
        a_h, a_l = h.accuracy(means), lo_f.accuracy(means)
        if small > large:  # the families' compute ranges do not overlap: nothing to match
            return np.full(a_h[0].shape, np.nan)

        def gap(budget: float) -> np.ndarray:
            return _accuracy_at(a_h, h.log_compute, budget) - _accuracy_at(a_l, lo_f.log_compute, budget)

        if at == "smallest":
            return gap(small)
        if at == "largest":
            return gap(large)
        return gap(small) - gap(large)

    return statistic


def _involved(
    samples: Mapping[str, Sequence[float]], families: Families, names: Sequence[str]
) -> dict[str, Sequence[float]]:
    missing = [c for f in names for c in families[f] if c not in samples]
    if missing:
        raise ValueError(f"cells without samples: {', '.join(missing)}")
    return {c: samples[c] for f in names for c in families[f]}


def _span(samples: Mapping[str, Sequence[float]], cells: Mapping[str, float]) -> str:
    means = [np.nanmean(np.asarray(samples[c], dtype=float)) for c in cells]
    return f"{min(means) * 100:.1f}–{max(means) * 100:.1f}%"


def front_ratio(
    samples: Mapping[str, Sequence[float]],
    families: Families,
    slow: str,
    fast: str,
    *,
    name: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> stats.Comparison:
    """log2 of `slow`'s compute ÷ `fast`'s at matched accuracy: the mean over the accuracies both
    fronts reach of log2(compute slow needs / compute fast needs), each front interpolated
    log-linearly (2^estimate is the geometric-mean compute ratio; > 0: `fast` needs less). Judge it
    with unit "×" (a log2 ratio). `samples`: cell -> per-seed accuracies; `families`: family ->
    {cell: measured compute}. Undefined where the fronts share no accuracy (at the measured means:
    an undefined comparison saying so; in a draw: NaN, counted against both bounds)."""
    comparison = stats.bootstrap_cells(
        _involved(samples, families, (slow, fast)),
        _ratio_statistic(families, slow, fast),
        name or f"log2({slow} ÷ {fast} compute) at matched accuracy",
        n_boot=n_boot,
        seed=seed,
    )
    if math.isnan(comparison.estimate):
        spans = f"{slow} {_span(samples, families[slow])}, {fast} {_span(samples, families[fast])}"
        comparison = replace(comparison, undefined=f"the fronts share no accuracy ({spans} over their cells)")
    return comparison


def front_gap(
    samples: Mapping[str, Sequence[float]],
    families: Families,
    high: str,
    low: str,
    at: AT,
    *,
    name: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> stats.Comparison:
    """`high` − `low` front accuracy at the smallest compute both families span (the dearer of their
    cheapest cells), at the largest (the cheaper of their dearest cells), or its change: the gap at
    the smallest minus the gap at the largest (> 0: the gap shrinks with compute). Undefined when the
    families' compute ranges do not overlap."""
    what = {"smallest": "at the smallest common compute", "largest": "at the largest common compute",
            "change": "at the smallest minus at the largest common compute"}[at]  # fmt: skip
    comparison = stats.bootstrap_cells(
        _involved(samples, families, (high, low)),
        _gap_statistic(families, high, low, at),
        name or f"{high} − {low} front accuracy {what}",
        n_boot=n_boot,
        seed=seed,
    )
    if math.isnan(comparison.estimate):
        comparison = replace(comparison, undefined=f"the compute ranges of {high} and {low} do not overlap")
    return comparison
