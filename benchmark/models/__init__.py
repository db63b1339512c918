"""The paper's models on top of timm: ViT (vit.py: position variants, heads), BiT ResNets (bit.py)
and hybrids (hybrid.py), built from a ModelConfig by `build_model` whatever the family."""

from __future__ import annotations

import torch
from torch import nn

from benchmark.config import ModelConfig
from benchmark.errors import UserError
from benchmark.models.bit import build_bit, validate_bit
from benchmark.models.heads import TanhHead, pre_logits, replace_head
from benchmark.models.hybrid import build_hybrid
from benchmark.models.pos_embed import InjectPos, PosEmbed1d, PosEmbed2d, RelativeAttention
from benchmark.models.vit import PaperViT, build_vit, check_choices, math_attention, validate_vit
from benchmark.sizes import (
    SIZES,
    ModelShape,
    ParsedModel,
    ViTSize,
    parse_arch,
    parse_model,
    resolve_model,
    resolve_shape,
)

__all__ = [
    "SIZES",
    "InjectPos",
    "ModelShape",
    "PaperViT",
    "ParsedModel",
    "PosEmbed1d",
    "PosEmbed2d",
    "RelativeAttention",
    "TanhHead",
    "ViTSize",
    "build_model",
    "math_attention",
    "param_count",
    "parse_arch",
    "parse_model",
    "pre_logits",
    "replace_head",
    "resolve_model",
    "resolve_shape",
    "token_grid",
    "validate_model",
]


def validate_model(cfg: ModelConfig) -> ModelShape:
    """Raise UserError, naming the valid choices, if `cfg` names an unknown model or an invalid
    combination for its family; else return its shape. Builds nothing (the CLI checks every run
    before starting one)."""
    check_choices(cfg)
    shape = resolve_model(cfg)
    if shape.family == "bit":
        validate_bit(cfg)
        return shape
    if shape.family == "vit" and cfg.resnet_width:
        raise UserError(
            f"model.resnet_width={cfg.resnet_width} applies to BiT ResNets and hybrids, not to the ViT "
            f"{cfg.arch!r}; leave it at 0"
        )
    validate_vit(cfg, shape.vit)
    return shape


def build_model(cfg: ModelConfig, num_classes: int, img_size: int, in_chans: int) -> nn.Module:
    """The model `cfg` describes: a PaperViT (ViT or hybrid) or a timm ResNetV2 (BiT), with a
    zero-initialised classifier. Same torch seed, same weights; builds on the current default
    device (so `with torch.device("meta")` is free)."""
    shape = validate_model(cfg)
    if num_classes < 1:
        raise UserError(f"num_classes={num_classes} is not valid; it must be at least 1")
    if shape.family == "bit":
        return build_bit(shape, num_classes, in_chans)
    # A ViT's patch, or a hybrid's total downsampling, tiles the image exactly.
    if img_size < shape.patch or img_size % shape.patch:
        what = "patch size" if shape.family == "vit" else "hybrid's stride"
        raise UserError(
            f"image size {img_size} is not a multiple of the {what} {shape.patch} "
            f"({cfg.arch}{f', model.patch={cfg.patch}' if cfg.patch else ''}); choose one that divides it"
        )
    if shape.family == "hybrid":
        return build_hybrid(cfg, shape, num_classes, img_size, in_chans)
    return build_vit(cfg, shape.vit, shape.patch, num_classes, img_size, in_chans)


def token_grid(model: nn.Module) -> tuple[int, int] | None:
    """The (rows, columns) of a ViT's or hybrid's patch tokens; None for a BiT ResNet."""
    embed = getattr(model, "patch_embed", None)
    return None if embed is None else tuple(embed.grid_size)


def param_count(arch: str, num_classes: int = 1000, img_size: int = 224) -> int:
    """Parameters of `arch` with a plain linear `num_classes` head, built on the meta device (so
    ViT-H costs nothing): the count compared with Table 1 and timm.

    ViT and hybrid: the patch (or hybrid) embedding with its ResNet, the class token, the 1-D
    position table at `img_size`, the encoder, the final LayerNorm and a Linear(D, num_classes)
    head; not the tanh pre-logits layer. BiT: the stem, the stages, the final GroupNorm and the
    1×1-conv classifier. B/16 86.6M, L/16 304.3M, L/32 306.5M, H/14 632.0M against Table 1's 86M,
    307M, 632M.
    """
    cfg = ModelConfig(arch=arch, pos_embed="1d", pos_inject="stem", pool="token", prelogits=False)
    with torch.device("meta"):
        model = build_model(cfg, num_classes, img_size, in_chans=3)
    return sum(p.numel() for p in model.parameters())
