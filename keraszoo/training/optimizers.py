"""The optimizer and objective a TrainConfig trains a classifier with (TensorFlow-free: any Keras backend)."""

from __future__ import annotations

import keras

from keraszoo.config import TrainConfig


def make_optimizer(config: TrainConfig, learning_rate=None) -> keras.optimizers.Optimizer:
    """``config``'s optimizer, at ``learning_rate`` (a per-step schedule, e.g. ``WarmupCosine``) or
    ``config.learning_rate``."""
    rate = config.learning_rate if learning_rate is None else learning_rate
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=rate, momentum=config.momentum)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=rate)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=rate, weight_decay=config.weight_decay)
    raise ValueError(f"optimizer={config.optimizer!r}: expected 'sgd', 'adam' or 'adamw'.")


def compile_for_classification(model: keras.Model, config: TrainConfig, learning_rate=None, *, optimizer=None,
                               loss=None, **compile_options) -> None:
    """Sparse cross-entropy on logits and accuracy, with ``config``'s optimizer (at ``learning_rate``,
    see ``make_optimizer``): what every keraszoo classifier trains with, unless a recipe gives its own
    ``optimizer`` or ``loss`` (airbench's). ``compile_options`` go to ``model.compile`` (jit_compile, ...)."""
    model.compile(
        optimizer=optimizer or make_optimizer(config, learning_rate),
        loss=loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        **compile_options,
    )
