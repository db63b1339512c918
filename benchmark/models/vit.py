"""The ViT, on top of timm (sizes, variant strings and the family's record: benchmark.sizes; the
factory: benchmark.models.build_model).

timm's VisionTransformer already is the paper's encoder: pre-LN blocks, GELU MLP, final LayerNorm,
class token, learned 1-D position table. `build_vit` configures it from a ModelConfig and adds
what timm lacks: the 2-D and relative position variants, per-layer injection (App. D.4), GAP after
the final LayerNorm (App. D.3) and the tanh pre-logits head (§3.1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import get_args

import torch
from timm.layers import Attention, PatchEmbed
from timm.models.vision_transformer import VisionTransformer, init_weights_vit_jax
from torch import nn

from benchmark.config import ModelConfig, Pool, PosEmbed, PosInject
from benchmark.errors import UserError
from benchmark.models.heads import TanhHead, replace_head
from benchmark.models.pos_embed import InjectPos, PosEmbed1d, PosEmbed2d, RelativeAttention
from benchmark.sizes import ModelShape, ViTSize


class PaperViT(VisionTransformer):
    """timm's VisionTransformer with a hook for a stem position embedding timm does not have.

    `stem_pos` (e.g. the 2-D table) is added to the tokens, class token included, where timm
    adds its 1-D `pos_embed`; with neither, only the embedding dropout runs there.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stem_pos: nn.Module | None = None

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.pos_embed is not None:
            return super()._pos_embed(x)  # timm: class token, 1-D table, dropout
        x = super()._pos_embed(x)  # timm: class token only, and no dropout
        if self.stem_pos is not None:
            x = self.stem_pos(x)
        # App. B.1: dropout directly after adding the position embedding, which the original code
        # applies whatever the embedding is; timm skips it when it has no table.
        return self.pos_drop(x)


def validate_vit(cfg: ModelConfig, shape: ModelShape) -> None:
    """Raise UserError, naming the valid choices, if the ViT encoder of `shape` (a plain ViT's or a
    hybrid's) and `cfg`'s variant fields do not fit together; builds nothing. The ViT and hybrid
    families' check (benchmark.sizes)."""
    size = shape.vit
    if size.width % size.heads:
        raise UserError(
            f"model width {size.width} does not split into {size.heads} heads; "
            "choose model.width a multiple of model.heads"
        )
    # App. D.4: the 2-D embedding is two tables of D/2 (X and Y), concatenated.
    if cfg.pos_embed == "2d" and size.width % 2:
        raise UserError(f"model.pos_embed='2d' needs an even width (two tables of D/2), not {size.width}")
    # App. D.4 / Table 8: per-layer injection only exists for the learned absolute tables.
    if cfg.pos_inject != "stem" and cfg.pos_embed not in ("1d", "2d"):
        raise UserError(
            f"model.pos_inject={cfg.pos_inject!r} needs an absolute embedding, not "
            f"model.pos_embed={cfg.pos_embed!r}; valid: pos_embed none/relative with pos_inject stem, "
            "or pos_embed 1d/2d with pos_inject stem, every_layer or every_layer_shared"
        )


def check_choices(cfg: ModelConfig) -> None:
    """The Literal fields hold one of their choices (config types them but a dict can bypass it)."""
    for name, value, choices in (
        ("pos_embed", cfg.pos_embed, get_args(PosEmbed)),
        ("pos_inject", cfg.pos_inject, get_args(PosInject)),
        ("pool", cfg.pool, get_args(Pool)),
    ):
        if value not in choices:
            raise UserError(f"model.{name}={value!r} is not valid; choose one of: {', '.join(choices)}")


def _make_table(kind: str, model: VisionTransformer) -> nn.Module:
    if kind == "1d":
        return PosEmbed1d(model.patch_embed.num_patches + model.num_prefix_tokens, model.embed_dim)
    return PosEmbed2d(model.patch_embed.grid_size, model.embed_dim, model.num_prefix_tokens)


def build_vit(
    cfg: ModelConfig,
    size: ViTSize,
    patch: int,
    num_classes: int,
    img_size: int,
    in_chans: int,
    embed_layer: Callable[..., nn.Module] = PatchEmbed,
) -> PaperViT:
    """The ViT encoder `size` with `cfg`'s variants (a timm VisionTransformer, subclass PaperViT)
    over `embed_layer`: timm's PatchEmbed for a plain ViT, a HybridEmbed for a hybrid (patch 1 on
    the ResNet's feature map). Checks nothing: benchmark.models.build_model validates first.

    Initialisation is the original code's, through timm's "jax" mode (Xavier-uniform Linears,
    LeCun-normal patch embedding, position tables normal 0.02) and a zero final head Linear
    (head_zeroinit). Same torch seed, same weights. Builds on the current default device (so
    `with torch.device("meta")` is free).
    """
    token = cfg.pool == "token"
    model = PaperViT(
        img_size=img_size,
        patch_size=patch,
        in_chans=in_chans,
        embed_layer=embed_layer,
        num_classes=num_classes,
        embed_dim=size.width,
        depth=size.depth,
        num_heads=size.heads,
        mlp_ratio=size.mlp / size.width,
        qkv_bias=True,  # as the original code
        # App. D.3: GAP = mean over the tokens after the encoder's final LayerNorm, so fc_norm=False
        # (timm's default for 'avg' would move that LayerNorm after the pooling).
        class_token=token,
        global_pool="token" if token else "avg",
        fc_norm=False,
        # timm's own table covers "1-D at the stem"; every other variant is ours, added below.
        pos_embed="learn" if (cfg.pos_embed, cfg.pos_inject) == ("1d", "stem") else "none",
        # App. B.1: dropout after every dense layer but qkv, and after the position embedding; none
        # on the attention weights.
        drop_rate=cfg.dropout,
        pos_drop_rate=cfg.dropout,
        proj_drop_rate=cfg.dropout,
        attn_drop_rate=0.0,
        # The original (Flax) initialisation: Xavier-uniform dense kernels, LeCun-normal patch
        # embedding, zero head. timm's default (trunc-normal 0.02 everywhere) trains a small ViT
        # far more slowly: 38% vs 72% MNIST test accuracy after 150 steps of ViT-Mu/7 here.
        weight_init="jax",
    )
    if cfg.pos_embed == "2d" and cfg.pos_inject == "stem":
        model.stem_pos = _make_table("2d", model)
    elif cfg.pos_inject == "every_layer":
        # A separate table before every block; the first block's is the stem's.
        model.blocks = nn.Sequential(*(InjectPos(b, _make_table(cfg.pos_embed, model)) for b in model.blocks))
    elif cfg.pos_inject == "every_layer_shared":
        shared = _make_table(cfg.pos_embed, model)
        model.blocks = nn.Sequential(*(InjectPos(b, shared) for b in model.blocks))
    elif cfg.pos_embed == "relative":
        # Swapped in after construction: timm's _create_attn cannot pass the grid to attn_layer.
        for block in model.blocks:
            block.attn = RelativeAttention(
                size.width,
                size.heads,
                num_patches=model.patch_embed.num_patches,
                num_prefix_tokens=model.num_prefix_tokens,
                qkv_bias=True,
                proj_drop=cfg.dropout,
            )
            block.attn.apply(init_weights_vit_jax)  # as timm initialised the module it replaces

    _init_qkv_as_original(model)
    if cfg.prelogits:
        model.head = TanhHead(model.embed_dim, num_classes)
    else:
        replace_head(model, num_classes)
    return model


def build_plain_vit(
    cfg: ModelConfig, shape: ModelShape, num_classes: int, img_size: int, in_chans: int
) -> PaperViT:
    """The ViT family's builder (benchmark.sizes): `build_vit` over timm's PatchEmbed at the
    shape's patch size."""
    return build_vit(cfg, shape.vit, shape.patch, num_classes, img_size, in_chans)


def _init_qkv_as_original(model: nn.Module) -> None:
    """The original code has three projections q, k, v, each Xavier-uniform on D×D; timm's fused
    qkv Linear initialised as one 3D×D matrix gets a √2 smaller std. Re-draw each third alone."""
    for module in model.modules():
        if isinstance(module, Attention):
            for part in module.qkv.weight.data.chunk(3, dim=0):
                nn.init.xavier_uniform_(part)


@contextmanager
def math_attention(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily run every attention module of `model` with explicit matmuls (fused_attn=False),
    so torch's FLOP counter sees the attention products; restores each module's flag after."""
    saved = [(m, m.fused_attn) for m in model.modules() if hasattr(m, "fused_attn")]
    try:
        for m, _ in saved:
            m.fused_attn = False
        yield model
    finally:
        for m, flag in saved:
            m.fused_attn = flag
