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


def _store(root, role: str) -> None:
    """pos_embed's smoke runs as the trainer leaves them, their probes recorded with `role`."""
    import json

    from benchmark import metrics
    from benchmark.config import canonical_json, run_id
    from benchmark.presets import TRANSFER
    from benchmark.results import study_dir
    from benchmark.study import load_study

    for i, cfg in enumerate(load_study("pos_embed").runs("smoke")):
        folder = study_dir(root, "pos_embed", "smoke") / run_id(cfg)
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(canonical_json(cfg))
        datasets = {d: {"role": role, "provenance": "test", "classes": 10} for d in TRANSFER}
        result = {"status": "done", "wall_s": 1.0, "train_flops": 1e9, "params": 1000, "image_size": 28,
                  "patch_grid": [4, 4], "train_examples": 500, "protocol": {},
                  "datasets": {cfg.data.dataset: {"role": "upstream (pre-training)", "provenance": "test", "classes": 5},
                               **datasets},
                  "metrics": {metrics.UPSTREAM_TOP1: 0.9, **{metrics.fewshot(d, k): 0.5 + 0.01 * i for d in TRANSFER
                                                            for k in (1, 5)}}}  # fmt: skip
        (folder / "result.json").write_text(json.dumps(result))


def test_a_report_whose_probes_read_back_the_pre_training_data_says_so_everywhere(tmp_path):
    """Probing the pre-training data is not transfer: when the runs recorded that role, the report's
    banner, verdicts, table columns and figure texts say read-back (issue 23, item 3)."""
    from benchmark import cli

    for role, read_back in (
        ("transfer: images never seen", False),
        ("read-back: the pre-training source", True),
    ):
        root = tmp_path / role.split(":")[0]
        _store(root / "results", role)
        assert cli.main(["report", "pos_embed", "--preset", "smoke", "--results", str(root / "results"),
                         "--reports", str(root / "reports")]) == 0  # fmt: skip
        out = root / "reports" / "pos_embed" / "smoke"
        text = (out / "report.md").read_text()
        columns = pd.read_csv(out / "table.csv").columns
        assert ("Read-back, not transfer" in text) == read_back
        assert ("READ-BACK, NOT TRANSFER" in text) == read_back
        assert any("read-back 5-shot" in c for c in columns) == read_back
        assert any("transfer 5-shot" in c for c in columns) != read_back
