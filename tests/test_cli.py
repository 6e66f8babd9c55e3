"""The command lines: recipe options, clear errors, the keraszoo entry point."""

import subprocess
import sys
from pathlib import Path

import pytest

from keraszoo.config import TrainConfig, parse_config

ROOT = Path(__file__).resolve().parents[1]
RECIPE = str(ROOT / "recipes" / "cifar10_cnn.py")


def _run(*args, **kwargs):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, **kwargs)


def _keraszoo(capsys, *argv) -> subprocess.CompletedProcess:
    """``python -m keraszoo ARGV`` run in this process: the same main(), without paying a TensorFlow
    import per call (the entry point itself is tested once, in a subprocess)."""
    from keraszoo.cli import main

    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["keraszoo", *argv], code, out, err)


def test_overrides_are_typed():
    config = parse_config(TrainConfig, ["--epochs", "3", "--learning-rate", "0.01", "--no-export"])
    assert (config.epochs, config.learning_rate, config.export) == (3, 0.01, False)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epoch", "3"], "unrecognized arguments: --epoch"),  # no silent abbreviation
        (["--epochs", "0"], "epochs=0 is out of range"),
        (["--intra-op-threads", "-1"], "intra_op_threads=-1 is out of range"),
        (["--optimizer", "rmsprop"], "invalid choice"),
        (["--batch-size", "big"], "invalid int value"),
    ],
)
def test_recipe_rejects_bad_options_with_a_message(argv, message):
    done = _run(RECIPE, *argv)
    assert done.returncode == 2
    assert message in done.stderr


def test_recipe_help_explains_and_does_not_load_tensorflow():
    done = _run("-X", "importtime", RECIPE, "--help")
    assert done.returncode == 0
    assert "--train-split" in done.stdout and "course's baseline" in done.stdout
    assert "tensorflow" not in done.stderr  # -X importtime lists every imported module


def test_missing_dataset_is_one_clear_line(tmp_path):
    done = _run(RECIPE, "--data-dir", str(tmp_path), "--epochs", "1")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: Dataset 'cifar10'")
    assert "Traceback" not in done.stderr
    assert str(tmp_path) in done.stderr


def test_keraszoo_entry_point(data_dir, capsys):
    done = _run("-m", "keraszoo", "--help")
    assert done.returncode == 0 and "models" in done.stdout
    done = _keraszoo(capsys, "models")
    assert "cifar_cnn" in done.stdout and "1,191,170" in done.stdout
    done = _keraszoo(capsys, "data", "--data-dir", data_dir)
    assert done.returncode == 0 and "cifar10" in done.stdout and "50,000" in done.stdout


def test_evaluate_scores_an_exported_model_from_disk(short_cifar10_run, data_dir, capsys):
    config, metrics = short_cifar10_run
    done = _keraszoo(capsys, "evaluate", metrics["saved_model"], "--data-dir", data_dir,
                     "--split", config.test_split)
    assert done.returncode == 0, done.stderr[-2000:]
    # The SavedModel scores what training measured on the same split.
    assert f"accuracy {metrics['test_accuracy']:.4f}" in done.stdout


def test_evaluate_reads_the_dataset_from_the_run_record_and_refuses_a_mismatch(data_dir, capsys):
    shipped = str(ROOT / "saved_models" / "mnist_vit" / "1")  # trained on MNIST, says so in its record
    done = _keraszoo(capsys, "evaluate", shipped, "--data-dir", data_dir, "--split", "test[:256]")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "on mnist test[:256]" in done.stdout
    done = _keraszoo(capsys, "evaluate", shipped, "--data-dir", data_dir, "--dataset", "cifar10")
    assert done.returncode == 2 and "takes images of shape (28, 28, 1)" in done.stderr
