"""Training FLOPs, counted by torch's own FLOP counter (never a hand-written formula).

A training step is counted as forward + backward. timm's fused (SDPA) attention hides the
attention matmuls from the counter on CPU (PERF.md: -4% for ViT-B/16, -15% for ViT-Ti), so the
count runs with the math attention path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmark.models import math_attention


def train_flops_per_image(model: nn.Module, images: torch.Tensor, num_classes: int) -> float:
    """FLOPs of one forward + backward pass, per image, for a batch shaped like `images`."""
    labels = torch.zeros(images.shape[0], dtype=torch.long, device=images.device)
    was_training = model.training
    model.train()
    with math_attention(model), FlopCounterMode(display=False) as counter:
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return counter.get_total_flops() / images.shape[0]


def exaflops(flops: float) -> float:
    return flops / 1e18
