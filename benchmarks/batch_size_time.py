#!/usr/bin/env python
"""Seconds per training epoch of the course CNN (baseline) against the batch size (course Q.16).

The study (recipes/cifar10_lr_batch.py) runs two trainings at once, so its per-epoch times share
the CPU; this benchmark times the batch sizes alone, on one machine, in one process. Each
repetition trains --steps-images images' worth of steps per batch size on fixed in-memory
CIFAR-10 batches (input pipeline excluded: the model step alone), batch sizes alternating within
a repetition; the table gives the median over repetitions and the min-max, as images per second
and as seconds for an epoch of --epoch-images images.

examples:
  python benchmarks/batch_size_time.py --json docs/records/cifar10_lr_batch_timing.json
  python benchmarks/batch_size_time.py --batch-sizes 32 512 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import keraszoo  # noqa: F401  before TensorFlow, whose CPU kernels it chooses


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--steps-images", type=int, default=4096, help="images trained per timed batch size and "
                        "repetition (default: %(default)s)")
    parser.add_argument("--epoch-images", type=int, default=10000, help="epoch size for the s/epoch column "
                        "(default: %(default)s, the study's train[:10000])")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", help="TFDS data_dir (default: see keraszoo data)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if min(args.batch_sizes) < 1 or args.steps_images < max(args.batch_sizes) or args.repeats < 1:
        parser.error("batch sizes must be >= 1, --steps-images at least the largest batch, --repeats >= 1.")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import keras
    import numpy as np

    from keraszoo.config import TrainConfig
    from keraszoo.data import dataset_metadata, read_split
    from keraszoo.recipes.cifar10_cnn import Cifar10CNNConfig, build_models
    from keraszoo.training.hardware import environment
    from keraszoo.training.trainer import compile_classifier

    metadata = dataset_metadata("cifar10", data_dir=args.data_dir)
    split = read_split("cifar10", f"train[:{max(args.batch_sizes)}]", data_dir=args.data_dir)
    images, labels = (np.stack(a) for a in zip(*split.examples.as_numpy_iterator()))
    models = {}
    for batch in args.batch_sizes:  # one model per batch size, each compiled and warmed up before timing
        keras.utils.set_random_seed(0)
        config = Cifar10CNNConfig(batch_size=batch, learning_rate=0.01)
        model = build_models(config, metadata).training
        compile_classifier(model, TrainConfig(learning_rate=0.01, batch_size=batch))
        model.train_on_batch(images[:batch], labels[:batch])
        models[batch] = model
    rates = {batch: [] for batch in args.batch_sizes}
    for repeat in range(args.repeats):
        for batch in args.batch_sizes:
            steps = args.steps_images // batch
            x, y = images[:batch], labels[:batch]
            start = time.perf_counter()
            for _ in range(steps):
                models[batch].train_on_batch(x, y)
            rates[batch].append(steps * batch / (time.perf_counter() - start))
        print(f"repetition {repeat + 1}/{args.repeats}: " +
              ", ".join(f"batch {b}: {rates[b][-1]:.0f} img/s" for b in args.batch_sizes), flush=True)
    env = environment()
    print(f"\n{env['cpu']} ({', '.join(env['cpu_flags']) or 'flags unknown'}), {env['cpu_count']} cores, "
          f"Keras {env['keras']} on {env['backend']}")
    print("| batch size | images/s (median, min–max) | s per epoch of "
          f"{args.epoch_images:,} images | steps per epoch |\n|---|---|---|---|")
    rows = []
    for batch in args.batch_sizes:
        median = statistics.median(rates[batch])
        rows.append({"batch_size": batch, "images_per_s": rates[batch], "median_images_per_s": median,
                     "seconds_per_epoch": args.epoch_images / median})
        print(f"| {batch} | {median:.0f} ({min(rates[batch]):.0f}–{max(rates[batch]):.0f}) | "
              f"{args.epoch_images / median:.1f} | {-(-args.epoch_images // batch)} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": "python benchmarks/batch_size_time.py", "args": vars(args), "rows": rows,
                       "environment": env}, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
