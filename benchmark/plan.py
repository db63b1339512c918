"""Which runs a study declares, in which state each is, what is left to do, and how long it may take.

The one answer `vitbench run`, `plan` and `status` share: the CLI parses flags, calls `make_plan`
and prints what it returns; it never decides which runs are trained.

The estimate is measured, never assumed: the wall times of finished runs of the same model shape
(any study under the results folder), else the training throughput that `vitbench bench` stored
in `<results>/bench.json`, else none. The bill (`bill`) prices the same runs in training FLOPs
and in hours on a named accelerator from a throughput table (`benchmark.cost`), without the data.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark import cost, results
from benchmark.config import RunConfig, apply_overrides, from_dict, run_id
from benchmark.errors import UserError
from benchmark.results import CONFIG, STATES, read_json, read_result, run_dir, run_info, study_dir
from benchmark.study import Study

BENCH = "bench.json"


@dataclass(frozen=True)
class PlannedRun:
    cfg: RunConfig
    run_id: str
    path: Path
    label: str
    info: dict[str, Any]  # results.run_info: state, step, elapsed, attempts, owner, error

    @property
    def state(self) -> str:
        return self.info["state"]


@dataclass(frozen=True)
class Estimate:
    seconds: float  # the runs left to do, one after another
    source: str  # what it was measured from, said beside the number


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

    @property
    def counts(self) -> Counter[str]:
        return Counter(r.state for r in self.runs)

    @property
    def skipped_failed(self) -> int:
        return 0 if self.retry_failed else self.counts["failed"]


@dataclass(frozen=True)
class Bill:
    """What a plan costs on the device of a throughput table, before it runs."""

    table: cost.ThroughputTable
    runs: list[cost.RunCost]  # in the order of Plan.runs
    todo: list[cost.RunCost]  # in the order of Plan.todo


def bill(plan: Plan, table: cost.ThroughputTable) -> Bill:
    """Each run's images, training FLOPs and time on `table`'s device (the data need not be present)."""
    costs = {r.run_id: cost.run_cost(r.cfg, table) for r in plan.runs}
    return Bill(table, [costs[r.run_id] for r in plan.runs], [costs[r.run_id] for r in plan.todo])


def variant_name(preset: str, overrides: dict[str, str]) -> str:
    """Runs with overrides are a different experiment: their results and report live apart."""
    if not overrides:
        return preset
    digest = hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8]
    return f"{preset}@{digest}"


def declared_runs(study: Study, preset: str, overrides: dict[str, str]) -> list[RunConfig]:
    """The study's runs at `preset`, with the overrides applied (typed; names are checked by the caller)."""
    return [apply_overrides(cfg, overrides) for cfg in study.runs(preset)]


def make_plan(
    study: Study,
    preset: str,
    overrides: dict[str, str],
    results_root: Path,
    *,
    retry_failed: bool = False,
    adopt: bool = False,
    now: float | None = None,
) -> Plan:
    """Every declared run with its folder and state, what is left to do, and the estimate for it.
    With `adopt` (before training), a run another study in `study.reuse` finished is taken over."""
    variant = variant_name(preset, overrides)
    runs = []
    for cfg in declared_runs(study, preset, overrides):
        path = run_dir(results_root, study.name, variant, cfg)
        for other in study.reuse if adopt else ():
            if results.adopt(run_dir(results_root, other, variant, cfg), path):
                break
        runs.append(PlannedRun(cfg, run_id(cfg), path, study.label(cfg), run_info(path, now)))
    todo_states = ("pending", "interrupted", "failed") if retry_failed else ("pending", "interrupted")
    todo = [r for r in runs if r.state in todo_states]
    return Plan(
        study=study,
        preset=preset,
        variant=variant,
        folder=study_dir(results_root, study.name, variant),
        runs=runs,
        todo=todo,
        retry_failed=retry_failed,
        estimate=estimate([r.cfg for r in todo], results_root),
    )


def summary(plan: Plan, where: str = "") -> str:
    """One line: done, what is left to run (by state), failed and running runs; `where` (e.g.
    "on the local executor") follows "to run"."""
    counts = plan.counts
    left = Counter(r.state for r in plan.todo)
    breakdown = ", ".join(f"{left[state]} {state}" for state in STATES if left[state])
    line = f"{plan.study.name}/{plan.variant}: {len(plan.runs)} runs; {counts['done']} done, {len(plan.todo)} to run"
    line += (f" {where}" if where else "") + (f" ({breakdown})" if breakdown else "")
    if plan.skipped_failed:
        line += f"; {plan.skipped_failed} failed (skipped; --retry-failed reruns them)"
    if counts["running"]:
        line += f"; {counts['running']} running (skipped)"
    return line


# --- the estimate ----------------------------------------------------------------------------


def _shape_key(cfg: RunConfig) -> tuple:
    """What a run's time per training image depends on most: the encoder, the tokens, the data."""
    from benchmark.sizes import resolve_model

    return (resolve_model(cfg.model), cfg.model.pos_embed, cfg.data.dataset, cfg.data.image_size)


def _images(cfg: RunConfig) -> int:
    return cfg.optim.steps * cfg.optim.batch_size


def _finished_runs(results_root: Path) -> list[tuple[RunConfig, float]]:
    """(config, wall seconds) of every finished run of any study under the results folder."""
    found = []
    for path in sorted(Path(results_root).glob(f"*/*/*/{CONFIG}")):
        result = read_result(path.parent)
        config = read_json(path)
        if result is None or config is None or not result.get("wall_s"):
            continue
        try:
            found.append((from_dict(config), float(result["wall_s"])))
        except (UserError, TypeError, ValueError, AttributeError):
            continue  # a damaged or older config says nothing about this machine's speed
    return found


def estimate(todo: list[RunConfig], results_root: Path) -> Estimate | None:
    """Seconds for `todo`, one run after another, from what this results folder has measured.

    Each run's time is its training images times the median seconds per training image of the
    finished runs of the same shape (evaluation included, as wall time is); a run with no such
    peer is timed from `vitbench bench`'s throughput for its architecture (training steps only).
    None when some run has neither.
    """
    if not todo:
        return Estimate(0.0, "nothing left to run")
    per_image: dict[tuple, list[float]] = {}
    for cfg, wall_s in _finished_runs(results_root):
        per_image.setdefault(_shape_key(cfg), []).append(wall_s / max(1, _images(cfg)))
    bench = _bench_throughput(results_root)
    total, peers, benched = 0.0, 0, 0
    for cfg in todo:
        if samples := per_image.get(_shape_key(cfg)):
            total += _images(cfg) * statistics.median(samples)
            peers = max(peers, len(samples))
        elif bench and (ips := bench.get(_bench_key(cfg))) is not None:
            total += _images(cfg) / ips
            benched += 1
        else:
            return None
    sources = []
    if benched < len(todo):
        sources.append(f"wall times of finished runs of the same model shape (up to {peers} per shape)")
    if benched:
        sources.append(f"`vitbench bench` throughput, training steps only, for {benched} run(s)")
    return Estimate(total, " and ".join(sources))


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
