"""A built model at another input resolution (§3.2 "Fine-tuning and higher resolution").

The paper fine-tunes at a higher resolution than it pre-trains at, keeping the patch size, so the
sequence grows; the learned position embeddings are then resized by 2-D interpolation of the
patch grid, the class token's row untouched. The original code did it with
`scipy.ndimage.zoom(grid, (gs_new / gs_old, gs_new / gs_old, 1), order=1)` (vit_jax's
checkpoint.py): bilinear with the corner rows of the grid kept at the corners (scipy's
`grid_mode=False`, i.e. torch's `align_corners=True`, not torch's default). That is the default
here, and it calls scipy itself; timm's `resample_abs_pos_embed` (bicubic, antialiased, torch's
half-pixel alignment) is the option.

Every position variant of this package is handled where it lives: timm's 1-D table at the stem,
our 1-D tables before every layer (one module per layer, or one shared), the 2-D factorised
table (X over columns and Y over rows, each interpolated along its own axis) and the relative
attention's offset table (see `_resize_relative`). A hybrid's ResNet is resolution-free: only its
token grid changes. A BiT ResNet has nothing to resize.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage
import torch
from timm.layers import resample_abs_pos_embed
from torch import nn

from benchmark.config import Interpolation
from benchmark.models.pos_embed import PosEmbed1d, PosEmbed2d, RelativeAttention, relative_index

Grid = tuple[int, int]


def resize_model(model: nn.Module, image_size: int, interpolation: Interpolation = "bilinear") -> None:
    """Set `model` (built by benchmark.models.build_model) to take `image_size`² inputs, in place:
    the patch embedding's grid and every position table follow. A BiT ResNet is left as it is
    (convolutions and a global pool take any size)."""
    embed = getattr(model, "patch_embed", None)
    if embed is None:
        return
    old = tuple(embed.grid_size)
    # timm's own: the image and grid sizes a PatchEmbed (or a hybrid's HybridEmbed, whose
    # ResNet it runs once on zeros to learn the new feature map's size) checks its input against.
    embed.set_input_size(img_size=image_size)
    new = tuple(embed.grid_size)
    prefix = model.num_prefix_tokens
    with torch.no_grad():
        if model.pos_embed is not None:  # timm's 1-D table at the stem
            model.pos_embed = _new_param(
                model.pos_embed, _resize_1d(model.pos_embed, prefix, old, new, interpolation)
            )
        # modules() yields a shared module once: "every_layer_shared" is resized once.
        for module in model.modules():
            if isinstance(module, PosEmbed1d):
                module.weight = _new_param(
                    module.weight, _resize_1d(module.weight, prefix, old, new, interpolation)
                )
            elif isinstance(module, PosEmbed2d):
                # X has one row per column, Y one per row: each is a 1 × n (or n × 1) grid.
                module.x_embed = _new_param(
                    module.x_embed,
                    _resize_grid(module.x_embed[None], (1, old[1]), (1, new[1]), interpolation)[0],
                )
                module.y_embed = _new_param(
                    module.y_embed,
                    _resize_grid(module.y_embed[:, None], (old[0], 1), (new[0], 1), interpolation)[:, 0],
                )
                module.grid_size = new
            elif isinstance(module, RelativeAttention):
                _resize_relative(module, old[0] * old[1], new[0] * new[1], prefix)


def _new_param(old: nn.Parameter, value: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(value.to(old.dtype).contiguous(), requires_grad=old.requires_grad)


def _resize_1d(
    table: torch.Tensor, prefix: int, old: Grid, new: Grid, interpolation: Interpolation
) -> torch.Tensor:
    """A (1, prefix + rows·cols, D) raster-order table at grid `new`; the prefix rows kept."""
    grid = table[0, prefix:].reshape(old[0], old[1], -1)
    resized = _resize_grid(grid, old, new, interpolation).reshape(1, new[0] * new[1], -1)
    return torch.cat([table[:, :prefix], resized], dim=1)


def _resize_grid(grid: torch.Tensor, old: Grid, new: Grid, interpolation: Interpolation) -> torch.Tensor:
    """A (rows, cols, D) grid of embeddings interpolated to (new rows, new cols, D)."""
    if interpolation == "bicubic":
        flat = grid.reshape(1, old[0] * old[1], -1)
        return resample_abs_pos_embed(flat, list(new), list(old), num_prefix_tokens=0)[0].reshape(*new, -1)
    # The original code's call, on a float64 copy (scipy computes in double whatever it is given).
    zoom = (new[0] / old[0], new[1] / old[1], 1)
    out = scipy.ndimage.zoom(grid.detach().cpu().double().numpy(), zoom, order=1)
    if out.shape[:2] != new:  # scipy rounds old · zoom: never off for integer sizes, but say so
        raise AssertionError(f"scipy.ndimage.zoom gave a {out.shape[:2]} grid, not {new}")
    return torch.from_numpy(np.ascontiguousarray(out)).to(grid.device)


def _resize_relative(attn: RelativeAttention, old_n: int, new_n: int, prefix: int) -> None:
    """Extend (or cut) the offset table of the paper's 1-D relative attention to `new_n` patches.

    The relative variant is 1-D (App. D.4): a row per raster offset o = p_q − p_k between two
    patches in the sequence, o ∈ [−(N − 1), N − 1], and one last row for every pair involving the
    class token. It knows no grid, so nothing can be interpolated in 2-D: "correct" here means a
    longer sequence changes nothing the model learned, as a 1-D relative embedding generalises to
    longer sequences in Shaw et al. (2018), who clip offsets at the largest one trained. Every
    offset the old sequence had keeps its row, each new, farther offset starts as a copy of the
    farthest learned one of its sign (its clipped value; fine-tuning may then tell them apart), and
    the class token's row stays the class token's. Resizing to the same length is the identity.
    """
    offsets = torch.arange(-(new_n - 1), new_n, device=attn.rel_embed.device)
    rows = offsets.clamp(-(old_n - 1), old_n - 1) + old_n - 1
    if prefix:
        rows = torch.cat([rows, rows.new_tensor([2 * old_n - 1])])  # the class token's row, last
    attn.rel_embed = _new_param(attn.rel_embed, attn.rel_embed[rows])
    attn.rel_index = relative_index(new_n, prefix).to(attn.rel_index.device)
