"""A standard linear probe: multinomial logistic regression (scikit-learn) on frozen features.

The reference the few-shot study compares the closed-form probe against: all training examples,
features standardised with the training set's statistics, L2-regularised (C = 1, not tuned), lbfgs.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmark import metrics
from benchmark.config import RunConfig
from benchmark.evals.base import EvalContext, register


def logreg_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> float:
    """Test top-1 of a logistic-regression probe fitted on all of (train_x, train_y)."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    probe.fit(train_x, train_y)
    return float((probe.predict(test_x) == test_y).mean())


def _describe(cfg: RunConfig) -> str:
    return (
        "logistic regression (scikit-learn, C = 1, standardised features) on the frozen "
        f"{cfg.eval.representation.replace('_', '-')} pre-logits of the whole train split; test top-1"
    )


@register("linear", _describe)
def logreg(ctx: EvalContext) -> dict[str, float]:
    out = {}
    for name in ctx.cfg.eval.fewshot_datasets:
        train, test = ctx.probes.split(name, "train"), ctx.probes.split(name, "test")
        acc = logreg_accuracy(
            ctx.features(name, "train"), train.y.numpy(), ctx.features(name, "test"), test.y.numpy()
        )
        out[metrics.key("linear", name, "top1")] = acc
    return out
