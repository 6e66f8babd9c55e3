"""Train the course's 2-layer MLP (tanh hidden layer, softmax output) on circles or MNIST.

--implementation manual trains with the hand-written forward/backward passes and SGD
step of keraszoo.models.manual_mlp (no autodiff); keras trains the same network built
from Dense layers with autodiff. --descent picks the course's Q.10 variants: batch
(one step per epoch on the whole training set), minibatch (--batch-size examples a
step) or online (one example a step). The run record gains a decision-boundary plot
on circles. Defaults: 784-100-10 on MNIST, 2-10-2 on circles, SGD lr 0.1, batch 32.

examples:
  python recipes/mlp.py --dataset mnist --implementation manual          # >= 97% test accuracy
  python recipes/mlp.py --dataset circles --descent online --epochs 5
  python recipes/mlp.py --dataset circles --implementation keras --learning-rate 1.0
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from keraszoo.config import TrainConfig, option

NAME = "mlp"
DEFAULT_HIDDEN = {"mnist": 100, "circles": 10}


@dataclass(frozen=True)
class MLPConfig(TrainConfig):
    """The course's 2-layer MLP, trained by hand-written backprop or by Keras."""

    DEFAULTS = {
        "epochs": 20,
        "batch_size": option(32, "examples per step with --descent minibatch"),
        "learning_rate": option(0.1, "SGD learning rate"),
        # The MLP's step is far cheaper than the ~3 ms a call into TensorFlow costs: 43-215 steps a call
        # made it ~3x faster than 1 and 1.2-1.4x faster than 10 (docs/performance.md, issue #20), and it
        # trains the same model (tests/test_mlp.py). The trainer lowers 200 to a divisor of the epoch.
        "steps_per_execution": option(200, "training steps per call into the backend (1: one call a step); "
                                           "lowered to the largest divisor of an epoch's steps"),
    }

    dataset: Literal["mnist", "circles"] = option("mnist", "dataset")
    implementation: Literal["manual", "keras"] = option("manual", "hand-written backprop or Keras autodiff")
    descent: Literal["batch", "minibatch", "online"] = option(
        "minibatch", "batch: whole training set per step; minibatch: --batch-size; online: 1 example")
    hidden_dim: int | None = option(None, "hidden units (default: 100 for mnist, 10 for circles)")
    loss: Literal["cross_entropy", "squared_error"] = option(
        "cross_entropy", "training loss; squared_error (course Q.8-Q.9) needs --implementation manual")
    activation: Literal["tanh", "linear"] = option(
        "tanh", "hidden layer's activation; linear (course Q.3) makes the whole network one linear map")
    circles_train_size: int = option(1000, "circles: training points")
    circles_validation_size: int = option(500, "circles: held-out points drawn with the training ones (validation)")
    circles_test_size: int = option(1000, "circles: test points")
    circles_noise: float = option(0.1, "circles: std of the Gaussian noise on the coordinates")

    def __post_init__(self):
        super().__post_init__()
        if self.optimizer != "sgd" or self.momentum:
            raise ValueError("the course's MLP trains with plain SGD: keep --optimizer sgd and --momentum 0.")
        if self.loss == "squared_error" and self.implementation != "manual":
            raise ValueError("--loss squared_error is implemented by hand only: add --implementation manual.")
        if self.hidden_dim is not None and self.hidden_dim < 1:
            raise ValueError(f"hidden_dim must be >= 1, got {self.hidden_dim}.")
        if min(self.circles_train_size, self.circles_validation_size, self.circles_test_size) < 2 \
                or self.circles_noise < 0:
            raise ValueError("circles sizes must be >= 2 and circles_noise >= 0.")


def _data(config: MLPConfig):
    from keraszoo.data import CIRCLES_METADATA, circles_split
    from keraszoo.training.runner import ClassificationData, load_data

    if config.dataset == "mnist":
        return load_data("mnist", config)
    # Training and validation points are one draw split in two; test points come from another seed:
    # the same generator, disjoint draws.
    train, validation = circles_split(config.circles_train_size, seed=2 * config.seed, noise=config.circles_noise,
                                      held_out=config.circles_validation_size)
    return ClassificationData(
        metadata=CIRCLES_METADATA, train=train, validation=validation,
        test=circles_split(config.circles_test_size, seed=2 * config.seed + 1, noise=config.circles_noise,
                           name="test"),
    )


def build_model(config: MLPConfig, metadata):
    import keras

    from keraszoo.models import ModelPair, build_image_classifier, pixel_scaling
    from keraszoo.models.mlp import build_mlp

    input_dim = 1
    for size in metadata.input_shape:
        input_dim *= size
    hidden_dim = config.hidden_dim or DEFAULT_HIDDEN[config.dataset]
    is_image = len(metadata.input_shape) == 3
    if config.implementation == "manual":
        from keraszoo.models.manual_mlp import ManualMLP  # its train step is TensorFlow's; the Keras MLP needs none

        # Scaling and flattening happen inside the model, so both implementations take
        # the same raw inputs (uint8 digits for MNIST) and export the same signature.
        model = ManualMLP(input_dim=input_dim, hidden_dim=hidden_dim, num_classes=metadata.num_classes,
                          loss=config.loss, input_scale=1 / 255 if is_image else 1.0, activation=config.activation,
                          name="manual_mlp")
        model.build((None, *metadata.input_shape))
        return ModelPair(model, model.as_functional())
    mlp = build_mlp(input_dim=input_dim, hidden_dim=hidden_dim, num_classes=metadata.num_classes,
                    activation=config.activation)
    if not is_image:
        return mlp
    return build_image_classifier(backbone=mlp, image_shape=metadata.input_shape,
                                  preprocessing=[pixel_scaling(), keras.layers.Flatten(name="flatten")], name="mlp")


def effective_batch_size(config: MLPConfig, num_train_examples: int) -> int:
    """The batch size the descent trains with: the whole split (batch), one example (online), or --batch-size."""
    return {"batch": num_train_examples, "online": 1}.get(config.descent, config.batch_size)


def plot_decision_boundary(model, data, output_dir: Path) -> None:
    """decision_boundary.png: the predicted class over the plane, with the train and test points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    def points(split):
        xs, ys = zip(*split.examples.as_numpy_iterator())
        return np.stack(xs), np.array(ys)

    (train_x, train_y), (test_x, test_y) = points(data.train), points(data.test)
    low, high = np.minimum(train_x.min(0), test_x.min(0)) - 0.3, np.maximum(train_x.max(0), test_x.max(0)) + 0.3
    grid_x, grid_y = np.meshgrid(np.linspace(low[0], high[0], 300), np.linspace(low[1], high[1], 300))
    grid = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1).astype("float32")
    logits = np.asarray(model.predict(grid, batch_size=4096, verbose=0))
    ring_probability = np.exp(logits[:, 1] - np.logaddexp(logits[:, 0], logits[:, 1])).reshape(grid_x.shape)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharex=True, sharey=True)
    names = data.metadata.class_names
    for ax, (xs, ys, title) in zip(axes, ((train_x, train_y, "train"), (test_x, test_y, "test"))):
        filled = ax.contourf(grid_x, grid_y, ring_probability, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.45)
        ax.contour(grid_x, grid_y, ring_probability, levels=[0.5], colors="black", linewidths=1.5)
        for label, marker, colour in ((0, "o", "navy"), (1, "^", "darkred")):
            chosen = ys == label
            # White edges keep the points visible over the same-coloured region.
            ax.scatter(xs[chosen, 0], xs[chosen, 1], s=14, marker=marker, c=colour, edgecolors="white",
                       linewidths=0.4, label=names[label])
        ax.set_title(f"{title} points; black line: P({names[1]}) = 0.5")
        ax.set_xlabel("x₁")
        ax.set_ylabel("x₂")
        ax.set_aspect("equal")
        ax.legend(loc="upper right", fontsize=8)
    fig.colorbar(filled, ax=axes, shrink=0.85, label=f"predicted P({names[1]})")
    fig.savefig(output_dir / "decision_boundary.png", dpi=100)
    plt.close(fig)


def main(config: MLPConfig) -> dict:
    from keraszoo.training.runner import run_classification

    data = _data(config)
    name = f"{NAME}_{config.dataset}_{config.implementation}"
    return run_classification(
        config, name=name, build_model=build_model, data=data,
        resolved={"batch_size": effective_batch_size(config, data.train.num_examples)},
        default_output=Path("runs") / name / f"{config.descent}-lr{config.learning_rate:g}-seed{config.seed}",
        extra_metrics={"implementation": config.implementation, "descent": config.descent, "loss": config.loss,
                       "activation": config.activation},
        after_training=plot_decision_boundary if config.dataset == "circles" else None,
    )
