"""tf.distribute in every recipe: mirrored replicas and worker processes train like one device."""

import json
import math
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import ROOT, RECIPES

RECIPE_NAMES = ["cifar10_cnn", "mlp", "mnist_vit", "mnist_vit_b16", "cifar10_ladder", "mlp_study", "mnist_vit_sweep"]


def _run(code: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_every_recipe_takes_the_strategy_precision_and_xla_options(name):
    result = subprocess.run([sys.executable, str(RECIPES / f"{name}.py"), "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    for option in ("--strategy {default,mirrored,multiworker}", "--mixed-precision", "--jit-compile {auto,on,off}"):
        assert option in result.stdout


def test_multiworker_without_tf_config_says_how_to_set_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    result = subprocess.run([sys.executable, str(RECIPES / "mlp.py"), "--dataset", "circles", "--strategy",
                             "multiworker", "--output", str(tmp_path)], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 2 and "TF_CONFIG" in result.stderr and "docs/distributed.md" in result.stderr


# ~31 s (four recipe runs with exports); the JAX twin (test_backends.py) runs by default.
@pytest.mark.slow
def test_mirrored_over_two_cpu_devices_matches_one_device(data_dir, tmp_path):
    """The course CNN, 8 steps of 32 real CIFAR-10 images with SGD + momentum, on 1 and on 2 devices.

    Same seed, same global batches: the replicas' summed gradients must give the one-device step.
    Without batch norm only the order of the sums differs: weights agree to 1e-4 (measured 3e-5).
    With (synchronised) batch norm the global batch statistics are combined from per-replica sums
    (E[x^2] - E[x]^2 instead of a direct variance), a float32 difference the 8 steps amplify:
    measured 8e-4, tolerance 2e-3. Unsynchronised batch norm would differ by far more.
    """
    _run(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from keraszoo.recipes import cifar10_cnn as recipe
        for variant in ("normalized", "batchnorm"):
            for strategy in ("default", "mirrored"):
                recipe.main(recipe.Cifar10CNNConfig(
                    variant=variant, augment=False, dropout_rate=0.0, strategy=strategy, data_dir={data_dir!r},
                    train_split="train[:256]", validation_split="train[-64:]", test_split="test[:64]",
                    epochs=1, batch_size=32, learning_rate=0.01,
                    momentum=0.9, evaluate_at_init=False, output=f"{tmp_path}/{{variant}}-{{strategy}}",
                    export_dir=f"{tmp_path}/models-{{strategy}}", export_name=variant, verbose="0"))
    """)
    from keraszoo.export import load_keras_model

    for variant, tolerance in (("normalized", 1e-4), ("batchnorm", 2e-3)):
        one, two = (load_keras_model(tmp_path / f"models-{s}" / variant / "1") for s in ("default", "mirrored"))
        for a, b in zip(one.weights, two.weights):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=tolerance, err_msg=f"{variant} {a.path}")
        first, record = (json.loads((tmp_path / f"{variant}-{s}" / "metrics.json").read_text())
                         for s in ("default", "mirrored"))
        assert first["distribution"]["replicas"] == 1
        assert record["distribution"]["replicas"] == 2 and record["distribution"]["strategy"] == "mirrored"
        assert abs(first["train_loss"] - record["train_loss"]) < 1e-3


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


WORKER = """
import json, os, sys
import numpy as np
from keraszoo.config import TrainConfig
from keraszoo.training.distribute import placement

placement("multiworker")  # first, before any other TensorFlow op
from keraszoo.data.circles import CIRCLES_METADATA, circles_split
from keraszoo.models.mlp import build_mlp
from keraszoo.training.runner import ClassificationData, run_classification

data = ClassificationData(CIRCLES_METADATA, *circles_split(512, seed=0, held_out=128),
                          circles_split(128, seed=1, name="test"))
config = TrainConfig(strategy="multiworker", epochs=3, batch_size=32, learning_rate=0.1, momentum=0.9,
                     output=sys.argv[1], export_dir=sys.argv[2], verbose="0", evaluate_at_init=False)
run_classification(config, name="circles_mlp", data=data,
                   build_model=lambda c, m: build_mlp(input_dim=2, hidden_dim=10, num_classes=2),
                   after_training=lambda model, data, out: np.savez(out / "weights.npz",
                                                                    *[w.numpy() for w in model.weights]))
"""


@pytest.mark.slow  # ~13 s: two worker processes; the TF_CONFIG check above runs by default
def test_two_workers_on_loopback_end_with_identical_weights(tmp_path):
    """MultiWorkerMirroredStrategy over 2 processes on 127.0.0.1: 3 epochs of 16 steps of the circles MLP."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path / "run"), str(tmp_path / "models")],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
    chief, worker = np.load(tmp_path / "run" / "weights.npz"), np.load(tmp_path / "run" / "worker1" / "weights.npz")
    assert len(chief.files) == 4
    for name in chief.files:
        np.testing.assert_array_equal(chief[name], worker[name])  # identical, not merely close
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["distribution"]["workers"] == 2 and record["distribution"]["replicas"] == 2
    assert record["test_accuracy"] > 0.9  # it did train (3 epochs of circles with momentum)
    assert (tmp_path / "models" / "circles_mlp" / "1").is_dir()  # the chief exported
    assert not (tmp_path / "models" / "circles_mlp" / "2").exists()  # and only the chief


def test_mixed_precision_trains_in_bfloat16_on_cpu_and_restores_the_policy(data_dir, tmp_path):
    import keras

    from keraszoo.export import load_serving_fn
    from keraszoo.recipes import mnist_vit as recipe

    metrics = recipe.main(recipe.MnistViTConfig(
        mixed_precision=True, data_dir=data_dir, train_split="train[:256]", validation_split="train[-128:]",
        test_split="test[:128]", epochs=1,
        hidden_dim=16, num_layers=1, mlp_dim=32, output=str(tmp_path / "run"), export_dir=str(tmp_path / "models"),
        verbose="0"))
    assert metrics["dtype_policy"] == "mixed_bfloat16" and metrics["jit_compile"] is False
    assert keras.config.dtype_policy().name == "float32"  # restored for whatever runs next
    assert metrics["initial_loss_near_chance"] and math.isfinite(metrics["test_loss"])
    outputs = load_serving_fn(metrics["saved_model"])(images=np.zeros((2, 28, 28, 1), "uint8"))
    assert outputs["logits"].dtype.name == "float32"
    np.testing.assert_allclose(np.sum(outputs["probabilities"], -1), 1.0, atol=1e-5)


def test_unset_precision_is_bfloat16_only_for_the_cnn_on_cpus_with_bfloat16_units(monkeypatch):
    # Measured: bfloat16 made the course CNN's step 1.2x faster on AVX-512 BF16, the ViT's slower, and
    # everything 7x slower on AVX2 (docs/performance.md). Explicit choices are kept everywhere.
    from keraszoo.recipes.cifar10_cnn import Cifar10CNNConfig
    from keraszoo.recipes.mnist_vit import MnistViTConfig
    from keraszoo.training import distribute

    monkeypatch.setattr(distribute, "uses_gpu", lambda: False)
    for flags, onednn, cnn in ((["avx2", "fma", "avx512f", "avx512_bf16"], True, True),
                               (["avx2", "amx_bf16"], True, True),
                               (["avx2", "fma", "avx512f", "avx512_vnni"], True, False),
                               (["avx512_bf16"], False, False)):  # TF_ENABLE_ONEDNN_OPTS=0: Eigen converts
        monkeypatch.setattr(distribute, "cpu_flags", lambda: flags)
        monkeypatch.setattr(distribute, "onednn_enabled", lambda: onednn)
        assert distribute.native_bfloat16() is cnn
        assert distribute.resolve_mixed_precision(Cifar10CNNConfig(variant="batchnorm")) is cnn, flags
        assert distribute.resolve_mixed_precision(Cifar10CNNConfig()) is cnn
        assert distribute.resolve_mixed_precision(MnistViTConfig()) is False
        assert distribute.resolve_mixed_precision(Cifar10CNNConfig(mixed_precision=False)) is False
        assert distribute.resolve_mixed_precision(MnistViTConfig(mixed_precision=True)) is True
    monkeypatch.setattr(distribute, "uses_gpu", lambda: True)  # bfloat16 units, but a GPU: not measured there
    assert distribute.resolve_mixed_precision(Cifar10CNNConfig()) is False


def test_an_unset_precision_is_settled_as_the_run_in_the_folder_started(tmp_path, monkeypatch):
    # config.json records the precision that ran; a run resumed (or found finished) keeps its own,
    # whatever this machine would choose for a new one, so records from before the choice still match.
    from keraszoo.recipes.cifar10_cnn import Cifar10CNNConfig
    from keraszoo.training import distribute
    from keraszoo.training.resume import settle_precision

    monkeypatch.setattr(distribute, "resolve_mixed_precision", lambda config: True)
    unset = Cifar10CNNConfig()
    assert unset.mixed_precision is None
    assert settle_precision(unset, tmp_path) is True  # empty folder: this machine's choice
    (tmp_path / "config.json").write_text(json.dumps({"mixed_precision": False}))
    assert settle_precision(unset, tmp_path) is False  # the run there started in float32
    assert settle_precision(Cifar10CNNConfig(restart=True), tmp_path) is True
    assert settle_precision(Cifar10CNNConfig(mixed_precision=True), tmp_path) is True  # as given
    for damaged in ("{damaged", "[]", json.dumps({"mixed_precision": "yes"})):
        (tmp_path / "config.json").write_text(damaged)
        assert settle_precision(unset, tmp_path) is True


def test_the_cnn_recipe_on_a_bfloat16_cpu_trains_in_bfloat16_and_exports_float32(data_dir, tmp_path, monkeypatch,
                                                                                 capsys):
    import keras

    from keraszoo.export import load_serving_fn
    from keraszoo.recipes import cifar10_cnn as recipe
    from keraszoo.training import distribute

    monkeypatch.setattr(distribute, "native_bfloat16", lambda: True)  # whatever this CPU is
    config = recipe.Cifar10CNNConfig(
        variant="batchnorm", data_dir=data_dir, train_split="train[:256]", validation_split="train[-128:]",
        test_split="test[:128]", epochs=1, output=str(tmp_path / "run"), export_dir=str(tmp_path / "models"),
        verbose="0")
    metrics = recipe.main(config)
    assert metrics["dtype_policy"] == "mixed_bfloat16"
    assert "Computing in bfloat16" in capsys.readouterr().out  # the choice is said, with the way out
    assert json.loads((tmp_path / "run" / "config.json").read_text())["mixed_precision"] is True
    assert keras.config.dtype_policy().name == "float32"
    model = keras.models.load_model(tmp_path / "run" / "model.keras", compile=False)
    assert "mixed_bfloat16" in {layer.dtype_policy.name for layer in model.layers}  # resumable as it ran
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    logits = load_serving_fn(metrics["saved_model"])(images=images)["logits"].numpy()
    np.testing.assert_allclose(logits, np.asarray(model(images, training=False)), atol=0.05)
    # The same command on a machine without bfloat16 units finds the finished run, not a conflict.
    monkeypatch.setattr(distribute, "native_bfloat16", lambda: False)
    again = recipe.main(config)
    assert again["run_id"] == metrics["run_id"]


def test_keraszoo_turns_onednn_kernels_on_unless_told_and_records_it():
    # TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, at import; keraszoo sets it first (2.2x on the
    # course CNN here, docs/performance.md) and leaves an explicit choice alone.
    code = """
        import keraszoo, tensorflow
        from keraszoo.training.hardware import onednn_enabled
        print(onednn_enabled())
    """
    environment = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    for value, expected in ((None, "True"), ("0", "False")):
        env = environment if value is None else {**environment, "TF_ENABLE_ONEDNN_OPTS": value}
        result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                                text=True, timeout=120, env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.split()[-1] == expected


def test_thread_counts_are_set_before_tensorflow_starts_and_kept_after_with_one_line():
    # TensorFlow reads its thread counts once per process: a recipe sets them first (guarded), and a
    # second run in the same process, asking for others, is told that it keeps the first ones.
    code = """
        import sys
        import keraszoo, tensorflow as tf
        from keraszoo.training.command_line import guarded
        from keraszoo.training.hardware import environment

        assert guarded(lambda: print(float(tf.constant(2.0) + 1)), threads=(1, 2)) == 0
        print(environment()["tf_threads"])
        assert guarded(lambda: None, threads=(1, 2)) == 0  # the same counts: nothing to say
        print("--", file=sys.stderr)
        assert guarded(lambda: None, threads=(0, 0)) == 0
        print(environment()["tf_threads"])
    """
    result = _run(code)
    assert result.stdout.split("\n")[:3] == ["3.0", "{'intra_op': 1, 'inter_op': 2}", "{'intra_op': 1, 'inter_op': 2}"]
    before, after = result.stderr.split("--\n")
    assert "note: TensorFlow already runs" not in before
    notes = [line for line in after.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "intra-op threads 1 and inter-op threads 2" in notes[0] \
        and "--intra-op-threads 0 --inter-op-threads 0" in notes[0]
