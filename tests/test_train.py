import itertools
import json
import sys
import time

import pytest
import torch

from benchmark import data, optim, train
from benchmark.data import loader
from benchmark.results import CHECKPOINT, FAILED, METRICS, PREVIOUS_CHECKPOINT, RESULT, status
from benchmark.storage import read_jsonl


def test_lr_schedule_warms_up_then_decays_to_end_lr(tiny_cfg):
    cfg = tiny_cfg.optim.__class__(lr=1e-3, steps=100, warmup_steps=10, end_lr=1e-5)
    lrs = [optim.lr_at(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    assert optim.lr_at(100, cfg) == pytest.approx(1e-5)
    cos = cfg.__class__(lr=1e-3, steps=100, warmup_steps=10, schedule="cosine", end_lr=0.0)
    assert optim.lr_at(55, cos) == pytest.approx(5e-4, rel=1e-6)


def test_batches_cover_each_epoch_once():
    seen = torch.cat([loader.batch_indices(s, 100, 10, seed=3) for s in range(10)])
    assert sorted(seen.tolist()) == list(range(100))
    assert not torch.equal(loader.batch_indices(10, 100, 10, 3), loader.batch_indices(0, 100, 10, 3))


def test_run_writes_result_last_and_is_deterministic(tiny_cfg, tmp_path, monkeypatch):
    # the first run of a process counts its start-up from the process's start; a later one from its call
    monkeypatch.setattr(train, "_PROCESS_TRAINED", False)
    monkeypatch.setattr(train.environment, "process_age_s", lambda: 1000.0)
    a = train.run(tiny_cfg, tmp_path / "a")
    b = train.run(tiny_cfg, tmp_path / "b")
    assert a["status"] == "done" and status(tmp_path / "a") == "done"
    assert a["metrics"] == b["metrics"]
    assert set(a["metrics"]) == {"upstream/test_top1", "upstream/train_top1"} | {
        f"fewshot/digits/{k}shot{suffix}" for k in (1, 5) for suffix in ("", "/val", "/seed0", "/seed1")
    }
    # the wall time, phase by phase: no evaluation during training here
    assert set(a["wall_split"]) == {"startup_s", "train_s", "periodic_eval_s", "final_eval_s"}
    assert a["wall_split"]["startup_s"] >= 1000 > b["wall_split"]["startup_s"] > 0
    assert a["wall_split"]["periodic_eval_s"] == 0 < a["wall_split"]["final_eval_s"]
    assert a["train_images_per_s"] == pytest.approx(12 * 32 / a["wall_split"]["train_s"], rel=1e-3)
    # what the report says about the data and the probe was recorded by the run itself
    assert a["datasets"]["digits"]["role"].startswith("transfer")
    assert a["datasets"]["mnist5k"]["role"].startswith("upstream")
    assert a["datasets"]["mnist5k"]["classes"] == 10 and a["datasets"]["digits"]["classes"] == 10
    assert json.loads((tmp_path / "a" / "meta.json").read_text())["cpu"]["blas"]  # what the math ran on
    assert "l2 = 1024" in a["protocol"]["fewshot"]
    assert a["train_flops_per_image"] > 0
    assert not (tmp_path / "a" / CHECKPOINT).exists()
    kinds = [r["kind"] for r in read_jsonl(tmp_path / "a" / METRICS)]
    assert kinds[-1] == "eval" and "train" in kinds
    # a finished run is never trained again
    mtime = (tmp_path / "a" / RESULT).stat().st_mtime_ns
    assert train.run(tiny_cfg, tmp_path / "a") == json.loads((tmp_path / "a" / RESULT).read_text())
    assert (tmp_path / "a" / RESULT).stat().st_mtime_ns == mtime


def test_resume_from_checkpoint_is_bitwise(tiny_cfg, tmp_path):
    full = train.Trainer(tiny_cfg, tmp_path)
    full.train()
    # Interrupted after 5 steps: a fresh Trainer resumes from the checkpoint.
    first = train.Trainer(tiny_cfg, tmp_path / "r")
    first.train(until=5)
    first.save_checkpoint()
    resumed = train.Trainer(tiny_cfg, tmp_path / "r")
    assert resumed.try_resume() and resumed.step == 5
    resumed.train()
    for (name, p), q in zip(
        full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name


def test_a_checkpoint_keeps_the_one_before_as_its_fallback(tiny_cfg, tmp_path):
    trainer = train.Trainer(tiny_cfg, tmp_path)
    for until in (2, 4):
        trainer.train(until=until)
        trainer.save_checkpoint()
    assert torch.load(tmp_path / CHECKPOINT, weights_only=True)["step"] == 4
    assert torch.load(tmp_path / PREVIOUS_CHECKPOINT, weights_only=True)["step"] == 2
    assert not list(tmp_path.glob("*.tmp"))


def test_truncated_checkpoint_restarts_from_scratch(tiny_cfg, tmp_path):
    trainer = train.Trainer(tiny_cfg, tmp_path)
    trainer.save_checkpoint()
    data = (tmp_path / CHECKPOINT).read_bytes()
    (tmp_path / CHECKPOINT).write_bytes(data[: len(data) // 2])
    fresh = train.Trainer(tiny_cfg, tmp_path)
    assert not fresh.try_resume() and fresh.step == 0
    assert (tmp_path / "checkpoint.corrupt").exists()


def test_nan_loss_is_recorded_as_failed(tiny_cfg, tmp_path, monkeypatch):
    real = optim.F.cross_entropy
    monkeypatch.setattr(optim.F, "cross_entropy", lambda *a, **k: real(*a, **k) * float("nan"))
    out = train.run(tiny_cfg, tmp_path)
    assert out["status"] == "failed" and "loss became nan" in out["error"]
    assert status(tmp_path) == "failed"
    assert json.loads((tmp_path / FAILED).read_text())["error"].startswith("Diverged")
    assert not (tmp_path / RESULT).exists()


def test_a_crash_in_evaluation_never_looks_finished(tiny_cfg, tmp_path, monkeypatch):
    def boom(self, *args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(train.Trainer, "evaluate", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        train.run(tiny_cfg, tmp_path)
    assert status(tmp_path) == "failed" and not (tmp_path / RESULT).exists()


def test_early_stopping_evaluates_the_model_of_the_best_validation_score(tiny_cfg, tmp_path, monkeypatch):
    """§4.3: the selected model is the one of the best validation score seen during training; its
    final evaluation reproduces that step's logged evaluation (so its weights were restored)."""
    cfg = tiny_cfg.replace(**{"eval.every_steps": 3, "eval.early_stop": True})
    scores = iter([0.1, 0.9, 0.2, 0.3])  # steps 3, 6, 9 and the final 12: step 6 is best
    monkeypatch.setattr(train, "selection_score", lambda cfg, metrics: next(scores))
    result = train.run(cfg, tmp_path)
    assert result["selected_step"] == 6
    records = read_jsonl(tmp_path / METRICS)
    at_6 = next(r for r in records if r["kind"] == "eval" and r["step"] == 6)
    selected = next(r for r in records if r["kind"] == "selected")
    assert selected["step"] == 6
    assert {k: selected[k] for k in at_6 if k not in ("kind", "step")} == {
        k: v for k, v in at_6.items() if k not in ("kind", "step")
    }
    assert result["metrics"] == {k: v for k, v in selected.items() if k not in ("kind", "step")}
    assert [r["step"] for r in records if r["kind"] == "eval"] == [3, 6, 9, 12]
    assert not (tmp_path / train.BEST).exists()


def test_the_curves_measure_the_upstream_fit_and_only_the_transfer_they_are_asked_for(
    tiny_cfg, tmp_path, monkeypatch
):
    """Every evaluation records upstream train and test top-1; with eval.transfer_curves off, the
    evaluations during training measure only the validation 5-shot that early stopping selects on,
    and the final (selected) evaluation is the same as with full transfer curves. The selected
    model's context is reused: its features are not extracted twice. The time the evaluations during
    training take is theirs, not training's."""
    cfg = tiny_cfg.replace(**{"eval.every_steps": 3, "eval.early_stop": True})
    scores = iter(range(100))  # every evaluation beats the one before: the final model is selected
    monkeypatch.setattr(train, "selection_score", lambda cfg, metrics: next(scores))
    full = train.run(cfg, tmp_path / "full")

    extracted = []
    real_extract, real_log_eval = train.evals.EvalContext._extract, train.Trainer.log_eval

    def extract(ctx, split, rows):
        extracted.append(len(split))
        return real_extract(ctx, split, rows)

    def slow_log_eval(self, final=True):
        time.sleep(0.2)
        return real_log_eval(self, final)

    monkeypatch.setattr(train.evals.EvalContext, "_extract", extract)
    monkeypatch.setattr(train.Trainer, "log_eval", slow_log_eval)
    lean = train.run(cfg.replace(**{"eval.transfer_curves": False}), tmp_path / "lean")
    assert lean["metrics"] == full["metrics"] and lean["selected_step"] == full["selected_step"] == 12
    upstream = {"upstream/test_top1", "upstream/train_top1"}
    for name, extra in (("full", set(full["metrics"]) - upstream), ("lean", {"fewshot/digits/5shot/val"})):
        curve = [r for r in read_jsonl(tmp_path / name / METRICS) if r["kind"] == "eval"]
        assert [r["step"] for r in curve] == [3, 6, 9, 12]
        assert all(set(r) - {"kind", "step"} == upstream | extra for r in curve)
    # digits: (train shots, val) at steps 3, 6, 9 and 12; then the selected model's test split only
    assert extracted == [1259, 179] * 4 + [359]
    split = lean["wall_split"]
    assert split["periodic_eval_s"] >= 0.6 and split["final_eval_s"] >= 0.2  # three sleeps, and one
    assert lean["train_images_per_s"] == pytest.approx(12 * 32 / split["train_s"], rel=1e-3)
    progress = json.loads((tmp_path / "lean" / "progress.json").read_text())
    assert progress["phase"] == "final evaluation" and progress["wall_split"]["periodic_eval_s"] >= 0.6


def test_early_stopping_scores_validation_accuracy_only(tiny_cfg):
    cfg = tiny_cfg.replace(**{"eval.fewshot_datasets": ("digits", "shapes")})
    scores = {"fewshot/digits/5shot/val": 0.4, "fewshot/shapes/5shot/val": 0.8, "fewshot/digits/5shot": 1.0}
    assert train.selection_score(cfg, scores) == pytest.approx(0.6)


def test_the_step_loop_reads_the_device_only_every_few_steps(tiny_cfg, tmp_path, monkeypatch):
    """No host synchronisation inside a step: losses and votes are read at logs and every READ_EVERY
    steps (here 50 steps of a 1,000-step schedule: logs at 20 and 40, reads at 25 and 50)."""
    reads = []
    real = train.distributed.sum_over_ranks
    monkeypatch.setattr(
        train.distributed, "sum_over_ranks", lambda votes: reads.append(len(votes)) or real(votes)
    )
    trainer = train.Trainer(tiny_cfg.replace(**{"optim.steps": 1000, "optim.warmup_steps": 10}), tmp_path)
    trainer.train(until=50)
    assert reads == [
        20 + 2,
        5 + 2,
        15 + 2,
        10 + 2,
    ]  # each read carries the losses since the last, and 2 votes


SYNCS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")


def test_no_host_synchronisation_inside_a_step(tiny_cfg, tmp_path, monkeypatch):
    """Every Tensor method that waits for the device, called from the project's code, is recorded
    with the step it ran at: between reads (here the only read is at the end, step 24 of a
    10,000-step schedule) there is none. torch's own internals (e.g. the CPU optimiser's step
    counter) are not ours to count; on a GPU `torch.cuda.set_sync_debug_mode` would catch those too."""
    trainer = train.Trainer(
        tiny_cfg.replace(**{"optim.steps": 10_000, "optim.warmup_steps": 10, "data.augment": "shift"}),
        tmp_path,
    )
    calls = []
    for name in SYNCS:
        real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if "/benchmark/" in caller:
                calls.append((trainer.step, _name, caller.rsplit("/", 1)[-1]))
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    trainer.train(until=24)
    monkeypatch.undo()
    assert calls and {step for step, *_ in calls} == {24}, calls


def test_a_streamed_upstream_trains_exactly_as_the_in_memory_one(tiny_cfg, tmp_path, monkeypatch):
    """The DataLoader path (2 worker processes, the same step order) gives bitwise the same model."""
    cfg = tiny_cfg.replace(**{"data.augment": "shift"})
    in_memory = train.Trainer(cfg, tmp_path / "a")
    in_memory.train()
    monkeypatch.setenv("VITBENCH_LOADER_WORKERS", "2")
    streamed = train.Trainer(cfg, tmp_path / "b")
    streamed.stream = torch.utils.data.StackDataset(streamed.train_x.cpu(), streamed.train_y.cpu())
    streamed.train()
    assert streamed.execution()["data"] == "streamed by 2 loader process(es)"
    for p, q in zip(in_memory.model.parameters(), streamed.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_compile_setting_is_checked(monkeypatch):
    monkeypatch.setenv("VITBENCH_COMPILE", "maybe")
    with pytest.raises(
        ValueError, match="VITBENCH_COMPILE='maybe' is not valid; choose one of: auto, on, off"
    ):
        train.compile_setting()


def test_a_divergence_found_at_a_read_names_the_step_where_it_began(tiny_cfg, tmp_path, monkeypatch):
    real, calls = optim.F.cross_entropy, []

    def nan_from_step_5(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs) * (float("nan") if len(calls) > 5 else 1.0)

    monkeypatch.setattr(optim.F, "cross_entropy", nan_from_step_5)
    trainer = train.Trainer(tiny_cfg.replace(**{"optim.steps": 1000, "optim.warmup_steps": 10}), tmp_path)
    with pytest.raises(train.Diverged, match="at step 5 "):
        trainer.train(until=50)
    assert trainer.step == 20  # found at the first read, and never checkpointed past it
    assert not (tmp_path / CHECKPOINT).exists()


def test_device_augmentation_is_the_per_image_crop_of_the_padded_batch():
    x = torch.randn(6, 3, 16, 16)
    shifted = data.random_shift(x, torch.Generator().manual_seed(4))
    offsets = torch.randint(0, 5, (6, 2), generator=torch.Generator().manual_seed(4))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)
    expected = torch.stack(
        [padded[i, :, dy : dy + 16, dx : dx + 16] for i, (dy, dx) in enumerate(offsets.tolist())]
    )
    assert torch.equal(shifted, expected)


def test_the_trainer_draws_the_batches_batch_indices_describes(tiny_cfg, tmp_path, monkeypatch):
    """The epoch's order is kept on the device, but the examples of each step (across an epoch
    boundary: 8 steps per epoch here) are still those of batch_indices(step)."""
    seen = []
    real = train.train_step
    monkeypatch.setattr(
        train, "train_step", lambda net, opt, x, y, *a: seen.append(y.clone()) or real(net, opt, x, y, *a)
    )
    trainer = train.Trainer(tiny_cfg, tmp_path)
    trainer.train()
    n = len(trainer.train_y)
    for step, y in enumerate(seen):
        assert torch.equal(y, trainer.train_y[loader.batch_indices(step, n, 32, tiny_cfg.seed)])


def test_resume_with_device_augmentation_is_bitwise(tiny_cfg, tmp_path):
    cfg = tiny_cfg.replace(**{"data.augment": "shift"})
    full = train.Trainer(cfg, tmp_path / "full")
    full.train()
    first = train.Trainer(cfg, tmp_path / "r")
    first.train(until=5)
    first.save_checkpoint()
    resumed = train.Trainer(cfg, tmp_path / "r")
    assert resumed.try_resume()
    resumed.train()
    for p, q in zip(full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(p, q)
