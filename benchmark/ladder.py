"""Each claim across scale: where does it start to hold, and where would it?

Two views, both drawn by the scorecard from what the studies' reports judged (stored results only):

- **One chart per claim** (`draw_claims`): x is the training compute of the largest run the study
  trained at each preset (FLOPs, log scale), y the claim's effect with its 90% interval, one point
  per preset with results, coloured by its outcome; a tick marks the effect the claim predicts at
  that scale, and the paper's own effect is a star at the paper's compute (Table 6), or a line
  where the paper states no compute, or a note where it tabulates no effect.
- **Scaling fits** (`fit_races`, C1–C3): each family's transfer error against training compute and
  against pre-training images (benchmark.scaling: a saturating power law, bootstrap over seeds),
  pooled over the runs of every preset but `smoke` (a pipeline check whose numbers mean nothing)
  that passed the fit gate, and where the family the paper says wins would overtake the other.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from benchmark import scaling
from benchmark.figures import FAMILY_COLORS
from benchmark.paper import JFT_IMAGES, table6_compute
from benchmark.report import paper_style, write_figure
from benchmark.study import CONTRADICTED, INCONCLUSIVE, REPRODUCED, Study, Verdict

OUTCOME_COLORS = {REPRODUCED: "#2a9d4b", CONTRADICTED: "#d1382f", INCONCLUSIVE: "#8c8c8c"}
PIPELINE_CHECK = "smoke"  # a preset whose numbers mean nothing: charted, never fitted
RUNGS = ("smoke", "cpu", "cpu-long", "gpu", "paper")  # the presets from the cheapest up


def claim_key(claim: str) -> str:
    """A claim as it reads at every preset: a trailing parenthesis names the preset's own values
    ("ViT overtakes BiT with the most pre-training data (100,000 images)")."""
    return re.sub(r" \([^()]*\)$", "", claim)


def claim_points(
    entries: Iterable[tuple[str, Study, str, Verdict]], compute: Mapping[tuple[str, str], float]
) -> pd.DataFrame:
    """One row per claim and preset: (code, study, preset, verdict) entries with the compute of each
    (study, preset), the verdict's effect and interval, and the paper's own effect."""
    rows = []
    for code, study, preset, v in entries:
        paper = study.paper_point(v.claim)
        rows.append({
            "code": code, "claim": claim_key(v.claim), "study": study.name, "preset": preset,
            "preset_order": list(study.presets).index(preset), "compute": compute[(study.name, preset)],
            "outcome": v.outcome, "unit": v.unit, "parity": v.parity, "observed": v.observed,
            "low": v.interval[0], "high": v.interval[1], "predicted": v.expected,
            "paper_effect": paper.effect if paper else math.nan,
            "paper_compute": paper.compute if paper else math.nan,
            "paper_source": paper.source if paper else "",
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values(["code", "claim", "preset_order"], kind="stable").reset_index(drop=True)


def _shown(values: pd.Series | float, unit: str) -> pd.Series | float:
    """An effect as the chart shows it: points for accuracies, a ratio for log2 ratios."""
    if unit == "pts":
        return values * 100
    if unit == "×":
        return 2.0**values
    return values


def unit_of(rows: pd.DataFrame) -> str:
    """A claim's unit, from a preset that estimated it (a verdict without an estimate, e.g. too few
    seeds at smoke, carries the default unit)."""
    estimated = rows.dropna(subset=["observed"])
    return (estimated if len(estimated) else rows)["unit"].iloc[-1]


def _ylabel(unit: str) -> str:
    if unit == "×":
        return "ratio (×)"
    return f"effect ({unit})" if isinstance(unit, str) and unit else "effect"


def slug(code: str, claim: str) -> str:
    """A claim's file name: its code and its first words, cut at a word."""
    words = re.sub(r"[^a-z0-9]+", "-", claim.lower()).strip("-").split("-")
    kept = [w for i, w in enumerate(words) if len("-".join(words[: i + 1])) <= 44]
    return f"claim-{code.lower()}-{'-'.join(kept)}"


def _title(code: str, claim: str, rows: pd.DataFrame, width: int) -> str:
    """The claim, and a second line where the paper tabulates no effect to draw beside ours."""
    text = "\n".join(textwrap.wrap(f"{code}: {claim}", width))
    return text if rows["paper_effect"].notna().any() else f"{text}\n(the paper tabulates no effect)"


def _draw_one(ax: plt.Axes, rows: pd.DataFrame, small: bool = False) -> None:
    """One claim's points, predictions and the paper's effect on `ax`."""
    unit = unit_of(rows)
    null = 1.0 if unit == "×" else 0.0
    ax.axhline(null, color="0.35", lw=0.8, ls="--", zorder=1)
    ax.set_xscale("log")
    if unit == "×":
        ax.set_yscale("log", base=2)
        ax.yaxis.set_major_formatter(lambda v, _: f"{v:g}×")
    shift = _dodge(rows["compute"])
    for r, k in zip(rows.itertuples(), shift, strict=True):
        x = r.compute * 10 ** (0.15 * k)
        color = OUTCOME_COLORS[r.outcome]
        if math.isnan(r.observed):  # no estimate (too few seeds, fronts apart): on the null line, hollow
            ax.plot(x, null, "o", mfc="white", mec=color, ms=6, zorder=3)
        else:
            y, lo, hi = (_shown(v, unit) for v in (r.observed, r.low, r.high))
            ax.errorbar(x, y, yerr=[[y - lo], [hi - y]], fmt="o", color=color, ms=6, capsize=3, zorder=3)
        for sign in (1, -1) if r.parity else (1,):
            if not math.isnan(r.predicted):
                ax.plot(x, _shown(sign * r.predicted, unit), "_", color="black", ms=14, mew=1.5, zorder=4)
        ax.annotate(r.preset, (x, null if math.isnan(r.observed) else _shown(r.observed, unit)),
                    xytext=(5, 3 if k <= 0 else -10), textcoords="offset points", fontsize=6 if small else 8)  # fmt: skip
    paper = rows.dropna(subset=["paper_effect"])
    if len(paper):
        p = paper.iloc[0]
        if math.isnan(p["paper_compute"]):
            ax.axhline(_shown(p["paper_effect"], unit), color="#1f5fa8", lw=1.2, ls=":", zorder=2)
        else:
            ax.plot(
                p["paper_compute"], _shown(p["paper_effect"], unit), "*", color="#1f5fa8", ms=12, zorder=4
            )
            ax.set_xlim(
                min(rows["compute"].min(), p["paper_compute"]) / 10,
                max(rows["compute"].max(), p["paper_compute"]) * 10,
            )
    if not (len(paper) and not math.isnan(paper.iloc[0]["paper_compute"])):
        ax.set_xlim(rows["compute"].min() / 10, rows["compute"].max() * 10)


def _dodge(compute: pd.Series, near: float = 0.3) -> np.ndarray:
    """Sideways offsets (in steps) for presets whose largest runs cost about the same (within `near`
    decades; cpu-long extends cpu), so that their points sit side by side, not on top."""
    order = np.argsort(np.log10(compute.to_numpy(float)), kind="stable")
    logs = np.log10(compute.to_numpy(float))[order]
    cluster = np.concatenate([[0], np.cumsum(np.diff(logs) > near)])
    shift = np.zeros(len(logs))
    for c in np.unique(cluster):
        members = np.flatnonzero(cluster == c)
        shift[order[members]] = np.arange(len(members)) - (len(members) - 1) / 2
    return shift


def _legend_handles() -> list:
    from matplotlib.lines import Line2D

    return [
        *[Line2D([], [], marker="o", ls="", color=c, label=o) for o, c in OUTCOME_COLORS.items()],
        Line2D([], [], marker="o", ls="", mfc="white", mec="0.5", label="no estimate"),
        Line2D([], [], marker="_", ls="", color="black", ms=12, mew=1.5, label="predicted at that scale"),
        Line2D([], [], marker="*", ls="", color="#1f5fa8", ms=10, label="paper (at its compute)"),
        Line2D([], [], ls=":", color="#1f5fa8", label="paper (compute not stated)"),
    ]


def draw_claims(points: pd.DataFrame, out: Path) -> dict[str, str]:
    """One chart per claim and the small multiples of all of them, written to `out`; returns
    {figure name: the claim's title}, the small multiples ("claims") first."""
    if points.empty:
        return {}
    paper_style()
    out.mkdir(parents=True, exist_ok=True)
    groups = list(points.groupby(["code", "claim"], sort=False))
    written = {}
    cols = 3
    fig, axes = plt.subplots(math.ceil(len(groups) / cols), cols, figsize=(4.2 * cols, 3.1 * math.ceil(len(groups) / cols)),
                             squeeze=False)  # fmt: skip
    for ax, ((code, claim), rows) in zip(axes.flat, groups, strict=False):
        _draw_one(ax, rows, small=True)
        ax.set_title(_title(code, claim, rows, 48), fontsize=8)
        ax.set_ylabel(_ylabel(unit_of(rows)), fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(groups) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("training compute of the largest run (FLOPs)", fontsize=8)
    fig.legend(handles=_legend_handles(), loc="lower center", ncol=4, fontsize=8, bbox_to_anchor=(0.5, -0.04))
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    write_figure(out, "claims", fig, points.drop(columns="preset_order"))
    written["claims"] = "every claim across scale"
    for (code, claim), rows in groups:
        fig, ax = plt.subplots(figsize=(6.2, 4.0))
        _draw_one(ax, rows)
        ax.set_title(_title(code, claim, rows, 70), fontsize=10)
        ax.set_xlabel("training compute of the largest run at the preset (FLOPs)")
        ax.set_ylabel(_ylabel(unit_of(rows)))
        ax.legend(handles=_legend_handles(), fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
        name = slug(code, claim)
        write_figure(out, name, fig, rows.drop(columns="preset_order"))
        written[name] = f"{code}: {claim}"
    for stale in out.glob("claim-*"):  # a claim since renamed or dropped: its old chart goes too
        if stale.stem not in written:
            stale.unlink()
    return written


@dataclass(frozen=True)
class Race:
    """A claim about two families' curves: `ahead` is the one the paper says wins with scale."""

    code: str
    study: str
    ahead: str
    behind: str
    paper: str  # the paper's crossover, in words


# Per axis, how far a crossover is searched: the paper's scale (Table 6's dearest model, all of JFT).
CEILING = {"compute": table6_compute("ViT-H/14", 14), "images": float(JFT_IMAGES)}
RACES = (
    Race("C1", "data_scaling", "ViT", "BiT", "Fig. 3: ViT-L/16 overtakes BiT between ImageNet-21k (14M images) and "
         "JFT-300M (303M); Fig. 4: between the 9M and 90M JFT subsets"),
    Race("C2", "compute", "ViT", "BiT", "Fig. 5: ViT ahead of BiT at every budget shown (from about 5e19 FLOPs): "
         "any crossover lies below the paper's range"),
    Race("C3", "compute", "ViT", "hybrid", "Fig. 5: the hybrid ahead at small budgets, the gap gone at the largest "
         "(R50x1+ViT-L/16 vs ViT-L/16, 14 epochs: 1.6e21 FLOPs)"),
)  # fmt: skip
AXES = ("compute", "images")


@dataclass(frozen=True)
class RaceFit:
    race: Race
    axis: str
    presets: tuple[str, ...]
    fits: tuple[scaling.Fit, scaling.Fit]  # ahead, behind
    crossover: scaling.Crossover
    points: pd.DataFrame


def fit_races(runs: Mapping[str, Mapping[str, pd.DataFrame]], draws: int = scaling.DRAWS) -> list[RaceFit]:
    """The scaling fits and crossovers of RACES from each study's per-preset points
    ({study: {preset: its points(df)}}); a study without results is left out."""
    out = []
    for race in RACES:
        by_preset = {
            p: f for p, f in runs.get(race.study, {}).items() if p != PIPELINE_CHECK and f is not None
        }
        if not by_preset:
            continue
        pooled = pd.concat(by_preset.values()).drop_duplicates("run_id")  # a run a preset adopts counts once
        pooled = pooled[pooled["fit_ok"].fillna(False).astype(bool)].assign(error=lambda d: 1 - d["accuracy"])
        for axis in AXES:
            fits = tuple(
                scaling.fit(pooled[pooled["family"] == f], f, axis, draws=draws)
                for f in (race.ahead, race.behind)
            )
            cross = scaling.crossover(*fits, ceiling=CEILING[axis])
            out.append(RaceFit(race, axis, tuple(by_preset), fits, cross, pooled))
    return out


def fits_table(races: list[RaceFit]) -> pd.DataFrame:
    """One row per study, axis and family fitted (a fit two claims share is listed once)."""
    rows = {(r.race.study, r.axis, f.family): (r, f) for r in races for f in r.fits}
    return pd.DataFrame([{
        "study": study, "axis": axis, "family": family, "presets pooled": ", ".join(r.presets),
        "fit": f.describe().split(": ", 1)[1],
    } for (study, axis, family), (r, f) in rows.items()])  # fmt: skip


def crossovers_table(races: list[RaceFit]) -> pd.DataFrame:
    """One row per claim and axis: the predicted crossover, or why none, beside the paper's."""
    return pd.DataFrame([{
        "claim": r.race.code, "race": f"{r.race.ahead} overtakes {r.race.behind}", "axis": r.axis,
        "outcome": r.crossover.outcome, "how": r.crossover.text, "the paper's": r.race.paper,
    } for r in races])  # fmt: skip


def draw_fits(races: list[RaceFit], out: Path) -> str | None:
    """The runs and each identifiable fit per claim and axis, written as `scaling_fits`; its name."""
    shown = [r for r in races if any(len(f.xs) > 1 for f in r.fits)]  # an axis along which some family varies
    if not shown:
        return None
    paper_style()
    fig, axes = plt.subplots(1, len(shown), figsize=(4.6 * len(shown), 3.6), squeeze=False)
    data = []
    for ax, r in zip(axes[0], shown, strict=True):
        for f in r.fits:
            rows = r.points[r.points["family"] == f.family]
            color = FAMILY_COLORS.get(f.family, "0.3")
            ax.plot(rows[r.axis], rows["accuracy"] * 100, "o", color=color, ms=4, alpha=0.8, label=f.family)
            data.append(rows.assign(claim=r.race.code, axis=r.axis))
            if f.identifiable:
                top = max(max(f.xs), r.crossover.estimate if r.crossover.outcome == "predicted" else 0)
                grid = np.logspace(np.log10(min(f.xs)), np.log10(top * 3), 200)
                band = np.array([f.error(grid, p) for p in f.draws])
                ax.plot(grid, (1 - f.error(grid)) * 100, color=color, lw=1.2)
                ax.fill_between(
                    grid,
                    *(100 * (1 - np.percentile(band, q, axis=0)) for q in (5, 95)),
                    color=color,
                    alpha=0.15,
                )
        if r.crossover.outcome == "predicted":
            ax.axvspan(*r.crossover.interval, color="0.85", zorder=0)
            ax.axvline(r.crossover.estimate, color="0.3", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("training compute (FLOPs)" if r.axis == "compute" else "pre-training images")
        ax.set_ylabel("transfer accuracy (%)")
        ax.set_title("\n".join(textwrap.wrap(f"{r.race.code}: {r.race.ahead} vs {r.race.behind} ({r.crossover.outcome})", 44)),
                     fontsize=9)  # fmt: skip
        ax.legend(fontsize=7)
    fig.tight_layout()
    write_figure(out, "scaling_fits", fig, pd.concat(data, ignore_index=True))
    return "scaling_fits"
