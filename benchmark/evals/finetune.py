"""Fine-tuning a pre-trained model on a downstream task (§3.2, App. B.1.1, Table 4).

The recipe: drop the whole pre-training head for one zero-initialised linear layer, SGD with
momentum 0.9, cosine decay, no weight decay, gradient clipping at global norm 1. The learning
rate is chosen on the probe dataset's validation split (the paper's dev split held out of train),
the model is fine-tuned on the train split with it, and evaluated on the test split.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from benchmark import metrics
from benchmark.config import RunConfig
from benchmark.evals import FEATURE_BATCH, EvalContext, Split, register
from benchmark.models import replace_head
from benchmark.optim import decayed_lr, set_lr, train_step

BATCH = 64


def _finetune_once(
    model: nn.Module, train: Split, num_classes: int, steps: int, lr: float, seed: int
) -> nn.Module:
    tuned = copy.deepcopy(model)
    replace_head(tuned, num_classes)
    opt = torch.optim.SGD(tuned.parameters(), lr=lr, momentum=0.9, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    x, y = train.x, train.y.to(train.x.device)
    tuned.train()
    for step in range(steps):
        set_lr(opt, decayed_lr(lr, 0.0, step, steps, "cosine"))
        idx = torch.randint(0, len(y), (min(BATCH, len(y)),), generator=gen).to(x.device)
        train_step(tuned, opt, x[idx], y[idx], clip_norm=1.0, params=tuned.parameters())
    return tuned.eval()


@torch.no_grad()
def _accuracy(model: nn.Module, split: Split) -> float:
    logits = torch.cat([model(split.x[i : i + FEATURE_BATCH]) for i in range(0, len(split.x), FEATURE_BATCH)])
    return (logits.argmax(1).cpu() == split.y).float().mean().item()


def finetune_accuracy(
    model: nn.Module,
    train: Split,
    val: Split,
    test: Split,
    num_classes: int,
    steps: int,
    lrs: Sequence[float],
    seed: int = 0,
) -> tuple[float, float, float]:
    """(test top-1, validation top-1 at the chosen lr, chosen lr). The model passed in is left untouched."""
    scores = {lr: _accuracy(_finetune_once(model, train, num_classes, steps, lr, seed), val) for lr in lrs}
    best = max(lrs, key=lambda lr: (scores[lr], -lr))  # ties: the smaller learning rate
    tuned = _finetune_once(model, train, num_classes, steps, best, seed)
    return _accuracy(tuned, test), scores[best], best


def _describe(cfg: RunConfig) -> str:
    ev = cfg.eval
    return (
        f"fine-tuning (zero-initialised linear head, SGD momentum 0.9, cosine decay, no weight decay, clip 1, batch "
        f"{BATCH}) for {ev.finetune_steps} steps on the train split, lr from {', '.join(f'{lr:g}' for lr in ev.finetune_lrs)} "
        "chosen on the validation split; test top-1"
    )


@register("finetune", _describe)
def finetune(ctx: EvalContext) -> dict[str, float]:
    ev, out = ctx.cfg.eval, {}
    for name in ev.fewshot_datasets:
        test, val, lr = finetune_accuracy(
            ctx.model, *(ctx.probes.split(name, which) for which in ("train", "val", "test")),
            ctx.probes.num_classes(name), ev.finetune_steps, ev.finetune_lrs, seed=ctx.cfg.seed,
        )  # fmt: skip
        out[metrics.key("finetune", name, "top1")] = test
        out[metrics.key("finetune", name, "top1", "val")] = val
        out[metrics.key("finetune", name, "lr")] = lr
    return out
