"""Compute-efficiency fronts: the front itself, the two front statistics against hand-computed and
brute-force values, and the coverage of their intervals on constructed fronts with a known truth.

Run with -s to see the measured coverage (lines starting "COVERAGE").
"""

import math

import numpy as np
import pytest

from benchmark import pareto, stats
from benchmark.judge import Prediction, judge
from benchmark.stats import ALPHA
from benchmark.study import INCONCLUSIVE


def test_the_front_drops_every_point_a_cheaper_one_beats():
    c, a = pareto.front([1, 2, 4, 8, 3], [0.5, 0.4, 0.7, 0.6, 0.7])
    assert c.tolist() == [1, 3] and a.tolist() == [0.5, 0.7]


# --- the vectorised front, against the plain definition ------------------------------------------


def reference_accuracy_at(compute: np.ndarray, accuracy: np.ndarray, budget: float) -> float:
    """The definition, one front at a time: log-linear between front points, flat from the last
    front point to the family's dearest cell."""
    c, a = pareto.front(compute, accuracy)
    if budget >= c[-1]:
        return float(a[-1])
    return float(np.interp(np.log(budget), np.log(c), a))


def reference_log_compute_mean(compute: np.ndarray, accuracy: np.ndarray, lo: float, hi: float) -> float:
    """The mean over a fine grid of accuracies in [lo, hi] of the log-compute at which the front first
    reaches each (np.interp on the front's strictly increasing accuracies)."""
    c, a = pareto.front(compute, accuracy)
    levels = np.linspace(lo, hi, 20001)
    return float(np.mean(np.interp(levels, a, np.log(c))))


def test_the_vectorised_front_accuracy_is_the_definition():
    rng = np.random.default_rng(1)
    compute = np.array([1.0, 3.0, 10.0, 30.0, 100.0])
    acc = rng.uniform(0.2, 0.8, (500, 5))  # many fronts with dominated cells
    levels = [acc[:, j] for j in range(5)]
    for budget in (1.0, 2.0, 10.0, 50.0, 100.0):
        got = pareto._accuracy_at(levels, np.log(compute), math.log(budget))
        want = [reference_accuracy_at(compute, row, budget) for row in acc]
        assert got == pytest.approx(want)


def test_the_exact_mean_log_compute_is_the_fine_grid_average():
    rng = np.random.default_rng(2)
    compute = np.array([1.0, 3.0, 10.0, 30.0])
    acc = rng.uniform(0.2, 0.8, (200, 4))
    lo = acc[:, 0] + 0.3 * (np.maximum.reduce(acc.T) - acc[:, 0])
    hi = acc[:, 0] + 0.9 * (np.maximum.reduce(acc.T) - acc[:, 0])
    got = pareto._log_compute_mean([acc[:, j] for j in range(4)], np.log(compute), lo, hi)
    want = [reference_log_compute_mean(compute, row, a, b) for row, a, b in zip(acc, lo, hi, strict=True)]
    assert got == pytest.approx(want, abs=1e-3)
    # a single level (lo == hi): the log-compute at which the front reaches it
    point = pareto._log_compute_mean([acc[:, j] for j in range(4)], np.log(compute), hi, hi)
    fronts = [pareto.front(compute, row) for row in acc]
    assert point == pytest.approx([np.interp(b, a, np.log(c)) for (c, a), b in zip(fronts, hi, strict=True)])


# --- front_ratio ----------------------------------------------------------------------------------


def seeds(means: dict[str, float], n: int = 3, sd: float = 0.01, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-seed accuracies whose means are exactly `means` (so the estimate is the statistic of them)."""
    rng = np.random.default_rng(seed)
    out = {}
    for cell, mean in means.items():
        noise = rng.normal(0, sd, n)
        out[cell] = mean + noise - noise.mean()
    return out


COMPUTE = np.array([1.0, 4.0, 16.0, 64.0])
ACC = np.array([0.30, 0.40, 0.50, 0.60])


def two_families(shift: float, slow_acc=ACC, fast_acc=ACC):
    families = {
        "BiT": {f"BiT {i}": shift * COMPUTE[i] for i in range(4)},
        "ViT": {f"ViT {i}": COMPUTE[i] for i in range(4)},
    }
    means = {**{f"BiT {i}": slow_acc[i] for i in range(4)}, **{f"ViT {i}": fast_acc[i] for i in range(4)}}
    return families, seeds(means)


def test_a_family_that_needs_three_times_the_compute_gives_log2_3():
    families, samples = two_families(3.0)
    c = pareto.front_ratio(samples, families, "BiT", "ViT")
    assert c.estimate == pytest.approx(math.log2(3))
    assert c.lower() < c.estimate < c.upper() and c.n_undefined == 0 and c.draws.size == 2000
    swapped = pareto.front_ratio(samples, families, "ViT", "BiT")
    assert swapped.estimate == pytest.approx(-math.log2(3))
    assert c.name == "log2(BiT ÷ ViT compute) at matched accuracy"


def test_a_dominated_cell_is_not_on_the_front_and_partial_overlap_is_averaged_over_the_shared_accuracies():
    # ViT: 0.30, 0.40, 0.50, 0.60 at 1, 4, 16, 64. BiT at 2, 8, 32, 128 reaches 0.45, 0.55, 0.35 (dominated), 0.65:
    # the fronts share accuracies 0.45-0.60.
    families, samples = two_families(2.0, slow_acc=np.array([0.45, 0.55, 0.35, 0.65]))
    c = pareto.front_ratio(samples, families, "BiT", "ViT")
    bit = (np.array([2.0, 8.0, 128.0]), np.array([0.45, 0.55, 0.65]))
    vit = (COMPUTE, ACC)
    levels = np.linspace(0.45, 0.60, 100001)
    want = np.mean(np.interp(levels, bit[1], np.log2(bit[0])) - np.interp(levels, vit[1], np.log2(vit[0])))
    assert c.estimate == pytest.approx(want, abs=1e-4)


def test_fronts_that_share_no_accuracy_are_undefined_and_say_so():
    families, samples = two_families(2.0, slow_acc=np.array([0.70, 0.75, 0.80, 0.85]))
    c = pareto.front_ratio(samples, families, "BiT", "ViT")
    assert not c.defined and math.isnan(c.estimate)
    assert c.why_undefined == "the fronts share no accuracy (BiT 70.0–85.0%, ViT 30.0–60.0% over their cells)"
    verdict = judge(
        [c], Prediction(1.0, "2x"), claim="c", paper="", measured="", rule="r", judged_on="", unit="×"
    )
    assert verdict.outcome == INCONCLUSIVE and "the fronts share no accuracy" in verdict.reason


def test_draws_where_the_fronts_part_are_kept_and_counted():
    # BiT's cheapest cell sits just below ViT's best: some draws share no accuracy.
    families, samples = two_families(2.0, slow_acc=np.array([0.595, 0.70, 0.75, 0.80]))
    samples = {k: v + np.random.default_rng(3).normal(0, 0.01, 3) for k, v in samples.items()}
    c = pareto.front_ratio(samples, families, "BiT", "ViT")
    assert 0 < c.n_undefined < c.draws.size and c.n_undefined == int(np.isnan(c.draws).sum())
    assert f"{c.n_undefined} undefined (counted against both bounds)" in c.text(scale=1, unit="log2 ×")


def test_cells_at_equal_compute_count_as_their_best():
    families = {"A": {"a1": 1.0, "a2": 1.0, "a3": 10.0}, "B": {"b1": 2.0, "b2": 20.0}}
    samples = seeds({"a1": 0.2, "a2": 0.3, "a3": 0.5, "b1": 0.3, "b2": 0.5})
    # A's front: (1, 0.3), (10, 0.5); B's: (2, 0.3), (20, 0.5): B needs twice the compute throughout
    assert pareto.front_ratio(samples, families, "B", "A").estimate == pytest.approx(1.0)


def test_missing_cells_and_bad_compute_are_refused():
    families, samples = two_families(2.0)
    with pytest.raises(ValueError, match="cells without samples: ViT 0"):
        pareto.front_ratio({k: v for k, v in samples.items() if k != "ViT 0"}, families, "BiT", "ViT")
    with pytest.raises(ValueError, match="compute must be finite"):
        pareto.front_ratio(samples, {**families, "ViT": {**families["ViT"], "ViT 0": 0.0}}, "BiT", "ViT")


# --- front_gap ------------------------------------------------------------------------------------


def hybrid_and_vit(gaps=(0.04, 0.03, 0.02, 0.0), vit_compute=COMPUTE, hybrid_acc=None):
    families = {
        "hybrid": {f"hybrid {i}": COMPUTE[i] for i in range(4)},
        "ViT": {f"ViT {i}": vit_compute[i] for i in range(4)},
    }
    hybrid_acc = ACC + np.array(gaps) if hybrid_acc is None else hybrid_acc
    return families, seeds(
        {**{f"hybrid {i}": hybrid_acc[i] for i in range(4)}, **{f"ViT {i}": ACC[i] for i in range(4)}}
    )


def test_the_gap_at_the_smallest_and_largest_common_compute_and_its_change():
    families, samples = hybrid_and_vit()
    got = {
        at: pareto.front_gap(samples, families, "hybrid", "ViT", at)
        for at in ("smallest", "largest", "change")
    }
    assert got["smallest"].estimate == pytest.approx(0.04) and got["largest"].estimate == pytest.approx(0.0)
    assert got["change"].estimate == pytest.approx(0.04)
    assert got["smallest"].name == "hybrid − ViT front accuracy at the smallest common compute"


def test_the_common_budgets_are_fixed_by_the_design_and_the_front_is_interpolated_to_them():
    # ViT spans 2-128, hybrid 1-64: the common range is 2-64. At 2 the hybrid is halfway (in log compute)
    # between its cells at 1 and 4; at 64 the ViT is halfway between 32 and 128.
    families, samples = hybrid_and_vit(gaps=(0, 0, 0, 0), vit_compute=2 * COMPUTE)
    smallest = pareto.front_gap(samples, families, "hybrid", "ViT", "smallest").estimate
    largest = pareto.front_gap(samples, families, "hybrid", "ViT", "largest").estimate
    assert smallest == pytest.approx(0.35 - 0.30) and largest == pytest.approx(0.60 - 0.55)


def test_past_its_last_front_point_a_front_stays_flat_up_to_its_dearest_cell():
    # The hybrid's dearest cell (0.45) is dominated: at the largest common budget the hybrid reaches
    # its best, 0.52 (its third cell), not an extrapolation and not the dominated cell's 0.45.
    families, samples = hybrid_and_vit(hybrid_acc=np.array([0.34, 0.43, 0.52, 0.45]))
    assert pareto.front_gap(samples, families, "hybrid", "ViT", "largest").estimate == pytest.approx(
        0.52 - 0.60
    )


def test_families_whose_compute_ranges_do_not_overlap_are_undefined():
    families, samples = hybrid_and_vit(vit_compute=100 * COMPUTE)
    c = pareto.front_gap(samples, families, "hybrid", "ViT", "smallest")
    assert not c.defined and c.why_undefined == "the compute ranges of hybrid and ViT do not overlap"


# --- coverage on constructed fronts with a known truth --------------------------------------------
#
# Three families of 4 cells at compute 1, 4, 16, 64 (BiT at twice that): BiT reaches ViT's accuracies
# with twice the compute (true log2 ratio 1); the hybrid is ViT + 4, 3, 2, 0 pts (true gap 4 pts at
# the smallest common compute, 0 at the largest, change 4). "clean": ViT at 30, 40, 50, 60%; "near-tie":
# 30, 40, 41, 55% (the hybrid's 2nd and 3rd cells tie), so front membership flips from draw to draw.
# Seed noise 2 pts ("equal"), or 1, 4, 2, 2.8 pts across each family's cells ("unequal"); 3 seeds.
# 2,000 simulated studies, 1,000 draws each; one-sided coverage of the truth (what judge uses,
# nominally 95% each) and the mean 90% width, for the new model and the old t(n - 1) per cell.

STUDIES, DRAWS = 2000, 1000
DESIGNS = {"clean": np.array([0.30, 0.40, 0.50, 0.60]), "near-tie": np.array([0.30, 0.40, 0.41, 0.55])}
HYBRID_GAPS = np.array([0.04, 0.03, 0.02, 0.0])
NOISE = {"equal": np.full(4, 0.02), "unequal": 0.02 * np.array([0.5, 2.0, 1.0, 1.4])}


def constructed(design: str):
    vit = DESIGNS[design]
    families = {"ViT": {f"ViT {i}": COMPUTE[i] for i in range(4)}, "BiT": {f"BiT {i}": 2 * COMPUTE[i] for i in range(4)},
                "hybrid": {f"hybrid {i}": COMPUTE[i] for i in range(4)}}  # fmt: skip
    truth = {**{f"ViT {i}": vit[i] for i in range(4)}, **{f"BiT {i}": vit[i] for i in range(4)},
             **{f"hybrid {i}": vit[i] + HYBRID_GAPS[i] for i in range(4)}}  # fmt: skip
    return families, truth


def simulate(statistic, cells: list[str], truth: dict, sd: np.ndarray, seed: int, old: bool = False):
    """One-sided bounds of STUDIES simulated studies, through the bootstrap's vectorised core
    (tests/test_stats.py pins it to bootstrap_cells). Returns (true value, lower, upper, share of
    undefined draws, old-model lower, old-model upper)."""
    rng = np.random.default_rng(seed)
    mu = np.array([truth[c] for c in cells])
    true_value = float(stats._on_cells(statistic, cells)(mu[None])[0])
    out = {k: [] for k in ("lo", "hi", "undefined", "old_lo", "old_hi")}
    for start in range(0, STUDIES, 250):
        r = min(250, STUDIES - start)
        values = mu[None, :, None] + sd[None, :, None] * rng.standard_normal((r, len(cells), 3))
        z, u = stats._noise(rng, DRAWS, len(cells), (r,))
        _, draws, _ = stats._bootstrap_rows(values, statistic, cells, z, u)
        lo, hi = stats._draw_bounds(draws, ALPHA)
        out["lo"].append(lo), out["hi"].append(hi), out["undefined"].append(np.isnan(draws).mean(-1))
        if old:  # the replaced model: each cell's mean + se · t(n - 1), fed to the same statistic
            means, se = values.mean(-1), values.std(-1, ddof=1) / math.sqrt(3)
            old_draws = stats._on_cells(statistic, cells)(
                means[:, None] + se[:, None] * rng.standard_t(2, z.shape)
            )
            old_lo, old_hi = stats._draw_bounds(old_draws, ALPHA)
            out["old_lo"].append(old_lo), out["old_hi"].append(old_hi)
    return true_value, {k: np.concatenate(v) if v else None for k, v in out.items()}


SETTINGS = {  # statistic, design, noise
    "ratio, clean, equal noise": ("ratio", "clean", "equal"),
    "ratio, near-tie, unequal noise": ("ratio", "near-tie", "unequal"),
    "gap at the smallest, unequal noise": ("smallest", "clean", "unequal"),
    "gap at the largest, near-tie, unequal noise": ("largest", "near-tie", "unequal"),
    "gap change, near-tie, unequal noise": ("change", "near-tie", "unequal"),
}


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_front_statistics_cover_the_truth_at_the_nominal_rate(setting):
    kind, design, noise = SETTINGS[setting]
    families, truth = constructed(design)
    if kind == "ratio":
        statistic, names = pareto._ratio_statistic(families, "BiT", "ViT"), ("BiT", "ViT")
    else:
        statistic, names = pareto._gap_statistic(families, "hybrid", "ViT", kind), ("hybrid", "ViT")
    cells = [c for f in names for c in families[f]]
    true_value, r = simulate(
        statistic, cells, truth, np.tile(NOISE[noise], 2), seed=list(SETTINGS).index(setting), old=True
    )
    lower, upper = np.mean(r["lo"] <= true_value), np.mean(r["hi"] >= true_value)
    width = np.mean(r["hi"] - r["lo"])
    old_lower, old_upper = np.mean(r["old_lo"] <= true_value), np.mean(r["old_hi"] >= true_value)
    old_width = np.mean(r["old_hi"] - r["old_lo"])
    scale, unit = (1, "log2 ×") if kind == "ratio" else (100, "pts")
    print(f"COVERAGE {setting} (truth {true_value * scale:+.2f} {unit}): new lower {lower:.3f}, upper {upper:.3f}, "
          f"90% width {width * scale:.2f} {unit}; old t(n-1) lower {old_lower:.3f}, upper {old_upper:.3f}, width "
          f"{old_width * scale:.2f} {unit}; undefined draws {np.mean(r['undefined']):.2%} "
          f"({STUDIES} studies x {DRAWS} draws)")  # fmt: skip
    assert lower >= 0.935 and upper >= 0.935  # nominal 0.95; binomial sd ~0.005
    assert width < 0.9 * old_width  # as honest, and narrower than the replaced model
