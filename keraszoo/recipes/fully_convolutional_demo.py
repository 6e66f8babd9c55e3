"""Run a trained CIFAR-10 CNN over an image larger than 32x32 (course Q.4-Q.6).

The fully connected layers are rewritten as convolutions (fc4 -> 4x4 conv, fc5 -> 1x1
conv), so the network slides its 32x32 classifier over a canvas of several CIFAR-10
test images with a stride of 8 pixels and returns a map of class scores. The figure
shows the canvas with the true labels, and the predicted class at every map position.

examples:
  python recipes/fully_convolutional_demo.py                        # newest saved_models/cifar10_cnn
  python recipes/fully_convolutional_demo.py --model saved_models/cifar10_cnn/1 --rows 3 --cols 3
"""

from __future__ import annotations

import argparse
from pathlib import Path

import keraszoo  # noqa: F401  before TensorFlow, whose CPU kernels it chooses (keraszoo/__init__.py)


def parse_args(argv=None):
    from keraszoo.config import DATA_DIR_HELP

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--model", default="saved_models/cifar10_cnn",
                        help="exported model folder or version (default: %(default)s)")
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)
    parser.add_argument("--rows", type=int, default=2, help="canvas rows of test images (default: %(default)s)")
    parser.add_argument("--cols", type=int, default=3, help="canvas columns (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="which test images (default: %(default)s)")
    parser.add_argument("--output", default="docs/images/fully_convolutional_demo.png",
                        help="PNG to write (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.cols < 1:
        parser.error("--rows and --cols must be >= 1")
    return args


def main(argv=None) -> int:
    """The command line: one line and status 2 for a missing model or data, or a bad value."""
    from keraszoo.training.command_line import tool_main

    args = parse_args(argv)
    return tool_main(lambda: draw(args))


def draw(args) -> dict:
    import numpy as np

    from keraszoo.analysis import receptive_fields, to_fully_convolutional
    from keraszoo.data import dataset_metadata, load_dataset
    from keraszoo.export import load_keras_model, resolve_version_dir

    version_dir = resolve_version_dir(args.model)
    model = load_keras_model(version_dir)
    size = model.input_shape[1]
    converted = to_fully_convolutional(model)

    names = dataset_metadata("cifar10", data_dir=args.data_dir).class_names
    count = args.rows * args.cols
    images, labels = next(iter(load_dataset("cifar10", "test", batch_size=count, data_dir=args.data_dir,
                                            shuffle=True, seed=args.seed)))
    images, labels = images.numpy(), labels.numpy()
    # (rows*size, cols*size, 3): tile k at row k // cols, column k % cols.
    canvas = images.reshape(args.rows, args.cols, size, size, 3).transpose(0, 2, 1, 3, 4)
    canvas = canvas.reshape(args.rows * size, args.cols * size, 3)

    logits = converted(canvas[None]).numpy()[0]  # (map_rows, map_cols, classes)
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    # Where each map position looks: centre and size of the classifier's field.
    field = receptive_fields(converted)[-1].field
    on_tiles = []
    for k in range(count):  # the position whose window is exactly tile k
        i = int(((k // args.cols) * size + (size - 1) / 2 - field.height.start) / field.height.jump)
        j = int(((k % args.cols) * size + (size - 1) / 2 - field.width.start) / field.width.jump)
        on_tiles.append(int(probabilities[i, j].argmax()) == int(labels[k]))
    original = np.asarray(model(images)).argmax(-1)  # each tile alone, zero-padded at its own border
    _plot(args.output, canvas, labels, probabilities, field, names, size, args.cols)
    summary = {
        "canvas": canvas.shape[:2], "score_map": logits.shape, "field_size": field.size,
        "stride": field.jump, "tiles_classified_right": sum(on_tiles), "tiles": count,
        "tiles_right_by_original_model": int((original == labels).sum()),
    }
    print(f"{version_dir}: canvas {canvas.shape[0]}x{canvas.shape[1]} -> score map "
          f"{logits.shape[0]}x{logits.shape[1]}x{logits.shape[2]} (stride {field.jump} px, receptive field {field.size} px: the 32-px window plus the padding it was trained with); "
          f"{sum(on_tiles)}/{count} tiles right at their aligned position "
          f"(the original model on the tiles alone: {summary['tiles_right_by_original_model']}/{count}). "
          f"Figure: {args.output}")
    return summary


def _plot(path, canvas, labels, probabilities, field, names, size, cols):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows_map, cols_map, num_classes = probabilities.shape
    colors = plt.get_cmap("tab10")(np.arange(num_classes))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    axes[0].imshow(canvas, interpolation="nearest")
    for k, label in enumerate(labels):
        axes[0].text((k % cols) * size + 1, (k // cols) * size + 3, names[label], color="white",
                     fontsize=8, va="top", bbox={"facecolor": "black", "alpha": 0.6, "pad": 1})
    axes[0].set_title("canvas of CIFAR-10 test images (true labels)")
    axes[1].imshow(canvas, interpolation="nearest", alpha=0.45)
    for i in range(rows_map):
        for j in range(cols_map):
            y, x = field.height.start + i * field.height.jump, field.width.start + j * field.width.jump
            best = int(probabilities[i, j].argmax())
            axes[1].add_patch(plt.Rectangle((x - field.width.jump / 2, y - field.height.jump / 2),
                                            field.width.jump, field.height.jump, color=colors[best],
                                            alpha=0.35 + 0.5 * float(probabilities[i, j, best])))
            aligned = (y - (size - 1) / 2) % size == 0 and (x - (size - 1) / 2) % size == 0
            if aligned:  # this window is exactly one tile: the original 32x32 classifier's view
                axes[1].add_patch(plt.Rectangle((x - field.width.jump / 2, y - field.height.jump / 2),
                                                field.width.jump, field.height.jump, fill=False,
                                                edgecolor="black", linewidth=2))
            axes[1].text(x, y, names[best][:4], ha="center", va="center", fontsize=6.5,
                         fontweight="bold" if aligned else "normal")
    axes[1].set_title(f"predicted class per position ({rows_map}x{cols_map} map, stride {field.jump} px)\n"
                      "darker = surer; framed = the window lies exactly on one tile", fontsize=9)
    for ax in axes:
        ax.set_xticks(np.arange(0, canvas.shape[1] + 1, size) - 0.5)
        ax.set_yticks(np.arange(0, canvas.shape[0] + 1, size) - 0.5)
        ax.set_xticklabels([])
        ax.set_yticklabels([])
        ax.grid(color="white", linewidth=1.5)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
