"""Claim checks on constructed results: every claim can come out reproduced, contradicted or
inconclusive, for the right reasons; too few seeds, an under-trained model or a failed control are
said, never hidden."""

import numpy as np
import pandas as pd
import pytest

from benchmark import metrics
from benchmark.presets import PAPER_TRANSFER, TRANSFER
from studies import compute, data_scaling, few_shot, head_type, pos_embed

# What every run's row carries besides its metrics: the datasets it judges (config columns), their
# classes (recorded by the trainer) and the fit gate (added by the report from the run's curve).
CLASSES = {"mnist5to9": 5, "digits": 10, "shapes": 10}
COMMON = {
    "model.checkpoint": "",  # trained here, from no released checkpoint
    "eval.fewshot_datasets": TRANSFER,
    "eval.finetune.datasets": (),
    "datasets": {d: {"role": "transfer", "provenance": "", "classes": k} for d, k in CLASSES.items()},
    "fit_ok": True,
    "fit_text": "train 99.0%, test 95.0%: levelled off",
}


def noisy(mean: float, seeds: int, rng: np.random.Generator, sd: float = 0.005) -> np.ndarray:
    return mean + sd * rng.standard_normal(seeds)


def outcomes(verdicts) -> list[str]:
    return [v.outcome for v in verdicts]


# --- pos_embed ---------------------------------------------------------------------------------


def pos_frame(none: float, encodings: dict, seeds: int = 5, default: float = 0.60, sd: float = 0.005,
              upstream_none: float = 0.85) -> pd.DataFrame:  # fmt: skip
    rng = np.random.default_rng(0)
    rows = []
    for pos, inject in pos_embed.CELLS:
        mean = none if pos == "none" else encodings.get((pos, inject), default)
        upstream = upstream_none if pos == "none" else 0.95
        where = 0.25 if pos == "none" else 0.60  # the position-only probe: chance without position embeddings
        for seed, acc in enumerate(noisy(mean, seeds, rng, sd)):
            rows.append({**COMMON, "model.pos_embed": pos, "model.pos_inject": inject, "seed": seed, "model.arch": "Mu/7",
                         "data.dataset": "mnist0to4", "patch_grid": [4, 4], metrics.UPSTREAM_TOP1: upstream + 0.005 * rng.standard_normal(),
                         metrics.POSITION_TOP1: where + 0.01 * rng.standard_normal(),
                         **{metrics.fewshot(d, 5): acc for d in TRANSFER}})  # fmt: skip
    return pd.DataFrame(rows)


def test_pos_embed_reproduced_when_none_is_far_below_and_the_encodings_are_tight():
    control, where, worse, same = pos_embed.checks(pos_frame(none=0.50, encodings={}, sd=0.0003))
    assert outcomes([control, where, worse, same]) == ["reproduced"] * 4
    assert control.control and where.control and not worse.control
    assert "paper's" in worse.predicted and "above chance" in worse.predicted
    assert "TOST" in same.rule and "n = 5 vs 5" in same.evidence and "transfer" in worse.judged_on
    assert worse.mde > 0 and 0 <= worse.power <= 1 and worse.interval[0] > 0


def test_pos_embed_contradicted_when_an_encoding_is_no_better_than_none_and_another_far_off():
    # Relative a hair below none (tight): its gap is shown below the predicted one; 2-D far
    # below 1-D: a difference beyond the margin.
    df = pos_frame(none=0.50, encodings={("relative", "stem"): 0.4995, ("2d", "stem"): 0.55}, sd=0.0003)
    *_, worse, same = pos_embed.checks(df)
    assert worse.outcome == "contradicted" and "Relative at the stem" in worse.reason
    assert same.outcome == "contradicted" and "2-D at the stem" in same.reason


def test_pos_embed_inconclusive_when_the_seeds_cannot_tell():
    # Noisy cells: the gap to none holds both 0 and the predicted effect, and the parity interval is
    # wider than the whole margin: "this run could not tell", not "does not hold".
    *_, worse, same = pos_embed.checks(pos_frame(none=0.595, encodings={}, sd=0.02))
    assert worse.outcome == same.outcome == "inconclusive"
    assert (
        "wider than the whole" in same.reason
        and "cannot be decided" in same.reason
        and "seeds per cell" in same.reason
    )


def test_pos_embed_control_fails_when_position_does_not_help_upstream():
    control, *_ = pos_embed.checks(pos_frame(none=0.5, encodings={}, upstream_none=0.95))
    assert control.control and control.outcome != "reproduced"


def test_pos_embed_with_too_few_seeds_is_inconclusive_and_says_why():
    verdicts = pos_embed.checks(pos_frame(none=0.5, encodings={}, seeds=2))
    assert all(v.outcome == "inconclusive" and "needs >= 3 seeds" in v.reason for v in verdicts)


def test_pos_embed_table_puts_all_eight_cells_beside_the_paper():
    table = pos_embed.table(pos_frame(none=0.5, encodings={}))
    assert len(table) == 8 and table["paper: ImageNet 5-shot (%)"].notna().all()


def test_verdict_text_is_built_from_the_results():
    a = pos_embed.checks(pos_frame(none=0.50, encodings={}))[2].measured
    b = pos_embed.checks(pos_frame(none=0.40, encodings={}))[2].measured
    assert a != b and "50.0%" in a and "40.0%" in b


# --- head_type ---------------------------------------------------------------------------------


def head_frame(test: dict, val: dict | None = None, seeds: int = 3, sd: float = 0.005) -> pd.DataFrame:
    """Cells (pool, lr) -> mean transfer 5-shot on test, and (optionally different) on validation;
    upstream top-1 falls at the largest lr (the control)."""
    rng = np.random.default_rng(0)
    val = val or test
    top = max(lr for _, lr in test)
    rows = []
    for (pool, lr), mean in test.items():
        for seed, (t, v) in enumerate(
            zip(noisy(mean, seeds, rng, sd), noisy(val[(pool, lr)], seeds, rng, sd), strict=True)
        ):
            rows.append({**COMMON, "model.pool": pool, "optim.lr": lr, "seed": seed,
                         metrics.UPSTREAM_TOP1: (0.80 if lr == top else 0.95) + 0.005 * rng.standard_normal(),
                         **{metrics.fewshot(d, 5): t for d in TRANSFER},
                         **{metrics.fewshot(d, 5, "val"): v for d in TRANSFER}})  # fmt: skip
    return pd.DataFrame(rows)


PAPER_PATTERN = {
    ("token", 3e-4): 0.58, ("token", 8e-4): 0.60, ("token", 3e-3): 0.50,
    ("gap", 3e-4): 0.60, ("gap", 8e-4): 0.50, ("gap", 3e-3): 0.40,
}  # fmt: skip


def test_head_type_reproduced_for_the_paper_pattern():
    control, tuned, lower, worse = head_type.checks(head_frame(PAPER_PATTERN, sd=0.0002))
    assert outcomes([control, tuned, lower, worse]) == ["reproduced"] * 4  # lower: p = 0.05 at 3 vs 3


def test_head_type_contradicted_when_gap_is_simply_worse_and_prefers_a_higher_lr():
    pattern = {**PAPER_PATTERN, ("gap", 3e-4): 0.40, ("gap", 8e-4): 0.45, ("gap", 3e-3): 0.55}
    _, tuned, lower, worse = head_type.checks(head_frame(pattern, sd=0.0002))
    assert tuned.outcome == "contradicted"  # GAP 5 pts below CLS: beyond the margin
    assert lower.outcome == "contradicted"  # every GAP seed chose a higher lr than every CLS seed
    assert worse.outcome == "reproduced"  # GAP at CLS's lr (8e-4) is below GAP at its own (3e-3)


def test_head_type_chooses_learning_rates_on_validation_not_on_the_judged_number():
    # On validation GAP prefers 8e-4, CLS's lr; on test 3e-4 looks best. The verdicts follow the
    # validation choice: GAP at its own lr is then the same cell as GAP at CLS's lr.
    val = {**PAPER_PATTERN, ("gap", 8e-4): 0.65}
    *_, worse = head_type.checks(head_frame(PAPER_PATTERN, val))
    assert worse.outcome != "reproduced" and "same lr" in worse.note


def test_head_type_with_too_few_seeds_is_inconclusive():
    verdicts = head_type.checks(head_frame(PAPER_PATTERN, seeds=2))
    assert all(v.outcome == "inconclusive" and "needs >= 3 seeds" in v.reason for v in verdicts)


# --- few_shot ----------------------------------------------------------------------------------


def few_frame(finetune: list[float], fewshot: list[float], gain: float = 0.1) -> pd.DataFrame:
    """One run per model (seed 0; model i at lr 1e-3 · (i + 1)), then the control's ladder: the first
    model's seeds 1 and 2, and the same model at 25 steps (3 seeds), `gain` lower on both evaluations."""
    rng = np.random.default_rng(0)
    rows = []
    models = [
        (ft, fs, 400, 0, 1e-3 * (i + 1)) for i, (ft, fs) in enumerate(zip(finetune, fewshot, strict=True))
    ]
    ladder = [(finetune[0], fewshot[0], 400, seed, 1e-3) for seed in (1, 2)]
    ladder += [(finetune[0] - gain, fewshot[0] - gain, 25, seed, 1e-3) for seed in (0, 1, 2)]
    runs = models + ladder if len(models) >= 3 else models
    for i, (ft, fs, steps, seed, lr) in enumerate(runs):
        ft += 0.003 * rng.standard_normal() * (i >= len(models))  # the ladder's seeds differ
        row = {"run_id": f"run{i}", "model.arch": "Mu/7", "model.pos_embed": "1d", "model.pool": "token", "optim.steps": steps,
               "seed": seed, "optim.lr": lr, "data.train_examples": 0, "eval.fewshot_seeds": 3, metrics.UPSTREAM_TOP1: 0.9,
               "eval.evaluators": few_shot.EVALUATORS}  # fmt: skip
        for d in TRANSFER:
            seeds = noisy(fs, 3, rng, sd=0.002)
            row |= {metrics.key("finetune", d, "top1"): ft, metrics.key("linear", d, "top1"): ft}
            row |= {metrics.fewshot(d, 5): seeds.mean(), metrics.fewshot(d, 5, protocol="fewshot_lso"): fs}
            row |= {metrics.fewshot(d, 5, seed=s): v for s, v in enumerate(seeds)}
        rows.append({**COMMON, **row})
    return pd.DataFrame(rows)


def test_few_shot_reproduced_when_the_probe_tracks_fine_tuning():
    quality = list(np.linspace(0.5, 0.9, 10))
    verdicts = few_shot.checks(few_frame(quality, [q - 0.2 for q in quality]))
    assert outcomes(verdicts) == ["reproduced"] * 4 and verdicts[0].control


def test_few_shot_control_fails_when_training_longer_changes_nothing():
    quality = list(np.linspace(0.5, 0.9, 10))
    control, *_ = few_shot.checks(few_frame(quality, quality, gain=0.0))
    assert control.control and control.outcome != "reproduced"


def test_few_shot_contradicted_when_the_probe_ranks_models_in_reverse():
    quality = list(np.linspace(0.5, 0.9, 10))
    _, fewshot, lso, linear = few_shot.checks(few_frame(quality, [0.9 - q for q in quality]))
    assert fewshot.outcome == lso.outcome == "contradicted" and "Discordant pairs" in fewshot.note
    assert linear.outcome == "reproduced"  # the reference probe equals fine-tuning in this construction


def test_few_shot_is_the_suites_own_claim_and_says_one_seed_per_model():
    quality = list(np.linspace(0.5, 0.9, 10))
    verdict = few_shot.checks(few_frame(quality, quality))[1]
    assert "suite's own" in verdict.paper and "one pre-training seed" in verdict.note


@pytest.mark.parametrize("n", [1, 2])
def test_few_shot_needs_three_models(n):
    df = few_frame([0.5, 0.6][:n], [0.4, 0.5][:n])
    assert all(v.outcome == "inconclusive" for v in few_shot.checks(df))


def released_few_frame(l16: float, b32: float, sd: float = 0.003) -> pd.DataFrame:
    """The released preset's runs: the 9 checkpoints (seed 0, probed every way, fine-tuned in the order of
    their list), and the control's ladder: ViT-L/16 and ViT-B/32 probed and fine-tuned with 3 seeds each
    (the probe the same at every seed: its spread is over its own sampling seeds)."""
    rng = np.random.default_rng(1)
    runs = [
        (name, 0, few_shot.RELEASED_EVALUATORS, 0.8 + 0.01 * i) for i, name in enumerate(few_shot.RELEASED)
    ]
    runs += [(name, seed, few_shot.LADDER_EVALUATORS, acc)
             for name, acc in zip(few_shot.RELEASED_LADDER, (l16, b32), strict=True) for seed in (0, 1, 2)]  # fmt: skip
    rows = []
    for name, seed, evaluators, acc in runs:
        tuned = acc + sd * rng.standard_normal() * (evaluators == few_shot.LADDER_EVALUATORS)
        probe = {s: acc - 0.2 + 0.004 * s for s in range(3)}
        row = {**few_shot.checkpoint(name), "model.pos_embed": "1d", "model.pool": "token", "optim.steps": 0,
               "optim.lr": 1e-3, "data.train_examples": 0, "seed": seed, "eval.fewshot_seeds": 3,
               "eval.evaluators": evaluators, "eval.fewshot_datasets": PAPER_TRANSFER, "eval.finetune.datasets": PAPER_TRANSFER}  # fmt: skip
        for d in PAPER_TRANSFER:
            row |= {metrics.key("finetune", d, "top1"): tuned, metrics.key("linear", d, "top1"): acc}
            row |= {
                metrics.fewshot(d, 5): np.mean(list(probe.values())),
                metrics.fewshot(d, 5, protocol="fewshot_lso"): acc,
            }
            row |= {metrics.fewshot(d, 5, seed=s): v for s, v in probe.items()}
        rows.append(row)
    return pd.DataFrame(rows)


def test_few_shot_released_control_reads_table_5s_order_over_fine_tuning_and_probe_seeds():
    control, *ranked = few_shot.checks(released_few_frame(l16=0.955, b32=0.93))
    assert control.control and control.outcome == "reproduced", control.reason
    assert control.claim == "Control: fine-tuning and the probe both put ViT-L/16 above ViT-B/32"
    assert control.evidence.startswith("fine-tuning, ViT-L/16 − ViT-B/32: Δ = +2.")
    assert (
        "5-shot probe, ViT-L/16 − ViT-B/32: Δ = +2.5 pts" in control.evidence
        and "n = 3 vs 3" in control.evidence
    )
    assert all("9 models" in v.measured for v in ranked)  # the ladder's runs are not ranked twice
    (models, ladder) = few_shot.table(released_few_frame(l16=0.955, b32=0.93)).values()
    assert list(models["model"])[-3:] == [
        "BiT-M R50x1",
        "BiT-M R101x1",
        "BiT-M R152x2",
    ]  # by the paper's names
    assert list(ladder["rung"]) == ["ViT-B/32", "ViT-L/16"] and list(ladder["seeds"]) == [3, 3]


def test_few_shot_released_control_states_the_counts_and_the_datasets_it_ran_with():
    df = released_few_frame(l16=0.955, b32=0.93)
    control = few_shot.checks(df)[0]
    assert (
        "fine-tuning over 3 fine-tuning seeds each, the probe over its 3 sampling seeds each" in control.rule
    )
    assert "mean of CIFAR-100, Oxford-IIIT-Pets, Oxford-Flowers-102" in control.predicted
    df["eval.finetune.datasets"] = [("pets",)] * len(df)  # fine-tuned on Pets alone: Table 5's Pets column
    assert (
        "1.71 pts above ViT-B/32, fine-tuned, mean of Oxford-IIIT-Pets)" in few_shot.checks(df)[0].predicted
    )


def test_few_shot_released_control_contradicted_when_the_better_checkpoint_is_not():
    control = few_shot.checks(released_few_frame(l16=0.90, b32=0.93))[0]
    assert control.outcome == "contradicted"


# --- data_scaling ------------------------------------------------------------------------------


SCALING = {"ViT": ("Mu/8", 4e-3), "BiT": ("R14x1", 2e-3)}


def scaling_frame(
    small: dict, slope: dict, seeds: int = 3, sd: float = 0.005, fit: bool = True
) -> pd.DataFrame:
    """Accuracy = small[family] + slope[family] per decade above 1k images, plus seed noise, at 1k and
    100k images; the ViT's runs at 1k pass the fit gate only when `fit`."""
    rng = np.random.default_rng(2)
    rows = []
    for fam, (arch, lr) in SCALING.items():
        for n in (1_000, 100_000):
            mean = small[fam] + slope[fam] * np.log10(n / 1_000)
            for seed, acc in enumerate(noisy(mean, seeds, rng, sd)):
                passed = fit or fam != "ViT" or n != 1_000
                rows.append({**COMMON, "model.arch": arch, "optim.lr": lr, "train_examples": n, "seed": seed,
                             "selected_step": 300, metrics.UPSTREAM_TOP1: 0.5, "fit_ok": passed,
                             "fit_text": COMMON["fit_text"] if passed else "train 25.4%, test 25.1%: still rising",
                             **{metrics.fewshot(d, 5): acc for d in TRANSFER},
                             **{metrics.fewshot(d, 5, "val"): acc for d in TRANSFER},
                             **{metrics.key("finetune", d, "top1"): acc for d in TRANSFER}})  # fmt: skip
    return pd.DataFrame(rows)


def test_data_scaling_reproduced_when_vit_starts_behind_and_overtakes():
    verdicts = data_scaling.checks(scaling_frame({"ViT": 0.30, "BiT": 0.40}, {"ViT": 0.10, "BiT": 0.01}))
    control, _, slope, _ = verdicts
    assert outcomes(verdicts) == ["reproduced"] * 4 and control.control
    assert "cross at" in slope.note and "extrapolation" not in slope.note


def test_data_scaling_contradicted_when_bit_stays_far_ahead():
    _, ahead, slope, over = data_scaling.checks(
        scaling_frame({"ViT": 0.30, "BiT": 0.50}, {"ViT": 0.02, "BiT": 0.05})
    )
    assert ahead.outcome == "reproduced" and slope.outcome == over.outcome == "contradicted"
    assert "never cross" in slope.note


def test_data_scaling_does_not_compare_a_model_that_has_not_fit():
    _, ahead, slope, over = data_scaling.checks(
        scaling_frame({"ViT": 0.30, "BiT": 0.50}, {"ViT": 0.02, "BiT": 0.05}, fit=False)
    )
    assert ahead.outcome == slope.outcome == "inconclusive"
    assert "under-trained: ViT at 1,000" in ahead.reason and "still rising" in ahead.reason
    assert over.outcome == "contradicted"  # at 100k both fit


def test_data_scaling_with_too_few_seeds_is_inconclusive():
    verdicts = data_scaling.checks(scaling_frame({"ViT": 0.3, "BiT": 0.3}, {"ViT": 0.0, "BiT": 0.0}, seeds=2))
    assert all(v.outcome == "inconclusive" for v in verdicts)


# --- data_scaling at released: Fig. 3's ImageNet-21k column from the authors' checkpoints -------------

PAPER_CLASSES = {"cifar100": 100, "pets": 37, "flowers102": 102}


def released_frame(fine_tuned: dict[str, float], seeds: int = 3, sd: float = 0.001) -> pd.DataFrame:
    """Each released role's fine-tuned accuracy (the same on every dataset) over fine-tuning seeds; the
    5-shot probe 20 pts lower, per probe seed."""
    rng = np.random.default_rng(3)
    rows = []
    for role, mean in fine_tuned.items():
        for seed, acc in enumerate(noisy(mean, seeds, rng, sd)):
            rows.append({"model.checkpoint": data_scaling.RELEASED[role], "seed": seed, "eval.fewshot_seeds": 3,
                         "eval.fewshot_datasets": PAPER_TRANSFER, "eval.finetune.datasets": PAPER_TRANSFER,
                         "datasets": {d: {"role": "transfer", "classes": k} for d, k in PAPER_CLASSES.items()},
                         **{metrics.fewshot(d, 5, seed=s): acc - 0.2 - 0.01 * s for d in PAPER_TRANSFER for s in range(3)},
                         **{metrics.key("finetune", d, "top1"): acc for d in PAPER_TRANSFER}})  # fmt: skip
    return pd.DataFrame(rows)


def test_data_scaling_released_reproduced_when_the_families_are_on_par_and_l16_beats_b32():
    control, parity = data_scaling.checks(released_frame({"ViT": 0.955, "BiT": 0.952, "control": 0.94}))
    assert (control.outcome, parity.outcome) == ("reproduced", "reproduced") and control.control
    assert parity.parity and "Table 6's JFT-300M lead" in parity.predicted
    assert "ViT-L/16 − BiT-M R152x2" in parity.evidence and "no fit gate" in parity.note


def test_data_scaling_released_contradicted_when_bit_leads_by_more_than_the_jft_lead():
    control, parity = data_scaling.checks(released_frame({"ViT": 0.955, "BiT": 0.985, "control": 0.94}))
    assert control.outcome == "reproduced" and parity.outcome == "contradicted"
    assert "beyond the" in parity.reason


def test_data_scaling_released_inconclusive_with_noisy_fine_tuning_or_too_few_seeds():
    noisy_runs = released_frame({"ViT": 0.955, "BiT": 0.95, "control": 0.94}, sd=0.03)
    assert [v.outcome for v in data_scaling.checks(noisy_runs)] == ["inconclusive"] * 2
    few = data_scaling.checks(released_frame({"ViT": 0.955, "BiT": 0.95, "control": 0.94}, seeds=2))
    assert all(v.outcome == "inconclusive" and "seeds" in v.reason for v in few)


def test_data_scaling_released_table_puts_each_checkpoint_beside_table_5():
    (table,) = data_scaling.table(released_frame({"ViT": 0.955, "BiT": 0.952, "control": 0.94})).values()
    rows = table.set_index("model")
    assert rows.loc["ViT-L/16", "the paper's Table 5 (%)"] == f"{(93.44 + 94.73 + 99.61) / 3:.2f}"
    assert rows.loc["BiT-M R152x2", "the paper's Table 5 (%)"] == "–"  # the ViT paper tabulates no BiT-M
    assert rows.loc["ViT-L/16", "5-shot sd over probe seeds"] == pytest.approx(1.0, abs=0.01)


# --- compute -----------------------------------------------------------------------------------


COMPUTE_CELLS = [  # (arch, width, resnet_width, steps, training FLOPs)
    ("Mu/8", 32, 0, 100, 1e12), ("Mu/8", 32, 0, 400, 4e12), ("Mu/8", 0, 0, 100, 2e12), ("Mu/8", 0, 0, 400, 8e12),
    ("R14x1", 0, 8, 100, 1e12), ("R14x1", 0, 8, 400, 4e12), ("R14x1", 0, 16, 100, 3e12), ("R14x1", 0, 16, 400, 12e12),
    ("R14x1+Mu/8", 32, 8, 100, 1.5e12), ("R14x1+Mu/8", 32, 8, 400, 6e12),
    ("R14x1+Mu/8", 0, 16, 100, 3e12), ("R14x1+Mu/8", 0, 16, 400, 12e12),
]  # fmt: skip


def compute_frame(
    bit_needs: float, hybrid_bonus: float, sd: float = 0.005, hybrids: bool = True
) -> pd.DataFrame:
    """Fine-tuned accuracy rises 5 points per doubling of compute; BiT needs `bit_needs` times ViT's
    compute for the same accuracy; hybrids add `hybrid_bonus` at 1 TFLOP, fading to 0 at 12 TFLOPs."""
    rng = np.random.default_rng(3)
    rows = []
    for arch, width, rwidth, steps, flops in COMPUTE_CELLS:
        if "+" in arch and not hybrids:
            continue
        effective = flops / bit_needs if arch == "R14x1" else flops
        bonus = hybrid_bonus * (1 - np.log(flops / 1e12) / np.log(12)) if "+" in arch else 0.0
        for seed, acc in enumerate(noisy(0.30 + 0.05 * np.log2(effective / 1e12) + bonus, 3, rng, sd)):
            rows.append({**COMMON, "model.arch": arch, "model.width": width, "model.resnet_width": rwidth, "optim.steps": steps,
                         "optim.lr": 1e-3, "train_flops": flops, "params": 1000, "seed": seed, metrics.UPSTREAM_TOP1: 0.9,
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


def test_compute_reproduced_when_bit_needs_three_times_the_compute(no_accounting):
    control, ratio, hybrid, shrinks, saturate, accounting = compute.checks(compute_frame(3.0, 0.05, sd=0.002))
    assert outcomes([control, ratio, hybrid, shrinks, saturate, accounting]) == ["reproduced"] * 6
    assert ratio.unit == "×" and "3" in ratio.measured and "fine-tuned" in ratio.judged_on


def test_compute_contradicted_when_bit_is_the_efficient_family(no_accounting):
    _, ratio, hybrid, *_ = compute.checks(compute_frame(0.5, -0.05, sd=0.002))
    assert ratio.outcome == "contradicted" and hybrid.outcome == "contradicted"


def test_compute_says_the_ratio_is_undefined_when_the_fronts_share_no_accuracy(no_accounting):
    _, ratio, *_ = compute.checks(compute_frame(0.01, 0.0))
    assert ratio.outcome == "inconclusive" and ratio.reason.startswith("no estimate: ")
    # Which front lies above, where, and at what compute: the reader's answer, said as cell means.
    assert "the fronts share no accuracy" in ratio.measured and "least accurate fit cell" in ratio.measured


def test_compute_without_hybrids_says_so(no_accounting):
    _, _, hybrid, shrinks, *_ = compute.checks(compute_frame(3.0, 0.05, hybrids=False))
    assert hybrid.outcome == shrinks.outcome == "inconclusive" and "cpu-long" in hybrid.reason
