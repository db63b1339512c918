"""What the terminal shows: the studies, a plan's runs, their cost and state, its time estimate
and its verdicts, and the lines that say what a command did and what to type next, as plain text.
Pure formatting of what the engine computed; reads and writes nothing, so the CLI prints it and
the docs quote it (README's verdicts example) from one place."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

if TYPE_CHECKING:
    from benchmark.plan import Bill, Plan
    from benchmark.study import Study, Verdict

VERDICT_HEADERS = ["claim", "outcome", "effect [90% interval]; predicted; MDE; power"]


def text_table(headers: list[str], rows: list[list[str]], right: Sequence[str] = ()) -> str:
    """A plain-text table (tabulate's "simple" format); columns named in `right` right-aligned."""
    align = ["right" if h in right else "left" for h in headers]
    return tabulate(rows, headers, tablefmt="simple", colalign=align, disable_numparse=True)


def verdicts_table(verdicts: Sequence[Verdict]) -> str:
    """The claims as the report judges them, so the terminal shows the outcome, not only a path."""
    return text_table(VERDICT_HEADERS, [[v.claim, v.outcome, v.effect_text] for v in verdicts])


def plan_table(the_plan: Plan, bill: Bill) -> str:
    """Each run with its state, size and price (`vitbench plan`): a pre-training run's training
    FLOPs; a run from a released checkpoint's forward and fine-tuning FLOPs, in columns of their own."""
    from benchmark import cost

    unit, scale = cost.flop_unit(max((c.flops for c in bill.runs), default=0.0))
    trained = any(c.work == cost.TRAINING for c in bill.runs) or not bill.runs
    evaluated = any(c.work == cost.EVALUATION for c in bill.runs)

    def flops(c: cost.RunCost) -> list[str]:
        mine = c.work == cost.EVALUATION
        cells = [cost.significant(c.flops / scale) if not mine else "–"] if trained else []
        if evaluated:
            cells += [
                cost.significant(f / scale) if mine else "–" for f in (c.forward_flops, c.finetune_flops)
            ]
        return cells

    rows = [
        [
            r.run_id,
            r.state,
            str(r.cfg.optim.steps),
            c.model,
            f"{c.images:,}",
            *flops(c),
            "–" if c.seconds is None else cost.significant(c.seconds / 3600),
            r.label,
        ]
        for r, c in zip(the_plan.runs, bill.runs, strict=True)
    ]
    columns = [f"train {unit}"] if trained else []
    columns += [f"forward {unit}", f"fine-tune {unit}"] if evaluated else []
    # A pre-training run's training images; a released checkpoint's run's evaluation images.
    images = "eval images" if evaluated and not trained else "images"
    headers = ["run id", "state", "steps", "model", images, *columns, "GPU-hours", "run"]
    return text_table(headers, rows, right=("steps", images, *columns, "GPU-hours"))


def bill_lines(the_plan: Plan, bill: Bill) -> list[str]:
    """`vitbench plan`'s bill: what the runs cost in all, what this preset can decide, what is
    left to run, and what the prices rest on."""
    first, *left = cost_lines(bill)
    return [first, *power_lines(the_plan), *left, *basis_lines(bill)]


def cost_lines(bill: Bill) -> list[str]:
    """What the runs cost in all and, when some are done, what is left to run."""
    from benchmark import cost

    lines = [f"cost of all runs: {cost.total(bill.runs, bill.table)}"]
    if bill.todo and len(bill.todo) < len(bill.runs):
        lines.append(todo_cost_line(bill))
    return lines


def todo_cost_line(bill: Bill, source: bool = False) -> str:
    """What the runs left to do cost; with `source`, the throughput table that priced them."""
    from benchmark import cost

    line = f"cost of what is left to run: {cost.total(bill.todo, bill.table)}"
    return f"{line} ({bill.table.source})" if source else line


def basis_lines(bill: Bill) -> list[str]:
    """What the prices rest on: how each run's hours were obtained, and how FLOPs are counted (and,
    for runs from a released checkpoint, what their forward + fine-tuning FLOPs count)."""
    from benchmark import cost

    lines = [f"GPU-hours on {bill.table.label}: {cost.bases(bill.runs)}", f"FLOPs: {cost.CONVENTION}"]
    if any(c.work == cost.EVALUATION for c in bill.runs):
        lines.append(f"forward + fine-tuning FLOPs: {cost.EVAL_CONVENTION}")
    return lines


def weights_lines(plans: Sequence[Plan]) -> list[str]:
    """One line per released checkpoint the plans' runs name: present (where, its format and
    sha256) or absent (and how to obtain it). Nothing when no run names one."""
    from benchmark import released

    names = dict.fromkeys(r.cfg.model.checkpoint for p in plans for r in p.runs if r.cfg.model.checkpoint)
    if not names:
        return []
    folder = released.weights_folder()
    where = (
        f"looked for in {folder} (--weights / {released.WEIGHTS_ENV}), then in timm's caches"
        if folder is not None
        else f"no weights folder given (--weights DIR or {released.WEIGHTS_ENV}): looked for in timm's caches"
    )
    lines = [
        f"released checkpoints the runs start from ({where}; a file found is verified by `vitbench run`):"
    ]
    for name in names:
        record = released.released(name)
        path = released.locate(record)
        label = f"{name} ({record.label})"
        if path is None:
            get = f"hf download {record.hub_id} model.safetensors --local-dir DIR/{record.name}"
            lines.append(
                f"  {label}: absent; get it with `{get}` and pass --weights DIR (or run with --download)"
            )
            continue
        fmt, digest = released.weight_format(path), released.sha256(path)  # hashed once (a cache)
        lines.append(f"  {label}: present at {path} ({fmt}, sha256 {digest[:12]})")
    return lines


def no_preset_line(study: Study, preset: str) -> str:
    """`vitbench plan --all`'s line for a study that has no such preset."""
    return f"{study.name}: no preset {preset!r}; its presets: {', '.join(study.presets)}"


def total_header(preset: str, priced: int, studies: int) -> str:
    """The line above the total of `vitbench plan --all`: over which studies it sums."""
    if priced == studies:
        return f"total over the {studies} studies at {preset}:"
    return f"total over the {priced} of {studies} studies that have {preset}:"


def power_lines(the_plan: Plan) -> list[str]:
    """Per claim: what this preset can decide, before anything runs (benchmark.power)."""
    from benchmark import power

    head = (
        f"power at {the_plan.preset} (α = 0.05; MDE at 80% power; a claim below 50% power cannot be decided):"
    )
    return [
        head,
        *(f"  {line}" for line in power.lines(the_plan.study, the_plan.preset, the_plan.results_root)),
    ]


def estimate_line(the_plan: Plan, workers: int) -> str:
    """The plan's time estimate for this machine at `workers` runs at once, and its source."""
    est = the_plan.estimate
    if not the_plan.todo:
        return "estimated time: nothing left to run"
    if est is None:
        return (
            "estimated time: no estimate yet (no finished run of the same model shape under "
            f"{the_plan.folder.parent.parent}; run `vitbench bench`)"
        )
    jobs = min(workers, len(the_plan.todo))
    at_once = f", about {duration(est.seconds / jobs)} at {jobs} runs at once" if jobs > 1 else ""
    line = f"estimated time: {duration(est.seconds)} of run time{at_once} (from {est.source})"
    if n := len(est.unmeasured):
        models = ", ".join(sorted(set(est.unmeasured)))
        line += (f"; plus {n} of the {len(the_plan.todo)} runs left, of models nothing here has timed yet "
                 f"({models}): not counted")  # fmt: skip
    return line


def status_table(the_plan: Plan) -> str:
    """Each run's state, progress, time, evaluation share, attempts and what went wrong."""
    rows = []
    for r in the_plan.runs:
        info, steps = r.info, r.cfg.optim.steps
        step = steps if r.state == "done" else info["step"] or 0
        rows.append(
            [
                r.run_id,
                r.state,
                f"{step}/{steps}" if r.state != "pending" else "",
                duration(info["wall_s"] or info["elapsed_s"]) if info["attempts"] else "",
                eval_share(info.get("wall_split")),
                str(info["attempts"]) if info["attempts"] else "",
                r.label,
                detail(info),
            ]
        )
    headers = ["run id", "state", "step", "time", "eval", "attempts", "run", "detail"]
    return text_table(headers, rows, right=("step", "time", "eval", "attempts"))


def time_split(the_plan: Plan) -> str | None:
    """Where the finished runs' time went: start-up, training, evaluation during and after."""
    splits = [r.info["wall_split"] for r in the_plan.runs if r.state == "done" and r.info.get("wall_split")]
    if not splits:
        return None
    phases = ("startup_s", "train_s", "periodic_eval_s", "final_eval_s")
    total = {phase: sum(s.get(phase, 0.0) for s in splits) for phase in phases}
    return "time of the finished runs: " + ", ".join(
        f"{phase.removesuffix('_s').replace('_', ' ')} {duration(s)} ({s / sum(total.values()):.0%})"
        for phase, s in total.items())  # fmt: skip


def eval_share(split: dict[str, float] | None) -> str:
    """The share of a run's time spent evaluating (periodic and final), from the trainer's record."""
    if not split:
        return ""
    evaluating = split.get("periodic_eval_s", 0.0) + split.get("final_eval_s", 0.0)
    return f"{evaluating / max(sum(split.values()), 1e-9):.0%}"


def duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def detail(info: dict[str, Any]) -> str:
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


# --- what a command did, and what to type next ------------------------------------------------


def study_lines(name: str, study: Study | Exception) -> list[str]:
    """`vitbench list`'s lines for one study: its title, paper reference, claim and presets; or
    why it does not load."""
    if isinstance(study, Exception):
        return [f"{name:12s}  (broken) {study}"]
    return [
        f"{name:12s}  {study.title} — {study.reference}",
        f"{'':12s}  claim: {study.claim}",
        f"{'':12s}  presets: {', '.join(study.presets)}",
    ]


def refused_write(exc: OSError, reports: Path | None) -> str | None:
    """The one line for a write the filesystem refused (read-only, full), naming the path and the
    flag that moves it (--reports for a path under `reports`, else --results); None for any other
    error."""
    from benchmark.storage import storage_error

    kind = storage_error(exc)
    if kind is None:
        return None
    path = Path(str(exc.filename)) if exc.filename else None
    inside_reports = (
        path is not None and reports is not None and path.resolve().is_relative_to(reports.resolve())
    )
    flag = "--reports" if inside_reports else "--results"
    if kind == "no space":
        return f"cannot write {path or 'the results'}: no space left on the device; make room, or give {flag} DIR elsewhere"
    return f"cannot write {path}: {exc.strerror} (read-only); give a writable folder with {flag} DIR"


def submitted_line(job_ids: Sequence[str]) -> str:
    first, last = job_ids[0], job_ids[-1]
    return f"Submitted Slurm job array {first.split('_')[0]}: jobs {first} … {last}, one per run."


def follow_line(name: str, flags: str) -> str:
    """What to type after a Slurm submission that `run` does not follow (no --wait)."""
    return (
        f"Follow with `vitbench status {name}{flags}`; cancel with `vitbench cancel {name}{flags}`; "
        f"once done, `vitbench report {name}{flags}`."
    )


def stopped_following_line(name: str, flags: str) -> str:
    return f"stopped following; the jobs keep running (`vitbench cancel {name}{flags}`)."


def interrupted_line(after: Plan, flags: str) -> str:
    """What a Ctrl-C stopped, from the run folders as they stand after it, and the command that
    resumes it."""
    counts = after.counts
    started = counts["interrupted"] + counts["running"]
    return (
        f"interrupted {after.study.name}/{after.variant}: {counts['done']} of {len(after.runs)} runs done, "
        f"{started} stopped mid-training (they resume from their last checkpoint), "
        f"{counts['pending']} not started; resume with `vitbench run {after.study.name}{flags}`"
    )


def busy_line(busy: int, name: str, flags: str) -> str:
    return (
        f"{busy} run(s) were being trained by another process; run "
        f"`vitbench run {name}{flags}` again once they are done to include them."
    )


def unrecorded_line(label: str, run_dir: Path, state: str, error: str) -> str:
    """A run that failed but could not record it (e.g. a read-only folder): it stays `state`."""
    return f"{label}: failed and could not record it in {run_dir} (it stays {state}): {error}"


def failed_line(failed: int, name: str, flags: str, report_written: bool, retried: bool) -> str:
    """How many runs failed, where to see why, and (unless they were retried) how to rerun them."""
    listed = "; the report lists them" if report_written else ""
    retry = "" if retried else f"; rerun them with `vitbench run {name}{flags} --retry-failed`"
    return f"{failed} run(s) failed{listed}. `vitbench status {name}{flags}` shows why{retry}."


def dispatch_line(record: dict[str, Any]) -> str:
    """`vitbench status`'s line for the study's last dispatch (a record of the jobs log)."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(record["dispatcher"]["time"]))
    jobs = f" as Slurm job array {record['jobs'][0].split('_')[0]}" if record["jobs"] else ""
    return f"last dispatch: {len(record['runs'])} runs on the {record['executor']} executor{jobs}, {when}"


def stale_line(stale_after_s: float) -> str:
    return (
        f"a run whose trainer is silent for {duration(stale_after_s)} is taken as dead and resumes "
        "on the next `vitbench run` (VITBENCH_LOCK_STALE_S)"
    )
