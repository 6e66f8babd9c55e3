#!/usr/bin/env python
"""Training throughput (images/s) of keraszoo's reference models against PyTorch twins, and of the input pipeline.

Models, built by the recipes' own builders, batch 128, raw uint8 batches in:
  mlp     MNIST MLP 784-100(tanh)-10, SGD 0.1 (recipes/mlp.py, Keras implementation)
  cnn_bn  the course CNN, batchnorm variant: crop 28 + flip + normalisation in the model, conv 5x5
          32-64-64 with batch norm, dropout 0.5, fc 1000, SGD 0.05 + momentum 0.9 (recipes/cifar10_cnn.py)
  vit     MNIST ViT default: patch 7, hidden 64, 6 blocks, 4 heads, MLP 128, AdamW (recipes/mnist_vit.py)
The PyTorch twins (benchmarks/torch_reference.py, which says what was done for PyTorch's speed) have
the same layers, do the same scaling and augmentation inside the step (the CNN's crop + flip + normalise
as one gather on the uint8 batch, checked against a per-image loop before timing), use the same
optimizer (PyTorch's fused kernels), channels_last for the CNN, and as many threads as TensorFlow;
like Keras's step, each keeps the running loss and accuracy a training log needs (on the device).
With the bf16 variant (keraszoo's mixed_bfloat16, the course CNN recipe's default on CPUs with bfloat16
units) the twin is timed a second time under torch.autocast(bfloat16): each precision against its own.
Both train on one fixed in-memory batch, so only the model step is timed. The ViT's optimizer gets the recipe's
warmup + cosine schedule, evaluated inside every step as in training. Each model is timed in a
process of its own, whose TensorFlow threads are the recipe's (--intra-op-threads, --inter-op-threads:
TensorFlow reads them once per process; the MNIST ViT recipe runs its ops one core each). keraszoo's rate is the
steady one, over --steps steps inside one model.fit call after its first call into the backend (a
training run is one fit call: fit's fixed costs are paid once a run); the rate of the whole call,
those costs included, is given beside it. "network alone" times the
same network without its input preprocessing, on float inputs, in both frameworks. Repetitions
alternate keraszoo and PyTorch, in the same process; the table gives the median and the min-max.
The CPU's model and SIMD flags are printed first and recorded: compare numbers within one run.

On another Keras backend (KERAS_BACKEND=jax, as on the lent GPU machines, which have no TensorFlow:
benchmarks/gpu_check.sh) the models are built from array splits and fed by a PyDataset repeating the
batch, as the trainer feeds JAX; they run on JAX's default device (the GPU), the twins on the GPU too
when PyTorch sees one (--torch-device), timed from an idle device to the end of their last step; "bf16"
is mixed_bfloat16 there as well, against autocast(bfloat16); the input pipeline (tf.data) is skipped.

The input pipeline (the trainer's own stream on the prepared CIFAR-10: TFRecords parsed a batch at a
time, images decoded and cached, full-split shuffle, batches of uint8; crop, flip and normalisation
are model layers, timed with the model) is timed alone, from disk (the first epoch) and from the
in-memory cache (every later epoch), and compared with cnn_bn's fastest measured rate.

needs PyTorch: pip install 'keraszoo[bench]' (torch 2.13.0, CPU build)

examples:
  python benchmarks/train_throughput.py --json docs/records/train_throughput.json
  python benchmarks/train_throughput.py --models cnn_bn --keras-variants fp32 fp32_xla bf16 --repeats 5
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
from keraszoo.config import DATA_DIR_HELP
from keras_twin_step import (  # noqa: F401 (tests use them through this module)
    keras_model, keras_network_alone, on_tensorflow, recipe_config, recipe_schedule, set_threads, steps_per_call, synthetic,
    time_keras, time_keras_steady)
from torch_twin_step import check_twin_augmentation, time_torch, torch_device, torch_setup  # noqa: F401 (tests)

MODELS = ("mlp", "cnn_bn", "vit")
KERAS_VARIANTS = ("fp32", "fp32_xla", "bf16", "fp32_speN", "fp32_xla_speN")


def keras_variant(text: str) -> str:
    """fp32, fp32_xla, bf16, or fp32[_xla]_spe<N> (N steps a call): argparse's type for --keras-variants."""
    base, _, steps = text.partition("_spe")
    if text in KERAS_VARIANTS[:3] or (base in ("fp32", "fp32_xla") and steps.isdigit() and int(steps) >= 1):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not one of fp32, fp32_xla, bf16, fp32_spe<N>, fp32_xla_spe<N>")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--keras-variants", nargs="+", type=keras_variant, default=None,
                        help="keraszoo settings to time: fp32, fp32_xla (--jit-compile on), bf16 (--mixed-precision "
                             "on a CPU), fp32_spe10 (--steps-per-execution 10; any N), fp32_xla_spe10 (both). "
                             "Default: bf16 and fp32 on a CPU with bfloat16 units (the course CNN recipe's default "
                             "there is bf16), else fp32")
    parser.add_argument("--torch-without-metrics", action="store_true",
                        help="PyTorch steps without the running loss and accuracy Keras's steps keep (the twin "
                             "before 2026-11-29)")
    parser.add_argument("--torch-compile", action="store_true",
                        help="the twins' networks under torch.compile (TorchInductor, its default mode; compiled in "
                             "the warm-up steps, outside the timings). Measured slower for all three models on our CPUs "
                             "(docs/performance.md), so the twins run eagerly by default")
    parser.add_argument("--intra-op-threads", type=int, metavar="N",
                        help="TensorFlow threads per op for every model (default: each recipe's own; 0: TensorFlow's "
                             "default, every core)")
    parser.add_argument("--inter-op-threads", type=int, metavar="N",
                        help="TensorFlow ops side by side for every model (default: each recipe's own; "
                             "0: TensorFlow's)")
    parser.add_argument("--torch-threads", type=int, metavar="N",
                        help="PyTorch's intra-op threads (default: one per core)")
    parser.add_argument("--torch-device", choices=("cpu", "cuda"),
                        help="where the twins run (default: the GPU when PyTorch sees one, else the CPU)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per repetition (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions per framework (default: %(default)s)")
    parser.add_argument("--processes", type=int, default=1,
                        help="timing processes per model, one after the other, their repetitions pooled: identical "
                             "processes' medians differed by up to 15 %% here (default: %(default)s)")
    parser.add_argument("--pipeline-batches", type=int, default=100, help="batches timed for the input pipeline")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the input-pipeline measurement")
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--model-json", help=argparse.SUPPRESS)  # a child timing one model writes here
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error("--processes must be >= 1")
    for flag in ("intra_op_threads", "inter_op_threads", "torch_threads"):
        value = getattr(args, flag)
        if value is not None and value < (1 if flag == "torch_threads" else 0):
            parser.error(f"--{flag.replace('_', '-')} must be >= {1 if flag == 'torch_threads' else 0}, got {value}")
    return args


def child_argv(args, name: str, json_path: str) -> list[str]:
    """The command line of the child process that times model ``name`` with ``args``'s settings."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--models", name, "--keras-variants", *args.keras_variants,
            "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--repeats", str(args.repeats),
            "--no-pipeline", "--model-json", json_path]
    for flag in ("intra_op_threads", "inter_op_threads", "torch_threads", "torch_device"):
        if getattr(args, flag) is not None:
            argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    return (argv + (["--torch-without-metrics"] if args.torch_without_metrics else [])
            + (["--torch-compile"] if args.torch_compile else []))


def summary(rates):
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "runs": rates}


def benchmark_models(args, done_so_far=lambda results: None):
    """Each model timed by a child process of its own (``benchmark_model``): TensorFlow takes its thread
    counts once per process, and the recipes' counts differ. ``done_so_far`` gets the results after each
    model (the record is written as it grows: a run stopped by a time limit keeps the models it timed)."""
    import subprocess
    import tempfile

    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            for process in range(args.processes):
                path = str(Path(folder) / f"{name}-{process}.json")
                done = subprocess.run(child_argv(args, name, path), stdout=subprocess.DEVNULL)
                if done.returncode:
                    raise SystemExit(f"error: timing {name} failed (status {done.returncode}, its messages are above).")
                child = json.loads(Path(path).read_text())
                results[name] = pooled(results[name], child) if name in results else child
                done_so_far(results)
    return results


def pooled(first: dict, second: dict) -> dict:
    """Two processes' results for one model as one: every summary's runs joined, median and range redone."""
    out = {}
    for key, value in first.items():
        if isinstance(value, dict) and "runs" in value:
            out[key] = summary(value["runs"] + second[key]["runs"])
        elif isinstance(value, dict) and key in second:
            out[key] = pooled(value, second[key])
        else:
            out[key] = value  # thread counts, device: the same in every process
    return out


def benchmark_model(args, name):
    """Times one model, in a process whose TensorFlow runtime has not started: its threads are set first."""
    import numpy as np
    import torch

    tf_threads = set_threads(name, args)
    torch.set_num_threads(args.torch_threads or os.cpu_count())
    device = torch_device(args)
    print(f"{name}: " + (f"TensorFlow threads {tf_threads} (0: its default, one per core)" if tf_threads else
                         f"Keras on {keras_backend_and_devices()}")
          + f", PyTorch on {device}, {torch.get_num_threads()} CPU threads", file=sys.stderr)
    images, labels = synthetic(name, args.batch_size)
    keras_runs, configs = {}, {}
    for variant in args.keras_variants:
        model, configs[variant] = keras_model(name, variant, images, labels)
        time_keras(model, images, labels, 2 * steps_per_call(variant))  # trace and warm up
        keras_runs[variant] = (model, [])
    # The network alone, on the float inputs its preprocessing would give, compiled like the
    # first variant (the table's first row), not like whichever variant came last.
    first = args.keras_variants[0]
    network = keras_network_alone(keras_runs[first][0], configs[first], recipe_schedule(name, configs[first]))
    config = configs[first]
    floats = np.random.default_rng(1).normal(size=(args.batch_size, *network.input_shape[1:])).astype("float32")
    time_keras(network, floats, labels, 2 * network.steps_per_execution)
    twin = {"metrics": not args.torch_without_metrics, "compile": args.torch_compile, "device": device}
    torch_steps = {"full": torch_setup(name, images, labels, config, **twin),
                   # the twin's network alone in the precision keraszoo's is compiled in (the first variant)
                   "network": torch_setup(name, images, labels, config, network_alone=True, bf16=first == "bf16",
                                          **twin)}
    if "bf16" in keras_runs:  # keraszoo's bfloat16 against PyTorch's, float32 against float32
        torch_steps["full_bf16"] = torch_setup(name, images, labels, config, bf16=True, **twin)
    for torch_step in torch_steps.values():
        for _ in range(3):
            torch_step()
    torch_rates = {kind: [] for kind in torch_steps}
    network_rates, call_rates = [], {variant: [] for variant in keras_runs}
    for repeat in range(args.repeats):  # keraszoo and PyTorch alternate, full step then network alone
        for variant, (model, rates) in keras_runs.items():
            call, steady = time_keras_steady(model, images, labels, args.steps)
            rates.append(steady)
            call_rates[variant].append(call)
        torch_rates["full"].append(time_torch(torch_steps["full"], args.steps, args.batch_size, device))
        if "full_bf16" in torch_steps:
            torch_rates["full_bf16"].append(time_torch(torch_steps["full_bf16"], args.steps, args.batch_size, device))
        network_rates.append(time_keras_steady(network, floats, labels, args.steps)[1])
        torch_rates["network"].append(time_torch(torch_steps["network"], args.steps, args.batch_size, device))
        print(f"{name} repeat {repeat + 1}: " + ", ".join(f"{v} {r[-1]:.0f} (call {call_rates[v][-1]:.0f})"
                                                          for v, (_, r) in keras_runs.items())
              + f", torch {torch_rates['full'][-1]:.0f}"
              + (f", torch bf16 {torch_rates['full_bf16'][-1]:.0f}" if "full_bf16" in torch_rates else "")
              + " images/s; network alone: keraszoo "
              f"{network_rates[-1]:.0f}, torch {torch_rates['network'][-1]:.0f}", file=sys.stderr)
    return {"keraszoo": {v: summary(r) for v, (_, r) in keras_runs.items()},
            "keraszoo_whole_call": {v: summary(r) for v, r in call_rates.items()},
            "pytorch": summary(torch_rates["full"]),
            **({"pytorch_bf16": summary(torch_rates["full_bf16"])} if "full_bf16" in torch_rates else {}),
            "network_alone": {"keraszoo": summary(network_rates), "pytorch": summary(torch_rates["network"])},
            "tf_threads": tf_threads, "torch_threads": torch.get_num_threads(), "torch_device": device}


def benchmark_pipeline(args):
    """images/s of the trainer's own input stream on the prepared CIFAR-10: read_split (TFRecords parsed
    a batch at a time, images decoded, then cached in memory) + epoch_batches (full-split shuffle, batches).
    The crop, flip and normalisation are not here: they are layers of the model, timed with it.
    The first epoch is timed twice, from a fresh read each time: as the trainer runs it (tf.data's
    autotuning off, see keraszoo.data.without_autotuning) and with TensorFlow's default (on)."""
    import tensorflow as tf

    from keraszoo.data import read_split

    count = args.pipeline_batches * args.batch_size
    autotune_on = tf.data.Options()
    autotune_on.autotune.enabled = True
    warm_up = read_split("cifar10", f"train[:{2 * args.batch_size}]", data_dir=args.data_dir)
    for _ in warm_up.epoch_batches(batch_size=args.batch_size, seed=0, first_epoch=0, last_epoch=1)[0]:
        pass  # TensorFlow's first-use costs (tracing the parse and decode functions) are not the stream's
    out = {}
    for label, epoch, options in (("from disk (first epoch: read, decode, cache)", 0, None),
                                  ("from the cache (later epochs)", 1, None),
                                  ("from disk, tf.data autotuning on (TensorFlow's default)", 0, autotune_on)):
        if epoch == 0:
            data = read_split("cifar10", f"train[:{count}]", data_dir=args.data_dir)
        stream, _ = data.epoch_batches(batch_size=args.batch_size, seed=0, first_epoch=epoch, last_epoch=epoch + 1)
        if options is not None:
            stream = stream.with_options(options)
        start = time.perf_counter()
        iterator = iter(stream)
        seen = sum(int(labels.shape[0]) for _, labels in iterator)
        out[label] = seen / (time.perf_counter() - start)  # clock stopped before the iterator is dropped
        del iterator
        print(f"pipeline {label}: {out[label]:.0f} images/s", file=sys.stderr)
    return out


def table(results, pipeline, variants) -> str:
    lines = ["| model | keraszoo images/s (median, min–max) | PyTorch images/s | keraszoo / PyTorch "
             "| whole fit call: keraszoo images/s, / PyTorch "
             "| network alone: keraszoo / PyTorch images/s | network alone ratio | threads: TF intra/inter, torch |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        alone = r["network_alone"]
        threads = (f"{r['tf_threads']['intra_op']}/{r['tf_threads']['inter_op']}, {r['torch_threads']}"
                   if r.get("tf_threads") else "—")
        alone_cells = (f"{alone['keraszoo']['median']:.0f} / {alone['pytorch']['median']:.0f} | "
                       f"{alone['keraszoo']['median'] / alone['pytorch']['median']:.2f}×")
        for variant in variants:
            k = r["keraszoo"][variant]
            call = r["keraszoo_whole_call"][variant]["median"]
            twin = r["pytorch_bf16"] if variant == "bf16" and "pytorch_bf16" in r else r["pytorch"]
            torch_median = twin["median"]
            lines.append(f"| {name} ({variant}) | {k['median']:.0f} ({k['min']:.0f}–{k['max']:.0f}) | "
                         f"{torch_median:.0f} ({twin['min']:.0f}–{twin['max']:.0f}) | "
                         f"{k['median'] / torch_median:.2f}× | {call:.0f}, {call / torch_median:.2f}× | "
                         f"{alone_cells} | {threads} |")
            alone_cells = f"(compiled as {variants[0]}, above) | "
    if pipeline:
        # The fastest cnn_bn setting measured: the recipe's own (bfloat16 where the CPU has its units).
        model_rate = max((v["median"] for v in results.get("cnn_bn", {}).get("keraszoo", {}).values()), default=None)
        lines += ["", "| input pipeline (CIFAR-10, the trainer's stream) | images/s | vs cnn_bn training |",
                  "|---|---|---|"]
        for label, rate in pipeline.items():
            ratio = f"{rate / model_rate:.1f}×" if model_rate else "—"
            lines.append(f"| {label} | {rate:.0f} | {ratio} |")
    return "\n".join(lines)


def default_variants() -> list[str]:
    """What --keras-variants times when not given: both precisions where the CNN recipe defaults to bfloat16
    (TensorFlow on a CPU with bfloat16 units), and on a GPU (bfloat16 units, on any backend)."""
    from keraszoo.training.distribute import native_bfloat16, uses_gpu

    if uses_gpu():
        return ["bf16", "fp32"]
    return ["bf16", "fp32"] if on_tensorflow() and native_bfloat16() else ["fp32"]


def keras_backend_and_devices() -> str:
    from keraszoo.training.distribute import backend, devices

    return f"{backend()} ({', '.join(devices())})"


def main(args) -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        import torch
    except ImportError:
        print("error: this benchmark needs PyTorch: pip install 'keraszoo[bench]'", file=sys.stderr)
        return 2
    if args.model_json:  # a child process: one model, results to the parent
        Path(args.model_json).write_text(json.dumps(benchmark_model(args, args.models[0])))
        return 0
    from keraszoo.training.hardware import environment, onednn_enabled

    env = environment()
    print(f"CPU: {env['cpu']}, {env['cpu_count']} cores; SIMD flags: {' '.join(env['cpu_flags']) or 'none found'}")
    if env["gpus"]:
        print(f"GPU: {', '.join(env['gpus'])}")
    print((f"TensorFlow's oneDNN kernels: {'on' if onednn_enabled() else 'off (TF_ENABLE_ONEDNN_OPTS=0)'}"
           if on_tensorflow() else f"Keras on {keras_backend_and_devices()}") + "; "
          f"PyTorch {torch.__version__}, {args.torch_threads or os.cpu_count()} threads"
          + (", networks under torch.compile" if args.torch_compile else ", eager"))
    args.keras_variants = args.keras_variants or default_variants()  # the children get them explicitly
    for variant in args.keras_variants:
        if args.steps % steps_per_call(variant):
            print(f"error: --steps {args.steps} is not a multiple of {variant}'s {steps_per_call(variant)} steps a "
                  "call: choose a common multiple.", file=sys.stderr)
            return 2
    check_twin_augmentation()

    def record(results, pipeline=None, complete=False):
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(
                {"command": "python " + " ".join(sys.argv), "settings": vars(args),
                 "environment": {**env, "torch": torch.__version__}, "complete": complete,
                 "models": results, "pipeline_images_per_s": pipeline}, indent=2) + "\n")

    results = benchmark_models(args, record)
    if not args.no_pipeline and not on_tensorflow():
        print("note: the input pipeline is timed on TensorFlow only (its tf.data stream); skipped here.",
              file=sys.stderr)
    pipeline = None if args.no_pipeline or not on_tensorflow() else benchmark_pipeline(args)
    print(table(results, pipeline, args.keras_variants))
    record(results, pipeline, complete=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
