"""Shared fixtures: the prepared TFDS data_dir and one short real CIFAR-10 run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import keraszoo  # noqa: F401  first, before any test imports TensorFlow: it chooses oneDNN's kernels

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"


def _data_dir() -> Path | None:
    for candidate in (os.environ.get("TFDS_DATA_DIR"), ROOT.parent / "shared" / "tensorflow_datasets"):
        if candidate and (Path(candidate) / "cifar10").is_dir():
            return Path(candidate).resolve()  # as keraszoo says it (../shared may be a link)
    return None


@pytest.fixture(scope="session")
def data_dir() -> str:
    found = _data_dir()
    if found is None:
        pytest.skip("no prepared TFDS data_dir: set TFDS_DATA_DIR (see README)")
    return str(found)


@pytest.fixture(scope="session")
def cifar10_recipe():
    from keraszoo.recipes import cifar10_cnn

    return cifar10_cnn


@pytest.fixture(scope="session")
def short_cifar10_run(cifar10_recipe, data_dir, tmp_path_factory):
    """One real, short training of the course CNN on 4,096 CIFAR-10 images, exported.

    Shared by the training, record and export tests: training is the slow part.
    """
    root = tmp_path_factory.mktemp("short_run")
    config = cifar10_recipe.Cifar10CNNConfig(
        data_dir=data_dir,
        # 4,096 images at 0.01: 27-34 % test accuracy over seeds 0-2 with oneDNN or Eigen kernels,
        # where 1,024 images at 0.05 ended at 13 % with one and above 15 % with the other.
        train_split="train[:4096]",
        validation_split="train[-512:]", test_split="test[:512]",
        epochs=2,
        batch_size=64,
        learning_rate=0.01,
        momentum=0.9,
        # float32 on every CPU: the export (always float32) then scores exactly what training measured
        # (tests/test_cli.py); the bfloat16 default on CPUs with its units has its own tests.
        mixed_precision=False,
        output=str(root / "run"),
        export_dir=str(root / "saved_models"),
        verbose="0",
    )
    metrics = cifar10_recipe.main(config)
    return config, metrics


@pytest.fixture(scope="session")
def cnn_saved_models(tmp_path_factory) -> Path:
    """A model root holding an untrained course CNN exported as cifar10_cnn/1 (uint8 32x32x3 in)."""
    import keras

    from keraszoo.export import export_classifier
    from keraszoo.models import build_course_cnn, build_image_classifier, pixel_scaling

    root = tmp_path_factory.mktemp("saved_models")
    keras.utils.set_random_seed(0)
    model = build_image_classifier(backbone=build_course_cnn(), image_shape=(32, 32, 3),
                                   preprocessing=[pixel_scaling()], name="cifar10_cnn")
    export_classifier(model, export_dir=root, name="cifar10_cnn")
    return root


@pytest.fixture(scope="module")
def serve_in_thread():
    """``start(config, wait_for=None) -> (url, app)``: keraszoo serve's app on a free loopback port (and gRPC on
    another, ``app.state.server.config.grpc_port``), in a thread, until a model has loaded (``wait_for``: until
    that model has: a root of several models loads them one by one); all stop when the module's tests are done."""
    import socket
    import threading
    import time

    import uvicorn

    from keraszoo.serving.app import create_app

    running = []

    def free_port():
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]

    def start(config, wait_for=None):
        import dataclasses

        port = free_port()
        if config.grpc_port:  # never TF Serving's 8500, which another server of the suite may hold
            config = dataclasses.replace(config, grpc_port=free_port())
        app = create_app(config)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        running.append((server, thread))
        deadline = time.monotonic() + 60

        def loaded():
            served = app.state.repository.models()
            return wait_for in served if wait_for else bool(served)

        while not server.started or not loaded():  # up, and the export has settled
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}", app

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=10)
