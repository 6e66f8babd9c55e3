"""Learning-rate schedules: per-epoch and clock-driven ones as Keras callbacks, per-step ones as optimizer schedules."""

from __future__ import annotations

import math
import time

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


@keras.saving.register_keras_serializable(package="keraszoo")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to ``peak_learning_rate`` over ``warmup_steps``, then cosine decay to 0.

    An optimizer's schedule, not a callback: the optimizer evaluates it at its own step counter
    inside the compiled training step, so every step gets its own rate even with several steps
    per call (``--steps-per-execution``), on any backend. The counter is saved and restored with
    the weights, so a resumed run continues the schedule where it stopped. The schedule is laid
    out over the run's epochs, so a resumed run must keep ``--epochs`` (``depends_on_epochs``
    tells the trainer to refuse a change).
    """

    depends_on_epochs = True

    def __init__(self, peak_learning_rate: float, *, total_steps: int, warmup_steps: int):
        if peak_learning_rate <= 0 or total_steps < 1 or not 0 <= warmup_steps < total_steps:
            raise ValueError("need peak_learning_rate > 0, total_steps >= 1 and 0 <= warmup_steps < total_steps.")
        self.peak, self.total_steps, self.warmup_steps = float(peak_learning_rate), int(total_steps), int(warmup_steps)

    @classmethod
    def for_epochs(cls, peak_learning_rate: float, *, epochs: int, num_examples: int, batch_size: int,
                   warmup_epochs: float) -> "WarmupCosine":
        """The schedule of a run of ``epochs`` over ``num_examples``, warmup given in epochs."""
        steps_per_epoch = math.ceil(num_examples / batch_size)
        total = epochs * steps_per_epoch
        return cls(peak_learning_rate, total_steps=total,
                   warmup_steps=min(int(warmup_epochs * steps_per_epoch), total - 1))

    def learning_rate(self, step: int) -> float:
        """The rate of step ``step`` (0-based), in Python: what ``__call__`` computes in the graph."""
        if step < self.warmup_steps:
            return self.peak * (step + 1) / self.warmup_steps
        progress = min((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 1.0)
        return 0.5 * self.peak * (1.0 + math.cos(math.pi * progress))

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        warmup = self.peak * (step + 1.0) / max(self.warmup_steps, 1)
        progress = ops.clip((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 0.0, 1.0)
        cosine = 0.5 * self.peak * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < self.warmup_steps, warmup, cosine)

    def get_config(self) -> dict:
        return {"peak_learning_rate": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}


class TimeBudget(keras.callbacks.Callback):
    """Trains for ``budget_s`` seconds of training time, with the learning rate following the clock.

    lr rises linearly to ``peak_learning_rate`` over the first ``warmup`` fraction of the budget,
    then falls linearly to 0 when the budget is spent, and training stops after that batch. Time
    spent evaluating between epochs is not counted, nor is the first step (which traces and compiles
    the training graph), so the budget is the optimisation's alone.
    For speedruns ("what does 10 minutes buy?"); the number of steps depends on the machine.
    The clock is read between calls into the backend, so with k steps per call
    (``--steps-per-execution k``) the rate is updated, and the budget checked, every k steps.
    """

    def __init__(self, peak_learning_rate: float, budget_s: float, warmup: float = 0.2, clock=time.perf_counter):
        super().__init__()
        if peak_learning_rate <= 0 or budget_s <= 0 or not 0 <= warmup < 1:
            raise ValueError("need peak_learning_rate > 0, budget_s > 0 and 0 <= warmup < 1.")
        self.peak, self.budget_s, self.warmup, self.clock = peak_learning_rate, budget_s, warmup, clock
        self.spent_s, self._since, self._compiled = 0.0, None, False

    def learning_rate(self, fraction: float) -> float:
        if fraction < self.warmup:
            return self.peak * max(fraction / self.warmup, 1e-3)
        return self.peak * max(1.0 - fraction, 0.0) / (1.0 - self.warmup)

    def _tick(self):
        now = self.clock()
        if self._since is not None:
            self.spent_s += now - self._since
        self._since = now

    def on_train_begin(self, logs=None):
        self._since = self.clock()

    def on_train_batch_begin(self, batch, logs=None):
        self._tick()
        self.model.optimizer.learning_rate = self.learning_rate(min(self.spent_s / self.budget_s, 1.0))

    def on_train_batch_end(self, batch, logs=None):
        if not self._compiled:  # the first step is mostly tracing: start the clock after it
            self._compiled, self.spent_s, self._since = True, 0.0, self.clock()
            return
        self._tick()
        if self.spent_s >= self.budget_s:
            self.model.stop_training = True

    def on_test_begin(self, logs=None):
        self._tick()  # count up to here, then pause the clock while evaluating
        self._since = None

    def on_test_end(self, logs=None):
        self._since = self.clock()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            logs["training_time_s"] = round(self.spent_s, 3)
