"""Named model sizes, variant strings and the registry of model families: pure data, no torch, so
planning, pricing and the docs can read a model's shape without building it.

A model family is one `ModelFamily` record, registered once (`register_family`, as timm's
`register_model`): its name grammar, its shape, the config fields it reads, the facts the rest of
the code asks of it, and the functions that check and build it, named "module:function" and
imported only when a model is built (benchmark.models), so this module never imports torch.
Everything else asks the registry; a new family is one module that registers its record, imported
before its models are named (as timm's model modules are).

Three families are registered here: ViT ("ViT-B/16", "B/16", "Mu/7"), BiT ResNets ("R50x1",
"BiT-R50x1", Table 6's "ResNet50x1") and hybrids, a ResNet stem feeding a ViT ("R50x1+B/16",
"R50+ViT-B/16", Table 6's "R50x1+ViT-B/16"), where "/N" is the total downsampling, as in the paper.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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


def _valid_sizes() -> str:
    return f"valid sizes: {', '.join(SIZES)} (written SIZE/PATCH, e.g. B/16)"


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
    """A variant string's parts. `family` is the registered family's name; `vit` and `patch` the
    ViT's size name and patch size (for a hybrid, `patch` is the total downsampling "/N"; its ViT
    reads the feature map with patch 1); `resnet_depth` and `resnet_factor` are "RNxK"'s N and K.
    Unused parts are empty/0."""

    family: str
    vit: str = ""
    patch: int = 0
    resnet_depth: int = 0
    resnet_factor: int = 0

    @property
    def name(self) -> str:
        """The canonical spelling: "ViT-B/16", "R50x1", "R50x1+ViT-B/16"."""
        return FAMILIES[self.family].spell(self)


@dataclass(frozen=True)
class ModelShape:
    """Everything a model's cost depends on, resolved from a ModelConfig (hashable, so planning
    can group runs by it). `family` is the registered family's name; `vit` the encoder (None for a
    BiT); `patch` the ViT's patch size or a hybrid's total downsampling; `resnet_layers` the blocks
    per ResNet stage as built (a hybrid's layout, e.g. (3, 4, 9)) and `resnet_width` its base
    width (the stem's channels)."""

    family: str
    vit: ViTSize | None
    patch: int
    resnet_layers: tuple[int, ...]
    resnet_width: int

    @property
    def resnet_channels(self) -> tuple[int, ...]:
        """Each stage's output channels (4w, 8w, 16w, 32w: BiT's and timm's ResNetV2)."""
        return tuple(4 * self.resnet_width * 2**i for i in range(len(self.resnet_layers)))


@dataclass(frozen=True)
class ModelFamily:
    """One model family: everything the code asks of it, in one record (`register_family`).

    The hooks `build` and `check` are "module:function" names, imported only when a model is
    validated or built (benchmark.models), so planning and reports read the rest without torch:
    `build(cfg, shape, num_classes, img_size, in_chans)` returns the model, same seed same weights,
    on the current default device; `check(cfg, shape)` raises UserError for a combination the
    family refuses beyond the fields it reads."""

    name: str  # its one spelling in code and data: ParsedModel.family, ModelShape.family
    label: str  # how reports, price tables and figures display it: "ViT", "BiT", "hybrid"
    noun: str  # how errors name one of its models ("the BiT ResNet 'R50x1'"); plural: noun + "s"
    forms: str  # its valid spellings, as the unknown-model error lists them
    # Its name grammar: the parts of a stripped variant string it spells, else None (the string is
    # another family's, or names a size it lacks); a UserError for a part only it can explain.
    parse: Callable[[str], ParsedModel | None]
    spell: Callable[[ParsedModel], str]  # its canonical spelling of a parsed variant
    # The shape of a parsed variant under a config's overrides (the fields it reads).
    resolve: Callable[[ParsedModel, ModelConfig], ModelShape]
    build: str  # "module:function" of its builder (above)
    # The ModelConfig fields, besides `arch` and `prelogits`, it reads; every other one must stay
    # at its default, or two configs that build one model would get two run ids.
    fields: tuple[str, ...]
    check: str = ""  # "module:function" of its own check (above), or "" for none
    field_note: str = ""  # appended to the refusal of a field it does not read
    # A model that reads the image as a grid of `ModelShape.patch`-pixel tokens (which must tile
    # the image; its position tables resize with it): how errors name that side, "patch size".
    # "" for a model with no such grid (a BiT).
    patch_name: str = ""
    # §3.1's tanh pre-logits layer: the family has it (model.prelogits chooses; the paper's
    # pre-training and Table 6's FLOPs include it) or not (model.prelogits=true is refused).
    prelogits: bool = True
    channels_last: bool = False  # convolutions carry its compute: NHWC on a GPU (cuDNN's layout)


# The registered families by name, in registration order (the order errors list their forms in).
FAMILIES: dict[str, ModelFamily] = {}


def register_family(family: ModelFamily) -> ModelFamily:
    """Add `family` to the registry (its name once only) and return it."""
    if family.name in FAMILIES:
        raise ValueError(f"model family {family.name!r} is already registered")
    FAMILIES[family.name] = family
    return family


def _valid_models() -> str:
    return f"valid: {'; '.join(f.forms for f in FAMILIES.values())}"


def parse_model(arch: str) -> ParsedModel:
    """Read any family's variant string (the module docstring lists the spellings), by the first
    registered grammar that spells it; a one-line UserError naming every family's valid forms for
    anything else, and the grammar's own (e.g. a hybrid stride no stage has)."""
    text = arch.strip()
    for family in FAMILIES.values():
        if (parsed := family.parse(text)) is not None:
            return parsed
    raise UserError(f"unknown model {arch!r}; {_valid_models()}")


def resolve_model(cfg: ModelConfig) -> ModelShape:
    """The shape `cfg` describes, for any family: `cfg.arch` with the non-zero shape fields in
    place of their parts (`model.depth/width/heads/mlp` the ViT's, as `resolve_shape`;
    `model.patch` a ViT's patch or a hybrid's stride; `model.resnet_width` the ResNet's base width).
    Whether a field applies to the family is `benchmark.models.validate_model`'s rule."""
    parsed = parse_model(cfg.arch)
    # The field's own range, checked before whether the family reads it (validate_model), as
    # config's LIMITS are.
    if cfg.resnet_width % RESNET_WIDTH_MULTIPLE:
        raise UserError(
            f"model.resnet_width={cfg.resnet_width} is not valid: timm rounds a ResNet's channels to "
            f"multiples of {RESNET_WIDTH_MULTIPLE}; choose 0 (the named size's 64·K) or a multiple "
            f"of {RESNET_WIDTH_MULTIPLE} (e.g. 16, 32)"
        )
    return FAMILIES[parsed.family].resolve(parsed, cfg)


def family_of(arch: str) -> ModelFamily:
    """The registered family of a variant string."""
    return FAMILIES[parse_model(arch).family]


def family(arch: str) -> str:
    """A model's family as reports, price tables and figures display it: its label ("ViT", "BiT"
    or "hybrid"); code asks `family_of(arch)` instead."""
    return family_of(arch).label


# --- the paper's three families ----------------------------------------------------------------

# What a ViT encoder reads (a plain ViT's and a hybrid's); a BiT reads none of them.
_VIT_FIELDS = ("pos_embed", "pos_inject", "pool", "dropout", "depth", "width", "heads", "mlp", "patch")


def _vit_parts(text: str) -> tuple[str, int] | None:
    match = _ARCH_RE.fullmatch(text)
    if match is None or match["size"] not in SIZES:
        return None
    return match["size"], int(match["patch"])


def _resnet_parts(match: re.Match[str]) -> tuple[int, int] | None:
    depth, factor = int(match["depth"]), int(match["factor"] or 1)
    return (depth, factor) if depth in RESNET_DEPTHS and factor >= 1 else None


def _parse_vit(text: str) -> ParsedModel | None:
    parts = _vit_parts(text)
    return None if parts is None or parts[1] < 1 else ParsedModel("vit", *parts)


def _parse_bit(text: str) -> ParsedModel | None:
    match = _BIT_RE.fullmatch(text)
    resnet = None if match is None else _resnet_parts(match)
    return None if resnet is None else ParsedModel("bit", resnet_depth=resnet[0], resnet_factor=resnet[1])


def _parse_hybrid(text: str) -> ParsedModel | None:
    match = _HYBRID_RE.fullmatch(text)
    resnet = None if match is None else _resnet_parts(match)
    vit = None if resnet is None else _vit_parts(match["vit"])
    if resnet is None or vit is None:
        return None
    hybrid_layers(RESNET_DEPTHS[resnet[0]], vit[1])  # refuses a stride no stage has
    return ParsedModel("hybrid", vit[0], vit[1], *resnet)


def _resnet_name(parsed: ParsedModel) -> str:
    return f"R{parsed.resnet_depth}x{parsed.resnet_factor}"


def _vit_name(parsed: ParsedModel) -> str:
    return f"ViT-{parsed.vit}/{parsed.patch}"


def _hybrid_name(parsed: ParsedModel) -> str:
    return f"{_resnet_name(parsed)}+{_vit_name(parsed)}"


def _resnet_width(parsed: ParsedModel, cfg: ModelConfig) -> int:
    return cfg.resnet_width or RESNET_BASE_WIDTH * parsed.resnet_factor


def _resolve_vit(parsed: ParsedModel, cfg: ModelConfig) -> ModelShape:
    return ModelShape("vit", _vit_shape(parsed.vit, cfg), cfg.patch or parsed.patch, (), 0)


def _resolve_bit(parsed: ParsedModel, cfg: ModelConfig) -> ModelShape:
    return ModelShape("bit", None, 0, RESNET_DEPTHS[parsed.resnet_depth], _resnet_width(parsed, cfg))


def _resolve_hybrid(parsed: ParsedModel, cfg: ModelConfig) -> ModelShape:
    stride = cfg.patch or parsed.patch
    layers = hybrid_layers(RESNET_DEPTHS[parsed.resnet_depth], stride)
    return ModelShape("hybrid", _vit_shape(parsed.vit, cfg), stride, layers, _resnet_width(parsed, cfg))


register_family(
    ModelFamily(
        name="vit",
        label="ViT",
        noun="ViT",
        forms=f"ViT SIZE/PATCH with SIZE one of {', '.join(SIZES)} (e.g. B/16)",
        parse=_parse_vit,
        spell=_vit_name,
        resolve=_resolve_vit,
        build="benchmark.models.vit:build_plain_vit",
        check="benchmark.models.vit:validate_vit",
        fields=_VIT_FIELDS,
        patch_name="patch size",
    )
)
register_family(
    ModelFamily(
        name="bit",
        label="BiT",
        noun="BiT ResNet",
        forms=f"BiT ResNet RNxK with N one of {', '.join(map(str, RESNET_DEPTHS))} (e.g. R50x1)",
        parse=_parse_bit,
        spell=_resnet_name,
        resolve=_resolve_bit,
        build="benchmark.models.bit:build_bit",
        fields=("resnet_width",),
        field_note=" (a BiT's shape is model.arch and model.resnet_width)",
        # BiT's head is one Linear on the pooled features.
        prelogits=False,
        channels_last=True,
    )
)
register_family(
    ModelFamily(
        name="hybrid",
        label="hybrid",
        noun="hybrid",
        forms=f"hybrid RNxK+SIZE/STRIDE with STRIDE one of {', '.join(map(str, STAGE_STRIDES))} (e.g. R50x1+B/16)",
        parse=_parse_hybrid,
        spell=_hybrid_name,
        resolve=_resolve_hybrid,
        build="benchmark.models.hybrid:build_hybrid",
        check="benchmark.models.vit:validate_vit",
        fields=(*_VIT_FIELDS, "resnet_width"),
        patch_name="hybrid's stride",
        channels_last=True,
    )
)
