"""benchmark.plan: the runs a study declares, their states, what is left to do, and the estimate.

Run folders are written here with the file protocol of benchmark.results (result.json is the
done marker, failed.json a failure, progress without a result an interrupted run), so each
state is exercised without training."""

import json
from types import SimpleNamespace

import pytest

from benchmark import plan, results, storage
from benchmark.config import RunConfig, run_id
from benchmark.errors import UserError
from benchmark.results import CONFIG, FAILED, PROGRESS, RESULT, init_run_dir, run_dir
from benchmark.storage import write_json
from benchmark.study import Study, load_study


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
    # A plan mixing measured and unmeasured shapes: the measured part, the rest named, not guessed.
    mixed = plan.estimate([cfg, cfg.replace(**{"model.depth": 2})], tmp_path)
    assert mixed.seconds == pytest.approx(30.0) and mixed.unmeasured == (cfg.model.arch,)
    # Nested subsets of one fractal pool are one data shape: timed by each other, per image.
    small, large = (cfg.replace(**{"data.dataset": f"fractal10x{k}"}) for k in (10, 100))
    finish(tmp_path / "other" / "cpu" / "c", small, 10.0)
    assert plan.estimate([large], tmp_path).seconds == pytest.approx(10.0)  # same steps × batch
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


def finished_with_weights(path, cfg: RunConfig) -> None:
    """A finished run as train.run leaves it: real weights, and their record in result.json."""
    import torch

    init_run_dir(path, cfg)
    storage.save_torch(path / results.WEIGHTS, {"w": torch.zeros(8)})
    write_json(path / RESULT, {"status": "done", "metrics": {}, "weights": results.weights_record(path)})


def borrower() -> Study:
    """A study that declares pos_embed's configs and adopts its finished runs (REUSE)."""
    pos_embed = load_study("pos_embed")
    module = SimpleNamespace(
        PRESETS={"smoke": ""}, REUSE=("pos_embed",), runs=pos_embed.module.runs, CELL=pos_embed.cell
    )
    return Study("inspect", module)


def test_a_config_another_study_declares_trains_in_its_folder_and_is_adopted_by_copy(tmp_path):
    """A study that declares pos_embed's configs (REUSE): `plan` and `status` write nothing and say
    which runs pos_embed finished; `run` copies those (`prepare`), and trains the others in pos_embed's
    folder, where one claim keeps the two studies from training a config twice."""
    inspect = borrower()
    cfgs = inspect.runs("smoke")
    finished, unfinished = cfgs[0], cfgs[1]
    theirs = run_dir(tmp_path, "pos_embed", "smoke", finished)
    finished_with_weights(theirs, finished)
    read_only = plan.make_plan(inspect, "smoke", {}, tmp_path)
    assert not (tmp_path / "inspect").exists()  # plan/status write nothing
    assert read_only.counts["done"] == 1 and [r.run_id for r in read_only.adoptable] == [run_id(finished)]
    assert "1 done (1 by pos_embed/smoke: copied here by the next `vitbench run`)" in plan.summary(read_only)
    [shared] = [r for r in read_only.todo if r.cfg == unfinished]
    assert shared.source == run_dir(tmp_path, "pos_embed", "smoke", unfinished)
    assert all(r.source is None for r in read_only.runs if r.cfg not in pos_embed_configs())

    prepared, lines = plan.prepare(read_only)
    assert prepared.counts["done"] == 1 and not prepared.adoptable and "adopted 1 run(s)" in lines[0]
    mine = run_dir(tmp_path, "inspect", "smoke", finished)
    for name in (RESULT, results.WEIGHTS):
        assert (mine / name).read_bytes() == (theirs / name).read_bytes()
        assert (mine / name).stat().st_ino != (theirs / name).stat().st_ino


def test_a_preset_that_extends_another_adopts_its_finished_runs(tmp_path):
    """data_scaling's cpu-long extends cpu (REUSE_PRESETS): a config both declare, finished at cpu, is
    copied into cpu-long's folder by `run` instead of being trained again."""
    study = load_study("data_scaling")
    shared = next(c for c in study.runs("cpu-long") if c in study.runs("cpu"))
    theirs = run_dir(tmp_path, "data_scaling", "cpu", shared)
    finished_with_weights(theirs, shared)
    the_plan = plan.make_plan(study, "cpu-long", {}, tmp_path)
    assert [r.cfg for r in the_plan.adoptable] == [shared] and "by data_scaling/cpu" in plan.summary(the_plan)
    prepared, lines = plan.prepare(the_plan)
    assert prepared.counts["done"] == 1 and "data_scaling/cpu" in lines[0]
    assert (run_dir(tmp_path, "data_scaling", "cpu-long", shared) / RESULT).exists()
    only_long = next(c for c in study.runs("cpu-long") if c not in study.runs("cpu"))
    assert next(r for r in prepared.runs if r.cfg == only_long).home.parent.name == "cpu-long"


def pos_embed_configs() -> list[RunConfig]:
    return load_study("pos_embed").runs("smoke")


def test_an_override_equal_to_the_presets_value_is_no_variant(tmp_path, study):
    """`optim.lr=0.001`, `1e-3` and `optim.steps=٣٠` made new variants with the same run ids, all
    pending: finished runs would have been trained again."""
    base = plan.make_plan(study, "smoke", {}, tmp_path)
    for r in base.runs:
        finish(r.path, r.cfg, 5.0)
    lr, steps = base.runs[0].cfg.optim.lr, base.runs[0].cfg.optim.steps
    assert (lr, steps) == (0.001, 30)
    for overrides in ({"optim.lr": "0.001"}, {"optim.lr": "1e-3"}, {"optim.steps": "٣٠"}, {"seed": "0"}):
        same = plan.make_plan(study, "smoke", overrides, tmp_path)
        assert same.variant == "smoke" and same.counts["done"] == 8 and not same.todo, overrides
    # Spelled differently, one experiment: one folder.
    a = plan.make_plan(study, "smoke", {"optim.lr": "3e-4"}, tmp_path).variant
    assert a == plan.make_plan(study, "smoke", {"optim.lr": "0.0003"}, tmp_path).variant != "smoke"
    # A variant named by an older version after its spelling is pointed to, not silently dropped.
    (tmp_path / "pos_embed" / plan.variant_name("smoke", {"optim.lr": "3e-4"})).mkdir()
    with pytest.warns(UserWarning, match=f"from before variants were named by their effect.*{a}"):
        plan.make_plan(study, "smoke", {"optim.lr": "3e-4"}, tmp_path)


def test_duplicates_made_by_an_override_are_collapsed_before_running_billing_and_judging(tmp_path, study):
    """`--set seed=0` on pos_embed's 5-seed cpu preset: 40 declared runs, 8 distinct configs. Each
    is planned, billed and read once, so the claims see one seed per cell and are not judged."""
    from benchmark import cost, metrics
    from benchmark.presets import TRANSFER

    p = plan.make_plan(study, "cpu", {"seed": "0"}, tmp_path)
    assert (p.declared, len(p.runs), len(p.todo)) == (40, 8, 8)
    assert p.collapsed() == (
        f"pos_embed/{p.variant}: the overrides make the 40 runs the preset declares 8 distinct configs; "
        "each is trained, billed and judged once"
    )
    assert len(plan.bill(p, cost.load_table()).runs) == 8
    for i, r in enumerate(p.runs):
        init_run_dir(r.path, r.cfg)
        scores = {metrics.fewshot(d, 5): 0.5 + i / 100 for d in TRANSFER}
        write_json(r.path / RESULT, {"status": "done", "metrics": {metrics.UPSTREAM_TOP1: 0.9, **scores},
                                     "patch_grid": [7, 7], "wall_s": 1.0})  # fmt: skip
    # Even a caller that passes every declared config (the duplicates too) reads each run once.
    declared = [cfg.replace(seed=0) for cfg in study.runs("cpu")]
    df = results.scan(tmp_path, "pos_embed", p.variant, declared).results
    assert len(df) == 8 and df.groupby(["model.pos_embed", "model.pos_inject"])["seed"].nunique().max() == 1
    assert all(v.outcome == "inconclusive" for v in study.checks(df))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"eval.shots": "1"}, "--set eval.shots=1 drops 5, which pos_embed's checks and report read"),
        ({"eval.evaluators": "upstream"}, "drops fewshot"),
    ],
)
def test_an_override_may_not_take_away_what_the_studys_checks_read(tmp_path, study, override, message):
    with pytest.raises(UserError, match=message):
        plan.make_plan(study, "smoke", override, tmp_path)
    assert plan.make_plan(study, "smoke", {"eval.shots": "1,5,10"}, tmp_path).variant != "smoke"


def test_the_estimate_adds_the_start_up_finished_runs_recorded(tmp_path, study):
    """Issue 23: a smoke run trained in ~15 s but its slot spent ~30 s more starting; the estimate
    left that out. Each attempt now records its start-up, and the estimate adds the mean."""
    from benchmark.results import META

    cfg = plan.make_plan(study, "smoke", {}, tmp_path).runs[1].cfg
    for seed, startup in ((7, 20.0), (8, 40.0)):
        path = tmp_path / "other" / "cpu" / str(seed)
        finish(path, cfg.replace(seed=seed), 10.0)
        write_json(path / META, {"attempts": [{"start": 1.0, "startup_s": startup}]})
    est = plan.estimate([cfg, cfg.replace(seed=9)], tmp_path)
    assert est.seconds == pytest.approx(2 * (10.0 + 30.0))
    assert "30.0 s of start-up per run (mean of 2 finished runs)" in est.source


def test_a_foreign_run_folder_naming_an_unknown_model_is_left_out_of_the_estimate(tmp_path, study):
    """It stopped `plan` with exit 2 about an unrelated folder."""
    cfg = plan.make_plan(study, "smoke", {}, tmp_path).runs[1].cfg
    finish(tmp_path / "other" / "cpu" / "a", cfg.replace(seed=7), 20.0)
    foreign = tmp_path / "someone" / "cpu" / "b"
    finish(foreign, cfg.replace(seed=8), 40.0)
    stored = json.loads((foreign / CONFIG).read_text())
    stored["model"]["arch"] = "Q/16"
    (foreign / CONFIG).write_text(json.dumps(stored))
    with pytest.warns(UserWarning, match=f"{foreign}: left out of the time estimate .*unknown model 'Q/16'"):
        assert plan.estimate([cfg], tmp_path).seconds == pytest.approx(20.0)


def test_a_file_where_the_studys_folder_should_be_is_one_problem_moved_aside_before_a_run(tmp_path, study):
    (tmp_path / "pos_embed").mkdir()
    (tmp_path / "pos_embed" / "smoke").write_text("not a folder")
    p = plan.make_plan(study, "smoke", {}, tmp_path)
    assert p.garbage == [(tmp_path / "pos_embed" / "smoke", "a file where the study's folder should be")]
    assert [r.state for r in p.runs] == ["pending"] * 8
    with pytest.warns(UserWarning, match="moved aside to .set-aside-smoke-"):
        after, _ = plan.prepare(p)
    assert after.garbage == [] and not (tmp_path / "pos_embed" / "smoke").exists()
