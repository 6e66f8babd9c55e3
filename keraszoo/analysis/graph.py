"""Walking a functional Keras model's layer graph, nested models included.

The analysis tools compute something per tensor (a shape, a receptive field)
from the layer that produced it; ``propagate`` runs such a rule through the
graph in topological order and descends into nested functional models (the
uint8 classifier wraps its backbone as one layer).
"""

from __future__ import annotations

from collections.abc import Callable

import keras


class UnsupportedLayerError(ValueError):
    """An analysis met a layer it has no rule for (e.g. attention)."""

    def __init__(self, layer, analysis: str, hint: str = ""):
        super().__init__(
            f"{analysis} is not defined for layer {layer.name!r} ({type(layer).__name__})"
            + (f": {hint}" if hint else "")
            + ". Supported: convolutions, pooling, padding/cropping, elementwise layers "
            "(activations, normalisation, dropout) and Flatten/Dense heads."
        )
        self.layer = layer


def as_functional(model):
    """The functional graph of a model (a built Sequential keeps one inside), or None."""
    if isinstance(model, keras.Sequential):
        model = getattr(model, "_functional", None)
    if isinstance(model, keras.Model) and getattr(model, "_operations", None) is not None:
        return model
    return None


def propagate(model: keras.Model, inputs: list, rule: Callable, path: str = "") -> list:
    """Applies ``rule(layer, input_values, path) -> output_value`` layer by layer.

    ``inputs`` hold one value per model input; returns one value per model output.
    Nested functional models are walked through, not handed to ``rule``.
    """
    graph = as_functional(model)
    if graph is None:
        raise ValueError(
            f"{getattr(model, 'name', model)!r} is not a built functional or Sequential Keras model "
            "(subclassed models have no layer graph to analyse)."
        )
    model = graph
    values = {id(tensor): value for tensor, value in zip(model.inputs, inputs)}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        for node in layer._inbound_nodes:
            arguments = node.input_tensors
            if not arguments or not all(id(t) in values for t in arguments):
                continue  # a node of another model that shares this layer
            given = [values[id(t)] for t in arguments]
            if as_functional(layer) is not None:
                results = propagate(layer, given, rule, path=f"{path}{layer.name}/")
            else:
                result = rule(layer, given, path)
                results = [result] * len(node.output_tensors)
            for tensor, result in zip(node.output_tensors, results):
                values[id(tensor)] = result
    return [values[id(tensor)] for tensor in model.outputs]


def leaf_layers(model: keras.Model) -> list[tuple[str, keras.layers.Layer]]:
    """``(path, layer)`` for every non-input layer, nested models expanded, in graph order."""
    found = []

    def collect(layer, given, path):
        found.append((path + layer.name, layer))

    propagate(model, [None] * len(as_functional(model).inputs), collect)
    return found
