"""Train a Vision Transformer from scratch on MNIST (course part 3) and export it.

Patches of --patch-size pixels become tokens, a learned class token and positional
embeddings are added, --num-layers pre-norm transformer blocks follow, and the class
token's final state is classified. AdamW with a linear warmup and cosine decay,
set every step by a callback. The exported model takes raw uint8 28x28x1 digits.

examples:
  python recipes/mnist_vit.py                                       # the default model
  python recipes/mnist_vit.py --epochs 1 --train-split 'train[:2000]'   # smoke run
  python recipes/mnist_vit.py --patch-size 4 --hidden-dim 32 --num-layers 2
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from keraszoo.config import TrainConfig, option

NAME = "mnist_vit"


@dataclass(frozen=True)
class MnistViTConfig(TrainConfig):
    """A small Vision Transformer on MNIST."""

    DEFAULTS = {
        "epochs": 15,
        "optimizer": "adamw",
        "learning_rate": option(1e-3, "peak learning rate, reached after the warmup"),
        "weight_decay": 0.05,
        # Its ops are small (17 tokens of 64): one core each, side by side, beats every core on each op
        # (docs/performance.md, issue #20).
        "intra_op_threads": option(1, "threads one TensorFlow op may use (0: TensorFlow's default, every core); "
                                      "1, the default here, runs this ViT's small ops side by side, one core "
                                      "each: its epochs took 5 and 12 %% less time in two 2-core comparisons (docs/performance.md). "
                                      "TensorFlow only"),
    }
    patch_size: int = option(7, "patch side in pixels (28 = 4 x 7 gives 16 patches)")
    hidden_dim: int = option(64, "token embedding size")
    num_layers: int = option(6, "transformer blocks")
    num_heads: int = option(4, "attention heads (must divide hidden_dim)")
    mlp_dim: int = option(128, "hidden units of each block's MLP")
    dropout_rate: float = option(0.1, "dropout in the blocks and on the embeddings")
    warmup_epochs: float = option(1.0, "linear warmup length, in epochs")
    pooling: Literal["class_token", "mean"] = option(
        "class_token", "what the head classifies: the class token, or the mean of the patch tokens (ablation)")
    position_embedding: bool = option(True, "learned positional embeddings (--no-position-embedding: ablation)")


def build_model(config: MnistViTConfig, metadata, train_data=None, *, statistics=None):
    from keraszoo.data.statistics import channel_mean_variance
    from keraszoo.models import build_image_classifier
    from keraszoo.models.preprocessing import normalization
    from keraszoo.models.vit import build_vit

    backbone = build_vit(image_shape=metadata.input_shape, patch_size=config.patch_size,
                         hidden_dim=config.hidden_dim, num_layers=config.num_layers, num_heads=config.num_heads,
                         mlp_dim=config.mlp_dim, num_classes=metadata.num_classes,
                         dropout_rate=config.dropout_rate, pooling=config.pooling,
                         position_embedding=config.position_embedding)
    # Normalised with the training split's statistics, inside the model: it serves raw digits.
    return build_image_classifier(backbone=backbone, image_shape=metadata.input_shape, name=NAME,
                                  preprocessing=[normalization(*(statistics or channel_mean_variance(train_data)))])


def learning_rate_schedule(config: MnistViTConfig, num_examples: int):
    """Linear warmup over --warmup-epochs, then cosine decay to 0 at the last of --epochs' steps."""
    from keraszoo.training.callbacks import WarmupCosine

    return WarmupCosine.for_epochs(config.learning_rate, epochs=config.epochs, batch_size=config.batch_size,
                                   num_examples=num_examples, warmup_epochs=config.warmup_epochs)


def main(config: MnistViTConfig) -> dict:
    from keraszoo.data.statistics import channel_mean_variance
    from keraszoo.training.runner import load_data, run_classification

    data = load_data("mnist", config)
    statistics = channel_mean_variance(data.train)  # the training split's, read once
    return run_classification(config, name=NAME, data=data,
                              schedule=learning_rate_schedule(config, data.train.num_examples),
                              build_model=lambda c, metadata: build_model(c, metadata, statistics=statistics))
