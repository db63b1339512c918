"""The released checkpoints: catalog, finding, verifying and loading, on files the tests write in
each real format (timm's safetensors and torch files, the authors' .npz) from randomly initialised
models. Nothing downloads: every network path of timm and the hub is made to fail here."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import timm
import torch

from benchmark import released as rel
from benchmark.errors import UserError
from benchmark.models import param_count
from benchmark.paper import paper_values
from benchmark.sizes import SIZES, parse_model

B32 = "vit_base_patch32_224.orig_in21k"
B16 = "vit_base_patch16_224.orig_in21k"
SMALL = {"depth": 1}  # a one-block ViT-B: the real widths and embeddings, 9.5M parameters


def _offline(*_args, **_kwargs):
    raise AssertionError("a test tried to reach the network")


@pytest.fixture(autouse=True)
def offline_and_isolated(tmp_path, monkeypatch):
    """No weights folder, empty caches of the test's own (not created), every download refused."""
    import huggingface_hub
    import huggingface_hub.constants
    import timm.models._builder as builder

    monkeypatch.delenv(rel.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _offline)
    for name in ("download_cached_file", "load_state_dict_from_hf", "load_state_dict_from_url"):
        monkeypatch.setattr(builder, name, _offline)
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)


def small_model(name: str = B32, seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(name, **(SMALL | kwargs))


def write(model: torch.nn.Module, path: Path, fmt: str) -> Path:
    """`model`'s weights at `path` in one of the real formats."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        safetensors.torch.save_file(model.state_dict(), str(path))
    elif fmt == "pth":
        torch.save({"state_dict": model.state_dict(), "epoch": 90}, path)  # a training checkpoint
    elif fmt == "npz":  # np.savez names each member key + ".npy", as the authors' files
        np.savez(path, **{k: v.numpy() for k, v in rel.original_layout(model).items()})
    return path


def equal_weights(a: torch.nn.Module, b: torch.nn.Module) -> list[str]:
    """The state-dict entries where a and b differ (empty: the same weights)."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return [k for k in sa if not torch.equal(sa[k], sb[k])]


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# --- the catalog --------------------------------------------------------------------------------


def test_every_catalog_entry_is_a_timm_checkpoint_with_timms_own_facts():
    listed = set(timm.list_pretrained())
    assert len(rel.CATALOG) == 13
    for name, record in rel.CATALOG.items():
        assert name in listed, name
        cfg = timm.models.get_pretrained_cfg(name)
        assert (record.img_size, record.num_classes) == (cfg.input_size[-1], cfg.num_classes)
        assert record.hub_id == cfg.hf_hub_id
        assert record.legacy == (cfg.url.rsplit("/", 1)[-1] if cfg.url else "")
        assert record.original.endswith(".npz") and record.pretrained_on == "ImageNet-21k"
    labels = {r.label for r in rel.CATALOG.values()}
    assert {"ViT-B/16", "ViT-H/14", "R50x1+ViT-B/16", "BiT-M R152x2"} <= labels
    assert {r.family for r in rel.CATALOG.values()} == {"ViT", "hybrid", "BiT"}
    assert rel.CATALOG["vit_base_patch16_384.orig_in21k_ft_in1k"].fine_tuned_on == "ImageNet-1k"
    assert rel.CATALOG[B16].original_uri == "gs://vit_models/imagenet21k/ViT-B_16.npz"


def test_the_catalog_and_finding_files_import_neither_torch_nor_timm(tmp_path):
    """Planning reads them (which weights are present) without paying for torch."""
    code = (
        "import sys, benchmark.released as r; r.present(); r.file_names(r.released('" + B16 + "')); "
        "print(sorted(m for m in ('torch', 'timm', 'numpy') if m in sys.modules))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(rel.__file__).parents[1]),
        "TORCH_HOME": str(tmp_path),
        "HF_HUB_CACHE": str(tmp_path),
    }
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


def test_parameter_counts_are_timms_and_agree_with_the_suites_builders_and_table_1():
    """Counted on the meta device from timm's model; the suite's own builders (benchmark.models)
    give the same model, head aside: timm's ImageNet-21k ViTs have none (0 classes)."""
    for record in rel.CATALOG.values():
        ours = param_count(record.arch, num_classes=max(record.num_classes, 1), img_size=record.img_size)
        head = (
            0 if record.num_classes else SIZES[parse_model(record.arch).vit].width + 1
        )  # ours: Linear(D, 1)
        assert record.params == ours - head, record.name
    # Table 1: ViT-B 86M, ViT-L 307M, ViT-H 632M (the released, headless models within 1.5%).
    for name, table_1 in [
        (B16, 86e6),
        ("vit_large_patch16_224.orig_in21k", 307e6),
        ("vit_huge_patch14_224.orig_in21k", 632e6),
    ]:
        assert abs(rel.CATALOG[name].params / table_1 - 1) < 0.015, name
    assert rel.CATALOG[B16].params == 85_798_656


def test_each_file_name_belongs_to_one_checkpoint_and_the_bare_ViT_B_16_npz_to_the_21k_one():
    owners: dict[str, str] = {}
    for name, record in rel.CATALOG.items():
        for file_name in rel.file_names(record):
            assert owners.setdefault(file_name, name) == name, file_name
    assert owners["ViT-B_16.npz"] == B16
    assert owners["imagenet21k+imagenet2012/ViT-B_16.npz"] == "vit_base_patch16_384.orig_in21k_ft_in1k"
    assert owners["ViT-B_16-224.npz"] == "vit_base_patch16_224.orig_in21k_ft_in1k"
    assert owners[f"{B16}.safetensors"] == owners[f"{B16}/model.safetensors"] == B16


def test_an_unknown_name_is_a_one_line_error_naming_the_valid_ones():
    with pytest.raises(UserError) as exc:
        rel.load_released("vit_base_patch16_224")
    assert B16 in one_line(exc) and "resnetv2_152x2_bit.goog_in21k" in str(exc.value)


# --- finding the file ---------------------------------------------------------------------------


def test_the_weights_argument_comes_before_the_environment(tmp_path, monkeypatch):
    record = rel.released(B32)
    env, arg = tmp_path / "env", tmp_path / "arg"
    for folder in (env, arg):
        (folder / "imagenet21k").mkdir(parents=True)
        (folder / "imagenet21k" / "ViT-B_32.npz").touch()
    assert rel.locate(record) is None
    monkeypatch.setenv(rel.WEIGHTS_ENV, str(env))
    assert rel.locate(record) == env / "imagenet21k" / "ViT-B_32.npz"
    assert rel.locate(record, arg) == arg / "imagenet21k" / "ViT-B_32.npz"
    (arg / f"{B32}.safetensors").touch()  # timm's name is preferred to the authors'
    assert rel.locate(record, arg) == arg / f"{B32}.safetensors"


def test_files_are_found_in_timms_caches_without_downloading(tmp_path):
    import huggingface_hub.constants

    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = Path(huggingface_hub.constants.HF_HUB_CACHE) / f"models--timm--{B32}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = write(small_model(), repo / "snapshots" / revision / "model.safetensors", "safetensors")
    assert rel.locate(rel.released(B32)) == snapshot
    model, loaded = rel.load_released(B32, **SMALL)
    assert loaded.file == snapshot and not equal_weights(model, small_model())

    # A file timm downloaded from its URL before the hub, in torch hub's checkpoints.
    ft = rel.released("vit_base_patch16_224.orig_in21k_ft_in1k")
    legacy = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints" / "jx_vit_base_p16_224-80ecf9dd.pth"
    legacy.parent.mkdir(parents=True)
    legacy.touch()
    assert rel.locate(ft) == legacy


@pytest.mark.parametrize("env", [{"TORCH_HOME": "th"}, {"XDG_CACHE_HOME": "xdg"}, {}])
def test_torch_hubs_folder_is_found_as_torch_finds_it_without_importing_torch(monkeypatch, tmp_path, env):
    monkeypatch.delenv("TORCH_HOME")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    for key, value in env.items():
        monkeypatch.setenv(key, str(tmp_path / value))
    with_torch = rel.torch_hub_dir()
    monkeypatch.delitem(sys.modules, "torch")  # as in a process that has not imported torch
    assert rel.torch_hub_dir() == with_torch == Path(torch.hub.get_dir())


def test_a_missing_file_is_one_line_naming_the_files_the_folders_and_how_to_obtain_it(tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    with pytest.raises(UserError) as exc:
        rel.load_released(B16, weights)
    message = one_line(exc)
    for part in (
        f"{B16}.safetensors",
        "imagenet21k/ViT-B_16.npz",
        "ViT-B_16.npz",
        str(weights),
        str(tmp_path / "hf-cache"),
        f"timm/{B16}",
        "--download",
        "gs://vit_models/imagenet21k/ViT-B_16.npz",
        "https://github.com/google-research/vision_transformer",
    ):
        assert part in message, part
    with pytest.raises(UserError, match="neither --weights nor VITBENCH_WEIGHTS"):
        rel.load_released("resnetv2_50x1_bit.goog_in21k")
    # Nothing was written: the folder is as it was, the caches were not even created.
    assert list(weights.iterdir()) == []
    assert not (tmp_path / "hf-cache").exists() and not (tmp_path / "torch-home").exists()


def test_only_download_true_fetches_and_then_by_the_hub_download_timm_does(tmp_path, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_hub_download(repo_id, filename, **kwargs):
        calls.append((repo_id, filename))
        return str(write(small_model(seed=3), tmp_path / "fetched" / filename, "safetensors"))

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hub_download)
    with pytest.raises(UserError, match="no weights"):
        rel.load_released(B32, **SMALL)
    assert calls == []
    model, loaded = rel.load_released(B32, download=True, **SMALL)
    assert calls == [(f"timm/{B32}", "model.safetensors")]
    assert loaded.file == tmp_path / "fetched" / "model.safetensors"
    assert not equal_weights(model, small_model(seed=3))
    # A file already there is used, download=True or not.
    write(small_model(), tmp_path / "weights" / f"{B32}.safetensors", "safetensors")
    assert (
        rel.load_released(B32, tmp_path / "weights", download=True, **SMALL)[1].file.parent.name == "weights"
    )
    assert len(calls) == 1


# --- verifying the file -------------------------------------------------------------------------


def test_sha256_is_the_files_and_follows_a_rewritten_file(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"a" * 3_000_000)
    assert rel.sha256(path) == hashlib.sha256(b"a" * 3_000_000).hexdigest()
    path.write_bytes(b"b" * 10)
    os.utime(path, ns=(1, 1))
    assert rel.sha256(path) == hashlib.sha256(b"b" * 10).hexdigest()


def test_a_files_sha256_is_hashed_once_across_processes_until_the_file_is_written(tmp_path, monkeypatch):
    """`plan`, `status` and `run` each hash a released preset's gigabytes: the suite's cache folder
    keeps the digest under the file's identity, change time included, which a write moves on."""
    path = tmp_path / "w.bin"
    path.write_bytes(b"a" * 1000)
    digest = rel.sha256(path)
    from benchmark import storage

    monkeypatch.setattr(storage, "_HASHES", {})  # as a new process
    monkeypatch.setattr(storage.hashlib, "sha256", lambda: pytest.fail("hashed again"))
    assert rel.sha256(path) == digest
    stat = path.stat()
    path.write_bytes(b"b" * 1000)  # the same size, and the same modification time set back
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    monkeypatch.undo()
    assert rel.sha256(path) == hashlib.sha256(b"b" * 1000).hexdigest() != digest


FILES = {"safetensors": f"{B32}.safetensors", "pth": f"{B32}.pth", "npz": "imagenet21k/ViT-B_32.npz"}


@pytest.mark.parametrize("fmt", list(FILES))
def test_a_truncated_file_is_refused_in_one_line(tmp_path, fmt):
    path = write(small_model(), tmp_path / FILES[fmt], fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError) as exc:
        rel.load_released(B32, tmp_path, **SMALL)
    assert str(path) in one_line(exc) and "truncated, damaged" in str(exc.value)


def test_a_damaged_npz_is_refused_by_its_checksums(tmp_path):
    path = write(small_model(), tmp_path / FILES["npz"], "npz")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte inside a weight: the shapes still read
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"truncated, damaged.*CRC") as exc:  # before timm reads it
        rel.load_released(B32, tmp_path, **SMALL)
    one_line(exc)


@pytest.mark.parametrize("fmt", ["safetensors", "npz"])
def test_a_B32_file_offered_as_B16_is_refused_before_loading(tmp_path, fmt):
    name = {"safetensors": f"{B16}.safetensors", "npz": "ViT-B_16.npz"}[fmt]
    write(small_model(B32), tmp_path / name, fmt)
    with pytest.raises(UserError) as exc:
        rel.load_released(B16, tmp_path, **SMALL)
    message = one_line(exc)
    kernel = {"safetensors": "patch_embed.proj.weight", "npz": "embedding/kernel"}[fmt]
    assert f"is not {B16} (ViT-B/16" in message and kernel in message and "2 of another shape" in message


def test_a_file_of_another_resolution_is_refused_where_timms_reader_alone_would_resample_it(tmp_path):
    """Why the check exists: timm's loaders resample a position table (or a patch embedding) that
    does not fit, so the 384-px fine-tuned file would load as the 224-px one without a word."""
    source = small_model("vit_base_patch16_384.orig_in21k_ft_in1k")
    path = write(source, tmp_path / "ViT-B_16-224.npz", "npz")
    name = "vit_base_patch16_224.orig_in21k_ft_in1k"
    overlay = {"file": str(path), "custom_load": True}
    alone = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **SMALL)
    assert torch.equal(alone.cls_token, source.cls_token) and alone.pos_embed.shape[1] == 197
    with pytest.raises(
        UserError, match=r"1 of another shape \(Transformer/posembed_input/pos_embedding is \(1, 577, 768\)"
    ):
        rel.load_released(name, tmp_path, **SMALL)


def test_missing_and_unexpected_tensors_are_refused(tmp_path):
    write(small_model(depth=2), tmp_path / FILES["safetensors"], "safetensors")
    with pytest.raises(UserError, match=r"12 unexpected \(blocks\.1\.") as exc:
        rel.load_released(B32, tmp_path, **SMALL)
    one_line(exc)
    with pytest.raises(UserError, match=r"12 missing \(blocks\.2\."):
        rel.load_released(B32, tmp_path, depth=3)


def test_the_authors_extra_entries_and_old_prefix_are_accepted(tmp_path):
    """Their ImageNet-21k files keep the (zero) 21,843-class head and the tanh pre-logits layer,
    which timm's reader skips; old checkpoints nest everything under opt/target/; a (1, 1, 1, C)
    scale is read as (C,)."""
    model = small_model()
    arrays = {k: v.numpy() for k, v in rel.original_layout(model).items()}
    arrays |= {
        "head/kernel": np.zeros((768, 21843), np.float32),
        "head/bias": np.zeros(21843, np.float32),
        "pre_logits/kernel": np.ones((768, 768), np.float32),
        "pre_logits/bias": np.ones(768, np.float32),
    }
    arrays["Transformer/encoder_norm/scale"] = arrays["Transformer/encoder_norm/scale"].reshape(1, 1, 1, 768)
    (tmp_path / "imagenet21k").mkdir()
    np.savez(tmp_path / FILES["npz"], **{f"opt/target/{k}": v for k, v in arrays.items()})
    loaded, info = rel.load_released(B32, tmp_path, **SMALL)
    assert info.format == "npz" and not equal_weights(loaded, model)


# --- loading ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, file_name",
    [
        ("safetensors", f"{B32}.safetensors"),
        ("pth", f"{B32}.pth"),
        ("pth", f"{B32}/pytorch_model.bin"),
        ("npz", "imagenet21k_ViT-B_32.npz"),
    ],
)
def test_each_format_round_trips_through_timms_loaders(tmp_path, fmt, file_name):
    source = small_model(seed=1)
    path = write(source, tmp_path / file_name, fmt)
    model, loaded = rel.load_released(B32, tmp_path, **SMALL)
    assert equal_weights(model, small_model(seed=2))  # a fresh model differs: the file made them equal
    assert not equal_weights(model, source)
    assert not model.training
    assert loaded == rel.Loaded(
        name=B32,
        file=path,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        format=fmt,
        params=9_488_640,
        img_size=224,
        num_classes=0,
    )


def test_the_checkpoints_head_is_kept_replaced_by_a_zero_one_or_dropped(tmp_path):
    name = "vit_base_patch16_224.orig_in21k_ft_in1k"
    source = small_model(name, seed=1)
    write(source, tmp_path / f"{name}.safetensors", "safetensors")
    x = torch.randn(1, 3, 224, 224)
    kept, _ = rel.load_released(name, tmp_path, **SMALL)
    assert torch.equal(kept.head.weight, source.head.weight)
    zero, loaded = rel.load_released(name, tmp_path, num_classes=5, **SMALL)
    assert loaded.num_classes == 5 and zero.head.weight.shape == (5, 768) and not zero.head.weight.any()
    features, loaded = rel.load_released(name, tmp_path, num_classes=0, **SMALL)
    assert loaded.params == sum(p.numel() for p in source.parameters()) - 768 * 1000 - 1000
    with torch.no_grad():
        assert features(x).shape == (1, 768)
    with pytest.raises(UserError, match="interpolation='nearest' is not valid"):
        rel.load_released(name, tmp_path, img_size=384, interpolation="nearest", **SMALL)


def test_the_hybrids_npz_layout_round_trips(tmp_path):
    """The R50+ViT-B/16 file's ResNet (conv_root, gn_root, blockN/unitM) as timm's reader reads it."""
    name = "vit_base_r50_s16_224.orig_in21k"
    source = small_model(name, seed=1)
    layout = rel.original_layout(source)
    assert layout["block3/unit9/conv2/kernel"].shape == (3, 3, 256, 256)  # (3, 4, 9): layout (ii)
    write(source, tmp_path / "R50+ViT-B_16.npz", "npz")
    model, loaded = rel.load_released(name, tmp_path, **SMALL)
    assert loaded.format == "npz" and not equal_weights(model, source)


def test_the_bit_npz_layout_round_trips_at_full_size(tmp_path):
    """BiT-M-R50x1 as the BiT files hold it (resnet/..., 21,843-class head): 68M parameters."""
    name = "resnetv2_50x1_bit.goog_in21k"
    torch.manual_seed(1)
    source = timm.create_model(name)
    write(source, tmp_path / "BiT-M-R50x1.npz", "npz")
    model, loaded = rel.load_released(name, tmp_path)
    assert not equal_weights(model, source)
    assert loaded.params == rel.CATALOG[name].params == 68_256_659


def test_the_layout_refuses_a_weight_it_has_no_name_for():
    with pytest.raises(ValueError, match=r"fc_norm\.weight"):
        rel.original_layout(small_model(global_pool="avg"))  # GAP's LayerNorm: no released file has one


def test_an_image_size_the_patch_does_not_divide_is_refused():
    with pytest.raises(UserError, match="not a multiple of ViT-B/32's patch size 32"):
        rel.load_released(B32, img_size=300)


@pytest.fixture(scope="module")
def vit_b16_file(tmp_path_factory):
    """A real-shape ViT-B/16 (85.8M parameters) in timm's safetensors: the one full-size ViT."""
    folder = tmp_path_factory.mktemp("b16")
    torch.manual_seed(0)
    write(timm.create_model(B16), folder / f"{B16}.safetensors", "safetensors")
    return folder


def test_vit_b16_loads_at_full_size_and_runs(vit_b16_file):
    model, loaded = rel.load_released(B16, vit_b16_file)
    assert loaded.params == rel.CATALOG[B16].params
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 768)  # no head: the class token's feature


def test_vit_b16_is_set_to_the_fine_tuning_protocol_at_384_px(vit_b16_file):
    """§3.2: at 384 px the 14×14 position grid is resized as the original code did (bilinear,
    corners kept, the class token's row untouched) and a zero-initialised head replaces none."""
    native, _ = rel.load_released(B16, vit_b16_file)
    model, loaded = rel.load_released(B16, vit_b16_file, img_size=384, num_classes=10)
    assert (loaded.img_size, loaded.num_classes, loaded.params) == (384, 10, 85_798_656 + 380 * 768 + 7_690)
    old, new = native.pos_embed[0], model.pos_embed[0]
    assert new.shape == (1 + 24 * 24, 768)
    assert torch.equal(new[0], old[0])
    old_grid, new_grid = old[1:].reshape(14, 14, -1), new[1:].reshape(24, 24, -1)
    for (r, c), (R, C) in [((0, 0), (0, 0)), ((0, 13), (0, 23)), ((13, 0), (23, 0)), ((13, 13), (23, 23))]:
        torch.testing.assert_close(new_grid[R, C], old_grid[r, c], rtol=0, atol=1e-6)
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 384, 384))
    assert logits.shape == (1, 10) and not logits.any()


# --- the released presets, end to end ------------------------------------------------------------

B16_FT = "vit_base_patch16_224.orig_in21k_ft_in1k"
HYBRID = "vit_base_r50_s16_224.orig_in21k"
# One real-shape random checkpoint per format and naming: timm's safetensors, the authors' .npz
# (its flattened bucket path) and the legacy torch file; the hybrid comes from the hub (--download).
CHECKPOINT_FILES = {
    B16: (f"{B16}.safetensors", "safetensors"),
    B32: ("imagenet21k_ViT-B_32.npz", "npz"),
    B16_FT: ("jx_vit_base_p16_224-80ecf9dd.pth", "pth"),
}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A weights folder holding CHECKPOINT_FILES, each a randomly initialised model of the checkpoint's real
    architecture (timm's ViT-B/16, B/32, the fine-tuned B/16 with its 1,000-class head, R50+ViT-B/16)."""
    folder = tmp_path_factory.mktemp("weights")
    for seed, (name, (file, fmt)) in enumerate(CHECKPOINT_FILES.items()):
        torch.manual_seed(seed)
        write(timm.create_model(name), folder / file, fmt)
    return folder


@pytest.fixture
def pets(tmp_path, monkeypatch):
    """A data root with Pets in torchvision's layout: 3 breeds, 30 training and 4 test images each."""
    from helpers import write_pets

    from benchmark import data

    monkeypatch.setenv("VITBENCH_DATA", str(tmp_path / "data"))
    data.load.cache_clear()
    write_pets(tmp_path / "data", trainval=30, test=4)
    yield tmp_path / "data"
    data.load.cache_clear()


def vitbench(tmp_path, *argv: str) -> int:
    from benchmark import cli

    return cli.main([*argv, "--results", str(tmp_path / "results"), "--reports", str(tmp_path / "reports")])


# At 64 px: a 4x4 grid for the /16 models, 2x2 for B/32, so a test measures in seconds.
SMALL_RUN = ("--set", "data.image_size=64")


@pytest.mark.slow
def test_inspect_runs_from_released_checkpoints_in_each_format_end_to_end(
    weights, pets, tmp_path, monkeypatch, capsys
):
    import huggingface_hub

    import studies.inspect as study

    monkeypatch.setattr(study, "RELEASED_VITS", (B16, B32, B16_FT))  # three ViT-B-sized replicates
    argv = ("inspect", "--preset", "released", *SMALL_RUN)
    run = ("run", *argv, "--weights", str(weights), "--executor", "debug")
    fetched = []

    def hub_download(repo_id, filename, **kwargs):
        """The hub download timm does, into the hub cache's layout (where `locate` finds it)."""
        fetched.append(repo_id)
        repo = Path(huggingface_hub.constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text("0" * 40)
        torch.manual_seed(3)
        return str(
            write(timm.create_model(HYBRID), repo / "snapshots" / ("0" * 40) / filename, "safetensors")
        )

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub_download)
    assert vitbench(tmp_path, *run) == 2  # the hybrid is nowhere: nothing downloads without --download
    assert f"no weights for {HYBRID}" in capsys.readouterr().err and not fetched
    assert not (tmp_path / "results").exists()
    assert vitbench(tmp_path, *run, "--download") == 0
    out = capsys.readouterr().out
    assert fetched == [f"timm/{HYBRID}"] and "4 to run" in out and "inspect/released@" in out

    results = sorted((tmp_path / "results" / "inspect").glob("released@*/*/result.json"))
    assert len(results) == 4
    for path in results:
        result = json.loads(path.read_text())
        record = result["released"]
        assert (
            record["sha256"] == rel.sha256(Path(record["file"]))
            and record["format"] == CHECKPOINT_FILES.get(record["name"], ("", "safetensors"))[1]
        )
        assert (
            json.loads((path.parent / "config.json").read_text())["model"]["checkpoint_sha256"]
            == record["sha256"]
        )
        assert result["train_flops"] == 0 and (path.parent / "inspect.npz").is_file()
        assert not (path.parent / "model.pt").exists()  # the weights are the checkpoint's file, pinned
    report = next((tmp_path / "reports" / "inspect").glob("released@*/report.md")).read_text()
    assert "over the released models" in report  # the replicates are the released ViTs
    assert "hybrid has 1" in report  # one hybrid is released: its claim cannot be judged
    for figure in ("fig7_filters", "fig7_position_similarity", "fig7_attention_distance", "fig6_rollout"):
        assert next((tmp_path / "reports" / "inspect").glob(f"released@*/{figure}.png")).is_file()

    # Without the weights, the runs are still found by the file they were pinned to.
    assert vitbench(tmp_path, "status", *argv) == 0
    assert "4 done" in capsys.readouterr().out
    # Another file under the same name is another run: it is planned again.
    torch.manual_seed(99)
    write(timm.create_model(B16), weights / CHECKPOINT_FILES[B16][0], "safetensors")
    assert vitbench(tmp_path, "plan", *argv, "--weights", str(weights)) == 0
    assert "3 done, 1 to run" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("missing", f"no weights for {B16} (ViT-B/16, ImageNet-21k): looked for {B16}.safetensors"),
        ("another architecture", f"is not {B16} (ViT-B/16"),
        ("truncated", "cannot be read as a safetensors checkpoint: truncated, damaged or not that format"),
    ],
)
def test_a_released_run_without_its_file_whole_and_right_is_refused_before_anything_is_written(
    problem, message, tmp_path, capsys
):
    folder = tmp_path / "weights"
    if problem != "missing":
        path = write(small_model(B32), folder / f"{B16}.safetensors", "safetensors")
        if problem == "truncated":
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    folder.mkdir(exist_ok=True)
    argv = ("run", "inspect", "--preset", "released", "--weights", str(folder), "--executor", "debug")
    assert vitbench(tmp_path, *argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "results").exists()


def released_in_seconds(study: str, probes: str) -> tuple[str, ...]:
    """`study --preset released` at 32 px, probed on `probes` and fine-tuned on Pets for 1 step of 8 at
    one lr (the presets' protocol is Table 4's, at 384 px, on CIFAR-100, Pets and Flowers)."""
    settings = {
        "data.image_size": 32, "eval.fewshot_datasets": probes, "eval.shots": "1,5",
        "eval.finetune.datasets": "pets", "eval.finetune.steps": 1, "eval.finetune.steps_by_dataset": "",
        "eval.finetune.batch": 8, "eval.finetune.micro_batch": 0, "eval.finetune.warmup": 0,
        "eval.finetune.image_size": 32, "eval.finetune.lrs": 0.01,
    }  # fmt: skip
    return (study, "--preset", "released", *(a for k, v in settings.items() for a in ("--set", f"{k}={v}")))


@pytest.mark.slow
def test_few_shot_runs_from_released_checkpoints_end_to_end(weights, pets, tmp_path, monkeypatch, capsys):
    """Probed three ways and fine-tuned, straight from the checkpoints: 3 ViT-B-sized models at 32 px,
    on Pets and a small folder dataset, fine-tuned on Pets for 1 step (the preset's protocol is
    Table 4's, at 384 px, on CIFAR-100, Pets and Flowers); the control's two checkpoints with 3
    fine-tuning seeds each."""
    from helpers import halves

    import studies.few_shot as study
    from benchmark.presets import checkpoint

    monkeypatch.setitem(study.MODELS, "released", [checkpoint(name) for name in (B16, B32, B16_FT)])
    monkeypatch.setattr(study, "RELEASED_LADDER", (B16, B32))  # the control's better and worse checkpoint
    folder = tmp_path / "folder"
    for c, colour in enumerate(("a", "b", "c")):
        for i in range(8):
            halves(folder / colour / f"{i}.png", w=20 + 4 * c + i, h=16)
    argv = released_in_seconds("few_shot", f"pets,folder:{folder}")
    assert vitbench(tmp_path, "run", *argv, "--weights", str(weights), "--executor", "debug") == 0
    results = [
        json.loads(p.read_text())
        for p in (tmp_path / "results" / "few_shot").glob("released@*/*/result.json")
    ]
    # 3 ranked models probed every way; the control's 2 checkpoints x 3 seeds, probed and fine-tuned.
    assert len(results) == 9 and all(r["released"]["name"] in CHECKPOINT_FILES for r in results)
    ranked = [r for r in results if "linear/pets/top1" in r["metrics"]]
    assert len(ranked) == 3 and {r["released"]["name"] for r in ranked} == {B16, B32, B16_FT}
    for r in results:
        assert {"fewshot/pets/5shot", "finetune/pets/top1"} <= set(r["metrics"])
        assert "upstream/test_top1" not in r["metrics"]  # no upstream head or images here
    report = next((tmp_path / "reports" / "few_shot").glob("released@*/report.md")).read_text()
    assert "Control: fine-tuning and the probe both put ViT-B/16 above ViT-B/32" in report
    assert "ranks models as fine-tuning does" in report and "over 3 models" in report


@pytest.mark.slow
def test_data_scaling_runs_from_released_checkpoints_end_to_end(weights, pets, tmp_path, monkeypatch, capsys):
    """Fig. 3's ImageNet-21k column: ViT against BiT, each checkpoint fine-tuned with 3 seeds, at 32 px on
    Pets for 1 step (the preset's protocol is Table 4's, at 384 px, on CIFAR-100, Pets and Flowers).
    ViT-B/16 stands in for L/16 and BiT-M R50x1 for R152x2 (the real shapes, smaller)."""
    import studies.data_scaling as study

    bit = "resnetv2_50x1_bit.goog_in21k"
    folder = tmp_path / "weights"
    folder.mkdir()
    for file, _ in CHECKPOINT_FILES.values():
        (folder / file).symlink_to(weights / file)
    torch.manual_seed(5)
    write(timm.create_model(bit), folder / "BiT-M-R50x1.npz", "npz")
    monkeypatch.setattr(study, "RELEASED", {"ViT": B16, "BiT": bit, "control": B32})
    argv = released_in_seconds("data_scaling", "pets")
    assert vitbench(tmp_path, "run", *argv, "--weights", str(folder), "--executor", "debug") == 0
    out = capsys.readouterr().out
    assert (
        "9 to run" in out and "ViT-L/16 and BiT-M R152x2 are on par" in out
    )  # the verdicts, in the terminal
    results = [
        json.loads(p.read_text())
        for p in (tmp_path / "results" / "data_scaling").glob("released@*/*/result.json")
    ]
    assert len(results) == 9 and {r["released"]["name"] for r in results} == {B16, B32, bit}
    for r in results:
        assert "upstream/test_top1" not in r["metrics"] and r["train_flops"] == 0
    report = next((tmp_path / "reports" / "data_scaling").glob("released@*/report.md")).read_text()
    for text in (
        "ViT-B/16 − BiT-M R50x1",  # the comparison names the models that ran
        "ViT-B/16 − ViT-B/32",
        "Table 6's JFT-300M lead of the same pair",
        "the paper on Oxford-IIIT-Pets",  # the prediction is the paper's on the datasets fine-tuned on
        "Table 5 (fine-tuned, mean of Oxford-IIIT-Pets)",  # and so is the table's column of it
        "Welch t over fine-tuning seeds",
        "no fit gate: nothing trained here",
    ):
        assert text in report, text
    assert "## Upstream fit" not in report  # the fit gate reads curves trained here: there are none
    assert "never the checkpoint's weights" in report  # what the seeds draw
    table5_pets = paper_values(
        source="table5", pretrain="ImageNet-21k", model="ViT-B/16", eval="Oxford-IIIT-Pets"
    )
    assert f"| {table5_pets['value'].item():.2f} " in report  # ViT-B/16's Table 5 value on Pets alone
    assert next(
        (tmp_path / "reports" / "data_scaling").glob("released@*/fig3_imagenet21k_column.png")
    ).is_file()
