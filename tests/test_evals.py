"""The extra probes of the few-shot study: logistic regression and fine-tuning; the shapes data."""

import numpy as np
import torch

from benchmark import data
from benchmark.config import ModelConfig
from benchmark.data import shapes
from benchmark.evals.finetune import finetune_accuracy
from benchmark.evals.linear import logreg_accuracy
from benchmark.models import build_model


def test_logreg_probe_separates_clusters_and_not_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    x = rng.normal(size=(400, 8)) + 5 * np.eye(4, 8)[y]
    assert logreg_accuracy(x[:300], y[:300], x[300:], y[300:]) > 0.95
    noise = rng.normal(size=(400, 8))
    assert logreg_accuracy(noise[:300], y[:300], noise[300:], y[300:]) < 0.45


def test_finetune_learns_leaves_the_model_alone_and_picks_an_lr_from_the_grid():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="Mu/7"), 3, 28, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # A task any network solves: the class is the brightness of the image.
    y = torch.arange(120) % 3
    x = (y.float()[:, None, None, None] - 1).expand(-1, 1, 28, 28) + 0.1 * torch.randn(120, 1, 28, 28)
    acc, lr = finetune_accuracy(model, x[:90], y[:90], x[90:], y[90:], 3, steps=30, lrs=(1e-4, 0.03))
    assert acc > 0.9
    assert lr in (1e-4, 0.03)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert type(model.head).__name__ == "TanhHead"  # the pre-training head is still there


def test_shapes_are_deterministic_and_balanced():
    a, la = shapes.generate(per_class=3, seed=1)
    b, lb = shapes.generate(per_class=3, seed=1)
    assert a.shape == (30, 28, 28) and a.dtype == np.uint8
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert np.bincount(la).tolist() == [3] * 10
    assert not np.array_equal(a, shapes.generate(per_class=3, seed=2)[0])
    ds = data.load("shapes")
    assert ds.num_classes == 10 and len(ds.train_y) == 2000 and len(ds.test_y) == 500
