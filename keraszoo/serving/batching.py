"""Server-side batching: concurrent requests for one model are grouped into one model call.

Like TF Serving's ``--enable_batching``: the first waiting request opens a batch,
which closes when it holds ``max_batch_size`` examples or ``timeout_s`` has passed;
the model runs once on the concatenation and each request gets its rows back.
Under load this trades a little latency for far fewer, larger model calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

Arrays = dict[str, np.ndarray]


@dataclass
class _Request:
    inputs: Arrays
    size: int
    future: asyncio.Future


class Batcher:
    def __init__(self, run: Callable[[Arrays], Arrays], *, max_batch_size: int, timeout_s: float, executor: Executor):
        if max_batch_size < 1 or timeout_s < 0:
            raise ValueError("max_batch_size must be >= 1 and timeout_s >= 0.")
        self.run, self.max_batch_size, self.timeout_s, self.executor = run, max_batch_size, timeout_s, executor
        self._queue: asyncio.Queue | None = None
        self._carry: _Request | None = None  # a request that did not fit the last batch
        self._worker: asyncio.Task | None = None
        self.batches_run = 0

    async def submit(self, inputs: Arrays) -> Arrays:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._work())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(inputs, len(next(iter(inputs.values()))), future))
        return await future

    async def _next_batch(self) -> list[_Request]:
        loop = asyncio.get_running_loop()
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, size = [first], first.size
        deadline = loop.time() + self.timeout_s
        while size < self.max_batch_size:
            remaining = deadline - loop.time()
            try:
                request = self._queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(
                    self._queue.get(), remaining)
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if size + request.size > self.max_batch_size:
                self._carry = request  # opens the next batch
                break
            batch.append(request)
            size += request.size
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            inputs = {key: np.concatenate([r.inputs[key] for r in batch]) for key in batch[0].inputs}
            try:
                outputs = await loop.run_in_executor(self.executor, self.run, inputs)
            except Exception as error:  # noqa: BLE001 - each waiting request gets the error
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(error)
                continue
            self.batches_run += 1
            start = 0
            for request in batch:
                rows = slice(start, start + request.size)
                if not request.future.done():
                    request.future.set_result({key: value[rows] for key, value in outputs.items()})
                start += request.size

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
