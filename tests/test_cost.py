"""benchmark.cost: a plan's training FLOPs (counted on the meta device) and its time on a named GPU
from a throughput table, without training and without the data.

The paper-scale checks use a small study file written here (the studies' own `paper` presets come
later); the expected values are read from Table 6 (paper_values.csv), never from the code under test."""

import json
import math

import pytest
import torch

from benchmark import cli, cost, data, flops, plan
from benchmark.config import DataConfig, ModelConfig, OptimConfig, RunConfig
from benchmark.errors import UserError
from benchmark.flops import train_flops_per_image
from benchmark.models import build_model
from benchmark.paper import paper_values
from benchmark.sizes import family_of
from benchmark.study import load_study

# Table 6's ViT rows: (model, pre-training epochs on JFT-300M); batch 4096 (§4.1).
TABLE6_VIT = [
    ("ViT-B/32", 7),
    ("ViT-B/16", 7),
    ("ViT-L/32", 7),
    ("ViT-L/16", 7),
    ("ViT-L/16", 14),
    ("ViT-H/14", 14),
]

PAPER_STUDY = '''"""Table 6's ViT rows on JFT-300M, to price (no data needed)."""
from benchmark import data
from benchmark.config import DataConfig, EvalConfig, ModelConfig, OptimConfig, RunConfig, steps_for_epochs

TITLE = CLAIM = REFERENCE = "cost tests"
PRESETS = {"paper": "ViT-B/16, 7 epochs of JFT-300M", "table6": "every ViT row of Table 6"}
CELL = ("model.arch",)
ROWS = {"paper": [("ViT-B/16", 7)], "table6": TABLE6_ROWS}


def runs(preset):
    jft = data.spec("jft300m").train_examples
    return [
        RunConfig(
            model=ModelConfig(arch=arch),
            data=DataConfig(dataset="jft300m"),
            optim=OptimConfig(batch_size=4096, steps=steps_for_epochs(epochs, jft, 4096), warmup_steps=10_000),
            eval=EvalConfig(fewshot_datasets=("imagenet1k", "digits"), shots=(5, 25)),
        )
        for arch, epochs in ROWS[preset]
    ]


table = checks = figures = None
'''.replace("TABLE6_ROWS", repr(TABLE6_VIT))


# A row as `vitbench bench` writes it (benchmark.bench.train_throughput).
BENCH_ROW = {"arch": "Mu/4", "image_size": 28, "batch": 8, "img_per_s": 100.0, "train_gflop_per_img": 0.07}


@pytest.fixture
def paper_study(tmp_path, monkeypatch):
    import studies

    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "cost_paper.py").write_text(PAPER_STUDY)
    monkeypatch.setattr(studies, "__path__", [*studies.__path__, str(tmp_path / "extra")])
    return load_study("cost_paper")


def table6_exaflops(model: str, epochs: int) -> float:
    rows = paper_values(source="table6", model=model)
    return float(rows[rows["epochs"] == epochs]["exaflops"].iloc[0])


def test_vit_b16_for_7_epochs_of_jft_costs_table6s_224_exaflops(paper_study, tmp_path):
    the_plan = plan.make_plan(paper_study, "paper", {}, tmp_path / "r")
    bill = plan.bill(the_plan, cost.load_table())
    (run,) = bill.runs
    # 7 epochs of 303M images in batches of 4096, counted from the paper's numbers alone.
    assert run.images == math.ceil(7 * 303_000_000 / 4096) * 4096
    expected = table6_exaflops("ViT-B/16", 7)
    assert expected == 224
    assert run.flops / 1e18 == pytest.approx(expected, rel=0.03)
    assert cost.format_flops(run.flops).endswith(" exaFLOPs")
    # Timed at the H100's measured ViT-B/16 speed: images over images per second.
    assert run.seconds == pytest.approx(run.images / 3268) and run.basis == "measured (torch.compile)"
    assert not (tmp_path / "r").exists()  # pricing writes nothing


def test_every_vit_row_of_table6_within_3_percent(paper_study, tmp_path):
    the_plan = plan.make_plan(paper_study, "table6", {}, tmp_path)
    bill = plan.bill(the_plan, cost.load_table())
    for (model, epochs), run, priced in zip(TABLE6_VIT, the_plan.runs, bill.runs, strict=True):
        assert run.cfg.model.arch == model and priced.images == 4096 * math.ceil(epochs * 303e6 / 4096)
        assert priced.flops / 1e18 == pytest.approx(table6_exaflops(model, epochs), rel=0.03), model


def test_models_the_table_lacks_are_extrapolated_from_their_familys_nearest_measured_model(tmp_path):
    table = cost.load_table()
    big = RunConfig(
        model=ModelConfig(arch="L/16"),
        data=DataConfig(dataset="imagenet21k"),
        optim=OptimConfig(steps=10, batch_size=4096, warmup_steps=1),
    )
    run = cost.run_cost(big, table)
    # ViT-B/16 (105.9 GFLOP/img at 3,268 img/s) is the measured ViT nearest to L/16's FLOPs per image.
    assert run.seconds == pytest.approx(run.flops / (3268 * 105.9e9))
    assert run.basis == "extrapolated from B/16 @224px's measured 346 TFLOP/s (torch.compile)"
    # A shape override is not the named model the table measured: extrapolated too.
    deeper = cost.run_cost(big.replace(**{"model.arch": "B/16", "model.depth": 13}), table)
    assert deeper.basis.startswith("extrapolated from B/16 @224px")
    # Families stay apart (BiT and hybrid models are built elsewhere; their timing needs no model).
    seconds, basis = cost._time(ModelConfig(arch="R152x2"), 224, 1000, 200e9, table)
    assert seconds == pytest.approx(1000 * 200e9 / (4675 * 24.3e9)) and "R50x1 @224px" in basis
    seconds, basis = cost._time(ModelConfig(arch="R50x1+L/16"), 224, 1000, 400e9, table)
    assert seconds == pytest.approx(1000 * 400e9 / (1042 * 129.7e9)) and "R50x1+B/16 @224px" in basis
    vit_only = cost.ThroughputTable(
        "cpu", "test", tuple(r for r in table.rows if family_of(r.arch).name == "vit")
    )
    assert cost._time(ModelConfig(arch="R50x1"), 224, 1000, 24e9, vit_only) == (
        None,
        "no estimate: the table measured no BiT model with its FLOPs per image",
    )


def test_meta_device_count_is_the_counters_count_on_real_tensors_and_matches_the_h100s():
    # The same counter on real CPU tensors: the meta device changes nothing in the count.
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="Mu/4"), 5, 28, 1)
    assert flops.meta_train_flops_per_image(ModelConfig(arch="Mu/4"), 28, 1, 5) == train_flops_per_image(
        model, torch.randn(2, 1, 28, 28), 5
    )
    # PERF.md's counts, made on the GPU with SDPA attention (1,000 classes assumed): within 2%.
    for row in cost.load_table().rows:
        if row.flops_per_image and family_of(row.arch).name == "vit":
            ours = flops.meta_train_flops_per_image(ModelConfig(arch=row.arch), row.image_size, 3, 1000)
            assert ours == pytest.approx(row.flops_per_image, rel=0.02), row.arch


def test_a_shape_is_counted_once_and_a_small_subset_caps_the_batch():
    flops.meta_train_flops_per_image.cache_clear()
    seeds = [
        RunConfig(
            model=ModelConfig(arch="Mu/4"),
            data=DataConfig(dataset="mnist5k", train_examples=50),
            optim=OptimConfig(steps=10, batch_size=128),
            seed=s,
        )
        for s in range(5)
    ]
    costs = [cost.run_cost(cfg, cost.load_table()) for cfg in seeds]
    assert flops.meta_train_flops_per_image.cache_info().misses == 1
    assert {c.images for c in costs} == {500}  # batch 128 capped at the 50 images kept, as in training
    assert costs[0].flops == pytest.approx(
        500
        * flops.meta_train_flops_per_image(ModelConfig(arch="Mu/4"), 28, 1, data.spec("mnist5k").num_classes)
    )


def test_a_table_vitbench_bench_wrote_prices_its_own_models(tmp_path):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"device": "Test GPU", "train": [BENCH_ROW]}))
    table = cost.load_table(path)
    assert table.device == "Test GPU" and "vitbench bench" in table.source and table.rows[0].mode == "eager"
    cfg = RunConfig(
        model=ModelConfig(arch="ViT-Mu/4"),
        data=DataConfig(dataset="mnist5k"),
        optim=OptimConfig(steps=10, batch_size=50, warmup_steps=1),
    )
    run = cost.run_cost(cfg, table)
    assert run.seconds == pytest.approx(5.0) and run.basis == "measured (eager)"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot be read"),
        ("{", "not a throughput table"),
        ('{"device": "x"}', "not a throughput table (missing 'train')"),
        ('{"device": "x", "train": [{"arch": "Mu/4"}]}', "not a throughput table (missing 'image_size')"),
        ('{"device": "x", "train": [{"arch": "Mu/4", "image_size": 28, "img_per_s": 0}]}', "img_per_s > 0"),
    ],
)
def test_a_bad_table_is_one_line_error(tmp_path, content, message):
    path = tmp_path / "table.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        cost.load_table(path)
    assert "\n" not in str(err.value)


def test_plan_prices_a_paper_preset_without_its_data_and_run_refuses_it(paper_study, tmp_path, capsys):
    results = tmp_path / "r"
    argv = ["cost_paper", "--preset", "paper", "--results", str(results)]
    assert cli.main(["plan", *argv]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:9] == [
        "run",
        "id",
        "state",
        "steps",
        "model",
        "images",
        "train",
        "exaFLOPs",
        "GPU-hours",
    ]
    total = next(line for line in out if line.startswith("cost of all runs: 1 runs, "))
    assert " exaFLOPs of training, " in total and "GPU-hours on NVIDIA H100 80GB" in total
    assert any(
        line.startswith("GPU-hours on NVIDIA H100 80GB (shipped table (benchmark/throughput/h100.json)")
        for line in out
    )
    assert out[-1].startswith("FLOPs: training FLOPs by torch's FLOP counter")
    assert not results.exists()
    # Priced on another machine's table instead, named as such.
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"device": "Test GPU", "train": [BENCH_ROW]}))
    assert cli.main(["plan", *argv, "--gpu-table", str(bench)]) == 0
    printed = capsys.readouterr().out
    assert "GPU-hours on Test GPU (measured by `vitbench bench`" in printed
    assert "1 extrapolated from Mu/4 @28px" in printed
    # Training needs the images: one line naming the dataset, exit 2, nothing written.
    assert cli.main(["run", *argv, "--executor", "debug"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dataset 'jft300m'" in err and "planning and pricing only" in err
    assert not results.exists()


def test_gpu_time_is_said_in_the_unit_that_reads_well():
    assert cost.gpu_time(93_600_000) == "26,000 GPU-hours"
    assert cost.gpu_time(720) == "12.0 GPU-minutes"
    assert cost.gpu_time(0.2736) == "0.274 GPU-seconds"
