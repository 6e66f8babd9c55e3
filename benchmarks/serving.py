#!/usr/bin/env python
"""Serving benchmark: latency and throughput of `keraszoo serve` against in-process calls.

Starts `keraszoo serve` in a subprocess on a free loopback port (batching on, then
off), sends one-image predict requests (row format, JSON) from 1, 8 and 64 client
threads, and reports p50/p99 latency and requests/s; the in-process rows call the
SavedModel's serving function directly in this process. Every request loop is
bounded in count and time and only talks to 127.0.0.1.

examples:
  python benchmarks/serving.py                                   # newest saved_models/cifar10_cnn
  python benchmarks/serving.py --model-root saved_models --model cifar10_cnn --requests 400
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
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
    parser.add_argument("--requests", type=int, default=640, help="requests per level (default: %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=60, help="time cap per level (default: %(default)s)")
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


def _load(call, concurrency: int, requests: int, max_seconds: float) -> dict:
    """``requests`` calls spread over ``concurrency`` threads, stopping early at ``max_seconds``."""
    stop_at = time.perf_counter() + max_seconds

    def worker(count):
        latencies = []
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
    return _summary(latencies, time.perf_counter() - start)


def _server(root: str, model: str, port: int, batching: bool):
    command = [sys.executable, "-m", "keraszoo", "serve", root, "--port", str(port)]
    if not batching:
        command.append("--no-batching")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:  # until the model's status answers 200: up and loaded
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/{model}", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("keraszoo serve did not start") from None
            time.sleep(0.2)
    return process


def main(args) -> int:
    import tensorflow as tf

    from keraszoo.export import load_serving_fn, resolve_version_dir
    from keraszoo.training.run_record import environment

    version_dir = resolve_version_dir(Path(args.model_root) / args.model)
    serve = load_serving_fn(version_dir)
    image = np.random.default_rng(0).integers(0, 256, (1, *serve.structured_input_signature[1]["images"].shape[1:]),
                                              dtype=np.uint8)
    body = json.dumps({"instances": image.tolist()}).encode()
    results = {"model": str(version_dir), "environment": environment(), "rows": []}
    serve(images=tf.constant(image))  # warm up
    for concurrency in args.concurrency:
        row = _load(lambda: serve(images=tf.constant(image)), concurrency, args.requests, args.max_seconds)
        results["rows"].append({"mode": "in-process", "concurrency": concurrency, **row})
        print(results["rows"][-1], flush=True)
    for batching in (True, False):
        port = _free_port()
        process = _server(args.model_root, args.model, port, batching)
        url = f"http://127.0.0.1:{port}/v1/models/{args.model}:predict"

        def call():
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()

        try:
            for _ in range(20):
                call()  # warm up: model load, first traces
            for concurrency in args.concurrency:
                row = _load(call, concurrency, args.requests, args.max_seconds)
                results["rows"].append({"mode": "http, batching on" if batching else "http, batching off",
                                        "concurrency": concurrency, **row})
                print(results["rows"][-1], flush=True)
        finally:
            process.terminate()
            process.wait(timeout=30)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print("\n| mode | concurrency | p50 ms | p99 ms | requests/s |\n|---|---|---|---|---|")
    for row in results["rows"]:
        print(f"| {row['mode']} | {row['concurrency']} | {row['p50_ms']} | {row['p99_ms']} | {row['requests_per_s']} |")
    print(f"\n{platform.platform()}, {results['environment']['cpu']}, {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
