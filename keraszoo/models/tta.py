"""Flip test-time augmentation inside a model: each image and its mirror image through the same network, their
probabilities averaged. An exported model that holds it scores what `keraszoo evaluate --tta flip` scores, for
twice the inference cost; for classes that are mirror-symmetric (CIFAR-10's, not digits')."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="keraszoo")
class HorizontalFlip(keras.layers.Layer):
    """Images (batch, height, width, channels) mirrored left to right: always, not a random augmentation."""

    def call(self, images):
        return keras.ops.flip(images, axis=-2)


@keras.saving.register_keras_serializable(package="keraszoo")
class MeanProbabilityLogits(keras.layers.Layer):
    """The views' logits -> the log of their mean softmax: logits whose softmax is the averaged probability."""

    def call(self, views):
        probabilities = [keras.ops.softmax(keras.ops.cast(logits, "float32"), axis=-1) for logits in views]
        mean = keras.ops.mean(keras.ops.stack(probabilities), axis=0)
        return keras.ops.log(keras.ops.maximum(mean, 1e-30))  # a probability that underflowed stays finite


def with_flip_tta(model: keras.Model) -> keras.Model:
    """``model`` (images -> logits) and its mirror-image view, averaged: a model with the same input and output."""
    (images_in,) = model.inputs
    images = keras.Input(images_in.shape[1:], dtype=images_in.dtype, name="images")
    views = [model(images), model(HorizontalFlip(name="mirror")(images))]
    return keras.Model(images, MeanProbabilityLogits(name="flip_tta", dtype="float32")(views),
                       name=f"{model.name}_flip_tta")
