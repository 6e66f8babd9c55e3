#!/usr/bin/env python
"""Serving benchmark: latency and throughput of `keraszoo serve` against calling the model in process.

Starts `keraszoo serve` subprocesses on free loopback ports (batching on, over REST and over gRPC
with TF Serving's official client; batching off; with --baseline-tree, an older checkout of
keraszoo), then, for each concurrency level,
alternates between the modes for --rounds rounds so that every mode sees the same machine
state: one-image predict requests (row format, a JSON pixel list, 16 KB) from N client
threads, each with its own keep-alive connection, the body encoded once beforehand (the
client's JSON encoding is timed apart). The in-process mode calls the SavedModel's serving
function in this process. Prints p50/p99 latency and requests/s, and the p50 overhead of
HTTP over in-process at each level; writes a JSON record with the CPU model and flags.
The gRPC client builds its PredictRequest once (tf.make_tensor_proto), as the REST body is.

--first-request N instead starts a fresh server N times per case, for each model of --models,
with and without the version's warmup file (assets.extra/tf_serving_warmup_requests, replayed
before the version is served), and times the first one-image request and the tenth.

examples:
  python benchmarks/serving.py                                   # newest saved_models/cifar10_cnn
  python benchmarks/serving.py --requests 400 --concurrency 1 64
  python benchmarks/serving.py --first-request 5 --output docs/records/serving_warmup.json
  git worktree add /tmp/before <commit>; python benchmarks/serving.py --baseline-tree /tmp/before \\
      --baseline-block httptools uvloop   # the older server as it ran before those were installed
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import keraszoo  # noqa: F401  before TensorFlow, whose CPU kernels it chooses (keraszoo/__init__.py)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-root", default="saved_models", help="folder served (default: %(default)s)")
    parser.add_argument("--model", default="cifar10_cnn", help="model name (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--requests", type=int, default=640, help="requests per mode, level and round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the modes per level (default: %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=60, help="time cap per mode, level and round (default: %(default)s)")
    parser.add_argument("--baseline-tree", help="a checkout of an older keraszoo whose server is measured too")
    parser.add_argument("--baseline-block", nargs="*", default=[],
                        help="modules hidden from the baseline server (e.g. httptools uvloop: uvicorn then uses h11/asyncio)")
    parser.add_argument("--first-request", type=int, metavar="N",
                        help="measure the first request's latency with and without warmup, N fresh servers per case")
    parser.add_argument("--models", nargs="+", default=["cifar10_cnn", "mnist_vit"],
                        help="models of --first-request (default: %(default)s)")
    parser.add_argument("--output", default="docs/records/serving_benchmark.json")
    return parser.parse_args(argv)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _summary(latencies: list[float], seconds: float) -> dict:
    ms = np.asarray(latencies) * 1000
    return {"requests": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "requests_per_s": round(len(ms) / seconds, 1)}


def _load(make_call, concurrency: int, requests: int, max_seconds: float) -> tuple[list[float], float]:
    """``requests`` calls spread over ``concurrency`` threads (one ``make_call()`` each), stopped at ``max_seconds``."""
    stop_at = time.perf_counter() + max_seconds

    def worker(count):
        call, latencies = make_call(), []
        for _ in range(count):
            if time.perf_counter() > stop_at:
                break
            start = time.perf_counter()
            call()
            latencies.append(time.perf_counter() - start)
        return latencies

    shares = [requests // concurrency + (i < requests % concurrency) for i in range(concurrency)]
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = [lat for part in pool.map(worker, shares) for lat in part]
    return latencies, time.perf_counter() - start


def _blocker_dir(modules: list[str]) -> str:
    """A folder of modules that fail to import: first on PYTHONPATH, it hides the installed ones."""
    folder = tempfile.mkdtemp(prefix="serving-bench-block-")
    for name in modules:
        Path(folder, f"{name}.py").write_text(f"raise ImportError('{name} hidden by benchmarks/serving.py')\n")
    return folder


def start_server(root: str, model: str, *extra: str, tree: str | None = None, block=()) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    paths = ([_blocker_dir(list(block))] if block else []) + ([str(Path(tree).resolve())] if tree else [])
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")])
    if tree is None and "--grpc-port" not in extra:  # never TF Serving's 8500: servers run side by side here
        extra = (*extra, "--grpc-port", "0")
    command = [sys.executable, "-m", "keraszoo", "serve", str(Path(root).resolve()), "--port", str(port), *extra]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                               cwd=tree or None)
    deadline = time.monotonic() + 120
    while True:  # until the model's status answers 200: up and loaded
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/{model}", timeout=1)
            return process, port
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"keraszoo serve did not start: {' '.join(command)}") from None
            time.sleep(0.2)


def _http_call(port: int, path: str, body: bytes):
    def make_call():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def call():
            connection.request("POST", path, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")
        return call
    return make_call


def _grpc_call(port: int, model: str, image: np.ndarray):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serving_default"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(image))

    def make_call():
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        return lambda: stub.Predict(request, timeout=60)
    return make_call


def first_requests(args) -> int:
    """A fresh server per try: the first and the tenth one-image request, with and without warmup."""
    import shutil

    from keraszoo.export import resolve_version_dir
    from keraszoo.export.warmup import WARMUP_FILE
    from keraszoo.training.hardware import environment

    rows = []
    for model in args.models:
        version_dir = resolve_version_dir(Path(args.model_root) / model)
        shape = (1, 32, 32, 3) if model.startswith("cifar") else (1, 28, 28, 1)
        body = json.dumps({"instances": np.zeros(shape, np.uint8).tolist()}).encode()
        with tempfile.TemporaryDirectory() as scratch:
            for warmed in (False, True):
                root = Path(scratch, f"warm{int(warmed)}")
                shutil.copytree(version_dir, root / model / "1")
                if not warmed:
                    (root / model / "1" / WARMUP_FILE).unlink(missing_ok=True)
                for _ in range(args.first_request):
                    process, port = start_server(str(root), model, "--no-access-log")
                    try:
                        call = _http_call(port, f"/v1/models/{model}:predict", body)()
                        times = []
                        for _ in range(10):
                            start = time.perf_counter()
                            call()
                            times.append(1000 * (time.perf_counter() - start))
                    finally:
                        process.terminate()
                        process.wait(timeout=30)
                    rows.append({"model": model, "warmup": warmed, "first_ms": round(times[0], 2),
                                 "tenth_ms": round(times[-1], 2)})
                    print(rows[-1], flush=True)
    results = {"environment": environment(), "command": " ".join(sys.argv), "rows": rows}
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print("\n| model | warmup | first request ms, median (min-max) | tenth request ms, median |\n|---|---|---|---|")
    for model in args.models:
        for warmed in (False, True):
            firsts = [r["first_ms"] for r in rows if r["model"] == model and r["warmup"] == warmed]
            tenths = [r["tenth_ms"] for r in rows if r["model"] == model and r["warmup"] == warmed]
            print(f"| {model} | {'yes' if warmed else 'no'} | {np.median(firsts):.1f} ({min(firsts):.1f}-"
                  f"{max(firsts):.1f}) | {np.median(tenths):.1f} |")
    return 0


def main(args) -> int:
    import tensorflow as tf

    if args.first_request:
        return first_requests(args)

    from keraszoo.export import load_serving_fn, resolve_version_dir
    from keraszoo.training.hardware import environment

    version_dir = resolve_version_dir(Path(args.model_root) / args.model)
    serve = load_serving_fn(version_dir)
    image = np.random.default_rng(0).integers(0, 256, (1, *serve.structured_input_signature[1]["images"].shape[1:]),
                                              dtype=np.uint8)
    pixels = image.tolist()
    start = time.perf_counter()
    for _ in range(200):
        body = json.dumps({"instances": pixels}).encode()
    encode_ms = (time.perf_counter() - start) / 200 * 1000
    path = f"/v1/models/{args.model}:predict"
    modes = {"in-process": lambda: (lambda: {k: v.numpy() for k, v in serve(images=tf.constant(image)).items()})}
    servers = [("http, batching on", ()), ("http, batching off", ("--no-batching",))]
    processes = []
    try:
        for name, extra in servers:
            grpc_port = _free_port()
            process, port = start_server(args.model_root, args.model, *extra, "--grpc-port", str(grpc_port))
            processes.append(process)
            modes[name] = _http_call(port, path, body)
            if name == "http, batching on":
                modes["grpc, batching on"] = _grpc_call(grpc_port, args.model, image)
        if args.baseline_tree:
            process, port = start_server(args.model_root, args.model, tree=args.baseline_tree, block=args.baseline_block)
            processes.append(process)
            modes["http, baseline tree"] = _http_call(port, path, body)
        for make_call in modes.values():  # warm up: first traces, connections
            call = make_call()
            for _ in range(20):
                call()
        rows = []
        for concurrency in args.concurrency:
            gathered = {name: ([], 0.0) for name in modes}
            for _ in range(args.rounds):
                for name, make_call in modes.items():
                    latencies, seconds = _load(make_call, concurrency, args.requests, args.max_seconds)
                    gathered[name] = (gathered[name][0] + latencies, gathered[name][1] + seconds)
            for name, (latencies, seconds) in gathered.items():
                rows.append({"mode": name, "concurrency": concurrency, **_summary(latencies, seconds)})
                print(rows[-1], flush=True)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
    results = {"model": str(version_dir), "environment": environment(), "command": " ".join(sys.argv),
               "client_json_encode_ms": round(encode_ms, 3), "request_bytes": len(body),
               "baseline_tree": args.baseline_tree, "baseline_block": args.baseline_block, "rows": rows}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print("\n| mode | concurrency | p50 ms | p99 ms | requests/s |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['mode']} | {row['concurrency']} | {row['p50_ms']} | {row['p99_ms']} | {row['requests_per_s']} |")
    in_process = {r["concurrency"]: r["p50_ms"] for r in rows if r["mode"] == "in-process"}
    for row in rows:
        if row["mode"] != "in-process" and row["concurrency"] == 1:
            print(f"p50 overhead over in-process at concurrency 1, {row['mode']}: "
                  f"{row['p50_ms'] - in_process[1]:.2f} ms")
    print(f"client json.dumps of the request: {encode_ms:.2f} ms (not in the latencies above)")
    print(f"{results['environment']['cpu']}, {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
