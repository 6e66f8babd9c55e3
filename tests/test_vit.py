"""Vision Transformer layers (course part 3): equations vs Keras, shapes, serialization, a short real run."""

import importlib
import keras
import numpy as np
import pytest

from keraszoo.models.vit import build_vit, num_tokens
from keraszoo.models.vit_layers import (
    ClassTokenPosition,
    MultiHeadSelfAttention,
    PatchEmbedding,
    TransformerEncoderBlock,
)
from keraszoo.training.callbacks import WarmupCosine


def _x(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize("tokens, dim, heads", [(5, 8, 2), (17, 64, 4), (3, 6, 1)])
def test_attention_from_the_equations_equals_keras(tokens, dim, heads):
    x = _x(2, tokens, dim)
    reference = keras.layers.MultiHeadAttention(heads, dim // heads)
    reference(x, x)
    reference.set_weights([_x(*w.shape, seed=i) * 0.3 for i, w in enumerate(reference.get_weights())])
    ours = MultiHeadSelfAttention(heads, dim // heads)
    ours.build(x.shape)
    ours.set_weights(reference.get_weights())  # same layout, same order
    output, attention = ours(x, return_attention_scores=True)
    expected, expected_attention = reference(x, x, return_attention_scores=True)
    np.testing.assert_allclose(output, expected, atol=1e-5)
    np.testing.assert_allclose(attention, expected_attention, atol=1e-5)
    assert attention.shape == (2, heads, tokens, tokens)
    np.testing.assert_allclose(np.sum(attention, axis=-1), 1.0, atol=1e-5)  # softmax over keys


@pytest.mark.parametrize("patch, tokens", [(4, 49), (7, 16), (11, 4), (14, 4)])
def test_patch_embedding_shapes(patch, tokens):
    embedding = PatchEmbedding(patch, 16)
    assert embedding(_x(2, 28, 28, 1)).shape == (2, tokens, 16)
    assert num_tokens((28, 28, 1), patch) == tokens + 1


def test_patch_size_that_does_not_divide_drops_the_remainder():
    """28 = 2 * 11 + 6: the last 6 rows and columns are never seen with patch 11."""
    embedding = PatchEmbedding(11, 8)
    images = _x(1, 28, 28, 1)
    changed = images.copy()
    changed[:, 22:, :, :] += 5.0
    changed[:, :, 22:, :] += 5.0
    np.testing.assert_array_equal(embedding(images), embedding(changed))
    changed[:, 21, 21, 0] += 5.0  # inside the last whole patch
    assert not np.allclose(embedding(images), embedding(changed))


def test_class_token_and_positions():
    layer = ClassTokenPosition()
    patches = _x(3, 16, 8)
    out = layer(patches)
    assert out.shape == (3, 17, 8)
    positions = layer.position_embedding.numpy()[0]
    np.testing.assert_allclose(out[:, 0], np.broadcast_to(layer.class_token.numpy()[0, 0] + positions[0], (3, 8)), atol=1e-6)
    np.testing.assert_allclose(out[:, 1:], patches + positions[1:], atol=1e-6)


def test_pre_norm_block_is_residual():
    block = TransformerEncoderBlock(num_heads=2, mlp_dim=16)
    x = _x(2, 5, 8)
    block(x)
    block.attention.output_kernel.assign(np.zeros(block.attention.output_kernel.shape))
    block.attention.output_bias.assign(np.zeros(8))
    block.mlp_output.kernel.assign(np.zeros(block.mlp_output.kernel.shape))
    np.testing.assert_allclose(block(x), x, atol=1e-6)  # both branches silenced: x passes unchanged
    _, attention = block(x, return_attention_scores=True)
    assert attention.shape == (2, 2, 5, 5)


def test_vit_builds_and_checks_arguments():
    keras.utils.set_random_seed(0)
    model = build_vit(image_shape=(28, 28, 1), patch_size=7, hidden_dim=16, num_layers=2, num_heads=2,
                      mlp_dim=32, num_classes=10, dropout_rate=0.1)
    x = _x(2, 28, 28, 1)
    assert model(x).shape == (2, 10)  # saving and exporting: tests/test_model_contract.py
    assert [layer.name for layer in model.layers if "transformer" in layer.name] == [
        "transformer_layer_0", "transformer_layer_1"]
    with pytest.raises(ValueError, match="divisible by num_heads"):
        build_vit(image_shape=(28, 28, 1), patch_size=7, hidden_dim=10, num_layers=1, num_heads=4, mlp_dim=8,
                  num_classes=10)
    with pytest.raises(ValueError, match="patch_size"):
        build_vit(image_shape=(28, 28, 1), patch_size=29, hidden_dim=8, num_layers=1, num_heads=2, mlp_dim=8,
                  num_classes=10)


def test_every_weight_gets_a_gradient():
    import tensorflow as tf

    model = build_vit(image_shape=(28, 28, 1), patch_size=14, hidden_dim=8, num_layers=2, num_heads=2,
                      mlp_dim=8, num_classes=10)
    head = model.get_layer("classifier")
    head.kernel.assign(_x(*head.kernel.shape))  # the zero-initialised head would block every other gradient
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(_x(2, 28, 28, 1)) ** 2)
    gradients = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients)


def test_warmup_cosine_schedule():
    schedule = WarmupCosine(1e-3, total_steps=100, warmup_steps=10)
    assert schedule.learning_rate(0) == pytest.approx(1e-4)
    assert schedule.learning_rate(9) == pytest.approx(1e-3)
    assert schedule.learning_rate(55) == pytest.approx(5e-4)
    assert schedule.learning_rate(100) == pytest.approx(0.0, abs=1e-12)
    # The in-graph rate the optimizer uses is the same function, and the schedule round-trips.
    for step in (0, 5, 9, 10, 55, 99, 100, 150):
        assert float(schedule(step)) == pytest.approx(schedule.learning_rate(step), rel=1e-6, abs=1e-9)  # float32 near 0
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(again, WarmupCosine) and again.get_config() == schedule.get_config()


def test_short_real_training_on_mnist(data_dir, tmp_path):
    recipe = importlib.import_module("keraszoo.recipes.mnist_vit")
    config = recipe.MnistViTConfig(data_dir=data_dir, train_split="train[:2048]", validation_split="train[-256:]",
                                   test_split="test[:256]",
                                   epochs=3, batch_size=64, hidden_dim=16, num_layers=2, num_heads=2, mlp_dim=32,
                                   learning_rate=3e-3, warmup_epochs=0.3, dropout_rate=0.0,
                                   output=str(tmp_path / "run"), export_dir=str(tmp_path / "models"), verbose="0")
    metrics = recipe.main(config)
    assert metrics["initial_loss_near_chance"]
    assert metrics["train_loss"] < metrics["initial_val_loss"]
    assert metrics["test_accuracy"] > 0.3
    from keraszoo.cli import main as keraszoo
    assert keraszoo(["evaluate", metrics["saved_model"], "--dataset", "mnist", "--split", "test[:256]",
                     "--data-dir", data_dir, "--show", "0"]) == 0


def test_class_token_attention_follows_the_models_own_forward_pass(data_dir, tmp_path):
    from keraszoo.analysis.attention import class_token_attention, upsample
    from keraszoo.models import build_image_classifier
    from keraszoo.models.preprocessing import normalization

    keras.utils.set_random_seed(0)
    vit = build_vit(image_shape=(28, 28, 1), patch_size=11, hidden_dim=8, num_layers=2, num_heads=2, mlp_dim=16,
                    num_classes=10)
    vit.get_layer("classifier").kernel.assign(_x(8, 10) * 0.5)  # a non-zero head, so logits differ per image
    model = build_image_classifier(backbone=vit, image_shape=(28, 28, 1),
                                   preprocessing=[normalization([33.0], [6000.0])])
    digits = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28, 1)).astype("uint8")
    maps = class_token_attention(model, digits)
    np.testing.assert_allclose(maps.logits, model(digits, training=False), atol=1e-5)  # same path as the model
    assert maps.per_layer.shape == (3, 2, 2, 2) and maps.rollout.shape == (3, 2, 2)
    assert np.all(maps.per_layer >= 0) and np.all(maps.per_layer.sum(axis=(-2, -1)) <= 1 + 1e-6)
    assert np.all(maps.rollout.sum(axis=(-2, -1)) <= 1 + 1e-6)
    heat = upsample(maps.rollout[0], (28, 28), 11)
    assert heat.shape == (28, 28) and np.all(heat[22:] == 0) and np.all(heat[:, 22:] == 0)  # uncovered pixels

    tool = importlib.import_module("keraszoo.recipes.vit_attention_maps")
    model.save(tmp_path / "vit.keras")
    args = tool.parse_args(["--model", str(tmp_path / "vit.keras"), "--count", "2", "--data-dir", data_dir,
                            "--output", str(tmp_path / "maps.png")])
    assert tool.draw(args) == 0 and (tmp_path / "maps.png").stat().st_size > 10_000


def test_without_positions_the_vit_cannot_tell_where_patches_are():
    """The ablations' point (course: why a positional embedding): with mean pooling and no positions,
    shuffling the patches of a digit leaves the logits unchanged; with learned positions it does not."""
    import numpy as np

    from keraszoo.models.vit import build_vit

    rng = np.random.default_rng(0)
    image = rng.uniform(size=(1, 28, 28, 1)).astype("float32")
    blocks = image.reshape(1, 4, 7, 4, 7, 1).transpose(0, 1, 3, 2, 4, 5).reshape(1, 16, 7, 7, 1)
    order = rng.permutation(16)
    shuffled = blocks[:, order].reshape(1, 4, 4, 7, 7, 1).transpose(0, 1, 3, 2, 4, 5).reshape(1, 28, 28, 1)
    logits = {}
    for position_embedding in (False, True):
        keras.utils.set_random_seed(1)
        model = build_vit(image_shape=(28, 28, 1), patch_size=7, hidden_dim=16, num_layers=2, num_heads=2, mlp_dim=32,
                          num_classes=10, pooling="mean", position_embedding=position_embedding)
        head = model.get_layer("classifier")
        head.set_weights([rng.normal(size=w.shape).astype("float32") for w in head.get_weights()])  # not zero
        logits[position_embedding] = [np.asarray(model(x)) for x in (image, shuffled)]
    np.testing.assert_allclose(*logits[False], atol=1e-5)
    assert np.abs(logits[True][0] - logits[True][1]).max() > 1e-3
    with pytest.raises(ValueError, match="pooling"):
        build_vit(image_shape=(28, 28, 1), patch_size=7, hidden_dim=16, num_layers=1, num_heads=2, mlp_dim=8,
                  num_classes=10, pooling="max")
