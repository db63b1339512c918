"""The evaluator registry and the probes beside few-shot: logistic regression and fine-tuning."""

import dataclasses

import numpy as np
import pytest
import torch

from benchmark import data, evals
from benchmark.config import RunConfig
from benchmark.errors import UserError
from benchmark.evals import Split, fewshot
from benchmark.evals.linear import logreg_accuracy
from benchmark.evals.upstream import train_sample


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
            dataclasses.replace(evaluator, fn=lambda ctx, n=name: called.append(n) or {}),
        )
    cfg = RunConfig().replace(**{"eval.evaluators": ("upstream", "fewshot", "linear", "finetune")})
    ctx = evals.EvalContext(None, cfg, None, None)
    evals.evaluate(ctx, final=False)
    assert called == ["upstream", "fewshot"]
    called.clear()
    evals.evaluate(ctx, final=True)
    assert called == ["upstream", "fewshot", "linear", "finetune"]


def test_the_upstream_train_sample_is_fixed_sorted_and_class_stratified():
    labels = np.repeat(np.arange(5), [400, 300, 200, 100, 3])  # one class with only 3 examples
    sample = train_sample(labels, n=100)
    assert np.array_equal(sample, train_sample(labels, n=100)) and np.all(np.diff(sample) > 0)
    counts = np.bincount(labels[sample], minlength=5)
    assert counts[4] == 3 and counts.sum() == 100 and counts[:4].max() - counts[:4].min() <= 1
    assert not np.array_equal(sample, train_sample(labels, n=100, seed=1))
    assert np.array_equal(train_sample(labels, n=5000), np.arange(len(labels)))  # all when no more


@pytest.mark.parametrize("name", ["digits", "mnist5to9"])
def test_a_split_prepared_once_is_bitwise_the_split_prepared_per_batch(name):
    """8 px and 28 px images resized to 32 px: indexing the once-prepared split gives exactly the
    per-batch preparation, so preparing once changes no metric."""
    ds = data.load(name)
    once = Split.of(ds.val_x, ds.val_y, 32, 1)
    per_batch = Split(ds.val_x, ds.val_y, 32, 1)
    assert once.prepared is not None and per_batch.prepared is None
    index = torch.randperm(len(once), generator=torch.Generator().manual_seed(0))[:77]
    assert torch.equal(once.x(index), per_batch.x(index))
    assert all(torch.equal(a, b) for a, b in zip(once.batches(), per_batch.batches(), strict=True))
    joined = once.joined(Split.of(ds.test_x, ds.test_y, 32, 1))
    assert torch.equal(joined.x(index + len(once)), data.prepare(ds.test_x[index], 32, 1))
    # a split too large to keep prepared is prepared batch by batch
    assert Split.of(ds.val_x, ds.val_y, 4096, 1).prepared is None


def _context(cfg, final):
    return evals.EvalContext(None, cfg, None, None, final=final)


def test_the_few_shot_probe_measures_during_training_only_what_the_run_reads():
    cfg = RunConfig().replace(**{"eval.shots": (1, 5, 10)})
    everything = (("val", "test"), (1, 5, 10))
    assert fewshot.scope(_context(cfg, final=True)) == everything
    assert fewshot.scope(_context(cfg, final=False)) == everything  # transfer curves (Fig. 9)
    lean = cfg.replace(**{"eval.transfer_curves": False})
    assert fewshot.scope(_context(lean, final=True)) == everything
    assert fewshot.scope(_context(lean, final=False)) == ((), ())
    early = lean.replace(**{"eval.early_stop": True, "eval.every_steps": 10})
    assert fewshot.scope(_context(early, final=False)) == (("val",), (fewshot.SELECTION_SHOTS,))
    assert fewshot.fixed_l2(_context(lean, final=False)) == {}


def test_what_an_evaluation_context_computed_is_computed_once():
    ctx, calls = _context(RunConfig(), final=True), []
    assert ctx.cached("k", lambda: calls.append(1) or 7) == 7 == ctx.cached("k", lambda: calls.append(1) or 8)
    assert calls == [1]
