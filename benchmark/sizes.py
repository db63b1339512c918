"""Named model sizes and variant strings: pure data, no torch, so planning, pricing and the docs
can read a model's shape without building it.

Three families: ViT ("ViT-B/16", "B/16", "Mu/7"), BiT ResNets ("R50x1", "BiT-R50x1",
Table 6's "ResNet50x1") and hybrids, a ResNet stem feeding a ViT ("R50x1+B/16", "R50+ViT-B/16",
Table 6's "R50x1+ViT-B/16"), where "/N" is the total downsampling, as in the paper.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

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

# BiT's ResNet depths: bottleneck blocks per stage (BiT's code; R200 is [3, 24, 36, 3]). R14 and
# R26 are not in the paper: one or two blocks per stage, for CPU presets (a [1, 1, 1, 1] ResNetV2
# trained on MNIST in ≈10 s on a 2-core CPU, measured).
RESNET_DEPTHS: dict[int, tuple[int, ...]] = {
    14: (1, 1, 1, 1),
    26: (2, 2, 2, 2),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
}
# The output stride of each ResNet stage, the stem's /4 included (stem /4, stage 1 /4, stage 2 /8,
# stage 3 /16, stage 4 /32): the valid "/N" of a hybrid.
STAGE_STRIDES = (4, 8, 16, 32)
# A ResNet "RNxK" has base width 64·K: the stem's channels (BiT's width factor K).
RESNET_BASE_WIDTH = 64
# timm rounds every ResNet channel count to a multiple of 8 (make_divisible); a base width that
# is one keeps every channel count exactly w, 2w, ... 32w.
RESNET_WIDTH_MULTIPLE = 8

_RESNET = r"(?:resnet|r)(?P<depth>[0-9]+)(?:x(?P<factor>[0-9]+))?"
_BIT_RE = re.compile(rf"(?:bit-)?{_RESNET}", re.IGNORECASE)
_HYBRID_RE = re.compile(rf"{_RESNET}\+(?P<vit>.+)", re.IGNORECASE)

Family = Literal["vit", "bit", "hybrid"]


def _valid_sizes() -> str:
    return f"valid sizes: {', '.join(SIZES)} (written SIZE/PATCH, e.g. B/16)"


def _valid_models() -> str:
    depths = ", ".join(map(str, RESNET_DEPTHS))
    strides = ", ".join(map(str, STAGE_STRIDES))
    return (
        f"valid: ViT SIZE/PATCH with SIZE one of {', '.join(SIZES)} (e.g. B/16); "
        f"BiT ResNet RNxK with N one of {depths} (e.g. R50x1); "
        f"hybrid RNxK+SIZE/STRIDE with STRIDE one of {strides} (e.g. R50x1+B/16)"
    )


def parse_arch(arch: str) -> tuple[str, int]:
    """Split a ViT variant string: "ViT-B/16" or "B/16" -> ("B", 16).

    Size names are case-sensitive ("b" is Fig. 4's ViT-b, not ViT-B); the "ViT-" prefix is not.
    ViT only: `parse_model` reads every family.
    """
    match = _ARCH_RE.fullmatch(arch.strip())
    if match is None or match["size"] not in SIZES or int(match["patch"]) < 1:
        raise UserError(f"unknown model {arch!r}; {_valid_sizes()}")
    return match["size"], int(match["patch"])


def _vit_shape(size_name: str, cfg: ModelConfig) -> ViTSize:
    named = SIZES[size_name]
    width = cfg.width or named.width
    return ViTSize(
        depth=cfg.depth or named.depth,
        width=width,
        mlp=cfg.mlp or named.mlp * width // named.width,
        heads=cfg.heads or named.heads,
    )


def resolve_shape(cfg: ModelConfig) -> tuple[ViTSize, int]:
    """The encoder shape and patch size `cfg` describes: the named size and patch of `cfg.arch`,
    with each non-zero `model.depth/width/heads/mlp/patch` in place of its part. An unset MLP
    keeps the named size's MLP ratio (so a wider Mu keeps MLP = 4 D, as every size in Table 1).
    ViT only: `resolve_model` resolves every family."""
    size_name, arch_patch = parse_arch(cfg.arch)
    return _vit_shape(size_name, cfg), cfg.patch or arch_patch


def hybrid_layers(layers: tuple[int, ...], stride: int) -> tuple[int, ...]:
    """A hybrid's ResNet stages at total downsampling `stride`: the stages up to the one whose
    output stride is `stride`, with the blocks of every later stage added to that last kept stage
    (§3.1, "Hybrid Architecture"): R50 (3, 4, 6, 3) at /16 -> (3, 4, 9), the paper's layout (ii)
    and timm's vit_base_r50_s16_224; at /32 -> (3, 4, 6, 3), layout (i)."""
    if stride not in STAGE_STRIDES:
        raise UserError(
            f"a hybrid's stride /{stride} is not valid; choose one of {', '.join(map(str, STAGE_STRIDES))} "
            "(the output strides of the ResNet's stages)"
        )
    keep = STAGE_STRIDES.index(stride) + 1
    return (*layers[: keep - 1], sum(layers[keep - 1 :]))


@dataclass(frozen=True)
class ParsedModel:
    """A variant string's parts. `vit` and `patch` are the ViT's size name and patch size (for a
    hybrid, `patch` is the total downsampling "/N"; its ViT reads the feature map with patch 1);
    `resnet_depth` and `resnet_factor` are "RNxK"'s N and K. Unused parts are empty/0."""

    family: Family
    vit: str = ""
    patch: int = 0
    resnet_depth: int = 0
    resnet_factor: int = 0

    @property
    def name(self) -> str:
        """The canonical spelling: "ViT-B/16", "R50x1", "R50x1+ViT-B/16"."""
        resnet = f"R{self.resnet_depth}x{self.resnet_factor}"
        vit = f"ViT-{self.vit}/{self.patch}"
        return {"vit": vit, "bit": resnet, "hybrid": f"{resnet}+{vit}"}[self.family]


def _parse_resnet(match: re.Match[str], arch: str) -> tuple[int, int]:
    depth, factor = int(match["depth"]), int(match["factor"] or 1)
    if depth not in RESNET_DEPTHS or factor < 1:
        raise UserError(f"unknown model {arch!r}; {_valid_models()}")
    return depth, factor


def parse_model(arch: str) -> ParsedModel:
    """Read any family's variant string (the module docstring lists the spellings); a one-line
    UserError naming the valid forms for anything else, and for a hybrid stride no stage has."""
    text = arch.strip()
    if match := _BIT_RE.fullmatch(text):
        depth, factor = _parse_resnet(match, arch)
        return ParsedModel("bit", resnet_depth=depth, resnet_factor=factor)
    if match := _HYBRID_RE.fullmatch(text):
        depth, factor = _parse_resnet(match, arch)
        vit_match = _ARCH_RE.fullmatch(match["vit"])
        if vit_match is None or vit_match["size"] not in SIZES:
            raise UserError(f"unknown model {arch!r}; {_valid_models()}")
        stride = int(vit_match["patch"])
        hybrid_layers(RESNET_DEPTHS[depth], stride)  # refuses a stride no stage has
        return ParsedModel("hybrid", vit_match["size"], stride, depth, factor)
    match = _ARCH_RE.fullmatch(text)
    if match is None or match["size"] not in SIZES or int(match["patch"]) < 1:
        raise UserError(f"unknown model {arch!r}; {_valid_models()}")
    return ParsedModel("vit", match["size"], int(match["patch"]))


@dataclass(frozen=True)
class ModelShape:
    """Everything a model's cost depends on, resolved from a ModelConfig (hashable, so planning
    can group runs by it). `vit` is the encoder (None for a BiT); `patch` the ViT's patch size or
    a hybrid's total downsampling; `resnet_layers` the blocks per ResNet stage as built (a hybrid's
    layout, e.g. (3, 4, 9)) and `resnet_width` its base width (the stem's channels)."""

    family: Family
    vit: ViTSize | None
    patch: int
    resnet_layers: tuple[int, ...]
    resnet_width: int

    @property
    def resnet_channels(self) -> tuple[int, ...]:
        """Each stage's output channels (4w, 8w, 16w, 32w: BiT's and timm's ResNetV2)."""
        return tuple(4 * self.resnet_width * 2**i for i in range(len(self.resnet_layers)))


def resolve_model(cfg: ModelConfig) -> ModelShape:
    """The shape `cfg` describes, for any family: `cfg.arch` with the non-zero shape fields in
    place of their parts (`model.depth/width/heads/mlp` the ViT's, as `resolve_shape`;
    `model.patch` a ViT's patch or a hybrid's stride; `model.resnet_width` the ResNet's base width).
    Whether a field applies to the family is `benchmark.models.validate_model`'s rule."""
    parsed = parse_model(cfg.arch)
    if cfg.resnet_width % RESNET_WIDTH_MULTIPLE:
        raise UserError(
            f"model.resnet_width={cfg.resnet_width} is not valid: timm rounds a ResNet's channels to "
            f"multiples of {RESNET_WIDTH_MULTIPLE}; choose 0 (the named size's 64·K) or a multiple "
            f"of {RESNET_WIDTH_MULTIPLE} (e.g. 16, 32)"
        )
    if parsed.family == "vit":
        return ModelShape("vit", _vit_shape(parsed.vit, cfg), cfg.patch or parsed.patch, (), 0)
    layers = RESNET_DEPTHS[parsed.resnet_depth]
    width = cfg.resnet_width or RESNET_BASE_WIDTH * parsed.resnet_factor
    if parsed.family == "bit":
        return ModelShape("bit", None, 0, layers, width)
    stride = cfg.patch or parsed.patch
    return ModelShape("hybrid", _vit_shape(parsed.vit, cfg), stride, hybrid_layers(layers, stride), width)


FAMILY_NAMES = {"vit": "ViT", "bit": "BiT", "hybrid": "hybrid"}


def family(arch: str) -> str:
    """A model's family as reports and price tables name it: "ViT", "BiT" (ResNet) or "hybrid"."""
    return FAMILY_NAMES[parse_model(arch).family]
