"""Datasets: prepared TFDS splits read into tf.data pipelines (``tfds_data``), the circles toy set,
and, for machines without TensorFlow, a compact copy of a split (``jpeg_pack``) read into NumPy
arrays that Keras feeds on any backend (``arrays``).

The names below load their module on first use (PEP 562): ``metadata``, ``arrays``,
``statistics`` and ``jpeg_pack`` then import without TensorFlow.
"""

import importlib

_EXPORTS = {
    "keraszoo.data.arrays": ("ArraySplit", "read_pack_split"),
    "keraszoo.data.circles": ("CIRCLES_METADATA", "circles_split", "make_circles"),
    "keraszoo.data.metadata": ("DatasetMetadata",),
    "keraszoo.errors": ("DatasetNotFoundError",),
    "keraszoo.data.tfds_data": ("SplitData", "batches", "dataset_metadata",
                                "describe_data_loss", "epoch_batches", "load_dataset", "read_split", "resolve_data_dir",
                                "without_autotuning"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    if name in _MODULE_OF:
        return getattr(importlib.import_module(_MODULE_OF[name]), name)
    raise AttributeError(f"module 'keraszoo.data' has no attribute {name!r}")
