"""Linear few-shot evaluation as a cheap proxy for fine-tuning (§4.1).

Run:   vitbench run few_shot [--preset smoke|cpu]
Cost:  smoke ≈ 1 min; cpu ≈ 15 min on 2 CPU cores (6 pre-trainings, each probed and fine-tuned
       on 3 datasets).
Claim: the paper reports linear few-shot accuracy "where fine-tuning would be too costly", as a
       proxy that tracks fine-tuning: models rank the same way under both.

A set of models of different quality (pre-trained by the study itself on nested subsets of
MNIST, and one wider model) is evaluated three ways on three downstream datasets: the closed-form
few-shot probe (1, 5, 10, 25 shots; both published regulariser protocols — big_vision's fixed
l2 = 2^10 and the older sweep over 2^-10 … 2^19 chosen by leave-self-out), a logistic-regression
probe on all training examples, and full fine-tuning (App. B.1.1's recipe, lr chosen on a dev split).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from scipy.stats import spearmanr

from benchmark.config import EvalConfig, ModelConfig, OptimConfig, RunConfig
from benchmark.study import Verdict

TITLE = "Few-shot linear probes as a proxy for fine-tuning"
REFERENCE = "§4.1 (the few-shot protocol used throughout)"
CLAIM = (
    "Linear few-shot accuracy (closed-form regularised least squares on frozen features) is a cheap proxy "
    "for fine-tuning: it ranks pre-trained models the same way."
)
PRESETS = {
    "smoke": "CI check of the pipeline: 2 ViT-Mu/7 models, 20 steps, 5 fine-tuning steps; the numbers mean nothing.",
    "cpu": "6 models: ViT-Mu/7 pre-trained for 400 steps on nested subsets of 250 … 4,000 MNIST images, and "
    "ViT-Nano/7 (1.2M parameters) on all 4,000; each probed few-shot (1/5/10/25 shots, 3 sampling seeds) and "
    "by logistic regression, and fine-tuned (80 steps, lr from {0.003, 0.01, 0.03} on a 10% dev split) on "
    "held-out MNIST, the UCI digits and procedural shapes. The paper: ViT/ResNet models pre-trained on "
    "ImageNet-21k/JFT-300M, probed on ImageNet and 5 other datasets.",
}
CELL = ("model.arch", "data.train_examples")
DATASETS = ("mnist5k", "digits", "shapes")
SHOTS = (1, 5, 10, 25)
PROTOCOLS = {
    "fewshot": "closed-form, fixed l2 = 2^10 (big_vision)",
    "fewshot_lso": "closed-form, l2 swept and chosen leave-self-out (uncertainty-baselines)",
}
RHO_MIN = 0.8  # "ranks the same way": a strong rank correlation


def runs(preset: str) -> list[RunConfig]:
    if preset == "smoke":
        base = RunConfig(
            model=ModelConfig(arch="Mu/7"),
            optim=OptimConfig(steps=20, warmup_steps=4, batch_size=64),
            eval=EvalConfig(fewshot_datasets=DATASETS, shots=(1, 5), fewshot_seeds=2, l2_sweep=True,
                            linear_probe=True, finetune_steps=5, finetune_lrs=(0.01,)),
        )  # fmt: skip
        models = [("Mu/7", 500), ("Mu/7", 2000)]
    else:  # cpu
        base = RunConfig(
            model=ModelConfig(arch="Mu/7"),
            optim=OptimConfig(lr=2e-3, batch_size=128, steps=400, warmup_steps=40),
            eval=EvalConfig(fewshot_datasets=DATASETS, shots=SHOTS, fewshot_seeds=3, l2_sweep=True,
                            linear_probe=True, finetune_steps=80, finetune_lrs=(0.003, 0.01, 0.03)),
        )  # fmt: skip
        models = [("Mu/7", n) for n in (250, 500, 1000, 2000, 4000)] + [("Nano/7", 4000)]
    return [
        base.replace(**{"model.arch": arch, "data.dataset": "mnist5k", "data.train_examples": n})
        for arch, n in models
    ]


def _model_name(row: pd.Series) -> str:
    return f"{row['model.arch']} on {row['data.train_examples'] or 'all'} images"


def _scores(df: pd.DataFrame, shots: int = 5) -> pd.DataFrame:
    """One row per model: each evaluation averaged over the downstream datasets."""
    out = pd.DataFrame({"model": df.apply(_model_name, axis=1)})
    for protocol in PROTOCOLS:
        out[protocol] = df[[f"{protocol}/{d}/{shots}shot" for d in DATASETS]].mean(axis=1)
    out["linear"] = df[[f"linear/{d}/top1" for d in DATASETS]].mean(axis=1)
    out["finetune"] = df[[f"finetune/{d}/top1" for d in DATASETS]].mean(axis=1)
    return out


def table(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, run in df.sort_values(["model.arch", "data.train_examples"]).iterrows():
        row = {"model": _model_name(run)}
        for d in DATASETS:
            row[f"{d} 5-shot fixed l2"] = run[f"fewshot/{d}/5shot"] * 100
            row[f"{d} 5-shot LSO"] = run[f"fewshot_lso/{d}/5shot"] * 100
            row[f"{d} logreg"] = run[f"linear/{d}/top1"] * 100
            row[f"{d} fine-tune"] = run[f"finetune/{d}/top1"] * 100
        rows.append(row)
    return pd.DataFrame(rows).round(1)


def _rank_verdict(scores: pd.DataFrame, proxy: str, label: str) -> Verdict:
    rho, p = spearmanr(scores[proxy], scores["finetune"])
    return Verdict(
        claim=f"{label} ranks models as fine-tuning does",
        paper="used as the proxy for fine-tuning throughout (no correlation reported)",
        measured=f"Spearman ρ = {rho:.2f} (p = {p:.3f}) over {len(scores)} models, 5-shot / top-1 averaged "
        f"over {', '.join(DATASETS)}",
        holds=bool(rho >= RHO_MIN and p < 0.05),
        margin=float(rho - RHO_MIN),
        rule=f"Spearman ρ ≥ {RHO_MIN} and p < 0.05",
        unit="ρ",
    )


def checks(df: pd.DataFrame) -> list[Verdict]:
    scores = _scores(df)
    if len(scores) < 3:
        rule = "a rank correlation needs at least 3 models"
        return [
            Verdict(
                "Few-shot ranks models as fine-tuning does",
                "",
                f"{len(scores)} models",
                None,
                float("nan"),
                rule,
            )
        ]
    return [
        _rank_verdict(scores, "fewshot", "Few-shot (fixed l2 = 2^10)"),
        _rank_verdict(scores, "fewshot_lso", "Few-shot (l2 chosen leave-self-out)"),
        _rank_verdict(scores, "linear", "Logistic-regression probe (reference)"),
    ]


def _order(df: pd.DataFrame) -> list[str]:
    ranked = df.sort_values(
        ["model.arch", "data.train_examples"], key=lambda c: c.map(str) if c.name == "model.arch" else c
    )
    return list(dict.fromkeys(ranked.apply(_model_name, axis=1)))


def figures(df: pd.DataFrame, curves: pd.DataFrame) -> dict[str, tuple[plt.Figure, pd.DataFrame]]:
    names = {"fewshot": "closed form, l2 = 2^10", "fewshot_lso": "closed form, l2 leave-self-out",
             "linear": "logistic regression"}  # fmt: skip
    scores = _scores(df).melt(id_vars=["model", "finetune"], var_name="probe", value_name="probe accuracy")
    rho = {p: spearmanr(g["probe accuracy"], g["finetune"])[0] for p, g in scores.groupby("probe")}
    scores["probe"] = scores["probe"].map(lambda p: f"{names[p]}\nSpearman ρ = {rho[p]:.2f}")
    scores[["finetune", "probe accuracy"]] *= 100
    grid = sns.relplot(scores, x="probe accuracy", y="finetune", hue="model", hue_order=_order(df), col="probe",
                       s=70, height=3.2, aspect=1.15, facet_kws={"sharex": False})  # fmt: skip
    grid.set_titles("{col_name}", size=9)
    grid.set_axis_labels("probe accuracy (%)", "fine-tuning accuracy (%)")
    grid.figure.suptitle("Does the cheap probe rank models as fine-tuning does? (5-shot / top-1, mean over "
                         f"{', '.join(DATASETS)})", fontsize=10, y=1.06)  # fmt: skip
    out = {"proxy_vs_finetune": (grid.figure, scores)}

    long = []
    for _, run in df.iterrows():
        for protocol in PROTOCOLS:
            for d in DATASETS:
                for k in [s for s in SHOTS if pd.notna(run.get(f"{protocol}/{d}/{s}shot"))]:
                    long.append({"model": _model_name(run), "protocol": PROTOCOLS[protocol], "dataset": d,
                                 "shots": k, "accuracy": run[f"{protocol}/{d}/{k}shot"] * 100})  # fmt: skip
    long = pd.DataFrame(long)
    grid = sns.relplot(long, x="shots", y="accuracy", hue="model", hue_order=_order(df), style="protocol",
                       col="dataset", kind="line", markers=True, height=3, aspect=1.0)  # fmt: skip
    grid.set(xscale="log")
    for ax in grid.axes.flat:
        ax.set_xticks(sorted(long["shots"].unique()), [str(k) for k in sorted(long["shots"].unique())])
    grid.set_axis_labels("examples per class", "few-shot accuracy (%)")
    grid.figure.suptitle(
        "Few-shot accuracy against shots: fixed l2 vs leave-self-out l2", fontsize=10, y=1.03
    )
    out["shots"] = (grid.figure, long)
    return out
