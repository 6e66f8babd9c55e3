"""What a model builder needs to know about a dataset, without reading it (no TensorFlow needed)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetMetadata:
    name: str
    version: str
    data_dir: str  # where the examples come from: a TFDS data_dir, or a pack folder
    input_shape: tuple[int, ...]  # one example: (height, width, channels) for images
    num_classes: int
    class_names: tuple[str, ...]
