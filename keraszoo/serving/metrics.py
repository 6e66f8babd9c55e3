"""Prometheus metrics at ``/monitoring/prometheus/metrics`` (TF Serving's path), with ``prometheus-client``.

Named as TF Serving names its own where it has one (``:tensorflow:serving:request_count``,
``:tensorflow:serving:request_latency`` in microseconds, ``:tensorflow:serving:batching_session:
processed_batch_size``), so dashboards written for TF Serving find them; ``prometheus-client`` adds
``_total`` to counters, as the OpenMetrics rules ask. keraszoo's own: the version states and load times.
Process metrics (memory, CPU, open files) and Python's come from ``prometheus-client``'s collectors.
Each server has its own registry: two apps in one process (tests) count apart.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import gc_collector, platform_collector, process_collector

PATH = "/monitoring/prometheus/metrics"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# 25 us to ~100 s in steps of x2: a one-image call (~1 ms) to a queue of large batches.
LATENCY_BUCKETS_US = tuple(25 * 2**k for k in range(23))
BATCH_BUCKETS = tuple(2**k for k in range(11))
STATES = ("AVAILABLE", "END")
HTTP_CODES = {200: "OK", 400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 413: "RESOURCE_EXHAUSTED",
              504: "DEADLINE_EXCEEDED", 500: "INTERNAL"}


class ServingMetrics:
    def __init__(self):
        self.registry = registry = CollectorRegistry()
        process_collector.ProcessCollector(registry=registry)
        platform_collector.PlatformCollector(registry=registry)
        gc_collector.GCCollector(registry=registry)
        self.requests = Counter(":tensorflow:serving:request_count", "Requests answered, by model, version, API, "
                                "entrypoint (REST or GRPC) and status code",
                                ["model_name", "model_version", "API", "entrypoint", "status"], registry=registry)
        self.latency = Histogram(":tensorflow:serving:request_latency", "Request latency in microseconds, from "
                                 "the request read to the answer", ["model_name", "API", "entrypoint"],
                                 buckets=LATENCY_BUCKETS_US, registry=registry)
        self.batch_size = Histogram(":tensorflow:serving:batching_session:processed_batch_size",
                                    "Examples per model call", ["model_name"], buckets=BATCH_BUCKETS, registry=registry)
        self.state = Gauge(":keraszoo:serving:model_version_state", "1 for the state each model version is in",
                           ["model_name", "model_version", "state"], registry=registry)
        self.load_seconds = Gauge(":keraszoo:serving:model_load_seconds", "Seconds a version took to load and warm up",
                                  ["model_name", "model_version"], registry=registry)

    def observe(self, *, model: str, version, api: str, entrypoint: str, status: str, seconds: float) -> None:
        self.requests.labels(model, str(version or ""), api, entrypoint, status).inc()
        self.latency.labels(model, api, entrypoint).observe(seconds * 1e6)

    def set_state(self, model: str, version: int, state: str) -> None:
        for each in STATES:
            self.state.labels(model, str(version), each).set(1 if each == state else 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
