"""The saturating power-law fit and its crossover, on synthetic families whose curves are known."""

import numpy as np
import pandas as pd

from benchmark import scaling


def _runs(params, xs, seeds=3, sd=0.004, seed=0) -> pd.DataFrame:
    """Runs of one family: each x trained with `seeds` seeds, error = the true curve + noise."""
    rng = np.random.default_rng(seed)
    x = np.repeat(np.asarray(xs, float), seeds)
    return pd.DataFrame(
        {"compute": x, "error": scaling.curve(x / xs[0], *params) + rng.normal(0, sd, len(x))}
    )


XS = np.logspace(12, 15, 6)  # six compute points over three decades, as FLOPs
# "ViT": worse at small compute, a steeper fall; "BiT": ahead at first, flattening onto a higher floor.
VIT, BIT = (0.8, 0.35, 0.05, 0.0), (0.45, 0.25, 0.15, 0.0)


def _true_crossing() -> float:
    grid = np.logspace(12, 18, 200_000)
    gap = scaling.curve(grid / XS[0], *VIT) - scaling.curve(grid / XS[0], *BIT)
    return float(grid[np.flatnonzero(gap <= 0)[0]])


def test_a_known_crossover_is_recovered_within_its_interval():
    vit = scaling.fit(_runs(VIT, XS, seed=1), "ViT", "compute", draws=200)
    bit = scaling.fit(_runs(BIT, XS, seed=2), "BiT", "compute", draws=200)
    assert vit.identifiable and bit.identifiable
    found = scaling.crossover(vit, bit, ceiling=1e18)
    truth = _true_crossing()
    assert found.outcome == "predicted", found.text
    low, high = found.interval
    assert low <= truth <= high, (truth, found)
    assert abs(np.log10(found.estimate / truth)) < 0.5
    # The exponent's interval holds the true one.
    lo_b, hi_b = vit.interval("b")
    assert lo_b <= VIT[1] <= hi_b


def test_the_family_already_ahead_never_crosses():
    vit = scaling.fit(_runs(VIT, XS, seed=1), "ViT", "compute", draws=100)
    bit = scaling.fit(_runs(BIT, XS, seed=2), "BiT", "compute", draws=100)
    # BiT "overtaking" ViT: BiT is ahead at the smallest compute and ViT passes it, so BiT never
    # goes from behind to ahead.
    found = scaling.crossover(bit, vit, ceiling=1e18)
    assert found.outcome in ("no crossover predicted", "ahead throughout"), found.text
    assert np.isnan(found.estimate)


def test_too_few_points_is_not_identifiable():
    few = scaling.fit(_runs(VIT, XS[:3]), "ViT", "compute")
    assert not few.identifiable and "3 distinct compute values" in few.why and "need 4" in few.why
    other = scaling.fit(_runs(BIT, XS), "BiT", "compute", draws=20)
    found = scaling.crossover(few, other, ceiling=1e18)
    assert found.outcome == "not identifiable" and "3 distinct" in found.text
    assert "not identifiable" in few.describe()


def test_curves_closer_than_their_noise_are_not_identifiable():
    """Two nearly equal curves, measured with a spread larger than their difference: the draws cannot
    agree on a crossing."""
    near = (0.78, 0.34, 0.06, 0.0)
    vit = scaling.fit(_runs(VIT, XS, seed=3, sd=0.02), "ViT", "compute", draws=100)
    bit = scaling.fit(_runs(near, XS, seed=4, sd=0.02), "BiT", "compute", draws=100)
    found = scaling.crossover(vit, bit, ceiling=1e21)
    assert found.outcome == "not identifiable", found.text
    assert "of draws" in found.text


def test_fits_are_deterministic():
    runs = _runs(VIT, XS)
    a, b = scaling.fit(runs, "ViT", "compute", draws=50), scaling.fit(runs, "ViT", "compute", draws=50)
    assert a.params == b.params and np.array_equal(a.draws, b.draws)
