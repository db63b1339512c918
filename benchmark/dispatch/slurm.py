"""Slurm settings (flags, environment, INI file), the Slurm executor, and the code the jobs run."""

from __future__ import annotations

import configparser
import contextlib
import os
import secrets
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import submitit

from benchmark import environment
from benchmark.errors import UserError


@dataclass(frozen=True)
class SlurmSettings:
    """Per-run resources and queue options. Each comes from a command-line flag, else an
    environment variable VITBENCH_SLURM_<NAME>, else the [slurm] section of an INI file
    (--slurm-config or VITBENCH_SLURM_CONFIG), else the default here."""

    partition: str | None = None
    gpus: int = 0  # per node of a run
    nodes: int = 1  # per run
    tasks_per_node: int | None = None  # training processes per node (default: one per GPU, else one)
    cpus: int | None = None  # per process; also its torch threads (default: Slurm's, one)
    mem_gb: float | None = None
    time: int = 240  # minutes per job; a run that needs longer is requeued from its checkpoint
    array_parallelism: int = 256  # runs of the array at once
    account: str | None = None
    qos: str | None = None
    sbatch: tuple[str, ...] = ()  # extra sbatch options, e.g. "--constraint=a100"
    setup: tuple[str, ...] = ()  # shell lines the job runs first, e.g. "module load cuda"


SLURM_KEYS = tuple(f.name for f in fields(SlurmSettings))
# Options vitbench sets itself: overriding them would break logs, arrays or requeueing.
RESERVED_SBATCH = ("array", "output", "error", "signal", "open-mode", "job-name", "wckey")


def slurm_settings(
    flags: Mapping[str, Any], config: Path | None = None, env: Mapping[str, str] | None = None
) -> SlurmSettings:
    """Merge the sources (flag > environment > file > default) and check every value."""
    env = os.environ if env is None else env
    known = {f"VITBENCH_SLURM_{k.upper()}" for k in (*SLURM_KEYS, "config")}
    if unknown := sorted(k for k in env if k.startswith("VITBENCH_SLURM_") and k not in known):
        raise UserError(
            f"unknown environment variable(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
        )
    config = config or (Path(env["VITBENCH_SLURM_CONFIG"]) if env.get("VITBENCH_SLURM_CONFIG") else None)
    from_file = _read_slurm_config(config) if config else {}
    values: dict[str, Any] = {}
    for key in SLURM_KEYS:
        flag = flags.get(key)
        if flag not in (None, [], ()):
            raw, source = flag, f"--{key.replace('_', '-')}"
        elif env.get(f"VITBENCH_SLURM_{key.upper()}"):
            raw, source = env[f"VITBENCH_SLURM_{key.upper()}"], f"VITBENCH_SLURM_{key.upper()}"
        elif key in from_file:
            raw, source = from_file[key], f"{config} [slurm] {key}"
        else:
            continue
        values[key] = _slurm_value(key, raw, source)
    settings = SlurmSettings(**values)
    _sbatch_options(settings.sbatch)  # validate now, before anything is submitted
    return settings


def _read_slurm_config(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path) as f:
            parser.read_file(f)
    except (OSError, configparser.Error) as exc:
        raise UserError(f"cannot read Slurm config {path}: {exc}") from None
    if not parser.has_section("slurm"):
        raise UserError(f"Slurm config {path} has no [slurm] section")
    section = dict(parser["slurm"])
    if unknown := sorted(set(section) - set(SLURM_KEYS)):
        raise UserError(f"unknown key(s) {unknown} in {path} [slurm]; valid: {', '.join(SLURM_KEYS)}")
    return section


def _slurm_value(key: str, raw: Any, source: str) -> Any:
    """One setting, typed and range-checked; `source` names where it came from in errors."""
    if key == "sbatch":
        items = raw if isinstance(raw, list | tuple) else [raw]
        return tuple(token for item in items for token in shlex.split(str(item)))
    if key == "setup":
        if isinstance(raw, list | tuple):
            return tuple(raw)
        return tuple(line.strip() for line in str(raw).splitlines() if line.strip())
    if key in ("partition", "account", "qos"):
        return str(raw).strip()
    kind, low = {
        "gpus": (int, 0),
        "nodes": (int, 1),
        "tasks_per_node": (int, 1),
        "cpus": (int, 1),
        "mem_gb": (float, 0.001),
        "time": (int, 1),
        "array_parallelism": (int, 1),
    }[key]
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise UserError(f"{source}={raw!r} is not a valid {kind.__name__}") from None
    if value < low:
        raise UserError(f"{source} must be at least {low}, got {raw!r}")
    return value


def _sbatch_options(tokens: Sequence[str]) -> dict[str, str | bool]:
    """["--constraint=a100", "--exclusive"] -> submitit's additional_parameters."""
    options: dict[str, str | bool] = {}
    for token in tokens:
        if not token.startswith("--") or len(token) < 3:
            raise UserError(f"extra sbatch option {token!r}: write long options, e.g. --constraint=a100")
        key, sep, value = token[2:].partition("=")
        if key in RESERVED_SBATCH:
            raise UserError(f"extra sbatch option --{key} is set by vitbench and cannot be overridden")
        options[key] = value if sep else True
    return options


def slurm_executor(folder: Path, settings: SlurmSettings, name: str) -> submitit.AutoExecutor:
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise UserError("--executor slurm needs Slurm's sbatch and srun on PATH; use --executor local here")
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params: dict[str, Any] = {
        "name": name,
        "timeout_min": settings.time,
        "slurm_array_parallelism": settings.array_parallelism,
        "slurm_additional_parameters": _sbatch_options(settings.sbatch),
        "slurm_setup": list(settings.setup),
    }
    # One process per GPU; a run with several processes trains data-parallel (benchmark.distributed)
    # and, should one of them fail, srun ends the others instead of leaving them in a collective.
    tasks = settings.tasks_per_node or max(1, settings.gpus)
    params.update(nodes=settings.nodes, tasks_per_node=tasks)
    if tasks * settings.nodes > 1:
        params["slurm_srun_args"] = ["--kill-on-bad-exit=1"]
    optional = {
        "slurm_partition": settings.partition,
        "gpus_per_node": settings.gpus or None,
        "cpus_per_task": settings.cpus,
        "mem_gb": settings.mem_gb,
        "slurm_account": settings.account,
        "slurm_qos": settings.qos,
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    executor.update_parameters(**params)
    return executor


# --- the code the jobs run -------------------------------------------------------------------


def _source_checkout() -> Path | None:
    """The git checkout this package is imported from, or None for an installed package."""
    root = Path(__file__).resolve().parent.parent.parent
    try:
        top = environment.git(root, "rev-parse", "--show-toplevel")
    except (OSError, subprocess.SubprocessError):
        return None
    return root if top and Path(top).resolve() == root else None


@contextlib.contextmanager
def code_snapshot(folder: Path, checkout: Path | None = None) -> Iterator[str | None]:
    """Submit inside this context so that cluster jobs run the code as it is now, even after the
    checkout changes or a requeue restarts them days later. With rsync: a copy of the checkout
    (tracked files plus untracked ones in the packages) under `folder`, which jobs start in and
    import from (submitit's RsyncSnapshot). Without rsync: only a clean checkout may submit, and
    each job checks it still runs the submitted revision. Yields that revision (None for an
    installed package, whose code does not change under the jobs)."""
    checkout = checkout or _source_checkout()
    if checkout is None:
        yield None
        return
    head = environment.git(checkout, "rev-parse", "HEAD")
    if submitit.helpers.RsyncSnapshot.available():
        untracked = environment.git(
            checkout, "ls-files", "--others", "--exclude-standard", "--", *environment.CODE
        ).split()
        target = Path(folder) / "code" / f"{head[:12]}-{secrets.token_hex(3)}"
        snapshot = submitit.helpers.RsyncSnapshot(target, root_dir=checkout, include=untracked)
        try:
            # Clone without checking out (RsyncSnapshot would check out, then rsync skips a file
            # edited within the same second at the same size), so rsync writes every file.
            target.parent.mkdir(parents=True, exist_ok=True)
            environment.git(
                checkout, "clone", "-q", "--depth=2", "--no-checkout", f"file://{checkout}", str(target)
            )
            environment.git(target, "read-tree", "HEAD")  # an index for `git status` in the jobs
            snapshot.__enter__()  # copies the code and moves into it: sbatch runs jobs from there
        except subprocess.CalledProcessError as exc:
            raise UserError(f"could not snapshot the code in {checkout}: {exc.stderr or exc}") from None
        try:
            yield head
        finally:
            snapshot.__exit__()
        return
    if environment.code_changes(checkout):
        raise UserError(
            f"{checkout} has uncommitted changes to its code and rsync is not installed to snapshot them: "
            "commit or stash them (jobs must run the submitted code), or install rsync"
        )
    yield head
