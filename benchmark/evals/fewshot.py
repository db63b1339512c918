"""Few-shot linear evaluation of frozen features (ViT paper, §4.1).

The paper: "a regularised least-squares regression that maps the (frozen) representation of a subset of
training images to {-1, 1}^K target vectors", solved in closed form. Two protocols exist and the paper
does not say which one produced its numbers, so both are here and every result row carries its l2:

* **big_vision** (``evaluators/fewshot_lsr.py``, the authors' later code): l2 fixed at ``L2_FIXED`` = 2^10,
  shots 1/5/10/25, 3 sampling seeds. This is ``fewshot_table(...)`` with its defaults.
* **uncertainty-baselines** (the older evaluator): sweep ``L2_GRID`` = 2^-10 ... 2^19 and pick one l2 per
  (dataset, shots) by the best *average rank over the other datasets* ("leave-self-out"), so no dataset's
  own test accuracy chooses its own regulariser. This is ``fewshot_table(..., l2s=L2_GRID)`` followed by
  ``select_l2_leave_self_out``.

The solver follows big_vision: per-feature whitening with the few-shot train set's mean and std (+1e-5),
a constant feature of 100 appended (an almost unregularised bias), targets 2*onehot - 1, and one
eigendecomposition (of XᵀX, or of XXᵀ when there are more features than examples) reused for every l2.
Unlike big_vision (float32 under jax) the solve is float64, so results do not depend on the accumulation
order of a particular accelerator. Only the test scores are computed in float32 (they are the cost of an l2
sweep and float32 halves it), and every test row whose top two scores lie within float32's rounding-error
bound of each other is rescored in float64: the predictions are exactly those of float64 arithmetic.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark import metrics
from benchmark.config import RunConfig
from benchmark.errors import UserError
from benchmark.evals.base import EvalContext, register

L2_FIXED: float = 2.0**10
"""big_vision's fixed regulariser."""

L2_GRID: np.ndarray = 2.0 ** np.arange(-10, 20)
"""uncertainty-baselines' sweep: 2^-10 ... 2^19, 30 values, ascending."""

SHOTS: tuple[int, ...] = (1, 5, 10, 25)
"""Examples per class used by the paper (Fig. 3-5, Table 5 few-shot columns)."""

BIAS_CONSTANT: float = 100.0
"""Value of the appended constant feature: large, so the bias it carries is almost unregularised."""

STD_EPS: float = 1e-5
"""Added to the per-feature std (not its square), as big_vision does, so constant features stay finite."""

SELECTION_SHOTS: int = 5
"""The shots of the validation score `eval.early_stop` selects on (§4.3, Fig. 4's 5-shot)."""

_TEST_CHUNK = 4096  # test rows scored at a time: bounds memory at chunk x (features + classes) floats


@dataclass(frozen=True)
class _LsrCache:
    """Everything that does not depend on l2: W(l2) = lhs @ diag(1 / (eigs + l2)) @ rhs."""

    mean: np.ndarray  # (d,) train feature mean
    std: np.ndarray  # (d,) train feature std + STD_EPS
    eigs: np.ndarray  # (r,) eigenvalues of XᵀX (r = d + 1) or XXᵀ (r = n)
    lhs: np.ndarray  # (d + 1, r)
    rhs: np.ndarray  # (r, num_classes)


def sample_fewshot(labels: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """Indices of a `shots`-per-class subset, as big_vision draws it (both protocols use this).

    One ``np.random.default_rng(seed)`` permutes each class's indices in turn (classes in ascending
    order) and the first `shots` of each permutation are kept, so for a fixed seed the 5-shot set
    contains the 1-shot set, and so on. Returns the indices sorted ascending.
    Raises ValueError naming the class when a class has fewer than `shots` examples (big_vision would
    silently take fewer, which makes "k-shot" numbers incomparable).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1:
        raise ValueError(f"shots must be a positive integer, got {shots!r}")
    if labels.size == 0:
        raise ValueError("labels is empty")
    # Group indices by class in O(n log n); a stable sort keeps each class's indices ascending, which is
    # exactly what big_vision's np.where(labels == c) hands to rng.permutation.
    order = np.argsort(labels, kind="stable")
    classes, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
    too_small = counts < shots
    if too_small.any():
        c = classes[too_small][0].item()
        raise ValueError(
            f"class {c!r} has only {counts[too_small][0]} training example(s), fewer than shots={shots}"
        )
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(order[s : s + k])[:shots] for s, k in zip(starts, counts, strict=True)]
    return np.sort(np.concatenate(picked))


def _whiten_with_bias(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x - mean) / std with the constant BIAS_CONSTANT column appended, in float64."""
    out = np.empty((x.shape[0], x.shape[1] + 1), dtype=np.float64)
    np.subtract(x, mean, out=out[:, :-1])
    out[:, :-1] /= std
    out[:, -1] = BIAS_CONSTANT
    return out


def _whiten_train(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(whitened train features with bias column, mean, std + STD_EPS), float64, one centred copy."""
    out = np.empty((x.shape[0], x.shape[1] + 1), dtype=np.float64)
    centred = out[:, :-1]
    centred[...] = x
    mean = centred.mean(axis=0)
    centred -= mean
    # population std (ddof=0, as big_vision and StandardScaler) without a squared temporary
    std = np.sqrt(np.einsum("ij,ij->j", centred, centred) / x.shape[0]) + STD_EPS
    centred /= std
    out[:, -1] = BIAS_CONSTANT
    return out, mean, std


def _times_signed_onehot(m: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """mᵀ (2*onehot(y) - 1) of shape (m.shape[1], len(counts)) for rows of `m` SORTED by label, with
    `counts` the per-class row counts: per-class sums of contiguous rows, O(n * cols), instead of a
    one-hot matmul (n * cols * classes: seconds for ImageNet-sized label sets). A loop of contiguous
    sums beats np.add.reduceat / np.add.at here by 4-7x."""
    ends = np.cumsum(counts)
    class_sums = np.zeros((counts.size, m.shape[1]), dtype=np.float64)
    for c in np.flatnonzero(counts):
        class_sums[c] = m[ends[c] - counts[c] : ends[c]].sum(axis=0)
    return (2.0 * class_sums - m.sum(axis=0)).T


def _precompute(train_x: np.ndarray, train_y: np.ndarray, num_classes: int) -> _LsrCache:
    """Whitening statistics and the single eigendecomposition that serves every l2."""
    # The solution does not depend on the order of the training examples; sorting them by label makes
    # XᵀY (or UᵀY) a segment sum over contiguous rows.
    order = np.argsort(train_y, kind="stable")
    counts = np.bincount(train_y, minlength=num_classes)
    xw, mean, std = _whiten_train(np.asarray(train_x)[order])
    n, dim = xw.shape
    if n >= dim:
        # (XᵀX + l2 I)^-1 XᵀY = Q diag(1/(s + l2)) Qᵀ XᵀY
        eigs, q = np.linalg.eigh(xw.T @ xw)
        lhs = q
        rhs = q.T @ _times_signed_onehot(xw, counts)
    else:
        # More features than examples: Xᵀ(XXᵀ + l2 I)^-1 Y = (XᵀU) diag(1/(s + l2)) UᵀY
        eigs, u = np.linalg.eigh(xw @ xw.T)
        lhs = xw.T @ u
        rhs = _times_signed_onehot(u, counts)
    return _LsrCache(mean=mean, std=std, eigs=eigs, lhs=lhs, rhs=rhs)


def _sure_argmax(scores: np.ndarray, error: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise argmax of float32 `scores` whose entries in row i are each within `error[i]` of the
    exact scores, and the rows where that argmax may differ from the exact one: those whose best score
    beats the second by no more than twice the error. Overwrites `scores`."""
    rows = np.arange(scores.shape[0])
    pred = scores.argmax(axis=1)
    best = scores[rows, pred]
    scores[rows, pred] = -np.inf
    gap = best - scores.max(axis=1)
    return pred, np.flatnonzero(~(gap > 2 * error))  # `not >` also flags a NaN gap


def _check_labels(y: np.ndarray, n: int, num_classes: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must be 1-D with {n} entries, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class ids, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes}), got [{y.min()}, {y.max()}]")
    return y.astype(np.intp, copy=False)


def _check_inputs(train_x, train_y, test_x, test_y, num_classes, l2s):
    train_x, test_x = np.asarray(train_x), np.asarray(test_x)
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"features must be 2-D with equal widths, got {train_x.shape} and {test_x.shape}")
    if train_x.shape[0] == 0 or test_x.shape[0] == 0:
        raise ValueError("train and test sets must both be non-empty")
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    train_y = _check_labels(train_y, train_x.shape[0], num_classes, "train_y")
    test_y = _check_labels(test_y, test_x.shape[0], num_classes, "test_y")
    l2 = np.asarray(l2s, dtype=np.float64).reshape(-1)
    # l2 > 0 keeps every 1/(eig + l2) finite even when XᵀX is singular (e.g. constant features).
    if l2.size == 0 or not np.all(np.isfinite(l2)) or np.any(l2 <= 0):
        raise ValueError(f"l2s must be a non-empty sequence of finite positive numbers, got {l2s!r}")
    return train_x, train_y, test_x, test_y, l2


def lsr_accuracies(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    num_classes: int,
    l2s: Sequence[float],
) -> np.ndarray:
    """Test accuracy of the closed-form least-squares classifier for every l2 in `l2s`, in order.

    The solver of both protocols. One eigendecomposition serves all l2s and the test features are
    projected onto the eigenbasis once, so each extra l2 costs a single (test rows x r) @ (r x classes)
    matmul, r = min(n_train, d + 1), in float32 with float64's predictions (close calls are rescored).
    """
    train_x, train_y, test_x, test_y, l2 = _check_inputs(train_x, train_y, test_x, test_y, num_classes, l2s)
    cache = _precompute(train_x, train_y, num_classes)
    inv = 1.0 / (cache.eigs[None, :] + l2[:, None])  # (L, r): W(l2_i) = diag(inv[i]) @ rhs in the eigenbasis
    inv32, rhs32 = inv.astype(np.float32), cache.rhs.astype(np.float32)
    # A float32 score p·w_j (operands rounded to float32, then a length-r dot product in any summation
    # order) is within g·|p|·|w_j| of the exact one, g = (r+4)u / (1 - (r+4)u), u = 2^-24 (Cauchy-Schwarz).
    ru = (cache.eigs.size + 4) * np.finfo(np.float32).eps / 2
    g = ru / (1 - ru)
    w_norm = np.sqrt((inv**2) @ (cache.rhs**2)).max(axis=1)  # (L,) largest class-column norm of each W
    correct = np.zeros(l2.size, dtype=np.int64)
    for start in range(0, test_x.shape[0], _TEST_CHUNK):
        stop = start + _TEST_CHUNK
        proj = _whiten_with_bias(test_x[start:stop], cache.mean, cache.std) @ cache.lhs
        proj32, error = proj.astype(np.float32), g * np.linalg.norm(proj, axis=1)
        truth = test_y[start:stop]
        for i in range(l2.size):
            pred, unsure = _sure_argmax(proj32 @ (inv32[i][:, None] * rhs32), error * w_norm[i])
            if unsure.size:  # close calls: rescore in float64
                pred[unsure] = (proj[unsure] @ (inv[i][:, None] * cache.rhs)).argmax(axis=1)
            correct[i] += np.count_nonzero(pred == truth)
    return correct / test_x.shape[0]


def lsr_weights(
    train_x: np.ndarray, train_y: np.ndarray, num_classes: int, l2s: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std, W) with W of shape (len(l2s), d + 1, num_classes), the last row the bias weights.

    Not needed for accuracies (``lsr_accuracies`` never forms W); exposed so that the solver can be
    cross-checked against other least-squares implementations. Apply as
    ``[(x - mean) / std, 100] @ W[i]``.
    """
    train_x = np.asarray(train_x)
    if train_x.ndim != 2 or train_x.shape[0] == 0:
        raise ValueError(f"train_x must be a non-empty 2-D array, got shape {train_x.shape}")
    train_y = _check_labels(train_y, train_x.shape[0], num_classes, "train_y")
    l2 = np.asarray(l2s, dtype=np.float64).reshape(-1)
    if l2.size == 0 or not np.all(np.isfinite(l2)) or np.any(l2 <= 0):
        raise ValueError(f"l2s must be a non-empty sequence of finite positive numbers, got {l2s!r}")
    cache = _precompute(train_x, train_y, num_classes)
    w = np.stack([(cache.lhs / (cache.eigs + v)) @ cache.rhs for v in l2])
    return cache.mean, cache.std, w


def fewshot_pool(labels: np.ndarray, shots: Sequence[int] = SHOTS, seeds: int = 3) -> np.ndarray:
    """Every train index ``fewshot_table`` reads for these shots and seeds (sorted, unique).

    Feature extraction is the cost of few-shot evaluation (the solve is cheap), so callers extract
    features for these rows only; the other rows are never read.
    """
    return np.unique(np.concatenate([sample_fewshot(labels, int(k), s) for s in range(seeds) for k in shots]))


def fewshot_table(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    num_classes: int,
    shots: Sequence[int] = SHOTS,
    seeds: int = 3,
    l2s: Sequence[float] = (L2_FIXED,),
) -> pd.DataFrame:
    """Long-form few-shot results: one row per (shots, seed, l2) with its test accuracy.

    Defaults are the big_vision protocol (l2 = 2^10, seeds 0, 1, 2). Pass ``l2s=L2_GRID`` for the
    uncertainty-baselines sweep and feed the result (with a ``dataset`` column added) to
    ``select_l2_leave_self_out``. Seeds are 0 .. seeds-1; for one seed the subsets are nested over shots.
    """
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")
    train_x, train_y, test_x, test_y, l2 = _check_inputs(train_x, train_y, test_x, test_y, num_classes, l2s)
    rows = []
    for seed in range(seeds):
        for k in shots:
            idx = sample_fewshot(train_y, int(k), seed)
            accs = lsr_accuracies(train_x[idx], train_y[idx], test_x, test_y, num_classes, l2)
            rows.extend(
                {"shots": int(k), "seed": seed, "l2": float(v), "accuracy": float(a)}
                for v, a in zip(l2, accs, strict=True)
            )
    return pd.DataFrame(rows, columns=["shots", "seed", "l2", "accuracy"])


def select_l2_leave_self_out(table: pd.DataFrame) -> pd.DataFrame:
    """uncertainty-baselines' choice of l2: for each (dataset, shots), the l2 with the best average rank
    over the *other* datasets at the same shots, and this dataset's accuracy at that l2.

    Input: long form with columns dataset, shots, l2, accuracy (a seed column, if any, is averaged out
    here). Within each (dataset, shots) the l2s are ranked by accuracy, 1 = best, ties sharing the
    average rank; the l2 with the lowest mean rank over the other datasets wins, ties going to the
    smaller l2. Every dataset must have the same l2 grid at a given shots (otherwise ranks are not
    comparable) and at least two datasets are needed: with one there is nothing to leave it out *to*.
    Output columns: dataset, shots, l2, accuracy, mean_rank_others; one row per (dataset, shots).
    """
    required = ["dataset", "shots", "l2", "accuracy"]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; needs {required}")
    if table["accuracy"].isna().any():
        raise ValueError("table has missing (NaN) accuracies")
    mean = table.groupby(["dataset", "shots", "l2"], as_index=False, sort=True)["accuracy"].mean()
    datasets = mean["dataset"].unique()
    if len(datasets) < 2:
        raise ValueError(
            f"leave-self-out l2 selection needs at least two datasets; got only {list(datasets)}: "
            "the l2 for a dataset is chosen from the *other* datasets' ranks"
        )
    rows = []
    for k, group in mean.groupby("shots", sort=True):
        wide = group.pivot(index="l2", columns="dataset", values="accuracy").sort_index()
        if wide.shape[1] < 2:
            raise ValueError(
                f"at shots={k} only dataset {list(wide.columns)} has results; leave-self-out needs two"
            )
        if wide.isna().to_numpy().any():
            gaps = [str(d) for d in wide.columns if wide[d].isna().any()]
            raise ValueError(f"at shots={k} datasets {gaps} lack some l2 values the others have")
        ranks = wide.rank(axis=0, method="average", ascending=False)
        total = ranks.sum(axis=1)
        for ds in wide.columns:
            others = ((total - ranks[ds]) / (wide.shape[1] - 1)).to_numpy()
            best = int(np.argmin(others))  # first minimum = smallest l2 (index is ascending)
            l2 = wide.index[best]
            rows.append(
                {
                    "dataset": ds,
                    "shots": k,
                    "l2": float(l2),
                    "accuracy": float(wide.at[l2, ds]),
                    "mean_rank_others": float(others[best]),
                }
            )
    out = pd.DataFrame(rows, columns=[*required, "mean_rank_others"])
    return out.sort_values(["dataset", "shots"], kind="stable").reset_index(drop=True)


def bench_solver(
    n: int = 10_000,
    d: int = 768,
    num_classes: int = 1000,
    l2s: Sequence[float] = L2_GRID,
    repeats: int = 3,
    *,
    n_test: int = 1_000,
) -> dict[str, float]:
    """Wall-clock of ``lsr_accuracies`` on random float32 features (best of `repeats`, seconds).

    For ``vitbench bench``: shows that a full l2 sweep costs little more than one l2. Reports the solve
    alone (whitening + the one eigendecomposition that serves every l2), the whole evaluation with all
    `l2s` and with one l2, and the marginal cost per extra l2 (scoring the test rows, so it grows linearly
    with `n_test`). Timings only; never a test assertion.
    """
    rng = np.random.default_rng(0)
    train_x = rng.standard_normal((n, d), dtype=np.float32)
    train_y = rng.integers(0, num_classes, n)
    test_x = rng.standard_normal((n_test, d), dtype=np.float32)
    test_y = rng.integers(0, num_classes, n_test)
    l2 = np.asarray(l2s, dtype=np.float64).reshape(-1)

    def best_of(run) -> float:
        best = float("inf")
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - t0)
        return best

    solve = best_of(lambda: _precompute(train_x, train_y, num_classes))
    one = best_of(lambda: lsr_accuracies(train_x, train_y, test_x, test_y, num_classes, l2[:1]))
    every = best_of(lambda: lsr_accuracies(train_x, train_y, test_x, test_y, num_classes, l2))
    return {
        "n": float(n),
        "d": float(d),
        "num_classes": float(num_classes),
        "n_test": float(n_test),
        "n_l2s": float(l2.size),
        "solve_s": solve,
        "all_l2s_s": every,
        "one_l2_s": one,
        "per_extra_l2_s": (every - one) / max(1, l2.size - 1),
    }


# --- the registered evaluators ---------------------------------------------------------------


def _tables(
    ctx: EvalContext,
    name: str,
    l2s: Sequence[float],
    splits: tuple[str, ...] = ("val", "test"),
    shots: Sequence[int] | None = None,
) -> dict[str, pd.DataFrame]:
    """Few-shot tables of one probe dataset on its validation and test splits (or `splits`): shots
    drawn from the train split, the same shots for both, so validation choices transfer to the test
    numbers. `shots` (default: the config's) draws the same examples for k whatever else is asked."""
    ev = ctx.cfg.eval
    shots = ev.shots if shots is None else shots
    train_y = ctx.probes.split(name, "train").y.numpy()
    train_features = ctx.features(name, "train", fewshot_pool(train_y, shots, ev.fewshot_seeds))
    tables = {}
    for which in splits:
        split = ctx.probes.split(name, which)
        tables[which] = fewshot_table(
            train_features, train_y, ctx.features(name, which), split.y.numpy(), ctx.probes.num_classes(name),
            shots=shots, seeds=ev.fewshot_seeds, l2s=l2s,
        )  # fmt: skip
    return tables


def _describe_fixed(cfg: RunConfig) -> str:
    ev = cfg.eval
    return (
        f"closed-form regularised least squares on the frozen {ev.representation.replace('_', '-')} pre-logits, "
        f"l2 = {ev.l2:g} (big_vision's fixed value), {', '.join(map(str, ev.shots))} shots per class drawn from "
        f"the train split, {ev.fewshot_seeds} sampling seeds; features whitened with the shots' statistics, "
        "bias feature 100, targets ±1; accuracy on the validation split (for choices) and the test split (judged)"
    )


def scope(ctx: EvalContext) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """(splits, shots) the fixed-l2 evaluator measures in this evaluation: everything at the end and,
    with `eval.transfer_curves`, during training; else during training only what `eval.early_stop`
    selects on (the validation split at SELECTION_SHOTS), and nothing without it."""
    ev = ctx.cfg.eval
    if ctx.final or ev.transfer_curves:
        return ("val", "test"), ev.shots
    return (("val",), (SELECTION_SHOTS,)) if ev.early_stop else ((), ())


@register(
    "fewshot",
    _describe_fixed,
    during_training=True,
    # fewshot_lso sweeps l2 over this same probe: it reads these settings and has none of its own.
    owns=("shots", "fewshot_seeds", "l2", "transfer_curves"),
)
def fixed_l2(ctx: EvalContext) -> dict[str, float]:
    """big_vision's protocol: l2 fixed, mean accuracy over sampling seeds, and each seed's."""
    splits, shots = scope(ctx)
    out: dict[str, float] = {}
    if not splits:
        return out
    for name in ctx.cfg.eval.fewshot_datasets:
        tables = _tables(ctx, name, [ctx.cfg.eval.l2], splits, shots)
        for which, table in tables.items():
            for k, acc in table.groupby("shots")["accuracy"].mean().items():
                out[metrics.fewshot(name, k, which)] = float(acc)
        # Each sampling seed's test accuracy: the spread that a bootstrap over probe seeds needs.
        for row in tables["test"].itertuples() if "test" in tables else ():
            out[metrics.fewshot(name, row.shots, seed=row.seed)] = float(row.accuracy)
    return out


def _describe_lso(cfg: RunConfig) -> str:
    return (
        "the same probe with l2 swept over 2^-10 … 2^19 and chosen per (dataset, shots) by leave-self-out: "
        "the best mean rank over the other probe datasets' validation accuracies; test accuracy at that l2"
    )


def _check_lso(cfg: RunConfig) -> None:
    """Leave-self-out chooses each dataset's l2 from the others' ranks: it needs two datasets."""
    if len(cfg.eval.fewshot_datasets) < 2:
        raise UserError(
            "evaluator fewshot_lso chooses l2 by leave-self-out and needs at least two eval.fewshot_datasets"
        )


@register("fewshot_lso", _describe_lso, check=_check_lso)
def leave_self_out_l2(ctx: EvalContext) -> dict[str, float]:
    """The older protocol: l2 chosen on validation accuracies of the *other* datasets."""
    ev = ctx.cfg.eval
    l2s = sorted({ev.l2, *L2_GRID})
    tables = {name: _tables(ctx, name, l2s) for name in ev.fewshot_datasets}
    val = pd.concat([t["val"].assign(dataset=name) for name, t in tables.items()], ignore_index=True)
    out = {}
    for row in select_l2_leave_self_out(val).itertuples():
        test = tables[row.dataset]["test"]
        chosen = test[(test["shots"] == row.shots) & (test["l2"] == row.l2)]
        out[metrics.fewshot(row.dataset, row.shots, protocol="fewshot_lso")] = float(
            chosen["accuracy"].mean()
        )
        out[metrics.fewshot(row.dataset, row.shots, "val", protocol="fewshot_lso")] = float(row.accuracy)
        out[metrics.key("fewshot_lso_l2", row.dataset, f"{row.shots}shot")] = float(row.l2)
    return out
