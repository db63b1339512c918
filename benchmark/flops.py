"""Training FLOPs, counted by torch's own FLOP counter (never a hand-written formula).

A training step is counted as forward + backward. timm's fused (SDPA) attention hides the
attention matmuls from the counter on CPU (measured: -4% for ViT-B/16, -15% for ViT-Ti), so the
count runs with the math attention path.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmark.config import ModelConfig
from benchmark.models import build_model, math_attention
from benchmark.paper import JFT_CLASSES, JFT_IMAGES, TABLE6_ACCOUNTING, paper_values
from benchmark.sizes import family_of, parse_model


def train_flops_per_image(model: nn.Module, images: torch.Tensor, num_classes: int) -> float:
    """FLOPs of one forward + backward pass, per image, for a batch shaped like `images`."""
    labels = torch.zeros(images.shape[0], dtype=torch.long, device=images.device)
    was_training = model.training
    model.train()
    with math_attention(model), FlopCounterMode(display=False) as counter:
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return counter.get_total_flops() / images.shape[0]


def exaflops(flops: float) -> float:
    """FLOPs in exaFLOPs (1e18), Table 6's unit."""
    return flops / 1e18


# --- the accounting against Table 6 ----------------------------------------------------------

# §4.1 / Table 6: JFT-300M's size as the paper's epochs count it, and its classes (the
# pre-training head's width).
PAPER_RESOLUTION = 224


@functools.cache  # seconds per model; a study's seeds, a report and its tests ask again
def meta_train_flops_per_image(model: ModelConfig, image_size: int, channels: int, num_classes: int) -> float:
    """train_flops_per_image of the model `model` describes, built on the meta device: nothing is
    allocated or computed, so ViT-H takes seconds. The batch of 2 that train.py counts."""
    with torch.device("meta"):
        net = build_model(model, num_classes, image_size, channels)
        return train_flops_per_image(net, torch.empty(2, channels, image_size, image_size), num_classes)


def paper_train_flops_per_image(
    arch: str, img_size: int = PAPER_RESOLUTION, num_classes: int = JFT_CLASSES
) -> float:
    """Training FLOPs per image of `arch` at the paper's pre-training setting (meta device).

    What the count includes: forward + backward of one training step (train_flops_per_image);
    every matmul and convolution, a multiply-add counted as 2 FLOPs (fvcore counts 1); attention
    through the math path, so its two matmuls are counted; the pre-training head at JFT's 18,291
    classes (a ViT's or hybrid's with §3.1's tanh pre-logits layer, a BiT's a single Linear).
    Not counted: normalisation, activations, softmax, the optimiser step (elementwise, not
    counted by torch's FLOP counter).
    """
    cfg = ModelConfig(arch=arch, prelogits=family_of(arch).prelogits)
    return meta_train_flops_per_image(cfg, img_size, 3, num_classes)


def count_table6() -> pd.DataFrame:
    """Table 6's pre-training exaFLOPs beside ours, counted afresh (≈50 s on a CPU); reports read
    the stored copy (`benchmark.paper.table6_accounting`, written by `python -m benchmark.flops`): one row per (model, epochs) of Table 6, with
    `ours_exaflops` = paper_train_flops_per_image × epochs × 303M images / 1e18 and `diff_pct` =
    ours relative to the paper's, in %. Also `train_gflops_per_image`, the count it rests on.

    What it shows (torch 2.14, timm 1.0.31): the ViT rows within 1.5 % (-0.4 % to +1.4 %), so
    Table 6 counts what we count: forward + backward, 2 FLOPs a multiply-add. Hybrids within
    1.3 %, except R50+ViT-L/16 at 7 epochs (-2.9 %): Table 6's own 7- and 14-epoch rows for it
    (859, 1668) are not 1:2 as for every other model, and ours matches the 14-epoch row (-0.03 %).
    Every BiT row comes out high by +3.0 % to +4.0 %. Why is not shown. One candidate was computed by hand
    while writing this (not by this code, so not a result) and did not explain it: with the stride on each stage's first 1×1 conv (ResNet v1) instead of
    the 3×3 (BiT's code and timm), the rows spread over -2.9 % to +1.8 % instead of sitting at a
    steady offset. Any other cause (what the authors' counter counted for convolutions, padding
    or the head) is a hypothesis.
    """
    rows = paper_values(source="table6")[["model", "epochs", "exaflops"]].drop_duplicates(ignore_index=True)
    per_image = {arch: paper_train_flops_per_image(arch) for arch in rows["model"].unique()}
    out = pd.DataFrame(
        {
            "model": rows["model"],
            "family": [parse_model(arch).family for arch in rows["model"]],
            "epochs": rows["epochs"].astype(int),
            "train_gflops_per_image": [per_image[arch] / 1e9 for arch in rows["model"]],
            "paper_exaflops": rows["exaflops"].astype(float),
        }
    )
    out["ours_exaflops"] = [
        exaflops(per_image[arch] * epochs * JFT_IMAGES)
        for arch, epochs in zip(out["model"], out["epochs"], strict=True)
    ]
    out["diff_pct"] = (out["ours_exaflops"] / out["paper_exaflops"] - 1) * 100
    return out


def write_table6(path: Path) -> None:
    """Store count_table6 where reports read it: floats in their shortest round-trip form, so the
    stored copy reads back bit for bit (tests/test_accounting.py recounts and compares)."""
    count_table6().to_csv(path, index=False)


if __name__ == "__main__":  # python -m benchmark.flops [PATH]: recount after a torch or timm upgrade
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name(TABLE6_ACCOUNTING)
    write_table6(out)
    print(f"Wrote {out}")
