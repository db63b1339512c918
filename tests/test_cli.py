"""The command line as a user meets it: clear one-line errors with exit status 2 that touch
nothing stored, `list`, `plan`, `status`, and a real run through submitit's local executor."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark import cli

ROOT = Path(__file__).resolve().parent.parent


def snapshot(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")} if folder.exists() else {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "no_such_study"], "unknown study 'no_such_study'; valid: "),
        (["run", "pos_embed", "--preset", "huge"], "has no preset 'huge'; valid: smoke, cpu"),
        (["run", "pos_embed", "--set", "optim.lrr=1"], "unknown config key 'optim.lrr'"),
        (["run", "pos_embed", "--set", "optim.lr"], "malformed override"),
        (["run", "pos_embed", "--set", "optim.steps=many"], "not a valid int"),
        (["run", "pos_embed", "--set", "model.arch=Q/16"], "unknown model 'Q/16'; valid sizes: "),
        (["run", "pos_embed", "--set", "data.dataset=imagenet"], "unknown dataset 'imagenet'; valid: "),
        (["run", "pos_embed", "--set", "eval.fewshot_datasets=digits,cifar"], "unknown dataset 'cifar'"),
        (["run", "pos_embed", "--executor", "cloud"], "unknown executor 'cloud'; valid: local, debug"),
        (["report", "pos_embed", "--preset", "smoke"], "no finished runs"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_touches_nothing(argv, message, tmp_path, capsys):
    results = tmp_path / "results"
    (results / "pos_embed" / "cpu" / "abc").mkdir(parents=True)
    (results / "pos_embed" / "cpu" / "abc" / "result.json").write_text("{}")
    before = snapshot(tmp_path)
    code = cli.main([*argv, "--results", str(results), "--reports", str(tmp_path / "reports")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and err.startswith("vitbench: error: ")
    assert snapshot(tmp_path) == before


def test_broken_study_file_is_reported(tmp_path, monkeypatch, capsys):
    import studies

    broken = tmp_path / "studies_extra"
    broken.mkdir()
    (broken / "broken_study.py").write_text("import not_a_module_anywhere\n")
    monkeypatch.setattr(studies, "__path__", [*studies.__path__, str(broken)])
    assert cli.main(["plan", "broken_study"]) == 2
    err = capsys.readouterr().err
    assert "study 'broken_study' failed to import: ModuleNotFoundError" in err


def test_list_shows_every_study(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "pos_embed" in out and "Table 8" in out and "smoke, cpu" in out


def test_plan_and_status_show_every_run(tmp_path, capsys):
    assert cli.main(["plan", "pos_embed", "--preset", "smoke", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "8 runs" in out and out.count("pending") == 8
    assert cli.main(["status", "pos_embed", "--preset", "smoke", "--results", str(tmp_path)]) == 0
    assert "8 pending" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())  # looking never writes


@pytest.mark.slow
def test_console_script_runs_a_study_on_the_local_executor(tmp_path):
    """`python -m benchmark` through submitit's LocalExecutor (real subprocesses), then rerun."""
    env = {**os.environ, "VITBENCH_RESULTS": str(tmp_path / "r"), "VITBENCH_REPORTS": str(tmp_path / "p")}
    argv = [
        sys.executable,
        "-m",
        "benchmark",
        "run",
        "pos_embed",
        "--preset",
        "smoke",
        "--set",
        "optim.steps=4",
        "--set",
        "optim.warmup_steps=1",  # a warm-up longer than the run is refused
    ]
    first = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "8 to run on the local executor" in first.stdout
    assert "[8/8]" in first.stdout + first.stderr
    report = next((tmp_path / "p" / "pos_embed").glob("smoke@*/report.md"))
    assert "--set optim.steps=4" in report.read_text()
    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert second.returncode == 0 and "8 done, 0 to run" in second.stdout


def test_a_study_whose_runs_all_fail_exits_1_without_a_report(tmp_path, monkeypatch, capsys):
    from benchmark import optim

    real = optim.F.cross_entropy
    monkeypatch.setattr(optim.F, "cross_entropy", lambda *a, **k: real(*a, **k) * float("nan"))
    argv = ["run", "pos_embed", "--preset", "smoke", "--executor", "debug", "--set", "optim.steps=2",
            "--set", "optim.warmup_steps=1", "--results", str(tmp_path / "r"), "--reports", str(tmp_path / "p")]  # fmt: skip
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "no run has finished, so no report was written" in err and "8 run(s) failed" in err
    assert not (tmp_path / "p").exists()
