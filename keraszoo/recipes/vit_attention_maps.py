"""Render where a trained MNIST ViT's class token looks: one row per test digit (PNG).

Columns: the digit with its label and the model's prediction, the class token's attention
over the patches in every block (heads averaged), and the attention rollout through all
blocks (Abnar & Zuidema, 2020). Patch maps are drawn over the digit at pixel scale; pixels
that no whole patch covers (patch sizes that do not divide 28) stay blank.

examples:
  python recipes/vit_attention_maps.py                                     # the shipped saved_models/mnist_vit
  python recipes/vit_attention_maps.py --model saved_models/mnist_vit/1 --count 8 --output attention.png
  python recipes/vit_attention_maps.py --model runs/mnist_vit/seed0/model.keras --indices 0 1 2 3
"""

from __future__ import annotations

import argparse
from pathlib import Path

import keraszoo  # noqa: F401  before TensorFlow, whose CPU kernels it chooses (keraszoo/__init__.py)


def parse_args(argv=None):
    from keraszoo.config import DATA_DIR_HELP

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="saved_models/mnist_vit",
                        help="exported model folder or version, or a .keras file (default: %(default)s)")
    parser.add_argument("--split", default="test", help="MNIST split to take digits from (default: %(default)s)")
    parser.add_argument("--count", type=int, default=6, help="digits to show (default: %(default)s)")
    parser.add_argument("--indices", type=int, nargs="+", help="these examples of the split instead of the first --count")
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)
    parser.add_argument("--output", default="docs/images/vit_attention_maps.png", help="PNG (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be >= 1")
    return args


def load_model(spec: str):
    import keras

    from keraszoo.export import existing_versions, load_keras_model, resolve_version_dir

    path = Path(spec)
    if path.suffix == ".keras" and path.is_file():
        return keras.models.load_model(path)
    if path.is_dir() and ((path / "saved_model.pb").is_file() or existing_versions(path)):
        return load_keras_model(resolve_version_dir(path))
    raise FileNotFoundError(f"{spec!r} is neither a .keras file nor an exported model folder "
                            "(train one with recipes/mnist_vit.py).")


def render(maps, images, labels, patch_size: int, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from keraszoo.analysis.attention import upsample

    count, layers = maps.per_layer.shape[:2]
    columns = layers + 2
    fig, axes = plt.subplots(count, columns, figsize=(1.6 * columns, 1.7 * count + 0.6), squeeze=False)
    shape = images.shape[1:3]
    predictions = maps.logits.argmax(-1) if maps.logits is not None else [None] * count
    for row in range(count):
        digit = images[row, ..., 0]
        panels = [(None, f"label {labels[row]}, pred {predictions[row]}")]
        panels += [(maps.per_layer[row, layer], f"block {layer + 1}") for layer in range(layers)]
        panels += [(maps.rollout[row], "rollout")]
        for ax, (grid_map, name) in zip(axes[row], panels):
            ax.imshow(digit, cmap="gray")
            if grid_map is not None:
                heat = upsample(grid_map / grid_map.max(), shape, patch_size)
                ax.imshow(np.ma.masked_equal(heat, 0), cmap="inferno", alpha=0.6, vmin=0, vmax=1)
            ax.set_title(name, fontsize=8)
            ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    """The command line: one line and status 2 for a missing model or data, or a bad value."""
    from keraszoo.training.command_line import tool_main

    args = parse_args(argv)
    return tool_main(lambda: draw(args))


def draw(args) -> int:
    import numpy as np

    from keraszoo.analysis.attention import class_token_attention
    from keraszoo.data import read_split
    from keraszoo.models.pretrained import find_vit

    model = load_model(args.model)
    split = read_split("mnist", args.split, data_dir=args.data_dir)
    indices = args.indices or list(range(args.count))
    if max(indices) >= split.num_examples or min(indices) < 0:
        raise ValueError(f"--indices must be in [0, {split.num_examples}) for split {args.split!r}.")
    found = {i: (image, label) for i, (image, label) in enumerate(split.examples.take(max(indices) + 1).as_numpy_iterator())
             if i in set(indices)}
    images = np.stack([found[i][0] for i in indices])
    labels = [int(found[i][1]) for i in indices]
    maps = class_token_attention(model, images)
    patch_size = find_vit(model).get_layer("patch_embedding").patch_size
    render(maps, images, labels, patch_size, Path(args.output),
           f"class-token attention of {args.model} ({args.split}, examples {indices})")
    print(f"wrote {args.output}: {len(indices)} digits, {maps.per_layer.shape[1]} blocks, grid {maps.grid}")
    return 0
