"""Per-channel statistics of a split, for the course's normalisation step (Q.20)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # types only: this module works without TensorFlow
    from keraszoo.data.arrays import ArraySplit
    from keraszoo.data.tfds_data import SplitData


def channel_mean_variance(data: SplitData | ArraySplit, *, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of every channel over all pixels of ``data``, in raw pixel units.

    Computed in float64 over the whole split in one pass (sums of x and x^2), so the
    result does not depend on the batch size. Use the training split only: test
    statistics must not leak into the model. An ``ArraySplit`` is read from its array.
    """
    if hasattr(data, "images"):
        return array_mean_variance(data.images, batch_size=batch_size)
    from keraszoo.data.tfds_data import without_autotuning  # TensorFlow only on this path

    sums = _ChannelSums()
    for images, _ in without_autotuning(data.examples.batch(batch_size)):
        sums.add(images.numpy())
    return sums.mean_variance(f"split {data.split!r}")


def array_mean_variance(images: np.ndarray, *, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """``channel_mean_variance`` of an (N, H, W, C) array of training images."""
    sums = _ChannelSums()
    for start in range(0, len(images), batch_size):
        sums.add(images[start:start + batch_size])
    return sums.mean_variance("the image array")


class _ChannelSums:
    def __init__(self):
        self.total = self.total_sq = 0.0
        self.count = 0

    def add(self, images: np.ndarray) -> None:
        pixels = np.asarray(images, np.float64).reshape(-1, images.shape[-1])
        self.total = self.total + pixels.sum(0)
        self.total_sq = self.total_sq + (pixels**2).sum(0)
        self.count += len(pixels)

    def mean_variance(self, what: str) -> tuple[np.ndarray, np.ndarray]:
        if not self.count:
            raise ValueError(f"{what} is empty.")
        mean = self.total / self.count
        return mean, self.total_sq / self.count - mean**2
