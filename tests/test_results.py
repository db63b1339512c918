"""The storage layer: the one scan of a study's records (repairing or setting aside damaged
ones), atomic writes that respect the umask, temporary files swept, an attempt's history, and
storage errors named as such."""

import errno
import json
import os
import stat

import pytest

from benchmark import results
from benchmark.config import RunConfig, canonical_json, run_id
from benchmark.results import CONFIG, META, METRICS, RESULT, run_dir, scan

RUNS = [RunConfig(seed=seed) for seed in range(4)]


def finished(root, cfg, accuracy: float):
    """A run folder as train.run leaves a finished run (the storage layer needs no training)."""
    path = run_dir(root, "s", "v", cfg)
    path.mkdir(parents=True)
    (path / CONFIG).write_text(canonical_json(cfg))
    results.write_json(path / RESULT, {"status": "done", "metrics": {"top1": accuracy}, "end": 1.0})
    return path


def test_scan_repairs_missing_and_truncated_configs_and_sets_aside_a_foreign_one(tmp_path):
    paths = [finished(tmp_path, cfg, 0.5 + i / 10) for i, cfg in enumerate(RUNS[:3])]
    (paths[0] / CONFIG).unlink()  # deleted
    (paths[1] / CONFIG).write_text(canonical_json(RUNS[1])[:40])  # truncated
    (paths[2] / CONFIG).write_text(canonical_json(RUNS[3]))  # another run's config: not trustworthy
    other_variant = tmp_path / "s" / "v" / run_id(RunConfig(seed=99))
    other_variant.mkdir()
    records = scan(tmp_path, "s", "v", RUNS)
    assert sorted(records.results["run_id"]) == sorted(p.name for p in paths[:2])
    assert [json.loads((p / CONFIG).read_text()) for p in paths[:2]] == [
        json.loads(canonical_json(cfg)) for cfg in RUNS[:2]
    ]
    runs = records.runs.set_index("run_id")["status"]
    assert list(runs) == ["done", "done", "pending", "pending"]  # every declared run, in order
    assert "missing" in records.warnings[0] and "unreadable" in records.warnings[1]
    assert "moved aside" in records.warnings[2] and not paths[2].exists()
    assert other_variant.exists() and other_variant.name not in set(records.runs["run_id"])
    again = scan(tmp_path, "s", "v", RUNS)  # repaired for good: a second scan agrees, silently
    assert again.warnings == [] and list(again.runs["status"]) == list(runs)
    assert [results.status(run_dir(tmp_path, "s", "v", cfg)) for cfg in RUNS] == list(runs)


def test_atomic_writes_respect_the_umask(tmp_path):
    for umask, mode in ((0o022, 0o644), (0o002, 0o664)):
        old = os.umask(umask)
        try:
            results.write_json(tmp_path / f"{umask}.json", {})
        finally:
            os.umask(old)
        assert stat.S_IMODE((tmp_path / f"{umask}.json").stat().st_mode) == mode


def env(threads: int, revision: str = "a" * 40) -> dict:
    return {
        "host": "h",
        "pid": 1,
        "slurm_job_id": None,
        "git": {"revision": revision, "dirty": False},
        "device": "cpu",
        "threads": threads,
        "versions": {"torch": "2.x"},
    }


def test_an_attempt_records_its_conditions_sweeps_temporaries_and_warns_when_they_change(tmp_path):
    (tmp_path / ".progress.json.k1ll3d.tmp").write_text("{half")
    results.start_attempt(tmp_path, env(threads=1))
    assert not list(tmp_path.glob("*.tmp"))
    assert results.run_info(tmp_path)["mixed"] is None
    with pytest.warns(UserWarning, match="revisions aaaaaaaa→bbbbbbbb; threads 1→2"):
        results.start_attempt(tmp_path, env(threads=2, revision="b" * 40))
    [first, second] = json.loads((tmp_path / META).read_text())["attempts"]
    assert (first["threads"], second["threads"], second["revision"], second["torch"]) == (
        1,
        2,
        "b" * 40,
        "2.x",
    )
    assert results.run_info(tmp_path)["mixed"] == "revisions aaaaaaaa→bbbbbbbb; threads 1→2"
    [warning] = results.read_jsonl(tmp_path / METRICS)
    assert warning["kind"] == "warning" and "threads 1→2" in warning["message"]


def test_storage_errors_are_named_by_their_root_cause(tmp_path):
    full = OSError(errno.ENOSPC, "No space left on device")
    try:
        try:
            raise full
        except OSError as exc:
            raise RuntimeError(
                "[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"
            ) from exc
    except RuntimeError as wrapped:
        assert results.storage_error(wrapped) == "no space"
        assert results.error_line(wrapped) == "OSError: [Errno 28] No space left on device"
    read_only = PermissionError(errno.EROFS, "Read-only file system", str(tmp_path / "run" / "x"))
    assert results.storage_error(read_only, tmp_path / "run") == "read-only"
    assert results.storage_error(read_only, tmp_path / "elsewhere") is None  # e.g. a dataset file
    assert results.storage_error(ValueError("no")) is None
