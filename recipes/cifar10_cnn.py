#!/usr/bin/env python
"""Train the course's CIFAR-10 CNN, write its run record and export a SavedModel.

The defaults are the course's baseline: SGD with learning rate 0.1 and batch size
128 for 30 epochs, pixels scaled to [0, 1]. A run killed at any point resumes from
its last finished epoch when the same command is run again.

examples:
  python recipes/cifar10_cnn.py --epochs 1 --train-split 'train[:5000]'   # smoke run
  python recipes/cifar10_cnn.py --epochs 10 --output runs/cifar10_baseline
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

# Only the config is imported at the top, so that --help answers without loading TensorFlow.
from keraszoo.config import TrainConfig, cli_main, option

RECIPE = "cifar10_cnn"


@dataclass(frozen=True)
class Cifar10CNNConfig(TrainConfig):
    """The course's CIFAR-10 CNN (conv 5x5 32-64-64, fc 1000, fc 10)."""

    dataset: str = option("cifar10", "TFDS dataset of small RGB images")
    export_name: str = option(RECIPE, "model folder name under --export-dir")


def build_model(config: Cifar10CNNConfig, metadata):
    from keraszoo.models import build_course_cnn, build_image_classifier, pixel_scaling

    backbone = build_course_cnn(image_shape=metadata.input_shape, num_classes=metadata.num_classes)
    return build_image_classifier(
        backbone=backbone,
        image_shape=metadata.input_shape,
        preprocessing=[pixel_scaling()],
        name=RECIPE,
    )


def main(config: Cifar10CNNConfig) -> dict:
    from keraszoo.training.recipe import run_classification

    return run_classification(
        config,
        recipe=RECIPE,
        dataset=config.dataset,
        build_model=build_model,
        export_name=config.export_name,
    )


if __name__ == "__main__":
    sys.exit(cli_main(main, Cifar10CNNConfig, __doc__))
