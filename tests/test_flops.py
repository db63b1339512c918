"""FLOP accounting (benchmark.flops): the counter against an analytic count, and against Table 6."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmark import flops
from benchmark.models import SIZES
from benchmark.paper import paper_values, table6_accounting


def vit_train_flops(size: str, patch: int, img: int = 224, classes: int = flops.JFT_CLASSES) -> float:
    """ViT training FLOPs per image written out (2 FLOPs a multiply-add): the forward's matmuls,
    attention's two included, and the tanh head on the class token; the backward costs twice the
    forward except the patch embedding, which needs no gradient for the images."""
    s = SIZES[size]
    d, n = s.width, (img // patch) ** 2
    t = n + 1  # the class token
    embed = 2 * 3 * patch * patch * d * n
    block = 2 * t * (3 * d * d + d * d + 2 * d * s.mlp) + 2 * 2 * t * t * d
    head = 2 * d * d + 2 * d * classes
    return 3 * (embed + s.depth * block + head) - embed


@pytest.mark.parametrize("arch, size, patch", [("ViT-B/16", "B", 16), ("ViT-L/32", "L", 32)])
def test_paper_count_equals_the_analytic_vit_count(arch, size, patch):
    assert flops.paper_train_flops_per_image(arch) == vit_train_flops(size, patch)


@pytest.fixture(scope="module")
def table6() -> pd.DataFrame:
    return table6_accounting()  # stored; tests/test_accounting.py holds it equal to a fresh count


@pytest.mark.slow
def test_table6_has_every_model_and_epoch_row(table6):
    paper = paper_values(source="table6")[["model", "epochs"]].drop_duplicates()
    assert len(table6) == len(paper) == 18
    assert set(table6["family"]) == {"vit", "bit", "hybrid"}
    row = table6.set_index(["model", "epochs"]).loc[("ViT-B/16", 7)]
    assert row["ours_exaflops"] == pytest.approx(row["train_gflops_per_image"] * 1e9 * 7 * 303e6 / 1e18)
    assert row["diff_pct"] == pytest.approx((row["ours_exaflops"] / 224 - 1) * 100)


@pytest.mark.slow
def test_vit_rows_reproduce_table6_within_3_percent(table6):
    vit = table6[table6["family"] == "vit"]
    assert len(vit) == 6 and (vit["diff_pct"].abs() < 3).all(), vit


@pytest.mark.slow
def test_resnet_rows_come_out_high_by_a_few_percent(table6):
    """Measured: +3.0 % (R50x2) to +4.0 % (R50x1) for every BiT row; why is not known (see
    benchmark.flops.count_table6). The test pins the sign and size: above the paper, under 8 %."""
    bit = table6[table6["family"] == "bit"]
    assert len(bit) == 7 and ((bit["diff_pct"] > 0) & (bit["diff_pct"] < 8)).all(), bit


@pytest.mark.slow
def test_hybrid_rows_and_table6s_own_inconsistency(table6):
    """Hybrids land within 3 % of Table 6. The farthest is R50+ViT-L/16 at 7 epochs, and Table 6
    itself is at fault there: its 7- and 14-epoch rows (859, 1668) are not 1:2, as equal
    per-image compute makes them (every other model's are); ours matches the 14-epoch row."""
    hybrid = table6[table6["family"] == "hybrid"].set_index(["model", "epochs"])
    assert len(hybrid) == 5 and (hybrid["diff_pct"].abs() < 3).all(), hybrid
    seven, fourteen = hybrid.loc[("R50x1+ViT-L/16", 7)], hybrid.loc[("R50x1+ViT-L/16", 14)]
    assert fourteen["paper_exaflops"] / seven["paper_exaflops"] == pytest.approx(1.94, abs=0.005)
    assert fourteen["ours_exaflops"] / seven["ours_exaflops"] == pytest.approx(2)
    assert abs(fourteen["diff_pct"]) < 0.5 < abs(seven["diff_pct"])
