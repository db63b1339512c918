"""`vitbench bench` runs and reports every figure (its timings are measurements, never asserted)."""

import json
import math

import pandas as pd
import pytest

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
    monkeypatch.setattr(bench, "CPU_MODELS", [("Mu/4", 28, 1, 4), ("R14x1", 32, 1, 4)])
    monkeypatch.setattr(bench, "STEPS", 2)
    peak, render, overhead = bench.matmul_peak, bench.fractals.render_throughput, bench.trainer_overhead
    monkeypatch.setattr(bench, "trainer_overhead", lambda: overhead(steps=2))
    monkeypatch.setattr(bench, "matmul_peak", lambda: peak(n=128))
    monkeypatch.setattr(bench, "bench_solver", lambda: bench_solver(n=300, d=16, num_classes=5, repeats=1))
    monkeypatch.setattr(bench.fractals, "render_throughput", lambda: render(images=8))
    assert cli.main(["bench", "--out", str(tmp_path / "bench.json")]) == 0
    stored = json.loads((tmp_path / "bench.json").read_text())
    vit, bit = stored["train"]
    assert (vit["arch"], bit["arch"]) == ("Mu/4", "R14x1")
    for row in (vit, bit):
        assert row["img_per_s"] > 0 and row["reference_img_per_s"] > 0  # ours and timm's step, side by side
        assert row["ours_over_reference"] == pytest.approx(row["img_per_s"] / row["reference_img_per_s"])
        assert row["train_gflop_per_img"] > 0  # counted by torch's FLOP counter
        assert 0 < row["mfu"] == pytest.approx(row["achieved_tflop_s"] / stored["matmul_peak_tflop_s"])
    assert stored["settings"]["precision"] == "fp32" and stored["matmul_peak_tflop_s"] > 0
    loop = stored["trainer_overhead"]
    assert loop["trainer_img_per_s"] > 0 and loop["overhead"] == pytest.approx(
        1 - loop["trainer_img_per_s"] / loop["bare_img_per_s"]
    )
    assert loop["data_path"] == pytest.approx(loop["trainer_img_per_s"] / loop["synthetic_img_per_s"])
    table = pd.read_csv(tmp_path / "bench.csv")
    assert list(table["arch"]) == ["Mu/4", "R14x1"] and "ours_over_reference" in table
    out = capsys.readouterr().out
    assert (
        "few-shot solver" in out
        and "timm reference" in out
        and "bare matmul peak" in out
        and "bare loop" in out
        and "data path" in out
    )
