"""Rebuild a study's report from its stored results alone: tables beside the paper's numbers,
claim verdicts, seaborn figures (PNG + PDF + the data as CSV), and the scale and provenance."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports are files; never open a window
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from benchmark import data
from benchmark.config import RunConfig, run_id
from benchmark.errors import UserError
from benchmark.evals.finetune import DEV_FRACTION
from benchmark.results import load_curves, load_meta, load_results, load_runs
from benchmark.study import Study, Verdict

REPORT = "report.md"


def paper_style() -> None:
    """The look of the paper's plots: white background, light grid, small serif-free labels."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)


def build_report(
    study: Study,
    variant: str,
    results_root: Path,
    reports_root: Path,
    runs: list[RunConfig],
    overrides: dict[str, str] | None = None,
) -> tuple[Path, list[Verdict]]:
    """Write reports/<study>/<variant>/ from the stored results of `runs` and return the report's path and its verdicts.

    `variant` is the preset's name, suffixed with a hash when overrides were given.
    """
    preset = variant.split("@")[0]
    expected = {run_id(cfg) for cfg in runs}
    df = load_results(results_root, study.name, variant)
    df = df[df["run_id"].isin(expected)] if not df.empty else df
    if df.empty:
        raise UserError(
            f"no finished runs of {study.name}/{preset} under {results_root}; "
            f"run `vitbench run {study.name} --preset {preset}` first"
        )
    out = Path(reports_root) / study.name / variant
    out.mkdir(parents=True, exist_ok=True)
    states = load_runs(results_root, study.name, variant)
    states = states[states["run_id"].isin(expected)]
    flags = "".join(f" --set {k}={v}" for k, v in (overrides or {}).items())

    table = study.table(df)
    table.to_csv(out / "table.csv", index=False)
    verdicts = study.checks(df)
    pd.DataFrame([{**v.__dict__, "verdict": v.verdict} for v in verdicts]).to_csv(
        out / "verdicts.csv", index=False
    )

    paper_style()
    # A rebuilt report is byte-identical: seaborn's strip-plot jitter draws from NumPy's global
    # RNG, and a PDF carries its creation date unless told not to.
    np.random.seed(0)
    figure_files = []
    for name, (fig, fig_data) in study.figures(df, load_curves(results_root, study.name, variant)).items():
        for ext in ("png", "pdf"):
            metadata = {"CreationDate": None} if ext == "pdf" else None
            fig.savefig(out / f"{name}.{ext}", dpi=150, bbox_inches="tight", metadata=metadata)
        plt.close(fig)
        fig_data.to_csv(out / f"{name}.csv", index=False)
        figure_files.append(name)

    sections = [
        f"# {study.title} — `{preset}` preset",
        f"Reproduces **{study.reference}** of Dosovitskiy et al., ICLR 2021. "
        f"Rebuild with `vitbench report {study.name} --preset {preset}{flags}`; rerun with "
        f"`vitbench run {study.name} --preset {preset}{flags}`.",
        f"**The paper's claim.** {study.claim}",
        f"**Scale of this run.** {study.presets[preset]} Verdicts below are about this scale, "
        "not the paper's; where a claim does not hold here, the margin says by how much.",
        "## Verdicts",
        _markdown(_verdict_table(verdicts)),
        *[f"- *{v.claim}* — {v.note}" for v in verdicts if v.note],
        "## Our results beside the paper",
        _markdown(table),
        *[
            f"![{name}]({name}.png)\n\nData: [`{name}.csv`]({name}.csv), vector: [`{name}.pdf`]({name}.pdf)"
            for name in figure_files
        ],
        "## Scale and provenance",
        _provenance(df, states, expected, load_meta(results_root, study.name, variant)),
    ]
    failed = states[states["status"] == "failed"]
    if not failed.empty:
        sections += ["## Failed runs", _markdown(failed[["run_id", *study.cell, "seed", "error"]])]
    path = out / REPORT
    path.write_text("\n\n".join(sections) + "\n")
    return path, verdicts


def _verdict_table(verdicts: Iterable[Verdict]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "claim": v.claim,
                "paper": v.paper,
                "measured here": v.measured,
                "verdict": f"**{v.verdict}**",
                "margin": _margin(v),
                "rule": v.rule,
            }
            for v in verdicts
        ]
    )


def _margin(v: Verdict) -> str:
    if v.holds is None or math.isnan(v.margin):  # not judged, or a rule with no numeric threshold
        return "–"
    return f"{v.margin * 100:+.2f} pts" if v.unit == "pts" else f"{v.margin:+.2f} {v.unit}"


def _markdown(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False, floatfmt=".4g")


def _unique(series: pd.Series) -> str:
    """The distinct values as text: numbers in numeric order, then any others (e.g. "all")."""
    values = {str(v): v for v in series.dropna()}

    def order(text: str) -> tuple:
        v = values[text]
        return (
            (0, float(v), "") if isinstance(v, numbers.Real) and not isinstance(v, bool) else (1, 0.0, text)
        )

    return ", ".join(sorted(values, key=order)) if values else "–"


def _provenance(df: pd.DataFrame, runs: pd.DataFrame, expected: set[str], metas: list[dict]) -> str:
    datasets = sorted(set(df["data.dataset"]) | {d for ds in df["eval.fewshot_datasets"] for d in ds})
    lines = [
        f"- **Runs**: {len(df)} of {len(expected)} runs of this preset finished; "
        f"{int((runs['status'] == 'failed').sum())} failed; "
        f"{len(expected - set(runs['run_id']))} never started.",
        f"- **Models**: {_unique(df['model.arch'])}; {df['params'].min():,}–{df['params'].max():,} parameters "
        "(by variant).",
        f"- **Pre-training**: {_unique(df['data.dataset'])}, "
        f"train examples {_unique(df['data.train_examples'].map(lambda n: n or 'all'))}, "
        f"image size {_unique(df['data.image_size'].map(lambda s: s or 'native'))}, augmentation {_unique(df['data.augment'])}; "
        f"AdamW lr {_unique(df['optim.lr'])}, weight decay {_unique(df['optim.weight_decay'])}, "
        f"batch {_unique(df['optim.batch_size'])}, {_unique(df['optim.steps'])} steps "
        f"({_unique(df['optim.warmup_steps'])} warm-up, {_unique(df['optim.schedule'])} decay), "
        f"clip {_unique(df['optim.clip_norm'])}.",
        f"- **Few-shot probe**: closed-form regularised least squares on frozen pre-logits, "
        f"l2 = {_unique(df['eval.l2'])} (big_vision's fixed value), shots {_unique(df['eval.shots'])}, "
        f"{_unique(df['eval.fewshot_seeds'])} sampling seeds each; features whitened with the few-shot set's "
        "statistics, bias feature 100, targets ±1."
        + (
            " Also the l2 sweep 2^-10 … 2^19 with leave-self-out choice (`fewshot_lso/...`)."
            if df["eval.l2_sweep"].any()
            else ""
        )
        + (
            " Logistic-regression probe on all training examples (`linear/...`)."
            if df["eval.linear_probe"].any()
            else ""
        )
        + (
            f" Fine-tuning (`finetune/...`): {_unique(df['eval.finetune_steps'])} SGD steps, lr from "
            f"{_unique(df['eval.finetune_lrs'])} chosen on a {DEV_FRACTION:.0%} dev split."
            if (df["eval.finetune_steps"] > 0).any()
            else ""
        ),
        f"- **Seeds**: {_unique(df['seed'])} (model init and data order).",
        "- **Data**:\n" + "\n".join(f"  - `{name}`: {data.load(name).provenance}" for name in datasets),
        f"- **Hardware**: {_unique(pd.Series([m.get('device') for m in metas]))}.",
        f"- **Software**: {_versions(metas)}; git revision {_revisions(metas)}.",
        f"- **Compute**: {df['wall_s'].sum() / 60:.1f} min of run wall time in total "
        f"({df['wall_s'].mean():.0f} s per run on average); "
        f"{df['train_flops'].sum() / 1e15:.3g} PFLOPs of training (torch's FLOP counter, forward + backward).",
    ]
    return "\n".join(lines)


def _versions(metas: list[dict]) -> str:
    if not metas:
        return "unknown"
    seen = {json.dumps(m.get("versions", {}), sort_keys=True) for m in metas}
    versions = json.loads(sorted(seen)[0])
    text = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    return text + (f" (and {len(seen) - 1} other version sets)" if len(seen) > 1 else "")


def _revisions(metas: list[dict]) -> str:
    revs = {(m.get("git") or {}).get("revision") or "unknown" for m in metas}
    dirty = any((m.get("git") or {}).get("dirty") for m in metas)
    return ", ".join(r[:10] for r in sorted(revs)) + (" (with uncommitted changes)" if dirty else "")
