"""The storage layer: the one scan of a study's records (repairing or setting aside damaged
ones), atomic writes that respect the umask, temporary files swept, an attempt's history, and
storage errors named as such."""

import errno
import json
import os
import stat

import pytest

from benchmark import results, storage
from benchmark.config import RunConfig, canonical_json, run_id
from benchmark.results import CONFIG, META, METRICS, RESULT, run_dir, scan

RUNS = [RunConfig(seed=seed) for seed in range(4)]


def finished(root, cfg, accuracy: float):
    """A run folder as train.run leaves a finished run (the storage layer needs no training)."""
    path = run_dir(root, "s", "v", cfg)
    path.mkdir(parents=True)
    (path / CONFIG).write_text(canonical_json(cfg))
    storage.write_json(path / RESULT, {"status": "done", "metrics": {"top1": accuracy}, "end": 1.0})
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
            storage.write_json(tmp_path / f"{umask}.json", {})
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
    [warning] = storage.read_jsonl(tmp_path / METRICS)
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
        assert storage.storage_error(wrapped) == "no space"
        assert storage.error_line(wrapped) == "OSError: [Errno 28] No space left on device"
    read_only = PermissionError(errno.EROFS, "Read-only file system", str(tmp_path / "run" / "x"))
    assert storage.storage_error(read_only, tmp_path / "run") == "read-only"
    assert storage.storage_error(read_only, tmp_path / "elsewhere") is None  # e.g. a dataset file
    assert storage.storage_error(ValueError("no")) is None


def trained(path, cfg, seed: int = 0, weights_record: bool = True):
    """A finished run with real weights (torch.save) and, as train.run records it, their size and
    sha256 in result.json; `weights_record=False`: a run finished before that record was kept."""
    import torch

    path.mkdir(parents=True)
    (path / CONFIG).write_text(canonical_json(cfg))
    storage.save_torch(
        path / results.WEIGHTS, {"w": torch.randn(64, generator=torch.Generator().manual_seed(seed))}
    )
    (path / METRICS).write_text('{"kind": "eval", "step": 3, "top1": 0.5}\n')
    result = {"status": "done", "metrics": {"top1": 0.5}, "end": 1.0}
    if weights_record:
        result["weights"] = results.weights_record(path)
    storage.write_json(path / RESULT, result)
    return path


def flip_a_byte(path, offset: int = -100):
    blob = bytearray(path.read_bytes())
    blob[offset] ^= 0x01
    path.write_bytes(bytes(blob))


@pytest.mark.parametrize("damage", ["deleted", "truncated", "edited in place"])
def test_a_run_is_done_only_while_its_weights_match_their_record(tmp_path, damage):
    path = trained(tmp_path / "run", RUNS[0])
    assert results.status(path) == "done"
    weights = path / results.WEIGHTS
    if damage == "deleted":
        weights.unlink()
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:-10])
    else:
        flip_a_byte(weights)  # same size, same mtime a second later: only the hash tells
    with pytest.warns(UserWarning, match=f"{results.WEIGHTS} .*the run counts as not finished"):
        assert results.read_result(path) is None
        assert results.status(path) != "done"  # trained again (pending here: no meta.json)


def test_a_run_finished_before_the_weights_record_stays_readable(tmp_path):
    path = trained(tmp_path / "run", RUNS[0], weights_record=False)
    assert results.status(path) == "done" and "weights" not in results.read_result(path)


def test_an_adopted_run_is_a_copy_that_the_source_can_no_longer_change(tmp_path):
    """REUSE adopted by hard links before: an edit of the source's model.pt changed the adopter's
    report, a write to the adopter's result.json unfinished the source, and the adopter's retraining
    appended to the source's metrics.jsonl. A copy shares nothing."""
    source = trained(tmp_path / "pos_embed" / "v" / run_id(RUNS[0]), RUNS[0])
    mine = tmp_path / "inspect" / "v" / run_id(RUNS[0])
    assert results.adopt(source, mine) and results.status(mine) == "done"
    assert json.loads((mine / results.ADOPTED).read_text())["source"] == str(source.resolve())
    for name in (RESULT, results.WEIGHTS, METRICS, CONFIG):
        assert (mine / name).read_bytes() == (source / name).read_bytes()
        assert (mine / name).stat().st_ino != (source / name).stat().st_ino
    flip_a_byte(source / results.WEIGHTS)  # the source's weights edited in place: not the copy's
    with pytest.warns(UserWarning, match="does not match its recorded sha256"):
        assert results.status(source) != "done"
    assert results.status(mine) == "done"
    other = trained(tmp_path / "pos_embed" / "v" / run_id(RUNS[1]), RUNS[1], seed=1)
    theirs = tmp_path / "inspect" / "v" / run_id(RUNS[1])
    assert results.adopt(other, theirs)
    storage.append_jsonl(theirs / METRICS, {"kind": "warning", "message": "the adopter's only"})
    (theirs / RESULT).write_text("x")  # `echo x > inspect/.../result.json`
    assert results.status(other) == "done" and len(storage.read_jsonl(other / METRICS)) == 1
    with pytest.warns(UserWarning, match="corrupt"):
        assert results.status(theirs) != "done"
    assert not results.adopt(source, tmp_path / "third")  # a source that fails to verify is never adopted


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_a_source_without_a_weights_record_is_adopted_only_if_its_weights_pass_their_crcs(tmp_path, damage):
    good = trained(tmp_path / "s" / "good", RUNS[0], weights_record=False)
    assert results.adopt(good, tmp_path / "t" / "good")
    # The copy records its weights, as a new run does: from now on they are verified.
    assert results.read_result(tmp_path / "t" / "good")["weights"] == results.weights_record(good)
    bad = trained(tmp_path / "s" / "bad", RUNS[1], seed=1, weights_record=False)
    if damage == "truncated":
        (bad / results.WEIGHTS).write_bytes((bad / results.WEIGHTS).read_bytes()[:-200])
    else:
        (bad / results.WEIGHTS).unlink()
    with pytest.warns(UserWarning, match="not adopted"):
        assert not results.adopt(bad, tmp_path / "t" / "bad")
    assert results.status(tmp_path / "t" / "bad") == "pending"


def test_a_run_from_a_released_checkpoint_is_adopted_by_its_pinned_file_having_no_weights_of_its_own(
    tmp_path,
):
    """data_scaling's released control runs are few_shot's too: such a run writes no model.pt (its
    weights are the checkpoint's file, named by its sha256 in the result), and is adopted as it is."""
    source = tmp_path / "data_scaling" / "v" / run_id(RUNS[0])
    source.mkdir(parents=True)
    (source / CONFIG).write_text(canonical_json(RUNS[0]))
    record = {
        "name": "vit_base_patch32_224.orig_in21k",
        "file": "/w/B32.npz",
        "sha256": "ab" * 32,
        "format": "npz",
    }
    storage.write_json(
        source / RESULT, {"status": "done", "metrics": {"top1": 0.5}, "end": 1.0, "released": record}
    )
    mine = tmp_path / "few_shot" / "v" / run_id(RUNS[0])
    assert results.adopt(source, mine) and results.status(mine) == "done"
    assert (mine / RESULT).read_bytes() == (source / RESULT).read_bytes() and not (
        mine / results.WEIGHTS
    ).exists()


def garbage(path, kind: str) -> None:
    """The damage an unlucky user left where a run's folder is."""
    if kind == "a plain file where the run folder should be":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not a folder")
    elif kind == "a directory named config.json":
        (path / CONFIG).mkdir(parents=True)
    elif kind == "a directory named result.json":
        path.mkdir(parents=True)
        (path / CONFIG).write_text(canonical_json(RUNS[0]))
        (path / RESULT).mkdir()
    elif kind == "result.json starting with byte 0xff":
        path.mkdir(parents=True)
        (path / CONFIG).write_text(canonical_json(RUNS[0]))
        (path / RESULT).write_bytes(b"\xff\xfe{}")


GARBAGE = (
    "a plain file where the run folder should be",
    "a directory named config.json",
    "a directory named result.json",
    "result.json starting with byte 0xff",
)


@pytest.mark.parametrize("kind", GARBAGE)
def test_garbage_where_a_run_should_be_is_set_aside_with_one_warning_and_the_scan_goes_on(tmp_path, kind):
    good = finished(tmp_path, RUNS[1], 0.7)
    path = run_dir(tmp_path, "s", "v", RUNS[0])
    garbage(path, kind)
    records = scan(tmp_path, "s", "v", RUNS[:2])
    assert list(records.results["run_id"]) == [good.name]
    assert list(records.runs["status"]) in (["pending", "done"], ["interrupted", "done"])
    if kind.startswith("result.json starting"):  # damaged, not garbage: warns and counts as absent
        assert any("corrupt file" in w for w in records.warnings)
    else:
        [note] = records.warnings
        assert "moved aside" in note and not path.exists()
        assert list(path.parent.glob(f".set-aside-{path.name}-*"))


def test_duplicate_configs_are_one_run_to_the_scan(tmp_path):
    finished(tmp_path, RUNS[0], 0.5)
    records = scan(tmp_path, "s", "v", [RUNS[0], RUNS[0], RUNS[0]])
    assert len(records.results) == 1 and len(records.runs) == 1


def test_attempts_on_different_cpus_are_a_mixed_history():
    """A resumed run is bitwise the same only on the same CPU and math libraries: each attempt
    records its CPU, and a run trained across two is said to be."""
    from benchmark.results import mixed_history

    same = [{"cpu": {"model": "Xeon A"}, "threads": 1}, {"cpu": {"model": "Xeon A"}, "threads": 1}]
    assert mixed_history(same) is None
    assert mixed_history([same[0], {"cpu": {"model": "EPYC B"}, "threads": 1}]) == "CPUs Xeon A→EPYC B"
    assert mixed_history([same[0], {"threads": 1}]) is None  # an attempt that recorded none is left out
