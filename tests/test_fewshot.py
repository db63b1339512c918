"""Few-shot linear evaluation (benchmark/evals/fewshot.py): the closed-form solver against independent
implementations (scikit-learn's RidgeClassifier, a direct normal-equations solve), big_vision's sampling
protocol, and uncertainty-baselines' leave-self-out choice of l2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import RidgeClassifier
from sklearn.preprocessing import StandardScaler

from benchmark.evals import fewshot
from benchmark.evals.fewshot import (
    L2_FIXED,
    L2_GRID,
    SHOTS,
    fewshot_table,
    lsr_accuracies,
    lsr_weights,
    sample_fewshot,
    select_l2_leave_self_out,
)

L2S = (2.0**-6, 1.0, 2.0**6, 2.0**10, 2.0**16)


def _data(n_train: int, d: int, num_classes: int, n_test: int = 400, sep: float = 1.0, seed: int = 0):
    """Gaussian clusters with per-feature offsets and scales, so whitening actually does something."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_classes, d)) * sep
    offset = rng.normal(5.0, 3.0, d)
    scale = rng.uniform(0.1, 10.0, d)

    def draw(labels):
        return ((centres[labels] + rng.standard_normal((labels.size, d))) * scale + offset).astype(np.float32)

    train_y = np.arange(n_train) % num_classes  # every class present
    test_y = rng.integers(0, num_classes, n_test)
    return draw(train_y), train_y, draw(test_y), test_y


def _features_sklearn(train_x, test_x):
    """StandardScaler whitening (+1e-5 on the std, as big_vision) with the constant-100 column."""
    scaler = StandardScaler().fit(np.asarray(train_x, dtype=np.float64))
    scaler.scale_ = scaler.scale_ + 1e-5

    def feats(x):
        z = scaler.transform(np.asarray(x, dtype=np.float64))
        return np.hstack([z, np.full((z.shape[0], 1), 100.0)])

    return scaler, feats(train_x), feats(test_x)


def _eigh_shapes(monkeypatch) -> list[tuple[int, ...]]:
    """Record the shape of every matrix handed to np.linalg.eigh inside the module."""
    shapes: list[tuple[int, ...]] = []
    real = np.linalg.eigh

    def spy(a, *args, **kwargs):
        shapes.append(np.shape(a))
        return real(a, *args, **kwargs)

    monkeypatch.setattr(fewshot.np.linalg, "eigh", spy)
    return shapes


# --- solver -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_train", "d", "path_dim"),
    [(300, 20, 21), (40, 120, 40)],  # n > d: eigh of XᵀX (d+1); n < d: eigh of XXᵀ (n)
    ids=["n>d", "n<d"],
)
def test_matches_sklearn_ridge_classifier(monkeypatch, n_train, d, path_dim):
    num_classes = 5
    train_x, train_y, test_x, test_y = _data(n_train, d, num_classes, sep=0.4)
    scaler, ftrain, ftest = _features_sklearn(train_x, test_x)
    shapes = _eigh_shapes(monkeypatch)
    accs = lsr_accuracies(train_x, train_y, test_x, test_y, num_classes, L2S)
    assert shapes == [(path_dim, path_dim)], "expected exactly one eigendecomposition, on the smaller Gram"
    mean, std, w = lsr_weights(train_x, train_y, num_classes, L2S)
    np.testing.assert_allclose(mean, scaler.mean_, rtol=1e-10)
    np.testing.assert_allclose(std, scaler.scale_, rtol=1e-10)
    sk_accs = []
    for i, l2 in enumerate(L2S):
        clf = RidgeClassifier(alpha=l2, fit_intercept=False).fit(ftrain, train_y)
        np.testing.assert_allclose(w[i], clf.coef_.T, rtol=1e-6, atol=1e-9 * np.abs(clf.coef_).max())
        ours = (ftest @ w[i]).argmax(axis=1)
        np.testing.assert_array_equal(ours, clf.predict(ftest))
        sk_accs.append(np.mean(clf.predict(ftest) == test_y))
    np.testing.assert_allclose(accs, sk_accs, rtol=0, atol=1e-12)
    # the sweep is informative: regularisation changes the answer here, so the order of l2s matters
    assert len(set(np.round(accs, 6))) > 1


@pytest.mark.parametrize(("n_train", "d"), [(200, 30), (25, 80), (31, 30)], ids=["n>d", "n<d", "n=d+1"])
def test_both_paths_match_direct_normal_equations(n_train, d):
    num_classes = 4
    train_x, train_y, _, _ = _data(n_train, d, num_classes)
    _, ftrain, _ = _features_sklearn(train_x, train_x)
    targets = 2.0 * np.eye(num_classes)[train_y] - 1.0
    _, _, w = lsr_weights(train_x, train_y, num_classes, L2S)
    for i, l2 in enumerate(L2S):
        direct = np.linalg.solve(ftrain.T @ ftrain + l2 * np.eye(d + 1), ftrain.T @ targets)
        np.testing.assert_allclose(w[i], direct, rtol=1e-6, atol=1e-9 * np.abs(direct).max())


def test_accuracies_follow_l2_order_and_test_chunking(monkeypatch):
    train_x, train_y, test_x, test_y = _data(60, 40, 6, n_test=333, sep=0.5)
    l2s = (2.0**12, 2.0**-8, 4.0)
    together = lsr_accuracies(train_x, train_y, test_x, test_y, 6, l2s)
    separately = [lsr_accuracies(train_x, train_y, test_x, test_y, 6, [v])[0] for v in l2s]
    np.testing.assert_array_equal(together, separately)
    monkeypatch.setattr(fewshot, "_TEST_CHUNK", 50)  # 7 chunks, the last one partial
    np.testing.assert_array_equal(lsr_accuracies(train_x, train_y, test_x, test_y, 6, l2s), together)


def test_close_calls_get_float64_predictions():
    """Test points a hair (1e-9 of the score scale) on either side of the decision boundary: float32
    scores cannot tell the sides apart, float64 can, and the solver must answer as float64 does."""
    train_x, train_y, test_x, _ = _data(80, 30, 2, n_test=300, sep=0.5)
    mean, std, w = lsr_weights(train_x, train_y, 2, [1.0])
    diff = w[0][:, 0] - w[0][:, 1]  # score(class 0) - score(class 1) = x·a + b in input space
    a, b = diff[:-1] / std, 100.0 * diff[-1] - (mean / std) @ diff[:-1]
    x = test_x.astype(np.float64)
    scale = np.abs(x * a).sum(axis=1)
    side = np.random.default_rng(1).choice([-1.0, 1.0], x.shape[0])
    x -= ((x @ a + b - side * 1e-9 * scale) / (a @ a))[:, None] * a  # onto the boundary, then off it
    truth = (side < 0).astype(int)  # positive margin: class 0 wins
    features = np.hstack([(x - mean) / std, np.full((x.shape[0], 1), 100.0)])
    np.testing.assert_array_equal((features @ w[0]).argmax(axis=1), truth)  # the construction works
    float32_only = (features.astype(np.float32) @ w[0].astype(np.float32)).argmax(axis=1)
    assert np.mean(float32_only == truth) < 0.9  # float32 alone gets these wrong: the test has teeth
    assert lsr_accuracies(train_x, train_y, x, truth, 2, [1.0])[0] == 1.0


def test_one_eigendecomposition_for_the_whole_grid(monkeypatch):
    train_x, train_y, test_x, test_y = _data(100, 16, 4)
    shapes = _eigh_shapes(monkeypatch)
    accs = lsr_accuracies(train_x, train_y, test_x, test_y, 4, L2_GRID)
    assert accs.shape == (30,)
    assert len(shapes) == 1


@pytest.mark.parametrize("l2s", [(), (0.0,), (-1.0,), (float("nan"),)])
def test_rejects_non_positive_l2(l2s):
    train_x, train_y, test_x, test_y = _data(20, 5, 2)
    with pytest.raises(ValueError, match="l2s"):
        lsr_accuracies(train_x, train_y, test_x, test_y, 2, l2s)


def test_rejects_labels_out_of_range():
    train_x, train_y, test_x, test_y = _data(20, 5, 3)
    with pytest.raises(ValueError, match="train_y"):
        lsr_accuracies(train_x, train_y, test_x, test_y % 2, 2, (1.0,))
    with pytest.raises(ValueError, match="test_y"):
        lsr_accuracies(train_x, train_y % 2, test_x, test_y, 2, (1.0,))


# --- sampling -----------------------------------------------------------------------------------------


def test_sample_fewshot_k_per_class_deterministic_nested():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 7, 500)
    for k in (1, 5, 25):
        idx = sample_fewshot(labels, k, seed=3)
        assert np.all(np.diff(idx) > 0), "sorted, no duplicates"
        np.testing.assert_array_equal(np.bincount(labels[idx], minlength=7), np.full(7, k))
        np.testing.assert_array_equal(idx, sample_fewshot(labels, k, seed=3))
    assert not np.array_equal(sample_fewshot(labels, 5, 0), sample_fewshot(labels, 5, 1))
    # one seed's permutations serve every shot count, so the subsets are nested (as in big_vision)
    assert set(sample_fewshot(labels, 1, 0)) <= set(sample_fewshot(labels, 5, 0))


def test_sample_fewshot_draws_like_big_vision():
    """Same rng consumption as big_vision: one generator, one permutation per class in class order."""
    labels = np.random.default_rng(2).integers(0, 5, 200)
    rng = np.random.default_rng(11)
    expected = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:4] for c in range(5)])
    np.testing.assert_array_equal(sample_fewshot(labels, 4, 11), np.sort(expected))


def test_sample_fewshot_too_small_class_named():
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 3, 3, 3])
    with pytest.raises(ValueError, match=r"class 2 has only 1"):
        sample_fewshot(labels, 2, seed=0)
    with pytest.raises(ValueError, match="shots"):
        sample_fewshot(labels, 0, seed=0)


# --- tables -------------------------------------------------------------------------------------------


def test_fewshot_table_defaults_are_big_vision():
    train_x, train_y, test_x, test_y = _data(200, 8, 4, n_test=50)
    table = fewshot_table(train_x, train_y, test_x, test_y, 4)
    assert list(table.columns) == ["shots", "seed", "l2", "accuracy"]
    assert len(table) == len(SHOTS) * 3
    assert set(table["l2"]) == {L2_FIXED}
    assert sorted(set(table["seed"])) == [0, 1, 2]
    assert tuple(sorted(set(table["shots"]))) == SHOTS
    sweep = fewshot_table(train_x, train_y, test_x, test_y, 4, shots=(1, 5), seeds=2, l2s=L2_GRID)
    assert len(sweep) == 2 * 2 * 30
    assert not sweep.duplicated(["shots", "seed", "l2"]).any()


def test_fewshot_table_separable_vs_random_labels():
    num_classes = 5
    train_x, train_y, test_x, test_y = _data(100, 16, num_classes, n_test=2000, sep=6.0)
    good = fewshot_table(train_x, train_y, test_x, test_y, num_classes, shots=(5,))
    assert good["accuracy"].min() > 0.97
    rng = np.random.default_rng(5)
    bad = fewshot_table(
        train_x,
        rng.permutation(train_y),
        test_x,
        rng.integers(0, num_classes, test_y.size),
        num_classes,
        shots=(5,),
    )
    assert abs(bad["accuracy"].mean() - 1 / num_classes) < 0.05


# --- leave-self-out -----------------------------------------------------------------------------------

# accuracy per l2 = (1, 2, 4, 8); ranks A: 1 2 3 4, B: 4 3 1 2, C: 4 2 1 3
_ACC = {"A": [0.9, 0.8, 0.7, 0.6], "B": [0.5, 0.6, 0.8, 0.7], "C": [0.4, 0.6, 0.9, 0.5]}


def _lso_table(acc: dict[str, list[float]], shots=(5,), seeds: int = 1) -> pd.DataFrame:
    rows = []
    for ds, values in acc.items():
        for k in shots:
            for seed in range(seeds):
                jitter = 0.01 * (seed - (seeds - 1) / 2)  # averages out over seeds
                rows += [
                    {"dataset": ds, "shots": k, "seed": seed, "l2": l2, "accuracy": a + jitter}
                    for l2, a in zip((1.0, 2.0, 4.0, 8.0), values, strict=True)
                ]
    return pd.DataFrame(rows)


def test_leave_self_out_uses_the_other_datasets():
    out = select_l2_leave_self_out(_lso_table(_ACC, shots=(1, 5), seeds=2)).set_index(["dataset", "shots"])
    assert list(out.columns) == ["l2", "accuracy", "mean_rank_others"]
    assert len(out) == 6
    # A's own best is l2=1, but B and C agree on 4 (mean rank 1): A gets 4 and its accuracy there
    assert out.loc[("A", 5), "l2"] == 4.0
    assert out.loc[("A", 5), "accuracy"] == pytest.approx(0.7)
    assert out.loc[("A", 5), "mean_rank_others"] == 1.0
    # C: mean ranks of A and B = 2.5, 2.5, 2, 3 -> 4
    assert out.loc[("C", 1), "l2"] == 4.0
    assert out.loc[("C", 1), "accuracy"] == pytest.approx(0.9)
    # B: mean ranks of A and C = 2.5, 2, 2, 3.5 -> a tie between 2 and 4, broken toward the smaller l2
    assert out.loc[("B", 5), "l2"] == 2.0
    assert out.loc[("B", 5), "accuracy"] == pytest.approx(0.6)


def test_leave_self_out_average_ranks_for_ties():
    # D's accuracies are all tied (rank 2.5 each): D adds nothing, so for A the choice is C's best (4)
    acc = {"A": _ACC["A"], "C": _ACC["C"], "D": [0.3, 0.3, 0.3, 0.3]}
    out = select_l2_leave_self_out(_lso_table(acc)).set_index("dataset")
    assert out.loc["A", "l2"] == 4.0
    assert out.loc["A", "mean_rank_others"] == pytest.approx((1 + 2.5) / 2)
    assert out.loc["C", "l2"] == 1.0  # A's best; D is indifferent
    # A: 1 2 3 4, C: 4 2 1 3 -> means 2.5, 2, 2, 3.5: tie between l2=2 and l2=4 goes to 2
    assert out.loc["D", "l2"] == 2.0


def test_leave_self_out_needs_two_datasets():
    with pytest.raises(ValueError, match="at least two datasets"):
        select_l2_leave_self_out(_lso_table({"A": _ACC["A"]}))


def test_leave_self_out_rejects_mismatched_grids():
    table = _lso_table(_ACC)
    table = table[~((table["dataset"] == "B") & (table["l2"] == 8.0))]
    with pytest.raises(ValueError, match="lack some l2"):
        select_l2_leave_self_out(table)


def test_fewshot_table_reads_only_the_pool():
    """Callers extract features for `fewshot_pool` rows only; every other row may be NaN."""
    from benchmark.evals.fewshot import fewshot_pool

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=400)
    train = rng.normal(size=(400, 16)) + labels[:, None]
    test_y = rng.integers(0, 5, size=100)
    test = rng.normal(size=(100, 16)) + test_y[:, None]
    pool = fewshot_pool(labels, shots=(1, 5), seeds=2)
    assert len(pool) <= 2 * 5 * 6
    holey = np.full_like(train, np.nan)
    holey[pool] = train[pool]
    full = fewshot_table(train, labels, test, test_y, 5, shots=(1, 5), seeds=2)
    partial = fewshot_table(holey, labels, test, test_y, 5, shots=(1, 5), seeds=2)
    pd.testing.assert_frame_equal(full, partial)
