"""Every study in studies/ is smoke-run end to end (so a new study is tested by being added),
and its report is rebuilt from the stored results alone."""

import subprocess
import sys

import pandas as pd
import pytest

from benchmark import cli
from benchmark.results import load_results
from benchmark.study import list_studies, load_study

STUDIES = list_studies()


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """Run each study's smoke preset once (in-process executor) and hand back the folders."""
    root = tmp_path_factory.mktemp("smoke")
    done = {}

    def get(name):
        if name not in done:
            code = cli.main(
                [
                    "run",
                    name,
                    "--preset",
                    "smoke",
                    "--executor",
                    "debug",
                    "--results",
                    str(root / "results"),
                    "--reports",
                    str(root / "reports"),
                ]
            )
            done[name] = code
        return done[name], root

    return get


def test_there_are_studies():
    assert "pos_embed" in STUDIES


@pytest.mark.parametrize("name", STUDIES)
def test_study_declares_the_contract(name):
    study = load_study(name)
    assert study.title and study.claim and study.reference and study.doc
    assert {"smoke", "cpu"} <= set(study.presets)
    for preset in study.presets:
        runs = study.runs(preset)
        assert runs, f"{name}/{preset} declares no runs"


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDIES)
def test_smoke_run_end_to_end(name, smoke_runs):
    code, root = smoke_runs(name)
    assert code == 0
    study = load_study(name)
    df = load_results(root / "results", name, "smoke")
    assert len(df) == len(study.runs("smoke"))
    report = root / "reports" / name / "smoke" / "report.md"
    text = report.read_text()
    assert "## Verdicts" in text and "## Scale and provenance" in text
    verdicts = pd.read_csv(root / "reports" / name / "smoke" / "verdicts.csv")
    assert len(verdicts) == len(study.checks(df))
    assert set(verdicts["outcome"]) <= {"reproduced", "contradicted", "inconclusive"}
    assert all(claim in text for claim in verdicts["claim"])
    assert list((root / "reports" / name / "smoke").glob("*.png"))
    table = pd.read_csv(root / "reports" / name / "smoke" / "table.csv")
    assert not table.empty


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDIES)
def test_report_rebuilds_from_stored_results_alone(name, smoke_runs, capsys):
    """Byte for byte, importing no torch and loading no dataset (issue 20)."""
    _code, root = smoke_runs(name)
    report = root / "reports" / name / "smoke" / "report.md"
    first = {p.name: p.read_bytes() for p in report.parent.iterdir()}
    report.unlink()
    # In a fresh interpreter, to see what a report imports: reading only, no torch, no dataset.
    args = [
        "report",
        name,
        "--preset",
        "smoke",
        "--results",
        str(root / "results"),
        "--reports",
        str(root / "reports"),
    ]
    import studies  # where this interpreter finds studies (a test may have added a folder)

    code = (
        f"import sys, studies; studies.__path__[:] = {list(studies.__path__)!r}; "
        f"from benchmark import cli; assert cli.main({args!r}) == 0; "
        "assert 'torch' not in sys.modules and 'benchmark.data' not in sys.modules, 'imported torch'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert report.exists()
    # byte for byte the first build: figures included (no random jitter, no PDF dates)
    assert {p.name: p.read_bytes() for p in report.parent.iterdir()} == first
    # rerunning the study trains nothing
    assert (
        cli.main(
            [
                "run",
                name,
                "--preset",
                "smoke",
                "--executor",
                "debug",
                "--no-report",
                "--results",
                str(root / "results"),
                "--reports",
                str(root / "reports"),
            ]
        )
        == 0
    )
    assert "0 to run" in capsys.readouterr().out


@pytest.mark.slow
def test_the_gpu_presets_code_path_on_cpu_scaled_down(tmp_path):
    """The gpu base as the gpu presets run it (ViT-Ti/8 at 64 px on the fractal upstream, shift
    augmentation, early stopping, the evaluators the studies use), shrunk in depth, data, probes and
    steps so it runs here in seconds; compile is off on a CPU."""
    from benchmark import train
    from benchmark.presets import base

    small = {"model.depth": 2, "data.dataset": "fractal10x8@64", "optim.steps": 3, "optim.warmup_steps": 1,
             "optim.batch_size": 16, "eval.every_steps": 2, "eval.early_stop": True, "eval.shots": (1, 5),
             "eval.fewshot_seeds": 1, "eval.fewshot_datasets": ("digits",),
             "eval.evaluators": ("upstream", "fewshot", "finetune"), "eval.finetune.steps": 1, "eval.finetune.lrs": (0.01,)}  # fmt: skip
    result = train.run(base("gpu").replace(**small), tmp_path / "run")
    assert result["status"] == "done" and result["image_size"] == 64 and result["patch_grid"] == [8, 8]
    assert result["execution"] == {"compiled": False, "channels_last": False, "precision": "fp32",
                                   "data": "uint8 on the device"}  # fmt: skip
