"""Evaluators: small registered functions, as big_vision's evaluators are.

A run's config names the evaluators it wants (`eval.evaluators`); the trainer builds one
`EvalContext` per evaluation and calls each, recording the metrics they return. Adding an
evaluation is one module: a decorated function, `@register("name", describe)` on
`fn(ctx) -> {metric key: value}` (keys from `benchmark.metrics`), with a `describe(cfg)` that says,
for the run's record and so its report, exactly what was measured; `owns=` names the `EvalConfig`
fields that are its settings, and `check=` a `check(cfg)` that refuses, before anything runs, a
config it cannot run with. The module imports what it needs from `benchmark.evals.base`, and this
package imports it (below) so that it registers. Only evaluators registered with
`during_training=True` run in the evaluations logged during training (the curves), and they measure
there only what the run reads during training (`EvalContext.final` says which evaluation it is); all
named ones run in full at the end.

Evaluation should cost little beside training: each split is prepared (resized, scaled) once per
run when it is small enough, features and predictions are computed once per model under
`torch.inference_mode` and shared by every evaluator through the context, which the trainer keeps
for the model it early-stops on.
"""

from __future__ import annotations

from benchmark import data
from benchmark.config import EvalConfig, RunConfig
from benchmark.errors import UserError

# Importing an evaluator's module registers it, in this order: the order `check_names` lists them in.
from benchmark.evals import fewshot, finetune, inspect, linear, position, upstream
from benchmark.evals.base import (
    EVALUATORS,
    SHARED_SETTINGS,
    EvalContext,
    Evaluator,
    ProbeData,
    Split,
    check_probe,
    register,
)
from benchmark.models import resolve_model
from benchmark.sizes import FAMILIES

__all__ = [
    "EVALUATORS",
    "SHARED_SETTINGS",
    "EvalContext",
    "Evaluator",
    "ProbeData",
    "Split",
    "binds",
    "check",
    "check_names",
    "evaluate",
    "fewshot",
    "finetune",
    "finetuned",
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
    upstream of at least two classes whose images the model's patches tile; probe datasets held in
    memory (not streamed), of at least two classes, whose channels the model can read (its own, or
    one channel broadcast), with as many training examples in each class as the largest shot count;
    then each evaluator's own rules (`Evaluator.check`: fine-tuning's datasets, warm-up and
    resolution; two probe datasets at least for fewshot_lso's leave-self-out choice of l2) where they
    bind the run (`binds`). A dataset whose images are not here (JFT-300M, an absent ImageNet) is
    checked by its published shape only: `plan` prices it, and `run` refuses it (request.ready_to_train)."""
    check_names(cfg.eval.evaluators)
    pretrained_on = cfg.data.dataset
    data.check_name(pretrained_on)
    model = data.spec(pretrained_on)
    if model.num_classes < 2:
        raise UserError(
            f"data.dataset={pretrained_on!r} has {model.num_classes} class: pre-training needs at least 2 "
            "(a folder: needs one sub-folder per class)"
        )
    shape = resolve_model(cfg.model)
    size = cfg.data.image_size or model.image_size
    if FAMILIES[shape.family].patch_name and (size < shape.patch or size % shape.patch):
        raise UserError(
            f"the {size}-pixel images of {pretrained_on!r} are not a multiple of the model's patch size {shape.patch}; "
            f"set data.image_size to a multiple of {shape.patch}"
        )
    for name in cfg.eval.fewshot_datasets:
        check_probe(cfg, name, model.channels, probed=True)
    for evaluator in EVALUATORS.values():
        if evaluator.check is not None and binds(evaluator, cfg):
            evaluator.check(cfg)


_DEFAULTS = EvalConfig()  # a setting at its default is one the run left alone


def binds(evaluator: Evaluator, cfg: RunConfig) -> bool:
    """Whether an evaluator's rules bind a run: one that names it, or sets one of its settings away
    from the default. A setting given is meant (and part of the run's id), so a value its evaluator
    could not run with is refused even where that evaluator is not named; a run that neither names
    an evaluator nor sets its settings is never refused for it."""
    ev = cfg.eval
    return evaluator.name in ev.evaluators or any(
        getattr(ev, setting) != getattr(_DEFAULTS, setting) for setting in evaluator.owns
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


def finetuned(cfg: RunConfig) -> tuple[str, ...]:
    """The datasets a run fine-tunes on: none unless it runs the finetune evaluator."""
    return finetune.datasets(cfg.eval) if "finetune" in cfg.eval.evaluators else ()


def protocol(cfg: RunConfig) -> dict[str, str]:
    """What each of the run's evaluators measured, in words, for its record and its report."""
    return {name: EVALUATORS[name].describe(cfg) for name in cfg.eval.evaluators}
