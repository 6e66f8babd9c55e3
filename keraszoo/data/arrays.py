"""Splits held as NumPy arrays, fed to Keras by ``PyDataset``s: training on any Keras backend.

``tfds_data`` reads prepared TFDS splits into tf.data pipelines, which need TensorFlow.
The lent GPU machines have JAX and PyTorch only, so a split can also come from a compact
pack (``keraszoo.data.jpeg_pack``, made by ``keraszoo pack`` where TensorFlow is) or be
generated in NumPy (the circles). The batches follow the same rule as the tf.data path:
epoch e's order is a function of (seed, e) alone, so a resumed run sees the batches an
uninterrupted one sees.
"""

from __future__ import annotations

import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from keraszoo.data.metadata import DatasetMetadata
from keraszoo.errors import DatasetNotFoundError

_SLICE = re.compile(r"^(?P<name>[A-Za-z_]+)(\[(?P<start>-?\d+%?)?:(?P<end>-?\d+%?)?\])?$")


@dataclass(frozen=True)
class ArraySplit:
    """One split in memory: images (N, ...) and int32 labels (N,)."""

    images: np.ndarray
    labels: np.ndarray
    split: str

    @property
    def num_examples(self) -> int:
        return len(self.labels)

    def batches(self, *, batch_size: int) -> keras.utils.PyDataset:
        """The split in order, in batches (evaluation)."""
        return _Batches(self, [np.arange(self.num_examples)], batch_size)

    def epoch_batches(self, *, batch_size: int, seed: int, first_epoch: int, last_epoch: int):
        """Shuffled batches of epochs ``first_epoch .. last_epoch - 1`` and the number per epoch."""
        if last_epoch <= first_epoch:
            raise ValueError(f"no epoch to run: first_epoch={first_epoch}, last_epoch={last_epoch}.")
        orders = [np.random.default_rng([seed, epoch]).permutation(self.num_examples)
                  for epoch in range(first_epoch, last_epoch)]
        stream = _Batches(self, orders, batch_size)
        return stream, stream.steps_per_epoch


class _Batches(keras.utils.PyDataset):
    """Batches of ``split`` taken in the given orders, one order (epoch) after the other."""

    def __init__(self, split: ArraySplit, orders: list[np.ndarray], batch_size: int):
        super().__init__(workers=1, use_multiprocessing=False)
        self.split, self.orders, self.batch_size = split, orders, batch_size
        self.steps_per_epoch = math.ceil(split.num_examples / batch_size)

    def __len__(self):
        return self.steps_per_epoch * len(self.orders)

    def __getitem__(self, index):
        epoch, step = divmod(index, self.steps_per_epoch)
        chosen = self.orders[epoch][step * self.batch_size:(step + 1) * self.batch_size]
        return self.split.images[chosen], self.split.labels[chosen]


def slice_bounds(split: str, size: int) -> tuple[str, int, int]:
    """(split name, start, end) of a TFDS-style slice such as 'train', 'train[:5000]', 'test[10%:]'."""
    match = _SLICE.match(split.replace(" ", ""))
    if not match:
        raise ValueError(f"cannot read split {split!r}: slices look like 'train', 'train[:5000]' or 'test[10%:]'.")

    def bound(text, default):
        if text is None:
            return default
        value = round(size * int(text[:-1]) / 100) if text.endswith("%") else int(text)
        return max(0, min(size, value + size if value < 0 else value))

    start, end = bound(match["start"], 0), bound(match["end"], size)
    if end <= start:
        raise ValueError(f"split {split!r} is empty: check the slice.")
    return match["name"], start, end


def check_disjoint(splits: dict[str, str], size_of) -> None:
    """Refuses training, validation and test splits that share examples (``{role: split}``; ``size_of(name)``
    gives a split's full size). Splits this module cannot parse (TFDS's ``a+b``, rounding options) are not checked."""
    bounds = {}
    for role, split in splits.items():
        if _SLICE.match(split.replace(" ", "")) is None:
            continue
        size = size_of(split.split("[")[0].strip())
        if size:  # an unknown split: reading it says why
            bounds[role] = (split, *slice_bounds(split, size))
    roles = list(bounds)
    for i, first in enumerate(roles):
        for second in roles[i + 1:]:
            (split_a, name_a, start_a, end_a), (split_b, name_b, start_b, end_b) = bounds[first], bounds[second]
            shared = min(end_a, end_b) - max(start_a, start_b)
            if name_a == name_b and shared > 0:
                raise ValueError(
                    f"the {first} split {split_a!r} and the {second} split {split_b!r} share {shared:,} examples "
                    f"({name_a}[{max(start_a, start_b)}:{min(end_a, end_b)}]): a model would be judged on data it "
                    f"was trained or chosen on. Give disjoint slices, e.g. --train-split '{name_a}[:-5000]' "
                    f"--validation-split '{name_a}[-5000:]'.")


def pack_split_size(pack_dir: str | Path, name: str) -> int:
    """How many examples the pack's split ``name`` holds (0 when the pack has no such split: reading it says why)."""
    path = Path(pack_dir) / f"{name}.npz"
    try:
        with np.load(path) as pack:
            return len(pack["labels"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
        return 0


def read_pack_split(pack_dir: str | Path, split: str) -> tuple[ArraySplit, dict]:
    """A split of a pack folder (``<name>.npz`` for each split name) and the pack's summary."""
    from keraszoo.data.jpeg_pack import read_pack

    name = split.split("[")[0]
    path = Path(pack_dir) / f"{name}.npz"
    if not path.is_file():
        found = sorted(p.stem for p in Path(pack_dir).glob("*.npz")) if Path(pack_dir).is_dir() else []
        raise DatasetNotFoundError(
            f"--data-pack {pack_dir} has no {name}.npz (it holds: {', '.join(found) or 'nothing'}); make one where "
            f"TensorFlow is: keraszoo pack --dataset cifar10 --out {pack_dir}")
    def damaged(error):
        return ValueError(f"{path} is not a readable keraszoo pack ({type(error).__name__}: {error}); make it again "
                          f"where TensorFlow is: keraszoo pack --out {pack_dir}")

    unreadable = (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError)  # np.load's and PIL's ways to fail
    try:
        with np.load(path) as pack:
            size = len(pack["labels"])
    except unreadable as error:
        raise damaged(error) from None
    _, start, end = slice_bounds(split, size)
    try:
        images, labels, summary = read_pack(path, start, end)  # decodes the slice only
    except unreadable as error:
        raise damaged(error) from None
    return ArraySplit(images, labels.astype("int32"), split), summary


def pack_metadata(summary: dict, pack_dir: str | Path, labels: np.ndarray) -> DatasetMetadata:
    names = tuple(summary.get("class_names") or ())
    num_classes = len(names) or int(labels.max()) + 1
    return DatasetMetadata(
        name=summary.get("dataset") or "pack", version=summary.get("version") or "", data_dir=str(Path(pack_dir)),
        input_shape=tuple(summary["shape"]), num_classes=num_classes,
        class_names=names or tuple(str(i) for i in range(num_classes)))


def in_memory(split) -> ArraySplit:
    """A split (TFDS's ``SplitData`` or an ``ArraySplit`` from a pack) as uint8 images and int32 labels in
    memory, for recipes that augment whole arrays (airbench) or draw examples (DINOv2's label counts)."""
    if isinstance(split, ArraySplit):
        return split
    images, labels = zip(*((np.asarray(x), np.asarray(y)) for x, y in split.batches(batch_size=4096)))
    return ArraySplit(np.concatenate(images), np.concatenate(labels).astype("int32"), split.split)
