"""Raw-pixel classifiers: ``uint8`` images in, logits out.

A backbone from a builder takes float images. ``build_image_classifier`` puts
preprocessing layers (rescaling, normalisation, and in training augmentation)
in front of it, so the same batch-level layers run wherever the model runs (on
the accelerator when there is one) and an exported model takes raw ``uint8``
images like those a client sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import keras


def build_image_classifier(
    *,
    backbone: keras.Model,
    image_shape: tuple[int, int, int],
    preprocessing: Sequence[keras.layers.Layer] = (),
    name: str | None = None,
) -> keras.Model:
    """``Input(uint8 image_shape) -> *preprocessing -> backbone`` as one functional model."""
    inputs = keras.Input(shape=image_shape, dtype="uint8", name="images")
    x = inputs
    for layer in preprocessing:
        x = layer(x)
    logits = backbone(x)
    if keras.config.dtype_policy().compute_dtype != "float32":
        # Mixed precision: the softmax and the loss need float32 logits (a bfloat16 logit has 3 digits).
        logits = keras.layers.Activation("linear", dtype="float32", name="float32_logits")(logits)
    return keras.Model(inputs, logits, name=name or backbone.name)


def pixel_scaling() -> keras.layers.Layer:
    """uint8 [0, 255] -> float [0, 1], like torchvision's ``ToTensor`` in the course."""
    return keras.layers.Rescaling(1.0 / 255.0, name="scale_pixels")


class ModelPair(NamedTuple):
    """The model a run trains and the one it serves: the same layers and weights, the second without
    training-only layers (random crops, flips, translations)."""

    training: keras.Model
    inference: keras.Model


def build_classifier_pair(
    *,
    backbone: keras.Model,
    image_shape: tuple[int, int, int],
    preprocessing: Sequence[keras.layers.Layer] = (),
    augmentation: Sequence[keras.layers.Layer] = (),
    inference_augmentation: Sequence[keras.layers.Layer] = (),
    name: str | None = None,
) -> ModelPair:
    """``uint8 -> augmentation -> preprocessing -> backbone`` to train, and the same without augmentation
    to serve (``inference_augmentation`` replaces it there, e.g. the centre crop that matches a random
    crop's size). Both share ``preprocessing`` and ``backbone``, so training the first trains the second.

    Export the inference model: one holding RandomCrop and CenterCrop was seen to export with other
    outputs than ``model(x, training=False)`` gives (Keras 3.15).
    """
    training = build_image_classifier(backbone=backbone, image_shape=image_shape, name=name,
                                      preprocessing=[*augmentation, *preprocessing])
    if not augmentation:
        return ModelPair(training, training)
    inference = build_image_classifier(backbone=backbone, image_shape=image_shape, name=name,
                                       preprocessing=[*inference_augmentation, *preprocessing])
    return ModelPair(training, inference)
