"""The optimizer and objective a TrainConfig trains a classifier with (TensorFlow-free: any Keras backend)."""

from __future__ import annotations

import keras

from keraszoo.config import TrainConfig


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=config.learning_rate, momentum=config.momentum)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=config.learning_rate)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=config.learning_rate, weight_decay=config.weight_decay)
    raise ValueError(f"optimizer={config.optimizer!r}: expected 'sgd', 'adam' or 'adamw'.")


def compile_for_classification(model: keras.Model, config: TrainConfig, **compile_options) -> None:
    """Sparse cross-entropy on logits and accuracy, with ``config``'s optimizer: what every keraszoo
    classifier trains with. ``compile_options`` go to ``model.compile`` (jit_compile, ...)."""
    model.compile(
        optimizer=make_optimizer(config),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        **compile_options,
    )
