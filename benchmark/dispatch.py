"""All submitit code: send a study's unfinished runs to an executor and follow them.

Executors: "local" (submitit's LocalExecutor: one subprocess per run, `jobs` at a time) and
"debug" (submitit's DebugExecutor: in this process, for tests and pdb). Every task calls
`train.run(config, run_dir)`, which resumes from the run's own checkpoint, so resubmitting a
task is always safe. Progress is read from each run's progress.json, never from logs.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit
import torch
from tqdm import tqdm

from benchmark import train
from benchmark.config import RunConfig
from benchmark.errors import UserError
from benchmark.results import PROGRESS, read_json

EXECUTORS = ("local", "debug")
POLL_S = 0.5


@dataclass(frozen=True)
class Task:
    cfg: RunConfig
    run_dir: Path
    label: str  # the study's name for this run's cell, e.g. "pos_embed=2d inject=stem seed=1"


class TrainJob(submitit.helpers.Checkpointable):
    """The callable submitit pickles. It holds no model: on requeue it simply runs again and
    `train.run` picks up the run's checkpoint."""

    def __init__(self, threads: int = 0) -> None:
        self.threads = threads

    def __call__(self, cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
        if self.threads:
            torch.set_num_threads(self.threads)
        return train.run(cfg, run_dir)


def default_jobs() -> int:
    """Runs at once on the local executor: one per core on a CPU-only machine (two 1-thread runs
    train ≈10% faster in total than one 2-thread run here), one on a GPU machine."""
    return 1 if torch.cuda.is_available() else max(1, os.cpu_count() or 1)


@dataclass
class Outcome:
    task: Task
    status: str  # done | failed
    result: dict[str, Any]


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
    """Run `tasks`, at most `jobs` at once, showing runs done/total and a bar per active run."""
    ex = make_executor(executor, folder)
    # Parallel local runs share the cores instead of oversubscribing them.
    threads = max(1, (os.cpu_count() or 1) // jobs) if executor == "local" and jobs > 1 else 0
    display = Display(total=len(tasks) + already_done, done=already_done)
    pending, active, outcomes = list(tasks), {}, []
    try:
        while pending or active:
            while pending and len(active) < max(1, jobs):
                task = pending.pop(0)
                job = ex.submit(TrainJob(threads), task.cfg, task.run_dir)
                active[job] = task
                display.start(task)
            for job, task in list(active.items()):
                if executor == "debug" or job.done():
                    outcome = _collect(job, task)
                    outcomes.append(outcome)
                    display.finish(outcome)
                    del active[job]
                else:
                    display.update(task, read_json(task.run_dir / PROGRESS))
            if active:
                time.sleep(POLL_S)
    except KeyboardInterrupt:
        for job in active:
            job.cancel(check=False)
        display.close()
        raise
    display.close()
    return outcomes


def _collect(job: submitit.Job, task: Task) -> Outcome:
    try:
        result = job.result()
    except Exception as exc:  # the run recorded its own failed.json when it could
        message = str(exc).strip().splitlines()
        reason = next((line for line in reversed(message) if line.strip()), type(exc).__name__)
        return Outcome(task, "failed", {"error": reason})
    return Outcome(task, result.get("status", "failed"), result)


class Display:
    """Runs done/total, and one bar per active run with its loss and images/s (TTY only);
    a plain line per finished run everywhere, so logs of non-interactive runs stay readable."""

    def __init__(self, total: int, done: int) -> None:
        self.interactive = sys.stderr.isatty()
        self.total = total
        self.done = done
        self.overall = tqdm(total=total, initial=done, desc="runs", unit="run", disable=not self.interactive)
        self.bars: dict[Path, tqdm] = {}

    def start(self, task: Task) -> None:
        self.bars[task.run_dir] = tqdm(
            total=task.cfg.optim.steps,
            desc=task.label[:48],
            unit="step",
            leave=False,
            position=len(self.bars) + 1,
            disable=not self.interactive,
        )

    def update(self, task: Task, progress: dict[str, Any] | None) -> None:
        bar = self.bars.get(task.run_dir)
        if bar is None or not progress:
            return
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
        else:
            detail = f"FAILED: {result.get('error', 'unknown error')}"
        tqdm.write(f"[{self.done}/{self.total}] {outcome.task.label}: {detail}")

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.overall.close()
