"""A new on-disk format is one `formats.Format` record and its lister: this test registers one that
no engine file knows of (a class-major tree of PNGs, `<class>/train/*.png` and `<class>/test/*.png`)
and reads it through the public functions, as any built-in format."""

import contextlib
import dataclasses

import pytest
import torch
from PIL import Image

from benchmark import data
from benchmark.data import cache, formats
from benchmark.errors import UserError

# One flat colour per class: its pixels are exact after any resizing.
COLOURS = {"circle": (200, 30, 30), "square": (30, 200, 30), "star": (30, 30, 200)}


def list_sketches(req: formats.Request) -> formats.Listing:
    """The variant layout's lister: classes are the sorted top folders, each with train/ and test/."""
    classes = tuple(sorted(p.name for p in req.location.glob("*") if p.is_dir()))
    if not classes:
        raise formats.problem(req, req.location, "no class folders")
    splits = []
    for split in ("train", "test"):
        rel, labels = [], []
        for label, name in enumerate(classes):
            images = sorted(p.name for p in (req.location / name / split).glob("*.png"))
            rel += [f"{name}/{split}/{image}" for image in images]
            labels += [label] * len(images)
        splits.append(formats.Files.of(req.location, rel, labels))
    return formats.Listing(*splits, classes)


SKETCHES = formats.Format(
    name="sketches",
    folder="sketch-pad",
    dev_fraction=0.25,
    source="sketches",
    obtain="draw them in <data root>/sketch-pad/<class>/{train,test}/",
    lister=list_sketches,
)


@contextlib.contextmanager
def registered(fmt):
    """`fmt` in the registry for the block only, with the per-process caches cleared around it."""
    data.load.cache_clear()
    formats.listing.cache_clear()
    with pytest.MonkeyPatch.context() as m:
        m.setitem(formats.FORMATS, fmt.name, fmt)
        yield
    data.load.cache_clear()
    formats.listing.cache_clear()


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv(formats.ROOT_ENV, str(tmp_path / "data"))
    with registered(SKETCHES):
        yield tmp_path / "data"


def draw(root, train=4, test=2, size=(24, 20)):
    for name, colour in COLOURS.items():
        for split, n in (("train", train), ("test", test)):
            folder = root / "sketch-pad" / name / split
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.new("RGB", size, colour).save(folder / f"{i}.png")


def test_a_registered_format_loads_and_describes_like_a_built_in_one(root):
    draw(root)
    ds = data.load("sketches@16")
    assert ds.classes == ("circle", "square", "star") and ds.source == "sketches"
    assert (len(ds.train_y), len(ds.val_y), len(ds.test_y)) == (9, 3, 6)  # 25% of 12 is the dev split
    assert ds.train_x.shape[1:] == (3, 16, 16) and ds.test_y.tolist() == [0, 0, 1, 1, 2, 2]
    for x, y in zip(ds.test_x, ds.test_y, strict=True):
        assert torch.equal(
            x, torch.tensor(list(COLOURS.values())[y], dtype=torch.uint8)[:, None, None].expand(3, 16, 16)
        )
    assert ds.provenance == (
        f"sketches read from {root / 'sketch-pad'} (3 classes, 3 channels, 16x16 (shorter side resized, "
        "centre crop, PIL bilinear)); dev split: 25% of the 12 official training images held out (seed 0), "
        "test: the official test split (6)"
    )
    assert data.describe("sketches@16") == f"{ds.provenance}; fixed splits: 9 train / 3 validation / 6 test"
    assert data.spec("sketches@16") == data.DatasetSpec(16, 3, 3, 9, ds.provenance)
    assert data.class_counts("sketches@16").sum() == 9 and data.available("sketches")
    assert not data.is_streaming("sketches@16") and data.streaming("sketches@16").split_sizes == {
        "train": 9, "val": 3, "test": 6,
    }  # fmt: skip
    assert data.role("sketches", "sketches@32").startswith("read-back")
    assert data.role("sketches", "shapes").startswith("transfer: images never seen")
    assert list(cache.cache_dir().glob("sketches-16px-*.bin"))  # decoded once, cached


def test_a_registered_format_is_named_in_errors_and_its_missing_data_says_how_to_obtain_it(root):
    with pytest.raises(
        UserError, match=r"imagenet21k, folder:<path> or sketches, each with an optional @<pixels>"
    ):
        data.check_name("sketches@4")
    with pytest.raises(UserError, match=r"no class folders: .*sketch-pad; draw them in") as err:
        data.load("sketches")
    assert "\n" not in str(err.value)
    with pytest.raises(
        UserError, match=r"--download fetches cifar10, cifar100, pets, flowers102 only; for 'sketches': draw"
    ):
        formats.download("sketches", root)


def test_a_name_is_parsed_once_per_call(root, monkeypatch):
    """Each public function resolves its name once and hands the request on (it was parsed up to
    three times a call)."""
    draw(root)
    data.load("sketches@16")
    parse, calls = formats.parse, []
    monkeypatch.setattr(formats, "parse", lambda name: calls.append(name) or parse(name))
    for ask in (
        data.check_name,
        data.spec,
        data.available,
        data.class_counts,
        data.is_streaming,
        data.streaming,
        data.describe,
    ):
        calls.clear()
        ask("sketches@16")
        assert calls == ["sketches@16"], ask.__name__


def test_unregistering_a_format_forgets_its_names(tmp_path, monkeypatch):
    monkeypatch.setenv(formats.ROOT_ENV, str(tmp_path))
    with registered(SKETCHES):
        data.check_name("sketches@16")
    with pytest.raises(UserError, match="unknown dataset 'sketches@16'"):
        data.check_name("sketches@16")
    assert "sketches" not in formats.grammar()


def test_download_runs_the_formats_downloader(tmp_path, monkeypatch):
    """--download calls a format's own downloader (torchvision's for the built-in ones; nothing
    is fetched here)."""
    import torchvision.datasets

    calls = []
    monkeypatch.setattr(
        torchvision.datasets, "CIFAR10", lambda root, download: calls.append((root, download))
    )
    formats.download("cifar10", tmp_path)
    with registered(dataclasses.replace(SKETCHES, download=calls.append)):
        formats.download("sketches@16", tmp_path)
    assert calls == [(tmp_path, True), tmp_path]
