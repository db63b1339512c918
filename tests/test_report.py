"""Report text a reader relies on."""

import pandas as pd

from benchmark.report import _unique


def test_provenance_lists_values_in_numeric_order():
    assert _unique(pd.Series([1000, 2000, 250, "all", 500, None])) == "250, 500, 1000, 2000, all"
    assert _unique(pd.Series([0.016, 0.001, 0.002, 0.001])) == "0.001, 0.002, 0.016"
    assert _unique(pd.Series(["mnist5k", "digits"])) == "digits, mnist5k"
    assert _unique(pd.Series([], dtype=object)) == "–"
