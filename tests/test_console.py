"""The lines the CLI prints after a command, word for word: what a run submitted, what failed and
how to retry, what a Ctrl-C stopped, the last dispatch, a refused write. Most of them show only
on a cluster or after a fault, so they are pinned here on made-up inputs."""

import errno
from pathlib import Path

from benchmark import console, plan
from benchmark.study import load_study

FLAGS = " --preset smoke"


def test_what_a_slurm_submission_prints():
    assert console.submitted_line(["81234_0", "81234_1", "81234_7"]) == (
        "Submitted Slurm job array 81234: jobs 81234_0 … 81234_7, one per run."
    )
    assert console.follow_line("pos_embed", FLAGS) == (
        "Follow with `vitbench status pos_embed --preset smoke`; cancel with "
        "`vitbench cancel pos_embed --preset smoke`; once done, `vitbench report pos_embed --preset smoke`."
    )
    assert console.stopped_following_line("pos_embed", FLAGS) == (
        "stopped following; the jobs keep running (`vitbench cancel pos_embed --preset smoke`)."
    )


def test_what_is_said_after_a_run_that_went_wrong(tmp_path):
    assert console.failed_line(3, "pos_embed", FLAGS, report_written=True, retried=False) == (
        "3 run(s) failed; the report lists them. `vitbench status pos_embed --preset smoke` shows why; "
        "rerun them with `vitbench run pos_embed --preset smoke --retry-failed`."
    )
    assert console.failed_line(3, "pos_embed", FLAGS, report_written=False, retried=True) == (
        "3 run(s) failed. `vitbench status pos_embed --preset smoke` shows why."
    )
    assert console.busy_line(2, "pos_embed", FLAGS) == (
        "2 run(s) were being trained by another process; run `vitbench run pos_embed --preset smoke` "
        "again once they are done to include them."
    )
    assert console.unrecorded_line("seed=0", Path("/r/x"), "interrupted", "OSError: full") == (
        "seed=0: failed and could not record it in /r/x (it stays interrupted): OSError: full"
    )
    after = plan.make_plan(load_study("pos_embed"), "smoke", {}, tmp_path)
    assert console.interrupted_line(after, FLAGS) == (
        "interrupted pos_embed/smoke: 0 of 8 runs done, 0 stopped mid-training (they resume from their "
        "last checkpoint), 8 not started; resume with `vitbench run pos_embed --preset smoke`"
    )


def test_what_status_says_of_the_last_dispatch_and_of_a_silent_trainer():
    import time

    record = {"dispatcher": {"time": 0.0}, "jobs": ["17_0", "17_1"], "runs": ["a", "b"], "executor": "slurm"}
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(0.0))
    assert (
        console.dispatch_line(record)
        == f"last dispatch: 2 runs on the slurm executor as Slurm job array 17, {when}"
    )
    assert console.dispatch_line({**record, "jobs": [], "executor": "local"}).startswith(
        "last dispatch: 2 runs on the local executor, "
    )
    assert console.stale_line(300) == (
        "a run whose trainer is silent for 5m00s is taken as dead and resumes on the next `vitbench run` "
        "(VITBENCH_LOCK_STALE_S)"
    )


def test_a_refused_write_names_the_path_and_the_flag_that_moves_it(tmp_path):
    reports = tmp_path / "reports"
    inside = OSError(errno.EROFS, "Read-only file system", str(reports / "a" / "report.md"))
    assert console.refused_write(inside, reports) == (
        f"cannot write {reports / 'a' / 'report.md'}: Read-only file system (read-only); "
        "give a writable folder with --reports DIR"
    )
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "r" / "x.json"))
    assert console.refused_write(full, reports) == (
        f"cannot write {tmp_path / 'r' / 'x.json'}: no space left on the device; make room, or give "
        "--results DIR elsewhere"
    )
    assert console.refused_write(OSError(errno.ENOENT, "No such file"), reports) is None


def test_list_names_a_broken_study_in_one_line():
    assert console.study_lines("broken", ValueError("no CLAIM")) == ["broken        (broken) no CLAIM"]
