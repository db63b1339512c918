"""Rebuild a study's report from its stored results alone: tables beside the paper's numbers,
claim verdicts with their tests, seaborn figures (PNG + PDF + the data as CSV), and the scale and
provenance. Everything it says about data and protocols was recorded by the runs at train time:
a report loads no dataset and imports no torch. Every file is written atomically."""

from __future__ import annotations

import io
import json
import numbers
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports are files; never open a window
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from benchmark.config import RunConfig, run_id
from benchmark.errors import UserError
from benchmark.results import scan, write_atomic
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
    """Write reports/<study>/<variant>/ from the stored results of `runs`; return the report's path
    and the verdicts it states.

    `variant` is the preset's name, suffixed with a hash when overrides were given.
    """
    preset = variant.split("@")[0]
    expected = {run_id(cfg) for cfg in runs}
    records = scan(results_root, study.name, variant, runs)  # one pass; damaged records repaired
    df, states = records.results, records.runs
    if df.empty:
        raise UserError(
            f"no finished runs of {study.name}/{preset} under {results_root}; "
            f"run `vitbench run {study.name} --preset {preset}` first"
        )
    out = Path(reports_root) / study.name / variant
    out.mkdir(parents=True, exist_ok=True)
    flags = "".join(f" --set {k}={v}" for k, v in (overrides or {}).items())

    # A study returns one table, or several as {heading: table} (e.g. ours, then the paper's own).
    tables = study.table(df)
    tables = tables if isinstance(tables, dict) else {"": tables}
    for i, table in enumerate(tables.values()):
        write_atomic(out / f"table{i + 1 if i else ''}.csv", table.to_csv(index=False).encode())
    verdicts = study.checks(df)
    frame = pd.DataFrame([{**v.__dict__, "verdict": v.verdict} for v in verdicts])
    write_atomic(out / "verdicts.csv", frame.to_csv(index=False).encode())

    paper_style()
    # A rebuilt report is byte-identical: seaborn's strip-plot jitter draws from NumPy's global
    # RNG, and a PDF carries its creation date unless told not to.
    np.random.seed(0)
    figure_files = []
    for name, (fig, fig_data) in study.figures(df, records.curves).items():
        for ext in ("png", "pdf"):
            metadata = {"CreationDate": None} if ext == "pdf" else None
            buffer = io.BytesIO()
            fig.savefig(buffer, format=ext, dpi=150, bbox_inches="tight", metadata=metadata)
            write_atomic(out / f"{name}.{ext}", buffer.getvalue())
        plt.close(fig)
        write_atomic(out / f"{name}.csv", fig_data.to_csv(index=False).encode())
        figure_files.append(name)

    sections = [
        f"# {study.title} — `{preset}` preset",
        f"Reproduces **{study.reference}** of Dosovitskiy et al., ICLR 2021. "
        f"Rebuild with `vitbench report {study.name} --preset {preset}{flags}`; rerun with "
        f"`vitbench run {study.name} --preset {preset}{flags}`.",
        f"**The paper's claim.** {study.claim}",
        f"**Scale of this run** ({study.presets[preset]}). {_scale(df, study.cell)} Verdicts below are about "
        "this scale, not the paper's; where a claim does not hold here, the margin says by how much.",
        "## Verdicts",
        _markdown(_verdict_table(verdicts)),
        *[_verdict_details(v) for v in verdicts],
        "## Our results beside the paper",
        *[
            f"### {heading}\n\n{_markdown(table)}" if heading else _markdown(table)
            for heading, table in tables.items()
        ],
        *[
            f"![{name}]({name}.png)\n\nData: [`{name}.csv`]({name}.csv), vector: [`{name}.pdf`]({name}.pdf)"
            for name in figure_files
        ],
        "## Data: what is transfer and what is upstream",
        _datasets(df),
        "## Evaluation protocol (as recorded by the runs)",
        _protocol(df),
        "## Scale and provenance",
        _provenance(df, states, expected, records.metas, records.warnings),
    ]
    failed = states[states["status"] == "failed"]
    if not failed.empty:
        sections += ["## Failed runs", _markdown(failed[["run_id", *study.cell, "seed", "error"]])]
    path = out / REPORT
    write_atomic(path, ("\n\n".join(sections) + "\n").encode())
    return path, verdicts


def _verdict_table(verdicts: Iterable[Verdict]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "claim": v.claim,
                "paper": v.paper,
                "measured here": v.measured,
                "verdict": f"**{v.verdict}**",
                "margin": v.margin_text,
            }
            for v in verdicts
        ]
    )


def _verdict_details(v: Verdict) -> str:
    """The rule, the statistics and the data behind one verdict, and why it fails where it does."""
    lines = [f"**{v.claim}** — {v.verdict}."]
    lines += [f"- *{label}*: {text}" for label, text in (
        ("Rule", v.rule), ("Evidence", v.evidence), ("Judged on", v.judged_on), ("Note", v.note),
    ) if text and text != "–"]  # fmt: skip
    return "\n".join(lines)


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


def _scale(df: pd.DataFrame, cell: Iterable[str]) -> str:
    """The scale as the runs recorded it: models, data, steps, epochs, seeds per cell."""
    epochs = (
        df["optim.steps"] * df["optim.batch_size"].clip(upper=df["train_examples"]) / df["train_examples"]
    )
    seeds = (
        df.groupby(list(cell), dropna=False)["seed"].nunique() if cell else pd.Series([df["seed"].nunique()])
    )
    grids = _unique(df["patch_grid"].map(lambda g: f"{g[0]}x{g[1]}" if g else "no tokens (a ResNet)"))
    return (
        f"Models {_unique(df['model.arch'])} ({df['params'].min():,}–{df['params'].max():,} parameters, "
        f"{_unique(df['image_size'])} px images; token grids {grids}), pre-trained from scratch on "
        f"{_unique(df['train_examples'])} images of `{'`, `'.join(sorted(set(df['data.dataset'])))}` for "
        f"{_unique(df['optim.steps'])} steps of batch {_unique(df['optim.batch_size'])} "
        f"({_unique(epochs.round(1))} epochs); {_unique(seeds)} seed(s) per cell."
    )


def _datasets(df: pd.DataFrame) -> str:
    records = {name: rec for datasets in df["datasets"] for name, rec in datasets.items()}
    return "\n".join(
        f"- `{name}` — **{rec['role']}**. {rec['provenance']}." for name, rec in sorted(records.items())
    )


def _protocol(df: pd.DataFrame) -> str:
    described = {(name, text) for protocol in df["protocol"] for name, text in protocol.items()}
    return "\n".join(f"- `{name}`: {text}." for name, text in sorted(described))


def _provenance(
    df: pd.DataFrame, runs: pd.DataFrame, expected: set[str], metas: list[dict], warnings: list[str]
) -> str:
    started = runs[runs["status"] != "pending"]
    mixed = runs.dropna(subset=["mixed"]) if "mixed" in runs else runs.iloc[:0]
    lines = [
        f"- **Runs**: {len(df)} of {len(expected)} runs of this preset finished; "
        f"{int((runs['status'] == 'failed').sum())} failed; "
        f"{len(expected) - len(started)} never started.",
        *[f"- **Record repaired or set aside**: {w}" for w in warnings],
        *[f"- **Run {r.run_id} trained across changes**: {r.mixed}." for r in mixed.itertuples()],
        f"- **Pre-training**: AdamW lr {_unique(df['optim.lr'])}, weight decay {_unique(df['optim.weight_decay'])}, "
        f"batch {_unique(df['optim.batch_size'])}, {_unique(df['optim.steps'])} steps "
        f"({_unique(df['optim.warmup_steps'])} warm-up, {_unique(df['optim.schedule'])} decay), "
        f"clip {_unique(df['optim.clip_norm'])}, augmentation {_unique(df['data.augment'])}.",
        f"- **Seeds**: {_unique(df['seed'])} (model init and data order).",
        f"- **Hardware**: {_unique(pd.Series([m.get('device') for m in metas]))}.",
        f"- **Software**: {_versions(metas)}; git revision {_revisions(metas)}.",
        f"- **Compute**: {df['wall_s'].sum() / 60:.1f} min of run wall time in total "
        f"({df['wall_s'].mean():.0f} s per run on average); "
        f"{df['train_flops'].sum() / 1e15:.3g} PFLOPs of training (torch's FLOP counter, forward + backward, "
        "a multiply-add counted as 2 FLOPs).",
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
    """Every revision any attempt of any run trained with (a resumed run may have several)."""
    attempts = [a for m in metas for a in m.get("attempts", [])]
    revs = {a.get("revision") or "unknown" for a in attempts}
    dirty = any(a.get("dirty") for a in attempts)
    return ", ".join(r[:10] for r in sorted(revs)) + (" (with uncommitted changes)" if dirty else "")
