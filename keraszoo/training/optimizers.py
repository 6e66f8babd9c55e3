"""The optimizer a TrainConfig names (TensorFlow-free: any Keras backend)."""

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
