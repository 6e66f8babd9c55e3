"""The TFDS data layer on the real prepared data: types, ranges, seeded order, clear errors."""

import time

import numpy as np
import pytest
import tensorflow as tf

from keraszoo.data import (
    DatasetNotFoundError,
    batches,
    dataset_metadata,
    epoch_batches,
    load_dataset,
    read_split,
    resolve_data_dir,
    without_autotuning,
)


def _labels(dataset):
    return np.concatenate([labels.numpy() for _, labels in dataset])


def test_cifar10_batches_are_uint8_images_and_int_labels(data_dir):
    dataset = load_dataset("cifar10", "train[:300]", batch_size=128, data_dir=data_dir)
    images, labels = next(iter(dataset))
    assert images.dtype == tf.uint8 and images.shape == (128, 32, 32, 3)
    assert labels.dtype == tf.int32 and labels.shape == (128,)
    all_labels = _labels(dataset)
    assert len(all_labels) == 300  # the last, partial batch is kept
    assert set(np.unique(all_labels)) == set(range(10))
    pixels = images.numpy()
    assert pixels.min() == 0 or pixels.max() == 255  # raw pixels, not rescaled
    assert 60 < pixels.mean() < 200


@pytest.mark.parametrize("name, split", [("cifar10", "train[-300:]"), ("mnist", "test[:257]"),
                                         ("cifar10", "train[10:20]+test[:5]")])
def test_fast_reader_gives_tfds_own_examples_in_tfds_order(data_dir, name, split):
    # read_split parses the TFRecords a batch at a time instead of through builder.as_dataset: the
    # examples, their order, slices and dtypes must be exactly TFDS's.
    from keraszoo.data.tfds_data import prepared_builder, _records

    builder = prepared_builder(name, data_dir)
    want = list(builder.as_dataset(split=split, as_supervised=True, shuffle_files=False).as_numpy_iterator())
    got = list(read_split(name, split, data_dir=data_dir).examples.as_numpy_iterator())
    assert _records(builder, split) is not None and len(got) == len(want)
    for (image, label), (want_image, want_label) in zip(got, want):
        assert image.dtype == np.uint8 and label.dtype == np.int32 and label == want_label
        np.testing.assert_array_equal(image, want_image)


def test_mnist_has_one_channel(data_dir):
    metadata = dataset_metadata("mnist", data_dir=data_dir)
    assert metadata.input_shape == (28, 28, 1) and metadata.num_classes == 10
    images, _ = next(iter(load_dataset("mnist", "test[:10]", batch_size=10, data_dir=data_dir)))
    assert images.shape == (10, 28, 28, 1)


def test_cifar10_metadata_names_the_classes(data_dir):
    metadata = dataset_metadata("cifar10", data_dir=data_dir)
    assert metadata.class_names[0] == "airplane" and metadata.class_names[9] == "truck"
    assert metadata.input_shape == (32, 32, 3)


def test_shuffling_is_seeded(data_dir):
    data = read_split("cifar10", "train[:256]", data_dir=data_dir)
    unshuffled = _labels(batches(data, batch_size=64))
    first = _labels(batches(data, batch_size=64, shuffle=True, seed=3))
    again = _labels(batches(data, batch_size=64, shuffle=True, seed=3))
    other = _labels(batches(data, batch_size=64, shuffle=True, seed=4))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, unshuffled)
    assert not np.array_equal(first, other)
    np.testing.assert_array_equal(np.sort(first), np.sort(unshuffled))  # a permutation


def test_epoch_order_depends_on_seed_and_epoch_only(data_dir):
    """What makes resume exact: epochs 2.. from a fresh stream equal epochs 2.. of a full one."""
    data = read_split("cifar10", "train[:200]", data_dir=data_dir)
    full, steps = epoch_batches(data, batch_size=64, seed=7, first_epoch=0, last_epoch=4)
    resumed, _ = epoch_batches(data, batch_size=64, seed=7, first_epoch=2, last_epoch=4)
    assert steps == 4  # 200 / 64 rounded up
    full_labels = [labels.numpy() for _, labels in full]
    assert len(full_labels) == 4 * steps
    epochs = [np.concatenate(full_labels[i * steps:(i + 1) * steps]) for i in range(4)]
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every epoch
    reference = np.sort(_labels(batches(data, batch_size=64)))
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), reference)  # each epoch sees every example once
    np.testing.assert_array_equal(_labels(resumed), np.concatenate(epochs[2:]))


def test_missing_dataset_fails_fast_with_the_folder_and_the_fix(tmp_path):
    start = time.perf_counter()
    with pytest.raises(DatasetNotFoundError) as error:
        load_dataset("mnist", "train", batch_size=32, data_dir=tmp_path)
    assert time.perf_counter() - start < 10  # no network wait
    message = str(error.value)
    assert str(tmp_path) in message
    assert "TFDS_DATA_DIR" in message and "--data-dir" in message


def test_unknown_dataset_and_bad_split_are_explained(data_dir):
    with pytest.raises(DatasetNotFoundError, match="not a TFDS dataset"):
        read_split("cifar11", "train", data_dir=data_dir)
    with pytest.raises(ValueError, match="Available splits"):
        read_split("cifar10", "validation", data_dir=data_dir)


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "from_env"))
    assert resolve_data_dir(tmp_path / "explicit") == str(tmp_path / "explicit")
    assert resolve_data_dir() == str(tmp_path / "from_env")
    monkeypatch.delenv("TFDS_DATA_DIR")
    assert resolve_data_dir().endswith("tensorflow_datasets")


def test_streams_handed_to_keras_have_tf_data_autotuning_off(data_dir):
    """Dropping an autotuned iterator waits for tf.data's autotuning thread to wake (up to 60 s later):
    Keras drops one per validation pass, so every stream the trainer hands Keras must have it off."""
    data = read_split("cifar10", "train[:64]", data_dir=data_dir)
    stream, _ = epoch_batches(data, batch_size=32, seed=0, first_epoch=0, last_epoch=1)
    assert data.examples.options().autotune.enabled is not False  # TensorFlow's default, untouched
    for dataset in (stream, batches(data, batch_size=32), load_dataset("mnist", "test[:10]", batch_size=4, data_dir=data_dir)):
        assert dataset.options().autotune.enabled is False
    assert without_autotuning(data.examples).options().autotune.enabled is False
