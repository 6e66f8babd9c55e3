"""The course's CNN: layer shapes and the exact weight counts of the course's table."""

import keras
import numpy as np
import pytest

from keraszoo.models import MODEL_BUILDERS, build_course_cnn, build_image_classifier, build_model, pixel_scaling

# The course's table (Q.10/Q.11): weights per layer, without biases.
COURSE_WEIGHTS = {"conv1": 2_400, "conv2": 51_200, "conv3": 102_400, "fc4": 1_024_000, "fc5": 10_000}
COURSE_BIASES = {"conv1": 32, "conv2": 64, "conv3": 64, "fc4": 1_000, "fc5": 10}


def test_weight_counts_match_the_course_table():
    model = build_course_cnn()
    for name, weights in COURSE_WEIGHTS.items():
        kernel, bias = model.get_layer(name).get_weights()
        assert kernel.size == weights, name
        assert bias.size == COURSE_BIASES[name], name
    assert model.count_params() == 1_191_170 == sum(COURSE_WEIGHTS.values()) + sum(COURSE_BIASES.values())


def test_output_shapes_on_32x32():
    model = build_course_cnn()
    shapes = {layer.name: layer.output.shape[1:] for layer in model.layers[1:]}
    assert shapes["conv1"] == (32, 32, 32)  # padding 2 keeps the size
    assert shapes["pool1"] == (16, 16, 32)
    assert shapes["pool2"] == (8, 8, 64)
    assert shapes["pool3"] == (4, 4, 64)
    assert shapes["flatten"] == (1024,)
    assert model.output_shape == (None, 10)


def test_28x28_variant_feeds_fc4_with_3x3x64():
    model = build_course_cnn(image_shape=(28, 28, 3))
    assert model.get_layer("flatten").output.shape[1:] == (576,)  # 28 -> 14 -> 7 -> 3 (floor)
    logits = model(np.zeros((2, 28, 28, 3), "float32"))
    assert logits.shape == (2, 10)


def test_switches_add_batchnorm_and_dropout_layers():
    model = build_course_cnn(batch_norm=True, dropout_rate=0.5)
    names = [layer.name for layer in model.layers]
    assert {"bn1", "bn2", "bn3", "dropout4", "dropout5"} <= set(names)
    assert names.index("bn1") == names.index("conv1") + 1  # BN between the conv and its ReLU
    plain = {layer.name for layer in build_course_cnn().layers}
    assert not any(n.startswith(("bn", "dropout")) for n in plain)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image_shape": (4, 4, 3)}, "too small"),
        ({"image_shape": (32, 32)}, "height, width, channels"),
        ({"dropout_rate": 1.0}, "dropout_rate"),
    ],
)
def test_bad_arguments_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_course_cnn(**kwargs)


def test_registry_builds_by_name_and_rejects_unknown_names():
    assert build_model("cifar_cnn").count_params() == 1_191_170
    with pytest.raises(ValueError, match="registered models"):
        build_model("resnet9000")
    assert "cifar_cnn" in MODEL_BUILDERS


def test_uint8_classifier_scales_pixels_inside():
    # Saving, reloading and exporting: tests/test_model_contract.py, for every registered family.
    keras.utils.set_random_seed(1)
    model = build_image_classifier(
        backbone=build_course_cnn(), image_shape=(32, 32, 3), preprocessing=[pixel_scaling()]
    )
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    expected = model(images)
    assert expected.shape == (3, 10)
    # Scaling happens inside the model: float inputs 255x larger would give other logits.
    assert not np.allclose(model.layers[-1](images.astype("float32")), expected, atol=1e-3)
