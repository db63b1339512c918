"""The optimisation step shared by pre-training, fine-tuning and `vitbench bench`: the learning
rate schedule, AdamW with the paper's weight-decay groups, and one training step.

§4.1: AdamW (β1 0.9, β2 0.999, decoupled weight decay), linear warm-up then linear (or cosine)
decay to `end_lr`, gradient clipping at global norm 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.config import OptimConfig


def lr_at(step: int, cfg: OptimConfig) -> float:
    """Warm-up multiplies by min(1, step/warmup); then linear or cosine decay to end_lr."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    return decayed_lr(cfg.lr, cfg.end_lr, step - cfg.warmup_steps, cfg.steps - cfg.warmup_steps, cfg.schedule)


def decayed_lr(lr: float, end_lr: float, step: int, steps: int, schedule: str) -> float:
    """The decay part of a schedule: from `lr` at step 0 to `end_lr` at `steps`."""
    progress = step / max(1, steps)
    if schedule == "cosine":
        return end_lr + (lr - end_lr) * 0.5 * (1 + math.cos(math.pi * progress))
    return lr + (end_lr - lr) * progress


def make_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    # Decoupled weight decay on the kernels of dense and conv layers only; biases, norms, the
    # class token and every position table are left alone, so all position variants are alike.
    kernels = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)}
    decay = [p for p in model.parameters() if id(p) in kernels and p.requires_grad]
    other = [p for p in model.parameters() if id(p) not in kernels and p.requires_grad]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0.0}]
    # One fused kernel for the whole update on a GPU (the shipped H100 throughput table was measured with it); the
    # default for-each implementation on a CPU, where fused AdamW is not faster.
    on_gpu = any(p.is_cuda for p in decay + other)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=True if on_gpu else None)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def precision(device: torch.device) -> str:
    """The arithmetic `train_step` uses on `device`, as run records and `vitbench bench` state it."""
    return "bf16 autocast" if device.type == "cuda" else "fp32"


def train_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    clip_norm: float,
    params: Iterable[torch.Tensor],
    label_smoothing: float = 0.0,
    micro_batch: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, backward, clip at global norm `clip_norm`, update. Returns (loss, grad norm) as
    tensors: reading them is the caller's choice, so the step itself never syncs with the host.
    bf16 autocast on GPUs; full precision on CPU, where it measured slower for small models.

    With `micro_batch` (0: the whole batch at once) the gradients of micro-batches of that size
    accumulate, each loss weighted by its share of the batch: the same step as the whole batch at
    once (the paper's batch 512 where memory is short), up to float rounding."""
    optimizer.zero_grad(set_to_none=True)
    loss = torch.zeros((), device=x.device)
    for xs, ys in zip(x.split(micro_batch or len(x)), y.split(micro_batch or len(y)), strict=True):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=x.device.type == "cuda"):
            part = F.cross_entropy(net(xs), ys, label_smoothing=label_smoothing) * (len(ys) / len(y))
        part.backward()
        loss += part.detach()
    grad_norm = nn.utils.clip_grad_norm_(params, clip_norm)
    optimizer.step()
    return loss, grad_norm
