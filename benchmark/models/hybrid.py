"""Hybrids (§3.1, "Hybrid Architecture"): a ResNet's feature map as the ViT's input sequence,
patch size 1. timm's HybridEmbed over timm's non-pre-activation ResNetV2, feeding our PaperViT, so
every position embedding, pool and the tanh head of the ViT work on hybrids too."""

from __future__ import annotations

from functools import partial

from timm.layers import HybridEmbed, StdConv2dSame
from timm.models.resnetv2 import Bottleneck, ResNetV2

from benchmark.config import ModelConfig
from benchmark.models.bit import group_norm_act
from benchmark.models.vit import PaperViT, build_vit
from benchmark.sizes import ModelShape


def build_backbone(shape: ModelShape, in_chans: int) -> ResNetV2:
    """The hybrid's ResNet: the stages of `shape.resnet_layers` (one of the paper's two layouts,
    benchmark.sizes.hybrid_layers), no final norm, no head. As the original code and timm's
    `vision_transformer_hybrid._resnetv2`: StdConv → GroupNorm → ReLU bottlenecks (not
    pre-activation), TF-style "SAME" padding; the last GroupNorm of every block starts at scale
    zero, as the original code (so each block starts as its shortcut).
    """
    return ResNetV2(
        layers=list(shape.resnet_layers),
        channels=shape.resnet_channels,
        stem_chs=shape.resnet_width,
        num_classes=0,
        global_pool="",
        in_chans=in_chans,
        preact=False,
        stem_type="same",
        conv_layer=partial(StdConv2dSame, eps=1e-8),
        norm_layer=group_norm_act,
        zero_init_last=True,
    )


def build_hybrid(
    cfg: ModelConfig, shape: ModelShape, num_classes: int, img_size: int, in_chans: int
) -> PaperViT:
    """The hybrid `shape` (family "hybrid"): build_backbone's ResNet → timm's HybridEmbed (a 1×1
    projection to D) → the ViT of `cfg` over a grid of img_size / stride tokens per side."""
    embed = partial(HybridEmbed, backbone=build_backbone(shape, in_chans))
    model = build_vit(cfg, shape.vit, 1, num_classes, img_size, in_chans, embed_layer=embed)
    # The ViT's initialisation walks the backbone too: it resets every GroupNorm to scale 1, and
    # only timm's ResNetV2.init_weights running after it (default zero_init_last, which is also
    # why timm's own hybrids start this way despite building theirs with it off) zeroes the last
    # ones again. State the original's init here rather than rely on that order.
    for module in model.patch_embed.backbone.modules():
        if isinstance(module, Bottleneck):
            module.zero_init_last()
    return model
