"""From measured effects to one of three outcomes, by a rule fixed before the data.

A claim predicts an effect (`Prediction`): its direction and size in the judged metric, derived
from the paper's own numbers and scaled to our range, or, for "differ little", an equivalence
margin fixed the same way. Each comparison behind the claim is an estimate with its sampling
distribution (benchmark.stats.Comparison). The outcome, at α = 5%:

- **reproduced**: every comparison's one-sided (1 − α) bound clears the null in the predicted
  direction; for a parity claim, every 1 − 2α interval lies inside ±margin (TOST). A claim that
  holds only when every comparison holds is an intersection–union test: each comparison at α, no
  multiplicity correction (Berger 1982); Holm would only cost power.
- **contradicted**: the data exclude the predicted effect: some comparison lies significantly below
  it (smaller than predicted, or of the opposite sign), or, for a parity claim, some difference
  exceeds the margin significantly. "Some comparison" is a union of tests, so these p-values are
  Holm-adjusted across the claim's comparisons.
- **inconclusive**: neither. The verdict says why in words: an interval that holds both no effect
  and the predicted one, an interval wider than the margin, too few seeds, models that did not fit.

Reproduced is checked first: a directional effect shown to exist but smaller than predicted
reproduces the claim's direction, and the verdict says "smaller than predicted".

Every verdict carries the deciding comparison's estimate and interval, the predicted effect, the
minimum detectable effect at the seeds it had (80% power at α) and the power at the predicted
effect. The error rates of these rules are measured in tests/test_judge.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sp

from benchmark.stats import ALPHA, Comparison, holm
from benchmark.study import CONTRADICTED, INCONCLUSIVE, REPRODUCED, Verdict, format_value

POWER = 0.8  # the power the minimum detectable effect is stated at
UNDECIDABLE_POWER = 0.5  # below this at the predicted effect, a preset "cannot decide" the claim


@dataclass(frozen=True)
class Prediction:
    """The effect a claim predicts, in the statistic's units, declared before the data.

    Directional (`parity` False): the effect is above `null` (0: no effect; a threshold such as
    τ = 0.5 for a rank agreement) and its predicted size is `effect` (> null). Parity: the
    difference lies within ±`effect`, the equivalence margin.
    """

    effect: float
    derivation: str  # from which of the paper's numbers, and how scaled to ours, in words
    parity: bool = False
    null: float = 0.0
    # Where a threshold claim's predicted effect is its threshold (effect == null: contradicted when
    # significantly below it), the true value its power is stated at; default: the effect.
    power_at: float | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.effect) or (self.parity and self.effect <= 0):
            raise ValueError(f"a prediction needs a finite effect (> 0 for a margin), got {self.effect!r}")


def above_chance(
    paper_gap: float, paper_level: float, paper_chance: float, level: float, chance: float
) -> tuple[float, str]:
    """The paper's gap as a fraction of its accuracy above chance, applied to ours: our predicted
    gap, and the arithmetic in words. Accuracies are fractions."""
    fraction = paper_gap / (paper_level - paper_chance)
    ours = fraction * (level - chance)
    return ours, (
        f"the paper's {paper_gap * 100:+.2f} pts at {paper_level:.1%} (chance {paper_chance:.1%}) is "
        f"{fraction:.1%} of its accuracy above chance; × our {(level - chance) * 100:.1f} pts above chance "
        f"(chance {chance:.1%}) = {ours * 100:+.2f} pts"
    )


def _t(q: float, df: float) -> float:
    return float(sp.norm.ppf(q) if not math.isfinite(df) else sp.t.ppf(q, df))


def _cdf(x: float, df: float) -> float:
    return float(sp.norm.cdf(x) if not math.isfinite(df) else sp.t.cdf(x, df))


def mde(c: Comparison, parity: bool, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true effect (beyond the null) this comparison detects with `power`; for a
    parity claim, the smallest margin it shows with `power` when the true difference is 0."""
    df = c.df if c.draws is None else math.inf
    tail = (1 + power) / 2 if parity else power  # parity: both one-sided tests must pass
    return (_t(1 - alpha, df) + _t(tail, df)) * c.spread


def power_at(c: Comparison, prediction: Prediction, alpha: float = ALPHA) -> float:
    """The chance this comparison comes out reproduced if the predicted effect is true (a normal or
    t approximation with the comparison's own standard error)."""
    df, spread = (c.df if c.draws is None else math.inf), c.spread
    true = prediction.effect if prediction.power_at is None else prediction.power_at
    if spread == 0:  # resampling never moved the statistic (e.g. τ = 1 in every draw): no noise to beat
        return 1.0 if prediction.parity or true > prediction.null else 0.0
    if not (spread > 0 and math.isfinite(spread)):
        return math.nan
    if prediction.parity:  # true difference 0: both bounds must stay inside ±margin
        return max(0.0, 2 * _cdf(prediction.effect / spread - _t(1 - alpha, df), df) - 1)
    return 1 - _cdf(_t(1 - alpha, df) - (true - prediction.null) / spread, df)


def seeds_for(
    c: Comparison, prediction: Prediction, alpha: float = ALPHA, power: float = POWER, k: int = 1
) -> int:
    """About how many seeds per cell would give `power` at the predicted effect to a claim of `k`
    such comparisons that must all come out, with the standard error shrinking as 1/√n from what
    this comparison measured (normal approximation)."""
    true = prediction.effect if prediction.power_at is None else prediction.power_at
    need = prediction.effect if prediction.parity else true - prediction.null
    each = power ** (1 / k)  # every comparison must come out
    tail = (1 + each) / 2 if prediction.parity else each
    if need <= 0:
        return 0
    target = need / (sp.norm.ppf(1 - alpha) + sp.norm.ppf(tail))
    return math.ceil(min(c.n_a, c.n_b) * (c.spread / target) ** 2)


def judge(
    comparisons: Sequence[Comparison],
    prediction: Prediction,
    *,
    claim: str,
    paper: str,
    measured: str,
    rule: str,
    judged_on: str,
    note: str = "",
    unit: str = "pts",
    control: bool = False,
    alpha: float = ALPHA,
) -> Verdict:
    """The outcome of a claim that holds when every comparison shows the predicted effect."""
    if not comparisons:
        raise ValueError("a claim needs at least one comparison")
    fmt = _formatter(unit)
    words = {"claim": claim, "paper": paper, "judged_on": judged_on, "unit": unit, "control": control}
    predicted = _predicted_text(prediction, fmt)
    evidence = "; ".join(f"{c.name}: {_evidence(c, unit, alpha)}" for c in comparisons)
    undefined = [c for c in comparisons if not c.defined]
    if undefined:
        # No estimate with an interval: data without spread, or a statistic these data leave
        # undefined (fronts sharing no accuracy); the comparison says which.
        why = ", ".join(
            f"{c.name}: {c.why_undefined}" if len(comparisons) > 1 else c.why_undefined for c in undefined
        )
        return Verdict(**words, measured=measured, outcome=INCONCLUSIVE, reason=f"no estimate: {why}",
                       rule=rule, predicted=predicted, evidence=evidence, note=note)  # fmt: skip

    if prediction.parity:
        m = prediction.effect
        shown = [-m < c.lower(alpha) and c.upper(alpha) < m for c in comparisons]
        p_against = [min(c.p_above(m), c.p_below(-m)) for c in comparisons]
        # The deciding comparison: the one whose interval reaches farthest from 0.
        decider = max(comparisons, key=lambda c: max(abs(c.lower(alpha)), abs(c.upper(alpha))))
    else:
        shown = [c.lower(alpha) > prediction.null for c in comparisons]
        p_against = [c.p_below(prediction.effect) for c in comparisons]
        decider = min(comparisons, key=lambda c: c.lower(alpha) - prediction.null)
    against = holm(p_against) <= alpha
    powers = [power_at(c, prediction, alpha) for c in comparisons]
    power = float(np.prod(powers))  # every comparison must come out (treated as independent)
    weakest = comparisons[int(np.argmin(powers))]

    low, high = decider.interval(alpha)
    interval = f"[{fmt(low)}, {fmt(high)}]"
    name = f"{decider.name}: " if len(comparisons) > 1 else ""
    if all(shown):
        outcome = REPRODUCED
        if prediction.parity:
            reason = f"every {1 - 2 * alpha:.0%} interval lies inside ±{fmt(m, sign=False)} (widest: {name}{interval})"
        else:
            reason = f"every {1 - 2 * alpha:.0%} interval clears {fmt(prediction.null, sign=False)} (weakest: {name}{interval})"
            smaller = [c.name for c in comparisons if c.upper(alpha) < prediction.effect]
            if smaller:
                reason += f"; smaller than predicted ({fmt(prediction.effect)}) for {', '.join(smaller)}"
    elif against.any():
        outcome = CONTRADICTED
        hit = [c for c, a in zip(comparisons, against, strict=True) if a]
        listed = "; ".join(f"{c.name} {_interval(c, fmt, alpha)}" for c in hit)
        if prediction.parity:
            reason = f"a difference beyond the ±{fmt(m, sign=False)} margin is significant: {listed}"
        else:
            reason = f"significantly below the predicted {fmt(prediction.effect)}: {listed}"
    else:
        outcome = INCONCLUSIVE
        if prediction.parity and high - low >= 2 * m:
            reason = (f"{name}interval {interval} is wider than the whole ±{fmt(m, sign=False)} margin: "
                      "no data of this size could show parity")  # fmt: skip
        elif prediction.parity:
            reason = f"{name}interval {interval} is not inside ±{fmt(m, sign=False)}, and no larger difference is shown"
        elif prediction.power_at is not None:  # a threshold claim: the threshold is its prediction
            reason = f"{name}interval {interval} holds the threshold {fmt(prediction.null, sign=False)}"
        else:
            reason = (f"{name}interval {interval} holds both {fmt(prediction.null, sign=False)} and the "
                      f"predicted {fmt(prediction.effect)}")  # fmt: skip
    if power < UNDECIDABLE_POWER and outcome == INCONCLUSIVE:
        at = "the predicted effect" if prediction.power_at is None else fmt(prediction.power_at)
        reason += (f". At this size the claim cannot be decided: power {power:.0%} at {at}; about "
                   f"{seeds_for(weakest, prediction, alpha, k=len(comparisons))} {weakest.per} would give {POWER:.0%}")  # fmt: skip
    return Verdict(
        **words,
        measured=measured,
        outcome=outcome,
        reason=reason,
        rule=f"{rule}; {_decision(prediction, alpha, len(comparisons))}",
        predicted=predicted,
        observed=decider.estimate,
        interval=(low, high),
        expected=prediction.effect,
        power_at=math.nan if prediction.power_at is None else prediction.power_at,
        parity=prediction.parity,
        mde=max(mde(c, prediction.parity, alpha) for c in comparisons),
        power=power,
        evidence=evidence,
        note=note,
    )


def _decision(prediction: Prediction, alpha: float, k: int) -> str:
    each = "each comparison" if k > 1 else "the comparison"
    level = f"{1 - 2 * alpha:.0%}"
    if prediction.parity:
        return (f"reproduced when {each}'s {level} interval lies inside ±margin (TOST at α = {alpha:g}); "
                f"contradicted when a difference beyond the margin is significant"
                + (" (Holm across the comparisons)" if k > 1 else ""))  # fmt: skip
    return (f"reproduced when {each}'s one-sided {1 - alpha:.0%} bound clears {prediction.null:g}; contradicted "
            "when an effect lies significantly below the predicted one" + (" (Holm across the comparisons)" if k > 1 else ""))  # fmt: skip


def _interval(c: Comparison, fmt, alpha: float) -> str:
    low, high = c.interval(alpha)
    return f"[{fmt(low)}, {fmt(high)}]"


def _evidence(c: Comparison, unit: str, alpha: float) -> str:
    if unit == "pts":
        return c.text(alpha=alpha)
    if unit == "×":
        return c.text(scale=1, unit="log2 ×", digits=2, alpha=alpha)
    return c.text(scale=1, unit=unit, digits=3, alpha=alpha)


def _formatter(unit: str):
    """How a value of the statistic reads in a verdict's reason (benchmark.study.format_value)."""
    return lambda value, sign=True: format_value(value, unit, sign, missing="n/a")


def _predicted_text(prediction: Prediction, fmt) -> str:
    size = f"within ±{fmt(prediction.effect, sign=False)}" if prediction.parity else fmt(prediction.effect)
    return f"{size} ({prediction.derivation})"


def inconclusive(
    claim: str, reason: str, paper: str = "", judged_on: str = "", predicted: str = "", control: bool = False
) -> Verdict:
    """A claim these results cannot decide at all (too few seeds, a missing cell, under-trained
    models), with the reason in words."""
    return Verdict(claim=claim, paper=paper, measured="–", outcome=INCONCLUSIVE, reason=reason, rule="–",
                   predicted=predicted, judged_on=judged_on, control=control)  # fmt: skip


def under_trained(df: pd.DataFrame, cells: Mapping[str, pd.Series]) -> str:
    """The reason a comparison between these cells cannot be judged, or "" when every run in them
    passed the fit gate (benchmark.fit: its upstream curve has plateaued). `cells` maps a cell's
    name to a boolean mask of its runs in `df`, whose `fit_ok` and `fit_text` columns the report
    adds from the runs' stored curves."""
    failing = []
    for name, mask in cells.items():
        runs = df[mask]
        bad = runs[~runs["fit_ok"].astype(bool)]
        if len(bad):
            failing.append(f"{name} ({len(bad)} of {len(runs)} runs; e.g. {bad['fit_text'].iloc[0]})")
    return f"under-trained: {'; '.join(failing)}" if failing else ""
