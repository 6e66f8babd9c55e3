"""The optimizer and objective a TrainConfig trains a classifier with (TensorFlow-free: any Keras backend)."""

from __future__ import annotations

import keras

from keraszoo.config import TrainConfig


@keras.saving.register_keras_serializable(package="keraszoo")
class CoupledDecaySGD(keras.optimizers.SGD):
    """SGD whose weight decay is added to the gradient, before the momentum (PyTorch's ``weight_decay``,
    an L2 penalty): Keras's own ``weight_decay`` shrinks the weights outside the momentum, a 1 / (1 - momentum)
    times weaker decay (6.7 at momentum 0.85, 10 at 0.9). Frozen variables get neither gradient nor decay."""

    def __init__(self, *, coupled_decay: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.coupled_decay = float(coupled_decay)

    def update_step(self, gradient, variable, learning_rate):
        gradient = keras.ops.add(keras.ops.cast(gradient, variable.dtype),
                                 keras.ops.multiply(keras.ops.cast(self.coupled_decay, variable.dtype), variable))
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "coupled_decay": self.coupled_decay}


@keras.saving.register_keras_serializable(package="keraszoo")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy on logits against integer labels smoothed by ``label_smoothing`` (Keras's sparse loss has
    no smoothing): the target is (1 - s) on the label plus s / C on every class, C the logits' width."""

    def __init__(self, label_smoothing: float = 0.0, name: str = "smoothed_sparse_crossentropy", **kwargs):
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing={label_smoothing} must be in [0, 1).")
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        targets = keras.ops.one_hot(labels, y_pred.shape[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(targets, y_pred, from_logits=True,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def make_optimizer(config: TrainConfig, learning_rate=None) -> keras.optimizers.Optimizer:
    """``config``'s optimizer, at ``learning_rate`` (a per-step schedule, e.g. ``WarmupCosine``) or
    ``config.learning_rate``. SGD's weight decay is PyTorch's (in the gradient, through the momentum: what
    CIFAR recipes' 5e-4 means); AdamW's is decoupled; Adam takes none (the config refuses it)."""
    rate = config.learning_rate if learning_rate is None else learning_rate
    if config.optimizer == "sgd":
        if config.weight_decay:
            return CoupledDecaySGD(learning_rate=rate, momentum=config.momentum, coupled_decay=config.weight_decay)
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
