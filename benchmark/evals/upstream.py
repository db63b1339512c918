"""Upstream accuracy: the pre-training classifier on its own test split, and on a fixed sample of
the run's own training images. Reported beside the transfer metrics, labelled as upstream, and never
what a transfer claim is judged on: together the two say how well a model fits its pre-training data
(underfitting: both low; overfitting: train far above test), which `benchmark.fit` reads along the
curve of the evaluations during training."""

from __future__ import annotations

import numpy as np

from benchmark import metrics
from benchmark.config import RunConfig
from benchmark.errors import UserError
from benchmark.evals.base import EvalContext, register, top1

# Training images the train top-1 is measured on. The same images at every evaluation, so the
# curve's rises are paired differences; its level has a standard error under 1.6 points.
TRAIN_SAMPLE = 1024
SAMPLE_SEED = 0  # one sample for every seed of a run: the training subset does not depend on the seed


def train_sample(labels: np.ndarray, n: int = TRAIN_SAMPLE, seed: int = SAMPLE_SEED) -> np.ndarray:
    """Indices (sorted) of a class-stratified sample of `n` of the examples with these labels, all
    of them when there are no more: the classes take turns, each giving its next example in one
    seeded random order, so every class gives ⌊n/K⌋ or ⌈n/K⌉ examples (or all it has)."""
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    order = np.random.default_rng(seed).permutation(len(labels))
    grouped = order[np.argsort(labels[order], kind="stable")]  # by class, each in the random order
    _, starts, counts = np.unique(labels[grouped], return_index=True, return_counts=True)
    turn = np.empty(len(labels), dtype=np.int64)  # an example's place in its class's random order
    turn[grouped] = np.arange(len(labels)) - np.repeat(starts, counts)
    position = np.empty(len(labels), dtype=np.int64)
    position[order] = np.arange(len(labels))
    # Turn by turn; within the last turn, the classes in the random order decide who gives one more.
    return np.sort(np.lexsort((position, turn))[:n])


def _describe(cfg: RunConfig) -> str:
    return (
        f"top-1 of the pre-training head on the test split of the pre-training dataset ({cfg.data.dataset}), "
        f"and on a fixed class-stratified sample of up to {TRAIN_SAMPLE:,} of the run's own training images "
        "(as stored, without augmentation)"
    )


def _check(cfg: RunConfig) -> None:
    if cfg.model.checkpoint:
        raise UserError(
            f"eval.evaluators names upstream, but model.checkpoint={cfg.model.checkpoint!r} is a released "
            "checkpoint: its pre-training head and images are not here; leave upstream out"
        )


@register("upstream", _describe, during_training=True, check=_check)
def upstream_top1(ctx: EvalContext) -> dict[str, float]:
    out = {metrics.UPSTREAM_TOP1: ctx.cached("upstream/test", lambda: top1(ctx.model, ctx.upstream_test))}
    if ctx.upstream_train is not None:
        out[metrics.UPSTREAM_TRAIN_TOP1] = ctx.cached(
            "upstream/train", lambda: top1(ctx.model, ctx.upstream_train)
        )
    return out
