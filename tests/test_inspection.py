"""The inspection measurements (benchmark.inspection) against answers known by construction."""

import numpy as np
import pytest
import torch

from benchmark import inspection
from benchmark.config import ModelConfig
from benchmark.models import build_model

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


def _constructed(local: bool):
    """A results frame of the inspect study (3 seeds per judged cell) and measurements built to make
    every claim hold (`local=False`) or fail (`local=True`)."""
    import pandas as pd

    from benchmark.config import flatten
    from studies import inspect as study

    rows, measured = [], {}
    for cfg in study.runs("cpu"):
        name = study._cell(pd.Series(flatten(cfg)))
        run = f"/nowhere/{name}/{cfg.seed}"
        rows.append({**flatten(cfg), "run_dir": run, "run_id": run, "upstream/test_top1": 0.9})
        paired = name in (study.VIT_GRID, study.HYBRID)  # Mu/4 and R14x1+Mu/4: 7x7 tokens of 4 px
        grid = (7, 7) if paired else GRID
        px = (4.0, 4.0) if paired else PX
        wide = inspection.uniform_distance(grid, px, 1) * (0.2 if local else 1.1)
        hybrid_bonus = 0.0 if local else 3.0 * (name == study.HYBRID)
        distance = (
            np.array([[1.0 + cfg.seed, wide + cfg.seed], [1.5 * wide + cfg.seed, 2 * wide]]) + hybrid_bonus
        )
        table = torch.randn(grid[0] * grid[1], 64, generator=torch.Generator().manual_seed(cfg.seed))
        if not local:  # rows and columns built in
            table = table + torch.eye(64)[: grid[1]].repeat(grid[0], 1) * 3  # the column's axis
        measured[run] = inspection.Inspection(
            grid, px, distance if not local else distance[::-1], inspection.uniform_distance(grid, px, 1), None, None, None, None,
            {"stem": inspection.position_similarity(table, grid)},
        )  # fmt: skip
    return pd.DataFrame(rows), measured


@pytest.mark.parametrize("local", [False, True])
def test_inspect_study_verdicts_come_out_either_way(monkeypatch, local):
    from studies import inspect as study

    df, measured = _constructed(local)
    monkeypatch.setattr(study, "_measure", measured.__getitem__)
    verdicts = study.checks(df)
    assert [v.holds for v in verdicts] == [not local] * 4
    assert all((v.margin > 0) == (not local) for v in verdicts)
    assert {v.unit for v in verdicts} == {"px", "cos"}
    assert not study.table(df).empty
