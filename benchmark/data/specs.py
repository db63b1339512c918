"""What planning needs to know about a dataset without its images: input size, channels, classes,
training images. The paper's datasets are known here by their published sizes, so `vitbench plan`
can count and price a `paper` preset on a machine that holds none of them."""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.paper import IMAGENET21K_IMAGES, IMAGENET_IMAGES, JFT_CLASSES, JFT_IMAGES


@dataclass(frozen=True)
class DatasetSpec:
    image_size: int  # the size a model sees (the paper pre-trains at 224)
    channels: int
    num_classes: int
    train_examples: int  # the training split's size
    provenance: str


PAPER: dict[str, DatasetSpec] = {
    "imagenet1k": DatasetSpec(
        224, 3, 1000, IMAGENET_IMAGES, "ILSVRC-2012 (ImageNet-1k), §4.1: 1k classes, 1.3M images"
    ),
    "imagenet21k": DatasetSpec(
        224, 3, 21_843, IMAGENET21K_IMAGES, "ImageNet-21k (fall 2011 release), §4.1: 21k classes, 14M images"
    ),
    # §4.1: 18k classes, 303M high-resolution images. Private: planned and priced, never trained.
    "jft300m": DatasetSpec(
        224, 3, JFT_CLASSES, JFT_IMAGES, "JFT-300M (private to Google), §4.1: 18k classes, 303M images"
    ),
}
