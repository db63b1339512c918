"""A built model at another input resolution: every position table resized as the original code did."""

import pytest
import torch

from benchmark.config import ModelConfig
from benchmark.models import PosEmbed2d, RelativeAttention, build_model, token_grid
from benchmark.models.resize import resize_model

# (pos_embed, pos_inject, pool): every position variant, with and without a class token.
VARIANTS = [
    ("1d", "stem", "token"),
    ("1d", "stem", "gap"),
    ("2d", "stem", "token"),
    ("1d", "every_layer", "token"),
    ("2d", "every_layer", "gap"),
    ("1d", "every_layer_shared", "token"),
    ("2d", "every_layer_shared", "token"),
    ("relative", "stem", "token"),
    ("relative", "stem", "gap"),
    ("none", "stem", "token"),
]
IDS = ["-".join(v) for v in VARIANTS]


def tiny(pos_embed="1d", pos_inject="stem", pool="token", arch="Mu/8", size=16) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, pos_embed=pos_embed, pos_inject=pos_inject, pool=pool)
    return build_model(cfg, 3, size, 1).eval()


def bit() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(arch="R14x1", prelogits=False), 3, 32, 1).eval()


@pytest.mark.parametrize("variant", [*VARIANTS, ("2d", "stem", "token", "R14x1+Mu/8")], ids=[*IDS, "hybrid"])
def test_resizing_to_the_same_grid_is_the_identity(variant):
    model = tiny(*variant)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    x = torch.randn(2, 1, 16, 16)
    features = model.forward_features(x)
    for interpolation in ("bilinear", "bicubic"):
        resize_model(model, 16, interpolation)
        assert model.state_dict().keys() == before.keys()
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), interpolation
        assert all(torch.equal(buffers[k], v) for k, v in model.named_buffers())
        assert torch.equal(model.forward_features(x), features)


@pytest.mark.parametrize("variant", [*VARIANTS, ("2d", "stem", "token", "R14x1+Mu/8")], ids=[*IDS, "hybrid"])
def test_a_resized_model_runs_at_the_new_size_with_the_new_number_of_tokens(variant):
    model = tiny(*variant)
    resize_model(model, 40)
    assert token_grid(model) == (5, 5)
    tokens = model.forward_features(torch.randn(2, 1, 40, 40))
    assert tokens.shape == (2, model.num_prefix_tokens + 25, model.embed_dim)
    assert model(torch.randn(2, 1, 40, 40)).shape == (2, 3)
    # The old size no longer fits: timm's patch embedding checks it, a hybrid's table does not add up.
    with pytest.raises((AssertionError, RuntimeError)):
        model(torch.randn(2, 1, 16, 16))


def test_bilinear_is_the_original_codes_zoom_with_corners_kept():
    """A 2×2 grid to 4×4, computed by hand: scipy's zoom (order 1, grid_mode False) puts new row i
    at old coordinate i·(2−1)/(4−1), so the corners stay where they were (torch's align_corners=True;
    torch's default half-pixel alignment would give other values)."""
    model = tiny("1d", "stem", "token", size=16)  # patch 8: a 2×2 grid
    d = model.embed_dim
    with torch.no_grad():
        model.pos_embed.copy_(torch.randn(1, 5, d))
    cls, grid = model.pos_embed[0, 0].clone(), model.pos_embed[0, 1:].reshape(2, 2, d).clone()
    resize_model(model, 32)  # a 4×4 grid
    expected = torch.empty(4, 4, d)
    for i in range(4):
        for j in range(4):
            a, b = i / 3, j / 3
            expected[i, j] = (
                (1 - a) * (1 - b) * grid[0, 0]
                + (1 - a) * b * grid[0, 1]
                + a * (1 - b) * grid[1, 0]
                + a * b * grid[1, 1]
            )
    assert model.pos_embed.shape == (1, 17, d)
    torch.testing.assert_close(model.pos_embed[0, 1:].reshape(4, 4, d), expected, rtol=0, atol=1e-6)
    assert torch.equal(model.pos_embed[0, 0], cls)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("pos_inject", ["stem", "every_layer", "every_layer_shared"])
def test_the_class_token_row_is_untouched(pos_inject, interpolation):
    model = tiny("1d", pos_inject, "token")
    tables = [model.pos_embed] if model.pos_embed is not None else [b.pos.weight for b in model.blocks]
    before = [t[0, 0].clone() for t in tables]
    resize_model(model, 24, interpolation)
    after = [model.pos_embed] if model.pos_embed is not None else [b.pos.weight for b in model.blocks]
    assert all(t.shape[1] == 1 + 9 for t in after)
    assert all(torch.equal(t[0, 0], b) for t, b in zip(after, before, strict=True))
    if pos_inject == "every_layer_shared":  # still one table, shared by every layer
        assert len({id(b.pos) for b in model.blocks}) == 1
    elif pos_inject == "every_layer":  # one table per layer, each resized
        assert not torch.equal(after[0][0, 1:], after[-1][0, 1:])


def test_the_2d_table_keeps_its_structure_x_per_column_y_per_row():
    model = tiny("2d", "stem", "token")
    pos: PosEmbed2d = model.stem_pos
    x_old, y_old, cls = pos.x_embed.clone(), pos.y_embed.clone(), pos.prefix_embed.clone()
    resize_model(model, 32)  # 2×2 -> 4×4
    assert pos.grid_size == (4, 4) and pos.x_embed.shape[0] == 4 and pos.y_embed.shape[0] == 4
    half = model.embed_dim // 2
    table = pos.table()[1:].reshape(4, 4, -1)  # [row, col]
    # X depends on the column only, Y on the row only.
    assert torch.equal(table[:, :, :half], table[:1, :, :half].expand(4, -1, -1))
    assert torch.equal(table[:, :, half:], table[:, :1, half:].expand(-1, 4, -1))
    # Each interpolated along its own axis, ends kept: X[j] = X0 + (j/3)(X1 − X0).
    steps = torch.arange(4.0)[:, None] / 3
    torch.testing.assert_close(pos.x_embed, x_old[0] + steps * (x_old[1] - x_old[0]), rtol=0, atol=1e-6)
    torch.testing.assert_close(pos.y_embed, y_old[0] + steps * (y_old[1] - y_old[0]), rtol=0, atol=1e-6)
    assert torch.equal(pos.prefix_embed, cls)


@pytest.mark.parametrize("pool", ["token", "gap"])
def test_the_relative_table_keeps_every_learned_offset_and_clips_the_new_ones(pool):
    """N = 4 patches (offsets −3..3) to N = 9 (−8..8): each pair of patches reads the row its raster
    offset read before, offsets beyond ±3 read the ±3 row (Shaw et al.'s clipping), and every pair
    with the class token reads the class token's row."""
    model = tiny("relative", "stem", pool)
    attn: RelativeAttention = model.blocks[0].attn
    old = attn.rel_embed.clone()
    resize_model(model, 24)  # 2×2 -> 3×3
    p = model.num_prefix_tokens
    assert attn.rel_embed.shape[0] == 2 * 9 - 1 + p and attn.rel_index.shape == (9 + p, 9 + p)
    used = attn.rel_embed[attn.rel_index]  # (tokens, tokens, head_dim): the embedding of each pair
    pos = torch.arange(9)
    offsets = (pos[:, None] - pos[None, :]).clamp(-3, 3)
    assert torch.equal(used[p:, p:], old[offsets + 3])
    if p:
        assert torch.equal(used[0], old[-1].expand(9 + p, -1)) and torch.equal(
            used[:, 0], old[-1].expand(9 + p, -1)
        )
    # Every layer's table, not only the first.
    assert all(b.attn.rel_embed.shape == attn.rel_embed.shape for b in model.blocks)


def test_a_bit_resnet_has_nothing_to_resize():
    model = bit()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    resize_model(model, 48)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model(torch.randn(2, 1, 48, 48)).shape == (2, 3)
