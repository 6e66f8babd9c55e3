"""Train the course's CIFAR-10 CNN, write its run record and export a SavedModel.

The defaults are the course's baseline: SGD with learning rate 0.1 and batch size
128 for 30 epochs, pixels scaled to [0, 1]. A run killed at any point resumes from
its last finished epoch when the same command is run again. Any Keras backend:
KERAS_BACKEND=jax (or torch) trains the same model; with --data-pack it needs no
TensorFlow at all, and `keraszoo export RUN_DIR` exports the run later.

--variant climbs the course's ladder, each step adding to the previous ones:
  baseline    pixels scaled to [0, 1]
  normalized  per-channel mean/std of the training split, as a Normalization layer
  augmented   random 28x28 crop + horizontal flip in training, centre crop at test time
  lr_decay    lr = lr0 * gamma^epoch (gamma 0.95)
  dropout     dropout 0.5 before each fully connected layer
  batchnorm   batch normalisation after each convolution; trains with SGD 0.05 + momentum 0.9,
              gamma 0.9 and dropout 0.25 (the others: plain SGD 0.1, as in the course)
and each step can be switched on or off by itself (--normalize/--no-normalize,
--augment/--no-augment, --lr-decay GAMMA (1 = off), --dropout-rate R, --batch-norm/--no-batch-norm).

examples:
  python recipes/cifar10_cnn.py --epochs 1 --train-split 'train[:5000]'   # smoke run
  python recipes/cifar10_cnn.py --epochs 10 --output runs/cifar10_baseline
  python recipes/cifar10_cnn.py --variant batchnorm --epochs 30
  python recipes/cifar10_cnn.py --variant dropout --dropout-rate 0     # the ladder without dropout
  keraszoo pack --dataset cifar10 --out pack/cifar10                    # then, on a JAX-only machine:
  KERAS_BACKEND=jax python recipes/cifar10_cnn.py --variant batchnorm --data-pack pack/cifar10
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from keraszoo.config import TrainConfig, option

NAME = "cifar10_cnn"
# The ladder: each step keeps the previous ones and switches one more thing on. Every variant trains
# with the course's plain SGD at 0.1, except batchnorm, whose settings must reach the course's ~80 %
# (docs/cifar10_ladder.md): plain SGD took it to 75.8 % in 20 epochs (and lost 12.6 points in one epoch
# of a pilot); momentum 0.9 at 0.05 with gamma 0.9 (the rate ends at 5 % of lr0 after 30 epochs) to
# 79.5 % in 30, still regularised so much that training accuracy stayed below test accuracy; with
# dropout 0.25 instead of 0.5 as well, past 80 % from epoch 18. Those comparisons were made on test
# data; re-examined on validation data (docs/cifar10_sweeps.md), no γ or dropout rate beat these by more
# than the seed spread, so they stand (issue #37 searches the rate and momentum on validation).
_BASELINE = {"normalize": False, "augment": False, "lr_decay": 1.0, "dropout_rate": 0.0, "batch_norm": False,
             "learning_rate": 0.1, "momentum": 0.0}
_STEPS = {"baseline": {}, "normalized": {"normalize": True}, "augmented": {"augment": True},
          "lr_decay": {"lr_decay": 0.95}, "dropout": {"dropout_rate": 0.5},
          "batchnorm": {"batch_norm": True, "learning_rate": 0.05, "momentum": 0.9, "lr_decay": 0.9, "dropout_rate": 0.25}}
VARIANTS = tuple(_STEPS)


def _ladder(steps: dict) -> dict:
    """Each variant's values: the previous variant's, with its own step on top."""
    presets, previous = {}, _BASELINE
    for variant, step in steps.items():
        previous = presets[variant] = {**previous, **step}
    return presets


PRESETS = _ladder(_STEPS)
SWITCHES = ("normalize", "augment", "lr_decay", "dropout_rate", "batch_norm")


@dataclass(frozen=True)
class Cifar10CNNConfig(TrainConfig):
    """The course's CIFAR-10 CNN (conv 5x5 32-64-64, fc 1000, fc 10) and its improvement ladder."""

    # bfloat16 on a CPU with its units (AVX-512 BF16): the batchnorm CNN's training step 1.56x float32's,
    # its epochs 1.3x, the same accuracy over two 30-epoch seeds; the baseline's epochs 1.6x
    # (docs/performance.md). Small-op models lose to the casts: the ViT keeps float32.
    AUTO_BFLOAT16 = True
    DEFAULTS = {
        "learning_rate": option(None, "initial learning rate (default: 0.1; batchnorm: 0.05)"),
        "momentum": option(None, "SGD momentum (default: 0; batchnorm: 0.9)"),
    }
    dataset: str = option("cifar10", "TFDS dataset of small RGB images")
    variant: Literal[VARIANTS] = option("baseline", "step of the course's ladder; includes every earlier step")
    normalize: bool | None = option(None, "per-channel normalisation from the training split (default: from --variant)")
    augment: bool | None = option(None, "random crop + flip in training, centre crop at test (default: from --variant)")
    lr_decay: float | None = option(
        None, "gamma of lr = lr0 * gamma^epoch; 1 = off (default: from --variant: 0.95, batchnorm 0.9)")
    dropout_rate: float | None = option(
        None, "dropout before each fully connected layer (default: from --variant: 0.5, batchnorm 0.25)")
    batch_norm: bool | None = option(None, "batch normalisation after each convolution (default: from --variant)")
    crop_size: int = option(28, "side of the training crops and of the test-time centre crop")
    # Beyond the course (issue #37's search for 85 % with the course's network, docs/cifar10_ladder.md):
    translate: int = option(
        0, "mirror-pad the training images by this many pixels before the random crop (with --crop-size 32: a "
           "random translation that keeps the whole image at test time); 0 = the course's crops")
    schedule: Literal["exponential", "cosine"] = option(
        "exponential", "learning-rate schedule: exponential (lr0 * gamma^epoch, --lr-decay) or cosine "
                       "(linear warmup over --warmup-epochs, then cosine to 0 at the last step)")
    warmup_epochs: float = option(1.0, "cosine schedule only: epochs of linear warmup")
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy (0 = the course's loss)")

    PRESETS = PRESETS  # --variant's values for the options left unset

    def __post_init__(self):
        if self.schedule == "cosine":  # before the preset fills --lr-decay: only an explicit one is refused
            if self.lr_decay not in (None, 1.0):
                raise ValueError(f"--lr-decay {self.lr_decay} with --schedule cosine: the cosine schedule replaces "
                                 "the exponential decay; drop --lr-decay (or pass --lr-decay 1).")
            object.__setattr__(self, "lr_decay", 1.0)  # recorded as it runs: no exponential decay
        super().__post_init__()
        if self.lr_decay is not None and not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay={self.lr_decay}: gamma must be in (0, 1]; 1 switches decay off.")
        if self.dropout_rate is not None and not 0 <= self.dropout_rate < 1:
            raise ValueError(f"dropout_rate={self.dropout_rate} must be in [0, 1).")
        if not 8 <= self.crop_size <= 32:
            raise ValueError(f"crop_size={self.crop_size} must be between 8 and 32.")
        if not 0 <= self.translate <= 8:
            raise ValueError(f"translate={self.translate} must be between 0 and 8 pixels.")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing={self.label_smoothing} must be in [0, 1).")
        if self.schedule == "cosine" and not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"warmup_epochs={self.warmup_epochs} must be >= 0 and fewer than --epochs {self.epochs}.")

    @property
    def name(self) -> str:
        """The run's and the exported model's name: cifar10_cnn, or cifar10_cnn_<variant>."""
        return NAME if self.variant == "baseline" else f"{NAME}_{self.variant}"

    def ladder_switches(self) -> dict:
        """The ladder's switches that run: --variant's, and the explicit flags where given."""
        return {switch: getattr(self, switch) for switch in SWITCHES}


def build_models(config: Cifar10CNNConfig, metadata, train_data=None, *, statistics=None):
    """The training and inference ``ModelPair``: the same layers and weights, no augmentation in the second.

    ``metadata`` needs ``input_shape`` and ``num_classes``. Normalisation takes its statistics from
    ``train_data`` (training split only, course Q.20), or ready-made as ``statistics`` = (mean, variance).
    """
    import keras

    from keraszoo.models import build_classifier_pair, build_course_cnn, pixel_scaling
    from keraszoo.models.preprocessing import augmentation, normalization

    switches = config.ladder_switches()
    if switches["normalize"]:
        if statistics is None:
            if train_data is None:
                raise ValueError("normalisation needs the training split, or its statistics, to normalise with.")
            from keraszoo.data.statistics import channel_mean_variance

            statistics = channel_mean_variance(train_data)
        scale = normalization(*statistics)
    else:
        scale = pixel_scaling()
    image_shape = metadata.input_shape
    crop = config.crop_size if switches["augment"] else image_shape[0]
    backbone = build_course_cnn(image_shape=(crop, crop, image_shape[2]), num_classes=metadata.num_classes,
                                dropout_rate=switches["dropout_rate"], batch_norm=switches["batch_norm"])
    return build_classifier_pair(
        backbone=backbone, image_shape=image_shape, name=config.name, preprocessing=[scale],
        augmentation=augmentation(crop_size=crop, seed=config.seed, padding=config.translate)
        if switches["augment"] else (),
        inference_augmentation=[keras.layers.CenterCrop(crop, crop, name="center_crop")])


def main(config: Cifar10CNNConfig) -> dict:
    from keraszoo.data.statistics import channel_mean_variance
    from keraszoo.training.runner import load_data, run_classification

    data = load_data(config.dataset, config)
    switches = config.ladder_switches()
    # Normalisation's statistics come from the training split only (course Q.20), read once, here.
    statistics = channel_mean_variance(data.train) if switches["normalize"] else None
    built = {}

    def build(config, metadata):
        built["pair"] = build_models(config, metadata, statistics=statistics)
        return built["pair"]

    def after_training(model, data, output_dir):
        # Flip TTA measured on validation (where it is chosen) and on test (reported): the exported model
        # stays one view unless exported with `keraszoo export RUN --tta flip`.
        return {"val_flip_accuracy": flip_accuracy(built["pair"].inference, data.validation),
                "test_flip_accuracy": flip_accuracy(built["pair"].inference, data.test)}

    return run_classification(
        config, name=config.name, data=data, schedule=_schedule(config, data, switches), build_model=build,
        compile_with=_objective if config.label_smoothing else None, after_training=after_training,
        extra_metrics={"variant": config.variant, "steps": switches},
    )


def _schedule(config: Cifar10CNNConfig, data, switches):
    from keraszoo.training.callbacks import ExponentialDecay, WarmupCosine

    if config.schedule == "cosine":
        return WarmupCosine.for_epochs(config.learning_rate, epochs=config.epochs, batch_size=config.batch_size,
                                       num_examples=data.train.num_examples, warmup_epochs=config.warmup_epochs)
    return ExponentialDecay(config.learning_rate, switches["lr_decay"]) if switches["lr_decay"] < 1 else None


def _objective(config: Cifar10CNNConfig) -> dict:
    from keraszoo.training.optimizers import SmoothedSparseCrossentropy

    return {"loss": SmoothedSparseCrossentropy(config.label_smoothing)}


def flip_accuracy(model, split) -> float | None:
    """Accuracy over ``split`` of the mean softmax of each image and of its mirror image (None without the
    split): the two-view model `keraszoo export --tta flip` exports, evaluated as Keras evaluates (tf.data
    and in-memory splits alike)."""
    import keras

    from keraszoo.models.tta import with_flip_tta

    if split is None:
        return None
    both = with_flip_tta(model)
    both.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return float(both.evaluate(split.batches(batch_size=256), verbose=0, return_dict=True)["accuracy"])
