"""The paper's released checkpoints (issue 22): which ones the suite reads, where their files are,
whether a file is the checkpoint it claims to be, and loading it through timm's own loaders.

The authors released their ImageNet-21k pre-trained ViTs, the R50+ViT-B/16 hybrid and (in the BiT
paper) the BiT-M ResNets; timm carries them, converted, on the Hugging Face hub. `CATALOG` holds one
`Released` record per checkpoint: the timm name, the authors' file in their bucket, the paper's
label, family, data, resolution and (computed, on the meta device) parameter count.

Finding a file never downloads: the `weights` folder (`--weights DIR`, else `VITBENCH_WEIGHTS`)
is searched for the names timm and the authors give the file, then the caches timm downloads
into (Hugging Face's hub cache, torch hub's checkpoints). Only `download=True` fetches, by the
hub download timm itself does. A file is verified before it is loaded: readable to the end, and
holding exactly the tensors of the architecture, key for key and shape for shape, because timm's
loaders resample a patch embedding or position table that does not fit (a ViT-B/32 file loads
into a ViT-B/16 without a word). Every refusal is a one-line `UserError`; nothing is written.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from benchmark.config import Interpolation, ModelConfig, RunConfig
from benchmark.errors import UserError
from benchmark.sizes import family_of, parse_model

# torch, timm, numpy and the hub are imported where used: the catalog, finding a file and its
# sha256 are read by planning, which imports none of them.
if TYPE_CHECKING:
    import torch
    from torch import nn

WEIGHTS_ENV = "VITBENCH_WEIGHTS"

# Where the authors distribute the files: ViT and the hybrid with the ViT paper, BiT-M with BiT's.
VIT_REPOSITORY = "https://github.com/google-research/vision_transformer"
VIT_BUCKET = "gs://vit_models"
BIT_REPOSITORY = "https://github.com/google-research/big_transfer"
BIT_BUCKET = "gs://bit_models"

FORMATS = {".safetensors": "safetensors", ".pth": "pth", ".bin": "pth", ".pt": "pth", ".npz": "npz"}
# The files a timm model's Hugging Face repository holds, in the order timm prefers them.
HUB_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class Released:
    """One released checkpoint. `name` is timm's (architecture.tag); `arch` the suite's variant
    string (benchmark.sizes); `original` the file's path in the authors' bucket; `img_size` and
    `num_classes` those of timm's pretrained config (0 classes: no head, as timm distributes the
    ImageNet-21k ViTs, whose released heads are zero); `legacy` the file timm downloaded before
    the Hugging Face hub, if any. A test holds every field timm also knows to timm's value."""

    name: str
    arch: str
    original: str
    img_size: int
    num_classes: int
    fine_tuned_on: str = ""
    legacy: str = ""
    pretrained_on: str = "ImageNet-21k"

    @property
    def family(self) -> str:
        """The family as benchmark.sizes labels it: "ViT", "hybrid" or "BiT"."""
        return family_of(self.arch).label

    @property
    def label(self) -> str:
        """The paper's name for the model: "ViT-B/16", "R50x1+ViT-B/16", "BiT-M R50x1"."""
        name = parse_model(self.arch).name
        return f"BiT-M {name}" if self.family == "BiT" else name

    @property
    def hub_id(self) -> str:
        """Its Hugging Face repository, where timm fetches it from."""
        return f"timm/{self.name}"

    @property
    def params(self) -> int:
        """Parameters of the model timm builds for this checkpoint (counted on the meta device)."""
        return _count_params(self.name)

    @property
    def bucket(self) -> str:
        return BIT_BUCKET if self.family == "BiT" else VIT_BUCKET

    @property
    def repository(self) -> str:
        return BIT_REPOSITORY if self.family == "BiT" else VIT_REPOSITORY

    @property
    def original_uri(self) -> str:
        return f"{self.bucket}/{self.original}"


def _catalog(*records: Released) -> dict[str, Released]:
    table: dict[str, Released] = {}
    for record in records:
        if record.name in table:
            raise ValueError(f"duplicate released checkpoint {record.name!r}")
        table[record.name] = record
    return table


# Every name below is in timm 1.0.31's `list_pretrained()` (tests check it). The ImageNet-1k
# fine-tuned files are the bucket's "imagenet21k+imagenet2012" ones: at 384 px except "-224".
_FT = "ImageNet-1k"
_IN21K = "imagenet21k/"
_IN1K = "imagenet21k+imagenet2012/"
CATALOG: dict[str, Released] = _catalog(
    # timm name, the suite's arch, the authors' file, resolution, classes[, fine-tuned on, legacy file]
    Released("vit_base_patch16_224.orig_in21k", "ViT-B/16", _IN21K + "ViT-B_16.npz", 224, 0),
    Released("vit_base_patch32_224.orig_in21k", "ViT-B/32", _IN21K + "ViT-B_32.npz", 224, 0),
    Released("vit_large_patch16_224.orig_in21k", "ViT-L/16", _IN21K + "ViT-L_16.npz", 224, 0),
    Released("vit_large_patch32_224.orig_in21k", "ViT-L/32", _IN21K + "ViT-L_32.npz", 224, 0),
    Released("vit_huge_patch14_224.orig_in21k", "ViT-H/14", _IN21K + "ViT-H_14.npz", 224, 0),
    Released("vit_base_r50_s16_224.orig_in21k", "R50x1+ViT-B/16", _IN21K + "R50+ViT-B_16.npz", 224, 0),
    Released(
        "vit_base_patch16_224.orig_in21k_ft_in1k",
        "ViT-B/16",
        _IN1K + "ViT-B_16-224.npz",
        224,
        1000,
        _FT,
        "jx_vit_base_p16_224-80ecf9dd.pth",
    ),
    Released(
        "vit_base_patch16_384.orig_in21k_ft_in1k",
        "ViT-B/16",
        _IN1K + "ViT-B_16.npz",
        384,
        1000,
        _FT,
        "jx_vit_base_p16_384-83fb41ba.pth",
    ),
    Released(
        "vit_large_patch32_384.orig_in21k_ft_in1k",
        "ViT-L/32",
        _IN1K + "ViT-L_32.npz",
        384,
        1000,
        _FT,
        "jx_vit_large_p32_384-9b920ba8.pth",
    ),
    Released(
        "vit_base_r50_s16_384.orig_in21k_ft_in1k",
        "R50x1+ViT-B/16",
        _IN1K + "R50+ViT-B_16.npz",
        384,
        1000,
        _FT,
        "jx_vit_base_resnet50_384-9fd3c705.pth",
    ),
    Released("resnetv2_50x1_bit.goog_in21k", "R50x1", "BiT-M-R50x1.npz", 224, 21843),
    Released("resnetv2_101x1_bit.goog_in21k", "R101x1", "BiT-M-R101x1.npz", 224, 21843),
    Released("resnetv2_152x2_bit.goog_in21k", "R152x2", "BiT-M-R152x2.npz", 224, 21843),
)


def released(name: str) -> Released:
    """The catalog's record for a timm name; a one-line UserError naming the valid ones."""
    try:
        return CATALOG[name]
    except KeyError:
        raise UserError(f"unknown released checkpoint {name!r}; valid: {', '.join(CATALOG)}") from None


@cache
def _count_params(name: str) -> int:
    import timm
    import torch

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    return sum(p.numel() for p in model.parameters())


# --- finding the file ---------------------------------------------------------------------------


def file_names(record: Released) -> tuple[str, ...]:
    """The names a weights folder may hold the checkpoint under, in the order they are preferred:
    timm's (`<name>.safetensors`, `.pth`, `.bin`; a hub download's `<name>/model.safetensors`),
    then the authors' (the bucket path, flattened with "_", and the bare file name where it names
    one file: the bucket's two "ViT-B_16.npz" are told apart by folder, the bare name being the
    ImageNet-21k one's), then the file timm downloaded before the hub, if any."""
    names = [f"{record.name}{suffix}" for suffix in (".safetensors", ".pth", ".bin")]
    names += [f"{record.name}/{hub_file}" for hub_file in HUB_FILES]
    folder, _, base = record.original.rpartition("/")
    names.append(record.original)
    if folder:
        names.append(f"{folder}_{base}")
        shared = sum(Path(r.original).name == base for r in CATALOG.values()) > 1
        if not shared or not record.fine_tuned_on:
            names.append(base)
    if record.legacy:
        names.append(record.legacy)
    return tuple(names)


def weights_folder(weights: str | Path | None = None) -> Path | None:
    """The folder given (`--weights`), else `VITBENCH_WEIGHTS`, else None."""
    chosen = weights if weights not in (None, "") else os.environ.get(WEIGHTS_ENV) or None
    return None if chosen is None else Path(chosen).expanduser()


def hf_cache() -> Path:
    """Hugging Face's hub cache, where timm's hub downloads go (HF_HUB_CACHE / HF_HOME honoured)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def torch_hub_dir() -> Path:
    """torch.hub.get_dir(), without importing torch: $TORCH_HOME/hub, else
    $XDG_CACHE_HOME/torch/hub, else ~/.cache/torch/hub (torch.hub's documented order). Where
    torch is imported already, torch's own answer (torch.hub.set_dir may have moved it)."""
    if "torch" in sys.modules:
        return Path(sys.modules["torch"].hub.get_dir())
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(os.environ.get("TORCH_HOME") or os.path.join(cache_home, "torch")).expanduser() / "hub"


def torch_cache() -> Path:
    """torch hub's checkpoint folder, where timm's downloads from a URL go."""
    return torch_hub_dir() / "checkpoints"


def _in_caches(record: Released) -> Path | None:
    """The checkpoint in timm's caches, looked up without touching the network or the disk."""
    from huggingface_hub import try_to_load_from_cache

    for hub_file in HUB_FILES:
        found = try_to_load_from_cache(record.hub_id, hub_file, cache_dir=hf_cache())
        if isinstance(found, str):
            return Path(found)
    if record.legacy and (torch_cache() / record.legacy).is_file():
        return torch_cache() / record.legacy
    return None


def locate(record: Released, weights: str | Path | None = None) -> Path | None:
    """The checkpoint's file: in the weights folder under one of `file_names`, else in timm's
    caches; None if nowhere."""
    folder = weights_folder(weights)
    if folder is not None:
        for name in file_names(record):
            if (folder / name).is_file():
                return folder / name
    return _in_caches(record)


def how_to_obtain(record: Released) -> str:
    """Where the file comes from, as the missing-file error says it."""
    return (
        f"obtain it from the Hugging Face hub as {record.hub_id} (`hf download {record.hub_id} "
        f"model.safetensors --local-dir DIR/{record.name}`, or pass --download to fetch it into the "
        f"hub cache), or the authors' {record.original_uri} ({record.repository}) into DIR"
    )


def find_weights(record: Released, weights: str | Path | None = None) -> Path:
    """`locate`, or a one-line UserError naming the file names looked for, the folders searched
    and how to obtain the file."""
    found = locate(record, weights)
    if found is not None:
        return found
    folder = weights_folder(weights)
    where = (
        f"in {folder} (--weights / {WEIGHTS_ENV})"
        if folder is not None
        else f"in no weights folder (neither --weights nor {WEIGHTS_ENV} is set)"
    )
    raise UserError(
        f"no weights for {record.name} ({record.label}, {record.pretrained_on}): looked for "
        f"{', '.join(file_names(record))} {where} and in timm's caches ({hf_cache()}, {torch_cache()}); "
        f"{how_to_obtain(record)}"
    )


def present(weights: str | Path | None = None) -> dict[str, Path | None]:
    """Every catalog checkpoint's file, or None where it is absent (for `plan`)."""
    return {name: locate(record, weights) for name, record in CATALOG.items()}


def fetch(record: Released) -> Path:
    """Fetch the checkpoint as timm does (the hub download of its model.safetensors into the
    Hugging Face cache); the only function here that touches the network."""
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id=record.hub_id, filename=HUB_FILES[0]))


# --- verifying the file -------------------------------------------------------------------------

HASHES = "checkpoint-sha256.json"  # in the suite's cache folder (storage.cache_dir)


def sha256(path: Path) -> str:
    """The checkpoint file's sha256 (storage.file_sha256), remembered across processes in the
    suite's cache folder: `plan`, `status` and `run` of a released preset hash its gigabytes once."""
    from benchmark.storage import cache_dir, file_sha256

    return file_sha256(path, cache_dir() / HASHES)


def weight_format(path: Path) -> str:
    """ "safetensors", "pth" (a torch pickle: .pth, .bin, .pt) or "npz" (the authors' layout)."""
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise UserError(
            f"{path} is not a checkpoint format this suite reads; valid: {', '.join(FORMATS)}"
        ) from None


def _damaged(path: Path, fmt: str, exc: BaseException) -> UserError:
    reason = " ".join(str(exc).split())
    return UserError(
        f"{path} cannot be read as a {fmt} checkpoint: truncated, damaged or not that format "
        f"({type(exc).__name__}{': ' + reason if reason else ''}); fetch it again"
    )


def _safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    # The header's offsets must cover the file: a truncated file fails here.
    with safe_open(str(path), framework="pt") as f:
        return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118


def _pth_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    import torch
    from timm.models import clean_state_dict

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # legacy (not zip) format
    # As timm's load_state_dict unwraps a training checkpoint (EMA weights first) and strips DDP prefixes.
    if isinstance(checkpoint, dict):
        for key in ("state_dict_ema", "model_ema", "state_dict", "model"):
            if isinstance(checkpoint.get(key), dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict) or not all(torch.is_tensor(v) for v in checkpoint.values()):
        raise ValueError("it holds no state dict of tensors")
    return {key: tuple(value.shape) for key, value in clean_state_dict(checkpoint).items()}


def _npz_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    import numpy as np

    shapes = {}
    with zipfile.ZipFile(path) as archive:
        bad = archive.testzip()  # every member's CRC: a flipped byte anywhere is caught here
        if bad is not None:
            raise ValueError(f"member {bad} fails its CRC check")
        for member in archive.namelist():
            if not member.endswith(".npy"):
                continue
            with archive.open(member) as f:
                version = np.lib.format.read_magic(f)
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shapes[member[: -len(".npy")]] = tuple(read_header(f)[0])
    return shapes


_READERS: dict[str, Callable[[Path], dict[str, tuple[int, ...]]]] = {
    "safetensors": _safetensors_shapes,
    "pth": _pth_shapes,
    "npz": _npz_shapes,
}


def file_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's name and shape in the file, read without loading the weights; a one-line
    UserError when the file cannot be read through (truncated, damaged, not that format)."""
    fmt = weight_format(path)
    try:
        return _READERS[fmt](path)
    except OSError as exc:
        if not path.is_file():
            raise UserError(f"{path} is not a readable file ({exc.strerror or exc})") from None
        raise _damaged(path, fmt, exc) from exc
    except Exception as exc:  # each reader's own error type (SafetensorError, BadZipFile, pickle errors)
        raise _damaged(path, fmt, exc) from exc


def _build(
    record: Released, model_kwargs: dict[str, Any], pretrained_cfg_overlay: dict | None = None
) -> nn.Module:
    import timm

    return timm.create_model(
        record.name,
        pretrained=pretrained_cfg_overlay is not None,
        pretrained_cfg_overlay=pretrained_cfg_overlay,
        **model_kwargs,
    )


def expected_shapes(record: Released, fmt: str, **model_kwargs: Any) -> dict[str, tuple[int, ...]]:
    """The tensors a file of format `fmt` must hold for `record`'s model (with `model_kwargs`
    passed to timm.create_model), built on the meta device: timm's state dict, or for "npz" the
    authors' layout of it (`original_layout`)."""
    import torch

    with torch.device("meta"):
        model = _build(record, model_kwargs)
    tensors = original_layout(model) if fmt == "npz" else model.state_dict()
    return {key: tuple(value.shape) for key, value in tensors.items()}


# The authors' files hold more than timm reads: the ImageNet-21k ViTs keep their pre-training
# head (zero, 21,843 classes) and the tanh pre-logits layer, which timm's reader skips.
_IGNORED_NPZ = ("pre_logits/", "head/")
# Old original checkpoints nest every parameter under the optimizer's target; timm's reader strips it.
_NPZ_PREFIX = "opt/target/"


def _as_vit_reader_reads(shape: tuple[int, ...]) -> tuple[int, ...]:
    """timm's ViT .npz reader flattens a (1, 1, 1, C) array to (C,) before copying it."""
    return shape[-1:] if len(shape) == 4 and shape[:3] == (1, 1, 1) else shape


def check_architecture(
    record: Released, path: Path, found: dict[str, tuple[int, ...]], **model_kwargs: Any
) -> None:
    """A one-line UserError unless `found` (the file's tensors) is exactly `record`'s
    architecture: no key missing, none unexpected, every shape equal (shapes as timm's reader takes
    them). The authors' .npz may also hold what timm's reader skips: their pre-training head and
    tanh pre-logits layer."""
    fmt = weight_format(path)
    expected = expected_shapes(record, fmt, **model_kwargs)
    if fmt == "npz":
        if found and all(key.startswith(_NPZ_PREFIX) for key in found):
            found = {key[len(_NPZ_PREFIX) :]: shape for key, shape in found.items()}
        ignored = tuple(p for p in _IGNORED_NPZ if not any(key.startswith(p) for key in expected))
        if ignored:
            found = {key: shape for key, shape in found.items() if not key.startswith(ignored)}
    same = _as_vit_reader_reads if fmt == "npz" and record.family != "BiT" else tuple
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    wrong = [
        f"{key} is {found[key]}, expected {expected[key]}"
        for key in expected
        if key in found and same(found[key]) != same(expected[key])
    ]
    if not (missing or unexpected or wrong):
        return
    problems = [
        *(
            f"{len(items)} {what} ({_some(items)})"
            for what, items in (("missing", missing), ("unexpected", unexpected))
            if items
        ),
        *([f"{len(wrong)} of another shape ({_some(wrong)})"] if wrong else []),
    ]
    raise UserError(
        f"{path} is not {record.name} ({record.label}, {_describe(record, model_kwargs)}): of its "
        f"{len(expected)} tensors, {'; '.join(problems)}; a file of another architecture or resolution, "
        f"refused before loading; {how_to_obtain(record)}"
    )


def _some(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def _describe(record: Released, model_kwargs: dict[str, Any]) -> str:
    extra = "".join(f", {k}={v!r}" for k, v in model_kwargs.items())
    return f"{record.img_size} px, {record.num_classes} classes{extra}"


def verify(record: Released, path: Path, **model_kwargs: Any) -> str:
    """Read `path` through and check it holds `record`'s architecture (`file_shapes`,
    `check_architecture`); returns its format."""
    check_architecture(record, path, file_shapes(path), **model_kwargs)
    return weight_format(path)


# --- the authors' .npz layout -------------------------------------------------------------------


def _hwio(w: torch.Tensor) -> torch.Tensor:
    return w.permute(2, 3, 1, 0)  # torch's (out, in, h, w) -> Flax's (h, w, in, out)


def _t(w: torch.Tensor) -> torch.Tensor:
    return w.t()  # torch's Linear (out, in) -> Flax's Dense kernel (in, out)


def _same(w: torch.Tensor) -> torch.Tensor:
    return w


_Rule = tuple[str, str, Callable[["torch.Tensor"], "torch.Tensor"]]
_NORM = (("weight", "scale"), ("bias", "bias"))
_ABC = {"1": "a", "2": "b", "3": "c"}


def _vit_rules() -> list[_Rule]:
    """timm ViT key (regex) -> the authors' key, as timm's vision_transformer._load_weights reads
    it. q, k, v (one fused qkv in timm) are handled by `original_layout` itself."""
    block = r"blocks\.(\d+)\."
    enc = "Transformer/encoderblock_{0}/"
    rules: list[_Rule] = [
        (r"cls_token", "cls", _same),
        (r"pos_embed", "Transformer/posembed_input/pos_embedding", _same),
        (r"patch_embed\.proj\.weight", "embedding/kernel", _hwio),
        (r"patch_embed\.proj\.bias", "embedding/bias", _same),
        (r"head\.weight", "head/kernel", _t),
        (r"head\.bias", "head/bias", _same),
        (block + r"attn\.proj\.bias", enc + "MultiHeadDotProductAttention_1/out/bias", _same),
    ]
    for torch_name, flax_name in _NORM:
        rules.append((rf"norm\.{torch_name}", f"Transformer/encoder_norm/{flax_name}", _same))
        rules.append((block + rf"norm1\.{torch_name}", enc + f"LayerNorm_0/{flax_name}", _same))
        rules.append((block + rf"norm2\.{torch_name}", enc + f"LayerNorm_2/{flax_name}", _same))
    for i in (1, 2):
        rules.append((block + rf"mlp\.fc{i}\.weight", enc + f"MlpBlock_3/Dense_{i - 1}/kernel", _t))
        rules.append((block + rf"mlp\.fc{i}\.bias", enc + f"MlpBlock_3/Dense_{i - 1}/bias", _same))
    return rules


def _hybrid_rules() -> list[_Rule]:
    """The hybrid's ResNet (timm's HybridEmbed backbone) as the authors' R50+ViT files hold it."""
    unit = r"patch_embed\.backbone\.stages\.(\d+)\.blocks\.(\d+)\."
    rules: list[_Rule] = [
        (r"patch_embed\.backbone\.stem\.conv\.weight", "conv_root/kernel", _hwio),
        (unit + r"conv(\d)\.weight", "block{0+}/unit{1+}/conv{2}/kernel", _hwio),
        (unit + r"downsample\.conv\.weight", "block{0+}/unit{1+}/conv_proj/kernel", _hwio),
    ]
    for torch_name, flax_name in _NORM:
        rules.append((rf"patch_embed\.backbone\.stem\.norm\.{torch_name}", f"gn_root/{flax_name}", _same))
        rules.append((unit + rf"norm(\d)\.{torch_name}", "block{0+}/unit{1+}/gn{2}/" + flax_name, _same))
        rules.append(
            (unit + rf"downsample\.norm\.{torch_name}", "block{0+}/unit{1+}/gn_proj/" + flax_name, _same)
        )
    return rules


def _bit_rules() -> list[_Rule]:
    """A BiT ResNetV2 as the BiT-M files hold it, as timm's resnetv2._load_weights reads it."""
    unit = r"stages\.(\d+)\.blocks\.(\d+)\."
    conv = "standardized_conv2d/kernel"
    return [
        (r"stem\.conv\.weight", f"resnet/root_block/{conv}", _hwio),
        (r"norm\.weight", "resnet/group_norm/gamma", _same),
        (r"norm\.bias", "resnet/group_norm/beta", _same),
        (r"head\.fc\.weight", "resnet/head/conv2d/kernel", _hwio),
        (r"head\.fc\.bias", "resnet/head/conv2d/bias", _same),
        (unit + r"conv(\d)\.weight", "resnet/block{0+}/unit{1+:02d}/{2abc}/" + conv, _hwio),
        (unit + r"norm(\d)\.weight", "resnet/block{0+}/unit{1+:02d}/{2abc}/group_norm/gamma", _same),
        (unit + r"norm(\d)\.bias", "resnet/block{0+}/unit{1+:02d}/{2abc}/group_norm/beta", _same),
        (unit + r"downsample\.conv\.weight", "resnet/block{0+}/unit{1+:02d}/a/proj/" + conv, _hwio),
    ]


def _fill(template: str, groups: tuple[str, ...]) -> str:
    """A rule's key with the regex groups in: {0} as matched, {0+} one higher (the authors count
    stages and units from 1), {1+:02d} zero-padded, {2abc} conv/norm 1, 2, 3 as BiT's a, b, c."""

    def field(match: re.Match[str]) -> str:
        value = groups[int(match["i"])]
        if match["op"] == "abc":
            return _ABC[value]
        if match["op"] == "+":
            return format(int(value) + 1, match["fmt"] or "")
        return value

    return re.sub(r"\{(?P<i>\d)(?P<op>\+|abc)?(?::(?P<fmt>[^}]+))?\}", field, template)


def original_layout(model: nn.Module) -> dict[str, torch.Tensor]:
    """`model`'s weights (a timm ViT, R50 hybrid or BiT ResNetV2) under the names and in the
    shapes of the authors' .npz files: the inverse of timm's readers, which define the layout
    (Flax kernels (in, out) and (h, w, in, out); q, k and v as three (D, heads, head dim) kernels;
    the attention's output kernel (heads, head dim, D)). Works on the meta device (shapes only).
    A weight the layout has no name for is an error: such a model has no original file."""
    from timm.models.resnetv2 import ResNetV2

    if isinstance(model, ResNetV2):
        rules = _bit_rules()
    else:
        rules = _vit_rules() + (_hybrid_rules() if hasattr(model.patch_embed, "backbone") else [])
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        value = value.detach()
        qkv = re.fullmatch(r"blocks\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)", key)
        if qkv is not None and (qkv[2], qkv[3]) != ("proj", "bias"):
            heads = model.blocks[int(qkv[1])].attn.num_heads
            prefix = f"Transformer/encoderblock_{qkv[1]}/MultiHeadDotProductAttention_1/"
            if qkv[2] == "proj":  # out: (D, heads * hd) -> (heads, hd, D)
                out[prefix + "out/kernel"] = value.reshape(value.shape[0], heads, -1).permute(1, 2, 0)
                continue
            for part, chunk in zip(("query", "key", "value"), value.chunk(3, dim=0), strict=True):
                if qkv[3] == "weight":  # (heads * hd, D) -> (D, heads, hd)
                    out[f"{prefix}{part}/kernel"] = chunk.t().reshape(chunk.shape[1], heads, -1)
                else:
                    out[f"{prefix}{part}/bias"] = chunk.reshape(heads, -1)
            continue
        for pattern, template, convert in rules:
            match = re.fullmatch(pattern, key)
            if match is not None:
                out[_fill(template, match.groups())] = convert(value)
                break
        else:
            raise ValueError(f"{type(model).__name__} weight {key!r} has no name in the authors' .npz layout")
    return out


# --- loading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    """What was loaded, for a run's record: the checkpoint's timm name, the file, its sha256 and
    format, and the returned model's parameters, input size and classes."""

    name: str
    file: Path
    sha256: str
    format: str
    params: int
    img_size: int
    num_classes: int


def load_released(
    name: str,
    weights: str | Path | None = None,
    *,
    img_size: int | None = None,
    num_classes: int | None = None,
    interpolation: Interpolation = "bilinear",
    download: bool = False,
    **model_kwargs: Any,
) -> tuple[nn.Module, Loaded]:
    """The released checkpoint `name` (a timm name in CATALOG) loaded into timm's model, in eval
    mode on the CPU, with the record of what was loaded.

    The file is found (`find_weights`; fetched first only with `download=True`), hashed, read
    through and checked against the architecture (`verify`), then loaded by timm's own loader:
    `timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=...))`, which reads
    safetensors and torch files as state dicts and hands the authors' .npz to the model's
    `load_pretrained` (timm's npz readers, `custom_load=True`). `model_kwargs` go to timm.create_model
    too (e.g. `drop_path_rate`; anything that changes the architecture changes what the file is
    checked against).

    The model is loaded at the checkpoint's own resolution and head, then set to the fine-tuning
    protocol's where asked (§3.2): `img_size` resizes the position table by benchmark.models.resize
    (the original code's bilinear zoom by default, "bicubic" for timm's resampling; timm's own
    loaders would resample bicubic for a state dict, bilinear without the corners kept for an .npz,
    and only while loading), and a `num_classes` other than the checkpoint's replaces the head with
    a zero-initialised one (§3.1; 0: no head, the model returns its pooled features).
    """
    record = released(name)
    for reserved in ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "num_classes", "img_size"):
        if reserved in model_kwargs:
            raise TypeError(f"load_released sets {reserved} itself")
    if (
        img_size is not None
        and record.family != "BiT"
        and (img_size < 1 or img_size % parse_model(record.arch).patch)
    ):
        raise UserError(
            f"image size {img_size} is not a multiple of {record.label}'s patch size "
            f"{parse_model(record.arch).patch}; choose one that it divides"
        )
    if num_classes is not None and num_classes < 0:
        raise UserError(f"num_classes={num_classes} is not valid; it must be 0 (no head) or more")
    if interpolation not in get_args(Interpolation):
        raise UserError(
            f"interpolation={interpolation!r} is not valid; choose one of: {', '.join(get_args(Interpolation))}"
        )
    path = locate(record, weights)
    if path is None and download:
        path = fetch(record)
    if path is None:
        path = find_weights(record, weights)  # raises, naming what was looked for
    fmt = verify(record, path, **model_kwargs)
    digest = sha256(path)
    overlay = {"file": str(path), "custom_load": fmt == "npz"}
    try:
        model = _build(record, model_kwargs, overlay)
    except Exception as exc:  # timm's loaders: a file that passed the checks but not the reader
        raise UserError(
            f"{path} ({fmt}) was refused by timm's loader for {record.name}: {type(exc).__name__}: "
            f"{' '.join(str(exc).split())}"
        ) from exc
    if num_classes is not None and num_classes != record.num_classes:
        from benchmark.models.heads import replace_head

        if num_classes:
            replace_head(model, num_classes)
        else:
            model.reset_classifier(0)  # the pooled features: what few-shot probes read
    if img_size is not None and img_size != record.img_size:
        from benchmark.models.resize import resize_model

        resize_model(model, img_size, interpolation)
    model.eval()
    loaded = Loaded(
        name=record.name,
        file=path,
        sha256=digest,
        format=fmt,
        params=sum(p.numel() for p in model.parameters()),
        img_size=img_size or record.img_size,
        num_classes=record.num_classes if num_classes is None else num_classes,
    )
    return model, loaded


# --- runs that start from a checkpoint ----------------------------------------------------------


def model_config(name: str) -> ModelConfig:
    """The `model` section of a run that starts from checkpoint `name` instead of pre-training: its
    architecture as timm builds it (a 1-D position table at the stem, class-token pooling, and no
    tanh pre-logits layer: timm drops the one the ImageNet-21k ViTs were released with, so their
    few-shot features are the pooled token), its sha256 not yet pinned (`pin`)."""
    return ModelConfig(arch=released(name).arch, prelogits=False, checkpoint=name)


def check_model(cfg: ModelConfig) -> None:
    """A one-line UserError unless `cfg` describes checkpoint `cfg.checkpoint` as `model_config`
    does (the architecture under any of its spellings, any pinned sha256): a field set otherwise
    would describe a model the file is not."""
    expected = model_config(cfg.checkpoint)
    if parse_model(cfg.arch).name == parse_model(expected.arch).name:
        expected = dataclasses.replace(expected, arch=cfg.arch)
    expected = dataclasses.replace(expected, checkpoint_sha256=cfg.checkpoint_sha256)
    wrong = [
        f"model.{f.name}={getattr(cfg, f.name)!r} (the checkpoint's: {getattr(expected, f.name)!r})"
        for f in dataclasses.fields(ModelConfig)
        if getattr(cfg, f.name) != getattr(expected, f.name)
    ]
    if wrong:
        raise UserError(
            f"model.checkpoint={cfg.checkpoint!r} is {released(cfg.checkpoint).label}, but {'; '.join(wrong)}: "
            "leave the model section as benchmark.released.model_config gives it"
        )


def pin(cfg: RunConfig, folder: Path | None = None) -> RunConfig:
    """`cfg` with `model.checkpoint_sha256` pinned, so that its run id covers the very file: the
    sha256 of the checkpoint's file where it is found (`locate`), else that of the finished runs of
    it in `folder` (a study's results: `status` and `report` then read them on a machine without
    the weights), else left empty (`require` refuses to run it). A config that names no checkpoint,
    or pins one already, is returned as it is."""
    name = cfg.model.checkpoint
    if not name or cfg.model.checkpoint_sha256:
        return cfg
    path = locate(released(name))
    digest = sha256(path) if path is not None else _stored_sha256(folder, name)
    return cfg.replace(**{"model.checkpoint_sha256": digest}) if digest else cfg


def _stored_sha256(folder: Path | None, name: str) -> str:
    """The sha256 of the newest finished run of checkpoint `name` in a study's results folder."""
    import json

    found: list[tuple[float, str]] = []
    for config in folder.glob("*/config.json") if folder is not None and folder.is_dir() else ():
        result = config.with_name("result.json")
        try:
            model = json.loads(config.read_text()).get("model", {})
        except (OSError, ValueError):
            continue
        if model.get("checkpoint") == name and model.get("checkpoint_sha256") and result.is_file():
            found.append((result.stat().st_mtime, model["checkpoint_sha256"]))
    return max(found)[1] if found else ""


def fetch_missing(cfg: RunConfig) -> bool:
    """`--download`: fetch the checkpoint a run names if it is nowhere here; whether it fetched
    (the run must then be planned again, pinned to the file fetched)."""
    record = released(cfg.model.checkpoint)
    if locate(record) is not None:
        return False
    fetch(record)
    return True


def require(cfg: RunConfig) -> Path:
    """Before a run of checkpoint `cfg.model.checkpoint` is started (nothing written yet): its
    file, read through and checked against the architecture, and the sha256 the run was pinned
    to. Each refusal is one line naming the file and the fix."""
    record = released(cfg.model.checkpoint)
    path = find_weights(record)  # raises, naming what was looked for and how to obtain it
    verify(record, path)
    if sha256(path) != cfg.model.checkpoint_sha256:
        raise UserError(
            f"{path} (sha256 {sha256(path)[:12]}…) is not the file these runs were planned with (sha256 "
            f"{cfg.model.checkpoint_sha256[:12] or 'none'}…): run the command again to plan them with it"
        )
    return path


def load_pinned(cfg: RunConfig, img_size: int) -> tuple[nn.Module, Loaded]:
    """The checkpoint a run names, at `img_size` with no head (its pooled features), refused unless
    its file is the one the run was pinned to: the file found may have changed since the plan."""
    model, loaded = load_released(cfg.model.checkpoint, img_size=img_size, num_classes=0)
    if loaded.sha256 != cfg.model.checkpoint_sha256:
        raise RuntimeError(
            f"{loaded.file} has sha256 {loaded.sha256}, but this run was planned with "
            f"{cfg.model.checkpoint_sha256 or 'no file'}: the file changed since; plan and run again"
        )
    return model, loaded


def untrained(name: str, img_size: int, seed: int) -> nn.Module:
    """The checkpoint's architecture as timm initialises it, untrained, at `img_size` with no head:
    the null a released model's structure is compared with (benchmark.evals.inspect), from a fixed
    seed; the caller's random state is left as it was."""
    import torch

    record = released(name)
    kwargs = {"img_size": img_size} if record.family != "BiT" else {}
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return _build(record, {**kwargs, "num_classes": 0})
