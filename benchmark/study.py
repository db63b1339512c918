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

and may define, for the scorecard's view of each claim across scale (benchmark.ladder):

    PAPER_POINTS: dict[str, PaperPoint]   claim text (a verdict's claim starts with it) -> the
                                          paper's own effect and the compute it was measured at
    points(df) -> DataFrame               one row per run for the scaling fits: family, seed,
                                          compute, images, accuracy (the judged metric), fit_ok

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


REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"
OUTCOMES = (REPRODUCED, CONTRADICTED, INCONCLUSIVE)


def format_value(value: float, unit: str, sign: bool = True, missing: str = "–") -> str:
    """A value of a statistic as a reader sees it: accuracies (fractions) in points, log2 ratios as
    ratios, anything else as is with its unit; `missing` for NaN. The one formatter of verdicts,
    their reasons and the plan's power lines."""
    if math.isnan(value):
        return missing
    if unit == "pts":
        return f"{value * 100:{'+' if sign else ''}.2f} pts"
    if unit == "×":  # stored as log2 of the ratio
        return f"{2**value:.3g}×"
    return f"{value:{'+' if sign else ''}.3g} {unit}".rstrip()


@dataclass(frozen=True)
class PaperPoint:
    """The paper's own effect for one claim, in the units of the claim's verdict (accuracies as
    fractions, ratios as log2), and the pre-training compute it was measured at in FLOPs: NaN where
    the paper does not tabulate it (the chart then draws the effect as a line across all compute)."""

    effect: float
    compute: float = math.nan
    source: str = ""  # which table or figure, in words


@dataclass(frozen=True)
class Verdict:
    """One claim judged on one study's results, stated beside the paper's evidence and the effect
    the claim predicts (benchmark.judge decides the outcome)."""

    claim: str  # short statement of the claim
    paper: str  # the paper's evidence, e.g. "1-D 64.2 vs none 61.4 (+2.8)"
    measured: str  # ours, with the spread over seeds
    outcome: str  # reproduced | contradicted | inconclusive
    reason: str  # why this outcome, in words ("interval [-6.7, +3.9] is wider than the ±0.5 margin")
    rule: str  # the test, its level and the decision rule
    predicted: str = ""  # the predicted effect (or margin) and how it was derived from the paper
    observed: float = math.nan  # the deciding comparison's estimate, in the statistic's units
    interval: tuple[float, float] = (math.nan, math.nan)  # its 1 - 2α interval
    expected: float = math.nan  # the predicted effect (or margin) in the statistic's units
    mde: float = math.nan  # minimum detectable effect at the seeds it had (80% power)
    power: float = math.nan  # power at the predicted effect
    evidence: str = ""  # per comparison: estimate, interval, test, seeds
    judged_on: str = ""  # the metric and the data it was measured on (transfer or upstream)
    note: str = ""  # measured context; explanations labelled as hypotheses
    unit: str = "pts"  # "pts": accuracies (fractions shown in points); "×": log2 ratios; else as is
    control: bool = False  # a positive control: an effect known to exist, judged first
    parity: bool = False  # "differ little": `expected` is the equivalence margin
    # A threshold claim ("above one patch step", "τ above 0.5"): `expected` is the threshold the
    # interval must clear, and `power_at` the effect its power is stated at; NaN otherwise.
    power_at: float = math.nan

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {self.outcome!r}")

    def fmt(self, value: float, sign: bool = True) -> str:
        """A value of the statistic as a reader sees it: points, a ratio, or as is."""
        return format_value(value, self.unit, sign)

    @property
    def effect_text(self) -> str:
        """ "observed [interval]; predicted; MDE; power" in one short cell."""
        if math.isnan(self.observed):
            return "–"
        low, high = self.interval
        if self.parity:
            predicted = f"within ±{self.fmt(self.expected, sign=False)}"
        elif math.isnan(self.power_at):
            predicted = self.fmt(self.expected)
        else:
            predicted = f"above {self.fmt(self.expected)}"
        power = f"power {self.power:.0%}"
        if not math.isnan(self.power_at):
            power += f" at {self.fmt(self.power_at)}"
        return (
            f"{self.fmt(self.observed)} [{self.fmt(low)}, {self.fmt(high)}]; predicted "
            f"{predicted}; MDE {self.fmt(self.mde, sign=False)}; {power}"
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
        """Studies that declare some of this one's configs too (REUSE): those train once, in that
        study's folder, and are copied here once finished."""
        return tuple(getattr(self.module, "REUSE", ()))

    def reuse_preset(self, preset: str) -> str | None:
        """The preset of this study whose runs of the same config `preset` adopts (REUSE_PRESETS, e.g.
        cpu-long, which extends cpu: {"cpu-long": "cpu"}), or None."""
        return dict(getattr(self.module, "REUSE_PRESETS", {})).get(preset)

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

    def paper_point(self, claim: str) -> PaperPoint | None:
        """The paper's own effect for a verdict's claim (PAPER_POINTS), or None where it gives none."""
        points = getattr(self.module, "PAPER_POINTS", {})
        return next((p for key, p in points.items() if claim.startswith(key)), None)

    def points(self, df: pd.DataFrame) -> pd.DataFrame | None:
        """One row per run for the scaling fits (the study's optional `points`), or None."""
        return self.module.points(df) if hasattr(self.module, "points") else None

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
