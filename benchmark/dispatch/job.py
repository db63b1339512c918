"""What runs inside a job: the callable submitit pickles, its attempts, and signal deferral.

Preemption and time limits: submitit sends the job a signal (USR2) and requeues it through
`TrainJob.checkpoint()`. `TrainJob` defers that signal to the step loop, which saves a
checkpoint between two steps before the job goes back to the queue (see `_stop_between_steps`).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import submitit
import torch
from submitit.core.job_environment import JobEnvironment, SignalHandler

from benchmark import distributed, environment, locks, results, train
from benchmark.config import RunConfig
from benchmark.results import META
from benchmark.storage import error_line, read_json, storage_error, write_json

# After a preemption/time-limit signal, how long to wait for the step loop to checkpoint before
# requeueing anyway (from the last periodic checkpoint): covers a long evaluation in progress.
FORWARD_AFTER_S = 5.0
FOLLOWER_WAIT_S = 120.0  # longest a data-parallel follower waits, after a stop, for the lead's requeue


class TrainJob(submitit.helpers.Checkpointable):
    """The callable submitit pickles. It holds no model: on requeue it simply runs again and
    `train.run` picks up the run's checkpoint. `revision` is the git revision it was submitted
    at: a job that would run other code fails instead (see `code_snapshot`)."""

    def __init__(self, threads: int = 0, revision: str | None = None) -> None:
        self.threads = threads
        self.revision = revision

    def __call__(self, cfg: RunConfig, run_dir: Path, source: Path | None = None) -> dict[str, Any]:
        """Train the run in `run_dir`; or, for a config another study declares too, in that study's
        folder `source` (one claim, so two studies never train it twice), then copy it here."""
        run_dir = Path(run_dir)
        home = Path(source) if source is not None else run_dir
        listen_for_ctrl_c()  # the dispatcher stops a local job with SIGINT
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            result = self._train(cfg, home)
            if home != run_dir and result.get("status") == "done" and distributed.is_lead():
                results.adopt(home, run_dir)
            return result
        except OSError as exc:
            # The filesystem refused a write (the disk is full, the folder read-only): not the
            # run's failure, and not recorded as one; it resumes once the folder is writable.
            if (kind := storage_error(exc, home)) is None and (kind := storage_error(exc, run_dir)) is None:
                raise
            return {"status": "unwritable", "storage": kind, "error": error_line(exc)}

    def _train(self, cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
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
                except locks.ClaimLost as exc:
                    # Presumed dead (paused, or silent past the limit) and taken over: the run is
                    # the new holder's now. Not a failure; the claim's release logs the loss.
                    outcome = "claim lost"
                    return {"status": "busy", "claim_lost": str(exc), "owner": locks.holder(run_dir)}
                except Exception:
                    outcome = "failed"
                    raise
                finally:
                    if lead and outcome != "claim lost":
                        _end_attempt(run_dir, attempts, outcome)

    def checkpoint(
        self, cfg: RunConfig, run_dir: Path, source: Path | None = None
    ) -> submitit.helpers.DelayedSubmission:
        """Called by submitit before it requeues the job: note the requeue in the run's attempts
        and resubmit the same arguments (the run's own checkpoint carries the state)."""
        _end_attempt(Path(source if source is not None else run_dir), 0, "requeued")
        return submitit.helpers.DelayedSubmission(self, cfg, run_dir, source)

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


class TrainQueue(submitit.helpers.Checkpointable):
    """A worker: one process that trains several runs one after another (each as `TrainJob`
    does), so that the process start, the imports and the datasets it loaded (`data.load` keeps
    them per process) are paid once per worker, not once per run. A run that fails is recorded
    in its folder (train.run) and the worker goes on with the next. On requeue the whole share is
    resubmitted: finished runs return at once, the interrupted one resumes from its checkpoint."""

    def __init__(self, threads: int = 0) -> None:
        self.job = TrainJob(threads)
        self.current: Path | None = None  # the folder of the run in training (for `checkpoint`)

    def __call__(self, runs: list[tuple[RunConfig, Path, Path | None]]) -> list[dict[str, Any]]:
        outcomes = []
        for cfg, run_dir, source in runs:
            self.current = Path(source if source is not None else run_dir)
            try:
                outcomes.append(self.job(cfg, run_dir, source))
            except Exception as exc:
                outcomes.append({"status": "failed", "error": error_line(exc)})
            results.mark_ready()  # the next run's start-up is counted from here
        self.current = None
        return outcomes

    def checkpoint(
        self, runs: list[tuple[RunConfig, Path, Path | None]]
    ) -> submitit.helpers.DelayedSubmission:
        """Called by submitit before it requeues the worker: note the requeue in the attempts of
        the run in training, and resubmit the same share."""
        if self.current is not None:
            _end_attempt(self.current, 0, "requeued")
        return submitit.helpers.DelayedSubmission(self, runs)


def listen_for_ctrl_c() -> None:
    """Make SIGINT raise KeyboardInterrupt again. A process started in the background by a
    non-interactive shell (`nohup vitbench run ... &`, a CI script) inherits SIGINT as ignored,
    and Python keeps it so: Ctrl-C, `vitbench cancel` (which sends SIGINT to a local dispatcher)
    and the dispatcher stopping its local jobs would then do nothing."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _end_attempt(run_dir: Path, earlier: int, outcome: str) -> None:
    """Record how this process's attempt at the run ended (if train.run started one): what
    `vitbench status` counts as requeued; an attempt with no end was killed."""
    meta = read_json(run_dir / META)
    if not meta or len(meta.get("attempts", [])) <= earlier or "end" in meta["attempts"][-1]:
        return
    meta["attempts"][-1].update(
        end=time.time(), outcome=outcome, code=str(Path(__file__).resolve().parent.parent)
    )
    # A full disk: the attempt then reads as killed, close enough. A lost claim: the run is
    # another process's now, and the claim's release logs the loss instead.
    with contextlib.suppress(OSError, locks.ClaimLost):
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
            # Ignored from here on, and by the `scontrol requeue` the handler starts (an ignored
            # signal stays ignored across exec): Slurm signals the whole step, and a preemption
            # signal arriving during the requeue killed scontrol, failing the job (seen in CI).
            signal.signal(sig, signal.SIG_IGN)
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
