"""The unified trainer on JAX, as on the lent GPU machines: no TensorFlow in the process at all.

One subprocess, TensorFlow made unimportable, two CPU devices for JAX: the ladder's batchnorm
CNN trains from a compact pack, resumes exactly, and runs data-parallel over both devices with
keras.distribution as it runs on one; then, here with TensorFlow, ``keraszoo export RUN_DIR`` turns the JAX run
into a SavedModel that answers as the JAX model did.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT

pytest.importorskip("jax")  # in the test extra: CI runs this

JAX_RUNS = """
import sys

class NoTensorFlow:  # as on the lent GPU machines, which have JAX and PyTorch only
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tensorflow_datasets"):
            raise ImportError(f"{name} is blocked in this test")

sys.meta_path.insert(0, NoTensorFlow())
import keras, numpy as np
from keraszoo.recipes import cifar10_cnn as recipe
from keraszoo.training.command_line import cli_main
from keraszoo.data.arrays import read_pack_split

root, pack = sys.argv[1], sys.argv[2]
common = ["--variant", "batchnorm", "--data-pack", pack, "--train-split", "train[:256]",
          "--validation-split", "train[-128:]", "--test-split", "test",
          "--batch-size", "32", "--verbose", "0", "--evaluate-at-init"]
def run(output, *extra):
    assert cli_main(recipe.main, recipe.Cifar10CNNConfig, "", [*common, "--output", f"{root}/{output}", *extra]) == 0

class Killed(BaseException):
    pass

def die_at(point):  # stands in for a SIGKILL mid-epoch 2 (the TensorFlow runs are SIGKILLed: test_kill_resume.py)
    if point == "epoch-2/batch-3":
        raise Killed

import os
from keraszoo import faults
os.environ[faults.PAUSE_AT], faults.pause_point = "epoch-2/batch-3", die_at
try:
    run("resumed", "--epochs", "2")
    raise AssertionError("the run was not stopped")
except Killed:
    pass
del os.environ[faults.PAUSE_AT]
run("resumed", "--epochs", "2")          # resumes after epoch 1
run("straight", "--epochs", "2")
# Data-parallel against one device without random layers: with them, the two draw other crops, flips
# and dropout masks from the same seed; without, the same training. One step (32 images, batch 32): after
# more, the float32 rounding of the two reduction orders grows with every step at a rate the test cannot
# bound (0.40 on logits of 200 after 8 steps on an Intel AMX CPU, against 1e-4 on AMD).
for strategy in ("mirrored", "default"):  # in this order: the default run must not stay data-parallel
    run(strategy, "--epochs", "1", "--strategy", strategy, "--no-augment", "--dropout-rate", "0",
        "--train-split", "train[:32]")
assert keras.distribution.distribution() is None  # the default run ran on one device
images = read_pack_split(pack, "test[:16]")[0].images
for name in ("straight", "default", "mirrored"):
    model = keras.models.load_model(f"{root}/{name}/model.keras")
    np.save(f"{root}/{name}_logits.npy", keras.ops.convert_to_numpy(model(images, training=False)))
np.save(f"{root}/images.npy", images)
print("tensorflow" in sys.modules)
"""


@pytest.fixture(scope="module")
def jax_runs(data_dir, tmp_path_factory):
    from keraszoo.data.jpeg_pack import pack_tfds

    root = tmp_path_factory.mktemp("jax")
    pack_tfds("cifar10", ["train[:384]", "test[:128]"], root / "pack", data_dir=data_dir)
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(JAX_RUNS), str(root), str(root / "pack")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "False"  # TensorFlow never loaded
    return root


def _record(run_dir):
    return (json.loads((run_dir / "metrics.json").read_text()), (run_dir / "history.csv").read_text())


def test_jax_run_without_tensorflow_writes_the_same_record_schema(jax_runs, short_cifar10_run):
    metrics, _ = _record(jax_runs / "straight")
    tf_metrics = json.loads((Path(short_cifar10_run[1]["output_dir"]) / "metrics.json").read_text())
    assert set(metrics) | {"saved_model"} == set(tf_metrics) | {"saved_model"}
    assert set(metrics["environment"]) == set(tf_metrics["environment"])
    assert set(metrics["distribution"]) == set(tf_metrics["distribution"])
    assert metrics["environment"]["backend"] == "jax" and metrics["environment"]["tensorflow"] is None
    assert metrics["dataset"] == "cifar10:3.0.2" and metrics["class_names"][0] == "airplane"  # from the pack
    assert metrics["initial_loss_near_chance"] and metrics["test_accuracy"] > 0.1
    assert (jax_runs / "straight" / "model.keras").is_file() and not (jax_runs / "straight" / "checkpoint").exists()


def test_jax_resume_repeats_the_uninterrupted_run(jax_runs):
    resumed, straight = _record(jax_runs / "resumed"), _record(jax_runs / "straight")
    assert resumed[0]["resumed_at_epochs"] == [1]
    strip = lambda csv: [line.split(",")[:6] for line in csv.splitlines()]  # noqa: E731 - not the timings
    assert strip(resumed[1]) == strip(straight[1])


def test_jax_data_parallel_over_two_devices_matches_one_device(jax_runs):
    mirrored, default = _record(jax_runs / "mirrored")[0], _record(jax_runs / "default")[0]
    assert mirrored["distribution"]["class"] == "DataParallel" and mirrored["distribution"]["replicas"] == 2
    assert default["distribution"]["replicas"] == 1
    # The same global batch; gradients and batch statistics over both devices: one SGD step that differs
    # only in the order of float32 sums. The largest sum (the first convolution's weight gradient,
    # n = 32 images x 32 x 32 positions) is off by at most n * 2**-24 ~ 2e-3 of its terms' magnitude in the
    # worst case; the step moves the logits by less than their size, so 2e-3 of the largest logit bounds
    # the difference on every CPU kind (rounding, not reduction order, is what the bound assumes).
    one, two = np.load(jax_runs / "default_logits.npy"), np.load(jax_runs / "mirrored_logits.npy")
    bound = 32 * 32 * 32 * 2.0**-24 * np.abs(one).max()
    assert np.abs(one - two).max() <= bound
    assert mirrored["test_loss"] == pytest.approx(default["test_loss"], rel=2e-3)


def test_keraszoo_export_turns_the_jax_run_into_a_saved_model_that_answers_alike(jax_runs, tmp_path):
    from keraszoo.export import load_serving_fn
    from keraszoo.training.runner import export_run

    command = [sys.executable, "-m", "keraszoo", "export", str(jax_runs / "straight"), "--export-dir", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "Exported SavedModel" in done.stdout, done.stderr[-2000:]
    assert export_run(jax_runs / "straight", export_dir=str(tmp_path)).name == "1"  # again: found, not re-exported
    assert sorted(p.name for p in (tmp_path / "cifar10_cnn_batchnorm").iterdir()) == ["1"]
    served = load_serving_fn(tmp_path / "cifar10_cnn_batchnorm" / "1")(images=np.load(jax_runs / "images.npy"))
    np.testing.assert_allclose(served["logits"], np.load(jax_runs / "straight_logits.npy"), atol=1e-4)
    record = json.loads((tmp_path / "cifar10_cnn_batchnorm" / "1" / "run_record" / "metrics.json").read_text())
    assert record["environment"]["backend"] == "jax"
    marker = json.loads((jax_runs / "straight" / ".keraszoo-run").read_text())
    assert marker["saved_model"].endswith("cifar10_cnn_batchnorm/1")


AIRBENCH_ON_JAX = """
import sys

class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tensorflow_datasets"):
            raise ImportError(f"{name} is blocked in this test")

sys.meta_path.insert(0, NoTensorFlow())
from keraszoo.recipes import cifar10_airbench as recipe
from keraszoo.training.command_line import cli_main

root, pack = sys.argv[1], sys.argv[2]
for net in ("airbench94", "airbench96"):
    assert cli_main(recipe.main, recipe.AirbenchConfig, "", [
        "--net", net, "--data-pack", pack, "--train-split", "train[:256]", "--validation-split", "train[-128:]",
        "--test-split", "test", "--epochs", "1", "--batch-size", "64", "--widths", "8,8,8", "--verbose", "0",
        "--output", f"{root}/{net}"]) == 0
print("tensorflow" in sys.modules)
"""


@pytest.mark.slow  # ~50 s on 2 cores (two nets, JAX compiles): opt-in, run before a lent GPU's call
def test_airbench_trains_on_jax_without_tensorflow_as_gpu_check_runs_it(data_dir, tmp_path):
    """benchmarks/gpu_check.sh's airbench stage: both nets from a pack on JAX, lookahead included (its
    weights once shared buffers with the averages, which JAX's donating train step refused)."""
    from keraszoo.data.jpeg_pack import pack_tfds

    pack_tfds("cifar10", ["train[:384]", "test[:128]"], tmp_path / "pack", data_dir=data_dir)
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(AIRBENCH_ON_JAX), str(tmp_path), str(tmp_path / "pack")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "False"  # TensorFlow never loaded
    for net, name in (("airbench94", "cifar10_airbench"), ("airbench96", "cifar10_airbench96")):
        metrics, history = _record(tmp_path / net)
        assert metrics["recipe"] == name and metrics["environment"]["backend"] == "jax"
        assert 0 <= metrics["test_tta_accuracy"] <= 1 and "val_tta_accuracy" in history
