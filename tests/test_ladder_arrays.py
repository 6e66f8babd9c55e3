"""The ladder on machines without TensorFlow: the JPEG pack, TensorFlow-free imports, the arrays driver."""

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, load_recipe
from keraszoo.data import read_split
from keraszoo.data.jpeg_pack import read_pack, write_pack
from keraszoo.data.statistics import array_mean_variance, channel_mean_variance


def _arrays(data_dir, split):
    data = read_split("cifar10", split, data_dir=data_dir)
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in data.examples.batch(512)])
    return np.concatenate(images), np.concatenate(labels)


@pytest.fixture(scope="module")
def pack(data_dir, tmp_path_factory):
    """A pack of real CIFAR-10 images: 512 for training, 256 for testing."""
    folder = tmp_path_factory.mktemp("pack")
    for name, split in (("train", "train[:512]"), ("test", "test[:256]")):
        write_pack(folder / f"{name}.npz", *_arrays(data_dir, split), source=f"cifar10 {split}")
    return folder


def test_pack_keeps_labels_and_pixels_within_a_fraction_of_a_grey_level(data_dir, pack):
    images, labels = _arrays(data_dir, "test[:256]")
    restored, restored_labels, summary = read_pack(pack / "test.npz")
    np.testing.assert_array_equal(restored_labels, labels)
    assert summary["source"] == "cifar10 test[:256]"
    assert restored.shape == images.shape and restored.dtype == np.uint8
    difference = np.abs(restored.astype(int) - images).mean()
    # The prepared pixels were decoded from JPEG q75 already: re-encoding alike barely moves them.
    assert difference < 0.3 and summary["mean_abs_difference"] == pytest.approx(difference)
    assert (pack / "test.npz").stat().st_size < 400 * len(images)  # vs 3,072 bytes raw


def test_pack_refuses_what_it_cannot_store():
    with pytest.raises(ValueError, match="uint8"):
        write_pack("unused.npz", np.zeros((2, 32, 32, 3), np.float32), np.zeros(2))
    with pytest.raises(ValueError, match="same"):
        write_pack("unused.npz", np.zeros((2, 32, 32, 3), np.uint8), np.zeros(3))


def test_array_statistics_match_the_split_statistics(data_dir):
    data = read_split("cifar10", "train[:300]", data_dir=data_dir)
    images, _ = _arrays(data_dir, "train[:300]")
    for got, want in zip(array_mean_variance(images, batch_size=7), channel_mean_variance(data)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def _module_level_imports(path: Path) -> set[str]:
    """Modules a file imports when it is imported (not inside functions or TYPE_CHECKING blocks)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else []:
            if isinstance(child, ast.Import):
                found |= {alias.name for alias in child.names}
            elif isinstance(child, ast.ImportFrom) and child.module:
                found.add(child.module)
        if isinstance(node, ast.ClassDef):  # class bodies run at import, method bodies do not
            for child in node.body:
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    found.add(child.module if isinstance(child, ast.ImportFrom) else child.names[0].name)
    return found


def _source(module: str) -> Path:
    path = ROOT / Path(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def test_the_arrays_path_imports_no_tensorflow():
    """What the GPU machines (JAX and PyTorch, no TensorFlow) import must not import TensorFlow."""
    pending = ["recipes.cifar10_ladder_arrays", "recipes.cifar10_cnn", "keraszoo.training.callbacks",
               "keraszoo.training.optimizers", "keraszoo.training.run_record", "keraszoo.data.jpeg_pack",
               "keraszoo.data.statistics", "keraszoo.models.preprocessing", "keraszoo.models"]
    seen, chains = set(), {name: [name] for name in pending}
    while pending:
        module = pending.pop()
        parts = module.split(".")
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            if name in seen or not _source(name).exists():
                continue
            seen.add(name)
            for imported in _module_level_imports(_source(name)):
                assert imported.split(".")[0] not in ("tensorflow", "tensorflow_datasets"), \
                    f"{' -> '.join(chains.get(name, [name]))} imports {imported} at module level"
                if imported.startswith("keraszoo"):
                    chains.setdefault(imported, [*chains.get(name, [name]), imported])
                    pending.append(imported)
    assert "keraszoo.models.course_cnn" in seen and "keraszoo.data" in seen  # the walk did follow imports


def test_arrays_driver_trains_records_and_exports_what_it_measured(pack, tmp_path):
    import tensorflow as tf

    driver = load_recipe("cifar10_ladder_arrays")
    args = driver.parse_args(["train", "--pack", str(pack), "--variants", "batchnorm", "--seeds", "3",
                              "--epochs", "2", "--runs", str(tmp_path / "runs")])
    assert driver.main(args) == 0
    run = tmp_path / "runs" / "batchnorm-seed3"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["steps"]["batch_norm"] and not metrics["stopped_by_deadline"]
    assert metrics["environment"]["backend"] == "tensorflow"
    assert len(metrics["normalization_statistics"]["mean"]) == 3
    # The model the driver measured at inference scores what the training model scored.
    assert metrics["inference_model_test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert (run / "curves.png").stat().st_size > 10_000 and len((run / "history.csv").read_text().splitlines()) == 3

    assert driver.main(driver.parse_args(["export", str(run), "--export-dir", str(tmp_path / "models"),
                                          "--version", "1"])) == 0
    version = tmp_path / "models" / "cifar10_cnn_batchnorm" / "1"
    assert not list((version / "run_record").glob("*.h5"))  # the weights are in the SavedModel
    images, labels, _ = read_pack(pack / "test.npz")
    logits = tf.saved_model.load(str(version)).signatures["serving_default"](images=tf.constant(images))["logits"]
    # Same weights and statistics after the trip through the weights file (Normalization's statistics
    # are constants, not weights: without the record's, the export would normalise wrongly).
    assert np.mean(np.argmax(logits, -1) == labels) == pytest.approx(metrics["inference_model_test_accuracy"])
    loss = tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True).numpy().mean()
    assert loss == pytest.approx(metrics["inference_model_test_loss"], rel=1e-4)
