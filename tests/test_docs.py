"""studies/README.md: generated from the code and current; its example study runs as written."""

import dataclasses
import re

import pandas as pd
import pytest

from benchmark import cli, config, docs
from benchmark.study import Verdict


def example() -> str:
    """The first Python block of the committed page: the minimal study a reader copies."""
    return re.search(r"```python\n(.*?)```", docs.PAGE.read_text(), re.S)[1]


def test_the_committed_page_is_current():
    assert docs.PAGE.read_text() == docs.render(), "regenerate it: python -m benchmark.docs"


def test_the_page_lists_every_config_field_with_its_range():
    page = docs.PAGE.read_text()
    for key in config.valid_keys():
        assert f"`{key}`" in page, key
    for key in config.LIMITS:
        row = next(
            line for line in page.splitlines() if line.startswith(f"| `{key}` |") or f"### `{key}`" in line
        )
        assert config.describe(key) in row or key == "seed", key
    assert "allowed [0, " in page.split("### `seed`")[1]


def test_every_verdict_field_is_described():
    assert [f.name for f in dataclasses.fields(Verdict)] == list(docs.VERDICT_FIELDS)


def test_field_comments_come_from_the_source():
    comments = docs._field_comments(config.ModelConfig)
    assert comments["pool"].startswith("App. D.3: read the class token")  # the comment above
    assert comments["width"] == "hidden size D"  # the comment beside
    assert comments["depth"].startswith("layers. The encoder's shape")  # both: its own first


@pytest.mark.slow
def test_the_example_study_runs_at_smoke(tmp_path, monkeypatch, capsys):
    """The page's depth ablation, saved as a study file, runs end to end and judges its claim."""
    import studies

    folder = tmp_path / "extra_studies"
    folder.mkdir()
    (folder / "depth_example.py").write_text(example())
    monkeypatch.setattr(studies, "__path__", [*studies.__path__, str(folder)])
    argv = ["depth_example", "--preset", "smoke", "--results", str(tmp_path / "r")]
    assert cli.main(["run", *argv, "--executor", "debug"]) == 0
    out = capsys.readouterr().out
    assert "depth_example/smoke: 6 runs; 6 done, 0 to run" in out and "4 layers transfer better than 2" in out
    table = pd.read_csv(tmp_path / "r" / "reports" / "depth_example" / "smoke" / "table.csv")
    assert list(table["model.depth"]) == [2, 4] and table["transfer 5-shot (%)"].str.endswith("(n=3)").all()
    verdicts = pd.read_csv(tmp_path / "r" / "reports" / "depth_example" / "smoke" / "verdicts.csv")
    assert list(verdicts["claim"]) == ["4 layers transfer better than 2"] and verdicts["holds"].notna().all()
    assert "Welch t" in verdicts["evidence"].iloc[0]
    for ext in ("png", "pdf", "csv"):
        assert (tmp_path / "r" / "reports" / "depth_example" / "smoke" / f"depth.{ext}").exists()
