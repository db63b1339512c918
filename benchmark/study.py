"""The Study contract and the discovery of studies/*.py.

A study is one module in the `studies` package, found by its name (no registry to edit). It is
data plus checks, and never imports training code. It defines:

    TITLE: str                       one line
    CLAIM: str                       the paper's claim, in one or two sentences
    REFERENCE: str                   the figure/table it reproduces, e.g. "Table 8 / App. D.4"
    PRESETS: dict[str, str]          preset name -> what that scale is (smoke, cpu, gpu, paper)
    CELL: tuple[str, ...]            config columns that name a cell (seeds are repeats of a cell)
    runs(preset) -> list[RunConfig]  every run of the preset
    table(df) -> DataFrame           our numbers beside the paper's
    checks(df) -> list[Verdict]      the claim, judged on our results
    figures(df, curves) -> dict[str, (Figure, DataFrame)]   paper-style plots and their data

`df` has one row per finished run (flattened config columns + final metrics); `curves` has
the evaluations logged during training.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
import traceback
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pandas as pd

from benchmark.config import RunConfig, flatten
from benchmark.errors import UserError

REQUIRED = ("TITLE", "CLAIM", "REFERENCE", "PRESETS", "CELL", "runs", "table", "checks", "figures")


@dataclass(frozen=True)
class Verdict:
    """One claim judged on one study's results, stated beside the paper's evidence."""

    claim: str  # short statement of the claim
    paper: str  # the paper's evidence, e.g. "1-D 64.2 vs none 61.4 (+2.8)"
    measured: str  # ours, with the spread over seeds
    holds: bool | None  # None: not judged (too few results or seeds; `note` says why)
    margin: float  # how far inside (+) or outside (-) the rule's threshold, in `unit`
    rule: str  # the decision rule: test, level, margin and its justification
    evidence: str = ""  # the statistics behind it: per comparison, the estimate, statistic, p, Holm p, seeds
    judged_on: str = ""  # the metric and the data it was measured on (transfer or upstream)
    note: str = ""  # where it does not hold: which results break it; hypotheses labelled as such
    unit: str = "pts"  # "pts": margin is an accuracy fraction shown in points; otherwise shown as is

    @property
    def verdict(self) -> str:
        return {True: "holds", False: "does not hold", None: "not judged"}[self.holds]

    @property
    def margin_text(self) -> str:
        """The margin as a reader sees it: points for accuracies, the unit otherwise, "–" if none."""
        if self.holds is None or math.isnan(self.margin):
            return "–"
        return (
            f"{self.margin * 100:+.2f} pts"
            if self.unit == "pts"
            else f"{self.margin:+.2f} {self.unit}".rstrip()
        )

    @classmethod
    def not_judged(cls, claim: str, reason: str, paper: str = "", judged_on: str = "") -> Verdict:
        """A claim the results cannot decide, with the reason (e.g. too few seeds)."""
        return cls(
            claim, paper, "–", None, float("nan"), "–", judged_on=judged_on, note=f"Not judged: {reason}."
        )


@dataclass(frozen=True)
class Study:
    name: str
    module: ModuleType

    @property
    def title(self) -> str:
        return self.module.TITLE

    @property
    def claim(self) -> str:
        return self.module.CLAIM

    @property
    def reference(self) -> str:
        return self.module.REFERENCE

    @property
    def presets(self) -> dict[str, str]:
        return dict(self.module.PRESETS)

    @property
    def cell(self) -> tuple[str, ...]:
        return tuple(self.module.CELL)

    @property
    def reuse(self) -> tuple[str, ...]:
        """Studies whose finished runs of the same config this one adopts instead of training (REUSE)."""
        return tuple(getattr(self.module, "REUSE", ()))

    def runs(self, preset: str) -> list[RunConfig]:
        if preset not in self.presets:
            raise UserError(f"study {self.name!r} has no preset {preset!r}; valid: {', '.join(self.presets)}")
        runs = self.module.runs(preset)
        ids = [flatten(r) for r in runs]
        if len({repr(sorted(i.items())) for i in ids}) != len(ids):
            raise UserError(f"study {self.name!r} preset {preset!r} declares the same run twice")
        return runs

    def label(self, cfg: RunConfig) -> str:
        flat = flatten(cfg)
        return " ".join(f"{key.split('.')[-1]}={flat[key]}" for key in (*self.cell, "seed"))

    def table(self, df: pd.DataFrame) -> pd.DataFrame:
        return self.module.table(df)

    def checks(self, df: pd.DataFrame) -> list[Verdict]:
        return self.module.checks(df)

    def figures(self, df: pd.DataFrame, curves: pd.DataFrame) -> dict[str, Any]:
        return self.module.figures(df, curves)

    @property
    def doc(self) -> str:
        return (self.module.__doc__ or "").strip()


def list_studies() -> list[str]:
    import studies

    return sorted(m.name for m in pkgutil.iter_modules(studies.__path__) if not m.name.startswith("_"))


def load_study(name: str) -> Study:
    names = list_studies()
    if name not in names:
        raise UserError(f"unknown study {name!r}; valid: {', '.join(names)}")
    try:
        module = importlib.import_module(f"studies.{name}")
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        raise UserError(
            f"study {name!r} failed to import: {type(exc).__name__}: {exc} ({where.filename}:{where.lineno}); "
            f"other studies: {', '.join(n for n in names if n != name)}"
        ) from exc
    missing = [attr for attr in REQUIRED if not hasattr(module, attr)]
    if missing:
        raise UserError(f"study {name!r} does not define {', '.join(missing)} (see benchmark/study.py)")
    return Study(name, module)
