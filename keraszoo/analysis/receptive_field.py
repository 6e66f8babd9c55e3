"""Receptive fields (course Q.7): what input pixels each layer's units see.

Per spatial axis, a layer's units are described by three numbers:
``size`` (pixels in the field), ``jump`` (input pixels between two neighbouring
units) and ``start`` (input coordinate of the centre of the first unit's field;
a half-integer when the size is even). Through a layer with effective kernel
k_eff = d(k - 1) + 1, stride s and padding p_before:

    jump_out  = jump * s
    size_out  = size + (k_eff - 1) * jump
    start_out = start + ((k_eff - 1) / 2 - p_before) * jump

Unit i of a layer then sees input pixels start + i*jump +/- (size - 1)/2,
clipped to the image (fields overhanging the border see padding there).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from keraszoo.analysis.formulas import same_padding
from keraszoo.analysis.graph import UnsupportedLayerError, propagate

# Layers that act on each position on its own: the field passes through unchanged.
_ELEMENTWISE = (
    keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.PReLU,
    keras.layers.ELU, keras.layers.Softmax, keras.layers.BatchNormalization,
    keras.layers.Dropout, keras.layers.SpatialDropout2D, keras.layers.GaussianNoise,
    keras.layers.GaussianDropout, keras.layers.AlphaDropout, keras.layers.Rescaling,
    keras.layers.Normalization, keras.layers.Identity,
)
_MERGES = (
    keras.layers.Add, keras.layers.Subtract, keras.layers.Multiply, keras.layers.Average,
    keras.layers.Maximum, keras.layers.Minimum, keras.layers.Concatenate,
)
_GLOBAL = (
    keras.layers.Flatten, keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D,
)


@dataclass(frozen=True)
class AxisField:
    size: float
    jump: float
    start: float

    def through(self, kernel: int, stride: int, pad_before: int, dilation: int = 1) -> "AxisField":
        effective = dilation * (kernel - 1) + 1
        return AxisField(
            size=self.size + (effective - 1) * self.jump,
            jump=self.jump * stride,
            start=self.start + ((effective - 1) / 2 - pad_before) * self.jump,
        )

    def pixels(self, index: int, length: int) -> tuple[int, int]:
        """First and last input pixel (inclusive, clipped to [0, length - 1]) seen by unit ``index``."""
        centre = self.start + index * self.jump
        low, high = centre - (self.size - 1) / 2, centre + (self.size - 1) / 2
        return max(int(low), 0), min(int(high), length - 1)


@dataclass(frozen=True)
class Field:
    """The receptive field of a tensor's units: per axis (height, width), or the whole input."""

    height: AxisField | None
    width: AxisField | None
    whole_input: bool = False

    @property
    def size(self):
        if self.whole_input:
            return "whole input"
        h, w = self.height.size, self.width.size
        return int(h) if h == w else (int(h), int(w))

    @property
    def jump(self):
        if self.whole_input:
            return None
        h, w = self.height.jump, self.width.jump
        return int(h) if h == w else (int(h), int(w))

    @property
    def start(self):
        if self.whole_input:
            return None
        return self.height.start if self.height.start == self.width.start else (self.height.start, self.width.start)


WHOLE_INPUT = Field(None, None, whole_input=True)


@dataclass(frozen=True)
class FieldRow:
    name: str
    kind: str
    field: Field


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _spatial(layer) -> tuple[int, int]:
    shape = layer._inbound_nodes[0].input_tensors[0].shape
    if len(shape) != 4 or getattr(layer, "data_format", "channels_last") != "channels_last":
        raise UnsupportedLayerError(layer, "the receptive field", "only channels_last 2-D layers are handled")
    return shape[1], shape[2]


def _windowed(layer, field: Field, kernel, strides, dilation, padding) -> Field:
    kernel, strides, dilation = _pair(kernel), _pair(strides), _pair(dilation)
    sizes = _spatial(layer)
    axes = []
    for axis, current in enumerate((field.height, field.width)):
        pad_before = 0
        if padding == "same":
            size = sizes[axis]
            if size is None and strides[axis] > 1:
                raise UnsupportedLayerError(layer, "the receptive field", "'same' padding with a stride "
                                            "depends on the input size: give the model a fixed input size")
            # With stride 1 the padding does not depend on the size: any size >= 1 gives it.
            pad_before = same_padding(size or 1, kernel[axis], strides[axis], dilation[axis])[0]
        axes.append(current.through(kernel[axis], strides[axis], pad_before, dilation[axis]))
    return Field(*axes)


def _shifted(field: Field, offsets: tuple[int, int]) -> Field:
    """Padding (negative offset) or cropping (positive offset): a 1x1 window moved by the offset."""
    return Field(*(axis.through(1, 1, -offset) for axis, offset in zip((field.height, field.width), offsets)))


def _layer_field(layer, fields: list[Field]) -> Field:
    field = fields[0]
    if isinstance(layer, _MERGES):
        if any(f != field for f in fields[1:]):
            raise UnsupportedLayerError(layer, "the receptive field", "its inputs have different fields")
        return field
    if field.whole_input:
        if isinstance(layer, (keras.layers.Dense, *_ELEMENTWISE)):
            return field
        raise UnsupportedLayerError(layer, "the receptive field", "it follows a layer that sees the whole input")
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)):
        if isinstance(layer, keras.layers.Conv2DTranspose):
            raise UnsupportedLayerError(layer, "the receptive field", "transposed convolutions upsample")
        return _windowed(layer, field, layer.kernel_size, layer.strides, layer.dilation_rate, layer.padding)
    if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
        return _windowed(layer, field, layer.pool_size, layer.strides, 1, layer.padding)
    if isinstance(layer, keras.layers.ZeroPadding2D):
        (top, _), (left, _) = layer.padding
        _spatial(layer)
        return _shifted(field, (-top, -left))
    if isinstance(layer, keras.layers.Cropping2D):
        (top, _), (left, _) = layer.cropping
        _spatial(layer)
        return _shifted(field, (top, left))
    if isinstance(layer, keras.layers.CenterCrop):
        height, width = _spatial(layer)
        if height < layer.height or width < layer.width:
            raise UnsupportedLayerError(layer, "the receptive field", "it resizes inputs smaller than its crop")
        return _shifted(field, ((height - layer.height) // 2, (width - layer.width) // 2))
    if isinstance(layer, _GLOBAL):
        return WHOLE_INPUT
    if isinstance(layer, (keras.layers.Dense, *_ELEMENTWISE)):
        return field  # Dense on a feature map mixes channels only
    raise UnsupportedLayerError(layer, "the receptive field")


def receptive_fields(model: keras.Model) -> list[FieldRow]:
    """The receptive field of every layer's output, in graph order, nested models expanded."""
    shapes = [tuple(tensor.shape) for tensor in model.inputs]
    if any(len(shape) != 4 for shape in shapes):
        raise ValueError(f"receptive fields are defined for image inputs (batch, height, width, channels); "
                         f"{model.name} takes {shapes}.")
    rows = []
    identity = Field(AxisField(1, 1, 0), AxisField(1, 1, 0))

    def rule(layer, fields, path):
        field = _layer_field(layer, fields)
        rows.append(FieldRow(path + layer.name, type(layer).__name__, field))
        return field

    propagate(model, [identity] * len(model.inputs), rule)
    return rows


def _start_text(start) -> str:
    if start is None:
        return ""
    return "x".join(f"{v:g}" for v in start) if isinstance(start, tuple) else f"{start:g}"


def format_fields(rows: list[FieldRow]) -> str:
    header = f"{'layer':<22}{'type':<20}{'field size':>14}{'jump':>8}{'start':>10}"
    lines = [header, "-" * len(header)]
    for row in rows:
        f = row.field
        size = "whole input" if f.whole_input else "x".join(str(v) for v in ((f.size,) * 2 if isinstance(f.size, int) else f.size))
        lines.append(
            f"{row.name[-21:]:<22}{row.kind[:19]:<20}{size:>14}{'' if f.jump is None else str(f.jump):>8}"
            f"{_start_text(f.start):>10}"
        )
    return "\n".join(lines)
