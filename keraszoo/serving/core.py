"""What the REST and gRPC front ends share: the served versions, the model threads and batchers, the
metrics, and the one way a model is run for a request."""

from __future__ import annotations

import logging
import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keraszoo.serving.batching import Batcher
from keraszoo.serving.config import ServingConfig
from keraszoo.serving.errors import DeadlineExceeded
from keraszoo.serving.metrics import ServingMetrics
from keraszoo.serving.repository import ModelRepository, ServedVersion, load_version, run_signature
from keraszoo.serving.warmup import replay_warmup

log = logging.getLogger("keraszoo.serve")  # keraszoo serve prints it on stdout


class ByteBudget:
    """At most ``capacity`` bytes of request bodies held at once; a request past it waits its turn."""

    def __init__(self, capacity: int):
        self.capacity = self.free = capacity
        self._changed: asyncio.Condition | None = None

    @contextlib.asynccontextmanager
    async def hold(self, size: int):
        size = min(size, self.capacity)
        self._changed = self._changed or asyncio.Condition()
        async with self._changed:
            await self._changed.wait_for(lambda: self.free >= size)
            self.free -= size
        try:
            yield
        finally:
            async with self._changed:
                self.free += size
                self._changed.notify_all()


@dataclass
class ServerState:
    """Kept in ``app.state.server``; the gRPC servicers hold the same object."""

    config: ServingConfig
    repository: ModelRepository
    executor: ThreadPoolExecutor  # runs the models
    parser: ThreadPoolExecutor  # parses JSON and decodes images
    budget: ByteBudget
    metrics: ServingMetrics
    batchers: dict = field(default_factory=dict)

    async def run_model(self, served: ServedVersion, signature_name: str, inputs: dict[str, np.ndarray], *,
                        timeout_s: float | None = None) -> dict[str, np.ndarray]:
        """The signature's outputs for ``inputs``: batched with concurrent requests when it can be."""
        signature = served.signatures[signature_name]
        batchable = all(None not in info.shape[1:] for info in signature.inputs.values())
        if self.config.batching and batchable:
            key = (served.name, served.version, signature_name, id(served))
            if key not in self.batchers:
                self.batchers[key] = Batcher(lambda arrays, s=signature, n=served.name: self._run(n, s, arrays),
                                             max_batch_size=self.config.max_batch_size,
                                             timeout_s=self.config.batch_timeout_ms / 1000, executor=self.executor)
            call = self.batchers[key].submit(inputs)
        else:
            call = asyncio.get_running_loop().run_in_executor(self.executor, self._run, served.name, signature, inputs)
        if timeout_s is None:
            return await call
        if timeout_s <= 0:
            raise DeadlineExceeded("Deadline exceeded before the model ran.")
        try:
            return await asyncio.wait_for(call, timeout_s)
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"Deadline exceeded: no answer within {timeout_s * 1000:.0f} ms.") from None

    def _run(self, name: str, signature, inputs):
        self.metrics.batch_size.labels(name).observe(len(next(iter(inputs.values()))))
        return run_signature(signature, inputs)

    async def refresh(self) -> list[tuple[str, str, int]]:
        """Loads and unloads versions as the specs say (in a thread: loading takes seconds), then says so,
        sets the metrics' states and stops an unloaded version's batchers."""
        changes = await asyncio.get_running_loop().run_in_executor(None, self.repository.refresh)
        for change, name, version in changes:
            log.info(f"keraszoo serve: {'now serving' if change == 'loaded' else 'unloaded'} {name} version {version}")
            self.metrics.set_state(name, version, "AVAILABLE" if change == "loaded" else "END")
            if change == "unloaded":  # requests that hold the version have their answers or finish on it
                for key in [k for k in self.batchers if k[:2] == (name, version)]:
                    self.batchers.pop(key).retire()
        return changes


def new_state(config: ServingConfig, specs=None) -> ServerState:
    metrics = ServingMetrics()

    def load(name: str, version: int, path: Path) -> ServedVersion:
        start = time.perf_counter()
        served = load_version(name, version, path)
        replay_warmup(served, max_instances=config.max_instances)  # before the version is AVAILABLE
        metrics.load_seconds.labels(name, str(version)).set(time.perf_counter() - start)
        return served

    return ServerState(
        config=config,
        repository=ModelRepository(config.model_root, settle_s=config.settle_s, specs=specs, load=load),
        executor=ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="keraszoo-model"),
        parser=ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="keraszoo-parse"),
        budget=ByteBudget(config.max_pending_bytes),
        metrics=metrics,
    )
