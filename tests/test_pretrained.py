"""Pretrained ViT weights (course part 3): keras-hub presets loaded offline into keraszoo's ViT."""

import importlib
import keras
import keras_hub  # in the test extra: these tests must run, never skip
import numpy as np
import pytest

from keraszoo.export import load_keras_model, load_serving_fn
from keraszoo.models import MODEL_BUILDERS, build_image_classifier, build_model
from keraszoo.models.preprocessing import GrayscaleToRGB, pretrained_vit_input
from keraszoo.models.pretrained import (
    PretrainedWeightsError,
    build_vit_preset,
    find_vit,
    interpolate_position_embedding,
    load_pretrained,
)
from keraszoo.models.vit import build_vit

SMALL = dict(patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32)


def _randomise(model, scale=0.2):
    """Non-trivial values everywhere (keras-hub initialises biases and norms to constants)."""
    for i, weight in enumerate(model.weights):
        weight.assign(np.random.default_rng(i).normal(size=weight.shape).astype("float32") * scale)


def _hub_preset(path, image_size=32, **config):
    keras.utils.set_random_seed(3)
    backbone = keras_hub.models.ViTBackbone(image_shape=(image_size, image_size, 3), **{**SMALL, **config})
    _randomise(backbone)
    backbone.save_to_preset(str(path))
    return backbone


@pytest.fixture(scope="module")
def small_preset(tmp_path_factory):
    path = tmp_path_factory.mktemp("preset") / "small_vit"
    return path, _hub_preset(path)


def _images(size, n=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, size, size, 3)).astype("float32")


def test_keras_hub_preset_loads_and_gives_the_same_features(small_preset):
    path, hub = small_preset
    ours = build_vit(image_shape=(32, 32, 3), num_classes=None, **SMALL)
    result = load_pretrained(ours, str(path))
    assert result.tensors == 4 + 2 * 16 + 2 and not result.interpolated  # embeddings, 16 per block, final norm
    x = _images(32)
    np.testing.assert_allclose(ours(x), hub(x), atol=1e-4)


def test_weights_land_in_the_vit_inside_a_classifier_and_leave_the_head(small_preset):
    path, hub = small_preset
    vit = build_vit(image_shape=(32, 32, 3), num_classes=10, **SMALL)
    model = build_image_classifier(backbone=vit, image_shape=(32, 32, 3))
    assert find_vit(model) is vit
    load_pretrained(model, str(path))
    features = keras.Model(vit.input, vit.get_layer("layer_norm").output)
    np.testing.assert_allclose(features(_images(32)), hub(_images(32)), atol=1e-4)
    np.testing.assert_array_equal(vit.get_layer("classifier").kernel, 0.0)  # the new head is untouched


def test_a_checkpoint_of_another_size_is_refused_whole(small_preset):
    path, _ = small_preset
    ours = build_vit(image_shape=(32, 32, 3), num_classes=None, **{**SMALL, "num_layers": 3})
    before = [w.numpy().copy() for w in ours.weights]
    with pytest.raises(PretrainedWeightsError, match="2 layers.*3 layers"):
        load_pretrained(ours, str(path))
    for old, new in zip(before, ours.weights):
        np.testing.assert_array_equal(old, new)  # nothing half-loaded


def test_missing_weights_say_how_to_supply_a_local_copy(tmp_path):
    ours = build_vit(image_shape=(32, 32, 3), num_classes=None, **SMALL)
    with pytest.raises(PretrainedWeightsError, match="no preset folder at .*save_to_preset"):
        load_pretrained(ours, str(tmp_path / "no_such_preset"))
    # A name that is neither a folder nor a known preset (what an offline download failure also gives).
    with pytest.raises(PretrainedWeightsError, match=r"(?s)no_such_vit.*save_to_preset.*pass its path"):
        load_pretrained(ours, "no_such_vit")


def test_position_interpolation_keeps_an_unchanged_grid_exactly():
    embedding = np.random.default_rng(0).normal(size=(1, 1 + 14 * 14, 8)).astype("float32")
    np.testing.assert_array_equal(interpolate_position_embedding(embedding, (14, 14)), embedding)
    for grid in [(7, 7), (24, 24)]:
        resized = interpolate_position_embedding(embedding, grid)
        assert resized.shape == (1, 1 + grid[0] * grid[1], 8)
        np.testing.assert_array_equal(resized[:, 0], embedding[:, 0])  # the class token's is kept
    constant = np.ones((1, 1 + 4 * 4, 2), "float32")
    np.testing.assert_allclose(interpolate_position_embedding(constant, (6, 6)), 1.0, atol=1e-5)
    # A smooth ramp along the rows stays a ramp along the rows (rows and columns are not swapped).
    ramp = np.zeros((1, 1 + 4 * 4, 1), "float32")
    ramp[0, 1:, 0] = np.repeat(np.arange(4.0), 4)
    grid = interpolate_position_embedding(ramp, (8, 8))[0, 1:, 0].reshape(8, 8)
    assert np.all(np.diff(grid[:, 0]) >= -1e-5) and np.allclose(grid, grid[:, :1], atol=1e-5)


def test_loading_into_another_resolution_interpolates_positions(small_preset):
    path, hub = small_preset
    ours = build_vit(image_shape=(48, 48, 3), num_classes=None, **SMALL)
    result = load_pretrained(ours, str(path))
    assert result.checkpoint_grid == (4, 4) and result.model_grid == (6, 6)
    positions = ours.get_layer("class_token_position").position_embedding.numpy()
    expected = interpolate_position_embedding(hub.get_layer("vit_patching_and_embedding")
                                              .position_embedding.embeddings.numpy()[None], (6, 6))
    np.testing.assert_allclose(positions, expected)
    assert ours(_images(48)).shape == (3, 37, 16)


def test_standard_sizes_are_registered():
    assert {"vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224"} <= set(MODEL_BUILDERS)
    tiny = build_model("vit_tiny_patch16_224", num_classes=10)
    assert tiny.input_shape == (None, 224, 224, 3) and tiny.output_shape == (None, 10)
    # timm's deit_tiny_patch16_224 has 5,717,416 with its 1000-class head (193,000): 5,524,416 + 1,930 here.
    assert tiny.count_params() == 5_524_416 + 1_930
    with pytest.raises(ValueError, match="multiple of the patch size"):
        build_vit_preset("vit_tiny_patch16_224", num_classes=10, image_size=100)


@pytest.mark.slow
def test_vit_b16_from_a_keras_hub_preset_gives_the_same_features(tmp_path):
    """The full B/16 configuration (86M parameters, ~1 min on 2 cores): opt-in with -m slow."""
    hub = _hub_preset(tmp_path / "b16", image_size=224, patch_size=16, num_layers=12, num_heads=12,
                      hidden_dim=768, mlp_dim=3072)
    ours = build_vit_preset("vit_base_patch16_224", num_classes=None)
    assert ours.count_params() == hub.count_params() == 85_798_656  # keras-hub's preset metadata
    load_pretrained(ours, str(tmp_path / "b16"))
    x = _images(224, n=2)
    np.testing.assert_allclose(ours(x), hub(x), atol=1e-4)


def test_digit_pipeline_makes_checkpoint_sized_rgb_inside_the_model():
    inputs = keras.Input((28, 28, 1), dtype="uint8")
    x = inputs
    for layer in pretrained_vit_input(image_size=64, scale=1 / 127.5, offset=-1.0):
        x = layer(x)
    model = keras.Model(inputs, x)
    digits = np.zeros((2, 28, 28, 1), "uint8")
    digits[0] = 255
    digits[1, :, 14:] = 255
    out = keras.ops.convert_to_numpy(model(digits))
    assert out.shape == (2, 64, 64, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])  # grey repeated to RGB
    np.testing.assert_allclose(out[0], 1.0, atol=1e-6)  # 255 -> 1
    np.testing.assert_allclose(out[1, :, :24], -1.0, atol=1e-6)  # 0 -> -1, left half stays dark
    with pytest.raises(ValueError, match="one-channel"):
        GrayscaleToRGB()(np.zeros((1, 4, 4, 3), "float32"))


def test_linear_probe_trains_only_the_classifier(tmp_path):
    recipe = importlib.import_module("keraszoo.recipes.mnist_vit_b16")
    _hub_preset(tmp_path / "tiny", image_size=224, patch_size=16, num_layers=12, num_heads=3, hidden_dim=192,
                mlp_dim=768)
    config = recipe.MnistViTB16Config(model="vit_tiny_patch16_224", weights=str(tmp_path / "tiny"),
                                      mode="linear_probe", image_size=32)

    class Metadata:
        input_shape, num_classes = (28, 28, 1), 10

    loaded = {}
    model = recipe.build_model(config, Metadata, loaded)
    assert sorted(w.path for w in model.trainable_weights) == ["classifier/bias", "classifier/kernel"]
    assert loaded["tensors_loaded"] == 4 + 12 * 16 + 2 and loaded["model_grid"] == [2, 2]
    with pytest.raises(ValueError, match="linear probe of random weights"):
        recipe.MnistViTB16Config(weights="none", mode="linear_probe")
    with pytest.raises(ValueError, match="multiple of the patch size"):
        recipe.MnistViTB16Config(image_size=100)


def test_recipe_runs_offline_and_exports_a_model_for_raw_digits(data_dir, tmp_path, monkeypatch):
    from keraszoo.models import pretrained

    recipe = importlib.import_module("keraszoo.recipes.mnist_vit_b16")
    # ViT-Ti with 2 of its 12 blocks: the recipe's whole path, a sixth of the graph to trace (71 s -> 16 s here).
    monkeypatch.setitem(pretrained.VIT_PRESETS, "vit_tiny_patch16_224",
                        {**pretrained.VIT_PRESETS["vit_tiny_patch16_224"], "num_layers": 2})
    metrics = recipe.main(recipe.MnistViTB16Config(
        model="vit_tiny_patch16_224", weights="none", image_size=32, data_dir=data_dir,
        train_split="train[:64]", validation_split="train[-32:]", test_split="test[:32]", epochs=1, batch_size=32,
        output=str(tmp_path / "run"), export_dir=str(tmp_path / "models"), verbose="0"))
    serving = load_serving_fn(metrics["saved_model"])
    digits = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28, 1)).astype("uint8")
    outputs = serving(images=digits)
    assert outputs["probabilities"].shape == (3, 10)
    rebuilt = load_keras_model(metrics["saved_model"])  # the Keras model shipped next to the SavedModel
    np.testing.assert_allclose(outputs["logits"], rebuilt(digits, training=False), atol=1e-4)
    assert metrics["weights"].startswith("none")
