"""The formula-driven upstream (FractalDB-style IFS fractals): deterministic, nested, filtered by
the filling rate, disjoint splits, and a disk cache that is used, verified and written atomically."""

import dataclasses
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import torch

from benchmark import data
from benchmark.data import cache
from benchmark.data import fractals as F
from benchmark.errors import UserError


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    """One cache for the module: the category search (the slow part) runs once."""
    return tmp_path_factory.mktemp("data-cache")


@pytest.fixture(autouse=True)
def _cache(cache_root, monkeypatch):
    monkeypatch.setenv("VITBENCH_DATA_CACHE", str(cache_root))


def _dataset_files(root):
    return sorted(p.name for p in root.iterdir() if "categories" not in p.name)


def test_same_seed_same_bytes_and_another_seed_other_images(monkeypatch):
    spec = F.parse("fractal3x4")
    a, b = F.build(spec), F.build(spec)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert a["train_x"].shape == (12, 32, 32) and a["train_x"].dtype == np.uint8
    other = F.build(dataclasses.replace(spec, seed=1))
    assert not np.array_equal(a["train_x"], other["train_x"])
    # the bytes do not depend on how many images are rendered at once
    cats = F.categories(3)
    labels, index = F.layout(3, 4)
    assert np.array_equal(F.render(cats, labels, index, 0, 32, chunk=5), a["train_x"])
    monkeypatch.setenv("VITBENCH_RENDER_WORKERS", "2")  # chunks rendered in two processes
    assert np.array_equal(F.render(cats, labels, index, 0, 32, chunk=5), a["train_x"])


def test_smaller_pools_are_the_first_images_per_category_of_larger_ones():
    small, large = F.load("fractal3x8"), F.load("fractal3x32")
    for c in range(3):
        assert torch.equal(small.train_x[small.train_y == c], large.train_x[large.train_y == c][:8])
    # index-major rows: the first n·C rows of a pool are its first n images per category
    assert torch.equal(small.train_x, large.train_x[:24])
    assert torch.equal(small.val_x, large.val_x) and torch.equal(small.test_x, large.test_x)
    # a larger size renders the same images (same attractor, weights, flips) at more pixels
    big = F.load("fractal3x8@64")
    down = torch.nn.functional.avg_pool2d(big.train_x.float(), 2)
    corr = np.corrcoef(down.flatten(1).numpy(), small.train_x.float().flatten(1).numpy())[:24, 24:]
    same_category = (np.arange(24)[:, None] % 3 == np.arange(24) % 3) & ~np.eye(24, dtype=bool)
    # measured: 0.74–0.89 for an image and itself at 32 px, 0.55 on average for its category's others
    assert np.diag(corr).min() > 0.7 and np.diag(corr).mean() > corr[same_category].mean() + 0.15


def test_kept_categories_pass_the_filling_rate_and_differ():
    cats = F.categories(3)
    assert (cats["fill"] >= F.FILL_RATE).all()
    # recomputed from the stored maps, with the keys the search used
    keys = F._key(F.VERSION, F.SEED, F._STREAM_CATEGORY, np.arange(3), cats["candidate"])
    assert np.array_equal(F.filling_rate(cats["params"], cats["probs"], keys), cats["fill"])
    assert len({p.tobytes() for p in cats["params"]}) == 3
    assert np.allclose(cats["probs"].sum(axis=1), 1.0)
    ds = F.load("fractal3x8")
    means = torch.stack([ds.train_x[ds.train_y == c].float().mean(0) for c in range(3)])
    assert torch.cdist(means.flatten(1), means.flatten(1)).triu(1).max() > 0


def test_the_filling_rate_keeps_a_filled_square_and_rejects_thin_attractors():
    def ifs(maps):
        params = np.zeros((1, F.MAPS[1], 6))
        params[0, : len(maps)] = maps
        det = np.abs(params[0, :, 0] * params[0, :, 3] - params[0, :, 1] * params[0, :, 2])
        return params, (det / det.sum())[None], F._key(42, np.arange(1))

    square = [[0.5, 0, 0, 0.5, ex, ey] for ex in (0, 0.5) for ey in (0, 0.5)]  # attractor: the square
    sierpinski = [[0.5, 0, 0, 0.5, ex, ey] for ex, ey in ((0, 0), (0.5, 0), (0.25, 0.5))]
    point = [[0.5, 0, 0, 0.5, 0.1, 0.1], [0.5, 0, 0, 0.5, 0.1, 0.1]]
    rates = [F.filling_rate(*ifs(maps))[0] for maps in (square, sierpinski, point)]
    assert rates[0] >= F.FILL_RATE > rates[1] and rates[2] < 0.01


def test_splits_are_disjoint_and_balanced():
    ds = F.load("fractal3x32")
    rows = {s: {x.numpy().tobytes() for x in getattr(ds, f"{s}_x")} for s in F.SPLITS}
    assert len(rows["train"]) == 96 and len(rows["val"]) == len(rows["test"]) == 3 * F.EVAL_PER_CLASS
    assert not (rows["train"] & rows["val"] or rows["train"] & rows["test"] or rows["val"] & rows["test"])
    for split in F.SPLITS:
        assert torch.bincount(getattr(ds, f"{split}_y")).tolist() == [len(getattr(ds, f"{split}_y")) // 3] * 3
    assert ds.classes == ("ifs0", "ifs1", "ifs2") and ds.source == F.SOURCE
    assert f"generator v{F.VERSION}" in ds.provenance


def test_the_cache_is_used_on_the_second_load(monkeypatch):
    first = F.load("fractal3x5")

    def no_rendering(*args, **kwargs):
        raise AssertionError("rendered although the dataset is cached")

    monkeypatch.setattr(F, "render", no_rendering)
    monkeypatch.setattr(F, "search_categories", no_rendering)
    again = F.load("fractal3x5")
    assert torch.equal(first.train_x, again.train_x) and torch.equal(first.test_x, again.test_x)
    with pytest.raises(AssertionError, match="rendered"):
        F.load("fractal3x6")


@pytest.mark.parametrize("damage", ["flip a pixel byte", "flip a header byte", "truncate", "append"])
def test_a_damaged_cache_file_is_reported_and_regenerated(cache_root, damage):
    good = F.load("fractal3x4")
    path = cache_root / F.cache_name(F.parse("fractal3x4"))[0]
    blob = bytearray(path.read_bytes())
    if damage == "flip a pixel byte":
        blob[-100] ^= 0x01
    elif damage == "flip a header byte":
        blob[blob.index(b'"per_class": 4') + len('"per_class": ')] = ord("5")
    elif damage == "truncate":
        blob = blob[:-7]
    else:
        blob += b"\0"
    path.write_bytes(bytes(blob))
    with pytest.warns(UserWarning, match=f"data cache .*{path.name} is unusable"):
        again = F.load("fractal3x4")
    assert torch.equal(good.train_x, again.train_x)
    cache.read(path, F.cache_name(F.parse("fractal3x4"))[1])  # the regenerated file is good again


def test_a_writer_that_dies_mid_write_leaves_no_partial_file(tmp_path, monkeypatch):
    real = cache.write_atomic

    def dies_after_ten_bytes(path, data):
        def partial(f):
            class Dying:
                def write(self, chunk):
                    f.write(bytes(chunk)[:10])
                    raise KeyboardInterrupt  # as when the process is interrupted

            data(Dying())

        real(path, partial)

    monkeypatch.setattr(cache, "write_atomic", dies_after_ten_bytes)
    with pytest.raises(KeyboardInterrupt):
        cache.write(tmp_path / "x.bin", {"a": 1}, {"x": np.arange(1000)})
    assert list(tmp_path.iterdir()) == []


def _load_in_another_process(root: str) -> str:
    import os

    os.environ["VITBENCH_DATA_CACHE"] = root
    return F.load("fractal3x7").train_x.numpy().tobytes().hex()[:64]


def test_two_processes_rendering_one_dataset_end_with_one_good_file(cache_root):
    F.categories(3)  # cached: the processes race on the images
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        heads = list(pool.map(_load_in_another_process, [str(cache_root)] * 2))
    assert heads[0] == heads[1]
    assert [n for n in _dataset_files(cache_root) if "7train" in n] == [
        F.cache_name(F.parse("fractal3x7"))[0]
    ]
    assert not list(cache_root.glob("*.tmp")) and not list(cache_root.glob(".*"))
    cache.read(cache_root / F.cache_name(F.parse("fractal3x7"))[0], F.cache_name(F.parse("fractal3x7"))[1])


@pytest.mark.parametrize(
    "name",
    ["fractal", "fractal10", "fractalAx3", "fractal1x5", "fractal10x0", "fractal10x5@4", "fractal10x5@"],
)
def test_malformed_fractal_names_are_one_line_errors_naming_the_grammar(name):
    with pytest.raises(UserError, match=r"fractal<categories>x<train images per category>\[@<pixels>\]") as e:
        data.check_name(name)
    assert "\n" not in str(e.value)


def test_spec_and_role_need_no_rendering(monkeypatch):
    def no_rendering(*args, **kwargs):
        raise AssertionError("rendered")

    monkeypatch.setattr(F, "render", no_rendering)
    monkeypatch.setattr(F, "search_categories", no_rendering)
    s = data.spec("fractal100x1280")
    assert (s.image_size, s.channels, s.num_classes, s.train_examples) == (32, 1, 100, 128_000)
    assert data.spec("fractal10x64@64").image_size == 64
    assert data.role(probe="digits", upstream="fractal10x8") == (
        "transfer: images never seen in pre-training (another source)"
    )
    assert data.role(probe="fractal10x8", upstream="fractal100x8").startswith("read-back")
    data.check_name("fractal10x64@64")
    with pytest.raises(UserError, match="fractal<categories>x"):
        data.check_name("imagenet")


def test_render_throughput_is_measured_on_real_renders(monkeypatch):
    calls = []
    real = F.render
    monkeypatch.setattr(F, "render", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
    assert 0 < F.render_throughput(images=40) < float("inf") and calls == [40]


@pytest.mark.parametrize("length", [2**63 - 1, 2**40, 1 << 56])
def test_a_damaged_header_length_is_reported_and_regenerated_not_a_memory_error(cache_root, length):
    """One flipped byte of the 8-byte header length asked for exabytes: now the length is checked
    against the file's size before anything is allocated, and the file is regenerated."""
    good = F.load("fractal3x4")
    path = cache_root / F.cache_name(F.parse("fractal3x4"))[0]
    blob = bytearray(path.read_bytes())
    blob[len(cache.MAGIC) : len(cache.MAGIC) + 8] = length.to_bytes(8, "little")
    path.write_bytes(bytes(blob))
    with pytest.warns(UserWarning, match=f"data cache .*{path.name} is unusable .*header length"):
        again = F.load("fractal3x4")
    assert torch.equal(good.train_x, again.train_x)
    cache.read(path, F.cache_name(F.parse("fractal3x4"))[1])


def test_a_killed_writers_temporary_file_is_swept_and_a_live_writers_is_kept(tmp_path, monkeypatch):
    """A renderer killed mid-write leaves `.<name>.<random>.tmp`; the next load removes it once
    no process holds it (write_atomic locks its temporary file while writing)."""
    import fcntl
    import os
    import time

    monkeypatch.setenv("VITBENCH_DATA_CACHE", str(tmp_path))
    dead = tmp_path / ".fractal-ifs-v1-x.bin.k1ll3d.tmp"
    dead.write_bytes(b"\0" * 1000)
    live = tmp_path / ".fractal-ifs-v1-y.bin.l1v3.tmp"
    live.write_bytes(b"\0" * 1000)
    old = time.time() - 3600
    for path in (dead, live):
        os.utime(path, (old, old))
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a writer does while it writes
        cache.load_or_build("z.bin", {"a": 1}, lambda: {"x": np.arange(3)})
        assert not dead.exists() and live.exists()
    assert cache.read(tmp_path / "z.bin", {"a": 1})["x"].tolist() == [0, 1, 2]
