"""The ViT of the paper on top of timm: sizes, the factory, position variants and heads."""

from benchmark.models.heads import TanhHead, pre_logits, replace_head
from benchmark.models.pos_embed import InjectPos, PosEmbed1d, PosEmbed2d, RelativeAttention
from benchmark.models.vit import PaperViT, build_model, math_attention, param_count, validate_model
from benchmark.sizes import SIZES, ViTSize, parse_arch, resolve_shape

__all__ = [
    "SIZES",
    "InjectPos",
    "PaperViT",
    "PosEmbed1d",
    "PosEmbed2d",
    "RelativeAttention",
    "TanhHead",
    "ViTSize",
    "build_model",
    "math_attention",
    "param_count",
    "parse_arch",
    "pre_logits",
    "replace_head",
    "resolve_shape",
    "validate_model",
]
