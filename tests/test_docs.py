"""studies/README.md and the README's generated fragments: current with the code; the page's example
study passes the studies' own tests as written; the README's other numbers agree with the code."""

import dataclasses
import functools
import re
import subprocess
import sys

import pandas as pd
import pytest
import test_studies as studies_tests  # the contract every study in studies/ is held to

from benchmark import cli, config, data, docs, presets
from benchmark.data import formats
from benchmark.data.specs import PAPER
from benchmark.study import Verdict, load_study

EXAMPLE_NAME = "depth_example"


def example() -> str:
    """The first Python block of the committed page: the minimal study a reader copies."""
    return re.search(r"```python\n(.*?)```", docs.PAGE.read_text(), re.S)[1]


@pytest.fixture
def example_study(tmp_path, monkeypatch):
    """The page's example saved verbatim as a study file, found by discovery as a user's
    studies/depth.py would be."""
    import studies

    folder = tmp_path / "extra_studies"
    folder.mkdir()
    (folder / f"{EXAMPLE_NAME}.py").write_text(example())
    monkeypatch.setattr(studies, "__path__", [*studies.__path__, str(folder)])
    yield EXAMPLE_NAME
    sys.modules.pop(f"studies.{EXAMPLE_NAME}", None)


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


def test_the_example_study_passes_the_contract(example_study):
    studies_tests.test_study_declares_the_contract(example_study)


@pytest.mark.slow
def test_the_example_study_runs_at_smoke(example_study, tmp_path, capsys):
    """The page's depth ablation runs end to end, judges its claim, and passes the smoke and
    report-rebuild tests every study in studies/ passes."""
    root = tmp_path / "smoke"

    @functools.cache
    def smoke_runs(name):  # as tests/test_studies.py's fixture: run once, hand back the folders
        argv = ["run", name, "--preset", "smoke", "--executor", "debug"]
        return cli.main([*argv, "--results", str(root / "results"), "--reports", str(root / "reports")]), root

    assert smoke_runs(example_study)[0] == 0
    out = capsys.readouterr().out
    assert (
        f"{EXAMPLE_NAME}/smoke: 6 runs; 6 done, 0 to run" in out and "4 layers transfer better than 2" in out
    )
    reports = root / "reports" / EXAMPLE_NAME / "smoke"
    table = pd.read_csv(reports / "table.csv")
    assert list(table["model.depth"]) == [2, 4] and table["transfer 5-shot (%)"].str.endswith("(n=3)").all()
    verdicts = pd.read_csv(reports / "verdicts.csv")
    assert (
        list(verdicts["claim"]) == ["4 layers transfer better than 2"] and verdicts["outcome"].notna().all()
    )
    assert "Welch t" in verdicts["evidence"].iloc[0]
    for ext in ("png", "pdf", "csv"):
        assert (reports / f"depth.{ext}").exists()
    studies_tests.test_smoke_run_end_to_end(example_study, smoke_runs)
    studies_tests.test_report_rebuilds_from_stored_results_alone(example_study, smoke_runs, capsys)


def test_the_page_says_what_each_base_builds():
    section = docs.PAGE.read_text().split("## What `base(preset)` builds")[1].split("\n## ")[0]
    rows = {line.split(" | ")[0]: line for line in section.splitlines() if line.startswith("| `")}
    assert len(rows) == len(presets.BASES)
    for preset, cfg in presets.BASES.items():
        row = rows[f"| `{preset}`"]
        assert f"`{cfg.model.arch}`" in row and f"`{cfg.data.dataset}`" in row, row
        if cfg.model.checkpoint:  # nothing is trained: the row names the checkpoint instead
            assert f"none: each run names a released checkpoint (`{cfg.model.checkpoint}`" in row, row
        else:
            assert f"{cfg.optim.steps:,} steps of batch {cfg.optim.batch_size:,}" in row, row


def test_the_dataset_rows_name_every_dataset_a_config_accepts():
    page = docs.PAGE.read_text()
    for key in ("data.dataset", "eval.fewshot_datasets"):
        row = next(line for line in page.splitlines() if line.startswith(f"| `{key}` |"))
        for name in [*data.SOURCES, *formats.named(), *PAPER, "folder:<path>", "fractal<C>x<K>[@PX]"]:
            assert f"`{name}`" in row, (key, name)
        for name in re.findall(r"`([a-z0-9]+)`", row.split(" | ")[3]):  # the plain names: each one valid
            data.check_name(name)


# --- the project's README -------------------------------------------------------------------------


def test_the_readme_fragments_are_current():
    text = docs.README.read_text()
    assert {m[2] for m in docs.FRAGMENT.finditer(text)} == set(docs.readme_fragments())
    assert text == docs.render_readme(text), "regenerate them: python -m benchmark.docs"


def test_the_slurm_example_counts_what_plan_counts():
    fragment = docs.readme_fragments()["slurm-example"]
    n = len(load_study("pos_embed").runs("gpu"))
    assert f"pos_embed/gpu: {n} runs; 0 done, {n} to run" in fragment and f"_0 … 81234_{n - 1}," in fragment


def test_the_readme_numbers_agree_with_the_code():
    readme = docs.README.read_text()
    lines = int(re.search(r"a complete (\d+)-line depth ablation", readme)[1])
    assert lines == len(docs.EXAMPLE.splitlines())
    runs = load_study("pos_embed").runs("cpu")
    cells = {tuple(config.flatten(r)[c] for c in load_study("pos_embed").cell) for r in runs}
    seeds = {r.seed for r in runs}
    stated = re.search(
        r"`vitbench run pos_embed` trains (\d+) small ViTs \((\d+) cells × (\d+) seeds\)", readme
    )
    assert tuple(map(int, stated.groups())) == (len(runs), len(cells), len(seeds))


def test_the_readme_cites_only_files_that_ship():
    """No path leaves the repository, every link resolves in it, and a document named alone
    (`report.md`, `PERF.md`) is the name of one of its files."""
    readme, root = docs.README.read_text(), docs.README.parent
    assert not re.search(r"(^|[\s`(])\.\./", readme, re.M), "a path outside the repository"
    for target in re.findall(r"\]\(([^)#]+)\)", readme):
        assert (root / target).is_file(), f"the link {target} does not resolve in the repository"
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True)
    names = {path.rsplit("/", 1)[-1] for path in tracked.stdout.split()}
    for name in set(re.findall(r"(?<![\w/.<>-])([\w-]+\.md)\b", readme)):
        assert name in names, f"{name} is not in the repository"
