"""keraszoo serve against hostile and odd clients, over real HTTP: no input makes a 5xx, a hang or a bloated
server, and where TF Serving has a rule (tensorflow_serving/util/json_tensor.cc, http_rest_api_util.cc) the
answer follows it."""

import base64
import http.client
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.tools import saved_model_utils

from keraszoo.export import load_serving_fn
from keraszoo.serving.config import ServingConfig
from keraszoo.serving.fuzz import fuzz_body, fuzz_target, jpeg_declaring, png_declaring

ROOT = Path(__file__).resolve().parents[1]
PREDICT = "/v1/models/cifar10_cnn:predict"


@pytest.fixture(scope="module")
def model_root(cnn_saved_models):
    return cnn_saved_models


@pytest.fixture(scope="module")
def server(model_root, serve_in_thread):
    url, app = serve_in_thread(ServingConfig(model_root=str(model_root), max_body_bytes=2 * 2**20,
                                             max_instances=64, threads=2))
    return url.rsplit(":", 1)[1], app


@pytest.fixture(scope="module")
def expected(model_root):
    serve = load_serving_fn(model_root / "cifar10_cnn" / "1")
    images = _images(2)
    return images, serve(images=tf.constant(images))["probabilities"].numpy()


def _images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _request(port, method, path, body=None, timeout=30):
    """(status, parsed JSON or None, headers) over a fresh connection, following no redirect."""
    connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=timeout)
    try:
        connection.request(method, path, body, {"Content-Type": "application/json"} if body is not None else {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(data), response.headers
    except ValueError:
        return response.status, None, response.headers


def _post(port, body, path=PREDICT):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    status, answer, _ = _request(port, "POST", path, body)
    return status, answer


def _assert_still_correct(port, expected):
    images, probabilities = expected
    status, answer = _post(port, {"instances": images.tolist()})
    assert status == 200, answer
    np.testing.assert_allclose([p["probabilities"] for p in answer["predictions"]], probabilities, atol=1e-6)


@pytest.mark.parametrize("path", [
    "/v1/models/cifar10_cnn/versions/%C2%B2:predict",  # superscript two: str.isdigit() says yes
    "/v1/models/cifar10_cnn/versions/%D9%A1:predict",  # Arabic-Indic one: int() reads it as 1
    "/v1/models/cifar10_cnn/versions/99999999999999999999:predict",  # past int64
    "/v1/models/cifar10_cnn/versions/-1:predict",
])
def test_versions_are_ascii_digits_within_int64(server, expected, path):
    port, _ = server
    status, answer = _post(port, {"instances": expected[0].tolist()}, path)
    assert status == 400, answer
    assert "Malformed request" in answer["error"] or "Failed to convert version" in answer["error"]


@pytest.mark.parametrize("name", [["serving_default"], {"a": 1}, None, False, [], 1])
def test_signature_name_must_be_a_string(server, expected, name):
    port, _ = server
    status, answer = _post(port, {"signature_name": name, "instances": expected[0].tolist()})
    assert (status, answer["error"]) == (400, "'signature_name' must be a string, e.g. \"serving_default\".")


def test_an_empty_signature_name_is_the_default_one(server, expected):
    port, _ = server
    status, answer = _post(port, {"signature_name": "", "instances": expected[0].tolist()})
    assert status == 200, answer


@pytest.mark.parametrize("body, message", [
    (b'{"instances": ' + b"[" * 1000 + b"]" * 1000 + b"}", "nested"),
    (b'{"instances": ' + b"[" * 100 + b"1" + b"]" * 100 + b"}", "nested too deeply"),
    (b'{"instances": [' + b"9" * 4301 + b"]}", "Malformed JSON"),
    (b'{"instances": [' + str(2**70).encode() + b"]}", "[0, 255]"),
])
def test_deep_nesting_and_huge_integers_are_400(server, expected, body, message):
    port, _ = server
    status, answer = _post(port, body)
    assert status == 400 and message in answer["error"], answer
    _assert_still_correct(port, expected)


def _with_a_boolean(images):
    rows = images.tolist()
    rows[0][5][7][1] = True
    return rows


@pytest.mark.parametrize("body", [
    {"instances": _with_a_boolean(_images(2))},  # one pixel among integers
    {"instances": np.ones((1, 32, 32, 3), bool).tolist()},  # a whole image of booleans
    {"inputs": _with_a_boolean(_images(2))},  # columnar
    {"inputs": {"images": _with_a_boolean(_images(1))}},
])
def test_booleans_are_not_uint8(server, body):
    port, _ = server
    status, answer = _post(port, body)
    assert status == 400 and "true/false are not numbers" in answer["error"], answer


def test_true_inside_a_string_is_not_a_boolean(server, expected):
    port, _ = server
    status, answer = _post(port, {"signature_name": "true", "instances": expected[0].tolist()})
    assert status == 400 and "'true' not found in signature def" in answer["error"], answer


def test_named_and_plain_instances_do_not_mix(server, expected):
    port, _ = server
    image = expected[0][0].tolist()
    for instances in ([image, {"images": image}], [{"images": image}, image]):
        status, answer = _post(port, {"instances": instances})
        assert status == 400 and "do not mix" in answer["error"], answer
    status, answer = _post(port, {"instances": [{"images": image, "extra": 1}]})
    assert status == 400 and "must be exactly ['images']" in answer["error"], answer
    status, answer = _post(port, {"instances": [{"images": image}, {"images": image}]})
    assert status == 200 and len(answer["predictions"]) == 2


def test_columnar_keys_beyond_the_signature_are_ignored(server, expected):
    port, _ = server
    images, probabilities = expected
    status, answer = _post(port, {"inputs": {"images": images.tolist(), "unused": [1, 2, 3]}})
    assert status == 200, answer
    np.testing.assert_allclose(answer["outputs"]["probabilities"], probabilities, atol=1e-6)
    status, answer = _post(port, {"inputs": {"pixels": images.tolist()}})
    assert status == 400 and "Missing named input: 'images'" in answer["error"], answer


def test_paths_ignore_case_but_the_method_does_not(server, expected):
    port, _ = server
    status, answer = _post(port, {"instances": expected[0].tolist()}, "/V1/MODELS/cifar10_cnn:predict")
    assert status == 200, answer
    status, answer, _ = _request(port, "GET", "/V1/Models/cifar10_cnn/VERSIONS/1/metadata")
    assert status == 200 and "serving_default" in answer["metadata"]["signature_def"]["signature_def"]
    status, answer = _post(port, {"instances": expected[0].tolist()}, "/v1/models/cifar10_cnn:PREDICT")
    assert status == 400 and "Malformed request" in answer["error"]
    status, answer = _post(port, {"instances": expected[0].tolist()}, "/v1/models/CIFAR10_CNN:predict")
    assert status == 404  # model names are names: TF Serving looks them up exactly


@pytest.mark.parametrize("method, path, status, message", [
    ("GET", "/v1/models/cifar10_cnn/", 400, "Malformed request"),  # Starlette answered 307
    ("GET", "/v1/models/cifar10_cnn/versions/1/", 400, "Malformed request"),
    ("GET", "/v1/models", 400, "Missing model name"),
    ("GET", "/v1/models/cifar10_cnn/labels/stable", 400, "version label"),
    ("POST", "/v1/models/cifar10_cnn:classify", 400, ":predict only"),
    ("DELETE", "/v1/models/cifar10_cnn", 400, "Malformed request"),
    ("GET", "/v2/models/cifar10_cnn", 404, "Not Found"),
])
def test_other_paths_are_malformed_requests_not_redirects(server, method, path, status, message):
    port, _ = server
    got, answer, headers = _request(port, method, path, b"{}" if method == "POST" else None)
    assert got == status and message in answer["error"], answer
    assert "location" not in headers


def test_metadata_names_tensors_as_the_saved_model_does(server, model_root):
    port, _ = server
    _, answer, _ = _request(port, "GET", "/v1/models/cifar10_cnn/metadata")
    served = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]
    stored = saved_model_utils.get_meta_graph_def(str(model_root / "cifar10_cnn" / "1"), "serve")
    stored = stored.signature_def["serving_default"]  # what `saved_model_cli show` prints
    assert {k: v["name"] for k, v in served["outputs"].items()} == {k: v.name for k, v in stored.outputs.items()}
    assert {k: v["name"] for k, v in served["inputs"].items()} == {k: v.name for k, v in stored.inputs.items()}
    assert served["outputs"]["probabilities"]["name"].startswith("StatefulPartitionedCall:")


@pytest.mark.parametrize("image, message", [
    (png_declaring(20000, 20000), "image is 20000x20000, the model takes 32x32"),
    (jpeg_declaring(tf.io.encode_jpeg(tf.zeros((32, 32, 3), tf.uint8)).numpy(), 12000, 12000),
     "image is 12000x12000, the model takes 32x32"),
    (b"GIF89a" + b"\0" * 64, "not a PNG or JPEG"),
])
def test_image_bombs_are_refused_from_their_header(server, expected, image, message):
    port, _ = server
    start = time.perf_counter()
    status, answer = _post(port, {"instances": [{"b64": base64.b64encode(image).decode()}]})
    assert status == 400 and message in answer["error"], answer
    assert time.perf_counter() - start < 2.0  # nothing was decoded
    _assert_still_correct(port, expected)


def test_jpeg_and_png_of_the_right_size_are_decoded(server, model_root):
    port, _ = server
    images = _images(2, seed=3)
    pngs = [tf.io.encode_png(image).numpy() for image in images]
    jpegs = [tf.io.encode_jpeg(image, quality=95).numpy() for image in images]
    serve = load_serving_fn(model_root / "cifar10_cnn" / "1")
    for files, decode in ((pngs, tf.io.decode_png), (jpegs, tf.io.decode_jpeg)):
        status, answer = _post(port, {"instances": [{"b64": base64.b64encode(f).decode()} for f in files]})
        assert status == 200, answer
        decoded = tf.stack([decode(f, channels=3) for f in files])
        np.testing.assert_allclose([p["probabilities"] for p in answer["predictions"]],
                                   serve(images=decoded)["probabilities"], atol=1e-6)


def test_a_server_fault_is_a_logged_500_and_serving_goes_on(server, expected, monkeypatch, caplog):
    port, _ = server
    import keraszoo.serving.core as core_module

    def broken(signature, inputs):
        raise RuntimeError("the model fell over")

    monkeypatch.setattr(core_module, "run_signature", broken)
    with caplog.at_level(logging.ERROR, logger="keraszoo.serve"):
        status, answer = _post(port, {"instances": expected[0].tolist()})
    assert status == 500 and answer["error"] == "internal server error: RuntimeError: the model fell over"
    assert any(r.exc_info and "the model fell over" in str(r.exc_info[1]) for r in caplog.records)
    monkeypatch.undo()
    _assert_still_correct(port, expected)


def test_each_request_gets_one_access_log_line(server, caplog):
    port, _ = server
    with caplog.at_level(logging.INFO, logger="keraszoo.serve.access"):
        _request(port, "GET", "/v1/models/cifar10_cnn")
        _post(port, b"{not json")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "keraszoo.serve.access"]
    assert [(l["method"], l["path"], l["status"]) for l in lines] == [
        ("GET", "/v1/models/cifar10_cnn", 200), ("POST", PREDICT, 400)]
    assert all(l["latency_ms"] >= 0 and l["client"] == "127.0.0.1" for l in lines)


# Bounded fuzzing: random, mutated and truncated bodies and paths from four clients at once.
def test_fuzzing_never_gets_a_5xx_or_a_hang(server, expected):
    port, _ = server
    valid = json.dumps({"instances": expected[0][:1].tolist()}).encode()
    png = tf.io.encode_png(expected[0][0]).numpy()
    statuses, failures = {}, []

    def client(seed, count):
        rng = random.Random(seed)
        connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
        for _ in range(count):
            method, path = fuzz_target(rng, "cifar10_cnn") if rng.random() < 0.15 else ("POST", PREDICT)
            body = fuzz_body(rng, valid, png) if method != "GET" else None
            try:
                connection.request(method, path, body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as error:  # a hang is a timeout here
                failures.append(f"{method} {path} {body[:80] if body else b''}: {error!r}")
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
                continue
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if response.status >= 500:
                failures.append(f"{response.status} {method} {path} {body[:200] if body else b''}")
        connection.close()

    threads = [threading.Thread(target=client, args=(seed, 600)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a fuzzing client hung"
    assert not failures, failures[:5]
    assert sum(statuses.values()) == 2400 and statuses.get(400, 0) > 1000, statuses
    _assert_still_correct(port, expected)


def _serve_command(*args):
    grpc = () if "--grpc-port" in args else ("--grpc-port", 0)  # not TF Serving's 8500: it may be taken here
    return [sys.executable, "-m", "keraszoo", "serve", *map(str, args), *map(str, grpc)]


def test_a_busy_port_or_a_bad_one_is_one_line_at_once(model_root):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        for args, message in ((("--port", port), "Address already in use"), (("--port", 99999), "between 1 and 65535"),
                              (("--port", free, "--grpc-port", port), f"cannot listen on 127.0.0.1:{port}")):
            start = time.monotonic()
            result = subprocess.run(_serve_command(model_root, *args), capture_output=True, text=True, timeout=60)
            assert result.returncode == 2 and message in result.stderr, result
            assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""  # no model was loaded
            assert time.monotonic() - start < 20


def test_sigterm_answers_the_requests_in_flight_then_stops(model_root, expected):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # A 1.5 s batch timeout keeps a lone request in flight long enough to send SIGTERM during it.
    process = subprocess.Popen(_serve_command(model_root, "--port", port, "--batch-timeout-ms", 1500),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, cwd=ROOT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if _request(port, "GET", "/v1/models/cifar10_cnn", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "keraszoo serve did not start"
            time.sleep(0.2)
        answers = []
        client = threading.Thread(target=lambda: answers.append(_post(port, {"instances": expected[0].tolist()})))
        client.start()
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        client.join(timeout=30)
        output, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    assert answers and answers[0][0] == 200, answers
    np.testing.assert_allclose([p["probabilities"] for p in answers[0][1]["predictions"]], expected[1], atol=1e-6)
    assert process.returncode == 0 and "keraszoo serve: stopped" in output, output
    assert '"status": 200' in output  # the access log line of the request answered during shutdown


def test_the_fast_pixel_reader_agrees_with_json_or_steps_aside(model_root):
    """``{"instances": <pixels>}`` skips Python's lists; it must give exactly what the JSON says, or nothing."""
    from keraszoo.serving import codec
    from keraszoo.serving.repository import load_version

    signature = load_version("cifar10_cnn", 1, model_root / "cifar10_cnn" / "1").signatures["serving_default"]
    rng = random.Random(0)
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3))
    images[0, 0, 0] = [0, 10, 255]
    bodies = [json.dumps({"instances": images[:n].tolist()}, separators=separators).encode()
              for n in (1, 3) for separators in ((",", ":"), (", ", ": "))]
    read = [codec._plain_pixels(body, signature) for body in bodies]
    assert all(r is not None and np.array_equal(r, images[:len(r)]) for r in read)
    edits = [(b"[0, 10", b"[00, 10"), (b"[0, 10", b"[0, 010"), (b"[0, 10", b"[0 10"), (b"[0, 10", b"[, 10"),
             (b"[0, 10", b"[256, 10"), (b"[0, 10", b"[18446744073709551616, 10"), (b"[0, 10", b"[[0], 10"),
             (b"[0, 10", b"[-0, 10"), (b"[0, 10", b"[0.0, 10"), (b"]]]]", b"]]]"), (b"[[[[", b"[[[")]
    mutated = [bodies[3].replace(old, new, 1) for old, new in edits]
    for _ in range(300):  # random byte edits of a valid body
        body = bytearray(bodies[3])
        body[rng.randrange(len(body))] = rng.choice(b"0123456789[], ")
        mutated.append(bytes(body))
    for body in mutated:
        fast = codec._plain_pixels(body, signature)
        if fast is None:
            continue
        reference = np.asarray(json.loads(body)["instances"])  # valid JSON, or the fast reader was wrong
        assert reference.shape[1:] == (32, 32, 3) and reference.min() >= 0 and reference.max() <= 255
        np.testing.assert_array_equal(fast, reference)
    assert all(codec._plain_pixels(body, signature) is None for body in mutated[:len(edits)])
