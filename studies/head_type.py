"""Class token vs global average pooling (Fig. 9, App. D.3).

Run:   vitbench run head_type [--preset smoke|cpu|gpu|paper]
Cost:  smoke ≈ 1 min; cpu ≈ 19 min on 2 CPU cores (36 runs of a 0.2M-parameter ViT);
       gpu: ≈ 4 GPU-minutes of training on one H100 by the shipped throughput table (18 runs; not yet
       measured on a GPU: rendering the fractals and the evaluations come on top); paper:
       `vitbench plan head_type --preset paper`.
Claim: GAP over the patch tokens works as well as reading a class token once its learning rate
       is tuned; trained at the class token's learning rate, GAP does much worse.

A learning-rate sweep for each head type with linear 5-shot transfer probes during training. Each
head's learning rate is chosen on the probes' validation split; the verdicts and Fig. 9's curves
(CLS at its lr, GAP at that same lr, GAP at its own lr) use the test split only.
"""

from __future__ import annotations

from math import comb

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from scipy.stats import mannwhitneyu

from benchmark import metrics
from benchmark.judge import judged
from benchmark.paper import paper_values, parse_variant
from benchmark.presets import base, grid, probes, product, transfer_mean
from benchmark.stats import ALPHA, cell_summary, equivalent, greater, summarize, too_few_seeds
from benchmark.study import Verdict

TITLE = "Head type: class token vs global average pooling"
REFERENCE = "Fig. 9 / App. D.3"
PRESETS = {
    "smoke": "a check of the pipeline: 2 learning rates, one seed; the numbers mean nothing",
    "cpu": "a laptop-scale learning-rate sweep on 2 CPU cores, 3 seeds per cell",
    "gpu": "one GPU: ViT-Ti/8 at 64 px on 100k fractal images, 3 learning rates per head, 3 seeds per cell",
    "paper": "the paper's scale on public data: ViT-B/16, 90 epochs of ImageNet-21k (JFT-300M is private), Fig. 9's learning rates, 3 seeds",
}
CELL = ("model.pool", "optim.lr")
LRS = {
    "smoke": (1e-3, 4e-3),
    "cpu": (1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2),
    "gpu": (5e-4, 1e-3, 2e-3),
}  # factor 2; the paper preset's are Fig. 9's own (below)
SEEDS = {"smoke": (0,), "cpu": (0, 1, 2), "gpu": (0, 1, 2), "paper": (0, 1, 2)}
EVERY = {"smoke": 10, "cpu": 50, "gpu": 250, "paper": 10_000}  # probe every N steps: Fig. 9's curves
HEAD = {"token": "CLS-Token", "gap": "GAP"}
JUDGED, SELECTED_ON = "transfer 5-shot", "transfer 5-shot (validation)"
# "GAP matches CLS once tuned": within a third of what the learning rate is worth to GAP here
# (GAP at its own lr − GAP at the class token's, on validation data).
EQUIVALENCE_FRACTION = 1 / 3

_FIG9 = paper_values(source="fig9")["variant"]  # e.g. "cls_token;lr=8e-4", "gap;lr=3e-4"
PAPER_CLS_LR = float(next(parse_variant(v)["lr"] for v in _FIG9 if v.startswith("cls_token")))
PAPER_GAP_LRS = sorted(float(parse_variant(v)["lr"]) for v in _FIG9 if v.startswith("gap"))
LRS["paper"] = tuple(sorted({PAPER_CLS_LR, *PAPER_GAP_LRS}))
CLAIM = (
    f"GAP works as well as a class token once its learning rate is tuned (CLS at lr {PAPER_CLS_LR:g} ≈ GAP at "
    f"{min(PAPER_GAP_LRS):g}); GAP at the class token's learning rate does much worse."
)


def runs(preset: str):
    cells = product(**{"model.pool": list(HEAD), "optim.lr": LRS[preset]})
    return grid(base(preset).replace(**{"eval.every_steps": EVERY[preset]}), cells, SEEDS[preset])


def _with_judged(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{JUDGED: transfer_mean(frame), SELECTED_ON: transfer_mean(frame, split="val")})


def _best_lrs(df: pd.DataFrame) -> dict[str, float]:
    """Each head's learning rate, chosen on the validation split (mean over seeds)."""
    cells = summarize(df, CELL, SELECTED_ON)
    return {pool: float(g.loc[g["mean"].idxmax(), "optim.lr"]) for pool, g in cells.groupby("model.pool")}


def _cell(df: pd.DataFrame, pool: str, lr: float, metric: str = JUDGED) -> pd.Series:
    return df.loc[(df["model.pool"] == pool) & np.isclose(df["optim.lr"], lr), metric]


def table(df: pd.DataFrame) -> pd.DataFrame:
    df = _with_judged(df)
    best = _best_lrs(df)
    labels = {
        SELECTED_ON: f"{SELECTED_ON} (%)",
        JUDGED: f"{JUDGED} (%), judged",
        metrics.UPSTREAM_TOP1: "upstream test top-1 (%)",
    }
    out = pd.DataFrame({label: cell_summary(df, CELL, m) for m, label in labels.items()}).reset_index()
    out["role"] = [
        ", ".join([f"chosen lr for {HEAD[pool]}"] * (lr == best.get(pool)) + ["GAP at CLS's chosen lr"] * (pool == "gap" and lr == best.get("token")))
        for pool, lr in zip(out["model.pool"], out["optim.lr"], strict=True)
    ]  # fmt: skip
    out.insert(0, "head", out.pop("model.pool").map(HEAD))
    paper = [{"head": f"paper: {HEAD['token']}", "optim.lr": PAPER_CLS_LR, "role": "Fig. 9 curve"}]
    paper += [
        {"head": f"paper: {HEAD['gap']}", "optim.lr": lr, "role": "Fig. 9 curve"} for lr in PAPER_GAP_LRS
    ]
    return (
        pd.concat([out, pd.DataFrame(paper)], ignore_index=True).rename(columns={"optim.lr": "lr"}).fillna("")
    )


def checks(df: pd.DataFrame) -> list[Verdict]:
    df = _with_judged(df)
    judged_on = f"5-shot test accuracy, mean over the transfer datasets {', '.join(probes(df))}; lr chosen on their validation split"
    claims = (
        "Tuned GAP matches the tuned class token",
        "GAP's best learning rate is lower than the class token's",
        "GAP at the class token's learning rate is clearly worse than at its own",
    )
    best = _best_lrs(df)
    if len(best) < 2:
        return [Verdict.not_judged(c, "needs both head types", judged_on=judged_on) for c in claims]
    cls, gap, gap_at_cls = (
        _cell(df, "token", best["token"]),
        _cell(df, "gap", best["gap"]),
        _cell(df, "gap", best["token"]),
    )
    names = {
        f"CLS lr={best['token']:g}": cls,
        f"GAP lr={best['gap']:g}": gap,
        f"GAP lr={best['token']:g}": gap_at_cls,
    }
    if reason := too_few_seeds(names):
        return [Verdict.not_judged(c, reason, judged_on=judged_on) for c in claims]
    verdicts = []

    lr_effect = (
        _cell(df, "gap", best["gap"], SELECTED_ON).mean()
        - _cell(df, "gap", best["token"], SELECTED_ON).mean()
    )
    if lr_effect <= 0:
        why = "the validation split chose the same lr for both heads, so there is no lr effect to scale the margin by"
        verdicts.append(Verdict.not_judged(claims[0], why, judged_on=judged_on))
    else:
        margin = lr_effect * EQUIVALENCE_FRACTION
        verdicts.append(judged(
            [equivalent(gap, cls, margin, "GAP (own lr) ≈ CLS (own lr)")],
            claim=claims[0],
            paper=f"GAP at {min(PAPER_GAP_LRS):g} ≈ CLS at {PAPER_CLS_LR:g} (Fig. 9 curves overlap)",
            measured=f"GAP {gap.mean():.1%} (lr {best['gap']:g}) vs CLS {cls.mean():.1%} (lr {best['token']:g}); "
            f"margin ±{margin * 100:.2f} pts",
            rule=f"TOST (two one-sided Welch t-tests), α = 0.05; margin = {EQUIVALENCE_FRACTION:.2g} × what the lr "
            f"is worth to GAP on validation data (its own lr vs the class token's: {lr_effect * 100:.2f} pts)",
            judged_on=judged_on,
        ))  # fmt: skip

    # Each seed's sweep gives its own best lr (on validation data): is GAP's lower than CLS's?
    per_seed = df.loc[df.groupby(["model.pool", "seed"])[SELECTED_ON].idxmax(), ["model.pool", "optim.lr"]]
    gap_lrs, cls_lrs = (
        np.log2(per_seed.loc[per_seed["model.pool"] == p, "optim.lr"]) for p in ("gap", "token")
    )
    test = mannwhitneyu(gap_lrs, cls_lrs, alternative="less")
    ratio = best["token"] / best["gap"]
    verdicts.append(Verdict(
        claim=claims[1],
        paper=f"CLS {PAPER_CLS_LR:g} vs GAP {min(PAPER_GAP_LRS):g} (GAP's {PAPER_CLS_LR / min(PAPER_GAP_LRS):.2g}× smaller)",
        measured=f"chosen lrs: CLS {best['token']:g}, GAP {best['gap']:g} (CLS/GAP = {ratio:.2g}); per seed: "
        f"CLS {', '.join(f'{2**v:g}' for v in cls_lrs)}; GAP {', '.join(f'{2**v:g}' for v in gap_lrs)}",
        holds=bool(test.pvalue <= ALPHA),
        margin=float("nan"),
        rule="one-sided Mann–Whitney U test on each seed's best lr (validation split), GAP lower than CLS, α = 0.05 "
        f"(with {len(gap_lrs)} seeds per head the smallest possible p is {1 / comb(len(gap_lrs) + len(cls_lrs), len(gap_lrs)):.3g})",
        evidence=f"U = {test.statistic:g}, p = {test.pvalue:.3g}; n = {len(gap_lrs)} vs {len(cls_lrs)} seeds",
        judged_on="the arg-max learning rate of each seed's sweep on validation data",
        unit="",
    ))  # fmt: skip

    drop = judged(
        [greater(gap, gap_at_cls, "GAP (own lr) > GAP (CLS's lr)")],
        claim=claims[2],
        paper=f"GAP at {PAPER_CLS_LR:g} clearly below GAP at {min(PAPER_GAP_LRS):g} (Fig. 9)",
        measured=f"GAP at lr {best['token']:g}: {gap_at_cls.mean():.1%} vs {gap.mean():.1%} at lr {best['gap']:g}",
        rule="one-sided Welch t-test, α = 0.05",
        judged_on=judged_on,
        note="The validation split chose the same lr for both heads, so the two cells are one."
        if best["gap"] == best["token"]
        else "",
    )
    return [*verdicts, drop]


def figures(df: pd.DataFrame, curves: pd.DataFrame) -> dict[str, tuple[plt.Figure, pd.DataFrame]]:
    out = {}
    df = _with_judged(df)
    best = _best_lrs(df)
    if not curves.empty and len(best) == 2:
        curves = _with_judged(curves)
        steps_per_epoch = df["train_examples"].iloc[0] / df["optim.batch_size"].iloc[0]
        roles = [("token", best["token"]), ("gap", best["token"]), ("gap", best["gap"])]
        parts = [
            curves[(curves["model.pool"] == pool) & np.isclose(curves["optim.lr"], lr)].assign(
                setting=f"{HEAD[pool]}, lr={lr:g}"
            )
            for pool, lr in dict.fromkeys(roles)
        ]
        data = pd.concat(parts, ignore_index=True).assign(epoch=lambda t: t["step"] / steps_per_epoch)
        data["accuracy"] = data[JUDGED] * 100
        fig, ax = plt.subplots(figsize=(5.2, 3.6))
        sns.lineplot(
            data, x="epoch", y="accuracy", hue="setting", style="setting", markers=True, errorbar="sd", ax=ax
        )
        ax.set_title(f"Fig. 9: {JUDGED} (test) during pre-training\n(paper: ImageNet 5-shot; mean ± std over seeds)",
                     fontsize=9)  # fmt: skip
        ax.set_xlabel("epochs of pre-training")
        ax.set_ylabel("linear 5-shot accuracy (%)")
        ax.legend(title=None, fontsize=8)
        fig.tight_layout()
        out["fig9_curves"] = (fig, data[["setting", "seed", "step", "epoch", "accuracy"]])

    cells = df[["model.pool", "optim.lr", "seed", SELECTED_ON, JUDGED]].melt(
        id_vars=["model.pool", "optim.lr", "seed"], var_name="split", value_name="accuracy"
    )
    cells["split"] = cells["split"].map(
        {SELECTED_ON: f"{SELECTED_ON}: chooses the lr", JUDGED: f"{JUDGED}: test, judged"}
    )
    cells["head"] = cells["model.pool"].map(HEAD)
    cells["accuracy"] *= 100
    grid_ = sns.relplot(cells, x="optim.lr", y="accuracy", hue="head", style="head", col="split", kind="line",
                        markers=True, errorbar="sd", hue_order=list(HEAD.values()), height=3.2, aspect=1.1)  # fmt: skip
    lrs = sorted(cells["optim.lr"].unique())
    for ax in grid_.axes.flat:
        ax.set_xscale("log", base=2)
        ax.set_xticks(lrs, [f"{lr:g}" for lr in lrs], rotation=30)
    grid_.set_axis_labels("pre-training learning rate", "final 5-shot accuracy (%)")
    grid_.set_titles("{col_name}", size=9)
    grid_.figure.suptitle("Isolation: each head's final accuracy per learning rate (chosen on validation)",
                          fontsize=10, y=1.04)  # fmt: skip
    out["lr_isolation"] = (grid_.figure, cells[["head", "optim.lr", "seed", "split", "accuracy"]])
    return out
