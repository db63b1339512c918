"""Compute-efficiency fronts: dominated points dropped, log-linear interpolation, matched compute."""

import math

import numpy as np
import pytest

from benchmark import pareto


def test_the_front_drops_every_point_a_cheaper_one_beats():
    c, a = pareto.front([1, 2, 4, 8, 3], [0.5, 0.4, 0.7, 0.6, 0.7])
    assert c.tolist() == [1, 3] and a.tolist() == [0.5, 0.7]


def test_interpolation_is_linear_in_log_compute_and_never_extrapolates():
    fr = (np.array([1.0, 100.0]), np.array([0.2, 0.6]))
    assert pareto.compute_for(fr, 0.4) == pytest.approx(10.0)
    assert pareto.accuracy_at(fr, 10.0) == pytest.approx(0.4)
    assert math.isnan(pareto.compute_for(fr, 0.7)) and math.isnan(pareto.accuracy_at(fr, 0.5))


def test_a_family_shifted_by_three_times_the_compute_needs_three_times_more():
    c, a = np.array([1.0, 4.0, 30.0]), np.array([0.3, 0.5, 0.6])
    assert pareto.compute_ratio((3 * c, a), (c, a)) == pytest.approx(3.0)
    assert pareto.compute_ratio((c, a), (3 * c, a)) == pytest.approx(1 / 3)


def test_fronts_whose_accuracies_do_not_overlap_cannot_be_matched():
    assert math.isnan(pareto.compute_ratio((np.array([1.0, 2.0]), np.array([0.1, 0.2])),
                                           (np.array([1.0, 2.0]), np.array([0.5, 0.6]))))  # fmt: skip


def test_fronts_that_do_not_overlap_bound_the_ratio_in_the_direction_they_allow():
    cheap_and_good = (np.array([1.0, 4.0]), np.array([0.5, 0.6]))
    dear_and_poor = (np.array([10.0, 40.0]), np.array([0.2, 0.3]))
    # The dear, poor family never reaches the other's worst: the other needs at most 1/40 of its compute.
    assert pareto.ratio_bound(cheap_and_good, dear_and_poor) == (pytest.approx(1 / 40), "upper")
    assert pareto.ratio_bound(dear_and_poor, cheap_and_good) == (pytest.approx(40.0), "lower")
    assert pareto.ratio_bound(cheap_and_good, cheap_and_good)[1] == ""
