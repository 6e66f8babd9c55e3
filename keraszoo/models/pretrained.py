"""Standard ViT sizes and pretrained weights for them (course part 3, "larger transformers").

    build_vit_preset("vit_base_patch16_224", num_classes=10)   # keraszoo's ViT, B/16 layout
    load_pretrained(model, "vit_base_patch16_224_imagenet")    # keras-hub preset (needs network once)
    load_pretrained(model, "/data/vit_base_patch16_224")       # the same preset saved locally

Weights come through keras-hub's ``Backbone.from_preset``, so a source may be a keras-hub
preset name or handle, a local preset directory (``backbone.save_to_preset(dir)``), or a
local Hugging Face ``transformers`` ViT checkpoint directory (config.json +
model.safetensors), which keras-hub converts. The backbone's tensors are then copied
into keraszoo's layers one by one, by name, with every shape checked; the positional
embeddings are interpolated when the model's patch grid differs from the checkpoint's.
keras-hub is imported only here, when weights are loaded.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import keras
import numpy as np

from keraszoo.models.vit import build_vit

# The ViT paper's sizes (Dosovitskiy et al., 2021, table 1) and DeiT's tiny/small (Touvron et al., 2021).
VIT_SIZES = {
    "tiny": dict(hidden_dim=192, num_layers=12, num_heads=3, mlp_dim=768),
    "small": dict(hidden_dim=384, num_layers=12, num_heads=6, mlp_dim=1536),
    "base": dict(hidden_dim=768, num_layers=12, num_heads=12, mlp_dim=3072),
}
VIT_PRESETS = {f"vit_{size}_patch16_224": dict(patch_size=16, image_size=224, **dims)
               for size, dims in VIT_SIZES.items()}

# google/vit-base-patch16-224 and keras-hub's ViT converters: x / 127.5 - 1 (mean 0.5, std 0.5 on [0, 1]).
DEFAULT_PIXEL_SCALE, DEFAULT_PIXEL_OFFSET = 1 / 127.5, -1.0


class PretrainedWeightsError(ValueError):
    """The weights could not be found, read, or do not fit the model."""


def build_vit_preset(name: str, *, num_classes: int | None = 1000, image_size: int | None = None,
                     dropout_rate: float = 0.0, num_layers: int | None = None,
                     model_name: str | None = None) -> keras.Model:
    """A registered standard ViT: float RGB images of ``image_size`` (default 224) -> logits.

    The default head has ImageNet's 1000 classes; pass the number of your classes. ``num_layers``
    keeps only the first blocks (a checkpoint then loads partly: for tests and probes).

    ``num_classes=None`` returns the backbone: the final LayerNorm's token sequence,
    like keras-hub's ``ViTBackbone``.
    """
    if name not in VIT_PRESETS:
        raise ValueError(f"unknown ViT {name!r}; registered: {sorted(VIT_PRESETS)}")
    spec = dict(VIT_PRESETS[name])
    size = image_size or spec.pop("image_size")
    spec.pop("image_size", None)
    if num_layers is not None:
        spec["num_layers"] = num_layers
    if size % spec["patch_size"]:
        raise ValueError(f"image_size {size} must be a multiple of the patch size {spec['patch_size']} "
                         f"(e.g. 112, 224 or 384) so that every pixel falls in a patch.")
    return build_vit(image_shape=(size, size, 3), num_classes=num_classes, dropout_rate=dropout_rate,
                     name=model_name or name, **spec)


def interpolate_position_embedding(embedding: np.ndarray, grid: tuple[int, int],
                                   num_prefix_tokens: int = 1) -> np.ndarray:
    """(1, prefix + h*w, dim) -> (1, prefix + grid[0]*grid[1], dim), bicubic on the patch grid.

    The class token's embedding is kept as is; the patch embeddings are laid out on their
    square h x w grid and resized, as timm and the ViT paper do to fine-tune at another
    resolution. An unchanged grid gives the input back exactly.
    """
    embedding = np.asarray(embedding)
    prefix, patches = embedding[:, :num_prefix_tokens], embedding[:, num_prefix_tokens:]
    side = math.isqrt(patches.shape[1])
    if side * side != patches.shape[1]:
        raise ValueError(f"{patches.shape[1]} patch positions do not form a square grid.")
    if (side, side) == tuple(grid):
        return embedding.copy()
    image = patches.reshape(1, side, side, -1)
    resized = keras.ops.convert_to_numpy(
        keras.ops.image.resize(image, grid, interpolation="bicubic", antialias=False))
    return np.concatenate([prefix, resized.reshape(1, grid[0] * grid[1], -1)], axis=1).astype(embedding.dtype)


@dataclass(frozen=True)
class LoadedWeights:
    source: str
    tensors: int
    checkpoint_grid: tuple[int, int]
    model_grid: tuple[int, int]

    @property
    def interpolated(self) -> bool:
        return self.checkpoint_grid != self.model_grid


def load_keras_hub_backbone(source: str):
    """keras-hub's ViTBackbone from a preset name, handle or local directory, with errors that say what to do."""
    try:
        import keras_hub
    except ImportError as error:
        raise PretrainedWeightsError(
            "loading pretrained ViT weights needs keras-hub: pip install 'keraszoo[pretrained]' "
            "(or pip install keras-hub)") from error
    if os.sep in source and "://" not in source and not os.path.isdir(source):
        raise PretrainedWeightsError(
            f"no preset folder at {source!r}: give a folder written by backbone.save_to_preset(...) "
            f"(config.json + model.weights.h5) or a Hugging Face ViT checkpoint folder, or a keras-hub "
            f"preset name such as 'vit_base_patch16_224_imagenet'.")
    try:
        backbone = keras_hub.models.Backbone.from_preset(source)
    except Exception as error:  # keras-hub raises ValueError, OSError, HTTP and kagglehub errors
        raise PretrainedWeightsError(
            f"could not load the pretrained weights {source!r}: {type(error).__name__}: {error}\n"
            f"Without network access, supply a local copy: on a machine with network run\n"
            f"  python -c \"import keras_hub; keras_hub.models.ViTBackbone.from_preset('{source}')"
            f".save_to_preset('{source.rsplit('/', 1)[-1]}')\"\n"
            f"copy that folder here and pass its path instead (a Hugging Face ViT checkpoint folder with "
            f"config.json and model.safetensors works too), or train from scratch: --weights none with "
            f"recipes/mnist_vit_b16.py; in Python, do not call load_pretrained (the model starts from random weights)."
        ) from error
    if not isinstance(backbone, keras_hub.models.ViTBackbone):
        raise PretrainedWeightsError(f"{source!r} holds a {type(backbone).__name__}, not a ViTBackbone.")
    return backbone


def checkpoint_pixel_scaling(source: str | None) -> tuple[float, float]:
    """(scale, offset) mapping raw 0-255 pixels to what the checkpoint was trained on.

    Read from the preset's image converter when it has one; otherwise x / 127.5 - 1,
    the normalisation of the original ViT checkpoints (mean 0.5, std 0.5).
    """
    if source:
        try:
            import keras_hub

            converter = keras_hub.layers.ImageConverter.from_preset(source)
            scale, offset = converter.scale, converter.offset
            if scale is not None and np.ndim(scale) == 0 and (offset is None or np.ndim(offset) == 0):
                return float(scale), float(offset or 0.0)
        except Exception:  # no converter in the preset (a bare backbone), or per-channel values
            pass
    return DEFAULT_PIXEL_SCALE, DEFAULT_PIXEL_OFFSET


def find_vit(model: keras.Model) -> keras.Model:
    """The keraszoo ViT inside ``model`` (itself, or a nested functional model)."""
    stack = [model]
    while stack:
        candidate = stack.pop()
        names = {layer.name for layer in candidate.layers}
        if {"patch_embedding", "class_token_position", "layer_norm"} <= names:
            return candidate
        stack.extend(layer for layer in candidate.layers if isinstance(layer, keras.Model))
    raise ValueError(f"{model.name!r} holds no keraszoo ViT (build it with build_vit or build_vit_preset).")


def _copy_block(ours, block, copy) -> None:
    """One transformer block's weights, keras-hub's ``block`` into keraszoo's ``ours``, through ``copy``."""
    for our_norm, their_norm in ((ours.norm_attention, block.layer_norm_1), (ours.norm_mlp, block.layer_norm_2)):
        copy(our_norm.gamma, their_norm.gamma)
        copy(our_norm.beta, their_norm.beta)
    for name in ("query", "key", "value", "output"):
        dense = getattr(block.mha, f"_{name}_dense")
        copy(getattr(ours.attention, f"{name}_kernel"), dense.kernel)
        bias = getattr(ours.attention, f"{name}_bias")
        copy(bias, dense.bias if block.mha._use_bias else np.zeros(bias.shape, "float32"))
    for our_dense, their_dense in ((ours.mlp_hidden, block.mlp.dense_1), (ours.mlp_output, block.mlp.dense_2)):
        copy(our_dense.kernel, their_dense.kernel)
        copy(our_dense.bias, their_dense.bias if their_dense.use_bias else np.zeros(our_dense.bias.shape))


def load_pretrained(model: keras.Model, source: str, *, backbone=None) -> LoadedWeights:
    """Copies a keras-hub ViT checkpoint into keraszoo's ViT inside ``model``; the head is left as is.

    ``backbone`` may be an already-loaded keras-hub ViTBackbone (then ``source`` only names it).
    Raises ``PretrainedWeightsError`` if the weights cannot be had or do not fit.
    """
    vit = find_vit(model)
    backbone = backbone if backbone is not None else load_keras_hub_backbone(source)
    if not backbone.use_class_token:
        raise PretrainedWeightsError(f"{source!r} has no class token; keraszoo's ViT classifies from one.")
    embedding_layer = backbone.get_layer("vit_patching_and_embedding")
    encoder = backbone.get_layer("vit_encoder")
    blocks = [layer for layer in vit.layers if layer.name.startswith("transformer_layer_")]
    ours_patch = vit.get_layer("patch_embedding").projection
    kernel_shape = tuple(ours_patch.kernel.shape)
    theirs = (tuple(embedding_layer.patch_embedding.kernel.shape), backbone.num_layers, backbone.mlp_dim)
    if theirs != (kernel_shape, len(blocks), blocks[0].mlp_dim) or backbone.num_heads != blocks[0].num_heads:
        raise PretrainedWeightsError(
            f"{source!r} is a ViT with patch kernel {theirs[0]}, {backbone.num_layers} layers, "
            f"{backbone.num_heads} heads, MLP {backbone.mlp_dim}; the model has patch kernel {kernel_shape}, "
            f"{len(blocks)} layers, {blocks[0].num_heads} heads, MLP {blocks[0].mlp_dim}. "
            f"Build the matching size (e.g. build_vit_preset('vit_base_patch16_224', ...)).")

    pairs: list[tuple[keras.Variable, np.ndarray]] = []

    def copy(variable, value):
        pairs.append((variable, np.asarray(keras.ops.convert_to_numpy(value))))

    copy(ours_patch.kernel, embedding_layer.patch_embedding.kernel)
    if embedding_layer.use_patch_bias:
        copy(ours_patch.bias, embedding_layer.patch_embedding.bias)
    else:
        copy(ours_patch.bias, np.zeros(ours_patch.bias.shape, "float32"))
    tokens = vit.get_layer("class_token_position")
    copy(tokens.class_token, embedding_layer.class_token)
    positions = keras.ops.convert_to_numpy(embedding_layer.position_embedding.embeddings)[None]
    model_side = math.isqrt(tokens.position_embedding.shape[1] - 1)
    checkpoint_side = math.isqrt(positions.shape[1] - 1)
    copy(tokens.position_embedding, interpolate_position_embedding(positions, (model_side, model_side)))
    for ours, block in zip(blocks, encoder.encoder_layers):
        _copy_block(ours, block, copy)
    final_norm = vit.get_layer("layer_norm")
    copy(final_norm.gamma, encoder.layer_norm.gamma)
    copy(final_norm.beta, encoder.layer_norm.beta)

    mismatched = [f"{v.path}: {tuple(v.shape)} vs {value.shape}" for v, value in pairs if tuple(v.shape) != value.shape]
    if mismatched:
        raise PretrainedWeightsError(f"{source!r} does not fit the model: " + "; ".join(mismatched))
    for variable, value in pairs:  # only once every shape is known to fit: no half-loaded model
        variable.assign(value)
    return LoadedWeights(source=str(source), tensors=len(pairs), checkpoint_grid=(checkpoint_side, checkpoint_side),
                         model_grid=(model_side, model_side))
