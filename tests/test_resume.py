"""A run killed mid-training and started again with the same command ends like an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keraszoo.training.run_record import read_history

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300


def _command(data_dir, output, export_dir):
    return [
        sys.executable, str(ROOT / "recipes" / "cifar10_cnn.py"),
        "--data-dir", data_dir, "--train-split", "train[:2048]", "--test-split", "test[:256]",
        "--epochs", "3", "--batch-size", "128", "--momentum", "0.9", "--verbose", "0", "--no-evaluate-at-init",
        "--output", str(output), "--export-dir", str(export_dir),
    ]


def _run(command):
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_killed_run_resumes_to_the_uninterrupted_result(data_dir, tmp_path):
    reference = tmp_path / "reference"
    _run(_command(data_dir, reference, tmp_path / "models"))

    resumed = tmp_path / "resumed"
    process = subprocess.Popen(
        _command(data_dir, resumed, tmp_path / "models"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    first_epoch = resumed / "checkpoint" / "epoch-00001" / "state.json"
    deadline = time.monotonic() + TIMEOUT_S
    while not first_epoch.exists():
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # no chance to clean up, as in a crash or preemption
    process.wait()
    assert not (resumed / "metrics.json").exists()

    output = _run(_command(data_dir, resumed, tmp_path / "models")).stdout
    assert "Resuming the run" in output

    expected = read_history(reference / "history.csv")
    history = read_history(resumed / "history.csv")
    assert [row["epoch"] for row in history] == [1, 2, 3]
    for got, want in zip(history, expected):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert got[key] == pytest.approx(want[key], rel=1e-6), (got["epoch"], key)
    metrics = json.loads((resumed / "metrics.json").read_text())
    assert metrics["epochs"] == 3
    assert len(metrics["resumed_at_epochs"]) == 1 and 1 <= metrics["resumed_at_epochs"][0] < 3
    assert not (resumed / "checkpoint").exists()
    assert sorted(os.listdir(tmp_path / "models" / "cifar10_cnn")) == ["1", "2"]
