"""Claim a run so that no two processes ever train it at once, and see who is training it.

A claim is a lease: the file `lock.json` in the run's folder, created with O_CREAT|O_EXCL (atomic
on local filesystems and on NFSv3+), holding the owner's pid, host, boot id, PID namespace,
process start time, Slurm job, a random token and a generation. While it is held, a thread
renews it (touches the file) every `heartbeat_s()` seconds. A claim is stale, and the next
process to want the run breaks it and takes over with the next generation, when:

- its heartbeat is older than `stale_after_s()` (VITBENCH_LOCK_STALE_S, default 300 s, far longer
  than a training step or a checkpoint): the owner is dead, hung or paused, wherever it runs;
- or, at once, its pid is visibly gone: only where a pid means the same process to us (same
  host, same boot, same PID namespace), so kill -9 then a rerun on one machine stays fast while
  a container or a node that shares the host name is judged by its heartbeat alone;
- or it was left by an earlier instance of our own Slurm job (Slurm runs one at a time).

Fencing: a process that holds a claim registers it here, and the run's write helpers (results.py,
the checkpoint save) call `check_held(folder)` before each write; once another process has taken
the run over (our token is no longer in lock.json), that raises `ClaimLost`, and the holder
stops without writing: a paused process that wakes up after a takeover writes nothing more. The
residual window is the few microseconds between that check and the write itself.

Takeovers and lost claims are logged to the run's claims.jsonl, which only this module writes.
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
CLAIMS = "claims.jsonl"  # the lease's history: takeovers and lost claims
HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0
BREAKER_STALE_S = 30.0  # a process dies within ms of taking the breaker; older ones are debris
UNWRITTEN_GRACE_S = 10.0  # a claim file still empty this long after creation is debris


def stale_after_s() -> float:
    """Heartbeat age after which a claim is presumed dead (env VITBENCH_LOCK_STALE_S): what
    `vitbench status` says a killed run may show as running for."""
    return float(os.environ.get("VITBENCH_LOCK_STALE_S", STALE_AFTER_S))


def heartbeat_s() -> float:
    """How often a held claim is renewed: well inside the stale limit, however short it is set."""
    return min(HEARTBEAT_S, stale_after_s() / 4)


class ClaimLost(BaseException):
    """Another process took over a run this process held (it presumed us dead): stop at once and
    write nothing more. A BaseException so no `except Exception` carries on, and never recorded
    as the run's failure."""


_HELD: dict[Path, Claim] = {}  # the claims this process holds, by resolved run folder


def held_token(folder: Path) -> str | None:
    """The token of this process's claim on `folder` (recorded in the run's attempts), if any."""
    claim = _HELD.get(Path(folder).resolve())
    return claim.token if claim is not None else None


def check_held(folder: Path) -> None:
    """Raise ClaimLost if this process claimed `folder` and no longer holds it. A folder this
    process never claimed (a run trained directly, a study folder) is not checked."""
    claim = _HELD.get(Path(folder).resolve())
    if claim is not None and not claim.still_held():
        claim.lost = True
        holder_now = _read(claim.path)[0] or {}
        raise ClaimLost(
            f"lost the claim on {claim.path.parent}: pid {holder_now.get('pid', '?')} on "
            f"{holder_now.get('host', '?')} (generation {holder_now.get('generation', '?')}) took it over"
        )


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


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _pid_namespace() -> int | None:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def same_pid_space(owner: dict[str, Any]) -> bool:
    """Whether `owner`'s pid names a process we can check: same host, same boot, same PID
    namespace (a container sharing the host name, or a record without these, is not)."""
    here = (socket.gethostname(), _boot_id(), _pid_namespace())
    return None not in here[1:] and (owner.get("host"), owner.get("boot_id"), owner.get("pid_ns")) == here


def owner_record() -> dict[str, Any]:
    """Who this process is, as written into claims (and into the study's job records)."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "boot_id": _boot_id(),
        "pid_ns": _pid_namespace(),
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
    except (FileNotFoundError, NotADirectoryError):  # (no run folder: a file in its place)
        return None, None
    except (IsADirectoryError, UnicodeDecodeError):
        return None, mtime
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
    if same_pid_space(owner) and not pid_alive(int(owner.get("pid", -1)), owner.get("proc_start")):
        return True
    return now - mtime > stale_after_s()


def holder(run_dir: Path) -> dict[str, Any] | None:
    """The live owner of the run's claim, with its heartbeat time, or None if nobody holds it."""
    owner, mtime = _read(Path(run_dir) / LOCK)
    if mtime is None or is_stale(owner, mtime):
        return None
    return {**(owner or {}), "heartbeat": mtime}


class Claim:
    """`with Claim(run_dir) as claim:` — `claim.held` says whether this process now owns the run;
    if not, `claim.owner` is whoever does. While held, the run's writes are fenced by it (see
    `check_held`). Released on exit, including on exceptions."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK
        self.held = False
        self.owner: dict[str, Any] | None = None
        self.lost = False  # set once another process took the run over (it presumed us dead)
        self.token = secrets.token_hex(8)
        self.generation = 1  # one more than the claim it broke: a takeover bumps it
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
                _HELD[self.path.parent.resolve()] = self
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

    def still_held(self) -> bool:
        """Whether lock.json still carries our token (read from the file, not remembered)."""
        owner, _ = _read(self.path)
        return self.held and owner is not None and owner.get("token") == self.token

    def release(self) -> None:
        if not self.held:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        _HELD.pop(self.path.parent.resolve(), None)
        if self.still_held():
            self.path.unlink(missing_ok=True)
        else:
            self.lost = True
            self._log({"event": "lost", "token": self.token, "generation": self.generation, **owner_record()})
        self.held = False

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump({**owner_record(), "token": self.token, "generation": self.generation}, f)
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
                self.generation = int((owner or {}).get("generation", 1)) + 1
                self._log({"event": "takeover", "from": owner, "heartbeat": mtime, "by": owner_record()})
        finally:
            breaker.unlink(missing_ok=True)

    def _log(self, record: dict[str, Any]) -> None:
        with contextlib.suppress(OSError), (self.path.parent / CLAIMS).open("a") as f:
            f.write(json.dumps({**record, "time": time.time()}, sort_keys=True) + "\n")

    def _beat(self) -> None:
        while not self._stop.wait(heartbeat_s()):
            if not self.still_held():
                self.lost = True
                warnings.warn(f"lost the claim on {self.path.parent}: another process took it", stacklevel=1)
                return
            with contextlib.suppress(OSError):  # one missed heartbeat does not make a claim stale
                os.utime(self.path)


def lost_claims(run_dir: Path) -> dict[str, float]:
    """Tokens of the claims on this run that were lost to a takeover, with when the loser found out."""
    path = Path(run_dir) / CLAIMS
    try:
        lines = path.read_text().splitlines()
    except (OSError, ValueError):  # missing, or garbage: no record of a loss
        return {}
    lost = {}
    for line in lines:
        with contextlib.suppress(json.JSONDecodeError, AttributeError):
            record = json.loads(line)
            if record.get("event") == "lost":
                lost[record["token"]] = record["time"]
    return lost
