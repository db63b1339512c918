"""The command line's options: each flag with its default and help, in the groups the commands
take (`cli._parser` says which command takes which), and `study_flags`, which spells a study's
options back for the commands vitbench suggests. Torch-free, so building the parser (`vitbench
list`, `--help`) imports no `benchmark.dispatch`.

The Slurm flags are one per field of `benchmark.dispatch.slurm.SlurmSettings`, which types and
checks them (`slurm_settings`) the same way as the environment and the INI file."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path
from typing import Any

DEFAULT_PRESET = "cpu"

Options = dict[str, dict[str, Any]]  # flag -> argparse.add_argument's keywords


def default_results() -> Path:
    """--results when not given: $VITBENCH_RESULTS, else ./results."""
    return Path(os.environ.get("VITBENCH_RESULTS", "results"))


def study() -> Options:
    """Every study command's: the preset, the overrides and the folders (read when called, so the
    defaults follow the environment)."""
    return {
        "--preset": {"default": DEFAULT_PRESET, "help": f"scale to run at (default: {DEFAULT_PRESET})"},
        "--set": {
            "action": "append",
            "default": [],
            "metavar": "KEY=VALUE",
            "help": "override a config value for every run, e.g. --set optim.lr=3e-4 (repeatable)",
        },
        "--results": {
            "type": Path,
            "default": default_results(),
            "help": "results folder (default: ./results or $VITBENCH_RESULTS)",
        },
        "--reports": {
            "type": Path,
            "default": None,
            "help": "reports folder (default: $VITBENCH_REPORTS, else RESULTS/reports, which git ignores; "
            "the committed reference reports are regenerated with --reports reports)",
        },
        "--data-root": {
            "type": Path,
            "default": None,
            "help": "where CIFAR, Pets, Flowers and ImageNet trees live (default: $VITBENCH_DATA, else ~/data)",
        },
        "--weights": {
            "type": Path,
            "default": None,
            "metavar": "DIR",
            "help": "where the paper's released checkpoints are, for the `released` presets: files named as timm "
            "or the authors name them (default: $VITBENCH_WEIGHTS; then timm's own caches)",
        },
    }


GPU_TABLE: Options = {
    "--gpu-table": {
        "type": Path,
        "metavar": "FILE",
        "help": "throughput table that prices the runs in GPU-hours: the JSON `vitbench bench` writes "
        "(RESULTS/bench.json, measured on its machine) (default: the shipped H100 table, benchmark/throughput/h100.json)",
    }
}

RUN: Options = {
    "--executor": {
        "default": "local",
        "help": "local (default: subprocesses via submitit), debug (in this process) or slurm (one job array)",
    },
    "--jobs": {
        "type": int,
        "default": 0,
        "help": "runs at once on the local executor (default: one per CPU core, one on a GPU)",
    },
    "--retry-failed": {"action": "store_true", "help": "run failed runs again (skipped by default)"},
    "--download": {
        "action": "store_true",
        "help": "fetch missing CIFAR-10/100, Pets and Flowers-102 with torchvision's downloaders, and missing "
        "released checkpoints as timm does, from the Hugging Face hub (needs internet)",
    },
    "--no-report": {"action": "store_true", "help": "do not write the report at the end"},
    "--wait": {
        "action": "store_true",
        "help": "slurm: follow the jobs until all are done, then write the report (default: return once submitted)",
    },
}

SLURM_TITLE = "Slurm (--executor slurm)"
SLURM_SOURCES = (
    "Each setting can also come from an environment variable VITBENCH_SLURM_<NAME> (e.g. "
    "VITBENCH_SLURM_PARTITION) or from the [slurm] section of an INI file (--slurm-config, or "
    "$VITBENCH_SLURM_CONFIG); a flag wins over the environment, which wins over the file."
)
SLURM_FLAGS = {
    "--partition": ("NAME", "partition to submit to (default: the cluster's default)"),
    "--gpus": ("N", "GPUs per node of a run, one training process each (default: 0)"),
    "--nodes": ("N", "nodes per run; several processes train a run data-parallel (default: 1)"),
    "--tasks-per-node": ("N", "training processes per node (default: one per GPU, else one)"),
    "--cpus": ("N", "CPU cores per training process, also its torch threads (default: 1)"),
    "--mem-gb": ("GB", "memory per run (default: the partition's)"),
    "--time": ("MIN", "time limit per job; longer runs requeue from a checkpoint, 3× at most (default: 240)"),
    "--array-parallelism": ("N", "runs of the array running at once (default: 256)"),
    "--account": ("NAME", "account to charge"),
    "--qos": ("NAME", "quality of service"),
    "--sbatch": ("OPTION", "extra sbatch option(s), e.g. --sbatch=--constraint=a100 (repeatable)"),
    "--setup": ("LINE", "a shell line each job runs first, e.g. --setup 'module load cuda' (repeatable)"),
}
REPEATABLE = ("--sbatch", "--setup")  # tuples in SlurmSettings: each use of the flag adds one


def dest(flag: str) -> str:
    """The SlurmSettings field a flag sets: --mem-gb sets mem_gb."""
    return flag[2:].replace("-", "_")


SLURM: Options = {
    **{
        flag: {
            "dest": dest(flag),
            "action": "append" if flag in REPEATABLE else "store",
            "metavar": metavar,
            "help": help_,
        }
        for flag, (metavar, help_) in SLURM_FLAGS.items()
    },
    "--slurm-config": {"type": Path, "metavar": "FILE", "help": "an INI file with a [slurm] section"},
}


PLAN_ALL: Options = {
    "--all": {
        "action": "store_true",
        "help": "every study's runs, cost and the claims --preset can decide, then the total over the studies",
    }
}

REPORT_ALL: Options = {
    "--all": {
        "action": "store_true",
        "help": "rebuild every study's report at every preset with results, and the scorecard REPORTS/README.md",
    }
}


def bench() -> Options:
    return {
        "--results": {
            "type": Path,
            "default": default_results(),
            "help": "results folder; the figures go to RESULTS/bench.json, where `vitbench plan` reads them "
            "(default: ./results or $VITBENCH_RESULTS)",
        },
        "--out": {"type": Path, "help": "also write the figures as JSON to this file"},
    }


def add(parser: argparse.ArgumentParser | argparse._ArgumentGroup, options: Options) -> None:
    for flag, keywords in options.items():
        parser.add_argument(flag, **keywords)


def study_flags(args: argparse.Namespace) -> str:
    """The flags that name this study's results again, for the commands we suggest."""
    flags = f" --preset {args.preset}" + "".join(f" --set {shlex.quote(item)}" for item in args.set)
    if args.results != default_results():
        flags += f" --results {shlex.quote(str(args.results))}"
    if getattr(args, "data_root", None) is not None:  # the data the runs read, as given
        flags += f" --data-root {shlex.quote(str(args.data_root))}"
    if getattr(args, "weights", None) is not None:  # the checkpoints the runs were pinned to
        flags += f" --weights {shlex.quote(str(args.weights))}"
    return flags
