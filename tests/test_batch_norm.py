"""FusedBatchNormalization: Keras's batch norm, with TensorFlow's fused kernel in its training step."""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from keraszoo.models.batch_norm import FusedBatchNormalization


def _pair(**options):
    """Keras's layer and the fused one, built on the same random weights and moving statistics."""
    rng = np.random.default_rng(0)
    keras_bn = keras.layers.BatchNormalization(**options)
    fused = FusedBatchNormalization(**options)
    for layer in (keras_bn, fused):
        layer.build((None, 6, 6, 5))
    weights = [rng.normal(1.0, 0.3, w.shape).astype("float32") if "variance" in w.path or "gamma" in w.path
               else rng.normal(0.0, 0.3, w.shape).astype("float32") for w in keras_bn.weights]
    keras_bn.set_weights(weights)
    fused.set_weights(weights)
    return keras_bn, fused


def _inputs(dtype="float32"):
    return tf.constant(np.random.default_rng(1).normal(2.0, 3.0, (16, 6, 6, 5)), dtype)


def _graph_ops(layer, training):
    function = tf.function(lambda x: layer(x, training=training))
    return {op.type for op in function.get_concrete_function(tf.TensorSpec((16, 6, 6, 5))).graph.get_operations()}


@pytest.mark.parametrize("options", [{}, {"momentum": 0.6, "epsilon": 1e-4}, {"center": False},
                                     {"scale": False}, {"synchronized": True}])
def test_training_step_matches_keras_outputs_gradients_and_moving_statistics(options):
    keras_bn, fused = _pair(**options)
    x = _inputs()
    weights = tf.constant(np.random.default_rng(4).normal(size=x.shape), "float32")  # every output counts its own
    results = []
    for layer in (keras_bn, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * weights)
        grads = tape.gradient(loss, [x, *layer.trainable_weights])
        results.append((y, grads, [w.numpy() for w in layer.non_trainable_weights]))
    (y_k, g_k, s_k), (y_f, g_f, s_f) = results
    np.testing.assert_allclose(y_f, y_k, atol=2e-5)
    for a, b in zip(g_f, g_k, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    for a, b in zip(s_f, s_k, strict=True):  # moving mean and (biased) variance, Keras's rule
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused(x, training=False), keras_bn(x, training=False), atol=1e-5)


def test_training_uses_the_fused_kernel_and_inference_keras_ops():
    _, fused = _pair()
    assert "FusedBatchNormV3" in _graph_ops(fused, True)
    assert "FusedBatchNormV3" not in _graph_ops(fused, False)
    frozen = FusedBatchNormalization()
    frozen.build((None, 6, 6, 5))
    frozen.trainable = False  # a frozen layer normalises with its moving statistics, as Keras's does
    assert "FusedBatchNormV3" not in _graph_ops(frozen, True)


@pytest.mark.parametrize("case", ["tiny_epsilon", "channels_first", "renorm", "2d_input"])
def test_what_the_kernel_cannot_do_falls_back_to_keras(case):
    options = {"tiny_epsilon": {"epsilon": 1e-6}, "channels_first": {"axis": 1}, "renorm": {"renorm": True}}
    keras_bn = keras.layers.BatchNormalization(**options.get(case, {}))
    fused = FusedBatchNormalization(**options.get(case, {}))
    x = tf.constant(np.random.default_rng(2).normal(size=(16, 5) if case == "2d_input" else (16, 6, 6, 5)),
                    "float32")
    assert not fused._fused(x, True, None)
    np.testing.assert_allclose(fused(x, training=True), keras_bn(x, training=True), atol=1e-5)


def test_synchronized_layers_keep_keras_all_reduce_on_several_replicas(monkeypatch):
    layer = FusedBatchNormalization(synchronized=True)
    x = _inputs()
    assert layer._fused(x, True, None)
    monkeypatch.setattr(tf.distribute, "get_replica_context", lambda: types.SimpleNamespace(num_replicas_in_sync=2))
    assert not layer._fused(x, True, None)
    assert FusedBatchNormalization()._fused(x, True, None)  # unsynchronized: each replica its own statistics


def test_bfloat16_inputs_stay_bfloat16_and_statistics_float32():
    from keraszoo.training.distribute import precision

    keras_bn, _ = _pair()
    with precision(True):
        fused = FusedBatchNormalization()
        fused.build((None, 6, 6, 5))
    fused.set_weights(keras_bn.get_weights())
    x = _inputs()
    y = fused(tf.cast(x, "bfloat16"), training=True)
    assert y.dtype == tf.bfloat16 and fused.moving_mean.dtype == "float32"
    np.testing.assert_allclose(tf.cast(y, "float32"), keras_bn(x, training=True), atol=0.05)  # bfloat16 rounding
    np.testing.assert_allclose(fused.moving_mean.numpy(), keras_bn.moving_mean.numpy(), atol=1e-2)


def test_saves_and_loads_as_a_keraszoo_layer(tmp_path):
    from keraszoo.models import build_course_cnn, build_speedrun_net

    speedrun = build_speedrun_net(image_shape=(32, 32, 3), num_classes=10, widths=(8, 16))
    assert {type(layer) for layer in speedrun.layers if "bn" in layer.name} == {FusedBatchNormalization}
    assert speedrun.get_layer("stem_bn").momentum == 0.9
    model = build_course_cnn(batch_norm=True)
    assert isinstance(model.get_layer("bn1"), FusedBatchNormalization)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.get_layer("bn1"), FusedBatchNormalization)
    x = np.random.default_rng(3).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), atol=1e-6)
