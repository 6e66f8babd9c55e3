"""Real recipe processes killed (SIGKILL, by PID) at the moments that matter, then run again with
the same command, end with the history, metrics and weights of an uninterrupted run.

The process announces each moment itself (keraszoo.faults: it writes its PID and waits to be
killed), so the kills land exactly mid-epoch, between writing and renaming a checkpoint, right
after the rename, with the export written but unpublished, and right after publishing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from keraszoo.faults import PAUSE_AT, PAUSE_FILE

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300
# Differ between an interrupted and an uninterrupted run by nature (clocks, identity).
NOT_COMPARED = {"wall_time_s", "mean_train_time_per_epoch_s", "peak_rss_mib", "initial_eval_time_s", "test_eval_time_s",
                "resumed_at_epochs", "run_id", "saved_model", "environment", "output_dir"}
HISTORY_COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")


def _environment(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (PAUSE_AT, PAUSE_FILE)}
    return {**env, **extra}


def _finish(command: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, env=_environment())
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _kill_at(command: list[str], point: str, tmp_path: Path) -> None:
    """Runs ``command`` until it reaches ``point``, then SIGKILLs it there."""
    flag = tmp_path / f"paused-{point.replace('/', '_')}"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=_environment(**{PAUSE_AT: point, PAUSE_FILE: str(flag)}))
    deadline = time.monotonic() + TIMEOUT_S
    while not flag.exists():
        if process.poll() is not None:
            pytest.fail(f"the run ended (rc {process.returncode}) before reaching {point}: {process.stderr.read()[-2000:]}")
        assert time.monotonic() < deadline, f"{point} not reached in {TIMEOUT_S} s"
        time.sleep(0.05)
    assert int(flag.read_text()) == process.pid
    os.kill(process.pid, signal.SIGKILL)  # no chance to clean up, as in a crash or a preemption
    process.wait()
    process.stderr.close()


def _saved_variables(version_dir: Path) -> list[np.ndarray]:
    import tensorflow as tf

    return [v.numpy() for v in tf.saved_model.load(str(version_dir)).variables]


def _assert_same_run(run: Path, reference: Path, models: Path, reference_models: Path, name: str) -> None:
    assert (run / "history.csv").read_text().splitlines()[0] == (reference / "history.csv").read_text().splitlines()[0]
    from keraszoo.training.run_record import read_history

    history, expected = read_history(run / "history.csv"), read_history(reference / "history.csv")
    assert [row["epoch"] for row in history] == [row["epoch"] for row in expected]
    for got, want in zip(history, expected):
        for column in HISTORY_COLUMNS:
            assert got[column] == want[column], (got["epoch"], column)  # identical, not close
    metrics = json.loads((run / "metrics.json").read_text())
    wanted = json.loads((reference / "metrics.json").read_text())
    assert {k: v for k, v in metrics.items() if k not in NOT_COMPARED} == \
        {k: v for k, v in wanted.items() if k not in NOT_COMPARED}
    assert sorted(os.listdir(models / name)) == ["1"]  # one version: no duplicate, no temporary folder left
    for got, want in zip(_saved_variables(models / name / "1"), _saved_variables(reference_models / name / "1"),
                         strict=True):
        np.testing.assert_array_equal(got, want)
    assert not (run / "checkpoint").exists()


def _cnn_command(data_dir: str, output: Path, models: Path) -> list[str]:
    # Every random layer in play: per-image crop, flip, dropout; and batch norm's moving statistics.
    return [sys.executable, str(ROOT / "recipes" / "cifar10_cnn.py"), "--variant", "batchnorm",
            "--data-dir", data_dir, "--train-split", "train[:512]", "--validation-split", "train[-256:]",
            "--test-split", "test[:256]", "--epochs", "3",
            "--batch-size", "64", "--verbose", "0", "--no-evaluate-at-init", "--output", str(output),
            "--export-dir", str(models)]


def _batchnorm_cnn_killed_everywhere_ends_like_an_uninterrupted_run(data_dir, tmp_path):
    reference = subprocess.Popen(_cnn_command(data_dir, tmp_path / "reference", tmp_path / "reference_models"),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_environment())
    run, models = tmp_path / "run", tmp_path / "models"
    command = _cnn_command(data_dir, run, models)
    for point in ("epoch-2/batch-3",  # mid-epoch: epoch 1's checkpoint is there
                  "checkpoint-2/written",  # epoch 2 written under its temporary name, not renamed
                  "checkpoint-2/renamed",  # epoch 2 in place, epoch 1 not yet removed
                  "export/written",  # trained; the SavedModel written under its temporary name
                  "export/published"):  # version 1 published, the run not yet marked finished
        _kill_at(command, point, tmp_path)
    assert [p.name for p in (models / "cifar10_cnn_batchnorm").iterdir()] == ["1"]
    output = _finish(command).stdout
    assert "not exporting it again" in output
    _, errors = reference.communicate(timeout=TIMEOUT_S)
    assert reference.returncode == 0, errors[-3000:]
    _assert_same_run(run, tmp_path / "reference", models, tmp_path / "reference_models", "cifar10_cnn_batchnorm")
    assert json.loads((run / "metrics.json").read_text())["resumed_at_epochs"] == [1, 2, 3]  # the resumes whose progress was kept


def _vit_command(data_dir: str, output: Path, models: Path, epochs: int = 2) -> list[str]:
    return [sys.executable, str(ROOT / "recipes" / "mnist_vit.py"), "--data-dir", data_dir,
            "--train-split", "train[:512]", "--validation-split", "train[-256:]", "--test-split", "test[:256]",
            "--epochs", str(epochs), "--batch-size", "64",
            "--hidden-dim", "16", "--num-layers", "2", "--num-heads", "2", "--mlp-dim", "32", "--dropout-rate", "0.1",
            "--verbose", "0", "--no-evaluate-at-init", "--output", str(output), "--export-dir", str(models)]


def _vit_with_dropout_killed_mid_epoch_ends_like_an_uninterrupted_run(data_dir, tmp_path):
    reference = subprocess.Popen(_vit_command(data_dir, tmp_path / "reference", tmp_path / "reference_models"),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_environment())
    run, models = tmp_path / "run", tmp_path / "models"
    _kill_at(_vit_command(data_dir, run, models), "epoch-2/batch-2", tmp_path)
    # The warmup + cosine schedule is laid out over --epochs: changing it on resume is refused.
    changed = subprocess.run(_vit_command(data_dir, run, models, epochs=3), capture_output=True, text=True,
                             timeout=TIMEOUT_S, env=_environment())
    assert changed.returncode == 2 and "Traceback" not in changed.stderr
    assert "laid out over that many epochs" in changed.stderr.strip().splitlines()[-1]
    _finish(_vit_command(data_dir, run, models))
    _, errors = reference.communicate(timeout=TIMEOUT_S)
    assert reference.returncode == 0, errors[-3000:]
    _assert_same_run(run, tmp_path / "reference", models, tmp_path / "reference_models", "mnist_vit")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["resumed_at_epochs"] == [1]
    # The recipe's own thread counts (one core per op), set before TensorFlow started.
    assert metrics["environment"]["tf_threads"] == {"intra_op": 1, "inter_op": 0}


def test_killed_runs_end_like_uninterrupted_runs(data_dir, tmp_path):
    """Both scenarios at once: each mostly waits on one process at a time, and the machine has two cores."""
    from concurrent.futures import ThreadPoolExecutor

    (tmp_path / "cnn").mkdir()
    (tmp_path / "vit").mkdir()
    with ThreadPoolExecutor(2) as pool:
        cnn = pool.submit(_batchnorm_cnn_killed_everywhere_ends_like_an_uninterrupted_run, data_dir, tmp_path / "cnn")
        vit = pool.submit(_vit_with_dropout_killed_mid_epoch_ends_like_an_uninterrupted_run, data_dir, tmp_path / "vit")
        cnn.result()
        vit.result()
