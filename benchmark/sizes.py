"""Named ViT sizes and variant strings ("ViT-B/16", "Mu/7"): pure data, no torch, so planning,
pricing and the docs can read a model's shape without building it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from benchmark.config import ModelConfig
from benchmark.errors import UserError


@dataclass(frozen=True)
class ViTSize:
    """Encoder shape: layers, hidden size D, MLP size, attention heads (Table 1's columns)."""

    depth: int
    width: int
    mlp: int
    heads: int


def _size_table(*rows: tuple[str, ViTSize]) -> dict[str, ViTSize]:
    table: dict[str, ViTSize] = {}
    for name, size in rows:
        if name in table:
            raise ValueError(f"duplicate ViT size name {name!r}")
        table[name] = size
    return table


SIZES: dict[str, ViTSize] = _size_table(
    # Table 1 (Ti and S are DeiT's, the sizes later ViT papers use).
    ("Ti", ViTSize(12, 192, 768, 3)),
    ("S", ViTSize(12, 384, 1536, 6)),
    ("B", ViTSize(12, 768, 3072, 12)),
    ("L", ViTSize(24, 1024, 4096, 16)),
    ("H", ViTSize(32, 1280, 5120, 16)),
    # Fig. 4's "ViT-b": ViT-B with all hidden dimensions halved. The paper gives no exact dims;
    # we halve D and the MLP and keep 12 layers and 12 heads (head dim 32).
    ("b", ViTSize(12, 384, 1536, 12)),
    # Not in the paper: sizes that train in minutes on a CPU on 28×28 images.
    ("Mu", ViTSize(4, 64, 256, 4)),  # ≈0.2M parameters
    ("Nano", ViTSize(6, 128, 512, 4)),
)

_ARCH_RE = re.compile(r"(?:vit-)?(?P<size>[A-Za-z]+)/(?P<patch>[0-9]+)", re.IGNORECASE)


def _valid_sizes() -> str:
    return f"valid sizes: {', '.join(SIZES)} (written SIZE/PATCH, e.g. B/16)"


def parse_arch(arch: str) -> tuple[str, int]:
    """Split a variant string: "ViT-B/16" or "B/16" -> ("B", 16).

    Size names are case-sensitive ("b" is Fig. 4's ViT-b, not ViT-B); the "ViT-" prefix is not.
    """
    match = _ARCH_RE.fullmatch(arch.strip())
    if match is None or match["size"] not in SIZES or int(match["patch"]) < 1:
        raise UserError(f"unknown model {arch!r}; {_valid_sizes()}")
    return match["size"], int(match["patch"])


def resolve_shape(cfg: ModelConfig) -> tuple[ViTSize, int]:
    """The encoder shape and patch size `cfg` describes: the named size and patch of `cfg.arch`,
    with each non-zero `model.depth/width/heads/mlp/patch` in place of its part. An unset MLP
    keeps the named size's MLP ratio (so a wider Mu keeps MLP = 4 D, as every size in Table 1)."""
    size_name, arch_patch = parse_arch(cfg.arch)
    named = SIZES[size_name]
    width = cfg.width or named.width
    size = ViTSize(
        depth=cfg.depth or named.depth,
        width=width,
        mlp=cfg.mlp or named.mlp * width // named.width,
        heads=cfg.heads or named.heads,
    )
    return size, cfg.patch or arch_patch
