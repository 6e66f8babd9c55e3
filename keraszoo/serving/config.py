"""``keraszoo serve``'s options: the server's one description, from which its command line is made.

A leaf like ``keraszoo.config``: the command line reads it, and opens the listening
socket (``listen``), without loading TensorFlow, so a busy port is one line at once.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Literal

from keraszoo.config import option


@dataclass(frozen=True)
class ServingConfig:
    """What ``keraszoo serve`` serves, where, and within which limits."""

    model_root: str = option("saved_models", "folder of <name>/<version>/ SavedModels, or a trained model's name "
                             "(keraszoo models --trained) to serve it alone", positional=True)
    host: str = option("127.0.0.1", "address to bind (the default is loopback only)")
    port: int = option(8501, "REST port (8501 is TF Serving's)")
    grpc_port: int = option(8500, "gRPC port for TF Serving's PredictionService and ModelService (8500 is TF "
                            "Serving's; 0: no gRPC)")
    model_config_file: str | None = option(
        None, "TF Serving's model config file (ModelServerConfig in text format: models, base paths, version "
        "policies, labels); replaces MODEL_ROOT")
    model_config_file_poll_wait_seconds: float = option(
        0.0, "re-read --model-config-file this often, adding, removing and relabelling models while serving "
        "(0: read it once, TF Serving's default)")
    monitoring: bool = option(True, "Prometheus metrics at /monitoring/prometheus/metrics on the REST port")
    cors_allow_origin: str | None = option(None, "answer browsers from this origin (e.g. https://example.org, or *): "
                                           "CORS headers and preflight")
    rest_api_timeout_ms: int = option(30000, "REST requests unanswered after this long get 504 (DEADLINE_EXCEEDED), "
                                      "as TF Serving's --rest_api_timeout_in_ms; 0: no limit")
    batching: bool = option(True, "gather concurrent requests into one model call")
    max_batch_size: int = option(64, "examples per batched model call")
    batch_timeout_ms: float = option(
        0.0, "how long a batch waits to fill, in milliseconds (0: run what is queued at once; requests "
        "still gather while the model is busy)")
    max_body_bytes: int = option(16 * 2**20, "largest request body, in bytes")
    max_pending_bytes: int = option(
        64 * 2**20, "request bytes read or parsed at once; further requests wait (bounds the server's memory)")
    max_instances: int = option(1024, "most examples per request")
    max_image_pixels: int = option(4096 * 4096, "largest b64 image, in pixels, for inputs of any size")
    poll_interval_s: float = option(1.0, "seconds between scans of the model root for new versions")
    settle_s: float = option(0.5, "seconds a version's files must stay unchanged before it loads")
    threads: int = option(4, "threads that run the models (and as many that parse requests)")
    access_log: bool = option(True, "one JSON line per request on stdout: method, path, status, latency")
    shutdown_timeout_s: float = option(30.0, "on SIGTERM, how long requests in flight may take to finish")
    log_level: Literal["warning", "info"] = option("warning", "uvicorn's own log level")

    def __post_init__(self):
        if not 0 < self.port < 65536 or not 0 <= self.grpc_port < 65536 or self.grpc_port == self.port:
            raise ValueError(f"port={self.port}, grpc_port={self.grpc_port}: give two different ports between 1 and "
                             "65535 (grpc_port 0: no gRPC).")
        positive = ("max_batch_size", "max_body_bytes", "max_pending_bytes", "max_instances", "max_image_pixels",
                    "threads")
        if any(getattr(self, name) < 1 for name in positive):
            raise ValueError(f"{', '.join(positive)} must be >= 1.")
        if min(self.batch_timeout_ms, self.settle_s, self.shutdown_timeout_s, self.rest_api_timeout_ms,
               self.model_config_file_poll_wait_seconds) < 0 or self.poll_interval_s <= 0:
            raise ValueError("batch_timeout_ms, settle_s, shutdown_timeout_s, rest_api_timeout_ms and "
                             "model_config_file_poll_wait_seconds must be >= 0, poll_interval_s > 0.")


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening, or OSError with one line saying what to do."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise OSError(f"cannot listen on {host}:{port}: unknown host ({error.strerror}).") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart over TIME_WAIT
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as error:
        sock.close()
        hint = {98: "another server (keraszoo serve, TF Serving, ...) uses it; stop it or pick another --port",
                13: "ports below 1024 need privileges; pick another --port",
                99: "this machine has no such address; check --host"}.get(error.errno, "")
        raise OSError(f"cannot listen on {host}:{port}: {error.strerror}" + (f"; {hint}." if hint else ".")) from None
    sock.set_inheritable(True)
    return sock
