"""Fine-tuning a pre-trained model on a downstream task (§3.2, App. B.1.1, Table 4).

The recipe: drop the whole pre-training head for one zero-initialised linear layer, SGD with
momentum 0.9, cosine decay, no weight decay, gradient clipping at global norm 1. The learning
rate is chosen on a dev split held out from the training set, then the model is fine-tuned again
on the full training set and evaluated on the test set.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.models import replace_head

DEV_FRACTION = 0.1  # of the training set, held out to choose the learning rate


def _finetune_once(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    steps: int,
    lr: float,
    batch: int,
    seed: int,
) -> nn.Module:
    tuned = copy.deepcopy(model)
    replace_head(tuned, num_classes)
    opt = torch.optim.SGD(tuned.parameters(), lr=lr, momentum=0.9, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    tuned.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(0, len(y), (min(batch, len(y)),), generator=gen).to(x.device)
        loss = F.cross_entropy(tuned(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(tuned.parameters(), 1.0)
        opt.step()
    return tuned.eval()


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    logits = torch.cat([model(x[i : i + 512]) for i in range(0, len(x), 512)])
    return (logits.argmax(1) == y).float().mean().item()


def finetune_accuracy(
    model: nn.Module,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    steps: int,
    lrs: Sequence[float],
    batch: int = 64,
    dev_fraction: float = DEV_FRACTION,
    seed: int = 0,
) -> tuple[float, float]:
    """(test top-1, chosen lr). The model passed in is left untouched."""
    perm = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(seed)).to(train_y.device)
    n_dev = max(1, int(len(perm) * dev_fraction))
    dev, rest = perm[:n_dev], perm[n_dev:]
    scores = {}
    for lr in lrs:
        tuned = _finetune_once(model, train_x[rest], train_y[rest], num_classes, steps, lr, batch, seed)
        scores[lr] = _accuracy(tuned, train_x[dev], train_y[dev])
    best = max(lrs, key=lambda lr: (scores[lr], -lr))  # ties: the smaller learning rate
    tuned = _finetune_once(model, train_x, train_y, num_classes, steps, best, batch, seed)
    return _accuracy(tuned, test_x, test_y), best
