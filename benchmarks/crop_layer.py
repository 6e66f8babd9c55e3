#!/usr/bin/env python
"""Time keraszoo's per-image TrainingCrop against Keras's RandomCrop (one offset per batch).

Both in a tf.function on a batch of uint8 CIFAR-sized images, median of --repeats runs of
--calls calls. Keras's layer is the reference for cost only: it crops every image of a batch
at the same place, which is not the course's augmentation (docs/cifar10_ladder.md).

example:
  python benchmarks/crop_layer.py --batch-size 128
"""

from __future__ import annotations

import argparse
import statistics
import time

import keraszoo  # noqa: F401  first: it chooses TensorFlow's CPU kernels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    from keraszoo.models.preprocessing import TrainingCrop

    images = tf.constant(np.random.default_rng(0).integers(0, 256, (args.batch_size, 32, 32, 3), dtype=np.uint8))
    crop = TrainingCrop(28, 28, seed=0)

    def take_along_axis_crop(images, training):
        # TrainingCrop's first formulation (used by the H200 ladder runs): same offsets, two gathers.
        batch = keras.ops.shape(images)[0]
        rows, cols = crop._positions(batch, 32, 28), crop._positions(batch, 32, 28)
        images = keras.ops.take_along_axis(keras.ops.cast(images, "float32"), rows[:, :, None, None], axis=1)
        return keras.ops.take_along_axis(images, cols[:, None, :, None], axis=2)

    layers = {"keraszoo TrainingCrop (per image)": crop,
              "two take_along_axis (per image, replaced)": take_along_axis_crop,
              "keras RandomCrop (per batch)": keras.layers.RandomCrop(28, 28, seed=0)}
    for name, layer in layers.items():
        call = tf.function(lambda layer=layer: layer(images, training=True))
        call()  # trace
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for _ in range(args.calls):
                call()
            times.append((time.perf_counter() - start) / args.calls * 1e3)
        print(f"{name}: {statistics.median(times):.2f} ms per batch of {args.batch_size} (median of {args.repeats})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
