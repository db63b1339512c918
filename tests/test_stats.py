"""The noise model: each statistic against scipy, degenerate data, and the coverage of the cell
bootstrap's intervals measured against the model it replaced.

The error rates of the verdicts judged on these statistics are measured in tests/test_judge.py; the
coverage of the compute-front statistics in tests/test_pareto.py. Run with -s to see the measured
coverage (lines starting "COVERAGE").
"""

import math

import numpy as np
import pytest
from scipy import stats as sps

from benchmark import stats
from benchmark.judge import Prediction, judge
from benchmark.stats import ALPHA
from benchmark.study import CONTRADICTED, INCONCLUSIVE, REPRODUCED

# --- difference: Welch over seeds -----------------------------------------------------------------


def test_difference_is_scipys_welch_test():
    rng = np.random.default_rng(31)
    for _ in range(20):
        a, b = rng.normal(0.8, 1.0, 5), rng.normal(0.0, 2.0, 4)  # unequal n and spread
        c = stats.difference(a, b, "a - b")
        ref = sps.ttest_ind(a, b, equal_var=False, alternative="greater")
        ci = sps.ttest_ind(a, b, equal_var=False).confidence_interval(1 - 2 * ALPHA)
        assert c.estimate == pytest.approx(a.mean() - b.mean()) and (c.n_a, c.n_b) == (5, 4)
        assert (c.estimate / c.se, c.df) == pytest.approx((ref.statistic, ref.df))
        assert c.p_above(0.0) == pytest.approx(ref.pvalue)
        assert c.p_below(0.0) == pytest.approx(1 - ref.pvalue)
        assert c.interval() == pytest.approx((ci.low, ci.high))
        # a shifted null is the test of the shifted data (how judge tests against the predicted effect)
        shifted = sps.ttest_ind(a - 0.5, b, equal_var=False, alternative="less").pvalue
        assert c.p_below(0.5) == pytest.approx(shifted)


def test_the_vectorised_welch_core_is_difference_row_by_row():
    rng = np.random.default_rng(32)
    a, b = rng.normal(0.5, 1.0, (300, 3)), rng.normal(0.0, 3.0, (300, 3))
    a[:5] = 0.9  # rows without spread in a: the other cell still carries the noise
    a[5], b[5] = 0.9, 0.8  # a row without any spread: no noise estimate at all
    estimate, se, df = stats._welch(a, b)
    for i in range(len(a)):
        c = stats.difference(a[i], b[i], "row")
        np.testing.assert_array_equal([c.estimate, c.se, c.df], [estimate[i], se[i], df[i]])
    assert math.isnan(se[5]) and np.isfinite(se[:5]).all()


def test_the_lower_bound_clears_zero_exactly_when_the_one_sided_p_is_below_alpha():
    rng = np.random.default_rng(23)
    cs = [stats.difference(rng.normal(1.0, 1.0, 5), rng.normal(0.0, 1.0, 5), "c") for _ in range(400)]
    shown = np.array([c.lower() > 0 for c in cs])
    assert 0 < shown.sum() < len(cs)  # both outcomes occur, so the equality below is a real check
    np.testing.assert_array_equal(shown, [c.p_above(0.0) < ALPHA for c in cs])


def test_nan_values_are_dropped_and_n_counts_finite_values():
    with_nan = stats.difference([0.91, math.nan, 0.93, 0.95], [0.90, 0.89, math.inf, 0.88], "x")
    clean = stats.difference([0.91, 0.93, 0.95], [0.90, 0.89, 0.88], "x")
    assert (with_nan.n_a, with_nan.n_b) == (3, 3)
    assert with_nan == clean


def test_fewer_than_two_values_is_never_a_verdict():
    c = stats.difference([0.95, math.nan], [0.80, 0.81, 0.82], "one seed")
    assert not c.defined and c.why_undefined == "fewer than 2 seeds"
    assert math.isnan(c.lower()) and math.isnan(c.p_below(0.0))
    assert c.text() == "Δ = +14.0 pts, no interval (fewer than 2 seeds); n = 1 vs 3"


def test_no_variance_in_both_cells_is_never_decided():
    a, b = [0.9, 0.9, 0.9], [0.8, 0.8, 0.8]
    # scipy alone calls this all but certain on data that carries no noise estimate (the means'
    # rounding leaves a variance of ~1e-32)
    with pytest.warns(RuntimeWarning, match="Precision loss"):
        assert sps.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue < 1e-20
    c = stats.difference(a, b, "flat")
    assert not c.defined and math.isnan(c.p_above(0.0)) and c.why_undefined == "no variance"
    assert c.text() == "Δ = +10.0 pts, no interval (no variance); n = 3 vs 3"
    verdict = judge([c], Prediction(0.05, "d"), claim="c", paper="", measured="", rule="r", judged_on="")
    assert verdict.outcome == INCONCLUSIVE and verdict.reason == "no estimate: no variance"
    # one flat cell is fine: the other still estimates the noise
    assert stats.difference([0.9, 0.9, 0.9], [0.8, 0.85, 0.82], "half").lower() > 0


def test_report_line_reads_well():
    c = stats.difference([0.93, 0.95, 0.94, 0.96, 0.92], [0.90, 0.91, 0.89, 0.92, 0.90], "g")
    low, high = c.interval()
    assert c.text() == (
        f"Δ = +3.6 pts, 90% CI [{100 * low:+.1f}, {100 * high:+.1f}] (Welch t, df {c.df:.1f}); n = 5 vs 5"
    )
    assert "nan" not in c.text().lower()


def test_too_few_seeds_names_the_short_cells():
    ok = {"CLS lr=0.001": [0.9, 0.91, 0.92], "GAP lr=0.001": [0.9, 0.9, 0.93]}
    assert stats.too_few_seeds(ok) is None
    short = {**ok, "GAP lr=0.004": [0.9, math.nan, 0.91], "none": [0.5]}
    assert stats.too_few_seeds(short) == "needs >= 3 seeds per compared cell; GAP lr=0.004 has 2, none has 1"
    assert stats.too_few_seeds(ok, min_n=4) == (
        "needs >= 4 seeds per compared cell; CLS lr=0.001 has 3, GAP lr=0.001 has 3"
    )


# --- Holm (judge's "contradicted" across a claim's comparisons) -----------------------------------


def test_holm_hand_example():
    # sorted 0.01, 0.03, 0.04 -> 3 * 0.01, max(0.03, 2 * 0.03), max(0.06, 1 * 0.04)
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.6]).tolist() == [1.0, 1.0]  # capped at 1


def test_holm_keeps_a_nan_comparison_in_the_family():
    adjusted = stats.holm([0.01, math.nan])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1])  # m = 2, not 1


def test_no_holm_for_all_machinery_is_left():
    # "reproduced" needs every comparison (intersection–union: each at α); Holm only serves
    # "contradicted" (any comparison), inside judge. Nothing may offer the old all-rejected rule.
    for gone in ("all_rejected", "greater", "equivalent", "Bootstrap", "_tost"):
        assert not hasattr(stats, gone), gone


# --- comparisons carried by bootstrap draws -------------------------------------------------------


def draws_comparison(draws, estimate: float = 0.0) -> stats.Comparison:
    return stats.Comparison(
        "d", "bootstrap", estimate, math.nan, math.inf, 3, 3, np.asarray(draws, dtype=float)
    )


def test_bounds_and_p_values_of_draws_are_their_quantiles_and_tail_shares():
    draws = np.arange(1.0, 101.0)  # 1..100
    c = draws_comparison(draws, 50.0)
    assert c.interval(0.05) == pytest.approx(tuple(np.quantile(draws, [0.05, 0.95])))
    assert c.p_above(10.0) == pytest.approx((1 + 10) / 101)  # draws <= 10: the wrong side
    assert c.p_below(95.0) == pytest.approx((1 + 6) / 101)
    assert c.n_undefined == 0 and c.defined


def test_undefined_draws_count_against_both_bounds_and_every_p_value():
    rng = np.random.default_rng(5)
    draws = rng.normal(1.0, 0.1, 1000)
    few = draws.copy()
    few[:30] = np.nan  # 3% undefined: both bounds still exist, each pushed outwards
    c = draws_comparison(few, 1.0)
    assert c.n_undefined == 30
    lo, hi = c.interval(0.05)
    finite = draws[30:]
    assert lo < np.quantile(finite, 0.05) and hi > np.quantile(finite, 0.95)
    assert c.p_above(0.0) == pytest.approx(31 / 1001)  # the 30 undefined draws are "at or below 0"
    assert "30 undefined (counted against both bounds)" in c.text()
    many = draws.copy()
    many[:80] = np.nan  # 8% > α: neither bound exists, so nothing can be decided
    c = draws_comparison(many, 1.0)
    assert c.interval(0.05) == (-math.inf, math.inf) and c.p_above(0.0) > ALPHA and c.p_below(2.0) > ALPHA
    verdict = judge(
        [c], Prediction(1.0, "d"), claim="c", paper="", measured="", rule="r", judged_on="", unit=""
    )
    assert verdict.outcome == INCONCLUSIVE


def test_a_statistic_undefined_at_the_means_or_in_almost_every_draw_decides_nothing():
    assert (
        draws_comparison([np.nan] * 99 + [1.0], 1.0).why_undefined == "fewer than 2 defined bootstrap draws"
    )
    assert draws_comparison(np.ones(100), 1.0).defined  # e.g. a perfect ranking in every resample
    c = stats.Comparison("r", "b", math.nan, math.nan, math.inf, 3, 3, np.ones(10), undefined="no overlap")
    assert not c.defined and c.why_undefined == "no overlap" and math.isnan(c.lower())


# --- slopes ---------------------------------------------------------------------------------------


def test_slopes_are_scipys_least_squares_slopes_row_by_row():
    rng = np.random.default_rng(41)
    x = np.log10([1e3, 1e4, 1e5, 1e6])
    y = rng.normal(0.5, 0.1, (50, 4)) + 0.05 * x
    got = stats.slopes(x, y)
    assert got.shape == (50,)
    assert got == pytest.approx([sps.linregress(x, row).slope for row in y])


def test_slopes_leave_out_missing_points_and_need_two_distinct_x():
    x = np.array([[3.0, 4.0, 5.0], [3.0, 4.0, 5.0], [3.0, 3.0, 5.0]])
    y = np.array([[0.1, 0.2, 0.4], [0.1, np.nan, 0.4], [0.1, 0.2, np.nan]])
    got = stats.slopes(x, y)
    assert got[0] == pytest.approx(sps.linregress(x[0], y[0]).slope)
    assert got[1] == pytest.approx(0.15)  # the two remaining points
    assert math.isnan(got[2])  # x = 3 twice: no slope


# --- rank agreement -------------------------------------------------------------------------------


def test_the_vectorised_kendall_and_spearman_are_scipys_with_ties():
    rng = np.random.default_rng(42)
    x = rng.integers(0, 4, (300, 10)).astype(float)  # many ties, as duplicated models give
    y = rng.integers(0, 4, (300, 10)).astype(float)
    x[0] = 1.0  # a constant row: no coefficient
    tau, rho = stats._kendall_tau_b(x, y), stats._spearman(x, y)
    assert math.isnan(tau[0]) and math.isnan(rho[0])
    assert tau[1:] == pytest.approx(
        [sps.kendalltau(a, b).statistic for a, b in zip(x[1:], y[1:], strict=True)]
    )
    assert rho[1:] == pytest.approx(
        [sps.spearmanr(a, b).statistic for a, b in zip(x[1:], y[1:], strict=True)]
    )


TARGET = np.array([0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85])  # 8 models, a clear gap between each


def noisy(means: np.ndarray, sd: float = 0.005, seeds: int = 5, seed: int = 0) -> np.ndarray:
    return means[:, None] + np.random.default_rng(seed).normal(0, sd, size=(len(means), seeds))


def test_rank_agreement_of_a_perfect_proxy_is_one_with_a_tight_interval():
    r = stats.rank_agreement(noisy(TARGET), TARGET)
    assert (r.spearman, r.kendall) == pytest.approx((1.0, 1.0))
    assert r.spearman_ci[0] > 0.999 and r.kendall_ci[0] > 0.999
    assert r.discordant == [] and (r.n_models, r.n_boot, r.n_degenerate) == (8, 2000, 0)
    tau = stats.agreement(r, "τ, probe vs fine-tuning")
    assert tau.name == "τ, probe vs fine-tuning" and tau.estimate == r.kendall and tau.draws.size == 2000
    assert tau.interval() == r.kendall_ci and tau.sample == "8 models × 5 probe seeds"
    assert stats.agreement(r, coefficient="spearman").interval() == r.spearman_ci


def test_rank_agreement_fails_a_reversed_proxy():
    r = stats.rank_agreement(noisy(TARGET[::-1].copy()), TARGET)
    assert (r.spearman, r.kendall) == pytest.approx((-1.0, -1.0))
    assert r.spearman_ci[1] < 0 and r.kendall_ci[1] < 0
    assert len(r.discordant) == 28  # every pair of 8


def test_rank_agreement_fails_a_proxy_that_reads_the_wrong_axis():
    # Four sizes x two heads: the target is decided by the head, the proxy by size (and it even
    # prefers the worse head): a check on the interval's lower bound must fail.
    size, head = np.tile(np.arange(4), 2), np.repeat(np.arange(2), 4)
    target = 0.5 + 0.02 * size + 0.10 * head
    r = stats.rank_agreement(noisy(0.5 + 0.02 * size - 0.01 * head), target)
    assert r.spearman < 0.6 and r.spearman_ci[0] < 0.5 and r.kendall_ci[0] < 0.5
    assert r.spearman_ci[1] < 0.95 and r.kendall_ci[1] < 0.9
    # The proxy ranks (size i, head 0) above (size j, head 1) for every j <= i; the target ranks
    # every head-1 model higher: those are the discordant pairs.
    assert r.discordant == [(i, 4 + j) for i in range(4) for j in range(i + 1)]


def test_rank_agreement_lists_one_swapped_pair():
    proxy_means = TARGET.copy()
    proxy_means[[3, 4]] = proxy_means[[4, 3]]
    r = stats.rank_agreement(noisy(proxy_means), TARGET)
    assert r.discordant == [(3, 4)]
    assert r.spearman == pytest.approx(1 - 6 * 2 / (8 * 63)) and r.kendall == pytest.approx(26 / 28)
    assert r.spearman_ci[0] < r.spearman < r.spearman_ci[1] == pytest.approx(1.0)


def test_rank_agreement_is_deterministic_and_is_its_vectorised_core():
    proxy = noisy(TARGET, sd=0.05)  # noise that really reorders neighbours across resamples
    a, b = stats.rank_agreement(proxy, TARGET, seed=3), stats.rank_agreement(proxy, TARGET, seed=3)
    np.testing.assert_array_equal(a.kendall_draws, b.kendall_draws)
    assert not np.array_equal(a.kendall_draws, stats.rank_agreement(proxy, TARGET, seed=4).kendall_draws)
    # The simulations in test_judge run the same core on many studies at once.
    models, seeds = stats._rank_indices(np.random.default_rng(3), (), 8, 5, 2000)
    many = np.stack([proxy, proxy[::-1]])  # two studies in one call
    boot_proxy, boot_target = stats._rank_resample(
        many, np.stack([TARGET, TARGET]), np.stack([models] * 2), np.stack([seeds] * 2)
    )
    np.testing.assert_array_equal(stats._kendall_tau_b(boot_proxy, boot_target)[0], a.kendall_draws)
    np.testing.assert_array_equal(stats._spearman(boot_proxy, boot_target)[0], a.spearman_draws)
    assert stats.rank_agreement(proxy, TARGET, n_boot=137).kendall_draws.size == 137


def test_rank_agreement_keeps_and_counts_degenerate_resamples():
    # 3 models: a resample is constant on one side unless it draws both model 0 and model 2
    # (probability 12/27), so 15/27 ~ 56% of resamples have no coefficient.
    r = stats.rank_agreement(np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]), np.array([1.0, 2.0, 2.0]))
    assert math.isfinite(r.kendall) and abs(r.n_degenerate / r.n_boot - 15 / 27) < 0.03
    assert r.n_degenerate == stats.agreement(r).n_undefined == int(np.isnan(r.kendall_draws).sum())
    assert r.kendall_ci == (-math.inf, math.inf)  # more than α undefined: no bound at all


def test_rank_agreement_refuses_bad_shapes():
    with pytest.raises(ValueError, match="proxy"):
        stats.rank_agreement(TARGET, TARGET)
    with pytest.raises(ValueError, match="finite"):
        stats.rank_agreement(np.full((8, 2), math.nan), TARGET)


def test_a_rank_threshold_claim_is_judged_on_its_agreement_comparison():
    """τ_min = 0.5: reproduced when the lower bound clears it, contradicted when the upper bound is
    below it (Prediction(effect=0.5, null=0.5)), inconclusive when the interval holds it."""
    threshold = Prediction(effect=0.5, null=0.5, derivation="the suite's own threshold")

    def outcome(proxy: np.ndarray, target: np.ndarray) -> str:
        tau = stats.agreement(stats.rank_agreement(proxy, target))
        return judge(
            [tau], threshold, claim="c", paper="", measured="", rule="r", judged_on="", unit="τ"
        ).outcome

    rng = np.random.default_rng(7)
    target = np.linspace(0.5, 0.95, 10)
    assert outcome(noisy(target), target) == REPRODUCED
    assert outcome(noisy(target[::-1].copy()), target) == CONTRADICTED
    assert outcome(noisy(target + rng.normal(0, 0.12, 10)), target) == INCONCLUSIVE  # τ ≈ 0.5


# --- bootstrap_cells: a statistic of several cells' means -----------------------------------------


def test_a_difference_of_two_cells_through_the_bootstrap_is_welchs_t():
    rng = np.random.default_rng(9)
    a, b, other = rng.normal(0.5, 1, 3), rng.normal(0, 2, 3), rng.normal(0, 1, 4)
    welch = stats.difference(a, b, "a - b")
    c = stats.bootstrap_cells(
        {"a": a, "b": b, "other": other}, lambda m: m["a"] - m["b"], "a - b", n_boot=100_000
    )
    assert c.estimate == pytest.approx(welch.estimate) and c.df == pytest.approx(welch.df, rel=1e-6)
    assert c.interval() == pytest.approx(welch.interval(), abs=0.03 * welch.se)
    assert c.draws.size == 100_000 and c.n_undefined == 0 and c.sample == "3 cells of 3–4 seeds"


def test_the_bootstrap_keeps_and_counts_undefined_draws_and_needs_two_seeds():
    rng = np.random.default_rng(10)
    cells = {"a": rng.normal(0, 1, 3), "b": rng.normal(0, 1, 3)}
    c = stats.bootstrap_cells(cells, lambda m: np.where(m["a"] > m["b"] - 1, m["a"] - m["b"], np.nan), "x")
    assert c.draws.size == 2000 and 0 < c.n_undefined == int(np.isnan(c.draws).sum())
    short = stats.bootstrap_cells({"a": [1.0], "b": [0.0, 1.0]}, lambda m: m["a"] - m["b"], "x")
    assert not short.defined and short.why_undefined == "fewer than 2 seeds"
    flat = stats.bootstrap_cells({"a": [1.0, 1.0, 1.0], "b": [0.0, 0.0, 0.0]}, lambda m: m["a"] - m["b"], "x")
    assert not flat.defined and flat.why_undefined == "no variance"


def test_a_bootstrap_statistic_must_give_one_value_per_draw():
    with pytest.raises(ValueError, match="one value per draw"):
        stats.bootstrap_cells({"a": [0.1, 0.2, 0.3]}, lambda m: float(m["a"][0]), "a scalar statistic")


def test_the_vectorised_bootstrap_is_bootstrap_cells_row_by_row():
    rng = np.random.default_rng(11)
    cells = ["a", "b", "c"]
    values = rng.normal(0, 1, (4, 3, 3)) * np.array([1.0, 2.0, 0.5])[None, :, None]

    def statistic(m):
        return np.maximum(m["a"], m["c"]) - m["b"]

    noise = [stats._noise(np.random.default_rng(100 + r), 300, 3) for r in range(4)]
    z, u = np.stack([n[0] for n in noise]), np.stack([n[1] for n in noise])
    estimate, draws, nu = stats._bootstrap_rows(values, statistic, cells, z, u)
    for r in range(4):
        c = stats.bootstrap_cells(
            dict(zip(cells, values[r], strict=True)), statistic, "x", n_boot=300, seed=100 + r
        )
        assert c.estimate == pytest.approx(estimate[r]) and c.df == pytest.approx(nu[r])
        np.testing.assert_allclose(c.draws, draws[r], rtol=1e-9)


# The coverage simulation behind the resampling model. 2,000 simulated studies of 6 cells with
# 3 seeds each; each study's 90% interval of one difference of two cells (judge's 1 - 2α) from
# 1,000 draws under three models: the old one (each mean + se · t with n - 1 = 2 df), a seed
# variance pooled over the 6 cells (σ² drawn from its scaled inverse χ² with 12 df, shared), and
# the new Welch–Satterthwaite one (stats._satterthwaite_draws). One-sided coverage is what judge
# uses: P(lower bound <= truth) and P(upper bound >= truth), each nominally 95%. Width in units of
# the true standard error of the difference.
COVERAGE_STUDIES, COVERAGE_DRAWS, SEEDS = 2000, 1000, 3
NOISE = {"equal noise": np.ones(6), "noise differing 4x": np.array([0.5, 0.7, 1.0, 1.0, 1.4, 2.0])}
PAIRS = {"two typical cells": (2, 3), "noisiest vs quietest": (5, 0), "two noisiest": (5, 4)}
_coverage: dict = {}


def coverage(noise: str) -> dict:
    """{(model, pair): (P(lower <= 0), P(upper >= 0), mean width / true se)} for one noise setting."""
    if noise in _coverage:
        return _coverage[noise]
    sd = NOISE[noise]
    rng = np.random.default_rng(2024)
    values = rng.normal(0.0, 1.0, (COVERAGE_STUDIES, 6, SEEDS)) * sd[None, :, None]  # every true mean 0
    means, s2 = values.mean(-1), values.var(-1, ddof=1)
    se = np.sqrt(s2 / SEEDS)
    z, u = stats._noise(rng, COVERAGE_DRAWS, 6, (COVERAGE_STUDIES,))
    old = means[:, None] + se[:, None] * rng.standard_t(SEEDS - 1, z.shape)
    pooled_df = 6 * (SEEDS - 1)
    sigma2 = s2.mean(-1)[:, None] * pooled_df / rng.chisquare(pooled_df, z.shape[:-1])
    pooled = means[:, None] + np.sqrt(sigma2 / SEEDS)[..., None] * z
    out = {}
    for pair, (i, j) in PAIRS.items():
        true_se = math.sqrt((sd[i] ** 2 + sd[j] ** 2) / SEEDS)
        new, _ = stats._satterthwaite_draws(
            means, se, np.full(6, SEEDS - 1), lambda m, i=i, j=j: m[..., i] - m[..., j], z, u
        )
        for model, draws in (("old: t(n-1) per cell", old[..., i] - old[..., j]),
                             ("pooled variance", pooled[..., i] - pooled[..., j]), ("new: Welch-Satterthwaite", new)):  # fmt: skip
            low, high = stats._draw_bounds(draws, ALPHA)
            out[(model, pair)] = (np.mean(low <= 0), np.mean(high >= 0), np.mean(high - low) / true_se)
            print(f"COVERAGE cell bootstrap, {noise}, {pair}, {model}: lower {out[(model, pair)][0]:.3f}, "
                  f"upper {out[(model, pair)][1]:.3f} (nominal 0.95 each), 90% width {out[(model, pair)][2]:.2f} true se "
                  f"({COVERAGE_STUDIES} studies x {COVERAGE_DRAWS} draws)")  # fmt: skip
    _coverage[noise] = out
    return out


@pytest.mark.parametrize("noise", list(NOISE))
def test_the_new_cell_bootstrap_covers_at_its_nominal_rate_and_is_narrower_than_the_old(noise):
    rates = coverage(noise)
    for pair in PAIRS:
        lower, upper, width = rates[("new: Welch-Satterthwaite", pair)]
        # Welch's own t interval covers ~0.95-0.97 one-sided here; binomial sd at 2,000 studies ~0.005
        assert lower >= 0.935 and upper >= 0.935, (pair, lower, upper)
        old_lower, old_upper, old_width = rates[("old: t(n-1) per cell", pair)]
        assert old_lower >= 0.95 and old_upper >= 0.95  # the old one covered too, only wider:
        assert width < old_width, (pair, width, old_width)
        if pair != "noisiest vs quietest":  # there one 3-seed cell dominates: Welch's 2 df, as the old t's
            assert width < 0.85 * old_width, (pair, width, old_width)


def test_a_pooled_variance_would_be_narrower_but_fails_when_cells_differ_in_noise():
    """Why the new model does not pool the seed variance over a study's cells: with equal noise the
    pooled model covers at the nominal rate with the narrowest intervals, but when cells differ in
    noise (the compute study's cpu cells have sds from 0.2 to 3.5 pts) it under-covers the noisy ones."""
    equal, unequal = coverage("equal noise"), coverage("noise differing 4x")
    lower, upper, width = equal[("pooled variance", "two typical cells")]
    assert lower >= 0.935 and upper >= 0.935
    assert width < equal[("new: Welch-Satterthwaite", "two typical cells")][2]
    lower, upper, _ = unequal[("pooled variance", "two noisiest")]
    assert lower < 0.90 and upper < 0.90
