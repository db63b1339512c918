"""Inside the trained models (§4.5; Figs. 6, 7, 10, 11): filters, position embeddings, attention.

Run:   vitbench run inspect [--preset smoke|cpu|gpu|paper]
Cost:  smoke ≈ 1 min; cpu 5.0 min on 2 CPU cores (measured: 6 runs trained, the other 5 adopted
       from pos_embed's finished runs; 11 when none exist);
       gpu: ≈ 6 GPU-minutes of training on one H100 by the shipped throughput table (11 runs; not yet
       measured on a GPU: rendering the fractals and the evaluations come on top); paper:
       `vitbench plan inspect --preset paper`.
Claim: some heads attend to most of the image already in the lowest layers, and the attention
       distance grows with depth; hybrids attend less locally early on; the learned 1-D position
       embeddings encode the grid's rows and columns.

The runs are ordinary pre-training runs (benchmark.presets' protocol); the report measures their
final weights (model.pt) in a separate inference pass (benchmark.inspection) on the first 128
images of the upstream test split, as §4.5 averages over 128 images. The ViT cells are the very
configs of the pos_embed study (same run ids): `vitbench run inspect` adopts pos_embed's finished
runs of them (REUSE) and trains only what is missing. The hybrid is compared with a ViT on the same token
grid (7x7 tokens of 4 px), since attention distances on different grids are not comparable.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from benchmark import inspection, metrics
from benchmark.config import flatten
from benchmark.judge import judged
from benchmark.presets import base, grid
from benchmark.stats import greater, holm, too_few_seeds
from benchmark.study import Verdict

TITLE = "Inside the trained models: filters, position embeddings, attention distance and rollout"
REFERENCE = "Figs. 6, 7, 10, 11 / §4.5"
CLAIM = (
    "Some heads attend to most of the image already in the lowest layers and the attention distance "
    "grows with depth; this local attention is less pronounced in hybrids; the learned position "
    "embeddings encode the image's rows and columns (§4.5)."
)
PRESETS = {
    "smoke": "a check of the pipeline, one seed per cell; the numbers mean nothing",
    "cpu": "laptop-scale models on 2 CPU cores: 3 seeds for each judged cell, 1 for the figure-only cells",
    "gpu": "one GPU: pos_embed's gpu models (ViT-Ti/8 at 64 px) and ViT-S/8 beside R26x1+S/8, 3 seeds per judged cell",
    "paper": "the paper's scale on public data: pos_embed's paper models and ViT-L/16 beside R50+ViT-L/16 (Fig. 11) on ImageNet-21k",
}
CELL = ("model.arch", "model.pos_embed", "model.pos_inject")
VIT_GRID, HYBRID = "ViT on the hybrid's grid", "hybrid"
# A hybrid and a ViT of the same width on the same token grid, per preset: attention distances on
# different grids are not comparable (cpu: 7x7 tokens of 4 px; gpu: 8x8 tokens of 8 px).
PAIR = {
    "smoke": ({"model.arch": "Mu/4"}, {"model.arch": "R14x1+Mu/4", "model.resnet_width": 8}),
    "cpu": ({"model.arch": "Mu/4"}, {"model.arch": "R14x1+Mu/4", "model.resnet_width": 8}),
    "gpu": ({"model.arch": "S/8"}, {"model.arch": "R26x1+S/8"}),
    "paper": ({"model.arch": "L/16"}, {"model.arch": "R50x1+L/16"}),  # Fig. 11's pair
}
CELLS = {  # name -> the config it changes from the preset's base (pos_embed's cells where they are one)
    "ViT 1-D": {"model.pos_embed": "1d", "model.pos_inject": "stem"},
    "ViT 2-D": {"model.pos_embed": "2d", "model.pos_inject": "stem"},
    "ViT 1-D every layer": {"model.pos_embed": "1d", "model.pos_inject": "every_layer"},
}
JUDGED_CELLS = ("ViT 1-D", VIT_GRID, HYBRID)
REUSE = ("pos_embed",)  # its finished runs of these very configs are adopted, not trained again
SEEDS = {
    "smoke": {c: (0,) for c in JUDGED_CELLS + tuple(CELLS)},
    "cpu": {c: (0, 1, 2) if c in JUDGED_CELLS else (0,) for c in JUDGED_CELLS + tuple(CELLS)},
    "gpu": {c: (0, 1, 2) if c in JUDGED_CELLS else (0,) for c in JUDGED_CELLS + tuple(CELLS)},
    "paper": {c: (0, 1, 2) if c in JUDGED_CELLS else (0,) for c in JUDGED_CELLS + tuple(CELLS)},
}


def cells(preset: str) -> dict[str, dict[str, object]]:
    return {**CELLS, VIT_GRID: PAIR[preset][0], HYBRID: PAIR[preset][1]}


# "Attends globally": a head's mean distance reaches 3/4 of what a head attending to every token
# equally gets (inspection.uniform_distance) — the distance of attention blind to position.
GLOBAL_FRACTION = 0.75
# "Attends locally": at most half of it, attention held to the nearer part of what a position-blind
# head spreads over (our threshold: Fig. 7 right shows the spread, the paper states no number).
LOCAL_FRACTION = 0.5
PAPER = {  # §4.5 states these in words and figures only: paper_values.csv holds no numbers for them
    "global": "§4.5 / Fig. 7 right (ViT-L/16): some heads attend to most of the image already in the lowest "
    "layers, others have consistently small attention distances there",
    "depth": "§4.5 / Fig. 7 right: the attention distance increases with network depth",
    "hybrid": "§4.5 / Fig. 7 right, Fig. 11: highly localised attention is less pronounced in hybrids",
    "rowcol": "Fig. 7 centre / App. D.4: patches in the same row/column have similar embeddings",
}
JUDGED_ON = "final weights, first 128 upstream test images (inference pass without fused attention)"


def runs(preset: str):
    return [
        cfg for name, cell in cells(preset).items() for cfg in grid(base(preset), [cell], SEEDS[preset][name])
    ]


def _cell(row: pd.Series) -> str:
    """The cell a run belongs to, from the config columns that tell the cells apart."""
    names = {tuple(flatten(cfg)[k] for k in CELL): name for preset in PRESETS for name, cell in cells(preset).items()
             for cfg in grid(base(preset), [cell], (0,))}  # fmt: skip
    return names[tuple(row[k] for k in CELL)]


@functools.cache
def _measure(run_dir: str) -> inspection.Inspection:
    return inspection.inspect_run(Path(run_dir))


def _runs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run: its cell, seed and the measurements judged."""
    rows = []
    for _, row in df.iterrows():
        m = _measure(row["run_dir"])
        sim = m.similarity.get("stem")
        rows.append({"cell": _cell(row), "seed": row["seed"], "run_dir": row["run_dir"],
                     "grid": f"{m.grid[0]}x{m.grid[1]}", "token px": m.token_px[0], "uniform": m.uniform,
                     "layer 1 max": m.distance[0].max(), "layer 1 min": m.distance[0].min(), "layer 1 mean": m.distance[0].mean(),
                     "last layer mean": m.distance[-1].mean(), "growth": m.distance[-1].mean() - m.distance[0].mean(),
                     "row/col contrast": inspection.row_column_contrast(sim) if sim is not None else np.nan,
                     "upstream top-1": row[metrics.UPSTREAM_TOP1]})  # fmt: skip
    return pd.DataFrame(rows).sort_values(["cell", "seed"], kind="stable").reset_index(drop=True)


def table(df: pd.DataFrame) -> pd.DataFrame:
    per_run = _runs(df)
    out = per_run.groupby("cell", sort=False).agg(
        seeds=("seed", "nunique"), grid=("grid", "first"), **{"token px": ("token px", "first")},
        **{f"{c} (px)": (c, "mean") for c in ("layer 1 max", "layer 1 mean", "last layer mean", "uniform")},
        **{"row/col contrast (cos)": ("row/col contrast", "mean"), "upstream top-1 (%)": ("upstream top-1", "mean")},
    )  # fmt: skip
    out["upstream top-1 (%)"] *= 100
    out = out.round(3).reset_index()
    # the hybrid and the every-layer ViT have no stem table: no contrast to show
    out["row/col contrast (cos)"] = (
        out["row/col contrast (cos)"].astype(object).where(out["row/col contrast (cos)"].notna(), "–")
    )
    return out


def _judge(comparisons: list, unit: str, **words: str) -> Verdict:
    """judged() for statistics in `unit` (px, cos): the margin and evidence in that unit, not in points."""
    verdict = judged(comparisons, **words)
    evidence = "; ".join(f"{c.name}: {c.text(scale=1, unit=unit, digits=3)}" for c in holm(comparisons))
    return replace(verdict, unit=unit, evidence=evidence)


def checks(df: pd.DataFrame) -> list[Verdict]:
    per_run = _runs(df)
    cell = {name: per_run[per_run["cell"] == name] for name in JUDGED_CELLS}
    claims = {
        "global": "In the first layer some heads attend globally, others locally",
        "depth": "Mean attention distance grows with depth",
        "hybrid": "The hybrid attends less locally in its first layer than a ViT on the same grid",
        "rowcol": "1-D position embeddings show row/column structure",
    }
    if short := too_few_seeds({name: c["seed"] for name, c in cell.items()}):
        return [Verdict.not_judged(claims[k], short, PAPER[k], JUDGED_ON) for k in claims]
    vit, vit4, hyb = (cell[name] for name in JUDGED_CELLS)
    n = len(vit)
    uniform = vit["uniform"].iloc[0]
    wide, narrow = GLOBAL_FRACTION * uniform, LOCAL_FRACTION * uniform
    one_sample = "one-sided one-sample t-test over seeds (Welch against a constant), α = 0.05"
    return [
        _judge([greater(vit["layer 1 max"], np.full(n, wide), "layer-1 most distant head − global threshold"),
                greater(np.full(n, narrow), vit["layer 1 min"], "local threshold − layer-1 nearest head")], "px",
               claim=claims["global"], paper=PAPER["global"], judged_on=f"ViT 1-D; {JUDGED_ON}",
               measured=f"layer-1 heads from {vit['layer 1 min'].mean():.1f} to {vit['layer 1 max'].mean():.1f} px "
               f"(nearest per seed {_seeds(vit['layer 1 min'])}; most distant {_seeds(vit['layer 1 max'])}); "
               f"uniform attention {uniform:.1f} px on a {vit['grid'].iloc[0]} grid of {vit['token px'].iloc[0]:g}-px patches",
               rule=f"{one_sample}, Holm over both: the most distant head of layer 1 (per seed) exceeds {GLOBAL_FRACTION:g} × "
               f"the distance of uniform attention (a head blind to position), and the nearest one stays below "
               f"{LOCAL_FRACTION:g} × it"),
        _judge([greater(vit["growth"], np.zeros(n), "last − first layer")], "px",
               claim=claims["depth"], paper=PAPER["depth"], judged_on=f"ViT 1-D; {JUDGED_ON}",
               measured=f"mean over heads: layer 1 {vit['layer 1 mean'].mean():.1f} px, last layer "
               f"{vit['last layer mean'].mean():.1f} px",
               rule=f"{one_sample}: the last layer's mean distance over heads minus the first layer's, per seed, exceeds 0"),
        _judge([greater(hyb["layer 1 mean"], vit4["layer 1 mean"], "hybrid > ViT, layer 1")], "px",
               claim=claims["hybrid"], paper=PAPER["hybrid"], judged_on=f"hybrid vs a ViT of its width on its grid; {JUDGED_ON}",
               measured=f"layer-1 mean over heads: hybrid {hyb['layer 1 mean'].mean():.1f} px, ViT "
               f"{vit4['layer 1 mean'].mean():.1f} px (both {hyb['grid'].iloc[0]} tokens of {hyb['token px'].iloc[0]:g} px)",
               rule="one-sided Welch t-test over seeds, α = 0.05: the hybrid's first-layer mean distance over heads "
               "exceeds the ViT's on the same token grid"),
        _judge([greater(vit["row/col contrast"], np.zeros(n), "same row/column − other pairs")], "cos",
               claim=claims["rowcol"], paper=PAPER["rowcol"], judged_on="ViT 1-D: the learned stem table of the final weights",
               measured=f"cosine similarity of same-row/column pairs minus other pairs: {vit['row/col contrast'].mean():+.3f} "
               f"(seeds {_seeds(vit['row/col contrast'], '+.3f')})",
               rule=f"{one_sample}: the contrast (each patch with itself left out) exceeds 0; a table blind to the grid gives ~0"),
    ]  # fmt: skip


def _seeds(values: pd.Series, fmt: str = ".1f") -> str:
    return ", ".join(format(v, fmt) for v in values)


def _first(per_run: pd.DataFrame, name: str) -> inspection.Inspection | None:
    rows = per_run[per_run["cell"] == name]
    return _measure(rows["run_dir"].iloc[0]) if len(rows) else None


def figures(df: pd.DataFrame, curves: pd.DataFrame) -> dict[str, tuple[plt.Figure, pd.DataFrame]]:
    per_run = _runs(df)
    return {"fig7_filters": _filters(per_run), "fig7_position_similarity": _similarity(per_run),
            "fig7_attention_distance": _distance(per_run), "fig6_rollout": _rollout(per_run)}  # fmt: skip


def _filters(per_run: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    m = _first(per_run, "ViT 1-D")
    k = len(m.components)
    fig, axes = plt.subplots(4, 7, figsize=(7, 4.3))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < k:
            ax.imshow(m.components[i].mean(axis=0), cmap="gray")
            ax.set_title(f"{m.explained[i]:.0%}", fontsize=6)
    fig.suptitle(f"Fig. 7 left: the first {k} principal components of ViT 1-D's patch filters "
                 "(title: variance explained)", fontsize=8)  # fmt: skip
    c, p = m.components.shape[1], m.components.shape[2]
    idx = np.indices(m.components.shape).reshape(4, -1)
    data = pd.DataFrame({"component": idx[0], "explained": m.explained[idx[0]], "channel": idx[1],
                         "y": idx[2], "x": idx[3], "value": m.components.ravel()})  # fmt: skip
    assert len(data) == k * c * p * p
    return fig, data


def _tiles(sim: np.ndarray) -> np.ndarray:
    """(gh, gw, gh, gw) -> one image: the (gh, gw) map of every patch, one pixel apart (NaN between)."""
    gh, gw = sim.shape[:2]
    out = np.full((gh * (gh + 1) - 1, gw * (gw + 1) - 1), np.nan)
    for r in range(gh):
        for c in range(gw):
            out[r * (gh + 1) : r * (gh + 1) + gh, c * (gw + 1) : c * (gw + 1) + gw] = sim[r, c]
    return out


def _similarity(per_run: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    panels = [(name, key, sim) for name in ("ViT 1-D", "ViT 2-D", "ViT 1-D every layer")
              if (m := _first(per_run, name)) for key, sim in m.similarity.items()]  # fmt: skip
    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.6), squeeze=False)
    for ax, (name, key, sim) in zip(axes[0], panels, strict=True):
        image = ax.imshow(_tiles(sim), cmap="viridis", vmin=-1, vmax=1)
        ax.set_title(f"{name}\n{key}", fontsize=7)
        ax.axis("off")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.7, label="cosine similarity")
    fig.suptitle("Figs. 7 centre / 10: each tile is one patch's similarity with every patch (rows: input patch row)",
                 fontsize=8)  # fmt: skip
    data = pd.concat([pd.DataFrame({"model": name, "table": key, **dict(zip(("row", "col", "key_row", "key_col"),
                                    np.indices(sim.shape).reshape(4, -1), strict=True)), "cosine": sim.ravel()})
                      for name, key, sim in panels], ignore_index=True)  # fmt: skip
    return fig, data


def _distance(per_run: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    names = [n for n in ("ViT 1-D", VIT_GRID, HYBRID) if (per_run["cell"] == n).any()]
    data = pd.DataFrame([{"model": r.cell, "seed": r.seed, "layer": layer + 1, "head": head + 1, "distance": d}
                         for r in per_run[per_run["cell"].isin(names)].itertuples()
                         for (layer, head), d in np.ndenumerate(_measure(r.run_dir).distance)])  # fmt: skip
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        part = data[data["model"] == name]
        ax.scatter(part["layer"], part["distance"], s=12, alpha=0.6)
        ax.axhline(per_run.loc[per_run["cell"] == name, "uniform"].iloc[0], ls="--", c="grey", lw=1,
                   label="uniform attention")  # fmt: skip
        ax.set(title=name, xlabel="network depth (layer)", xticks=sorted(part["layer"].unique()))
    axes[0, 0].set_ylabel("mean attention distance (pixels)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Figs. 7 right / 11: each head's mean attention distance (dots: heads × seeds)", fontsize=9)
    return fig, data


def _rollout(per_run: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    models = [(n, m) for n in ("ViT 1-D", HYBRID) if (m := _first(per_run, n))]
    images = models[0][1].images
    fig, axes = plt.subplots(
        len(images), 1 + len(models), figsize=(1.8 * (1 + len(models)), 1.8 * len(images))
    )
    rows = []
    for i, image in enumerate(images):
        axes[i, 0].imshow(image, cmap="gray")
        for j, (name, m) in enumerate(models, start=1):
            axes[i, j].imshow(image, cmap="gray")
            axes[i, j].imshow(m.rollout[i], cmap="inferno", alpha=0.6, interpolation="bilinear",
                              extent=(-0.5, image.shape[1] - 0.5, image.shape[0] - 0.5, -0.5))  # fmt: skip
            axes[i, 0].set_title("input" if i == 0 else "", fontsize=7)
            axes[i, j].set_title(name if i == 0 else "", fontsize=7)
            rows += [
                {"model": name, "image": i, "row": r, "col": c, "weight": w}
                for (r, c), w in np.ndenumerate(m.rollout[i])
            ]
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("Fig. 6: attention rollout, the class token's row", fontsize=8)
    return fig, pd.DataFrame(rows)
