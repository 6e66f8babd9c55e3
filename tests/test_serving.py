"""keraszoo serve over real HTTP on a loopback port: TF Serving's API, errors, batching, hot versions."""

import base64
import json
import shutil
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tensorflow as tf

from keraszoo.export import load_serving_fn
from keraszoo.serving import Client, ServingError
from keraszoo.serving.config import ServingConfig


@pytest.fixture(scope="module")
def model_root(cnn_saved_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("served") / "saved_models"
    shutil.copytree(cnn_saved_models, root)  # this module adds versions to it
    return root


@pytest.fixture(scope="module")
def server(model_root, serve_in_thread):
    return serve_in_thread(ServingConfig(model_root=str(model_root), max_body_bytes=2 * 2**20, max_instances=64,
                                         poll_interval_s=0.2, settle_s=0.3, max_batch_size=32, batch_timeout_ms=5))


def _images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _post(url, data: bytes):
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_predictions_equal_the_in_process_model(server, model_root):
    url, _ = server
    images = _images(3)
    expected = load_serving_fn(model_root / "cifar10_cnn" / "1")(images=tf.constant(images))
    rows = Client(url).predict("cifar10_cnn", images.tolist())["predictions"]
    np.testing.assert_allclose([r["probabilities"] for r in rows], expected["probabilities"], atol=1e-6)
    columns = Client(url).predict("cifar10_cnn", inputs={"images": images.tolist()})["outputs"]
    np.testing.assert_allclose(columns["logits"], expected["logits"], atol=1e-5)
    explicit = Client(url).predict("cifar10_cnn", images[:1].tolist(), version=1)["predictions"]
    np.testing.assert_allclose(explicit[0]["logits"], expected["logits"][0], atol=1e-5)


def test_b64_png_images_are_decoded(server, model_root):
    url, _ = server
    images = _images(2, seed=1)
    pngs = [tf.io.encode_png(image).numpy() for image in images]
    predictions = Client(url).predict_images("cifar10_cnn", pngs)
    expected = load_serving_fn(model_root / "cifar10_cnn" / "1")(images=tf.constant(images))
    np.testing.assert_allclose([p["probabilities"] for p in predictions], expected["probabilities"], atol=1e-6)


def test_status_and_metadata_describe_the_signature(server):
    url, _ = server
    client = Client(url)
    assert client.status("cifar10_cnn")["model_version_status"][0] == {
        "version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    signature = client.metadata("cifar10_cnn")["metadata"]["signature_def"]["signature_def"]["serving_default"]
    images = signature["inputs"]["images"]
    assert images["dtype"] == "DT_UINT8"
    assert [d["size"] for d in images["tensor_shape"]["dim"]] == ["-1", "32", "32", "3"]
    assert set(signature["outputs"]) == {"probabilities", "logits"}
    assert signature["outputs"]["probabilities"]["dtype"] == "DT_FLOAT"


@pytest.mark.parametrize("path, body, status, message", [
    ("cifar10_cnn:predict", b"{not json", 400, "Malformed JSON"),
    ("cifar10_cnn:predict", json.dumps({"instances": np.zeros((1, 28, 28, 3), int).tolist()}).encode(), 400, "shape"),
    ("cifar10_cnn:predict", json.dumps({"instances": np.full((1, 32, 32, 3), 0.5).tolist()}).encode(), 400, "whole numbers"),
    ("cifar10_cnn:predict", json.dumps({"instances": np.full((1, 32, 32, 3), 300).tolist()}).encode(), 400, "[0, 255]"),
    ("cifar10_cnn:predict", json.dumps({"instances": [{"b64": base64.b64encode(b"not an image").decode()}]}).encode(), 400, "not a PNG"),
    ("cifar10_cnn:predict", json.dumps({"instances": []}).encode(), 400, "non-empty"),
    ("cifar10_cnn:predict", json.dumps({"instances": [[1, 2], [3]]}).encode(), 400, "ragged"),
    ("cifar10_cnn:predict", json.dumps({"instances": np.zeros((65, 32, 32, 3), int).tolist()}).encode(), 400, "limit is 64"),
    ("cifar10_cnn:predict", json.dumps({"instances": [[0]], "inputs": [[0]]}).encode(), 400, "exactly one"),
    ("cifar10_cnn:predict", json.dumps({"signature_name": "nope", "instances": [[0]]}).encode(), 400, "nope"),
    ("resnet:predict", json.dumps({"instances": [[0]]}).encode(), 404, "resnet"),
    ("cifar10_cnn/versions/7:predict", json.dumps({"instances": [[0]]}).encode(), 404, "versions served: [1]"),
    ("cifar10_cnn/versions/x:predict", json.dumps({"instances": [[0]]}).encode(), 400, "Malformed request"),
    ("cifar10_cnn:predict", b"[" + b"0," * 1_100_000 + b"0]", 413, "exceeds the limit"),
])
def test_bad_requests_get_a_4xx_and_the_server_keeps_serving(server, path, body, status, message):
    url, _ = server
    got_status, got = _post(f"{url}/v1/models/{path}", body)
    assert got_status == status and message in got["error"], got
    assert len(Client(url).predict("cifar10_cnn", _images(1).tolist())["predictions"]) == 1


def test_unknown_paths_answer_json(server):
    url, _ = server
    with pytest.raises(ServingError) as error:
        Client(url)._call(f"{url}/v2/nothing")
    assert error.value.status == 404


def test_32_concurrent_clients_are_batched(server, model_root):
    url, app = server
    expected = load_serving_fn(model_root / "cifar10_cnn" / "1")(images=tf.constant(_images(32)))["probabilities"]
    batches_before = sum(b.batches_run for b in app.state.batchers.values())

    def one(i):
        return Client(url).predict("cifar10_cnn", _images(32)[i:i + 1].tolist())["predictions"][0]["probabilities"]

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, range(32)))
    np.testing.assert_allclose(results, expected, atol=1e-6)
    batches = sum(b.batches_run for b in app.state.batchers.values()) - batches_before
    assert batches < 32  # some requests shared a model call


def test_a_new_version_is_picked_up_and_half_written_ones_are_not(server, model_root):
    url, _ = server
    client = Client(url)
    half = model_root / "cifar10_cnn" / "3"
    half.mkdir()
    shutil.copy(model_root / "cifar10_cnn" / "1" / "saved_model.pb", half)  # no variables yet
    shutil.copytree(model_root / "cifar10_cnn" / "1", model_root / "cifar10_cnn" / "2")
    deadline = time.monotonic() + 30
    while client.status("cifar10_cnn")["model_version_status"][0]["version"] != "2":
        assert time.monotonic() < deadline, "version 2 was not picked up"
        time.sleep(0.2)
    time.sleep(1.0)
    assert [s["version"] for s in client.status("cifar10_cnn")["model_version_status"]] == ["2", "1"]
    assert client.metadata("cifar10_cnn")["model_spec"]["version"] == "2"  # the newest serves by default
    shutil.rmtree(half)
