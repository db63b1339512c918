"""The paper's fine-tuning protocol: sampling, accumulation, schedule, augmentation, resolution."""

import copy
import itertools
import math

import pytest
import torch
from helpers import write_cifar

from benchmark import data, evals, metrics
from benchmark.config import FinetuneConfig, ModelConfig, RunConfig
from benchmark.errors import UserError
from benchmark.evals import Split
from benchmark.evals.finetune import batch_order, finetune_accuracy, schedule
from benchmark.models import build_model
from benchmark.optim import lr_at, train_step


def test_finetune_learns_leaves_the_model_alone_and_chooses_its_lr_on_validation():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="Mu/14"), 3, 28, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # A task any network solves: the class is the brightness of the image.
    y = torch.arange(150) % 3
    x = (y.float()[:, None, None, None] - 1).expand(-1, 1, 28, 28) + 0.1 * torch.randn(150, 1, 28, 28)
    x = ((x + 1) * 127.5).clamp(0, 255).round().to(torch.uint8)  # stored as a dataset stores it
    train, val, test = (Split(x[s], y[s], 28, 1) for s in (slice(90), slice(90, 120), slice(120, None)))
    full = Split(x[:120], y[:120], 28, 1)
    ft = FinetuneConfig(steps=30, lrs=(1e-6, 0.03))
    acc, val_acc, lr = finetune_accuracy(model, train, val, full, test, 3, ft)
    assert acc > 0.9 and val_acc > 0.9
    assert lr == 0.03  # 1e-6 cannot learn in 30 steps: the validation split must see that
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert type(model.head).__name__ == "TanhHead"  # the pre-training head is still there


def test_batches_are_drawn_without_replacement_a_fresh_order_each_epoch():
    order = batch_order(10, 4, seed=0)
    stream = torch.cat([next(order) for _ in range(5)])  # 20 indices: two epochs, batches straddling them
    first, second = stream[:10], stream[10:]
    assert sorted(first.tolist()) == list(range(10)) and sorted(second.tolist()) == list(range(10))
    assert not torch.equal(first, second)
    again = batch_order(10, 4, seed=0)
    assert torch.equal(torch.cat([next(again) for _ in range(5)]), stream)
    other = batch_order(10, 4, seed=1)
    assert not torch.equal(torch.cat([next(other) for _ in range(5)]), stream)


def test_accumulated_micro_batches_make_the_full_batch_step():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="Mu/8", prelogits=False), 3, 16, 1)
    torch.nn.init.normal_(model.head.weight, std=0.1)  # a zero head would give most parameters no gradient
    x, y = torch.randn(8, 1, 16, 16), torch.arange(8) % 3
    start = copy.deepcopy(model)
    nets = [model, copy.deepcopy(model)]
    opts = [torch.optim.SGD(n.parameters(), lr=0.1, momentum=0.9) for n in nets]
    for _ in range(2):  # the second step goes through the momentum too
        full = train_step(nets[0], opts[0], x, y, 1.0, nets[0].parameters())
        micro = train_step(nets[1], opts[1], x, y, 1.0, nets[1].parameters(), micro_batch=2)
        torch.testing.assert_close(micro, full)  # the same loss and gradient norm
    for p, q, p0 in zip(nets[0].parameters(), nets[1].parameters(), start.parameters(), strict=True):
        assert not torch.equal(p, p0)  # every parameter moved
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_the_schedule_warms_up_linearly_then_decays_by_cosine_to_zero():
    sched = schedule(FinetuneConfig(steps=20, warmup=4), lr=0.1)
    lrs = [lr_at(step, sched) for step in range(20)]
    assert lrs[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    # Cosine over the 16 steps after the warm-up: full at step 4, half at 4 + 8, → 0 at 20.
    assert lrs[4] == pytest.approx(0.1) and lrs[12] == pytest.approx(0.05)
    assert lrs[19] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 15 / 16)))
    assert all(a >= b for a, b in itertools.pairwise(lrs[4:]))


def test_the_inception_crop_is_seeded_keeps_its_shape_and_at_full_area_unflipped_is_a_plain_resize():
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    x = data.prepare(images, 8, 3)
    crop = data.inception_crop(x, 24, torch.Generator().manual_seed(0))
    assert crop.shape == (16, 3, 24, 24)
    assert torch.equal(crop, data.inception_crop(x, 24, torch.Generator().manual_seed(0)))
    assert not torch.equal(crop, data.inception_crop(x, 24, torch.Generator().manual_seed(1)))
    # The whole image, not mirrored: the evaluation's resize of the stored pixels (growing it).
    whole = data.inception_crop(x, 24, torch.Generator().manual_seed(0), area=(1.0, 1.0), flip=False)
    torch.testing.assert_close(whole, data.prepare(images, 24, 3), rtol=0, atol=1e-5)
    assert not torch.allclose(crop, whole, atol=1e-3)
    # The whole image, mirrored or not: some of each.
    flipped = data.inception_crop(x, 24, torch.Generator().manual_seed(0), area=(1.0, 1.0))
    mirrored = [torch.allclose(f, w.flip(-1), atol=1e-5) for f, w in zip(flipped, whole, strict=True)]
    kept = [torch.allclose(f, w, atol=1e-5) for f, w in zip(flipped, whole, strict=True)]
    assert all(m != k for m, k in zip(mirrored, kept, strict=True)) and 0 < sum(mirrored) < 16


def test_inception_crops_cover_5_to_100_percent_with_aspect_ratios_from_3_4_to_4_3():
    """On a ramp (each pixel holds its own coordinate) a crop's output spans the box it read:
    its width and height, as fractions of the image, and the sign of the width (mirrored or not)."""
    side, size, n = 64, 16, 400
    coords = (torch.arange(side) + 0.5) / side
    ramp = torch.stack([coords.expand(side, -1), coords[:, None].expand(-1, side)])[None].expand(
        n, -1, -1, -1
    )
    out = data.inception_crop(ramp.contiguous(), size, torch.Generator().manual_seed(0))
    # Output pixel centres sit at (k + 0.5) / size of the box: first to last spans (size − 1) / size.
    w = (out[:, 0, 0, -1] - out[:, 0, 0, 0]) * size / (size - 1)
    h = (out[:, 1, -1, 0] - out[:, 1, 0, 0]) * size / (size - 1)
    assert (h > 0).all() and 0.3 < (w < 0).float().mean() < 0.7  # about half mirrored
    w = w.abs()
    # Half a source pixel of clamping at the border at most.
    slack = 1 / side
    assert (w * h >= 0.05 - 2 * slack).all() and (w * h <= 1 + slack).all()
    assert (w / h >= 3 / 4 - 2 * slack).all() and (w / h <= 4 / 3 + 2 * slack).all()
    assert (w * h).min() < 0.15 and (w * h).max() > 0.8  # the whole range is drawn


def test_the_protocol_is_described_with_its_numbers():
    ev = {"eval.evaluators": ("finetune",), "eval.finetune.datasets": ("digits",), "eval.finetune.image_size": 24,
          "eval.finetune.batch": 512, "eval.finetune.micro_batch": 128, "eval.finetune.warmup": 10,
          "eval.finetune.augment": "inception_flip", "eval.finetune.interpolation": "bicubic",
          "eval.finetune.steps": 500, "eval.finetune.lrs": (0.001, 0.003)}  # fmt: skip
    text = evals.protocol(RunConfig().replace(**ev))["finetune"]
    for needle in ("on digits at 24 px", "resized bicubic", "10 warm-up steps", "batch 512 accumulated over "
                   "micro-batches of 128", "inception crop + horizontal flip", "500 steps", "0.001, 0.003"):  # fmt: skip
        assert needle in text, needle
    default = evals.protocol(RunConfig().replace(**{"eval.evaluators": ("finetune",)}))["finetune"]
    assert "at the pre-training resolution" in default and "resized" not in default
    resnet = RunConfig().replace(**ev, **{"model.arch": "R14x1", "model.prelogits": False})
    assert "at 24 px (" in evals.protocol(resnet)["finetune"]  # nothing to resize


@pytest.mark.parametrize(
    "overrides, needle",
    [
        ({"eval.finetune.datasets": ("cifar11",)}, "unknown dataset 'cifar11'"),
        ({"eval.finetune.warmup": 90}, "eval.finetune.warmup=90 exceeds eval.finetune.steps=80"),
        (
            {"model.arch": "Mu/7", "eval.finetune.image_size": 30},
            "not a multiple of the model's patch size 7",
        ),
    ],
)
def test_a_protocol_that_cannot_run_is_a_one_line_user_error(overrides, needle):
    with pytest.raises(UserError) as err:
        evals.check(RunConfig().replace(**{"eval.fewshot_datasets": ("digits",), **overrides}))
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_a_model_finetuned_at_a_new_resolution_evaluates():
    """Pre-trained at 16 px (a 2×2 grid), fine-tuned and evaluated at 24 px (3×3) on the 8-px UCI
    digits, with every part of the protocol on: crops from the stored images, accumulation,
    warm-up, the bilinear resize of the position table."""
    cfg = RunConfig().replace(**{
        "model.arch": "Mu/8", "eval.evaluators": ("finetune",), "eval.fewshot_datasets": ("shapes",),
        "eval.finetune.datasets": ("digits",), "eval.finetune.image_size": 24, "eval.finetune.steps": 40,
        "eval.finetune.lrs": (0.03,), "eval.finetune.batch": 32, "eval.finetune.micro_batch": 16,
        "eval.finetune.warmup": 5, "eval.finetune.augment": "inception_flip",
    })  # fmt: skip
    torch.manual_seed(0)
    model = build_model(cfg.model, 5, 16, 1).eval()
    probes = evals.ProbeData(16, 1, torch.device("cpu"))
    out = evals.EVALUATORS["finetune"].fn(evals.EvalContext(model, cfg, probes, None))
    assert set(out) == {metrics.key("finetune", "digits", *k) for k in (("top1",), ("top1", "val"), ("lr",))}
    # Ten classes: chance is 0.1, and 0.2 is six standard errors above it on the 359 test images.
    assert out[metrics.key("finetune", "digits", "top1")] > 0.2
    assert model.patch_embed.grid_size == (2, 2) and model.pos_embed.shape[1] == 5  # the model is untouched
    # Evaluated at 24 px from the stored 8-px images; trained on crops of the stored images.
    assert probes.split("digits", "test", 24).x(slice(2)).shape[-1] == 24
    # held once, as stored (uint8): a split at 24 px and one at 8 px share the same bytes
    assert probes.split("digits", "test", 24).images is probes.split("digits", "test", 8).images
    assert probes.split("digits", "test").images.dtype == torch.uint8
    assert probes.split("digits", "train", 8).x(slice(2)).shape[-1] == 8


@pytest.mark.slow
def test_the_paper_protocol_end_to_end_on_a_cifar_fixture_32_to_48_px(tiny_cfg, tmp_path, monkeypatch):
    """A run pre-trained on a CIFAR-10 fixture (the real pickle layout) at 32 px fine-tunes on a CIFAR-100
    one at 48 px: position table resized, inception crop + flip, accumulation, warm-up, lr chosen on the
    2% dev split, then fine-tuned on all of train."""
    from benchmark import train

    monkeypatch.setenv("VITBENCH_DATA", str(tmp_path / "data"))
    write_cifar(tmp_path / "data", "cifar10", n_per_class=20, n_test_per_class=3)
    write_cifar(tmp_path / "data", "cifar100", n_per_class=3, n_test_per_class=1)
    cfg = tiny_cfg.replace(**{
        "model.arch": "Mu/8", "data.dataset": "cifar10", "data.train_examples": 0, "eval.fewshot_datasets": ("cifar100",), "eval.evaluators": ("upstream", "finetune"),
        "eval.finetune.datasets": ("cifar100",), "eval.finetune.image_size": 48, "eval.finetune.batch": 16,
        "eval.finetune.micro_batch": 8, "eval.finetune.warmup": 2, "eval.finetune.steps": 6,
        "eval.finetune.augment": "inception_flip", "eval.finetune.lrs": (0.01, 0.03),
    })  # fmt: skip
    result = train.run(cfg, tmp_path / "run")
    assert result["status"] == "done", result
    top1 = result["metrics"][metrics.key("finetune", "cifar100", "top1")]
    assert 0 <= top1 <= 1 and result["metrics"][metrics.key("finetune", "cifar100", "lr")] in (0.01, 0.03)
    protocol = result["protocol"]["finetune"]
    assert "at 48 px" in protocol and "bilinear" in protocol and "2 warm-up steps" in protocol
    assert result["datasets"]["cifar100"]["role"].startswith("transfer")
    assert "2%" in result["datasets"]["cifar100"]["provenance"], result["datasets"]
