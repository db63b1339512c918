"""Power before compute: for each claim of a study at a preset, the minimum detectable effect and
the power at the predicted effect, before anything is trained.

The noise is measured, never assumed where a measurement exists: the seed-to-seed spread of the
judged metric over finished runs of the same configurations (any study's runs under the results
folder: `inspect` and `pos_embed` share cells, say), else the preset's declared pilot noise
(benchmark.presets.PILOT), and every line says which. A study states its claims' designs in
`power(preset, noise)`: which cells each claim compares, at how many seeds, with which predicted
effect; the arithmetic is benchmark.judge's (the same MDE and power its verdicts report).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.config import RunConfig, flatten, from_dict, run_id
from benchmark.errors import UserError
from benchmark.judge import UNDECIDABLE_POWER, Prediction, mde, power_at, seeds_for
from benchmark.results import CONFIG, read_result
from benchmark.stats import MIN_SEEDS, Comparison
from benchmark.storage import read_json
from benchmark.study import Study, format_value


@dataclass(frozen=True)
class Pilot:
    """A preset's declared seed-to-seed noise of the judged transfer accuracy, used where no
    finished run measures it: its spread, its typical level and chance, and where they come from."""

    sd: float
    level: float
    chance: float
    source: str


@dataclass(frozen=True)
class Measured:
    sd: float
    level: float
    source: str


def _cell_key(cfg: RunConfig) -> str:
    """A configuration apart from its seed, and from the pinned file of its released checkpoint (a
    study declares its runs unpinned; their noise is that of the checkpoint, whichever copy of it)."""
    return run_id(cfg.replace(seed=0, **{"model.checkpoint_sha256": ""}))


class Noise:
    """Finished runs (any study) indexed by configuration, and the preset's pilot noise."""

    def __init__(self, results_root: Path, pilot: Pilot | None) -> None:
        self.pilot = pilot
        rows, seen = [], set()
        for path in sorted(Path(results_root).glob(f"*/*/*/{CONFIG}")):
            with warnings.catch_warnings():  # damaged records are the plan's to report, once
                warnings.simplefilter("ignore")
                result, stored = read_result(path.parent), read_json(path)
            if result is None or stored is None or path.parent.name in seen:
                continue
            try:
                cfg = from_dict(stored)
            except (UserError, TypeError, ValueError, AttributeError):
                continue  # another version's or a damaged config measures nothing here
            seen.add(path.parent.name)  # an adopted run counts once
            rows.append({"key": _cell_key(cfg), **flatten(cfg), **result.get("metrics", {}),
                         "datasets": result.get("datasets", {})})  # fmt: skip
        self.finished = pd.DataFrame(rows)

    def measure(
        self, cells: Sequence[RunConfig], metric: Callable[[pd.DataFrame], pd.Series], judged: bool = True
    ) -> Measured | None:
        """Pooled seed-to-seed sd and mean of `metric` over the finished runs of `cells` (any seed),
        from every cell with at least two finished seeds; else, for the `judged` transfer accuracy
        the pilot describes, the pilot's; else None."""
        keys = {_cell_key(c) for c in cells}
        rows = self.finished[self.finished["key"].isin(keys)] if len(self.finished) else self.finished
        groups = [g for _, g in rows.groupby("key")] if len(rows) else []
        values = [metric(g).dropna().to_numpy() for g in groups]
        values = [v for v in values if len(v) >= 2]
        if values:
            dof = sum(len(v) - 1 for v in values)
            sd = math.sqrt(sum((len(v) - 1) * v.var(ddof=1) for v in values) / dof)
            level = float(np.mean(np.concatenate(values)))
            runs = sum(len(v) for v in values)
            return Measured(sd, level, f"measured: {runs} finished runs of {len(values)} of these configs")
        if self.pilot is None or not judged:
            return None
        return Measured(self.pilot.sd, self.pilot.level, f"the preset's pilot noise ({self.pilot.source})")

    def chance(self, datasets: Sequence[str]) -> float | None:
        """Chance accuracy over `datasets`, from the classes finished runs recorded, else the pilot's."""
        classes = {n: rec["classes"] for records in self.finished.get("datasets", []) for n, rec in records.items()
                   if "classes" in rec}  # fmt: skip
        if all(d in classes for d in datasets):
            return sum(1 / classes[d] for d in datasets) / len(datasets)
        return self.pilot.chance if self.pilot else None


@dataclass(frozen=True)
class Planned:
    """One claim's design at a preset: what it compares, at how many seeds, and its predicted effect."""

    claim: str
    prediction: Prediction | None  # None: no prediction can be made before the data (said in `why`)
    comparison: Comparison | None  # the statistic's expected standard error at the planned seeds
    k: int = 1  # comparisons that must all come out (their powers multiply)
    source: str = ""
    why: str = ""  # why no MDE or power can be stated before the data
    unit: str = "pts"  # as benchmark.study.Verdict.unit

    @property
    def power(self) -> float:
        if self.prediction is None or self.comparison is None:
            return math.nan
        return power_at(self.comparison, self.prediction) ** self.k

    def line(self) -> str:
        if self.prediction is None or self.comparison is None:
            return f"{self.claim}: no estimate before the data ({self.why})"

        def fmt(value: float) -> str:
            return format_value(value, self.unit, sign=False)

        p = self.prediction
        if p.parity:
            at = f"the predicted margin ±{fmt(p.effect)}"
        elif p.power_at is None:
            at = f"the predicted {fmt(p.effect)}"
        else:  # a threshold claim: power at an effect beyond the threshold, the study's choice
            at = f"{fmt(p.power_at)} (threshold {fmt(p.effect)})"
        text = f"{self.claim}: MDE {fmt(mde(self.comparison, p.parity))}; power {self.power:.0%} at {at}"
        if self.power < UNDECIDABLE_POWER:
            text += (f" — cannot decide at this preset: about {seeds_for(self.comparison, self.prediction, k=self.k)} "
                     f"{self.comparison.per} would give 80%")  # fmt: skip
        return text


def difference(sd: float, n_a: int, n_b: int, name: str = "planned") -> Comparison:
    """The expected comparison of two cells of `n_a` and `n_b` seeds with seed noise `sd`."""
    return Comparison(
        name, "planned Welch t", 0.0, sd * math.sqrt(1 / n_a + 1 / n_b), n_a + n_b - 2, n_a, n_b
    )


def planned(
    claim: str,
    prediction: Prediction,
    noise: Measured | None,
    n_a: int,
    n_b: int,
    k: int = 1,
    unit: str = "pts",
    scale: float = 1.0,
) -> Planned:
    """A claim comparing k pairs of cells of n_a and n_b seeds, its statistic's seed noise `scale` ×
    the measured per-run sd (e.g. a per-seed slope's); without a noise estimate, says so."""
    if min(n_a, n_b) < MIN_SEEDS:
        return Planned(claim, None, None, why=f"{min(n_a, n_b)} seed(s) per cell, and a verdict needs {MIN_SEEDS}: "
                       "cannot decide at this preset")  # fmt: skip
    if noise is None:
        return Planned(claim, None, None, why="no finished run measures this metric's noise yet")
    return Planned(claim, prediction, difference(noise.sd * scale, n_a, n_b), k, noise.source, unit=unit)


def unknown(claim: str, why: str) -> Planned:
    return Planned(claim, None, None, why=why)


def lines(study: Study, preset: str, results_root: Path) -> list[str]:
    """`vitbench plan`'s power lines: one per claim of `study` at `preset`."""
    from benchmark.presets import PILOT  # the presets import this module

    design = getattr(study.module, "power", None)
    if design is None:
        return [f"{study.name} declares no power design (a `power(preset, noise)` function): no lines"]
    planned = design(preset, Noise(results_root, PILOT.get(preset)))
    sources = dict.fromkeys(p.source for p in planned if p.source)
    return [p.line() for p in planned] + [f"noise: {source}" for source in sources]
