"""``keraszoo serve``'s options: the server's one description, from which its command line is made.

A leaf like ``keraszoo.config``: the command line reads it without loading TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from keraszoo.config import option


@dataclass(frozen=True)
class ServingConfig:
    """What ``keraszoo serve`` serves, where, and within which limits."""

    model_root: str = option("saved_models", "folder of <name>/<version>/ SavedModels", positional=True)
    host: str = option("127.0.0.1", "address to bind (the default is loopback only)")
    port: int = option(8501, "port (8501 is TF Serving's REST port)")
    batching: bool = option(True, "gather concurrent requests into one model call")
    max_batch_size: int = option(64, "examples per batched model call")
    batch_timeout_ms: float = option(2.0, "how long a batch waits to fill, in milliseconds")
    max_body_bytes: int = option(16 * 2**20, "largest request body, in bytes")
    max_instances: int = option(1024, "most examples per request")
    poll_interval_s: float = option(1.0, "seconds between scans of the model root for new versions")
    settle_s: float = option(0.5, "seconds a version's files must stay unchanged before it loads")
    threads: int = option(4, "threads that run the models")
    log_level: Literal["warning", "info"] = option("warning", "uvicorn's log level (info: one line per request)")

    def __post_init__(self):
        if not 0 < self.port < 65536:
            raise ValueError(f"port={self.port}: give a port between 1 and 65535.")
        positive = ("max_batch_size", "max_body_bytes", "max_instances", "threads")
        if any(getattr(self, name) < 1 for name in positive):
            raise ValueError(f"{', '.join(positive)} must be >= 1.")
        if min(self.batch_timeout_ms, self.settle_s) < 0 or self.poll_interval_s <= 0:
            raise ValueError("batch_timeout_ms and settle_s must be >= 0, poll_interval_s > 0.")
