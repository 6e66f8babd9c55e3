"""A newcomer's first hour: run.sh's checks before installing, one data-folder rule for run.sh and every
command, a quickstart that leaves the shipped models alone and prints no TensorFlow noise, predict --version,
TensorBoard logs."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keraszoo.data import folder as data_folder_module
from keraszoo.data.folder import data_folder
from keraszoo.serving.config import ServingConfig

ROOT = Path(__file__).resolve().parents[1]
NOISE = re.compile(r"cuInit|cuda|absl::InitializeLog|cpu_feature_guard|NodeDef mentions|rebuild TensorFlow", re.I)


def _run_sh(mode, tmp_path, *, path=None, **env):
    """run.sh MODE with a venv location under tmp_path (which must not appear: checks come first)."""
    environment = {**os.environ, "KERASZOO_VENV": str(tmp_path / "venv"), **env}
    if path is not None:
        environment["PATH"] = path
    result = subprocess.run(["bash", str(ROOT / "run.sh"), mode], env=environment, capture_output=True, text=True,
                            timeout=60)
    assert not (tmp_path / "venv").exists(), "run.sh created the venv before its checks failed"
    return result


def _tools_without(tmp_path, missing: str) -> str:
    """A PATH holding the tools run.sh uses, except ``missing``."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("bash", "dirname", "cat", "grep", "head", "sed", "python3", "curl"):
        found = shutil.which(name) if name != "python3" else sys.executable
        if name != missing and found:
            (tools / name).symlink_to(found)
    return str(tools)


def test_run_sh_needs_curl_for_quickstart(tmp_path):
    result = _run_sh("quickstart", tmp_path, path=_tools_without(tmp_path, "curl"))
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        "run.sh: quickstart queries the server with curl: install curl (apt install curl)."]


def test_run_sh_finds_a_busy_port_before_installing(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = _run_sh("quickstart", tmp_path, PYTHON=sys.executable, KERASZOO_PORT=str(port))
    assert result.returncode == 1 and f"port {port} on 127.0.0.1 is busy" in result.stderr
    assert "KERASZOO_PORT" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_run_sh_refuses_an_old_python(tmp_path):
    old = tmp_path / "python3.8"
    old.write_text('#!/bin/sh\nif [ "$1" = "--version" ]; then echo "Python 3.8.10"; exit 0; fi\nexit 1\n')
    old.chmod(0o755)
    result = _run_sh("test", tmp_path, PYTHON=str(old))
    assert result.returncode == 1 and result.stderr.strip() == (
        "run.sh: Python 3.8.10 is too old: keraszoo needs Python >= 3.10 (set PYTHON=/path/to/python3.X).")


def test_run_sh_offline_without_data_stops_before_installing(tmp_path):
    tools = _tools_without(tmp_path, "curl")
    (Path(tools) / "curl").write_text("#!/bin/sh\nexit 6\n")  # could not resolve host
    (Path(tools) / "curl").chmod(0o755)
    (tmp_path / "data").mkdir()
    result = _run_sh("quickstart", tmp_path, path=tools, PYTHON=sys.executable, TFDS_DATA_DIR=str(tmp_path / "data"))
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert f"no prepared CIFAR-10 in {tmp_path / 'data'}" in result.stderr and "unreachable" in result.stderr


def test_one_data_folder_rule_for_run_sh_and_every_command(tmp_path, monkeypatch):
    tmp_path = tmp_path.resolve()  # keraszoo names folders resolved; the temporary folder may be under a link
    checkout = tmp_path / "shared" / "tensorflow_datasets"
    checkout.mkdir(parents=True)
    monkeypatch.setattr(data_folder_module, "CHECKOUT_DATA", checkout)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "env"))
    assert data_folder(tmp_path / "flag") == (str(tmp_path / "flag"), "--data-dir")
    assert data_folder() == (str(tmp_path / "env"), "$TFDS_DATA_DIR")
    monkeypatch.delenv("TFDS_DATA_DIR")
    assert data_folder() == (str(checkout), "the folder beside this checkout")
    checkout.rmdir()
    assert data_folder() == (str(Path("~/tensorflow_datasets").expanduser().resolve()), "TFDS's default")
    # run.sh runs the same file with the system Python, before anything is installed:
    monkeypatch.undo()
    env = {k: v for k, v in os.environ.items() if k != "TFDS_DATA_DIR"}
    printed = subprocess.run([sys.executable, "-I", str(ROOT / "keraszoo/data/folder.py"), "cifar10", "nope"],
                             env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    assert printed[:2] == list(data_folder()) and printed[2:] == ["nope"]


def test_keraszoo_data_says_which_folder_it_read(data_dir, capsys):
    from keraszoo.cli import main

    assert main(["data", "--data-dir", data_dir, "mnist"]) == 0
    assert f"TFDS data_dir: {data_dir} (--data-dir)" in capsys.readouterr().out


def _quickstart_command() -> str:
    """The recipe command ./run.sh quickstart runs, as written in run.sh."""
    text = (ROOT / "run.sh").read_text()
    start = text.index("python recipes/cifar10_cnn.py")
    return text[start:text.index('"$@"', start) + 4].replace("\\\n", " ")


def test_quickstart_exports_under_its_own_name_and_prints_no_tensorflow_noise(data_dir, tmp_path):
    """The README's curl/predict examples keep answering with the shipped cifar10_cnn."""
    command = _quickstart_command()
    assert "--export-name cifar10_cnn_quickstart" in command
    overrides = ["--train-split", "train[:256]", "--validation-split", "train[-128:]", "--test-split", "test[:128]",
                 "--epochs", "1",
                 "--output", str(tmp_path / "run"), "--export-dir", str(tmp_path / "saved_models")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "KERASZOO_TF_LOGS"))}
    result = subprocess.run(["bash", "-c", command, "run.sh", *overrides], cwd=ROOT, capture_output=True, text=True,
                            timeout=600, env={**env, "TFDS_DATA_DIR": data_dir, "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "saved_models").iterdir()) == ["cifar10_cnn_quickstart"]
    noise = [line for line in (result.stdout + result.stderr).splitlines() if NOISE.search(line)]
    assert not noise, noise
    assert f"data: cifar10 3.0.2 from {data_dir}" in result.stdout  # the folder it read is said


def test_tensorflow_logs_come_back_when_asked():
    """The positive control of the quickstart test above: the same import does write those lines."""
    loud = subprocess.run([sys.executable, "-c", "import keraszoo, tensorflow as tf; tf.ones(1)"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "KERASZOO_TF_LOGS": "1"})
    assert "absl::InitializeLog" in loud.stderr and NOISE.search(loud.stderr)


@pytest.fixture(scope="module")
def two_versions(cnn_saved_models, serve_in_thread, tmp_path_factory):
    """A server holding cifar10_cnn versions 1 and 2 (other weights). Started outside any test: uvicorn
    binds its log handlers to the sys.stderr of the moment, which capsys would close under it."""
    import keras

    from keraszoo.export import export_classifier
    from keraszoo.models import build_course_cnn, build_image_classifier, pixel_scaling

    root = tmp_path_factory.mktemp("two_versions") / "saved_models"
    shutil.copytree(cnn_saved_models, root)
    keras.utils.set_random_seed(7)
    export_classifier(build_image_classifier(backbone=build_course_cnn(), image_shape=(32, 32, 3),
                                             preprocessing=[pixel_scaling()], name="cifar10_cnn"),
                      export_dir=root, name="cifar10_cnn")
    url, _ = serve_in_thread(ServingConfig(model_root=str(root), settle_s=0.0))
    return url, root


def test_predict_asks_for_the_version_it_is_given(two_versions, tmp_path, capsys):
    from keraszoo.cli import main
    from keraszoo.export import load_serving_fn

    url, root = two_versions
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    (tmp_path / "x.png").write_bytes(tf.io.encode_png(image).numpy())
    for version in (1, 2):
        capsys.readouterr()
        assert main(["predict", "--model", "cifar10_cnn", "--version", str(version), "--url", url, "--top", "10",
                     str(tmp_path / "x.png")]) == 0
        out = capsys.readouterr().out
        assert f"cifar10_cnn version {version} at {url}:" in out
        expected = load_serving_fn(root / "cifar10_cnn" / str(version))(images=tf.constant(image[None]))
        best = int(np.argmax(expected["probabilities"][0]))
        assert out.splitlines()[1].split(": ")[1].startswith(f"{best} ")  # no class names: indices
    assert main(["predict", "--model", "cifar10_cnn", "--version", "9", "--url", url, str(tmp_path / "x.png")]) == 2
    assert "versions served: [1, 2]" in capsys.readouterr().err


def test_tensorboard_logs_losses_and_the_learning_rate(tmp_path):
    from keraszoo.recipes import mlp

    config = mlp.MLPConfig(dataset="circles", epochs=2, output=str(tmp_path / "run"), export=False, verbose="0",
                           tensorboard=True)
    mlp.main(config)
    tags = set()
    for events in (tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(events)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags |= {value.tag for value in event.summary.value}
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= tags, tags
    assert json.loads((tmp_path / "run" / "config.json").read_text())["tensorboard"] is True


def test_the_readme_layout_names_every_folder_of_the_tree():
    """The README's layout section is the map a newcomer reads first: every package folder and every
    top-level folder of the repository is on it."""
    text = (ROOT / "README.md").read_text()
    layout = text[text.index("## Layout"):text.index("## Development")]
    packages = [path.name for path in (ROOT / "keraszoo").iterdir() if (path / "__init__.py").is_file()]
    top = ["keraszoo", "recipes", "benchmarks", "tests", "saved_models", "docs"]
    assert all((ROOT / name).is_dir() for name in top)
    missing = [f"{name}/" for name in packages + top if f"{name}/" not in layout]
    assert missing == [], f"README's layout misses {missing}"
    assert len(text.splitlines()) <= 150  # a front page; the rest lives in docs/
