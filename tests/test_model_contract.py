"""The contract every registered model family keeps, checked on its tiny variant.

build -> call -> get_config/from_config -> .keras save and reload -> SavedModel export, each
with the same outputs. Image backbones are wrapped as the recipes wrap them (uint8 pixels in,
preprocessing and augmentation layers inside), so keraszoo's own layers are saved, reloaded
and exported too; the SavedModel is fed uint8, as a client sends.
"""

import keras
import numpy as np
import pytest

from keraszoo.export import export_classifier, load_serving_fn
from keraszoo.models import MODEL_BUILDERS, build_classifier_pair, build_model
from keraszoo.models.preprocessing import augmentation, normalization, pretrained_vit_input

ATOL = 1e-5


def _inference_and_training(name: str):
    """(inference model, training model, example inputs) of the registered family ``name``."""
    keras.utils.set_random_seed(0)
    model = build_model(name, tiny=True)
    shape = tuple(model.input_shape[1:])
    rng = np.random.default_rng(0)
    if model.inputs[0].dtype == "uint8" or len(shape) == 1:  # the manual MLP, the vector MLPs: as they are
        x = rng.integers(0, 256, (3, *shape)).astype(model.inputs[0].dtype)
        return model, model, x
    if name.startswith("vit_") and name.endswith("_224"):  # pretrained layouts: grey digits -> RGB, resized
        pair = build_classifier_pair(backbone=model, image_shape=(28, 28, 1), name=name,
                                     preprocessing=pretrained_vit_input(image_size=shape[0], scale=1 / 127.5,
                                                                        offset=-1.0))
        return pair.inference, pair.training, rng.integers(0, 256, (3, 28, 28, 1)).astype("uint8")
    image_shape = (shape[0] + 4, shape[1] + 4, shape[2]) if name == "cifar_cnn" else shape  # cropped to `shape`
    pair = build_classifier_pair(
        backbone=model, image_shape=image_shape, name=name,
        preprocessing=[normalization([120.0] * shape[2], [4000.0] * shape[2])],
        augmentation=augmentation(crop_size=shape[0], seed=0) if name == "cifar_cnn" else (),
        inference_augmentation=[keras.layers.CenterCrop(shape[0], shape[1])])
    return pair.inference, pair.training, rng.integers(0, 256, (3, *image_shape)).astype("uint8")


@pytest.mark.parametrize("name", sorted(MODEL_BUILDERS))
def test_registered_model_keeps_its_outputs_through_config_file_and_export(name, tmp_path):
    inference, training, x = _inference_and_training(name)
    expected = keras.ops.convert_to_numpy(inference(x, training=False))
    assert expected.shape[0] == len(x) and np.isfinite(expected).all()
    np.testing.assert_allclose(training(x, training=False), expected, atol=ATOL)  # one set of weights

    # Architecture from get_config, weights copied: the same function.
    rebuilt = type(training).from_config(training.get_config())
    rebuilt.set_weights(training.get_weights())
    np.testing.assert_allclose(rebuilt(x, training=False), expected, atol=ATOL)

    # The training model (random layers and all) through a .keras file.
    training.save(tmp_path / f"{name}.keras")
    reloaded = keras.models.load_model(tmp_path / f"{name}.keras")
    np.testing.assert_allclose(reloaded(x, training=False), expected, atol=ATOL)

    # The inference model as TF Serving would run it.
    serve = load_serving_fn(export_classifier(inference, export_dir=tmp_path / "export", name=name))
    (input_name,) = serve.structured_input_signature[1]
    outputs = serve(**{input_name: x})
    np.testing.assert_allclose(outputs["logits"], expected, atol=ATOL)
    np.testing.assert_allclose(np.sum(outputs["probabilities"], axis=-1), 1.0, atol=1e-5)


def test_registry_builds_the_recipes_models_by_default():
    assert build_model("cifar_cnn").count_params() == 1_191_170  # the course's table (Q.10/Q.11)
    assert build_model("mnist_vit").input_shape == (None, 28, 28, 1)
    with pytest.raises(ValueError, match="registered models"):
        build_model("resnet50")


def test_importing_keraszoo_models_registers_every_layer_a_saved_model_may_hold():
    """`keraszoo export RUN` and `keraszoo evaluate` load a run's model.keras after `import keraszoo.models` only:
    every serializable class of keraszoo/models must be registered by that import, in a fresh process (DINOv2
    runs could not be exported from their folder: GrayscaleToRGB was registered only where a recipe imported it).
    The manual MLP's model is TensorFlow code, imported on use by its recipe."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    names = []
    for path in sorted((Path(__file__).parents[1] / "keraszoo" / "models").glob("*.py")):
        if path.name != "manual_mlp.py":
            names += re.findall(r'register_keras_serializable\(package="keraszoo"\)\nclass (\w+)', path.read_text())
    code = ("import sys, keras, keraszoo.models; print([n for n in sys.argv[1:] "
            "if keras.saving.get_registered_object('keraszoo>' + n) is None])")
    found = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=300)
    assert len(names) >= 10 and found.stdout.strip().splitlines()[-1] == "[]", (names, found.stdout, found.stderr[-500:])
