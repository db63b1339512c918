"""The Slurm path against a real Slurm (a single-node cluster here: ../shared/SLURM.md; `.ci/run`
starts one). A study goes out as one job array and completes; a run preempted by a job in the
`urgent` partition, and one interrupted with submitit's `_interrupt()`, are requeued and resume
from the checkpoint they saved on the signal, ending bitwise as an undisturbed run does;
`status` and `cancel` follow a queued array. Every wait has a deadline, and jobs left behind by a
failing test are cancelled.

Skipped, with the reason, where no Slurm answers; VITBENCH_REQUIRE_SLURM=1 (set by CI) turns the
skip into a failure. Figures: `FAULTS` lines (run with -s) give the time to resume.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import submitit
import torch
from helpers import wait_until

from benchmark import cli, dispatch, environment, train
from benchmark.results import META, PROGRESS, RESULT, status
from benchmark.storage import read_jsonl

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
SMOKE = ["pos_embed", "--preset", "smoke"]


def slurm_missing() -> str | None:
    """Why the Slurm tests cannot run here, or None."""
    if not all(shutil.which(tool) for tool in ("sinfo", "sbatch", "squeue", "scancel", "sacct")):
        return "no Slurm client tools on PATH (.ci/run starts a single-node cluster for CI)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P %a"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s (is slurmctld running?)"
    if out.returncode != 0:
        return f"sinfo failed: {out.stderr.strip()}"
    partitions = dict(line.split() for line in out.stdout.splitlines())
    if partitions.get("urgent") != "up" or not any(p.endswith("*") for p in partitions):
        return f"need a default partition and an `urgent` one that preempts it; found {partitions}"
    return None


@pytest.fixture(scope="module")
def slurm():
    """The node's CPU count, once Slurm is known to answer."""
    if reason := slurm_missing():
        if os.environ.get("VITBENCH_REQUIRE_SLURM") == "1":
            pytest.fail(f"VITBENCH_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    cpus = subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, timeout=20).stdout
    return {"cpus": int(cpus.split()[0].rstrip("+"))}


def queued(job_ids) -> set[str]:
    """Which of these jobs (or arrays) Slurm still has queued or running."""
    out = subprocess.run(["squeue", "-h", "-o", "%F %i"], capture_output=True, text=True, timeout=30).stdout
    return {word for line in out.splitlines() for word in line.split()} & {str(j) for j in job_ids}


def step(run_dir) -> int:
    """The last step a run reported."""
    progress = run_dir / PROGRESS
    return json.loads(progress.read_text())["step"] if progress.exists() else 0


def vitbench(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmark", *argv], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    done: dict[str, dict] = {}

    def get(cfg, threads: int):
        if repr(cfg) not in done:
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                done[repr(cfg)] = train.run(cfg, tmp_path_factory.mktemp("reference"))
            finally:
                torch.set_num_threads(before)
        return done[repr(cfg)]

    return get


def test_a_study_goes_out_as_one_job_array_and_completes(slurm, tmp_path, monkeypatch, capsys):
    from test_faults import FOUR_RUNS, RUNNER  # a four-run study: four job start-ups, not eight

    import studies

    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "faults.py").write_text(FOUR_RUNS)
    flags = [
        "faults",
        "--preset",
        "smoke",
        "--set",
        "optim.steps=4",
        "--set",
        "optim.warmup_steps=1",
        "--results",
        str(tmp_path / "r"),
    ]
    submit = ["run", *flags, "--executor", "slurm", "--cpus", "1", "--time", "20", "--wait", "--no-report"]
    monkeypatch.setattr(studies, "__path__", [*studies.__path__, str(tmp_path / "extra")])
    try:  # `--wait` has no deadline of its own: run it where the test can stop it
        run = subprocess.run(
            [sys.executable, "-c", RUNNER, str(tmp_path / "extra"), *submit],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        assert cli.main(["cancel", *flags]) == 0
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 to run on the slurm executor" in run.stdout and "Submitted Slurm job array" in run.stdout
    assert "[4/4]" in run.stdout + run.stderr
    # (the cancel above may have found the finished array still leaving the queue, and logged that)
    records = read_jsonl(next((tmp_path / "r").glob("faults/*/jobs.jsonl")))
    [dispatched] = [r for r in records if r["event"] == "dispatch"]
    array = dispatched["jobs"][0].split("_")[0]
    assert dispatched["jobs"] == [f"{array}_{i}" for i in range(4)]  # one array, one task per run
    runs = sorted(p.parent for p in (tmp_path / "r").glob("faults/*/*/result.json"))
    assert len(runs) == 4 and all(status(p) == "done" for p in runs)
    for path in runs:
        meta = json.loads((path / META).read_text())
        assert meta["slurm_array_task_id"] is not None and meta["attempts"][0]["slurm_job_id"]
        assert meta["git"]["revision"] == environment.git_revision()["revision"]
        if shutil.which("rsync"):  # the job ran the snapshot, not the checkout
            assert "/.submitit/code/" in meta["attempts"][0]["code"]
    capsys.readouterr()
    assert cli.main(["status", *flags]) == 0
    out = capsys.readouterr().out
    assert f"as Slurm job array {array}" in out and "4 runs; 4 done, 0 to run" in out


def test_preempted_and_interrupted_runs_resume_from_their_checkpoints_with_the_same_result(
    slurm, tiny_cfg, tmp_path, reference, monkeypatch
):
    """Two copies of one run as a job array, a core each. submitit's `_interrupt()` hits the
    second; at once a job in `urgent` asks for every core, so Slurm preempts the first. Both
    checkpoint on the signal (periodic checkpoints are off: it is the only checkpoint there is),
    are requeued, resume from it, and end bitwise equal to an undisturbed run."""
    if slurm["cpus"] < 2:
        pytest.skip("needs a node with two cores, one per copy")
    cfg = tiny_cfg.replace(**{"model.arch": "Mu/7", "optim.steps": 400, "optim.batch_size": 16})
    monkeypatch.setenv("VITBENCH_CHECKPOINT_EVERY_S", "3600")  # sbatch exports it to the jobs
    preempted, interrupted = tmp_path / "preempted", tmp_path / "interrupted"
    # timeout_min >= 15: submitit takes an interruption within 10 min of a shorter limit for a timeout.
    jobs = dispatch.submit_slurm(
        [dispatch.Task(cfg, d, d.name) for d in (preempted, interrupted)],
        tmp_path / ".submitit",
        dispatch.SlurmSettings(cpus=1, time=30),
        "vitbench-test",
    )
    urgent = None
    try:
        wait_until(lambda: min(step(preempted), step(interrupted)) >= 30, 180, "both copies at step 30")
        signalled = time.time()
        jobs[1]._interrupt()
        sbatch = ["sbatch", "--parsable", "-p", "urgent", "-c", str(slurm["cpus"]), "-t", "5"]
        urgent = subprocess.run(
            [*sbatch, "-J", "vitbench-urgent", "-o", str(tmp_path / "urgent.out"), "--wrap", "sleep 2"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
        expected = reference(cfg, threads=1)  # computed while the jobs wait to be requeued
        wait_until(lambda: all(j.done(force_check=True) for j in jobs), 300, "both jobs to finish", poll=2)
        results = [j.result() for j in jobs]
    finally:
        for job in jobs:
            if not job.done():
                job.cancel(check=False)
        if urgent:
            subprocess.run(["scancel", urgent], timeout=30)
    # The urgent job ran, so Slurm made room: the first copy, which nothing else signalled,
    # was requeued (checked below) because it was preempted.
    urgent_state = subprocess.run(
        ["sacct", "-j", urgent, "-n", "-X", "-o", "State"], capture_output=True, text=True, timeout=30
    ).stdout.split()
    assert urgent_state == ["COMPLETED"]
    figures = {}
    for run_dir, result in zip((preempted, interrupted), results, strict=True):
        attempts = json.loads((run_dir / META).read_text())["attempts"]
        assert [a.get("outcome") for a in attempts] == ["requeued", "done"]
        assert attempts[0]["slurm_job_id"] == attempts[1]["slurm_job_id"]
        assert result["resumed_from_step"] >= 30
        assert result["metrics"] == expected["metrics"]
        assert json.loads((run_dir / RESULT).read_text())["metrics"] == expected["metrics"]
        figures[run_dir.name] = {"resumed_from_step": result["resumed_from_step"]}
        figures[run_dir.name]["resume_s"] = round(attempts[1]["start"] - signalled, 1)
    print("\nFAULTS preemption by `urgent` and job._interrupt() on Slurm: " + json.dumps(figures))


def test_a_data_parallel_run_interrupted_on_slurm_resumes_bitwise(slurm, tiny_cfg, tmp_path, monkeypatch):
    """`--tasks-per-node 2`: one job, two tasks that join a gloo process group from submitit's
    job environment and train one model. `_interrupt()` signals both; they agree on a step, the
    lead alone checkpoints and requeues, and the requeued pair resumes and ends bitwise where an
    undisturbed two-process run (on the local executor) does. Only the lead writes."""
    if slurm["cpus"] < 2:
        pytest.skip("needs a node with two cores, one per process")
    from test_distributed import run_job

    cfg = tiny_cfg.replace(**{"model.arch": "Mu/7", "optim.steps": 400, "optim.batch_size": 16})
    monkeypatch.setenv("VITBENCH_CHECKPOINT_EVERY_S", "3600")  # the signal's checkpoint is the only one
    settings = dispatch.SlurmSettings(tasks_per_node=2, cpus=1, time=30)
    run_dir = tmp_path / "run"
    [job] = dispatch.submit_slurm([dispatch.Task(cfg, run_dir, "ddp")], tmp_path / "jobs", settings, "ddp")
    try:
        wait_until(lambda: step(run_dir) >= 30, 180, "the two-process run at step 30")
        job._interrupt()
        local = submitit.LocalExecutor(folder=tmp_path / "local")
        local.update_parameters(tasks_per_node=2, timeout_min=10)
        undisturbed, _ = run_job(local, cfg, tmp_path / "undisturbed")  # while the job is requeued
        wait_until(lambda: job.done(force_check=True), 300, "the two-process job to finish", poll=2)
    finally:
        if not job.done():
            job.cancel(check=False)
    lead, follower = job.results()
    assert dispatch._collect(job, dispatch.Task(cfg, run_dir, "ddp")).status == "done"  # as `--wait` reads it
    assert lead["status"] == "done" and follower == {"status": "done", "rank": 1}
    assert lead["resumed_from_step"] >= 30
    assert lead["metrics"] == undisturbed["metrics"]
    attempts = json.loads((run_dir / META).read_text())["attempts"]
    assert [a.get("outcome") for a in attempts] == ["requeued", "done"]
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        p.name for p in (tmp_path / "undisturbed").iterdir()
    )


def test_status_and_cancel_follow_a_queued_array(slurm, tmp_path, capsys):
    flags = [*SMOKE, "--set", "optim.steps=5000", "--results", str(tmp_path / "r")]

    def vitbench_here(*argv: str) -> str:  # in this process: the CLI's own import time is not under test
        assert cli.main([*argv, *flags]) == 0
        return capsys.readouterr().out

    run = vitbench_here(
        "run", "--executor", "slurm", "--cpus", "1", "--time", "20", "--array-parallelism", "1"
    )
    array = run.split("Submitted Slurm job array ")[1].split(":")[0]
    try:
        assert f"vitbench status {' '.join(flags)}" in run  # the hint names this study
        runs_dir = next((tmp_path / "r").glob("pos_embed/*/"))
        [first] = wait_until(lambda: list(runs_dir.glob("*/progress.json")), 180, "the first run to start")
        out = vitbench_here("status")
        assert "1 running" in out and "7 pending" in out and f"Slurm job {array}_0" in out
        assert f"cancelled Slurm job(s) {array}" in vitbench_here("cancel")
        wait_until(lambda: not queued([array]), 60, "the array to leave the queue")
        wait_until(lambda: status(first.parent) == "interrupted", 60, "the killed run's claim to go stale")
        assert "1 interrupted, 7 pending" in vitbench_here("status")
        assert "nothing to cancel" in vitbench_here("cancel")
    finally:
        subprocess.run(["scancel", array], timeout=30)
