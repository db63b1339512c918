"""A procedurally generated 10-class shape dataset: a third offline downstream task.

MNIST and the UCI digits are both hand-written digits; few-shot transfer and the leave-self-out
choice of the regulariser need tasks that differ. Each image is one white shape drawn at a random
position, size and stroke width on a noisy black 28x28 background. The generator is seeded, so
the dataset is the same on every machine.
"""

from __future__ import annotations

import numpy as np

CLASSES = (
    "circle",
    "disc",
    "square",
    "filled square",
    "triangle",
    "horizontal bar",
    "vertical bar",
    "diagonal",
    "plus",
    "cross",
)
SIZE = 28


def _draw(kind: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    r = rng.uniform(5.0, 9.0)  # half-size of the shape
    cy, cx = rng.uniform(r + 1, SIZE - r - 1, size=2)
    w = rng.uniform(1.0, 2.2)  # stroke half-width
    dy, dx = yy - cy, xx - cx
    dist = np.hypot(dy, dx)
    box = np.maximum(np.abs(dy), np.abs(dx))
    name = CLASSES[kind]
    if name == "circle":
        mask = np.abs(dist - r) < w
    elif name == "disc":
        mask = dist < r
    elif name == "square":
        mask = np.abs(box - r) < w
    elif name == "filled square":
        mask = box < r
    elif name == "triangle":  # outline of an upright triangle
        inside = (dy < r) & (dy > -r + 2 * np.abs(dx))
        shrunk = (dy < r - 2 * w) & (dy > -r + 2 * np.abs(dx) + 3 * w)
        mask = inside & ~shrunk
    elif name == "horizontal bar":
        mask = (np.abs(dy) < w) & (np.abs(dx) < r)
    elif name == "vertical bar":
        mask = (np.abs(dx) < w) & (np.abs(dy) < r)
    elif name == "diagonal":
        mask = (np.abs(dy - dx) < w * 1.4) & (box < r)
    elif name == "plus":
        mask = ((np.abs(dy) < w) | (np.abs(dx) < w)) & (box < r)
    else:  # cross
        mask = ((np.abs(dy - dx) < w * 1.4) | (np.abs(dy + dx) < w * 1.4)) & (box < r)
    image = mask * rng.uniform(0.7, 1.0) + rng.normal(0.0, 0.08, size=mask.shape)
    return np.clip(image * 255.0, 0, 255).astype(np.uint8)


def generate(per_class: int = 250, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels (N,)), classes interleaved, fully determined by `seed`."""
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(len(CLASSES)), per_class)
    images = np.stack([_draw(int(k), rng) for k in labels])
    return images, labels
