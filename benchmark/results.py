"""Run directories, atomic writes, run status, and loading a study's results as a DataFrame.

Layout: results/<study>/<preset>/<run_id>/
  config.json    the canonical run config (written first)
  meta.json      versions, device, git revision, host, job ids, start time
  metrics.jsonl  one JSON object per line: training logs and evaluations
  progress.json  the latest step/loss/throughput (what progress bars and `status` read)
  checkpoint.pt  while training (weights_only-loadable); checkpoint.prev.pt, the one before it
  lock.json      the claim of the process training the run (see locks.py)
  failed.json    error and traceback of a run that failed
  result.json    the final metrics, written last and atomically: the only "done" marker
A study's status is derived from these files alone; nothing is ever parsed out of logs. Beside
the runs, results/<study>/<preset>/ holds jobs.jsonl (what was dispatched, for `vitbench cancel`)
and .submitit/ (submitit's job files, logs and code snapshots).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark import locks
from benchmark.config import RunConfig, canonical_json, flatten, from_dict, run_id

CONFIG, META, METRICS, PROGRESS = "config.json", "meta.json", "metrics.jsonl", "progress.json"
CHECKPOINT, FAILED, RESULT = "checkpoint.pt", "failed.json", "result.json"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"
JOBS = "jobs.jsonl"
# What a run's result records besides its metrics, as columns of the study's DataFrame: cost, the
# model's size, and the provenance of its data and evaluations (so reports never load datasets).
RESULT_COLUMNS = (
    "wall_s", "train_flops", "params", "train_images_per_s", "image_size", "patch_grid", "train_examples",
    "datasets", "protocol",
)  # fmt: skip
STATES = ("done", "failed", "running", "interrupted", "pending")


def study_dir(root: Path, study: str, preset: str) -> Path:
    return Path(root) / study / preset


def run_dir(root: Path, study: str, preset: str, cfg: RunConfig) -> Path:
    return study_dir(root, study, preset) / run_id(cfg)


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target:
    a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode())


def read_json(path: Path) -> dict[str, Any] | None:
    """The parsed file, or None when it is missing or unreadable (a corrupt file warns)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        warnings.warn(f"ignoring corrupt file {path}", stacklevel=2)
        return None
    return data if isinstance(data, dict) else None


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Replace a JSON-lines file atomically (used to drop records past a resume point)."""
    write_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All complete records; a torn last line (a run killed mid-write) is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


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


def read_result(path: Path) -> dict[str, Any] | None:
    """The run's result if it is complete. A damaged result.json (truncated, or not a result)
    warns and counts as absent, so the run is trained again rather than reported half-written."""
    result = read_json(path / RESULT)
    if result is None:
        return None
    if result.get("status") != "done" or not isinstance(result.get("metrics"), dict):
        warnings.warn(f"ignoring incomplete result {path / RESULT}", stacklevel=2)
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


def run_info(path: Path, now: float | None = None) -> dict[str, Any]:
    """What `vitbench status` shows for one run: state, progress, time spent in attempts, how
    often it was requeued (preemption, time limit) or killed (kill -9, node failure, scancel:
    an earlier attempt that recorded no end), and who is training it or why it failed."""
    now = time.time() if now is None else now
    state = status(path)
    progress = read_json(path / PROGRESS) or {}
    result = read_result(path) or {}
    attempts = (read_json(path / META) or {}).get("attempts", [])
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
        "attempts": len(attempts),
        "requeued": sum(a.get("outcome") == "requeued" for a in attempts),
        # The last attempt of a running, done or failed run was not killed, whatever it recorded.
        "killed": sum("end" not in a for a in (attempts if state == "interrupted" else attempts[:-1])),
        "error": (read_json(path / FAILED) or {}).get("error") if state == "failed" else None,
        "owner": locks.holder(path) if state == "running" else None,
    }


def _run_dirs(root: Path, study: str, preset: str) -> list[Path]:
    base = study_dir(root, study, preset)
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and (p / CONFIG).exists())


def load_results(root: Path, study: str, preset: str) -> pd.DataFrame:
    """One row per finished run: run_id, flattened config columns, and every final metric."""
    rows = []
    for path in _run_dirs(root, study, preset):
        result = read_result(path)
        config = read_json(path / CONFIG)
        if result is None or config is None:
            continue
        row: dict[str, Any] = {"run_id": path.name, **flatten(from_dict(config))}
        row.update(result.get("metrics", {}))
        row.update({key: result.get(key) for key in RESULT_COLUMNS})
        rows.append(row)
    return pd.DataFrame(rows)


def load_curves(root: Path, study: str, preset: str) -> pd.DataFrame:
    """Evaluation records logged during training (kind == "eval"), one row per (run, step)."""
    rows = []
    for path in _run_dirs(root, study, preset):
        if read_result(path) is None:
            continue
        config = flatten(from_dict(read_json(path / CONFIG)))
        for rec in read_jsonl(path / METRICS):
            if rec.get("kind") == "eval":
                rows.append({"run_id": path.name, **config, **rec})
    return pd.DataFrame(rows)


def load_runs(root: Path, study: str, preset: str) -> pd.DataFrame:
    """Every run folder with its status, progress, failure reason and metadata (for reports)."""
    rows = []
    for path in _run_dirs(root, study, preset):
        info = run_info(path)
        rows.append(
            {
                "run_id": path.name,
                "status": info["state"],
                "step": info["step"],
                "steps": info["steps"],
                "wall_s": info["wall_s"] if info["wall_s"] is not None else info["elapsed_s"],
                "error": info["error"],
                "attempts": info["attempts"],
                **flatten(from_dict(read_json(path / CONFIG))),
            }
        )
    return pd.DataFrame(rows)


def load_meta(root: Path, study: str, preset: str) -> list[dict[str, Any]]:
    return [m for p in _run_dirs(root, study, preset) if (m := read_json(p / META)) is not None]
