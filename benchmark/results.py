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

import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

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
    "datasets", "protocol", "selected_step",
)  # fmt: skip
STATES = ("done", "failed", "running", "interrupted", "pending")


def study_dir(root: Path, study: str, preset: str) -> Path:
    return Path(root) / study / preset


def run_dir(root: Path, study: str, preset: str, cfg: RunConfig) -> Path:
    return study_dir(root, study, preset) / run_id(cfg)


def _umask() -> int:
    """The process's umask, read without changing it (os.umask can only set it) where /proc says."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes | Callable[[BinaryIO], None]) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target: a reader
    sees the old file or the new one, never half of one. `data` is the bytes, or a function that
    writes them to the open file (a checkpoint, streamed). The file gets the mode open() would
    give it (the umask applies: collaborators can read results), not mkstemp's 0600. A run folder
    this process claimed is written only while it still holds the claim (locks.check_held)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # Held until the file is renamed or this process dies: how `sweep_abandoned` tells a
        # writer's temporary file from one a killed writer left behind.
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                try:
                    data(f)
                except RuntimeError as exc:
                    # torch.save reports a failed write as "unexpected pos"; the OSError it hit
                    # (a full disk, say) is the root cause, and the one worth naming.
                    if isinstance(exc.__context__, OSError):
                        raise exc.__context__ from None
                    raise
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        locks.check_held(path.parent)  # a run taken over by another process is no longer ours to write
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_torch(path: Path, obj: Any) -> None:
    """torch.save, atomically (see write_atomic); torch is imported only by the writers."""
    import torch

    write_atomic(path, lambda f: torch.save(obj, f))


def sweep_temporary(folder: Path) -> list[str]:
    """Remove temporary files a killed writer left in a run folder (call while holding its claim,
    or where nobody else writes it); returns their names."""
    swept = []
    for tmp in Path(folder).glob("*.tmp"):
        tmp.unlink(missing_ok=True)
        swept.append(tmp.name)
    return swept


ABANDONED_AFTER_S = 10.0  # a writer locks its temporary file within microseconds of creating it


def sweep_abandoned(folder: Path) -> list[str]:
    """Remove the temporary files of `write_atomic` calls whose writer died (a folder several
    processes write, such as the data cache): a file nobody holds locked, older than a few
    seconds. Returns their names; a folder that cannot be read or written is left as it is."""
    swept = []
    try:
        candidates = list(Path(folder).glob(".*.tmp"))
    except OSError:
        return swept
    for tmp in candidates:
        try:
            with open(tmp, "rb") as f:
                if time.time() - os.fstat(f.fileno()).st_mtime < ABANDONED_AFTER_S:
                    continue
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a live writer holds it
                tmp.unlink()
                swept.append(tmp.name)
        except OSError:
            continue
    return swept


OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)
READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def storage_error(exc: BaseException, folder: Path | None = None) -> str | None:
    """ "no space" or "read-only" when `exc` (or what it was raised from) is the filesystem
    refusing a write (a read-only one only for a file in `folder`, if given); else None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError):
            if seen.errno in OUT_OF_SPACE:
                return "no space"
            inside = folder is None or (
                seen.filename is not None
                and Path(str(seen.filename)).resolve().is_relative_to(Path(folder).resolve())
            )
            if seen.errno in READ_ONLY and inside:
                return "read-only"
        seen = seen.__cause__ or seen.__context__
    return None


def error_line(exc: BaseException) -> str:
    """The root cause's last line, as "Type: message": the innermost exception `exc` was raised
    from (`raise ... from`), e.g. the error a job hit rather than the wrapper that reported it."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1].strip()}" if lines else type(exc).__name__


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
    locks.check_held(path.parent)
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


def adopt(source: Path, path: Path) -> bool:
    """Take another study's finished run of the same config (the same id) as this study's: its folder
    hard-linked (copied across file systems) under a temporary name, then renamed into place, so a
    run is either wholly there or not. Finished runs are never written again, so sharing their files
    is safe. Returns whether it adopted one."""
    if path.exists() or read_result(source) is None:
        return False
    tmp = path.with_name(f".adopting-{path.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, copy_function=_link_or_copy, ignore=shutil.ignore_patterns(locks.LOCK, ".*"))
    tmp.rename(path)
    return True


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


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


def start_attempt(run_dir: Path, env: dict[str, Any]) -> dict[str, Any]:
    """Open a new attempt in meta.json and return the meta. Each attempt records what it ran on:
    revision, dirty flag, host, device, threads, torch version, job and claim; an attempt that
    resumes under another revision or thread count warns (here and in metrics.jsonl), since a
    run is bitwise reproducible only when neither changes. Temporary files a killed attempt left
    behind are swept first. `env` is environment.collect() plus "threads"."""
    sweep_temporary(run_dir)
    meta = read_json(run_dir / META) or {"attempts": []}
    meta.update(env)
    attempt = {
        "start": time.time(),
        "host": env["host"],
        "pid": env["pid"],
        "slurm_job_id": env["slurm_job_id"],
        "revision": env["git"]["revision"],
        "dirty": env["git"]["dirty"],
        "device": env["device"],
        "threads": env["threads"],
        "torch": env["versions"]["torch"],
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


def mixed_history(attempts: Sequence[dict[str, Any]]) -> str | None:
    """How a run's attempts differ in code or threads, e.g. "revisions 1a2b3c4d→5e6f7a8b+dirty;
    threads 1→2", or None if they agree (attempts that did not record a value are left out)."""
    parts = []
    for name, value in (("revisions", _revision), ("threads", lambda a: a.get("threads"))):
        seen: list[Any] = []
        for attempt in attempts:
            if (v := value(attempt)) is not None and (not seen or seen[-1] != v):
                seen.append(v)
        if len(seen) > 1:
            parts.append(f"{name} {'→'.join(map(str, seen))}")
    return "; ".join(parts) or None


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


def _check_record(path: Path, cfg: RunConfig) -> str | None:
    """Make the run folder's config.json agree with the declared `cfg`, whose hash is the folder's
    name: a missing or unreadable one is rewritten from it; one that declares another config
    (a copied or edited folder) cannot be trusted, and the folder is moved aside, out of every
    view, so the run counts as not started. Returns the warning to give, if any."""
    try:
        stored = json.loads((path / CONFIG).read_text())
    except FileNotFoundError:
        stored, problem = None, "was missing"
    except (json.JSONDecodeError, UnicodeDecodeError):
        stored, problem = None, "was unreadable"
    else:
        problem = None
    if stored is not None and json.dumps(stored, sort_keys=True, separators=(",", ":")) == canonical_json(
        cfg
    ):
        return None
    if stored is None:
        write_json(path / CONFIG, json.loads(canonical_json(cfg)))
        return f"{path}: config.json {problem}; rewritten from the study's declaration (its hash is the folder's name)"
    aside = path.with_name(f".set-aside-{path.name}-{int(time.time())}")
    if locks.holder(path) is not None:
        return f"{path}: config.json declares another run than its folder's name; left out (a process is training it)"
    path.rename(aside)
    return f"{path}: config.json declares another run than its folder's name; moved aside to {aside.name}"


def scan(root: Path, study: str, variant: str, expected: Sequence[RunConfig]) -> StudyRecords:
    """One read of a study variant's run folders, for `status` and the report alike: the
    declared runs only (a folder that matches none may be another variant's), each record
    repaired or set aside (see `_check_record`) instead of breaking the study."""
    base = study_dir(root, study, variant)
    results, curves, runs, metas, notes = [], [], [], [], []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for cfg in expected:
            path = base / run_id(cfg)
            if path.is_dir() and (note := _check_record(path, cfg)):
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
        if stored is not None and path.name == run_id(cfg := from_dict(stored)):
            configs.append(cfg)
    return configs


def load_results(root: Path, study: str, preset: str) -> pd.DataFrame:
    """One row per finished run of whatever configs the run folders hold (not what a study
    declares): for looking at a results folder without its study, e.g. in tests and notebooks."""
    return scan(root, study, preset, _stored_configs(root, study, preset)).results
