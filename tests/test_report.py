"""Report text a reader relies on."""

import subprocess
import sys

import pandas as pd

from benchmark.report import _unique


def test_provenance_lists_values_in_numeric_order():
    assert _unique(pd.Series([1000, 2000, 250, "all", 500, None])) == "250, 500, 1000, 2000, all"
    assert _unique(pd.Series([0.016, 0.001, 0.002, 0.001])) == "0.001, 0.002, 0.016"
    assert _unique(pd.Series(["mnist5k", "digits"])) == "digits, mnist5k"
    assert _unique(pd.Series([], dtype=object)) == "–"


def test_report_and_status_import_no_torch_and_load_no_dataset(tmp_path):
    """Reports are rebuilt from stored files alone: the run recorded its data and protocol."""
    code = (
        "import sys; from benchmark import cli; "
        f"cli.main(['status', 'pos_embed', '--preset', 'smoke', '--results', {str(tmp_path)!r}]); "
        f"cli.main(['report', 'pos_embed', '--preset', 'smoke', '--results', {str(tmp_path)!r}]); "
        "assert 'torch' not in sys.modules and 'benchmark.data' not in sys.modules, 'imported torch'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
