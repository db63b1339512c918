"""What a run ran on: versions, device, git revision, host and job ids (recorded in meta.json)."""

from __future__ import annotations

import os
import platform
import re
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


def math_libraries() -> dict[str, Any]:
    """The CPU and the math libraries torch computes with on it, as torch reports them: the BLAS and
    LAPACK it was built with (its build settings), whether MKL, oneDNN (MKL-DNN) and OpenMP are
    available, the SIMD level its CPU kernels dispatch to, and its threads. Timings on a CPU are only
    comparable between runs that agree here."""
    settings = dict(re.findall(r"\b(BLAS_INFO|LAPACK_INFO)=([^,\s]*)", torch.__config__.show()))
    return {
        "model": cpu_model(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "blas": settings.get("BLAS_INFO"),
        "lapack": settings.get("LAPACK_INFO"),
        "mkl": torch.backends.mkl.is_available(),
        "onednn": torch.backends.mkldnn.is_available(),
        "openmp": torch.backends.openmp.is_available(),
        "threads": torch.get_num_threads(),
    }


def process_age_s() -> float | None:
    """Seconds since this process started (Linux's process table), None where it cannot be read:
    what a run's start-up costs before any of its own code runs (the interpreter, imports)."""
    try:
        stat = Path("/proc/self/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except OSError:
        return None
    # Field 22 is the start time in clock ticks after boot; fields from the 3rd follow the ")" that
    # closes the command name (which may itself hold spaces or parentheses).
    started = int(stat.rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
    return max(0.0, uptime - started)


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
        "cpu": math_libraries(),
        "platform": platform.platform(),
        "versions": versions(),
        "git": git_revision(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
    }
