"""All submitit code: send a study's unfinished runs to an executor, follow them, cancel them.

Executors: "local" (submitit's LocalExecutor: `jobs` worker processes, each training its share
of the runs one after another, so that a process's start, its imports and the datasets it loaded
are paid once per worker rather than once per run: `TrainQueue`), "debug" (submitit's
DebugExecutor: in this process, for tests and pdb) and "slurm" (one job array per submission, one
run per job; see `SlurmSettings`). Every task calls `train.run(config, run_dir)`, which resumes
from the run's own checkpoint, so resubmitting a task is always safe; the task first claims the
run (locks.py), so two dispatchers never train the same run at once. Progress is read from each
run's progress.json, never from logs.

What runs inside a job is in `job.py`, the Slurm settings and code snapshot in `slurm.py`, the
progress display in `progress.py`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit
import torch

from benchmark import locks, results
from benchmark.config import RunConfig
from benchmark.dispatch.job import TrainJob, TrainQueue, listen_for_ctrl_c
from benchmark.dispatch.progress import Display
from benchmark.dispatch.slurm import (
    SLURM_KEYS,
    SlurmSettings,
    code_snapshot,
    slurm_executor,
    slurm_settings,
)
from benchmark.errors import UserError
from benchmark.plan import Plan
from benchmark.results import FAILED, JOBS, PROGRESS, read_result
from benchmark.storage import append_jsonl, error_line, read_json, read_jsonl, storage_error

__all__ = [
    "EXECUTORS",
    "SLURM_KEYS",
    "SLURM_POLL_S",
    "Display",
    "Launch",
    "Outcome",
    "SlurmSettings",
    "Task",
    "TrainJob",
    "TrainQueue",
    "cancel",
    "code_snapshot",
    "complete",
    "default_jobs",
    "execute",
    "follow",
    "launch",
    "launch_settings",
    "listen_for_ctrl_c",
    "make_executor",
    "record_dispatch",
    "shares",
    "slurm_executor",
    "slurm_settings",
    "submit_slurm",
    "unrecorded",
]

EXECUTORS = ("local", "debug", "slurm")
POLL_S = 0.5
SLURM_POLL_S = 2.0  # gentler on a shared filesystem and on sacct, for arrays of hundreds of runs


@dataclass(frozen=True)
class Task:
    cfg: RunConfig
    run_dir: Path
    label: str  # the study's name for this run's cell, e.g. "pos_embed=2d inject=stem seed=1"
    # For a config another study declares too: that study's run folder, where it trains (then it
    # is copied to run_dir). None: it trains in run_dir.
    source: Path | None = None

    @property
    def home(self) -> Path:
        """Where the run trains, and so where its progress and failure are read."""
        return self.run_dir if self.source is None else self.source


def default_jobs() -> int:
    """Runs at once on the local executor: one per core on a CPU-only machine (two 1-thread runs
    train ≈10% faster in total than one 2-thread run here), one on a GPU machine."""
    return 1 if torch.cuda.is_available() else max(1, os.cpu_count() or 1)


@dataclass
class Outcome:
    task: Task
    # done | failed | busy (another process holds the run's claim, or took it over from us) |
    # unwritable (its folder refused a write: result["storage"] is "no space" or "read-only";
    # the run is not failed and resumes once the folder can be written)
    status: str
    result: dict[str, Any]


# --- dispatching -----------------------------------------------------------------------------


LOCAL_TIMEOUT_MIN = 24 * 60  # per run a local worker holds (submitit's local default is 2 minutes)


def make_executor(kind: str, folder: Path, runs_per_job: int = 1) -> submitit.Executor:
    if kind == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN * runs_per_job)
        return executor
    if kind == "debug":
        return submitit.DebugExecutor(folder=folder)
    raise UserError(f"unknown executor {kind!r}; valid: {', '.join(EXECUTORS)}")


def execute(
    tasks: Sequence[Task], executor: str, folder: Path, jobs: int = 1, already_done: int = 0
) -> list[Outcome]:
    """Run `tasks` here, at most `jobs` at once, with a progress display: on the local executor as
    `jobs` worker processes, each given a share of the runs of about equal cost (`shares`); on the
    debug executor one at a time, in this process."""
    display = Display(total=len(tasks) + already_done, done=already_done)
    if executor == "debug":
        ex = make_executor(executor, folder)
        pending = list(tasks)

        def refill(active: dict[submitit.Job, list[Task]]) -> None:
            if pending and not active:
                task = pending.pop(0)
                results.mark_ready()  # its start-up: from here, not from this process's start
                active[ex.submit(TrainJob(), task.cfg, task.run_dir, task.source)] = [task]

        return follow({}, display, refill=refill, in_process=True, cancel_on_interrupt=True)
    groups = shares(tasks, max(1, jobs))
    ex = make_executor(executor, folder, runs_per_job=max(len(g) for g in groups))
    # Parallel local workers share the cores instead of oversubscribing them.
    threads = max(1, (os.cpu_count() or 1) // len(groups)) if len(groups) > 1 else 0
    with _stderr_to(Path(folder) / "controllers.log"):
        # submitit's local controller prints a KeyboardInterrupt traceback of its own on Ctrl-C:
        # it goes to this log, not under the dispatcher's one line.
        active = {
            ex.submit(TrainQueue(threads), [(t.cfg, t.run_dir, t.source) for t in g]): g for g in groups
        }
    return follow(active, display, cancel_on_interrupt=True)


def shares(tasks: Sequence[Task], workers: int) -> list[list[Task]]:
    """`tasks` dealt to at most `workers` workers, each task (largest first) to the worker with
    the fewest training images so far: shares of about equal cost, each in the plan's order."""
    load = [0] * min(workers, len(tasks))
    groups: list[list[int]] = [[] for _ in load]
    by_size = sorted(
        range(len(tasks)), key=lambda i: -tasks[i].cfg.optim.steps * tasks[i].cfg.optim.batch_size
    )
    for i in by_size:
        k = load.index(min(load))
        groups[k].append(i)
        load[k] += tasks[i].cfg.optim.steps * tasks[i].cfg.optim.batch_size
    return [[tasks[i] for i in sorted(g)] for g in groups if g]


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Processes started inside inherit `path` as their standard error (this one keeps its own)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    os.close(log)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def submit_slurm(
    tasks: Sequence[Task], folder: Path, settings: SlurmSettings, name: str
) -> list[submitit.Job]:
    """Submit `tasks` as one Slurm job array and return at once (one job per run)."""
    folder = Path(folder).resolve()
    executor = slurm_executor(folder, settings, name)
    with code_snapshot(folder) as revision:
        try:
            return executor.map_array(
                TrainJob(threads=settings.cpus or 1, revision=revision),
                [t.cfg for t in tasks],
                [t.run_dir.resolve() for t in tasks],  # jobs start in another directory
                [t.source.resolve() if t.source else None for t in tasks],
            )
        except submitit.core.utils.FailedJobError as exc:  # sbatch said no: a bad partition, account...
            reason = next(
                (line for line in reversed(str(exc).splitlines()) if line.strip()), "no reason given"
            )
            raise UserError(f"sbatch refused the job array: {reason}") from None


def follow(
    active: dict[submitit.Job, list[Task]],
    display: Display,
    refill: Callable[[dict[submitit.Job, list[Task]]], None] | None = None,
    in_process: bool = False,
    cancel_on_interrupt: bool = True,
    poll_s: float = POLL_S,
) -> list[Outcome]:
    """Poll jobs (each training one run, or a worker's share of runs) until all are done, updating
    the display from the runs' progress files: a run is reported as soon as its folder says it is
    done or failed, the rest when its job ends. Ctrl-C cancels local jobs; cluster jobs keep
    running (`vitbench cancel` stops them). A full results disk stops the study the same way,
    with a one-line UserError: every further run would fail alike, and all of them resume once
    there is space."""
    outcomes: list[Outcome] = []
    reported: set[Path] = set()
    since = time.time()

    def report(outcome: Outcome) -> None:
        reported.add(outcome.task.run_dir)
        outcomes.append(outcome)
        display.finish(outcome)
        if outcome.result.get("storage") == "no space":
            raise _unwritable("no space", outcome.result["error"])

    try:
        while True:
            if refill is not None:
                refill(active)
            if not active:
                break
            for job, tasks in list(active.items()):
                if in_process or job.done():
                    for outcome in _collect_share(job, tasks, since):
                        if outcome.task.run_dir not in reported:
                            report(outcome)
                    del active[job]
                    continue
                for task in tasks:
                    if task.run_dir in reported:
                        continue
                    if (outcome := _settled(task, since)) is not None:
                        report(outcome)
                    else:
                        display.update(task, read_json(task.home / PROGRESS))
            if active:
                time.sleep(poll_s)
    except OSError as exc:  # the dispatcher's own writes: job files, logs
        if (kind := storage_error(exc)) is None:
            raise
        _stop(active, cancel_on_interrupt, display)
        raise _unwritable(kind, error_line(exc)) from None
    except (KeyboardInterrupt, UserError):
        _stop(active, cancel_on_interrupt, display)
        raise
    display.close()
    return outcomes


def _settled(task: Task, since: float) -> Outcome | None:
    """The run's outcome if its folder already says it: done, or failed since `since`."""
    if task.home.exists() and (result := read_result(task.home)) is not None:
        return Outcome(task, "done", result)
    failure = read_json(task.home / FAILED) or {}
    if failure.get("time", 0) >= since and failure.get("error"):
        return Outcome(task, "failed", {"error": failure["error"].strip().splitlines()[-1]})
    return None


def _stop(active: dict[submitit.Job, list[Task]], cancel: bool, display: Display) -> None:
    if cancel:
        for job in active:
            job.cancel(check=False)
    display.close()


def _unwritable(kind: str, error: str) -> UserError:
    """The one line for a results folder that refuses writes: full ("no space") or read-only."""
    fix = "make room" if kind == "no space" else "make it writable or give another --results folder"
    return UserError(
        f"cannot write the results ({error}); the study stopped: {fix}, then `vitbench run` "
        "again (finished runs are kept, the others resume)"
    )


def _collect(job: submitit.Job, task: Task, since: float = 0.0) -> Outcome:
    """The outcome of a finished job of one run (`_collect_share`)."""
    return _collect_share(job, [task], since)[0]


def _collect_share(job: submitit.Job, tasks: list[Task], since: float = 0.0) -> list[Outcome]:
    """The outcomes of a finished job's runs: what it returned for each (a TrainQueue a list, a
    TrainJob one result). For a job that died, each run's folder says what happened to it, else
    the job's error does: the root cause's last line."""
    try:
        returned = job.results()[0]  # a data-parallel run's lead (rank 0) speaks for it
    except Exception as exc:
        reason = _job_error(exc)
        return [_settled(t, since) or Outcome(t, "failed", {"error": reason}) for t in tasks]
    returned = returned if isinstance(returned, list) else [returned]
    return [Outcome(t, r.get("status", "failed"), r) for t, r in zip(tasks, returned, strict=True)]


def _job_error(exc: Exception) -> str:
    """The last line of the error a job died of; submitit wraps it with the paths of its logs."""
    text = str(exc)
    if isinstance(exc, submitit.core.utils.FailedJobError) and text.count(_TRACE_RULE) >= 2:
        text = text.split(_TRACE_RULE)[1]  # the job's own traceback, between two rules
    elif isinstance(exc, submitit.core.utils.UncompletedJobError):
        lines = text.splitlines()
        # "has not produced any output (state: ...)", then perhaps the job's error stream
        stream = (
            lines[lines.index("Error stream produced:") + 2 :] if "Error stream produced:" in lines else []
        )
        text = "\n".join([" ".join(lines[:2]), *stream])
    else:
        return error_line(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


_TRACE_RULE = "-" * 22 + "\n"


# --- a study's plan, launched and followed ---------------------------------------------------


def launch_settings(
    executor: str, jobs: int, slurm_flags: dict[str, Any], slurm_config: Path | None, wait: bool
) -> SlurmSettings | None:
    """Check the executor's settings before anything is written: the Slurm settings for "slurm"
    (flag > environment > file), and Slurm flags given with another executor, a mistake worth
    pointing out. `slurm_flags` holds every Slurm setting by name, None where not given."""
    if executor not in EXECUTORS:
        raise UserError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    if jobs < 0:
        raise UserError(f"--jobs must be at least 1 (or 0 for the default), got {jobs}")
    if executor != "slurm":
        given = [f"--{key.replace('_', '-')}" for key in SLURM_KEYS if slurm_flags.get(key) is not None]
        given += ["--slurm-config"] * (slurm_config is not None) + ["--wait"] * wait
        if given:
            raise UserError(f"{', '.join(given)} only apply to --executor slurm")
        return None
    return slurm_settings(slurm_flags, config=slurm_config)


@dataclass(frozen=True)
class Launch:
    executor: str
    tasks: list[Task]  # the plan's runs left to do
    jobs: list[submitit.Job]  # the Slurm job array, one job per task; empty on other executors


def launch(the_plan: Plan, executor: str, settings: SlurmSettings | None) -> Launch:
    """Record the dispatch of the plan's runs left to do (for `vitbench cancel`) and, on Slurm,
    submit them as one job array, returning at once; local and debug runs start in `complete`."""
    folder = the_plan.folder.resolve()  # absolute: cluster jobs start elsewhere (in a code snapshot)
    tasks = [
        Task(r.cfg, r.path.resolve(), r.label, r.source.resolve() if r.source else None)
        for r in the_plan.todo
    ]
    if not tasks:
        return Launch(executor, [], [])
    if executor == "slurm":
        assert settings is not None, "launch_settings gives Slurm settings for the slurm executor"
        jobs = submit_slurm(tasks, folder / ".submitit", settings, name=f"vitbench-{the_plan.study.name}")
        record_dispatch(folder, executor, tasks, jobs)
        return Launch(executor, tasks, jobs)
    record_dispatch(folder, executor, tasks)
    return Launch(executor, tasks, [])


def complete(started: Launch, the_plan: Plan, jobs: int) -> list[Outcome]:
    """Follow a launch to its end with a progress display: a Slurm array's jobs are polled (Ctrl-C
    stops following and leaves them running); local and debug runs are trained here, `jobs` at a
    time (Ctrl-C stops them; they resume from their checkpoints)."""
    if not started.tasks:
        return []
    counts = the_plan.counts
    if started.executor == "slurm":
        display = Display(
            total=len(the_plan.runs) - the_plan.skipped_failed - counts["running"], done=counts["done"]
        )
        return follow(
            {job: [task] for job, task in zip(started.jobs, started.tasks, strict=True)},
            display,
            cancel_on_interrupt=False,
            poll_s=SLURM_POLL_S,
        )
    folder = the_plan.folder.resolve() / ".submitit"
    return execute(started.tasks, started.executor, folder, jobs=jobs, already_done=counts["done"])


def unrecorded(outcomes: Sequence[Outcome], after: Plan) -> list[tuple[Outcome, str]]:
    """Runs that failed but whose folders do not say so (e.g. a read-only folder refused the
    record), each with the state its folder shows instead."""
    state_of = {r.path.resolve(): r.state for r in after.runs}
    return [
        (o, state_of.get(o.task.run_dir, "unknown"))
        for o in outcomes
        if o.status == "failed" and state_of.get(o.task.run_dir) != "failed"
    ]


# --- the study's record of what was dispatched, for `vitbench cancel` -------------------------


def record_dispatch(
    study_folder: Path, executor: str, tasks: Sequence[Task], jobs: Sequence[Any] = ()
) -> None:
    """Append to the study's jobs.jsonl: who dispatched which runs, and their Slurm job ids."""
    record = {
        "event": "dispatch",
        "executor": executor,
        "dispatcher": locks.owner_record(),
        "runs": [t.run_dir.name for t in tasks],
        "jobs": [str(job.job_id) for job in jobs],
    }
    try:
        Path(study_folder).mkdir(parents=True, exist_ok=True)
        append_jsonl(Path(study_folder) / JOBS, record)
    except OSError as exc:
        if (kind := storage_error(exc)) is None:
            raise
        raise _unwritable(kind, error_line(exc)) from None


def cancel(study_folder: Path) -> list[str]:
    """Cancel the study's live work: its queued and running Slurm jobs (scancel; a run killed
    this way resumes from its checkpoint on the next `vitbench run`), and any local `vitbench
    run` of it on this host (sent Ctrl-C, so it stops its own jobs). Returns what was done."""
    records = [r for r in read_jsonl(Path(study_folder) / JOBS) if r.get("event") == "dispatch"]
    done: list[str] = []
    arrays = {job.split("_")[0] for r in records if r["executor"] == "slurm" for job in r["jobs"]}
    if arrays and shutil.which("squeue") and shutil.which("scancel"):
        try:
            queued = subprocess.run(
                ["squeue", "--me", "--noheader", "--format=%F"],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout.split()
            if live := sorted(arrays & set(queued), key=int):
                subprocess.run(["scancel", *live], capture_output=True, text=True, timeout=60, check=True)
                done.append(f"cancelled Slurm job(s) {', '.join(live)}")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise UserError(f"could not cancel Slurm jobs {', '.join(sorted(arrays))}: {exc}") from None
    elif arrays:
        done.append(
            f"Slurm job(s) {', '.join(sorted(arrays))} were recorded, but squeue/scancel are not here"
        )
    for r in records:
        owner = r["dispatcher"]
        if r["executor"] == "slurm" or not locks.same_pid_space(owner) or owner["pid"] == os.getpid():
            continue
        if locks.pid_alive(owner["pid"], owner.get("proc_start")):
            os.kill(owner["pid"], signal.SIGINT)
            done.append(f"stopped the {r['executor']} `vitbench run` (pid {owner['pid']})")
    if done:
        append_jsonl(Path(study_folder) / JOBS, {"event": "cancel", "time": time.time(), "what": done})
    return done
