"""The course's 2-D "circles" toy set: points inside a disc (class 0) vs a surrounding ring (class 1)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keraszoo.data.metadata import DatasetMetadata
from keraszoo.data.tfds_data import SplitData

CIRCLES_METADATA = DatasetMetadata(
    name="circles", version="keraszoo", data_dir="", input_shape=(2,), num_classes=2,
    class_names=("disc", "ring"),
)


def make_circles(
    num_examples: int,
    *,
    seed: int,
    noise: float = 0.1,
    disc_radius: float = 1.0,
    ring_radii: tuple[float, float] = (1.5, 2.5),
) -> tuple[np.ndarray, np.ndarray]:
    """``(points float32 (n, 2), labels int32 (n,))``, half disc and half ring, shuffled.

    Radii are drawn so that points are uniform over each area, then Gaussian noise of
    standard deviation ``noise`` is added to both coordinates: with the defaults the
    classes overlap slightly, so 100% test accuracy is not guaranteed.
    """
    if num_examples < 2:
        raise ValueError(f"num_examples must be >= 2, got {num_examples}.")
    inner, outer = ring_radii
    if not 0 < disc_radius <= inner < outer:
        raise ValueError(f"need 0 < disc_radius <= ring_radii[0] < ring_radii[1], got {disc_radius}, {ring_radii}.")
    rng = np.random.default_rng(seed)
    n_disc = num_examples // 2
    n_ring = num_examples - n_disc
    # sqrt of a uniform draw gives points uniform over the area, not crowded at the centre.
    radius = np.concatenate([
        disc_radius * np.sqrt(rng.random(n_disc)),
        np.sqrt(rng.uniform(inner**2, outer**2, n_ring)),
    ])
    angle = rng.uniform(0, 2 * np.pi, num_examples)
    points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    points += rng.normal(0.0, noise, points.shape)
    labels = np.concatenate([np.zeros(n_disc), np.ones(n_ring)]).astype(np.int32)
    order = rng.permutation(num_examples)
    return points[order].astype(np.float32), labels[order]


def circles_split(num_examples: int, *, seed: int, noise: float = 0.1, name: str = "train", held_out: int = 0):
    """A circles split in the data layer's form (unbatched ``(point, label)`` examples). With ``held_out``,
    that many more points are drawn in the same draw and returned apart: (split, validation split)."""
    points, labels = make_circles(num_examples + held_out, seed=seed, noise=noise)

    def split(part, label):
        return SplitData(examples=tf.data.Dataset.from_tensor_slices((points[part], labels[part])),
                         num_examples=len(labels[part]), split=label)

    if not held_out:
        return split(slice(None), f"{name}[{num_examples}]")
    return (split(slice(None, num_examples), f"{name}[{num_examples}]"),
            split(slice(num_examples, None), f"{name}[{num_examples}:{num_examples + held_out}]"))
