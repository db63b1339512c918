"""A study never loses work: faults injected into real runs on the local and in-process
executors, each followed by a rerun that must lose nothing, train nothing twice and end with the
results of an undisturbed run.

Figures (printed; run with -s to see them): `FAULTS` lines give the fault, runs lost and
duplicate trainings. A duplicate training is two attempts at one run that overlap in time, or an
attempt at a run already done; that a resumed run did not start over is checked where it applies.
"""

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

from benchmark import dispatch, locks, optim, train
from benchmark.config import RunConfig, canonical_json, from_dict
from benchmark.errors import UserError
from benchmark.results import (
    CHECKPOINT,
    FAILED,
    META,
    METRICS,
    PREVIOUS_CHECKPOINT,
    PROGRESS,
    RESULT,
    load_results,
    run_dir,
    run_info,
    scan,
    status,
)
from benchmark.storage import read_jsonl

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


# Short runs trained in the dispatching process (debug executor): no job start-ups to pay for.
IN_PROCESS_20_STEPS = ("--set", "optim.steps=20", "--executor", "debug")


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
    # may still be exiting, and a claim is held until its process is dead or a zombie. A job
    # claims its run before it writes the run's config.json, so every run folder is waited on, not
    # only those with a config: a job killed while writing its claim leaves an empty lock.json
    # that counts as held for locks.UNWRITTEN_GRACE_S, and a rerun within it skips that run.
    folders = tmp_path / "r" / "faults"
    wait_until(
        lambda: all(locks.holder(p) is None for p in folders.glob("*/*")), 30, "the killed jobs to exit"
    )
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
    argv = [*four_runs, "run", "faults", "--preset", "smoke", *IN_PROCESS_20_STEPS]
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


def test_a_full_disk_while_checkpointing_stops_the_study_and_the_run_resumes_from_its_last_checkpoint(
    small, tmp_path, monkeypatch, reference
):
    real_save = torch.save
    saves = []

    def full_disk(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and "optimizer" in obj:  # a checkpoint
            saves.append(1)
            if len(saves) == 3:
                f.write(b"half a checkpoint")
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setenv("VITBENCH_CHECKPOINT_EVERY_S", "0")
    monkeypatch.setattr(torch, "save", full_disk)
    other = small.replace(seed=1)
    with pytest.raises(UserError, match=r"No space left on device.*the study stopped") as err:
        dispatch.execute(
            [task(small, tmp_path / "full"), task(other, tmp_path / "other")], "debug", tmp_path / ".submitit"
        )
    assert "\n" not in str(err.value)
    # Not a failure of the run: it resumes, with no --retry-failed, once there is space.
    assert status(tmp_path / "full") == "interrupted" and not (tmp_path / "full" / FAILED).exists()
    assert torch.load(tmp_path / "full" / CHECKPOINT, weights_only=True)["step"] == 2
    assert not list((tmp_path / "full").glob("*.tmp")) and not (tmp_path / "other").exists()
    monkeypatch.setattr(torch, "save", real_save)  # space freed
    [retry] = dispatch.execute([task(small, tmp_path / "full")], "debug", tmp_path / ".submitit")
    assert retry.result["resumed_from_step"] == 2
    assert retry.result["metrics"] == reference(small)["metrics"]
    report("full disk while checkpointing", audit([tmp_path / "full"]))


def test_a_full_disk_at_the_result_never_looks_done_and_the_rerun_only_evaluates(
    small, tmp_path, monkeypatch, reference
):
    real_write_json = train.write_json

    def full_disk(path, obj):
        if Path(path).name in (RESULT, FAILED):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_json(path, obj)

    monkeypatch.setattr(train, "write_json", full_disk)
    with pytest.raises(UserError, match="No space left on device"):
        dispatch.execute([task(small, tmp_path)], "debug", tmp_path / ".submitit")
    assert status(tmp_path) == "interrupted"
    monkeypatch.setattr(train, "write_json", real_write_json)
    [retry] = dispatch.execute([task(small, tmp_path)], "debug", tmp_path / ".submitit")
    assert retry.result["resumed_from_step"] == small.optim.steps  # only the evaluation again
    assert retry.result["metrics"] == reference(small)["metrics"]
    report("full disk writing result.json", audit([tmp_path]))


@pytest.fixture
def tmpfs(tmp_path):
    """A real, small filesystem (tmpfs, mounted as root), unmounted afterwards."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_really_full_disk_stops_the_study_in_one_line_and_the_runs_resume_once_space_is_back(
    four_runs, tmpfs, tmp_path
):
    """The results on a 64 MB tmpfs filled up to its last 300 kB: `vitbench run` ends with one
    line naming the full disk (exit 2), no run is marked failed, and once the filler is gone
    the study completes."""
    filler = tmpfs / "filler"
    free = os.statvfs(tmpfs).f_bavail * os.statvfs(tmpfs).f_frsize
    filler.write_bytes(b"\0" * (free - 300_000))
    argv = [*four_runs, "run", "faults", "--preset", "smoke", *IN_PROCESS_20_STEPS]
    argv += ["--no-report", "--results", str(tmpfs / "r")]
    full = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert full.returncode == 2, full.stderr
    [line] = [line for line in full.stderr.splitlines() if line.startswith("vitbench")]
    assert "No space left on device" in line and "Traceback" not in full.stderr
    runs = study_run_dirs(tmpfs / "r", "faults")
    assert runs and all(status(p) in ("interrupted", "pending") for p in runs)
    filler.unlink()
    again = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert all(status(p) == "done" for p in study_run_dirs(tmpfs / "r", "faults"))
    report("results disk full, then freed", audit(study_run_dirs(tmpfs / "r", "faults")))


def test_a_read_only_run_folder_is_reported_as_unwritable_not_failed(small, tmpfs, tmp_path):
    run = tmpfs / "run"
    run.mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    [outcome] = dispatch.execute([task(small, run)], "debug", tmp_path / ".submitit")
    assert outcome.status == "unwritable" and outcome.result["storage"] == "read-only"
    assert "Read-only file system" in outcome.result["error"]
    assert status(run) == "pending"


def test_a_failed_job_names_its_error_not_its_log_file(tmp_path):
    """A job that dies of an exception on the local executor: submitit's error ends with the
    paths of its logs; the outcome gives the exception's own last line."""
    job = dispatch.make_executor("local", tmp_path / "jobs").submit(int, "not a number")
    wait_until(job.done, 120, "the job to fail")
    outcome = dispatch._collect(job, task(RunConfig(), tmp_path / "run"))
    assert outcome.status == "failed"
    assert outcome.result["error"] == "ValueError: invalid literal for int() with base 10: 'not a number'"


def test_a_nan_run_is_recorded_with_its_traceback_and_the_study_goes_on(small, tmp_path, monkeypatch):
    real = optim.F.cross_entropy
    bad = small.replace(**{"optim.batch_size": 15})  # the run whose loss turns NaN

    def nan_for_bad_run(logits, target, **kwargs):
        loss = real(logits, target, **kwargs)
        return loss * float("nan") if len(target) == 15 else loss

    monkeypatch.setattr(optim.F, "cross_entropy", nan_for_bad_run)
    bad_dir, good_dir = (run_dir(tmp_path / "r", "s", "p", cfg) for cfg in (bad, small))
    outcomes = dispatch.execute([task(bad, bad_dir), task(small, good_dir)], "debug", tmp_path / ".submitit")
    assert [o.status for o in outcomes] == ["failed", "done"]
    runs = scan(tmp_path / "r", "s", "p", [bad, small]).runs.set_index("run_id")
    assert (
        runs.loc[bad_dir.name, "status"] == "failed" and "loss became nan" in runs.loc[bad_dir.name, "error"]
    )
    assert "Diverged" in json.loads((bad_dir / FAILED).read_text())["traceback"]
    report("NaN loss", {"lost": 0, "duplicates": 0})


# --- two trainers in separate PID namespaces (containers sharing a host name) -------------------

HOLD = """import json, sys
from pathlib import Path
from benchmark.config import from_dict
from benchmark.dispatch import TrainJob
print(json.dumps(TrainJob(threads=1)(from_dict(json.loads(sys.argv[1])), Path(sys.argv[2])), default=str))
"""


def in_pid_namespace(cfg, path: Path, env: dict) -> subprocess.Popen:
    argv = ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", HOLD]
    return subprocess.Popen(
        [*argv, canonical_json(cfg), str(path)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_a_paused_holder_in_another_pid_namespace_is_fenced_off_and_nothing_is_written_twice(
    tiny_cfg, tmp_path, reference
):
    """A trains the run in its own PID namespace and is paused (SIGSTOP) past the stale limit; B,
    in another namespace on the same host name, takes the run over from A's checkpoint; A, woken
    (SIGCONT), finds it lost its claim and writes nothing more. The run ends as an undisturbed
    one, with no metric record twice. (Before leases, B judged A's live claim stale by a pid it
    could not see, and both trained the run.)"""
    if subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True).returncode:
        pytest.skip("unshare --pid needs root here")
    cfg = tiny_cfg.replace(**{"model.arch": "Mu/7", "optim.steps": 600, "optim.batch_size": 16})
    env = {**os.environ, "VITBENCH_LOCK_STALE_S": "3", "VITBENCH_CHECKPOINT_EVERY_S": "0.3"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")]
    )
    run = tmp_path / "run"
    a = in_pid_namespace(cfg, run, env)
    try:
        wait_until(lambda: (run / CHECKPOINT).exists() and json.loads((run / PROGRESS).read_text())["step"] >= 50,
                   120, "A to train and checkpoint")  # fmt: skip
        os.killpg(a.pid, signal.SIGSTOP)
        time.sleep(3.5)
        b = in_pid_namespace(cfg, run, env)
        wait_until(lambda: len(json.loads((run / META).read_text())["attempts"]) == 2, 120, "B to take over")
        os.killpg(a.pid, signal.SIGCONT)
        a_out, _ = a.communicate(timeout=120)
        b_out, _ = b.communicate(timeout=300)
    finally:
        for p in (a, locals().get("b")):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    a_result, b_result = json.loads(a_out), json.loads(b_out)
    assert a_result["status"] == "busy" and "lost the claim" in a_result["claim_lost"]
    assert b_result["status"] == "done" and b_result["resumed_from_step"] > 0
    assert b_result["metrics"] == reference(cfg, threads=1)["metrics"]
    steps = [r["step"] for r in read_jsonl(run / METRICS) if r["kind"] == "train"]
    assert len(steps) == len(set(steps)) == 50  # every logged step once
    info = run_info(run)
    assert info["attempts"] == 2 and info["claim_lost"] == 1 and info["state"] == "done"
    report("paused holder in another PID namespace", audit([run]) | {"claim_lost": info["claim_lost"]})


# --- two studies sharing configs (REUSE) ----------------------------------------------------------

SHARING = '''"""{name}: two small runs, {shared} of them declared by alpha too."""
from benchmark.config import DataConfig, EvalConfig, ModelConfig, OptimConfig, RunConfig

TITLE = CLAIM = REFERENCE = "REUSE tests"
PRESETS = {{"smoke": "small runs"}}
CELL = ()
REUSE = {reuse}


def runs(preset):
    return [
        RunConfig(
            model=ModelConfig(arch="Mu/7"),
            data=DataConfig(dataset="mnist5k", train_examples=256),
            optim=OptimConfig(steps=40, warmup_steps=2, batch_size=16),
            eval=EvalConfig(fewshot_datasets=("digits",), shots=(1, 5), fewshot_seeds=2),
            seed=seed,
        )
        for seed in {seeds}
    ]


table = checks = figures = None
'''


@pytest.fixture
def sharing(tmp_path):
    """argv prefix running `vitbench` with studies alpha (seeds 0, 1) and beta (seeds 1, 2; REUSE
    alpha): the config of seed 1 is both studies'."""
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "alpha.py").write_text(SHARING.format(name="alpha", shared="one", reuse="()", seeds=(0, 1)))
    (extra / "beta.py").write_text(
        SHARING.format(name="beta", shared="one", reuse='("alpha",)', seeds=(1, 2))
    )
    return [sys.executable, "-c", RUNNER, str(extra)]


def trainings(results: Path) -> dict[str, int]:
    """Attempts at each config, over both studies' folders; a copy (adopted.json) trained nothing."""
    counts: dict[str, int] = {}
    for meta in results.glob("*/smoke/*/meta.json"):
        if not (meta.parent / "adopted.json").exists():
            counts[meta.parent.name] = counts.get(meta.parent.name, 0) + len(
                json.loads(meta.read_text())["attempts"]
            )
    return counts


def test_a_config_two_studies_declare_trains_once_in_the_first_and_is_copied_to_the_other(sharing, tmp_path):
    argv = [
        "run",
        "beta",
        "--preset",
        "smoke",
        "--executor",
        "debug",
        "--no-report",
        "--results",
        str(tmp_path / "r"),
    ]
    done = subprocess.run([*sharing, *argv], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    shared = next(p for p in (tmp_path / "r" / "beta" / "smoke").iterdir() if (p / "adopted.json").exists())
    home = tmp_path / "r" / "alpha" / "smoke" / shared.name
    assert status(home) == "done" and status(shared) == "done"
    mine, theirs = (json.loads((p / RESULT).read_text()) for p in (shared, home))
    weights = mine.pop("weights")  # (recorded by the copy if train.py did not record it)
    assert theirs.pop("weights", weights) == weights and mine == theirs
    for name in (RESULT, "model.pt"):
        assert (shared / name).stat().st_ino != (home / name).stat().st_ino
    alpha = subprocess.run(
        [*sharing, *argv[:1], "alpha", *argv[2:]], capture_output=True, text=True, timeout=600
    )
    assert alpha.returncode == 0 and "1 done, 1 to run" in alpha.stdout, alpha.stdout + alpha.stderr
    assert set(trainings(tmp_path / "r").values()) == {1} and len(trainings(tmp_path / "r")) == 3
    report("a config two studies declare, trained by the second", {"trainings": trainings(tmp_path / "r")})


def test_two_studies_sharing_a_config_run_at_once_and_train_it_once(sharing, tmp_path):
    """pos_embed and inspect run at the same time trained their 3 shared configs twice: one claim,
    in the first study's folder, now serves both."""
    both = [
        subprocess.Popen([*sharing, "run", study, "--preset", "smoke", "--executor", "debug", "--no-report",
                          "--results", str(tmp_path / "r")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for study in ("alpha", "beta")
    ]  # fmt: skip
    outputs = [p.communicate(timeout=600)[0] for p in both]
    assert [p.returncode for p in both] == [0, 0], outputs
    figures = trainings(tmp_path / "r")
    report("two studies sharing a config, at once", {"trainings": figures})
    assert len(figures) == 3 and set(figures.values()) == {1}  # 3 distinct configs, each trained once
    again = subprocess.run([*sharing, "run", "beta", "--preset", "smoke", "--executor", "debug", "--no-report",
                            "--results", str(tmp_path / "r")], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert again.returncode == 0 and "2 done, 0 to run" in again.stdout, again.stdout + again.stderr
    assert trainings(tmp_path / "r") == figures


def test_ctrl_c_ends_with_one_line_saying_what_stopped_and_how_to_resume(four_runs, tmp_path):
    """Ctrl-C at a terminal reaches the whole foreground process group: the dispatcher, submitit's
    local job controllers and the training processes. It printed the controllers' KeyboardInterrupt
    tracebacks; now the dispatcher's one line says what stopped and how to resume."""
    env = {**os.environ, "VITBENCH_CHECKPOINT_EVERY_S": "0.2"}
    argv = [*four_runs, "run", "faults", "--preset", "smoke", "--set", "optim.steps=2000", "--jobs", "2"]
    argv += ["--no-report", "--results", str(tmp_path / "r")]
    run = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)  # fmt: skip
    try:
        wait_until(lambda: list((tmp_path / "r").glob("faults/*/*/checkpoint.pt")), 240, "a checkpoint")
        os.killpg(run.pid, signal.SIGINT)  # as the terminal sends it
        _, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 130 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("vitbench: interrupted faults/smoke@") and "0 of 4 runs done" in last
    assert "stopped mid-training (they resume from their last checkpoint)" in last
    assert last.endswith(
        f"resume with `vitbench run faults --preset smoke --set optim.steps=2000 --results {tmp_path / 'r'}`"
    )
