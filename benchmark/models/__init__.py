"""The paper's models on top of timm: ViT (vit.py: position variants, heads), BiT ResNets (bit.py)
and hybrids (hybrid.py), built from a ModelConfig by `build_model` whatever the family: the family's
record (benchmark.sizes.FAMILIES) names what it reads and the functions that check and build it,
imported here only when a model is validated or built."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import torch
from torch import nn

from benchmark.config import ModelConfig
from benchmark.errors import UserError
from benchmark.models.heads import TanhHead, pre_logits, replace_head
from benchmark.models.pos_embed import InjectPos, PosEmbed1d, PosEmbed2d, RelativeAttention
from benchmark.models.vit import PaperViT, check_choices, math_attention
from benchmark.sizes import (
    FAMILIES,
    SIZES,
    ModelFamily,
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


def _hook(name: str) -> Callable[..., Any]:
    """A family's "module:function" hook, its module imported now (benchmark.sizes stays torch-free)."""
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


def _readers(field: str) -> str:
    """The families that read a ModelConfig field, as errors name them: "ViTs and hybrids"."""
    nouns = [f"{family.noun}s" for family in FAMILIES.values() if field in family.fields]
    return nouns[0] if len(nouns) == 1 else f"{', '.join(nouns[:-1])} and {nouns[-1]}"


def _check_fields(cfg: ModelConfig, family: ModelFamily) -> None:
    """Refuse a field the family does not read, unless at its default: it would describe another
    family's model, not a different one of this family (and two configs that build one model
    would get two run ids)."""
    # §3.1's tanh pre-logits layer is the ViT's (model.prelogits defaults to it): a family without
    # it (a BiT's head is one Linear on the pooled features) refuses it rather than ignore it.
    if cfg.prelogits and not family.prelogits:
        raise UserError(
            f"model.prelogits=true (the ViT's tanh pre-logits head) does not apply to the {family.noun} "
            f"{cfg.arch!r}; set model.prelogits=false"
        )
    for field in fields(ModelConfig):
        if field.name in ("arch", "prelogits", "checkpoint", "checkpoint_sha256", *family.fields):
            continue
        value = getattr(cfg, field.name)
        if value != field.default:
            raise UserError(
                f"model.{field.name}={value!r} applies to {_readers(field.name)}, not to the {family.noun} "
                f"{cfg.arch!r}; leave it at {field.default!r}{family.field_note}"
            )


def validate_model(cfg: ModelConfig) -> ModelShape:
    """Raise UserError, naming the valid choices, if `cfg` names an unknown model or an invalid
    combination for its family; else return its shape. Builds nothing (the CLI checks every run
    before starting one)."""
    check_choices(cfg)
    if cfg.checkpoint:  # a released checkpoint: its architecture is the file's
        from benchmark.released import check_model

        check_model(cfg)
    shape = resolve_model(cfg)
    family = FAMILIES[shape.family]
    _check_fields(cfg, family)
    if family.check:
        _hook(family.check)(cfg, shape)
    return shape


def build_model(cfg: ModelConfig, num_classes: int, img_size: int, in_chans: int) -> nn.Module:
    """The model `cfg` describes, built by its family's builder (a PaperViT for a ViT or hybrid, a
    timm ResNetV2 for a BiT), with a zero-initialised classifier. Same torch seed, same weights;
    builds on the current default device (so `with torch.device("meta")` is free)."""
    shape = validate_model(cfg)
    if num_classes < 1:
        raise UserError(f"num_classes={num_classes} is not valid; it must be at least 1")
    family = FAMILIES[shape.family]
    # A model that reads the image as a grid of tokens (a ViT's patches, a hybrid's feature map)
    # needs that grid to tile the image exactly.
    if family.patch_name and (img_size < shape.patch or img_size % shape.patch):
        raise UserError(
            f"image size {img_size} is not a multiple of the {family.patch_name} {shape.patch} "
            f"({cfg.arch}{f', model.patch={cfg.patch}' if cfg.patch else ''}); choose one that divides it"
        )
    return _hook(family.build)(cfg, shape, num_classes, img_size, in_chans)


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
