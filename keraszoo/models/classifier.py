"""Raw-pixel classifiers: ``uint8`` images in, logits out.

A backbone from a builder takes float images. ``build_image_classifier`` puts
preprocessing layers (rescaling, normalisation, and in training augmentation)
in front of it, so the same batch-level layers run wherever the model runs (on
the accelerator when there is one) and an exported model takes raw ``uint8``
images like those a client sends.
"""

from __future__ import annotations

from collections.abc import Sequence

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
