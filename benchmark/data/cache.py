"""A verified on-disk cache for generated datasets (the formula-driven upstream of fractals.py).

Where: `$VITBENCH_DATA_CACHE`, else `~/.cache/vitbench`. One file per dataset, named by whoever
asks (so a human can tell what it holds) and holding a header that records the generator's
parameters and a sha256 over the header and every array's bytes. Every load re-reads and
re-hashes the whole file: a truncated, corrupted or mismatched file is reported (a warning naming
it) and regenerated, never used. Files are written atomically (a temporary file in the same
folder, fsync, rename: `storage.write_atomic`), so a writer that dies leaves no partial file, and
two processes generating the same dataset at once both rename identical bytes into place. A
writer killed mid-write leaves its temporary file behind; the next load removes it once no process
holds it (`storage.sweep_abandoned`).

Layout: MAGIC, the header's length (8 bytes, little-endian), the header (canonical JSON: meta,
the arrays' names, dtypes and shapes, and the sha256), then the arrays' bytes in that order.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from benchmark.storage import cache_dir, sweep_abandoned, write_atomic

MAGIC = b"vitbench-arrays\n"


class CorruptCache(Exception):
    """A cache file that must not be used: truncated, altered, or made for other parameters."""


def _header(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    return {"meta": meta, "arrays": [[k, v.dtype.str, list(v.shape)] for k, v in arrays.items()]}


def _digest(header: dict[str, Any], payload: list[memoryview]) -> str:
    h = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for part in payload:
        h.update(part)
    return h.hexdigest()


def write(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Store `arrays` under `path` atomically, with `meta` and their checksum in the header."""
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    payload = [memoryview(v).cast("B") for v in arrays.values()]
    header = _header(meta, arrays)
    text = json.dumps({**header, "sha256": _digest(header, payload)}, sort_keys=True).encode()

    def stream(f: BinaryIO) -> None:
        f.write(MAGIC + len(text).to_bytes(8, "little") + text)
        for part in payload:
            f.write(part)

    write_atomic(path, stream)


def read(path: Path, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays stored under `path`; CorruptCache unless the file is whole, unaltered (sha256)
    and made with exactly `meta`."""
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise CorruptCache("not a vitbench array file")
        # Every length read from the file is checked against its size before anything is
        # allocated: one flipped bit must not ask for exabytes (the sha256 is checked last).
        left = os.fstat(f.fileno()).st_size - len(MAGIC) - 8
        size = int.from_bytes(f.read(8), "little")
        if size > left:
            raise CorruptCache(f"header length {size:,} exceeds the file's {left:,} remaining bytes")
        try:
            stored = json.loads(f.read(size))
            layout = [
                (name, np.dtype(dtype), tuple(map(int, shape))) for name, dtype, shape in stored["arrays"]
            ]
            if any(n < 0 for _, _, shape in layout for n in shape):
                raise ValueError("negative array dimension")
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptCache(f"unreadable header ({exc})") from None
        if stored.get("meta") != json.loads(json.dumps(meta)):  # as JSON stores it (tuples: lists)
            raise CorruptCache("made with other generator parameters")
        expected = sum(dtype.itemsize * math.prod(shape) for _, dtype, shape in layout)
        if expected != left - size:
            raise CorruptCache(
                f"truncated or overlong (expected {expected:,} bytes of arrays, found {left - size:,})"
            )
        buffer = bytearray(expected)  # writable, so torch.from_numpy can share it without a copy
        if f.readinto(buffer) != expected or f.read(1):
            raise CorruptCache(f"truncated or overlong (expected {expected:,} bytes of arrays)")
    arrays, offset = {}, 0
    for name, dtype, shape in layout:
        count = math.prod(shape)
        arrays[name] = np.frombuffer(buffer, dtype, count, offset).reshape(shape)
        offset += count * dtype.itemsize
    header = {"meta": stored["meta"], "arrays": stored["arrays"]}
    if _digest(header, [memoryview(v).cast("B") for v in arrays.values()]) != stored.get("sha256"):
        raise CorruptCache("checksum mismatch (sha256)")
    return arrays


def load_or_build(
    name: str, meta: dict[str, Any], build: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """The arrays cached as `name` if that file is good, else `build()`'s, stored for next time.
    A cache folder that cannot be written costs a warning and a rebuild next time, not the run."""
    path = cache_dir() / name
    sweep_abandoned(cache_dir())
    if path.exists():
        try:
            return read(path, meta)
        except (CorruptCache, OSError) as exc:
            warnings.warn(f"data cache {path} is unusable ({exc}): regenerating it", stacklevel=2)
    arrays = build()
    try:
        write(path, meta, arrays)
    except OSError as exc:
        warnings.warn(f"could not write the data cache {path} ({exc}); continuing without it", stacklevel=2)
    return arrays
