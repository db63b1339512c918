"""Run directories, run status, adoption, and loading a study's results as a DataFrame (atomic writes
 and records: `benchmark.storage`).

Layout: results/<study>/<preset>/<run_id>/
  config.json    the canonical run config (written first)
  meta.json      versions, device, git revision, host, job ids, start time
  metrics.jsonl  one JSON object per line: training logs and evaluations
  progress.json  the latest step/loss/throughput (what progress bars and `status` read)
  checkpoint.pt  while training (weights_only-loadable); checkpoint.prev.pt, the one before it
  lock.json      the claim of the process training the run (see locks.py)
  failed.json    error and traceback of a run that failed
  model.pt       the final weights
  adopted.json   where a run adopted from another study was copied from (see `adopt`)
  result.json    the final metrics, written last and atomically: the only "done" marker. It
                 records model.pt's size and sha256 (`weights_record`): a run is done only while
                 its weights match them (runs finished before the record was kept are trusted)
A study's status is derived from these files alone; nothing is ever parsed out of logs. Beside
the runs, results/<study>/<preset>/ holds jobs.jsonl (what was dispatched, for `vitbench cancel`)
and .submitit/ (submitit's job files, logs and code snapshots).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark import locks
from benchmark.config import RunConfig, canonical_json, flatten, from_dict, run_id
from benchmark.errors import UserError
from benchmark.storage import (
    append_jsonl,
    file_sha256,
    read_json,
    read_jsonl,
    sweep_temporary,
    write_atomic,
    write_json,
)

CONFIG, META, METRICS, PROGRESS = "config.json", "meta.json", "metrics.jsonl", "progress.json"
CHECKPOINT, FAILED, RESULT = "checkpoint.pt", "failed.json", "result.json"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"
WEIGHTS, ADOPTED = "model.pt", "adopted.json"
JOBS = "jobs.jsonl"
# Every file a run folder may hold: one of them that is not a plain file (a directory named
# result.json, say) is garbage the run cannot be trained or read through (`problem`).
RUN_FILES = (
    CONFIG, META, METRICS, PROGRESS, CHECKPOINT, PREVIOUS_CHECKPOINT, FAILED, WEIGHTS, ADOPTED, RESULT,
    "best.pt", locks.LOCK, locks.CLAIMS,
)  # fmt: skip
# What a run's result records besides its metrics, as columns of the study's DataFrame: cost, the
# model's size, and the provenance of its data and evaluations (so reports never load datasets).
RESULT_COLUMNS = (
    "wall_s", "train_flops", "params", "train_images_per_s", "image_size", "patch_grid", "train_examples",
    "datasets", "protocol", "selected_step", "wall_split",
)  # fmt: skip
STATES = ("done", "failed", "running", "interrupted", "pending")


def study_dir(root: Path, study: str, preset: str) -> Path:
    return Path(root) / study / preset


def run_dir(root: Path, study: str, preset: str, cfg: RunConfig) -> Path:
    return study_dir(root, study, preset) / run_id(cfg)


def adopt(source: Path, path: Path) -> bool:
    """Take another study's finished run of the same config (the same id) as this study's, by
    copy: its record, metrics and weights are copied into this study's run folder, result.json
    last, and adopted.json names the source. Nothing is shared, so neither study's files can be
    changed through the other's. Only a source whose weights verify is adopted (its record in
    result.json, or for a run finished before that record was kept, model.pt's own checksums).
    Done under this folder's claim; a run already done here is left as it is. Returns whether it
    adopted one."""
    result = read_result(source)
    if result is None or read_result(path) is not None:
        return False
    # What vouches for the run's weights: their record, or a released run's pinned checkpoint (the
    # file the run read, named by its sha256: the run writes no weights of its own).
    recorded = "weights" in result or "released" in result
    if not recorded and (why := _legacy_weights_problem(source)):
        warnings.warn(f"{source}: not adopted, {why}; the run is trained here instead", stacklevel=2)
        return False
    with locks.Claim(path) as claim:
        if not claim.held or read_result(path) is not None:
            return False
        for name in RUN_FILES:  # what an earlier attempt here left: this folder becomes the copy
            if name not in (CONFIG, locks.LOCK, locks.CLAIMS):
                (path / name).unlink(missing_ok=True)
        for name in (CONFIG, META, METRICS, PROGRESS, WEIGHTS):
            if (source / name).is_file():
                _copy(source / name, path / name)
        write_json(path / ADOPTED, {"source": str(Path(source).resolve()), "time": time.time()})
        if recorded:
            _copy(source / RESULT, path / RESULT)  # last: the "done" marker
        else:  # checked by its CRCs above: the copy records its weights, as a new run does
            write_json(path / RESULT, {**result, "weights": weights_record(path)})
    return read_result(path) is not None


def _copy(src: Path, dst: Path) -> None:
    with open(src, "rb") as f:
        write_atomic(dst, lambda out: shutil.copyfileobj(f, out, 1 << 20))


def _legacy_weights_problem(run_dir: Path) -> str | None:
    """Why the weights of a run finished without a weights record cannot be trusted, if they
    cannot: model.pt (a zip archive, as torch.save writes it) missing, or failing its CRCs."""
    try:
        with zipfile.ZipFile(run_dir / WEIGHTS) as archive:
            bad = archive.testzip()
    except FileNotFoundError:
        return f"it has no {WEIGHTS}"
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        return f"its {WEIGHTS} is damaged ({exc})"
    return f"its {WEIGHTS} is damaged (member {bad} fails its CRC)" if bad else None


def weights_record(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Size and sha256 of the run's final weights, for its result.json ("weights"): `read_result`
    counts the run as done only while model.pt still matches them."""
    path = Path(run_dir) / WEIGHTS
    return {WEIGHTS: {"bytes": path.stat().st_size, "sha256": file_sha256(path)}}


def _weights_problem(run_dir: Path, record: Any) -> str | None:
    """How the run's files differ from the weights record in its result, if they do."""
    if not isinstance(record, dict):
        return "its weights record is malformed"
    for name, expected in record.items():
        path = Path(run_dir) / name
        try:
            if not path.is_file():
                return f"{name} is missing"
            if path.stat().st_size != expected.get("bytes"):
                return f"{name} has {path.stat().st_size:,} bytes, not the {expected.get('bytes')} recorded"
            if file_sha256(path) != expected.get("sha256"):
                return f"{name} does not match its recorded sha256 (changed since the run finished)"
        except (OSError, AttributeError) as exc:
            return f"{name} cannot be read ({exc})"
    return None


def init_run_dir(path: Path, cfg: RunConfig) -> None:
    """Create the run's folder and its config; refuse a folder that holds a different config."""
    path.mkdir(parents=True, exist_ok=True)
    existing = read_json(path / CONFIG)
    if existing is not None and json.dumps(existing, sort_keys=True, separators=(",", ":")) != canonical_json(
        cfg
    ):
        raise RuntimeError(f"{path} holds a different config; refusing to mix runs")
    if existing is None:
        write_json(path / CONFIG, json.loads(canonical_json(cfg)))


def _process_start() -> float | None:
    """When this process started (epoch seconds, to the second: /proc's boot time), if /proc says."""
    try:
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime")
        )
        ticks = locks.process_start(os.getpid())
        return None if ticks is None else boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, ValueError):
        return None


_READY: list[float | None] = [None]  # when this process became free for its next run (None: at its start)


def mark_ready() -> None:
    """A worker finished a run: the next one's start-up is counted from now, not from the start of
    the process (dispatch.TrainQueue)."""
    _READY[0] = time.time()


def start_attempt(run_dir: Path, env: dict[str, Any]) -> dict[str, Any]:
    """Open a new attempt in meta.json and return the meta. Each attempt records what it ran on:
    revision, dirty flag, host, device, threads, torch version, job, claim and start-up; an attempt that
    resumes under another revision or thread count warns (here and in metrics.jsonl), since a
    run is bitwise reproducible only when neither changes. Temporary files a killed attempt left
    behind are swept first. `env` is environment.collect() plus "threads"."""
    sweep_temporary(run_dir)
    meta = read_json(run_dir / META) or {"attempts": []}
    meta.update(env)
    start = time.time()
    ready = _READY[0] if _READY[0] is not None else _process_start()
    attempt = {
        "start": start,
        # Seconds this process spent before the attempt: its start and imports for the first run
        # of a process, the gap since its previous run for a worker's later ones (`plan.estimate`).
        "startup_s": None if ready is None else round(max(0.0, start - ready), 3),
        "host": env["host"],
        "pid": env["pid"],
        "slurm_job_id": env["slurm_job_id"],
        "revision": env["git"]["revision"],
        "dirty": env["git"]["dirty"],
        "device": env["device"],
        "threads": env["threads"],
        "torch": env["versions"]["torch"],
        # the CPU and math libraries this attempt computed with: a resumed run is bitwise the same
        # only on the same ones (environment.math_libraries)
        "cpu": env.get("cpu"),
        "claim": locks.held_token(run_dir),
    }
    earlier = meta["attempts"]
    meta["attempts"] = [*earlier, attempt]
    write_json(run_dir / META, meta)
    if earlier and (changed := mixed_history([earlier[-1], attempt])):
        message = f"this attempt resumes under other conditions than the last: {changed}"
        warnings.warn(f"{run_dir}: {message}", stacklevel=2)
        append_jsonl(run_dir / METRICS, {"kind": "warning", "message": message})
    return meta


def _revision(attempt: dict[str, Any]) -> str | None:
    if not attempt.get("revision"):
        return None
    return str(attempt["revision"])[:8] + ("+dirty" if attempt.get("dirty") else "")


def _cpu_model(attempt: dict[str, Any]) -> str | None:
    return (attempt.get("cpu") or {}).get("model")


def mixed_history(attempts: Sequence[dict[str, Any]]) -> str | None:
    """How a run's attempts differ in code, threads or CPU, e.g. "revisions 1a2b3c4d→5e6f7a8b+dirty;
    threads 1→2", or None if they agree (attempts that did not record a value are left out)."""
    parts = []
    for name, value in (
        ("revisions", _revision),
        ("threads", lambda a: a.get("threads")),
        ("CPUs", _cpu_model),
    ):
        seen: list[Any] = []
        for attempt in attempts:
            if (v := value(attempt)) is not None and (not seen or seen[-1] != v):
                seen.append(v)
        if len(seen) > 1:
            parts.append(f"{name} {'→'.join(map(str, seen))}")
    return "; ".join(parts) or None


def read_result(path: Path) -> dict[str, Any] | None:
    """The run's result if it is complete. A damaged result.json (truncated, or not a result), or
    weights that no longer match its record of them (deleted, truncated, edited), warn and count
    as absent, so the run is adopted or trained again rather than reported half-written."""
    result = read_json(path / RESULT)
    if result is None:
        return None
    if result.get("status") != "done" or not isinstance(result.get("metrics"), dict):
        warnings.warn(f"ignoring incomplete result {path / RESULT}", stacklevel=2)
        return None
    if "weights" in result and (why := _weights_problem(path, result["weights"])):
        warnings.warn(f"{path}: {why}; the run counts as not finished and is trained again", stacklevel=2)
        return None
    return result


def status(path: Path) -> str:
    """done | failed | running (a live process holds its claim) | interrupted (started, nobody
    on it now: it resumes on the next run) | pending, from the files alone."""
    if read_result(path) is not None:
        return "done"
    if read_json(path / FAILED) is not None:
        return "failed"
    if locks.holder(path) is not None:
        return "running"
    if any((path / name).exists() for name in (PROGRESS, CHECKPOINT, PREVIOUS_CHECKPOINT, META)):
        return "interrupted"
    return "pending"


NOT_STARTED: dict[str, Any] = {
    "state": "pending", "step": None, "steps": None, "elapsed_s": 0.0, "wall_s": None, "attempts": 0,
    "requeued": 0, "killed": 0, "claim_lost": 0, "mixed": None, "error": None, "owner": None,
}  # fmt: skip


def run_info(path: Path, now: float | None = None) -> dict[str, Any]:
    """What `vitbench status` shows for one run: state, progress, time spent in attempts, how
    often it was requeued (preemption, time limit) or killed (kill -9, node failure, scancel:
    an earlier attempt that recorded no end), and who is training it or why it failed."""
    now = time.time() if now is None else now
    state = status(path)
    progress = read_json(path / PROGRESS) or {}
    result = read_result(path) or {}
    attempts = (read_json(path / META) or {}).get("attempts", [])
    lost = locks.lost_claims(path)
    for attempt in attempts:  # an attempt fenced off by a takeover logs that in claims.jsonl
        if attempt.get("claim") in lost and "end" not in attempt:
            attempt.update(end=lost[attempt["claim"]], outcome="claim lost")
    last_seen = {"running": now, "done": result.get("end")}.get(state) or progress.get("time") or now
    elapsed = 0.0
    for i, attempt in enumerate(attempts):
        successor_start = attempts[i + 1]["start"] if i + 1 < len(attempts) else last_seen
        end = attempt.get("end") or min(last_seen, successor_start)
        elapsed += max(0.0, end - attempt["start"])
    return {
        "state": state,
        "step": progress.get("step"),
        "steps": progress.get("steps"),
        "elapsed_s": elapsed,
        "wall_s": result.get("wall_s"),
        # where the time went: startup / train / periodic and final evaluation (the trainer's record)
        "wall_split": result.get("wall_split") or progress.get("wall_split"),
        "attempts": len(attempts),
        "requeued": sum(a.get("outcome") == "requeued" for a in attempts),
        # The last attempt of a running, done or failed run was not killed, whatever it recorded.
        "killed": sum("end" not in a for a in (attempts if state == "interrupted" else attempts[:-1])),
        "claim_lost": sum(a.get("outcome") == "claim lost" for a in attempts),
        "mixed": mixed_history(attempts),
        "error": (read_json(path / FAILED) or {}).get("error") if state == "failed" else None,
        "owner": locks.holder(path) if state == "running" else None,
    }


@dataclass
class StudyRecords:
    """Everything stored about a study variant's declared runs, read in one pass (`scan`)."""

    results: pd.DataFrame  # one row per finished run: run_id, flattened config, final metrics
    curves: pd.DataFrame  # evaluations logged during training by finished runs, one row per (run, step)
    runs: pd.DataFrame  # one row per declared run, never-started ones included: status and history
    metas: list[dict[str, Any]] = field(default_factory=list)  # meta.json of each run that has one
    warnings: list[str] = field(default_factory=list)  # one line each: what was repaired or set aside


def problem(path: Path, cfg: RunConfig) -> str | None:
    """Why the folder of `cfg`'s run (its hash is the folder's name) cannot be read or trained
    through as it is, if it cannot: a plain file where the folder should be, one of the run's
    files that is not a file (a directory named result.json), or a config.json that declares
    another run (a copied or edited folder). Such garbage is set aside (`set_aside`), never
    trusted and never a traceback. A missing or unreadable config.json is no such problem: it is
    rewritten from the declaration (`repair_config`)."""
    if not path.exists():
        return None
    if not path.is_dir():
        return "a file where the run's folder should be"
    for name in RUN_FILES:
        if (path / name).exists() and not (path / name).is_file():
            return f"its {name} is not a file"
    stored = _stored_config(path)
    if stored is not None and json.dumps(stored, sort_keys=True, separators=(",", ":")) != canonical_json(
        cfg
    ):
        return "its config.json declares another run than its folder's name"
    return None


def _stored_config(path: Path) -> Any:
    try:
        return json.loads((path / CONFIG).read_text())
    except (OSError, ValueError):  # missing, a folder, not JSON, not text
        return None


def set_aside(path: Path, why: str) -> str:
    """Move garbage at a run's place out of every view (renamed `.set-aside-<name>-<time>` beside
    it), so the run counts as not started; returns the warning line. Left in place, and said so,
    where a live process holds the run or the folder cannot be written (read-only)."""
    if path.is_dir() and locks.holder(path) is not None:
        return f"{path}: {why}; left out (a process is training it)"
    aside = path.with_name(f".set-aside-{path.name}-{int(time.time())}")
    try:
        path.rename(aside)
    except OSError as exc:
        return f"{path}: {why}; left out (it could not be moved aside: {exc.strerror})"
    return f"{path}: {why}; moved aside to {aside.name}"


def repair_config(path: Path, cfg: RunConfig) -> str | None:
    """Rewrite a missing or unreadable config.json of `cfg`'s run folder from the declaration (its
    hash is the folder's name); returns the warning to give, if any."""
    if not path.is_dir() or _stored_config(path) is not None:
        return None
    problem_ = "was missing" if not (path / CONFIG).exists() else "was unreadable"
    try:
        write_json(path / CONFIG, json.loads(canonical_json(cfg)))
    except OSError as exc:
        return f"{path}: config.json {problem_}; read as declared (it could not be rewritten: {exc.strerror})"
    return f"{path}: config.json {problem_}; rewritten from the study's declaration (its hash is the folder's name)"


def _check_record(path: Path, cfg: RunConfig) -> str | None:
    """Make the run folder agree with the declared `cfg`: garbage is set aside (`problem`), a
    missing or unreadable config.json rewritten. Returns the warning to give, if any."""
    if why := problem(path, cfg):
        return set_aside(path, why)
    return repair_config(path, cfg)


def scan(root: Path, study: str, variant: str, expected: Sequence[RunConfig]) -> StudyRecords:
    """One read of a study variant's run folders, for `status` and the report alike: the
    declared runs only (a folder that matches none may be another variant's), each record
    repaired or set aside (see `_check_record`) instead of breaking the study."""
    base = study_dir(root, study, variant)
    results, curves, runs, metas, notes = [], [], [], [], []
    # A run declared twice (overrides can make two runs one config) is one run: read, and seen by
    # the study's statistics, once.
    expected = list({run_id(cfg): cfg for cfg in expected}.values())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for cfg in expected:
            path = base / run_id(cfg)
            if note := _check_record(path, cfg):
                notes.append(note)
            config = flatten(cfg)
            info = run_info(path)
            wall_s = info["wall_s"] if info["wall_s"] is not None else info["elapsed_s"]
            runs.append(
                {"run_id": path.name, "status": info.pop("state"), **info, "wall_s": wall_s, **config}
            )
            if (meta := read_json(path / META)) is not None:
                metas.append(meta)
            if (result := read_result(path)) is None:
                continue
            # run_dir: where the run's files are, for a study that reads more than its result
            # (the inspect study measures the final weights, model.pt).
            row: dict[str, Any] = {
                "run_id": path.name,
                "run_dir": str(path),
                **config,
                **result.get("metrics", {}),
            }
            row.update({key: result.get(key) for key in RESULT_COLUMNS})
            results.append(row)
            curves += [
                {"run_id": path.name, **config, **rec}
                for rec in read_jsonl(path / METRICS)
                if rec.get("kind") == "eval"
            ]
    notes += [str(w.message) for w in caught]
    return StudyRecords(
        pd.DataFrame(results), pd.DataFrame(curves), pd.DataFrame(runs), metas, list(dict.fromkeys(notes))
    )


def _stored_configs(root: Path, study: str, preset: str) -> list[RunConfig]:
    """The configs the run folders declare themselves (for the loaders below, which have no study)."""
    base = study_dir(root, study, preset)
    if not base.is_dir():
        return []
    configs = []
    for path in sorted(p for p in base.iterdir() if p.is_dir()):
        stored = read_json(path / CONFIG)
        try:
            cfg = from_dict(stored) if stored is not None else None
        except (UserError, TypeError, ValueError, AttributeError):
            warnings.warn(f"{path}: config.json is not a config this version reads; left out", stacklevel=2)
            continue
        if cfg is not None and path.name == run_id(cfg):
            configs.append(cfg)
    return configs


def load_results(root: Path, study: str, preset: str) -> pd.DataFrame:
    """One row per finished run of whatever configs the run folders hold (not what a study
    declares): for looking at a results folder without its study, e.g. in tests and notebooks."""
    return scan(root, study, preset, _stored_configs(root, study, preset)).results
