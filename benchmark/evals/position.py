"""A position-only probe: the class of an image is where a blob sits (its quadrant), nothing else.

The control of the position-embedding study (issue 18 §4): a class-token ViT without position
embeddings treats its patches as a set, so images whose blobs sit in different quadrants give it
the same features up to the blob's offset within its patches, and a linear probe on them scores at
chance (25%); with position embeddings the features can say where the blob is. The images are
procedural (no download): a square blob of a quarter of the image's side, of random brightness,
placed uniformly within its quadrant on a noisy background, at the model's resolution and
channels. A logistic-regression probe (benchmark.evals.linear) fits the frozen pre-logits of the
train images and is scored on the test images.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmark import metrics
from benchmark.config import RunConfig
from benchmark.evals.base import EvalContext, register
from benchmark.evals.linear import logreg_accuracy
from benchmark.models import pre_logits

TRAIN_PER_CLASS, TEST_PER_CLASS = 50, 100  # 400 test images: a standard error under 2.5 pts
QUADRANTS = 4


def quadrant_images(n_per_class: int, size: int, channels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(images in [-1, 1] of shape (4n, channels, size, size), labels 0–3: the blob's quadrant)."""
    rng = np.random.default_rng(seed)
    side, half = max(1, size // 4), size // 2
    labels = np.repeat(np.arange(QUADRANTS), n_per_class)
    images = rng.normal(-0.8, 0.1, (len(labels), channels, size, size))
    for i, q in enumerate(labels):
        top = (q // 2) * half + rng.integers(0, half - side + 1)
        left = (q % 2) * half + rng.integers(0, half - side + 1)
        images[i, :, top : top + side, left : left + side] = rng.uniform(0.3, 1.0)
    return np.clip(images, -1, 1).astype(np.float32), labels


def _describe(cfg: RunConfig) -> str:
    return (
        f"position-only probe: logistic regression on the frozen pre-logits of {QUADRANTS * TRAIN_PER_CLASS} "
        f"procedural images whose class is the quadrant of a blob, scored on {QUADRANTS * TEST_PER_CLASS} more "
        "(chance 25%)"
    )


@register("position", _describe)
@torch.no_grad()
def position_probe(ctx: EvalContext) -> dict[str, float]:
    size, channels = ctx.probes.size, ctx.probes.channels
    device = next(ctx.model.parameters()).device

    def features(x: np.ndarray) -> np.ndarray:
        batches = torch.from_numpy(x).to(device).split(256)
        return torch.cat(
            [pre_logits(ctx.model, b, ctx.cfg.eval.representation).float().cpu() for b in batches]
        ).numpy()

    train_x, train_y = quadrant_images(TRAIN_PER_CLASS, size, channels, seed=0)
    test_x, test_y = quadrant_images(TEST_PER_CLASS, size, channels, seed=1)
    return {metrics.POSITION_TOP1: logreg_accuracy(features(train_x), train_y, features(test_x), test_y)}
