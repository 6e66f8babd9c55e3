"""Batch-level preprocessing layers: the CIFAR-10 ladder's and the pretrained ViT's input.

They sit inside the model, so they run wherever the model runs (on the GPU when
there is one) and on whole batches: per-channel normalisation (kept in exported
models, so they take raw uint8 pixels), in training only random crops and
horizontal flips, and the resizing + grey-to-RGB that turns 28x28 digits into the
224x224x3 images a pretrained ViT expects.
"""

from __future__ import annotations

import keras
import numpy as np


def normalization(mean, variance, *, name: str = "normalize") -> keras.layers.Normalization:
    """(x - mean) / sqrt(variance) per channel, with statistics in raw pixel units (0-255)."""
    return keras.layers.Normalization(
        axis=-1, mean=np.asarray(mean, "float32"), variance=np.asarray(variance, "float32"), name=name
    )


@keras.saving.register_keras_serializable(package="keraszoo")
class TrainingCrop(keras.layers.Layer):
    """A random ``height x width`` crop in training and the centre crop at inference, as in the course.

    Keras's ``RandomCrop`` alone resizes the whole image at inference instead of
    cropping its centre, which is not what the course evaluates.
    """

    def __init__(self, height: int, width: int, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width, self.seed = height, width, seed
        self.random_crop = keras.layers.RandomCrop(height, width, seed=seed)
        self.center_crop = keras.layers.CenterCrop(height, width)

    def build(self, input_shape):
        # Nothing to create: both crops are stateless apart from the random crop's seed.
        pass

    def call(self, inputs, training=False):
        if training:
            return self.random_crop(inputs, training=True)
        return self.center_crop(inputs)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-3], self.height, self.width, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width, "seed": self.seed}


def augmentation(*, crop_size: int, seed: int) -> list[keras.layers.Layer]:
    """Training-time augmentation: random crop (centre crop at inference) and horizontal flip."""
    return [
        TrainingCrop(crop_size, crop_size, seed=seed, name="crop"),
        keras.layers.RandomFlip("horizontal", seed=seed + 1, name="flip"),
    ]


@keras.saving.register_keras_serializable(package="keraszoo")
class GrayscaleToRGB(keras.layers.Layer):
    """(..., 1) -> (..., 3) by repeating the channel: a grey image as an RGB checkpoint sees it."""

    def call(self, inputs):
        if inputs.shape[-1] != 1:
            raise ValueError(f"GrayscaleToRGB takes one-channel images, got shape {inputs.shape}.")
        return keras.ops.repeat(inputs, 3, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 3)


def pretrained_vit_input(*, image_size: int, scale: float, offset: float) -> list[keras.layers.Layer]:
    """Raw 0-255 grey digits -> the checkpoint's pixel range, image_size x image_size, 3 channels.

    Rescaling comes first (resizing is linear, so the order does not change the values)
    and the channel is repeated last, so the resize works on one channel instead of three.
    """
    return [
        keras.layers.Rescaling(scale, offset, name="checkpoint_pixels"),
        keras.layers.Resizing(image_size, image_size, interpolation="bilinear", name="resize"),
        GrayscaleToRGB(name="grey_to_rgb"),
    ]
