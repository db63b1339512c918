"""Run directories, atomic writes, run status, and loading a study's results as a DataFrame.

Layout: results/<study>/<preset>/<run_id>/
  config.json    the canonical run config (written first)
  meta.json      versions, device, git revision, host, job ids, start time
  metrics.jsonl  one JSON object per line: training logs and evaluations
  progress.json  the latest step/loss/throughput (what progress bars and `status` read)
  checkpoint.pt  while training (weights_only-loadable)
  failed.json    error and traceback of a run that failed
  result.json    the final metrics, written last and atomically: the only "done" marker
A study's status is derived from these files alone; nothing is ever parsed out of logs.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.config import RunConfig, canonical_json, flatten, from_dict, run_id

CONFIG, META, METRICS, PROGRESS = "config.json", "meta.json", "metrics.jsonl", "progress.json"
CHECKPOINT, FAILED, RESULT = "checkpoint.pt", "failed.json", "result.json"


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


def status(path: Path) -> str:
    """done | failed | started | pending, from the files alone."""
    if read_json(path / RESULT) is not None:
        return "done"
    if read_json(path / FAILED) is not None:
        return "failed"
    if (path / PROGRESS).exists() or (path / CHECKPOINT).exists():
        return "started"
    return "pending"


def _run_dirs(root: Path, study: str, preset: str) -> list[Path]:
    base = study_dir(root, study, preset)
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and (p / CONFIG).exists())


def load_results(root: Path, study: str, preset: str) -> pd.DataFrame:
    """One row per finished run: run_id, flattened config columns, and every final metric."""
    rows = []
    for path in _run_dirs(root, study, preset):
        result = read_json(path / RESULT)
        config = read_json(path / CONFIG)
        if result is None or config is None:
            continue
        row: dict[str, Any] = {"run_id": path.name, **flatten(from_dict(config))}
        row.update(result.get("metrics", {}))
        for key in ("wall_s", "train_flops", "params", "train_images_per_s"):
            row[key] = result.get(key)
        rows.append(row)
    return pd.DataFrame(rows)


def load_curves(root: Path, study: str, preset: str) -> pd.DataFrame:
    """Evaluation records logged during training (kind == "eval"), one row per (run, step)."""
    rows = []
    for path in _run_dirs(root, study, preset):
        if read_json(path / RESULT) is None:
            continue
        config = flatten(from_dict(read_json(path / CONFIG)))
        for rec in read_jsonl(path / METRICS):
            if rec.get("kind") == "eval":
                rows.append({"run_id": path.name, **config, **rec})
    return pd.DataFrame(rows)


def load_runs(root: Path, study: str, preset: str) -> pd.DataFrame:
    """Every run folder with its status, progress, failure reason and metadata (for `status`)."""
    rows = []
    for path in _run_dirs(root, study, preset):
        progress = read_json(path / PROGRESS) or {}
        failed = read_json(path / FAILED) or {}
        result = read_json(path / RESULT) or {}
        rows.append(
            {
                "run_id": path.name,
                "status": status(path),
                "step": progress.get("step"),
                "steps": progress.get("steps"),
                "wall_s": result.get("wall_s", progress.get("elapsed_s")),
                "error": failed.get("error"),
                **flatten(from_dict(read_json(path / CONFIG))),
            }
        )
    return pd.DataFrame(rows)


def load_meta(root: Path, study: str, preset: str) -> list[dict[str, Any]]:
    return [m for p in _run_dirs(root, study, preset) if (m := read_json(p / META)) is not None]
