"""Per-layer table of a model: output shape, weights, biases, share of the total (course Q.10/Q.11)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras

from keraszoo.analysis.formulas import dense_equivalent_weights
from keraszoo.analysis.graph import leaf_layers

_BIAS_NAMES = ("bias", "beta")  # BatchNorm's beta is its bias


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: tuple
    weights: int  # trainable, except biases
    biases: int
    non_trainable: int  # e.g. BatchNorm's moving statistics
    share: float  # of all parameters of the model
    dense_equivalent: int | None  # weights a fully connected layer would need (convolutions)


@dataclass(frozen=True)
class LayerTable:
    rows: list[LayerRow]

    @property
    def weights(self) -> int:
        return sum(row.weights for row in self.rows)

    @property
    def biases(self) -> int:
        return sum(row.biases for row in self.rows)

    @property
    def non_trainable(self) -> int:
        return sum(row.non_trainable for row in self.rows)

    @property
    def total(self) -> int:
        return self.weights + self.biases + self.non_trainable

    def as_dicts(self) -> list[dict]:
        return [asdict(row) for row in self.rows]

    def format(self) -> str:
        header = f"{'layer':<22}{'type':<20}{'output shape':<18}{'weights':>12}{'biases':>9}{'share':>8}"
        lines = [header, "-" * len(header)]
        for row in self.rows:
            shape = "x".join(str(d) for d in row.output_shape)
            lines.append(
                f"{row.name[-21:]:<22}{row.kind[:19]:<20}{shape:<18}{row.weights:>12,}"
                f"{row.biases:>9,}{row.share:>8.2%}"
            )
        lines.append("-" * len(header))
        total = f"total: {self.weights:,} weights + {self.biases:,} biases"
        if self.non_trainable:
            total += f" + {self.non_trainable:,} non-trainable"
        lines.append(f"{total} = {self.total:,} parameters")
        return "\n".join(lines)


def _shape(tensor_shape) -> tuple:
    return tuple(tensor_shape[1:])


def layer_table(model: keras.Model) -> LayerTable:
    """One row per layer (nested models expanded), in the order data flows through them."""
    entries = []
    for path, layer in leaf_layers(model):
        weights = biases = frozen = 0
        for variable in layer.weights:
            count = int(keras.ops.size(variable))
            short_name = variable.path.rsplit("/", 1)[-1]
            if not variable.trainable:
                frozen += count
            elif short_name in _BIAS_NAMES:
                biases += count
            else:
                weights += count
        node = layer._inbound_nodes[0]  # a shared layer has the same shapes in every call
        output_shape = _shape(node.output_tensors[0].shape)
        dense_equivalent = None
        if isinstance(layer, keras.layers.Conv2D):
            input_shape = _shape(node.input_tensors[0].shape)
            dense_equivalent = dense_equivalent_weights(input_shape, output_shape)
        entries.append((path, type(layer).__name__, output_shape, weights, biases, frozen, dense_equivalent))
    total = sum(e[3] + e[4] + e[5] for e in entries) or 1
    rows = [
        LayerRow(name, kind, shape, w, b, f, (w + b + f) / total, dense)
        for name, kind, shape, w, b, f, dense in entries
    ]
    return LayerTable(rows)
