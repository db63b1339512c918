"""The stored Table 6 accounting (what the compute report reads) is what the FLOP counter counts
today: a torch or timm upgrade that changes a count fails here, not silently in a report."""

import pandas as pd
import pytest

from benchmark import flops
from benchmark.paper import table6_accounting


@pytest.mark.slow
def test_the_stored_table6_accounting_is_the_counters():
    pd.testing.assert_frame_equal(flops.count_table6(), table6_accounting(), check_exact=True)  # ≈50 s
