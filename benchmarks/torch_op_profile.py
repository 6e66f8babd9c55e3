"""Where the PyTorch twin's training step spends its time: torch.profiler over a few steady steps.

The twin's counterpart of tf_op_profile.py, for comparing the two frameworks op by op on one machine:
the step train_throughput.py times (benchmarks/torch_reference.py's model, its optimizer, the
augmentation inside the step), PyTorch's own operator table grouped by input shapes, so each
convolution layer's forward and backward show apart. Times are PyTorch's self CPU time of the calling
thread per step (an op running on two threads counts its wall time once).

examples:
  python benchmarks/torch_op_profile.py cnn_bn --bf16 --out docs/records/torch_op_profile_cnn_bn_bf16.txt
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import train_throughput as bench  # noqa: E402
from tf_op_profile import publish  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=bench.MODELS)
    parser.add_argument("--bf16", action="store_true", help="the step under torch.autocast(bfloat16)")
    parser.add_argument("--steps", type=int, default=20, help="profiled steps (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch threads (default: the cores)")
    parser.add_argument("--top", type=int, default=25, help="rows listed (default: %(default)s)")
    parser.add_argument("--out", help="also write the report here")
    args = parser.parse_args(argv)
    if min(args.steps, args.top, args.threads, args.batch_size) < 1:
        parser.error("--steps, --top, --threads and --batch-size must be >= 1")
    return args


def main(args) -> int:
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile
    except ImportError:
        print("error: this profile needs PyTorch: pip install 'keraszoo[bench]'", file=sys.stderr)
        return 2
    from keraszoo.training.hardware import environment

    torch.set_num_threads(args.threads)
    images, labels = bench.synthetic(args.model, args.batch_size)
    step = bench.torch_setup(args.model, images, labels, bench.recipe_config(args.model), bf16=args.bf16)
    for _ in range(10):  # warm: oneDNN primitives created, allocator settled
        step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(args.steps):
            step()
    table = prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=args.top,
                                                               max_name_column_width=40, max_shapes_column_width=70)
    env = environment()
    text = (f"# PyTorch twin of {args.model} ({'bf16 autocast' if args.bf16 else 'fp32'}), batch {args.batch_size}, "
            f"{args.steps} profiled steps (totals below are over all of them: divide by {args.steps} for a step)\n"
            f"# CPU: {env['cpu']}, {env['cpu_count']} cores, flags {' '.join(env['cpu_flags'])}; PyTorch "
            f"{torch.__version__}, {torch.get_num_threads()} threads\n# command: python {shlex.join(sys.argv)}\n\n{table}")
    publish(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
