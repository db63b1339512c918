"""Runs from a released checkpoint, before anything runs: their price (the evaluators' forward
passes and the fine-tuning, not pre-training), which checkpoint files `vitbench plan` finds, and
the scorecard's rows for a `released` preset without results. Nothing is downloaded or trained:
the checkpoint files are empty stand-ins (planning only checks that the name exists)."""

import pytest
import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmark import cli, console, cost, plan, presets, released
from benchmark.flops import meta_train_flops_per_image
from benchmark.models import math_attention
from benchmark.study import load_study

B16 = "vit_base_patch16_224.orig_in21k"
# Published split sizes (official train, official test, classes) and Table 4's fine-tuning steps,
# written out here rather than read from the code under test.
SPLITS = {"cifar100": (50_000, 10_000, 100), "pets": (3_680, 3_669, 37), "flowers102": (2_040, 6_149, 102)}
DEV = {"cifar100": 0.02, "pets": 0.1, "flowers102": 0.1}
STEPS = {"cifar100": 10_000, "pets": 500, "flowers102": 500}


@pytest.fixture(autouse=True)
def no_checkpoints_anywhere(tmp_path, monkeypatch):
    """No weights folder and empty caches of the test's own: only what a test writes is found."""
    import huggingface_hub.constants

    monkeypatch.delenv(released.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


def released_few_shot():
    """A released few_shot-like run: ViT-B/16's checkpoint, the few-shot probe and Table 4's fine-tuning."""
    return presets.base("released").replace(
        **presets.checkpoint(B16), **{"eval.evaluators": ("fewshot", "finetune")}
    )


def timm_forward_flops(size: int) -> float:
    """One eval-mode forward of timm's own ViT-B/16 per image, counted on the meta device."""
    with torch.device("meta"):
        net = timm.create_model(B16, pretrained=False, num_classes=1, img_size=size).eval()
        with torch.no_grad(), math_attention(net), FlopCounterMode(display=False) as counter:
            net(torch.empty(2, 3, size, size))
    return counter.get_total_flops() / 2


def test_the_forward_count_is_timms_models_and_a_third_of_a_training_step():
    model = released.model_config(B16)
    forward = cost.meta_forward_flops_per_image(model, 224, 3)
    assert forward == timm_forward_flops(224)
    assert 0.33 < forward / meta_train_flops_per_image(model, 224, 3, 1) < 0.34


def test_a_released_run_is_priced_by_its_forward_passes_and_fine_tuning_not_pre_training():
    cfg = released_few_shot()
    assert cfg.optim.steps == 0 and cfg.eval.finetune.image_size == 384
    c = cost.run_cost(cfg, cost.load_table())
    assert c.work == cost.EVALUATION and c.checkpoint == B16
    assert c.forward_flops > 0 and c.finetune_flops > 0 and c.flops == c.forward_flops + c.finetune_flops
    model = released.model_config(B16)
    # Fine-tuning: steps × batch 512 × (4 lrs + the chosen one on train + dev), at 384 px, each
    # dataset with its own head.
    tuned = {
        name: STEPS[name] * 512 * 5 * meta_train_flops_per_image(model, 384, 3, classes)
        for name, (_, _, classes) in SPLITS.items()
    }
    assert c.finetune_flops == pytest.approx(sum(tuned.values()), rel=1e-9)
    # Forward: few-shot's shots' training rows (25 shots × 3 seeds a class at most), all of dev and
    # test, at 224 px; fine-tuning's dev pass per lr and its test pass, at 384 px.
    at224 = at384 = 0
    for name, (pool, test, classes) in SPLITS.items():
        dev = round(DEV[name] * pool)
        at224 += min(pool - dev, classes * 25 * 3) + dev + test
        at384 += 4 * dev + test
    expected = at224 * timm_forward_flops(224) + at384 * timm_forward_flops(384)
    assert c.forward_flops == pytest.approx(expected, rel=1e-9)
    assert c.images == at224 + at384 + sum(STEPS.values()) * 512 * 5
    assert c.seconds is not None and c.seconds > 0
    assert c.basis.startswith("forward + fine-tuning FLOPs at the model's training FLOP/s, 224 px measured")
    assert "384 px extrapolated from B/16 @224px" in c.basis
    total = cost.total([c], cost.load_table())
    assert "forward + fine-tuning FLOPs (forward " in total and "of training" not in total


def test_what_cannot_be_counted_is_said_not_invented():
    cfg = released_few_shot().replace(**{"eval.fewshot_datasets": ("pets", "jft300m")})
    c = cost.run_cost(cfg, cost.load_table())
    assert (
        "not counted: the probes' forward passes on jft300m (its split sizes are not known here)" in c.basis
    )
    assert c.forward_flops > 0  # pets is counted


def test_a_pre_training_run_is_priced_as_before():
    cfg = presets.base("smoke")
    c = cost.run_cost(cfg, cost.load_table())
    assert c.work == cost.TRAINING and c.forward_flops == c.finetune_flops == 0 and c.flops > 0
    assert c.images == cfg.optim.steps * cfg.optim.batch_size
    assert "of training" in cost.total([c], cost.load_table())


def test_plan_prints_the_forward_and_fine_tuning_cost_and_which_weights_are_here(
    tmp_path, monkeypatch, capsys
):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / f"{B16}.safetensors").write_bytes(b"")  # planning checks the name only
    monkeypatch.setenv(released.WEIGHTS_ENV, str(weights))
    results = tmp_path / "results"
    assert cli.main(["plan", "inspect", "--preset", "released", "--results", str(results)]) == 0
    out = capsys.readouterr().out.splitlines()
    header = out[1].split()
    assert header[:6] == ["run", "id", "state", "steps", "model", "eval"]
    assert "forward" in header and "fine-tune" in header and "train" not in header
    rows = [line for line in out if line.split()[1:2] == ["pending"]]
    assert len(rows) == 4  # ViT-B/16, L/16, H/14 and R50+ViT-B/16; 2 × 134 images through each
    assert all(line.split()[4] == "268" for line in rows)
    total = next(line for line in out if line.startswith("cost of all runs: 4 runs, "))
    assert "forward + fine-tuning FLOPs (forward " in total and "no fine-tuning" in total
    assert " GPU-seconds on NVIDIA H100 80GB" in total and "of training" not in total
    basis = next(line for line in out if line.startswith("GPU-hours on NVIDIA H100 80GB"))
    assert "forward + fine-tuning FLOPs at the model's training FLOP/s, 224 px" in basis
    assert any(
        line.startswith("forward + fine-tuning FLOPs: a run from a released checkpoint") for line in out
    )
    start = out.index(
        next(line for line in out if line.startswith("released checkpoints the runs start from"))
    )
    assert f"looked for in {weights} (--weights / {released.WEIGHTS_ENV})" in out[start]
    lines = out[start + 1 :]
    assert len(lines) == 4
    empty = "e3b0c44298fc"  # the sha256 of no bytes
    assert (
        lines[0]
        == f"  {B16} (ViT-B/16): present at {weights / f'{B16}.safetensors'} (safetensors, sha256 {empty})"
    )
    huge = "vit_huge_patch14_224.orig_in21k"
    assert lines[2].startswith(
        f"  {huge} (ViT-H/14): absent; get it with `hf download timm/{huge} model.safetensors"
    )
    assert "--weights DIR" in lines[2]
    assert not results.exists()


def test_no_weights_lines_for_a_plan_without_checkpoints(tmp_path):
    from benchmark.study import load_study

    the_plan = plan.make_plan(load_study("pos_embed"), "smoke", {}, tmp_path)
    assert console.weights_lines([the_plan]) == []


def test_plan_all_at_released_totals_the_forward_cost_and_lists_the_weights(tmp_path, capsys, monkeypatch):
    import studies.data_scaling
    import studies.few_shot
    import studies.inspect

    # ViT-B-sized checkpoints only: counting H/14's and R152x2's FLOPs at 384 px takes most of a minute.
    b32 = "vit_base_patch32_224.orig_in21k"
    monkeypatch.setattr(studies.inspect, "RELEASED_VITS", (B16, b32))
    monkeypatch.setitem(studies.few_shot.MODELS, "released", [presets.checkpoint(n) for n in (B16, b32)])
    monkeypatch.setattr(studies.few_shot, "RELEASED_LADDER", (B16, b32))
    bit = "resnetv2_50x1_bit.goog_in21k"
    monkeypatch.setattr(studies.data_scaling, "RELEASED", {"ViT": B16, "BiT": bit, "control": b32})
    assert cli.main(["plan", "--all", "--preset", "released", "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    after = out[out.index("total over the ") :].splitlines()
    assert after[1].startswith("cost of all runs: ") and "forward + fine-tuning FLOPs" in after[1]
    assert "no weights folder given" in out and f"  {B16} (ViT-B/16): absent; get it with" in out


def test_few_shots_released_control_runs_are_data_scalings_and_train_once_in_its_folder(
    tmp_path, monkeypatch
):
    """The control's ladder at `released` (ViT-L/16 and ViT-B/32, 3 fine-tuning seeds) is data_scaling's
    released design too: each config is one run, in data_scaling's folder, pinned to the same file."""
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setenv(released.WEIGHTS_ENV, str(weights))
    for name in ("vit_large_patch16_224.orig_in21k", "vit_base_patch32_224.orig_in21k"):
        (weights / f"{name}.safetensors").write_bytes(name.encode())  # pinning reads the bytes only
    few_shot, data_scaling = load_study("few_shot"), load_study("data_scaling")
    the_plan = plan.make_plan(few_shot, "released", {}, tmp_path / "results")
    theirs = plan.make_plan(data_scaling, "released", {}, tmp_path / "results")
    shared = [r for r in the_plan.runs if r.cfg in {t.cfg for t in theirs.runs}]
    assert len(shared) == 6 and all(r.cfg.model.checkpoint_sha256 for r in shared)
    assert all(
        r.home.parent == theirs.runs[0].home.parent for r in shared
    )  # trained in data_scaling/released
    assert len(the_plan.runs) == len(few_shot.runs("released")) == 15


def test_a_table_of_both_kinds_keeps_training_and_evaluation_flops_in_their_own_columns():
    from types import SimpleNamespace

    table = cost.load_table()
    cfgs = [presets.base("smoke"), released_few_shot()]
    costs = [cost.run_cost(cfg, table) for cfg in cfgs]
    runs = [SimpleNamespace(run_id=f"r{i}", state="pending", cfg=cfg, label="") for i, cfg in enumerate(cfgs)]
    text = console.plan_table(SimpleNamespace(runs=runs), plan.Bill(table, costs, costs))
    header, _, trained, evaluated = text.splitlines()
    unit = cost.flop_unit(max(c.flops for c in costs))[0]
    assert f"train {unit}" in header and f"forward {unit}" in header and f"fine-tune {unit}" in header
    assert trained.split()[5:8] == [
        cost.significant(costs[0].flops / cost.flop_unit(costs[1].flops)[1]),
        "–",
        "–",
    ]
    assert evaluated.split()[5] == "–"


def test_the_power_of_a_released_design_reads_the_noise_of_its_finished_pinned_runs(tmp_path):
    """A study declares its runs unpinned and finishes them pinned to a file: the plan's power lines
    still find them (three fine-tuning seeds of each checkpoint measure the spread)."""
    from benchmark.config import canonical_json
    from benchmark.power import Noise
    from benchmark.results import CONFIG, RESULT, run_dir
    from benchmark.storage import write_json

    study = load_study("data_scaling")
    for seed_cfg in study.runs("released"):
        cfg = seed_cfg.replace(**{"model.checkpoint_sha256": "ab" * 32})
        path = run_dir(tmp_path, "data_scaling", "released", cfg)
        path.mkdir(parents=True)
        (path / CONFIG).write_text(canonical_json(cfg))
        accuracy = 0.95 + 0.002 * cfg.seed
        metrics = {f"finetune/{d}/top1": accuracy for d in presets.PAPER_TRANSFER}
        classes = {"cifar100": 100, "pets": 37, "flowers102": 102}
        write_json(path / RESULT, {"status": "done", "metrics": metrics, "released": {"sha256": "ab" * 32},
                                   "datasets": {d: {"classes": k} for d, k in classes.items()}})  # fmt: skip
    control, parity = study.module.power("released", Noise(tmp_path, None))
    assert control.source.startswith("measured: 9 finished runs of 3 of these configs")
    assert parity.prediction.parity and parity.power > 0.99  # a 0.2 pt spread decides a 1.4 pt margin
