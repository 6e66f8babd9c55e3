"""airbench94's pieces in Keras, each against what the original specifies: the whitening layer whitens,
lookahead moves the weights as said, every image is flipped on alternate epochs, TTA's six views and
weights, the schedule, the coupled weight decay; and a short real run that resumes exactly after a kill."""

import numpy as np
import pytest


def test_the_whitening_layer_whitens_real_training_patches(data_dir):
    from keraszoo.data import read_split
    from keraszoo.models.airbench import build_airbench94, patches_of
    from keraszoo.recipes.cifar10_airbench import whitening_from

    images, _ = next(iter(read_split("cifar10", "train[:500]", data_dir=data_dir).batches(batch_size=500)))
    images = images.numpy()
    kernel = whitening_from(images)  # (2, 2, 3, 24): 12 eigen-filters and their negatives
    assert kernel.shape == (2, 2, 3, 24) and np.allclose(kernel[..., 12:], -kernel[..., :12])
    from keraszoo.models.airbench import CIFAR_MEAN, CIFAR_STD

    normalised = (images.astype("float32") / 255 - np.float32(CIFAR_MEAN)) / np.float32(CIFAR_STD)
    patches = patches_of(normalised, 2).reshape(-1, 12).astype("float64")
    outputs = patches @ kernel[..., :12].reshape(12, 12)
    covariance = outputs.T @ outputs / len(outputs)
    eigenvalues = np.linalg.eigvalsh(patches.T @ patches / len(patches))[::-1]
    # Whitened up to eps = 5e-4: variance lambda / (lambda + eps) along each eigenvector, nothing across.
    expected = np.diag(eigenvalues / (eigenvalues + 5e-4))
    assert np.abs(covariance - expected).max() < 1e-3, np.round(covariance, 3)
    # Decorrelated, up to the kernel's float32 rounding (2**-24 of filters as large as 1/sqrt(eps) ~ 45).
    assert np.abs(covariance - np.diag(np.diag(covariance))).max() < 1e-5
    # The strongest directions come out with unit variance; CIFAR's weakest 2x2 patch directions have
    # variances of ~1e-4, eps's order, which eps keeps from being amplified (0.18 for the weakest here).
    assert np.diag(covariance)[:6].min() > 0.99
    # The network's layer is that convolution, frozen: its outputs at every position are the patches x kernel.
    model = build_airbench94(whiten_kernel=kernel)
    whiten = model.get_layer("whiten")
    assert not whiten.kernel.trainable and whiten.bias.trainable
    conv = np.asarray(whiten(normalised[:2]))
    np.testing.assert_allclose(conv.reshape(-1, 24)[:, :12], patches[: 2 * 31 * 31] @ kernel[..., :12].reshape(12, 12),
                               rtol=1e-4, atol=1e-4)


def test_lookahead_moves_the_weights_to_their_average_every_five_steps():
    import keras

    from keraszoo.recipes.cifar10_airbench import Lookahead, LookaheadAverage

    network = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    average = LookaheadAverage(network)
    kernel, copy = network.layers[0].kernel, average.copies[0]
    start = np.asarray(kernel).copy()
    average.copy_from_model()
    kernel.assign(start + 1.0)  # training moved the fast weights
    average.step(0.25)
    np.testing.assert_allclose(copy, 0.25 * start + 0.75 * (start + 1.0), rtol=1e-6)
    np.testing.assert_allclose(kernel, copy)  # fast <- slow

    class Store:
        def __init__(self):
            self.decays = []

        def copy_from_model(self):
            self.decays.append("copy")

        def step(self, decay):
            self.decays.append(round(decay, 6))

    class Model:
        class optimizer:  # noqa: N801 - what the callback reads
            iterations = keras.Variable(0, dtype="int64")

    store, callback = Store(), Lookahead(None, total_steps=12)
    callback.store = store
    callback.set_model(Model)
    callback.on_train_begin()
    for step in range(1, 13):
        Model.optimizer.iterations.assign(step)
        callback.on_train_batch_end(step - 1)
    alpha = lambda step: round(0.95 ** 5 * (step / 12) ** 3, 6)  # noqa: E731
    assert store.decays == ["copy", alpha(5), alpha(10), 1.0]  # every 5 steps; the last step ends on the average


def test_each_image_is_flipped_on_alternate_epochs():
    from keraszoo.data.alternating_flip import AlternatingFlipSplit

    images = np.arange(64 * 4 * 4 * 1, dtype=np.uint8).reshape(64, 4, 4, 1)
    split = AlternatingFlipSplit(images, np.zeros(64, np.int32), "tiny", translate=0)
    everyone = np.arange(64)
    epochs = [split.epoch_images(7, epoch, everyone) for epoch in range(4)]
    mirrored = [np.array([np.array_equal(e[i], images[i, :, ::-1]) for i in everyone]) for e in epochs]
    assert 20 < mirrored[0].sum() < 44  # a seeded half starts mirrored
    assert np.array_equal(mirrored[1], ~mirrored[0]) and np.array_equal(mirrored[2], mirrored[0])
    assert np.array_equal(mirrored[3], mirrored[1])
    assert not np.array_equal(split.flipped(8, 0), split.flipped(7, 0))  # another seed, another half
    # Translation: each image moved by at most 2 pixels, read from its reflection; epochs differ.
    moved = AlternatingFlipSplit(images, np.zeros(64, np.int32), "tiny", translate=2, flip=False)
    a, b = moved.epoch_images(0, 0, everyone), moved.epoch_images(0, 1, everyone)
    assert a.shape == images.shape and not np.array_equal(a, b)
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    assert all(any(np.array_equal(a[i], padded[i, 2 + dy:6 + dy, 2 + dx:6 + dx]) for dy in range(-2, 3)
                   for dx in range(-2, 3)) for i in everyone)


def test_tta_views_and_weights_are_the_originals():
    from keraszoo.data.alternating_flip import tta_logits, tta_views

    image = np.arange(1 * 4 * 4 * 1, dtype=np.uint8).reshape(1, 4, 4, 1)
    views = tta_views(image, 2)
    assert len(views) == 6
    padded = np.pad(image, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    expected = [image, image[:, :, ::-1], padded[:, 0:4, 0:4], padded[:, 0:4, 0:4][:, :, ::-1],
                padded[:, 2:6, 2:6], padded[:, 2:6, 2:6][:, :, ::-1]]
    for got, want in zip(views, expected):
        assert np.array_equal(got, want)
    assert len(tta_views(image, 1)) == 2 and len(tta_views(image, 0)) == 1

    calls = []

    def model(batch, training=False):  # answers the number of its call: the weights become visible
        calls.append(1)
        return np.full((len(batch), 1), float(len(calls)), "float32")

    # 0.5 * (v1 + v2) / 2 + 0.5 * (v3 + v4 + v5 + v6) / 4 with v_k = k
    assert tta_logits(model, image, 2)[0, 0] == pytest.approx(0.5 * 1.5 + 0.5 * 4.5)


def test_the_schedule_and_the_coupled_decay_are_the_originals():
    import keras

    from keraszoo.recipes.cifar10_airbench import AirbenchConfig, AirbenchSchedule
    from keraszoo.training.optimizers import CoupledDecaySGD

    schedule = AirbenchSchedule(2.0, 100)
    values = [float(schedule(step)) for step in (0, 23, 100)]
    assert values == pytest.approx([0.4, 2.0, 0.14])  # x0.2 -> x1 at 23 % -> x0.07 at the end
    config = AirbenchConfig()
    lr, decay = config.optimizer_constants()
    # The original's per-example step 11.5 / (1024 * 7.667) times the batch, and its per-step decay
    # 0.0153 * 1024 / (1024 * 7.667) = 1.996e-3 of each weight, reached as lr * decay.
    assert lr == pytest.approx(11.5 / 7.666667, rel=1e-5) and lr * decay == pytest.approx(0.0153 / 7.666667, rel=1e-5)
    # One step with no gradient: Nesterov moves w by -(1 + momentum) * lr * decay * w, as PyTorch's first step.
    weight = keras.Variable(np.ones(3, "float32"))
    optimizer = CoupledDecaySGD(learning_rate=0.1, momentum=0.85, nesterov=True, coupled_decay=0.5)
    optimizer.apply([keras.ops.zeros(3)], [weight])
    np.testing.assert_allclose(weight, 1 - 1.85 * 0.1 * 0.5, rtol=1e-6)


def _command(data_dir, output):
    import sys

    return [sys.executable, "-m", "keraszoo", "train", "cifar10_airbench", "--train-split", "train[:1024]",
            "--validation-split", "train[-256:]", "--test-split", "test[:256]", "--batch-size", "128",
            "--widths", "16,32,32", "--epochs", "3", "--whiten-bias-epochs", "1", "--data-dir", data_dir,
            "--verbose", "0", "--no-export", "--output", str(output)]


def test_a_killed_run_resumes_exactly_lookahead_and_frozen_bias_included(data_dir, tmp_path):
    """SIGKILLed in epoch 2 (after the whitening bias froze, between lookahead steps) and run again: the
    same history and test accuracy as an uninterrupted run (the average is in the checkpoint)."""
    import json

    from test_kill_resume import HISTORY_COLUMNS, _finish, _kill_at

    from keraszoo.training.run_record import read_history

    from concurrent.futures import ThreadPoolExecutor

    reference, run = tmp_path / "reference", tmp_path / "run"
    with ThreadPoolExecutor(1) as pool:  # the reference beside the killed run: each mostly starts up
        uninterrupted = pool.submit(_finish, _command(data_dir, reference))
        _kill_at(_command(data_dir, run), "epoch-2/batch-3", tmp_path)  # step 11 or 12: between lookahead steps
        _finish(_command(data_dir, run))
        uninterrupted.result()
    got, want = read_history(run / "history.csv"), read_history(reference / "history.csv")
    columns = [*HISTORY_COLUMNS, "val_tta_accuracy"]
    assert [[row[c] for c in columns] for row in got] == [[row[c] for c in columns] for row in want]
    metrics, wanted = (json.loads((folder / "metrics.json").read_text()) for folder in (run, reference))
    assert metrics["resumed_at_epochs"] == [1]
    assert metrics["test_accuracy"] == wanted["test_accuracy"] and metrics["test_tta_accuracy"] == wanted["test_tta_accuracy"]


def test_airbench96_is_the_originals_network_schedule_and_cutout():
    import keras

    from keraszoo.data.alternating_flip import AlternatingFlipSplit
    from keraszoo.models import MODEL_BUILDERS
    from keraszoo.recipes.cifar10_airbench import CUTOUT_FILL, AirbenchConfig, AirbenchSchedule

    # The network: ten convolutions (whitening + 3 blocks of 3), a residual add per block, 1/9 logits.
    model = MODEL_BUILDERS["cifar_airbench96"](tiny=True)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 10 and sum(isinstance(layer, keras.layers.Add) for layer in model.layers) == 3
    block = model.get_layer("block2_residual")
    assert {t.name for t in (block.input[0]._keras_history.operation, block.input[1]._keras_history.operation)} == \
        {"block2_norm3_bias", "block2_gelu1"}  # conv3's normalised output + the block's first activation
    full = MODEL_BUILDERS["cifar_airbench96"]()
    assert [full.get_layer(f"block{i}_conv3").filters for i in (1, 2, 3)] == [128, 384, 512]
    # The original's hyperparameters, and explicit options over them.
    config = AirbenchConfig(net="airbench96")
    assert (config.epochs, config.learning_rate, config.weight_decay, config.translate, config.cutout, config.widths,
            config.name) == (37, 9.0, 0.012, 4, 12, "128,384,512", "cifar10_airbench96")
    assert AirbenchConfig(net="airbench96", epochs=3).epochs == 3 and AirbenchConfig().cutout == 0
    # Schedule: 0.2 -> 1 over 10 % of the steps, then linearly to 0 (airbench96's get_lr).
    values = [float(AirbenchSchedule(2.0, 100, 0.1, 0.0)(step)) for step in (0, 5, 10, 55, 100)]
    assert values == pytest.approx([0.4, 1.2, 2.0, 1.0, 0.0])
    # Cutout: one 12x12 square of the mean colour per image, inside the image, moving between epochs.
    images = np.full((32, 32, 32, 3), 255, np.uint8)
    split = AlternatingFlipSplit(images, np.zeros(32, np.int32), "tiny", translate=0, flip=False, cutout=12,
                                 cutout_fill=CUTOUT_FILL)
    first, second = (split.epoch_images(0, epoch, np.arange(32)) for epoch in (0, 1))
    filled = (first == np.array(CUTOUT_FILL, np.uint8)).all(-1)  # n, h, w
    assert (filled.sum((1, 2)) == 144).all()
    rows, cols = filled.any(2), filled.any(1)
    assert (rows.sum(1) == 12).all() and (cols.sum(1) == 12).all()  # one square each
    assert not np.array_equal(first, second)
