"""A short real training on CIFAR-10: chance-level start, falling loss, a complete run record."""

import importlib
import dataclasses
import json
import math
import re
from pathlib import Path

import pytest

from keraszoo.training import RunFolderConflict
from keraszoo.training.run_record import read_history


def test_first_loss_is_chance_level_and_loss_decreases(short_cifar10_run):
    config, metrics = short_cifar10_run
    # The course's "error at the start": an untrained 10-class net predicts ~uniformly.
    assert metrics["initial_val_loss"] == pytest.approx(math.log(10), abs=0.1)
    history = read_history(Path(config.output) / "history.csv")
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[1]["loss"] < history[0]["loss"] < metrics["initial_val_loss"]
    assert metrics["train_loss"] == history[-1]["loss"]
    # Chance is 10 % (+-1.3 points on 512 test images); a broken label or input path stays there.
    assert metrics["test_accuracy"] > 0.2


def test_run_record_is_complete(short_cifar10_run):
    config, metrics = short_cifar10_run
    run = Path(config.output)
    assert json.loads((run / "config.json").read_text())["train_split"] == "train[:4096]"
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((run / "metrics.json").read_text())
    for key in ("test_accuracy", "test_loss", "epochs", "seed", "wall_time_s", "environment"):
        assert key in saved
    assert saved["epochs"] == 2 and saved["num_train_examples"] == 4096
    assert saved["environment"]["tensorflow"] and saved["environment"]["cpu"]
    assert saved["num_params"] == 1_191_170
    columns = read_history(run / "history.csv")[0].keys()
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_time_s"} <= set(columns)
    assert not (run / "checkpoint").exists()  # dropped once the export is safe


def test_validation_is_monitored_every_epoch_and_test_evaluated_once_apart(short_cifar10_run, data_dir):
    """history.csv's val_ columns are the validation split's, metrics.json's test_ entries the test split's:
    the saved model, evaluated on each split, gives each number back (a swap of the two splits fails)."""
    import keras

    import keraszoo.models  # noqa: F401 - registers keraszoo's layers
    from keraszoo.data import read_split

    config, metrics = short_cifar10_run
    history = read_history(Path(config.output) / "history.csv")
    assert (metrics["validation_split"], metrics["test_split"]) == ("train[-512:]", "test[:512]")
    assert metrics["val_accuracy"] == history[-1]["val_accuracy"]
    assert metrics["best_val_accuracy"] == max(row["val_accuracy"] for row in history)
    assert not any(key.startswith("test") for row in history for key in row)
    model = keras.models.load_model(Path(config.output) / "model.keras", compile=False)
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    for split, key in (("train[-512:]", "val_accuracy"), ("test[:512]", "test_accuracy")):
        batches = read_split("cifar10", split, data_dir=data_dir).batches(batch_size=256)
        assert model.evaluate(batches, verbose=0, return_dict=True)["accuracy"] == pytest.approx(metrics[key], abs=1e-6)
    assert metrics["val_accuracy"] != metrics["test_accuracy"]


@pytest.mark.parametrize("train, validation, test, shared", [
    ("train", "train[-5000:]", "test", "5,000 examples (train[45000:50000])"),
    ("train[:1000]", "train[900:1500]", "test", "100 examples (train[900:1000])"),
    ("train[:1000]", "train[-500:]", "train[1%:3%]", "500 examples (train[500:1000])"),
])
def test_overlapping_splits_are_refused_before_anything_is_read(cifar10_recipe, data_dir, tmp_path, train,
                                                                  validation, test, shared):
    from keraszoo.training.runner import load_data

    config = cifar10_recipe.Cifar10CNNConfig(data_dir=data_dir, train_split=train, validation_split=validation,
                                             test_split=test, output=str(tmp_path / "run"))
    with pytest.raises(ValueError, match=re.escape(f"share {shared}")):
        load_data("cifar10", config)
    assert not (tmp_path / "run").exists()


def test_same_seed_gives_the_same_metrics(short_cifar10_run, cifar10_recipe, tmp_path):
    """The shared run's first epoch, trained again from the same seed: the same numbers, not close ones."""
    config, metrics = short_cifar10_run
    again = cifar10_recipe.main(dataclasses.replace(config, output=str(tmp_path / "again"), export=False, epochs=1))
    first = read_history(Path(config.output) / "history.csv")[0]
    assert again["initial_val_loss"] == metrics["initial_val_loss"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert again[{"loss": "train_loss", "accuracy": "train_accuracy"}.get(key, key)] == first[key], key


def test_resuming_with_other_options_is_refused(cifar10_recipe, data_dir, tmp_path):
    from keraszoo.training.checkpoint import EpochCheckpoint

    config = cifar10_recipe.Cifar10CNNConfig(
        data_dir=data_dir, train_split="train[:64]", validation_split="train[-64:]", test_split="test[:64]", epochs=1,
        output=str(tmp_path / "run"), export=False, verbose="0", evaluate_at_init=False,
    )
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".keraszoo-run").write_text("{}")  # a run folder, as a killed run leaves it
    (tmp_path / "run" / "config.json").write_text(json.dumps(config.to_dict()))
    EpochCheckpoint(tmp_path / "run" / "checkpoint").directory.joinpath("epoch-00001").mkdir(parents=True)
    (tmp_path / "run" / "checkpoint" / "epoch-00001" / "state.json").write_text("{}")
    with pytest.raises(RunFolderConflict, match="learning_rate: 0.1 -> 0.01"):
        cifar10_recipe.main(dataclasses.replace(config, learning_rate=0.01))


def test_checkpoint_restores_weights_and_optimizer_state(tmp_path):
    """Momentum buffers and the step count must come back too, or a resume is not exact."""
    import keras
    import numpy as np

    from keraszoo.training.checkpoint import EpochCheckpoint

    def make():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "mse")
        return model

    x, y = np.ones((8, 4), "float32"), np.zeros((8, 3), "float32")
    trained = make()
    trained.fit(x, y, epochs=2, batch_size=4, verbose=0)
    state = {"epoch": 2, "history": [{"epoch": 1}, {"epoch": 2}], "initial": {}, "resumed_at": []}
    EpochCheckpoint(tmp_path).save(trained, state)
    restored = make()
    assert EpochCheckpoint(tmp_path).restore(restored) == state
    assert int(restored.optimizer.iterations.numpy()) == 4
    for got, want in zip(restored.optimizer.variables, trained.optimizer.variables):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    for got, want in zip(restored.weights, trained.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-00002"]  # no temporary folder left


def test_time_budget_schedule_follows_the_clock_and_stops():
    from keraszoo.training.callbacks import TimeBudget

    now = [0.0]
    budget = TimeBudget(1.0, budget_s=10.0, warmup=0.2, clock=lambda: now[0])
    assert budget.learning_rate(0.1) == pytest.approx(0.5) and budget.learning_rate(0.2) == pytest.approx(1.0)
    assert budget.learning_rate(0.6) == pytest.approx(0.5) and budget.learning_rate(1.0) == 0.0

    class Model:
        stop_training = False

        class optimizer:
            learning_rate = None

    model = Model()
    budget.set_model(model)
    budget.on_train_begin()
    now[0] = 30.0  # the first step traces the graph: not counted
    budget.on_train_batch_begin(0)
    budget.on_train_batch_end(0)
    assert budget.spent_s == 0.0
    for _ in range(4):
        now[0] += 1.0
        budget.on_train_batch_begin(0)
        budget.on_train_batch_end(0)
    budget.on_test_begin()
    now[0] += 100.0  # evaluation: not counted
    budget.on_test_end()
    assert budget.spent_s == pytest.approx(4.0) and not model.stop_training
    for _ in range(6):
        now[0] += 1.0
        budget.on_train_batch_begin(0)
        assert model.optimizer.learning_rate == pytest.approx(budget.learning_rate(budget.spent_s / 10.0))
        budget.on_train_batch_end(0)
    assert budget.spent_s == pytest.approx(10.0) and model.stop_training


def test_speedrun_recipe_stops_on_budget_and_exports_without_random_layers(data_dir, tmp_path):
    recipe = importlib.import_module("keraszoo.recipes.cifar10_speedrun")
    metrics = recipe.main(recipe.SpeedrunConfig(
        data_dir=data_dir, train_split="train[:4096]", validation_split="train[-256:]", test_split="test[:256]",
        budget_s=3.0, widths="8,16,32",
        # 20, not the default 1000: the training stream holds one shuffled dataset per epoch, and building
        # 1000 of them took ~55 s before the first step; the budget ends training after about 2 epochs anyway.
        epochs=20, batch_size=64, output=str(tmp_path / "run"), export_dir=str(tmp_path / "models"), verbose="0"))
    assert 1 <= metrics["epochs"] < 20 and metrics["budget_s"] == 3.0
    from keraszoo.export import load_keras_model

    exported = load_keras_model(metrics["saved_model"])
    assert not [layer.name for layer in exported.layers if layer.name in ("flip", "translate")]
