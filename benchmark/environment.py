"""What a run ran on: versions, device, git revision, host and job ids (recorded in meta.json)."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

PACKAGES = ("vitbench", "torch", "timm", "numpy", "pandas", "scikit-learn", "submitit")


def device_name() -> str:
    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name()} (x{torch.cuda.device_count()})"
    threads = torch.get_num_threads()
    return f"cpu: {cpu_model()} ({threads} thread{'s' if threads != 1 else ''})"


@cache
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


CODE = ("benchmark", "studies", "pyproject.toml")
"""What decides a run's result: a change here (tracked or untracked) makes the tree dirty. Results and
reports do not, so regenerating a committed report leaves the next run's revision clean."""


def git(cwd: Path, *args: str) -> str:
    """The output of `git <args>` run in `cwd` (trailing newline removed); raises on failure."""
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=True
    ).stdout.rstrip("\n")


def code_changes(root: Path) -> str:
    """`git status --porcelain` lines for the code in the checkout at `root` (empty: it is the revision)."""
    return git(root, "status", "--porcelain", "--", *CODE)


@cache
def git_revision() -> dict[str, Any]:
    """The source revision of the benchmark package, and whether its code had local changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        return {"revision": git(root, "rev-parse", "HEAD"), "dirty": bool(code_changes(root))}
    except (OSError, subprocess.SubprocessError):
        return {"revision": None, "dirty": None}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def collect() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "device": device_name(),
        "platform": platform.platform(),
        "versions": versions(),
        "git": git_revision(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
    }
