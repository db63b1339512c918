"""From comparisons to a verdict: the margin never disagrees with the decision."""

import math

import numpy as np
import pytest

from benchmark.judge import failing, holm_margin, judged
from benchmark.stats import equivalent, greater, holm


def family(rng: np.random.Generator, gaps: list[float], kind: str) -> list:
    out = []
    for i, gap in enumerate(gaps):
        a, b = gap + rng.standard_normal(5), rng.standard_normal(5)
        out.append(greater(a, b, f"c{i}") if kind == "greater" else equivalent(a, b, 1.5, f"c{i}"))
    return out


@pytest.mark.parametrize("kind", ["greater", "equivalent"])
def test_the_margin_is_positive_exactly_when_the_claim_holds(kind):
    """Over many random families of 1–7 comparisons, some holding and some not, the sign of the
    Holm-level margin and the Holm decision agree every time."""
    rng = np.random.default_rng(0)
    outcomes = set()
    for _ in range(400):
        k = int(rng.integers(1, 8))
        gaps = list(rng.uniform(0, 4, k)) if kind == "greater" else list(rng.uniform(-1.5, 1.5, k))
        verdict = judged(family(rng, gaps, kind), claim="c", paper="", measured="", rule="", judged_on="")
        assert (verdict.margin > 0) == verdict.holds, (gaps, verdict.margin, verdict.evidence)
        outcomes.add(verdict.holds)
    assert outcomes == {True, False}  # the simulation exercised both sides


def test_the_margin_of_one_comparison_is_its_confidence_bound():
    rng = np.random.default_rng(1)
    [c] = holm([greater(3 + rng.standard_normal(5), rng.standard_normal(5), "a > b")])
    assert holm_margin([c]) == pytest.approx(c.interval[0])  # Holm's only step is at α itself


def test_a_comparison_without_noise_leaves_the_margin_undefined_and_the_claim_unproven():
    c = greater([0.9, 0.9, 0.9], [0.8, 0.8, 0.8], "flat")
    verdict = judged([c], claim="c", paper="", measured="", rule="", judged_on="")
    assert verdict.holds is False and math.isnan(verdict.margin)
    assert "no variance" in verdict.evidence


def test_failing_lists_what_breaks_a_claim():
    rng = np.random.default_rng(2)
    strong = greater(5 + rng.standard_normal(5), rng.standard_normal(5), "strong")
    weak = greater(0.1 + rng.standard_normal(5), rng.standard_normal(5), "weak")
    assert [c.name for c in failing([strong, weak])] == ["weak"]


def test_an_equivalence_the_seeds_could_never_show_says_so():
    rng = np.random.default_rng(3)
    noisy = [equivalent(rng.standard_normal(3), rng.standard_normal(3), 0.1, "noisy")]
    verdict = judged(noisy, claim="c", paper="", measured="", rule="", judged_on="")
    assert verdict.holds is False and "lack of evidence for parity" in verdict.note
    tight = [equivalent(0.01 * rng.standard_normal(5), 0.01 * rng.standard_normal(5), 0.1, "tight")]
    assert (
        "lack of evidence" not in judged(tight, claim="c", paper="", measured="", rule="", judged_on="").note
    )
