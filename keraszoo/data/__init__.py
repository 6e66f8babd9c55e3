"""Datasets: prepared TFDS splits read into tf.data pipelines (``tfds_data``), the circles toy set,
and a compact TensorFlow-free copy of a split for machines without TensorFlow (``jpeg_pack``).

The names below load their module on first use (PEP 562): ``keraszoo.data.statistics`` and
``keraszoo.data.jpeg_pack`` then import without TensorFlow.
"""

import importlib

_EXPORTS = {
    "keraszoo.data.circles": ("CIRCLES_METADATA", "circles_split", "make_circles"),
    "keraszoo.data.tfds_data": ("DatasetMetadata", "DatasetNotFoundError", "SplitData", "batches", "dataset_metadata",
                                "describe_data_loss", "epoch_batches", "load_dataset", "read_split", "resolve_data_dir"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    if name in _MODULE_OF:
        return getattr(importlib.import_module(_MODULE_OF[name]), name)
    raise AttributeError(f"module 'keraszoo.data' has no attribute {name!r}")
