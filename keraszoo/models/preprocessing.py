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
    """(x - mean) / sqrt(variance) per channel, with statistics in the input's units (0-255 for raw pixels)."""
    return keras.layers.Normalization(
        axis=-1, mean=np.asarray(mean, "float32"), variance=np.asarray(variance, "float32"), name=name
    )


@keras.saving.register_keras_serializable(package="keraszoo")
class TrainingCrop(keras.layers.Layer):
    """A random ``height x width`` crop of each image in training, the centre crop at inference.

    As in the course (torchvision's RandomCrop), every image of a batch gets its own crop.
    Keras's ``RandomCrop`` draws one offset for the whole batch, resizes the whole image at
    inference instead of cropping its centre, and marks itself unfit for XLA, which turns
    off the compiled train step on JAX (180 ms a step against 3 on an H200 shared by twelve
    runs); this layer gathers each image's own window with keras.ops, on any backend. ``padding`` > 0
    mirrors that many pixels onto each side first (a random translation when the crop is the image's
    size, as airbench's reflect-padded crops); the inference crop stays the unpadded image's centre.
    """

    def __init__(self, height: int, width: int, seed: int | None = None, padding: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width, self.seed, self.padding = height, width, seed, int(padding)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.center_crop = keras.layers.CenterCrop(height, width)

    def build(self, input_shape):
        if input_shape[-3] is None or input_shape[-2] is None:
            raise ValueError(f"TrainingCrop needs a known image size, got input shape {input_shape}.")
        if input_shape[-3] < self.height or input_shape[-2] < self.width:
            raise ValueError(f"TrainingCrop({self.height}, {self.width}) cannot crop images of shape {input_shape}.")
        if not 0 <= self.padding < min(input_shape[-3], input_shape[-2]):
            raise ValueError(f"TrainingCrop's padding={self.padding} must be >= 0 and smaller than the image "
                             f"(shape {input_shape}) to mirror it.")

    def call(self, inputs, training=False):
        if not training:
            return self.center_crop(inputs)
        ops = keras.ops
        images = ops.cast(inputs, self.compute_dtype)  # as CenterCrop returns: the next layers see one dtype
        if self.padding:
            p = self.padding
            images = ops.pad(images, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
        batch = ops.shape(images)[0]
        height, width, channels = images.shape[-3:]
        rows = self._positions(batch, height, self.height)  # (batch, crop height)
        cols = self._positions(batch, width, self.width)  # (batch, crop width)
        # One gather of whole pixels: index (b * H + row) * W + col of the (B*H*W, C) pixel list.
        # (Two take_along_axis calls give the same crops, 5x slower on TensorFlow's CPU: benchmarks/crop_layer.py, in git at 47341c5.)
        image_start = ops.arange(batch, dtype=rows.dtype)[:, None, None] * height
        index = (image_start + rows[:, :, None]) * width + cols[:, None, :]  # (batch, crop h, crop w)
        pixels = ops.take(ops.reshape(images, (-1, channels)), ops.reshape(index, (-1,)), axis=0)
        return ops.reshape(pixels, (batch, self.height, self.width, channels))

    def _positions(self, batch, size: int, crop: int):
        """Indices start, ..., start + crop - 1 along one axis, a uniform start per image."""
        start = keras.random.randint((batch, 1), 0, size - crop + 1, seed=self.seed_generator)
        return start + keras.ops.arange(crop, dtype=start.dtype)[None, :]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-3], self.height, self.width, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width, "seed": self.seed,
                "padding": self.padding}


def augmentation(*, crop_size: int, seed: int, padding: int = 0) -> list[keras.layers.Layer]:
    """Training-time augmentation: random crop (centre crop at inference; of the image mirror-padded by
    ``padding`` pixels in training) and horizontal flip."""
    return [
        TrainingCrop(crop_size, crop_size, seed=seed, padding=padding, name="crop"),
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
