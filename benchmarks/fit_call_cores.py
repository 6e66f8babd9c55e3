#!/usr/bin/env python
"""How many cores does each model.fit call of the course CNN really use? (issue #20)

Trains the batchnorm CNN (benchmarks/train_throughput.py's model, batch 128, one repeated batch) in
--calls fit calls of --steps steps, and prints per call: images/s, the process's CPU time over wall
time (cores used) and the machine's idle and steal shares from /proc/stat. A call at half speed with
one core used and the other idle is TensorFlow running it single-threaded; with steal high instead,
the hypervisor took the CPU.

examples:
  python benchmarks/fit_call_cores.py
  TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD=true python benchmarks/fit_call_cores.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import keraszoo  # noqa: F401  before TensorFlow, whose CPU kernels it chooses


def cpu_line() -> list[int]:
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]  # user nice system idle iowait irq softirq steal


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    import train_throughput as bench

    images, labels = bench.synthetic("cnn_bn", 128)
    model, _ = bench.keras_model("cnn_bn", "fp32", images, labels)
    bench.time_keras(model, images, labels, 5)  # trace and warm up
    for _ in range(args.calls):
        s0, p0, w0 = cpu_line(), time.process_time(), time.perf_counter()
        rate = bench.time_keras(model, images, labels, args.steps)
        s1, p1, w1 = cpu_line(), time.process_time(), time.perf_counter()
        d = [b - a for a, b in zip(s0, s1)]
        total = sum(d) or 1
        print(f"{rate:6.0f} img/s  cores used {(p1 - p0) / (w1 - w0):.2f}  idle {100 * d[3] / total:4.1f}%  "
              f"steal {100 * d[7] / total:4.1f}%  user {100 * d[0] / total:4.1f}%", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
