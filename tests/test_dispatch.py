"""Dispatch without a cluster: the job side, Slurm settings from flags, environment and file, the code snapshot's refusal of a dirty tree, and `status`/`cancel`."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_locks import write_claim

from benchmark import cli, dispatch, environment, locks, train
from benchmark.errors import UserError
from benchmark.results import META, run_info

ROOT = Path(__file__).resolve().parent.parent


# --- TrainJob ---------------------------------------------------------------------------------


def test_a_claimed_run_is_not_trained_and_is_reported_busy(tiny_cfg, tmp_path):
    write_claim(tmp_path, host="elsewhere")
    assert dispatch.TrainJob()(tiny_cfg, tmp_path) == {
        "status": "busy",
        "owner": json.loads((tmp_path / locks.LOCK).read_text()),
    }
    assert not (tmp_path / META).exists()


def test_a_job_refuses_to_run_other_code_than_submitted(tiny_cfg, tmp_path):
    with pytest.raises(RuntimeError, match="checkout changed after submission"):
        dispatch.TrainJob(revision="0" * 40)(tiny_cfg, tmp_path)
    info = run_info(tmp_path)
    assert info["state"] == "failed" and "submitted at 0000" in info["error"]
    assert not (tmp_path / locks.LOCK).exists()


def test_a_stop_request_checkpoints_between_steps(tiny_cfg, tmp_path):
    """What a preemption signal triggers in a job: a checkpoint at the next step boundary, then
    train.Interrupted (never a recorded failure); the resumed run ends where a straight one does."""
    straight = train.run(tiny_cfg, tmp_path / "straight")
    trainer = train.Trainer(tiny_cfg, tmp_path / "stopped")
    trainer.train(until=4)
    train.STOP.requested = True
    try:
        with pytest.raises(train.Interrupted):
            trainer.train()
    finally:
        train.STOP.requested = False
    assert trainer.step == 5 and (tmp_path / "stopped" / "checkpoint.pt").exists()
    resumed = train.run(tiny_cfg, tmp_path / "stopped")
    assert resumed["resumed_from_step"] == 5 and resumed["metrics"] == straight["metrics"]


# --- Slurm settings -------------------------------------------------------------------------


def flags(**given):
    return {key: given.get(key) for key in dispatch.SLURM_KEYS}


def test_slurm_settings_merge_flag_over_environment_over_file(tmp_path):
    config = tmp_path / "slurm.ini"
    config.write_text(
        "[slurm]\npartition = from-file\ngpus = 2\ntime = 600\nsbatch = --constraint=a100 --exclusive\n"
        "setup =\n  module load cuda\n  source ~/venv/bin/activate\n"
    )
    env = {
        "VITBENCH_SLURM_PARTITION": "from-env",
        "VITBENCH_SLURM_GPUS": "4",
        "VITBENCH_SLURM_CONFIG": str(config),
    }
    s = dispatch.slurm_settings(flags(gpus="8", cpus="6"), env=env)
    assert (s.partition, s.gpus, s.cpus, s.time) == ("from-env", 8, 6, 600)
    assert s.sbatch == ("--constraint=a100", "--exclusive")
    assert s.setup == ("module load cuda", "source ~/venv/bin/activate")
    assert dispatch.slurm._sbatch_options(s.sbatch) == {"constraint": "a100", "exclusive": True}
    assert dispatch.slurm_settings(flags(), env={}) == dispatch.SlurmSettings()


@pytest.mark.skipif(shutil.which("sbatch") is None, reason="needs Slurm's sbatch on PATH")
@pytest.mark.parametrize(
    ("given", "tasks", "srun"),
    [
        ({}, 1, None),
        ({"gpus": "1"}, 1, None),
        ({"gpus": "4", "nodes": "2"}, 4, ["--kill-on-bad-exit=1"]),
        ({"tasks_per_node": "2"}, 2, ["--kill-on-bad-exit=1"]),
    ],
)
def test_one_training_process_per_gpu_and_srun_ends_all_if_one_fails(tmp_path, given, tasks, srun):
    settings = dispatch.slurm_settings(flags(**given), env={})
    params = dispatch.slurm_executor(tmp_path, settings, "t").parameters
    assert params["ntasks_per_node"] == tasks and params["nodes"] == settings.nodes
    assert params.get("srun_args") == srun


@pytest.mark.parametrize(
    ("given", "env", "message"),
    [
        (flags(gpus="two"), {}, "--gpus='two' is not a valid int"),
        (flags(cpus="0"), {}, "--cpus must be at least 1"),
        (flags(), {"VITBENCH_SLURM_MEM_GB": "-1"}, "VITBENCH_SLURM_MEM_GB must be at least"),
        (
            flags(),
            {"VITBENCH_SLURM_PARTITON": "gpu"},
            "unknown environment variable(s) VITBENCH_SLURM_PARTITON",
        ),
        (flags(sbatch=["-C a100"]), {}, "write long options"),
        (flags(sbatch=["--array=0-3"]), {}, "--array is set by vitbench"),
        (flags(), {"VITBENCH_SLURM_CONFIG": "/no/such/file.ini"}, "cannot read Slurm config"),
    ],
)
def test_bad_slurm_settings_are_user_errors(given, env, message):
    with pytest.raises(UserError) as err:
        dispatch.slurm_settings(given, env=env)
    assert message in str(err.value)


def test_slurm_config_rejects_unknown_keys(tmp_path):
    (tmp_path / "c.ini").write_text("[slurm]\npartion = gpu\n")
    with pytest.raises(UserError, match=r"unknown key\(s\) \['partion'\]"):
        dispatch.slurm_settings(flags(), config=tmp_path / "c.ini", env={})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--partition", "gpu"], "--partition only apply to --executor slurm"),
        (["--wait"], "--wait only apply to --executor slurm"),
        (["--executor", "slurm", "--gpus", "x"], "--gpus='x' is not a valid int"),
    ],
)
def test_slurm_flags_are_checked_before_anything_is_written(argv, message, tmp_path, capsys):
    code = cli.main(["run", "pos_embed", "--preset", "smoke", "--results", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())


def test_slurm_executor_without_slurm_is_a_user_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code = cli.main(
        ["run", "pos_embed", "--preset", "smoke", "--executor", "slurm", "--results", str(tmp_path)]
    )
    assert code == 2 and "needs Slurm's sbatch and srun on PATH" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


# --- code snapshot --------------------------------------------------------------------------


@pytest.fixture
def checkout(tmp_path):
    """A small git checkout with a tracked file in a package and one outside."""
    repo = tmp_path / "repo"
    (repo / "benchmark").mkdir(parents=True)
    (repo / "benchmark" / "code.py").write_text("VERSION = 1\n")
    (repo / "notes.txt").write_text("tracked\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    return repo


def test_without_rsync_only_a_clean_checkout_may_submit(checkout, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"  # git, but no rsync
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git"))
    monkeypatch.setenv("PATH", str(bin_dir))
    head = environment.git(checkout, "rev-parse", "HEAD")
    with dispatch.code_snapshot(tmp_path / "jobs", checkout) as revision:
        assert revision == head and Path.cwd() != tmp_path / "jobs"
    (checkout / "notes.txt").write_text("edited: not code, like a regenerated report\n")
    with dispatch.code_snapshot(tmp_path / "jobs", checkout) as revision:
        assert revision == head
    (checkout / "benchmark" / "code.py").write_text("VERSION = 2\n")
    snapshot = dispatch.code_snapshot(tmp_path / "jobs", checkout)
    with (
        pytest.raises(UserError, match="uncommitted changes to its code and rsync is not installed"),
        snapshot,
    ):
        pass
    assert not (tmp_path / "jobs").exists()


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")
def test_with_rsync_jobs_start_in_a_snapshot_of_the_working_tree(checkout, tmp_path):
    (checkout / "benchmark" / "code.py").write_text("VERSION = 2\n")  # modified, not committed
    (checkout / "benchmark" / "new.py").write_text("NEW = True\n")  # untracked, in a package
    (checkout / "scratch.txt").write_text("untracked, not code\n")
    before = Path.cwd()
    with dispatch.code_snapshot(tmp_path / "jobs", checkout) as revision:
        snapshot = Path.cwd()
        assert snapshot.parent == tmp_path / "jobs" / "code" and snapshot.name.startswith(revision[:12])
    assert Path.cwd() == before
    (checkout / "benchmark" / "code.py").write_text("VERSION = 3\n")  # later edits do not leak in
    assert (snapshot / "benchmark" / "code.py").read_text() == "VERSION = 2\n"
    assert (snapshot / "benchmark" / "new.py").exists() and not (snapshot / "scratch.txt").exists()
    assert environment.git(snapshot, "rev-parse", "HEAD") == revision
    # so the jobs record the submitted revision and that it had local changes
    assert environment.code_changes(snapshot).splitlines() == [" M benchmark/code.py", "?? benchmark/new.py"]


# --- status and cancel ------------------------------------------------------------------------


def test_status_shows_state_progress_restarts_and_reasons(tmp_path, capsys):
    """One run in each state (a real finished run, the others' files as a job would leave
    them), read back by `vitbench status` from the run folders alone."""
    from benchmark.results import run_dir

    argv = [
        "pos_embed",
        "--preset",
        "smoke",
        "--set",
        "optim.steps=3",
        "--set",
        "optim.warmup_steps=1",
        "--set",
        "eval.fewshot_datasets=digits",
    ]
    args = cli._parser().parse_args(["status", *argv, "--results", str(tmp_path)])
    the_plan = cli._planned(args)
    runs = [r.cfg for r in the_plan.runs]
    dirs = [run_dir(tmp_path, "pos_embed", the_plan.variant, cfg) for cfg in runs]
    train.run(runs[0], dirs[0])  # done
    dirs[1].mkdir(parents=True)
    (dirs[1] / "failed.json").write_text(json.dumps({"error": "Diverged: loss became nan at step 3"}))
    write_claim(dirs[2], host="elsewhere", pid=4242, slurm_job="17_2")  # running on another node
    dirs[3].mkdir(parents=True)
    now = time.time()
    attempts = [
        {"start": now - 60, "end": now - 50, "outcome": "requeued"},
        {"start": now - 40},
    ]  # then killed
    (dirs[3] / META).write_text(json.dumps({"attempts": attempts}))
    (dirs[3] / "progress.json").write_text(json.dumps({"step": 2, "steps": 3, "time": now - 30}))
    assert cli.main(["status", *argv, "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.split()}
    assert " done " in lines[dirs[0].name] and "3/3" in lines[dirs[0].name]
    assert " failed " in lines[dirs[1].name] and "loss became nan" in lines[dirs[1].name]
    assert (
        " running " in lines[dirs[2].name] and "pid 4242 on elsewhere, Slurm job 17_2" in lines[dirs[2].name]
    )
    line = lines[dirs[3].name]
    assert " interrupted " in line and "2/3" in line and "requeued 1×" in line and "killed 1×" in line
    assert " 20s " in line  # 10 s in the first attempt, 10 s until the second one's last progress
    assert "8 runs; 1 done, 5 to run (1 interrupted, 4 pending); 1 failed (skipped; " in out
    assert "; 1 running (skipped)\n" in out


@pytest.mark.slow
def test_cancel_stops_a_local_study_and_its_runs_resume(tmp_path, capsys):
    """`vitbench cancel` from another terminal: the local `vitbench run` stops its jobs and exits;
    no training process is left behind; the interrupted run resumes on the next run. The run is
    started with SIGINT ignored, as a background job of a script inherits it."""
    env = {**os.environ, "VITBENCH_CHECKPOINT_EVERY_S": "0"}
    common = ["pos_embed", "--preset", "smoke", "--set", "optim.steps=2000", "--results", str(tmp_path / "r")]
    log = tmp_path / "run.log"  # what the dispatcher said, for the assertion message
    run = subprocess.Popen(
        [sys.executable, "-m", "benchmark", "run", *common, "--jobs", "1", "--no-report"],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        # As `nohup vitbench run ... &` or a CI script starts it: SIGINT inherited as ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        deadline = time.time() + 120
        started = []
        while not started and time.time() < deadline and run.poll() is None:
            started = list((tmp_path / "r").glob("pos_embed/smoke@*/*/progress.json"))
            time.sleep(0.2)
        assert started, "no run started within 120 s"
        worker = json.loads((started[0].parent / locks.LOCK).read_text())["pid"]
        assert cli.main(["cancel", *common]) == 0
        assert f"stopped the local `vitbench run` (pid {run.pid})" in capsys.readouterr().out
        try:
            code = run.wait(timeout=60)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 130, f"the dispatcher did not stop on cancel; it said:\n{log.read_text()[-3000:]}"
        deadline = time.time() + 30
        while locks.pid_alive(worker) and time.time() < deadline:
            time.sleep(0.1)
        assert not locks.pid_alive(worker)
        assert run_info(started[0].parent)["state"] == "interrupted"
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)


# --- local workers --------------------------------------------------------------------------------


def test_shares_of_about_equal_cost_keep_the_plans_order(tiny_cfg, tmp_path):
    steps = [40, 10, 10, 10, 10, 30]
    tasks = [
        dispatch.Task(tiny_cfg.replace(**{"optim.steps": n}), tmp_path / str(i), str(i))
        for i, n in enumerate(steps)
    ]
    groups = dispatch.shares(tasks, 2)
    assert [[t.label for t in g] for g in groups] == [["0", "2", "4"], ["1", "3", "5"]]  # 60 and 50 steps
    assert dispatch.shares(tasks[:1], 4) == [tasks[:1]]


def test_a_worker_trains_its_share_in_one_process_and_goes_on_after_a_failure(
    tiny_cfg, tmp_path, monkeypatch
):
    """The per-run start-up (process start, imports, data loading) is paid once per worker: its
    later runs record almost none. A run that fails is recorded in its folder; the next one trains."""
    monkeypatch.setenv("VITBENCH_DATA", str(tmp_path / "no-data"))
    missing = tiny_cfg.replace(**{"data.dataset": "cifar10", "data.image_size": 28})
    share = [
        (tiny_cfg, tmp_path / "a", None),
        (missing, tmp_path / "b", None),
        (tiny_cfg.replace(seed=1), tmp_path / "c", None),
    ]
    outcomes = dispatch.TrainQueue()(share)
    assert [o["status"] for o in outcomes] == ["done", "failed", "done"]
    assert "dataset 'cifar10'" in outcomes[1]["error"] and run_info(tmp_path / "b")["state"] == "failed"
    [last] = json.loads((tmp_path / "c" / META).read_text())["attempts"]
    assert last["startup_s"] < 1.0  # no process start, no imports: the worker was ready


@pytest.mark.slow
def test_local_workers_each_train_their_share_in_one_process(tiny_cfg, tmp_path):
    """Four runs on two local workers (real submitit subprocesses): two processes in all, and each
    worker's second run starts at once."""
    tasks = [dispatch.Task(tiny_cfg.replace(seed=s), tmp_path / f"run{s}", f"seed={s}") for s in range(4)]
    outcomes = dispatch.execute(tasks, "local", tmp_path / ".submitit", jobs=2)
    assert sorted(o.status for o in outcomes) == ["done"] * 4
    attempts = [json.loads((t.run_dir / META).read_text())["attempts"][-1] for t in tasks]
    assert len({a["pid"] for a in attempts}) == 2
    first, later = (
        sorted(attempts, key=lambda a: a["start"])[:2],
        sorted(attempts, key=lambda a: a["start"])[2:],
    )
    assert min(a["startup_s"] for a in first) > 5 * max(a["startup_s"] for a in later)
