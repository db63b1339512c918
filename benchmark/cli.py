"""vitbench: list | plan | run | status | cancel | report | bench. Thin: it parses, then calls the engine.

Bad input (an unknown study, preset, model or dataset; a malformed or unknown --set key; a wrong
type; a study that fails to import) prints one line naming the problem and the valid choices,
exits with status 2, and touches nothing under results/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark import data
from benchmark.config import RunConfig, apply_overrides, check, parse_overrides, run_id
from benchmark.errors import UserError
from benchmark.study import Study, list_studies, load_study

if TYPE_CHECKING:
    from benchmark.dispatch import SlurmSettings

DEFAULT_PRESET = "cpu"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"vitbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\nvitbench: interrupted; finished runs are kept and the rest resume on the next `vitbench run`.",
            file=sys.stderr,
        )
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vitbench", description="Reproduce the claims of the ViT paper.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list the studies, their claims, presets and paper references")
    p.set_defaults(func=cmd_list)

    def study_command(name: str, help_: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("study", help="a study name (see `vitbench list`)")
        p.add_argument(
            "--preset", default=DEFAULT_PRESET, help=f"scale to run at (default: {DEFAULT_PRESET})"
        )
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config value for every run, e.g. --set optim.lr=3e-4 (repeatable)",
        )
        p.add_argument(
            "--results",
            type=Path,
            default=Path(os.environ.get("VITBENCH_RESULTS", "results")),
            help="results folder (default: ./results or $VITBENCH_RESULTS)",
        )
        p.add_argument(
            "--reports",
            type=Path,
            default=Path(os.environ.get("VITBENCH_REPORTS", "reports")),
            help="reports folder (default: ./reports or $VITBENCH_REPORTS)",
        )
        p.set_defaults(func=func)
        return p

    study_command("plan", "show a study's runs and their state without running anything", cmd_plan)
    p = study_command("run", "run a study's unfinished runs, then write its report", cmd_run)
    p.add_argument(
        "--executor",
        default="local",
        help="local (default: subprocesses via submitit), debug (in this process) or slurm (one job array)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="runs at once on the local executor (default: one per CPU core, one on a GPU)",
    )
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again (skipped by default)")
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    p.add_argument(
        "--wait",
        action="store_true",
        help="slurm: follow the jobs until all are done, then write the report (default: return once submitted)",
    )
    slurm = p.add_argument_group(
        "Slurm (--executor slurm)",
        "Each setting can also come from an environment variable VITBENCH_SLURM_<NAME> (e.g. "
        "VITBENCH_SLURM_PARTITION) or from the [slurm] section of an INI file (--slurm-config, or "
        "$VITBENCH_SLURM_CONFIG); a flag wins over the environment, which wins over the file.",
    )
    for flag, (metavar, help_) in SLURM_FLAGS.items():
        repeat = flag in ("--sbatch", "--setup")
        slurm.add_argument(
            flag,
            dest=flag[2:].replace("-", "_"),
            action="append" if repeat else "store",
            metavar=metavar,
            help=help_,
        )
    slurm.add_argument("--slurm-config", type=Path, metavar="FILE", help="an INI file with a [slurm] section")
    study_command("status", "show every run's state, progress and restarts from the run folders", cmd_status)
    study_command(
        "cancel", "cancel a study's queued and running jobs (they resume on the next run)", cmd_cancel
    )
    study_command("report", "rebuild a study's report from stored results (no training)", cmd_report)

    p = sub.add_parser("bench", help="measure this machine: few-shot solver and training throughput")
    p.add_argument("--out", type=Path, help="also write the figures as JSON to this file")
    p.set_defaults(func=cmd_bench)
    return parser


# --- shared helpers ----------------------------------------------------------------------


# Typed and checked by dispatch.slurm_settings, the same way for all three sources.
SLURM_FLAGS = {
    "--partition": ("NAME", "partition to submit to (default: the cluster's default)"),
    "--gpus": ("N", "GPUs per node of a run, one training process each (default: 0)"),
    "--nodes": ("N", "nodes per run; several processes train a run data-parallel (default: 1)"),
    "--tasks-per-node": ("N", "training processes per node (default: one per GPU, else one)"),
    "--cpus": ("N", "CPU cores per training process, also its torch threads (default: 1)"),
    "--mem-gb": ("GB", "memory per run (default: the partition's)"),
    "--time": ("MIN", "time limit per job; longer runs requeue from a checkpoint, 3× at most (default: 240)"),
    "--array-parallelism": ("N", "runs of the array running at once (default: 256)"),
    "--account": ("NAME", "account to charge"),
    "--qos": ("NAME", "quality of service"),
    "--sbatch": ("OPTION", "extra sbatch option(s), e.g. --sbatch=--constraint=a100 (repeatable)"),
    "--setup": ("LINE", "a shell line each job runs first, e.g. --setup 'module load cuda' (repeatable)"),
}


def _planned(args: argparse.Namespace) -> tuple[Study, str, list[RunConfig], dict[str, str]]:
    """The study, the results folder's name for this preset (+ overrides), and its runs, validated."""
    study = load_study(args.study)
    overrides = parse_overrides(args.set)
    runs = [apply_overrides(cfg, overrides) for cfg in study.runs(args.preset)]
    for cfg in runs:
        validate(cfg)
    variant = args.preset
    if overrides:
        # Overridden runs are a different experiment: keep them (and their report) apart.
        digest = hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8]
        variant = f"{args.preset}@{digest}"
    return study, variant, runs, overrides


def validate(cfg: RunConfig) -> None:
    """Reject unknown names before anything is written."""
    from benchmark.models import validate_model

    check(cfg)  # ranges and cross-field rules

    data.check_name(cfg.data.dataset)
    for name in cfg.eval.fewshot_datasets:
        data.check_name(name)
    validate_model(cfg.model)
    if cfg.eval.l2_sweep and len(cfg.eval.fewshot_datasets) < 2:
        raise UserError(
            "eval.l2_sweep chooses l2 by leave-self-out and needs at least two eval.fewshot_datasets"
        )


# --- commands --------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    for name in list_studies():
        try:
            study = load_study(name)
        except UserError as exc:
            print(f"{name:12s}  (broken) {exc}")
            continue
        print(f"{name:12s}  {study.title} — {study.reference}")
        print(f"{'':12s}  claim: {study.claim}")
        print(f"{'':12s}  presets: {', '.join(study.presets)}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from benchmark.results import run_dir, status

    study, variant, runs, _overrides = _planned(args)
    print(f"{study.name}/{variant}: {len(runs)} runs under {args.results / study.name / variant}")
    for cfg in runs:
        path = run_dir(args.results, study.name, variant, cfg)
        print(f"  {run_id(cfg)}  {status(path):8s} {cfg.optim.steps:6d} steps  {study.label(cfg)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark import dispatch
    from benchmark.results import run_dir, status, study_dir

    study, variant, runs, overrides = _planned(args)
    if args.executor not in dispatch.EXECUTORS:
        raise UserError(f"unknown executor {args.executor!r}; valid: {', '.join(dispatch.EXECUTORS)}")
    if args.jobs < 0:
        raise UserError(f"--jobs must be at least 1 (or 0 for the default), got {args.jobs}")
    settings = _slurm_settings(args)
    jobs = args.jobs or dispatch.default_jobs()
    root = args.results.resolve()  # cluster jobs start elsewhere (in a code snapshot)
    folder = study_dir(root, study.name, variant)
    states = {run_id(cfg): status(run_dir(root, study.name, variant, cfg)) for cfg in runs}
    counts = Counter(states.values())
    todo = [
        dispatch.Task(cfg, run_dir(root, study.name, variant, cfg), study.label(cfg))
        for cfg in runs
        if states[run_id(cfg)] in ("pending", "interrupted")
        or (args.retry_failed and states[run_id(cfg)] == "failed")
    ]
    skipped_failed = counts["failed"] if not args.retry_failed else 0
    print(
        f"{study.name}/{variant}: {len(runs)} runs; {counts['done']} done, {len(todo)} to run"
        + (f", {skipped_failed} failed (skipped; --retry-failed to rerun)" if skipped_failed else "")
        + (f", {counts['running']} running elsewhere (skipped)" if counts["running"] else "")
        + (f" on the {args.executor} executor" if todo else "")
        + (f", {jobs} at a time" if todo and args.executor == "local" else "")
    )
    if args.executor == "slurm" and todo:
        submitted = dispatch.submit_slurm(todo, folder / ".submitit", settings, name=f"vitbench-{study.name}")
        dispatch.record_dispatch(folder, "slurm", todo, submitted)
        first, last = submitted[0].job_id, submitted[-1].job_id
        print(f"Submitted Slurm job array {first.split('_')[0]}: jobs {first} … {last}, one per run.")
        flags = _study_flags(args)
        if not args.wait:
            print(
                f"Follow with `vitbench status {study.name}{flags}`; cancel with `vitbench cancel "
                f"{study.name}{flags}`; once done, `vitbench report {study.name}{flags}`."
            )
            return 0
        display = dispatch.Display(total=len(runs) - skipped_failed - counts["running"], done=counts["done"])
        try:
            outcomes = dispatch.follow(
                dict(zip(submitted, todo, strict=True)),
                display,
                cancel_on_interrupt=False,
                poll_s=dispatch.SLURM_POLL_S,
            )
        except KeyboardInterrupt:
            print(
                f"\nvitbench: stopped following; the jobs keep running (`vitbench cancel {study.name}{flags}`).",
                file=sys.stderr,
            )
            return 130
    elif todo:
        dispatch.record_dispatch(folder, args.executor, todo)
        outcomes = dispatch.execute(
            todo, args.executor, folder / ".submitit", jobs=jobs, already_done=counts["done"]
        )
    else:
        outcomes = []
    failed = [o for o in outcomes if o.status == "failed"] + ([None] * skipped_failed)
    busy = [o for o in outcomes if o.status == "busy"]
    finished = counts["done"] + sum(o.status == "done" for o in outcomes)
    if not args.no_report and finished:
        _report(study, variant, args, runs, overrides)
    elif not args.no_report:
        print("vitbench: no run has finished, so no report was written.", file=sys.stderr)
    if busy:
        print(
            f"vitbench: {len(busy)} run(s) were being trained by another process; `vitbench run` again once "
            "it is done to include them.",
            file=sys.stderr,
        )
    if failed:
        print(
            f"vitbench: {len(failed)} run(s) failed; the report lists them. `vitbench status {study.name}`"
            f" shows why.",
            file=sys.stderr,
        )
        return 1
    return 0


def _slurm_settings(args: argparse.Namespace) -> SlurmSettings | None:
    """The Slurm settings for --executor slurm, checked before anything is written; Slurm flags
    with another executor are a mistake worth pointing out."""
    from benchmark import dispatch

    given = [flag for flag in SLURM_FLAGS if getattr(args, flag[2:].replace("-", "_")) is not None]
    given += ["--slurm-config"] * (args.slurm_config is not None) + ["--wait"] * args.wait
    if args.executor != "slurm":
        if given:
            raise UserError(f"{', '.join(given)} only apply to --executor slurm")
        return None
    flags = {key: getattr(args, key) for key in dispatch.SLURM_KEYS}
    return dispatch.slurm_settings(flags, config=args.slurm_config)


def _study_flags(args: argparse.Namespace) -> str:
    """The flags that name this study's results again, for the commands we suggest."""
    flags = f" --preset {args.preset}" + "".join(f" --set {shlex.quote(item)}" for item in args.set)
    if args.results != Path(os.environ.get("VITBENCH_RESULTS", "results")):
        flags += f" --results {shlex.quote(str(args.results))}"
    return flags


def _report(
    study: Study, variant: str, args: argparse.Namespace, runs: list[RunConfig], overrides: dict[str, str]
) -> None:
    from benchmark.report import build_report

    path = build_report(study, variant, args.results, args.reports, runs, overrides)
    print(f"Report: {path}")


def cmd_status(args: argparse.Namespace) -> int:
    from benchmark.results import JOBS, read_jsonl, run_dir, run_info, study_dir

    study, variant, runs, _overrides = _planned(args)
    folder = study_dir(args.results, study.name, variant)
    print(f"{study.name}/{variant}: {len(runs)} runs under {folder}")
    counts: Counter[str] = Counter()
    for cfg in runs:
        info = run_info(run_dir(args.results, study.name, variant, cfg))
        counts[info["state"]] += 1
        step = cfg.optim.steps if info["state"] == "done" else info["step"] or 0
        progress = f"{step}/{cfg.optim.steps}" if info["state"] != "pending" else ""
        took = _duration(info["wall_s"] or info["elapsed_s"]) if info["attempts"] else ""
        label = study.label(cfg)
        print(f"  {run_id(cfg)}  {info['state']:11s} {progress:>11s} {took:>8s}  {label:44s} {_detail(info)}")
    dispatches = [r for r in read_jsonl(folder / JOBS) if r.get("event") == "dispatch"]
    if dispatches:
        last = dispatches[-1]
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(last["dispatcher"]["time"]))
        jobs = f" as Slurm job array {last['jobs'][0].split('_')[0]}" if last["jobs"] else ""
        print(f"last dispatch: {len(last['runs'])} runs on the {last['executor']} executor{jobs}, {when}")
    print(f"{study.name}/{variant}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return 0


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _detail(info: dict) -> str:
    """Why a run failed, who trains it, and how often it was restarted."""
    parts = []
    if info["error"]:
        parts.append(info["error"])
    if owner := info["owner"]:
        job = f", Slurm job {owner['slurm_job']}" if owner.get("slurm_job") else ""
        parts.append(f"pid {owner.get('pid')} on {owner.get('host')}{job}")
    if info["requeued"]:
        parts.append(f"requeued {info['requeued']}×")
    if info["killed"]:
        parts.append(f"killed {info['killed']}×")
    return "; ".join(parts)


def cmd_cancel(args: argparse.Namespace) -> int:
    from benchmark import dispatch
    from benchmark.results import study_dir

    study, variant, _runs, _overrides = _planned(args)
    done = dispatch.cancel(study_dir(args.results, study.name, variant))
    for line in done:
        print(line)
    after = "interrupted runs resume on the next `vitbench run`" if done else "nothing to cancel"
    print(f"{study.name}/{variant}: {after}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    study, variant, runs, overrides = _planned(args)
    _report(study, variant, args, runs, overrides)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from benchmark.bench import run_bench

    figures = run_bench()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=1) + "\n")
        print(f"Wrote {args.out}")
    return 0
