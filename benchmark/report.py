"""Rebuild a study's report from its stored results alone: tables beside the paper's numbers,
claim verdicts with their tests, seaborn figures (PNG + PDF + the data as CSV), and the scale and
provenance. Everything it says about data and protocols was recorded by the runs at train time:
a report loads no dataset and imports no torch. Every file is written atomically."""

from __future__ import annotations

import io
import json
import numbers
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # reports are files; never open a window
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from benchmark import fit
from benchmark.config import RunConfig, run_id
from benchmark.errors import UserError
from benchmark.presets import from_checkpoints
from benchmark.results import StudyRecords, scan
from benchmark.storage import write_atomic
from benchmark.study import REPRODUCED, Study, Verdict

REPORT = "report.md"


def paper_style() -> None:
    """The look of the paper's plots: white background, light grid, small serif-free labels."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)


@dataclass(frozen=True)
class Built:
    """A report as written: its path, the verdicts it states, and what it read to judge them (the
    finished runs with their fit gate, and their records), for a caller that needs them too."""

    path: Path
    verdicts: list[Verdict]
    runs: pd.DataFrame
    records: StudyRecords


def build_report(
    study: Study,
    variant: str,
    results_root: Path,
    reports_root: Path,
    runs: list[RunConfig],
    overrides: dict[str, str] | None = None,
) -> Built:
    """Write reports/<study>/<variant>/ from the stored results of `runs`; return the report's path,
    the verdicts it states and what it judged them on (`Built`).

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

    df, fits = _with_fit(df, records.curves)
    # A study returns one table, or several as {heading: table} (e.g. ours, then the paper's own).
    # Its words say "transfer"; where the runs' own records say a probe reads back pre-training
    # data, the report says so instead, in every table, verdict and figure (issue 23 item 3).
    read_back = _read_back(df)
    tables = study.table(df)
    tables = {
        k: _relabel_table(t, read_back)
        for k, t in (tables if isinstance(tables, dict) else {"": tables}).items()
    }
    for i, table in enumerate(tables.values()):
        write_atomic(out / f"table{i + 1 if i else ''}.csv", table.to_csv(index=False).encode())
    verdicts = [_relabel_verdict(v, read_back) for v in sorted(study.checks(df), key=lambda v: not v.control)]
    # `effect` is the one-cell summary the terminal prints, kept so a reader of the CSV (and the
    # README's example, generated from it) sees exactly what `vitbench run` printed.
    frame = pd.DataFrame([{**v.__dict__, "effect": v.effect_text} for v in verdicts])
    write_atomic(out / "verdicts.csv", frame.to_csv(index=False).encode())

    paper_style()
    # A rebuilt report is byte-identical: seaborn's strip-plot jitter draws from NumPy's global
    # RNG, and a PDF carries its creation date unless told not to.
    np.random.seed(0)
    figure_files = []
    for name, (fig, fig_data) in study.figures(df, records.curves).items():
        _relabel_figure(fig, read_back)
        write_figure(out, name, fig, fig_data)
        figure_files.append(name)

    sections = [
        f"# {study.title} — `{preset}` preset",
        f"Reproduces **{study.reference}** of Dosovitskiy et al., ICLR 2021. "
        f"Rebuild with `vitbench report {study.name} --preset {preset}{flags}`; rerun with "
        f"`vitbench run {study.name} --preset {preset}{flags}`.",
        f"**The paper's claim.** {study.claim}",
        f"**Scale of this run** ({study.presets[preset]}). {_scale(df, study.cell)} Verdicts below are about "
        "this scale, not the paper's.",
        "## Verdicts",
        *(
            [
                f"**Read-back, not transfer.** The probe datasets {', '.join(f'`{n}`' for n in read_back)} re-use the "
                "pre-training data's images or classes (the data section below says how): these verdicts measure how "
                "well the upstream classifier reads its own data back, not transfer, and 'transfer' reads "
                "'read-back' throughout this report."
            ]
            if read_back
            else []
        ),
        OUTCOMES_TEXT,
        *_unreliable(verdicts),
        _markdown(_verdict_table(verdicts)),
        *[_verdict_details(v) for v in verdicts],
        *(_fit_section(df, fits, study.cell) if not from_checkpoints(df) else []),
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
    return Built(path, verdicts, df, records)


def _with_fit(df: pd.DataFrame, curves: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The finished runs with each one's upstream fit from its stored curve (benchmark.fit): the gate
    a comparison between two families or variants is judged behind (`fit_ok`, `fit_text`), and the
    fit table itself."""
    fits = fit.fit_table(df, curves)
    df = df.merge(fits[["run_id", "plateaued", "fit, in words"]], on="run_id", how="left").rename(
        columns={"plateaued": "fit_ok", "fit, in words": "fit_text"}
    )
    return df, fits


def write_figure(out: Path, name: str, fig: plt.Figure, data: pd.DataFrame) -> None:
    """A figure as PNG and PDF and the data it plots as CSV, each written atomically and
    byte-identical on rebuild (a PDF carries its creation date unless told not to); closes it."""
    for ext in ("png", "pdf"):
        metadata = {"CreationDate": None} if ext == "pdf" else None
        buffer = io.BytesIO()
        fig.savefig(buffer, format=ext, dpi=150, bbox_inches="tight", metadata=metadata)
        write_atomic(out / f"{name}.{ext}", buffer.getvalue())
    plt.close(fig)
    write_atomic(out / f"{name}.csv", data.to_csv(index=False).encode())


OUTCOMES_TEXT = (
    "Each claim predicts an effect, derived from the paper's own numbers and scaled to our accuracy range "
    "before the data. **Reproduced**: the interval clears no-effect in the predicted direction (for a parity "
    "claim, it lies inside the margin). **Contradicted**: the interval excludes the predicted effect (smaller "
    "than predicted or of the opposite sign; for parity, a difference beyond the margin). **Inconclusive**: "
    "neither; this run could not tell, and the reason says why. MDE: the minimum effect these seeds detect "
    "with 80% power; power: the chance of 'reproduced' if the predicted effect is true. Controls come first: "
    "effects known to exist, which show that the study can detect one."
)


def _read_back(df: pd.DataFrame) -> list[str]:
    """The probe datasets the runs recorded as reading back their pre-training data."""
    records = {name: rec for datasets in df["datasets"] for name, rec in datasets.items()}
    probes = {name for names in df["eval.fewshot_datasets"] for name in names}
    return sorted(n for n in probes if str(records.get(n, {}).get("role", "")).startswith("read-back"))


def _relabel(text: str, read_back: list[str]) -> str:
    return text.replace("transfer", "read-back") if read_back and isinstance(text, str) else text


def _relabel_table(table: pd.DataFrame, read_back: list[str]) -> pd.DataFrame:
    return table.rename(columns=lambda c: _relabel(c, read_back)) if read_back else table


def _relabel_verdict(v: Verdict, read_back: list[str]) -> Verdict:
    if not read_back:
        return v
    return replace(
        v,
        claim=_relabel(v.claim, read_back),
        judged_on=f"READ-BACK, NOT TRANSFER: {_relabel(v.judged_on, read_back)}",
    )


def _relabel_figure(fig: plt.Figure, read_back: list[str]) -> None:
    """A study's figure, every text in it (titles, labels, legends) worded by the data's role."""
    for text in fig.findobj(matplotlib.text.Text) if read_back else ():
        text.set_text(_relabel(text.get_text(), read_back))


def _unreliable(verdicts: list[Verdict]) -> list[str]:
    """A failed control makes the study's other verdicts unreliable at this preset: said first."""
    failed = [v for v in verdicts if v.control and v.outcome != REPRODUCED]
    return [
        f"**Unreliable at this preset**: the control '{v.claim}' was not detected ({v.outcome}: {v.reason}; "
        f"{v.measured}), so this study's other verdicts cannot be trusted here."
        for v in failed
    ]


def _verdict_table(verdicts: Iterable[Verdict]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "claim": v.claim,
                "paper": v.paper,
                "measured here": v.measured,
                "outcome": f"**{v.outcome}**",
                "effect [90% interval]; predicted; MDE; power": v.effect_text,
            }
            for v in verdicts
        ]
    )


def _verdict_details(v: Verdict) -> str:
    """Why the outcome, against which prediction, by which rule and on which statistics."""
    lines = [f"**{v.claim}** — {v.outcome}: {v.reason}."]
    lines += [f"- *{label}*: {text}" for label, text in (
        ("Predicted", v.predicted), ("Rule", v.rule), ("Evidence", v.evidence), ("Judged on", v.judged_on),
        ("Note", v.note),
    ) if text and text != "–"]  # fmt: skip
    return "\n".join(lines)


def _fit_table(df: pd.DataFrame, fits: pd.DataFrame, cell: Iterable[str]) -> pd.DataFrame:
    """Per cell: upstream train and test top-1 at the end of training, the last quarter's gain, and
    how many of its runs passed the gate."""
    rows = df[["run_id", *cell]].merge(fits, on="run_id")
    if rows.empty:
        return pd.DataFrame({"fit": ["no curves recorded"]})
    out = rows.groupby(list(cell), dropna=False).agg(
        **{"upstream train top-1 (%)": ("upstream train top-1", "mean"),
           "upstream test top-1 (%)": ("upstream test top-1", "mean"),
           "train gain, last quarter (pts)": ("train gain, last quarter", "mean"),
           "test gain, last quarter (pts)": ("test gain, last quarter", "mean"),
           "passed": ("plateaued", "sum"), "runs": ("run_id", "count"), "fit": ("fit", lambda s: ", ".join(sorted(set(s))))})  # fmt: skip
    out[[c for c in out if "(%)" in c or "(pts)" in c]] *= 100
    return out.round(1).reset_index()


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


def _fit_section(df: pd.DataFrame, fits: pd.DataFrame, cell: Iterable[str]) -> list[str]:
    return [
        "## Upstream fit: the gate comparisons are judged behind",
        f"A run passes when its upstream curve has plateaued: neither its train nor its test top-1 rose, over the "
        f"last quarter of training, by {fit.PLATEAU_FRACTION:.0%} or more of its train top-1 above chance "
        "(benchmark.fit). A comparison between families (data_scaling, compute) is judged only when the runs it "
        "compares pass; the other studies report the gate so a reader sees whether the variants trained alike.",
        _markdown(_fit_table(df, fits, cell)),
    ]


def _seeded(df: pd.DataFrame) -> str:
    """What a run's seed draws: a released checkpoint's seed draws nothing of its pre-trained weights."""
    if from_checkpoints(df):
        return ("what the evaluators draw: fine-tuning's head, data order and crops, an untrained architecture's "
                "initialisation; never the checkpoint's weights")  # fmt: skip
    return "model init and data order"


def _scale(df: pd.DataFrame, cell: Iterable[str]) -> str:
    """The scale as the runs recorded it: models, data, steps, epochs, seeds per cell."""
    if from_checkpoints(df):
        return (
            f"The authors' released checkpoints {', '.join(f'`{n}`' for n in sorted(set(df['model.checkpoint'])))} "
            f"({df['params'].min():,}–{df['params'].max():,} parameters, evaluated at {_unique(df['image_size'])} px), "
            f"pre-trained by the authors on `{'`, `'.join(sorted(set(df['data.dataset'])))}`, not trained here; "
            "each file is pinned by its sha256 (the run ids cover it)."
        )
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
        _pretraining(df),
        f"- **Seeds**: {_unique(df['seed'])} ({_seeded(df)}).",
        f"- **Hardware**: {_unique(pd.Series([m.get('device') for m in metas]))}{_math(metas)}. Numbers move "
        "across CPU models, math libraries and thread counts by about a seed's spread, and an outcome whose interval "
        "lies near its threshold can move with them, between inconclusive and decided (the README gives a measured "
        "case).",
        f"- **Software**: {_versions(metas)}; git revision {_revisions(metas)}.",
        f"- **Compute**: {df['wall_s'].sum() / 60:.1f} min of run wall time in total "
        f"({df['wall_s'].mean():.0f} s per run on average{_split(df)}); "
        f"{df['train_flops'].sum() / 1e15:.3g} PFLOPs of training (torch's FLOP counter, forward + backward, "
        "a multiply-add counted as 2 FLOPs).",
    ]
    return "\n".join(lines)


def _pretraining(df: pd.DataFrame) -> str:
    if from_checkpoints(df):
        pinned = ", ".join(
            f"`{name}` (sha256 {digest[:12]}…)"
            for name, digest in sorted(
                set(zip(df["model.checkpoint"], df["model.checkpoint_sha256"], strict=True))
            )
        )
        return f"- **Pre-training**: none here; the released checkpoints, each file pinned: {pinned}."
    return (
        f"- **Pre-training**: AdamW lr {_unique(df['optim.lr'])}, weight decay {_unique(df['optim.weight_decay'])}, "
        f"batch {_unique(df['optim.batch_size'])}, {_unique(df['optim.steps'])} steps "
        f"({_unique(df['optim.warmup_steps'])} warm-up, {_unique(df['optim.schedule'])} decay), "
        f"clip {_unique(df['optim.clip_norm'])}, augmentation {_unique(df['data.augment'])}."
    )


def _math(metas: list[dict]) -> str:
    """The CPU features and math libraries the runs computed with (as torch reported them)."""
    seen = {(c.get("capability"), c.get("blas"), c.get("onednn")) for m in metas if (c := m.get("cpu"))}
    return "".join(f"; {cap or '?'} kernels, BLAS {blas or '?'}, oneDNN {'on' if dnn else 'off'}"
                   for cap, blas, dnn in sorted(seen, key=str))  # fmt: skip


def _split(df: pd.DataFrame) -> str:
    """Where the runs' wall time went (recorded per run by the trainer): training or evaluation."""
    if "wall_split" not in df or df["wall_split"].isna().any():
        return ""
    timing = pd.DataFrame(list(df["wall_split"])).sum()
    total = timing.sum()
    parts = ", ".join(
        f"{name.replace('_s', '').replace('_', ' ')} {value / total:.0%}" for name, value in timing.items()
    )
    return f"; {parts}"


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
