"""A study never loses work: faults injected into real runs on the local and in-process
executors, each followed by a rerun that must lose nothing, train nothing twice and end with the
results of an undisturbed run.

Figures (printed; run with -s to see them): `FAULTS` lines give the fault, runs lost and
duplicate trainings. A duplicate training is two attempts at one run that overlap in time, or an
attempt at a run already done; that a resumed run did not start over is checked where it applies.
"""

import contextlib
import errno
import itertools
import json
import os
import pdb
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import wait_until

from benchmark import dispatch, locks, train
from benchmark.config import from_dict
from benchmark.results import (
    CHECKPOINT,
    FAILED,
    META,
    METRICS,
    PREVIOUS_CHECKPOINT,
    PROGRESS,
    RESULT,
    load_results,
    load_runs,
    read_jsonl,
    status,
)

pytestmark = pytest.mark.slow  # real runs, several seconds each


def audit(run_dirs, killed_at: float | None = None) -> dict[str, int]:
    """Runs lost (not done) and duplicate trainings, from the run folders' records."""
    lost = duplicates = attempts_total = 0
    for path in run_dirs:
        result = json.loads((path / RESULT).read_text()) if status(path) == "done" else None
        lost += result is None
        attempts = json.loads((path / META).read_text())["attempts"] if (path / META).exists() else []
        attempts_total += len(attempts)
        spans = sorted((a["start"], a.get("end", killed_at or a["start"])) for a in attempts)
        duplicates += sum(later[0] < earlier[1] for earlier, later in itertools.combinations(spans, 2))
        if result:
            duplicates += sum(a["start"] > result["end"] for a in attempts)
    return {"runs": len(run_dirs), "lost": lost, "duplicates": duplicates, "attempts": attempts_total}


def report(fault: str, figures: dict) -> None:
    print(f"\nFAULTS {fault}: {json.dumps(figures)}")


def study_run_dirs(results: Path, study: str = "pos_embed") -> list[Path]:
    return sorted(p.parent for p in results.glob(f"{study}/*/*/config.json"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Results of undisturbed in-process runs, by config (computed once each, at `threads`)."""
    done: dict[tuple, dict] = {}

    def get(cfg, threads: int | None = None):
        key = (repr(cfg), threads)
        if key not in done:
            before = torch.get_num_threads()
            torch.set_num_threads(threads or before)
            try:
                done[key] = train.run(cfg, tmp_path_factory.mktemp("reference"))
            finally:
                torch.set_num_threads(before)
        return done[key]

    return get


def task(cfg, path: Path) -> dispatch.Task:
    return dispatch.Task(cfg, path, path.name)


@pytest.fixture
def small(tiny_cfg):
    """tiny_cfg at a quarter of the cost: 16 patches instead of 49, batches of 16."""
    return tiny_cfg.replace(**{"model.arch": "Mu/7", "optim.batch_size": 16})


@pytest.fixture(autouse=True)
def no_pdb(monkeypatch):
    """The debug executor opens pdb on a failed job, for a person at a terminal; tests have none."""
    monkeypatch.setattr(pdb, "post_mortem", lambda *args, **kwargs: None)


# --- local executor: kill -9, concurrent dispatchers, a signal ------------------------------------

# A study of four small runs, so that these tests pay for four job start-ups rather than eight.
FOUR_RUNS = '''"""Four small runs for the fault tests."""
from benchmark.config import DataConfig, EvalConfig, ModelConfig, OptimConfig, RunConfig

TITLE = CLAIM = REFERENCE = "fault tests"
PRESETS = {"smoke": "four small runs"}
CELL = ()


def runs(preset):
    return [
        RunConfig(
            model=ModelConfig(arch="Mu/7"),
            data=DataConfig(dataset="mnist5k", train_examples=512),
            optim=OptimConfig(steps=100, warmup_steps=5, batch_size=32),
            eval=EvalConfig(fewshot_datasets=("digits",), shots=(1, 5), fewshot_seeds=2),
            seed=seed,
        )
        for seed in range(4)
    ]


table = checks = figures = None
'''
# `vitbench` with that study visible: studies/ is a package, so extend its path before the CLI runs.
RUNNER = "import sys, studies; studies.__path__.append(sys.argv.pop(1)); from benchmark.cli import main; sys.exit(main())"


@pytest.fixture
def four_runs(tmp_path):
    """argv prefix running `vitbench` with the four-run study `faults` available."""
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "faults.py").write_text(FOUR_RUNS)
    return [sys.executable, "-c", RUNNER, str(tmp_path / "extra")]


def test_kill_9_mid_study_then_rerun_loses_nothing_and_trains_nothing_twice(four_runs, tmp_path, reference):
    env = {**os.environ, "VITBENCH_CHECKPOINT_EVERY_S": "0.2"}
    argv = [*four_runs, "run", "faults", "--preset", "smoke", "--jobs", "2", "--no-report"]
    argv += ["--results", str(tmp_path / "r")]
    first = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the dispatcher and every job it started
    )
    try:

        def mid_study():
            runs = study_run_dirs(tmp_path / "r", "faults")
            done = [p for p in runs if (p / RESULT).exists()]
            training = [p for p in runs if (p / CHECKPOINT).exists() and not (p / RESULT).exists()]
            return done and training

        wait_until(mid_study, 240, "one run done and another checkpointed")
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the dispatcher and its jobs, mid-write or not
        first.wait(timeout=30)
    killed_at = time.time()
    runs = study_run_dirs(tmp_path / "r", "faults")
    # SIGKILL is asynchronous: the jobs (grandchildren, reparented once the dispatcher is gone)
    # may still be exiting, and a claim is held until its process is dead or a zombie.
    wait_until(lambda: all(locks.holder(p) is None for p in runs), 30, "the killed jobs to exit")
    states = {p: status(p) for p in runs}
    interrupted = [p for p, s in states.items() if s == "interrupted" and (p / CHECKPOINT).exists()]
    assert interrupted and "done" in states.values(), states

    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    n_done = sum(s == "done" for s in states.values())
    assert f"{n_done} done, {4 - n_done} to run" in second.stdout
    runs = study_run_dirs(tmp_path / "r", "faults")
    figures = audit(runs, killed_at)
    report("kill -9 mid-study, rerun", figures)
    assert len(runs) == 4 and figures["lost"] == 0 and figures["duplicates"] == 0
    threads = max(1, (os.cpu_count() or 1) // 2)  # what each of the two local jobs used
    for path in interrupted:  # resumed from their checkpoints, and ended as if never killed
        result = json.loads((path / RESULT).read_text())
        config = from_dict(json.loads((path / "config.json").read_text()))
        assert result["resumed_from_step"] > 0
        assert result["metrics"] == reference(config, threads=threads)["metrics"]


def test_two_concurrent_runs_of_one_study_train_each_run_once(four_runs, tmp_path):
    """Two `vitbench run` processes started together. They train in-process (debug executor):
    the claim that keeps them apart is taken by the task, the same on every executor, and this
    spares the test eight job start-ups."""
    argv = [
        *four_runs,
        "run",
        "faults",
        "--preset",
        "smoke",
        "--set",
        "optim.steps=20",
        "--executor",
        "debug",
    ]
    argv += ["--no-report", "--results", str(tmp_path / "r")]
    both = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in both]
    assert [p.returncode for p in both] == [0, 0], outputs
    runs = study_run_dirs(tmp_path / "r", "faults")
    figures = audit(runs)
    report("two concurrent `vitbench run` of one study", figures)
    assert len(runs) == 4 and figures["lost"] == 0 and figures["duplicates"] == 0
    assert figures["attempts"] == 4  # each run trained by exactly one process
    assert "skipped: pid" in "".join(outputs)  # they did contend for runs


def test_a_preemption_signal_checkpoints_between_steps_and_the_job_resumes(
    tiny_cfg, tmp_path, reference, monkeypatch
):
    """submitit's preemption signal (USR2) to a local job's training process: the step loop
    checkpoints at once (periodic checkpoints are off here), submitit requeues the job, and the
    resumed run ends bitwise where an undisturbed one does."""
    cfg = tiny_cfg.replace(**{"model.arch": "Mu/7", "optim.steps": 300, "optim.batch_size": 16})
    monkeypatch.setenv("VITBENCH_CHECKPOINT_EVERY_S", "3600")
    job = dispatch.make_executor("local", tmp_path / "jobs").submit(
        dispatch.TrainJob(threads=1), cfg, tmp_path / "run"
    )
    try:
        progress = tmp_path / "run" / PROGRESS
        wait_until(
            lambda: progress.exists() and json.loads(progress.read_text())["step"] >= 30, 120, "step 30"
        )
        assert not (tmp_path / "run" / CHECKPOINT).exists()
        os.kill(json.loads((tmp_path / "run" / locks.LOCK).read_text())["pid"], signal.SIGUSR2)
        signalled = time.time()
        expected = reference(cfg, threads=1)  # while the job requeues
        wait_until(job.done, 180, "the requeued job to finish")
        result = job.result()
    finally:
        job.cancel(check=False)
    attempts = json.loads((tmp_path / "run" / META).read_text())["attempts"]
    assert [a.get("outcome") for a in attempts] == ["requeued", "done"]
    assert result["resumed_from_step"] >= 30 and result["metrics"] == expected["metrics"]
    report(
        "preemption signal, local executor",
        {
            "lost": 0,
            "duplicates": audit([tmp_path / "run"])["duplicates"],
            "resume_s": attempts[1]["start"] - signalled,
        },
    )


# --- in-process: damaged files, a full disk, NaN -------------------------------------------------


def half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damaged", [(CHECKPOINT,), (CHECKPOINT, PREVIOUS_CHECKPOINT)])
def test_truncated_checkpoint_falls_back_to_the_previous_one_or_to_scratch(
    damaged, small, tmp_path, reference
):
    trainer = train.Trainer(small, tmp_path)
    trainer.train(until=4)
    trainer.save_checkpoint()
    trainer.train(until=6)
    trainer.save_checkpoint()
    for name in damaged:
        half(tmp_path / name)
    with pytest.warns(UserWarning, match="unreadable checkpoint"):
        [outcome] = dispatch.execute([task(small, tmp_path)], "debug", tmp_path / ".submitit")
    assert outcome.status == "done"
    assert outcome.result["resumed_from_step"] == (4 if len(damaged) == 1 else None)
    assert outcome.result["metrics"] == reference(small)["metrics"]
    warnings_logged = [r for r in read_jsonl(tmp_path / METRICS) if r["kind"] == "warning"]
    assert len(warnings_logged) == len(damaged) and (tmp_path / "checkpoint.corrupt").exists()
    report(f"truncated {' and '.join(damaged)}", {"lost": 0, "duplicates": 0})


def test_a_truncated_result_is_not_done_and_the_study_reruns_it(tmp_path, monkeypatch, capsys):
    import studies
    from benchmark import cli

    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "faults.py").write_text(FOUR_RUNS)
    monkeypatch.setattr(studies, "__path__", [*studies.__path__, str(tmp_path / "extra")])
    argv = [
        "run",
        "faults",
        "--preset",
        "smoke",
        "--set",
        "optim.steps=3",
        "--set",
        "optim.warmup_steps=1",
        "--executor",
        "debug",
        "--no-report",
    ]
    argv += ["--results", str(tmp_path / "r")]
    assert cli.main(argv) == 0
    runs = study_run_dirs(tmp_path / "r", "faults")
    victim = runs[2]
    before = json.loads((victim / RESULT).read_text())
    half(victim / RESULT)
    with pytest.warns(UserWarning, match="ignoring corrupt file"):
        assert status(victim) == "interrupted"
        assert len(load_results(tmp_path / "r", "faults", victim.parent.name)) == 3
        capsys.readouterr()
        assert cli.main(argv) == 0
    assert "3 done, 1 to run" in capsys.readouterr().out
    after = json.loads((victim / RESULT).read_text())
    assert after["metrics"] == before["metrics"] and after["end"] > before["end"]
    assert len(load_results(tmp_path / "r", "faults", victim.parent.name)) == 4
    report("truncated result.json", audit(runs))


def test_a_full_disk_while_checkpointing_fails_the_run_and_keeps_its_last_checkpoint(
    small, tmp_path, monkeypatch, reference
):
    real_save = torch.save
    saves = []

    def full_disk(obj, f, *args, **kwargs):
        if str(getattr(f, "name", f)).endswith("checkpoint.tmp"):
            saves.append(1)
            if len(saves) == 3:
                f.write(b"half a checkpoint")
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setenv("VITBENCH_CHECKPOINT_EVERY_S", "0")
    monkeypatch.setattr(torch, "save", full_disk)
    other = small.replace(seed=1)
    outcomes = dispatch.execute(
        [task(small, tmp_path / "full"), task(other, tmp_path / "other")], "debug", tmp_path / ".submitit"
    )
    assert [o.status for o in outcomes] == ["failed", "done"]  # the study goes on
    failed = json.loads((tmp_path / "full" / FAILED).read_text())
    assert "No space left on device" in failed["error"] and "save_checkpoint" in failed["traceback"]
    assert torch.load(tmp_path / "full" / CHECKPOINT, weights_only=True)["step"] == 2
    assert not list((tmp_path / "full").glob("*.tmp"))
    monkeypatch.setattr(torch, "save", real_save)  # space freed; `--retry-failed` runs it again
    [retry] = dispatch.execute([task(small, tmp_path / "full")], "debug", tmp_path / ".submitit")
    assert retry.result["resumed_from_step"] == 2
    assert retry.result["metrics"] == reference(small)["metrics"]
    report("full disk while checkpointing", audit([tmp_path / "full", tmp_path / "other"]))


@pytest.mark.parametrize("unwritable", [(RESULT,), (RESULT, FAILED)])
def test_a_full_disk_at_the_result_never_looks_done_and_the_rerun_only_evaluates(
    unwritable, small, tmp_path, monkeypatch, reference
):
    real_write_json = train.write_json

    def full_disk(path, obj):
        if Path(path).name in unwritable:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_json(path, obj)

    monkeypatch.setattr(train, "write_json", full_disk)
    expect = (
        pytest.warns(UserWarning, match="could not record")
        if FAILED in unwritable
        else contextlib.nullcontext()
    )
    with expect:
        [outcome] = dispatch.execute([task(small, tmp_path)], "debug", tmp_path / ".submitit")
    assert outcome.status == "failed" and "No space left" in outcome.result["error"]
    # With failed.json written the run waits for --retry-failed; without, it is simply unfinished.
    assert status(tmp_path) == ("interrupted" if FAILED in unwritable else "failed")
    monkeypatch.setattr(train, "write_json", real_write_json)
    [retry] = dispatch.execute([task(small, tmp_path)], "debug", tmp_path / ".submitit")
    assert retry.result["resumed_from_step"] == small.optim.steps  # only the evaluation again
    assert retry.result["metrics"] == reference(small)["metrics"]
    report(f"full disk writing {' and '.join(unwritable)}", audit([tmp_path]))


def test_a_nan_run_is_recorded_with_its_traceback_and_the_study_goes_on(small, tmp_path, monkeypatch):
    real = train.F.cross_entropy
    bad = small.replace(**{"optim.batch_size": 15})  # the run whose loss turns NaN

    def nan_for_bad_run(logits, target, **kwargs):
        loss = real(logits, target, **kwargs)
        return loss * float("nan") if len(target) == 15 else loss

    monkeypatch.setattr(train.F, "cross_entropy", nan_for_bad_run)
    outcomes = dispatch.execute(
        [task(bad, tmp_path / "r" / "s" / "p" / "bad"), task(small, tmp_path / "r" / "s" / "p" / "good")],
        "debug",
        tmp_path / ".submitit",
    )
    assert [o.status for o in outcomes] == ["failed", "done"]
    runs = load_runs(tmp_path / "r", "s", "p").set_index("run_id")
    assert runs.loc["bad", "status"] == "failed" and "loss became nan" in runs.loc["bad", "error"]
    assert "Diverged" in json.loads((tmp_path / "r" / "s" / "p" / "bad" / FAILED).read_text())["traceback"]
    report("NaN loss", {"lost": 0, "duplicates": 0})
