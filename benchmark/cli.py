"""vitbench: list | plan | run | status | cancel | report | bench. Thin: it parses and prints.
Every check on a request and its plan come from `benchmark.request` (which runs exist, in which
state, what is left: `benchmark.plan`), launching and following the runs from `benchmark.dispatch`,
the text it prints from `benchmark.console`, its options from `benchmark.options`.

Bad input (an unknown study, preset, model or dataset; a malformed or unknown --set key; a wrong
type or range; a results or reports folder that is a file) prints one line naming the problem and
the valid choices, exits with status 2, and touches nothing under results/.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from benchmark import console, options, plan, request
from benchmark.errors import UserError
from benchmark.released import WEIGHTS_ENV
from benchmark.study import Study, list_studies, load_study


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "data_root", None) is not None:  # the environment carries it into every job
        os.environ["VITBENCH_DATA"] = str(args.data_root.resolve())
    if getattr(args, "weights", None) is not None:  # likewise the released checkpoints' folder
        os.environ[WEIGHTS_ENV] = str(args.weights.resolve())
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
            if (line := console.refused_write(exc, getattr(args, "reports", None))) is None:
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


def _parser() -> argparse.ArgumentParser:
    """Which command takes which options (`benchmark.options` declares each)."""
    parser = argparse.ArgumentParser(prog="vitbench", description="Reproduce the claims of the ViT paper.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str, func, *groups: options.Options, study: str | None = "required"):
        p = sub.add_parser(name, help=help_)
        if study is not None:  # "optional" where --all may stand in for it
            nargs = "?" if study == "optional" else None
            p.add_argument("study", nargs=nargs, help="a study name (see `vitbench list`)")
        for group in groups:
            options.add(p, group)
        p.set_defaults(func=func)
        return p

    list_help = "list the studies, their claims, presets and paper references"
    command("list", list_help, cmd_list, study=None)
    plan_help = "show a study's runs, their state and their cost without running anything"
    command(
        "plan", plan_help, cmd_plan, options.study(), options.GPU_TABLE, options.PLAN_ALL, study="optional"
    )
    run_help = "run a study's unfinished runs, then write its report"
    p = command("run", run_help, cmd_run, options.study(), options.GPU_TABLE, options.RUN)
    options.add(p.add_argument_group(options.SLURM_TITLE, options.SLURM_SOURCES), options.SLURM)
    status_help = "show every run's state, progress and restarts from the run folders"
    command("status", status_help, cmd_status, options.study())
    cancel_help = "cancel a study's queued and running jobs (they resume on the next run)"
    command("cancel", cancel_help, cmd_cancel, options.study())
    report_help = "rebuild a study's report from stored results (no training)"
    command("report", report_help, cmd_report, options.study(), options.REPORT_ALL, study="optional")
    bench_help = "measure this machine: our training step beside timm's, the matmul peak, the few-shot solver"
    command("bench", bench_help, cmd_bench, options.bench(), study=None)
    return parser


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
    return _noticed(args, the_plan)


def _noticed(args: argparse.Namespace, the_plan: plan.Plan) -> plan.Plan:
    """The plan, once what it noticed in the results folder is printed."""
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
            study: Study | UserError = load_study(name)
        except UserError as exc:
            study = exc
        print("\n".join(console.study_lines(name, study)))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from benchmark import cost
    from benchmark.dispatch import default_jobs

    if args.all == (args.study is not None):
        raise UserError(
            "give a study (`vitbench plan STUDY`) or --all (every study), not both; "
            f"valid studies: {', '.join(list_studies())}"
        )
    if args.all:
        return _plan_all(args)
    the_plan = _planned(args, to_train=True)
    bill = plan.bill(the_plan, cost.load_table(args.gpu_table))
    print(f"{the_plan.study.name}/{the_plan.variant} under {the_plan.folder}")
    print(console.plan_table(the_plan, bill))
    print(plan.summary(the_plan))
    print(console.estimate_line(the_plan, default_jobs()))
    print("\n".join(console.bill_lines(the_plan, bill)))
    if weights := console.weights_lines([the_plan]):
        print("\n".join(weights))
    return 0


def _plan_all(args: argparse.Namespace) -> int:
    """Each study's runs, their cost and the claims the preset can decide, then the total, so that
    the presets can be compared over the whole benchmark (`vitbench plan --all --preset P`)."""
    from benchmark import cost

    args.reports = request.reports_folder(args.results, args.reports)
    every = request.every_study_plan(args.preset, args.set, args.results)
    table = cost.load_table(args.gpu_table)
    priced = []
    for study, the_plan in every:
        if the_plan is None:
            print(console.no_preset_line(study, args.preset), end="\n\n")
            continue
        bill = plan.bill(_noticed(args, the_plan), table)
        priced.append((the_plan, bill))
        print(plan.summary(the_plan))
        print("\n".join([*console.cost_lines(bill), *console.power_lines(the_plan)]), end="\n\n")
    total = plan.total_bill(priced, table)
    print(console.total_header(args.preset, len(priced), len(every)))
    print("\n".join([*console.cost_lines(total), *console.basis_lines(total)]))
    if weights := console.weights_lines([p for p, _ in priced]):
        print("\n".join(weights))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark import cost, dispatch

    dispatch.listen_for_ctrl_c()  # so `vitbench cancel` stops a run started in the background
    the_plan = _planned(args, to_train=True)
    the_plan = request.ready_to_train(the_plan, download=args.download)
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
        print(console.todo_cost_line(plan.bill(the_plan, table), source=True))
        print("\n".join(console.power_lines(the_plan)))
    flags = options.study_flags(args)
    name = the_plan.study.name
    started = dispatch.launch(the_plan, args.executor, settings)
    if started.jobs:
        print(console.submitted_line([job.job_id for job in started.jobs]))
        if not args.wait:
            print(console.follow_line(name, flags))
            return 0
    try:
        outcomes = dispatch.complete(started, the_plan, jobs)
    except KeyboardInterrupt:
        if started.jobs:
            line = console.stopped_following_line(name, flags)
        else:  # what the Ctrl-C stopped, from the run folders
            line = console.interrupted_line(plan.again(the_plan, retry_failed=False), flags)
        print(f"\nvitbench: {line}", file=sys.stderr)
        return 130
    return _finish(args, the_plan, outcomes, flags)


def _finish(args: argparse.Namespace, before: plan.Plan, outcomes: list, flags: str) -> int:
    """After a run: what the run folders now say, the report and its verdicts, and what to do next.

    Every count comes from the folders, as `status` and the report read them, so the three agree;
    a run that failed but could not record it (e.g. a read-only folder) is said to be so."""
    from benchmark import dispatch

    name = before.study.name
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
    problems = []
    if busy := [o for o in outcomes if o.status == "busy"]:
        problems.append(console.busy_line(len(busy), name, flags))
    unrecorded = dispatch.unrecorded(outcomes, after)
    for o, state in unrecorded:
        error = o.result.get("error", "unknown error")
        problems.append(console.unrecorded_line(o.task.label, o.task.run_dir, state, error))
    if counts["failed"]:
        problems.append(console.failed_line(counts["failed"], name, flags, report_written, args.retry_failed))
    for line in problems:
        print(f"vitbench: {line}", file=sys.stderr)
    return 1 if unrecorded or counts["failed"] else 0


def _report(the_plan: plan.Plan, args: argparse.Namespace) -> None:
    from benchmark.report import build_report

    built = build_report(
        the_plan.study,
        the_plan.variant,
        args.results,
        args.reports,
        [r.cfg for r in the_plan.runs],
        the_plan.overrides,
    )
    print(console.verdicts_table(built.verdicts))
    print(f"Report: {built.path}")


def cmd_status(args: argparse.Namespace) -> int:
    from benchmark.locks import stale_after_s
    from benchmark.results import JOBS
    from benchmark.storage import read_jsonl

    the_plan = _planned(args)
    print(f"{the_plan.study.name}/{the_plan.variant} under {the_plan.folder}")
    print(console.status_table(the_plan))
    print(plan.summary(the_plan))
    if split := console.time_split(the_plan):
        print(split)
    if dispatches := [rec for rec in read_jsonl(the_plan.folder / JOBS) if rec.get("event") == "dispatch"]:
        print(console.dispatch_line(dispatches[-1]))
    print(console.stale_line(stale_after_s()))
    return 0


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
        if args.study is not None or not args.all or args.set or args.preset != options.DEFAULT_PRESET:
            raise UserError("give a study (`vitbench report STUDY`) or --all alone (every study and preset)")
        from benchmark.scorecard import build_scorecard

        args.reports = request.reports_folder(args.results, args.reports)
        path, summary = build_scorecard(args.results, args.reports)
        print("\n".join([*summary, f"Scorecard: {path}"]))
        return 0
    the_plan = _planned(args)
    _report(the_plan, args)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from benchmark.bench import run_bench, write_figures

    figures = run_bench()
    for path in (args.results / plan.BENCH, args.out):
        if path is not None:
            write_figures(figures, path)
            print(f"Wrote {path} and {path.with_suffix('.csv').name}")
    return 0
