"""Data for machines without TensorFlow: the compact JPEG pack and the NumPy splits read from it."""

import numpy as np
import pytest

from keraszoo.data import read_split
from keraszoo.data.arrays import read_pack_split, slice_bounds
from keraszoo.data.jpeg_pack import pack_tfds, read_pack, write_pack
from keraszoo.data.statistics import array_mean_variance, channel_mean_variance
from keraszoo.errors import DatasetNotFoundError


def _arrays(data_dir, split):
    data = read_split("cifar10", split, data_dir=data_dir)
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in data.examples.batch(512)])
    return np.concatenate(images), np.concatenate(labels)


@pytest.fixture(scope="module")
def pack(data_dir, tmp_path_factory):
    """A pack of real CIFAR-10 images: 512 for training, 256 for testing."""
    folder = tmp_path_factory.mktemp("pack")
    for name, split in (("train", "train[:512]"), ("test", "test[:256]")):
        write_pack(folder / f"{name}.npz", *_arrays(data_dir, split), source=f"cifar10 {split}")
    return folder


def test_pack_keeps_labels_and_pixels_within_a_fraction_of_a_grey_level(data_dir, pack):
    images, labels = _arrays(data_dir, "test[:256]")
    restored, restored_labels, summary = read_pack(pack / "test.npz")
    np.testing.assert_array_equal(restored_labels, labels)
    assert summary["source"] == "cifar10 test[:256]"
    assert restored.shape == images.shape and restored.dtype == np.uint8
    difference = np.abs(restored.astype(int) - images).mean()
    # The prepared pixels were decoded from JPEG q75 already: re-encoding alike barely moves them.
    assert difference < 0.3 and summary["mean_abs_difference"] == pytest.approx(difference)
    assert (pack / "test.npz").stat().st_size < 400 * len(images)  # vs 3,072 bytes raw


def test_pack_refuses_what_it_cannot_store():
    with pytest.raises(ValueError, match="uint8"):
        write_pack("unused.npz", np.zeros((2, 32, 32, 3), np.float32), np.zeros(2))
    with pytest.raises(ValueError, match="same"):
        write_pack("unused.npz", np.zeros((2, 32, 32, 3), np.uint8), np.zeros(3))


def test_array_statistics_match_the_split_statistics(data_dir):
    data = read_split("cifar10", "train[:300]", data_dir=data_dir)
    images, _ = _arrays(data_dir, "train[:300]")
    for got, want in zip(array_mean_variance(images, batch_size=7), channel_mean_variance(data)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("split, bounds", [
    ("train", ("train", 0, 1000)), ("train[:500]", ("train", 0, 500)), ("test[100:200]", ("test", 100, 200)),
    ("train[10%:]", ("train", 100, 1000)), ("train[-10:]", ("train", 990, 1000)), ("train[:5000]", ("train", 0, 1000)),
])
def test_pack_slices_read_like_tfds_slices(split, bounds):
    assert slice_bounds(split, 1000) == bounds


def test_pack_splits_come_back_as_tfds_gives_them_with_the_datasets_names(data_dir, tmp_path):
    pack_tfds("cifar10", ["test[:64]"], tmp_path, data_dir=data_dir)
    split, summary = read_pack_split(tmp_path, "test[16:32]")
    assert split.num_examples == 16 and split.labels.dtype == np.int32 and split.split == "test[16:32]"
    np.testing.assert_array_equal(split.labels, _arrays(data_dir, "test[16:32]")[1])
    assert summary["dataset"] == "cifar10" and summary["class_names"][0] == "airplane"
    stream, steps = split.epoch_batches(batch_size=5, seed=3, first_epoch=1, last_epoch=3)
    assert steps == 4 and len(stream) == 8
    again, _ = split.epoch_batches(batch_size=5, seed=3, first_epoch=2, last_epoch=3)
    np.testing.assert_array_equal(stream[4][1], again[0][1])  # epoch 2's order depends on (seed, epoch) only
    with pytest.raises(DatasetNotFoundError, match="keraszoo pack"):
        read_pack_split(tmp_path, "train")
    with pytest.raises(ValueError, match="empty"):
        read_pack_split(tmp_path, "test[64:]")


def test_a_damaged_pack_or_run_model_is_one_clear_error(tmp_path):
    from keraszoo.errors import RunFolderConflict
    from keraszoo.training.run_folder import mark_finished, new_marker
    from keraszoo.training.runner import export_run

    (tmp_path / "train.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable keraszoo pack.*keraszoo pack --out"):
        read_pack_split(tmp_path, "train[:10]")
    run = tmp_path / "run"
    run.mkdir()
    mark_finished(run, new_marker("cifar10_cnn"), None)
    (run / "metrics.json").write_text("{}")
    (run / "model.keras").write_bytes(b"truncated")
    with pytest.raises(RunFolderConflict, match="model.keras is damaged.*--restart"):
        export_run(run, export_dir=str(tmp_path / "models"))
    assert not (tmp_path / "models").exists()
