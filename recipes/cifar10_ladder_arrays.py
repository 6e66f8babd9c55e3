#!/usr/bin/env python
"""The CIFAR-10 ladder on machines without TensorFlow: NumPy arrays in, any Keras backend.

The lent GPU machines have JAX and PyTorch but no TensorFlow, and take 64 MiB of files.
This script runs the same ladder as recipes/cifar10_ladder.py there: the same variants
and defaults (Cifar10CNNConfig), the same model (cifar10_cnn.build_models), the same
ExponentialDecay callback and optimizer, fed from NumPy arrays by Keras's own fit loop
instead of tf.data. Two steps:

  pack   (where TensorFlow is) the prepared TFDS splits -> a compact JPEG pack
         (keraszoo.data.jpeg_pack: ~20 MB for all of CIFAR-10, re-encoding error stored in it)
  train  (anywhere) every variant x seed from the pack, --jobs at a time in subprocesses,
         each run writing config.json, history.csv, metrics.json and curves.png as the
         TensorFlow recipe does, so `cifar10_ladder.py --report-only --records DIR` tabulates them.
         The backend is Keras's: set KERAS_BACKEND (jax, torch or tensorflow).

Runs here are not resumable and export no SavedModel (that needs TensorFlow): batchnorm
runs keep their inference weights (model.weights.h5) for `export` to turn into one.

examples:
  python recipes/cifar10_ladder_arrays.py pack --out .pack/cifar10
  KERAS_BACKEND=jax python recipes/cifar10_ladder_arrays.py train --pack .pack/cifar10 --jobs 12
  python recipes/cifar10_ladder_arrays.py train --pack .pack/cifar10 --variants baseline --seeds 0 \\
      --epochs 1 --train-limit 2000                                            # smoke run
  python recipes/cifar10_ladder_arrays.py export runs/ladder_arrays/batchnorm-seed0 --version 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = ("baseline", "normalized", "augmented", "lr_decay", "dropout", "batchnorm")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)
    pack = commands.add_parser("pack", help="prepared TFDS splits -> compact JPEG pack (needs TensorFlow)")
    pack.add_argument("--out", required=True, help="folder for train.npz and test.npz")
    pack.add_argument("--dataset", default="cifar10")
    pack.add_argument("--data-dir", help="TFDS data_dir (default: $TFDS_DATA_DIR)")
    pack.add_argument("--splits", nargs="+", default=["train", "test"],
                      help="TFDS splits, slices allowed; 'train[:5000]' is written as train.npz")
    train = commands.add_parser("train", help="train variants x seeds from a pack")
    train.add_argument("--pack", required=True, help="folder holding train.npz and test.npz")
    train.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    train.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--runs", default="runs/ladder_arrays", help="run folders (default: %(default)s)")
    train.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process (one GPU "
                       "shares itself between them; the course CNN leaves an H200 mostly idle)")
    train.add_argument("--deadline-s", type=float, help="stop every run after the epoch that would cross this many "
                       "seconds from now; its record says so (what came back from a time-limited machine)")
    train.add_argument("--train-limit", type=int, help="first N training images only (smoke runs)")
    export = commands.add_parser("export", help="a batchnorm run's weights -> SavedModel (needs TensorFlow)")
    export.add_argument("run", help="run folder holding model.weights.h5 and config.json")
    export.add_argument("--export-dir", default="saved_models")
    export.add_argument("--version", type=int, required=True)
    return parser.parse_args(argv)


def _recipe():
    from keraszoo.config import load_recipe_script

    return load_recipe_script(HERE / "cifar10_cnn.py")


def pack_splits(args) -> int:
    import tensorflow_datasets as tfds

    from keraszoo.data import resolve_data_dir
    from keraszoo.data.jpeg_pack import write_pack

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split in args.splits:
        builder = tfds.builder(args.dataset, data_dir=resolve_data_dir(args.data_dir))
        arrays = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        source = f"TFDS {args.dataset} {builder.info.version} split {split} from {builder.data_dir}"
        name = split.split("[")[0]  # 'train[:5000]' -> train.npz, what `train` reads
        summary = write_pack(out / f"{name}.npz", arrays["image"], arrays["label"], source=source)
        print(f"{args.dataset} {split}: {summary}", flush=True)
    return 0


def train_all(args) -> int:
    missing = [name for name in ("train.npz", "test.npz") if not (Path(args.pack) / name).is_file()]
    if missing:
        raise SystemExit(f"{args.pack} lacks {', '.join(missing)}: make the pack first, where TensorFlow is: "
                         f"python {Path(__file__).name} pack --out {args.pack}")
    runs = [(variant, seed) for variant in args.variants for seed in args.seeds]
    deadline = time.time() + args.deadline_s if args.deadline_s else None
    if args.jobs <= 1 or len(runs) == 1:
        for variant, seed in runs:
            train_one(args, variant, seed, deadline)
        return 0
    # One process per run: separate Keras states and seeds, and the GPU interleaves their small kernels.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX would take 75 % of the GPU per process
    pending, running, failed = list(runs), {}, []
    while pending or running:
        while pending and len(running) < args.jobs:
            variant, seed = pending.pop(0)
            folder = Path(args.runs) / f"{variant}-seed{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            command = [sys.executable, __file__, "train", "--pack", args.pack, "--variants", variant, "--seeds",
                       str(seed), "--epochs", str(args.epochs), "--runs", args.runs]
            if deadline:
                command += ["--deadline-s", str(deadline - time.time())]
            if args.train_limit:
                command += ["--train-limit", str(args.train_limit)]
            log = open(folder / "log.txt", "w")
            running[(variant, seed)] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log)
            print(f"started {variant}, seed {seed} -> {folder}/log.txt", flush=True)
        time.sleep(2)
        for key, (process, log) in list(running.items()):
            if process.poll() is not None:
                log.close()
                del running[key]
                print(f"finished {key[0]}, seed {key[1]}: exit {process.returncode}", flush=True)
                if process.returncode:
                    failed.append(key)
    if failed:
        print(f"failed: {failed}; see their log.txt", file=sys.stderr)
    return 1 if failed else 0


def train_one(args, variant: str, seed: int, deadline: float | None) -> dict:
    import keras
    import numpy as np

    from keraszoo.data.jpeg_pack import read_pack
    from keraszoo.data.statistics import array_mean_variance
    from keraszoo.training.callbacks import ExponentialDecay
    from keraszoo.training.optimizers import compile_for_classification
    from keraszoo.training.run_record import plot_curves, write_history, write_json

    recipe = _recipe()
    output = Path(args.runs) / f"{variant}-seed{seed}"
    output.mkdir(parents=True, exist_ok=True)
    config = recipe.Cifar10CNNConfig(variant=variant, seed=seed, epochs=args.epochs, output=str(output))
    train_x, train_y, pack = read_pack(Path(args.pack) / "train.npz")
    test_x, test_y, _ = read_pack(Path(args.pack) / "test.npz")
    num_classes = int(max(train_y.max(), test_y.max())) + 1  # before --train-limit, which may drop a class
    if args.train_limit:
        train_x, train_y = train_x[:args.train_limit], train_y[:args.train_limit]
    steps = config.steps()

    keras.utils.set_random_seed(seed)  # before building: the seed fixes the initial weights and the shuffling
    metadata = argparse.Namespace(input_shape=train_x.shape[1:], num_classes=num_classes)
    statistics = array_mean_variance(train_x) if steps["normalize"] else None  # training split only
    training, inference = recipe.build_models(config, metadata, statistics=statistics)
    compile_for_classification(training, config)  # Keras's own jit choice: XLA on JAX
    initial_loss, initial_accuracy = training.evaluate(test_x, test_y, batch_size=1000, verbose=0)

    rows, state = [], {"stopped_by_deadline": False}

    class Recorder(keras.callbacks.Callback):
        """One history row per epoch, written at once (a run cut short keeps its epochs)."""

        def on_epoch_begin(self, epoch, logs=None):
            state["epoch_start"] = state["test_start"] = time.time()

        def on_test_begin(self, logs=None):
            state["test_start"] = time.time()

        def on_epoch_end(self, epoch, logs=None):
            now = time.time()
            rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            rows.append({"epoch": epoch + 1, "learning_rate": rate, **{k: float(v) for k, v in logs.items()},
                         "train_time_s": round(state["test_start"] - state["epoch_start"], 3),
                         "epoch_time_s": round(now - state["epoch_start"], 3)})
            write_history(output / "history.csv", rows)
            if deadline and now + (now - state["epoch_start"]) > deadline:
                state["stopped_by_deadline"] = True
                self.model.stop_training = True

    callbacks = [Recorder()]
    if steps["lr_decay"] < 1:
        callbacks.insert(0, ExponentialDecay(config.learning_rate, steps["lr_decay"]))
    write_json(output / "config.json", {**config.to_dict(), "backend": keras.backend.backend(), "pack": pack})
    start = time.time()
    training.fit(train_x, train_y, batch_size=config.batch_size, epochs=config.epochs, shuffle=True,
                 validation_data=(test_x, test_y), validation_batch_size=1000, callbacks=callbacks, verbose=2)
    wall = time.time() - start
    # The exported model would be the inference one (centre crop, no random layer): check it scores the same.
    compile_for_classification(inference, config)
    inference_loss, inference_accuracy = inference.evaluate(test_x, test_y, batch_size=1000, verbose=0)
    last, best = rows[-1], max(rows, key=lambda row: row["val_accuracy"])
    metrics = {
        "recipe": f"cifar10_cnn_{variant}" if variant != "baseline" else "cifar10_cnn", "variant": variant,
        "steps": steps, "seed": seed, "epochs": len(rows), "epochs_asked": config.epochs,
        "stopped_by_deadline": state["stopped_by_deadline"],
        "test_accuracy": last["val_accuracy"], "test_loss": last["val_loss"],
        "train_accuracy": last["accuracy"], "train_loss": last["loss"],
        "inference_model_test_accuracy": float(inference_accuracy), "inference_model_test_loss": float(inference_loss),
        "best_epoch": best["epoch"], "best_test_accuracy": best["val_accuracy"],
        "initial_test_loss": float(initial_loss), "initial_test_accuracy": float(initial_accuracy),
        "chance_level_loss": float(np.log(metadata.num_classes)),
        "mean_train_time_per_epoch_s": round(float(np.mean([r["train_time_s"] for r in rows])), 2),
        "wall_time_s": round(wall, 1), "num_params": training.count_params(), "jit_compile": training.jit_compile,
        "num_train_examples": len(train_x), "num_test_examples": len(test_x),
        "data": {"format": "keraszoo.data.jpeg_pack", **pack},
        # Keras's Normalization keeps statistics given at construction as constants, not weights:
        # `export` rebuilds the layer from these.
        "normalization_statistics": None if statistics is None else
        {"mean": [float(v) for v in statistics[0]], "variance": [float(v) for v in statistics[1]]},
        "environment": environment(),
    }
    write_json(output / "metrics.json", metrics)
    plot_curves(output / "curves.png", rows, title=f"{metrics['recipe']} (seed {seed}, {metrics['environment']['backend']})",
                initial=metrics)
    if variant == "batchnorm":
        inference.save_weights(output / "model.weights.h5")
    print(f"{variant} seed {seed}: test accuracy {last['val_accuracy']:.4f} after {len(rows)} epochs", flush=True)
    return metrics


def environment() -> dict:
    """Versions and hardware for the record, whichever backend runs."""
    import platform

    import keras
    import numpy as np

    import keraszoo
    from keraszoo.training.run_record import _cpu_model

    backend = keras.backend.backend()
    env = {"keraszoo": keraszoo.__version__, "python": platform.python_version(), "keras": keras.__version__,
           "backend": backend, "numpy": np.__version__, "platform": platform.platform(), "cpu": _cpu_model(),
           "cpu_count": os.cpu_count(), "gpus": []}
    if backend == "jax":
        import jax

        env["jax"] = jax.__version__
        env["gpus"] = [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    elif backend == "torch":
        import torch

        env["torch"] = torch.__version__
        env["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    elif backend == "tensorflow":
        import tensorflow as tf

        env["tensorflow"] = tf.__version__
        env["gpus"] = [tf.config.experimental.get_device_details(d).get("device_name", d.name)
                       for d in tf.config.list_physical_devices("GPU")]
    return env


def export_run(args) -> int:
    """Rebuilds a run's inference model with TensorFlow, loads its weights and exports it for serving."""
    from keraszoo.export import export_classifier
    from keraszoo.training.run_record import read_json

    run = Path(args.run)
    if not (run / "model.weights.h5").exists():
        raise SystemExit(f"{run}/model.weights.h5 not found: only batchnorm runs keep their weights.")
    saved = read_json(run / "config.json")
    recipe = _recipe()
    fields = {k: v for k, v in saved.items() if k in recipe.Cifar10CNNConfig.__dataclass_fields__}
    config = recipe.Cifar10CNNConfig(**fields)
    metrics = read_json(run / "metrics.json")
    saved_statistics = metrics.get("normalization_statistics")
    statistics = (saved_statistics["mean"], saved_statistics["variance"]) if saved_statistics else None
    metadata = argparse.Namespace(input_shape=(32, 32, 3), num_classes=10)
    _, inference = recipe.build_models(config, metadata, statistics=statistics)
    inference.load_weights(run / "model.weights.h5")
    path = export_classifier(inference, export_dir=args.export_dir, name=config.export_name or metrics["recipe"],
                             run_record_dir=run, version=args.version)
    print(f"exported {run} -> {path}")
    return 0


def main(args) -> int:
    return {"pack": pack_splits, "train": train_all, "export": export_run}[args.command](args)


if __name__ == "__main__":
    sys.exit(main(parse_args()))
