"""`vitbench bench` runs and reports every figure (its timings are measurements, never asserted)."""

import json
import math

from benchmark import bench, cli
from benchmark.evals.fewshot import bench_solver


def test_solver_bench_reports_every_figure():
    figures = bench_solver(n=300, d=16, num_classes=5, n_test=40, repeats=1)
    assert set(figures) == {
        *("n", "d", "num_classes", "n_test", "n_l2s"),
        *("solve_s", "all_l2s_s", "one_l2_s", "per_extra_l2_s"),
    }
    assert (figures["n"], figures["d"], figures["n_l2s"]) == (300, 16, 30)
    assert all(math.isfinite(v) for v in figures.values())


def test_bench_command_writes_its_figures(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "THROUGHPUT", [("Mu/4", 28, 1, 4)])
    monkeypatch.setattr(bench, "bench_solver", lambda: bench_solver(n=300, d=16, num_classes=5, repeats=1))
    assert cli.main(["bench", "--out", str(tmp_path / "bench.json")]) == 0
    stored = json.loads((tmp_path / "bench.json").read_text())
    (row,) = stored["train"]
    assert row["arch"] == "Mu/4" and row["img_per_s"] > 0
    assert row["train_gflop_per_img"] > 0  # counted by torch's FLOP counter
    assert "few-shot solver" in capsys.readouterr().out
