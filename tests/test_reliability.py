"""Every bad input a run can meet gets one clear line (or a clean refusal), and a run only deletes its own files.

Each test reproduces a defect found by killing and abusing real runs (docs/reliability.md lists them
with what the user sees). Most use the MLP on circles, which trains in about a second.
"""

from __future__ import annotations

import importlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from keraszoo.errors import CheckpointError, RunFolderConflict, TrainingDiverged



@pytest.fixture(scope="module")
def mlp():
    return importlib.import_module("keraszoo.recipes.mlp")


def _config(mlp, tmp_path, **overrides):
    fields = dict(dataset="circles", epochs=2, circles_train_size=256, circles_test_size=128, verbose="0",
                  output=str(tmp_path / "run"), export_dir=str(tmp_path / "models"))
    return mlp.MLPConfig(**{**fields, **overrides})


def _one_line_error(stderr: str, fragment: str) -> None:
    assert "Traceback" not in stderr, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and fragment in errors[0], stderr[-2000:]


# --- a run deletes only what it wrote -------------------------------------------------------------

def test_a_folder_with_files_of_someone_else_is_refused_and_left_intact(mlp, tmp_path):
    (tmp_path / "run" / "checkpoint").mkdir(parents=True)
    (tmp_path / "run" / "checkpoint" / "important.txt").write_text("x")
    (tmp_path / "run" / "config.json").write_text("mine")
    with pytest.raises(RunFolderConflict, match="not a keraszoo run folder"):
        mlp.main(_config(mlp, tmp_path))
    assert (tmp_path / "run" / "checkpoint" / "important.txt").read_text() == "x"
    assert (tmp_path / "run" / "config.json").read_text() == "mine"
    assert not (tmp_path / "models").exists()


def test_restart_replaces_the_runs_own_files_and_keeps_the_users(mlp, tmp_path):
    first = mlp.main(_config(mlp, tmp_path))
    (tmp_path / "run" / "notes.txt").write_text("keep me")
    (tmp_path / "run" / "checkpoint").mkdir()
    (tmp_path / "run" / "checkpoint" / "mine.txt").write_text("keep me too")
    again = mlp.main(_config(mlp, tmp_path, restart=True))
    assert again["run_id"] != first["run_id"] and again["saved_model"].endswith("/2")
    assert (tmp_path / "run" / "notes.txt").read_text() == "keep me"
    assert (tmp_path / "run" / "checkpoint" / "mine.txt").read_text() == "keep me too"


def test_a_finished_run_run_again_is_a_no_op_that_says_where_its_model_is(mlp, tmp_path, capsys):
    first = mlp.main(_config(mlp, tmp_path))
    capsys.readouterr()
    again = mlp.main(_config(mlp, tmp_path))
    assert f"its model is {first['saved_model']}" in capsys.readouterr().out
    assert again["saved_model"] == first["saved_model"] and again["test_accuracy"] == first["test_accuracy"]
    assert sorted(os.listdir(tmp_path / "models" / "mlp_circles_manual")) == ["1"]
    with pytest.raises(RunFolderConflict, match="finished run with other options.*learning_rate"):
        mlp.main(_config(mlp, tmp_path, learning_rate=0.5))


def test_stale_temporary_exports_of_dead_processes_are_removed(mlp, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    model_dir = tmp_path / "models" / "mlp_circles_manual"
    (model_dir / f".tmp-export-{int(dead.stdout)}").mkdir(parents=True)
    (model_dir / f".tmp-export-{os.getppid()}").mkdir()  # a live process: still exporting, left alone
    mlp.main(_config(mlp, tmp_path))
    assert sorted(os.listdir(model_dir)) == [f".tmp-export-{os.getppid()}", "1"]


# --- damaged checkpoints are found, named, and never trained on -----------------------------------

@pytest.fixture(scope="module")
def unfinished_run(mlp, tmp_path_factory):
    """A run folder holding a verified checkpoint after epoch 1, as a kill leaves it (copied by each test)."""
    from keraszoo.training import train
    from keraszoo.training.trainer import seed_everything

    root = tmp_path_factory.mktemp("unfinished")
    config = _config(mlp, root, epochs=1, export=False)
    data = mlp._data(config)
    seed_everything(0)
    model = mlp.build_model(config, data.metadata).training  # the manual MLP and its functional twin
    train(model, train_data=data.train, validation_data=data.validation, test_data=data.test, config=config,
          output_dir=root / "run", num_classes=2)
    return root / "run"


def _unfinished_run(mlp, unfinished_run, tmp_path):
    shutil.copytree(unfinished_run, tmp_path / "run")
    config = _config(mlp, tmp_path, epochs=2, export=False)
    return config, tmp_path / "run" / "checkpoint" / "epoch-00001"


@pytest.mark.parametrize("damage, message", [
    (lambda c: _overwrite(c / "model.weights.h5", 512, b"\x55" * 4096), "model.weights.h5 is damaged"),
    (lambda c: (c / "model.weights.h5").write_bytes(b""), "model.weights.h5 is damaged"),
    (lambda c: (c / "state.json").write_text("junk"), "state.json is damaged"),
    (lambda c: (c / "checksums.json").unlink(), "checksums.json is missing"),
    (lambda c: (c.parent.parent / "config.json").unlink(), "config.json is missing"),
])
def test_a_damaged_checkpoint_is_reported_with_the_file_and_the_way_out(mlp, unfinished_run, tmp_path, damage,
                                                                        message):
    config, checkpoint = _unfinished_run(mlp, unfinished_run, tmp_path)
    damage(checkpoint)
    with pytest.raises(CheckpointError, match=message) as caught:
        mlp.main(config)
    assert "--restart" in str(caught.value)
    assert not (tmp_path / "run" / "checkpoint" / "epoch-00002").exists()  # nothing trained on it


def test_restart_is_the_way_out_of_a_damaged_checkpoint(mlp, unfinished_run, tmp_path):
    config, checkpoint = _unfinished_run(mlp, unfinished_run, tmp_path)
    (checkpoint / "state.json").write_text("junk")
    restarted = mlp.main(dataclasses.replace(config, restart=True))
    assert restarted["epochs"] == 2 and restarted["resumed_at_epochs"] == []


def test_a_state_without_history_is_refused_even_with_matching_checksums(mlp, unfinished_run, tmp_path):
    from keraszoo.training.checkpoint import sha256

    config, checkpoint = _unfinished_run(mlp, unfinished_run, tmp_path)
    state = json.loads((checkpoint / "state.json").read_text())
    del state["history"]
    (checkpoint / "state.json").write_text(json.dumps(state))
    sums = json.loads((checkpoint / "checksums.json").read_text())
    (checkpoint / "checksums.json").write_text(json.dumps({**sums, "state.json": sha256(checkpoint / "state.json")}))
    with pytest.raises(CheckpointError, match="state.json lacks history"):
        mlp.main(config)


def _overwrite(path: Path, offset: int, data: bytes) -> None:
    content = bytearray(path.read_bytes())
    content[offset:offset + len(data)] = data
    path.write_bytes(bytes(content))


def test_checkpoint_keeps_the_random_layers_state():
    """Keras leaves SeedGenerator states out of weight files; a resume must still draw the same masks."""
    import keras

    from keraszoo.training.checkpoint import EpochCheckpoint, seed_states

    def make():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.5), keras.layers.Dense(3)])
        model.compile(keras.optimizers.SGD(0.1), "mse")
        return model

    x, y = np.ones((8, 4), "float32"), np.zeros((8, 3), "float32")
    trained = make()
    trained.fit(x, y, epochs=2, batch_size=4, verbose=0)
    fresh = make()
    assert not np.array_equal(seed_states(trained)[0].numpy(), seed_states(fresh)[0].numpy())
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        EpochCheckpoint(folder).save(trained, {"epoch": 2, "history": [], "initial": {}, "resumed_at": []})
        EpochCheckpoint(folder).restore(fresh)
    np.testing.assert_array_equal(seed_states(fresh)[0].numpy(), seed_states(trained)[0].numpy())
    np.testing.assert_array_equal(fresh(x, training=True).numpy(), trained(x, training=True).numpy())


# --- options: finite, checked before the first step ------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--learning-rate", "inf"], "learning_rate=inf: give a finite number"),
    (["--circles-noise", "nan"], "circles_noise=nan: give a finite number"),
    (["--export-name", "../evil"], "export_name='../evil'"),
])
def test_non_finite_and_path_like_options_are_refused_at_parse_time(mlp, argv, message, capsys):
    from keraszoo.config import parse_config

    with pytest.raises(SystemExit) as exit_:
        parse_config(mlp.MLPConfig, ["--dataset", "circles", *argv])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_a_file_as_export_dir_or_output_is_refused_before_training(mlp, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderConflict, match="--export-dir .* is a file"):
        mlp.main(_config(mlp, tmp_path, export_dir=str(tmp_path / "file" / "models")))
    assert not (tmp_path / "run" / "history.csv").exists()  # refused before the first epoch
    with pytest.raises(RunFolderConflict, match="--output .* is a file"):
        mlp.main(_config(mlp, tmp_path, output=str(tmp_path / "file")))


def test_a_loss_that_becomes_nan_stops_the_run_says_where_and_exports_nothing(mlp, tmp_path):
    with pytest.raises(TrainingDiverged, match=r"became (nan|inf) at epoch 1, step \d+"):
        # 1e38 is finite, but the first step's update overflows float32.
        mlp.main(_config(mlp, tmp_path, implementation="keras", learning_rate=1e38))
    assert not (tmp_path / "models").exists() and not (tmp_path / "run" / "metrics.json").exists()


def test_command_line_failures_are_one_line_with_a_non_zero_status(mlp, tmp_path, capsys):
    from keraszoo.training.command_line import cli_main

    (tmp_path / "file").write_text("x")
    cases = [
        (["--output", tmp_path / "file"], 2, "is a file, not a folder"),
        (["--output", "/proc/keraszoo-cannot-write-here/run"], 2, "cannot write the run folder"),
        (["--learning-rate", "1e38", "--output", tmp_path / "nan"], 1, "exported nothing"),
    ]
    for argv, status, message in cases:
        argv = ["--dataset", "circles", "--epochs", "1", "--verbose", "0", "--export-dir", tmp_path / "models", *argv]
        assert cli_main(mlp.main, mlp.MLPConfig, "", [str(a) for a in argv]) == status, argv
        _one_line_error(capsys.readouterr().err, message)


# --- history, data and SavedModels ----------------------------------------------------------------

def test_history_columns_do_not_depend_on_the_rows_key_order(tmp_path):
    from keraszoo.training.run_record import write_history

    row = {"epoch": 1, "loss": 0.5, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.7, "learning_rate": 0.1,
           "train_time_s": 1.0, "epoch_time_s": 1.2, "extra": 3}
    write_history(tmp_path / "a.csv", [row])
    write_history(tmp_path / "b.csv", [dict(sorted(row.items()))])  # as a resumed run reads it from JSON
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    assert (tmp_path / "a.csv").read_text().splitlines()[0].startswith("epoch,loss,accuracy,val_loss,val_accuracy")


@pytest.fixture(scope="module")
def damaged_mnist(data_dir, tmp_path_factory):
    """A copy of the prepared MNIST whose test shard has 4 KiB of garbage in it."""
    root = tmp_path_factory.mktemp("damaged_data")
    shutil.copytree(Path(data_dir) / "mnist", root / "mnist")
    (shard,) = (root / "mnist").glob("*/mnist-test.tfrecord*")
    shard.chmod(0o644)
    _overwrite(shard, 300_000, b"\x55" * 4096)
    return root, shard


def test_a_damaged_dataset_file_is_named(damaged_mnist, capsys):
    from keraszoo import cli

    root, shard = damaged_mnist
    assert cli.main(["evaluate", str(ROOT / "saved_models" / "mnist_vit"), "--data-dir", str(root)]) == 1
    _one_line_error(capsys.readouterr().err, f"{shard} is damaged (corrupted record at")


@pytest.fixture(scope="module")
def saved_model_copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved_models")
    shutil.copytree(ROOT / "saved_models" / "mnist_vit" / "1", root / "mnist_vit" / "1")
    return root / "mnist_vit"


def test_show_and_evaluate_skip_an_incomplete_version_as_serve_does(saved_model_copy, capsys):
    from keraszoo import cli

    (saved_model_copy / "2").mkdir()
    shutil.copy(saved_model_copy / "1" / "saved_model.pb", saved_model_copy / "2")
    try:
        assert cli.main(["show", str(saved_model_copy)]) == 0
        assert f"{saved_model_copy / '1'}  (signature" in capsys.readouterr().out
        assert cli.main(["show", str(saved_model_copy / "2")]) == 2
        assert "incomplete SavedModel" in capsys.readouterr().err
    finally:
        shutil.rmtree(saved_model_copy / "2")


@pytest.mark.parametrize("damage", ["graph", "variables"])
def test_a_damaged_saved_model_is_one_line(saved_model_copy, data_dir, tmp_path, damage, capsys):
    from keraszoo import cli

    version = tmp_path / "mnist_vit" / "1"
    shutil.copytree(saved_model_copy / "1", version)
    if damage == "graph":
        (version / "saved_model.pb").write_bytes(b"garbage" * 100)
    else:
        (data,) = (version / "variables").glob("variables.data-*")
        data.write_bytes(data.read_bytes()[:1000])
    for extra in ([], ["--split", "test[:16]", "--data-dir", data_dir]):
        command = "evaluate" if extra else "show"
        assert cli.main([command, str(tmp_path / "mnist_vit"), *extra]) == 2, command
        _one_line_error(capsys.readouterr().err, "it is damaged: export it again")
