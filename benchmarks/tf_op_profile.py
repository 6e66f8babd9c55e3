#!/usr/bin/env python
"""Where a keraszoo training step's time goes in TensorFlow, op type by op type.

Builds one of train_throughput.py's models (the recipe's own builder and compile), trains it on one
repeated batch, and records --steps steady steps with TensorFlow's profiler. The trace (an XSpace
protobuf) is read here, without TensorBoard: every op the executor ran is an event named
"<op name>:<op type>" on one of its inter-op threads ("tf_Compute" lines). The table gives, per
step, each op type's summed run time over those threads (thread-milliseconds: with two threads
running ops side by side, up to twice the wall time), its share, and how many ops of the type ran;
then the ops under a dropout layer's name scope, all types together. Thread counts are the recipe's
unless --intra-op-threads / --inter-op-threads say otherwise (TensorFlow reads them once, at start).

examples:
  python benchmarks/tf_op_profile.py vit --out docs/records/tf_op_profile_vit.txt
  python benchmarks/tf_op_profile.py vit --intra-op-threads 0
"""

from __future__ import annotations

import argparse
import collections
import shlex
import sys
import tempfile
import time
from pathlib import Path

import keraszoo  # noqa: F401  before TensorFlow, whose CPU kernels it chooses

sys.path.insert(0, str(Path(__file__).parent))
import train_throughput as bench  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=bench.MODELS)
    parser.add_argument("--steps", type=int, default=20, help="profiled steps (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--keras-variant", type=bench.keras_variant, default="fp32",
                        help="fp32 (default), bf16 (mixed_bfloat16), fp32_xla, ... as in train_throughput.py")
    parser.add_argument("--intra-op-threads", type=int, metavar="N", help="default: the recipe's")
    parser.add_argument("--inter-op-threads", type=int, metavar="N", help="default: the recipe's")
    parser.add_argument("--top", type=int, default=25, help="op types listed (default: %(default)s)")
    parser.add_argument("--ops-of-type", metavar="PART",
                        help="also list each op whose type contains PART, by name (e.g. Conv: every layer's "
                             "forward and backward convolutions; \"\": every op)")
    parser.add_argument("--out", help="also write the report here")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.top < 1 or min(args.intra_op_threads or 0, args.inter_op_threads or 0) < 0:
        parser.error("--steps and --top must be >= 1, thread counts >= 0")
    return args


def op_times(space, steps: int) -> tuple[collections.Counter, collections.Counter, float]:
    """(thread-ms per step by op type, ops per step by type, thread-ms per step under a dropout name
    scope) from an XSpace: events "<name>:<type>" on the executor's "tf_Compute" lines."""
    times, counts, dropout = collections.Counter(), collections.Counter(), 0.0
    for name, kind, duration_ps in _op_events(space):
        ms = duration_ps / 1e9 / steps
        times[kind] += ms
        counts[kind] += 1 / steps
        if "dropout" in name.lower():
            dropout += ms
    return times, counts, dropout


def named_op_times(space, steps: int, kind_part: str) -> collections.Counter:
    """Thread-ms per step of each op (by its name, "<name>:<type>") whose type contains ``kind_part``:
    which layer's convolution, forward or backward, takes the time."""
    times = collections.Counter()
    for name, kind, duration_ps in _op_events(space):
        if kind_part.lower() in kind.lower():
            times[f"{name}:{kind}"] += duration_ps / 1e9 / steps
    return times


def _op_events(space):
    """(name, type, duration in ps) of every op event on the executor's "tf_Compute" lines."""
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                full = names.get(event.metadata_id, "")
                name, _, kind = full.rpartition(":")
                if not name or "::" in full:
                    continue  # the executor's own spans (ExecutorState::Process, ParallelFor...), which hold the ops
                yield name, kind, event.duration_ps


def report(times, counts, dropout: float, wall_ms: float, top: int, header: str) -> str:
    total = sum(times.values())
    lines = [header, f"wall time per step: {wall_ms:.1f} ms; op run time per step, summed over the executor's "
             f"threads: {total:.1f} thread-ms, {sum(counts.values()):.0f} ops", "",
             "| op type | thread-ms per step | share | ops per step |", "|---|---|---|---|"]
    for kind, ms in times.most_common(top):
        lines.append(f"| {kind} | {ms:.2f} | {100 * ms / total:.1f} % | {counts[kind]:.0f} |")
    lines += ["", f"ops under a dropout layer (random draws, masks, their gradients): {dropout:.1f} thread-ms "
              f"per step, {100 * dropout / total:.1f} % of the op time" if total else ""]
    return "\n".join(lines)


def main(args) -> int:
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    from keraszoo.training.hardware import environment

    bench.set_threads(args.model, args)
    images, labels = bench.synthetic(args.model, args.batch_size)
    model, _ = bench.keras_model(args.model, args.keras_variant, images, labels)
    data = bench._repeated_batch(images, labels)
    warm_up = 10 * bench.steps_per_call(args.keras_variant)
    model.fit(data, epochs=1, steps_per_epoch=warm_up, verbose=0)  # traced and warm
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        model.fit(data, epochs=1, steps_per_epoch=args.steps, verbose=0)
        wall_ms = (time.perf_counter() - start) * 1000 / args.steps
        tf.profiler.experimental.stop()
        traces = list(Path(logdir).rglob("*.xplane.pb"))
        if not traces:
            print("error: TensorFlow's profiler wrote no trace.", file=sys.stderr)
            return 1
        space = xplane_pb2.XSpace()
        space.ParseFromString(traces[0].read_bytes())
    env = environment()
    threads = env["tf_threads"]
    header = (f"# {args.model} ({args.keras_variant}), batch {args.batch_size}, {args.steps} profiled steps (inside one "
              f"fit call, the profiler on)\n# CPU: {env['cpu']}, {env['cpu_count']} cores, flags {' '.join(env['cpu_flags'])}; "
              f"TensorFlow {env['tensorflow']}, oneDNN {env['onednn']}; threads intra-op {threads['intra_op']}, "
              f"inter-op {threads['inter_op']} (0: TensorFlow's default)\n# command: python {shlex.join(sys.argv)}\n")
    text = report(*op_times(space, args.steps), wall_ms, args.top, header)
    if args.ops_of_type is not None:  # "" lists every op
        named = named_op_times(space, args.steps, args.ops_of_type)
        text += (f"\n\n| op whose type contains {args.ops_of_type!r} (name:type) | thread-ms per step |\n|---|---|\n"
                 + "\n".join(f"| {name} | {ms:.2f} |" for name, ms in named.most_common()))
    publish(text, args.out)
    return 0


def publish(text: str, out: str | None) -> None:
    """The report on the terminal, and in ``out`` when given (a record for docs/records)."""
    print(text)
    if out:
        Path(out).write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main(parse_args()))
