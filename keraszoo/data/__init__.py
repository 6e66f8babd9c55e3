"""Datasets: prepared TFDS splits read into tf.data pipelines (``tfds_data``), the circles toy set."""

from keraszoo.data.circles import CIRCLES_METADATA, circles_split, make_circles
from keraszoo.data.tfds_data import (
    DatasetMetadata,
    DatasetNotFoundError,
    SplitData,
    batches,
    dataset_metadata,
    epoch_batches,
    load_dataset,
    read_split,
    resolve_data_dir,
)

__all__ = [
    "CIRCLES_METADATA",
    "circles_split",
    "make_circles",
    "DatasetMetadata",
    "DatasetNotFoundError",
    "SplitData",
    "batches",
    "dataset_metadata",
    "epoch_batches",
    "load_dataset",
    "read_split",
    "resolve_data_dir",
]
