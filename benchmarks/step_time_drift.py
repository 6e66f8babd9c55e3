#!/usr/bin/env python
"""Step by step, does TensorFlow's training step slow down after its first steps, and which setting stops it?

Issue #20 measured the course CNN's step (batchnorm variant, batch 128) at 89-96 ms for the first
steps, drifting to 105-150 ms with spikes of 180-235 ms in the same process, while PyTorch's twin
held ~90-95 ms. This script times every call of the compiled training step, one by one, in a fresh
process per setting (TensorFlow reads its threading options once), settings alternating over
--repeats rounds, and reports per setting: the median of the first steps, the median of the last
ones, their ratio (the drift), the 90th percentile and the share of steps over 1.25x the first median.

Settings (a process each; add your own with --setting NAME=ENV[,ENV...]):
  default        keraszoo's defaults (oneDNN on, TensorFlow's thread pools)
  interop1       TF_NUM_INTEROP_THREADS=1: one inter-op thread, so independent ops do not compete
                 with the intra-op pool for the two cores
  eigen          TF_ENABLE_ONEDNN_OPTS=0: TensorFlow's Eigen kernels
  torch          the PyTorch twin (benchmarks/torch_reference.py), for the reference

examples:
  python benchmarks/step_time_drift.py --steps 300 --repeats 2
  python benchmarks/step_time_drift.py --setting intra1=TF_NUM_INTRAOP_THREADS=1 --only default intra1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

SETTINGS = {"default": {}, "interop1": {"TF_NUM_INTEROP_THREADS": "1"}, "eigen": {"TF_ENABLE_ONEDNN_OPTS": "0"},
            "torch": {}}
FIRST = 20  # the "first steps", after WARMUP untimed ones
WARMUP = 3


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="timed steps per process (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over the settings (default: %(default)s)")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=ENV[,ENV...]",
                        help="an extra setting, e.g. intra1=TF_NUM_INTRAOP_THREADS=1")
    parser.add_argument("--only", nargs="+", help="the settings to run (default: all)")
    parser.add_argument("--json", help="write every step time here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < FIRST * 2:
        parser.error(f"--steps must be at least {FIRST * 2}.")
    settings = dict(SETTINGS)
    for text in args.setting:
        name, _, env = text.partition("=")
        pairs = [item.split("=", 1) for item in env.split(",") if item]
        if not name or not pairs or any(len(pair) != 2 for pair in pairs):
            parser.error(f"--setting {text!r}: expected NAME=VAR=VALUE[,VAR=VALUE...].")
        settings[name] = dict(pairs)
    unknown = set(args.only or ()) - set(settings)
    if unknown:
        parser.error(f"--only: unknown settings {sorted(unknown)}; known: {sorted(settings)}.")
    args.settings = {name: settings[name] for name in (args.only or settings)}
    return args


def child(name: str, steps: int) -> list[float]:
    """Step times (s) of one process: the CNN's compiled train function called once per step."""
    sys.path.insert(0, str(Path(__file__).parent))
    import train_throughput as bench

    images, labels = bench.synthetic("cnn_bn", 128)
    if name == "torch":
        import torch

        torch.set_num_threads(os.cpu_count())
        # The batchnorm variant's optimizer settings, as keras_model compiles them.
        step = bench.torch_setup("cnn_bn", images, labels, SimpleNamespace(learning_rate=0.05, momentum=0.9))
    else:
        import tensorflow as tf

        model, _ = bench.keras_model("cnn_bn", "fp32", images, labels)
        model.make_train_function()
        iterator = iter(tf.data.Dataset.from_tensors((images, labels)).repeat())

        def step():
            model.train_function(iterator)["loss"].numpy()  # .numpy(): wait for the step to end
    times = []
    for i in range(WARMUP + steps):
        start = time.perf_counter()
        step()
        if i >= WARMUP:
            times.append(time.perf_counter() - start)
    return times


def describe(times: list[float]) -> dict:
    first, last = statistics.median(times[:FIRST]), statistics.median(times[-FIRST * 2:])
    ordered = sorted(times)
    return {"first_ms": 1000 * first, "last_ms": 1000 * last, "drift": last / first,
            "p90_ms": 1000 * ordered[int(0.9 * (len(ordered) - 1))],
            "slow_share": sum(t > 1.25 * first for t in times) / len(times)}


def main(args) -> int:
    if args.child:
        print(json.dumps(child(args.child, args.steps)))
        return 0
    import keraszoo  # noqa: F401  (the environment: oneDNN chosen before TensorFlow)
    from keraszoo.training.hardware import environment

    env = environment()
    print(f"CPU: {env['cpu']}, {env['cpu_count']} cores; SIMD flags: {' '.join(env['cpu_flags']) or 'none found'}")
    runs = {name: [] for name in args.settings}
    for repeat in range(args.repeats):
        for name, variables in args.settings.items():  # alternate, so a slow hour hits every setting
            result = subprocess.run([sys.executable, __file__, "--child", name, "--steps", str(args.steps)],
                                    env={**os.environ, **variables}, capture_output=True, text=True)
            if result.returncode != 0:
                print(f"error: setting {name} failed: {result.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                return 1
            times = json.loads(result.stdout.strip().splitlines()[-1])
            runs[name].append(times)
            d = describe(times)
            print(f"round {repeat + 1} {name}: first {d['first_ms']:.0f} ms, last {d['last_ms']:.0f} ms "
                  f"(x{d['drift']:.2f}), p90 {d['p90_ms']:.0f} ms, {100 * d['slow_share']:.0f} % slow", flush=True)
    print("\n| setting | first steps ms | last steps ms | drift | p90 ms | steps > 1.25x first |\n|---|---|---|---|---|---|")
    for name, all_times in runs.items():
        ds = [describe(t) for t in all_times]
        mean = lambda key: statistics.mean(d[key] for d in ds)  # noqa: E731
        print(f"| {name} | {mean('first_ms'):.0f} | {mean('last_ms'):.0f} | x{mean('drift'):.2f} | "
              f"{mean('p90_ms'):.0f} | {100 * mean('slow_share'):.0f} % |")
    if args.json:
        Path(args.json).write_text(json.dumps({"command": "python " + " ".join(sys.argv), "environment": env,
                                               "settings": args.settings, "steps_s": runs}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
