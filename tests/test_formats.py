"""The on-disk formats read through the real loaders from tiny fixtures written in each exact
layout: real pickles, real JPEG/PNG files, real .mat files. Nothing downloads."""

import pickle

import numpy as np
import pytest
import scipy.io
import torch
from helpers import BLUE, RED, halves, write_cifar, write_pets
from PIL import Image

from benchmark import data
from benchmark.data import formats
from benchmark.errors import UserError


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A fresh data root; `data.load` caches per name, so each test starts from an empty cache."""
    monkeypatch.setenv(formats.ROOT_ENV, str(tmp_path / "data"))
    data.load.cache_clear()
    yield tmp_path / "data"
    data.load.cache_clear()


def noise_png(path, w, h, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(a).save(path)
    return a


def write_tree(folder, classes, per_class, size=(10, 8)):
    for c in classes:
        for i in range(per_class):
            noise_png(folder / c / f"{c}_{i}.png", *size, seed=hash((c, i)) % 2**32)


def test_cifar10_reads_the_pickles_with_classes_splits_and_pixels(root):
    x, y, tx, ty = write_cifar(root, "cifar10", n_per_class=10)
    ds = data.load("cifar10")
    keep, dev = formats.hold_out(100, 0.02)
    assert ds.classes == tuple(f"c10-{c}" for c in range(10)) and ds.source == "tiny-images"
    assert torch.equal(ds.train_x, torch.from_numpy(x[keep])) and torch.equal(
        ds.train_y, torch.from_numpy(y[keep])
    )
    assert torch.equal(ds.val_x, torch.from_numpy(x[dev])) and torch.equal(ds.test_y, torch.from_numpy(ty))
    assert torch.equal(ds.test_x, torch.from_numpy(tx)) and str(root / "cifar-10-batches-py") in ds.provenance
    assert data.load("cifar10@48").train_x.shape == (98, 3, 48, 48)
    assert data.spec("cifar10") == data.DatasetSpec(32, 3, 10, 98, ds.provenance)


def test_cifar100_uses_fine_labels_and_is_other_classes_of_cifar10s_source(root):
    _, y, _, _ = write_cifar(root, "cifar100", n_per_class=1, n_test_per_class=1)
    write_cifar(root, "cifar10", n_per_class=1, n_test_per_class=1)
    ds = data.load("cifar100")
    assert ds.num_classes == 100 and ds.classes[7] == "c100-7"
    assert sorted(torch.cat([ds.train_y, ds.val_y]).tolist()) == sorted(y.tolist())
    assert data.role("cifar100", "cifar10").startswith("transfer: images and classes never seen")


@pytest.mark.parametrize(
    ("name", "n", "dev"),
    [("cifar10", 50_000, 1_000), ("cifar100", 50_000, 1_000), ("pets", 3_680, 368), ("flowers102", 2_040, 204),
     ("imagenet1k", 1_281_167, 12_812)],
)  # fmt: skip
def test_dev_fractions_at_the_real_sizes(name, n, dev):
    """App. B.1.1: 2% (CIFAR), 10% (Pets, Flowers), 1% (ImageNet) of the official training images."""
    kept, held = formats.hold_out(n, formats.FORMATS[name].dev_fraction)
    assert len(held) == dev and len(kept) == n - dev and not set(kept) & set(held)


def test_dev_split_size_matches_its_fraction_on_loaded_fixtures(root):
    write_cifar(root, "cifar10", n_per_class=50)  # 500 training images: 2% is 10
    write_tree(root / "imagenet" / "train", ("n01", "n02"), 100)  # 200: 1% is 2
    write_tree(root / "imagenet" / "val", ("n01", "n02"), 1)
    assert (len(data.load("cifar10").train_y), len(data.load("cifar10").val_y)) == (490, 10)
    sizes = data.streaming("imagenet1k@8").split_sizes
    assert sizes == {"train": 198, "val": 2, "test": 2} and data.spec("imagenet1k@8").train_examples == 198


def test_pets_layout_labels_names_and_pixels(root):
    write_pets(root, trainval=10)
    ds = data.load("pets@32")
    assert (
        ds.classes == ("Abyssinian", "American Bulldog", "Yorkshire Terrier")
        and ds.source == "oxford-iiit-pet"
    )
    assert (len(ds.train_y), len(ds.val_y), len(ds.test_y)) == (27, 3, 6)
    assert sorted(ds.test_y.tolist()) == [0, 0, 1, 1, 2, 2] and ds.train_x.shape[1:] == (3, 32, 32)
    # 48x40 -> centre 40x40 -> 32x32: columns 0-15 red, 16-31 blue; away from the edge, JPEG's error is small.
    img = ds.test_x[0].int()
    assert (img[:, :, 2:13] - torch.tensor(RED)[:, None, None]).abs().max() <= 12
    assert (img[:, :, 19:30] - torch.tensor(BLUE)[:, None, None]).abs().max() <= 12


def test_flowers_layout_reads_the_mat_files(root):
    folder = root / "flowers-102"
    labels = np.array([1, 2, 3, 1, 2, 3, 1, 2, 3, 3])  # 1-based, image_00001 .. image_00010
    for i in range(1, 11):
        halves(folder / "jpg" / f"image_{i:05d}.jpg")
    scipy.io.savemat(folder / "imagelabels.mat", {"labels": labels[None, :]})
    scipy.io.savemat(
        folder / "setid.mat", {"trnid": [[1, 2, 3]], "valid": [[4, 5, 6]], "tstid": [[7, 8, 9, 10]]}
    )
    ds = data.load("flowers102@16")
    assert ds.classes == ("pink primrose", "hard-leaved pocket orchid", "canterbury bells")
    # train = trnid + valid (6 images), 10% of it the dev split; test = tstid.
    assert (len(ds.train_y), len(ds.val_y)) == (5, 1) and ds.test_y.tolist() == [0, 1, 2, 2]
    assert sorted(torch.cat([ds.train_y, ds.val_y]).tolist()) == [0, 0, 1, 1, 2, 2]


def test_folder_is_lossless_for_png_and_crops_the_centre(root, tmp_path):
    """folder:<path> with train/ and test/; a 40x32 PNG at @32 is its central 32 columns, exactly."""
    a = noise_png(tmp_path / "mine" / "train" / "cat" / "a.png", 40, 32, seed=1)
    noise_png(tmp_path / "mine" / "train" / "dog" / "b.png", 32, 32, seed=2)
    noise_png(tmp_path / "mine" / "test" / "dog" / "c.png", 32, 32, seed=3)
    ds = data.load(f"folder:{tmp_path / 'mine'}@32")
    assert ds.classes == ("cat", "dog") and ds.test_y.tolist() == [1]
    pool = torch.cat([ds.train_x, ds.val_x])[torch.cat([ds.train_y, ds.val_y]).argsort()]
    assert torch.equal(pool[0], torch.from_numpy(a[:, 4:36].transpose(2, 0, 1).copy()))
    assert ds.source == f"folder:{tmp_path / 'mine'}"


def test_folder_single_tree_holds_out_a_test_split(tmp_path, root):
    write_tree(tmp_path / "tree", ("a", "b"), 10)
    spec = data.spec(f"folder:{tmp_path / 'tree'}@8")
    ds = data.load(f"folder:{tmp_path / 'tree'}@8")
    assert len(ds.test_y) == 4 and len(ds.val_y) == 2 and spec.train_examples == len(ds.train_y) == 14


def test_decoded_images_are_cached_and_refreshed_when_a_file_changes(root, tmp_path, monkeypatch):
    monkeypatch.setenv("VITBENCH_DATA_CACHE", str(tmp_path / "cache"))
    pets = write_pets(root, trainval=2, test=1)
    first = data.load("pets@16")
    data.load.cache_clear()
    formats.listing.cache_clear()

    def no_decoding(*_):
        raise AssertionError("decoded although the cache holds these files")

    with monkeypatch.context() as m:
        m.setattr(formats, "decode", no_decoding)
        assert torch.equal(data.load("pets@16").train_x, first.train_x)
    data.load.cache_clear()
    halves(pets / "images" / "Abyssinian_100.jpg", w=60)  # another size: a new fingerprint
    assert data.load("pets@16").test_x.shape == first.test_x.shape
    assert len(list((tmp_path / "cache").glob("pets-16px-*.bin"))) == 2


def test_imagenet_streams_with_the_right_tensors_and_is_refused_by_load(root):
    write_tree(root / "imagenet" / "train", ("n01440764", "n01443537"), 3, size=(12, 9))
    write_tree(root / "imagenet" / "val", ("n01440764", "n01443537"), 1, size=(12, 9))
    assert data.is_streaming("imagenet1k@8") and not data.is_streaming("cifar10")
    ds = data.streaming("imagenet1k@8")
    assert ds.classes == ("n01440764", "n01443537") and ds.num_classes == 2 and ds.image_size == 8
    x, label = ds.test[1]
    want = formats.fit(Image.open(root / "imagenet" / "val" / "n01443537" / "n01443537_0.png"), 8)
    assert (
        x.dtype == torch.uint8
        and x.shape == (3, 8, 8)
        and label == 1
        and torch.equal(x, torch.from_numpy(want))
    )
    batch = next(iter(torch.utils.data.DataLoader(ds.train, batch_size=4)))
    assert batch[0].shape == (4, 3, 8, 8) and batch[1].dtype == torch.int64
    with pytest.raises(UserError, match=r"streams from disk.*streaming\('imagenet1k@8'\)"):
        data.load("imagenet1k@8")


def test_an_upstream_whose_images_are_not_here_is_compared_by_its_source_alone(root):
    """A released checkpoint's ImageNet-21k: ImageNet-1k is its own source (read-back, whatever
    the classes), Pets another; neither answer claims a class comparison it did not make."""
    write_pets(root)
    write_tree(root / "imagenet" / "train", ("n01440764",), 2, size=(8, 8))
    write_tree(root / "imagenet" / "val", ("n01440764",), 1, size=(8, 8))
    assert not data.available("imagenet21k")
    assert data.role("imagenet1k", "imagenet21k") == (
        "read-back: the pre-training source (its classes not compared: the pre-training images are not here)"
    )
    assert data.role("pets", "imagenet21k").startswith(
        "transfer: images never seen in pre-training (another source;"
    )


def test_imagenet21k_without_val_holds_out_test_and_shares_classes_with_imagenet1k(root):
    write_tree(root / "imagenet21k" / "train", ("n01440764", "n09999999"), 50, size=(8, 8))
    write_tree(root / "imagenet" / "train", ("n01440764",), 2, size=(8, 8))
    write_tree(root / "imagenet" / "val", ("n01440764",), 1, size=(8, 8))
    assert data.streaming("imagenet21k@8").split_sizes == {"train": 98, "val": 1, "test": 1}
    assert data.role("imagenet1k", "imagenet21k").startswith("read-back")


def test_large_folder_streams(tmp_path, root, monkeypatch):
    write_tree(tmp_path / "tree", ("a", "b"), 2)
    monkeypatch.setattr(formats, "IN_MEMORY_BYTES", 4 * 3 * 8 * 8)  # four 8-px images, not one pixel more
    tree = f"folder:{tmp_path / 'tree'}"
    assert not data.is_streaming(f"{tree}@8") and data.is_streaming(f"{tree}@9")
    assert data.streaming(f"{tree}@9").split_sizes == {
        "train": 3,
        "val": 0,
        "test": 1,
    }  # 20% test, 10% dev of 3: 0


def test_missing_data_is_one_line_naming_dataset_path_and_how(root):
    for name, how in (("cifar10", "--download"), ("pets", "--download"), ("imagenet1k@64", "image-net.org")):
        with pytest.raises(UserError) as err:
            data.streaming(name) if name.startswith("imagenet") else data.load(name)
        assert "\n" not in str(err.value) and name in str(err.value) and how in str(err.value)
        assert str(root) in str(err.value)
    # Planning needs no data: ImageNet's published size at the asked pixels.
    assert (
        data.spec("imagenet1k@64").image_size == 64 and data.spec("imagenet1k@64").train_examples == 1_281_167
    )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[: len(b) // 2], "corrupt or truncated"),  # a download cut short
        (lambda b: pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}), "3072"),
        (lambda b: pickle.dumps({b"labels": [0]}), "'data'"),
        (lambda b: b"cos\nsystem\n(S'true'\ntR.", "unexpected os.system"),  # runs nothing
    ],
)
def test_corrupt_cifar_file_is_one_line_naming_it(root, damage, message):
    write_cifar(root, "cifar10", n_per_class=1)
    batch = root / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(damage(batch.read_bytes()))
    with pytest.raises(UserError, match=message) as err:
        data.load("cifar10")
    assert (
        "\n" not in str(err.value)
        and str(batch) in str(err.value)
        and "cifar-10-python.tar.gz" in str(err.value)
    )


def test_garbage_jpeg_is_one_line_naming_it(root):
    pets = write_pets(root, trainval=1, test=1)
    (pets / "images" / "american_bulldog_0.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(UserError, match=r"corrupt image") as err:
        data.load("pets@16")
    assert "\n" not in str(err.value) and "american_bulldog_0.jpg" in str(err.value)


def test_names(root):
    assert formats.parse("cifar10").size == 32 and formats.parse("pets").size == 224
    assert formats.parse("folder:/x@y/data@64").location.as_posix() == "/x@y/data"
    for bad in ("pets@4", "folder:", "cifar10@2048"):
        with pytest.raises(UserError, match="folder:<path>"):
            data.check_name(bad)
    with pytest.raises(UserError, match="folder:<path>"):
        data.check_name("imagenet")


def test_run_on_missing_data_exits_2_before_writing(root, tmp_path, capsys):
    from benchmark import cli

    argv = [
        "run",
        "pos_embed",
        "--preset",
        "smoke",
        "--set",
        "data.dataset=cifar10",
        "--results",
        str(tmp_path / "r"),
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dataset 'cifar10'" in err and "--download" in err
    assert not (tmp_path / "r").exists()


def test_a_run_pre_trains_on_a_streamed_imagenet_tree(root, tiny_cfg, tmp_path, monkeypatch):
    """The trainer's DataLoader path on a real on-disk layout: ImageNet always streams."""
    from benchmark import metrics, train

    write_tree(root / "imagenet" / "train", ("n01440764", "n01443537"), 40, size=(20, 16))
    write_tree(root / "imagenet" / "val", ("n01440764", "n01443537"), 4, size=(20, 16))
    monkeypatch.setenv("VITBENCH_LOADER_WORKERS", "1")
    cfg = tiny_cfg.replace(**{"data.dataset": "imagenet1k@16", "data.image_size": 16, "model.arch": "Mu/4"})
    result = train.run(cfg, tmp_path / "run")
    assert result["status"] == "done" and result["execution"]["data"] == "streamed by 1 loader process(es)"
    assert result["train_examples"] == 80 - 1  # 1% held out as the dev split
    assert 0 <= result["metrics"][metrics.UPSTREAM_TOP1] <= 1
    assert "imagenet" in result["datasets"]["imagenet1k@16"]["provenance"]


def test_data_root_flag_points_every_command_at_the_data(root, tmp_path, monkeypatch, capsys):
    from benchmark import cli

    elsewhere = tmp_path / "elsewhere"
    write_cifar(elsewhere, "cifar10", n_per_class=2)
    monkeypatch.setenv(formats.ROOT_ENV, str(root))  # restored after the test; main() sets it from the flag
    argv = [
        "plan",
        "pos_embed",
        "--preset",
        "smoke",
        "--set",
        "data.dataset=cifar10",
        "--set",
        "data.image_size=28",
        "--results",
        str(tmp_path / "r"),
    ]
    assert cli.main(argv) == 2 and "dataset 'cifar10'" in capsys.readouterr().err
    assert cli.main([*argv, "--data-root", str(elsewhere)]) == 0
    assert "pos_embed/smoke" in capsys.readouterr().out


def test_a_streamed_dataset_is_refused_as_a_probe_before_anything_is_written(root, tmp_path, capsys):
    from benchmark import cli

    write_tree(root / "imagenet" / "train", ("n01440764", "n01443537"), 3, size=(12, 9))
    write_tree(root / "imagenet" / "val", ("n01440764", "n01443537"), 1, size=(12, 9))
    argv = ["run", "pos_embed", "--preset", "smoke", "--set", "eval.fewshot_datasets=imagenet1k@28",
            "--results", str(tmp_path / "r")]  # fmt: skip
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'imagenet1k@28' streams from disk" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        (lambda n: ["cat"] * n, "integer"),  # strings
        (lambda n: [2**70] * n, "integer"),  # too large for any integer type
        (lambda n: [[0]] * n, "one label per image"),  # nested lists: 2-D, trained then failed before
        (lambda n: [[0, 1]] + [[0]] * (n - 1), "integer labels"),  # ragged
    ],
)
def test_cifar_labels_that_are_not_integers_are_one_line_naming_the_file(root, labels, problem):
    write_cifar(root, "cifar10", n_per_class=1)
    batch = root / "cifar-10-batches-py" / "data_batch_2"
    entry = pickle.loads(batch.read_bytes(), encoding="bytes")
    entry[b"labels"] = labels(len(entry[b"data"]))
    batch.write_bytes(pickle.dumps(entry, protocol=2))
    with pytest.raises(UserError, match=problem) as err:
        data.load("cifar10")
    assert "\n" not in str(err.value) and str(batch) in str(err.value)


def test_a_symbolic_link_loop_in_an_image_folder_is_one_line_naming_it(root, tmp_path):
    write_tree(tmp_path / "tree" / "train", ("a", "b"), 2)
    write_tree(tmp_path / "tree" / "test", ("a", "b"), 1)
    loop = tmp_path / "tree" / "train" / "a" / "x.jpg"
    loop.symlink_to("x.jpg")  # x.jpg -> x.jpg
    with pytest.raises(UserError, match="loop") as err:
        data.spec(f"folder:{tmp_path / 'tree'}@8")
    assert "\n" not in str(err.value) and str(loop) in str(err.value)


def test_an_image_beyond_the_pixel_limit_is_refused_before_it_is_decoded(root, tmp_path):
    """A real 12000×12000 PNG: a few kB on disk, 432 MB decoded. PIL only warned; the stated limit
    (formats.MAX_PIXELS) refuses it in one line, from its header alone."""
    write_tree(tmp_path / "tree" / "train", ("a", "b"), 2)
    write_tree(tmp_path / "tree" / "test", ("a", "b"), 1)
    bomb = tmp_path / "tree" / "train" / "b" / "bomb.png"
    Image.new("1", (12000, 12000)).save(bomb)
    assert bomb.stat().st_size < 200_000 and formats.MAX_PIXELS < 12000**2
    with pytest.raises(UserError, match="pixel limit") as err:
        data.load(f"folder:{tmp_path / 'tree'}@8")
    assert "\n" not in str(err.value) and str(bomb) in str(err.value)


def snapshot(folder):
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")} if folder.exists() else {}


@pytest.mark.parametrize("command", ["plan", "run"])
@pytest.mark.parametrize(
    ("case", "probe", "upstream", "message"),
    [
        # a folder's smallest class has 3 images or fewer: 5-shot trained every run, then failed
        ("shots", "few", "cifar10", "training examples of the smallest class of 'folder:"),
        # one class is always right: 1-shot accuracy 1.000
        ("one class", "single", "cifar10", "has 1 class: a probe needs at least 2"),
        # a 3-channel probe of the grey models: every run trained, then failed
        (
            "channels",
            "few",
            None,
            "has 3-channel images, but the model reads the 1 channel(s) of its upstream",
        ),
        ("channels", "cifar10", None, "pre-train on a 3-channel upstream (e.g. --set data.dataset=cifar10)"),
    ],
)
def test_a_probe_the_model_cannot_use_is_refused_before_anything_is_written(
    root, tmp_path, capsys, command, case, probe, upstream, message
):
    """Issue 24's folder probes and issue 23's CIFAR probe of a grey model: `plan` said 0 and `run`
    trained every run before failing each. Now both refuse in one line, naming the fix."""
    from benchmark import cli

    write_cifar(root, "cifar10", n_per_class=4)
    write_tree(tmp_path / "few" / "train", ("a", "b"), 10)
    write_tree(tmp_path / "few" / "train", ("c",), 3)
    write_tree(tmp_path / "few" / "test", ("a", "b", "c"), 1)
    write_tree(tmp_path / "single" / "train", ("only",), 12)
    write_tree(tmp_path / "single" / "test", ("only",), 2)
    dataset = probe if probe == "cifar10" else f"folder:{tmp_path / probe}@16"
    argv = [command, "pos_embed", "--preset", "smoke", "--set", f"eval.fewshot_datasets={dataset}"]
    if upstream is not None:
        argv += ["--set", f"data.dataset={upstream}", "--set", "data.image_size=28"]
    argv += ["--results", str(tmp_path / "r")] + ["--executor", "debug"] * (command == "run")
    before = snapshot(tmp_path / "r")
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert snapshot(tmp_path / "r") == before == {}
