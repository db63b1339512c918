"""benchmark.models: sizes, the factory's variants (App. D.3, D.4), heads (§3.1) and helpers."""

from __future__ import annotations

import math

import pytest
import timm
import torch
from helpers import n_params
from timm.layers import Attention
from timm.utils import AttentionExtract
from torch import nn

from benchmark.config import ModelConfig
from benchmark.errors import UserError
from benchmark.models import (
    SIZES,
    InjectPos,
    PosEmbed1d,
    PosEmbed2d,
    RelativeAttention,
    TanhHead,
    ViTSize,
    build_model,
    math_attention,
    param_count,
    parse_arch,
    parse_model,
    pre_logits,
    replace_head,
    resolve_model,
    resolve_shape,
    validate_model,
)
from benchmark.sizes import _size_table

VALID_POS = [
    ("none", "stem"),
    ("1d", "stem"),
    ("1d", "every_layer"),
    ("1d", "every_layer_shared"),
    ("2d", "stem"),
    ("2d", "every_layer"),
    ("2d", "every_layer_shared"),
    ("relative", "stem"),
]
TINY = {"Mu", "Nano"}
K = 10


def tiny(seed: int = 0, **kw) -> nn.Module:
    """A Mu/4 model on 28×28 grey images (7×7 grid), in eval mode."""
    torch.manual_seed(seed)
    return build_model(ModelConfig(**{"arch": "Mu/4", **kw}), num_classes=K, img_size=28, in_chans=1).eval()


def images(n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


# --- sizes and variant strings -------------------------------------------------------------


def test_table1_sizes():
    assert SIZES["B"] == ViTSize(12, 768, 3072, 12)
    assert SIZES["L"] == ViTSize(24, 1024, 4096, 16)
    assert SIZES["H"] == ViTSize(32, 1280, 5120, 16)
    assert SIZES["b"] == ViTSize(12, 384, 1536, 12)  # ViT-B, hidden dims halved
    assert {"Ti", "S", "B", "L", "H", "b", "Mu", "Nano"} <= set(SIZES)
    for size in SIZES.values():
        assert size.width % size.heads == 0 and size.width % 2 == 0


def test_duplicate_size_names_rejected():
    with pytest.raises(ValueError, match="duplicate"):
        _size_table(("B", SIZES["B"]), ("B", SIZES["L"]))


@pytest.mark.parametrize(
    "arch, expected",
    [
        ("ViT-B/16", ("B", 16)),
        ("B/16", ("B", 16)),
        ("vit-L/32", ("L", 32)),
        ("ViT-b/32", ("b", 32)),
        (" Mu/4 ", ("Mu", 4)),
        ("ViT-H/14", ("H", 14)),
    ],
)
def test_parse_arch(arch, expected):
    assert parse_arch(arch) == expected


@pytest.mark.parametrize(
    "arch", ["X/16", "B", "B/0", "B/x", "ViT-B16", "R50+ViT-B/16", "ViT-BB/16", "", "l/16"]
)
def test_parse_arch_rejects(arch):
    with pytest.raises(UserError) as err:
        parse_arch(arch)
    msg = str(err.value)
    assert "\n" not in msg and repr(arch) in msg
    assert "Ti, S, B, L, H, b, Mu, Nano" in msg and "B/16" in msg


# --- every size builds ---------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in SIZES if n not in TINY])
def test_big_sizes_build_on_meta(name):
    size = SIZES[name]
    patch = 14 if name == "H" else 16
    assert param_count(f"{name}/{patch}") > 12 * size.depth * size.width**2 * 0.99
    cfg = ModelConfig(arch=f"{name}/{patch}", pos_embed="2d", pool="gap")
    with torch.device("meta"):
        model = build_model(cfg, num_classes=1000, img_size=224, in_chans=3)
        out = model(torch.empty(2, 3, 224, 224))
    assert out.shape == (2, 1000)
    assert len(model.blocks) == size.depth and model.embed_dim == size.width


@pytest.mark.parametrize("name", sorted(TINY))
def test_tiny_sizes_build_for_real(name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=f"{name}/4"), num_classes=K, img_size=28, in_chans=1)
    size = SIZES[name]
    assert len(model.blocks) == size.depth
    assert model.blocks[0].mlp.fc1.out_features == size.mlp
    assert model.blocks[0].attn.num_heads == size.heads
    assert model(images()).shape == (3, K)
    if name == "Mu":
        assert 0.19e6 < n_params(model) < 0.22e6


@pytest.mark.parametrize("pool", ["token", "gap"])
@pytest.mark.parametrize("pos_embed, pos_inject", VALID_POS)
def test_every_variant_forwards(pos_embed, pos_inject, pool):
    model = tiny(pos_embed=pos_embed, pos_inject=pos_inject, pool=pool)
    x = images()
    logits = model(x)
    assert logits.shape == (3, K)
    assert torch.all(logits == 0)  # zero-initialised classifier
    feats = pre_logits(model, x)
    assert feats.shape == (3, 64) and torch.isfinite(feats).all()
    assert model.has_class_token == (pool == "token")


# --- parameter counts (Table 1) ------------------------------------------------------------


@pytest.mark.parametrize("arch, paper", [("B/16", 86e6), ("L/16", 307e6), ("L/32", 307e6), ("H/14", 632e6)])
def test_param_count_matches_table1(arch, paper):
    assert abs(param_count(arch) - paper) / paper < 0.01


@pytest.mark.parametrize(
    "arch, timm_name", [("B/16", "vit_base_patch16_224"), ("L/16", "vit_large_patch16_224")]
)
def test_param_count_equals_timm(arch, timm_name):
    with torch.device("meta"):
        reference = timm.create_model(timm_name, pretrained=False)
    assert param_count(arch) == n_params(reference)
    assert param_count("L/16") == 304_326_632


# --- position embeddings (App. D.4) --------------------------------------------------------


def test_2d_table_is_concat_of_column_and_row_embeddings():
    torch.manual_seed(0)
    pos = PosEmbed2d((3, 5), dim=8, num_prefix_tokens=1)  # non-square: rows and columns differ
    assert pos.x_embed.shape == (5, 4) and pos.y_embed.shape == (3, 4)
    table = pos.table()
    assert table.shape == (1 + 15, 8)
    assert torch.equal(table[0], pos.prefix_embed[0])
    for row in range(3):
        for col in range(5):
            assert torch.equal(table[1 + row * 5 + col], torch.cat([pos.x_embed[col], pos.y_embed[row]]))
    assert PosEmbed2d((3, 5), dim=8, num_prefix_tokens=0).table().shape == (15, 8)


def test_2d_embedding_is_added_at_the_stem():
    model = tiny(pos_embed="2d")
    assert model.pos_embed is None and isinstance(model.stem_pos, PosEmbed2d)
    assert model.stem_pos.table().shape == (1 + 49, 64)
    patches = model.patch_embed(images())
    expected = torch.cat([model.cls_token.expand(3, -1, -1), patches], dim=1) + model.stem_pos.table()
    torch.testing.assert_close(model._pos_embed(patches), expected)


def permute_patches(img: torch.Tensor, patch: int, perm: torch.Tensor) -> torch.Tensor:
    B, C, H, W = img.shape
    gh, gw = H // patch, W // patch
    blocks = (
        img.reshape(B, C, gh, patch, gw, patch).permute(0, 2, 4, 1, 3, 5).reshape(B, gh * gw, C, patch, patch)
    )
    blocks = blocks[:, perm]
    return blocks.reshape(B, gh, gw, C, patch, patch).permute(0, 3, 1, 4, 2, 5).reshape(B, C, H, W)


@pytest.mark.parametrize("pool", ["token", "gap"])
def test_no_position_embedding_is_permutation_invariant(pool):
    x = images()
    perm = torch.randperm(49, generator=torch.Generator().manual_seed(0))
    x_perm = permute_patches(x, 4, perm)
    assert torch.equal(permute_patches(x, 4, torch.arange(49)), x)
    assert not torch.allclose(x, x_perm)
    with torch.no_grad():
        none = tiny(pos_embed="none", pool=pool)
        torch.testing.assert_close(pre_logits(none, x_perm), pre_logits(none, x), atol=1e-5, rtol=1e-5)
        for kind in ("1d", "2d", "relative"):
            model = tiny(pos_embed=kind, pool=pool)
            if kind == "relative":  # at init (std 0.02) its bias moves the output by only ~1e-5
                for block in model.blocks:
                    block.attn.rel_embed.normal_()
            assert not torch.allclose(pre_logits(model, x_perm), pre_logits(model, x), atol=1e-4), kind


def direct_attention(attn: RelativeAttention, x: torch.Tensor, num_prefix: int) -> torch.Tensor:
    """The paper's relative attention written out pair by pair, independent of the module's index."""
    B, T, _ = x.shape
    H, hd = attn.num_heads, attn.head_dim
    N = T - num_prefix
    q, k, v = attn.qkv(x).reshape(B, T, 3, H, hd).permute(2, 0, 3, 1, 4)
    rows = []
    for i in range(T):
        row = []
        for j in range(T):
            if i < num_prefix or j < num_prefix:
                row.append(attn.rel_embed[-1])  # the class token's own embedding
            else:
                row.append(attn.rel_embed[(i - j) + N - 1])  # offset p_q − p_k
        rows.append(torch.stack(row))
    r = torch.stack(rows)  # (T, T, hd)
    logits = (torch.einsum("bhid,bhjd->bhij", q, k) + torch.einsum("bhid,ijd->bhij", q, r)) / math.sqrt(hd)
    out = logits.softmax(-1) @ v
    return attn.proj(out.transpose(1, 2).reshape(B, T, H * hd))


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("num_prefix", [1, 0])
def test_relative_attention_matches_direct_computation(fused, num_prefix):
    torch.manual_seed(0)
    N = 9  # a 3×3 grid
    attn = RelativeAttention(
        16, num_heads=2, num_patches=N, num_prefix_tokens=num_prefix, qkv_bias=True
    ).eval()
    assert attn.rel_embed.shape == (2 * N - 1 + num_prefix, 8)
    with torch.no_grad():
        attn.rel_embed.normal_()  # large, so a wrong offset would show
    attn.fused_attn = fused
    x = torch.randn(2, num_prefix + N, 16)
    with torch.no_grad():
        out = attn(x)
        torch.testing.assert_close(out, direct_attention(attn, x, num_prefix), atol=1e-5, rtol=1e-5)
        # The bias matters, and without it the module is exactly timm's attention.
        plain = Attention(16, num_heads=2, qkv_bias=True).eval()
        plain.load_state_dict(attn.state_dict(), strict=False)
        assert not torch.allclose(out, plain(x), atol=1e-3)
        attn.rel_embed.zero_()
        torch.testing.assert_close(attn(x), plain(x), atol=1e-6, rtol=1e-5)


def test_relative_model_fused_equals_math_and_trains_the_tables():
    model = tiny(pos_embed="relative")
    assert model.pos_embed is None and model.stem_pos is None
    tables = [blk.attn.rel_embed for blk in model.blocks]
    assert len(tables) == 4 and all(t.shape == (2 * 49 - 1 + 1, 16) for t in tables)
    x = images()
    assert all(blk.attn.fused_attn for blk in model.blocks)
    fused = pre_logits(model, x)
    fused.square().sum().backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in tables)
    with torch.no_grad(), math_attention(model):
        torch.testing.assert_close(pre_logits(model, x), fused, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kw", [{"pos_embed": "relative"}, {"pos_embed": "2d", "pos_inject": "every_layer"}])
def test_variants_work_with_timm_inspection_tools(kw):
    # Fig. 7 / Fig. 6 read attention maps through timm's AttentionExtract (fx tracing, math path).
    model = tiny(**kw)
    x = images()
    _, intermediates = model.forward_intermediates(x)
    assert len(intermediates) == 4 and intermediates[0].shape == (3, 64, 7, 7)
    with torch.no_grad(), math_attention(model):
        maps = AttentionExtract(model, method="fx")(x)
    assert len(maps) == 4
    for attn in maps.values():
        assert attn.shape == (3, 4, 50, 50)
        torch.testing.assert_close(attn.sum(-1), torch.ones(3, 4, 50))


@pytest.mark.parametrize("kind, table_params", [("1d", 50 * 64), ("2d", 7 * 32 * 2 + 64)])
def test_every_layer_tables_are_separate_or_shared(kind, table_params):
    baseline = n_params(tiny(pos_embed="none"))
    separate = tiny(pos_embed=kind, pos_inject="every_layer")
    shared = tiny(pos_embed=kind, pos_inject="every_layer_shared")
    stem = tiny(pos_embed=kind, pos_inject="stem")
    assert n_params(stem) - baseline == table_params
    assert n_params(separate) - baseline == 4 * table_params  # depth 4
    assert n_params(shared) - baseline == table_params
    table_type = PosEmbed1d if kind == "1d" else PosEmbed2d
    assert len([m for m in separate.modules() if isinstance(m, table_type)]) == 4
    assert len([m for m in shared.modules() if isinstance(m, table_type)]) == 1
    for model in (separate, shared):
        assert model.pos_embed is None and model.stem_pos is None
        assert all(isinstance(b, InjectPos) for b in model.blocks)


def test_every_layer_adds_each_table_before_its_block():
    model = tiny(pos_embed="1d", pos_inject="every_layer")
    x = images()
    with torch.no_grad():
        h = model.patch_embed(x)
        h = torch.cat([model.cls_token.expand(3, -1, -1), h], dim=1)
        for wrapper in model.blocks:
            h = wrapper.block(h + wrapper.pos.table())
        torch.testing.assert_close(model.forward_features(x), model.norm(h))


# --- heads and pooling (§3.1, App. D.3) ----------------------------------------------------


def test_gap_averages_tokens_after_the_final_layernorm():
    model = tiny(pool="gap", prelogits=False)
    assert model.cls_token is None and isinstance(model.fc_norm, nn.Identity)
    assert isinstance(model.norm, nn.LayerNorm)
    x = images()
    with torch.no_grad():
        h = model.patch_embed(x) + model.pos_embed
        for block in model.blocks:
            h = block(h)
        expected = model.norm(h).mean(dim=1)
        torch.testing.assert_close(pre_logits(model, x), expected)
        # Not the other order (timm's fc_norm default).
        assert not torch.allclose(model.norm(h.mean(dim=1)), expected, atol=1e-3)


def test_token_pool_reads_the_class_token():
    model = tiny(prelogits=False)
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(pre_logits(model, x), model.forward_features(x)[:, 0])


def test_tanh_head_and_replace_head():
    model = tiny(pool="gap")
    assert isinstance(model.head, TanhHead)
    x = images()
    with torch.no_grad():
        model.head.fc.weight.normal_()  # zero at init; only to check replace_head discards it
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        hidden = model.head.pre_logits[0]
        dense = pooled @ hidden.weight.T + hidden.bias
        # The paper-era few-shot features are the dense layer's output before the tanh (the default).
        torch.testing.assert_close(pre_logits(model, x), dense)
        assert pre_logits(model, x).abs().max() > 1  # so the tanh below is not a no-op here
        feats = pre_logits(model, x, "post_tanh")
        assert feats.abs().max() < 1
        torch.testing.assert_close(feats, torch.tanh(dense))
        assert not torch.allclose(feats, pooled, atol=1e-3)

    replace_head(model, 7)
    assert type(model.head) is nn.Linear and model.head.out_features == 7 and model.num_classes == 7
    assert torch.all(model.head.weight == 0) and torch.all(model.head.bias == 0)
    assert not any(isinstance(m, nn.Tanh) for m in model.modules())
    with torch.no_grad():
        assert torch.all(model(x) == 0) and model(x).shape == (3, 7)
        torch.testing.assert_close(pre_logits(model, x), pooled)


@pytest.mark.parametrize("pos_embed", ["1d", "relative"])
def test_q_k_v_are_initialised_as_three_xavier_matrices(pos_embed):
    """The original code's three D×D projections, each Xavier-uniform: std 1/sqrt(D) each (timm's
    fused 3D×D initialisation gives 1/sqrt(2D), √2 too small)."""
    model = build_model(ModelConfig(arch="S/16", pos_embed=pos_embed), 10, 224, 3)
    dim = model.embed_dim
    for block in model.blocks:
        for part in block.attn.qkv.weight.chunk(3, dim=0):
            assert part.std().item() == pytest.approx(dim**-0.5, rel=0.02)
            assert part.abs().max().item() <= (6 / (2 * dim)) ** 0.5  # Xavier-uniform's bound


def test_plain_head_is_zero_linear():
    model = tiny(prelogits=False)
    assert type(model.head) is nn.Linear and model.head.out_features == K
    assert torch.all(model.head.weight == 0) and torch.all(model.head.bias == 0)
    assert not any(isinstance(m, nn.Tanh) for m in model.modules())


# --- config plumbing -----------------------------------------------------------------------


@pytest.mark.parametrize("pos_embed", ["2d", "relative"])
def test_same_seed_same_weights(pos_embed):
    a, b, c = tiny(0, pos_embed=pos_embed), tiny(0, pos_embed=pos_embed), tiny(1, pos_embed=pos_embed)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_dropout_placement():
    model = tiny(dropout=0.1, pos_embed="relative")
    block = model.blocks[0]
    assert model.pos_drop.p == 0.1 and model.head_drop.p == 0.1
    assert block.attn.proj_drop.p == 0.1 and block.mlp.drop1.p == 0.1 and block.mlp.drop2.p == 0.1
    assert block.attn.attn_drop.p == 0.0
    assert block.attn.qkv.bias is not None


def test_math_attention_toggles_and_restores():
    model = tiny(pos_embed="relative")
    model.blocks[1].attn.fused_attn = False  # a mixed starting state is restored as it was
    before = [blk.attn.fused_attn for blk in model.blocks]
    assert before == [True, False, True, True]
    with math_attention(model):
        assert not any(blk.attn.fused_attn for blk in model.blocks)
    assert [blk.attn.fused_attn for blk in model.blocks] == before
    with pytest.raises(RuntimeError), math_attention(model):
        raise RuntimeError
    assert [blk.attn.fused_attn for blk in model.blocks] == before


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"pos_embed": "relative", "pos_inject": "every_layer"}, "every_layer_shared"),
        ({"pos_embed": "none", "pos_inject": "every_layer_shared"}, "every_layer"),
        ({"pos_embed": "3d"}, "none, 1d, 2d, relative"),
        ({"pos_inject": "twice"}, "stem, every_layer, every_layer_shared"),
        ({"pool": "max"}, "token, gap"),
        ({"arch": "Q/4"}, "Ti, S, B, L, H, b, Mu, Nano"),
    ],
)
def test_invalid_configs_raise_user_error(kw, needle):
    with pytest.raises(UserError) as err:
        tiny(**kw)
    assert needle in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError, match=needle):
        validate_model(ModelConfig(**kw))


@pytest.mark.parametrize("pos_embed, pos_inject", VALID_POS)
def test_validate_model_accepts_valid_combinations(pos_embed, pos_inject):
    validate_model(ModelConfig(arch="ViT-H/14", pos_embed=pos_embed, pos_inject=pos_inject, pool="gap"))


def test_bad_image_size_or_classes_raise_user_error():
    with pytest.raises(UserError, match="patch size"):
        build_model(ModelConfig(arch="Mu/5"), num_classes=K, img_size=28, in_chans=1)
    with pytest.raises(UserError, match="num_classes"):
        build_model(ModelConfig(), num_classes=0, img_size=28, in_chans=1)


def test_shape_fields_override_the_named_size():
    """model.depth/width/heads/mlp/patch replace their part of the arch string's size."""
    assert len(tiny(depth=2).blocks) == 2 and len(tiny().blocks) == SIZES["Mu"].depth
    model = tiny(width=96, heads=3, mlp=128, patch=7)
    assert model.embed_dim == 96 and model.blocks[0].attn.num_heads == 3
    assert model.blocks[0].mlp.fc1.out_features == 128
    assert model.patch_embed.grid_size == (4, 4)
    # An unset MLP keeps the named size's ratio (4 D), not its absolute size.
    assert tiny(width=32, heads=2).blocks[0].mlp.fc1.out_features == 128
    # The relative variant builds its own attention: it must get the overridden heads too.
    assert tiny(pos_embed="relative", width=48, heads=6).blocks[0].attn.num_heads == 6
    assert resolve_shape(ModelConfig(arch="B/16", depth=6)) == (ViTSize(6, 768, 3072, 12), 16)


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"width": 66, "heads": 4}, "width 66 does not split into 4 heads"),
        ({"heads": 3}, "width 64 does not split into 3 heads"),
        ({"width": 9, "heads": 3, "pos_embed": "2d"}, "even width"),
    ],
)
def test_bad_shapes_raise_one_line_user_error(kw, needle):
    with pytest.raises(UserError) as err:
        validate_model(ModelConfig(**kw))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_patch_that_does_not_divide_the_image_is_refused_at_build():
    with pytest.raises(UserError, match="multiple of the patch size 5"):
        tiny(patch=5)


# --- every family's variant strings (benchmark.sizes.parse_model) ---------------------------


@pytest.mark.parametrize(
    "arch, family, name",
    [
        ("ViT-B/16", "vit", "ViT-B/16"),
        ("b/32", "vit", "ViT-b/32"),
        ("Mu/7", "vit", "ViT-Mu/7"),
        ("R50x1", "bit", "R50x1"),
        ("BiT-R50x1", "bit", "R50x1"),
        ("ResNet152x2", "bit", "R152x2"),  # Table 6's spelling
        ("R14x1", "bit", "R14x1"),
        ("R50", "bit", "R50x1"),  # K defaults to 1, as in "R50+ViT-B/16"
        ("R50x1+B/16", "hybrid", "R50x1+ViT-B/16"),
        ("R50+ViT-B/16", "hybrid", "R50x1+ViT-B/16"),
        ("R50x1+ViT-L/32", "hybrid", "R50x1+ViT-L/32"),  # Table 6's spelling
        ("R14x1+Mu/8", "hybrid", "R14x1+ViT-Mu/8"),
    ],
)
def test_parse_model_reads_every_family(arch, family, name):
    parsed = parse_model(arch)
    assert parsed.family == family and parsed.name == name
    assert parse_model(parsed.name) == parsed


def test_resolve_model_agrees_with_resolve_shape_for_a_vit():
    cfg = ModelConfig(arch="B/16", depth=6, patch=32)
    shape = resolve_model(cfg)
    assert (shape.vit, shape.patch) == resolve_shape(cfg) == (ViTSize(6, 768, 3072, 12), 32)
    assert shape.family == "vit" and shape.resnet_layers == () and shape.resnet_width == 0
    bit = resolve_model(ModelConfig(arch="R50x2"))
    assert (bit.vit, bit.resnet_layers, bit.resnet_width) == (None, (3, 4, 6, 3), 128)
    assert bit.resnet_channels == (512, 1024, 2048, 4096)


@pytest.mark.parametrize("arch", ["X/16", "R50x", "R34x1", "R50x1+", "R50x1+X/16", "R50-B/16", "", "B/0"])
def test_parse_model_rejects_with_every_family_named(arch):
    with pytest.raises(UserError) as err:
        parse_model(arch)
    msg = str(err.value)
    assert "\n" not in msg and repr(arch) in msg
    assert "Ti, S, B, L, H, b, Mu, Nano" in msg and "e.g. R50x1" in msg and "e.g. R50x1+B/16" in msg
