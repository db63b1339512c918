"""Upstream accuracy: the pre-training classifier on its own test split. Reported beside the
transfer metrics, labelled as upstream, and never what a transfer claim is judged on."""

from __future__ import annotations

import torch

from benchmark import metrics
from benchmark.config import RunConfig
from benchmark.evals import EvalContext, register


def _describe(cfg: RunConfig) -> str:
    return (
        f"top-1 of the pre-training head on the test split of the pre-training dataset ({cfg.data.dataset})"
    )


@register("upstream", _describe, during_training=True)
@torch.no_grad()
def upstream_top1(ctx: EvalContext) -> dict[str, float]:
    split = ctx.upstream_test
    logits = torch.cat([ctx.model(x) for x in split.batches()])
    return {metrics.UPSTREAM_TOP1: (logits.argmax(1).cpu() == split.y).float().mean().item()}
