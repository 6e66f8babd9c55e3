#!/usr/bin/env python
"""The oneDNN kernels of a training step, in TensorFlow and in the PyTorch twin, side by side.

Both frameworks run the course CNN's convolutions (and TensorFlow its batch norm, pooling and
matmuls too) through oneDNN, which prints a line for every kernel ("primitive") it executes when
ONEDNN_VERBOSE=1: its kind, propagation, implementation, shapes and time. This script times
--steps steady steps of keraszoo's training model (train_throughput.py's, the recipe's builder and
compile) and of its PyTorch twin, each in a child process started with that variable (oneDNN reads
it once), and sums the lines per step, kernel by kernel. Where both frameworks run the same kernel
as fast, the difference between their steps lies outside oneDNN: in the other ops (PyTorch's own
batch norm, pooling and ReLU; TensorFlow's Eigen ops) and in how the steps are scheduled.

TensorFlow runs two ops at a time by default (two inter-op threads on two cores), so the times of
kernels that overlap each include the other's share of the cores, and their sum can pass the step's
wall time; with --inter-op-threads 1 it runs one op at a time, as PyTorch does, and "wall minus
kernels" is the time spent outside oneDNN. Printing the lines slows both steps a little: compare
the wall times here with each other, not with train_throughput.py's.

examples:
  python benchmarks/onednn_primitives.py cnn_bn --keras-variant bf16 --out docs/records/onednn_primitives_cnn_bn_bf16.txt
  python benchmarks/onednn_primitives.py cnn_bn --keras-variant bf16 --inter-op-threads 1
"""

from __future__ import annotations

import argparse
import collections
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

START, END = "=== steady steps start", "=== steady steps end"


def parse_args(argv=None):
    import train_throughput as bench

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=bench.MODELS)
    parser.add_argument("--keras-variant", choices=("fp32", "bf16"), default="bf16",
                        help="keraszoo's precision; the twin runs under torch.autocast(bfloat16) with bf16 "
                             "(default: %(default)s)")
    parser.add_argument("--steps", type=int, default=10, help="steady steps logged (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--intra-op-threads", type=int, metavar="N", help="TensorFlow's; default: the recipe's")
    parser.add_argument("--inter-op-threads", type=int, metavar="N", help="TensorFlow's; default: the recipe's")
    parser.add_argument("--top", type=int, default=30, help="kernels listed (default: %(default)s)")
    parser.add_argument("--out", help="also write the report here")
    parser.add_argument("--child", choices=("tensorflow", "pytorch"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.top < 1 or min(args.intra_op_threads or 0, args.inter_op_threads or 0) < 0:
        parser.error("--steps and --top must be >= 1, thread counts >= 0")
    return args


def run_child(args) -> None:
    """Warms the step up, then runs --steps steps between two markers on stdout (oneDNN's lines go there too)."""
    import train_throughput as bench

    images, labels = bench.synthetic(args.model, args.batch_size)
    bf16 = args.keras_variant == "bf16"
    if args.child == "tensorflow":
        threads = bench.set_threads(args.model, args)
        model, _ = bench.keras_model(args.model, args.keras_variant, images, labels)
        bench.time_keras(model, images, labels, 10)  # traced, oneDNN's kernels created

        def steps():
            bench.time_keras(model, images, labels, args.steps)
        what = f"TensorFlow threads intra-op {threads['intra_op']}, inter-op {threads['inter_op']} (0: one per core)"
    else:
        import torch

        torch.set_num_threads(os.cpu_count())
        step = bench.torch_setup(args.model, images, labels, bench.recipe_config(args.model), bf16=bf16)
        for _ in range(10):
            step()

        def steps():
            for _ in range(args.steps):
                step()
        what = f"PyTorch threads {torch.get_num_threads()}"
    print(START, flush=True)
    start = time.perf_counter()
    steps()
    print(f"{END} {(time.perf_counter() - start) * 1000 / args.steps:.3f} ms a step; {what}", flush=True)


def kernel_times(text: str, steps: int) -> tuple[dict, float, str]:
    """({(kind, propagation, shape): [ms per step, implementation, calls per step]}, wall ms per step,
    the child's thread line) from a child's stdout: its oneDNN "exec" lines between the markers."""
    try:
        body = text.split(START + "\n", 1)[1]
    except IndexError:
        raise SystemExit("error: the child process printed no steady steps (its messages are above).") from None
    body, _, tail = body.partition(END)
    wall, _, threads = tail.strip().partition(" ms a step; ")
    kernels = {}
    for line in body.splitlines():
        fields = line.split(",")
        if not line.startswith("onednn_verbose") or "exec" not in fields:
            continue
        at = fields.index("exec")  # ...,exec,cpu,<kind>,<implementation>,<propagation>,<memories>...,<shape>,<ms>
        key = (fields[at + 2], fields[at + 4], fields[-2])
        entry = kernels.setdefault(key, [0.0, fields[at + 3], 0.0])
        entry[0] += float(fields[-1]) / steps
        entry[2] += 1 / steps
    return kernels, float(wall), threads


def report(results: dict, args, header: str) -> str:
    """One table, a row per kernel (kind, propagation, shape), a column per framework."""
    names = list(results)
    rows = collections.defaultdict(dict)
    for name, (kernels, _, _) in results.items():
        for key, (ms, impl, calls) in kernels.items():
            rows[key][name] = (ms, impl, calls)
    lines = [header]
    for name, (kernels, wall, threads) in results.items():
        total = sum(ms for ms, _, _ in kernels.values())
        if not kernels:
            lines.append(f"{name}: no oneDNN kernel ran (oneDNN off, e.g. TF_ENABLE_ONEDNN_OPTS=0, or the kernels "
                         f"came from another library, such as PyTorch's float32 matmuls from MKL); {wall:.1f} ms a step")
            continue
        lines.append(f"{name}: {wall:.1f} ms a step (wall, oneDNN's lines printed), {total:.1f} ms of it in oneDNN "
                     f"kernels ({len(kernels)} kinds), wall minus kernels {wall - total:.1f} ms; {threads}")
    lines += ["", "| kernel (kind, propagation, shape) | " + " | ".join(f"{n} ms a step" for n in names)
              + " | implementation |", "|---" * (len(names) + 2) + "|"]
    order = sorted(rows, key=lambda key: -max(ms for ms, _, _ in rows[key].values()))
    for key in order[:args.top]:
        cells = [f"{rows[key][n][0]:.2f}" if n in rows[key] else "—" for n in names]
        impls = sorted({impl for _, impl, _ in rows[key].values()})
        lines.append(f"| {key[0]}, {key[1]}, {key[2]} | " + " | ".join(cells) + f" | {' / '.join(impls)} |")
    if len(order) > args.top:
        rest = [sum(rows[key][n][0] for key in order[args.top:] if n in rows[key]) for n in names]
        lines.append(f"| {len(order) - args.top} more (reorders of weights, small kernels) | "
                     + " | ".join(f"{ms:.2f}" for ms in rest) + " | |")
    return "\n".join(lines)


def main(args) -> int:
    if args.child:
        run_child(args)
        return 0
    try:
        import torch  # noqa: F401  the twin's framework, in the child
    except ImportError:
        print("error: this benchmark needs PyTorch: pip install 'keraszoo[bench]'", file=sys.stderr)
        return 2
    from keraszoo.training.hardware import environment

    results = {}
    for framework in ("tensorflow", "pytorch"):
        argv = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:], "--child", framework]
        done = subprocess.run(argv, env={**os.environ, "ONEDNN_VERBOSE": "1"}, stdout=subprocess.PIPE, text=True)
        if done.returncode:
            print(f"error: the {framework} child failed (status {done.returncode}, its messages are above).",
                  file=sys.stderr)
            return 1
        results[{"tensorflow": "keraszoo (TensorFlow)", "pytorch": "PyTorch twin"}[framework]] = kernel_times(
            done.stdout, args.steps)
    env = environment()
    header = (f"# {args.model} ({args.keras_variant}; the twin {'under autocast bfloat16' if args.keras_variant == 'bf16' else 'in float32'}), "
              f"batch {args.batch_size}, {args.steps} steady steps each, ONEDNN_VERBOSE=1\n"
              f"# CPU: {env['cpu']}, {env['cpu_count']} cores, flags {' '.join(env['cpu_flags'])}; TensorFlow "
              f"{env['tensorflow']}, PyTorch {torch.__version__}\n# command: python {shlex.join(sys.argv)}\n")
    text = report(results, args, header)
    from tf_op_profile import publish  # the op profiles' report writer: the terminal, and --out

    publish(text, args.out)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    import keraszoo  # noqa: F401  before TensorFlow, whose CPU kernels it chooses

    sys.exit(main(parse_args()))
