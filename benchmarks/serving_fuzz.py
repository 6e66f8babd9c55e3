#!/usr/bin/env python
"""Hostile-client benchmark for `keraszoo serve`: 10,000+ requests, floods and image bombs.

Starts `keraszoo serve` on a free loopback port and sends, in phases:
  fuzz    random, mutated and truncated bodies and odd paths (keraszoo.serving.fuzz) from 8 clients;
  grpc    the same over gRPC: malformed protos, wrong dtypes, huge, negative and ragged shapes, strings,
          unknown models, versions and labels (fuzz_grpc_predict), 8 clients, each code counted;
  flood   valid one-image requests from 64 clients at once, each checked against the model in process;
  bombs   64 clients at once posting image bombs: a real 20000x20000 PNG (0.4 MB, 400 MB decoded) and a
          JPEG whose header declares 12000x12000, while one more client polls the model's status.
Reports per phase the status counts, the worst latency, and the server's resident memory (VmRSS) and
peak (VmHWM) from /proc before and after; exits 1 if any request got a 5xx or no answer. With
--tree, the server is an older keraszoo checkout (before/after comparisons).

examples:
  python benchmarks/serving_fuzz.py
  python benchmarks/serving_fuzz.py --fuzz-requests 2000 --bomb-rounds 1
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import random
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import start_server  # noqa: E402  (benchmarks/serving.py)

import keraszoo  # noqa: E402,F401  before TensorFlow
from keraszoo.serving.fuzz import fuzz_body, fuzz_target, jpeg_declaring, png_declaring  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-root", default="saved_models", help="folder served (default: %(default)s)")
    parser.add_argument("--model", default="cifar10_cnn", help="model name, 32x32x3 uint8 in (default: %(default)s)")
    parser.add_argument("--fuzz-requests", type=int, default=8000, help="(default: %(default)s)")
    parser.add_argument("--grpc-requests", type=int, default=8000, help="(default: %(default)s; 0: no gRPC phase)")
    parser.add_argument("--flood-requests", type=int, default=1920, help="(default: %(default)s)")
    parser.add_argument("--bomb-rounds", type=int, default=3, help="rounds of 64 concurrent bombs (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tree", help="serve from this older keraszoo checkout instead")
    parser.add_argument("--output", default="docs/records/serving_fuzz.json")
    return parser.parse_args(argv)


def memory_kib(pid: int) -> dict:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) for key in ("VmRSS", "VmHWM")}


class Phase:
    """Status counts and latencies of one phase, from many threads."""

    def __init__(self, name: str):
        self.name, self.statuses, self.latencies, self.failures = name, Counter(), [], []
        self._lock = threading.Lock()

    def send(self, connection, method, path, body=None):
        start = time.perf_counter()
        try:
            connection.request(method, path, body, {"Content-Type": "application/json"} if body else {})
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            with self._lock:
                self.statuses["no answer"] += 1
                self.failures.append(f"{method} {path}: {error!r}")
            connection.close()
            return None, None
        with self._lock:
            self.statuses[response.status] += 1
            self.latencies.append(time.perf_counter() - start)
            if response.status >= 500:
                self.failures.append(f"{response.status} {method} {path} {(body or b'')[:120]!r}")
        return response.status, data

    def summary(self) -> dict:
        ms = np.asarray(self.latencies or [0.0]) * 1000
        return {"phase": self.name, "requests": sum(self.statuses.values()),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items(), key=str)},
                "p50_ms": round(float(np.percentile(ms, 50)), 2), "max_ms": round(float(ms.max()), 2),
                "failures": self.failures[:10]}


def _connection(port):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=60)


def grpc_fuzz(port: int, args, images) -> dict:
    """Fuzzed PredictRequests from 8 clients: every gRPC code counted; anything but OK, INVALID_ARGUMENT,
    NOT_FOUND and RESOURCE_EXHAUSTED (INTERNAL, UNKNOWN, a deadline: a hang) is a failure."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from keraszoo.serving.fuzz import fuzz_grpc_predict

    valid = predict_pb2.PredictRequest()
    valid.model_spec.name = args.model
    valid.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
    allowed = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED"}
    codes, latencies, failures, lock = Counter(), [], [], threading.Lock()

    def client(seed):
        rng, channel = random.Random(seed), grpc.insecure_channel(f"127.0.0.1:{port}")
        call = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
        for _ in range(args.grpc_requests // 8):
            body, start = fuzz_grpc_predict(rng, valid, args.model), time.perf_counter()
            try:
                call(body, timeout=60)
                code = "OK"
            except grpc.RpcError as error:
                code = error.code().name
            with lock:
                codes[code] += 1
                latencies.append(time.perf_counter() - start)
                if code not in allowed:
                    failures.append(f"{code} for {body[:80]!r}")
        channel.close()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(client, range(args.seed, args.seed + 8)))
    ms = np.asarray(latencies) * 1000
    return {"phase": "grpc fuzz", "requests": sum(codes.values()), "statuses": dict(sorted(codes.items())),
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "max_ms": round(float(ms.max()), 2),
            "failures": failures[:10]}


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main(args) -> int:
    import tensorflow as tf

    from keraszoo.export import load_serving_fn, resolve_version_dir
    from keraszoo.training.hardware import environment

    serve = load_serving_fn(resolve_version_dir(Path(args.model_root) / args.model))
    images = np.random.default_rng(args.seed).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    expected = serve(images=tf.constant(images))["probabilities"].numpy()
    valid = [json.dumps({"instances": images[i:i + 1].tolist()}).encode() for i in range(64)]
    png = tf.io.encode_png(images[0]).numpy()
    print("building the bombs ...", flush=True)
    bombs = [png_declaring(20000, 20000, real=True),
             jpeg_declaring(tf.io.encode_jpeg(tf.zeros((32, 32, 3), tf.uint8)).numpy(), 12000, 12000)]
    bomb_bodies = [json.dumps({"instances": [{"b64": base64.b64encode(b).decode()}]}).encode() for b in bombs]
    quiet = () if args.tree else ("--no-access-log",)  # older checkouts have no such flag
    grpc_port = _free_port() if args.grpc_requests and not args.tree else 0
    grpc_args = ("--grpc-port", str(grpc_port)) if not args.tree else ()
    process, port = start_server(args.model_root, args.model, *quiet, *grpc_args, tree=args.tree)
    path = f"/v1/models/{args.model}:predict"
    report = {"environment": environment(), "command": " ".join(sys.argv), "tree": args.tree,
              "bomb_bytes": [len(b) for b in bombs], "phases": []}
    try:
        warm = Phase("warm-up")
        connection = _connection(port)
        for body in valid:
            warm.send(connection, "POST", path, body)
        report["memory_warm_kib"] = memory_kib(process.pid)
        print(f"warm: {report['memory_warm_kib']}", flush=True)

        fuzz = Phase("fuzz")

        def fuzz_client(seed):
            rng, connection = random.Random(seed), _connection(port)
            for _ in range(args.fuzz_requests // 8):
                method, target = fuzz_target(rng, args.model) if rng.random() < 0.15 else ("POST", path)
                status, _ = fuzz.send(connection, method, target,
                                      fuzz_body(rng, valid[0], png) if method != "GET" else None)
                if status is None:
                    connection = _connection(port)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(fuzz_client, range(args.seed, args.seed + 8)))
        report["phases"].append(fuzz.summary())
        print(report["phases"][-1], flush=True)

        if grpc_port:
            report["phases"].append(grpc_fuzz(grpc_port, args, images[:2]))
            print(report["phases"][-1], flush=True)

        flood, wrong = Phase("flood, 64 clients"), []

        def flood_client(index):
            connection = _connection(port)
            for _ in range(args.flood_requests // 64):
                status, data = flood.send(connection, "POST", path, valid[index])
                if status == 200 and not np.allclose(json.loads(data)["predictions"][0]["probabilities"],
                                                     expected[index], atol=1e-5):
                    wrong.append(index)

        with ThreadPoolExecutor(64) as pool:
            list(pool.map(flood_client, range(64)))
        report["phases"].append({**flood.summary(), "wrong_predictions": len(wrong)})
        print(report["phases"][-1], flush=True)

        bombs_phase, status_phase, done = Phase("image bombs, 64 clients"), Phase("status during bombs"), threading.Event()

        def poll_status():
            connection = _connection(port)
            while not done.is_set():
                if status_phase.send(connection, "GET", f"/v1/models/{args.model}")[0] is None:
                    connection = _connection(port)
                time.sleep(0.01)

        def bomb_client(index):
            connection = _connection(port)
            for _ in range(args.bomb_rounds):
                if bombs_phase.send(connection, "POST", path, bomb_bodies[index % 2])[0] is None:
                    connection = _connection(port)

        poller = threading.Thread(target=poll_status)
        poller.start()
        with ThreadPoolExecutor(64) as pool:
            list(pool.map(bomb_client, range(64)))
        done.set()
        poller.join()
        report["phases"] += [bombs_phase.summary(), status_phase.summary()]
        print(report["phases"][-2], report["phases"][-1], sep="\n", flush=True)

        final = Phase("after")
        status, data = final.send(_connection(port), "POST", path, valid[0])
        report["still_correct"] = status == 200 and bool(np.allclose(
            json.loads(data)["predictions"][0]["probabilities"], expected[0], atol=1e-5))
        report["memory_after_kib"] = memory_kib(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=60)
    warm_rss, after = report["memory_warm_kib"]["VmRSS"], report["memory_after_kib"]
    report["rss_growth_mib"] = round((after["VmRSS"] - warm_rss) / 1024, 1)
    report["peak_growth_mib"] = round((after["VmHWM"] - warm_rss) / 1024, 1)
    report["requests"] = sum(p["requests"] for p in report["phases"]) + len(valid) + 1
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    failures = sum(len(p["failures"]) for p in report["phases"])
    print(f"\n{report['requests']:,} requests; 5xx or unanswered: {failures}; still correct: {report['still_correct']}; "
          f"RSS {warm_rss / 1024:.0f} MiB warm -> {after['VmRSS'] / 1024:.0f} MiB after "
          f"(+{report['rss_growth_mib']} MiB), peak +{report['peak_growth_mib']} MiB over warm")
    print(f"{report['environment']['cpu']}; record: {args.output}")
    return 0 if failures == 0 and report["still_correct"] else 1


if __name__ == "__main__":
    sys.exit(main(parse_args()))
