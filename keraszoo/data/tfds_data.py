"""Prepared TFDS splits -> `tf.data` pipelines of (uint8 image, int32 label).

keraszoo never downloads at run time: datasets are read from a prepared TFDS
``data_dir`` (``--data-dir``, else ``TFDS_DATA_DIR``, else the checkout's
``../shared/tensorflow_datasets``, else TFDS's own default: ``keraszoo.data.folder``).
When the dataset is not there we fail at once with a message that says where we
looked and how to point at a prepared copy, instead of a network wait or a deep
TFDS traceback.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import tensorflow as tf
import tensorflow_datasets as tfds

from keraszoo.data.folder import data_folder
from keraszoo.data.metadata import DatasetMetadata
from keraszoo.errors import DatasetNotFoundError

# Splits smaller than this are cached in memory after decoding (CIFAR-10 train is
# 150 MB of uint8 pixels, MNIST 47 MB): decoding once instead of every epoch.
CACHE_LIMIT_BYTES = 4 * 2**30
# A full-split shuffle buffer gives a uniform permutation; beyond this many
# examples we settle for a window shuffle to bound memory.
MAX_SHUFFLE_BUFFER = 200_000


def without_autotuning(stream: tf.data.Dataset) -> tf.data.Dataset:
    """``stream`` with tf.data's autotuning off: every stream keraszoo hands Keras or reads once.

    With autotuning on (TensorFlow's default), an iterator starts a thread that wakes 10 ms x
    (2^k - 1) after it (... 2.55, 5.11, 10.23 s), and dropping the iterator returned only at that
    thread's next wake-up (TF 2.21), the CPU idle meanwhile. Keras drops the validation iterator
    every epoch and fit's at the end of each call: validation passes ended at 5.1 or 10.2 s (441 of
    3,332 recorded epochs; 0.5-2.3 s since, docs/records/mnist_vit_long), and the benchmarks' fit
    calls read as "half speed" (issue #20; ``benchmarks/fit_call_cores.py``,
    ``benchmarks/validation_waits.py``, in git at 47341c5). Off, tf.data no longer retunes AUTOTUNE parallelism and
    buffers during a run: the trainer's stream from disk measured as fast (docs/performance.md).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return stream.with_options(options)


# TFDS keeps class names in label.labels.txt beside features.json; a copy prepared
# without that file reports "0".."9". These are the official CIFAR-10 names, in label order.
KNOWN_CLASS_NAMES = {
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"),
}


# Every prepared dataset folder this process read from: TensorFlow's DataLossError says
# "corrupted record at 954" without naming the file, so describe_data_loss looks for it here.
_READ_FOLDERS: set[str] = set()


def describe_data_loss(error: Exception) -> str:
    """One line naming the damaged record file behind a DataLossError, and how to repair it."""
    def reason(error) -> str:  # "{{function_node ...}} corrupted record at 954 [Op:...]" -> the middle
        return getattr(error, "message", str(error)).split("[Op:")[0].split("}}")[-1].strip()

    for folder in sorted(_READ_FOLDERS):
        for path in sorted(tf.io.gfile.glob(os.path.join(folder, "*.tfrecord*"))):
            try:
                tf.data.TFRecordDataset(path).reduce(0, lambda count, _: count + 1)
            except tf.errors.DataLossError as damaged:
                return (f"{path} is damaged ({reason(damaged)}): prepare the dataset again, or copy that file back "
                        "from a good copy (a prepared data_dir may carry SHA256SUMS to check against).")
    folders = ", ".join(sorted(_READ_FOLDERS)) or "the data_dir"
    return f"a dataset file in {folders} is damaged ({reason(error)}): prepare the dataset again."


@dataclass(frozen=True)
class SplitData:
    """One split, decoded and unbatched, plus its size (tf.data cannot always tell)."""

    examples: tf.data.Dataset  # elements: (image uint8 (H, W, C), label int32 ())
    num_examples: int
    split: str

    def batches(self, *, batch_size: int) -> tf.data.Dataset:
        return batches(self, batch_size=batch_size)

    def epoch_batches(self, *, batch_size: int, seed: int, first_epoch: int, last_epoch: int):
        return epoch_batches(self, batch_size=batch_size, seed=seed, first_epoch=first_epoch, last_epoch=last_epoch)


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> str:
    """The TFDS data_dir to read from, chosen as run.sh chooses it (``keraszoo.data.folder``)."""
    return data_folder(data_dir)[0]


def prepared_builder(name: str, data_dir: str | None):
    data_dir = resolve_data_dir(data_dir)
    how_to_fix = (
        "keraszoo does not download datasets at run time. Point it at a prepared "
        "TFDS data_dir with --data-dir PATH or the TFDS_DATA_DIR environment variable "
        "(in this project: ../shared/tensorflow_datasets), or, on a machine with internet access, "
        f"prepare it once: keraszoo data prepare {name} --data-dir {data_dir}"
    )
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        raise DatasetNotFoundError(
            f"{name!r} is not a TFDS dataset name (keraszoo's recipes use 'mnist' and 'cifar10')."
        ) from error
    if not builder.is_prepared():
        raise DatasetNotFoundError(
            f"Dataset {name!r} (version {builder.version}) is not prepared in data_dir "
            f"{data_dir!r}: no files in {builder.data_dir!r}. {how_to_fix}"
        )
    return builder


def dataset_metadata(name: str, *, data_dir: str | None = None) -> DatasetMetadata:
    builder = prepared_builder(name, data_dir)
    image, label = builder.info.features["image"], builder.info.features["label"]
    class_names = tuple(label.names)
    if class_names == tuple(str(i) for i in range(label.num_classes)):
        class_names = KNOWN_CLASS_NAMES.get(name, class_names)
    return DatasetMetadata(
        name=name,
        version=str(builder.version),
        data_dir=resolve_data_dir(data_dir),
        input_shape=tuple(int(d) for d in image.shape),
        num_classes=int(label.num_classes),
        class_names=class_names,
    )


def split_size(name: str, split_name: str, *, data_dir: str | None = None) -> int:
    """The size of a whole prepared split (``train``), 0 when there is no such split (reading it says why)."""
    splits = prepared_builder(name, data_dir).info.splits
    return int(splits[split_name].num_examples) if split_name in splits else 0


def read_split(name: str, split: str, *, data_dir: str | None = None) -> SplitData:
    """Decoded, unbatched examples of ``split`` (TFDS slicing such as ``train[:5000]`` works).

    Cached in memory when the split fits under ``CACHE_LIMIT_BYTES``, so JPEG/PNG
    decoding happens once per process, not once per epoch.
    """
    builder = prepared_builder(name, data_dir)
    try:
        num_examples = int(builder.info.splits[split].num_examples)
    except (KeyError, ValueError, AssertionError) as error:
        raise ValueError(
            f"Cannot read split {split!r} of {name!r}: {error}. Available splits: "
            f"{sorted(builder.info.splits)}; slices look like 'train[:5000]' or 'train[10%:]'."
        ) from error
    if num_examples == 0:
        raise ValueError(f"Split {split!r} of {name!r} is empty: check the slice.")
    _READ_FOLDERS.add(os.fspath(builder.data_dir))
    examples = _records(builder, split)
    if examples is None:  # a layout the fast reader does not know: TFDS's own, example by example
        examples = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False).map(
            lambda image, label: (image, tf.cast(label, tf.int32)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    bytes_per_example = math.prod(builder.info.features["image"].shape) + 4
    if num_examples * bytes_per_example <= CACHE_LIMIT_BYTES:
        examples = examples.cache()
    return SplitData(examples=examples, num_examples=num_examples, split=split)


PARSE_BATCH = 256


def _records(builder, split: str) -> tf.data.Dataset | None:
    """``(uint8 image, int32 label)`` of ``split`` read straight from the prepared TFRecord files, or None.

    The same examples in the same order as ``builder.as_dataset(split, shuffle_files=False)`` (TFDS's
    own file instructions give the slices; tested equal), but records are parsed and decoded PARSE_BATCH
    at a time (``tf.io.parse_example``, then the images in one ``map_fn``): TFDS parses one record per
    call, and each tf.data element costs more than decoding its image here (the trainer's stream from
    disk: docs/performance.md, issue #20). None for any other
    layout than TFRecord files of an encoded image and an integer label.
    """
    features = builder.info.features
    serialized = features.get_serialized_info()
    if (str(builder.info.file_format.value) != "tfrecord" or "image" not in serialized or "label" not in serialized
            or serialized["image"].dtype != tf.string or serialized["label"].dtype != tf.int64
            or serialized["image"].shape or serialized["label"].shape
            or type(features["image"]).__name__ != "Image" or None in features["image"].shape):
        return None
    shape = tuple(int(d) for d in features["image"].shape)
    spec = {"image": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64)}
    parts = [tf.data.TFRecordDataset(os.fspath(i.filename)).skip(i.skip).take(i.take)
             for i in builder.info.splits[split].file_instructions]
    records = parts[0]
    for part in parts[1:]:
        records = records.concatenate(part)

    def decode(encoded):
        return tf.ensure_shape(tf.io.decode_image(encoded, channels=shape[-1], expand_animations=False), shape)

    def parse_and_decode(batch):
        # Decoded inside the parsed batch: one tf.data element per PARSE_BATCH images instead of one per
        # image: the stream from disk went from 19,445 to 37,595 CIFAR-10 images/s (docs/performance.md).
        example = tf.io.parse_example(batch, spec)
        images = tf.map_fn(decode, example["image"], fn_output_signature=tf.TensorSpec(shape, tf.uint8))
        return images, tf.cast(example["label"], tf.int32)

    return records.batch(PARSE_BATCH).map(parse_and_decode, num_parallel_calls=tf.data.AUTOTUNE).unbatch()


def batches(
    data: SplitData,
    *,
    batch_size: int,
    shuffle: bool = False,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Batched and prefetched; with ``shuffle``, reshuffled every pass, reproducibly for a seed."""
    examples = data.examples
    if shuffle:
        examples = examples.shuffle(
            min(data.num_examples, MAX_SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True
        )
    return without_autotuning(examples.batch(batch_size).prefetch(tf.data.AUTOTUNE))


def epoch_batches(
    data: SplitData, *, batch_size: int, seed: int, first_epoch: int, last_epoch: int
) -> tuple[tf.data.Dataset, int]:
    """Training batches for epochs ``first_epoch .. last_epoch - 1``, one after the other.

    Each epoch's order is a function of ``(seed, epoch)`` alone, not of how many
    epochs this process has already run: a run resumed at epoch k sees exactly the
    batches an uninterrupted run sees from epoch k on. Returns the stream and the
    number of batches per epoch (the last batch of an epoch may be smaller).
    """
    if last_epoch <= first_epoch:
        raise ValueError(f"no epoch to run: first_epoch={first_epoch}, last_epoch={last_epoch}.")
    buffer = min(data.num_examples, MAX_SHUFFLE_BUFFER)
    steps_per_epoch = math.ceil(data.num_examples / batch_size)
    # One dataset per epoch with a Python-int op seed (TF's seed logic rejects tensor
    # seeds once a global seed is set), read one after the other: all of epoch e's
    # batches, then epoch e+1's. Each shuffle buffer only fills when its epoch starts.
    epochs = [
        # reshuffle_each_iteration=False: a second pass over the stream (Keras makes one to build the
        # model under a tf.distribute strategy) must see the same order as the first.
        data.examples.shuffle(buffer, seed=seed * 1_000_003 + epoch, reshuffle_each_iteration=False).batch(batch_size)
        for epoch in range(first_epoch, last_epoch)
    ]
    order = tf.data.Dataset.range(len(epochs)).flat_map(
        lambda index: tf.data.Dataset.from_tensors(index).repeat(steps_per_epoch)
    )
    stream = tf.data.Dataset.choose_from_datasets(epochs, order)
    return without_autotuning(stream.prefetch(tf.data.AUTOTUNE)), steps_per_epoch


def load_dataset(
    name: str,
    split: str,
    *,
    batch_size: int,
    data_dir: str | None = None,
    shuffle: bool = False,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Batched ``(uint8 image, int32 label)`` from a prepared TFDS dataset, in one call."""
    data = read_split(name, split, data_dir=data_dir)
    return batches(data, batch_size=batch_size, shuffle=shuffle, seed=seed)
