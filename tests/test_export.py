"""SavedModel export: TF Serving layout, uint8 signature, outputs equal to the Keras model's."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from keraszoo.export import existing_versions, export_classifier, load_serving_fn
from keraszoo.models import build_course_cnn, build_image_classifier, pixel_scaling


@pytest.fixture(scope="module")
def classifier():
    keras.utils.set_random_seed(5)
    return build_image_classifier(
        backbone=build_course_cnn(), image_shape=(32, 32, 3), preprocessing=[pixel_scaling()]
    )


def _images(n=4):
    return np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_exported_signature_matches_the_keras_model(classifier, tmp_path):
    version_dir = export_classifier(classifier, export_dir=tmp_path, name="cnn")
    assert version_dir == tmp_path / "cnn" / "1"
    serve = load_serving_fn(version_dir)
    (spec,) = serve.structured_input_signature[1].values()
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, 32, 32, 3]
    outputs = serve(images=tf.constant(_images()))
    assert set(outputs) == {"probabilities", "logits"}
    logits = classifier(_images(), training=False)
    np.testing.assert_allclose(outputs["logits"], logits, atol=1e-5)
    np.testing.assert_allclose(outputs["probabilities"], tf.nn.softmax(logits), atol=1e-5)
    np.testing.assert_allclose(outputs["probabilities"].numpy().sum(axis=1), 1.0, atol=1e-5)
    # Each weight is stored once: Keras's ExportArchive alone wrote the variables folder at twice this.
    weight_bytes = sum(int(np.prod(v.shape)) * 4 for v in classifier.variables)
    stored = sum(f.stat().st_size for f in (version_dir / "variables").iterdir())
    assert weight_bytes <= stored < 1.1 * weight_bytes, (stored, weight_bytes)


def test_versions_increase_and_half_written_folders_are_not_versions(classifier, tmp_path):
    (tmp_path / "cnn" / ".tmp-export-999").mkdir(parents=True)  # what a crashed export leaves
    first = export_classifier(classifier, export_dir=tmp_path, name="cnn")
    second = export_classifier(classifier, export_dir=tmp_path, name="cnn")
    assert (first.name, second.name) == ("1", "2")
    assert existing_versions(tmp_path / "cnn") == [1, 2]
    with pytest.raises(FileExistsError):
        export_classifier(classifier, export_dir=tmp_path, name="cnn", version=2)
    assert not [p for p in (tmp_path / "cnn").iterdir() if p.name.startswith(".tmp") and p.name != ".tmp-export-999"]


def test_float_input_models_are_refused(tmp_path):
    with pytest.raises(ValueError, match="raw uint8"):
        export_classifier(build_course_cnn(), export_dir=tmp_path, name="cnn")


def test_recipe_export_serves_and_carries_its_run_record(short_cifar10_run):
    config, metrics = short_cifar10_run
    version_dir = Path(metrics["saved_model"])
    assert version_dir.parent == Path(config.export_dir) / "cifar10_cnn"
    record = version_dir / "run_record"
    assert json.loads((record / "metrics.json").read_text())["test_accuracy"] == metrics["test_accuracy"]
    assert not (record / "checkpoint").exists()  # no optimizer state shipped
    serve = load_serving_fn(version_dir)
    probabilities = serve(images=tf.constant(_images(2)))["probabilities"]
    assert probabilities.shape == (2, 10)


def test_keras_model_rebuilds_from_an_export(classifier, tmp_path):
    from keraszoo.export import load_keras_model

    version_dir = export_classifier(classifier, export_dir=tmp_path, name="cnn")
    rebuilt = load_keras_model(version_dir)
    np.testing.assert_allclose(rebuilt(_images()), classifier(_images()), atol=1e-6)
    (version_dir / "keras_model.json").unlink()
    with pytest.raises(FileNotFoundError, match="has no keras_model.json"):
        load_keras_model(version_dir)


def test_a_mixed_precision_model_exports_in_float32_with_its_weights(tmp_path):
    # bfloat16 without the CPU's bfloat16 units is several times slower: whatever a model trained in,
    # its SavedModel computes in float32, on the same (float32) weights.
    from keraszoo.export.saved_model import float32_copy
    from keraszoo.training.distribute import precision

    keras.utils.set_random_seed(5)
    with precision(True):
        mixed = build_image_classifier(backbone=build_course_cnn(batch_norm=True), image_shape=(32, 32, 3),
                                       preprocessing=[pixel_scaling()])
    copy = float32_copy(mixed)
    nested = [layer for layer in copy.layers if isinstance(layer, keras.Model)]
    assert nested, "the course CNN is a nested model: the copy must reach its layers"
    assert {layer.dtype_policy.name for layer in copy.layers + nested[0].layers} == {"float32"}
    assert "mixed_bfloat16" in {layer.dtype_policy.name for layer in mixed.layers}  # the original is left as is
    for a, b in zip(mixed.weights, copy.weights, strict=True):
        assert a.path == b.path
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    version_dir = export_classifier(mixed, export_dir=tmp_path, name="mixed")
    assert "mixed_bfloat16" not in (version_dir / "keras_model.json").read_text()
    logits = load_serving_fn(version_dir)(images=tf.constant(_images()))["logits"]
    np.testing.assert_allclose(logits, copy(_images(), training=False), atol=1e-5)
    # bfloat16 keeps 8 bits of mantissa: the mixed model's logits are within its rounding, not equal.
    np.testing.assert_allclose(logits, mixed(_images(), training=False), atol=0.05)
    assert float32_copy(copy) is copy  # a float32 model is exported as it is


def test_a_mixed_model_keras_cannot_rebuild_still_exports_in_its_precision(tmp_path, monkeypatch, capsys):
    from keraszoo.export import saved_model
    from keraszoo.training.distribute import precision

    with precision(True):
        mixed = build_image_classifier(backbone=build_course_cnn(), image_shape=(32, 32, 3),
                                       preprocessing=[pixel_scaling()])

    def refuse(config):
        raise TypeError("Could not locate class 'Unregistered'\nmore lines")

    monkeypatch.setattr(saved_model.keras.saving, "deserialize_keras_object", refuse)
    assert saved_model.float32_copy(mixed) is mixed
    assert "could not be rebuilt in float32 (TypeError: Could not locate class 'Unregistered')" in capsys.readouterr().out
    version_dir = export_classifier(mixed, export_dir=tmp_path, name="mixed")
    assert load_serving_fn(version_dir)(images=tf.constant(_images()))["logits"].shape == (4, 10)
