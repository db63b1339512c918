"""The ground floor of storage: atomic writes, JSON and JSON-lines records, and telling a full or
read-only filesystem from other errors. Everything may use it (run folders, the data cache,
reports); it uses nothing above `locks`, which guards the run folders it writes into."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from benchmark import locks


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
        # writer's temporary file from one a killed writer left behind. A filesystem without
        # locks (Lustre mounted without flock) writes all the same; its debris is never swept.
        with contextlib.suppress(OSError):
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


_HASHES: dict[tuple[int, ...], str] = {}  # sha256 by file identity: a file is hashed once per process


def file_sha256(path: Path, store: Path | None = None) -> str:
    """The file's sha256, streamed in 1 MiB blocks and remembered under the file's identity (device,
    inode, size, modification and change times: a write changes the change time, which no user can
    set back, so a rewritten file is hashed again): for the process, and across processes in the
    JSON file `store` where one is given (a cache only: unreadable, it is ignored; unwritable, the
    next process hashes again)."""
    st = path.stat()
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key in _HASHES:
        return _HASHES[key]
    stored = "|".join(map(str, (path.resolve(), *key)))
    known = (read_json(store) or {}) if store is not None else {}
    if not isinstance(known.get(stored), str):
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        known = {stored: digest.hexdigest()}
        if store is not None:  # read again just before writing: another process may have added files
            with contextlib.suppress(OSError):
                write_json(store, {**(read_json(store) or {}), **known})
    _HASHES[key] = known[stored]
    return known[stored]


def cache_dir() -> Path:
    """The suite's cache folder (generated datasets, checkpoint hashes): `$VITBENCH_DATA_CACHE`,
    else `~/.cache/vitbench`."""
    return Path(os.environ.get("VITBENCH_DATA_CACHE") or Path.home() / ".cache" / "vitbench")


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode())


def read_json(path: Path) -> dict[str, Any] | None:
    """The parsed file, or None when it is missing or unreadable (a corrupt file warns: not JSON,
    not text, or a folder where the file should be)."""
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError):  # (its folder is a file: `problem` says so)
        return None
    except (IsADirectoryError, UnicodeDecodeError):
        warnings.warn(f"ignoring corrupt file {path}", stacklevel=2)
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
    try:
        text = path.read_bytes().decode(errors="replace")  # a damaged byte costs its line only
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
