"""Pre-training data size: ViT against BiT ResNets and hybrids (Figs. 3 and 4, §4.3).

Run:   vitbench run data_scaling [--preset smoke|cpu|gpu|paper]
Cost:  smoke ≈ 1 min; cpu ≈ 17 min on 2 CPU cores (27 runs, measured);
       gpu: ≈ 1.4 GPU-hours of training on one H100 by the shipped throughput table (48 runs; not yet
       measured on a GPU: rendering the fractals and the evaluations come on top); paper:
       `vitbench plan data_scaling --preset paper`.
Claim: with little pre-training data BiT ResNets beat ViT; as the data grows ViT gains more and
       overtakes them.

Every model pre-trains on nested subsets of one formula-driven upstream pool (fractals: random
iterated function systems, rendered offline) with the same hyper-parameters and step budget, so
the small subsets are seen for many epochs, as the paper's 9M JFT subset is. Every run is evaluated
during training and early-stopped on its best validation 5-shot transfer score (§4.3); the verdicts
read the test split of that model.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from benchmark import metrics
from benchmark.judge import judged
from benchmark.paper import IMAGENET_IMAGES, JFT_IMAGES, paper_values
from benchmark.presets import JFT, base, finetuned_on, grid, probes, transfer_mean
from benchmark.sizes import family
from benchmark.stats import greater, too_few_seeds
from benchmark.study import Verdict

TITLE = "Data scaling: ViT vs BiT ResNet vs hybrid as pre-training data grows"
REFERENCE = "Fig. 3, Fig. 4 and Table 5 / §4.3"
CLAIM = (
    "With little pre-training data BiT ResNets beat ViT; ViT gains more from more data and overtakes "
    "them as the data grows (Fig. 4: random 9M, 30M, 90M and 300M subsets of JFT)."
)
PRESETS = {
    "smoke": "a check of the pipeline: two upstream sizes, one seed; the numbers mean nothing",
    "cpu": "a laptop-scale sweep on 2 CPU cores: 3 families x 3 upstream sizes (two decades) x 3 seeds",
    "gpu": "one GPU: ViT-Ti/S, BiT R26x1 and R26x1+Ti/8 at 64 px on 1k to 1M fractal images (three decades), 3 seeds",
    "paper": "Fig. 4's models on JFT-300M subsets (private: planned and priced; a user substitutes ImageNet-21k)",
}
CELL = ("model.arch", "data.dataset", "data.train_examples")
# The family members, as the preset's base changed: the same optimiser, steps and data for each.
MODELS = {
    "smoke": {"ViT": {"model.arch": "Mu/8"}, "BiT": {"model.arch": "R14x1", "model.resnet_width": 8,
              "model.prelogits": False}, "hybrid": {"model.arch": "R14x1+Mu/8", "model.resnet_width": 8}},
    "cpu": {"ViT": {"model.arch": "Mu/8"}, "BiT": {"model.arch": "R14x1", "model.resnet_width": 16,
            "model.prelogits": False}, "hybrid": {"model.arch": "R14x1+Mu/8", "model.resnet_width": 16}},
    "gpu": {"ViT-Ti/8": {"model.arch": "Ti/8"}, "ViT-S/8": {"model.arch": "S/8"},
            "BiT-R26x1": {"model.arch": "R26x1", "model.prelogits": False},
            "hybrid R26x1+Ti/8": {"model.arch": "R26x1+Ti/8"}},
    "paper": {"ViT-b/32": {"model.arch": "b/32"}, "ViT-B/32": {"model.arch": "B/32"},
              "ViT-L/16": {"model.arch": "L/16"}, "ViT-L/32": {"model.arch": "L/32"},
              "R50x1": {"model.arch": "R50x1", "model.prelogits": False},
              "R152x2": {"model.arch": "R152x2", "model.prelogits": False}},
}  # fmt: skip
# Nested, class-balanced upstream pools: fractal<C>x<K> holds the first K images of each of C categories.
UPSTREAM = {
    "smoke": [{"data.dataset": f"fractal10x{k}"} for k in (4, 40)],
    "cpu": [{"data.dataset": f"fractal100x{k}"} for k in (10, 100, 1000)],
    "gpu": [{"data.dataset": f"fractal1000x{k}@64"} for k in (1, 10, 100, 1000)],
    "paper": [{"data.train_examples": n} for n in (9_000_000, 30_000_000, 90_000_000, 0)],  # 0: all 303M
}
SEEDS = {"smoke": (0,), "cpu": (0, 1, 2), "gpu": (0, 1, 2), "paper": (0,)}
TRAINING = {
    "smoke": {"data.train_examples": 0, "optim.steps": 20, "optim.warmup_steps": 4, "optim.batch_size": 32, "eval.every_steps": 10,
              "eval.shots": (5,), "eval.finetune_steps": 5, "eval.finetune_lrs": (0.01,)},
    # 400 steps of 128 = 51,200 images: the 1k pool is seen 51 times, the 100k pool half once.
    "cpu": {"optim.steps": 400, "optim.warmup_steps": 40, "optim.batch_size": 128, "eval.every_steps": 100,
            "eval.shots": (5,), "eval.finetune_steps": 30, "eval.finetune_lrs": (0.01, 0.03)},
    # 10,000 steps of 256 = 2.56M images: the 1k pool seen 2,560 times, the 1M pool 2.6 times.
    "gpu": {"optim.steps": 10_000, "optim.warmup_steps": 500, "eval.every_steps": 1000, "eval.shots": (5,),
            "eval.finetune_steps": 500, "eval.finetune_lrs": (0.003, 0.01, 0.03)},
    # §4.3: the same hyper-parameters (the preset's: 7 epochs of all of JFT) for every subset.
    "paper": {**JFT, "eval.every_steps": 50_000, "eval.shots": (5,)},
}  # fmt: skip
JUDGED, FINETUNED = "transfer 5-shot", "transfer fine-tuned"
_T5 = paper_values(source="table5", eval="ImageNet", model="ViT-L/16").set_index("pretrain")["value"]
_EPOCHS = " or ".join(f"{e:g}" for e in sorted(paper_values(source="table6")["epochs"].unique()))
_DECADES = np.log10(JFT_IMAGES / IMAGENET_IMAGES)  # JFT-300M over ImageNet-1k's training images
PAPER = {
    "ahead": "Fig. 3 (ImageNet-1k) and Fig. 4 (9M JFT images): BiT ResNets ahead of ViT with the least data",
    "slope": f"Table 5: ViT-L/16 gains {(_T5['JFT-300M'] - _T5['ImageNet']) / _DECADES:.1f} pts per decade from "
    f"ImageNet to JFT ({_T5['ImageNet']:.1f} → {_T5['JFT-300M']:.1f}, fine-tuned); Fig. 4: ViT rises faster than BiT",
    "over": "Fig. 3 and Fig. 4: ViT above BiT with all of JFT-300M",
}


def runs(preset: str):
    cfg = base(preset).replace(
        **{"eval.early_stop": True, "eval.evaluators": ("upstream", "fewshot", "finetune")},
        **TRAINING[preset],
    )  # fmt: skip
    cells = [{**model, **upstream} for model in MODELS[preset].values() for upstream in UPSTREAM[preset]]
    return grid(cfg, cells, SEEDS[preset])


def _frame(df: pd.DataFrame) -> pd.DataFrame:
    """The judged numbers per run, with the family and the pre-training images each run drew from."""
    finetuned = df[[metrics.key("finetune", d, "top1") for d in finetuned_on(df)]].mean(axis=1)
    return df.assign(
        family=df["model.arch"].map(family),
        images=df["train_examples"],
        **{JUDGED: transfer_mean(df), FINETUNED: finetuned},
    )


def _cell(frame: pd.DataFrame, fam: str, images: int, column: str = JUDGED) -> pd.Series:
    return frame.loc[(frame["family"] == fam) & (frame["images"] == images), column]


def _slopes(frame: pd.DataFrame, fam: str) -> np.ndarray:
    """Per seed: the least-squares gain in transfer accuracy per decade of pre-training images."""
    rows = frame[frame["family"] == fam]
    return np.array([np.polyfit(np.log10(g["images"]), g[JUDGED], 1)[0] for _, g in rows.groupby("seed")
                     if g["images"].nunique() > 1])  # fmt: skip


def table(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    frame = _frame(df)
    cells = frame.groupby(["family", "model.arch", "images"], as_index=False).agg(
        **{f"{JUDGED} (%), judged": (JUDGED, "mean"), "sd": (JUDGED, "std"), f"{FINETUNED} (%)": (FINETUNED, "mean"),
           "upstream test top-1 (%)": (metrics.UPSTREAM_TOP1, "mean"), "early-stopped at step": ("selected_step", "median"),
           "seeds": ("seed", "nunique")})  # fmt: skip
    cells[[c for c in cells if "(%)" in c or c == "sd"]] *= 100
    paper = paper_values(source="table5", eval="ImageNet")[["model", "pretrain", "value"]]
    paper = paper.pivot(index="model", columns="pretrain", values="value").reset_index()
    return {
        "Ours: transfer accuracy by pre-training images (mean over seeds)": cells.round(1),
        "The paper's Fig. 3 (Table 5): ImageNet top-1 after fine-tuning, by pre-training dataset": paper,
    }


def checks(df: pd.DataFrame) -> list[Verdict]:
    frame = _frame(df)
    sizes = sorted(frame["images"].unique())
    small, large = sizes[0], sizes[-1]
    judged_on = f"test accuracy of the early-stopped model, 5-shot, mean over {', '.join(probes(df))}"
    claims = {
        "ahead": f"BiT beats ViT with the least pre-training data ({small:,} images)",
        "slope": "ViT gains more per decade of pre-training data than BiT",
        "over": f"ViT overtakes BiT within the range ({large:,} images)",
    }
    cells = {f"{f} at {n:,}": _cell(frame, f, n) for f in ("ViT", "BiT") for n in (small, large)}
    slopes = {"ViT slopes": _slopes(frame, "ViT"), "BiT slopes": _slopes(frame, "BiT")}
    if len(sizes) < 2 or (short := too_few_seeds({**cells, **slopes})):
        reason = short if len(sizes) > 1 else "needs at least two pre-training sizes"
        return [Verdict.not_judged(c, reason, PAPER[k], judged_on) for k, c in claims.items()]
    a, b = (
        np.polyfit(np.log10(g["images"]), g[JUDGED], 1)
        for g in (frame[frame.family == f] for f in ("ViT", "BiT"))
    )
    crossing = 10 ** ((b[1] - a[1]) / (a[0] - b[0])) if a[0] > b[0] else None
    if crossing is None:
        where = "The least-squares lines of accuracy against log10(images) never cross ahead: BiT gains at least as much per decade."
    elif small <= crossing <= large:
        where = f"The least-squares lines of accuracy against log10(images) cross at {crossing:,.0f} images, inside the measured range."
    else:
        where = (f"The least-squares lines of accuracy against log10(images) would cross at {crossing:,.0f} images: an "
                 "extrapolation of two straight lines beyond the measured range, not a measurement.")  # fmt: skip
    rule = "one-sided Welch t-test over seeds, α = 0.05"
    return [
        judged([greater(cells[f"BiT at {small:,}"], cells[f"ViT at {small:,}"], f"BiT > ViT at {small:,}")],
               claim=claims["ahead"], paper=PAPER["ahead"],
               measured=_means(cells, small), rule=rule, judged_on=judged_on),
        judged([greater(slopes["ViT slopes"], slopes["BiT slopes"], "ViT slope > BiT slope")],
               claim=claims["slope"], paper=PAPER["slope"],
               measured=f"points per decade: ViT {slopes['ViT slopes'].mean() * 100:+.1f}, "
               f"BiT {slopes['BiT slopes'].mean() * 100:+.1f}",
               rule=f"{rule}, on each seed's least-squares slope of accuracy against log10(images)", judged_on=judged_on,
               note=_fit(frame, large)),
        judged([greater(cells[f"ViT at {large:,}"], cells[f"BiT at {large:,}"], f"ViT > BiT at {large:,}")],
               claim=claims["over"], paper=PAPER["over"],
               measured=_means(cells, large), rule=rule, judged_on=judged_on,
               note=where),
    ]  # fmt: skip


def _fit(frame: pd.DataFrame, n: int) -> str:
    """How well each family fits its upstream data with the most images: a measured hint at why."""
    top1 = {f: _cell(frame, f, n, metrics.UPSTREAM_TOP1).mean() * 100 for f in ("ViT", "BiT", "hybrid")}
    measured = f"Upstream test top-1 with {n:,} images: {', '.join(f'{f} {v:.1f}%' for f, v in top1.items())} (measured)."
    if top1["ViT"] >= top1["BiT"]:
        return measured
    return (f"{measured} Hypothesis (not tested here): with this step budget the ViT fits its upstream data less "
            f"well than BiT, so more data cannot help it yet; the paper's ViTs train for {_EPOCHS} epochs of JFT's {JFT_IMAGES:,} images.")  # fmt: skip


def _means(cells: dict[str, pd.Series], n: int) -> str:
    return ", ".join(f"{f} {cells[f'{f} at {n:,}'].mean() * 100:.1f}% (sd {cells[f'{f} at {n:,}'].std() * 100:.1f})"
                     for f in ("ViT", "BiT"))  # fmt: skip


def figures(df: pd.DataFrame, curves: pd.DataFrame) -> dict[str, tuple[plt.Figure, pd.DataFrame]]:
    frame = _frame(df)[["family", "model.arch", "images", "seed", JUDGED, FINETUNED]]
    frame[[JUDGED, FINETUNED]] *= 100
    out = {}
    for name, column, title in (("fig4_fewshot_vs_images", JUDGED, "linear 5-shot (Fig. 4's view)"),
                                ("fig3_finetuned_vs_images", FINETUNED, "fine-tuned (Fig. 3's view)")):  # fmt: skip
        fig, ax = plt.subplots(figsize=(5.2, 3.6))
        sns.lineplot(frame, x="images", y=column, hue="family", style="family", markers=True, dashes=False,
                     errorbar="sd", err_style="bars", ax=ax)  # fmt: skip
        ax.set_xscale("log")
        ax.set(xlabel="pre-training images (log scale)", ylabel=f"{column} (%)",
               title=f"Transfer accuracy, {title}; test, mean over {', '.join(probes(df))}; bars: ±1 sd over seeds")  # fmt: skip
        ax.title.set_fontsize(9)
        out[name] = (fig, frame)
    return out
