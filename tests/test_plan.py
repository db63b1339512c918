"""benchmark.plan: the runs a study declares, their states, what is left to do, and the estimate.

Run folders are written here with the file protocol of benchmark.results (result.json is the
done marker, failed.json a failure, progress without a result an interrupted run), so each
state is exercised without training."""

import pytest

from benchmark import plan
from benchmark.config import RunConfig
from benchmark.results import CONFIG, FAILED, PROGRESS, RESULT, init_run_dir, run_dir, write_json
from benchmark.study import load_study


def finish(path, cfg: RunConfig, wall_s: float) -> None:
    init_run_dir(path, cfg)
    write_json(path / RESULT, {"status": "done", "metrics": {"upstream/test_top1": 0.5}, "wall_s": wall_s})


@pytest.fixture
def study():
    return load_study("pos_embed")


def test_states_todo_and_retry_failed(tmp_path, study):
    runs = plan.make_plan(study, "smoke", {}, tmp_path).runs
    assert [r.state for r in runs] == ["pending"] * 8
    finish(runs[0].path, runs[0].cfg, 10.0)
    init_run_dir(runs[1].path, runs[1].cfg)
    write_json(runs[1].path / FAILED, {"error": "diverged"})
    init_run_dir(runs[2].path, runs[2].cfg)
    write_json(runs[2].path / PROGRESS, {"step": 3})

    p = plan.make_plan(study, "smoke", {}, tmp_path)
    assert [r.state for r in p.runs[:4]] == ["done", "failed", "interrupted", "pending"]
    assert [r.run_id for r in p.todo] == [r.run_id for r in p.runs[2:]]
    assert p.skipped_failed == 1
    assert plan.summary(p) == (
        "pos_embed/smoke: 8 runs; 1 done, 6 to run (1 interrupted, 5 pending); "
        "1 failed (skipped; --retry-failed reruns them)"
    )
    retry = plan.make_plan(study, "smoke", {}, tmp_path, retry_failed=True)
    assert [r.run_id for r in retry.todo] == [r.run_id for r in p.runs[1:]] and retry.skipped_failed == 0


def test_overrides_are_another_experiment_in_their_own_folder(tmp_path, study):
    base = plan.make_plan(study, "smoke", {}, tmp_path)
    deeper = plan.make_plan(study, "smoke", {"model.depth": "2"}, tmp_path)
    assert deeper.variant.startswith("smoke@") and deeper.folder == tmp_path / "pos_embed" / deeper.variant
    assert all(r.cfg.model.depth == 2 for r in deeper.runs)
    assert {r.run_id for r in base.runs}.isdisjoint(r.run_id for r in deeper.runs)
    assert deeper.runs[0].path == run_dir(tmp_path, "pos_embed", deeper.variant, deeper.runs[0].cfg)


def test_estimate_scales_the_wall_times_of_finished_runs_of_the_same_shape(tmp_path, study):
    todo = [r.cfg for r in plan.make_plan(study, "smoke", {}, tmp_path).runs]
    assert plan.estimate(todo, tmp_path) is None  # nothing measured yet
    # Two finished runs of another study with the same shape and length: 20 and 40 s.
    cfg = todo[1]
    finish(tmp_path / "other" / "cpu" / "a", cfg.replace(seed=7), 20.0)
    finish(tmp_path / "other" / "cpu" / "b", cfg.replace(seed=8), 40.0)
    one = plan.estimate([cfg], tmp_path)
    assert one is not None and one.seconds == pytest.approx(30.0) and "same model shape" in one.source
    # Twice the steps: twice the time (seconds per training image, not per run).
    double = plan.estimate([cfg.replace(**{"optim.steps": 2 * cfg.optim.steps})], tmp_path)
    assert double.seconds == pytest.approx(60.0)
    # Another shape has no peer, so no estimate at all rather than a wrong one.
    assert plan.estimate([cfg.replace(**{"model.depth": 2})], tmp_path) is None
    # A damaged config of a finished run is skipped, not fatal.
    (tmp_path / "other" / "cpu" / "b" / CONFIG).write_text('{"model": ')
    with pytest.warns(UserWarning, match="corrupt"):
        assert plan.estimate([cfg], tmp_path).seconds == pytest.approx(20.0)


def test_estimate_falls_back_to_the_throughput_vitbench_bench_stored(tmp_path):
    cfg = RunConfig().replace(**{"model.arch": "Mu/4", "optim.steps": 10, "optim.batch_size": 50})
    bench = {"device": "cpu: test", "train": [{"arch": "Mu/4", "image_size": 28, "img_per_s": 250.0}]}
    write_json(tmp_path / plan.BENCH, bench)  # as `vitbench bench` writes it
    est = plan.estimate([cfg], tmp_path)  # mnist5k is 28×28: 500 images at 250 img/s
    assert est is not None and est.seconds == pytest.approx(2.0) and "vitbench bench" in est.source
    assert plan.estimate([cfg.replace(**{"data.image_size": 32})], tmp_path) is None
    assert plan.estimate([cfg.replace(**{"model.width": 32})], tmp_path) is None


def test_nothing_left_costs_nothing(tmp_path, study):
    p = plan.make_plan(study, "smoke", {}, tmp_path)
    for r in p.runs:
        finish(r.path, r.cfg, 5.0)
    done = plan.make_plan(study, "smoke", {}, tmp_path)
    assert done.todo == [] and done.estimate.seconds == 0.0
    assert plan.summary(done) == "pos_embed/smoke: 8 runs; 8 done, 0 to run"


def test_run_adopts_another_studys_finished_run_of_the_same_config(tmp_path):
    """inspect declares pos_embed's configs (REUSE): before training, `run` takes pos_embed's finished
    runs over (hard links, renamed into place), and leaves the unfinished ones to be trained."""
    inspect = load_study("inspect")
    cfgs = inspect.runs("smoke")
    finished, unfinished = cfgs[0], cfgs[1]
    for cfg, result in ((finished, {"status": "done", "metrics": {}}), (unfinished, None)):
        source = run_dir(tmp_path, "pos_embed", "smoke", cfg)
        init_run_dir(source, cfg)
        if result:
            write_json(source / RESULT, result)
    read_only = plan.make_plan(inspect, "smoke", {}, tmp_path)
    assert read_only.counts["done"] == 0 and not (tmp_path / "inspect").exists()  # plan/status write nothing
    adopted = plan.make_plan(inspect, "smoke", {}, tmp_path, adopt=True)
    assert adopted.counts["done"] == 1 and len(adopted.todo) == len(cfgs) - 1
    mine = run_dir(tmp_path, "inspect", "smoke", finished) / RESULT
    assert mine.stat().st_ino == (run_dir(tmp_path, "pos_embed", "smoke", finished) / RESULT).stat().st_ino
    assert not run_dir(tmp_path, "inspect", "smoke", unfinished).exists()
