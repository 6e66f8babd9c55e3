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
    options = dict(data_dir=data_dir, train_split="train[:256]", validation_split="train[-128:]",
                   test_split="test[:128]", epochs=1, batch_size=64, output=str(tmp_path / "run"),
                   export_dir=str(tmp_path / "models"),
                   verbose="0", evaluate_at_init=False)
    return recipe.Cifar10CNNConfig(**{**options, **overrides})


def test_variants_are_cumulative_and_flags_override(cifar10_recipe):
    config = cifar10_recipe.Cifar10CNNConfig
    assert config().ladder_switches() == {"normalize": False, "augment": False, "lr_decay": 1.0, "dropout_rate": 0.0,
                                "batch_norm": False}
    assert config(variant="augmented").ladder_switches()["normalize"] and not config(variant="augmented").ladder_switches()["batch_norm"]
    assert config(variant="dropout").ladder_switches() == {"normalize": True, "augment": True, "lr_decay": 0.95,
                                                 "dropout_rate": 0.5, "batch_norm": False}
    assert config(variant="batchnorm").ladder_switches() == {"normalize": True, "augment": True, "lr_decay": 0.9,
                                                   "dropout_rate": 0.25, "batch_norm": True}
    assert config(variant="batchnorm", dropout_rate=0.0).ladder_switches()["dropout_rate"] == 0.0
    assert config(variant="baseline", batch_norm=True).ladder_switches()["batch_norm"]
    with pytest.raises(ValueError, match="gamma"):
        config(lr_decay=1.5)


def test_batchnorm_trains_with_momentum_and_the_others_with_the_courses_sgd(cifar10_recipe):
    config = cifar10_recipe.Cifar10CNNConfig
    for variant in ("baseline", "lr_decay", "dropout"):
        assert (config(variant=variant).learning_rate, config(variant=variant).momentum) == (0.1, 0.0)
    batchnorm = config(variant="batchnorm")
    assert (batchnorm.learning_rate, batchnorm.momentum, batchnorm.ladder_switches()["lr_decay"]) == (0.05, 0.9, 0.9)
    # Explicit options win, so the course's plain SGD stays one flag away; the record keeps what ran.
    course = config(variant="batchnorm", learning_rate=0.1, momentum=0.0, lr_decay=0.95, dropout_rate=0.5)
    assert (course.learning_rate, course.momentum, course.ladder_switches()["lr_decay"], course.ladder_switches()["dropout_rate"]) == \
        (0.1, 0.0, 0.95, 0.5)
    assert config(variant="dropout", momentum=0.5).to_dict()["momentum"] == 0.5
    with pytest.raises(ValueError, match="momentum"):
        config(variant="batchnorm", momentum=1.0)


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
    from keraszoo.training.runner import load_data

    config = cifar10_recipe.Cifar10CNNConfig(data_dir=data_dir, variant="normalized", train_split="train[:200]",
                                             validation_split="train[-200:]", test_split="test[:200]")
    data = load_data("cifar10", config)
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
    from keraszoo.training.runner import load_data

    config = _config(cifar10_recipe, data_dir, tmp_path, variant="augmented")
    data = load_data("cifar10", config)
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


def test_training_crop_gives_each_image_its_own_window():
    from keraszoo.models.preprocessing import TrainingCrop

    # 64 copies of one image: a crop offset shared by the batch (Keras's RandomCrop) gives 64 equal outputs.
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    crops = keras.ops.convert_to_numpy(TrainingCrop(28, 28, seed=1)(np.stack([image] * 64), training=True))
    windows = {(top, left): image[top:top + 28, left:left + 28].astype(np.float32)
               for top in range(5) for left in range(5)}
    found = [next(offset for offset, window in windows.items() if np.array_equal(crop, window)) for crop in crops]
    assert len(set(found)) > 10, f"the batch's crops share offsets: {sorted(set(found))}"
    assert {top for top, _ in found} == set(range(5)) and {left for _, left in found} == set(range(5))
    centre = keras.ops.convert_to_numpy(TrainingCrop(28, 28, seed=1)(image[None], training=False))
    np.testing.assert_array_equal(centre[0], windows[(2, 2)])
    with pytest.raises(ValueError, match="cannot crop"):
        TrainingCrop(40, 40)(np.stack([image] * 2), training=True)


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
    train(model(), train_data=train_data, validation_data=test_data, test_data=test_data, config=config,
          output_dir=tmp_path,
          schedule=ExponentialDecay(0.1, 0.5))
    # Started again with more epochs, as after a kill: the schedule continues at epoch 2.
    result = train(model(), train_data=train_data, validation_data=test_data, test_data=test_data, output_dir=tmp_path,
                   config=dataclasses.replace(config, epochs=3), schedule=ExponentialDecay(0.1, 0.5))
    assert [row["learning_rate"] for row in result.history] == pytest.approx([0.1, 0.05, 0.025])
    assert result.metrics["resumed_at_epochs"] == [2]


def test_ladder_report_tabulates_seeds_from_the_records(tmp_path):
    
    from keraszoo.recipes import cifar10_ladder as ladder
    from keraszoo.training.study import load_records

    for seed, test_accuracy in ((0, 0.79), (1, 0.81)):
        record = tmp_path / "records" / f"batchnorm-seed{seed}"
        record.mkdir(parents=True)
        (record / "config.json").write_text(json.dumps({"learning_rate": 0.05, "momentum": 0.9}))
        (record / "metrics.json").write_text(json.dumps({
            "variant": "batchnorm", "seed": seed, "epochs": 2, "test_accuracy": test_accuracy, "train_accuracy": 0.75,
            "best_epoch": 2, "best_val_accuracy": test_accuracy, "mean_train_time_per_epoch_s": 64.0,
            "steps": {"lr_decay": 0.9},
            "environment": {"gpus": [], "backend": "tensorflow", "cpu": "AMD EPYC", "cpu_count": 2}}))
        (record / "history.csv").write_text("epoch,loss,accuracy,val_loss,val_accuracy\n"
                                            f"1,1.5,0.5,1.4,0.55\n2,0.9,0.75,0.8,{test_accuracy}\n")
    table = ladder.report(load_records(tmp_path / "records"), tmp_path / "figures")
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()[2:]}
    assert rows["batchnorm"].startswith("| batchnorm | SGD 0.05, 0.9, 0.9 | 2 | 0, 1 | 80.00 ± 1.41 | 75.00 ± 0.00 | -5.0 | 2 (79.0), 2 (81.0) | 64 |")
    assert "not run yet" in rows["dropout"]
    assert (tmp_path / "figures" / "cifar10_ladder_batchnorm.png").stat().st_size > 10_000

    # Records of runs on a GPU with another backend, per-epoch times (median shown).
    metrics = json.loads((tmp_path / "records" / "batchnorm-seed0" / "metrics.json").read_text())
    metrics["environment"] = {"gpus": ["NVIDIA H200"], "backend": "jax", "cpu": "x", "cpu_count": 16}
    for seed in (0, 1):
        (tmp_path / "records" / f"batchnorm-seed{seed}" / "metrics.json").write_text(json.dumps({**metrics, "seed": seed}))
        (tmp_path / "records" / f"batchnorm-seed{seed}" / "history.csv").write_text(
            "epoch,loss,accuracy,val_loss,val_accuracy,train_time_s\n1,1.5,0.5,1.4,0.55,90\n2,0.9,0.75,0.8,0.8,2\n"
            "3,0.9,0.75,0.8,0.8,3\n")
    table = ladder.report(load_records(tmp_path / "records"), tmp_path / "figures", "gpu")
    assert table.splitlines()[-1].endswith("| 3 | NVIDIA H200 (Keras on jax) |")
    assert (tmp_path / "figures" / "gpu_batchnorm.png").is_file()

    # A run in bfloat16 (the CNN's default on CPUs with bfloat16 units) says so beside its hardware.
    metrics = {**metrics, "dtype_policy": "mixed_bfloat16",
               "environment": {"gpus": [], "backend": "tensorflow", "cpu": "AMD EPYC", "cpu_count": 2}}
    (tmp_path / "records" / "batchnorm-seed0" / "metrics.json").write_text(json.dumps({**metrics, "seed": 0}))
    table = ladder.report(load_records(tmp_path / "records"), tmp_path / "figures", "mixed")
    assert table.splitlines()[-1].endswith("| AMD EPYC, 2 cores, bfloat16; NVIDIA H200 (Keras on jax) |")


def test_claims_table_reads_turning_point_and_oscillation_from_the_history():
    
    from keraszoo.recipes import cifar10_ladder as ladder
    from keraszoo.training.study import Record

    # Test loss lowest at epoch 4, then rising; test accuracy alternating 0.60 / 0.62 from epoch 6 on.
    losses = [1.5, 1.2, 1.0, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7]
    history = [{"epoch": e, "val_loss": loss, "val_accuracy": 0.60 + 0.02 * (e % 2)}
               for e, loss in enumerate(losses, start=1)]
    run = lambda variant, rows: Record(f"{variant}-seed0", variant, 0, {}, {}, rows)  # noqa: E731
    table = ladder.claims_table({"baseline": [run("baseline", history)], "dropout": [run("dropout", history[:3])]})
    row = table.splitlines()[-1]
    assert row == "| baseline | 4 | 1.70 | 60.0 | 2.00 | 0.100 |"
    assert "dropout" not in table  # too short to say anything about oscillation
