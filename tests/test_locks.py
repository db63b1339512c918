"""Run claims: who may train a run, when a claim is stale, and the fence that stops a process
from writing a run once another has taken it over."""

import json
import multiprocessing
import os
import subprocess
import time
from pathlib import Path

import pytest

from benchmark import locks
from benchmark.results import METRICS, RESULT
from benchmark.storage import append_jsonl, write_json


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def write_claim(run_dir: Path, age_s: float = 0.0, **owner) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / locks.LOCK
    path.write_text(json.dumps({**locks.owner_record(), "token": "someone", **owner}))
    os.utime(path, (time.time() - age_s, time.time() - age_s))
    return path


def test_a_claim_excludes_others_until_released(tmp_path):
    with locks.Claim(tmp_path) as first:
        assert first.held and (tmp_path / locks.LOCK).exists()
        with locks.Claim(tmp_path) as second:
            assert not second.held and second.owner["pid"] == os.getpid()
        assert locks.holder(tmp_path)["pid"] == os.getpid()
    assert not (tmp_path / locks.LOCK).exists() and locks.holder(tmp_path) is None
    with locks.Claim(tmp_path) as third:
        assert third.held


@pytest.mark.parametrize(
    ("owner", "age_s", "stale"),
    [
        ({}, 0, False),  # this very process: alive
        ({"pid": "dead"}, 0, True),  # its pid is gone
        ({"proc_start": -1}, 0, True),  # our pid, but another process's start time: pid reuse
        ({}, 400, True),  # alive but silent past the limit: hung or paused, fenced off
        ({"pid": "dead", "pid_ns": 1}, 10, False),  # another PID namespace: its pid means nothing here
        ({"pid": "dead", "boot_id": "an-earlier-boot"}, 10, False),  # (the same: judged by heartbeat)
        ({"pid": "dead", "pid_ns": 1}, 400, True),  # ... and its heartbeat stopped
        ({"host": "elsewhere"}, 10, False),  # another host with a fresh heartbeat
        ({"host": "elsewhere"}, 400, True),  # another host whose heartbeat stopped
        ({"host": "elsewhere", "slurm_job": "7_1", "slurm_restart": 0}, 10, True),  # our job, earlier life
        ({"host": "elsewhere", "slurm_job": "7_1", "slurm_restart": 1}, 10, False),  # our job, this life
    ],
)
def test_stale_claims_are_recognised(owner, age_s, stale, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "7")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    monkeypatch.setenv("VITBENCH_LOCK_STALE_S", "300")
    if owner.get("pid") == "dead":
        owner = {**owner, "pid": dead_pid()}
    write_claim(tmp_path, age_s=age_s, **owner)
    assert (locks.holder(tmp_path) is None) == stale
    with locks.Claim(tmp_path) as claim:
        assert claim.held == stale
        record = json.loads((tmp_path / locks.LOCK).read_text())
        assert (record["token"] != "someone") == stale
        assert claim.generation == (2 if stale else 1)  # a takeover bumps the generation


def test_the_stale_limit_comes_from_the_environment_and_the_heartbeat_follows(monkeypatch):
    monkeypatch.setenv("VITBENCH_LOCK_STALE_S", "2")
    assert locks.stale_after_s() == 2 and locks.heartbeat_s() == 0.5
    monkeypatch.delenv("VITBENCH_LOCK_STALE_S")
    assert locks.stale_after_s() == locks.STALE_AFTER_S and locks.heartbeat_s() == locks.HEARTBEAT_S


def test_a_claim_file_not_yet_written_is_held_briefly_then_broken(tmp_path):
    (tmp_path / locks.LOCK).write_text("")
    with locks.Claim(tmp_path) as claim:
        assert not claim.held
    old = time.time() - 2 * locks.UNWRITTEN_GRACE_S
    os.utime(tmp_path / locks.LOCK, (old, old))
    with locks.Claim(tmp_path) as claim:
        assert claim.held


def test_heartbeat_refreshes_and_notices_a_lost_claim(tmp_path, monkeypatch):
    monkeypatch.setattr(locks, "HEARTBEAT_S", 0.05)
    with locks.Claim(tmp_path) as claim:
        path = tmp_path / locks.LOCK
        os.utime(path, (0, 0))
        deadline = time.time() + 10
        while path.stat().st_mtime == 0 and time.time() < deadline:
            time.sleep(0.02)
        assert path.stat().st_mtime > 0
        write_claim(tmp_path, host="elsewhere")  # someone presumed us dead and took the run
        with pytest.warns(UserWarning, match="lost the claim"):
            while not claim.lost and time.time() < deadline:
                time.sleep(0.02)
        assert claim.lost
    assert path.exists()  # release leaves the new owner's claim alone


def test_after_a_takeover_the_old_holder_cannot_write_the_run(tmp_path):
    """The fence: once lock.json holds another token, every write helper refuses (ClaimLost)
    and leaves the files, and no temporary, as the new holder has them; the loss is logged."""
    write_json(tmp_path / RESULT, {"by": "nobody yet"})
    with locks.Claim(tmp_path) as claim:
        write_json(tmp_path / "progress.json", {"step": 1})  # held: writes go through
        append_jsonl(tmp_path / METRICS, {"step": 1})
        write_claim(tmp_path, host="elsewhere", generation=2)  # the takeover
        with pytest.raises(locks.ClaimLost, match=r"pid .* on elsewhere \(generation 2\) took it over"):
            write_json(tmp_path / RESULT, {"by": "the old holder"})
        with pytest.raises(locks.ClaimLost):
            append_jsonl(tmp_path / METRICS, {"step": 2})
        assert claim.lost
    assert json.loads((tmp_path / RESULT).read_text()) == {"by": "nobody yet"}
    assert (tmp_path / METRICS).read_text().count("\n") == 1 and not list(tmp_path.glob("*.tmp"))
    [lost] = [json.loads(line) for line in (tmp_path / locks.CLAIMS).read_text().splitlines()]
    assert lost["event"] == "lost" and lost["token"] == claim.token
    assert locks.lost_claims(tmp_path) == {claim.token: lost["time"]}
    write_json(tmp_path / RESULT, {"by": "a process that never claimed it"})  # not fenced: no claim


def _race(run_dir: str, barrier, wins) -> None:
    barrier.wait()
    with locks.Claim(Path(run_dir)) as claim:
        if claim.held:
            wins.put(os.getpid())
            time.sleep(0.3)  # hold it while the others try


@pytest.mark.parametrize("start", ["free", "stale"])
def test_racing_processes_never_both_hold_a_run(start, tmp_path):
    """Eight processes claim one run at the same instant (over a stale claim: all of them try to
    break it at once): exactly one wins."""
    ctx = multiprocessing.get_context("fork")
    for attempt in range(3):
        run_dir = tmp_path / str(attempt)
        if start == "stale":
            write_claim(run_dir, pid=dead_pid())
        barrier, wins = ctx.Barrier(8), ctx.Queue()
        procs = [ctx.Process(target=_race, args=(str(run_dir), barrier, wins)) for _ in range(8)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=30)
            assert p.exitcode == 0
        winners = []
        while not wins.empty():
            winners.append(wins.get())
        assert len(winners) == 1, winners
