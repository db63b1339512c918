"""The evaluator registry and the probes beside few-shot: logistic regression and fine-tuning."""

import numpy as np
import pytest
import torch

from benchmark import evals
from benchmark.config import ModelConfig, RunConfig
from benchmark.errors import UserError
from benchmark.evals import Split
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


def test_finetune_learns_leaves_the_model_alone_and_chooses_its_lr_on_validation():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="Mu/7"), 3, 28, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # A task any network solves: the class is the brightness of the image.
    y = torch.arange(150) % 3
    x = (y.float()[:, None, None, None] - 1).expand(-1, 1, 28, 28) + 0.1 * torch.randn(150, 1, 28, 28)
    train, val, test = Split(x[:90], y[:90]), Split(x[90:120], y[90:120]), Split(x[120:], y[120:])
    acc, val_acc, lr = finetune_accuracy(model, train, val, test, 3, steps=30, lrs=(1e-6, 0.03))
    assert acc > 0.9 and val_acc > 0.9
    assert lr == 0.03  # 1e-6 cannot learn in 30 steps: the validation split must see that
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert type(model.head).__name__ == "TanhHead"  # the pre-training head is still there


def test_every_evaluator_describes_itself_and_unknown_names_are_user_errors():
    assert {"upstream", "fewshot", "fewshot_lso", "linear", "finetune"} <= set(evals.EVALUATORS)
    cfg = RunConfig().replace(**{"eval.evaluators": tuple(evals.EVALUATORS)})
    assert all(text for text in evals.protocol(cfg).values())
    with pytest.raises(UserError, match=r"unknown evaluator 'probe' in eval\.evaluators; valid: "):
        evals.check_names(("fewshot", "probe"))


def test_only_cheap_evaluators_run_during_training(monkeypatch):
    called = []
    for name, evaluator in evals.EVALUATORS.items():
        monkeypatch.setitem(
            evals.EVALUATORS,
            name,
            evaluator.__class__(
                name,
                lambda ctx, n=name: called.append(n) or {},
                evaluator.describe,
                evaluator.during_training,
            ),
        )
    cfg = RunConfig().replace(**{"eval.evaluators": ("upstream", "fewshot", "linear", "finetune")})
    ctx = evals.EvalContext(None, cfg, None, None)
    evals.evaluate(ctx, final=False)
    assert called == ["upstream", "fewshot"]
    called.clear()
    evals.evaluate(ctx, final=True)
    assert called == ["upstream", "fewshot", "linear", "finetune"]
