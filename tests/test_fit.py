"""The upstream fit of a run and the plateau rule (benchmark.fit), on hand-made curves."""

import math

import pandas as pd
import pytest

from benchmark import fit
from benchmark.metrics import UPSTREAM_TOP1, UPSTREAM_TRAIN_TOP1

STEPS = [100, 200, 300, 400]


def test_a_rising_curve_is_still_rising_and_says_by_how_much():
    # issue 19's ViT at 400 steps: 5.8 / 13.7 / 21.2 / 25.1% test, 25.4% train, 100 classes
    got = fit.fit_of(STEPS, [0.06, 0.14, 0.215, 0.254], [0.058, 0.137, 0.212, 0.251], 100)
    assert got.status == "still rising" and not got.plateaued
    assert got.test_gain == pytest.approx(0.039) and got.train_gain == pytest.approx(0.039)
    assert got.describe() == "train 25.4% (+3.9 pts in the last quarter), test 25.1% (+3.9): still rising"


def test_a_flat_curve_has_plateaued_and_overfitting_counts_as_flat():
    flat = fit.fit_of(STEPS, [0.80, 0.88, 0.90, 0.905], [0.78, 0.85, 0.87, 0.872], 100)
    assert flat.plateaued and flat.describe().endswith(": plateaued")
    # memorised: train at 100%, test falling in the last quarter
    memorised = fit.fit_of(STEPS, [0.7, 0.99, 1.0, 1.0], [0.3, 0.35, 0.34, 0.31], 100)
    assert memorised.plateaued and memorised.test_gain == pytest.approx(-0.03)


def test_the_threshold_is_a_fraction_of_the_train_gain_above_chance():
    chance, learned = 0.1, 0.5  # 10 classes; final train top-1 0.6
    threshold = learned * fit.PLATEAU_FRACTION
    under = fit.fit_of(STEPS, [0.3, 0.5, 0.6 - threshold + 1e-6, 0.6], [0.3, 0.5, 0.55, 0.55], 10)
    assert under.plateaued and under.chance == pytest.approx(chance)
    over = fit.fit_of(STEPS, [0.3, 0.5, 0.6 - threshold - 1e-6, 0.6], [0.3, 0.5, 0.55, 0.55], 10)
    assert over.status == "still rising"
    # the same gain passes when the model learned more: the threshold scales with the final train top-1
    assert fit.fit_of(STEPS, [0.3, 0.5, 0.85 - threshold - 1e-6, 0.85], [0.3, 0.5, 0.55, 0.55], 10).plateaued
    # the test curve alone rising decides too
    assert fit.fit_of(STEPS, [0.3, 0.5, 0.6, 0.6], [0.3, 0.4, 0.45, 0.55], 10).status == "still rising"


def test_too_few_points_is_no_curve_never_a_pass():
    for n in range(fit.MIN_POINTS):
        got = fit.fit_of(STEPS[:n], [0.9] * n, [0.9] * n, 10)
        assert got.status == "no curve" and not got.plateaued
        assert got.describe().startswith(f"no curve: {n} evaluation(s)")
    # points missing one of the two top-1s do not count
    assert fit.fit_of(STEPS, [0.9, math.nan, math.nan, 0.9], [0.9] * 4, 10).status == "no curve"
    assert fit.fit_of(STEPS[1:], [0.5, 0.6, 0.6], [0.5, 0.6, 0.6], 10).status == "plateaued"


def test_the_last_quarter_starts_at_the_last_evaluation_within_three_quarters():
    # evaluations at 250, 500, 700, 1000: the window starts at 700 (< 750), not at the 1000 point's 3/4
    got = fit.fit_of([1000, 250, 700, 500], [0.9, 0.2, 0.85, 0.6], [0.8, 0.2, 0.75, 0.5], 10)
    assert got.train_gain == pytest.approx(0.05) and got.test_gain == pytest.approx(0.05)
    late = fit.fit_of([800, 900, 1000], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], 10)
    assert late.status == "no curve" and "first three quarters" in late.reason


def test_a_model_at_chance_is_not_learning():
    got = fit.fit_of(STEPS, [0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1], 10)
    assert got.status == "not learning" and not got.plateaued
    with pytest.raises(ValueError, match="num_classes"):
        fit.fit_of(STEPS, [0.1] * 4, [0.1] * 4, 0)


def test_one_fit_row_per_run_from_the_tables_scan_builds():
    results = pd.DataFrame({
        "run_id": ["rising", "flat", "old", "short"],
        "data.dataset": ["up"] * 4,
        "datasets": [{"up": {"classes": 100}}] * 2 + [{"up": {"role": "upstream"}}, {"up": {"classes": 100}}],
    })  # fmt: skip
    curves = pd.DataFrame([
        *({"run_id": "rising", "kind": "eval", "step": s, UPSTREAM_TRAIN_TOP1: a, UPSTREAM_TOP1: a}
          for s, a in zip(STEPS, [0.1, 0.2, 0.3, 0.4], strict=True)),
        *({"run_id": "flat", "kind": "eval", "step": s, UPSTREAM_TRAIN_TOP1: a, UPSTREAM_TOP1: a - 0.02}
          for s, a in zip(STEPS, [0.8, 0.9, 0.9, 0.9], strict=True)),
        {"run_id": "short", "kind": "eval", "step": 400, UPSTREAM_TRAIN_TOP1: 0.9, UPSTREAM_TOP1: 0.9},
    ])  # fmt: skip
    table = fit.fit_table(results, curves).set_index("run_id")
    assert list(table.columns) == list(fit.FIT_COLUMNS[1:])
    assert table["fit"].to_dict() == {
        "rising": "still rising", "flat": "plateaued", "old": "no curve", "short": "no curve"
    }  # fmt: skip
    assert table.loc["flat", "upstream test top-1"] == pytest.approx(0.88)
    assert "did not record its upstream" in table.loc["old", "fit, in words"]
    # a study whose runs logged no upstream fit at all (results older than it): no curve, no error
    old_curves = curves.drop(columns=[UPSTREAM_TRAIN_TOP1])
    assert set(fit.fit_table(results, old_curves)["fit"]) == {"no curve"}
    assert set(fit.fit_table(results, pd.DataFrame())["fit"]) == {"no curve"}
