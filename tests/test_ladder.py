"""The CIFAR-10 improvement ladder (course part 2): variants, normalisation, augmentation, decay."""

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from keraszoo.data import read_split
from keraszoo.data.statistics import channel_mean_variance
from keraszoo.export import export_classifier, load_serving_fn
from keraszoo.training import train
from keraszoo.training.callbacks import ExponentialDecay


def _config(recipe, data_dir, tmp_path, **overrides):
    options = dict(data_dir=data_dir, train_split="train[:256]", test_split="test[:128]", epochs=1,
                   batch_size=64, output=str(tmp_path / "run"), export_dir=str(tmp_path / "models"),
                   verbose="0", evaluate_at_init=False)
    return recipe.Cifar10CNNConfig(**{**options, **overrides})


def test_variants_are_cumulative_and_flags_override(cifar10_recipe):
    config = cifar10_recipe.Cifar10CNNConfig
    assert config().steps() == {"normalize": False, "augment": False, "lr_decay": 1.0, "dropout_rate": 0.0,
                                "batch_norm": False}
    assert config(variant="augmented").steps()["normalize"] and not config(variant="augmented").steps()["batch_norm"]
    assert config(variant="batchnorm").steps() == {"normalize": True, "augment": True, "lr_decay": 0.95,
                                                   "dropout_rate": 0.5, "batch_norm": True}
    assert config(variant="batchnorm", dropout_rate=0.0).steps()["dropout_rate"] == 0.0
    assert config(variant="baseline", batch_norm=True).steps()["batch_norm"]
    with pytest.raises(ValueError, match="gamma"):
        config(lr_decay=1.5)


@pytest.mark.parametrize("variant", ["baseline", "normalized", "augmented", "lr_decay", "dropout", "batchnorm"])
def test_every_variant_trains_an_epoch_and_exports(cifar10_recipe, data_dir, tmp_path, variant):
    metrics = cifar10_recipe.main(_config(cifar10_recipe, data_dir, tmp_path, variant=variant))
    assert np.isfinite(metrics["test_loss"]) and metrics["epochs"] == 1
    assert metrics["variant"] == variant
    exported = json.loads((Path(metrics["saved_model"]) / "keras_model.json").read_text())
    layer_types = json.dumps(exported)
    assert "RandomFlip" not in layer_types and "TrainingCrop" not in layer_types  # inference model only
    assert ("CenterCrop" in layer_types) == (variant not in ("baseline", "normalized"))


def test_normalization_statistics_come_from_the_training_split(cifar10_recipe, data_dir):
    from keraszoo.training.recipe import load_tfds_data

    config = cifar10_recipe.Cifar10CNNConfig(data_dir=data_dir, variant="normalized", train_split="train[:200]",
                                             test_split="test[:200]")
    data = load_tfds_data("cifar10", config)
    model, _ = cifar10_recipe.build_models(config, data.metadata, data.train)
    layer = model.get_layer("normalize")
    train_mean, train_variance = channel_mean_variance(data.train)
    test_mean, _ = channel_mean_variance(data.test)
    assert np.abs(train_mean - test_mean).max() > 0.5  # the two splits differ, so the check means something
    np.testing.assert_allclose(np.ravel(layer.mean), train_mean, rtol=1e-5)
    np.testing.assert_allclose(np.ravel(layer.variance), train_variance, rtol=1e-5)
    images = next(iter(data.train.examples.batch(200)))[0]
    normalized = layer(images).numpy()
    np.testing.assert_allclose(normalized.mean(axis=(0, 1, 2)), 0, atol=1e-3)  # on the train split itself
    np.testing.assert_allclose(normalized.std(axis=(0, 1, 2)), 1, atol=1e-3)


def test_channel_statistics_match_numpy(data_dir):
    data = read_split("cifar10", "train[:300]", data_dir=data_dir)
    images = np.concatenate([x.numpy() for x, _ in data.examples.batch(64)]).astype(np.float64)
    mean, variance = channel_mean_variance(data, batch_size=7)
    np.testing.assert_allclose(mean, images.mean(axis=(0, 1, 2)), rtol=1e-10)
    np.testing.assert_allclose(variance, images.var(axis=(0, 1, 2)), rtol=1e-8)


def test_augmentation_is_on_in_training_and_off_at_inference(cifar10_recipe, data_dir, tmp_path):
    from keraszoo.training.recipe import load_tfds_data

    config = _config(cifar10_recipe, data_dir, tmp_path, variant="augmented")
    data = load_tfds_data("cifar10", config)
    training, inference = cifar10_recipe.build_models(config, data.metadata, data.train)
    images = next(iter(data.test.examples.batch(8)))[0]
    first, second = training(images, training=False), training(images, training=False)
    np.testing.assert_array_equal(first, second)  # deterministic at inference
    assert not np.allclose(training(images, training=True), training(images, training=True))  # random in training
    np.testing.assert_allclose(inference(images), first, atol=1e-6)  # same centre crop as the training model
    version = export_classifier(inference, export_dir=tmp_path / "export", name="augmented")
    served = load_serving_fn(version)(images=images)["logits"]
    np.testing.assert_allclose(served, first, atol=1e-5)  # the export-equality check of the pitfall
    graph = tf.saved_model.load(str(version)).signatures["serving_default"].graph.as_graph_def()
    ops = {node.op for node in graph.node} | {node.op for f in graph.library.function for node in f.node_def}
    assert not [op for op in ops if "Random" in op], sorted(op for op in ops if "Random" in op)


def test_exponential_decay_values_and_resume(data_dir, tmp_path):
    decay = ExponentialDecay(0.1, 0.95)
    assert decay.learning_rate(0) == pytest.approx(0.1)
    assert decay.learning_rate(1) == pytest.approx(0.095)
    assert decay.learning_rate(10) == pytest.approx(0.1 * 0.95**10)

    from keraszoo.config import TrainConfig
    from keraszoo.models import build_course_cnn, build_image_classifier, pixel_scaling

    def model():
        keras.utils.set_random_seed(0)
        return build_image_classifier(backbone=build_course_cnn(), image_shape=(32, 32, 3),
                                      preprocessing=[pixel_scaling()])

    train_data = read_split("cifar10", "train[:128]", data_dir=data_dir)
    test_data = read_split("cifar10", "test[:64]", data_dir=data_dir)
    config = TrainConfig(epochs=2, batch_size=64, verbose="0", evaluate_at_init=False, export=False)
    train(model(), train_data=train_data, test_data=test_data, config=config, output_dir=tmp_path,
          callbacks=[ExponentialDecay(0.1, 0.5)])
    # Started again with more epochs, as after a kill: the schedule continues at epoch 2.
    result = train(model(), train_data=train_data, test_data=test_data, output_dir=tmp_path,
                   config=dataclasses.replace(config, epochs=3), callbacks=[ExponentialDecay(0.1, 0.5)])
    assert [row["learning_rate"] for row in result.history] == pytest.approx([0.1, 0.05, 0.025])
    assert result.metrics["resumed_at_epochs"] == [2]
