"""`vitbench bench`: measure this machine (never asserted in tests).

- the device's peak: a bare square matmul (bf16 8192³ on a GPU, as the shipped H100 table's anchor; fp32 on a CPU);
- per model, side by side in one process on the same model, batch and precision: our training step
  (`benchmark.optim`: the paper's AdamW groups, clipping) and a plain timm reference step (timm's
  AdamW from `create_optimizer_v2`, the textbook loop), each with images/s, achieved TFLOP/s, MFU
  against the measured peak, peak memory, and the ratio ours / reference;
- the closed-form few-shot solver at the paper's scale (10,000 x 768 features, 30 regularisers);
- the fractal upstream's renderer (images/s at 32 px, with its worker processes).
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import timm.optim
import torch
import torch.nn.functional as F
from torch import nn

from benchmark import data, environment, flops
from benchmark.config import ModelConfig, OptimConfig
from benchmark.data import fractals
from benchmark.evals.fewshot import bench_solver
from benchmark.models import build_model
from benchmark.optim import make_optimizer, precision, train_step
from benchmark.sizes import family_of
from benchmark.train import Trainer, channels_last, compiles

# (arch, image size, channels, batch): the paper's models on a GPU, the CPU presets' sizes on a CPU.
GPU_MODELS = [
    ("B/16", 224, 3, 256),
    ("B/32", 224, 3, 512),
    ("R50x1", 224, 3, 256),
    ("R50x1+B/16", 224, 3, 256),
]
CPU_MODELS = [("Mu/7", 28, 1, 128), ("Mu/8", 32, 1, 128), ("R14x1", 32, 1, 128), ("R14x1+Mu/8", 32, 1, 128)]
STEPS, WARMUP = 10, 2


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _timed(step: Callable[[], object], steps: int, device: torch.device) -> float:
    """Seconds for `steps` calls after WARMUP untimed ones; waits for the GPU at both ends."""
    for _ in range(WARMUP):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def matmul_peak(n: int | None = None, steps: int = 10) -> float:
    """TFLOP/s of a bare square matmul: the most this device gives a dense layer (MFU's denominator)."""
    device = _device()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    n = n or (8192 if device.type == "cuda" else 1024)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    return 2 * n**3 * steps / _timed(lambda: a @ b, steps, device) / 1e12


def reference_step(
    net: nn.Module, model: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> Callable[[], torch.Tensor]:
    """A plain timm training step: timm's AdamW (fused on a GPU), bf16 autocast on a GPU, cross-entropy,
    backward, clipping at norm 1, update — what a timm user writes, for our step to be measured against.
    `net` is `model` or its compiled wrapper."""
    cuda = x.device.type == "cuda"
    opt = timm.optim.create_optimizer_v2(
        model, "adamw", lr=1e-3, weight_decay=0.1, **({"fused": True} if cuda else {})
    )

    def step() -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    return step


def compare_steps(
    arch: str, size: int, channels: int, batch: int, peak_tflop_s: float, steps: int = STEPS
) -> dict[str, Any]:
    """Ours and the reference on two copies of one model and one batch, timed alternately (best of
    two each), so a busy machine slows both alike."""
    device = _device()
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, prelogits=family_of(arch).prelogits)
    model = build_model(cfg, 10, size, channels).to(device)
    x = torch.randn(batch, channels, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    per_image = flops.train_flops_per_image(model, x[:2], 10)
    # Both steps run as the trainer runs ours: compiled where it compiles (a GPU by default, so the
    # reference is timm's compiled step), channels_last for convolutional models on a GPU.
    if channels_last(arch, device):
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    mine, theirs = model, copy.deepcopy(model)
    opt = make_optimizer(mine, OptimConfig())
    compiled = compiles(device)
    net_mine, net_theirs = (torch.compile(m) for m in (mine, theirs)) if compiled else (mine, theirs)
    steps_of = {
        "ours": lambda: train_step(net_mine, opt, x, y, clip_norm=1.0, params=mine.parameters()),
        "reference": reference_step(net_theirs, theirs, x, y),
    }
    seconds = {name: float("inf") for name in steps_of}
    memory = {}
    for _ in range(2):
        for name, step in steps_of.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            seconds[name] = min(seconds[name], _timed(step, steps, device))
            memory[name] = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    ips = {name: steps * batch / s for name, s in seconds.items()}
    achieved = ips["ours"] * per_image / 1e12
    return {
        "arch": arch, "image_size": size, "batch": batch, "img_per_s": ips["ours"], "reference_img_per_s": ips["reference"],
        "ours_over_reference": ips["ours"] / ips["reference"], "compiled": compiled, "train_gflop_per_img": per_image / 1e9,
        "achieved_tflop_s": achieved, "mfu": achieved / peak_tflop_s, "peak_mem_mib": memory["ours"],
        "reference_peak_mem_mib": memory["reference"],
    }  # fmt: skip


def trainer_overhead(steps: int = 40, rounds: int = 3) -> dict[str, Any]:
    """The project's trainer (data on the device, per-batch preparation and augmentation, schedule,
    logging, the stop and checkpoint votes) on a study preset's model and data — `gpu` on a GPU,
    `cpu` elsewhere — against (a) a bare PyTorch loop on the same data, batch and optimiser (the
    trainer's overhead, 1 - trainer / bare) and (b) the same step on synthetic data already prepared
    on the device (the data path's rate, trainer / synthetic). Timed alternately, best of `rounds`."""
    from benchmark.presets import base

    device = _device()
    cfg = base("gpu" if device.type == "cuda" else "cpu").replace(**{"eval.evaluators": ("upstream",)})
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp))  # the preset's schedule: logging as often as in a real run
        model = copy.deepcopy(trainer.model)
        opt = make_optimizer(model, cfg.optim)
        x, y, batch, n = trainer.train_x, trainer.train_y, trainer.batch_size, trainer.examples
        order, done = torch.randperm(n, device=device), [0]
        ready = trainer.batch(x[:batch], y[:batch])  # one prepared, augmented batch, reused

        def bare() -> None:  # the same work per step: index the uint8 images, scale them, train
            for _ in range(steps):
                i = done[0] % (n // batch)
                idx = order[i * batch : (i + 1) * batch]
                loss = F.cross_entropy(model(data.prepare(x[idx], trainer.size, trainer.channels)), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_norm)
                opt.step()
                done[0] += 1

        def synthetic() -> None:
            for _ in range(steps):
                train_step(
                    trainer.net, trainer.optimizer, *ready, cfg.optim.clip_norm, trainer.model.parameters()
                )

        def ours() -> None:
            trainer.train(until=trainer.step + steps)

        seconds = {"trainer": float("inf"), "bare": float("inf"), "synthetic": float("inf")}
        for _ in range(rounds):  # (2 warm-up + 1 timed) x 3 rounds x 40 steps of the trainer's
            for name, block in (("trainer", ours), ("bare", bare), ("synthetic", synthetic)):
                seconds[name] = min(seconds[name], _timed(block, 1, device))
    ips = {name: steps * batch / s for name, s in seconds.items()}
    return {"arch": cfg.model.arch, "dataset": cfg.data.dataset, "augment": cfg.data.augment, "batch": batch,
            "trainer_img_per_s": ips["trainer"], "bare_img_per_s": ips["bare"], "synthetic_img_per_s": ips["synthetic"],
            "overhead": 1 - ips["trainer"] / ips["bare"], "data_path": ips["trainer"] / ips["synthetic"]}  # fmt: skip


def write_figures(figures: dict[str, Any], path: Path) -> None:
    """The figures as JSON at `path` (everything: device, versions, settings) and the per-model
    training table as CSV beside it."""
    table = pd.DataFrame(figures["train"]).assign(device=figures["device"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=1) + "\n")
    table.to_csv(path.with_suffix(".csv"), index=False)


def run_bench() -> dict[str, Any]:
    print(f"device: {environment.device_name()}")
    solver = bench_solver()
    print(
        f"few-shot solver ({solver['n']:,.0f} x {solver['d']:.0f} features, {solver['num_classes']:.0f} classes, "
        f"{solver['n_test']:,.0f} test rows): solve for all l2 values {solver['solve_s']:.3f} s; "
        f"solve and score all {solver['n_l2s']:.0f} l2 values {solver['all_l2s_s']:.3f} s, "
        f"one l2 {solver['one_l2_s']:.3f} s, each extra l2 {solver['per_extra_l2_s'] * 1e3:.1f} ms"
    )
    peak = matmul_peak()
    print(
        f"bare matmul peak: {peak:.2f} TFLOP/s ({'bf16 8192³' if _device().type == 'cuda' else 'fp32 1024³'})"
    )
    rows = []
    for arch, size, channels, batch in GPU_MODELS if _device().type == "cuda" else CPU_MODELS:
        row = compare_steps(arch, size, channels, batch, peak)
        rows.append(row)
        memory = f", peak memory {row['peak_mem_mib']:,.0f} MiB" if row["peak_mem_mib"] is not None else ""
        print(
            f"train {arch:11s} @{size:3d}px batch {batch:3d}: ours {row['img_per_s']:9.1f} img/s, timm reference "
            f"{row['reference_img_per_s']:9.1f} img/s (ours/reference {row['ours_over_reference']:.3f}); "
            f"{row['train_gflop_per_img']:.3f} GFLOP/img, {row['achieved_tflop_s']:.3f} TFLOP/s, MFU {row['mfu']:.1%}{memory}"
        )
    overhead = trainer_overhead()
    print(
        f"trainer vs a bare loop ({overhead['arch']} on {overhead['dataset']}, batch {overhead['batch']}): "
        f"{overhead['trainer_img_per_s']:.1f} vs {overhead['bare_img_per_s']:.1f} img/s, overhead {overhead['overhead']:+.1%}"
    )
    print(
        f"data path (augmentation {overhead['augment']}): the trainer on real data {overhead['trainer_img_per_s']:.1f} "
        f"vs its step on synthetic prepared data {overhead['synthetic_img_per_s']:.1f} img/s, ratio {overhead['data_path']:.3f}"
    )
    fractal_ips = fractals.render_throughput()
    print(
        f"fractal upstream renderer @32px ({fractals.workers()} worker process(es)): {fractal_ips:8.1f} img/s"
    )
    return {
        "device": environment.device_name(),
        "versions": environment.versions(),
        "settings": {
            "steps": STEPS,
            "warmup_steps": WARMUP,
            "precision": precision(_device()),
            "threads": torch.get_num_threads(),
        },
        "matmul_peak_tflop_s": peak,
        "fewshot_solver_s": solver,
        "train": rows,
        "trainer_overhead": overhead,
        "fractal_render_img_per_s": fractal_ips,
        "fractal_render_workers": fractals.workers(),
    }
