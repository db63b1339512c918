"""The suite's one noise model: summaries over seeds and the effects verdicts are judged on.

A cell is one configuration trained with several seeds; a verdict compares cells. Every effect is a
`Comparison`: an estimate with its sampling distribution, from which benchmark.judge reads one-sided
bounds and p-values at α and decides reproduced / contradicted / inconclusive.

- A difference of two cells' means: Welch's standard error and degrees of freedom (`difference`).
  A difference of slopes is `difference` of two families' per-seed least-squares `slopes`.
- "The proxy ranks models as the target does": Kendall's tau-b (and Spearman's rho) with a nested
  bootstrap over models and probe seeds (`rank_agreement`); `agreement` makes it a Comparison.
- A statistic of several cells' means (a compute front, a gap between fronts): a parametric
  bootstrap of the cells' seed noise with the statistic's Welch–Satterthwaite degrees of freedom
  (`bootstrap_cells`; benchmark.pareto builds the front statistics on it).

Draws where a statistic is undefined (fronts that share no accuracy, a resample of models without
any spread) stay in the draws as NaN and count against both bounds and every p-value: nothing is
dropped, and a statistic undefined in more than α of its draws decides nothing.

Where the rates are measured: the error rates of every rule judge() applies to these comparisons
(false reproduced, false contradicted, power at the predicted effect) by null simulations in
tests/test_judge.py; the coverage of `bootstrap_cells` against the model it replaced in
tests/test_stats.py; the coverage of the front statistics in tests/test_pareto.py. `pytest -s`
prints them (lines starting "ERROR RATE" and "COVERAGE"). Degenerate data never decide anything:
NaN values are dropped (n counts the finite ones), and a cell with fewer than two values, or two
cells without any spread, give no noise estimate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

ALPHA = 0.05
MIN_SEEDS = 3  # a cell entering a verdict needs at least this many seeds

WELCH_TEST = "Welch t"
LINEARISE = 500  # draws the bootstrap's first pass fits the statistic's linearisation on
BOOTSTRAP_TEST = "parametric bootstrap of the cells' seed noise, Welch–Satterthwaite"


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
    seeds (Welch: `se`, `df`), or a statistic resampled by a bootstrap (`draws`, NaN where the
    statistic is undefined). Its one-sided bounds and p-values at any level are what
    benchmark.judge decides outcomes from."""

    name: str
    test: str
    estimate: float  # e.g. mean(a) - mean(b)
    se: float  # Welch's standard error (NaN: fewer than 2 seeds, no variance at all, or bootstrap draws)
    df: float  # Welch's degrees of freedom; for draws, the resampling model's (inf: a normal)
    n_a: int
    n_b: int
    draws: np.ndarray | None = field(default=None, compare=False, repr=False)  # bootstrap draws
    sample: str = ""  # the sample in words where it is not two cells of seeds ("10 models × 5 probe seeds")
    undefined: str = ""  # why the statistic has no value at the measured means, in words
    per: str = "seeds per cell"  # what n_a and n_b count, as "about N {per} would give 80%" says it

    @property
    def n_undefined(self) -> int:
        """Bootstrap draws where the statistic is undefined (NaN): counted against both bounds."""
        return 0 if self.draws is None else int(np.isnan(self.draws).sum())

    @property
    def why_undefined(self) -> str:
        """Why the data carry no noise estimate, in words; "" when they do."""
        if self.draws is not None:
            if not np.isfinite(self.estimate):
                return self.undefined or "the statistic is undefined at the measured means"
            return "" if np.isfinite(self.draws).sum() >= 2 else "fewer than 2 defined bootstrap draws"
        if min(self.n_a, self.n_b) < 2:
            return "fewer than 2 seeds"
        if not (np.isfinite(self.estimate) and np.isfinite(self.se) and self.se > 0):
            return "no variance"
        return ""

    @property
    def defined(self) -> bool:
        """Whether the data carry a noise estimate at all (never decide anything without one)."""
        return not self.why_undefined

    def lower(self, alpha: float = ALPHA) -> float:
        """The one-sided (1 - alpha) lower confidence bound (the lower end of the 1 - 2 alpha interval).
        For draws: their alpha quantile, undefined draws placed below every value (-inf once they
        reach the quantile)."""
        if not self.defined:
            return math.nan
        if self.draws is not None:
            return float(_draw_bounds(self.draws, alpha)[0])
        return float(_t_bounds(self.estimate, self.se, self.df, alpha)[0])

    def upper(self, alpha: float = ALPHA) -> float:
        """The one-sided (1 - alpha) upper bound; undefined draws placed above every value."""
        if not self.defined:
            return math.nan
        if self.draws is not None:
            return float(_draw_bounds(self.draws, alpha)[1])
        return float(_t_bounds(self.estimate, self.se, self.df, alpha)[1])

    def interval(self, alpha: float = ALPHA) -> tuple[float, float]:
        """The two-sided 1 - 2 alpha interval: a bound on each side at 1 - alpha."""
        return self.lower(alpha), self.upper(alpha)

    def p_above(self, value: float) -> float:
        """p-value of H1: effect > value (one-sided); NaN without a noise estimate. For draws: the
        share of draws at or below value, undefined draws counted with them."""
        if not self.defined:
            return math.nan
        if self.draws is not None:
            return float(_draw_p(self.draws, value, above=True))
        return float(_t_p(self.estimate, self.se, self.df, value, above=True))

    def p_below(self, value: float) -> float:
        """p-value of H1: effect < value (one-sided); undefined draws count against it."""
        if not self.defined:
            return math.nan
        if self.draws is not None:
            return float(_draw_p(self.draws, value, above=False))
        return float(_t_p(self.estimate, self.se, self.df, value, above=False))

    @property
    def spread(self) -> float:
        """The standard error (for power and MDE). For draws: the normal standard error with the same
        1 - 2α interval as the defined draws (the draws' sd is unstable under heavy tails)."""
        if not self.defined:
            return math.nan
        if self.draws is not None:
            low, high = np.quantile(self.draws[np.isfinite(self.draws)], [ALPHA, 1 - ALPHA])
            return float((high - low) / (2 * stats.norm.ppf(1 - ALPHA)))
        return self.se

    def text(self, scale: float = 100.0, unit: str = "pts", digits: int = 1, alpha: float = ALPHA) -> str:
        """One line for a report: the estimate, its interval, the test and the sample used."""
        unit = f" {unit}" if unit else ""
        estimate = "n/a" if math.isnan(self.estimate) else f"{self.estimate * scale:+.{digits}f}{unit}"
        sample = self.sample or f"n = {self.n_a} vs {self.n_b}"
        if not self.defined:
            return f"Δ = {estimate}, no interval ({self.why_undefined}); {sample}"
        low, high = self.interval(alpha)
        how = f"{self.test}, df {self.df:.1f}" if math.isfinite(self.df) else self.test
        if self.draws is not None:
            how += f", {self.draws.size} draws"
            if self.n_undefined:
                how += f", {self.n_undefined} undefined (counted against both bounds)"
        return (
            f"Δ = {estimate}, {100 * (1 - 2 * alpha):g}% CI [{low * scale:+.{digits}f}, {high * scale:+.{digits}f}]"
            f" ({how}); {sample}"
        )


# --- vectorised cores: one row per comparison on the leading axes. The public functions call them on
# one row; the null simulations call them on thousands (tests pin the two together). --------------


def _t_bounds(
    estimate: ArrayLike, se: ArrayLike, df: ArrayLike, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper one-sided (1 - alpha) t bounds."""
    q = stats.t.ppf(1 - alpha, df)
    return estimate - q * se, estimate + q * se


def _t_p(estimate: ArrayLike, se: ArrayLike, df: ArrayLike, value: float, above: bool) -> np.ndarray:
    """One-sided t p-value of H1: effect > value (above) or < value."""
    t = (np.asarray(estimate) - value) / se
    return stats.t.sf(t, df) if above else stats.t.cdf(t, df)


def _draw_bounds(draws: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The alpha and 1 - alpha quantiles of the draws (last axis); NaN draws sit below every value
    for the lower bound and above every value for the upper one."""
    undefined = np.isnan(draws)
    with np.errstate(
        invalid="ignore"
    ):  # interpolating next to an infinite draw gives NaN: the bound is infinite
        lower = np.quantile(np.where(undefined, -np.inf, draws), alpha, axis=-1)
        upper = np.quantile(np.where(undefined, np.inf, draws), 1 - alpha, axis=-1)
    return np.where(np.isnan(lower), -np.inf, lower), np.where(np.isnan(upper), np.inf, upper)


def _draw_p(draws: np.ndarray, value: ArrayLike, above: bool) -> np.ndarray:
    """(1 + draws on the wrong side of value, undefined ones included) / (1 + draws)."""
    value = np.asarray(value, dtype=float)[..., None]
    wrong = (draws <= value) if above else (draws >= value)
    return (1 + (wrong | np.isnan(draws)).sum(axis=-1)) / (1 + draws.shape[-1])


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mean(a) - mean(b), Welch's standard error and degrees of freedom per row (seeds on the last
    axis, finite values, at least 2 per cell). Rows where neither cell has any spread get se and df
    NaN: scipy would give |t| ~ 1e15 there (the means' rounding leaves a ~1e-32 variance), a
    "certain" verdict from data that carry no noise estimate at all."""
    na, nb = a.shape[-1], b.shape[-1]
    estimate = a.mean(axis=-1) - b.mean(axis=-1)
    va, vb = a.var(axis=-1, ddof=1) / na, b.var(axis=-1, ddof=1) / nb
    spread = (np.ptp(a, axis=-1) > 0) | (np.ptp(b, axis=-1) > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.where(spread, np.sqrt(va + vb), np.nan)
        df = np.where(spread, (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1)), np.nan)
    return estimate, se, df


def _finite(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    return x[np.isfinite(x)]


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


# --- the public functions -------------------------------------------------------------------------


def difference(a: Sequence[float], b: Sequence[float], name: str) -> Comparison:
    """mean(a) - mean(b) over seeds with Welch's standard error and degrees of freedom (the
    variances are not pooled: cells may differ in stability, e.g. across a learning-rate sweep).
    A one-sample comparison against a constant is `b` = that constant repeated (zero variance).
    Two cells without any spread give se NaN (see _welch)."""
    a, b = _finite(a), _finite(b)
    estimate = float(a.mean() - b.mean()) if a.size and b.size else math.nan
    se = df = math.nan
    if a.size >= 2 and b.size >= 2:
        estimate, se, df = (float(v) for v in _welch(a, b))
    return Comparison(name, WELCH_TEST, estimate, se, df, a.size, b.size)


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values of one family (see _holm). For claims that hold when
    *any* comparison of a family does (judge's "contradicted"); a claim that needs *every*
    comparison is an intersection–union test and needs no correction."""
    return _holm(np.asarray(p, dtype=float))


def slopes(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """The least-squares slope of y on x along the last axis, one per row (e.g. per seed: accuracy
    against log10 of the pre-training images). Points where x or y is not finite are left out; a
    row with fewer than two distinct x gets NaN. Compare two families with
    `difference(slopes(x_a, y_a), slopes(x_b, y_b), name)`: each seed's slope is one sample."""
    x, y = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    ok = np.isfinite(x) & np.isfinite(y)
    n = ok.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = np.where(ok, x - np.where(ok, x, 0).sum(axis=-1, keepdims=True) / n, 0.0)
        dy = np.where(ok, y - np.where(ok, y, 0).sum(axis=-1, keepdims=True) / n, 0.0)
        sxx, sxy = (dx * dx).sum(axis=-1), (dx * dy).sum(axis=-1)
        return np.where(sxx > 0, sxy / sxx, np.nan)


def too_few_seeds(samples: Mapping[str, Sequence[float]], min_n: int = MIN_SEEDS) -> str | None:
    """None when every named sample has >= min_n finite values, else the reason a verdict is not
    judged, naming the short cells."""
    counts = {name: _finite(values).size for name, values in samples.items()}
    short = [f"{name} has {n}" for name, n in counts.items() if n < min_n]
    return f"needs >= {min_n} seeds per compared cell; {', '.join(short)}" if short else None


# --- rank agreement -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankAgreement:
    """How well a cheap proxy's ranking of models agrees with the target's. A rank claim is judged on
    `agreement(result, name)`: the coefficient with its bootstrap draws, as a Comparison."""

    spearman: float
    kendall: float  # tau-b: ties (duplicated models in a resample) are accounted for
    spearman_ci: tuple[float, float]  # the 1 - 2α interval judge reads (undefined draws against both ends)
    kendall_ci: tuple[float, float]
    n_models: int
    n_boot: int
    discordant: list[tuple[int, int]]  # (i, j), i < j, ranked in opposite order by proxy means and target
    n_degenerate: int = (
        0  # resamples where one side is constant: no coefficient (NaN draws, kept and counted)
    )
    kendall_draws: np.ndarray | None = field(default=None, compare=False, repr=False)
    spearman_draws: np.ndarray | None = field(default=None, compare=False, repr=False)
    test: str = ""  # the bootstrap, in words
    sample: str = ""  # "10 models × 5 probe seeds"


def agreement(
    result: RankAgreement, name: str = "Kendall τ", coefficient: Literal["kendall", "spearman"] = "kendall"
) -> Comparison:
    """A rank agreement's coefficient with its bootstrap draws, as judge() decides a threshold claim
    on it: judge([agreement(result, name)], Prediction(effect=τ_min, null=τ_min, power_at=τ_alt, ...),
    unit="τ") is reproduced when the lower bound clears τ_min and contradicted when the upper bound is
    below it (tests/test_judge.py measures both error rates)."""
    estimate, draws = (
        (result.kendall, result.kendall_draws)
        if coefficient == "kendall"
        else (result.spearman, result.spearman_draws)
    )
    return Comparison(
        name,
        result.test,
        estimate,
        math.nan,
        math.inf,
        result.n_models,
        result.n_models,
        draws,
        result.sample,
        per="models",  # τ's precision grows with the models ranked, not with their seeds
    )


def _kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b per row (models on the last axis); NaN where either side is constant. A loop
    over the few model pairs, each step on every row at once (the null simulations run millions)."""
    x = np.ascontiguousarray(np.moveaxis(np.asarray(x, dtype=float), -1, 0))
    y = np.ascontiguousarray(np.moveaxis(np.asarray(y, dtype=float), -1, 0))
    concordance = np.zeros(x.shape[1:], dtype=np.int64)
    untied_x, untied_y = np.zeros_like(concordance), np.zeros_like(concordance)
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            concordance += (sx * sy).astype(np.int64)
            untied_x += sx != 0
            untied_y += sy != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(untied_x * untied_y > 0, concordance / np.sqrt(untied_x * untied_y), np.nan)


def _spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho per row: Pearson's r of average ranks; NaN where either side is constant."""
    rx = stats.rankdata(x, axis=-1)
    ry = stats.rankdata(y, axis=-1)
    rx -= rx.mean(axis=-1, keepdims=True)
    ry -= ry.mean(axis=-1, keepdims=True)
    sxx, syy = (rx * rx).sum(axis=-1), (ry * ry).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((sxx > 0) & (syy > 0), (rx * ry).sum(axis=-1) / np.sqrt(sxx * syy), np.nan)


def _rank_indices(
    rng: np.random.Generator, shape: tuple[int, ...], n_models: int, n_seeds: int, n_boot: int
) -> tuple[np.ndarray, np.ndarray]:
    """The nested bootstrap's indices: models drawn with replacement, and for each model and draw
    its probe seeds with replacement."""
    models = rng.integers(0, n_models, size=(*shape, n_boot, n_models))
    seeds = rng.integers(0, n_seeds, size=(*shape, n_boot, n_models, n_seeds))
    return models, seeds


def _rank_resample(
    proxy: np.ndarray, target: np.ndarray, models: np.ndarray, seeds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Resampled (proxy means, target) per draw: proxy (..., models, seeds), target (..., models).
    One seed resample per model and draw, shared by its copies: a model drawn twice is still one
    model, tied with itself on both sides. Separate resamples would split that tie on the proxy side
    only and pull both coefficients below 1 even for a perfect proxy."""
    proxy_means = np.take_along_axis(proxy[..., None, :, :], seeds, axis=-1).mean(axis=-1)
    boot_proxy = np.take_along_axis(proxy_means, models, axis=-1)
    boot_target = np.take_along_axis(np.broadcast_to(target[..., None, :], models.shape), models, axis=-1)
    return boot_proxy, boot_target


def rank_agreement(proxy: ArrayLike, target: ArrayLike, n_boot: int = 2000, seed: int = 0) -> RankAgreement:
    """Rank agreement between proxy (models, probe_seeds) scores and target (models,) scores.

    Point estimates: scipy's kendalltau (tau-b) and spearmanr between proxy.mean(1) and target.
    Their draws come from a nested bootstrap, so they reflect both which models were picked and the
    probe's own noise: resample models with replacement and, for each drawn model, its probe seeds;
    recompute both coefficients. Resamples where either side is constant give NaN draws, kept and
    counted against both bounds (Comparison). Deterministic for a given seed. The false reproduced /
    contradicted rates of the threshold rule built on it are measured in tests/test_judge.py.
    """
    proxy, target = np.asarray(proxy, dtype=float), np.asarray(target, dtype=float)
    if proxy.ndim != 2 or target.shape != proxy.shape[:1]:
        raise ValueError(
            f"need proxy (models, seeds) and target (models,), got {proxy.shape} and {target.shape}"
        )
    if not (np.isfinite(proxy).all() and np.isfinite(target).all()):
        raise ValueError("proxy and target must be finite (a missing score would shift a model's mean)")
    n_models, n_seeds = proxy.shape
    if n_models < 3 or n_boot < 2:
        raise ValueError(f"need >= 3 models and n_boot >= 2, got {n_models} models and n_boot={n_boot}")

    means = proxy.mean(axis=1)
    kendall = spearman = math.nan
    if np.ptp(means) > 0 and np.ptp(target) > 0:
        kendall = float(stats.kendalltau(means, target).statistic)
        spearman = float(stats.spearmanr(means, target).statistic)
    models, seeds = _rank_indices(np.random.default_rng(seed), (), n_models, n_seeds, n_boot)
    boot_proxy, boot_target = _rank_resample(proxy, target, models, seeds)
    tau, rho = _kendall_tau_b(boot_proxy, boot_target), _spearman(boot_proxy, boot_target)
    if n_seeds > 1:
        test, sample = (
            "nested bootstrap over models and probe seeds",
            f"{n_models} models × {n_seeds} probe seeds",
        )
    else:
        test, sample = "bootstrap over models", f"{n_models} models"
    order = np.sign(means[:, None] - means[None, :]) * np.sign(target[:, None] - target[None, :])
    discordant = [(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(order < 0)), strict=True)]
    return RankAgreement(
        spearman, kendall, tuple(float(v) for v in _draw_bounds(rho, ALPHA)),
        tuple(float(v) for v in _draw_bounds(tau, ALPHA)), n_models, n_boot, discordant,
        int(np.isnan(tau).sum()), tau, rho, test, sample,
    )  # fmt: skip


# --- a statistic of several cells' means ----------------------------------------------------------


def _satterthwaite_draws(
    means: np.ndarray,
    se: np.ndarray,
    dof: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    z: np.ndarray,
    u: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Draws of statistic(cell means) and their degrees of freedom, per row of the leading axes.

    means, se (..., cells): each cell's mean and standard error (sd / √n); dof (cells,) or
    (..., cells): n - 1; statistic maps (..., draws, cells) to (..., draws), NaN where undefined;
    z (..., draws, cells) standard normals; u (..., draws) uniforms.

    First pass, on the first LINEARISE draws: each cell's mean + se · z. A least-squares fit of the defined draws on z gives
    each cell's share v_c of the statistic's variance (its linearisation), and the statistic's
    Welch–Satterthwaite degrees of freedom ν = (Σ v_c)² / Σ v_c² / (n_c - 1). Second pass, the
    draws returned: each cell's mean + se · z · √(ν / χ²_ν), one χ²_ν (from u) shared by the cells
    of a draw. For a linear statistic (a difference of two cells) these draws are exactly Welch's t
    distribution; a statistic whose noise comes from many cells gets many degrees of freedom, one
    dominated by a single 3-seed cell gets 2, as Welch's would.
    """
    z_lin = z[..., :LINEARISE, :]
    first = statistic(means[..., None, :] + se[..., None, :] * z_lin)
    ok = np.isfinite(first)
    n_ok = ok.sum(axis=-1)
    cells = z.shape[-1]
    enough = n_ok > cells + 1
    with np.errstate(invalid="ignore", divide="ignore"):
        zc = np.where(ok[..., None], z_lin, 0.0)
        zc = np.where(ok[..., None], zc - zc.sum(axis=-2, keepdims=True) / n_ok[..., None, None], 0.0)
        yc = np.where(ok, first, 0.0)
        yc = np.where(ok, yc - yc.sum(axis=-1, keepdims=True) / n_ok[..., None], 0.0)
    gram = np.swapaxes(zc, -1, -2) @ zc
    gram = np.where(enough[..., None, None], gram, np.eye(cells))
    beta = np.linalg.solve(gram, np.einsum("...bi,...b->...i", zc, yc)[..., None])[..., 0]
    v = beta**2
    with np.errstate(invalid="ignore", divide="ignore"):
        nu = v.sum(axis=-1) ** 2 / (v**2 / dof).sum(axis=-1)
    nu = np.where(enough, nu, np.min(dof, axis=-1))  # too few defined draws to tell: the fewest seeds'
    nu = np.where(np.isfinite(nu) & (nu > 0), nu, np.inf)  # a statistic the noise does not move
    finite_nu = np.where(np.isinf(nu), 1.0, nu)
    factor = np.where(
        np.isinf(nu)[..., None],
        1.0,
        np.sqrt(finite_nu[..., None] / stats.chi2.ppf(np.clip(u, 1e-12, 1), finite_nu[..., None])),
    )
    return statistic(means[..., None, :] + se[..., None, :] * z * factor[..., None]), nu


def _on_cells(
    statistic: Callable[[Mapping[str, np.ndarray]], np.ndarray], cells: Sequence[str]
) -> Callable[[np.ndarray], np.ndarray]:
    """A statistic of named cell means as one of an array with the cells on the last axis."""

    def on_array(means: np.ndarray) -> np.ndarray:
        out = np.asarray(statistic({c: means[..., i] for i, c in enumerate(cells)}), dtype=float)
        if out.shape != means.shape[:-1]:
            raise ValueError(
                f"a bootstrap statistic maps arrays of cell means to an array of their shape {means.shape[:-1]} "
                f"(one value per draw), got shape {out.shape}"
            )
        return out

    return on_array


def _noise(
    rng: np.random.Generator, n_boot: int, cells: int, shape: tuple[int, ...] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """The bootstrap's random numbers: normals (..., n_boot, cells) and uniforms (..., n_boot)."""
    return rng.standard_normal((*shape, n_boot, cells)), rng.random((*shape, n_boot))


def _bootstrap_rows(
    values: np.ndarray,
    statistic: Callable[[Mapping[str, np.ndarray]], np.ndarray],
    cells: Sequence[str],
    z: np.ndarray,
    u: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bootstrap_cells over many simulated studies at once: values (..., cells, seeds), finite.
    Returns the estimates (...), the draws (..., n_boot) and their degrees of freedom (...)."""
    on_array = _on_cells(statistic, cells)
    n = values.shape[-1]
    means, se = values.mean(axis=-1), values.std(axis=-1, ddof=1) / math.sqrt(n)
    draws, nu = _satterthwaite_draws(means, se, np.full(len(cells), n - 1), on_array, z, u)
    return on_array(means), draws, nu


def bootstrap_cells(
    samples: Mapping[str, Sequence[float]],
    statistic: Callable[[Mapping[str, np.ndarray]], np.ndarray],
    name: str,
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> Comparison:
    """`statistic` of the cells' mean accuracies, with draws of its sampling distribution under the
    cells' seed noise. `samples` maps each cell to its per-seed values; `statistic` maps {cell:
    array of means} to an array of the same shape (vectorised over draws), NaN where it is
    undefined. Cells are the fixed design (which models were trained); only seed noise is drawn.

    The resampling model (see _satterthwaite_draws): each cell's mean + its se times a normal,
    scaled per draw by √(ν / χ²_ν) with ν the statistic's Welch–Satterthwaite degrees of freedom. It
    replaced mean + se · t(n - 1) per cell, whose t with 2 degrees of freedom at 3 seeds has an
    infinite variance: tests/test_stats.py measures both models' coverage and width, and that of a
    variance pooled over the cells (narrow, but it fails when cells differ in noise, as ours do).
    Undefined draws stay NaN in `draws` and are counted (Comparison.n_undefined); a cell with fewer
    than 2 seeds, or draws that do not vary (no seed noise where the statistic looks), leave the
    comparison without a noise estimate."""
    cells = list(samples)
    values = [_finite(samples[c]) for c in cells]
    n = np.array([v.size for v in values])
    on_array = _on_cells(statistic, cells)
    means = np.array([v.mean() if v.size else math.nan for v in values])
    estimate = float(on_array(means[None, :])[0])
    sample = f"{len(cells)} cells of {n.min()}{f'–{n.max()}' if n.max() > n.min() else ''} seeds"
    if n.min() < 2:
        return Comparison(
            name, BOOTSTRAP_TEST, estimate, math.nan, math.nan, int(n.min()), int(n.min()), sample=sample
        )
    se = np.array([v.std(ddof=1) / math.sqrt(v.size) for v in values])
    z, u = _noise(np.random.default_rng(seed), n_boot, len(cells))
    draws, nu = _satterthwaite_draws(means, se, n - 1, on_array, z, u)
    finite = draws[np.isfinite(draws)]
    if finite.size and np.ptp(finite) == 0:  # the cells that move the statistic have no seed noise
        return Comparison(
            name, BOOTSTRAP_TEST, estimate, math.nan, math.nan, int(n.min()), int(n.min()), sample=sample
        )
    return Comparison(
        name, BOOTSTRAP_TEST, estimate, math.nan, float(nu), int(n.min()), int(n.min()), draws, sample
    )
