"""The inspection measurements (benchmark.inspection) against answers known by construction; the
inspect evaluator's stored files; the inspect study's report, read from them alone, either way."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from benchmark import data, inspection, metrics, train
from benchmark.config import ModelConfig, canonical_json, run_id
from benchmark.evals import inspect as evaluator
from benchmark.models import build_model
from benchmark.results import load_results, study_dir
from studies import inspect as study

GRID = (4, 4)
PX = (7.0, 7.0)


def one_hot_attention(offset: tuple[int, int], prefix: int = 1) -> torch.Tensor:
    """(1 layer, 1 image, 1 head, T, T): every query patch attends only to the patch `offset` away
    (wrapping round the grid)."""
    n = GRID[0] * GRID[1]
    attn = torch.zeros(1, 1, 1, prefix + n, prefix + n)
    attn[..., :prefix, 0] = 1.0
    for q in range(n):
        r, c = divmod(q, GRID[1])
        k = ((r + offset[0]) % GRID[0]) * GRID[1] + (c + offset[1]) % GRID[1]
        attn[0, 0, 0, prefix + q, prefix + k] = 1.0
    return attn


def test_attention_distance_of_a_known_offset():
    # one row down and one to the right, wrapping: distances are known per query
    attn = one_hot_attention((1, 1))
    got = inspection.mean_attention_distance(attn, GRID, PX, num_prefix=1)
    # rows wrap for the last row (3 rows back), columns for the last column (3 columns back)
    dy = np.array([1, 1, 1, 3]) * 7.0
    expected = np.mean([np.hypot(a, b) for a in dy for b in dy])
    assert got.shape == (1, 1)
    assert got[0, 0] == pytest.approx(expected)
    assert inspection.mean_attention_distance(one_hot_attention((0, 0)), GRID, PX, 1)[0, 0] == 0.0


def test_attention_to_the_class_token_counts_as_no_distance():
    attn = torch.zeros(1, 1, 1, 17, 17)
    attn[..., 0] = 1.0  # everything attends to the class token
    assert inspection.mean_attention_distance(attn, GRID, PX, 1)[0, 0] == 0.0


def test_uniform_distance_is_the_mean_pairwise_distance_of_the_patches():
    d = inspection.pixel_distances(GRID, PX).numpy()
    assert inspection.uniform_distance(GRID, PX, 0) == pytest.approx(d.mean())
    assert inspection.uniform_distance(GRID, PX, 1) == pytest.approx(d.mean() * 16 / 17)


def test_rollout_of_identity_attention_is_the_identity():
    eye = torch.eye(17).expand(3, 2, 4, 17, 17)  # 3 layers, 2 images, 4 heads
    flow = inspection.rollout(eye)
    assert torch.allclose(flow, torch.eye(17).expand(2, 17, 17))
    assert torch.allclose(inspection.rollout_map(flow, GRID, 1), torch.zeros(2, *GRID))


def test_rollout_rows_sum_to_one_and_gap_reads_the_patch_rows():
    attn = torch.rand(2, 1, 3, 16, 16).softmax(-1)
    flow = inspection.rollout(attn)
    assert torch.allclose(flow.sum(-1), torch.ones(1, 16), atol=1e-6)
    # one layer, no prefix: (mean_h A + I) / 2; GAP's map is the mean of its rows
    one = inspection.rollout(attn[:1])
    assert torch.allclose(one[0], (attn[0, 0].mean(0) + torch.eye(16)) / 2, atol=1e-6)
    assert torch.allclose(inspection.rollout_map(one, GRID, 0)[0].flatten(), one[0].mean(0), atol=1e-6)


def test_row_column_contrast_of_a_factorised_table_and_of_a_random_one():
    # concat(X[col], Y[row]) with orthonormal X and Y: same row or column shares one half (cos 0.5),
    # other pairs share nothing (cos 0): the statistic is 0.5 exactly.
    x, y = torch.eye(8)[:4], torch.eye(8)[4:]
    table = torch.cat([x[None, :, :].expand(4, -1, -1), y[:, None, :].expand(-1, 4, -1)], -1).reshape(16, 16)
    sim = inspection.position_similarity(table, GRID)
    assert sim.shape == (4, 4, 4, 4)
    assert sim[1, 2, 1, 2] == pytest.approx(1.0)
    assert inspection.row_column_contrast(sim) == pytest.approx(0.5)
    noise = torch.randn(16, 512, generator=torch.Generator().manual_seed(0))
    assert abs(inspection.row_column_contrast(inspection.position_similarity(noise, GRID))) < 0.02


@pytest.fixture(scope="module")
def tiny_vits():
    torch.manual_seed(0)
    return {
        kind: build_model(ModelConfig(arch="Mu/7", pos_embed=kind), 5, 28, 1).eval()
        for kind in ("1d", "2d", "relative")
    }


@pytest.mark.parametrize("kind", ["1d", "2d", "relative"])
def test_extracted_attention_matches_the_fused_forward(tiny_vits, kind):
    model = tiny_vits[kind]
    # non-zero weights everywhere, so every attention path matters
    torch.manual_seed(1)
    for p in model.parameters():
        p.data.normal_(0, 0.3)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        fused = model(x)
    attn = inspection.attention_maps(model, x)
    assert attn.shape == (4, 3, 4, 17, 17)
    assert torch.allclose(attn.sum(-1), torch.ones(1), atol=1e-5)
    assert all(m.fused_attn for m in model.modules() if hasattr(m, "fused_attn"))  # restored
    # recombined by hand for the first layer: softmax weights @ v equals the fused block's output
    block = model.blocks[0]
    captured = {}
    hook = block.attn.register_forward_hook(lambda _m, i, o: captured.update(inp=i[0], out=o))
    with torch.no_grad():
        assert torch.allclose(model(x), fused, atol=1e-5)
    hook.remove()
    a = block.attn
    qkv = a.qkv(captured["inp"]).reshape(3, 17, 3, 4, 16).permute(2, 0, 3, 1, 4)
    mixed = (attn[0] @ qkv[2]).transpose(1, 2).reshape(3, 17, 64)
    assert torch.allclose(a.proj(mixed), captured["out"], atol=1e-4)


def test_pca_tiles_have_the_patch_shape(tiny_vits):
    components, explained = inspection.filter_components(tiny_vits["1d"])
    assert components.shape == (28, 1, 7, 7)
    assert np.all(np.diff(explained) <= 1e-12) and explained.sum() <= 1 + 1e-9
    hybrid = build_model(ModelConfig(arch="R14x1+Mu/4", resnet_width=8), 5, 28, 1)
    with pytest.raises(ValueError, match="hybrid"):
        inspection.filter_components(hybrid)


def test_position_tables_per_variant(tiny_vits):
    assert set(inspection.position_tables(tiny_vits["1d"])) == {"stem"}
    assert inspection.position_tables(tiny_vits["2d"])["stem"].shape == (16, 64)
    assert inspection.position_tables(tiny_vits["relative"]) == {}
    every = build_model(ModelConfig(arch="Mu/7", pos_inject="every_layer"), 5, 28, 1)
    assert list(inspection.position_tables(every)) == ["layer 1", "layer 2", "layer 3", "layer 4"]
    shared = build_model(ModelConfig(arch="Mu/7", pos_inject="every_layer_shared"), 5, 28, 1)
    assert list(inspection.position_tables(shared)) == ["shared"]
    # a 2-D table at init is random per half: its structure is there by construction
    sim = inspection.position_similarity(inspection.position_tables(tiny_vits["2d"])["stem"], GRID)
    assert inspection.row_column_contrast(sim) > 0.3


def test_axis_contrast_tells_rows_from_columns():
    # rows only: concat(noise, Y[row]); pairs in a row share half their vector, pairs in a column nothing
    g = torch.Generator().manual_seed(0)
    y = torch.randn(4, 256, generator=g)
    table = torch.cat([torch.randn(16, 256, generator=g), y.repeat_interleave(4, 0)], -1)
    sim = inspection.position_similarity(table, GRID)
    assert inspection.axis_contrast(sim, "row") == pytest.approx(0.5, abs=0.05)
    assert abs(inspection.axis_contrast(sim, "column")) < 0.05


def test_stratified_sample_is_balanced_seeded_and_starts_with_distinct_classes():
    labels = np.repeat(np.arange(5), 100)  # sorted by class, as the upstream test split is
    sample = inspection.stratified_sample(labels, 128, seed=0)
    counts = np.bincount(labels[sample])
    assert len(set(sample.tolist())) == 128 and counts.max() - counts.min() <= 1
    assert sorted(labels[sample[:5]]) == [0, 1, 2, 3, 4]
    assert np.array_equal(sample, inspection.stratified_sample(labels, 128, seed=0))
    assert not np.array_equal(sample, inspection.stratified_sample(labels, 128, seed=1))
    scarce = np.concatenate([np.zeros(3, int), np.repeat([1, 2], 100)])  # a class with 3 examples
    assert np.bincount(scarce[inspection.stratified_sample(scarce, 41, seed=0)]).tolist() == [3, 19, 19]


def test_measure_averages_attention_distance_over_batches(tiny_vits, monkeypatch):
    x = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    whole = inspection.measure(tiny_vits["1d"], x, rollout_images=2)
    monkeypatch.setattr(inspection, "ATTENTION_BATCH", 2)
    batched = inspection.measure(tiny_vits["1d"], x, rollout_images=2)
    assert np.allclose(whole.distance, batched.distance) and whole.distance.shape == (4, 4)
    assert whole.rollout.shape == (2, *GRID) and set(whole.similarity) == {"stem"}


def test_evaluator_stores_trained_and_init_measurements(tiny_cfg, tmp_path):
    cfg = tiny_cfg.replace(**{"model.arch": "Mu/4", "eval.evaluators": ("upstream", "inspect")})
    result = train.run(cfg, tmp_path / "run")
    with np.load(tmp_path / "run" / evaluator.ARRAYS) as stored:
        arrays = dict(stored)
    for state in ("trained", "init"):
        assert arrays[f"{state}/distance"].shape == (4, 4) and arrays[f"{state}/rollout"].shape == (6, 7, 7)
        assert arrays[f"{state}/similarity/stem"].shape == (7, 7, 7, 7)
        for measure in study.MEASURES:
            assert metrics.key("inspect", "mnist5k", f"{state}_{measure}") in result["metrics"]
    assert not np.allclose(arrays["trained/distance"], arrays["init/distance"])  # training moved it
    counts = np.bincount(arrays["labels"])
    assert len(arrays["labels"]) == 128 and counts.max() - counts.min() <= 1
    # the init is the trainer's own (same seed, same build), and rebuilding it leaves the RNG alone
    rng = torch.get_rng_state()
    init = evaluator.initial_model(cfg, 10, 28, 1).eval()
    assert torch.equal(rng, torch.get_rng_state())
    trainer = train.Trainer(cfg, tmp_path / "fresh")
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in init.state_dict().items())
    images = data.prepare(data.load("mnist5k").test_x[arrays["sample"]], 28, 1)
    again = inspection.measure(init, images, evaluator.ROLLOUT_IMAGES)
    assert np.allclose(again.distance, arrays["init/distance"], atol=1e-5)


def _measurement(cfg, structured: bool, state: str, rng: np.random.Generator) -> inspection.Measurement:
    """One made-up measurement of a cpu run: position-blind at init; with `structured`, trained as
    §4.5 describes (local and global heads in layer 1, distance growing with depth, the ViT more
    local than the hybrid, 1-D tables with rows and columns), else trained is init plus noise."""
    grid, hybrid = (7, 7), cfg.model.arch.startswith("R")
    init = inspection.uniform_distance(grid, (4.0, 4.0), 1) - 0.8 + rng.normal(0, 0.1, (4, 4))
    layers = np.array([[2, 4, 12, 14], [6, 9, 12, 14], [10, 12, 13, 14], [13, 13.5, 14, 14]], float)
    trained = (init - 0.5 if hybrid else layers) if structured else init
    distance = (trained if state == "trained" else init) + rng.normal(0, 0.1, (4, 4))
    g = torch.Generator().manual_seed(cfg.seed)
    random = torch.randn(49, 64, generator=g)
    axes = torch.cat(
        [
            torch.randn(7, 32, generator=g).repeat(7, 1),
            torch.randn(7, 32, generator=g).repeat_interleave(7, 0),
        ],
        -1,
    )
    learned = (
        axes
        if structured and state == "trained"
        else random + (state == "trained") * 0.01 * torch.randn(49, 64, generator=g)
    )
    tables = {
        "1d": {"stem": learned},
        "2d": {"stem": axes},
        "every_layer": {f"layer {i}": learned for i in range(1, 5)},
    }[cfg.model.pos_embed if cfg.model.pos_inject == "stem" else cfg.model.pos_inject]
    explained = np.sort(rng.dirichlet(np.ones(16)))[::-1]
    return inspection.Measurement(
        distance=distance,
        rollout=rng.random((6, 7, 7)),
        components=None if hybrid else rng.normal(size=(16, 1, 4, 4)),
        explained=None if hybrid else explained,
        similarity={k: inspection.position_similarity(t, grid) for k, t in tables.items()},
    )


def _store_cpu_runs(root, structured: bool) -> None:
    """Finished runs of inspect's cpu preset as the trainer and the evaluator leave them, with
    made-up measurements (see _measurement)."""
    rng = np.random.default_rng(0)
    for cfg in study.runs("cpu"):
        folder = study_dir(root, "inspect", "cpu") / run_id(cfg)
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(canonical_json(cfg))
        (folder / "meta.json").write_text(json.dumps({"device": "cpu (test)", "attempts": []}))
        measured = {state: _measurement(cfg, structured, state, rng) for state in ("trained", "init")}
        uniform = inspection.uniform_distance((7, 7), (4.0, 4.0), 1)
        found = evaluator.metrics_of(measured, uniform, 4.0, cfg.data.dataset)
        result = {
            "status": "done",
            "wall_s": 1.0,
            "train_flops": 1e9,
            "params": 1000,
            "image_size": 28,
            "patch_grid": [7, 7],
            "train_examples": 1750,
            "datasets": {},
            "protocol": {},
            "metrics": {metrics.UPSTREAM_TOP1: 0.9, **found},
        }
        (folder / "result.json").write_text(json.dumps(result))
        images = rng.uniform(-1, 1, (6, 1, 28, 28))
        np.savez(
            folder / evaluator.ARRAYS,
            images=images,
            labels=np.arange(128) % 5,
            **evaluator.arrays_of(measured),
        )


@pytest.mark.parametrize("structured", [True, False])
def test_inspect_verdicts_and_control_come_out_either_way(tmp_path, structured):
    _store_cpu_runs(tmp_path, structured)
    df = load_results(tmp_path, "inspect", "cpu")
    verdicts = study.checks(df)
    assert [v.control for v in verdicts] == [True, True, False, False, False, False]
    if structured:
        assert [v.outcome for v in verdicts] == ["reproduced"] * 6
    else:  # no structure beyond the initialisation's: shown below the thresholds, or at least not shown
        assert all(v.outcome != "reproduced" for v in verdicts)
        assert "contradicted" in {v.outcome for v in verdicts}
    assert [v.unit for v in verdicts] == ["cos", "px", "px", "px", "px", "cos"]


def test_inspect_report_reads_stored_files_only(tmp_path):
    """The report builds, figures included, without importing torch or loading a dataset."""
    _store_cpu_runs(tmp_path / "results", structured=True)
    args = [
        "report",
        "inspect",
        "--preset",
        "cpu",
        "--results",
        str(tmp_path / "results"),
        "--reports",
        str(tmp_path / "reports"),
    ]
    code = (
        f"import sys; from benchmark import cli; assert cli.main({args!r}) == 0; "
        "assert 'torch' not in sys.modules and 'benchmark.data' not in sys.modules, 'imported torch'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = tmp_path / "reports" / "inspect" / "cpu"
    assert (
        len(list(report.glob("*.png"))) == 4
        and "Control: training builds" in (report / "report.md").read_text()
    )
