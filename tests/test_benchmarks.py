"""The throughput benchmark's own logic (its timings are measured by running it, never asserted)."""

import argparse
import sys
import types

import keras
import numpy as np
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import train_throughput as bench  # noqa: E402


@pytest.mark.parametrize("text, steps", [("fp32", 1), ("bf16", 1), ("fp32_xla", 1), ("fp32_spe10", 10),
                                         ("fp32_xla_spe43", 43)])
def test_keras_variants_name_their_steps_per_call(text, steps):
    assert bench.keras_variant(text) == text and bench.steps_per_call(text) == steps


@pytest.mark.parametrize("text", ["fp16", "bf16_spe10", "fp32_spe0", "fp32_spe", "fp32_spex"])
def test_unknown_keras_variants_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="fp32_spe<N>"):
        bench.keras_variant(text)


def test_steady_rate_counts_the_steps_after_the_first_call(monkeypatch):
    """With 4 steps a call and 8 timed steps, fit runs 12 steps in 3 calls; the steady window is the
    8 steps between the ends of the first and the last call, timed by a clock that ticks once per read."""
    ticks = iter(range(1000))
    # The benchmark's clock only (its module's `time`), not Keras's.
    monkeypatch.setattr(bench, "time", types.SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=4)
    images, labels = np.ones((5, 3), "float32"), np.zeros(5, "int32")
    call, steady = bench.time_keras_steady(model, images, labels, 8)
    # Reads: start (0), the three call ends (1, 2, 3), the end of fit (4): 8 steps of 5 in 3 - 1 ticks,
    # 12 steps of 5 in 4 - 0.
    assert steady == 8 * 5 / 2 and call == 12 * 5 / 4
    with pytest.raises(SystemExit, match="not a multiple of 4"):
        bench.time_keras_steady(model, images, labels, 6)
