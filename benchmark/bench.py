"""`vitbench bench`: measure this machine (never asserted in tests).

- the closed-form few-shot solver at the paper's scale (10,000 x 768 features, 30 regularisers);
- training throughput (images/s) and training FLOPs per image of the CPU-scale models;
- the fractal upstream's renderer (images/s at 32 px, one thread).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from benchmark import environment, flops
from benchmark.config import ModelConfig, OptimConfig
from benchmark.data import fractals
from benchmark.evals.fewshot import bench_solver
from benchmark.models import build_model
from benchmark.optim import make_optimizer, train_step

THROUGHPUT = [  # (arch, image size, channels, batch)
    ("Mu/4", 28, 1, 128),
    ("Nano/4", 28, 1, 128),
    ("Ti/16", 224, 3, 32),
]


def train_throughput(arch: str, size: int, channels: int, batch: int, steps: int = 10) -> dict[str, Any]:
    """Images/s of full training steps (forward, backward, clip, AdamW) after 2 warm-up steps."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch), 10, size, channels).to(device)
    opt = make_optimizer(model, OptimConfig())
    x = torch.randn(batch, channels, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    per_image = flops.train_flops_per_image(model, x[:2], 10)

    def step() -> None:
        train_step(model, opt, x, y, clip_norm=1.0, params=model.parameters())

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    ips = steps * batch / seconds
    return {
        "arch": arch,
        "image_size": size,
        "batch": batch,
        "img_per_s": ips,
        "train_gflop_per_img": per_image / 1e9,
        "achieved_tflop_s": ips * per_image / 1e12,
    }


def run_bench() -> dict[str, Any]:
    print(f"device: {environment.device_name()}")
    solver = bench_solver()
    print(
        f"few-shot solver ({solver['n']:,.0f} x {solver['d']:.0f} features, {solver['num_classes']:.0f} classes, "
        f"{solver['n_test']:,.0f} test rows): solve for all l2 values {solver['solve_s']:.3f} s; "
        f"solve and score all {solver['n_l2s']:.0f} l2 values {solver['all_l2s_s']:.3f} s, "
        f"one l2 {solver['one_l2_s']:.3f} s, each extra l2 {solver['per_extra_l2_s'] * 1e3:.1f} ms"
    )
    rows = []
    for arch, size, channels, batch in THROUGHPUT:
        row = train_throughput(arch, size, channels, batch)
        rows.append(row)
        print(
            f"train {arch:7s} @{size:3d}px batch {batch:3d}: {row['img_per_s']:8.1f} img/s, "
            f"{row['train_gflop_per_img']:.3f} GFLOP/img, {row['achieved_tflop_s']:.3f} TFLOP/s"
        )
    fractal_ips = fractals.render_throughput()
    print(f"fractal upstream renderer @32px (numpy, one thread): {fractal_ips:8.1f} img/s")
    return {
        "device": environment.device_name(),
        "versions": environment.versions(),
        "fewshot_solver_s": solver,
        "train": rows,
        "fractal_render_img_per_s": fractal_ips,
    }
