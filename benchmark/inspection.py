"""What a ViT learned (§4.5; Figs. 6, 7, 10, 11): measurements over a model and a fixed sample of
evaluation images. The `inspect` evaluator (benchmark/evals/inspect.py) takes them at the end of
training, on the trained model and on the same run's untrained initialisation (the null without
structure), and stores them in the run; the inspect study's report only reads them.

- Fig. 7 left: principal components of the patch-embedding filters, as (C, P, P) image tiles.
- Fig. 7 centre / Fig. 10: cosine similarity of each patch's position embedding with every other.
- Fig. 7 right / Fig. 11: mean attention distance per head and layer, in pixels.
- Fig. 6: attention rollout (Abnar & Zuidema, 2020).

Attention weights come from a separate, explicit pass: timm's fused attention (SDPA) never forms
the weights, so a hook on `attn_drop` sees nothing while it is on. `attention_maps` switches every
attention module to its non-fused path (benchmark.models.math_attention, restored afterwards) and
hooks `attn_drop`, whose input and output are the softmaxed weights (no dropout on attention here,
App. B.1). That covers timm's Attention and our RelativeAttention alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.decomposition import PCA
from timm.layers import Attention
from torch import nn

PCA_COMPONENTS = 28  # Fig. 7 left shows the first 28
# Explicit attention passes take this many images at a time: (layers, images, heads, T, T) weights
# are held at once, 24 x 32 x 16 x 197^2 floats (2 GB) for ViT-L/16 at 224 px.
ATTENTION_BATCH = 32


def filter_components(model: nn.Module, n: int = PCA_COMPONENTS) -> tuple[np.ndarray, np.ndarray]:
    """The first `n` principal components of a ViT's patch-embedding filters, each reshaped to the
    patch's (C, P, P) so it can be drawn as an image tile, and their explained-variance ratios.
    Each filter (one per embedding dimension) is one sample; fewer components when the filters span
    fewer dimensions. sklearn's PCA fixes each component's sign, so tiles are drawn the same way every time."""
    proj = model.patch_embed.proj
    if getattr(model.patch_embed, "backbone", None) is not None:
        raise ValueError("a hybrid's embedding is a 1x1 projection of ResNet features, not image filters")
    weight = proj.weight.detach().float().cpu().numpy()  # (D, C, P, P)
    flat = weight.reshape(weight.shape[0], -1)
    pca = PCA(n_components=min(n, *flat.shape), svd_solver="full").fit(flat)
    return pca.components_.reshape(-1, *weight.shape[1:]), pca.explained_variance_ratio_


def position_tables(model: nn.Module) -> dict[str, torch.Tensor]:
    """The patches' position embeddings, (grid_h * grid_w, D) in raster order, prefix tokens dropped:
    {"stem": table} for a stem embedding (1-D or 2-D), {"layer 1": ..., "layer 2": ...} when one is
    injected before every layer (the same module for "every layer, shared", so one "shared" entry);
    {} without a learned absolute table (none, relative)."""
    prefix = model.num_prefix_tokens
    if model.pos_embed is not None:  # timm's own 1-D table at the stem
        return {"stem": model.pos_embed[0, prefix:].detach()}
    if model.stem_pos is not None:  # our 2-D table at the stem
        return {"stem": model.stem_pos.table()[prefix:].detach()}
    injected = [block.pos for block in model.blocks if hasattr(block, "pos")]
    if not injected:
        return {}
    if all(pos is injected[0] for pos in injected):
        return {"shared": injected[0].table()[prefix:].detach()}
    return {f"layer {i + 1}": pos.table()[prefix:].detach() for i, pos in enumerate(injected)}


def position_similarity(table: torch.Tensor, grid: tuple[int, int]) -> np.ndarray:
    """Cosine similarity of every patch's embedding with every other's, as (grid_h, grid_w, grid_h,
    grid_w): entry [r, c] is the tile Fig. 7 centre draws for the patch in row r, column c."""
    unit = nn.functional.normalize(table.float(), dim=-1)
    return (unit @ unit.T).reshape(*grid, *grid).cpu().numpy()


def _pairs(grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks over (patch, patch) pairs in raster order: same row, same column, and not the same patch."""
    rows, cols = np.divmod(np.arange(grid[0] * grid[1]), grid[1])
    other = ~np.eye(grid[0] * grid[1], dtype=bool)
    return rows[:, None] == rows[None, :], cols[:, None] == cols[None, :], other


def row_column_contrast(similarity: np.ndarray) -> float:
    """Mean similarity of patch pairs that share a row or a column, minus the mean over the other
    pairs (each patch with itself left out): > 0 when the embedding encodes the grid's rows and
    columns, ~0 for a table that knows nothing of the grid."""
    gh, gw = similarity.shape[:2]
    same_row, same_col, other = _pairs((gh, gw))
    flat = similarity.reshape(gh * gw, gh * gw)
    same_line = same_row | same_col
    return float(flat[same_line & other].mean() - flat[~same_line].mean())


def axis_contrast(similarity: np.ndarray, axis: str) -> float:
    """As row_column_contrast, for one axis: pairs in the same row (`axis` "row") or the same column
    ("column"), against the pairs that share neither. A 1-D table learned in raster order can pick up
    its rows from raster neighbours alone; its columns are the part only the 2-D image teaches."""
    gh, gw = similarity.shape[:2]
    same_row, same_col, other = _pairs((gh, gw))
    same = {"row": same_row, "column": same_col}[axis]
    flat = similarity.reshape(gh * gw, gh * gw)
    return float(flat[same & other].mean() - flat[~(same_row | same_col)].mean())


@torch.no_grad()
def attention_maps(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Every layer's attention weights on `images`, (layers, B, heads, tokens, tokens), from one
    explicit (non-fused) forward pass in eval mode; the model is left as it was."""
    from benchmark.models import math_attention

    captured: list[torch.Tensor] = []
    layers = [m for m in model.modules() if isinstance(m, Attention)]  # in block order
    hooks = [m.attn_drop.register_forward_hook(lambda _m, _i, out: captured.append(out)) for m in layers]
    was_training = model.training
    try:
        with math_attention(model):
            model.eval()(images)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return torch.stack(captured)


def pixel_distances(grid: tuple[int, int], token_px: tuple[float, float]) -> torch.Tensor:
    """(N, N) Euclidean distance in pixels between the centres of every two patches (raster order)."""
    rows, cols = np.divmod(np.arange(grid[0] * grid[1]), grid[1])
    dy = (rows[:, None] - rows[None, :]) * token_px[0]
    dx = (cols[:, None] - cols[None, :]) * token_px[1]
    return torch.from_numpy(np.hypot(dy, dx))


def mean_attention_distance(
    attn: torch.Tensor, grid: tuple[int, int], token_px: tuple[float, float], num_prefix: int
) -> np.ndarray:
    """Mean attention distance per (layer, head), in pixels, from (layers, B, heads, T, T) weights.

    As sayakpaul/probing-vits computes it (the original authors released no code for Fig. 7): for
    each query patch, the pixel distance to every key patch weighted by its attention weight and
    summed; averaged over query patches and images. The class token is left out as query and as
    key, and the patch-to-patch weights are not renormalised, so weight on the class token counts
    as no distance."""
    patches = attn[..., num_prefix:, num_prefix:].double()
    per_query = (patches * pixel_distances(grid, token_px)).sum(-1)  # (layers, B, heads, queries)
    return per_query.mean(dim=(1, 3)).numpy()


def uniform_distance(grid: tuple[int, int], token_px: tuple[float, float], num_prefix: int) -> float:
    """The mean attention distance of a head that attends to every token equally: what a head blind
    to position gets, the reference for "attends globally" (same convention as above)."""
    tokens = num_prefix + grid[0] * grid[1]
    attn = torch.full((1, 1, 1, tokens, tokens), 1.0 / tokens)
    return float(mean_attention_distance(attn, grid, token_px, num_prefix)[0, 0])


def rollout(attn: torch.Tensor) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020) from (layers, B, heads, T, T) weights: average the
    heads, add the identity for the residual path, renormalise the rows, and multiply the layers,
    the last on the left. Returns (B, T, T): row i is how much each input token flows into token i."""
    eye = torch.eye(attn.shape[-1], dtype=attn.dtype)
    flow = eye.expand(attn.shape[1], -1, -1)
    for layer in attn:
        step = layer.mean(dim=1) + eye
        flow = (step / step.sum(dim=-1, keepdim=True)) @ flow
    return flow


def rollout_map(flow: torch.Tensor, grid: tuple[int, int], num_prefix: int) -> torch.Tensor:
    """What reaches the representation, per patch, (B, grid_h, grid_w): the class token's row over
    the patches; for GAP (no class token) the mean of the patch rows, since the representation is
    the mean of the patch tokens."""
    rows = flow[:, 0, num_prefix:] if num_prefix else flow[:, num_prefix:, num_prefix:].mean(dim=1)
    return rows.reshape(-1, *grid)


def stratified_sample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of `n` examples, as equal per class as the classes allow (counts differ by at most one
    while every class has examples left), drawn with `seed`. Ordered round-robin over the classes
    (in a seeded order), so any prefix is as balanced: the first ones are of distinct classes."""
    rng = np.random.default_rng(seed)
    classes = rng.permutation(np.unique(labels))
    position = {c: i for i, c in enumerate(classes.tolist())}
    taken: dict[object, int] = {}
    keys = []
    for i in rng.permutation(len(labels)).tolist():
        label = labels[i].item()
        keys.append((taken.get(label, 0), position[label], i))
        taken[label] = taken.get(label, 0) + 1
    return np.array([i for *_, i in sorted(keys)[:n]], dtype=np.int64)


@dataclass(frozen=True)
class Measurement:
    """One model measured on one sample of images: numbers only, stored by the evaluator."""

    distance: np.ndarray  # (layers, heads) mean attention distance in pixels
    rollout: np.ndarray  # (rollout images, grid_h, grid_w): what reaches the representation
    components: np.ndarray | None  # (k, C, P, P) filter components; None for a hybrid
    explained: np.ndarray | None  # their explained-variance ratios
    similarity: dict[str, np.ndarray]  # position_tables' keys -> (gh, gw, gh, gw)


def measure(model: nn.Module, images: torch.Tensor, rollout_images: int) -> Measurement:
    """Every measurement of `model` on `images` (prepared, on the model's device): attention distances
    averaged over all of them, the rollout of the first `rollout_images`, filters and position tables."""
    grid = tuple(model.patch_embed.grid_size)
    token_px = (images.shape[-2] / grid[0], images.shape[-1] / grid[1])
    prefix = model.num_prefix_tokens
    total = 0.0  # distances summed over images, one batch of weights at a time
    for batch in images.split(ATTENTION_BATCH):
        attn = attention_maps(model, batch).float().cpu()
        total = total + mean_attention_distance(attn, grid, token_px, prefix) * len(batch)
    flow = rollout(attention_maps(model, images[:rollout_images]).float().cpu())
    hybrid = getattr(model.patch_embed, "backbone", None) is not None
    components, explained = (None, None) if hybrid else filter_components(model)
    return Measurement(
        distance=total / len(images),
        rollout=rollout_map(flow, grid, prefix).numpy(),
        components=components,
        explained=explained,
        similarity={k: position_similarity(t, grid) for k, t in position_tables(model).items()},
    )
