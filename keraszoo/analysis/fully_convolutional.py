"""Fully connected layers rewritten as convolutions (course Q.4-Q.6).

A Dense layer after Flatten is a convolution whose kernel covers its whole input
map: Flatten orders features (row, column, channel), so the Dense kernel
(h*w*c, units) reshapes to a Conv2D kernel (h, w, c, units) as is. The Dense
layers after it become 1x1 convolutions. The converted network accepts any
image at least as large as the original and slides the classifier over it,
returning a map of class scores: 64x64 input -> 5x5x10 for the course's CNN.
"""

from __future__ import annotations

import keras

from keraszoo.analysis.graph import UnsupportedLayerError, propagate


def _chain(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's layers, checked to form a single path (each layer feeds the next)."""
    layers = []

    def follow(layer, given, path):
        previous = layers[-1] if layers else None
        if len(given) != 1 or given[0] is not previous:
            raise UnsupportedLayerError(layer, "to_fully_convolutional", "the model must be one chain of layers")
        layers.append(layer)
        return layer

    outputs = propagate(model, [None], follow)
    if outputs != [layers[-1]]:
        raise ValueError(f"{model.name} must have one output, produced by its last layer.")
    return layers


# Layers that may sit between the Dense layers of the head: they act per feature.
_PER_FEATURE = (
    keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.PReLU,
    keras.layers.ELU, keras.layers.Softmax, keras.layers.Dropout, keras.layers.BatchNormalization,
    keras.layers.GaussianNoise, keras.layers.GaussianDropout, keras.layers.AlphaDropout,
    keras.layers.Identity,
)


def to_fully_convolutional(model: keras.Model, *, name: str | None = None) -> keras.Model:
    """A copy of ``model`` whose Flatten -> Dense head is made of convolutions, weights included.

    The returned model takes images of any size (height and width ``None``) and
    returns ``(batch, rows, cols, num_classes)`` scores; on the original size the
    map is 1x1 and equals the original outputs.
    """
    layers = _chain(model)
    flatten_at = [i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Flatten)]
    if len(flatten_at) != 1:
        raise ValueError(
            f"{model.name} needs exactly one Flatten layer before its Dense head, found {len(flatten_at)}."
        )
    (input_tensor,) = model.inputs
    if len(input_tensor.shape) != 4:
        raise ValueError(f"{model.name} takes {input_tensor.shape}; expected (batch, height, width, channels).")
    flatten = layers[flatten_at[0]]
    map_shape = tuple(flatten._inbound_nodes[0].input_tensors[0].shape[1:])  # (h, w, c) seen by Flatten

    inputs = keras.Input(shape=(None, None, input_tensor.shape[-1]), dtype=input_tensor.dtype, name="images")
    x = inputs
    weights_to_set = []  # set once every new layer is built
    first_dense = True
    for index, layer in enumerate(layers):
        if layer is flatten:
            continue
        if index > flatten_at[0] and isinstance(layer, keras.layers.Dense):
            kernel, *bias = layer.get_weights()
            # Flatten orders features (row, column, channel): the Dense kernel reshapes as is.
            window = map_shape[:2] if first_dense else (1, 1)
            kernel = kernel.reshape(*(map_shape if first_dense else (1, 1, kernel.shape[0])), layer.units)
            first_dense = False
            new = keras.layers.Conv2D(
                layer.units, window, activation=layer.activation, use_bias=layer.use_bias,
                name=f"{layer.name}_conv",
            )
            weights = [kernel, *bias]
        elif index > flatten_at[0] and not isinstance(layer, _PER_FEATURE):
            raise UnsupportedLayerError(
                layer, "to_fully_convolutional", "only Dense and per-feature layers may follow Flatten"
            )
        else:
            new = layer.__class__.from_config(layer.get_config())
            weights = layer.get_weights()
        x = new(x)
        weights_to_set.append((new, weights))
    converted = keras.Model(inputs, x, name=name or f"{model.name}_fully_convolutional")
    for new, weights in weights_to_set:
        new.set_weights(weights)
    return converted
