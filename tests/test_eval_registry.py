"""The evaluator registry: every eval setting has one owner, an evaluator's rules bind only the runs
that name it or set its settings, and a new evaluator is one file (here: a toy one, in this file)."""

import collections
import dataclasses

import numpy as np
import pytest
import torch

from benchmark import evals, metrics, train
from benchmark.config import EvalConfig, RunConfig
from benchmark.errors import UserError


def test_every_eval_setting_is_shared_or_owned_by_exactly_one_evaluator():
    owners = collections.Counter(setting for e in evals.EVALUATORS.values() for setting in e.owns)
    fields = {f.name for f in dataclasses.fields(EvalConfig)}
    assert sorted(fields - set(owners) - set(evals.SHARED_SETTINGS)) == []  # a field nobody declares
    assert sorted(set(owners) - fields) == []  # a declared setting EvalConfig lacks
    assert sorted(s for s, n in owners.items() if n > 1 or s in evals.SHARED_SETTINGS) == []
    assert evals.EVALUATORS["finetune"].owns == ("finetune",)  # its own section, config.FinetuneConfig


def test_a_run_is_checked_for_the_evaluators_it_names_or_whose_settings_it_sets(monkeypatch):
    one_probe = RunConfig().replace(**{"eval.fewshot_datasets": ("digits",)})
    evals.check(one_probe)  # fewshot_lso (no settings of its own) binds only a run that names it
    with pytest.raises(UserError, match=r"^evaluator fewshot_lso chooses l2 by leave-self-out and needs"):
        evals.check(one_probe.replace(**{"eval.evaluators": ("upstream", "fewshot_lso")}))
    # A setting given is checked whether or not its evaluator runs, as before settings had owners.
    with pytest.raises(UserError, match=r"^eval\.finetune\.warmup=90 exceeds eval\.finetune\.steps=80$"):
        evals.check(one_probe.replace(**{"eval.finetune.warmup": 90}))
    finetune, called = evals.EVALUATORS["finetune"], []
    finetune.check(one_probe)  # at its defaults it passes: not running it refuses nothing refused before
    monkeypatch.setitem(evals.EVALUATORS, "finetune", dataclasses.replace(finetune, check=called.append))
    evals.check(one_probe)  # neither named nor set: its settings are not read
    assert called == []
    named = one_probe.replace(**{"eval.evaluators": ("finetune",)})
    set_only = one_probe.replace(**{"eval.finetune.steps": 40})
    evals.check(named)
    evals.check(set_only)
    assert called == [named, set_only]


# --- a new evaluator, defined here alone ----------------------------------------------------------


def _describe(cfg: RunConfig) -> str:
    return f"the mean logit of the pre-training head over the test split of {cfg.data.dataset}"


@torch.inference_mode()
def mean_logit(ctx: evals.EvalContext) -> dict[str, float]:
    logits = torch.cat([ctx.model(x) for x in ctx.upstream_test.batches()])
    return {metrics.key("mean_logit", ctx.cfg.data.dataset, "mean"): logits.mean().item()}


@pytest.fixture
def registered():
    """The toy evaluator, registered for one test: the registry is the process's, shared by every test."""
    evals.register("mean_logit", _describe)(mean_logit)
    yield
    del evals.EVALUATORS["mean_logit"]


def test_an_evaluator_defined_in_one_file_runs_and_is_recorded(registered, tiny_cfg, tmp_path):
    cfg = tiny_cfg.replace(**{"eval.evaluators": ("upstream", "mean_logit")})
    evals.check(cfg)  # a known name
    result = train.run(cfg, tmp_path)
    key = metrics.key("mean_logit", "mnist5k", "mean")
    assert result["status"] == "done"
    assert set(result["metrics"]) == {metrics.UPSTREAM_TOP1, metrics.UPSTREAM_TRAIN_TOP1, key}
    assert np.isfinite(result["metrics"][key])
    assert result["protocol"]["mean_logit"] == _describe(cfg)
