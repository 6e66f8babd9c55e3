#!/usr/bin/env python
"""Repeat tests/test_mlp.py's manual-vs-Keras MLP comparison and count runs that diverge.

Each run starts both MLPs from the same weights and trains them on the same 100 batches in
float64; they should end equal to ~1e-15. A run counts as diverged past 1e-9. This is how the
read/write race in ManualMLP.train_step was found (docs/mlp.md): to see it again, run this on
the code before the fix (git show 54f4713:keraszoo/models/manual_mlp.py).

example:
  python benchmarks/manual_mlp_determinism.py --runs 40
"""

from __future__ import annotations

import argparse

import keraszoo  # noqa: F401  first: it chooses TensorFlow's CPU kernels


def one_run() -> float:
    import keras
    import numpy as np

    from keraszoo.models.manual_mlp import ManualMLP
    from keraszoo.models.mlp import build_mlp

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        keras.utils.set_random_seed(3)
        mlp = build_mlp(input_dim=6, hidden_dim=8, num_classes=4)
        manual = ManualMLP(input_dim=6, hidden_dim=8, num_classes=4, dtype="float64")
        manual.build((None, 6))
        manual.set_from_keras(mlp)
        rng = np.random.default_rng(4)
        x, y = rng.normal(size=(800, 6)), rng.integers(0, 4, 800)
        for model in (mlp, manual):
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")
            model.compile(keras.optimizers.SGD(0.1), loss, jit_compile=False)
            model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    finally:
        keras.config.set_dtype_policy(previous)
    return float(np.abs(manual.parameters[0].numpy() - mlp.get_layer("hidden").get_weights()[0].T).max())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args(argv)
    differences = [one_run() for _ in range(args.runs)]
    diverged = [d for d in differences if d > 1e-9]
    print(f"{len(diverged)} of {args.runs} runs diverged (largest W_h difference {max(differences):.2e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
