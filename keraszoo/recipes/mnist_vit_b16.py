"""Fine-tune a pretrained ViT-B/16 on MNIST (course part 3, "larger transformers"), or probe it linearly.

The checkpoint was trained on 224x224 RGB ImageNet photos, so the model starts with
layers that turn a raw 28x28 grey digit into that: pixels mapped to the checkpoint's
range (x / 127.5 - 1 for the original ViT weights), resized to --image-size, the grey
channel repeated three times. They are batch-level layers inside the model: they run on
the accelerator in training and stay in the exported SavedModel, which serves raw digits.
A --image-size other than 224 interpolates the positional embeddings to the new grid.

--weights takes a keras-hub preset name (vit_base_patch16_224_imagenet, downloaded once
when there is network), a local preset folder (backbone.save_to_preset(...)) or Hugging
Face ViT checkpoint folder, or `none` (random weights: a from-scratch baseline and the
offline smoke test). --mode linear_probe freezes everything but the classifier.

On 2 CPU cores ViT-B/16 at 224x224 handles a few images per second (docs/vit_b16.md), so
the defaults validate on the last 1,000 training digits and test once on a 1,000-digit slice;
pass --test-split test on a GPU.

examples:
  python recipes/mnist_vit_b16.py --weights none --train-split 'train[:256]' --epochs 1   # offline smoke run
  python recipes/mnist_vit_b16.py --weights /data/vit_base_patch16_224_imagenet --test-split test
  python recipes/mnist_vit_b16.py --mode linear_probe --learning-rate 1e-3
  python recipes/mnist_vit_b16.py --model vit_tiny_patch16_224 --weights none --image-size 112
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from keraszoo.config import TrainConfig, option

NAME = "mnist_vit_b16"


@dataclass(frozen=True)
class MnistViTB16Config(TrainConfig):
    """A standard-size ViT on MNIST, from pretrained weights."""

    DEFAULTS = {
        "train_split": "train[:-1000]",
        "validation_split": option("train[-1000:]", "split evaluated after every epoch (1,000 digits: a ViT-B/16 "
                                   "epoch of validation costs minutes on a CPU)"),
        "test_split": option("test[:1000]", "split evaluated once, at the end (full 'test' takes ~an hour on 2 CPU "
                             "cores: pass --test-split test on a GPU)"),
        "epochs": 3,
        "batch_size": 32,
        "optimizer": "adamw",
        "learning_rate": option(1e-4, "peak learning rate (~1e-4 to fine-tune, ~1e-3 for a linear probe)"),
        "weight_decay": 0.05,
        "evaluate_at_init": option(
            False, "evaluate before training (the zero-initialised head gives exactly ln 10: costs a test pass)"),
    }
    model: Literal["vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224"] = option(
        "vit_base_patch16_224", "ViT size (the layout of the standard checkpoints)")
    weights: str = option("vit_base_patch16_224_imagenet",
                          "keras-hub preset name or handle, local preset/HF checkpoint folder, or 'none'")
    mode: Literal["finetune", "linear_probe"] = option(
        "finetune", "finetune trains every weight; linear_probe only the new classifier")
    image_size: int = option(224, "side the digits are resized to (a multiple of 16)")
    dropout_rate: float = option(0.0, "dropout in the transformer blocks while fine-tuning")
    warmup_epochs: float = option(0.1, "linear warmup length, in epochs, before the cosine decay")

    def __post_init__(self):
        super().__post_init__()
        if self.image_size < 16 or self.image_size % 16:
            raise ValueError(f"image_size={self.image_size}: use a multiple of the patch size 16 (e.g. 112, 224, 384).")
        if self.mode == "linear_probe" and self.weights.lower() == "none":
            raise ValueError("a linear probe of random weights measures nothing: give --weights, or --mode finetune.")


def build_model(config: MnistViTB16Config, metadata, loaded: dict | None = None):
    """uint8 digits -> checkpoint pixels, resized, RGB -> ViT -> logits; pretrained weights loaded."""
    from keraszoo.models import build_image_classifier
    from keraszoo.models.preprocessing import pretrained_vit_input
    from keraszoo.models.pretrained import build_vit_preset, checkpoint_pixel_scaling, load_pretrained

    if metadata.input_shape[-1] != 1:
        raise ValueError(f"this recipe turns grey digits into RGB; got images of shape {metadata.input_shape}.")
    source = None if config.weights.lower() == "none" else config.weights
    vit = build_vit_preset(config.model, num_classes=metadata.num_classes, image_size=config.image_size,
                           dropout_rate=config.dropout_rate, model_name="vit")
    if source is not None:
        result = load_pretrained(vit, source)
        print(f"Loaded {result.tensors} tensors from {source}"
              + (f"; positions interpolated {result.checkpoint_grid} -> {result.model_grid}" if result.interpolated else ""))
        if loaded is not None:
            loaded.update(weights=source, tensors_loaded=result.tensors,
                          checkpoint_grid=list(result.checkpoint_grid), model_grid=list(result.model_grid))
    if config.mode == "linear_probe":
        for layer in vit.layers:
            layer.trainable = layer.name == "classifier"
    scale, offset = checkpoint_pixel_scaling(source)
    return build_image_classifier(backbone=vit, image_shape=metadata.input_shape, name=NAME,
                                  preprocessing=pretrained_vit_input(image_size=config.image_size,
                                                                     scale=scale, offset=offset))


def main(config: MnistViTB16Config) -> dict:
    from keraszoo.training.callbacks import WarmupCosine
    from keraszoo.training.runner import load_data, run_classification

    data = load_data("mnist", config)
    schedule = WarmupCosine.for_epochs(config.learning_rate, epochs=config.epochs, batch_size=config.batch_size,
                                       num_examples=data.train.num_examples, warmup_epochs=config.warmup_epochs)
    # Filled by build_model (which run_classification calls before it writes the record).
    loaded = {"weights": "none (random initialisation)"}
    return run_classification(config, name=NAME, data=data, schedule=schedule, extra_metrics=loaded,
                              build_model=lambda c, metadata: build_model(c, metadata, loaded))
