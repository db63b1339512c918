"""Data-parallel runs: a job with two tasks (submitit's local executor, gloo on CPU) trains one
model, the same as one process up to the order of floating-point sums, and only rank 0 writes."""

import pytest
import submitit
import torch
from helpers import wait_until

from benchmark import dispatch, train
from benchmark.results import META
from benchmark.storage import read_json

pytestmark = pytest.mark.slow  # two job processes start


def run_job(executor: submitit.LocalExecutor, cfg, run_dir, timeout: float = 240):
    """Every task's result, once the job is done; the dispatcher must read it as the lead's."""
    job = executor.submit(dispatch.TrainJob(threads=1), cfg, run_dir)
    wait_until(job.done, timeout, "the two-process job to finish", poll=0.5)
    results = job.results()
    assert dispatch._collect(job, dispatch.Task(cfg, run_dir, "ddp")).result == results[0]
    return results


def test_two_ranks_train_the_one_process_model_and_only_the_lead_writes(tiny_cfg, tmp_path):
    single = train.run(tiny_cfg, tmp_path / "one")
    executor = submitit.LocalExecutor(folder=tmp_path / "jobs")
    executor.update_parameters(tasks_per_node=2, timeout_min=10)
    lead, follower = run_job(executor, tiny_cfg, tmp_path / "two")
    assert lead["status"] == "done" and follower == {"status": "done", "rank": 1}
    one = torch.load(tmp_path / "one" / train.MODEL, weights_only=True)
    two = torch.load(tmp_path / "two" / train.MODEL, weights_only=True)
    worst = max((one[k] - two[k]).abs().max().item() for k in one)
    assert worst < 1e-4, f"parameters differ by up to {worst:.2e}"
    assert lead["metrics"]["upstream/test_top1"] == pytest.approx(
        single["metrics"]["upstream/test_top1"], abs=0.01
    )
    assert lead["train_images_per_s"] > 0
    # the follower wrote nothing: same files as a one-process run, one attempt recorded
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir()
    )
    assert len(read_json(tmp_path / "two" / META)["attempts"]) == 1


def test_a_released_checkpoint_is_evaluated_by_the_lead_alone_and_the_other_rank_does_not_wait(
    tmp_path, monkeypatch
):
    """A two-task job of a run from a released checkpoint: nothing trains, so no rank keeps a lockstep
    (a follower that built the trainer's DistributedDataParallel waited for a lead that never would)."""
    import timm

    from benchmark import released
    from benchmark.presets import base, checkpoint

    name = "vit_base_patch32_224.orig_in21k"
    torch.manual_seed(0)
    model = timm.create_model(name)
    weights = tmp_path / "weights"
    weights.mkdir()
    import safetensors.torch

    safetensors.torch.save_file(model.state_dict(), weights / f"{name}.safetensors")
    monkeypatch.setenv(released.WEIGHTS_ENV, str(weights))  # the job's processes inherit it
    cfg = base("released").replace(
        **checkpoint(name),
        **{
            "data.image_size": 32,
            "eval.evaluators": ("fewshot",),
            "eval.fewshot_datasets": ("digits",),
            "eval.shots": (1,),
        },
    )
    cfg = released.pin(cfg)
    executor = submitit.LocalExecutor(folder=tmp_path / "jobs")
    executor.update_parameters(tasks_per_node=2, timeout_min=5)
    lead, follower = run_job(executor, cfg, tmp_path / "run", timeout=180)
    assert lead["status"] == "done" and lead["released"]["name"] == name
    assert follower == {"status": "done", "rank": 1}
