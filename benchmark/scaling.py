"""Saturating power-law fits of transfer error against scale, and where two families' curves cross.

The form is Zhai et al.'s ("Scaling Vision Transformers", 2022): error = a·(x + d)^(−b) + c, with x
the training compute (FLOPs) or the pre-training images, in units of the smallest x fitted (so that
a, d are of order one), a > 0, b > 0, 0 ≤ c ≤ 1 (the error no scale removes), d ≥ 0 (the point
below which more scale barely helps). It is fitted by least squares on every run (each seed a
point), and its uncertainty comes from a bootstrap over seeds: each draw resamples, per distinct x,
that x's runs with replacement and refits.

A crossover is where the family said to overtake ("ViT") gets lower error than the other ("BiT")
as x grows. It is an extrapolation: the text says from where to where. It is reported only when
the data can carry it: four parameters need at least `MIN_POINTS` distinct x per family, the
draws must agree that the curves cross (`AGREE` of them), and the interval may span at most
`MAX_DECADES` decades; otherwise the answer is "not identifiable", with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

MIN_POINTS = 4  # distinct x per family: the form has four parameters
MAX_DECADES = 2.0  # a crossover interval wider than this says nothing
AGREE = 0.9  # share of bootstrap draws that must agree on crossing (or on not crossing)
DRAWS = 400
LEVEL = 0.90  # two-sided interval, as the verdicts' (α = 5% each side)
_GRID = 4000  # log-spaced points of the crossover search
_STARTS = (0.1, 0.5, 1.5)  # initial exponents: the fit is not convex in b


def curve(x: np.ndarray, a: float, b: float, c: float, d: float) -> np.ndarray:
    """error = a·(x + d)^(−b) + c, x in units of the smallest x fitted."""
    return a * np.power(x + d, -b) + c


def _least_squares(x: np.ndarray, error: np.ndarray) -> np.ndarray:
    """The (a, b, c, d) of least squared error, the best of a few starts."""
    c0 = max(0.0, float(error.min()) * 0.5)
    best = None
    for b0 in _STARTS:
        start = np.array([max(float(error.max()) - c0, 1e-3), b0, c0, 0.0])
        fit = least_squares(
            lambda p: curve(x, *p) - error,
            start,
            bounds=([1e-9, 1e-4, 0.0, 0.0], [np.inf, 5.0, 1.0, np.inf]),
            x_scale="jac",
        )
        if best is None or fit.cost < best.cost:
            best = fit
    return best.x


@dataclass(frozen=True)
class Fit:
    """One family's curve on one axis: the point fit, its bootstrap draws, and whether the data can
    identify it (the reason when not)."""

    family: str
    axis: str
    unit: float  # the smallest x fitted: x is in these units inside the curve
    xs: tuple[float, ...]  # the distinct x values fitted (raw units)
    runs: int
    params: tuple[float, float, float, float] | None
    draws: np.ndarray = field(repr=False)  # (n, 4) bootstrap parameters; empty when not identifiable
    why: str = ""  # why not identifiable; "" when it is

    @property
    def identifiable(self) -> bool:
        return not self.why

    def error(self, x: np.ndarray, params: Sequence[float] | None = None) -> np.ndarray:
        """The fitted error at raw x (FLOPs or images)."""
        return curve(np.asarray(x, dtype=float) / self.unit, *(self.params if params is None else params))

    def interval(self, name: str) -> tuple[float, float]:
        """The bootstrap interval of one parameter ("a", "b", "c", "d"; d in raw units)."""
        i = "abcd".index(name)
        values = self.draws[:, i] * (self.unit if name == "d" else 1.0)
        tail = (1 - LEVEL) / 2 * 100
        return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))

    def describe(self) -> str:
        """The fit in words: its parameters with intervals, or why none."""
        if not self.identifiable:
            return f"{self.family} against {self.axis}: not identifiable ({self.why})"
        a, b, c, d = self.params
        parts = [f"{name} = {value:.3g} [{lo:.3g}, {hi:.3g}]" for name, value, (lo, hi) in (
            ("a", a, self.interval("a")), ("b", b, self.interval("b")), ("c", c, self.interval("c")),
            ("d", d * self.unit, self.interval("d")))]  # fmt: skip
        return (
            f"{self.family} against {self.axis}: error = a·({self.axis} + d)^(−b) + c with {', '.join(parts)} "
            f"({len(self.xs)} {self.axis} values from {min(self.xs):.3g} to {max(self.xs):.3g}, {self.runs} runs)"
        )


def fit(runs: pd.DataFrame, family: str, axis: str, draws: int = DRAWS, seed: int = 0) -> Fit:
    """Fit one family's error against `axis` from its runs (columns: `axis`, "error")."""
    runs = runs[np.isfinite(runs[axis]) & np.isfinite(runs["error"]) & (runs[axis] > 0)]
    xs = tuple(sorted(float(v) for v in runs[axis].unique()))
    empty = np.empty((0, 4))
    if len(xs) < MIN_POINTS:
        why = f"{len(xs)} distinct {axis} value{'s' if len(xs) != 1 else ''}; the curve's four parameters need {MIN_POINTS}"
        return Fit(family, axis, xs[0] if xs else 1.0, xs, len(runs), None, empty, why)
    unit = xs[0]
    x, error = runs[axis].to_numpy(float) / unit, runs["error"].to_numpy(float)
    params = tuple(float(p) for p in _least_squares(x, error))
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(x == v / unit) for v in xs]
    samples = []
    for _ in range(draws):
        pick = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
        samples.append(_least_squares(x[pick], error[pick]))
    return Fit(family, axis, unit, xs, len(runs), params, np.array(samples))


@dataclass(frozen=True)
class Crossover:
    """Where `ahead` is predicted to overtake `behind` on `axis` (lower error beyond it)."""

    ahead: str
    behind: str
    axis: str
    outcome: str  # "predicted" | "no crossover predicted" | "ahead throughout" | "not identifiable"
    estimate: float = math.nan  # raw x
    interval: tuple[float, float] = (math.nan, math.nan)
    share: float = math.nan  # share of bootstrap draws whose curves cross in the range
    text: str = ""


def _first_crossing(grid: np.ndarray, gap: np.ndarray) -> float:
    """The first x where gap (ahead's error − behind's) turns from positive to ≤ 0 (interpolated in
    log x); NaN if it never does."""
    turns = np.flatnonzero((gap[:-1] > 0) & (gap[1:] <= 0))
    if not len(turns):
        return math.nan
    i = turns[0]
    t = gap[i] / (gap[i] - gap[i + 1])
    return float(10 ** (np.log10(grid[i]) + t * (np.log10(grid[i + 1]) - np.log10(grid[i]))))


def crossover(ahead: Fit, behind: Fit, ceiling: float) -> Crossover:
    """Where `ahead`'s fitted error first drops below `behind`'s, searched from the smallest x either
    family was fitted at up to `ceiling` (e.g. the paper's largest compute), with the bootstrap's
    interval; "not identifiable" when a fit is, or when the draws disagree or spread too widely."""
    words = dict(ahead=ahead.family, behind=behind.family, axis=ahead.axis)
    for f in (ahead, behind):
        if not f.identifiable:
            return Crossover(**words, outcome="not identifiable", text=f"{f.family}'s fit: {f.why}")
    low, top = min(ahead.xs[0], behind.xs[0]), max(ahead.xs[-1], behind.xs[-1])
    grid = np.logspace(np.log10(low), np.log10(max(ceiling, top)), _GRID)
    span = f"searched from {low:.3g} to {max(ceiling, top):.3g} {ahead.axis}; our data end at {top:.3g}"
    gap = ahead.error(grid) - behind.error(grid)
    point = _first_crossing(grid, gap)
    n = min(len(ahead.draws), len(behind.draws))
    crossings = np.array([
        _first_crossing(grid, ahead.error(grid, ahead.draws[i]) - behind.error(grid, behind.draws[i])) for i in range(n)
    ])  # fmt: skip
    share = float(np.isfinite(crossings).mean())
    if math.isnan(point):
        if gap[0] <= 0 and gap[-1] <= 0 and share <= 1 - AGREE:
            return Crossover(**words, outcome="ahead throughout", share=share,
                             text=f"{ahead.family} ahead over the whole range ({span}); {share:.0%} of draws cross")  # fmt: skip
        if share <= 1 - AGREE:
            return Crossover(**words, outcome="no crossover predicted", share=share,
                             text=f"{ahead.family} does not overtake {behind.family} ({span}); {share:.0%} of draws do")  # fmt: skip
        return Crossover(**words, outcome="not identifiable", share=share,
                         text=f"the point fit does not cross but {share:.0%} of draws do ({span})")  # fmt: skip
    tail = (1 - LEVEL) / 2 * 100
    found = np.log10(crossings[np.isfinite(crossings)])
    lo, hi = 10 ** np.percentile(found, tail), 10 ** np.percentile(found, 100 - tail)
    decades = math.log10(hi / lo)
    beyond = math.log10(point / top)
    where = (f"at {point:.3g} {ahead.axis} [{lo:.3g}, {hi:.3g}]; "
             + (f"an extrapolation {beyond:.1f} decades beyond our largest ({top:.3g})" if beyond > 0
                else f"inside our data (largest {top:.3g})"))  # fmt: skip
    if share < AGREE or decades > MAX_DECADES:
        why = []
        if share < AGREE:
            why.append(f"only {share:.0%} of draws cross")
        if decades > MAX_DECADES:
            why.append(f"the interval spans {decades:.1f} decades")
        return Crossover(**words, outcome="not identifiable", estimate=point, interval=(lo, hi), share=share,
                         text=f"{' and '.join(why)}: the point fit crosses {where}")  # fmt: skip
    return Crossover(**words, outcome="predicted", estimate=point, interval=(lo, hi), share=share,
                     text=f"{ahead.family} overtakes {behind.family} {where}; {share:.0%} of draws cross")  # fmt: skip
