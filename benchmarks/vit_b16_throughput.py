#!/usr/bin/env python
"""Images/s of recipes/mnist_vit_b16.py's model: training (fine-tune and linear probe) and inference.

The model is the recipe's own: raw 28x28 uint8 digits -> checkpoint pixel range, resized to
--image-size, grey to RGB -> ViT (random weights: speed does not depend on their values) ->
10 logits, AdamW as in the recipe. Each number is the median of --repeats timed runs of --steps
steps after a warm-up; the JSON keeps every run.

examples:
  python benchmarks/vit_b16_throughput.py --json docs/records/vit_b16_throughput.json
  python benchmarks/vit_b16_throughput.py --model vit_tiny_patch16_224 --image-sizes 112 224
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import keraszoo  # noqa: F401  before TensorFlow, whose CPU kernels it chooses (keraszoo/__init__.py)



def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vit_base_patch16_224",
                        choices=["vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224"])
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[224])
    parser.add_argument("--batch-size", type=int, default=32, help="training batch (default: %(default)s)")
    parser.add_argument("--inference-batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    return parser.parse_args(argv)


def _median_rate(run, repeats):
    rates = [run() for _ in range(repeats)]
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "runs": rates}


def main(args) -> int:
    import numpy as np
    import tensorflow as tf

    from keraszoo.data import DatasetMetadata
    from keraszoo.training.hardware import environment
    from keraszoo.training.trainer import compile_classifier

    from keraszoo.recipes import mnist_vit_b16 as recipe

    metadata = DatasetMetadata(name="mnist", version="synthetic", data_dir="", input_shape=(28, 28, 1),
                               num_classes=10, class_names=tuple(map(str, range(10))))
    rng = np.random.default_rng(0)
    rows = []
    for size in args.image_sizes:
        for mode in ("finetune", "linear_probe"):
            config = recipe.MnistViTB16Config(model=args.model, weights="none", mode="finetune", image_size=size)
            model = recipe.build_model(config, metadata)
            if mode == "linear_probe":  # what the recipe freezes (random weights suffice for timing)
                vit = model.get_layer("vit")
                for layer in vit.layers:
                    layer.trainable = layer.name == "classifier"
            compile_classifier(model, config)
            images = rng.integers(0, 256, size=(args.batch_size, 28, 28, 1), dtype=np.uint8)
            labels = rng.integers(0, 10, size=args.batch_size).astype("int32")
            data = tf.data.Dataset.from_tensors((images, labels)).repeat()
            model.fit(data, steps_per_epoch=1, epochs=1, verbose=0)  # trace

            def train():
                start = time.perf_counter()
                model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
                return args.steps * args.batch_size / (time.perf_counter() - start)

            rows.append({"image_size": size, "what": f"training ({mode}), batch {args.batch_size}",
                         **_median_rate(train, args.repeats)})
            print(rows[-1]["what"], size, f"{rows[-1]['median']:.1f} images/s", file=sys.stderr)
        digits = rng.integers(0, 256, size=(args.inference_batch_size, 28, 28, 1), dtype=np.uint8)
        predict = tf.function(lambda x: model(x, training=False))
        predict(digits)

        def infer():
            start = time.perf_counter()
            for _ in range(args.steps):
                predict(digits).numpy()
            return args.steps * args.inference_batch_size / (time.perf_counter() - start)

        rows.append({"image_size": size, "what": f"inference, batch {args.inference_batch_size}",
                     **_median_rate(infer, args.repeats)})
        print(rows[-1]["what"], size, f"{rows[-1]['median']:.1f} images/s", file=sys.stderr)

    print(f"| {args.model} | image size | images/s (median, min–max) |\n|---|---|---|")
    for r in rows:
        print(f"| {r['what']} | {r['image_size']} | {r['median']:.1f} ({r['min']:.1f}–{r['max']:.1f}) |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"command": "python " + " ".join(sys.argv), "settings": vars(args),
                                               "environment": environment(), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
