"""How well a run fits its pre-training data, and whether training it longer would still change that.

A comparison of two architectures at a training budget measures the architectures only when each
model has finished learning what that budget lets it learn; otherwise it measures the budget (issue
19: a ViT still rising at 25% upstream top-1 against a ResNet plateaued at 90%). Every run records
its upstream train and test top-1 at each evaluation (`benchmark.evals.upstream`); this module reads
those curves, as stored, and states one rule for "plateaued". Pure pandas: reports and studies call
it on stored results, never on a model.

The rule: a run's curve has **plateaued** when neither its train nor its test top-1 rose, over the
last quarter of training, by PLATEAU_FRACTION or more of what the model has learned: its final train
top-1 above chance (1 / classes). "The last quarter" runs from the last evaluation at or before three
quarters of the final step (earlier when there is none at exactly 3/4: a longer window, a stricter
rule) to the final evaluation. A curve needs MIN_POINTS evaluations, one of them within the first
three quarters, or it is reported as "no curve", never as passing; a model whose final train top-1
is not above chance is "not learning", never plateaued.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from benchmark.metrics import UPSTREAM_TOP1, UPSTREAM_TRAIN_TOP1

PLATEAU_FRACTION = 0.1
"""Why 0.1: on a saturating curve, top-1(t) = a - (a - chance) exp(-t / tau), a last quarter that
gains less than 10% of the gain so far means training lasted more than about 2 tau, and at most
about 15% of that gain is left to win by training on at the same pace (a gain of 5% would ask for 3
tau: 4x the budget of a curve that just passes 0.1 at 0.75 of it, beyond a laptop preset). It is
also well above the noise of one evaluation for a model that learned something: 10% of a 20-point
gain is 2 points, against a standard error of about 1 point on the 2,000-image test splits. A
schedule that decays the learning rate flattens its last quarter by itself, so with linear decay the
rule is lenient rather than strict; a failing curve is under-trained whatever the schedule."""

MIN_POINTS = 3
"""Evaluations a curve needs before the rule can judge it (a slope and a point before the last quarter)."""

Status = Literal["plateaued", "still rising", "not learning", "no curve"]


@dataclass(frozen=True)
class Fit:
    """One run's upstream fit: the final train and test top-1 (fractions), what each gained over
    the last quarter of training (fractions: 0.041 is 4.1 points), and the rule's outcome."""

    status: Status
    points: int
    train_top1: float
    test_top1: float
    train_gain: float
    test_gain: float
    chance: float
    reason: str = ""  # why there is no curve to judge

    @property
    def plateaued(self) -> bool:
        return self.status == "plateaued"

    def describe(self) -> str:
        """One line for a report cell, e.g. "train 83.2% (+3.0 pts in the last quarter), test 80.3%
        (+4.1): still rising"."""
        if self.status == "no curve":
            return f"no curve: {self.reason}"
        return (
            f"train {self.train_top1:.1%} ({self.train_gain * 100:+.1f} pts in the last quarter), "
            f"test {self.test_top1:.1%} ({self.test_gain * 100:+.1f}): {self.status}"
        )


def fit_of(
    steps: Sequence[float], train_top1: Sequence[float], test_top1: Sequence[float], num_classes: int
) -> Fit:
    """The fit of one run from its evaluations (steps in any order; points missing either top-1,
    NaN, are left out), judged by the module's rule with chance = 1 / num_classes."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    chance = 1.0 / num_classes
    curve = pd.DataFrame({"step": steps, "train": train_top1, "test": test_top1}, dtype=float)
    curve = curve.dropna().sort_values("step", kind="stable")
    nothing = math.nan
    if len(curve) < MIN_POINTS:
        reason = f"{len(curve)} evaluation(s) with upstream train and test top-1; the rule needs {MIN_POINTS}"
        return Fit("no curve", len(curve), nothing, nothing, nothing, nothing, chance, reason)
    last = curve.iloc[-1]
    before = curve[curve["step"] <= 0.75 * last["step"]]
    if before.empty:
        reason = f"no evaluation within the first three quarters of the {last['step']:.0f} steps"
        return Fit("no curve", len(curve), last["train"], last["test"], nothing, nothing, chance, reason)
    start = before.iloc[-1]
    train_gain, test_gain = last["train"] - start["train"], last["test"] - start["test"]
    learned = last["train"] - chance
    if learned <= 0:
        status: Status = "not learning"
    elif max(train_gain, test_gain) < PLATEAU_FRACTION * learned:
        status = "plateaued"
    else:
        status = "still rising"
    return Fit(status, len(curve), last["train"], last["test"], train_gain, test_gain, chance)


FIT_COLUMNS = (
    "run_id", "fit", "plateaued", "upstream train top-1", "upstream test top-1", "train gain, last quarter",
    "test gain, last quarter", "curve points", "fit, in words",
)  # fmt: skip


def fit_table(results: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """One row per run of `results` (columns FIT_COLUMNS; accuracies and gains as fractions), read
    from the tables `benchmark.results.scan` builds: the evaluations in `curves` (kind "eval") and
    the number of upstream classes each run recorded in its `datasets` column."""
    rows = []
    for run in results.to_dict("records"):
        fit = _fit_of_run(run, curves)
        values = (
            run["run_id"], fit.status, fit.plateaued, fit.train_top1, fit.test_top1, fit.train_gain,
            fit.test_gain, fit.points, fit.describe(),
        )  # fmt: skip
        rows.append(dict(zip(FIT_COLUMNS, values, strict=True)))
    return pd.DataFrame(rows, columns=list(FIT_COLUMNS))


def _fit_of_run(run: dict[str, Any], curves: pd.DataFrame) -> Fit:
    datasets = run.get("datasets") if isinstance(run.get("datasets"), dict) else {}
    classes = (datasets.get(run.get("data.dataset")) or {}).get("classes")
    if not classes:
        nothing = math.nan
        reason = "the run did not record its upstream dataset's classes (a result older than the fit record)"
        return Fit("no curve", 0, nothing, nothing, nothing, nothing, nothing, reason)
    columns = ["step", UPSTREAM_TRAIN_TOP1, UPSTREAM_TOP1]
    if curves.empty or not {"run_id", "kind", *columns} <= set(curves.columns):
        points = pd.DataFrame(columns=columns)  # no run of the study logged an upstream fit
    else:
        points = curves[(curves["run_id"] == run["run_id"]) & (curves["kind"] == "eval")]
    return fit_of(
        points["step"].to_numpy(dtype=float),
        points[UPSTREAM_TRAIN_TOP1].to_numpy(dtype=float),
        points[UPSTREAM_TOP1].to_numpy(dtype=float),
        int(classes),
    )
