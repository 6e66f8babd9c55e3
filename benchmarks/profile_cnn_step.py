#!/usr/bin/env python
"""Where a training step of the course CNN (batchnorm variant) spends its time, Keras vs PyTorch.

Times one SGD step (batch 128) of progressively stripped models, in the same process,
alternating frameworks, median of --repeats runs of --steps steps:
  full          the recipe's training model: crop + flip + normalise layers, CNN with BN, dropout
  backbone      the CNN alone on float 28x28 inputs (no preprocessing layers)
  backbone_nosync  the same with plain (unsynchronised) batch norm
  no_bn         the CNN without batch norm and dropout (the course's baseline layers)
Each line also gives the PyTorch twin of the same stripped model where one exists.

examples:
  python benchmarks/profile_cnn_step.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import keraszoo  # noqa: F401  before TensorFlow, whose CPU kernels it chooses (keraszoo/__init__.py)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    return parser.parse_args(argv)


def main(args) -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    import keras
    import numpy as np
    import torch

    import torch_reference as ref
    from keraszoo.models import build_course_cnn, build_image_classifier
    from keraszoo.models.preprocessing import augmentation, normalization

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(args.batch_size, 32, 32, 3), dtype=np.uint8)
    floats = rng.normal(size=(args.batch_size, 28, 28, 3)).astype("float32")
    labels = rng.integers(0, 10, size=args.batch_size).astype("int32")

    def keras_case(name):
        batch_norm, dropout = name != "no_bn", (0.5 if name != "no_bn" else 0.0)
        backbone = build_course_cnn(image_shape=(28, 28, 3), num_classes=10, batch_norm=batch_norm,
                                    dropout_rate=dropout)
        if name == "backbone_nosync":
            for layer in backbone.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.synchronized = False
        if name == "full":
            model = build_image_classifier(backbone=backbone, image_shape=(32, 32, 3), preprocessing=[
                *augmentation(crop_size=28, seed=0), normalization([125.0] * 3, [4000.0] * 3)])
            x = raw
        else:
            model, x = backbone, floats
        model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), jit_compile=False,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        for _ in range(3):
            model.train_on_batch(x, labels)
        return lambda: model.train_on_batch(x, labels)

    def torch_case(name):
        model = ref.CourseCNN(dropout=0.5 if name != "no_bn" else 0.0).to(memory_format=torch.channels_last)
        if name == "no_bn":
            model.features = torch.nn.Sequential(*[m for m in model.features if not isinstance(m, torch.nn.BatchNorm2d)])
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        x_raw = torch.from_numpy(raw).permute(0, 3, 1, 2).contiguous()
        x_float = torch.from_numpy(floats).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        y = torch.from_numpy(labels).long()

        def step():
            x = ((ref.augment(x_raw, 28).float() - 125.0) / 63.2).contiguous(memory_format=torch.channels_last) \
                if name == "full" else x_float
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        for _ in range(3):
            step()
        return step

    def timed(step):
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        return 1000 * (time.perf_counter() - start) / args.steps

    print("| model | keraszoo ms/step | PyTorch ms/step | keraszoo / PyTorch time |\n|---|---|---|---|")
    for name in ("full", "backbone", "backbone_nosync", "no_bn"):
        k_step, t_step = keras_case(name), torch_case(name if name != "backbone_nosync" else "backbone")
        k, t = [], []
        for _ in range(args.repeats):
            k.append(timed(k_step))
            t.append(timed(t_step))
        km, tm = statistics.median(k), statistics.median(t)
        print(f"| {name} | {km:.0f} | {tm:.0f} | {km / tm:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
