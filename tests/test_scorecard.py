"""The scorecard page: a claim without results is "not run" with its command; a claim with
(constructed) results shows its study's verdict and links the report; a rebuild is byte-identical."""

import json

from benchmark import cli, metrics, scorecard
from benchmark.config import canonical_json, run_id
from benchmark.presets import TRANSFER
from benchmark.results import study_dir
from benchmark.study import load_study


def _store(root, study: str, preset: str) -> None:
    """Finished runs of a study's preset, as the trainer would leave them (tiny, made-up metrics)."""
    for i, cfg in enumerate(load_study(study).runs(preset)):
        folder = study_dir(root, study, preset) / run_id(cfg)
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(canonical_json(cfg))
        (folder / "meta.json").write_text(json.dumps({"device": "cpu (test)", "attempts": [
            {"start": 1.7e9, "revision": "abcdef123456", "dirty": False}]}))  # fmt: skip
        accuracy = {metrics.fewshot(d, k): 0.5 + 0.01 * i for d in TRANSFER for k in (1, 5)}
        result = {"status": "done", "wall_s": 1.0, "train_flops": 1e9, "params": 1000, "image_size": 28,
                  "patch_grid": [4, 4], "train_examples": 500, "datasets": {}, "protocol": {},
                  "metrics": {metrics.UPSTREAM_TOP1: 0.9, **accuracy}}  # fmt: skip
        (folder / "result.json").write_text(json.dumps(result))


def test_scorecard_shows_verdicts_and_not_run_claims(tmp_path, capsys):
    _store(tmp_path / "results", "pos_embed", "smoke")
    args = ["report", "--all", "--results", str(tmp_path / "results"), "--reports", str(tmp_path / "reports")]
    assert cli.main(args) == 0
    page = (tmp_path / "reports" / "README.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| C")]
    pos = [r for r in rows if r.startswith("| C4")]
    # One seed per cell at smoke: every claim inconclusive, the controls too, so the claims are flagged.
    assert pos and all(
        "**inconclusive** (unreliable: control not detected)" in r
        and "[pos_embed/smoke](pos_embed/smoke/report.md)" in r
        for r in pos
    )
    assert any(line.startswith("| Control: pos_embed: ") for line in page.splitlines())
    assert "- **Control: Control" not in page and "- **Control: position embeddings help" in page
    assert "Outcomes per preset" in page
    assert (tmp_path / "reports" / "pos_embed" / "smoke" / "report.md").exists()
    for code, study in (("C1", "data_scaling"), ("C5", "head_type"), ("C6", "few_shot"), ("C7", "inspect")):
        row = next(r for r in rows if r.startswith(f"| {code}"))
        assert "not run" in row and f"`vitbench run {study} --preset cpu`" in row
    assert "Table 1" in page and "cpu (test)" in page and "abcdef1234" in page
    # The claims across scale open the page: a point per preset (here smoke's, no estimate).
    assert page.index("![Each claim across scale](scale/claims.png)") < page.index("Outcomes per preset")
    scale = tmp_path / "reports" / "scale"
    charts = sorted(p.name for p in scale.glob("*.png"))
    assert charts[0].startswith("claim-c4-") and "claims.png" in charts
    first = {p: p.read_bytes() for p in [tmp_path / "reports" / "README.md", *scale.iterdir()]}
    assert cli.main(args) == 0
    assert {p: p.read_bytes() for p in first} == first


def test_report_needs_a_study_or_all(tmp_path, capsys):
    assert cli.main(["report", "--results", str(tmp_path)]) == 2
    assert cli.main(["report", "pos_embed", "--all", "--results", str(tmp_path)]) == 2
    assert "--all" in capsys.readouterr().err


def test_a_report_without_its_results_is_kept_and_named(tmp_path):
    """A committed report whose results are elsewhere is not rebuilt, not dropped silently: the page
    links it and says why it is not among the rows."""
    kept = tmp_path / "reports" / "data_scaling" / "cpu-long"
    kept.mkdir(parents=True)
    (kept / "report.md").write_text("# as committed\n")
    args = ["report", "--all", "--results", str(tmp_path / "results"), "--reports", str(tmp_path / "reports")]
    assert cli.main(args) == 0
    page = (tmp_path / "reports" / "README.md").read_text()
    assert (
        "Reports kept as they were" in page
        and "[data_scaling/cpu-long](data_scaling/cpu-long/report.md)" in page
    )
    assert (kept / "report.md").read_text() == "# as committed\n"


def test_a_released_preset_without_results_says_it_needs_the_weights(tmp_path):
    """Every claim of a study with a `released` preset and no finished runs at it gets a row saying
    that it needs the released weights, with the command; the outcome counts leave it out."""
    args = ["report", "--all", "--results", str(tmp_path / "results"), "--reports", str(tmp_path / "reports")]
    assert cli.main(args) == 0
    page = (tmp_path / "reports" / "README.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| C") and "| released " in line]
    # One row per claim of a study with a released preset (inspect's: C3's hybrid verdict and C7),
    # each saying what it needs and how to run it.
    released = [c for c in scorecard.CLAIMS if "released" in load_study(c.study).presets]
    assert {"C3", "C7"} <= {c.code for c in released}
    assert [r.split(":")[0] for r in rows] == [f"| {c.code}" for c in released]
    for claim, row in zip(released, rows, strict=True):
        command = f"`vitbench run {claim.study} --preset released --weights DIR`"
        assert f"| released | not run: needs the released weights: {command}" in " ".join(row.split())
    assert "No claim has been judged yet." in page
    # A released report kept from elsewhere is linked from the row, and named among the kept ones.
    kept = tmp_path / "reports" / "inspect" / "released"
    kept.mkdir(parents=True)
    (kept / "report.md").write_text("# as committed\n")
    assert cli.main(args) == 0
    page = (tmp_path / "reports" / "README.md").read_text()
    command = "`vitbench run inspect --preset released --weights DIR`"
    rows = [line for line in page.splitlines() if line.startswith("| C") and command in line]
    assert len(rows) == 2 and all(
        "not run here (its report is kept as it was" in r
        and "[inspect/released](inspect/released/report.md)" in r
        for r in rows
    )
    assert "Reports kept as they were" in page
