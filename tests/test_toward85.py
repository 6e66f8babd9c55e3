"""What the ≥ 85 % search adds to the course CNN's recipe (issue #37): translations, PyTorch-style weight decay,
label smoothing, the cosine schedule, flip TTA, and the study that ablates them."""

import json

import keras
import numpy as np
import pytest

from keraszoo.training.callbacks import WarmupCosine


def test_translation_crops_are_windows_of_the_mirror_padded_image():
    from keraszoo.models.preprocessing import TrainingCrop

    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    padded = np.pad(image, ((2, 2), (2, 2), (0, 0)), mode="reflect").astype(np.float32)
    crop = TrainingCrop(8, 8, seed=3, padding=2)
    outputs = keras.ops.convert_to_numpy(crop(np.stack([image] * 64), training=True))
    windows = {(top, left): padded[top:top + 8, left:left + 8] for top in range(5) for left in range(5)}
    found = [next((offset for offset, window in windows.items() if np.array_equal(out, window)), None)
             for out in outputs]
    assert None not in found, "a crop that is no window of the reflect-padded image"
    assert {top for top, _ in found} == set(range(5)) and {left for _, left in found} == set(range(5))
    # At inference the whole image, unpadded: the exported model sees what was trained at the centre.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(crop(image[None], training=False))[0], image)
    assert TrainingCrop.from_config(crop.get_config()).padding == 2
    with pytest.raises(ValueError, match="padding"):
        TrainingCrop(8, 8, padding=8)(np.stack([image] * 2), training=True)


def test_sgd_weight_decay_is_pytorchs_and_adam_refuses_one():
    from keraszoo.config import TrainConfig
    from keraszoo.training.optimizers import CoupledDecaySGD, make_optimizer

    optimizer = make_optimizer(TrainConfig(optimizer="sgd", learning_rate=0.1, momentum=0.9, weight_decay=0.01))
    assert isinstance(optimizer, CoupledDecaySGD)
    weight = keras.Variable(np.array([2.0], "float32"))
    gradients = [np.array([0.5], "float32"), np.array([-0.25], "float32")]
    # torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01): g += wd w; v = m v + g; w -= lr v
    w, v = 2.0, 0.0
    for g in gradients:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), weight)])
        v = 0.9 * v + g[0] + 0.01 * w
        w -= 0.1 * v
    np.testing.assert_allclose(keras.ops.convert_to_numpy(weight), [w], rtol=1e-6)
    assert type(make_optimizer(TrainConfig(optimizer="sgd"))) is keras.optimizers.SGD
    with pytest.raises(ValueError, match="adamw"):
        TrainConfig(optimizer="adam", weight_decay=1e-4)


def test_smoothed_sparse_cross_entropy_is_kerass_categorical_one_on_integer_labels():
    from keraszoo.training.optimizers import SmoothedSparseCrossentropy

    logits = np.random.default_rng(1).normal(size=(6, 10)).astype("float32")
    labels = np.array([0, 3, 9, 2, 2, 7], "int32")
    expected = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(
        keras.ops.one_hot(labels, 10), logits)
    np.testing.assert_allclose(SmoothedSparseCrossentropy(0.1)(labels, logits), expected, rtol=1e-6)
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    np.testing.assert_allclose(SmoothedSparseCrossentropy(0.0)(labels[:, None], logits), plain, rtol=1e-6)
    assert SmoothedSparseCrossentropy.from_config(SmoothedSparseCrossentropy(0.2).get_config()).label_smoothing == 0.2
    with pytest.raises(ValueError, match="label_smoothing"):
        SmoothedSparseCrossentropy(1.0)


def test_cosine_replaces_the_exponential_decay(cifar10_recipe):
    config = cifar10_recipe.Cifar10CNNConfig
    cosine = config(variant="batchnorm", schedule="cosine", epochs=30)
    assert cosine.ladder_switches()["lr_decay"] == 1.0  # recorded as it runs: no γ on top of the cosine
    with pytest.raises(ValueError, match="cosine schedule replaces"):
        config(variant="batchnorm", schedule="cosine", lr_decay=0.9)
    with pytest.raises(ValueError, match="warmup_epochs"):
        config(schedule="cosine", epochs=2, warmup_epochs=2)
    config(epochs=1)  # the default warmup does not bind the exponential schedule's smoke runs
    with pytest.raises(ValueError, match="translate"):
        config(translate=9)

    class Split:
        num_examples = 1000

    schedule = cifar10_recipe._schedule(cosine, type("Data", (), {"train": Split()})(), cosine.ladder_switches())
    assert isinstance(schedule, WarmupCosine)
    assert (schedule.total_steps, schedule.warmup_steps, schedule.peak) == (30 * 8, 8, 0.05)


def test_flip_accuracy_averages_each_image_with_its_mirror(cifar10_recipe):
    from keraszoo.data.arrays import ArraySplit

    # A "model" whose logits are the left and right halves' brightness (+1 for the right): a mirror swaps them.
    inputs = keras.Input((4, 4, 1))
    halves = keras.layers.Lambda(lambda x: keras.ops.stack(
        [keras.ops.mean(x[:, :, :2], axis=(1, 2, 3)), keras.ops.mean(x[:, :, 2:], axis=(1, 2, 3))], axis=1))(inputs)
    model = keras.Model(inputs, halves * 10.0 + np.array([0.0, 1.0], "float32"))
    images = np.zeros((4, 4, 4, 1), "float32")
    images[0, :, :2], images[1, :, 2:] = 1.0, 1.0  # bright left, bright right
    images[2, :, 0], images[2, :, 2:] = 1.0, 0.8  # mostly right
    images[3, :, :2], images[3, :, 3] = 0.8, 1.0  # mostly left
    labels = np.array([0, 1, 1, 0], "int32")
    assert (keras.ops.convert_to_numpy(model(images)).argmax(1) == labels).all()  # one view: all right
    views = [keras.ops.convert_to_numpy(keras.ops.softmax(model(x))) for x in (images, images[:, :, ::-1])]
    expected = float((((views[0] + views[1]) / 2).argmax(1) == labels).mean())
    assert expected == 0.5  # two views: the +1 tips images 0 and 3 to the right
    assert cifar10_recipe.flip_accuracy(model, ArraySplit(images, labels, "tiny")) == pytest.approx(expected)
    assert cifar10_recipe.flip_accuracy(model, None) is None


def test_improvements_study_grid_and_combination():
    from keraszoo.recipes import cifar10_sweeps

    ablation = cifar10_sweeps.grid(["improvements"])
    assert ablation["default"] == {} and ablation["cosine"] == {"schedule": "cosine"} and len(ablation) == 5
    points = cifar10_sweeps.grid(["improvements"], combine=["translate4", "label_smoothing0.1"])
    assert points == {"translate4+label_smoothing0.1": {"crop_size": 32, "translate": 4, "label_smoothing": 0.1}}
    optimizer = cifar10_sweeps.grid(["learning_rate", "momentum"])
    assert optimizer["learning_rate0.2"] == {"learning_rate": 0.2} and optimizer["momentum0"] == {"momentum": 0.0}
    assert "learning_rate0.05" not in optimizer and "momentum0.9" not in optimizer  # the shared default point
    with pytest.raises(SystemExit, match="combine"):
        cifar10_sweeps.grid(["gamma"], combine=["cosine"])


def test_a_run_with_every_improvement_records_them_and_its_flip_accuracy(cifar10_recipe, data_dir, tmp_path):
    config = cifar10_recipe.Cifar10CNNConfig(
        data_dir=data_dir, train_split="train[:256]", validation_split="train[-128:]", test_split="test[:128]",
        epochs=2, batch_size=64, output=str(tmp_path / "run"), export_dir=str(tmp_path / "models"), verbose="0",
        evaluate_at_init=False, variant="batchnorm", crop_size=32, translate=4, schedule="cosine",
        label_smoothing=0.1, weight_decay=5e-4)
    metrics = cifar10_recipe.main(config)
    assert 0 <= metrics["val_flip_accuracy"] <= 1 and 0 <= metrics["test_flip_accuracy"] <= 1
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert {key: recorded[key] for key in ("translate", "schedule", "label_smoothing", "weight_decay", "lr_decay")} == \
        {"translate": 4, "schedule": "cosine", "label_smoothing": 0.1, "weight_decay": 5e-4, "lr_decay": 1.0}
    exported = json.dumps(json.loads((tmp_path / "models" / "cifar10_cnn_batchnorm" / "1" / "keras_model.json").read_text()))
    assert "TrainingCrop" not in exported  # the translation is training-only


def test_a_run_exported_with_flip_tta_serves_the_mean_of_both_views(short_cifar10_run, data_dir, tmp_path):
    """keraszoo export RUN --tta flip: the SavedModel's probabilities are the mean of the Keras model's on each
    real image and on its mirror image; the card says what is inside and the accuracies the run measured."""
    import shutil
    import subprocess
    import sys

    from keraszoo.data import read_split
    from keraszoo.export import load_serving_fn

    config, _ = short_cifar10_run
    run = tmp_path / "run"
    shutil.copytree(config.output, run)  # a copy: the shared run's marker stays as it is
    done = subprocess.run([sys.executable, "-m", "keraszoo", "export", str(run), "--tta", "flip",
                           "--export-dir", str(tmp_path / "models")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (version,) = (tmp_path / "models").glob("*/*/saved_model.pb")
    images, _ = next(iter(read_split("cifar10", "test[:64]", data_dir=data_dir).batches(batch_size=64)))
    served = load_serving_fn(version.parent)(images=images)["probabilities"].numpy()
    model = keras.saving.load_model(run / "model.keras", compile=False)
    views = [keras.ops.convert_to_numpy(keras.ops.softmax(model(x, training=False))) for x in
             (images.numpy(), images.numpy()[:, :, ::-1])]
    np.testing.assert_allclose(served, (views[0] + views[1]) / 2, atol=1e-5)
    assert not np.allclose(served, views[0], atol=1e-3)  # the mirror view counts
    card = (version.parent / "MODEL_CARD.md").read_text()
    assert "## Test-time augmentation inside" in card and "twice the cost" in card
    name = version.parent.parent.name  # reproduced as it was made: trained without the plain export, then this one
    reproduce = card.split("## Reproduce", 1)[1]
    assert f"--no-export --output runs/reproduce-{name}\nkeraszoo export runs/reproduce-{name} --tta flip" in reproduce
    refused = subprocess.run([sys.executable, "-m", "keraszoo", "export", str(run), "--tta", "flip", "--format", "onnx",
                              "--out", str(tmp_path / "m.onnx")], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--tta goes with --format savedmodel" in refused.stderr
