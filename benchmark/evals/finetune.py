"""Fine-tuning a pre-trained model on a downstream task, the paper's protocol (§3.2, App. B.1.1,
Table 4), driven by its own section of the config, `eval.finetune` (config.FinetuneConfig).

The pre-training head is dropped for one zero-initialised linear layer; SGD with momentum 0.9, no
weight decay, gradient clipping at global norm 1, a linear warm-up then cosine decay to zero; a
batch whose gradients may accumulate over micro-batches; batches drawn without replacement (a
fresh seeded order of the train split every epoch). Optionally at another resolution than
pre-training: the probe images prepared at it from their stored pixels and the model's position
embeddings resized by 2-D interpolation (benchmark.models.resize). Training images optionally go
through an inception crop and a horizontal flip; evaluation images are resized only. The learning
rate is chosen on the dataset's validation split (the paper's dev split held out of train), then
the model is fine-tuned with it on train and dev together (§3.2) and evaluated on the test split.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator

import torch
from torch import nn

from benchmark import data, metrics
from benchmark.config import EvalConfig, FinetuneConfig, OptimConfig, RunConfig
from benchmark.errors import UserError
from benchmark.evals.base import EvalContext, Split, check_probe, register, top1
from benchmark.models import replace_head, resolve_model
from benchmark.models.resize import resize_model
from benchmark.optim import lr_at, set_lr, train_step
from benchmark.sizes import FAMILIES


def batch_order(n: int, batch: int, seed: int) -> Iterator[torch.Tensor]:
    """The indices of each step's batch, drawn without replacement: the n examples in a fresh
    seeded order every epoch, the epochs back to back, cut into batches of `batch`, as big_vision's
    shuffle → repeat → batch input pipeline. Every epoch sees every example once; a batch may
    straddle two epochs (and then hold an example of each), none is dropped."""
    gen = torch.Generator().manual_seed(seed)
    stream = torch.empty(0, dtype=torch.long)
    while True:
        while len(stream) < batch:
            stream = torch.cat([stream, torch.randperm(n, generator=gen)])
        yield stream[:batch]
        stream = stream[batch:]


def schedule(ft: FinetuneConfig, lr: float) -> OptimConfig:
    """The fine-tuning schedule, as pre-training's: `warmup` linear warm-up steps, then
    cosine decay to zero at `steps` (the original code decays fine-tuning to 0)."""
    return OptimConfig(lr=lr, end_lr=0.0, schedule="cosine", warmup_steps=ft.warmup, steps=ft.steps)


def _finetune_once(
    model: nn.Module, train: Split, num_classes: int, ft: FinetuneConfig, size: int, lr: float, seed: int
) -> nn.Module:
    tuned = copy.deepcopy(model)
    resize_model(tuned, size, ft.interpolation)
    replace_head(tuned, num_classes)
    opt = torch.optim.SGD(tuned.parameters(), lr=lr, momentum=0.9, weight_decay=0.0)
    device, y = train.images.device, train.y.to(train.images.device)
    crops = torch.Generator(device=device).manual_seed(seed)
    batches, sched = batch_order(len(y), ft.batch, seed), schedule(ft, lr)
    tuned.train()
    for step in range(ft.steps):
        set_lr(opt, lr_at(step, sched))
        idx = next(batches).to(device)
        xb = (
            data.inception_crop(train.x(idx), size, crops) if ft.augment == "inception_flip" else train.x(idx)
        )
        train_step(tuned, opt, xb, y[idx], 1.0, tuned.parameters(), micro_batch=ft.micro_batch)
    return tuned.eval()


def finetune_accuracy(
    model: nn.Module,
    train: Split,
    val: Split,
    full: Split,
    test: Split,
    num_classes: int,
    ft: FinetuneConfig,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(test top-1, validation top-1 at the chosen lr, chosen lr) of the protocol `ft` describes:
    each lr fine-tuned on `train` and scored on the dev split `val`, then the chosen one fine-tuned
    on `full` (train and dev together, §3.2) and scored on `test`. `val` and `test` are at the
    fine-tuning resolution, and so are `train` and `full` unless they are cropped (`augment`),
    when they hold the stored images for the crops to be taken from. The model is left untouched."""
    size = val.size

    def tuned(lr: float, on: Split) -> nn.Module:
        return _finetune_once(model, on, num_classes, ft, size, lr, seed)

    scores = {lr: top1(tuned(lr, train), val) for lr in ft.lrs}
    best = max(ft.lrs, key=lambda lr: (scores[lr], -lr))  # ties: the smaller learning rate
    return top1(tuned(best, full), test), scores[best], best


def steps(ft: FinetuneConfig, name: str) -> int:
    """Fine-tuning steps on `name`: its entry in `steps_by_dataset`, else `steps`."""
    entries = dict(entry.split("=") for entry in ft.steps_by_dataset)
    return int(entries.get(name, ft.steps))


def datasets(ev: EvalConfig) -> tuple[str, ...]:
    """The datasets fine-tuned on: `eval.finetune.datasets`, else the probe datasets."""
    return ev.finetune.datasets or ev.fewshot_datasets


def _describe(cfg: RunConfig) -> str:
    ev = cfg.eval
    size = f"at {ev.finetune.image_size} px" if ev.finetune.image_size else "at the pre-training resolution"
    # A model without a token grid (a BiT ResNet) has no position embedding to resize.
    has_table = bool(FAMILIES[resolve_model(cfg.model).family].patch_name)
    resized = (
        f", position embeddings resized {ev.finetune.interpolation}"
        if ev.finetune.image_size and has_table
        else ""
    )
    accumulate = (
        f" accumulated over micro-batches of {ev.finetune.micro_batch}" if ev.finetune.micro_batch else ""
    )
    augment = "inception crop + horizontal flip" if ev.finetune.augment == "inception_flip" else "resize only"
    return (
        f"fine-tuning on {', '.join(datasets(ev))} {size}{resized} (zero-initialised linear head, SGD momentum "
        f"0.9, no weight decay, clip at global norm 1, {ev.finetune.warmup} warm-up steps then cosine decay "
        f"to 0, batch {ev.finetune.batch}{accumulate} drawn without replacement, training images: {augment}) "
        f"for {', '.join(f'{steps(ev.finetune, d)} steps on {d}' for d in datasets(ev))}, lr from "
        f"{', '.join(f'{lr:g}' for lr in ev.finetune.lrs)} chosen on the dev split (fine-tuned on the rest of train), "
        "then fine-tuned with it on all of train; test top-1"
    )


def _check(cfg: RunConfig) -> None:
    """The fine-tuning protocol's fields: datasets fine-tuning can read (as a probe's, see
    check_probe), a warm-up within the steps, and a resolution the model's patches (or a hybrid's
    stride) tile."""
    ev = cfg.eval
    channels = data.spec(cfg.data.dataset).channels
    for name in ev.finetune.datasets:
        if name not in ev.fewshot_datasets:  # a probe dataset too was checked as one (evals.check)
            check_probe(cfg, name, channels, probed=False)
    if ev.finetune.warmup > ev.finetune.steps:
        raise UserError(
            f"eval.finetune.warmup={ev.finetune.warmup} exceeds eval.finetune.steps={ev.finetune.steps}"
        )
    shape = resolve_model(cfg.model)
    if FAMILIES[shape.family].patch_name and ev.finetune.image_size % shape.patch:
        raise UserError(
            f"eval.finetune.image_size={ev.finetune.image_size} is not a multiple of the model's patch size "
            f"{shape.patch}; choose a multiple of {shape.patch} (0: the pre-training resolution)"
        )


@register(
    "finetune",
    _describe,
    owns=("finetune",),
    check=_check,
)
def finetune(ctx: EvalContext) -> dict[str, float]:
    ev, probes, out = ctx.cfg.eval, ctx.probes, {}
    for name in datasets(ev):
        size = ev.finetune.image_size  # 0: the pre-training resolution
        # Crops come from the stored images, at their own resolution; else the train split is
        # resized as the evaluation splits are.
        train_size = probes.image_size(name) if ev.finetune.augment == "inception_flip" else size
        train, dev = probes.split(name, "train", train_size), probes.split(name, "val", train_size)
        full = train.joined(dev)
        test, val, lr = finetune_accuracy(
            ctx.model, train, probes.split(name, "val", size), full, probes.split(name, "test", size),
            probes.num_classes(name), dataclasses.replace(ev.finetune, steps=steps(ev.finetune, name)), seed=ctx.cfg.seed,
        )  # fmt: skip
        out[metrics.key("finetune", name, "top1")] = test
        out[metrics.key("finetune", name, "top1", "val")] = val
        out[metrics.key("finetune", name, "lr")] = lr
    return out
