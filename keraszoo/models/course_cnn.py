"""The course's CIFAR-10 CNN (RDFIA part 2).

    conv1 5x5x32 -> ReLU -> pool1 2x2/2
    conv2 5x5x64 -> ReLU -> pool2 2x2/2
    conv3 5x5x64 -> ReLU -> pool3 2x2/2
    flatten -> fc4 1000 -> ReLU -> fc5 num_classes (logits)

Convolutions have stride 1 and padding 2 ("same" for a 5x5 kernel), so only the
pools halve the image: 32 -> 16 -> 8 -> 4, and fc4 sees 4*4*64 = 1024 features.
Weights per layer on 32x32x3 input: 2,400; 51,200; 102,400; 1,024,000; 10,000
(1,190,000 weights + 1,170 biases = 1,191,170 parameters).

The improvements of the course's ladder are switches: ``batch_norm`` after each
convolution (before its ReLU), ``dropout_rate`` before each fully connected layer.
The model takes float images; scaling or normalising raw pixels is the
preprocessing's job (see ``keraszoo.models.classifier``).
"""

from __future__ import annotations

import keras
from keras import layers

from keraszoo.models.batch_norm import FusedBatchNormalization


def build_course_cnn(
    *,
    image_shape: tuple[int, int, int] = (32, 32, 3),
    num_classes: int = 10,
    filters: tuple[int, ...] = (32, 64, 64),
    kernel_size: int = 5,
    fc_units: int = 1000,
    dropout_rate: float = 0.0,
    batch_norm: bool = False,
    name: str = "course_cnn",
) -> keras.Model:
    """Returns the (uncompiled) course CNN mapping float images to logits."""
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(f"image_shape must be (height, width, channels), got {image_shape}.")
    min_side = 2 ** len(filters)  # every conv block halves the image
    if min(image_shape[:2]) < min_side:
        raise ValueError(
            f"image_shape {image_shape} is too small: {len(filters)} 2x2 poolings need at "
            f"least {min_side}x{min_side} pixels."
        )
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate}.")
    if num_classes < 2 or kernel_size < 1 or fc_units < 1 or not filters:
        raise ValueError("num_classes >= 2, kernel_size >= 1, fc_units >= 1 and filters non-empty.")

    inputs = keras.Input(shape=image_shape, name="images")
    x = inputs
    for i, width in enumerate(filters, start=1):
        x = layers.Conv2D(width, kernel_size, padding="same", name=f"conv{i}")(x)
        if batch_norm:
            # synchronized: under a tf.distribute strategy the statistics are those of the global
            # batch, as on one device (no effect without a strategy). Other backends refuse the
            # option; JAX's DataParallel computes them over the global batch anyway (one SPMD program).
            # Keras's layer, with TensorFlow's fused kernel for its training step (keraszoo.models.batch_norm).
            x = FusedBatchNormalization(synchronized=keras.backend.backend() == "tensorflow", name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        x = layers.MaxPooling2D(pool_size=2, strides=2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)  # (batch, h * w * filters[-1])
    fc = len(filters) + 1
    if dropout_rate:
        x = layers.Dropout(dropout_rate, name=f"dropout{fc}")(x)
    x = layers.Dense(fc_units, name=f"fc{fc}")(x)
    x = layers.ReLU(name=f"relu{fc}")(x)
    if dropout_rate:
        x = layers.Dropout(dropout_rate, name=f"dropout{fc + 1}")(x)
    logits = layers.Dense(num_classes, name=f"fc{fc + 1}")(x)
    return keras.Model(inputs, logits, name=name)
