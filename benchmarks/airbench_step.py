#!/usr/bin/env python
"""airbench94's training step on this CPU: images/s for precision x activation x XLA, to choose kernels.

Builds keraszoo.models.airbench's network, compiles it as the recipe does (Nesterov SGD with coupled
decay, label smoothing), and times --steps steps of batch --batch-size on random uint8 images after
--warmup steps (tracing and oneDNN's kernel set-up), in one process, the variants one after the other,
--rounds times alternated. The exact GELU is the original's; tanh-GELU and ReLU say what it costs.

examples:
  python benchmarks/airbench_step.py
  python benchmarks/airbench_step.py --variants bf16:gelu bf16:relu --steps 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import keraszoo  # noqa: F401  before TensorFlow, whose CPU kernels it chooses


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["fp32:gelu", "bf16:gelu", "bf16:gelu_tanh", "bf16:relu",
                                                          "bf16:gelu:xla"],
                        help="precision:activation[:xla] (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", default="docs/records/airbench_step.json")
    return parser.parse_args(argv)


def build(variant: str, batch_size: int):
    import keras

    from keraszoo.models.airbench import build_airbench94
    from keraszoo.recipes.cifar10_airbench import AirbenchConfig
    from keraszoo.training.optimizers import CoupledDecaySGD, SmoothedSparseCrossentropy

    precision, activation, *xla = variant.split(":")
    keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    model = build_airbench94(activation=activation, whiten_kernel=np.eye(12, 24).reshape(2, 2, 3, 24).astype("float32"))
    keras.config.set_dtype_policy("float32")
    lr, decay = AirbenchConfig().optimizer_constants()
    model.compile(optimizer=CoupledDecaySGD(learning_rate=lr, momentum=0.85, nesterov=True, coupled_decay=decay),
                  loss=SmoothedSparseCrossentropy(0.2), jit_compile=bool(xla))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch_size, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, batch_size).astype("int32")
    return model, images, labels


def images_per_s(model, images, labels, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        model.train_on_batch(images, labels)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(images, labels)
    return steps * len(images) / (time.perf_counter() - start)


def main(args) -> int:
    from keraszoo.training.hardware import environment

    built = {variant: build(variant, args.batch_size) for variant in args.variants}
    rates = {variant: [] for variant in args.variants}
    for _ in range(args.rounds):
        for variant, (model, images, labels) in built.items():
            rates[variant].append(images_per_s(model, images, labels, args.steps, args.warmup))
            print(f"{variant}: {rates[variant][-1]:.0f} images/s", flush=True)
    rows = [{"variant": v, "images_per_s": [round(r) for r in rs], "median": round(float(np.median(rs)))}
            for v, rs in rates.items()]
    Path(args.output).write_text(json.dumps({"environment": environment(), "command": " ".join(sys.argv),
                                             "batch_size": args.batch_size, "rows": rows}, indent=2) + "\n")
    print("\n| variant | images/s (median) | 10 epochs of 45,000 images |\n|---|---|---|")
    for row in rows:
        print(f"| {row['variant']} | {row['median']:,} | {450_000 / row['median']:.0f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
