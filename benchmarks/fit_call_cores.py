#!/usr/bin/env python
"""Why did model.fit calls of the course CNN run at exactly half speed? (issue #20)

Trains the batchnorm CNN (benchmarks/train_throughput.py's model, batch 128, one repeated batch) in
--calls calls of --steps steps, and prints per call: images/s, the process's CPU time over wall
time (cores used), the machine's idle and steal shares from /proc/stat and, with --threads, the
threads that were busy (CPU seconds per wall second; TensorFlow's intra-op workers are unnamed,
so they show as "python"). A call at half speed with one core used and the other idle is TensorFlow
running it single-threaded; with steal high instead, the hypervisor took the CPU.

--loop takes one or more ways of running the same compiled train step, alternated call by call:
"fit" calls model.fit on a tf.data stream with TensorFlow's defaults; "fit-no-autotune" the same on
the stream as the trainer feeds it (keraszoo.data.without_autotuning: tf.data's autotuning off); "direct"
calls the train function Keras compiled (model.make_train_function()) --steps times on one
iterator and stops the clock before the iterator is dropped.

What it showed (docs/records/fit_call_cores_autotune.txt): the half-speed calls were not running
on one core: they were waiting, CPU idle, in the destructor of fit's iterator for tf.data's
autotuning thread to wake up (10 ms after the start, then every doubling: 2.55, 5.11, 10.23 s:
exactly the 1,004, 501 and 250 images/s seen for 20 steps of 128). Without autotuning, none.

examples:
  python benchmarks/fit_call_cores.py
  python benchmarks/fit_call_cores.py --loop fit fit-no-autotune direct --calls 24 --threads
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import keraszoo  # noqa: F401  before TensorFlow, whose CPU kernels it chooses


def cpu_line() -> list[int]:
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]  # user nice system idle iowait irq softirq steal


def thread_times() -> dict[int, tuple[str, int]]:
    """Each thread of this process: its name and CPU ticks so far (user + system)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        out[int(tid)] = (name, int(fields[11]) + int(fields[12]))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--loop", nargs="+", choices=("fit", "fit-no-autotune", "direct"), default=["fit"],
                        help="how each call runs the steps (see above); several are alternated")
    parser.add_argument("--threads", action="store_true", help="also print the busy threads of each call")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.steps < 1:
        parser.error("--calls and --steps must be at least 1")
    sys.path.insert(0, str(Path(__file__).parent))
    import tensorflow as tf

    import train_throughput as bench

    images, labels = bench.synthetic("cnn_bn", 128)
    model, _ = bench.keras_model("cnn_bn", "fp32", images, labels)
    bench.time_keras(model, images, labels, 5)  # trace and warm up
    train_function = model.make_train_function()
    bench.time_keras(model, images, labels, 5, autotune=True)
    repeated = tf.data.Dataset.from_tensors((images, labels)).repeat()

    def direct(steps):
        iterator = iter(repeated)
        start = time.perf_counter()
        for _ in range(steps):
            logs = train_function(iterator)
        float(logs["loss"])  # the last step has finished
        return steps * len(images) / (time.perf_counter() - start)

    loops = {"fit": lambda steps: bench.time_keras(model, images, labels, steps, autotune=True),
             "fit-no-autotune": lambda steps: bench.time_keras(model, images, labels, steps),
             "direct": direct}
    order = list(dict.fromkeys(args.loop))
    tick = os.sysconf("SC_CLK_TCK")
    rates = {name: [] for name in order}
    for call in range(args.calls):
        loop = order[call % len(order)]
        t0, s0, p0, w0 = thread_times(), cpu_line(), time.process_time(), time.perf_counter()
        rate = loops[loop](args.steps)
        t1, s1, p1, w1 = thread_times(), cpu_line(), time.process_time(), time.perf_counter()
        d = [b - a for a, b in zip(s0, s1)]
        total = sum(d) or 1
        cores = (p1 - p0) / (w1 - w0)
        rates[loop].append(rate)
        line = (f"{loop:15s} {rate:6.0f} img/s ({args.steps * len(images) / rate:5.2f} s)  cores used {cores:.2f}  idle {100 * d[3] / total:4.1f}%  "
                f"steal {100 * d[7] / total:4.1f}%  user {100 * d[0] / total:4.1f}%")
        if args.threads:
            busy = sorted(((ticks - t0.get(tid, (name, 0))[1]) / tick / (w1 - w0), name, tid)
                          for tid, (name, ticks) in t1.items())
            line += "  threads " + " ".join(f"{tid}:{name}={share:.2f}" for share, name, tid in busy[::-1] if share >= 0.05)
        print(line, flush=True)
    from validation_waits import WAKE_UPS  # benchmarks/ is on sys.path (above)

    for name in order:
        seconds = [args.steps * len(images) / r for r in rates[name]]
        on_wake_up = sum(any(abs(s - w) < 0.02 for w in WAKE_UPS) for s in seconds)
        print(f"{name}: median {sorted(rates[name])[len(rates[name]) // 2]:.0f} img/s, {on_wake_up} of "
              f"{len(seconds)} calls ended within 20 ms of an autotuning wake-up (10 ms x (2^k - 1))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
