#!/usr/bin/env python
"""How a ViT's training step time grows with its number of tokens (course part 3).

The MNIST ViT's default (hidden 64, 6 blocks, 4 heads, MLP 128) is timed with patch sizes
that give 5 to 197 tokens, on random 28x28 digits (the step time does not depend on the
values). Per token, the projections and the MLP cost O(d^2); the attention scores and their
use cost O(n d) more, so the step is linear in n while n << d and becomes quadratic after.
Prints a Markdown table with the measured time per step (median of --repeats timed runs of
--steps steps, after a warm-up) next to the model's multiply-adds split into both parts, and
writes the rows to --json.

examples:
  python benchmarks/vit_tokens.py
  python benchmarks/vit_tokens.py --patch-sizes 4 7 14 --steps 20 --json docs/records/vit_tokens.json
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
    parser.add_argument("--patch-sizes", type=int, nargs="+", default=[14, 7, 4, 2])
    parser.add_argument("--hidden-dim", type=int, default=64)
    parser.add_argument("--num-layers", type=int, default=6)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--mlp-dim", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed run (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per size (default: %(default)s)")
    parser.add_argument("--json", help="also write the rows here")
    return parser.parse_args(argv)


def multiply_adds(tokens: int, hidden: int, mlp: int, layers: int) -> tuple[int, int]:
    """Per image and forward pass: (token-wise linear layers, attention scores + weighted sum)."""
    linear = layers * tokens * (4 * hidden * hidden + 2 * hidden * mlp)
    attention = layers * 2 * tokens * tokens * hidden
    return linear, attention


def main(args) -> int:
    import keras
    import numpy as np

    from keraszoo.models.vit import build_vit, num_tokens
    from keraszoo.training.hardware import environment

    rng = np.random.default_rng(0)
    images = rng.uniform(size=(args.batch_size, 28, 28, 1)).astype("float32")
    labels = rng.integers(0, 10, size=(args.batch_size,)).astype("int32")
    rows = []
    for patch in args.patch_sizes:
        keras.utils.set_random_seed(0)
        model = build_vit(image_shape=(28, 28, 1), patch_size=patch, hidden_dim=args.hidden_dim,
                          num_layers=args.num_layers, num_heads=args.num_heads, mlp_dim=args.mlp_dim, num_classes=10)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3), jit_compile=False,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        for _ in range(3):  # trace and warm up
            model.train_on_batch(images, labels)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for _ in range(args.steps):
                model.train_on_batch(images, labels)
            times.append((time.perf_counter() - start) / args.steps)
        tokens = num_tokens((28, 28, 1), patch)
        linear, attention = multiply_adds(tokens, args.hidden_dim, args.mlp_dim, args.num_layers)
        rows.append({"patch_size": patch, "tokens": tokens, "ms_per_step": 1000 * statistics.median(times),
                     "ms_per_step_min": 1000 * min(times), "ms_per_step_max": 1000 * max(times),
                     "linear_mmac": linear / 1e6, "attention_mmac": attention / 1e6})
        print(f"patch {patch}: {tokens} tokens, {rows[-1]['ms_per_step']:.1f} ms/step", file=sys.stderr)
    base = rows[0]
    print(f"| patch | tokens | ms/step (median, min–max) | vs {base['tokens']} tokens | token-wise MMAC/image "
          "| attention MMAC/image | attention share |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        share = r["attention_mmac"] / (r["attention_mmac"] + r["linear_mmac"])
        print(f"| {r['patch_size']} | {r['tokens']} | {r['ms_per_step']:.1f} ({r['ms_per_step_min']:.1f}–"
              f"{r['ms_per_step_max']:.1f}) | {r['ms_per_step'] / base['ms_per_step']:.1f}× | {r['linear_mmac']:.2f} | "
              f"{r['attention_mmac']:.2f} | {100 * share:.0f} % |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"command": " ".join(sys.argv), "settings": vars(args),
                                               "environment": environment(), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
