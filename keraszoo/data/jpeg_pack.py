"""A compact, TensorFlow-free copy of a small-image split: one shared JPEG header + each image's scan.

Why: the lent GPU machines have no TensorFlow and take at most 64 MiB of files, and
CIFAR-10 is 184 MB as raw pixels (137 MB as the prepared TFDS PNG records). The
prepared CIFAR-10 pixels were themselves decoded from JPEG quality 75 (see the data
README), so re-encoding them at quality 75 with 4:2:0 chroma, as that copy was, changes
them very little (mean |difference| about 0.15 grey level, measured and stored in the
pack), and a 32x32 image's entropy-coded scan is ~300 bytes once the ~600-byte header
(tables), identical for every image, is stored once: 60,000 images in ~20 MB.

Format (.npz): ``source``, ``header`` (uint8 bytes up to and including the SOS segment), ``scans``
(all scans concatenated), ``offsets`` (N + 1 boundaries), ``labels``, ``shape``,
``quality`` and ``mean_abs_difference``. Needs Pillow (Keras's image utilities use it too).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

_SOS, _EOI = b"\xff\xda", b"\xff\xd9"


def _split_jpeg(data: bytes) -> tuple[bytes, bytes]:
    """(header through the SOS segment, entropy-coded scan without EOI) of a baseline JPEG."""
    start = data.index(_SOS)
    length = int.from_bytes(data[start + 2:start + 4], "big")
    if data[-2:] != _EOI:
        raise ValueError("not a complete JPEG: it does not end with an EOI marker.")
    return data[:start + 2 + length], data[start + 2 + length:-2]


def _encode(image: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    # Baseline, standard tables, no optimisation: every image then gets the same header.
    Image.fromarray(image).save(buffer, "JPEG", quality=quality, subsampling=2, optimize=False)
    return buffer.getvalue()


def _decode(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def write_pack(path: str | Path, images: np.ndarray, labels: np.ndarray, *, quality: int = 75,
               source: str = "", dataset: str = "", version: str = "", class_names=()) -> dict:
    """Writes ``images`` (N, H, W, 3) uint8 and their labels; returns the pack's summary.

    ``source`` says where the images came from; it is kept in the pack and in its summary, with the
    dataset's name, version and class names (what a model trained from the pack records).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"write_pack takes (N, H, W, 3) uint8 images, got {images.shape} {images.dtype}.")
    if len(images) != len(labels) or not len(images):
        raise ValueError(f"{len(images)} images and {len(labels)} labels: need the same, non-zero, number.")
    header, scans, offsets, differences = None, [], [0], []
    for image in images:
        data = _encode(image, quality)
        head, scan = _split_jpeg(data)
        if header is None:
            header = head
        elif head != header:
            raise ValueError("two images gave different JPEG headers: all must share one size and encoder settings.")
        scans.append(scan)
        offsets.append(offsets[-1] + len(scan))
        differences.append(np.abs(_decode(data).astype(np.int16) - image).mean())
    summary = {"source": source, "dataset": dataset, "version": version, "class_names": list(class_names),
               "count": len(images), "shape": list(images.shape[1:]), "quality": quality,
               "mean_abs_difference": float(np.mean(differences)),
               "bytes_per_image": offsets[-1] / len(images)}
    np.savez(path, header=np.frombuffer(header, np.uint8), scans=np.frombuffer(b"".join(scans), np.uint8),
             offsets=np.asarray(offsets, np.int64), labels=np.asarray(labels, np.int64),
             shape=np.asarray(images.shape[1:], np.int64), quality=quality, source=np.str_(source),
             dataset=np.str_(dataset), version=np.str_(version), class_names=np.asarray(list(class_names), np.str_),
             mean_abs_difference=summary["mean_abs_difference"])
    return summary


def read_pack(path: str | Path, start: int = 0, end: int | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """(images (n, H, W, 3) uint8, labels (n,) int64, summary) of examples ``start:end`` of a pack written by
    ``write_pack`` (all by default); only those are decoded. The summary's ``count`` is the whole pack's."""
    with np.load(path) as pack:
        header, scans, offsets = pack["header"].tobytes(), pack["scans"].tobytes(), pack["offsets"]
        labels, shape = pack["labels"], tuple(int(n) for n in pack["shape"])
        text = {key: str(pack[key]) if key in pack else "" for key in ("source", "dataset", "version")}
        names = [str(n) for n in pack["class_names"]] if "class_names" in pack else []
        summary = {**text, "class_names": names, "count": len(labels),
                   "shape": list(shape), "quality": int(pack["quality"]),
                   "mean_abs_difference": float(pack["mean_abs_difference"])}
    indices = range(len(labels))[start:end]
    images = np.empty((len(indices), *shape), np.uint8)
    for row, i in enumerate(indices):
        images[row] = _decode(header + scans[offsets[i]:offsets[i + 1]] + _EOI)
    return images, labels[start:end], summary


def pack_tfds(dataset: str, splits: list[str], out: str | Path, *, data_dir: str | None = None) -> list[dict]:
    """Prepared TFDS splits -> ``out/<split name>.npz`` (needs TensorFlow); their summaries.

    A slice is written under its split's name ('train[:5000]' -> train.npz), as ``--data-pack`` reads it.
    """
    from keraszoo.data.tfds_data import dataset_metadata, read_split, without_autotuning

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metadata = dataset_metadata(dataset, data_dir=data_dir)
    summaries = []
    for split in splits:
        data = read_split(dataset, split, data_dir=data_dir)
        images, labels = zip(*without_autotuning(data.examples.batch(4096)).as_numpy_iterator())
        source = f"TFDS {dataset} {metadata.version} split {split} from {metadata.data_dir}"
        summaries.append(write_pack(out / f"{split.split('[')[0]}.npz", np.concatenate(images), np.concatenate(labels),
                                    source=source, dataset=dataset, version=metadata.version,
                                    class_names=metadata.class_names))
    return summaries
