"""Hybrids (benchmark.models.hybrid): both layouts, sizes against timm, sequence lengths, the tiny
CPU hybrid."""

from __future__ import annotations

import pytest
import timm
import torch
from helpers import grey_images, n_params, one_training_step
from timm.layers import HybridEmbed
from torch import nn

from benchmark.config import ModelConfig
from benchmark.errors import UserError
from benchmark.models import (
    PosEmbed2d,
    build_model,
    param_count,
    pre_logits,
    replace_head,
    resolve_model,
    token_grid,
    validate_model,
)
from benchmark.sizes import hybrid_layers

K = 10


def tiny_hybrid(seed: int = 0, **kw) -> nn.Module:
    """R14x1+Mu/8 with a base width 16 ResNet on 32×32 grey images: a 4×4 token grid."""
    torch.manual_seed(seed)
    cfg = ModelConfig(**{"arch": "R14x1+Mu/8", "resnet_width": 16, **kw})
    return build_model(cfg, num_classes=K, img_size=32, in_chans=1)


@pytest.mark.parametrize(
    "layers, stride, expected",
    [
        ((3, 4, 6, 3), 16, (3, 4, 9)),  # layout (ii): timm's vit_base_r50_s16_224
        ((3, 4, 6, 3), 32, (3, 4, 6, 3)),  # layout (i): timm's vit_large_r50_s32_224
        ((3, 4, 6, 3), 8, (3, 13)),
        ((3, 4, 6, 3), 4, (16,)),
        ((1, 1, 1, 1), 8, (1, 3)),
    ],
)
def test_hybrid_layers_fold_later_stages_into_the_last_kept_one(layers, stride, expected):
    assert hybrid_layers(layers, stride) == expected


@pytest.mark.parametrize(
    "arch, timm_name, layers",
    [
        ("R50x1+B/16", "vit_base_r50_s16_224", (3, 4, 9)),
        ("R50+ViT-L/32", "vit_large_r50_s32_224", (3, 4, 6, 3)),
    ],
)
def test_paper_hybrids_have_timms_parameters(arch, timm_name, layers):
    """Like with like: timm's hybrid with a 1000-class head against ours without the tanh layer
    (param_count). Same parameter names and shapes; what differs is the initialisation (ours: the
    original code's "jax" mode and three Xavier q, k, v; timm's: its default trunc-normal)."""
    assert resolve_model(ModelConfig(arch=arch)).resnet_layers == layers
    with torch.device("meta"):
        reference = timm.create_model(timm_name, pretrained=False, num_classes=1000)
        ours = build_model(ModelConfig(arch=arch, prelogits=False), 1000, 224, 3)
    assert param_count(arch) == n_params(reference) == n_params(ours)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }


def test_last_groupnorm_of_each_block_starts_at_zero():
    model = tiny_hybrid()
    norms = {n: p for n, p in model.named_parameters() if n.endswith("norm3.weight")}
    assert len(norms) == 4  # layers (1, 3)
    assert all(torch.all(p == 0) for p in norms.values())
    assert all(torch.all(p == 1) for n, p in model.named_parameters() if n.endswith("norm1.weight"))
    # timm builds its hybrids' ResNet with zero_init_last off, yet its ViT initialisation re-runs
    # ResNetV2.init_weights (default on): its hybrids start the same way.
    reference = timm.create_model("vit_base_r50_s16_224", pretrained=False)
    assert torch.all(reference.patch_embed.backbone.stages[0].blocks[0].norm3.weight == 0)


@pytest.mark.parametrize("arch, grid", [("R50x1+B/16", (14, 14)), ("R50x1+B/32", (7, 7))])
def test_sequence_length_of_both_layouts(arch, grid):
    with torch.device("meta"):
        model = build_model(ModelConfig(arch=arch), 1000, 224, 3)
        tokens = model.forward_features(torch.empty(2, 3, 224, 224))
    assert token_grid(model) == grid and isinstance(model.patch_embed, HybridEmbed)
    assert model.patch_embed.patch_size == (1, 1)
    assert tokens.shape == (2, 1 + grid[0] * grid[1], 768)  # 196 or 49 patch tokens + class token


def test_layout_ii_is_four_times_longer_at_the_same_depth():
    ii, i = (resolve_model(ModelConfig(arch=a)) for a in ("R50x1+B/16", "R50x1+B/32"))
    assert sum(ii.resnet_layers) == sum(i.resnet_layers) == 16
    with torch.device("meta"):
        grids = [
            token_grid(build_model(ModelConfig(arch=a), 10, 224, 3)) for a in ("R50x1+B/16", "R50x1+B/32")
        ]
    assert grids[0][0] * grids[0][1] == 4 * grids[1][0] * grids[1][1]


def test_tiny_hybrid_forward_and_training_step():
    model = tiny_hybrid()
    assert token_grid(model) == (4, 4)
    assert model.patch_embed.backbone.stem.conv.out_channels == 16
    x, y = grey_images(), torch.arange(4)
    assert torch.all(model(x) == 0) and model(x).shape == (4, K)
    changed = one_training_step(model, x, y)
    assert {
        "patch_embed.backbone.stem.conv.weight",
        "patch_embed.proj.weight",
        "blocks.0.attn.qkv.weight",
    } <= changed


@pytest.mark.parametrize("pool", ["token", "gap"])
@pytest.mark.parametrize("pos_embed", ["none", "1d", "2d", "relative"])
def test_every_position_variant_and_head_works_on_a_hybrid(pos_embed, pool):
    model = tiny_hybrid(pos_embed=pos_embed, pool=pool).eval()
    x = grey_images()
    with torch.no_grad():
        assert model(x).shape == (4, K)
        feats = pre_logits(model, x)
        assert feats.shape == (4, 64) and torch.isfinite(feats).all()
        assert pre_logits(model, x, "post_tanh").abs().max() < 1  # the tanh head
    if pos_embed == "2d":
        assert isinstance(model.stem_pos, PosEmbed2d) and model.stem_pos.x_embed.shape == (4, 32)
    replace_head(model, 3)
    with torch.no_grad():
        assert model(x).shape == (4, 3) and torch.all(model(x) == 0)


def test_same_seed_same_weights():
    sa, sb, sc = tiny_hybrid(0).state_dict(), tiny_hybrid(0).state_dict(), tiny_hybrid(1).state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_model_patch_overrides_the_stride():
    assert token_grid(tiny_hybrid(patch=16)) == (2, 2)
    assert resolve_model(ModelConfig(arch="R14x1+Mu/8", patch=16)).resnet_layers == (1, 1, 2)


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"arch": "R50x1+B/12"}, "choose one of 4, 8, 16, 32"),
        ({"arch": "R50x1+B/12"}, "/12"),
        ({"patch": 2}, "stride /2 is not valid"),
        ({"arch": "R50x1+Q/16"}, "SIZE one of Ti, S, B, L, H, b, Mu, Nano"),
        ({"arch": "R34+B/16"}, "RNxK with N one of 14, 26, 50, 101, 152, 200"),
        ({"heads": 3}, "width 64 does not split into 3 heads"),
        ({"resnet_width": 20}, "multiple of 8"),
    ],
)
def test_invalid_hybrids_raise_one_line_user_error(kw, needle):
    with pytest.raises(UserError) as err:
        validate_model(ModelConfig(**{"arch": "R14x1+Mu/8", **kw}))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_image_size_must_be_a_multiple_of_the_stride():
    with pytest.raises(UserError, match="multiple of the hybrid's stride 8"):
        build_model(ModelConfig(arch="R14x1+Mu/8"), K, 28, 1)
