"""vitbench: list | plan | run | status | report | bench. Thin: it parses, then calls the engine.

Bad input (an unknown study, preset, model or dataset; a malformed or unknown --set key; a wrong
type; a study that fails to import) prints one line naming the problem and the valid choices,
exits with status 2, and touches nothing under results/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from benchmark import data
from benchmark.config import RunConfig, apply_overrides, parse_overrides, run_id
from benchmark.errors import UserError
from benchmark.study import Study, list_studies, load_study

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
    p.add_argument("--executor", default="local", help="local (default: subprocesses via submitit) or debug")
    p.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="runs at once on the local executor (default: one per CPU core, one on a GPU)",
    )
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again (skipped by default)")
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    study_command("status", "show every run's state from the run folders", cmd_status)
    study_command("report", "rebuild a study's report from stored results (no training)", cmd_report)

    p = sub.add_parser("bench", help="measure this machine: few-shot solver and training throughput")
    p.add_argument("--out", type=Path, help="also write the figures as JSON to this file")
    p.set_defaults(func=cmd_bench)
    return parser


# --- shared helpers ----------------------------------------------------------------------


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

    data.check_name(cfg.data.dataset)
    for name in cfg.eval.fewshot_datasets:
        data.check_name(name)
    validate_model(cfg.model)


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
    jobs = args.jobs or dispatch.default_jobs()
    states = {run_id(cfg): status(run_dir(args.results, study.name, variant, cfg)) for cfg in runs}
    n_done = sum(s == "done" for s in states.values())
    n_failed = sum(s == "failed" for s in states.values())
    todo = [
        dispatch.Task(cfg, run_dir(args.results, study.name, variant, cfg), study.label(cfg))
        for cfg in runs
        if states[run_id(cfg)] not in ("done", "failed")
        or (args.retry_failed and states[run_id(cfg)] == "failed")
    ]
    skipped_failed = n_failed if not args.retry_failed else 0
    print(
        f"{study.name}/{variant}: {len(runs)} runs; {n_done} done, {len(todo)} to run"
        + (f", {skipped_failed} failed (skipped; --retry-failed to rerun)" if skipped_failed else "")
        + (f" on the {args.executor} executor" if todo else "")
        + (f", {jobs} at a time" if todo and args.executor == "local" else "")
    )
    outcomes = []
    if todo:
        folder = study_dir(args.results, study.name, variant) / ".submitit"
        outcomes = dispatch.execute(todo, args.executor, folder, jobs=jobs, already_done=n_done)
    failed = [o for o in outcomes if o.status != "done"] + ([None] * skipped_failed)
    if not args.no_report:
        _report(study, variant, args, runs, overrides)
    if failed:
        print(
            f"vitbench: {len(failed)} run(s) failed; the report lists them. `vitbench status {study.name}`"
            f" shows why.",
            file=sys.stderr,
        )
        return 1
    return 0


def _report(
    study: Study, variant: str, args: argparse.Namespace, runs: list[RunConfig], overrides: dict[str, str]
) -> None:
    from benchmark.report import build_report

    path = build_report(study, variant, args.results, args.reports, runs, overrides)
    print(f"Report: {path}")


def cmd_status(args: argparse.Namespace) -> int:
    from benchmark.results import PROGRESS, read_json, run_dir, status

    study, variant, runs, _overrides = _planned(args)
    counts: dict[str, int] = {}
    for cfg in runs:
        path = run_dir(args.results, study.name, variant, cfg)
        state = status(path)
        counts[state] = counts.get(state, 0) + 1
        detail = ""
        if state == "done":
            detail = f"{(read_json(path / 'result.json') or {}).get('wall_s', 0):.0f} s"
        elif state == "failed":
            detail = (read_json(path / "failed.json") or {}).get("error", "")
        elif state == "started":
            progress = read_json(path / PROGRESS) or {}
            detail = f"step {progress.get('step', 0)}/{cfg.optim.steps}"
        print(f"  {run_id(cfg)}  {state:8s} {study.label(cfg):48s} {detail}")
    print(f"{study.name}/{variant}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
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
