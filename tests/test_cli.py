"""The command line as a user meets it: clear one-line errors with exit status 2 that touch
nothing stored, `list`, `plan`, `status`, and a real run through submitit's local executor."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark import cli
from benchmark.study import list_studies, load_study

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
        (["run", "pos_embed", "--set", "model.arch=Q/16"], "unknown model 'Q/16'; valid: ViT SIZE/PATCH"),
        (["run", "pos_embed", "--set", "data.dataset=imagenet"], "unknown dataset 'imagenet'; valid: "),
        (["run", "pos_embed", "--set", "eval.fewshot_datasets=digits,cifar"], "unknown dataset 'cifar'"),
        (["run", "pos_embed", "--executor", "cloud"], "unknown executor 'cloud'; valid: local, debug"),
        (
            ["plan", "pos_embed", "--gpu-table", "no_such_table.json"],
            "--gpu-table no_such_table.json: cannot",
        ),
        (["run", "pos_embed", "--gpu-table", "no_such_table.json"], "--gpu-table no_such_table.json: cannot"),
        (["report", "pos_embed", "--preset", "smoke"], "no finished runs"),
        # The studies read 5-shot: this trained every run, then the report failed (KeyError 5shot).
        (["run", "pos_embed", "--set", "eval.shots=1"], "--set eval.shots=1 drops 5, which pos_embed's"),
        (["plan", "pos_embed", "--set", "eval.evaluators=upstream"], "drops fewshot"),
        # `plan` takes a study or --all: neither, or both, names the studies.
        (["plan"], "give a study (`vitbench plan STUDY`) or --all (every study), not both; valid studies: "),
        (["plan", "pos_embed", "--all"], "or --all (every study), not both; valid studies: compute, "),
        (["plan", "--all", "--preset", "huge"], "no study has a preset 'huge'; valid: smoke, cpu"),
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


def test_plan_and_status_print_one_table_each_with_a_summary(tmp_path, capsys):
    argv = ["pos_embed", "--preset", "smoke", "--results", str(tmp_path)]
    assert cli.main(["plan", *argv]) == 0
    out = capsys.readouterr().out.splitlines()
    header = ["run", "id", "state", "steps", "model", "images", "train", "gigaFLOPs", "GPU-hours", "run"]
    assert out[1].split() == header and set(out[2]) == {"-", " "}
    assert sum(" pending " in line for line in out) == 8
    assert "pos_embed/smoke: 8 runs; 0 done, 8 to run (8 pending)" in out
    estimate = next(line for line in out if line.startswith("estimated time: "))
    assert estimate.startswith("estimated time: no estimate yet") and "vitbench bench" in estimate
    assert any(line.startswith("cost of all runs: 8 runs, ") for line in out)
    assert cli.main(["status", *argv]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["run", "id", "state", "step", "time", "eval", "attempts", "run", "detail"]
    assert "pos_embed/smoke: 8 runs; 0 done, 8 to run (8 pending)" in out
    assert "silent for 5m00s is taken as dead" in out[-1]
    assert not any(tmp_path.iterdir())  # looking never writes


SHARED = '''"""Two small runs; the config of seed 1 is declared by alpha too (REUSE)."""
from benchmark.config import DataConfig, ModelConfig, RunConfig

TITLE = CLAIM = REFERENCE = "plan --all"
PRESETS = {{"smoke": "small runs"}}
CELL = ()
REUSE = {reuse}


def runs(preset):
    return [RunConfig(model=ModelConfig(arch="Mu/7"), data=DataConfig(dataset="mnist5k"), seed=s) for s in {seeds}]


table = checks = figures = None
'''


def test_plan_all_prices_every_study_at_a_preset_and_totals_them(tmp_path, capsys, monkeypatch):
    """`plan --all --preset P`: each study's runs, cost and power lines, a line for a study without
    P naming its presets, and the total over the studies that have it, where a run two studies
    declare counts once."""
    import studies
    import studies.inspect as lacking

    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "alpha.py").write_text(SHARED.format(reuse="()", seeds=(0, 1)))
    (extra / "beta.py").write_text(SHARED.format(reuse='("alpha",)', seeds=(1, 2)))
    monkeypatch.setattr(studies, "__path__", [*studies.__path__, str(extra)])
    monkeypatch.setattr(lacking, "PRESETS", {k: v for k, v in lacking.PRESETS.items() if k != "smoke"})
    results = tmp_path / "r"
    assert cli.main(["plan", "--all", "--preset", "smoke", "--results", str(results)]) == 0
    out = capsys.readouterr().out.splitlines()
    priced = [name for name in list_studies() if name != "inspect"]
    assert {"alpha", "beta", "pos_embed"} <= set(priced)
    summaries = [line for line in out if line.startswith(tuple(f"{name}/smoke: " for name in priced))]
    assert [line.split("/")[0] for line in summaries] == priced
    assert "inspect: no preset 'smoke'; its presets: cpu, gpu, paper, released" in out
    assert sum(line.startswith("power at smoke ") for line in out) == len(priced)
    total = out.index(f"total over the {len(priced)} of {len(priced) + 1} studies that have smoke:")
    runs = sum(int(line.split(": ")[1].split()[0]) for line in summaries)
    assert out[total + 1].startswith(f"cost of all runs: {runs - 1} runs, ")  # seed 1 of alpha and beta
    assert out[-1].startswith("FLOPs: ")
    assert not results.exists()  # looking never writes


def test_status_shows_each_runs_attempts_and_a_history_mixed_across_code(tmp_path, capsys):
    from benchmark import plan
    from benchmark.results import META, PROGRESS, init_run_dir
    from benchmark.storage import write_json

    run = plan.make_plan(load_study("pos_embed"), "smoke", {}, tmp_path).runs[0]
    init_run_dir(run.path, run.cfg)
    attempts = [
        {"start": 100.0, "end": 160.0, "outcome": "requeued", "revision": "1a2b3c4d99", "threads": 1},
        {"start": 200.0, "revision": "5e6f7a8b99", "dirty": True, "threads": 2},
    ]
    write_json(run.path / META, {"attempts": attempts})
    write_json(run.path / PROGRESS, {"step": 7, "time": 230.0})
    assert cli.main(["status", "pos_embed", "--preset", "smoke", "--results", str(tmp_path)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(run.run_id))
    assert line.split()[1:5] == ["interrupted", "7/30", "1m30s", "2"]
    assert "requeued 1×" in line and "revisions 1a2b3c4d→5e6f7a8b+dirty; threads 1→2" in line


@pytest.mark.parametrize("flag", ["--results", "--reports"])
def test_a_results_or_reports_folder_that_is_a_file_is_refused(flag, tmp_path, capsys):
    taken = tmp_path / "taken.txt"
    taken.write_text("not a folder")
    folders = {"--results": str(tmp_path / "r"), "--reports": str(tmp_path / "p"), flag: str(taken / "sub")}
    before = snapshot(tmp_path)
    argv = ["run", "pos_embed", "--preset", "smoke", "--executor", "debug"]
    assert cli.main([*argv, *(x for item in folders.items() for x in item)]) == 2
    err = capsys.readouterr().err
    expected = f"{flag} {taken / 'sub'}: {taken} is a file, not a folder; give a folder (created if missing)"
    assert err == f"vitbench: error: {expected}\n"
    assert snapshot(tmp_path) == before


def test_every_slurm_setting_has_its_flag_and_the_repeatable_ones_append():
    """The flags are declared apart from `SlurmSettings` (so the parser imports no torch): the two
    must name the same settings, the tuple-valued ones repeatable."""
    from dataclasses import fields

    from benchmark.dispatch import SlurmSettings
    from benchmark.options import REPEATABLE, SLURM_FLAGS, dest

    assert [dest(flag) for flag in SLURM_FLAGS] == [f.name for f in fields(SlurmSettings)]
    assert {dest(flag) for flag in REPEATABLE} == {f.name for f in fields(SlurmSettings) if f.default == ()}


def test_list_into_a_closed_pipe_exits_quietly():
    """`vitbench list | head`: a reader that has gone is no error (a real pipe, read end closed)."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmark", "list"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
    finally:
        os.close(write)
    assert proc.stderr == "" and proc.returncode == 141


def test_run_and_report_print_the_verdicts_and_write_reports_under_results(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("VITBENCH_REPORTS", raising=False)
    argv = [
        "pos_embed",
        "--preset",
        "smoke",
        "--set",
        "optim.steps=2",
        "--set",
        "optim.warmup_steps=1",
        "--results",
        str(tmp_path / "r"),
    ]
    assert cli.main(["run", *argv, "--executor", "debug"]) == 0
    out = capsys.readouterr().out
    # The bill of what is left, printed before training starts.
    assert out.index("cost of what is left to run: 8 runs, ") < out.index("Report: ")
    report = next((tmp_path / "r" / "reports" / "pos_embed").glob("smoke@*/report.md"))
    for text in (out, report.read_text()):
        assert "No position embedding is clearly worse than every encoding" in text
    assert (
        "claim" in out and "outcome" in out and "predicted; MDE; power" in out and f"Report: {report}" in out
    )
    # The power lines, before anything is submitted (one seed per cell at smoke: undecidable).
    assert out.index("power at smoke") < out.index("Report: ") and "cannot decide at this preset" in out
    assert cli.main(["report", *argv]) == 0
    again = capsys.readouterr().out
    assert again.splitlines()[0].split()[:2] == ["claim", "outcome"]
    assert "1-D, 2-D and relative embeddings differ little" in again
    # The runs just measured now give the next plan of that shape its estimate.
    longer = [a.replace("optim.steps=2", "optim.steps=4") for a in argv]
    assert cli.main(["plan", *longer]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "of run time" in next(line for line in out if line.startswith("estimated time: "))


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
    assert "--set optim.steps=4 --set optim.warmup_steps=1" in report.read_text()
    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert second.returncode == 0 and "8 done, 0 to run" in second.stdout


def test_a_study_whose_runs_all_fail_exits_1_without_a_report(tmp_path, monkeypatch, capsys):
    from benchmark import optim

    real = optim.F.cross_entropy
    monkeypatch.setattr(optim.F, "cross_entropy", lambda *a, **k: real(*a, **k) * float("nan"))
    (tmp_path / "d").mkdir()
    argv = ["run", "pos_embed", "--preset", "smoke", "--executor", "debug", "--set", "optim.steps=2",
            "--set", "optim.warmup_steps=1", "--results", str(tmp_path / "r"),
            "--reports", str(tmp_path / "p"), "--data-root", str(tmp_path / "d")]  # fmt: skip
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "no run has finished, so no report was written" in err
    # No report, so it is not said to list them; the hints name this very experiment again, its
    # data root included.
    flags = f"--preset smoke --set optim.steps=2 --set optim.warmup_steps=1 --results {tmp_path / 'r'}"
    flags += f" --data-root {tmp_path / 'd'}"
    assert f"8 run(s) failed. `vitbench status pos_embed {flags}` shows why" in err
    assert f"`vitbench run pos_embed {flags} --retry-failed`" in err and "report lists" not in err
    assert not (tmp_path / "p").exists()


def test_a_failure_that_could_not_be_recorded_is_not_counted_as_failed(tmp_path, monkeypatch, capsys):
    """A run folder that cannot take failed.json (read-only, full) stays interrupted: the summary
    says so, and says the same as `status` would."""
    from benchmark import optim, train

    real = optim.F.cross_entropy
    monkeypatch.setattr(optim.F, "cross_entropy", lambda *a, **k: real(*a, **k) * float("nan"))

    def unwritable(run_dir, exc):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(train, "record_failure", unwritable)
    argv = ["run", "pos_embed", "--preset", "smoke", "--executor", "debug", "--set", "optim.steps=2",
            "--set", "optim.warmup_steps=1", "--results", str(tmp_path / "r")]  # fmt: skip
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert "pos_embed/smoke@" in captured.out and "0 done, 8 to run (8 interrupted)" in captured.out
    assert captured.err.count("failed and could not record it") == 8
    # (The debug executor's post-mortem replaces the error's text, so only the state is checked.)
    assert captured.err.count("(it stays interrupted): ") == 8
    assert "run(s) failed" not in captured.err


@pytest.mark.slow
def test_a_user_who_only_runs_leaves_git_status_clean(tmp_path):
    """A fresh clone, a run with the default folders, then its report written into the reference
    folder as a `--set` variant: `git status` has nothing to say."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VITBENCH_")}
    env["PYTHONPATH"] = str(clone)

    def vitbench(*argv: str) -> None:
        proc = subprocess.run([sys.executable, "-m", "benchmark", *argv], cwd=clone, env=env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert proc.returncode == 0, proc.stderr

    tiny = ("--set", "optim.steps=2", "--set", "optim.warmup_steps=1")  # the folders are the point
    vitbench("run", "pos_embed", "--preset", "smoke", *tiny)
    assert next((clone / "results" / "reports" / "pos_embed").glob("smoke@*/report.md"))
    vitbench("report", "pos_embed", "--preset", "smoke", *tiny, "--reports", "reports")
    assert next((clone / "reports" / "pos_embed").glob("smoke@*/report.md"))
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone,
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert status.stdout == ""


# --- a finished study's folder, read-only or with garbage in it ------------------------------------

TINY = ["pos_embed", "--preset", "smoke", "--set", "optim.steps=2", "--set", "optim.warmup_steps=1"]


@pytest.fixture(scope="module")
def finished_smoke(tmp_path_factory):
    """pos_embed's smoke runs, two steps each, finished once for the tests below to copy."""
    results = tmp_path_factory.mktemp("finished") / "r"
    assert cli.main(["run", *TINY, "--executor", "debug", "--no-report", "--results", str(results)]) == 0
    return results


@pytest.fixture
def read_only(tmp_path, finished_smoke):
    """A copy of the finished results on a real filesystem mounted read-only (tmpfs, as root)."""
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    shutil.copytree(finished_smoke, mount / "r")
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    yield mount / "r"
    subprocess.run(["umount", "-l", str(mount)], check=True)


def one_error_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("vitbench: error: ") and "Traceback" not in err, err
    return err


def test_a_read_only_results_folder_is_named_in_one_line_and_read_where_nothing_is_written(
    read_only, tmp_path, capsys, monkeypatch
):
    """report, report --all and run (everything done) gave OSError tracebacks, run in the disk-full
    wording. Reading works; writing the report there stops in one line naming the path and the
    flag that moves it; a writable --reports folder takes the report."""
    monkeypatch.delenv("VITBENCH_REPORTS", raising=False)
    where = ["--results", str(read_only)]
    for argv in (["report", *TINY], ["run", *TINY, "--executor", "debug"], ["report", "--all"]):
        assert cli.main([*argv, *where]) == 2, argv
        line = one_error_line(capsys.readouterr().err)
        assert f"cannot write {read_only / 'reports'}" in line and "Read-only file system" in line
        assert "give a writable folder with --reports DIR" in line and "make room" not in line
    for argv in (["status", *TINY], ["plan", *TINY], ["run", *TINY, "--no-report"]):
        assert cli.main([*argv, *where]) == 0, argv
        assert capsys.readouterr().err == ""
    assert cli.main(["report", *TINY, *where, "--reports", str(tmp_path / "p")]) == 0
    assert next((tmp_path / "p" / "pos_embed").glob("smoke@*/report.md"))


def put_garbage(results: Path, kind: str) -> Path:
    """Damage a finished run's folder (or add a stranger's) as an unlucky user did; returns the path named."""
    run = sorted(results.glob("pos_embed/smoke@*/*/result.json"))[0].parent
    if kind == "a plain file where a run folder should be":
        shutil.rmtree(run)
        run.write_text("not a folder")
    elif kind == "a directory named config.json":
        (run / "config.json").unlink()
        (run / "config.json").mkdir()
    elif kind == "result.json starting with byte 0xff":
        (run / "result.json").write_bytes(b"\xff" + (run / "result.json").read_bytes())
        return run / "result.json"
    elif kind == "result.json a directory":
        (run / "result.json").unlink()
        (run / "result.json").mkdir()
    else:  # a foreign run folder whose config names a model this version does not know
        foreign = results / "someone" / "cpu" / "abc"
        shutil.copytree(run, foreign)
        config = json.loads((foreign / "config.json").read_text())
        config["model"]["arch"] = "Q/16"
        (foreign / "config.json").write_text(json.dumps(config))
        return foreign
    return run


GARBAGE = (
    "a directory named config.json",
    "result.json starting with byte 0xff",
    "a plain file where a run folder should be",
    "result.json a directory",
    "a foreign run folder naming an unknown model",
)


@pytest.mark.parametrize("kind", GARBAGE)
def test_garbage_in_the_results_is_set_aside_with_one_warning_and_every_command_carries_on(
    kind, finished_smoke, tmp_path, capsys
):
    results = tmp_path / "r"
    shutil.copytree(finished_smoke, results)
    named = put_garbage(results, kind)
    where = ["--results", str(results), "--reports", str(tmp_path / "p")]
    foreign = kind.startswith("a foreign")
    for command in ("plan", "status", "report"):
        # A foreign folder is read only by plan's estimate, of runs left to do (it stopped plan with
        # exit 2); status and report read the declared runs alone.
        more = ["--set", "optim.steps=3"] if foreign and command == "plan" else []
        assert cli.main([command, *TINY, *more, *where]) == 0, command
        err = capsys.readouterr().err
        warned = [line for line in err.splitlines() if line]
        if foreign and command != "plan":
            assert not any(str(named) in line for line in warned), err
            continue
        # (The report may add pandas' FutureWarning from a study's table with an empty cell.)
        [line] = [line for line in warned if str(named) in line]
        assert line.startswith("vitbench: warning: ") and "Traceback" not in err, err
    assert cli.main(["run", *TINY, "--executor", "debug", "--no-report", *where]) == 0
    capsys.readouterr()
    assert cli.main(["status", *TINY, *where]) == 0
    assert "8 runs; 8 done, 0 to run" in capsys.readouterr().out
