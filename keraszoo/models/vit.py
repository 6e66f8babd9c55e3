"""A Vision Transformer built from keraszoo's layers (course part 3).

    image -> patches -> [class token; patch embeddings] + positions
          -> num_layers pre-norm transformer blocks -> LayerNorm -> class token -> Dense -> logits
"""

from __future__ import annotations

import keras
from keras import layers

from keraszoo.models.vit_layers import ClassTokenPosition, PatchEmbedding, TransformerEncoderBlock


def build_vit(
    *,
    image_shape: tuple[int, int, int],
    patch_size: int,
    hidden_dim: int,
    num_layers: int,
    num_heads: int,
    mlp_dim: int,
    num_classes: int | None,
    dropout_rate: float = 0.0,
    layer_norm_epsilon: float = 1e-6,
    pooling: str = "class_token",
    position_embedding: bool = True,
    name: str = "vit",
) -> keras.Model:
    """Float images -> logits, classifying from the class token after a final LayerNorm.

    ``num_classes=None`` leaves the head out: the model returns the final LayerNorm's
    (batch, tokens, hidden_dim) sequence, as keras-hub's ``ViTBackbone`` does. The ablations:
    ``pooling="mean"`` drops the class token and classifies the mean of the patch tokens (global
    average pooling); ``position_embedding=False`` adds no positions.
    """
    height, width = image_shape[:2]
    if len(image_shape) != 3:
        raise ValueError(f"image_shape must be (height, width, channels), got {image_shape}.")
    if not 1 <= patch_size <= min(height, width):
        raise ValueError(f"patch_size {patch_size} must be between 1 and the image side {min(height, width)}.")
    if hidden_dim % num_heads:
        raise ValueError(f"hidden_dim {hidden_dim} must be divisible by num_heads {num_heads} "
                         f"(each head gets hidden_dim / num_heads dimensions).")
    if min(num_layers, num_heads, mlp_dim, hidden_dim) < 1 or (num_classes is not None and num_classes < 2):
        raise ValueError("num_layers, num_heads, mlp_dim, hidden_dim must be >= 1 and num_classes >= 2 (or None).")
    if not 0 <= dropout_rate < 1:
        raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate}.")
    if pooling not in ("class_token", "mean"):
        raise ValueError(f"pooling must be 'class_token' or 'mean', got {pooling!r}.")

    inputs = keras.Input(image_shape, name="images")
    x = PatchEmbedding(patch_size, hidden_dim, name="patch_embedding")(inputs)  # (batch, patches, dim)
    x = ClassTokenPosition(class_token=pooling == "class_token", position_embedding=position_embedding,
                           name="class_token_position")(x)  # (batch, 1 + patches, dim)
    x = layers.Dropout(dropout_rate, name="embedding_dropout")(x)
    for index in range(num_layers):
        x = TransformerEncoderBlock(num_heads, mlp_dim, dropout_rate, layer_norm_epsilon,
                                    name=f"transformer_layer_{index}")(x)
    x = layers.LayerNormalization(epsilon=layer_norm_epsilon, name="layer_norm")(x)
    if num_classes is None:
        return keras.Model(inputs, x, name=name)
    pooled = x[:, 0] if pooling == "class_token" else layers.GlobalAveragePooling1D(name="token_mean")(x)
    # Zero-initialised head, as in the ViT paper: training starts exactly at chance level, ln(C).
    logits = layers.Dense(num_classes, kernel_initializer="zeros", name="classifier")(pooled)
    return keras.Model(inputs, logits, name=name)


def num_tokens(image_shape, patch_size: int) -> int:
    """Patches that fit whole, plus the class token."""
    return (image_shape[0] // patch_size) * (image_shape[1] // patch_size) + 1
