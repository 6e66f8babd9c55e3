"""Per-channel statistics of a split, for the course's normalisation step (Q.20)."""

from __future__ import annotations

import numpy as np

from keraszoo.data.tfds_data import SplitData


def channel_mean_variance(data: SplitData, *, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of every channel over all pixels of ``data``, in raw pixel units.

    Computed in float64 over the whole split in one pass (sums of x and x^2), so the
    result does not depend on the batch size. Use the training split only: test
    statistics must not leak into the model.
    """
    total = total_sq = None
    count = 0
    for images, _ in data.examples.batch(batch_size):
        pixels = images.numpy().astype(np.float64).reshape(-1, images.shape[-1])
        total = pixels.sum(0) if total is None else total + pixels.sum(0)
        total_sq = (pixels**2).sum(0) if total_sq is None else total_sq + (pixels**2).sum(0)
        count += len(pixels)
    if not count:
        raise ValueError(f"split {data.split!r} is empty.")
    mean = total / count
    return mean, total_sq / count - mean**2
