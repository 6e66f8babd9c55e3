"""Answers to the course's CNN questions for any functional Keras CNN.

Formulas (Q.1), the per-layer table (Q.10/Q.11), receptive fields (Q.7),
fully connected layers as convolutions (Q.4-Q.6) and the chance-level start (Q.17).
"""

from keraszoo.analysis.chance_level import (
    chance_level,
    chance_level_report,
    evaluate_chance_level,
    format_report,
)
from keraszoo.analysis.formulas import (
    conv_output_size,
    conv_weights,
    dense_equivalent_weights,
    same_padding,
)
from keraszoo.analysis.fully_convolutional import to_fully_convolutional
from keraszoo.analysis.graph import UnsupportedLayerError
from keraszoo.analysis.layer_table import LayerRow, LayerTable, layer_table
from keraszoo.analysis.receptive_field import AxisField, Field, FieldRow, format_fields, receptive_fields

__all__ = [
    "AxisField", "Field", "FieldRow", "LayerRow", "LayerTable", "UnsupportedLayerError",
    "chance_level", "chance_level_report", "conv_output_size", "conv_weights",
    "dense_equivalent_weights", "evaluate_chance_level", "format_fields", "format_report",
    "layer_table", "receptive_fields", "same_padding", "to_fully_convolutional",
]
