"""Where a trained ViT's class token looks (course part 3): attention maps over the image.

``class_token_attention(model, images)`` runs the model's own layers on raw images and
returns, per block, the class token's attention over the patches (heads averaged), plus
the attention rollout of Abnar & Zuidema (2020): the product over blocks of
0.5 * (A + I) with A averaged over heads, which accounts for the residual connections
and follows how information flows from the patches to the class token through depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from keraszoo.models.pretrained import find_vit


@dataclass(frozen=True)
class AttentionMaps:
    per_layer: np.ndarray  # (images, layers, rows, cols): the class token's attention, heads averaged
    rollout: np.ndarray  # (images, rows, cols)
    logits: np.ndarray | None  # (images, classes): the model's own output, for labelling (None: no head)

    @property
    def grid(self) -> tuple[int, int]:
        return self.per_layer.shape[-2:]


def class_token_attention(model: keras.Model, images: np.ndarray) -> AttentionMaps:
    """Runs ``model`` (a keraszoo ViT, alone or inside a classifier) on ``images`` in inference mode."""
    vit = find_vit(model)
    x = keras.ops.convert_to_tensor(images)
    if vit is not model:  # the classifier's preprocessing (scaling, normalisation) comes first
        for layer in model.layers[1:]:
            if layer is vit:
                break
            x = layer(x, training=False)
    patch_size = vit.get_layer("patch_embedding").patch_size
    grid = (vit.input_shape[1] // patch_size, vit.input_shape[2] // patch_size)  # whole patches only
    x = vit.get_layer("patch_embedding")(x)
    x = vit.get_layer("class_token_position")(x)
    attentions = []
    for layer in vit.layers:
        if layer.name.startswith("transformer_layer_"):
            x, attention = layer(x, training=False, return_attention_scores=True)
            attentions.append(keras.ops.convert_to_numpy(keras.ops.mean(attention, axis=1)))  # heads averaged
    if not attentions:
        raise ValueError(f"{vit.name!r} has no transformer blocks to read attention from.")
    x = vit.get_layer("layer_norm")(x)
    names = {layer.name for layer in vit.layers}
    logits = keras.ops.convert_to_numpy(vit.get_layer("classifier")(x[:, 0])) if "classifier" in names else None
    stacked = np.stack(attentions, axis=1)  # (images, layers, tokens, tokens)
    per_layer = stacked[:, :, 0, 1:].reshape(len(images), len(attentions), *grid)
    tokens = stacked.shape[-1]
    rollout = np.broadcast_to(np.eye(tokens), (len(images), tokens, tokens)).copy()
    for layer_attention in attentions:
        mixed = 0.5 * (layer_attention + np.eye(tokens))  # half through attention, half through the residual
        rollout = mixed @ rollout
    return AttentionMaps(per_layer=per_layer, rollout=rollout[:, 0, 1:].reshape(len(images), *grid), logits=logits)


def upsample(grid_map: np.ndarray, image_shape: tuple[int, int], patch_size: int) -> np.ndarray:
    """A (rows, cols) patch map as an image: each patch's value over its pixels, zero where no patch reaches."""
    full = np.zeros(image_shape, grid_map.dtype)
    block = np.kron(grid_map, np.ones((patch_size, patch_size), grid_map.dtype))
    full[: block.shape[0], : block.shape[1]] = block
    return full
