"""The evaluator registry and the probes beside few-shot: logistic regression and fine-tuning."""

import numpy as np
import pytest

from benchmark import evals
from benchmark.config import RunConfig
from benchmark.errors import UserError
from benchmark.evals.linear import logreg_accuracy


def test_logreg_probe_separates_clusters_and_not_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    x = rng.normal(size=(400, 8)) + 5 * np.eye(4, 8)[y]
    assert logreg_accuracy(x[:300], y[:300], x[300:], y[300:]) > 0.95
    noise = rng.normal(size=(400, 8))
    assert logreg_accuracy(noise[:300], y[:300], noise[300:], y[300:]) < 0.45


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
