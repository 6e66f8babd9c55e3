"""keraszoo serve as TF Serving's users run it: gRPC through the official client, Prometheus metrics, a model
config file changed while serving, warmup, CORS and deadlines. Real sockets, a real exported model."""

import json
import logging
import re
import shutil
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from keraszoo.serving.config import ServingConfig


@pytest.fixture(scope="module")
def model_root(cnn_saved_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("grpc") / "saved_models"
    shutil.copytree(cnn_saved_models, root)
    return root


@pytest.fixture(scope="module")
def server(model_root, serve_in_thread):
    url, app = serve_in_thread(ServingConfig(model_root=str(model_root), max_body_bytes=2**20, max_instances=64,
                                             poll_interval_s=0.2, settle_s=0.1, access_log=False))
    channel = grpc.insecure_channel(f"127.0.0.1:{app.state.server.config.grpc_port}")
    yield url, channel
    channel.close()


def _images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _request(images, name="cifar10_cnn", version=None, label=None, proto=None):
    """What the official client's users write: a PredictRequest filled with tf.make_tensor_proto."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = "serving_default"
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    request.inputs["images"].CopyFrom(proto if proto is not None else tf.make_tensor_proto(images))
    return request


def _rest(url, path, body=None, headers=None, method=None):
    request = urllib.request.Request(url + path, data=None if body is None else json.dumps(body).encode(),
                                     headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def _code(call):
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def test_the_official_client_predicts_what_rest_predicts(server):
    url, channel = server
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    images = _images(5)
    response = stub.Predict(_request(images), timeout=30)
    logits = tf.make_ndarray(response.outputs["logits"])
    status, body, _ = _rest(url, "/v1/models/cifar10_cnn:predict", {"instances": images.tolist()})
    rest = np.array([row["logits"] for row in json.loads(body)["predictions"]])
    assert status == 200 and logits.shape == (5, 10)
    np.testing.assert_allclose(logits, rest, rtol=1e-6, atol=1e-6)  # one model, one computation: float32 equal
    assert response.model_spec.name == "cifar10_cnn" and response.model_spec.version.value == 1
    assert set(response.outputs) == {"logits", "probabilities"}
    filtered = stub.Predict(_with_filter(images[:1]), timeout=30)
    assert set(filtered.outputs) == {"probabilities"}


def _with_filter(images):
    request = _request(images)
    request.output_filter.append("probabilities")
    return request


def test_metadata_and_status_through_the_official_stubs(server):
    _, channel = server
    metadata_request = get_model_metadata_pb2.GetModelMetadataRequest()
    metadata_request.model_spec.name = "cifar10_cnn"
    metadata_request.metadata_field.append("signature_def")
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(metadata_request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    serving = signatures.signature_def["serving_default"]
    assert serving.inputs["images"].dtype == tf.uint8.as_datatype_enum
    assert [d.size for d in serving.inputs["images"].tensor_shape.dim] == [-1, 32, 32, 3]
    assert set(serving.outputs) == {"logits", "probabilities"}

    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "cifar10_cnn"
    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status_request, timeout=30)
    (version,) = status.model_version_status
    assert version.version == 1 and version.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE


def test_each_mistake_gets_tf_servings_status_code_and_serving_goes_on(server):
    _, channel = server
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    images = _images(2)
    shape_of = tf.make_tensor_proto(np.zeros((2, 28, 28, 1), np.uint8))
    lying = tf.make_tensor_proto(images)
    lying.tensor_shape.dim[0].size = 10**9  # a billion images declared, two sent
    negative = tf.make_tensor_proto(images)
    negative.tensor_shape.dim[1].size = -32
    cases = {
        "float instead of uint8": (_request(None, proto=tf.make_tensor_proto(images.astype(np.float32))),
                                   grpc.StatusCode.INVALID_ARGUMENT, "expects DT_UINT8, got DT_FLOAT"),
        "28x28 for a 32x32 model": (_request(None, proto=shape_of), grpc.StatusCode.INVALID_ARGUMENT, "must have shape"),
        "negative dimension": (_request(None, proto=negative), grpc.StatusCode.INVALID_ARGUMENT, "must have shape"),
        "strings": (_request(None, proto=tf.make_tensor_proto([b"x", b"y"])), grpc.StatusCode.INVALID_ARGUMENT,
                    "got DT_STRING"),
        "a billion images declared": (_request(None, proto=lying), grpc.StatusCode.RESOURCE_EXHAUSTED, "the limit is 64"),
        "65 images": (_request(_images(65)), grpc.StatusCode.RESOURCE_EXHAUSTED, "the limit is 64"),
        "unknown model": (_request(images, name="nope"), grpc.StatusCode.NOT_FOUND, "Servable not found"),
        "unknown version": (_request(images, version=7), grpc.StatusCode.NOT_FOUND, "Specific(cifar10_cnn, 7)"),
        "unknown label": (_request(images, label="canary"), grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable"),
        "no model name": (_request(images, name=""), grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec name"),
    }
    for what, (request, code, says) in cases.items():
        got, details = _code(lambda r=request: stub.Predict(r, timeout=30))
        assert (got, says in details) == (code, True), (what, got, details)
    too_big = _request(None, proto=tf.make_tensor_proto(np.zeros((8, 256, 256, 5), np.uint8)))  # 2.6 MB > 1 MB
    assert _code(lambda: stub.Predict(too_big, timeout=30))[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    from tensorflow_serving.apis import classification_pb2

    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "cifar10_cnn"
    code, details = _code(lambda: stub.Classify(classify, timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "Predict only" in details
    response = stub.Predict(_request(images), timeout=30)  # still right after all of that
    assert tf.make_ndarray(response.outputs["logits"]).shape == (2, 10)


def _metric(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_prometheus_metrics_move_with_requests(server):
    url, channel = server
    scrape = lambda: _rest(url, "/monitoring/prometheus/metrics")  # noqa: E731
    status, before, headers = scrape()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    before = before.decode()
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    for _ in range(3):
        stub.Predict(_request(_images(4)), timeout=30)
    _rest(url, "/v1/models/cifar10_cnn:predict", {"instances": _images(2).tolist()})
    _rest(url, "/v1/models/nope:predict", {"instances": _images(1).tolist()})
    after = scrape()[1].decode()
    count = ":tensorflow:serving:request_count_total"
    assert _metric(after, count, model_name="cifar10_cnn", entrypoint="GRPC", status="OK") - \
        _metric(before, count, model_name="cifar10_cnn", entrypoint="GRPC", status="OK") == 3
    assert _metric(after, count, model_name="nope", entrypoint="REST", status="NOT_FOUND") - \
        _metric(before, count, model_name="nope", entrypoint="REST", status="NOT_FOUND") == 1
    latency = ":tensorflow:serving:request_latency_count"
    assert _metric(after, latency, model_name="cifar10_cnn", API="predict") > \
        _metric(before, latency, model_name="cifar10_cnn", API="predict")
    assert _metric(after, ":tensorflow:serving:batching_session:processed_batch_size_sum") >= 14
    assert _metric(after, ":keraszoo:serving:model_version_state", model_name="cifar10_cnn", state="AVAILABLE") == 1
    assert re.search(r"^process_resident_memory_bytes [\d.e+]+$", after, re.MULTILINE)


def test_cors_preflight_and_header(model_root, serve_in_thread):
    url, _ = serve_in_thread(ServingConfig(model_root=str(model_root), cors_allow_origin="https://example.org",
                                           grpc_port=0, access_log=False))
    status, _, headers = _rest(url, "/v1/models/cifar10_cnn:predict", method="OPTIONS", headers={
        "Origin": "https://example.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert status == 200 and headers["access-control-allow-origin"] == "https://example.org"
    status, _, headers = _rest(url, "/v1/models/cifar10_cnn", headers={"Origin": "https://example.org"})
    assert status == 200 and headers["access-control-allow-origin"] == "https://example.org"
    status, _, headers = _rest(url, "/v1/models/cifar10_cnn", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in headers


def test_deadlines_answer_in_time_and_serving_goes_on(model_root, serve_in_thread, monkeypatch):
    import keraszoo.serving.core as core

    url, app = serve_in_thread(ServingConfig(model_root=str(model_root), rest_api_timeout_ms=200, batching=False,
                                             access_log=False))
    slow = core.run_signature

    def sleepy(signature, inputs):
        time.sleep(1.0)
        return slow(signature, inputs)

    monkeypatch.setattr(core, "run_signature", sleepy)
    start = time.perf_counter()
    status, body, _ = _rest(url, "/v1/models/cifar10_cnn:predict", {"instances": _images(1).tolist()})
    assert status == 504 and "timed out after 200 ms" in json.loads(body)["error"]
    assert time.perf_counter() - start < 0.9
    channel = grpc.insecure_channel(f"127.0.0.1:{app.state.server.config.grpc_port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    assert _code(lambda: stub.Predict(_request(_images(1)), timeout=0.2))[0] == grpc.StatusCode.DEADLINE_EXCEEDED
    monkeypatch.undo()
    time.sleep(1.0)  # the sleepy calls finish
    assert tf.make_ndarray(stub.Predict(_request(_images(1)), timeout=30).outputs["logits"]).shape == (1, 10)
    channel.close()


def _write_config(path, models):
    entries = []
    for name, base, policy, labels in models:
        label_text = " ".join(f'version_labels {{ key: "{k}" value: {v} }}' for k, v in labels.items())
        entries.append(f'config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" '
                       f"model_version_policy {{ {policy} }} {label_text} }}")
    tmp = path.with_suffix(".tmp")
    tmp.write_text("model_config_list {\n  " + "\n  ".join(entries) + "\n}\n")
    tmp.replace(path)  # as an operator's tool writes it: whole, never half


def _wait_for(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the server did not follow the config file"
        time.sleep(0.1)


def test_a_config_file_edited_while_serving_adds_removes_and_relabels(cnn_saved_models, tmp_path, serve_in_thread,
                                                                      caplog):
    base = tmp_path / "cnn"
    shutil.copytree(cnn_saved_models / "cifar10_cnn", base)
    shutil.copytree(base / "1", base / "2")
    config_file = tmp_path / "models.config"
    _write_config(config_file, [("alpha", base, "all {}", {"stable": 1, "canary": 2})])
    url, app = serve_in_thread(ServingConfig(model_root="unused", model_config_file=str(config_file),
                                             model_config_file_poll_wait_seconds=0.2, poll_interval_s=0.1,
                                             settle_s=0.0, access_log=False))
    channel = grpc.insecure_channel(f"127.0.0.1:{app.state.server.config.grpc_port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    _wait_for(lambda: app.state.repository.models() == {"alpha": [1, 2]})
    assert stub.Predict(_request(_images(1), name="alpha", label="canary"), timeout=30).model_spec.version.value == 2
    status, body, _ = _rest(url, "/v1/models/alpha/labels/stable")
    assert status == 200 and json.loads(body)["model_version_status"][0]["version"] == "1"

    # Add beta (latest version only), drop alpha, move nothing else: no restart.
    _write_config(config_file, [("beta", base, "latest { num_versions: 1 }", {"stable": 2})])
    _wait_for(lambda: app.state.repository.models() == {"beta": [2]})
    assert _rest(url, "/v1/models/alpha:predict", {"instances": _images(1).tolist()})[0] == 404
    status, body, _ = _rest(url, "/v1/models/alpha")
    assert status == 200 and {v["state"] for v in json.loads(body)["model_version_status"]} == {"END"}
    status, body, _ = _rest(url, "/v1/models/beta/labels/stable:predict", {"instances": _images(1).tolist()})
    assert status == 200

    # Relabel, then a malformed file: one line, and the last good configuration keeps serving.
    _write_config(config_file, [("beta", base, "specific { versions: 1 versions: 2 }", {"stable": 1})])
    _wait_for(lambda: app.state.repository.models() == {"beta": [1, 2]})
    assert stub.Predict(_request(_images(1), name="beta", label="stable"), timeout=30).model_spec.version.value == 1
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="keraszoo.serve"):
        config_file.write_text("model_config_list { config { name: ")
        time.sleep(1.0)
    said = [r.getMessage() for r in caplog.records if "models.config" in r.getMessage()]
    assert len(said) == 1 and "still serving the previous configuration" in said[0]
    assert app.state.repository.models() == {"beta": [1, 2]}
    assert _rest(url, "/v1/models/beta:predict", {"instances": _images(1).tolist()})[0] == 200

    # ModelService.HandleReloadConfigRequest: a new configuration over gRPC, applied before it answers.
    from google.protobuf import text_format
    from tensorflow_serving.apis import model_management_pb2
    from tensorflow_serving.config import model_server_config_pb2

    reload = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(f'model_config_list {{ config {{ name: "gamma" base_path: "{base}" '
                      "model_version_policy { specific { versions: 2 } } } }", reload.config)
    model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(reload, timeout=60)
    assert app.state.repository.models() == {"gamma": [2]}
    bad = model_management_pb2.ReloadConfigRequest(config=model_server_config_pb2.ModelServerConfig())
    code, details = _code(lambda: model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(bad))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "model_config_list" in details
    channel.close()


def test_warmup_is_replayed_and_a_damaged_file_still_loads(cnn_saved_models, tmp_path, caplog):
    from keraszoo.serving.repository import load_version
    from keraszoo.serving.warmup import WARMUP_FILE, replay_warmup

    version = tmp_path / "cifar10_cnn" / "1"
    shutil.copytree(cnn_saved_models / "cifar10_cnn" / "1", version)
    assert (version / WARMUP_FILE).is_file()  # every export writes one
    assert replay_warmup(load_version("cifar10_cnn", 1, version)) == 3  # batches of 1, 8 and 64
    (version / WARMUP_FILE).write_bytes((version / WARMUP_FILE).read_bytes()[:100])  # cut short
    with caplog.at_level(logging.INFO, logger="keraszoo.serve"):
        assert replay_warmup(load_version("cifar10_cnn", 1, version)) == 0
    # The warmup's line only: the previous test's server may still log its last reload ("now serving gamma").
    (line,) = [r.getMessage() for r in caplog.records if "warmup of" in r.getMessage()]
    assert "warmup of cifar10_cnn version 1 stopped after 0 request(s)" in line and "serving the version unwarmed" in line


def test_fuzzed_grpc_requests_get_client_errors_never_a_crash_or_a_hang(server):
    """Malformed protos, wrong dtypes, huge, negative and ragged shapes, strings, unknown models: every answer
    is a client's error code (or OK), within the deadline; valid requests still right afterwards."""
    import random
    import threading

    from keraszoo.serving.fuzz import fuzz_grpc_predict

    _, channel = server
    predict = channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                                  response_deserializer=predict_pb2.PredictResponse.FromString)
    valid = _request(_images(2))
    allowed = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
               grpc.StatusCode.RESOURCE_EXHAUSTED}
    codes, failures = {}, []

    def client(seed, count):
        rng = random.Random(seed)
        for _ in range(count):
            body = fuzz_grpc_predict(rng, valid, "cifar10_cnn")
            try:
                predict(body, timeout=30)
                code = grpc.StatusCode.OK
            except grpc.RpcError as error:
                code = error.code()
                if code not in allowed:
                    failures.append(f"{code} {error.details()[:200]} for {body[:80]!r}")
            codes[code] = codes.get(code, 0) + 1

    threads = [threading.Thread(target=client, args=(seed, 250)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a fuzzing client hung"
    assert not failures, failures[:5]
    assert sum(codes.values()) == 1000 and codes.get(grpc.StatusCode.INVALID_ARGUMENT, 0) > 300, codes
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    status, body, _ = _rest(server[0], "/v1/models/cifar10_cnn:predict", {"instances": _images(2).tolist()})
    np.testing.assert_allclose(tf.make_ndarray(stub.Predict(valid, timeout=30).outputs["logits"]),
                               [row["logits"] for row in json.loads(body)["predictions"]], rtol=1e-6, atol=1e-6)
