"""Claim checks on constructed results: each verdict must be able to come out either way, for
the right reasons, and a verdict with too few seeds is not judged."""

import numpy as np
import pandas as pd
import pytest

from benchmark import metrics
from benchmark.presets import TRANSFER
from studies import compute, data_scaling, few_shot, head_type, pos_embed

# The config columns every run's row carries, from which a study reads the datasets it judges.
PROBES = {"eval.fewshot_datasets": TRANSFER, "eval.finetune_datasets": ()}


def noisy(mean: float, seeds: int, rng: np.random.Generator, sd: float = 0.005) -> np.ndarray:
    return mean + sd * rng.standard_normal(seeds)


def pos_frame(none: float, encodings: dict, seeds: int = 5, default: float = 0.60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for pos, inject in pos_embed.CELLS:
        mean = none if pos == "none" else encodings.get((pos, inject), default)
        for seed, acc in enumerate(noisy(mean, seeds, rng)):
            rows.append({**PROBES, "model.pos_embed": pos, "model.pos_inject": inject, "seed": seed, "model.arch": "Mu/7",
                         "data.dataset": "mnist0to4", "patch_grid": [4, 4], metrics.UPSTREAM_TOP1: 0.9,
                         **{metrics.fewshot(d, 5): acc for d in TRANSFER}})  # fmt: skip
    return pd.DataFrame(rows)


def test_pos_embed_claims_hold_when_the_data_says_so():
    worse, same = pos_embed.checks(pos_frame(none=0.50, encodings={}))
    assert worse.holds and same.holds
    assert worse.margin > 0 and same.margin > 0
    assert "Holm" in worse.rule and "TOST" in same.rule and "n = 5 vs 5" in same.evidence
    assert "transfer" in worse.judged_on


def test_pos_embed_claims_fail_when_the_data_says_so():
    # Relative attention no better than none; 2-D far below 1-D.
    df = pos_frame(none=0.50, encodings={("relative", "stem"): 0.501, ("2d", "stem"): 0.55})
    worse, same = pos_embed.checks(df)
    assert worse.holds is False and same.holds is False
    assert worse.margin < 0 and same.margin < 0
    assert "Relative at the stem" in worse.note and "Hypothesis" in worse.note and "4x4" in worse.note
    assert "2-D at the stem" in same.note


def test_pos_embed_differ_little_is_not_the_absence_of_a_difference():
    # Noisy cells whose means differ by less than the noise: no significant difference, but no
    # evidence of equivalence either (the old rule would have said "differ little").
    rng = np.random.default_rng(1)
    df = pos_frame(none=0.50, encodings={("2d", "stem"): 0.585})
    df[metrics.fewshot("digits", 5)] += 0.04 * rng.standard_normal(len(df))
    _, same = pos_embed.checks(df)
    assert same.holds is False


def test_pos_embed_with_too_few_seeds_is_not_judged():
    verdicts = pos_embed.checks(pos_frame(none=0.5, encodings={}, seeds=2))
    assert all(v.holds is None and "needs >= 3 seeds" in v.note for v in verdicts)


def test_pos_embed_table_puts_all_eight_cells_beside_the_paper():
    table = pos_embed.table(pos_frame(none=0.5, encodings={}))
    assert len(table) == 8 and table["paper: ImageNet 5-shot (%)"].notna().all()


def head_frame(test: dict, val: dict | None = None, seeds: int = 3) -> pd.DataFrame:
    """Cells (pool, lr) -> mean transfer 5-shot on test, and (optionally different) on validation."""
    rng = np.random.default_rng(0)
    val = val or test
    rows = []
    for (pool, lr), mean in test.items():
        for seed, (t, v) in enumerate(
            zip(noisy(mean, seeds, rng), noisy(val[(pool, lr)], seeds, rng), strict=True)
        ):
            rows.append({**PROBES, "model.pool": pool, "optim.lr": lr, "seed": seed, metrics.UPSTREAM_TOP1: 0.9,
                         **{metrics.fewshot(d, 5): t for d in TRANSFER},
                         **{metrics.fewshot(d, 5, "val"): v for d in TRANSFER}})  # fmt: skip
    return pd.DataFrame(rows)


PAPER_PATTERN = {("token", 8e-4): 0.60, ("token", 3e-4): 0.58, ("gap", 8e-4): 0.50, ("gap", 3e-4): 0.60}


def test_head_type_claims_hold_for_the_paper_pattern():
    tuned, lower, worse = head_type.checks(head_frame(PAPER_PATTERN))
    assert tuned.holds and worse.holds
    assert lower.holds  # every seed's best GAP lr is below every seed's best CLS lr: p = 0.05
    assert tuned.margin > 0 and worse.margin > 0


def test_head_type_claims_fail_when_gap_is_simply_worse():
    df = head_frame({("token", 8e-4): 0.60, ("token", 3e-4): 0.58, ("gap", 8e-4): 0.50, ("gap", 3e-4): 0.49})
    tuned, lower, worse = head_type.checks(df)
    assert tuned.holds is None  # GAP's lr is CLS's: no lr effect to scale the margin by
    assert lower.holds is False and worse.holds is False


def test_head_type_chooses_learning_rates_on_validation_not_on_the_judged_number():
    # On validation GAP prefers 8e-4; on test, 3e-4 would look best. The verdicts must follow the
    # validation choice: GAP at its (validation-chosen) lr is the same cell as GAP at CLS's lr.
    val = {**PAPER_PATTERN, ("gap", 8e-4): 0.65}
    tuned, _, worse = head_type.checks(head_frame(PAPER_PATTERN, val))
    assert worse.holds is False and "same lr" in worse.note
    assert tuned.holds is None and "same lr" in tuned.note


def test_head_type_with_too_few_seeds_is_not_judged():
    verdicts = head_type.checks(head_frame(PAPER_PATTERN, seeds=2))
    assert all(v.holds is None and "needs >= 3 seeds" in v.note for v in verdicts)


def few_frame(finetune: list[float], fewshot: list[float]) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for i, (ft, fs) in enumerate(zip(finetune, fewshot, strict=True)):
        row = {"model.arch": "Mu/7", "model.pos_embed": "1d", "model.pool": "token", "optim.steps": 400,
               "optim.lr": 1e-3 * (i + 1), "data.train_examples": 0, "eval.fewshot_seeds": 3, metrics.UPSTREAM_TOP1: 0.9}  # fmt: skip
        for d in TRANSFER:
            seeds = noisy(fs, 3, rng, sd=0.002)
            row |= {metrics.key("finetune", d, "top1"): ft, metrics.key("linear", d, "top1"): ft}
            row |= {metrics.fewshot(d, 5): seeds.mean(), metrics.fewshot(d, 5, protocol="fewshot_lso"): fs}
            row |= {metrics.fewshot(d, 5, seed=s): v for s, v in enumerate(seeds)}
        rows.append({**PROBES, **row})
    return pd.DataFrame(rows)


def test_few_shot_rank_check_holds_when_the_probe_tracks_fine_tuning():
    quality = list(np.linspace(0.5, 0.9, 10))
    assert all(v.holds for v in few_shot.checks(few_frame(quality, [q - 0.2 for q in quality])))


def test_few_shot_rank_check_fails_when_the_probe_reads_another_axis():
    # 10 models: fine-tuning is decided by one axis (say, the head), the probe by another (size).
    head = [0.6, 0.8] * 5
    size = [0.3 + 0.05 * (i // 2) for i in range(10)]
    fewshot, lso, linear = few_shot.checks(
        few_frame([h + 0.001 * s for h, s in zip(head, size, strict=True)], size)
    )
    assert fewshot.holds is False and fewshot.margin < 0 and lso.holds is False
    assert "discordant pairs:" in fewshot.evidence
    assert linear.holds  # the reference probe equals fine-tuning in this construction


@pytest.mark.parametrize("n", [1, 2])
def test_few_shot_needs_three_models(n):
    df = few_frame([0.5, 0.6][:n], [0.4, 0.5][:n])
    assert all(v.holds is None for v in few_shot.checks(df))


def test_verdict_text_is_built_from_the_results():
    # the same constructed data with other numbers gives other words
    a = pos_embed.checks(pos_frame(none=0.50, encodings={}))[0].measured
    b = pos_embed.checks(pos_frame(none=0.40, encodings={}))[0].measured
    assert a != b and "50.0%" in a and "40.0%" in b


SCALING_ARCHS = {"ViT": "Mu/8", "BiT": "R14x1", "hybrid": "R14x1+Mu/8"}


def scaling_frame(small: dict, slope: dict, seeds: int = 3) -> pd.DataFrame:
    """Accuracy = small[family] + slope[family] per decade above 1k images, plus seed noise."""
    rng = np.random.default_rng(2)
    rows = []
    for fam, arch in SCALING_ARCHS.items():
        for n in (1_000, 10_000, 100_000):
            for seed, acc in enumerate(noisy(small[fam] + slope[fam] * np.log10(n / 1_000), seeds, rng)):
                rows.append({**PROBES, "model.arch": arch, "train_examples": n, "seed": seed, "selected_step": 300,
                             metrics.UPSTREAM_TOP1: 0.5, **{metrics.fewshot(d, 5): acc for d in TRANSFER},
                             **{metrics.key("finetune", d, "top1"): acc for d in TRANSFER}})  # fmt: skip
    return pd.DataFrame(rows)


def test_data_scaling_claims_hold_when_vit_starts_behind_and_overtakes():
    ahead, slope, over = data_scaling.checks(
        scaling_frame(
            small={"ViT": 0.30, "BiT": 0.40, "hybrid": 0.35}, slope={"ViT": 0.10, "BiT": 0.01, "hybrid": 0.05}
        )
    )
    assert ahead.holds and slope.holds and over.holds
    assert "cross at" in over.note and "extrapolation" not in over.note


def test_data_scaling_claims_fail_when_bit_stays_ahead_and_the_crossing_is_only_extrapolated():
    ahead, slope, over = data_scaling.checks(
        scaling_frame(
            small={"ViT": 0.30, "BiT": 0.50, "hybrid": 0.35}, slope={"ViT": 0.05, "BiT": 0.02, "hybrid": 0.05}
        )
    )
    assert ahead.holds and slope.holds and over.holds is False and over.margin < 0
    assert "extrapolation" in over.note  # the lines cross near 4.6M images, beyond the 100k measured
    assert data_scaling.checks(scaling_frame({"ViT": 0.3, "BiT": 0.3, "hybrid": 0.3}, {f: 0.0 for f in SCALING_ARCHS},
                                             seeds=2))[0].holds is None  # fmt: skip


COMPUTE_CELLS = [  # (arch, width, resnet_width, steps, training FLOPs)
    ("Mu/8", 32, 0, 100, 1e12), ("Mu/8", 32, 0, 400, 4e12), ("Mu/8", 0, 0, 100, 2e12), ("Mu/8", 0, 0, 400, 8e12),
    ("R14x1", 0, 8, 100, 1e12), ("R14x1", 0, 8, 400, 4e12), ("R14x1", 0, 16, 100, 3e12), ("R14x1", 0, 16, 400, 12e12),
    ("R14x1+Mu/8", 32, 8, 100, 1.5e12), ("R14x1+Mu/8", 32, 8, 400, 6e12),
    ("R14x1+Mu/8", 0, 16, 100, 3e12), ("R14x1+Mu/8", 0, 16, 400, 12e12),
]  # fmt: skip


def compute_frame(bit_needs: float, hybrid_bonus: float) -> pd.DataFrame:
    """Accuracy rises 5 points per doubling of compute; BiT needs `bit_needs` times ViT's compute for
    the same accuracy; hybrids add `hybrid_bonus` at 1 TFLOP, fading to 0 at 12 TFLOPs."""
    rng = np.random.default_rng(3)
    rows = []
    for arch, width, rwidth, steps, flops in COMPUTE_CELLS:
        effective = flops / bit_needs if arch == "R14x1" else flops
        bonus = hybrid_bonus * (1 - np.log(flops / 1e12) / np.log(12)) if "+" in arch else 0.0
        for seed, acc in enumerate(noisy(0.30 + 0.05 * np.log2(effective / 1e12) + bonus, 3, rng)):
            rows.append({**PROBES, "model.arch": arch, "model.width": width, "model.resnet_width": rwidth, "optim.steps": steps,
                         "train_flops": flops, "params": 1000, "seed": seed,
                         **{metrics.fewshot(d, 5): acc for d in TRANSFER},
                         **{metrics.key("finetune", d, "top1"): acc for d in TRANSFER}})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture
def no_accounting(monkeypatch):
    """The Table 6 accounting has its own tests (test_flops.py); here it is a fixed small table."""
    rows = pd.DataFrame({"model": ["ViT-B/16", "ResNet50x1", "R50x1+ViT-L/16", "R50x1+ViT-L/16"], "epochs": [7, 7, 7, 14],
                         "Table 6 exaFLOPs": [224, 50, 859, 1668], "ours": [223.2, 52.0, 833.8, 1668.0],
                         "difference (%)": [-0.36, 3.98, -2.93, -0.03]})  # fmt: skip
    monkeypatch.setattr(compute, "_accounting", lambda: rows)


def test_compute_claims_hold_when_bit_needs_three_times_the_compute(no_accounting):
    ratio, hybrid, shrinks, saturate, accounting = compute.checks(
        compute_frame(bit_needs=3.0, hybrid_bonus=0.05)
    )
    assert ratio.holds and ratio.unit == "×" and 2.5 < float(ratio.measured.split()[0]) < 3.5
    assert hybrid.holds and shrinks.holds and saturate.holds and accounting.holds


def test_compute_claims_fail_when_bit_is_the_efficient_family(no_accounting):
    ratio, hybrid, shrinks, _, _ = compute.checks(compute_frame(bit_needs=0.5, hybrid_bonus=0.0))
    assert ratio.holds is False and ratio.margin < 0 and 0.4 < float(ratio.measured.split()[0]) < 0.6
    assert hybrid.holds is False and shrinks.holds is False


def test_compute_says_by_how_much_at_most_when_vit_never_reaches_bit(no_accounting):
    ratio, *_ = compute.checks(compute_frame(bit_needs=0.01, hybrid_bonus=0.0))
    # BiT's cheapest configuration (1 TFLOP) beats ViT's best (8 TFLOPs): the ratio is at most 1/8.
    assert (
        ratio.holds is False and ratio.measured.startswith("≤ 0.125 ×") and "bounded from above" in ratio.note
    )
