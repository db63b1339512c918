"""Claim checks on constructed results: each verdict must be able to come out either way, for
the right reasons, and a verdict with too few seeds is not judged."""

import numpy as np
import pandas as pd
import pytest

from benchmark import metrics
from benchmark.presets import TRANSFER
from studies import few_shot, head_type, pos_embed


def noisy(mean: float, seeds: int, rng: np.random.Generator, sd: float = 0.005) -> np.ndarray:
    return mean + sd * rng.standard_normal(seeds)


def pos_frame(none: float, encodings: dict, seeds: int = 5, default: float = 0.60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for pos, inject in pos_embed.CELLS:
        mean = none if pos == "none" else encodings.get((pos, inject), default)
        for seed, acc in enumerate(noisy(mean, seeds, rng)):
            rows.append({"model.pos_embed": pos, "model.pos_inject": inject, "seed": seed, "model.arch": "Mu/7",
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
            rows.append({"model.pool": pool, "optim.lr": lr, "seed": seed, metrics.UPSTREAM_TOP1: 0.9,
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
        rows.append(row)
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
