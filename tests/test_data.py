"""Offline datasets: fixed splits, the class halves of MNIST, and what a probe dataset measures."""

import re

import numpy as np
import pytest
import torch

from benchmark import data
from benchmark.data import shapes
from benchmark.data.dataset import TEST_FRACTION, VAL_FRACTION
from benchmark.errors import UserError


def test_shapes_are_deterministic_and_balanced():
    a, la = shapes.generate(per_class=3, seed=1)
    b, lb = shapes.generate(per_class=3, seed=1)
    assert a.shape == (30, 28, 28) and a.dtype == np.uint8
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert np.bincount(la).tolist() == [3] * 10
    assert not np.array_equal(a, shapes.generate(per_class=3, seed=2)[0])


def test_every_dataset_has_disjoint_stratified_train_val_test_splits():
    for name in data.SOURCES:
        ds = data.load(name)
        sizes = {s: len(getattr(ds, f"{s}_y")) for s in ("train", "val", "test")}
        total = sum(sizes.values())
        assert (
            abs(sizes["test"] / total - TEST_FRACTION) < 0.01
            and abs(sizes["val"] / total - VAL_FRACTION) < 0.01
        )
        for split in ("train", "val", "test"):  # every class in every split
            assert torch.unique(getattr(ds, f"{split}_y")).tolist() == list(range(ds.num_classes))
        rows = {s: {x.numpy().tobytes() for x in getattr(ds, f"{s}_x")} for s in ("train", "val", "test")}
        assert not (rows["train"] & rows["test"]) and not (rows["val"] & rows["test"])


def test_mnist_halves_hold_the_other_digits_relabelled():
    low, high, full = data.load("mnist0to4"), data.load("mnist5to9"), data.load("mnist5k")
    assert low.classes == ("0", "1", "2", "3", "4") and high.classes == ("5", "6", "7", "8", "9")
    assert low.num_classes == high.num_classes == 5
    assert len(low.train_y) + len(low.val_y) + len(low.test_y) == 2500
    # no image of one half is in the other
    seen = {x.numpy().tobytes() for x in torch.cat([low.train_x, low.val_x, low.test_x])}
    assert not any(x.numpy().tobytes() in seen for x in torch.cat([high.train_x, high.val_x, high.test_x]))
    assert len(full.classes) == 10


def test_role_says_transfer_only_for_images_and_labels_never_seen():
    assert data.role("mnist5to9", "mnist0to4").startswith("transfer: images and classes never seen")
    assert data.role("shapes", "mnist0to4") == "transfer: images never seen in pre-training (another source)"
    assert "0, 1, 2, 3, 4 are ones pre-training saw as concepts" in data.role("digits", "mnist0to4")
    assert data.role("mnist5k", "mnist0to4").startswith("read-back")
    assert data.role("mnist0to4", "mnist0to4").startswith("read-back")


def test_the_papers_datasets_are_known_for_planning_without_their_images():
    assert data.spec("jft300m").train_examples == 303_000_000
    assert data.spec("imagenet21k").num_classes == 21_843
    assert data.spec("mnist0to4") == data.DatasetSpec(28, 1, 5, 1750, data.load("mnist0to4").provenance)
    with pytest.raises(UserError, match="planning and pricing only"):
        data.load("jft300m")


def test_an_unknown_dataset_lists_each_valid_name_once():
    with pytest.raises(UserError) as err:
        data.check_name("cifar11")
    names = re.findall(r"[\w:<>]+", str(err.value).split("valid: ")[1])
    for name in ("imagenet1k", "imagenet21k", "cifar10", "mnist0to4", "jft300m"):
        assert names.count(name) == 1, (name, names)
