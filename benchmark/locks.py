"""Claim a run so that no two processes ever train it at once, and see who is training it.

A claim is the file `lock.json` in the run's folder, created with O_CREAT|O_EXCL (atomic on local
filesystems and on NFSv3+), holding the owner's pid, host, process start time, Slurm job id and
a random token. While it is held, a thread touches it every `HEARTBEAT_S` seconds. A claim is
stale, and the next process to want the run breaks it, when its owner is visibly gone:

- on this host: the pid is dead, a zombie, or now belongs to a younger process (pid reuse);
- in the same Slurm job: Slurm runs one instance of a job at a time, so a claim left by an
  earlier instance of our own job (killed before a requeue: another SLURM_RESTART_COUNT) is
  dead whatever its host;
- on another host: its heartbeat is older than `stale_after_s()` (VITBENCH_LOCK_STALE_S,
  default 300 s), since a remote pid cannot be checked.

Breaking a stale claim is itself serialised by a second O_EXCL file, so two processes that find
the same stale claim cannot both end up holding the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Any

LOCK = "lock.json"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0
BREAKER_STALE_S = 30.0  # a process dies within ms of taking the breaker; older ones are debris
UNWRITTEN_GRACE_S = 10.0  # a claim file still empty this long after creation is debris


def stale_after_s() -> float:
    """Heartbeat age after which another host's claim is presumed dead (env VITBENCH_LOCK_STALE_S)."""
    return float(os.environ.get("VITBENCH_LOCK_STALE_S", STALE_AFTER_S))


def slurm_job() -> str | None:
    """This process's Slurm job as `<array id>_<index>` or `<job id>`; stable across requeues."""
    array, index = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and index:
        return f"{array}_{index}"
    return os.environ.get("SLURM_JOB_ID")


def slurm_restart() -> int:
    """How many times Slurm has requeued this job: which instance of it this process belongs to."""
    return int(os.environ.get("SLURM_RESTART_COUNT", 0))


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; split after the command name, which may itself contain spaces and parentheses.
    return int(stat.rsplit(")", 1)[1].split()[19])


def pid_alive(pid: int, start: int | None = None) -> bool:
    """Whether `pid` runs on this host (not a zombie) and, if `start` is given, is that process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: trust kill(0)
    if state in ("Z", "X"):
        return False
    return start is None or process_start(pid) == start


def owner_record() -> dict[str, Any]:
    """Who this process is, as written into claims (and into the study's job records)."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "proc_start": process_start(os.getpid()),
        "slurm_job": slurm_job(),
        "slurm_restart": slurm_restart(),
        "time": time.time(),
    }


def _read(path: Path) -> tuple[dict[str, Any] | None, float | None]:
    """The claim's content and mtime (the heartbeat); (None, mtime) for a file not yet written."""
    try:
        mtime = path.stat().st_mtime
        text = path.read_text()
    except FileNotFoundError:
        return None, None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None, mtime
    return (data if isinstance(data, dict) else None), mtime


def is_stale(owner: dict[str, Any] | None, mtime: float, now: float | None = None) -> bool:
    """Whether a claim with this content and heartbeat may be broken (see the module doc)."""
    now = time.time() if now is None else now
    if owner is None:  # created but never written: its creator died between open and write
        return now - mtime > UNWRITTEN_GRACE_S
    job = slurm_job()
    if job is not None and owner.get("slurm_job") == job and owner.get("slurm_restart") != slurm_restart():
        return True
    if owner.get("host") == socket.gethostname():
        return not pid_alive(int(owner.get("pid", -1)), owner.get("proc_start"))
    return now - mtime > stale_after_s()


def holder(run_dir: Path) -> dict[str, Any] | None:
    """The live owner of the run's claim, with its heartbeat time, or None if nobody holds it."""
    owner, mtime = _read(Path(run_dir) / LOCK)
    if mtime is None or is_stale(owner, mtime):
        return None
    return {**(owner or {}), "heartbeat": mtime}


class Claim:
    """`with Claim(run_dir) as claim:` — `claim.held` says whether this process now owns the run;
    if not, `claim.owner` is whoever does. Released on exit, including on exceptions."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK
        self.held = False
        self.owner: dict[str, Any] | None = None
        self.lost = False  # set by the heartbeat if someone broke our claim (we were presumed dead)
        self._token = secrets.token_hex(8)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Claim:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):  # second try: after breaking a stale claim
            if self._create():
                self.held = True
                self._thread = threading.Thread(target=self._beat, name=f"claim {self.path}", daemon=True)
                self._thread.start()
                return True
            owner, mtime = _read(self.path)
            if mtime is None:
                continue  # released in between: try again
            if not is_stale(owner, mtime):
                self.owner = owner or {"host": "?", "pid": "?", "note": "claim being written"}
                return False
            self._break(owner)
        self.owner = _read(self.path)[0] or {"host": "?", "pid": "?"}
        return False

    def release(self) -> None:
        if not self.held:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        owner, _ = _read(self.path)
        if owner is not None and owner.get("token") == self._token:
            self.path.unlink(missing_ok=True)
        self.held = False

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump({**owner_record(), "token": self._token}, f)
            f.flush()
            os.fsync(f.fileno())
        return True

    def _break(self, seen: dict[str, Any] | None) -> None:
        """Remove a stale claim, unless it changed since we judged it (someone else broke it and
        claimed the run meanwhile). Only one process breaks a given claim at a time."""
        breaker = self.path.with_name(LOCK + ".break")
        try:
            os.close(os.open(breaker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            try:
                if time.time() - breaker.stat().st_mtime > BREAKER_STALE_S:
                    breaker.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            return
        try:
            owner, mtime = _read(self.path)
            if mtime is not None and owner == seen and is_stale(owner, mtime):
                self.path.unlink(missing_ok=True)
        finally:
            breaker.unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            owner, _ = _read(self.path)
            if owner is None or owner.get("token") != self._token:
                self.lost = True
                warnings.warn(f"lost the claim on {self.path.parent}: another process took it", stacklevel=1)
                return
            with contextlib.suppress(OSError):  # one missed heartbeat does not make a claim stale
                os.utime(self.path)
