"""CNN analysis tools on the course's CNN and on another CNN (strides, dilation, odd kernels, padding)."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keraszoo.analysis import (
    UnsupportedLayerError,
    chance_level,
    chance_level_report,
    conv_output_size,
    conv_weights,
    dense_equivalent_weights,
    evaluate_chance_level,
    layer_table,
    receptive_fields,
    same_padding,
    to_fully_convolutional,
)
from keraszoo.data import load_dataset
from keraszoo.models import build_course_cnn, build_image_classifier, pixel_scaling


def other_cnn(size=40):
    """Every geometry the course's CNN lacks: dilation, a non-square strided kernel, explicit
    zero padding, an overlapping 'same' pool, an even 'same' kernel, BatchNorm, dropout."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv_a")(inputs)
    x = keras.layers.Conv2D(6, 3, dilation_rate=2, name="conv_dilated")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.ZeroPadding2D(1, name="pad")(x)
    x = keras.layers.Conv2D(8, (3, 5), strides=2, name="conv_wide")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool")(x)
    x = keras.layers.Conv2D(8, 2, padding="same", activation="relu", name="conv_even")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(16, activation="relu", name="fc1")(x)
    x = keras.layers.Dropout(0.3, name="drop")(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="fc2")(x), name="other_cnn")


# --- formulas (course Q.1) ---------------------------------------------------------------

def test_formulas_on_the_course_numbers():
    assert conv_output_size(32, kernel=5, padding=2) == 32
    assert conv_output_size(32, kernel=2, stride=2) == 16
    assert conv_output_size(7, kernel=2, stride=2) == 3  # floor
    assert conv_output_size(32, kernel=3, dilation=2) == 28
    assert conv_weights(5, 3, 32) == (2_400, 32)
    assert conv_weights((3, 5), 4, 8, bias=False) == (480, 0)
    assert dense_equivalent_weights((32, 32, 3), (32, 32, 32)) == 3_072 * 32_768
    assert same_padding(32, 5) == (2, 2)
    assert same_padding(7, 2, stride=2) == (0, 1)  # the odd extra pixel goes after
    with pytest.raises(ValueError):
        conv_output_size(3, kernel=5)


@pytest.mark.parametrize("n, kernel, padding, stride, dilation", [
    (32, 5, 2, 1, 1), (31, 3, 0, 2, 1), (28, 4, 1, 3, 1), (40, 3, 0, 1, 2), (17, 3, 3, 1, 3), (9, 9, 0, 1, 1),
])
def test_output_size_formula_agrees_with_keras(n, kernel, padding, stride, dilation):
    inputs = keras.Input((n, n, 1))
    x = keras.layers.ZeroPadding2D(padding)(inputs)
    x = keras.layers.Conv2D(1, kernel, strides=stride, dilation_rate=dilation)(x)
    assert x.shape[1] == conv_output_size(n, kernel, padding, stride, dilation)


@pytest.mark.parametrize("n, kernel, stride", [(32, 5, 1), (7, 2, 2), (10, 3, 3), (9, 4, 2)])
def test_same_padding_agrees_with_keras(n, kernel, stride):
    before, after = same_padding(n, kernel, stride)
    same = keras.layers.Conv2D(1, kernel, strides=stride, padding="same", kernel_initializer="ones")
    explicit = keras.Sequential([keras.layers.ZeroPadding2D(((before, after), (before, after))),
                                 keras.layers.Conv2D(1, kernel, strides=stride, kernel_initializer="ones")])
    x = np.random.default_rng(0).random((1, n, n, 1)).astype("float32")
    np.testing.assert_allclose(same(x), explicit(x), atol=1e-5)


# --- per-layer table (course Q.10/Q.11) ----------------------------------------------------

def test_layer_table_reproduces_the_course_table():
    table = layer_table(build_course_cnn())
    rows = {row.name: row for row in table.rows}
    assert [rows[n].weights for n in ("conv1", "conv2", "conv3", "fc4", "fc5")] == [2_400, 51_200, 102_400, 1_024_000, 10_000]
    assert [rows[n].output_shape for n in ("conv1", "pool1", "pool2", "pool3", "fc5")] == [
        (32, 32, 32), (16, 16, 32), (8, 8, 64), (4, 4, 64), (10,)]
    assert (table.weights, table.biases, table.total) == (1_190_000, 1_170, 1_191_170)
    assert "1,190,000 weights + 1,170 biases = 1,191,170 parameters" in table.format()
    assert rows["fc4"].share == pytest.approx(1_025_000 / 1_191_170)
    assert rows["conv1"].dense_equivalent == 3_072 * 32_768


def test_layer_table_on_other_cnn_counts_every_parameter_once():
    model = other_cnn()
    table = layer_table(model)
    assert table.total == model.count_params()
    rows = {row.name: row for row in table.rows}
    assert rows["conv_wide"].weights == 3 * 5 * 6 * 8 and rows["conv_wide"].output_shape == (18, 17, 8)
    assert (rows["bn"].weights, rows["bn"].biases, rows["bn"].non_trainable) == (6, 6, 12)
    assert sum(row.share for row in table.rows) == pytest.approx(1.0)


def test_layer_table_expands_nested_models():
    model = build_image_classifier(backbone=build_course_cnn(), image_shape=(32, 32, 3), preprocessing=[pixel_scaling()])
    names = [row.name for row in layer_table(model).rows]
    assert names[:2] == ["scale_pixels", "course_cnn/conv1"] and names[-1] == "course_cnn/fc5"


# --- receptive fields (course Q.7) ---------------------------------------------------------

def test_course_receptive_fields():
    fields = {row.name: row.field for row in receptive_fields(build_course_cnn())}
    sizes = [fields[n].size for n in ("conv1", "pool1", "conv2", "pool2", "conv3", "pool3")]
    assert sizes == [5, 6, 14, 16, 32, 36]
    assert [fields[n].jump for n in ("conv1", "pool1", "pool2", "pool3")] == [1, 2, 4, 8]
    assert fields["fc5"].whole_input


def _linearized(model):
    """Same geometry, no data-dependent routing: max pooling sends the gradient to one pixel per
    window and ReLU cuts paths, so the gradient-support check runs on average pooling, identity
    activations and all-positive kernels, where every pixel of the field gets a positive gradient."""
    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.MaxPooling2D):
            return keras.layers.AveragePooling2D.from_config(config)
        if isinstance(layer, keras.layers.ReLU):
            return keras.layers.Identity(name=config["name"])
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            config.update(kernel_initializer="ones", bias_initializer="zeros", activation="linear")
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=clone)


@pytest.mark.parametrize("builder", [build_course_cnn, other_cnn])
def test_receptive_fields_match_the_gradient_support(builder):
    model = _linearized(builder())
    size = model.input_shape[1]
    image = tf.ones((1, size, size, 3))
    checked = 0
    for row in receptive_fields(model):
        layer = model.get_layer(row.name)
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
            continue
        probe = keras.Model(model.inputs, layer.output)
        rows, cols = probe.output_shape[1:3]
        i, j = rows // 2, cols // 2  # a central unit
        with tf.GradientTape() as tape:
            tape.watch(image)
            unit = probe(image)[0, i, j, 0]
        support = tf.reduce_sum(tf.abs(tape.gradient(unit, image)), axis=-1)[0].numpy() > 0
        (top, bottom), (left, right) = row.field.height.pixels(i, size), row.field.width.pixels(j, size)
        expected = np.zeros_like(support)
        expected[top:bottom + 1, left:right + 1] = True
        np.testing.assert_array_equal(support, expected, err_msg=row.name)
        checked += 1
    assert checked >= 4


def test_receptive_fields_of_other_cnn():
    fields = {row.name: row.field for row in receptive_fields(other_cnn())}
    assert fields["conv_dilated"].size == 7  # 3 + (2*(3-1)+1 - 1)
    assert fields["conv_wide"].size == (9, 11) and fields["conv_wide"].jump == 2
    assert fields["pool"].size == (13, 15) and fields["pool"].jump == 4


def test_unsupported_layers_are_named():
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Reshape((64, 4))(inputs)
    x = keras.layers.MultiHeadAttention(2, 4, name="attention")(x, x)
    model = keras.Model(inputs, x)
    with pytest.raises(UnsupportedLayerError, match="'reshape"):
        receptive_fields(model)
    upsampling = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2DTranspose(1, 3, name="up")])
    with pytest.raises(UnsupportedLayerError, match="'up' \\(Conv2DTranspose\\)"):
        receptive_fields(upsampling)
    assert layer_table(model).total == model.count_params()  # counting weights works for any layer


# --- fully connected layers as convolutions (course Q.4-Q.6) -------------------------------

@pytest.mark.parametrize("builder, size, larger, expected_map", [
    (build_course_cnn, 32, 64, (5, 5)),
    (other_cnn, 40, 56, (5, 5)),  # its Flatten sees 9x9 maps; on 56x56 they are 13x13
])
def test_fully_convolutional_equals_the_original(builder, size, larger, expected_map):
    keras.utils.set_random_seed(0)
    model = builder()
    converted = to_fully_convolutional(model)
    x = np.random.default_rng(1).random((3, size, size, 3)).astype("float32")
    original = model(x, training=False).numpy()
    scores = converted(x, training=False).numpy()
    assert scores.shape == (3, 1, 1, original.shape[-1])
    np.testing.assert_allclose(scores[:, 0, 0], original, atol=1e-5)
    assert converted(np.zeros((1, larger, larger, 3), "float32")).shape[1:3] == expected_map
    assert not any(isinstance(layer, (keras.layers.Dense, keras.layers.Flatten)) for layer in converted.layers)


def test_fully_convolutional_slides_the_classifier():
    """With only 'valid' operations, map position (i, j) is the original net on the crop at stride*(i, j)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 2))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(6, activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    converted = to_fully_convolutional(model)
    image = np.random.default_rng(2).random((1, 20, 16, 2)).astype("float32")
    scores = converted(image).numpy()
    assert scores.shape == (1, 5, 3, 3)  # (20-12)/2+1, (16-12)/2+1
    for i in range(5):
        for j in range(3):
            crop = image[:, 2 * i:2 * i + 12, 2 * j:2 * j + 12]
            np.testing.assert_allclose(scores[0, i, j], model(crop)[0], atol=1e-5)


def test_fully_convolutional_needs_a_flatten_head():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(ValueError, match="Flatten"):
        to_fully_convolutional(keras.Model(inputs, keras.layers.Dense(2)(x)))


# --- chance level (course Q.17) ------------------------------------------------------------

def test_chance_level_formula_and_verdict():
    assert chance_level(10) == {"loss": pytest.approx(math.log(10)), "accuracy": 0.1}
    assert chance_level_report(2.31, 0.1, 10)["ok"]
    assert not chance_level_report(9.0, 0.1, 10)["ok"]  # e.g. pixels left in [0, 255]


def test_untrained_course_cnn_starts_at_chance_level(data_dir):
    keras.utils.set_random_seed(0)
    dataset = load_dataset("cifar10", "test[:512]", batch_size=128, data_dir=data_dir)
    scaled = dataset.map(lambda x, y: (tf.cast(x, "float32") / 255.0, y))
    report = evaluate_chance_level(build_course_cnn(), scaled)
    assert report["ok"] and abs(report["initial_loss"] - math.log(10)) < 0.1
    assert 0.03 < report["initial_accuracy"] < 0.2


def test_untrained_other_cnn_starts_at_chance_level_for_its_5_classes(data_dir):
    keras.utils.set_random_seed(1)
    dataset = load_dataset("cifar10", "test[:256]", batch_size=128, data_dir=data_dir).map(
        lambda x, y: (tf.image.resize(tf.cast(x, "float32") / 255.0, (40, 40)), y % 5))
    report = evaluate_chance_level(other_cnn(), dataset)
    assert report["chance_loss"] == pytest.approx(math.log(5)) and report["ok"]


# --- the describe command ------------------------------------------------------------------

def _describe(capsys, *argv):
    """``keraszoo describe ARGV`` in this process (the entry point is tested in test_cli.py): the exit
    code, stdout and stderr."""
    from keraszoo.cli import main

    capsys.readouterr()
    code = main(["describe", *argv])
    return code, *capsys.readouterr()


def test_describe_cifar_cnn_prints_the_course_answers(capsys):
    code, out, err = _describe(capsys, "cifar_cnn")
    assert code == 0, err[-2000:]
    assert "total: 1,190,000 weights + 1,170 biases = 1,191,170 parameters" in out
    assert "1,191,000" in out
    assert "36x36" in out


def test_describe_json_and_saved_models(short_cifar10_run, tmp_path, capsys):
    config, metrics = short_cifar10_run
    code, out, err = _describe(capsys, metrics["saved_model"], "--json")
    assert code == 0, err[-2000:]
    described = json.loads(out)
    assert described["totals"]["parameters"] == 1_191_170
    assert [f["size"] for f in described["receptive_fields"] if f["layer"].endswith("pool3")] == [36]
    code, _, err = _describe(capsys, "resnet9000")
    assert code == 2 and "cifar_cnn" in err
