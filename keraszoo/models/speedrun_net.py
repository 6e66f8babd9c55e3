"""A small fast CIFAR-10 network in the spirit of airbench (Keller Jordan, 2024), for speedruns.

    stem conv3x3(w0/2) -> BN -> GELU
    per width w: conv3x3(w) -> maxpool 2 -> BN -> GELU -> conv3x3(w) -> BN -> GELU
    global max pool -> Dense(classes), scaled down

Every layer is a plain Keras layer; batch norm makes large learning rates safe, the
pooling schedule halves the resolution per block, and the final scale keeps the initial
logits small (the loss starts at chance level, ln 10).
"""

from __future__ import annotations

import keras
from keras import layers

from keraszoo.models.batch_norm import FusedBatchNormalization

# A run of a few hundred steps needs batch-norm statistics that keep up: Keras's default 0.99
# averages over ~100 steps and lags the weights; 0.9 averages over ~10.
BN_MOMENTUM = 0.9


def _batch_norm(name: str):
    # Keras's batch norm with TensorFlow's fused kernel in training (keraszoo.models.batch_norm).
    return FusedBatchNormalization(momentum=BN_MOMENTUM, name=name)


def build_speedrun_net(*, image_shape: tuple[int, int, int], num_classes: int,
                       widths: tuple[int, ...] = (64, 128, 256), logit_scale: float = 1 / 9,
                       name: str = "speedrun_net") -> keras.Model:
    """Float images -> logits."""
    if not widths or min(widths) < 2 or num_classes < 2:
        raise ValueError("widths must be non-empty integers >= 2 and num_classes >= 2.")
    if min(image_shape[:2]) < 2 ** len(widths):
        raise ValueError(f"{len(widths)} blocks halve {image_shape[:2]} below one pixel: use fewer widths.")
    inputs = keras.Input(image_shape, name="images")

    x = layers.Conv2D(widths[0] // 2, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.Activation("gelu", name="stem_gelu")(_batch_norm("stem_bn")(x))
    for i, width in enumerate(widths, start=1):
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"block{i}_conv1")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        x = layers.Activation("gelu", name=f"block{i}_gelu1")(_batch_norm(f"block{i}_bn1")(x))
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"block{i}_conv2")(x)
        x = layers.Activation("gelu", name=f"block{i}_gelu2")(_batch_norm(f"block{i}_bn2")(x))
    x = layers.GlobalMaxPooling2D(name="global_pool")(x)
    x = layers.Dense(num_classes, use_bias=False, name="classifier")(x)
    logits = layers.Rescaling(logit_scale, name="logit_scale")(x)
    return keras.Model(inputs, logits, name=name)
