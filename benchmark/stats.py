"""The suite's one noise model: summaries over seeds and the tests that verdicts are judged by.

A cell is one configuration trained with several seeds; a verdict compares cells. Every rule here has a
known error rate, measured by the null simulations in tests/test_stats.py:

- "a is better than b": a one-sided Welch t-test (cells may differ in stability, e.g. across a
  learning-rate sweep, so variances are not pooled), at ``ALPHA``.
- "a and b differ little": an equivalence test (TOST, two one-sided Welch t-tests) against a margin
  the study states; a non-significant difference is not evidence of parity.
- The comparisons of one claim form a family: their p-values are Holm-adjusted together, so the
  chance that a claim shows any false difference stays at ``ALPHA``.
- "the proxy ranks models as the target does": Spearman's rho and Kendall's tau-b with a nested
  bootstrap interval over models and probe seeds.

All tests are scipy's. Degenerate data never passes a test: NaN values are dropped (n counts the
finite ones), a cell with fewer than two values or two cells without any spread give a NaN p-value,
and a NaN p-value is never "rejected".
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
MIN_SEEDS = 3  # a cell entering a verdict needs at least this many seeds

GREATER_TEST = "one-sided Welch t-test"
TOST_TEST = "TOST (two one-sided Welch t-tests)"


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
    """One statistical comparison of two cells (samples over seeds)."""

    name: str
    test: str
    estimate: float  # mean(a) - mean(b)
    statistic: float  # Welch's t (for TOST: that of the one-sided test with the larger p)
    df: float  # Welch degrees of freedom
    p: float  # raw p-value
    # mean(a) - mean(b): one-sided (lower, inf) at 1 - alpha for `greater`; for `equivalent` the
    # two-sided 1 - 2 alpha interval, which lies within ±margin exactly when TOST's raw p <= alpha.
    interval: tuple[float, float]
    n_a: int
    n_b: int
    margin: float | None = None  # the equivalence margin (TOST only)
    p_holm: float = math.nan  # Holm-adjusted p within its claim's family, set by holm()
    alpha: float = ALPHA

    @property
    def rejected(self) -> bool:
        """The null is rejected after Holm; False while holm() has not run or when p is NaN."""
        return not math.isnan(self.p_holm) and self.p_holm <= self.alpha

    def text(self, scale: float = 100.0, unit: str = "pts", digits: int = 1) -> str:
        """One line for a report: the estimate, the test's figures and the seeds used."""
        unit = f" {unit}" if unit else ""
        estimate = "n/a" if math.isnan(self.estimate) else f"{self.estimate * scale:+.{digits}f}{unit}"
        seeds = f"n = {self.n_a} vs {self.n_b}"
        if math.isnan(self.p):
            why = "fewer than 2 seeds" if min(self.n_a, self.n_b) < 2 else "no variance"
            label = "TOST p" if self.margin is not None else "p"
            return f"Δ = {estimate}, {label} = n/a ({why}); {seeds}"
        holm = "n/a (not adjusted)" if math.isnan(self.p_holm) else _fmt_p(self.p_holm)
        if self.margin is None:
            test = f"Welch t = {self.statistic:.3g} (df {self.df:.1f}), p = {_fmt_p(self.p)}"
        else:
            low, high = self.interval
            within = "yes" if -self.margin < low and high < self.margin else "no"
            test = (
                f"{100 * (1 - 2 * self.alpha):g}% CI [{low * scale:+.{digits}f}, {high * scale:+.{digits}f}]"
                f" within ±{self.margin * scale:.{digits}f}{unit}? {within}; TOST p = {_fmt_p(self.p)}"
            )
        return f"Δ = {estimate}, {test}, Holm p = {holm}; {seeds}"


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


def greater(a: Sequence[float], b: Sequence[float], name: str, alpha: float = ALPHA) -> Comparison:
    """H1: mean(a) > mean(b), by a one-sided Welch t-test (scipy's ttest_ind, equal_var=False)."""
    a, b = _finite(a), _finite(b)
    estimate = float(a.mean() - b.mean()) if a.size and b.size else math.nan
    t = df = p = low = high = math.nan
    if a.size >= 2 and b.size >= 2:
        t, df, p, low, high = (float(x[0]) for x in _welch(a[None], b[None], "greater", 1 - alpha))
    return Comparison(name, GREATER_TEST, estimate, t, df, p, (low, high), a.size, b.size, alpha=alpha)


def equivalent(
    a: Sequence[float], b: Sequence[float], margin: float, name: str, alpha: float = ALPHA
) -> Comparison:
    """TOST, H1: -margin < mean(a) - mean(b) < margin; p is the larger of the two one-sided Welch
    tests' p-values. The margin is the study's own, stated and justified in its report."""
    if not (margin > 0 and math.isfinite(margin)):
        raise ValueError(f"equivalence margin must be a finite number > 0, got {margin!r}")
    a, b = _finite(a), _finite(b)
    estimate = float(a.mean() - b.mean()) if a.size and b.size else math.nan
    t = df = p = low = high = math.nan
    if a.size >= 2 and b.size >= 2:
        t, df, p, low, high = (float(x[0]) for x in _tost(a[None], b[None], margin, alpha))
    return Comparison(
        name, TOST_TEST, estimate, t, df, p, (low, high), a.size, b.size, margin=margin, alpha=alpha
    )


def holm(comparisons: Sequence[Comparison], alpha: float = ALPHA) -> list[Comparison]:
    """Holm's step-down adjustment across the comparisons of ONE claim: copies with p_holm set.

    Call it on every claim's comparisons, a family of one included: `rejected` reads p_holm.
    """
    mismatched = [c.name for c in comparisons if c.alpha != alpha]
    if mismatched:
        raise ValueError(f"comparisons {mismatched} were made at another alpha than {alpha}")
    adjusted = _holm(np.array([c.p for c in comparisons], dtype=float))
    return [replace(c, p_holm=float(p)) for c, p in zip(comparisons, adjusted, strict=True)]


def all_rejected(comparisons: Sequence[Comparison]) -> bool:
    """The claim "every comparison shows it", judged on Holm-adjusted p-values."""
    if not comparisons:
        raise ValueError("a claim needs at least one comparison")
    unadjusted = [c.name for c in comparisons if math.isnan(c.p_holm) and not math.isnan(c.p)]
    if unadjusted:
        raise ValueError(f"comparisons {unadjusted} are not Holm-adjusted: pass them through holm() first")
    return all(c.rejected for c in comparisons)


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
