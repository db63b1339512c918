"""All submitit code: send a study's unfinished runs to an executor, follow them, cancel them.

Executors: "local" (submitit's LocalExecutor: one subprocess per run, `jobs` at a time), "debug"
(submitit's DebugExecutor: in this process, for tests and pdb) and "slurm" (one job array per
submission; see `SlurmSettings`). Every task calls `train.run(config, run_dir)`, which resumes
from the run's own checkpoint, so resubmitting a task is always safe; the task first claims the
run (locks.py), so two dispatchers never train the same run at once. Progress is read from each
run's progress.json, never from logs.

Preemption and time limits: submitit sends the job a signal (USR2) and requeues it through
`TrainJob.checkpoint()`. `TrainJob` defers that signal to the step loop, which saves a
checkpoint between two steps before the job goes back to the queue (see `_stop_between_steps`).
"""

from __future__ import annotations

import configparser
import contextlib
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import submitit
import torch
from submitit.core.job_environment import JobEnvironment, SignalHandler
from tqdm import tqdm

from benchmark import distributed, environment, locks, train
from benchmark.config import RunConfig
from benchmark.errors import UserError
from benchmark.results import JOBS, META, PROGRESS, append_jsonl, read_json, read_jsonl, write_json

EXECUTORS = ("local", "debug", "slurm")
POLL_S = 0.5
SLURM_POLL_S = 2.0  # gentler on a shared filesystem and on sacct, for arrays of hundreds of runs
# After a preemption/time-limit signal, how long to wait for the step loop to checkpoint before
# requeueing anyway (from the last periodic checkpoint): covers a long evaluation in progress.
FORWARD_AFTER_S = 5.0
FOLLOWER_WAIT_S = 120.0  # longest a data-parallel follower waits, after a stop, for the lead's requeue


@dataclass(frozen=True)
class Task:
    cfg: RunConfig
    run_dir: Path
    label: str  # the study's name for this run's cell, e.g. "pos_embed=2d inject=stem seed=1"


class TrainJob(submitit.helpers.Checkpointable):
    """The callable submitit pickles. It holds no model: on requeue it simply runs again and
    `train.run` picks up the run's checkpoint. `revision` is the git revision it was submitted
    at: a job that would run other code fails instead (see `code_snapshot`)."""

    def __init__(self, threads: int = 0, revision: str | None = None) -> None:
        self.threads = threads
        self.revision = revision

    def __call__(self, cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
        run_dir = Path(run_dir)
        if self.threads:
            torch.set_num_threads(self.threads)
        # A job with several tasks trains the run data-parallel: the lead (rank 0) claims it and
        # records its attempts, the other ranks follow the lead's decision.
        with distributed.process_group():
            lead = distributed.is_lead()
            with locks.Claim(run_dir) if lead else contextlib.nullcontext() as claim:
                if not distributed.from_lead(lead and claim.held):
                    return {"status": "busy", "owner": claim.owner if lead else None}
                attempts = len((read_json(run_dir / META) or {}).get("attempts", []))
                outcome = "stopped"  # Ctrl-C, a job's exit: not a failure, the run resumes later
                try:
                    self._check_revision(run_dir)
                    with _stop_between_steps() as requeue:
                        try:
                            result = train.run(cfg, run_dir)
                        except train.Interrupted:
                            requeue()  # submitit's handler: checkpoint(), `scontrol requeue`, exit
                            if not lead:
                                # Only the lead requeues (submitit's handler does nothing on other
                                # ranks), and ending this task could end the job step, the lead's
                                # task with it, before it has: wait for Slurm to end us instead.
                                time.sleep(FOLLOWER_WAIT_S)
                            raise
                    outcome = result["status"]
                    return result
                except Exception:
                    outcome = "failed"
                    raise
                finally:
                    if lead:
                        _end_attempt(run_dir, attempts, outcome)

    def checkpoint(self, cfg: RunConfig, run_dir: Path) -> submitit.helpers.DelayedSubmission:
        """Called by submitit before it requeues the job: note the requeue in the run's attempts
        and resubmit the same arguments (the run's own checkpoint carries the state)."""
        _end_attempt(Path(run_dir), 0, "requeued")
        return submitit.helpers.DelayedSubmission(self, cfg, run_dir)

    def _check_revision(self, run_dir: Path) -> None:
        if self.revision is None:
            return
        running = environment.git_revision()["revision"]
        if running != self.revision:
            error = RuntimeError(
                f"this job would run code at git revision {running}, but the study was submitted at "
                f"{self.revision}: the checkout changed after submission. Resubmit (installing rsync "
                "lets vitbench snapshot the code instead)."
            )
            train.record_failure(run_dir, error)
            raise error


def _end_attempt(run_dir: Path, earlier: int, outcome: str) -> None:
    """Record how this process's attempt at the run ended (if train.run started one): what
    `vitbench status` counts as requeued; an attempt with no end was killed."""
    meta = read_json(run_dir / META)
    if not meta or len(meta.get("attempts", [])) <= earlier or "end" in meta["attempts"][-1]:
        return
    meta["attempts"][-1].update(end=time.time(), outcome=outcome, code=str(Path(__file__).resolve().parent))
    with contextlib.suppress(OSError):  # a full disk: the attempt then reads as killed, close enough
        write_json(run_dir / META, meta)


@contextlib.contextmanager
def _stop_between_steps() -> Iterator[Callable[[], None]]:
    """In a submitit job, defer its preemption/time-limit signal to the step loop: the loop saves
    a checkpoint between two steps and raises train.Interrupted, and the caller then runs
    submitit's own handler (the yielded function), which calls `TrainJob.checkpoint()`,
    requeues and exits. Saving from inside the handler could catch the optimiser mid-update. If
    no step boundary comes within FORWARD_AFTER_S (a long evaluation), submitit's handler runs
    anyway and the run resumes from its last periodic checkpoint."""
    sig = JobEnvironment._usr_sig()
    submitit_handler = signal.getsignal(sig)
    if not isinstance(getattr(submitit_handler, "__self__", None), SignalHandler):
        yield lambda: None  # not in a submitit job (the debug executor): nothing to defer
        return

    forwarded = False

    def forward(*_: Any) -> None:
        nonlocal forwarded
        signal.setitimer(signal.ITIMER_REAL, 0)
        if not forwarded:  # once: a second signal while the job exits must not requeue it twice
            forwarded = True
            submitit_handler(sig, None)

    def defer(*_: Any) -> None:
        if not train.STOP.requested:
            train.STOP.requested = True
            signal.setitimer(signal.ITIMER_REAL, FORWARD_AFTER_S)

    previous_alarm = signal.signal(signal.SIGALRM, forward)
    signal.signal(sig, defer)
    try:
        yield forward
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_alarm)
        signal.signal(sig, submitit_handler)
        train.STOP.requested = False


def default_jobs() -> int:
    """Runs at once on the local executor: one per core on a CPU-only machine (two 1-thread runs
    train ≈10% faster in total than one 2-thread run here), one on a GPU machine."""
    return 1 if torch.cuda.is_available() else max(1, os.cpu_count() or 1)


@dataclass
class Outcome:
    task: Task
    status: str  # done | failed | busy (another process holds the run's claim)
    result: dict[str, Any]


# --- Slurm settings ------------------------------------------------------------------------


@dataclass(frozen=True)
class SlurmSettings:
    """Per-run resources and queue options. Each comes from a command-line flag, else an
    environment variable VITBENCH_SLURM_<NAME>, else the [slurm] section of an INI file
    (--slurm-config or VITBENCH_SLURM_CONFIG), else the default here."""

    partition: str | None = None
    gpus: int = 0  # per node of a run
    nodes: int = 1  # per run
    tasks_per_node: int | None = None  # training processes per node (default: one per GPU, else one)
    cpus: int | None = None  # per process; also its torch threads (default: Slurm's, one)
    mem_gb: float | None = None
    time: int = 240  # minutes per job; a run that needs longer is requeued from its checkpoint
    array_parallelism: int = 256  # runs of the array at once
    account: str | None = None
    qos: str | None = None
    sbatch: tuple[str, ...] = ()  # extra sbatch options, e.g. "--constraint=a100"
    setup: tuple[str, ...] = ()  # shell lines the job runs first, e.g. "module load cuda"


SLURM_KEYS = tuple(f.name for f in fields(SlurmSettings))
# Options vitbench sets itself: overriding them would break logs, arrays or requeueing.
RESERVED_SBATCH = ("array", "output", "error", "signal", "open-mode", "job-name", "wckey")


def slurm_settings(
    flags: Mapping[str, Any], config: Path | None = None, env: Mapping[str, str] | None = None
) -> SlurmSettings:
    """Merge the sources (flag > environment > file > default) and check every value."""
    env = os.environ if env is None else env
    known = {f"VITBENCH_SLURM_{k.upper()}" for k in (*SLURM_KEYS, "config")}
    if unknown := sorted(k for k in env if k.startswith("VITBENCH_SLURM_") and k not in known):
        raise UserError(
            f"unknown environment variable(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
        )
    config = config or (Path(env["VITBENCH_SLURM_CONFIG"]) if env.get("VITBENCH_SLURM_CONFIG") else None)
    from_file = _read_slurm_config(config) if config else {}
    values: dict[str, Any] = {}
    for key in SLURM_KEYS:
        flag = flags.get(key)
        if flag not in (None, [], ()):
            raw, source = flag, f"--{key.replace('_', '-')}"
        elif env.get(f"VITBENCH_SLURM_{key.upper()}"):
            raw, source = env[f"VITBENCH_SLURM_{key.upper()}"], f"VITBENCH_SLURM_{key.upper()}"
        elif key in from_file:
            raw, source = from_file[key], f"{config} [slurm] {key}"
        else:
            continue
        values[key] = _slurm_value(key, raw, source)
    settings = SlurmSettings(**values)
    _sbatch_options(settings.sbatch)  # validate now, before anything is submitted
    return settings


def _read_slurm_config(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path) as f:
            parser.read_file(f)
    except (OSError, configparser.Error) as exc:
        raise UserError(f"cannot read Slurm config {path}: {exc}") from None
    if not parser.has_section("slurm"):
        raise UserError(f"Slurm config {path} has no [slurm] section")
    section = dict(parser["slurm"])
    if unknown := sorted(set(section) - set(SLURM_KEYS)):
        raise UserError(f"unknown key(s) {unknown} in {path} [slurm]; valid: {', '.join(SLURM_KEYS)}")
    return section


def _slurm_value(key: str, raw: Any, source: str) -> Any:
    """One setting, typed and range-checked; `source` names where it came from in errors."""
    if key == "sbatch":
        items = raw if isinstance(raw, list | tuple) else [raw]
        return tuple(token for item in items for token in shlex.split(str(item)))
    if key == "setup":
        if isinstance(raw, list | tuple):
            return tuple(raw)
        return tuple(line.strip() for line in str(raw).splitlines() if line.strip())
    if key in ("partition", "account", "qos"):
        return str(raw).strip()
    kind, low = {
        "gpus": (int, 0),
        "nodes": (int, 1),
        "tasks_per_node": (int, 1),
        "cpus": (int, 1),
        "mem_gb": (float, 0.001),
        "time": (int, 1),
        "array_parallelism": (int, 1),
    }[key]
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise UserError(f"{source}={raw!r} is not a valid {kind.__name__}") from None
    if value < low:
        raise UserError(f"{source} must be at least {low}, got {raw!r}")
    return value


def _sbatch_options(tokens: Sequence[str]) -> dict[str, str | bool]:
    """["--constraint=a100", "--exclusive"] -> submitit's additional_parameters."""
    options: dict[str, str | bool] = {}
    for token in tokens:
        if not token.startswith("--") or len(token) < 3:
            raise UserError(f"extra sbatch option {token!r}: write long options, e.g. --constraint=a100")
        key, sep, value = token[2:].partition("=")
        if key in RESERVED_SBATCH:
            raise UserError(f"extra sbatch option --{key} is set by vitbench and cannot be overridden")
        options[key] = value if sep else True
    return options


def slurm_executor(folder: Path, settings: SlurmSettings, name: str) -> submitit.AutoExecutor:
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise UserError("--executor slurm needs Slurm's sbatch and srun on PATH; use --executor local here")
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params: dict[str, Any] = {
        "name": name,
        "timeout_min": settings.time,
        "slurm_array_parallelism": settings.array_parallelism,
        "slurm_additional_parameters": _sbatch_options(settings.sbatch),
        "slurm_setup": list(settings.setup),
    }
    # One process per GPU; a run with several processes trains data-parallel (benchmark.distributed)
    # and, should one of them fail, srun ends the others instead of leaving them in a collective.
    tasks = settings.tasks_per_node or max(1, settings.gpus)
    params.update(nodes=settings.nodes, tasks_per_node=tasks)
    if tasks * settings.nodes > 1:
        params["slurm_srun_args"] = ["--kill-on-bad-exit=1"]
    optional = {
        "slurm_partition": settings.partition,
        "gpus_per_node": settings.gpus or None,
        "cpus_per_task": settings.cpus,
        "mem_gb": settings.mem_gb,
        "slurm_account": settings.account,
        "slurm_qos": settings.qos,
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    executor.update_parameters(**params)
    return executor


# --- the code the jobs run -------------------------------------------------------------------


def _source_checkout() -> Path | None:
    """The git checkout this package is imported from, or None for an installed package."""
    root = Path(__file__).resolve().parent.parent
    try:
        top = environment.git(root, "rev-parse", "--show-toplevel")
    except (OSError, subprocess.SubprocessError):
        return None
    return root if top and Path(top).resolve() == root else None


@contextlib.contextmanager
def code_snapshot(folder: Path, checkout: Path | None = None) -> Iterator[str | None]:
    """Submit inside this context so that cluster jobs run the code as it is now, even after the
    checkout changes or a requeue restarts them days later. With rsync: a copy of the checkout
    (tracked files plus untracked ones in the packages) under `folder`, which jobs start in and
    import from (submitit's RsyncSnapshot). Without rsync: only a clean checkout may submit, and
    each job checks it still runs the submitted revision. Yields that revision (None for an
    installed package, whose code does not change under the jobs)."""
    checkout = checkout or _source_checkout()
    if checkout is None:
        yield None
        return
    head = environment.git(checkout, "rev-parse", "HEAD")
    if submitit.helpers.RsyncSnapshot.available():
        untracked = environment.git(
            checkout, "ls-files", "--others", "--exclude-standard", "--", *environment.CODE
        ).split()
        target = Path(folder) / "code" / f"{head[:12]}-{secrets.token_hex(3)}"
        snapshot = submitit.helpers.RsyncSnapshot(target, root_dir=checkout, include=untracked)
        try:
            # Clone without checking out (RsyncSnapshot would check out, then rsync skips a file
            # edited within the same second at the same size), so rsync writes every file.
            target.parent.mkdir(parents=True, exist_ok=True)
            environment.git(
                checkout, "clone", "-q", "--depth=2", "--no-checkout", f"file://{checkout}", str(target)
            )
            environment.git(target, "read-tree", "HEAD")  # an index for `git status` in the jobs
            snapshot.__enter__()  # copies the code and moves into it: sbatch runs jobs from there
        except subprocess.CalledProcessError as exc:
            raise UserError(f"could not snapshot the code in {checkout}: {exc.stderr or exc}") from None
        try:
            yield head
        finally:
            snapshot.__exit__()
        return
    if environment.code_changes(checkout):
        raise UserError(
            f"{checkout} has uncommitted changes to its code and rsync is not installed to snapshot them: "
            "commit or stash them (jobs must run the submitted code), or install rsync"
        )
    yield head


# --- dispatching -----------------------------------------------------------------------------


def make_executor(kind: str, folder: Path) -> submitit.Executor:
    if kind == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=24 * 60)  # submitit's local default is 2 minutes
        return executor
    if kind == "debug":
        return submitit.DebugExecutor(folder=folder)
    raise UserError(f"unknown executor {kind!r}; valid: {', '.join(EXECUTORS)}")


def execute(
    tasks: Sequence[Task], executor: str, folder: Path, jobs: int = 1, already_done: int = 0
) -> list[Outcome]:
    """Run `tasks` here (local or debug executor), at most `jobs` at once, with a progress display."""
    ex = make_executor(executor, folder)
    # Parallel local runs share the cores instead of oversubscribing them.
    threads = max(1, (os.cpu_count() or 1) // jobs) if executor == "local" and jobs > 1 else 0
    pending = list(tasks)

    def refill(active: dict[submitit.Job, Task]) -> None:
        while pending and len(active) < max(1, jobs):
            task = pending.pop(0)
            active[ex.submit(TrainJob(threads), task.cfg, task.run_dir)] = task

    display = Display(total=len(tasks) + already_done, done=already_done)
    return follow({}, display, refill=refill, in_process=executor == "debug", cancel_on_interrupt=True)


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
            )
        except submitit.core.utils.FailedJobError as exc:  # sbatch said no: a bad partition, account...
            reason = next(
                (line for line in reversed(str(exc).splitlines()) if line.strip()), "no reason given"
            )
            raise UserError(f"sbatch refused the job array: {reason}") from None


def follow(
    active: dict[submitit.Job, Task],
    display: Display,
    refill: Callable[[dict[submitit.Job, Task]], None] | None = None,
    in_process: bool = False,
    cancel_on_interrupt: bool = True,
    poll_s: float = POLL_S,
) -> list[Outcome]:
    """Poll jobs until all are done, updating the display from the runs' progress files.
    Ctrl-C cancels local jobs; cluster jobs keep running (`vitbench cancel` stops them)."""
    outcomes: list[Outcome] = []
    try:
        while True:
            if refill is not None:
                refill(active)
            if not active:
                break
            for job, task in list(active.items()):
                if in_process or job.done():
                    outcome = _collect(job, task)
                    outcomes.append(outcome)
                    display.finish(outcome)
                    del active[job]
                else:
                    display.update(task, read_json(task.run_dir / PROGRESS))
            if active:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        if cancel_on_interrupt:
            for job in active:
                job.cancel(check=False)
        display.close()
        raise
    display.close()
    return outcomes


def _collect(job: submitit.Job, task: Task) -> Outcome:
    try:
        result = job.results()[0]  # a data-parallel run's lead (rank 0) speaks for it
    except Exception as exc:  # the run recorded its own failed.json when it could
        message = str(exc).strip().splitlines()
        reason = next((line for line in reversed(message) if line.strip()), type(exc).__name__)
        return Outcome(task, "failed", {"error": reason})
    return Outcome(task, result.get("status", "failed"), result)


# --- the study's record of what was dispatched, for `vitbench cancel` -------------------------


def record_dispatch(
    study_folder: Path, executor: str, tasks: Sequence[Task], jobs: Sequence[Any] = ()
) -> None:
    """Append to the study's jobs.jsonl: who dispatched which runs, and their Slurm job ids."""
    Path(study_folder).mkdir(parents=True, exist_ok=True)
    append_jsonl(
        Path(study_folder) / JOBS,
        {
            "event": "dispatch",
            "executor": executor,
            "dispatcher": locks.owner_record(),
            "runs": [t.run_dir.name for t in tasks],
            "jobs": [str(job.job_id) for job in jobs],
        },
    )


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
        if r["executor"] == "slurm" or owner["host"] != socket.gethostname() or owner["pid"] == os.getpid():
            continue
        if locks.pid_alive(owner["pid"], owner.get("proc_start")):
            os.kill(owner["pid"], signal.SIGINT)
            done.append(f"stopped the {r['executor']} `vitbench run` (pid {owner['pid']})")
    if done:
        append_jsonl(Path(study_folder) / JOBS, {"event": "cancel", "time": time.time(), "what": done})
    return done


# --- progress display ------------------------------------------------------------------------


class Display:
    """Runs done/total, and one bar per run in progress with its loss and images/s (TTY only);
    a plain line per finished run everywhere, so logs of non-interactive runs stay readable."""

    def __init__(self, total: int, done: int) -> None:
        self.interactive = sys.stderr.isatty()
        self.total = total
        self.done = done
        self.overall = tqdm(total=total, initial=done, desc="runs", unit="run", disable=not self.interactive)
        self.bars: dict[Path, tqdm] = {}

    def update(self, task: Task, progress: dict[str, Any] | None) -> None:
        """Show a run's progress; its bar appears once it has any (a queued job shows none)."""
        if not progress:
            return
        bar = self.bars.get(task.run_dir)
        if bar is None:
            bar = self.bars[task.run_dir] = tqdm(
                total=task.cfg.optim.steps,
                desc=task.label[:48],
                unit="step",
                leave=False,
                position=len(self.bars) + 1,
                disable=not self.interactive,
            )
        bar.n = int(progress.get("step", 0))
        if "loss" in progress:
            bar.set_postfix(
                loss=f"{progress['loss']:.3f}", img_s=f"{progress.get('img_per_s', 0):.0f}", refresh=False
            )
        elif "phase" in progress:
            bar.set_postfix_str(progress["phase"], refresh=False)
        bar.refresh()

    def finish(self, outcome: Outcome) -> None:
        bar = self.bars.pop(outcome.task.run_dir, None)
        if bar is not None:
            bar.close()
        self.done += 1
        self.overall.update(1)
        result = outcome.result
        if outcome.status == "done":
            metrics = result.get("metrics", {})
            shown = ", ".join(f"{k}={v:.3f}" for k, v in list(metrics.items())[:3])
            detail = f"{shown} ({result.get('wall_s', 0):.0f} s)"
        elif outcome.status == "busy":
            owner = result.get("owner") or {}
            detail = f"skipped: pid {owner.get('pid')} on {owner.get('host')} is training it"
        else:
            detail = f"FAILED: {result.get('error', 'unknown error')}"
        tqdm.write(f"[{self.done}/{self.total}] {outcome.task.label}: {detail}")

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.overall.close()
