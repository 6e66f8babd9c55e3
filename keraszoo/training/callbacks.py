"""Learning-rate schedules as Keras callbacks (course part 2: exponential decay)."""

from __future__ import annotations

import keras


class ExponentialDecay(keras.callbacks.Callback):
    """lr = lr0 * gamma ** epoch, set at the start of every epoch and logged as ``learning_rate``.

    The rate depends on the epoch number only, so a resumed run (``initial_epoch > 0``)
    continues the schedule where it stopped.
    """

    def __init__(self, initial_learning_rate: float, gamma: float):
        super().__init__()
        if initial_learning_rate <= 0 or not 0 < gamma <= 1:
            raise ValueError(f"need initial_learning_rate > 0 and 0 < gamma <= 1, got {initial_learning_rate}, {gamma}.")
        self.initial_learning_rate, self.gamma = initial_learning_rate, gamma

    def learning_rate(self, epoch: int) -> float:
        return self.initial_learning_rate * self.gamma**epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate = self.learning_rate(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.learning_rate(epoch)
