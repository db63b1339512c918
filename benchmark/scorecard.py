"""The scorecard: every claim of the paper on one page (`vitbench report --all` → REPORTS/README.md).

It rebuilds the report of every study at every preset that has finished runs (stored results
only: it never trains), and writes one row per claim and preset: the paper's evidence, ours, the
verdict, its test and the scale and provenance the runs recorded, with a link to the study's report.
A claim whose study has no results says "not run" and gives the command that runs it; so does a
claim whose study's `released` preset (the paper's released checkpoints) has none, saying that it
needs the released weights. The output depends on the stored files alone, so a rebuild is
byte-identical.

Which verdicts make up which claim is the mapping below (CLAIMS): a study stays one file, and the
page's rows are decided in one place.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmark import ladder, scaling
from benchmark.errors import UserError
from benchmark.results import StudyRecords
from benchmark.storage import write_atomic
from benchmark.study import OUTCOMES, REPRODUCED, Verdict, list_studies, load_study

SCORECARD = "README.md"
# The preset that starts from the paper's released checkpoints (benchmark.released): it needs their
# files, which nothing here downloads unless asked, so its claims say so until its runs are done.
RELEASED = "released"
SCALE = "scale"  # the charts of each claim across scale and the scaling fits, beside the page
CHARTED = ("C1", "C2", "C3", "C4", "C5", "C6", "C7")  # Table 6 is a count: the same at every preset


@dataclass(frozen=True)
class Claim:
    code: str
    title: str
    study: str
    verdicts: tuple[str, ...] = ()  # words the study's verdict claims contain (lower case); () = all


CLAIMS = (
    Claim("C1", "Data scaling: ViT needs more pre-training data than BiT, then overtakes it", "data_scaling"),
    Claim("C2", "Compute: ViT needs less pre-training compute than BiT, and does not saturate", "compute",
          ("needs less compute", "saturate")),
    Claim("C3", "Hybrids: ahead of ViT at small budgets, less so at large; attend less locally early on",
          "compute", ("hybrids beat", "advantage shrinks")),
    Claim("C3", "Hybrids: ahead of ViT at small budgets, less so at large; attend less locally early on",
          "inspect", ("hybrid attends",)),
    Claim("C4", "Position embeddings: none is clearly worse; the encodings differ little", "pos_embed"),
    Claim("C5", "Head type: GAP matches a class token once its learning rate is tuned", "head_type"),
    Claim("C6", "Few-shot proxy (the suite's own claim): linear few-shot accuracy ranks models as fine-tuning does",
          "few_shot"),
    Claim("C7", "Inspection: global heads in low layers, distance grows with depth, row/column embeddings",
          "inspect", ("globally", "grows with depth", "row/column")),
    Claim("Table 6", "Accounting: our FLOP count reproduces Table 6's exaFLOPs", "compute", ("flop count",)),
)  # fmt: skip


def _selected(claim: Claim, verdicts: list[Verdict]) -> list[Verdict]:
    return [v for v in verdicts if not claim.verdicts or any(w in v.claim.lower() for w in claim.verdicts)]


def _provenance(records: StudyRecords) -> str:
    """Seeds, hardware, date and revision, as the runs recorded them (meta.json, result.json)."""
    df, metas = records.results, records.metas
    attempts = [a for m in metas for a in m.get("attempts", [])]
    devices = sorted({str(m.get("device")) for m in metas if m.get("device")})
    revisions = sorted({str(a.get("revision"))[:10] for a in attempts if a.get("revision")})
    last = max((a["start"] for a in attempts if "start" in a), default=None)
    date = datetime.datetime.fromtimestamp(last, datetime.UTC).date().isoformat() if last else "unknown"
    return (
        f"{len(df)} runs, seeds {', '.join(map(str, sorted(df['seed'].unique())))}; "
        f"{', '.join(devices) or 'unknown hardware'}; last started {date}; revision {', '.join(revisions) or 'unknown'}"
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def build_scorecard(results_root: Path, reports_root: Path) -> tuple[Path, list[str]]:
    """Rebuild every study's report at every preset with results, and write the scorecard page;
    return its path and what the terminal says of it (the outcomes per preset, the crossovers)."""
    from benchmark.report import build_report

    judged: dict[tuple[str, str], tuple[list[Verdict], str]] = {}
    compute: dict[tuple[str, str], float] = {}  # the training FLOPs of each one's largest run
    points: dict[str, dict[str, pd.DataFrame | None]] = {}  # study -> preset -> its runs for the scaling fits
    for name in list_studies():
        study = load_study(name)
        for preset in study.presets:
            try:
                built = build_report(study, preset, results_root, reports_root, study.runs(preset))
            except UserError:  # no finished runs of this preset
                continue
            judged[(name, preset)] = (built.verdicts, _provenance(built.records))
            compute[(name, preset)] = float(built.runs["train_flops"].max())
            if preset in ladder.RUNGS:  # the scaling fits pool the runs trained here
                points.setdefault(name, {})[preset] = study.points(built.runs)
    rows, tests, charted = [_parameter_row()], [], []
    outcomes: list[tuple[str, str]] = []  # (preset, outcome) of each claim's verdict: the counts
    controls = {key: [v for v in verdicts if v.control] for key, (verdicts, _) in judged.items()}
    for key, found in sorted(controls.items()):
        for v in found:
            rows.append(_row("Control", v, key[1], key[0], controls[key]))
            tests.append(_decided("Control", v, key[1]))
    for claim in CLAIMS:
        study = load_study(claim.study)
        presets = [p for p in study.presets if (claim.study, p) in judged]
        if not presets:
            rows.append({"claim": f"{claim.code}: {claim.title} ({study.reference})", "preset": "not run",
                         "outcome": f"`vitbench run {claim.study} --preset cpu`", "effect": "–", "report": "–"})  # fmt: skip
        for preset in presets:
            verdicts, _ = judged[(claim.study, preset)]
            for v in _selected(claim, [v for v in verdicts if not v.control]):
                rows.append(_row(claim.code, v, preset, claim.study, controls[(claim.study, preset)]))
                if claim.code in CHARTED:  # the claims; Table 6 is a count, as Table 1
                    outcomes.append((preset, v.outcome))
                tests.append(_decided(claim.code, v, preset))
                # A claim's chart is our training ladder; the released checkpoints were not trained here.
                if claim.code in CHARTED and preset in ladder.RUNGS:
                    charted.append((claim.code, study, preset, v))
        if RELEASED in study.presets and (claim.study, RELEASED) not in judged:
            title = f"{claim.code}: {claim.title} ({study.reference})"
            rows.append(_needs_weights(title, claim.study, Path(reports_root)))
    claimed = {claim.study for claim in CLAIMS}
    for name in list_studies():  # a study with a released preset that no claim above reads
        study = load_study(name)
        if name not in claimed and RELEASED in study.presets and (name, RELEASED) not in judged:
            rows.append(_needs_weights(f"{name}: {study.claim}", name, Path(reports_root)))
    scale = Path(reports_root) / SCALE
    charts = ladder.draw_claims(ladder.claim_points(charted, compute), scale)
    races = ladder.fit_races(points)
    fits_figure = ladder.draw_fits(races, scale)
    sources = pd.DataFrame(
        [
            {
                "study": name,
                "preset": preset,
                "runs, seeds, hardware, date, revision": provenance,
                "report": f"[{name}/{preset}]({name}/{preset}/report.md)",
            }
            for (name, preset), (_, provenance) in sorted(judged.items())
        ]
    )
    table = pd.DataFrame(rows).map(lambda t: _cell(str(t)))
    text = "\n\n".join([
        "# Scorecard: the claims of Dosovitskiy et al. (ICLR 2021), judged at our scale",
        "Generated by `vitbench report --all` from the stored results (it never trains); do not edit. One row "
        "per claim and preset with results: its outcome, our effect with its interval beside the effect the claim "
        "predicts, and a link to the study's report (a claim not run yet gives the command that runs it; at a "
        "`released` preset, that it needs the paper's released weights); the paper's evidence and ours, in words, "
        "follow the table. "
        "Each claim predicts an "
        "effect from the paper's own numbers, scaled to our accuracy range before the data: **reproduced** when the "
        "interval clears no-effect in the predicted direction (for parity, lies inside the margin), "
        "**contradicted** when it excludes the predicted effect, **inconclusive** when this run could not tell "
        "(the study's report says why, with the minimum detectable effect). Outcomes are about the scale the runs "
        "had, not the paper's. Controls come first: effects known to exist; a study whose control was not "
        "detected is marked unreliable at that preset.",
        *_across(charts),
        _counts(outcomes),
        table.to_markdown(index=False),
        "## The paper's evidence, ours, and how each outcome was decided",
        "\n".join(tests) or "No verdicts yet.",
        "Table 1: |ours − Table 1| / Table 1 ≤ 1% for each model (a 1000-class linear head at 224 px; Table 1 "
        "rounds to 1M), counted on the meta device by `benchmark.models.param_count`.",
        *_fits_section(races, fits_figure),
        "## Where the numbers come from",
        sources.map(lambda t: _cell(str(t))).to_markdown(index=False) if len(sources) else "No results yet.",
        *_not_rebuilt(Path(reports_root), judged),
    ])  # fmt: skip
    path = Path(reports_root) / SCORECARD
    write_atomic(path, (text + "\n").encode())
    crossings = [f"{r.race.code} ({r.race.ahead} overtakes {r.race.behind}, against {r.axis}): "
                 f"{r.crossover.outcome}" for r in races]  # fmt: skip
    return path, [_counts(outcomes).replace("\n\n", "\n"), *crossings]


def _across(charts: dict[str, str]) -> list[str]:
    """The small multiples of every claim across scale, and a link to each claim's own chart."""
    if not charts:
        return []
    links = ", ".join(
        f"[{title.split(':')[0]}]({SCALE}/{name}.png)" for name, title in charts.items() if name != "claims"
    )
    return [
        f"![Each claim across scale]({SCALE}/claims.png)",
        "**Each claim across scale.** x: the training compute of the largest run the study trained at that "
        "preset (FLOPs, log scale); y: the claim's effect with its 90% interval, one point per preset with "
        "results, coloured by its outcome (hollow on the no-effect line: no estimate at that preset); a black "
        "tick: the effect predicted at that scale (± the margin for 'differ little'); a blue star: the paper's own "
        "effect at its compute (Table 6), a dotted line where the paper states no compute. Each claim's chart, "
        f"its data beside it as CSV: {links}.",
    ]


def _fits_section(races: list, figure: str | None) -> list[str]:
    """C1–C3's scaling fits and predicted crossovers, as a table and a figure."""
    if not races:
        return []
    lines = [
        "## Scaling fits and predicted crossovers (C1–C3)",
        "Each family's transfer error (1 − the study's judged accuracy) against training compute and against "
        "pre-training images, fitted with the saturating power law of Zhai et al. (2022), error = a·(x + d)^(−b) "
        f"+ c, by least squares on every run that passed the fit gate at every preset but `{ladder.PIPELINE_CHECK}`; "
        f"90% intervals from {scaling.DRAWS} bootstrap draws over seeds (benchmark.scaling). A crossover is "
        "where the family the paper says wins overtakes the other: an **extrapolation** beyond our data, reported "
        f"only when each fit has at least {scaling.MIN_POINTS} distinct x values, {scaling.AGREE:.0%} of the draws "
        f"agree, and its interval spans at most {scaling.MAX_DECADES:g} decades; otherwise 'not identifiable', with "
        "the reason.",
        "The fits:",
        _markdown_table(ladder.fits_table(races)),
        "The crossovers, beside the paper's:",
        _markdown_table(ladder.crossovers_table(races)),
    ]
    if figure:
        lines.append(f"![Scaling fits]({SCALE}/{figure}.png)\n\nData: [`{figure}.csv`]({SCALE}/{figure}.csv)")
    return lines


def _markdown_table(table: pd.DataFrame) -> str:
    return table.map(lambda t: _cell(str(t))).to_markdown(index=False)


def _not_rebuilt(reports_root: Path, judged: Mapping[tuple[str, str], object]) -> list[str]:
    """Reports under REPORTS whose results are not under RESULTS: kept as they were (their own
    provenance says when and from what), linked, and left out of this page's rows and charts."""
    kept = sorted(
        (study.name, preset)
        for study in map(load_study, list_studies())
        for preset in study.presets
        if (reports_root / study.name / preset / "report.md").exists() and (study.name, preset) not in judged
    )
    if not kept:
        return []
    links = ", ".join(f"[{s}/{p}]({s}/{p}/report.md)" for s, p in kept)
    return [
        f"Reports kept as they were, left out of this page because their results are not in the results folder "
        f"it was built from (each report's own provenance says when and from which revision): {links}. Rebuild "
        "them with their results present to bring them onto this page."
    ]


def _needs_weights(claim: str, study: str, reports_root: Path) -> dict[str, str]:
    """The row of a claim (or study) whose `released` preset has no finished runs here: it needs the
    released weights, and the command that runs it. A report of it kept from elsewhere (built where
    its results are; `_not_rebuilt` names it) is linked, not judged on this page."""
    command = f"`vitbench run {study} --preset {RELEASED} --weights DIR`"
    kept = (reports_root / study / RELEASED / "report.md").exists()
    outcome = f"not run: needs the released weights: {command}"
    if kept:
        outcome = f"not run here (its report is kept as it was, not judged on this page): needs the released weights: {command}"
    return {"claim": claim, "preset": RELEASED, "outcome": outcome, "effect": "–",
            "report": f"[{study}/{RELEASED}]({study}/{RELEASED}/report.md)" if kept else "–"}  # fmt: skip


def _row(code: str, v: Verdict, preset: str, study: str, controls: list[Verdict]) -> dict[str, str]:
    unreliable = any(c.outcome != REPRODUCED for c in controls) and not v.control
    outcome = f"**{v.outcome}**" + (" (unreliable: control not detected)" if unreliable else "")
    claim = f"{study}: {v.claim.removeprefix('Control: ')}" if v.control else v.claim
    return {"claim": f"{code}: {claim}", "preset": preset, "outcome": outcome, "effect": v.effect_text,
            "report": f"[{study}/{preset}]({study}/{preset}/report.md)"}  # fmt: skip


def _decided(code: str, v: Verdict, preset: str) -> str:
    """One claim's paper evidence, ours, and the outcome's reason, prediction and rule, in words."""
    parts = [
        ("paper", v.paper),
        ("ours", v.measured),
        ("why", v.reason),
        ("predicted", v.predicted),
        ("rule", v.rule),
    ]
    label = v.claim if v.control else f"{code}: {v.claim}"  # a control's claim already says "Control: "
    return f"- **{label}** ({preset}): " + "; ".join(f"*{k}*: {t}" for k, t in parts if t and t != "–")


def _counts(outcomes: list[tuple[str, str]]) -> str:
    """How many claims came out each way, per preset (controls and Table 1 counted apart)."""
    if not outcomes:
        return "No claim has been judged yet."
    claims = pd.DataFrame(outcomes, columns=["preset", "outcome"])
    counts = pd.crosstab(claims["preset"], claims["outcome"]).reindex(columns=list(OUTCOMES), fill_value=0)
    rungs = [p for p in ladder.RUNGS if p in counts.index]
    counts = counts.reindex(rungs + sorted(set(counts.index) - set(rungs)))  # the rungs in order
    return (
        "Outcomes per preset (claims C1–C7 only; controls and the counts of Tables 1 and 6 apart):\n\n"
        + counts.reset_index().to_markdown(index=False)
    )


def _parameter_row() -> dict[str, str]:
    """Table 1's parameter counts against our models' (built on the meta device: no results needed)."""
    from benchmark.models import param_count
    from benchmark.paper import paper_values

    rows = paper_values(source="table1")
    archs = {"ViT-B": "B/16", "ViT-L": "L/16", "ViT-H": "H/14"}
    ours = {m: param_count(archs[m]) for m in rows["model"]}
    worst = max(abs(ours[m] - v) / v for m, v in zip(rows["model"], rows["value"], strict=True)) * 100
    holds = worst <= 1.0
    return {
        "claim": "Table 1: our models have the paper's parameter counts",
        "preset": "– (counted, not trained)",
        "outcome": f"**{'reproduced' if holds else 'contradicted'}**",
        "effect": "paper "
        + ", ".join(f"{m} {v / 1e6:.0f}M" for m, v in zip(rows["model"], rows["value"], strict=True))
        + "; ours "
        + ", ".join(f"{archs[m]} {n / 1e6:.1f}M" for m, n in ours.items())
        + f": largest difference {worst:.2f}% (within 1%: a count, no interval)",
        "report": "–",
    }
