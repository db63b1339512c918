"""Each claim across scale: one point per preset with results, the paper's effect beside them, and
the scaling fits pooled over presets (smoke left out, a run adopted by two presets counted once)."""

import math

import numpy as np
import pandas as pd

from benchmark import ladder, scaling
from benchmark.study import INCONCLUSIVE, REPRODUCED, Verdict, load_study


def _verdict(claim: str, outcome: str = REPRODUCED, observed: float = 0.04) -> Verdict:
    return Verdict(claim=claim, paper="", measured="", outcome=outcome, reason="", rule="", observed=observed,
                   interval=(observed - 0.02, observed + 0.02), expected=0.012)  # fmt: skip


def test_a_claim_at_one_preset_gets_its_point_and_the_papers(tmp_path):
    compute = load_study("compute")
    claim = "Hybrids beat ViT at the smallest common budget"
    points = ladder.claim_points(
        [("C3", compute, "cpu-long", _verdict(claim))], {("compute", "cpu-long"): 1e13}
    )
    assert len(points) == 1
    row = points.iloc[0]
    assert row["compute"] == 1e13 and row["outcome"] == REPRODUCED and row["low"] == 0.02
    # Table 6's R50x1+ViT-B/32 − ViT-B/32 gap (+1.77 pts) at the hybrid's 7-epoch compute.
    assert math.isclose(row["paper_effect"], 0.01772, abs_tol=1e-4) and row["paper_compute"] > 1e19
    written = ladder.draw_claims(points, tmp_path / "a")
    assert next(iter(written)) == "claims" and len(written) == 2
    name = next(n for n in written if n != "claims")
    for ext in ("png", "pdf", "csv"):
        assert (tmp_path / "a" / f"{name}.{ext}").stat().st_size > 0
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "claim-c9-a-claim-since-renamed.png").write_bytes(b"old")
    again = ladder.draw_claims(points, tmp_path / "b")
    assert not (tmp_path / "b" / "claim-c9-a-claim-since-renamed.png").exists()
    for n in again:
        for ext in ("png", "pdf", "csv"):
            assert (tmp_path / "a" / f"{n}.{ext}").read_bytes() == (
                tmp_path / "b" / f"{n}.{ext}"
            ).read_bytes()


def test_presets_line_up_under_one_claim_and_no_estimate_is_kept():
    study = load_study("data_scaling")
    entries = [
        (
            "C1",
            study,
            "cpu-long",
            _verdict("ViT overtakes BiT with the most pre-training data (100,000 images)"),
        ),
        (
            "C1",
            study,
            "smoke",
            _verdict("ViT overtakes BiT with the most pre-training data", INCONCLUSIVE, math.nan),
        ),
        ("C1", study, "cpu", _verdict("ViT overtakes BiT with the most pre-training data (100,000 images)")),
    ]
    compute = {("data_scaling", p): c for p, c in (("smoke", 1e9), ("cpu", 1e13), ("cpu-long", 1e13))}
    points = ladder.claim_points(entries, compute)
    assert points["claim"].nunique() == 1 and list(points["preset"]) == ["smoke", "cpu", "cpu-long"]
    assert np.isnan(points.iloc[0]["observed"]) and (points["paper_effect"] > 0).all()
    # cpu and cpu-long cost the same: drawn side by side, smoke where it is.
    assert list(ladder._dodge(points["compute"])) == [0.0, -0.5, 0.5]
    assert (
        ladder.slug("C1", points.iloc[0]["claim"]) == "claim-c1-vit-overtakes-bit-with-the-most-pre-training"
    )


def test_a_claim_the_paper_gives_no_number_for_has_no_paper_point():
    few_shot = load_study("few_shot")
    assert few_shot.paper_point("logistic regression, all examples ranks models as fine-tuning does") is None


def _runs(family: str, preset: str, xs, params, seeds=(0, 1, 2)) -> pd.DataFrame:
    rows = [{"run_id": f"{family}-{x:.0f}-{s}", "family": family, "seed": s, "compute": x, "images": 1000,
             "accuracy": 1 - scaling.curve(x / xs[0], *params) - 0.002 * s, "fit_ok": True}
            for x in xs for s in seeds]  # fmt: skip
    return pd.DataFrame(rows)


def test_fits_pool_presets_but_smoke_and_count_an_adopted_run_once():
    xs = np.logspace(12, 14, 5)
    vit, bit = (
        _runs("ViT", "cpu", xs, (0.8, 0.35, 0.05, 0.0)),
        _runs("BiT", "cpu", xs, (0.45, 0.25, 0.15, 0.0)),
    )
    cpu = pd.concat([vit.iloc[:9], bit])  # ViT's three smallest computes
    long = pd.concat([vit, bit.iloc[:6]])  # adopts cpu's runs, adds ViT's two largest
    smoke = vit.assign(run_id=lambda d: "smoke-" + d["run_id"], accuracy=0.1)
    races = ladder.fit_races({"compute": {"smoke": smoke, "cpu": cpu, "cpu-long": long}}, draws=30)
    c2 = next(r for r in races if r.race.code == "C2" and r.axis == "compute")
    assert c2.presets == ("cpu", "cpu-long")
    vit_fit, bit_fit = c2.fits
    assert vit_fit.runs == 15 and bit_fit.runs == 15 and len(vit_fit.xs) == 5
    images = next(r for r in races if r.race.code == "C2" and r.axis == "images")
    assert (
        images.crossover.outcome == "not identifiable" and "1 distinct images value" in images.crossover.text
    )
    table = ladder.crossovers_table(races)
    assert set(table["claim"]) == {"C2", "C3"} and "Fig. 5" in " ".join(table["the paper's"])


def test_every_rung_below_paper_probes_the_same_transfer_datasets():
    """smoke, cpu, cpu-long and gpu judge on the same probe datasets, so that a claim's points line
    up on one chart; paper probes the paper's own transfer datasets."""
    from benchmark.presets import PAPER_TRANSFER, TRANSFER
    from benchmark.study import list_studies

    for name in list_studies():
        study = load_study(name)
        for preset in study.presets:
            probes = {tuple(r.eval.fewshot_datasets) for r in study.runs(preset)}
            if preset == "released":  # the paper's own models: its transfer, or the images inspected
                allowed = {PAPER_TRANSFER, ("pets",)}
            else:
                allowed = {PAPER_TRANSFER, ("imagenet1k",)} if preset == "paper" else {TRANSFER}
            assert probes and probes <= allowed, (name, preset, probes)
