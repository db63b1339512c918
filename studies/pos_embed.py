"""Position-embedding ablation (Table 8, App. D.4).

Run:   vitbench run pos_embed [--preset smoke|cpu|gpu|paper]
Cost:  smoke ≈ 1 min; cpu 9.4 min measured on 2 CPU cores (40 runs of a 0.2M-parameter ViT);
       gpu: ≈ 6 GPU-minutes of training on one H100 by the shipped throughput table (24 runs; not yet
       measured on a GPU: rendering the fractals and the evaluations come on top); paper:
       `vitbench plan pos_embed --preset paper`.
Claim: without position embeddings ViT is clearly worse; 1-D, 2-D and relative embeddings, at the
       stem or at every layer, differ little.

The paper's metric is linear 5-shot accuracy on data the model was not pre-trained on (JFT →
ImageNet); ours is the same closed-form probe on transfer data (benchmark.presets). The cells are
the 8 of Table 8: {none, 1-D, 2-D, relative} at the stem, and {1-D, 2-D} added at every layer,
separately or shared.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from benchmark import metrics
from benchmark.judge import Prediction, above_chance, inconclusive, judge
from benchmark.paper import paper_values, parse_variant
from benchmark.power import Noise, Planned, planned, unknown
from benchmark.presets import base, chance, grid, probes, transfer_mean
from benchmark.stats import cell_summary, difference, too_few_seeds
from benchmark.study import PaperPoint, Verdict

TITLE = "Position-embedding ablation"
REFERENCE = "Table 8 / App. D.4"
PRESETS = {
    "smoke": "a check of the pipeline, one seed per cell; the numbers mean nothing",
    "cpu": "a laptop-scale ablation on 2 CPU cores, 5 seeds per cell",
    "gpu": "one GPU: ViT-Ti/8 at 64 px on 100k fractal images, 3 seeds per cell",
    "paper": "the paper's scale on public data: ViT-B/16, 90 epochs of ImageNet-21k (JFT-300M is private), 3 seeds per cell; priced by `vitbench plan`",
}
CELL = ("model.pos_embed", "model.pos_inject")
CELLS = [
    ("none", "stem"),
    ("1d", "stem"),
    ("2d", "stem"),
    ("relative", "stem"),
    ("1d", "every_layer"),
    ("2d", "every_layer"),
    ("1d", "every_layer_shared"),
    ("2d", "every_layer_shared"),
]
NONE, REFERENCE_CELL = ("none", "stem"), ("1d", "stem")
NAMES = {"none": "None", "1d": "1-D", "2d": "2-D", "relative": "Relative"}
INJECT = {"stem": "at the stem", "every_layer": "every layer", "every_layer_shared": "every layer, shared"}
SEEDS = {"smoke": (0,), "cpu": (0, 1, 2, 3, 4), "gpu": (0, 1, 2), "paper": (0, 1, 2)}
JUDGED = "transfer 5-shot"  # the judged metric: mean over the transfer datasets
CLAIMS = {
    "upstream": "Control: position embeddings help the upstream classifier",
    "position": "Control: only a model with position embeddings can tell where a blob is",
    "worse": "No position embedding is clearly worse than every encoding",
    "alike": "1-D, 2-D and relative embeddings differ little",
}
# The control's pre-registered effect: 1-D stem − none in upstream test top-1, as measured before
# this study judged anything (the cpu preset at main@22ad7c0: 94.0 ± 0.3 vs 90.9 ± 1.6%).
CONTROL_GAP = 0.031
# The position-only probe's control: 1-D − none in its top-1 (chance 25% for both without position
# information). Predicted: a quarter of the way from chance to perfect, our statement of "well
# above chance" (a model with no position embedding is blind to the task by construction).
POSITION_GAP = 0.1875


def _paper() -> pd.DataFrame:
    rows = paper_values(source="table8")
    variants = rows["variant"].map(parse_variant)
    return pd.DataFrame(
        {
            "model.pos_embed": variants.map(lambda v: v["pos_embed"]),
            "model.pos_inject": variants.map(lambda v: v["inject"]),
            "paper": rows["value"],
        }
    )


_P = _paper().set_index(list(CELL))["paper"]
PAPER_GAP = min(_P[c] - _P[NONE] for c in _P.index if c != NONE)  # the smallest encoding − none gap
PAPER_SPREAD = _P.drop(NONE).max() - _P.drop(NONE).min()  # "differ little": the encodings' spread
# The paper's own effects (Table 8 states no training compute), for the scorecard's chart across scale.
PAPER_POINTS = {
    CLAIMS["worse"]: PaperPoint(
        float(PAPER_GAP), source="Table 8: the smallest encoding − none gap, ImageNet 5-shot"
    ),
    CLAIMS["alike"]: PaperPoint(
        float(PAPER_SPREAD), source="Table 8: the encodings' spread, ImageNet 5-shot"
    ),
}
CLAIM = (
    f"A ViT without position embeddings is clearly worse (ImageNet 5-shot {_P[NONE]:.1%} vs {_P[REFERENCE_CELL]:.1%} "
    f"for 1-D); 1-D, 2-D and relative embeddings, at the stem or at every layer, differ little "
    f"({_P.drop(NONE).min():.1%}–{_P.drop(NONE).max():.1%})."
)


def runs(preset: str):
    cells = [{"model.pos_embed": pos, "model.pos_inject": inject} for pos, inject in CELLS]
    cfg = base(preset)
    # The position-only probe (benchmark.evals.position): the second control.
    return grid(cfg.replace(**{"eval.evaluators": (*cfg.eval.evaluators, "position")}), cells, SEEDS[preset])


def _with_judged(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(**{JUDGED: transfer_mean(df)})


def _name(cell: tuple[str, str]) -> str:
    return f"{NAMES[cell[0]]} {INJECT[cell[1]]}"


def table(df: pd.DataFrame) -> pd.DataFrame:
    df = _with_judged(df)
    paper = _paper().set_index(list(CELL))["paper"]
    ours = df.groupby(list(CELL))[JUDGED].mean()
    out = pd.DataFrame({
        "paper: ImageNet 5-shot (%)": paper * 100,
        "paper: Δ vs 1-D stem": (paper - paper[REFERENCE_CELL]) * 100,
        "ours: Δ vs 1-D stem": (ours - ours.get(REFERENCE_CELL, float("nan"))) * 100,
        f"ours: {JUDGED} (%), judged": cell_summary(df, CELL, JUDGED),
        **{f"ours: {d} 5-shot (%)": cell_summary(df, CELL, metrics.fewshot(d, 5)) for d in probes(df)},
        "ours: upstream test top-1 (%)": cell_summary(df, CELL, metrics.UPSTREAM_TOP1),
        **({"ours: position probe top-1 (%)": cell_summary(df, CELL, metrics.POSITION_TOP1)}
           if metrics.POSITION_TOP1 in df else {}),
    }, index=paper.index).round(2).reset_index()  # fmt: skip
    out.insert(0, "injection", out.pop("model.pos_inject").map(INJECT))
    out.insert(0, "position embedding", out.pop("model.pos_embed").map(NAMES))
    return out.astype(object).fillna("–")


def checks(df: pd.DataFrame) -> list[Verdict]:
    df = _with_judged(df)
    judged_on = (
        f"5-shot test accuracy, mean over the transfer datasets {', '.join(probes(df))} "
        f"(pre-trained on {df['data.dataset'].iloc[0]})"
    )
    samples = {c: df.loc[(df[CELL[0]] == c[0]) & (df[CELL[1]] == c[1])] for c in CELLS}
    if reason := too_few_seeds({_name(c): v["seed"] for c, v in samples.items()}):
        return [
            inconclusive(claim, reason, judged_on=judged_on, control=claim.startswith("Control"))
            for claim in CLAIMS.values()
        ]
    encodings = [c for c in CELLS if c != NONE]
    mean = {c: samples[c][JUDGED].mean() for c in CELLS}
    # The predicted gap: the paper's smallest encoding − none gap, as a share of its accuracy above
    # chance (ImageNet: 1,000 classes), applied to our 1-D stem cell's level above the probes' chance.
    gap, how = above_chance(
        PAPER_GAP, _P[REFERENCE_CELL], 1 / 1000, mean[REFERENCE_CELL], chance(df, probes(df))
    )
    worse = judge(
        [difference(samples[c][JUDGED], samples[NONE][JUDGED], f"{_name(c)} − none") for c in encodings],
        Prediction(gap, f"every encoding above none by the paper's smallest gap: {how}"),
        claim=CLAIMS["worse"],
        paper=f"none {_P[NONE]:.1%}; encodings {PAPER_GAP * 100:.1f}–{max(_P[c] - _P[NONE] for c in encodings) * 100:.1f} pts above",
        measured=f"none {mean[NONE]:.1%}; encodings {min(mean[c] - mean[NONE] for c in encodings) * 100:+.1f} to "
        f"{max(mean[c] - mean[NONE] for c in encodings) * 100:+.1f} pts",
        rule=f"Welch t of each of the {len(encodings)} encodings against none, α = 0.05",
        judged_on=judged_on,
        note=_relative_hypothesis(df, samples),
    )
    margin = gap * PAPER_SPREAD / (_P[REFERENCE_CELL] - _P[NONE])
    alike = judge(
        [difference(samples[c][JUDGED], samples[REFERENCE_CELL][JUDGED], f"{_name(c)} − 1-D stem")
         for c in encodings if c != REFERENCE_CELL],
        Prediction(margin, f"the paper's encodings lie within {PAPER_SPREAD * 100:.2f} pts of each other, "
                   f"{PAPER_SPREAD / (_P[REFERENCE_CELL] - _P[NONE]):.0%} of their gap to none; × our predicted gap "
                   f"{gap * 100:.2f} pts", parity=True),
        claim=CLAIMS["alike"],
        paper=f"all within {PAPER_SPREAD * 100:.2f} pts of each other "
        f"({PAPER_SPREAD / (_P[REFERENCE_CELL] - _P[NONE]):.0%} of the gap to none)",
        measured=f"{min(mean[c] for c in encodings):.1%}–{max(mean[c] for c in encodings):.1%}",
        rule="TOST (two one-sided Welch t-tests) of each encoding against 1-D at the stem, α = 0.05",
        judged_on=judged_on,
    )  # fmt: skip
    return [_control(samples), _position(samples), worse, alike]


def _control(samples: dict) -> Verdict:
    """The positive control: position information helps the upstream classifier itself."""
    none, ref = (samples[c][metrics.UPSTREAM_TOP1] for c in (NONE, REFERENCE_CELL))
    return judge(
        [difference(ref, none, "1-D stem − none, upstream top-1")],
        Prediction(CONTROL_GAP, "measured at main@22ad7c0's cpu preset (94.0 ± 0.3 vs 90.9 ± 1.6%, 5 seeds)"),
        claim=CLAIMS["upstream"],
        paper="– (a control: an effect this preset is known to show)",
        measured=f"1-D {ref.mean():.1%} vs none {none.mean():.1%}",
        rule="Welch t, α = 0.05",
        judged_on="upstream test top-1 (the pre-training task's held-out images)",
        control=True,
    )


def _position(samples: dict) -> Verdict:
    """The second control: the position-only probe sees position through the embeddings alone."""
    if metrics.POSITION_TOP1 not in samples[NONE]:
        return inconclusive(CLAIMS["position"], "the runs did not run the position probe", control=True)
    none, ref = (samples[c][metrics.POSITION_TOP1] for c in (NONE, REFERENCE_CELL))
    return judge(
        [difference(ref, none, "1-D stem − none, position probe top-1")],
        Prediction(
            POSITION_GAP, "a quarter of the way from chance (25%) to perfect: our 'well above chance'"
        ),
        claim=CLAIMS["position"],
        paper="– (a control: a task only position information solves)",
        measured=f"1-D {ref.mean():.1%} vs none {none.mean():.1%} (chance 25%)",
        rule="Welch t, α = 0.05",
        judged_on="the position-only probe's test top-1 (benchmark.evals.position)",
        control=True,
    )


def _relative_hypothesis(df: pd.DataFrame, samples: dict) -> str:
    """Only where relative attention is the one encoding clearly below the others."""
    means = {c: samples[c][JUDGED].mean() for c in CELLS if c != NONE}
    if min(means, key=means.get) != ("relative", "stem"):
        return ""
    rows, cols = df["patch_grid"].iloc[0]
    return (
        f"Hypothesis (not tested here): relative attention sees only 1-D raster offsets, which on a {rows}x{cols} "
        "grid confuse 'next column' with 'next row, first column' at every row end; the paper's grid is 14x14."
    )


def figures(df: pd.DataFrame, curves: pd.DataFrame) -> dict[str, tuple[plt.Figure, pd.DataFrame]]:
    df = _with_judged(df)
    ours = df[[*CELL, "seed", JUDGED]].rename(columns={JUDGED: "accuracy"}).assign(source="ours")
    paper = _paper().rename(columns={"paper": "accuracy"}).assign(source="paper", seed=0)
    data = pd.concat([paper, ours], ignore_index=True)
    data["embedding"] = data["model.pos_embed"].map(NAMES)
    data["injection"] = data["model.pos_inject"].map(INJECT)
    data["accuracy"] *= 100
    order = [NAMES[p] for p in ("none", "1d", "2d", "relative")]
    hue_order = list(INJECT.values())
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    panels = [
        ("paper", "Paper: ViT-B/16, ImageNet 5-shot"),
        ("ours", f"Ours: {df['model.arch'].iloc[0]}, {JUDGED} ({', '.join(probes(df))})"),
    ]
    for ax, (source, title) in zip(axes, panels, strict=True):
        part = data[data["source"] == source]
        # Points, not bars: the axis is zoomed in, and a bar's length would overstate differences.
        sns.pointplot(part, x="embedding", y="accuracy", hue="injection", order=order, hue_order=hue_order,
                      errorbar="sd" if source == "ours" else None, dodge=0.45, linestyle="none",
                      markers=["o", "s", "D"], capsize=0.08, ax=ax, legend=source == "paper")  # fmt: skip
        if source == "ours":
            sns.stripplot(part, x="embedding", y="accuracy", hue="injection", order=order, hue_order=hue_order,
                          dodge=True, palette="dark:grey", size=2.5, alpha=0.6, legend=False, ax=ax)  # fmt: skip
        low, high = part["accuracy"].min(), part["accuracy"].max()
        pad = max(0.5, (high - low) * 0.15)
        ax.set_ylim(low - pad, high + pad)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("position embedding")
        ax.set_ylabel("linear 5-shot accuracy (%)")
    sns.move_legend(axes[0], "lower right", title=None, fontsize=8)
    fig.suptitle("Table 8: position embeddings (markers: mean; error bars: std over seeds; grey dots: seeds)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    return {"pos_embed": (fig, data[["source", "embedding", "injection", "seed", "accuracy"]])}


def power(preset: str, noise: Noise) -> list[Planned]:
    """Each claim's design at `preset`, for `vitbench plan`'s power lines (benchmark.power)."""
    cfgs, n = runs(preset), len(SEEDS[preset])
    judged = noise.measure(cfgs, transfer_mean)
    floor = noise.chance(base(preset).eval.fewshot_datasets)
    upstream = noise.measure(cfgs, lambda g: g[metrics.UPSTREAM_TOP1], judged=False)
    control = planned(CLAIMS["upstream"], Prediction(CONTROL_GAP, "pre-registered"), upstream, n, n)
    if judged is None or floor is None:
        return [control, *(unknown(CLAIMS[k], "no noise estimate") for k in ("worse", "alike"))]
    gap, _ = above_chance(PAPER_GAP, _P[REFERENCE_CELL], 1 / 1000, judged.level, floor)
    margin = gap * PAPER_SPREAD / (_P[REFERENCE_CELL] - _P[NONE])
    return [
        control,
        planned(CLAIMS["worse"], Prediction(gap, ""), judged, n, n, k=len(CELLS) - 1),
        planned(CLAIMS["alike"], Prediction(margin, "", parity=True), judged, n, n, k=len(CELLS) - 2),
    ]
