"""The suite's one noise model: summaries over seeds and the effects verdicts are judged on.

A cell is one configuration trained with several seeds; a verdict compares cells. Every effect is a
`Comparison`: an estimate with its sampling distribution, from which benchmark.judge reads one-sided
bounds and p-values at α and decides reproduced / contradicted / inconclusive.

- A difference of two cells' means: Welch's standard error and degrees of freedom (`difference`).
- "the proxy ranks models as the target does": Spearman's rho and Kendall's tau-b with a nested
  bootstrap over models and probe seeds (`rank_agreement`).
- A statistic of several cells' means (a compute front, a gap between fronts): a parametric
  bootstrap of each cell's seed noise (`bootstrap_cells`).

The error rates of the decisions built on these are measured by the null simulations in
tests/test_judge.py and tests/test_stats.py. Degenerate data never decide anything: NaN values
are dropped (n counts the finite ones), and a cell with fewer than two values, or two cells without
any spread, give no noise estimate (se NaN).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
MIN_SEEDS = 3  # a cell entering a verdict needs at least this many seeds

WELCH_TEST = "Welch t"


def summarize(df: pd.DataFrame, by: Sequence[str], metric: str) -> pd.DataFrame:
    """mean, std, n per cell; the std is NaN for single-seed cells."""
    grouped = df.groupby(list(by), dropna=False)[metric]
    out = grouped.agg(mean="mean", std="std", n="count").reset_index()
    return out


def fmt_mean_std(mean: float, std: float, n: int, scale: float = 100.0, digits: int = 1) -> str:
    if n > 1 and not math.isnan(std):
        return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f} (n={n})"
    return f"{mean * scale:.{digits}f} (n={n})"


def cell_summary(df: pd.DataFrame, by: Sequence[str], metric: str, scale: float = 100.0) -> pd.Series:
    """ "mean ± std (n=k)" of `metric` per cell, indexed by the cell columns (a table column)."""
    cells = summarize(df, by, metric)
    text = [
        fmt_mean_std(m, s, int(n), scale)
        for m, s, n in zip(cells["mean"], cells["std"], cells["n"], strict=True)
    ]
    return pd.Series(text, index=pd.MultiIndex.from_frame(cells[list(by)]) if len(by) > 1 else cells[by[0]])


@dataclass(frozen=True)
class Comparison:
    """One measured effect with its sampling distribution: a difference of two cells' means over
    seeds (Welch: `se`, `df`), or a statistic resampled by a bootstrap (`draws`). Its one-sided
    bounds and p-values at any level are what benchmark.judge decides outcomes from."""

    name: str
    test: str
    estimate: float  # e.g. mean(a) - mean(b)
    se: float  # standard error of the estimate (NaN: fewer than 2 seeds, or no variance at all)
    df: float  # Welch degrees of freedom; inf for a normal (or bootstrap) distribution
    n_a: int
    n_b: int
    draws: np.ndarray | None = field(default=None, compare=False, repr=False)  # bootstrap draws

    @property
    def defined(self) -> bool:
        """Whether the data carry a noise estimate at all (never decide anything without one)."""
        if self.draws is not None:
            return bool(np.isfinite(self.estimate)) and self.draws.size >= 2
        return bool(np.isfinite(self.estimate) and np.isfinite(self.se) and self.se > 0)

    def lower(self, alpha: float = ALPHA) -> float:
        """The one-sided (1 - alpha) lower confidence bound (the lower end of the 1 - 2 alpha interval)."""
        if not self.defined:
            return math.nan
        if self.draws is not None:
            return float(np.quantile(self.draws, alpha))
        return self.estimate - float(stats.t.ppf(1 - alpha, self.df)) * self.se

    def upper(self, alpha: float = ALPHA) -> float:
        if not self.defined:
            return math.nan
        if self.draws is not None:
            return float(np.quantile(self.draws, 1 - alpha))
        return self.estimate + float(stats.t.ppf(1 - alpha, self.df)) * self.se

    def interval(self, alpha: float = ALPHA) -> tuple[float, float]:
        """The two-sided 1 - 2 alpha interval: a bound on each side at 1 - alpha."""
        return self.lower(alpha), self.upper(alpha)

    def p_above(self, value: float) -> float:
        """p-value of H1: effect > value (one-sided); NaN without a noise estimate."""
        if not self.defined:
            return math.nan
        if self.draws is not None:  # the bootstrap's share of draws on the wrong side
            return float((1 + np.sum(self.draws <= value)) / (1 + self.draws.size))
        return float(stats.t.sf((self.estimate - value) / self.se, self.df))

    def p_below(self, value: float) -> float:
        """p-value of H1: effect < value (one-sided)."""
        if not self.defined:
            return math.nan
        if self.draws is not None:
            return float((1 + np.sum(self.draws >= value)) / (1 + self.draws.size))
        return float(stats.t.cdf((self.estimate - value) / self.se, self.df))

    @property
    def spread(self) -> float:
        """The standard error, or the bootstrap draws' standard deviation (for power and MDE)."""
        if self.draws is not None:
            return float(np.std(self.draws, ddof=1)) if self.draws.size >= 2 else math.nan
        return self.se

    def text(self, scale: float = 100.0, unit: str = "pts", digits: int = 1, alpha: float = ALPHA) -> str:
        """One line for a report: the estimate, its interval, the test and the seeds used."""
        unit = f" {unit}" if unit else ""
        estimate = "n/a" if math.isnan(self.estimate) else f"{self.estimate * scale:+.{digits}f}{unit}"
        seeds = f"n = {self.n_a} vs {self.n_b}"
        if not self.defined:
            why = "fewer than 2 seeds" if min(self.n_a, self.n_b) < 2 else "no variance"
            return f"Δ = {estimate}, no interval ({why}); {seeds}"
        low, high = self.interval(alpha)
        how = f"{self.test}, df {self.df:.1f}" if math.isfinite(self.df) else self.test
        return (
            f"Δ = {estimate}, {100 * (1 - 2 * alpha):g}% CI [{low * scale:+.{digits}f}, {high * scale:+.{digits}f}]"
            f" ({how}); {seeds}"
        )


def _fmt_p(p: float) -> str:
    # Three significant digits: two would print 0.0496 as "0.05", hiding which side of alpha it is on.
    return f"{p:.3g}"


def _finite(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    return x[np.isfinite(x)]


def _welch(
    a: np.ndarray, b: np.ndarray, alternative: Literal["two-sided", "less", "greater"], confidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Welch's t-test of each row of a against the same row of b (seeds on the last axis).

    Returns t, df, p and the interval's bounds for mean(a) - mean(b), one value per row. Rows where
    neither cell has any spread get NaN everywhere: scipy would give |t| ~ 1e15 and p ~ 0 or 1 there
    (the means' rounding leaves a ~1e-32 variance), a "certain" verdict from data that carries no
    noise estimate at all. The null simulations call
    this directly, vectorised over draws; `greater` and `equivalent` call it on one row.
    """
    shape = a.shape[:-1]
    t, df, p, low, high = (np.full(shape, np.nan) for _ in range(5))
    spread = (np.ptp(a, axis=-1) > 0) | (np.ptp(b, axis=-1) > 0)
    if spread.any():
        with warnings.catch_warnings():
            # A cell whose seeds agree exactly (the same count of correct images) has variance 0,
            # which scipy computes as ~1e-32 and warns about; the other cell carries the noise.
            warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
            res = stats.ttest_ind(a[spread], b[spread], axis=-1, equal_var=False, alternative=alternative)
            ci = res.confidence_interval(confidence)
        t[spread], df[spread], p[spread] = res.statistic, res.df, res.pvalue
        low[spread], high[spread] = ci.low, ci.high
    return t, df, p, low, high


def _tost(
    a: np.ndarray, b: np.ndarray, margin: float, alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """TOST per row: t and df of the one-sided test with the larger p, that p, and the 1 - 2 alpha
    interval (equivalence at alpha holds exactly when this interval lies within ±margin)."""
    # H1 of each side: mean(a) - mean(b) > -margin, and mean(a) - mean(b) < +margin.
    t_lo, df, p_lo, _, _ = _welch(a + margin, b, "greater", 1 - alpha)
    t_hi, _, p_hi, _, _ = _welch(a - margin, b, "less", 1 - alpha)
    _, _, _, low, high = _welch(a, b, "two-sided", 1 - 2 * alpha)
    upper_decides = p_hi > p_lo
    t = np.where(upper_decides, t_hi, t_lo)
    p = np.where(upper_decides, p_hi, p_lo)  # NaN stays NaN: comparisons with NaN are False
    return t, df, p, low, high


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values along the last axis (monotone, capped at 1).

    NaN p-values stay NaN and still count in the family size m: a comparison that could not be made
    is not evidence, and leaving it out would loosen the correction for the others.
    """
    m = p.shape[-1]
    order = np.argsort(p, axis=-1)  # NaN sorts last, so it never lowers a finite adjusted p
    ranked = np.take_along_axis(p, order, axis=-1) * (m - np.arange(m))
    adjusted = np.minimum(np.maximum.accumulate(ranked, axis=-1), 1.0)
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return out


def difference(a: Sequence[float], b: Sequence[float], name: str) -> Comparison:
    """mean(a) - mean(b) over seeds with Welch's standard error and degrees of freedom (the
    variances are not pooled: cells may differ in stability, e.g. across a learning-rate sweep).
    A one-sample comparison against a constant is `b` = that constant repeated (zero variance).
    Two cells without any spread give se NaN: scipy would report a "certain" result from data
    that carry no noise estimate at all."""
    a, b = _finite(a), _finite(b)
    estimate = float(a.mean() - b.mean()) if a.size and b.size else math.nan
    se = df = math.nan
    if a.size >= 2 and b.size >= 2 and (np.ptp(a) > 0 or np.ptp(b) > 0):
        va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
        se = float(math.sqrt(va + vb))
        df = float((va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1)))
    return Comparison(name, WELCH_TEST, estimate, se, df, a.size, b.size)


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values of one family (see _holm)."""
    return _holm(np.asarray(p, dtype=float))


def too_few_seeds(samples: Mapping[str, Sequence[float]], min_n: int = MIN_SEEDS) -> str | None:
    """None when every named sample has >= min_n finite values, else the reason a verdict is not
    judged, naming the short cells."""
    counts = {name: _finite(values).size for name, values in samples.items()}
    short = [f"{name} has {n}" for name, n in counts.items() if n < min_n]
    return f"needs >= {min_n} seeds per compared cell; {', '.join(short)}" if short else None


@dataclass(frozen=True)
class RankAgreement:
    """How well a cheap proxy's ranking of models agrees with the target's."""

    spearman: float
    kendall: float  # tau-b: ties (duplicated models in a resample) are accounted for
    spearman_ci: tuple[float, float]  # percentile bootstrap at 1 - alpha
    kendall_ci: tuple[float, float]
    n_models: int
    n_boot: int
    discordant: list[tuple[int, int]]  # (i, j), i < j, ranked in opposite order by proxy means and target
    n_degenerate: int = 0  # resamples dropped because one side was constant (a NaN coefficient)


def _constant(x: np.ndarray) -> np.ndarray:
    return np.ptp(x, axis=-1) == 0


def rank_agreement(
    proxy: np.ndarray, target: np.ndarray, n_boot: int = 2000, seed: int = 0, alpha: float = ALPHA
) -> RankAgreement:
    """Rank agreement between proxy (models, probe_seeds) scores and target (models,) scores.

    Point estimates: scipy's spearmanr and kendalltau (tau-b) between proxy.mean(1) and target. The
    interval is a nested bootstrap, so it reflects both which models were picked and the probe's own
    noise: resample models with replacement and, for each drawn model, its probe seeds; recompute
    both coefficients. Resamples where either side is constant are dropped and counted; if more than
    half are, the interval is (nan, nan). Deterministic for a given seed.
    """
    proxy, target = np.asarray(proxy, dtype=float), np.asarray(target, dtype=float)
    if proxy.ndim != 2 or target.shape != proxy.shape[:1]:
        raise ValueError(
            f"need proxy (models, seeds) and target (models,), got {proxy.shape} and {target.shape}"
        )
    if not (np.isfinite(proxy).all() and np.isfinite(target).all()):
        raise ValueError("proxy and target must be finite (a missing score would shift a model's mean)")
    n_models, n_seeds = proxy.shape
    if n_models < 3 or n_boot < 1:
        raise ValueError(f"need >= 3 models and n_boot >= 1, got {n_models} models and n_boot={n_boot}")

    means = proxy.mean(axis=1)
    if _constant(means) or _constant(target):
        spearman = kendall = math.nan
    else:
        spearman = float(stats.spearmanr(means, target).statistic)
        kendall = float(stats.kendalltau(means, target).statistic)

    rng = np.random.default_rng(seed)
    models = rng.integers(0, n_models, size=(n_boot, n_models))
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_models, n_seeds))
    # One seed resample per model and bootstrap draw, shared by its copies: a model drawn twice is
    # still one model, tied with itself on both sides. Separate resamples would split that tie on
    # the proxy side only and pull both coefficients below 1 even for a perfect proxy.
    proxy_means = proxy[np.arange(n_models)[None, :, None], seeds].mean(axis=-1)
    boot_proxy = np.take_along_axis(proxy_means, models, axis=1)
    boot_target = target[models]
    ok = ~(_constant(boot_proxy) | _constant(boot_target))
    n_degenerate = int(n_boot - ok.sum())
    spearman_ci = kendall_ci = (math.nan, math.nan)
    if n_degenerate <= n_boot / 2:
        x, y = boot_proxy[ok], boot_target[ok]
        # Spearman's rho is Pearson's r of average ranks (what spearmanr computes), here row-wise.
        rho = stats.pearsonr(stats.rankdata(x, axis=1), stats.rankdata(y, axis=1), axis=1).statistic
        tau = stats.kendalltau(x, y, axis=1).statistic
        q = [alpha / 2, 1 - alpha / 2]
        spearman_ci = tuple(float(v) for v in np.quantile(rho, q))
        kendall_ci = tuple(float(v) for v in np.quantile(tau, q))

    order = np.sign(means[:, None] - means[None, :]) * np.sign(target[:, None] - target[None, :])
    discordant = [(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(order < 0)), strict=True)]
    return RankAgreement(
        spearman, kendall, spearman_ci, kendall_ci, n_models, n_boot, discordant, n_degenerate
    )


@dataclass(frozen=True)
class Bootstrap:
    """A statistic of cell means with its percentile interval under the cells' seed noise."""

    estimate: float
    interval: tuple[float, float]  # percentile, 1 - alpha two-sided
    n_boot: int
    n_undefined: int  # resamples where the statistic was NaN (e.g. nothing to match), left out


def bootstrap_cells(
    samples: Mapping[str, np.ndarray],
    statistic: Callable[[Mapping[str, np.ndarray]], float],
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = ALPHA,
) -> Bootstrap:
    """`statistic` of the cell means (each cell a (seeds, values) array), and a percentile interval
    from a parametric bootstrap: each resample draws every cell's means as mean + se · T, T from
    Student's t with n - 1 degrees of freedom (se = sd / √n). Cells are the fixed design (which
    models were trained); only seed noise is drawn.

    Why not resample seeds: with 3 seeds a cell has 10 distinct resamples, and the percentile
    interval of a difference of two means covered the truth 76% of the time at a nominal 95%
    (tests/test_stats.py measures both); this one covers at least the nominal rate (conservative at
    3 seeds). The interval is (nan, nan) when more than half of the resamples are undefined; a cell
    with fewer than 2 seeds makes everything NaN."""
    means = {cell: v.mean(axis=0) for cell, v in samples.items()}
    if min(len(v) for v in samples.values()) < 2:
        return Bootstrap(math.nan, (math.nan, math.nan), n_boot, n_boot)
    se = {cell: v.std(axis=0, ddof=1) / math.sqrt(len(v)) for cell, v in samples.items()}
    rng = np.random.default_rng(seed)
    draws = np.array([
        statistic({c: means[c] + se[c] * rng.standard_t(len(samples[c]) - 1, means[c].shape) for c in samples})
        for _ in range(n_boot)
    ])  # fmt: skip
    ok = draws[np.isfinite(draws)]
    interval = (math.nan, math.nan)
    if ok.size > n_boot / 2:
        interval = tuple(float(v) for v in np.quantile(ok, [alpha / 2, 1 - alpha / 2]))
    return Bootstrap(float(statistic(means)), interval, n_boot, int(n_boot - ok.size))
