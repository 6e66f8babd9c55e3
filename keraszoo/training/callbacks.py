"""Learning-rate schedules as Keras callbacks (course part 2: exponential decay)."""

from __future__ import annotations

import math

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


class WarmupCosine(keras.callbacks.Callback):
    """Linear warmup to ``peak_learning_rate`` over ``warmup_steps``, then cosine decay to 0.

    Set before every training step from the optimizer's own step counter, which a
    resumed run restores with the weights, so the schedule continues where it stopped.
    """

    def __init__(self, peak_learning_rate: float, *, total_steps: int, warmup_steps: int):
        super().__init__()
        if peak_learning_rate <= 0 or total_steps < 1 or not 0 <= warmup_steps < total_steps:
            raise ValueError("need peak_learning_rate > 0, total_steps >= 1 and 0 <= warmup_steps < total_steps.")
        self.peak, self.total_steps, self.warmup_steps = peak_learning_rate, total_steps, warmup_steps

    def learning_rate(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.peak * (step + 1) / self.warmup_steps
        progress = min((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 1.0)
        return 0.5 * self.peak * (1.0 + math.cos(math.pi * progress))

    def on_train_batch_begin(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        self.model.optimizer.learning_rate = self.learning_rate(step)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
