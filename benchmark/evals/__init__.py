"""Evaluators: small registered functions, as big_vision's evaluators are.

A run's config names the evaluators it wants (`eval.evaluators`); the trainer builds one
`EvalContext` per evaluation and calls each, recording the metrics they return. Adding an
evaluation is one decorated function: `@register("name")` on `fn(ctx) -> {metric key: value}`
(keys from `benchmark.metrics`), plus a `describe(cfg)` that says, for the run's record and so its
report, exactly what was measured. Only evaluators registered with `during_training=True` run in
the evaluations logged during training (the curves), and they measure there only what the run
reads during training (`EvalContext.final` says which evaluation it is); all named ones run in
full at the end.

Evaluation should cost little beside training: each split is prepared (resized, scaled) once per
run when it is small enough, features and predictions are computed once per model under
`torch.inference_mode` and shared by every evaluator through the context, which the trainer keeps
for the model it early-stops on.
"""

from __future__ import annotations

from benchmark import data
from benchmark.config import RunConfig
from benchmark.errors import UserError

# Importing an evaluator's module registers it, in this order: the order `check_names` lists them in.
from benchmark.evals import fewshot, finetune, inspect, linear, position, upstream
from benchmark.evals.base import EVALUATORS, EvalContext, Evaluator, ProbeData, Split, register
from benchmark.models import resolve_model

__all__ = [
    "EVALUATORS",
    "EvalContext",
    "Evaluator",
    "ProbeData",
    "Split",
    "check",
    "check_names",
    "evaluate",
    "fewshot",
    "finetune",
    "inspect",
    "linear",
    "position",
    "protocol",
    "register",
    "upstream",
]


def check_names(names: tuple[str, ...]) -> None:
    """Reject unknown evaluator names before anything runs (plan time)."""
    for name in names:
        if name not in EVALUATORS:
            raise UserError(f"unknown evaluator {name!r} in eval.evaluators; valid: {', '.join(EVALUATORS)}")


def check(cfg: RunConfig) -> None:
    """Every rule between the model, its upstream data and its probe data, checked by `plan` and
    `run` before anything is written (one line each, naming the fix): known evaluators; an
    upstream of at least two classes whose images the model's patches tile; probe and fine-tuning
    datasets held in memory (not streamed), of at least two classes, whose channels the model can
    read (its own, or one channel broadcast); as many training examples in each probe class as the
    largest shot count; and two probe datasets at least for the leave-self-out choice of l2. A
    dataset whose images are not here (JFT-300M, an absent ImageNet) is checked by its published
    shape only: `plan` prices it, and `run` refuses it (cli.check_readable)."""
    check_names(cfg.eval.evaluators)
    ev, pretrained_on = cfg.eval, cfg.data.dataset
    data.check_name(pretrained_on)
    model = data.spec(pretrained_on)
    if model.num_classes < 2:
        raise UserError(
            f"data.dataset={pretrained_on!r} has {model.num_classes} class: pre-training needs at least 2 "
            "(a folder: needs one sub-folder per class)"
        )
    shape = resolve_model(cfg.model)
    size = cfg.data.image_size or model.image_size
    if shape.family != "bit" and (size < shape.patch or size % shape.patch):
        raise UserError(
            f"the {size}-pixel images of {pretrained_on!r} are not a multiple of the model's patch size {shape.patch}; "
            f"set data.image_size to a multiple of {shape.patch}"
        )
    for name in (*ev.fewshot_datasets, *ev.finetune_datasets):
        _check_probe(cfg, name, model.channels, probed=name in ev.fewshot_datasets)
    _check_finetune(cfg)
    if "fewshot_lso" in ev.evaluators and len(ev.fewshot_datasets) < 2:
        raise UserError(
            "evaluator fewshot_lso chooses l2 by leave-self-out and needs at least two eval.fewshot_datasets"
        )


def _check_probe(cfg: RunConfig, name: str, channels: int, probed: bool) -> None:
    """One probe (or fine-tuning) dataset against the model pre-trained on cfg.data.dataset."""
    data.check_name(name)
    role = "eval.fewshot_datasets" if probed else "eval.finetune_datasets"
    if not data.available(name):
        return  # priced by its published shape (a paper preset's ImageNet); `run` refuses it
    if data.is_streaming(name):  # (the upstream may stream; probes hold their splits in memory)
        raise UserError(
            f"{role}: dataset {name!r} streams from disk and cannot be a probe or fine-tuning dataset, whose "
            "splits are held in memory; choose one held in memory (CIFAR, Pets, Flowers, a small folder:)"
        )
    probe = data.spec(name)
    if probe.channels not in (channels, 1):
        fits = [n for n in data.SOURCES if data.spec(n).channels == channels]
        raise UserError(
            f"{role}: {name!r} has {probe.channels}-channel images, but the model reads the {channels} "
            f"channel(s) of its upstream {cfg.data.dataset!r}; probe with {channels}-channel data (e.g. "
            f"{', '.join(fits)}, fractal...) or pre-train on a {probe.channels}-channel upstream (e.g. "
            f"--set data.dataset={name})"
        )
    counts = data.class_counts(name)
    if len(counts) < 2:
        raise UserError(
            f"{role}: {name!r} has {len(counts)} class: a probe needs at least 2 (one class is always "
            "right); a folder: needs one sub-folder per class"
        )
    smallest = int(counts.min())
    if probed and max(cfg.eval.shots) > smallest:
        raise UserError(
            f"eval.shots={max(cfg.eval.shots)} exceeds the {smallest} training examples of the smallest class "
            f"of {name!r}; valid: shots from 1 to {smallest}, or a probe with more examples per class"
        )


def _check_finetune(cfg: RunConfig) -> None:
    """The fine-tuning protocol's fields: known datasets, a warm-up within the steps, and a
    resolution the model's patches (or a hybrid's stride) tile."""
    ev = cfg.eval
    for name in ev.finetune_datasets:
        data.check_name(name)
    if ev.finetune_warmup > ev.finetune_steps:
        raise UserError(
            f"eval.finetune_warmup={ev.finetune_warmup} exceeds eval.finetune_steps={ev.finetune_steps}"
        )
    shape = resolve_model(cfg.model)
    if shape.family != "bit" and ev.finetune_image_size % shape.patch:
        raise UserError(
            f"eval.finetune_image_size={ev.finetune_image_size} is not a multiple of the model's patch size "
            f"{shape.patch}; choose a multiple of {shape.patch} (0: the pre-training resolution)"
        )


def evaluate(ctx: EvalContext, final: bool) -> dict[str, float]:
    """Run the config's evaluators (only the cheap, `during_training` ones unless `final`)."""
    ctx.final = final
    metrics: dict[str, float] = {}
    for name in ctx.cfg.eval.evaluators:
        evaluator = EVALUATORS[name]
        if final or evaluator.during_training:
            metrics.update(evaluator.fn(ctx))
    return metrics


def protocol(cfg: RunConfig) -> dict[str, str]:
    """What each of the run's evaluators measured, in words, for its record and its report."""
    return {name: EVALUATORS[name].describe(cfg) for name in cfg.eval.evaluators}
