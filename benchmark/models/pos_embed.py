"""The position-embedding variants of App. D.4 / Table 8 that timm lacks.

timm has the 1-D learned table at the stem (`pos_embed='learn'`) and no embedding
(`pos_embed='none'`). This module adds the 2-D factorised table, a 1-D table usable outside the
stem, the paper's 1-D relative attention, and the wrapper that injects an embedding before a block
("every layer" and "every layer, shared"). The code for these variants was never released
(vision_transformer issue 161), so the choices below are ours and are documented where made.

Tokens are always laid out as timm lays them out: prefix tokens (the class token, if any) first,
then the patches in raster order (row-major: patch (row, col) is at `row * grid_w + col`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import Attention, trunc_normal_
from timm.layers.attention import maybe_add_mask, resolve_self_attn_mask
from torch import nn

# The original code initialises position embeddings with normal(std=0.02). timm's trunc_normal_
# cuts at ±2 in absolute value, i.e. at 100 std: the same distribution in practice, and the same
# call timm uses for its own 1-D table.
_EMBED_STD = 0.02


class PosEmbed1d(nn.Module):
    """A learned table over raster-order positions, class token included (App. D.4 "1-D").

    Used where timm's own `pos_embed` cannot go: before a block other than the first.
    """

    def __init__(self, num_tokens: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(1, num_tokens, dim))
        self.init_weights()

    def init_weights(self) -> None:
        trunc_normal_(self.weight, std=_EMBED_STD)

    def table(self) -> torch.Tensor:
        """(num_tokens, D): the embedding of every token position."""
        return self.weight[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight


class PosEmbed2d(nn.Module):
    """App. D.4 "2-D": a patch's embedding is concat(X[col], Y[row]), X and Y of width D/2.

    X has one row per grid column, Y one per grid row. The class token (any prefix token) has no
    grid position, so it gets its own learned D-vector.
    """

    def __init__(self, grid_size: tuple[int, int], dim: int, num_prefix_tokens: int) -> None:
        super().__init__()
        grid_h, grid_w = grid_size
        self.grid_size = (grid_h, grid_w)
        # D/2 each; every size in SIZES has an even D (an odd D would give Y the extra channel).
        self.x_embed = nn.Parameter(torch.empty(grid_w, dim // 2))
        self.y_embed = nn.Parameter(torch.empty(grid_h, dim - dim // 2))
        self.prefix_embed = nn.Parameter(torch.empty(num_prefix_tokens, dim)) if num_prefix_tokens else None
        self.init_weights()

    def init_weights(self) -> None:
        trunc_normal_(self.x_embed, std=_EMBED_STD)
        trunc_normal_(self.y_embed, std=_EMBED_STD)
        if self.prefix_embed is not None:
            trunc_normal_(self.prefix_embed, std=_EMBED_STD)

    def table(self) -> torch.Tensor:
        """(prefix + grid_h * grid_w, D): the embedding of every token position, raster order."""
        grid_h, grid_w = self.grid_size
        x = self.x_embed[None, :, :].expand(grid_h, -1, -1)  # [row, col] -> X[col]
        y = self.y_embed[:, None, :].expand(-1, grid_w, -1)  # [row, col] -> Y[row]
        patches = torch.cat([x, y], dim=-1).reshape(grid_h * grid_w, -1)
        if self.prefix_embed is None:
            return patches
        return torch.cat([self.prefix_embed, patches], dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.table()


class InjectPos(nn.Module):
    """A timm block with a position embedding added to its input (App. D.4 "every layer").

    For "every layer, shared" the same `pos` module sits in every wrapper, so its parameters are
    counted (and trained) once.
    """

    def __init__(self, block: nn.Module, pos: nn.Module) -> None:
        super().__init__()
        self.pos = pos
        self.block = block

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.block(self.pos(x), **kwargs)


def relative_index(num_patches: int, num_prefix_tokens: int) -> torch.Tensor:
    """(tokens, tokens): the row of RelativeAttention's table each (query, key) pair reads."""
    pos = torch.arange(num_patches)
    index = pos[:, None] - pos[None, :] + num_patches - 1
    p = num_prefix_tokens
    return F.pad(index, (p, 0, p, 0), value=2 * num_patches - 1)


class RelativeAttention(Attention):
    """timm's attention plus the paper's 1-D relative attention (App. D.4, Shaw-style).

    Every raster-order offset p_q − p_k between two patches has a learned embedding r of width
    head_dim; the logits q·r(p_q − p_k), scaled by the same 1/sqrt(head_dim) as q·k, are added to
    the attention logits before the softmax. The paper says neither whether r is per head nor per
    layer: here each layer has its own table, shared by all its heads.

    Table layout (`rel_embed`, shape (2N − 1 [+ 1], head_dim) for N patches): row `o + N − 1` is
    the offset o = p_q − p_k ∈ [−(N − 1), N − 1]. The class token has no raster position (the
    paper does not say what its offset is): one extra learned row, the last, is used for every
    pair that involves a prefix token, in either direction, itself included.
    """

    def __init__(
        self, dim: int, num_heads: int, *, num_patches: int, num_prefix_tokens: int, **kwargs
    ) -> None:
        super().__init__(dim, num_heads=num_heads, **kwargs)
        num_offsets = 2 * num_patches - 1
        self.rel_embed = nn.Parameter(
            torch.empty(num_offsets + (1 if num_prefix_tokens else 0), self.head_dim)
        )
        # Derived from the sizes, so not part of the state dict.
        self.register_buffer("rel_index", relative_index(num_patches, num_prefix_tokens), persistent=False)
        self.init_weights()

    def init_weights(self) -> None:
        trunc_normal_(self.rel_embed, std=_EMBED_STD)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        # Attention.forward with one change: the relative logits go in as an additive bias.
        B, N, _ = x.shape
        gate = self.gate(x).sigmoid() if self.gate is not None else None
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)

        # q·r for every (query, table row), then pick each pair's row: (B, H, N, N).
        rel = (q * self.scale) @ self.rel_embed.transpose(0, 1)
        bias = torch.take_along_dim(rel, self.rel_index[None, None], dim=-1)
        bias = maybe_add_mask(bias, resolve_self_attn_mask(N, bias, attn_mask, is_causal))

        if self.fused_attn:
            # SDPA scales q·k itself and adds attn_mask unscaled: the bias is pre-scaled above.
            x = F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias, dropout_p=self.attn_drop.p if self.training else 0.0
            )
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1) + bias
            attn = attn.softmax(dim=-1)
            attn = self.attn_drop(attn)
            x = attn @ v

        x = x.transpose(1, 2).reshape(B, N, self.attn_dim)
        x = self.norm(x)
        if gate is not None:
            x = x * gate
        x = self.proj(x)
        return self.proj_drop(x)
