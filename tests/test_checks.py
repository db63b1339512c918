"""Claim checks on constructed results: each verdict must be able to come out either way."""

import itertools

import numpy as np
import pandas as pd

from studies import few_shot, head_type, pos_embed


def pos_frame(none: float, encodings: dict, noise: float = 0.002) -> pd.DataFrame:
    rows = []
    for (pos, inject), seed in itertools.product(pos_embed.CELLS, range(3)):
        mean = none if pos == "none" else encodings.get((pos, inject), 0.90)
        acc = mean + noise * (seed - 1)
        rows.append(
            {
                "model.pos_embed": pos,
                "model.pos_inject": inject,
                "seed": seed,
                pos_embed.METRIC: acc,
                pos_embed.SECOND_METRIC: acc,
                "model.arch": "Mu/7",
            }
        )
    return pd.DataFrame(rows)


def test_pos_embed_claims_hold_when_the_data_says_so():
    worse, same = pos_embed.checks(pos_frame(none=0.85, encodings={}))
    assert worse.holds and same.holds
    assert worse.margin > 0 and same.margin > 0


def test_pos_embed_claims_fail_when_the_data_says_so():
    worse, same = pos_embed.checks(pos_frame(none=0.899, encodings={("2d", "stem"): 0.80}))
    assert worse.holds is False and same.holds is False
    assert worse.margin < 0 and same.margin < 0


def test_pos_embed_one_seed_is_not_judged():
    df = pos_frame(none=0.85, encodings={})
    verdicts = pos_embed.checks(df[df["seed"] == 0])
    assert all(v.holds is None for v in verdicts)


def test_pos_embed_table_puts_all_eight_cells_beside_the_paper():
    table = pos_embed.table(pos_frame(none=0.85, encodings={}))
    assert len(table) == 8
    assert table["paper 5-shot ImageNet (%)"].notna().all()


def head_frame(acc: dict) -> pd.DataFrame:
    rows = []
    for (pool, lr), mean in acc.items():
        for seed in range(2):
            value = mean + 0.002 * (seed - 0.5)
            rows.append(
                {
                    "model.pool": pool,
                    "optim.lr": lr,
                    "seed": seed,
                    "data.train_examples": 0,
                    "optim.batch_size": 128,
                    **{f"fewshot/{d}/5shot": value for d in head_type.DATASETS},
                }
            )
    return pd.DataFrame(rows)


def test_head_type_claims_hold_for_the_paper_pattern():
    df = head_frame({("token", 8e-4): 0.90, ("token", 3e-4): 0.88, ("gap", 8e-4): 0.80, ("gap", 3e-4): 0.90})
    tuned, differ, worse = head_type.checks(df)
    assert tuned.holds and differ.holds and worse.holds


def test_head_type_claims_fail_when_gap_is_simply_worse():
    df = head_frame({("token", 8e-4): 0.90, ("token", 3e-4): 0.88, ("gap", 8e-4): 0.80, ("gap", 3e-4): 0.79})
    tuned, differ, worse = head_type.checks(df)
    assert tuned.holds is False and differ.holds is False and worse.holds is False


def test_head_type_is_not_judged_when_a_compared_cell_has_one_seed():
    df = head_frame({("token", 8e-4): 0.90, ("token", 3e-4): 0.88, ("gap", 8e-4): 0.80, ("gap", 3e-4): 0.90})
    df = df[
        ~((df["model.pool"] == "gap") & (df["optim.lr"] == 3e-4) & (df["seed"] == 1))
    ]  # GAP's best: 1 seed
    [verdict] = head_type.checks(df)
    assert verdict.holds is None and verdict.measured == "not enough runs"


def few_frame(finetune: list[float], fewshot: list[float]) -> pd.DataFrame:
    rows = []
    for i, (ft, fs) in enumerate(zip(finetune, fewshot, strict=True)):
        row = {"model.arch": "Mu/7", "data.train_examples": 100 * (i + 1)}
        for d in few_shot.DATASETS:
            row |= {
                f"finetune/{d}/top1": ft,
                f"linear/{d}/top1": ft,
                f"fewshot/{d}/5shot": fs,
                f"fewshot_lso/{d}/5shot": fs,
            }
        rows.append(row)
    return pd.DataFrame(rows)


def test_few_shot_rank_check_can_go_both_ways():
    ranks = np.linspace(0.5, 0.9, 6)
    agree = few_shot.checks(few_frame(list(ranks), list(ranks - 0.1)))
    assert all(v.holds for v in agree)
    disagree = few_shot.checks(few_frame(list(ranks), list(ranks[::-1])))
    assert disagree[0].holds is False and disagree[0].margin < 0
