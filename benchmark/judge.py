"""From statistical comparisons to a verdict: the one place a claim's test, margin and evidence
are put into words, so every study states them alike.

A claim is a family of comparisons (benchmark.stats): it holds when every comparison rejects its
null after Holm's adjustment. Its margin is the distance to that decision, in the metric's units:
for each comparison, the confidence bound at the level Holm's step-down tested it at (α/(m − r)
for the r-th smallest p of m) — the lower bound of the difference for "greater", the room left
between the interval and ±margin for "equivalent" — and the claim's margin is the smallest. It is
positive exactly when the claim holds, so the number and the verdict never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sp

from benchmark.stats import Comparison, all_rejected, holm
from benchmark.study import Verdict


def _bound(c: Comparison, level: float) -> float:
    """The comparison's distance to rejection at `level`, from the interval it was reported with."""
    if math.isnan(c.p):
        return math.nan
    t_alpha = sp.t.ppf(1 - c.alpha, c.df)
    t_level = sp.t.ppf(1 - level, c.df)
    if c.margin is None:  # one-sided: lower bound of mean(a) - mean(b)
        se = (c.estimate - c.interval[0]) / t_alpha
        return c.estimate - t_level * se
    low, high = c.interval  # the 1 - 2α interval: its half-width is t_alpha · se
    se = (high - low) / (2 * t_alpha)
    return c.margin - (abs(c.estimate) + t_level * se)


def holm_margin(comparisons: Sequence[Comparison]) -> float:
    """The smallest distance to rejection over the family, each at its Holm step level."""
    p = np.array([c.p for c in comparisons], dtype=float)
    order = np.argsort(p)  # NaN last
    m = len(comparisons)
    bounds = [_bound(comparisons[i], comparisons[i].alpha / (m - rank)) for rank, i in enumerate(order)]
    return float(min(bounds)) if not any(math.isnan(b) for b in bounds) else math.nan


def judged(
    comparisons: Sequence[Comparison],
    *,
    claim: str,
    paper: str,
    measured: str,
    rule: str,
    judged_on: str,
    note: str = "",
) -> Verdict:
    """The verdict of a claim that holds when every comparison in the family is significant."""
    family = holm(comparisons)
    holds = all_rejected(family)
    if not holds and (short := underpowered(family)):
        note = f"{note} {short}".strip()
    return Verdict(
        claim=claim,
        paper=paper,
        measured=measured,
        holds=holds,
        margin=holm_margin(family),
        rule=rule,
        evidence="; ".join(f"{c.name}: {c.text()}" for c in family),
        judged_on=judged_on,
        note=note,
    )


def failing(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """The comparisons of a family that are not significant after Holm (what breaks a claim)."""
    return [c for c in holm(comparisons) if not c.rejected]


def underpowered(comparisons: Sequence[Comparison]) -> str:
    """Say so when an equivalence could not have been shown by these seeds whatever the means: an
    interval wider than the whole ±margin band. Computed, so a reader knows "does not hold" means
    "not shown", not "shown different"."""
    wide = [c for c in comparisons if c.margin is not None and c.interval[1] - c.interval[0] >= 2 * c.margin]
    if not wide:
        return ""
    widest = max(c.interval[1] - c.interval[0] for c in wide)
    return (
        f"For {len(wide)} of {len(comparisons)} comparisons the {1 - 2 * wide[0].alpha:.0%} interval (up to "
        f"{widest * 100:.1f} pts wide) is wider than the whole ±{wide[0].margin * 100:.2f}-pt band: with these seeds no "
        "means could have shown equivalence, so this is a lack of evidence for parity, not evidence of a difference."
    )
