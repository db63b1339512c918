"""BiT ResNets (Kolesnikov et al., "Big Transfer"; the paper's ResNet baselines, §4.1): timm's
pre-activation ResNetV2 with weight-standardised convolutions and GroupNorm, at any "RNxK"
(benchmark.sizes), including the sizes timm does not register (R50x2, R152x1, R200x3, the tiny
R14x1 and R26x1)."""

from __future__ import annotations

from functools import partial

from timm.layers import GroupNormAct, StdConv2d
from timm.models.resnetv2 import ResNetV2
from torch import nn

from benchmark.config import ModelConfig
from benchmark.sizes import ModelShape

BIT_GROUPS = 32  # BiT's GroupNorm


def group_norm_act(num_channels: int, **kwargs) -> GroupNormAct:
    """BiT's GroupNorm (32 groups) fused with the block's activation, as timm's norm_layer.

    A CPU-size ResNet (model.resnet_width 8 or 16) has layers with fewer than 32 channels: those
    get the most groups up to 32 that divide their channels (16 channels: 16 groups). Every channel
    count is a multiple of 8 (benchmark.sizes.resolve_model), so at least 8 groups always divide
    it, and every paper size gets exactly BiT's 32.
    """
    groups = max(g for g in range(1, BIT_GROUPS + 1) if num_channels % g == 0)
    return GroupNormAct(num_channels, num_groups=groups, **kwargs)


def build_bit(
    cfg: ModelConfig, shape: ModelShape, num_classes: int, img_size: int, in_chans: int
) -> ResNetV2:
    """The BiT ResNet `shape`, the BiT family's builder (benchmark.sizes): timm's ResNetV2 as
    timm's registered BiT models build it (`stem_type="fixed"`, StdConv2d with eps 1e-8,
    GroupNorm), with base width w = the stem's channels, stage outputs 4w, 8w, 16w, 32w and
    bottleneck widths w ... 8w. The head is a zero-initialised Linear (a 1×1 conv) on the globally
    averaged features, as BiT's `zero_head`; the convolutions keep timm's initialisation (weight
    standardisation makes their scale moot). `cfg` and `img_size` are in every builder's
    signature; a BiT reads neither (its shape is all it takes from the config, and its global pool
    takes any image size).
    """
    model = ResNetV2(
        layers=list(shape.resnet_layers),
        channels=shape.resnet_channels,
        stem_chs=shape.resnet_width,
        num_classes=num_classes,
        in_chans=in_chans,
        stem_type="fixed",
        conv_layer=partial(StdConv2d, eps=1e-8),
        norm_layer=group_norm_act,
    )
    head = model.get_classifier()
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return model
