"""A standard linear probe: multinomial logistic regression (scikit-learn) on frozen features.

The reference the few-shot study compares the closed-form probe against: all training examples,
features standardised with the training set's statistics, L2-regularised (C = 1), lbfgs.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def logreg_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> float:
    """Test top-1 of a logistic-regression probe fitted on all of (train_x, train_y)."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    probe.fit(train_x, train_y)
    return float((probe.predict(test_x) == test_y).mean())
