"""Shared by the tests that wait on real processes: every wait has a deadline."""

import time


def wait_until(predicate, timeout: float, what: str, poll: float = 0.2):
    """The first truthy value of `predicate()`, polled every `poll` s; fails after `timeout` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := predicate():
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def grey_images(n: int = 4, seed: int = 1):
    """n random 32×32 one-channel images: the CPU presets' input."""
    import torch

    return torch.randn(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


def one_training_step(model, x, y) -> set[str]:
    """One AdamW step on (x, y); asserts a finite loss and returns the state entries it changed."""
    import torch

    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    return {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}


def write_cifar(root, kind: str = "cifar10", n_per_class: int = 5, n_test_per_class: int = 2, seed: int = 0):
    """Random images in torchvision's CIFAR pickle layout under `root` (the data root): the
    files, keys and dtypes of the real archives (bytes keys, as `pickle.load(encoding="bytes")`
    shows them; protocol 2). CIFAR-10 spreads its training rows over data_batch_1..5. Returns
    (train_x, train_y, test_x, test_y), images uint8 (N, 3, 32, 32), labels int64."""
    import pickle
    from pathlib import Path

    import numpy as np

    classes = 10 if kind == "cifar10" else 100
    folder = Path(root) / ("cifar-10-batches-py" if kind == "cifar10" else "cifar-100-python")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    label_key = b"labels" if kind == "cifar10" else b"fine_labels"
    out = []
    for per_class in (n_per_class, n_test_per_class):
        y = rng.permutation(np.repeat(np.arange(classes), per_class))
        out += [rng.integers(0, 256, (len(y), 3, 32, 32), dtype=np.uint8), y.astype(np.int64)]

    def dump(name, x, y):
        entry = {b"data": x.reshape(len(x), -1), label_key: [int(v) for v in y], b"batch_label": b"fixture"}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))

    if kind == "cifar10":
        for i, part in enumerate(np.array_split(np.arange(len(out[1])), 5)):
            dump(f"data_batch_{i + 1}", out[0][part], out[1][part])
        dump("test_batch", out[2], out[3])
        meta = {b"label_names": [f"c10-{c}".encode() for c in range(classes)]}
        (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    else:
        dump("train", out[0], out[1])
        dump("test", out[2], out[3])
        meta = {
            b"fine_label_names": [f"c100-{c}".encode() for c in range(classes)],
            b"coarse_label_names": [],
        }
        (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return tuple(out)


RED, BLUE = (220, 30, 40), (20, 40, 210)


def halves(path, w=48, h=40, fmt=None):
    """An image whose left half is RED and right half BLUE: flat regions JPEG keeps within a few levels."""
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.empty((h, w, 3), np.uint8)
    a[:, : w // 2], a[:, w // 2 :] = RED, BLUE
    Image.fromarray(a).save(path, fmt)


def write_pets(root, breeds=("Abyssinian", "american_bulldog", "yorkshire_terrier"), trainval=4, test=2):
    """torchvision's OxfordIIITPet layout: images/<breed>_<n>.jpg and the two annotation lists."""
    folder = root / "oxford-iiit-pet"
    (folder / "annotations").mkdir(parents=True)
    for split, n, offset in (("trainval", trainval, 0), ("test", test, 100)):
        lines = []
        for label, breed in enumerate(breeds, 1):
            for i in range(offset, offset + n):
                halves(folder / "images" / f"{breed}_{i}.jpg")
                lines.append(f"{breed}_{i} {label} {1 + breed[0].isupper()} {i}")
        (folder / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return folder
