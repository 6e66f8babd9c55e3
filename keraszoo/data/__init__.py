"""Datasets: prepared TFDS splits read into tf.data pipelines (see ``tfds_data``)."""

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
