#!/usr/bin/env python
"""How a ViT's training step time grows with its number of tokens (course part 3).

The MNIST ViT's default (hidden 64, 6 blocks, 4 heads, MLP 128) is timed with patch sizes
that give 5 to 197 tokens, on random 28x28 digits (the step time does not depend on the
values). Per token, the projections and the MLP cost O(d^2); the attention scores and their
use cost O(n d) more, so the step is linear in n while n << d and becomes quadratic after.
Prints a Markdown table with the measured time per step (median of --repeats timed runs of
--steps steps, after a warm-up) next to the model's multiply-adds split into both parts, and
writes the rows to --json.

--memory adds the peak memory of a training step: each size runs in its own process, which after its
warm-up resets the kernel's peak-RSS mark (/proc/self/clear_refs) and reports VmHWM - VmRSS after the
timed steps: the step's transient memory (activations kept for the backward pass, attention's n x n
scores among them), which the course's O(N^2) claim is about. The children run without oneDNN and
with glibc's mmap threshold fixed at 64 KiB, so that freed tensors leave the resident set and the mark sees
each step's peak (their step times are not the oneDNN ones: measure time without --memory). --image-size and the width options
give DINOv2 ViT-S/14's shapes (112 px: 65 tokens, 224 px: 257).

examples:
  python benchmarks/vit_tokens.py
  python benchmarks/vit_tokens.py --patch-sizes 4 7 14 --steps 20 --json docs/records/vit_tokens.json
  python benchmarks/vit_tokens.py --memory --patch-sizes 14 7 4 2 --json docs/records/vit_tokens_memory.json
  python benchmarks/vit_tokens.py --memory --image-size 112 224 --patch-sizes 14 --hidden-dim 384 \
      --num-layers 12 --num-heads 6 --mlp-dim 1536 --batch-size 16 --json docs/records/vit_tokens_memory_vits.json
"""

from __future__ import annotations

import argparse
import json
import os
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
    parser.add_argument("--memory", action="store_true", help="also the step's peak memory, a process per size")
    parser.add_argument("--image-size", type=int, nargs="+", default=[28], help="square inputs (default: 28)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # "IMAGE_SIZE,PATCH": one size, JSON on stdout
    return parser.parse_args(argv)


def multiply_adds(tokens: int, hidden: int, mlp: int, layers: int) -> tuple[int, int]:
    """Per image and forward pass: (token-wise linear layers, attention scores + weighted sum)."""
    linear = layers * tokens * (4 * hidden * hidden + 2 * hidden * mlp)
    attention = layers * 2 * tokens * tokens * hidden
    return linear, attention


def _memory_kib() -> dict:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) for key in ("VmRSS", "VmHWM")}


def measure(args, image_size: int, patch: int, *, memory: bool) -> dict:
    """One size: the step time and, with ``memory``, the step's transient peak over the resident size."""
    import keras
    import numpy as np

    from keraszoo.models.vit import build_vit, num_tokens

    rng = np.random.default_rng(0)
    shape = (image_size, image_size, 1 if image_size == 28 else 3)
    images = rng.uniform(size=(args.batch_size, *shape)).astype("float32")
    labels = rng.integers(0, 10, size=(args.batch_size,)).astype("int32")
    keras.utils.set_random_seed(0)
    model = build_vit(image_shape=shape, patch_size=patch, hidden_dim=args.hidden_dim,
                      num_layers=args.num_layers, num_heads=args.num_heads, mlp_dim=args.mlp_dim, num_classes=10)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), jit_compile=False,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    for _ in range(3):  # trace and warm up
        model.train_on_batch(images, labels)
    if memory:
        Path("/proc/self/clear_refs").write_text("5")  # the peak-RSS mark back to the current size
        before = _memory_kib()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            model.train_on_batch(images, labels)
        times.append((time.perf_counter() - start) / args.steps)
    tokens = num_tokens(shape, patch)
    linear, attention = multiply_adds(tokens, args.hidden_dim, args.mlp_dim, args.num_layers)
    row = {"image_size": image_size, "patch_size": patch, "tokens": tokens,
           "ms_per_step": 1000 * statistics.median(times), "ms_per_step_min": 1000 * min(times),
           "ms_per_step_max": 1000 * max(times), "linear_mmac": linear / 1e6, "attention_mmac": attention / 1e6,
           # scores and softmax of one step, kept for the backward pass: batch x heads x n^2 float32, x2
           "attention_scores_mib": args.batch_size * args.num_heads * tokens ** 2 * 4 * 2 * args.num_layers / 2**20}
    if memory:
        after = _memory_kib()
        row.update(step_peak_mib=(after["VmHWM"] - before["VmRSS"]) / 1024, resident_mib=before["VmRSS"] / 1024)
    return row


def _in_child(args, image_size: int, patch: int) -> dict:
    import subprocess

    command = [sys.executable, __file__, "--child", f"{image_size},{patch}",
               *[f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                 if k in ("hidden_dim", "num_layers", "num_heads", "mlp_dim", "batch_size", "steps", "repeats")]]
    # A warm process keeps freed tensors for the next step (oneDNN's allocator pools them; glibc keeps blocks
    # below its self-raising mmap threshold), so its RSS stops moving and the peak mark sees nothing (0-2 MiB
    # measured here). Without oneDNN's kernels TensorFlow allocates through malloc, and with glibc's threshold
    # fixed at 64 KiB every large tensor is its own mapping, returned when freed: VmHWM then rises by what a
    # step holds at once. The tensors a step keeps are the model's, whichever kernels compute them; the
    # times of these children are not the oneDNN ones (use the run without --memory for time).
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(args) -> int:
    from keraszoo.training.hardware import environment

    if args.child:
        image_size, patch = map(int, args.child.split(","))
        print(json.dumps(measure(args, image_size, patch, memory=True)))
        return 0
    rows = []
    for image_size in args.image_size:
        for patch in args.patch_sizes:
            rows.append(_in_child(args, image_size, patch) if args.memory
                        else measure(args, image_size, patch, memory=False))
            print(f"{image_size} px, patch {patch}: {rows[-1]['tokens']} tokens, {rows[-1]['ms_per_step']:.1f} ms/step"
                  + (f", step peak {rows[-1]['step_peak_mib']:.0f} MiB" if args.memory else ""), file=sys.stderr)
    base = rows[0]
    print(f"| patch | tokens | ms/step (median, min–max) | vs {base['tokens']} tokens | token-wise MMAC/image "
          "| attention MMAC/image | attention share |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        share = r["attention_mmac"] / (r["attention_mmac"] + r["linear_mmac"])
        print(f"| {r['patch_size']} | {r['tokens']} | {r['ms_per_step']:.1f} ({r['ms_per_step_min']:.1f}–"
              f"{r['ms_per_step_max']:.1f}) | {r['ms_per_step'] / base['ms_per_step']:.1f}× | {r['linear_mmac']:.2f} | "
              f"{r['attention_mmac']:.2f} | {100 * share:.0f} % |")
    if args.memory:
        print("\n| image | tokens | step peak over resident, MiB | attention scores kept, MiB (computed) |\n|---|---|---|---|")
        for r in rows:
            print(f"| {r['image_size']} px, patch {r['patch_size']} | {r['tokens']} | {r['step_peak_mib']:.0f} | "
                  f"{r['attention_scores_mib']:.0f} |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"command": " ".join(sys.argv), "settings": vars(args),
                                               "environment": environment(), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
