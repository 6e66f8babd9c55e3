"""The course's 2-layer MLP (part 1), written the Keras way: two Dense layers, autodiff does the rest.

    h = tanh(x W_h^T + b_h)      Keras's "hidden" kernel is W_h^T: (input_dim, hidden_dim)
    logits = h W_y^T + b_y       Keras's "logits" kernel is W_y^T: (hidden_dim, num_classes)

``keraszoo.models.manual_mlp.ManualMLP`` is the same network with hand-written backprop.
"""

from __future__ import annotations

import keras
from keras import layers


def build_mlp(
    *,
    input_dim: int,
    hidden_dim: int,
    num_classes: int,
    activation: str = "tanh",
    name: str = "mlp",
) -> keras.Model:
    """Features ``(batch, input_dim)`` -> logits ``(batch, num_classes)``, uncompiled."""
    if min(input_dim, hidden_dim) < 1 or num_classes < 2:
        raise ValueError(
            f"input_dim and hidden_dim must be >= 1 and num_classes >= 2, got {input_dim}, {hidden_dim}, {num_classes}."
        )
    inputs = keras.Input((input_dim,), name="features")
    hidden = layers.Dense(hidden_dim, activation=activation, name="hidden")(inputs)
    logits = layers.Dense(num_classes, name="logits")(hidden)
    return keras.Model(inputs, logits, name=name)
