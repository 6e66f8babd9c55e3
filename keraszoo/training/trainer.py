"""The training loop every recipe shares: compile, fit with resume, evaluate, record.

It runs on any Keras backend (TensorFlow, JAX, PyTorch), from a tf.data split
(``keraszoo.data.SplitData``) or an in-memory one (``keraszoo.data.ArraySplit``),
with the same callbacks, checkpoints and run record.

A recipe seeds (``seed_everything``), builds its model, then calls ``train``.
``train`` resumes from the run folder's checkpoint when there is one, so a run
killed at any point and started again with the same command continues from its
last finished epoch with the same weights, optimizer state and data order.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import keras

from keraszoo import faults
from keraszoo.analysis.chance_level import chance_level_report, format_report
from keraszoo.config import TrainConfig
from keraszoo.errors import TrainingDiverged
from keraszoo.training import hardware, run_folder, run_record
from keraszoo.training.checkpoint import EpochCheckpoint
from keraszoo.training.distribute import resolve_jit_compile
from keraszoo.training.optimizers import compile_for_classification
from keraszoo.training.resume import start_or_resume
from keraszoo.training.run_folder import CHECKPOINT_DIR

EVAL_BATCH_SIZE = 256
PLOT_EVERY_S = 30.0


@dataclass
class TrainResult:
    metrics: dict
    history: list[dict]
    output_dir: Path
    run_marker: dict


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    """Seeds Python, NumPy, TensorFlow and Keras; optionally makes TF ops deterministic.

    Call before building the model: the seed fixes the initial weights.
    """
    keras.utils.set_random_seed(seed)
    if deterministic and keras.backend.backend() == "tensorflow":  # JAX's CPU and GPU kernels are deterministic
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def compile_classifier(model: keras.Model, config: TrainConfig, learning_rate=None, **recipe_own) -> None:
    """``compile_for_classification`` with the recipes' execution options; ``learning_rate``: a
    per-step schedule (default: ``config.learning_rate``); ``recipe_own``: a recipe's optimizer or loss."""
    compile_for_classification(
        model,
        config,
        learning_rate,
        **recipe_own,
        # Keras's "auto" turns XLA on; it made the course's CNN ~2x slower on our CPUs.
        jit_compile=resolve_jit_compile(config.jit_compile),
        # Several steps per tf.function call: the per-call cost (~2 ms here) dominates small models.
        # Per-step schedules are the optimizer's own (evaluated in the step), so they hold with it.
        steps_per_execution=config.steps_per_execution,
    )


def _current_learning_rate(model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class _EpochRecorder(keras.callbacks.Callback):
    """Appends each epoch to the history, then checkpoints and redraws the record.

    Runs after every other callback so that it sees their logs (e.g. a schedule's
    learning rate), and checkpoints the history together with the weights, so the
    history on disk never disagrees with the state a resume starts from.
    """

    def __init__(self, state: dict, checkpoint: EpochCheckpoint, output_dir: Path, title: str):
        super().__init__()
        self.state, self.checkpoint, self.output_dir, self.title = state, checkpoint, output_dir, title
        self._last_plot = -float("inf")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._train_time = None

    def on_test_begin(self, logs=None):
        # Validation runs inside fit after the epoch's training steps.
        if self._train_time is None:
            self._train_time = time.perf_counter() - self._epoch_start

    def on_epoch_end(self, epoch, logs=None):
        epoch_time = time.perf_counter() - self._epoch_start
        row = {"epoch": epoch + 1}
        row.update({key: float(value) for key, value in (logs or {}).items()})
        row["learning_rate"] = row.pop("learning_rate", _current_learning_rate(self.model))
        row["train_time_s"] = round(self._train_time or epoch_time, 3)
        row["epoch_time_s"] = round(epoch_time, 3)
        bad = {key: value for key, value in row.items() if isinstance(value, float) and not math.isfinite(value)}
        if bad:  # never checkpointed: a rerun resumes from the last finite epoch
            raise TrainingDiverged(f"{', '.join(f'{k}={v}' for k, v in bad.items())} at the end of epoch {epoch + 1}: "
                                   "the run stopped and exported nothing; lower --learning-rate.")
        self.state["history"].append(row)
        self.state["epoch"] = epoch + 1
        self.checkpoint.save(self.model, self.state)
        run_record.write_history(self.output_dir / run_record.HISTORY_FILE, self.state["history"])
        # Drawing takes ~0.3 s: redraw at most every PLOT_EVERY_S, not on each of 500 one-step epochs.
        # train() draws the final figure once training ends.
        if time.perf_counter() - self._last_plot >= PLOT_EVERY_S:
            run_record.plot_curves(self.output_dir / run_record.CURVES_FILE, self.state["history"],
                                   title=self.title, initial=self.state["initial"])
            self._last_plot = time.perf_counter()


class _StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops a run whose training loss became NaN or infinite, saying where (Keras's TerminateOnNaN
    ends fit quietly, and the run would then export a broken model)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingDiverged(
                f"the training loss became {float(loss)} at epoch {self.epoch}, step {batch + 1}: the run stopped "
                "and exported nothing (the last finished epoch's checkpoint is kept); lower --learning-rate."
            )


class _PausePoints(keras.callbacks.Callback):
    """Mid-epoch points for the kill tests (keraszoo.faults); added only when asked for."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        faults.pause_point(f"epoch-{self.epoch}/batch-{batch + 1}")


def write_record_files(output_dir: Path, history: list[dict], title: str, initial: dict,
                       test: dict | None = None) -> None:
    run_record.write_history(output_dir / run_record.HISTORY_FILE, history)
    run_record.plot_curves(output_dir / run_record.CURVES_FILE, history, title=title, initial=initial, test=test)


def train(
    model: keras.Model,
    *,
    train_data,
    validation_data,
    test_data,
    config: TrainConfig,
    output_dir: str | Path,
    title: str | None = None,
    schedule=None,
    extra_metrics: dict | None = None,
    num_classes: int | None = None,
    run_name: str | None = None,
    marker: dict | None = None,
    callbacks: list | None = None,
) -> TrainResult:
    """Trains ``model`` (compiling it if needed), evaluating ``validation_data`` after every epoch
    and ``test_data`` once, when training ends (course Q.1: the test split never chooses anything).

    The splits are ``SplitData`` (tf.data) or ``ArraySplit`` (NumPy). history.csv's ``val_``
    columns are the validation split's; metrics.json has ``val_`` and ``test_`` entries apart.

    Writes the run record into ``output_dir`` as it goes and returns the final
    metrics (also in ``metrics.json``). ``extra_metrics`` adds recipe-specific entries
    (dataset name, variant, ...) to the metrics. The resume checkpoint stays in
    ``output_dir/checkpoint`` until ``finish_run`` removes it, so a kill during
    export does not cost the training. ``num_classes`` defaults to the model's last
    output dimension. ``schedule``: the learning rate's schedule, a per-step ``LearningRateSchedule``
    (the optimizer's: compile the model with it) or a per-epoch callback; it also decides whether
    --epochs may change on resume. ``marker``: the run folder's, from ``run_folder.claim`` (the runner
    claims it); without it the folder is claimed here: a folder holding files of somebody else's is refused.
    ``callbacks``: a recipe's own (airbench's lookahead), run before the epoch is recorded and checkpointed.
    """
    output_dir = Path(output_dir)
    title = title or model.name
    num_classes = num_classes or int(model.output_shape[-1])
    if config.mixed_precision is None:  # called with a model the caller built: record the precision it has
        config = dataclasses.replace(config, mixed_precision=model.dtype_policy.name.startswith("mixed"))
    per_epoch = [schedule] if isinstance(schedule, keras.callbacks.Callback) else []
    if not model.compiled:
        compile_classifier(model, config, None if per_epoch else schedule)
    checkpoint = EpochCheckpoint(output_dir / CHECKPOINT_DIR)
    if marker is None:
        marker = run_folder.claim(output_dir, run_name)
    state, marker = start_or_resume(model, config, output_dir, checkpoint, schedule, run_name, marker)

    validation_batches = _eval_batches(validation_data, config)
    if config.evaluate_at_init and not state["initial"]:
        state["initial"] = _evaluate_at_init(model, validation_batches, num_classes)
    if state["epoch"] < config.epochs:
        _fit(model, train_data, validation_batches, config, state,
             callbacks=[*per_epoch, *(callbacks or []), *_guards(config, output_dir),
                        _EpochRecorder(state, checkpoint, output_dir, title)])
    history = state["history"][: config.epochs]
    test = _test_once(model, test_data, config)
    metrics = _final_metrics(history, state, config, train_data, validation_data, test_data,
                             {**(extra_metrics or {}), **test, "run_id": marker.get("run_id")})
    write_record_files(output_dir, history, title, state["initial"], test)
    run_record.write_json(output_dir / run_record.METRICS_FILE, metrics)
    return TrainResult(metrics=metrics, history=history, output_dir=output_dir, run_marker=marker)


def _eval_batches(data, config: TrainConfig):
    """Evaluation batches need not be as small as training ones (online SGD trains on 1 example). Never
    larger than the split: under a tf.distribute strategy Keras builds the model from the first batch
    reduced over replicas, which fails when a short batch splits unevenly (64 as 64 + 0)."""
    return data.batches(batch_size=min(max(config.batch_size, EVAL_BATCH_SIZE), data.num_examples))


def _evaluate_at_init(model, validation_batches, num_classes: int) -> dict:
    """The untrained model on the validation split against chance level (ln C, 1/C): a wrong loss or a
    broken input shows before any training."""
    start = time.perf_counter()
    initial = model.evaluate(validation_batches, verbose=0, return_dict=True)
    report = chance_level_report(initial["loss"], initial["accuracy"], num_classes)
    print(f"Before training: {format_report(report)}")
    return {
        "initial_val_loss": report["initial_loss"],
        "initial_val_accuracy": report["initial_accuracy"],
        "chance_level_loss": report["chance_loss"],
        "initial_loss_near_chance": report["ok"],
        "initial_eval_time_s": round(time.perf_counter() - start, 3),
    }


def _guards(config: TrainConfig, output_dir: Path) -> list:
    """The callbacks that stop a diverged run, pause for the kill tests, and write TensorBoard's logs."""
    guards = [_StopOnNonFiniteLoss(), *([_PausePoints()] if faults.enabled() else [])]
    if config.tensorboard:
        guards.append(_tensorboard(output_dir / run_record.TENSORBOARD_DIR))
    return guards


def _fit(model, train_data, validation_batches, config: TrainConfig, state: dict, *, callbacks: list) -> None:
    """Epochs ``state["epoch"]`` to ``config.epochs``, each with its own shuffle of (seed, epoch)."""
    stream, steps_per_epoch = train_data.epoch_batches(
        batch_size=config.batch_size, seed=config.seed, first_epoch=state["epoch"], last_epoch=config.epochs)
    _end_every_epoch_with_a_call(model, config.steps_per_execution, steps_per_epoch)
    model.fit(
        stream,
        epochs=config.epochs,
        initial_epoch=state["epoch"],
        steps_per_epoch=steps_per_epoch,
        validation_data=validation_batches,
        shuffle=False,  # the stream is already shuffled, per epoch and reproducibly
        callbacks=callbacks,
        verbose=config.keras_verbose(),
    )


def _test_once(model, test_data, config: TrainConfig) -> dict:
    """The test split, once: after the last epoch, on the weights that are saved and exported."""
    start = time.perf_counter()
    test = model.evaluate(_eval_batches(test_data, config), verbose=0, return_dict=True)
    return {"test_loss": float(test["loss"]), "test_accuracy": float(test["accuracy"]),
            "test_eval_time_s": round(time.perf_counter() - start, 3)}


def steps_per_call(requested: int, steps_per_epoch: int) -> int:
    """The largest number of steps per call, at most ``requested``, that divides an epoch."""
    return max(k for k in range(1, min(requested, steps_per_epoch) + 1) if steps_per_epoch % k == 0)


def _end_every_epoch_with_a_call(model, requested: int, steps_per_epoch: int) -> None:
    """Keras runs whole calls of N steps from one stream across epochs, so an epoch of 63 steps at 4 a
    call would take its 64th step from the next epoch: validation, checkpoints and a resume would then
    fall between other steps than with one step a call. The steps per call are lowered to a divisor
    of the epoch instead, said in one line (not when the whole epoch is one call anyway)."""
    steps = steps_per_call(requested, steps_per_epoch)
    if steps != model.steps_per_execution:
        if steps < steps_per_epoch:
            print(f"--steps-per-execution {requested}: {steps} steps a call instead, the largest that divides an "
                  f"epoch's {steps_per_epoch} steps, so that every epoch ends with a call.")
        model.steps_per_execution = steps
        model.train_function = None  # rebuilt by fit with the new count


def _tensorboard(log_dir: Path) -> keras.callbacks.Callback:
    """Keras's TensorBoard callback: it writes with tf.summary, so it needs TensorFlow on any backend."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        raise ValueError("--tensorboard writes its logs with TensorFlow's tf.summary: install tensorflow, "
                         "or train without --tensorboard.") from None
    print(f"TensorBoard logs: {log_dir} (view: tensorboard --logdir {log_dir})", flush=True)
    return keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=True, update_freq="epoch")


def _final_metrics(history, state, config, train_data, validation_data, test_data, extra_metrics) -> dict:
    if not history:
        raise RuntimeError("training produced no epoch; check --epochs and the training split.")
    last = history[-1]
    best = max(history, key=lambda row: row["val_accuracy"])
    train_times = [row["train_time_s"] for row in history]
    return {
        **extra_metrics,
        "val_accuracy": last["val_accuracy"],
        "val_loss": last["val_loss"],
        "train_accuracy": last["accuracy"],
        "train_loss": last["loss"],
        "best_epoch": best["epoch"],  # by validation accuracy
        "best_val_accuracy": best["val_accuracy"],
        **state["initial"],
        "epochs": len(history),
        "seed": config.seed,
        "train_split": train_data.split,
        "validation_split": validation_data.split,
        "test_split": test_data.split,
        "num_train_examples": train_data.num_examples,
        "num_validation_examples": validation_data.num_examples,
        "num_test_examples": test_data.num_examples,
        "wall_time_s": round(
            sum(row["epoch_time_s"] for row in history)
            + state["initial"].get("initial_eval_time_s", 0.0),
            3,
        ),
        "mean_train_time_per_epoch_s": round(sum(train_times) / len(train_times), 3),
        "resumed_at_epochs": state["resumed_at"],
        "peak_rss_mib": hardware.peak_rss_mib(),
        "environment": hardware.environment(),
    }


def finish_run(output_dir: str | Path, marker: dict | None = None, saved_model: str | None = None) -> None:
    """Marks the run finished (a rerun of the same command is then a no-op), then drops the checkpoint.

    In that order: a kill in between leaves a finished run with a stale checkpoint, never an
    unfinished run without one.
    """
    output_dir = Path(output_dir)
    if marker is not None:
        run_folder.mark_finished(output_dir, marker, saved_model)
    EpochCheckpoint(output_dir / CHECKPOINT_DIR).clear()
