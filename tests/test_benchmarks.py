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
    monkeypatch.setattr(sys.modules["keras_twin_step"], "time", types.SimpleNamespace(perf_counter=lambda: float(next(ticks))))
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


def test_each_model_is_timed_by_a_child_process_with_the_same_settings():
    # TensorFlow takes its thread counts once per process, and the recipes' differ: one child per model.
    args = bench.parse_args(["--models", "cnn_bn", "vit", "--keras-variants", "fp32", "fp32_spe10", "--steps", "20",
                             "--repeats", "3", "--batch-size", "64", "--intra-op-threads", "2", "--torch-threads", "1",
                             "--torch-without-metrics", "--torch-compile", "--torch-device", "cpu"])
    argv = bench.child_argv(args, "vit", "out.json")
    assert argv[0] == sys.executable and argv[1].endswith("train_throughput.py")
    child = bench.parse_args(argv[2:])
    assert child.models == ["vit"] and child.model_json == "out.json" and child.no_pipeline
    for setting in ("keras_variants", "steps", "repeats", "batch_size", "intra_op_threads", "inter_op_threads",
                    "torch_threads", "torch_without_metrics", "torch_compile", "torch_device"):
        assert getattr(child, setting) == getattr(args, setting), setting
    assert bench.parse_args(argv[2:4] + ["--model-json", "x"]).intra_op_threads is None  # the recipe's own


@pytest.mark.parametrize("argv", [["--intra-op-threads", "-1"], ["--torch-threads", "0"]])
def test_thread_counts_out_of_range_are_refused(argv, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(argv)
    assert "must be >=" in capsys.readouterr().err


def test_bf16_rows_are_compared_with_the_twin_under_autocast():
    def rates(median):
        return {"median": median, "min": median, "max": median, "runs": [median]}

    results = {"cnn_bn": {"keraszoo": {"fp32": rates(900), "bf16": rates(1200)},
                          "keraszoo_whole_call": {"fp32": rates(890), "bf16": rates(1190)},
                          "pytorch": rates(1000), "pytorch_bf16": rates(1500),
                          "network_alone": {"keraszoo": rates(950), "pytorch": rates(1000)}}}
    text = bench.table(results, {"from disk": 6000}, ["fp32", "bf16"])
    rows = {line.split(" |")[0]: line for line in text.splitlines()}
    assert "| 1000 (1000–1000) | 0.90× |" in rows["| cnn_bn (fp32)"]
    assert "| 1500 (1500–1500) | 0.80× |" in rows["| cnn_bn (bf16)"]  # against PyTorch's bfloat16, not its float32
    assert "| 6000 | 5.0× |" in rows["| from disk"]  # the pipeline against the fastest training measured


def test_the_bf16_twin_computes_in_bfloat16():
    torch = pytest.importorskip("torch")
    from train_throughput import recipe_config, synthetic, torch_setup

    images, labels = synthetic("mlp", 8)
    seen = []
    original = torch.nn.Linear.forward
    try:
        torch.nn.Linear.forward = lambda self, x: seen.append(original(self, x).dtype) or original(self, x)
        for bf16 in (False, True):
            seen.clear()
            torch_setup("mlp", images, labels, recipe_config("mlp"), bf16=bf16)()
            assert set(seen) == {torch.bfloat16 if bf16 else torch.float32}
    finally:
        torch.nn.Linear.forward = original


def test_the_compiled_twin_runs_its_network_under_torch_compile(monkeypatch):
    torch = pytest.importorskip("torch")
    from train_throughput import recipe_config, synthetic, torch_setup

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda module: compiled.append(module) or module)  # no C++ build here
    images, labels = synthetic("cnn_bn", 4)
    torch_setup("cnn_bn", images, labels, recipe_config("cnn_bn"), compile=False)()
    assert compiled == []
    torch_setup("cnn_bn", images, labels, recipe_config("cnn_bn"), compile=True)()
    assert [type(module).__name__ for module in compiled] == ["CourseCNN"]


def test_default_variants_add_bf16_where_the_cnn_recipe_defaults_to_it(monkeypatch):
    from keraszoo.training import distribute

    assert bench.parse_args([]).keras_variants is None  # decided by main, from the CPU
    for native, variants in ((True, ["bf16", "fp32"]), (False, ["fp32"])):
        monkeypatch.setattr(distribute, "native_bfloat16", lambda: native)
        assert bench.default_variants() == variants


KERAS_SIDE_ON_JAX = """
import sys

class NoTensorFlow:  # as on the lent GPU machines (benchmarks/gpu_check.sh), which have JAX and PyTorch only
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tensorflow_datasets"):
            raise ImportError(f"{name} is blocked in this test")

sys.meta_path.insert(0, NoTensorFlow())
sys.path.insert(0, sys.argv[1])
import train_throughput as bench

assert bench.set_threads("mlp", bench.parse_args([])) is None and bench.default_variants() == ["fp32"]
images, labels = bench.synthetic("cnn_bn", 16)
model, _ = bench.keras_model("cnn_bn", "bf16", images, labels)
assert model.dtype_policy.name == "mixed_bfloat16"  # on any device, not mixed_float16 on a GPU
images, labels = bench.synthetic("mlp", 16)
model, _ = bench.keras_model("mlp", "fp32", images, labels)
call, steady = bench.time_keras_steady(model, images, labels, 4)
assert call > 0 and steady > 0
print("ok", bench.keras_backend_and_devices())
"""


def test_the_keras_side_runs_on_jax_without_tensorflow(tmp_path):
    """gpu_check.sh times Keras on JAX where TensorFlow is missing: the models build from array splits,
    a PyDataset repeats the batch, and the steady rate is measured (here on JAX's CPU)."""
    pytest.importorskip("jax")
    import os
    import subprocess

    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", KERAS_SIDE_ON_JAX, str(ROOT / "benchmarks")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ok jax" in done.stdout


def test_gpu_check_says_what_is_missing_in_one_line(tmp_path):
    """Without the carried pack, or on a machine without a GPU, the script stops at once with one line
    (in its output and in summary.txt), before any long step."""
    import os
    import shutil
    import subprocess

    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has a GPU")
    script = ROOT / "benchmarks" / "gpu_check.sh"
    env = {**os.environ, "OUT": str(tmp_path / "out")}
    env.pop("KERASZOO_GPU_CHECK_ON_CPU", None)
    done = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "error: no .pack/cifar10/train.npz" in done.stdout
    (tmp_path / ".pack" / "cifar10").mkdir(parents=True)
    (tmp_path / ".pack" / "cifar10" / "train.npz").write_bytes(b"")
    done = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "error: no GPU here" in done.stdout
    assert (tmp_path / "out" / "summary.txt").read_text().startswith("error: no GPU here")


def test_each_timed_model_is_handed_on_before_the_next_starts(monkeypatch):
    """The record grows model by model, so a run cut short by a time limit (gpu_check.sh's) keeps what it timed."""
    import json
    import subprocess
    from pathlib import Path

    def child(argv, stdout=None):
        name, path = argv[argv.index("--models") + 1], argv[argv.index("--model-json") + 1]
        Path(path).write_text(json.dumps({"rate": name}))
        return subprocess.CompletedProcess(argv, 0 if name != "vit" else 1)

    monkeypatch.setattr(subprocess, "run", child)
    seen = []
    args = bench.parse_args(["--models", "mlp", "cnn_bn", "vit", "--keras-variants", "fp32"])
    with pytest.raises(SystemExit, match="timing vit failed"):
        bench.benchmark_models(args, lambda results: seen.append(list(results)))
    assert seen == [["mlp"], ["mlp", "cnn_bn"]]


def test_processes_pool_their_repetitions(monkeypatch):
    """--processes 2: each model timed by two children in turn, every summary over both children's runs."""
    import json
    import subprocess
    from pathlib import Path

    rates = iter([[100.0, 300.0], [200.0, 400.0]])

    def child(argv, stdout=None):
        runs = next(rates)
        summary = bench.summary(runs)
        Path(argv[argv.index("--model-json") + 1]).write_text(json.dumps(
            {"keraszoo": {"fp32": summary}, "network_alone": {"keraszoo": summary, "pytorch": summary},
             "tf_threads": {"intra_op": 0, "inter_op": 0}}))
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(subprocess, "run", child)
    args = bench.parse_args(["--models", "cnn_bn", "--keras-variants", "fp32", "--processes", "2"])
    result = bench.benchmark_models(args)["cnn_bn"]
    assert result["keraszoo"]["fp32"] == {"median": 250.0, "min": 100.0, "max": 400.0,
                                          "runs": [100.0, 300.0, 200.0, 400.0]}
    assert result["network_alone"]["pytorch"]["median"] == 250.0
    assert result["tf_threads"] == {"intra_op": 0, "inter_op": 0}
    with pytest.raises(SystemExit):
        bench.parse_args(["--processes", "0"])


@pytest.mark.slow  # ~30 s of two TensorFlow processes: the default suite stays under 10 minutes
def test_the_airbench_step_and_vit_memory_benchmarks_run_and_write_their_records(tmp_path):
    """The two benchmarks #38 and #36 are measured with, at the smallest sizes: each writes its record."""
    import json
    import subprocess

    out = tmp_path / "airbench.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "airbench_step.py"), "--variants", "fp32:relu",
                           "--batch-size", "8", "--steps", "1", "--warmup", "1", "--rounds", "1", "--output", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["variant"] == "fp32:relu" and row["median"] > 0
    out = tmp_path / "vit.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "vit_tokens.py"), "--memory", "--patch-sizes", "14",
                           "--steps", "1", "--repeats", "1", "--batch-size", "8", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["tokens"] == 5 and row["step_peak_mib"] >= 0 and row["resident_mib"] > 100
