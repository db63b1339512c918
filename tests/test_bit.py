"""BiT ResNets (benchmark.models.bit): sizes against timm, the CPU widths, training, heads."""

from __future__ import annotations

from functools import partial

import pytest
import timm
import torch
from helpers import grey_images, n_params, one_training_step
from timm.layers import GroupNormAct, StdConv2d
from timm.models.resnetv2 import ResNetV2
from torch import nn

from benchmark.config import ModelConfig
from benchmark.errors import UserError
from benchmark.models import build_model, param_count, pre_logits, replace_head, token_grid, validate_model

K = 10


def tiny_bit(seed: int = 0, **kw) -> nn.Module:
    """R14x1 at base width 16 on 32×32 grey images."""
    torch.manual_seed(seed)
    cfg = ModelConfig(**{"arch": "R14x1", "resnet_width": 16, "prelogits": False, **kw})
    return build_model(cfg, num_classes=K, img_size=32, in_chans=1)


@pytest.mark.parametrize(
    "arch, timm_name",
    [
        ("R50x1", "resnetv2_50x1_bit"),
        ("BiT-R50x3", "resnetv2_50x3_bit"),
        ("ResNet101x1", "resnetv2_101x1_bit"),
        ("R101x3", "resnetv2_101x3_bit"),
        ("R152x2", "resnetv2_152x2_bit"),
        ("R152x4", "resnetv2_152x4_bit"),  # Table 2's BiT-L
    ],
)
def test_param_count_equals_timm_registered_bit(arch, timm_name):
    with torch.device("meta"):
        reference = timm.create_model(timm_name, pretrained=False, num_classes=1000)
    assert param_count(arch) == n_params(reference)


@pytest.mark.parametrize(
    "arch, layers, factor",
    [
        ("R50x2", [3, 4, 6, 3], 2),
        ("R152x1", [3, 8, 36, 3], 1),
        ("R200x3", [3, 24, 36, 3], 3),
        ("R14x1", [1, 1, 1, 1], 1),
        ("R26x1", [2, 2, 2, 2], 1),
    ],
)
def test_param_count_of_unregistered_sizes_equals_timm_resnetv2(arch, layers, factor):
    """timm registers no R50x2, R152x1, R200x3: build them as timm builds its BiT models, through
    `width_factor` (ours sets the channels themselves), and compare."""
    with torch.device("meta"):
        reference = ResNetV2(
            layers, width_factor=factor, stem_type="fixed", conv_layer=partial(StdConv2d, eps=1e-8)
        )
    assert param_count(arch) == n_params(reference)


def test_paper_sizes_have_bits_layers():
    with torch.device("meta"):
        model = build_model(ModelConfig(arch="R50x1", prelogits=False), 1000, 224, 3)
        assert model(torch.empty(2, 3, 224, 224)).shape == (2, 1000)
    assert model.stem.conv.out_channels == 64 and isinstance(model.stem.pad, nn.ConstantPad2d)
    assert [s.blocks[-1].conv3.out_channels for s in model.stages] == [256, 512, 1024, 2048]
    assert [len(s.blocks) for s in model.stages] == [3, 4, 6, 3]
    norms = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and all(m.num_groups == 32 for m in norms)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m is not model.get_classifier()]
    assert all(isinstance(m, StdConv2d) and m.eps == 1e-8 for m in convs)
    assert token_grid(model) is None


def test_resnet_width_sets_the_base_width_and_groupnorm_follows():
    model = tiny_bit()
    assert model.stem.conv.out_channels == 16
    assert [s.blocks[0].conv3.out_channels for s in model.stages] == [64, 128, 256, 512]
    assert [s.blocks[0].conv1.out_channels for s in model.stages] == [16, 32, 64, 128]
    for norm in (m for m in model.modules() if isinstance(m, GroupNormAct)):
        # 32 groups as BiT where the channels allow it, else one group per channel (16 channels).
        assert norm.num_groups == min(32, norm.num_channels)
    # resnet_width replaces the named size's 64·K, it does not multiply it.
    assert (
        build_model(
            ModelConfig(arch="R14x2", resnet_width=16, prelogits=False), K, 32, 1
        ).stem.conv.out_channels
        == 16
    )
    assert n_params(model) < n_params(tiny_bit(resnet_width=32)) < n_params(tiny_bit(resnet_width=0))


def test_tiny_bit_forward_and_training_step():
    model = tiny_bit()
    x, y = grey_images(), torch.arange(4)
    head = model.get_classifier()
    assert torch.all(head.weight == 0) and torch.all(head.bias == 0)  # BiT's zero head
    assert torch.all(model(x) == 0) and model(x).shape == (4, K)
    changed = one_training_step(model, x, y)
    assert "stem.conv.weight" in changed and "head.fc.weight" in changed
    assert not torch.all(model(x) == 0)


def test_pre_logits_and_replace_head():
    model = tiny_bit().eval()
    x = grey_images()
    with torch.no_grad():
        feats = pre_logits(model, x)
        assert feats.shape == (4, 512)
        # The globally averaged final features (after the final GroupNorm + ReLU).
        torch.testing.assert_close(feats, model.forward_features(x).mean(dim=(2, 3)))
        torch.testing.assert_close(pre_logits(model, x, "post_tanh"), feats)  # no tanh head
        model.get_classifier().weight.normal_()
        assert not torch.all(model(x) == 0)
    replace_head(model, 7)
    with torch.no_grad():
        assert model(x).shape == (4, 7) and torch.all(model(x) == 0)
        torch.testing.assert_close(pre_logits(model, x), feats)


def test_same_seed_same_weights():
    sa, sb, sc = tiny_bit(0).state_dict(), tiny_bit(0).state_dict(), tiny_bit(1).state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"prelogits": True}, "set model.prelogits=false"),
        ({"pool": "gap"}, "model.pool='gap' applies to ViTs and hybrids"),
        ({"pos_embed": "2d"}, "leave it at '1d'"),
        ({"depth": 6}, "model.depth=6"),
        ({"patch": 4}, "model.patch=4"),
        ({"dropout": 0.1}, "model.dropout=0.1"),
        ({"resnet_width": 12}, "multiple of 8"),
        ({"arch": "R34x1"}, "N one of 14, 26, 50, 101, 152, 200"),
        ({"arch": "R50x0"}, "e.g. R50x1"),
    ],
)
def test_invalid_bit_configs_raise_one_line_user_error(kw, needle):
    cfg = ModelConfig(**{"arch": "R50x1", "prelogits": False, **kw})
    with pytest.raises(UserError) as err:
        validate_model(cfg)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_resnet_width_is_refused_for_a_plain_vit():
    with pytest.raises(UserError, match=r"model\.resnet_width=16 applies to BiT ResNets and hybrids"):
        validate_model(ModelConfig(arch="B/16", resnet_width=16))
