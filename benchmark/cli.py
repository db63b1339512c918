"""vitbench: list | plan | run | status | cancel | report | bench. Thin: it parses and prints;
which runs exist, in which state, and what is left to do come from `benchmark.plan`.

Bad input (an unknown study, preset, model or dataset; a malformed or unknown --set key; a wrong
type or range; a results or reports folder that is a file) prints one line naming the problem and
the valid choices, exits with status 2, and touches nothing under results/.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tabulate import tabulate

from benchmark import plan, request
from benchmark.errors import UserError
from benchmark.study import list_studies, load_study

if TYPE_CHECKING:
    from benchmark.study import Verdict

DEFAULT_PRESET = "cpu"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "data_root", None) is not None:  # the environment carries it into every job
        os.environ["VITBENCH_DATA"] = str(args.data_root.resolve())
    with warnings.catch_warnings():
        warnings.showwarning = _warning_line
        try:
            code = args.func(args)
            sys.stdout.flush()  # here, so a closed pipe is caught below and not at interpreter exit
            return code
        except BrokenPipeError:
            # `vitbench list | head`: the reader has gone; stop quietly, as Unix tools do. Point
            # stdout at /dev/null so the interpreter's final flush does not raise again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by the signal
        except UserError as exc:
            print(f"vitbench: error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            if (line := _unwritable(exc, args)) is None:
                raise
            print(f"vitbench: error: {line}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(
                "\nvitbench: interrupted; finished runs are kept and the rest resume on the next `vitbench run`.",
                file=sys.stderr,
            )
            return 130


def _warning_line(message: Warning | str, *_: object, **__: object) -> None:
    """A warning as one line (Python's shows the file and the source line too)."""
    print(f"vitbench: warning: {message}", file=sys.stderr)


def _unwritable(exc: OSError, args: argparse.Namespace) -> str | None:
    """The one line for a write the filesystem refused (read-only, full), naming the path and the
    flag that moves it; None for any other error."""
    from benchmark.storage import storage_error

    kind = storage_error(exc)
    if kind is None:
        return None
    path = Path(str(exc.filename)) if exc.filename else None
    reports = getattr(args, "reports", None)
    inside_reports = (
        path is not None and reports is not None and path.resolve().is_relative_to(reports.resolve())
    )
    flag = "--reports" if inside_reports else "--results"
    if kind == "no space":
        return f"cannot write {path or 'the results'}: no space left on the device; make room, or give {flag} DIR elsewhere"
    return f"cannot write {path}: {exc.strerror} (read-only); give a writable folder with {flag} DIR"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vitbench", description="Reproduce the claims of the ViT paper.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list the studies, their claims, presets and paper references")
    p.set_defaults(func=cmd_list)

    def study_command(name: str, help_: str, func, optional: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("study", nargs="?" if optional else None, help="a study name (see `vitbench list`)")
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
            default=None,
            help="reports folder (default: $VITBENCH_REPORTS, else RESULTS/reports, which git ignores; "
            "the committed reference reports are regenerated with --reports reports)",
        )
        p.add_argument(
            "--data-root",
            type=Path,
            default=None,
            help="where CIFAR, Pets, Flowers and ImageNet trees live (default: $VITBENCH_DATA, else ~/data)",
        )
        p.set_defaults(func=func)
        return p

    p = study_command(
        "plan", "show a study's runs, their state and their cost without running anything", cmd_plan
    )
    _gpu_table_flag(p)
    p = study_command("run", "run a study's unfinished runs, then write its report", cmd_run)
    _gpu_table_flag(p)
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
    p.add_argument(
        "--download",
        action="store_true",
        help="fetch missing CIFAR-10/100, Pets and Flowers-102 with torchvision's downloaders (needs internet)",
    )
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
    p = study_command(
        "report", "rebuild a study's report from stored results (no training)", cmd_report, True
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="rebuild every study's report at every preset with results, and the scorecard REPORTS/README.md",
    )

    p = sub.add_parser(
        "bench",
        help="measure this machine: our training step beside timm's, the matmul peak, the few-shot solver",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=Path(os.environ.get("VITBENCH_RESULTS", "results")),
        help="results folder; the figures go to RESULTS/bench.json, where `vitbench plan` reads them "
        "(default: ./results or $VITBENCH_RESULTS)",
    )
    p.add_argument("--out", type=Path, help="also write the figures as JSON to this file")
    p.set_defaults(func=cmd_bench)
    return parser


# --- shared helpers ----------------------------------------------------------------------


def _gpu_table_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gpu-table",
        type=Path,
        metavar="FILE",
        help="throughput table that prices the runs in GPU-hours: the JSON `vitbench bench` writes "
        "(RESULTS/bench.json, measured on its machine) (default: the shipped H100 table, benchmark/throughput/h100.json)",
    )


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


def _planned(args: argparse.Namespace, to_train: bool = False) -> plan.Plan:
    """The request checked and planned (`benchmark.request`), with what it noticed printed."""
    args.reports = request.reports_folder(args.results, args.reports)
    the_plan = request.study_plan(
        args.study,
        args.preset,
        args.set,
        args.results,
        to_train=to_train,
        retry_failed=getattr(args, "retry_failed", False),
    )
    if note := the_plan.collapsed():
        print(note)
    if args.func is not cmd_run:
        for path, why in the_plan.garbage:
            _warning_line(f"{path}: {why}; left out (`vitbench run` moves it aside)")
    return the_plan


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
    from benchmark import cost

    the_plan = _planned(args, to_train=True)
    bill = plan.bill(the_plan, cost.load_table(args.gpu_table))
    unit, scale = cost.flop_unit(max((c.flops for c in bill.runs), default=0.0))
    print(f"{the_plan.study.name}/{the_plan.variant} under {the_plan.folder}")
    _print_table(
        ["run id", "state", "steps", "model", "images", f"train {unit}", "GPU-hours", "run"],
        [
            [
                r.run_id,
                r.state,
                str(r.cfg.optim.steps),
                c.model,
                f"{c.images:,}",
                cost.significant(c.flops / scale),
                "–" if c.seconds is None else cost.significant(c.seconds / 3600),
                r.label,
            ]
            for r, c in zip(the_plan.runs, bill.runs, strict=True)
        ],
        right=("steps", "images", f"train {unit}", "GPU-hours"),
    )
    print(plan.summary(the_plan))
    print(_estimate_line(the_plan))
    print(f"cost of all runs: {cost.total(bill.runs, bill.table)}")
    _print_power(the_plan)
    if the_plan.todo and len(the_plan.todo) < len(the_plan.runs):
        print(f"cost of what is left to run: {cost.total(bill.todo, bill.table)}")
    print(f"GPU-hours on {bill.table.label}: {cost.bases(bill.runs)}")
    print(f"FLOPs: {cost.CONVENTION}")
    return 0


def _print_power(the_plan: plan.Plan) -> None:
    """Per claim: what this preset can decide, before anything runs (benchmark.power)."""
    from benchmark import power

    print(
        f"power at {the_plan.preset} (α = 0.05; MDE at 80% power; a claim below 50% power cannot be decided):"
    )
    for line in power.lines(the_plan.study, the_plan.preset, the_plan.results_root):
        print(f"  {line}")


def _estimate_line(the_plan: plan.Plan) -> str:
    """The plan's time estimate for this machine, and where it came from."""
    from benchmark.dispatch import default_jobs

    est = the_plan.estimate
    if not the_plan.todo:
        return "estimated time: nothing left to run"
    if est is None:
        return (
            "estimated time: no estimate yet (no finished run of the same model shape under "
            f"{the_plan.folder.parent.parent}; run `vitbench bench`)"
        )
    jobs = min(default_jobs(), len(the_plan.todo))
    at_once = f", about {_duration(est.seconds / jobs)} at {jobs} runs at once" if jobs > 1 else ""
    line = f"estimated time: {_duration(est.seconds)} of run time{at_once} (from {est.source})"
    if n := len(est.unmeasured):
        models = ", ".join(sorted(set(est.unmeasured)))
        line += (f"; plus {n} of the {len(the_plan.todo)} runs left, of models nothing here has timed yet "
                 f"({models}): not counted")  # fmt: skip
    return line


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark import cost, dispatch

    dispatch.listen_for_ctrl_c()  # so `vitbench cancel` stops a run started in the background
    the_plan = _planned(args, to_train=True)
    request.ready_to_train(the_plan, download=args.download)
    table = cost.load_table(args.gpu_table)
    slurm_flags = {key: getattr(args, key) for key in dispatch.SLURM_KEYS}
    settings = dispatch.launch_settings(args.executor, args.jobs, slurm_flags, args.slurm_config, args.wait)
    # Every check is done: from here on, the results folder is written.
    the_plan, done = plan.prepare(the_plan)
    for line in done:
        print(line)
    jobs = args.jobs or dispatch.default_jobs()
    local = args.executor == "local"
    where = f"on the {args.executor} executor" + (f", {jobs} at a time" if local else "")
    print(plan.summary(the_plan, where if the_plan.todo else ""))
    if the_plan.todo:  # the bill before anything is submitted; nothing asks, as in a job script
        print(
            f"cost of what is left to run: {cost.total(plan.bill(the_plan, table).todo, table)} ({table.source})"
        )
        _print_power(the_plan)
    flags = _study_flags(args)
    name = the_plan.study.name
    started = dispatch.launch(the_plan, args.executor, settings)
    if started.jobs:
        first, last = started.jobs[0].job_id, started.jobs[-1].job_id
        print(f"Submitted Slurm job array {first.split('_')[0]}: jobs {first} … {last}, one per run.")
        if not args.wait:
            print(
                f"Follow with `vitbench status {name}{flags}`; cancel with `vitbench cancel {name}{flags}`; "
                f"once done, `vitbench report {name}{flags}`."
            )
            return 0
    try:
        outcomes = dispatch.complete(started, the_plan, jobs)
    except KeyboardInterrupt:
        if started.jobs:
            print(
                f"\nvitbench: stopped following; the jobs keep running (`vitbench cancel {name}{flags}`).",
                file=sys.stderr,
            )
        else:
            print(f"\nvitbench: {_interrupted(the_plan, flags)}", file=sys.stderr)
        return 130
    return _finish(args, the_plan, outcomes, flags)


def _interrupted(before: plan.Plan, flags: str) -> str:
    """What a Ctrl-C stopped, from the run folders, and the command that resumes it."""
    after = plan.again(before, retry_failed=False)
    counts = after.counts
    started = counts["interrupted"] + counts["running"]
    return (
        f"interrupted {after.study.name}/{after.variant}: {counts['done']} of {len(after.runs)} runs done, "
        f"{started} stopped mid-training (they resume from their last checkpoint), "
        f"{counts['pending']} not started; resume with `vitbench run {after.study.name}{flags}`"
    )


def _finish(args: argparse.Namespace, before: plan.Plan, outcomes: list, flags: str) -> int:
    """After a run: what the run folders now say, the report and its verdicts, and what to do next.

    Every count comes from the folders, as `status` and the report read them, so the three agree;
    a run that failed but could not record it (e.g. a read-only folder) is said to be so."""
    from benchmark import dispatch

    study = before.study
    after = plan.again(before, retry_failed=False)
    if after.adoptable:  # shared runs this study's jobs, or another study's, finished meanwhile
        after, done = plan.prepare(after)
        for line in done:
            print(line)
    counts = after.counts
    report_written = False
    if not args.no_report and counts["done"]:
        _report(after, args)
        report_written = True
    elif not args.no_report:
        print("vitbench: no run has finished, so no report was written.", file=sys.stderr)
    print(plan.summary(after))
    if busy := [o for o in outcomes if o.status == "busy"]:
        print(
            f"vitbench: {len(busy)} run(s) were being trained by another process; run "
            f"`vitbench run {study.name}{flags}` again once they are done to include them.",
            file=sys.stderr,
        )
    unrecorded = dispatch.unrecorded(outcomes, after)
    for o, state in unrecorded:
        print(
            f"vitbench: {o.task.label}: failed and could not record it in {o.task.run_dir} "
            f"(it stays {state}): {o.result.get('error', 'unknown error')}",
            file=sys.stderr,
        )
    if counts["failed"]:
        listed = "; the report lists them" if report_written else ""
        retry = (
            ""
            if args.retry_failed
            else f"; rerun them with `vitbench run {study.name}{flags} --retry-failed`"
        )
        print(
            f"vitbench: {counts['failed']} run(s) failed{listed}. `vitbench status {study.name}{flags}` shows why"
            f"{retry}.",
            file=sys.stderr,
        )
    return 1 if unrecorded or counts["failed"] else 0


def _study_flags(args: argparse.Namespace) -> str:
    """The flags that name this study's results again, for the commands we suggest."""
    flags = f" --preset {args.preset}" + "".join(f" --set {shlex.quote(item)}" for item in args.set)
    if args.results != Path(os.environ.get("VITBENCH_RESULTS", "results")):
        flags += f" --results {shlex.quote(str(args.results))}"
    if getattr(args, "data_root", None) is not None:  # the data the runs read, as given
        flags += f" --data-root {shlex.quote(str(args.data_root))}"
    return flags


def _report(the_plan: plan.Plan, args: argparse.Namespace) -> None:
    from benchmark.report import build_report

    path, verdicts = build_report(
        the_plan.study,
        the_plan.variant,
        args.results,
        args.reports,
        [r.cfg for r in the_plan.runs],
        the_plan.overrides,
    )
    _print_verdicts(verdicts)
    print(f"Report: {path}")


VERDICT_HEADERS = ["claim", "outcome", "effect [90% interval]; predicted; MDE; power"]


def _print_verdicts(verdicts: Sequence[Verdict]) -> None:
    """The claims as the report judges them, so the terminal shows the outcome, not only a path."""
    _print_table(VERDICT_HEADERS, [[v.claim, v.outcome, v.effect_text] for v in verdicts])


def text_table(headers: list[str], rows: list[list[str]], right: Sequence[str] = ()) -> str:
    """A plain-text table (tabulate's "simple" format); columns named in `right` right-aligned."""
    align = ["right" if h in right else "left" for h in headers]
    return tabulate(rows, headers, tablefmt="simple", colalign=align, disable_numparse=True)


def _print_table(headers: list[str], rows: list[list[str]], right: Sequence[str] = ()) -> None:
    print(text_table(headers, rows, right))


def cmd_status(args: argparse.Namespace) -> int:
    from benchmark.locks import stale_after_s
    from benchmark.results import JOBS
    from benchmark.storage import read_jsonl

    the_plan = _planned(args)
    print(f"{the_plan.study.name}/{the_plan.variant} under {the_plan.folder}")
    rows = []
    for r in the_plan.runs:
        info, steps = r.info, r.cfg.optim.steps
        step = steps if r.state == "done" else info["step"] or 0
        rows.append(
            [
                r.run_id,
                r.state,
                f"{step}/{steps}" if r.state != "pending" else "",
                _duration(info["wall_s"] or info["elapsed_s"]) if info["attempts"] else "",
                _eval_share(info.get("wall_split")),
                str(info["attempts"]) if info["attempts"] else "",
                r.label,
                _detail(info),
            ]
        )
    _print_table(
        ["run id", "state", "step", "time", "eval", "attempts", "run", "detail"],
        rows,
        right=("step", "time", "eval", "attempts"),
    )
    print(plan.summary(the_plan))
    splits = [r.info["wall_split"] for r in the_plan.runs if r.state == "done" and r.info.get("wall_split")]
    if splits:
        phases = ("startup_s", "train_s", "periodic_eval_s", "final_eval_s")
        total = {phase: sum(s.get(phase, 0.0) for s in splits) for phase in phases}
        print("time of the finished runs: " + ", ".join(
            f"{phase.removesuffix('_s').replace('_', ' ')} {_duration(s)} ({s / sum(total.values()):.0%})"
            for phase, s in total.items()))  # fmt: skip
    dispatches = [rec for rec in read_jsonl(the_plan.folder / JOBS) if rec.get("event") == "dispatch"]
    if dispatches:
        last = dispatches[-1]
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(last["dispatcher"]["time"]))
        jobs = f" as Slurm job array {last['jobs'][0].split('_')[0]}" if last["jobs"] else ""
        print(f"last dispatch: {len(last['runs'])} runs on the {last['executor']} executor{jobs}, {when}")
    print(
        f"a run whose trainer is silent for {_duration(stale_after_s())} is taken as dead and resumes on the "
        "next `vitbench run` (VITBENCH_LOCK_STALE_S)"
    )
    return 0


def _eval_share(split: dict | None) -> str:
    """The share of a run's time spent evaluating (periodic and final), from the trainer's record."""
    if not split:
        return ""
    evaluating = split.get("periodic_eval_s", 0.0) + split.get("final_eval_s", 0.0)
    return f"{evaluating / max(sum(split.values()), 1e-9):.0%}"


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
    if info["claim_lost"]:
        parts.append(f"claim lost {info['claim_lost']}× (taken over after a silence)")
    if info["mixed"]:
        parts.append(info["mixed"])  # attempts under different revisions or thread counts
    return "; ".join(parts)


def cmd_cancel(args: argparse.Namespace) -> int:
    from benchmark import dispatch

    the_plan = _planned(args)
    done = dispatch.cancel(the_plan.folder)
    for line in done:
        print(line)
    after = "interrupted runs resume on the next `vitbench run`" if done else "nothing to cancel"
    print(f"{the_plan.study.name}/{the_plan.variant}: {after}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    if args.all or args.study is None:
        if args.study is not None or not args.all or args.set or args.preset != DEFAULT_PRESET:
            raise UserError("give a study (`vitbench report STUDY`) or --all alone (every study and preset)")
        from benchmark.scorecard import build_scorecard

        args.reports = request.reports_folder(args.results, args.reports)
        print(f"Scorecard: {build_scorecard(args.results, args.reports)}")
        return 0
    the_plan = _planned(args)
    _report(the_plan, args)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import pandas as pd

    from benchmark.bench import run_bench

    figures = run_bench()
    # The JSON keeps everything (device, versions, settings); the CSV is the per-model table.
    table = pd.DataFrame(figures["train"]).assign(device=figures["device"])
    for path in (args.results / plan.BENCH, args.out):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(figures, indent=1) + "\n")
            table.to_csv(path.with_suffix(".csv"), index=False)
            print(f"Wrote {path} and {path.with_suffix('.csv').name}")
    return 0
