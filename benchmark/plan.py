"""Which runs a study declares, in which state each is, what is left to do, and how long it may take.

The one answer `vitbench run`, `plan` and `status` share: the CLI parses flags, calls `make_plan`
and prints what it returns; it never decides which runs are trained.

A variant is named by what its overrides do to the configs, not by how they are spelled: an
override that changes no run is none, and `optim.lr=1e-3` and `optim.lr=0.001` are one variant.
Overrides that make two declared runs one config (`--set seed=0` on a multi-seed preset) leave one
run of it: it is trained, billed and judged once.

A config that a study in `study.reuse` also declares is one run for both: it trains in that
study's folder (its home; the claim there keeps two studies from training it twice, even at once)
and is copied into this study's folder once finished (`results.adopt`), so that nothing is shared.

The estimate is measured, never assumed: the wall times of finished runs of the same model shape
(any study under the results folder), else the training throughput that `vitbench bench` stored
in `<results>/bench.json`, else none; plus each run's start-up (process start, imports, data
loading before its first step), as the finished runs recorded it. The bill (`bill`) prices the
same runs in training FLOPs and in hours on a named accelerator from a throughput table
(`benchmark.cost`), without the data.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark import cost, released, results
from benchmark.config import RunConfig, apply_overrides, flatten, from_dict, run_id
from benchmark.errors import UserError
from benchmark.results import CONFIG, META, STATES, read_result, run_dir, run_info, study_dir
from benchmark.storage import read_json
from benchmark.study import Study, load_study

BENCH = "bench.json"


@dataclass(frozen=True)
class PlannedRun:
    cfg: RunConfig
    run_id: str
    path: Path  # this study's folder of the run
    label: str
    info: dict[str, Any]  # results.run_info of `home` (of `path` once done there): state, step, ...
    home: Path  # where it trains: `path`, or the folder of a study in `study.reuse` declaring it too
    adoptable: bool = False  # finished in its home (another study's folder): `run` copies it here
    problem: str | None = None  # garbage at `path` (results.problem): `run` moves it aside first

    @property
    def state(self) -> str:
        return self.info["state"]

    @property
    def source(self) -> Path | None:
        """The other study's folder it trains in, or None for a run of this study alone."""
        return None if self.home == self.path else self.home


@dataclass(frozen=True)
class Estimate:
    seconds: float  # the runs left to do that something measured, one after another
    source: str  # what it was measured from, said beside the number
    unmeasured: tuple[str, ...] = ()  # the models of runs nothing here has timed: not in `seconds`


@dataclass(frozen=True)
class Plan:
    study: Study
    preset: str
    variant: str  # the preset, suffixed "@<hash>" when overrides make it another experiment
    folder: Path
    runs: list[PlannedRun]
    todo: list[PlannedRun]  # what `run` trains: pending and interrupted, and failed with retry_failed
    retry_failed: bool
    estimate: Estimate | None
    overrides: dict[str, str]  # --set, parsed once: every later look at the folders plans with them
    results_root: Path
    declared: int = 0  # runs the preset declares; more than len(runs) when overrides made duplicates

    @property
    def counts(self) -> Counter[str]:
        return Counter(r.state for r in self.runs)

    @property
    def skipped_failed(self) -> int:
        return 0 if self.retry_failed else self.counts["failed"]

    @property
    def adoptable(self) -> list[PlannedRun]:
        return [r for r in self.runs if r.adoptable]

    @property
    def garbage(self) -> list[tuple[Path, str]]:
        """(path, what is wrong) of what `run` moves aside: the study's folder if a file stands in
        its place, else the runs' garbage (`PlannedRun.problem`)."""
        if self.folder.exists() and not self.folder.is_dir():
            return [(self.folder, "a file where the study's folder should be")]
        return [(r.path, r.problem) for r in self.runs if r.problem]

    def collapsed(self) -> str | None:
        """One line when the overrides made declared runs duplicates of each other."""
        if self.declared <= len(self.runs):
            return None
        return (
            f"{self.study.name}/{self.variant}: the overrides make the {self.declared} runs the preset declares "
            f"{len(self.runs)} distinct configs; each is trained, billed and judged once"
        )


@dataclass(frozen=True)
class Bill:
    """What a plan costs on the device of a throughput table, before it runs."""

    table: cost.ThroughputTable
    runs: list[cost.RunCost]  # in the order of Plan.runs
    todo: list[cost.RunCost]  # in the order of Plan.todo


def bill(plan: Plan, table: cost.ThroughputTable) -> Bill:
    """Each run's images, training FLOPs and time on `table`'s device (the data need not be present);
    for a run from a released checkpoint, its evaluation's forward and fine-tuning FLOPs instead
    (`cost.eval_cost`)."""
    costs = {r.run_id: cost.run_cost(r.cfg, table) for r in plan.runs}
    return Bill(table, [costs[r.run_id] for r in plan.runs], [costs[r.run_id] for r in plan.todo])


def total_bill(priced: list[tuple[Plan, Bill]], table: cost.ThroughputTable) -> Bill:
    """One bill over several studies' plans (`vitbench plan --all`): a run that two of them
    declare (`Study.reuse`) trains once, so it is counted once."""
    runs = {r.run_id: c for p, b in priced for r, c in zip(p.runs, b.runs, strict=True)}
    todo = {r.run_id: c for p, b in priced for r, c in zip(p.todo, b.todo, strict=True)}
    return Bill(table, list(runs.values()), list(todo.values()))


@dataclass(frozen=True)
class Declared:
    """A study's runs at a preset with the overrides applied, duplicates collapsed."""

    configs: list[RunConfig]  # distinct, in the study's order
    overrides: dict[str, str]  # the overrides that change some run, each in its canonical spelling
    given: int  # runs the preset declares


def declare(study: Study, preset: str, overrides: dict[str, str]) -> Declared:
    """The study's runs at `preset` with the overrides applied (typed: a bad key or value is a
    UserError), the overrides that change something, and duplicates collapsed."""
    base = study.runs(preset)
    effective = {}
    for key, value in overrides.items():
        changed = [apply_overrides(cfg, {key: value}) for cfg in base]
        if key in KEEP:
            _check_kept(study, preset, key, base, changed)
        if changed != base:
            effective[key] = _spelling(flatten(changed[0])[key])
    applied = [apply_overrides(cfg, overrides) for cfg in base]
    return Declared(list({run_id(cfg): cfg for cfg in applied}.values()), effective, len(base))


# What a study's checks and report read from every run, which an override may add to but never
# take away from what the preset declares (`--set eval.shots=1` trained, then the report found no
# 5-shot accuracy): every evaluator, and the 5-shot count that every study judges and selects on
# (presets.transfer_mean, train.selection_score). Other shot counts are only shown.
KEEP = {"eval.evaluators": None, "eval.shots": (5,)}  # None: every value the preset declares


def _check_kept(study: Study, preset: str, key: str, base: list[RunConfig], changed: list[RunConfig]) -> None:
    for before, after in zip(base, changed, strict=True):
        was, now = flatten(before)[key], flatten(after)[key]
        if dropped := [v for v in was if v not in now and (KEEP[key] is None or v in KEEP[key])]:
            keep = ",".join(map(_spelling, (*now, *dropped)))
            raise UserError(
                f"--set {key}={_spelling(now)} drops {_spelling(tuple(dropped))}, which {study.name}'s checks "
                f"and report read from its {preset} runs ({_spelling(was)}); keep it, e.g. --set {key}={keep}"
            )


def _spelling(value: Any) -> str:
    """A typed config value as one canonical string: 1e-3 and 0.001 are both "0.001"."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(map(_spelling, value))
    return repr(value) if isinstance(value, float) else str(value)


def variant_name(preset: str, effective: dict[str, str]) -> str:
    """Runs with overrides are a different experiment: their results and report live apart, under
    a hash of what the overrides change (`declare`), so equal experiments share a folder."""
    if not effective:
        return preset
    digest = hashlib.sha256(json.dumps(effective, sort_keys=True).encode()).hexdigest()[:8]
    return f"{preset}@{digest}"


def shared_homes(study: Study, preset: str, overrides: dict[str, str], results_root: Path) -> dict[str, Path]:
    """{run id: its folder in a study of `study.reuse` (at `preset`), or in this study's preset that
    `preset` extends (`study.reuse_preset`)} for the configs both declare (with the same overrides):
    where those runs train, once for both."""
    homes: dict[str, Path] = {}
    sources = [(load_study(other), preset) for other in study.reuse]
    if (extended := study.reuse_preset(preset)) is not None:
        sources.append((study, extended))
    for other, at in sources:
        try:
            theirs = declare(other, at, overrides)
        except UserError:  # no such preset there: nothing to share
            continue
        variant = variant_name(at, theirs.overrides)
        folder = study_dir(results_root, other.name, variant)
        # A run from a released checkpoint is named by its file too: pinned as make_plan pins this study's.
        for cfg in (released.pin(c, folder) for c in theirs.configs):
            homes.setdefault(run_id(cfg), run_dir(results_root, other.name, variant, cfg))
    return homes


def make_plan(
    study: Study,
    preset: str,
    overrides: dict[str, str],
    results_root: Path,
    *,
    retry_failed: bool = False,
    now: float | None = None,
) -> Plan:
    """Every declared run with its folder and state, what is left to do, and the estimate for it.
    Reads only: garbage is noted (`PlannedRun.problem`) and runs finished in another study's
    folder are noted as adoptable; `prepare` acts on both before a run."""
    declared = declare(study, preset, overrides)
    variant = variant_name(preset, declared.overrides)
    folder = study_dir(results_root, study.name, variant)
    # A run from a released checkpoint is named by its file too: its sha256, pinned here.
    configs = [released.pin(cfg, folder) for cfg in declared.configs]
    # Before variants were named by their effect, they were named by the overrides as spelled.
    legacy = study_dir(results_root, study.name, variant_name(preset, overrides))
    if overrides and legacy != folder and legacy.is_dir():
        warnings.warn(
            f"{legacy}: results of these overrides from before variants were named by their effect; "
            f"they are read from {folder} now: move them there to keep them",
            stacklevel=2,
        )
    homes = (
        shared_homes(study, preset, overrides, results_root)
        if study.reuse or study.reuse_preset(preset)
        else {}
    )
    runs = []
    for cfg in configs:
        path = run_dir(results_root, study.name, variant, cfg)
        problem = results.problem(path, cfg)
        own = dict(results.NOT_STARTED) if problem else run_info(path, now)
        home = homes.get(run_id(cfg), path)
        if home != path and results.problem(home, cfg):
            home = path  # garbage in the other study's folder: this run trains here
        info = own if own["state"] == "done" or home == path else run_info(home, now)
        adoptable = home != path and own["state"] != "done" and info["state"] == "done"
        runs.append(PlannedRun(cfg, run_id(cfg), path, study.label(cfg), info, home, adoptable, problem))
    todo_states = ("pending", "interrupted", "failed") if retry_failed else ("pending", "interrupted")
    todo = [r for r in runs if r.state in todo_states]
    return Plan(
        study=study,
        preset=preset,
        variant=variant,
        folder=folder,
        runs=runs,
        todo=todo,
        retry_failed=retry_failed,
        estimate=estimate([r.cfg for r in todo], results_root),
        overrides=overrides,
        results_root=results_root,
        declared=declared.given,
    )


def again(the_plan: Plan, retry_failed: bool | None = None) -> Plan:
    """The same request planned afresh from the folders as they stand now (after a run, say)."""
    retry = the_plan.retry_failed if retry_failed is None else retry_failed
    return make_plan(
        the_plan.study, the_plan.preset, the_plan.overrides, the_plan.results_root, retry_failed=retry
    )


def prepare(the_plan: Plan) -> tuple[Plan, list[str]]:
    """Before a run (after every check on the input): move garbage aside (one warning each) and
    copy the runs other studies finished into this study's folder. Returns the plan as it then
    stands and a line saying what was adopted, if anything was."""
    lines = []
    garbage = the_plan.garbage
    for path, why in garbage:
        warnings.warn(results.set_aside(path, why), stacklevel=2)
    adopted = [r for r in the_plan.adoptable if results.adopt(r.home, r.path)]
    if adopted:
        studies = sorted({f"{r.home.parent.parent.name}/{r.home.parent.name}" for r in adopted})
        lines.append(
            f"{the_plan.study.name}/{the_plan.variant}: adopted {len(adopted)} run(s) finished by "
            f"{', '.join(studies)} (copied, verified)"
        )
    if not (lines or garbage):
        return the_plan, lines
    return again(the_plan), lines


def summary(plan: Plan, where: str = "") -> str:
    """One line: done, what is left to run (by state), failed and running runs; `where` (e.g.
    "on the local executor") follows "to run"."""
    counts = plan.counts
    left = Counter(r.state for r in plan.todo)
    breakdown = ", ".join(f"{left[state]} {state}" for state in STATES if left[state])
    done = f"{counts['done']} done"
    if adoptable := plan.adoptable:
        studies = ", ".join(sorted({f"{r.home.parent.parent.name}/{r.home.parent.name}" for r in adoptable}))
        done += f" ({len(adoptable)} by {studies}: copied here by the next `vitbench run`)"
    line = f"{plan.study.name}/{plan.variant}: {len(plan.runs)} runs; {done}, {len(plan.todo)} to run"
    line += (f" {where}" if where else "") + (f" ({breakdown})" if breakdown else "")
    if plan.skipped_failed:
        line += f"; {plan.skipped_failed} failed (skipped; --retry-failed reruns them)"
    if counts["running"]:
        line += f"; {counts['running']} running (skipped)"
    return line


# --- the estimate ----------------------------------------------------------------------------


def _shape_key(cfg: RunConfig) -> tuple:
    """What a run's time per training image depends on most: the encoder, the tokens, the data.
    The nested subsets of one fractal pool (fractal100x10 … fractal100x1000) are one data shape:
    their images are alike, only their number differs. (By name: `status` and `report` must not
    import torch or load a dataset to read an estimate.)"""
    from benchmark.sizes import resolve_model

    pool = re.sub(r"^(fractal\d+)x\d+$", r"\1", cfg.data.dataset)
    return (resolve_model(cfg.model), cfg.model.pos_embed, pool, cfg.data.image_size)


def _images(cfg: RunConfig) -> int:
    return cfg.optim.steps * cfg.optim.batch_size


@dataclass(frozen=True)
class _Measured:
    """What a finished run says about this machine's speed."""

    shape: tuple
    seconds_per_image: float
    startup_s: float | None  # before its last attempt began (results.start_attempt); None: not recorded


def _finished_runs(results_root: Path) -> list[_Measured]:
    """The measurements of every finished run of any study under the results folder. A folder
    whose config this version cannot read (damaged, older, a model it does not know) says nothing
    about this machine's speed: it is left out, with one warning."""
    found = []
    for path in sorted(Path(results_root).glob(f"[!.]*/[!.]*/[!.]*/{CONFIG}")):  # not what was set aside
        if not path.is_file() or (config := read_json(path)) is None:
            continue  # garbage: `plan` and `run` name the declared runs' garbage themselves
        try:
            cfg = from_dict(config)
            shape = _shape_key(cfg)
        except (UserError, TypeError, ValueError, AttributeError) as exc:
            warnings.warn(f"{path.parent}: left out of the time estimate ({exc})", stacklevel=2)
            continue
        if results.problem(path.parent, cfg) or (result := read_result(path.parent)) is None:
            continue
        try:
            wall_s = float(result["wall_s"])
        except (KeyError, TypeError, ValueError):
            continue
        if not wall_s > 0:
            continue
        attempts = (read_json(path.parent / META) or {}).get("attempts") or [{}]
        startup = attempts[-1].get("startup_s") if isinstance(attempts[-1], dict) else None
        found.append(_Measured(shape, wall_s / max(1, _images(cfg)), startup))
    return found


def estimate(todo: list[RunConfig], results_root: Path) -> Estimate | None:
    """Seconds for `todo`, one run after another, from what this results folder has measured.

    Each run's time is its training images times the median seconds per training image of the
    finished runs of the same shape (evaluation included, as wall time is); a run with no such
    peer is timed from `vitbench bench`'s throughput for its architecture (training steps only).
    To each run its start-up is added: the mean that finished runs recorded (process start and
    imports, or the gap a worker left between two runs). A run with neither is left out of the
    total and named in `unmeasured`; None when no run has a time at all.
    """
    if not todo:
        return Estimate(0.0, "nothing left to run")
    per_image: dict[tuple, list[float]] = {}
    finished = _finished_runs(results_root)
    for m in finished:
        per_image.setdefault(m.shape, []).append(m.seconds_per_image)
    bench = _bench_throughput(results_root)
    total, peers, benched, unmeasured = 0.0, 0, 0, []
    for cfg in todo:
        if samples := per_image.get(_shape_key(cfg)):
            total += _images(cfg) * statistics.median(samples)
            peers = max(peers, len(samples))
        elif bench and (ips := bench.get(_bench_key(cfg))) is not None:
            total += _images(cfg) / ips
            benched += 1
        else:
            unmeasured.append(cfg.model.arch)
    if len(unmeasured) == len(todo):
        return None
    sources = []
    if benched + len(unmeasured) < len(todo):
        sources.append(f"wall times of finished runs of the same model shape (up to {peers} per shape)")
    if benched:
        sources.append(f"`vitbench bench` throughput, training steps only, for {benched} run(s)")
    if startups := [m.startup_s for m in finished if m.startup_s is not None]:
        startup = statistics.mean(startups)
        total += (len(todo) - len(unmeasured)) * startup
        sources.append(f"{startup:.1f} s of start-up per run (mean of {len(startups)} finished runs)")
    else:
        sources.append("no start-up measured yet (process start and imports come on top)")
    return Estimate(total, "; ".join(sources), tuple(unmeasured))


def _bench_key(cfg: RunConfig) -> tuple[str, int] | None:
    """A run measured by `vitbench bench`: a named size (no shape override) at a known image size."""
    m = cfg.model
    if any(getattr(m, name) for name in cost.SHAPE_FIELDS):
        return None
    if cfg.data.image_size:
        return (m.arch, cfg.data.image_size)
    from benchmark import data

    return (m.arch, data.spec(cfg.data.dataset).image_size)


def _bench_throughput(results_root: Path) -> dict[tuple[str, int], float]:
    """{(arch, image size): images/s} from `<results>/bench.json`, if `vitbench bench` wrote a
    readable one (read by cost.load_table, the one reader of that format)."""
    path = Path(results_root) / BENCH
    try:
        table = cost.load_table(path) if path.exists() else None
    except UserError:  # damaged: the estimate falls back to "no estimate", as without a bench
        return {}
    return {(row.arch, row.image_size): row.img_per_s for row in table.rows} if table else {}
