"""Server-side batching: concurrent requests for one model are grouped into one model call.

One model call runs at a time per model version. A request that finds the model idle and
nobody waiting runs at once, alone: a lone client pays no batching delay. Requests that
arrive while the model is busy wait, and when it is free the waiting ones run together,
up to ``max_batch_size`` examples: the busier the server, the larger the batches. With
``timeout_s`` > 0 a batch instead waits up to that long to fill, as TF Serving's
``--enable_batching`` with ``batch_timeout_micros`` does, even when the model is idle.
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
        self._idle: asyncio.Event | None = None  # set while no model call of this batcher runs
        self._carry: _Request | None = None  # a request that did not fit the last batch
        self._waiting = 0  # requests queued and not yet running
        self._worker: asyncio.Task | None = None
        self._retired = False
        self.batches_run = 0

    def _start(self) -> None:
        self._queue, self._idle = asyncio.Queue(), asyncio.Event()
        self._idle.set()
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def submit(self, inputs: Arrays) -> Arrays:
        if self._queue is None:
            self._start()
        loop = asyncio.get_running_loop()
        size = len(next(iter(inputs.values())))
        if self._retired:  # its version was unloaded after this request took it: run alone, unbatched
            return await loop.run_in_executor(self.executor, self.run, inputs)
        if self.timeout_s == 0 and self._idle.is_set() and not self._waiting:
            self._idle.clear()  # run alone, now; whoever comes meanwhile waits for the next batch
            try:
                outputs = await loop.run_in_executor(self.executor, self.run, inputs)
                self.batches_run += 1
                return outputs
            finally:
                self._idle.set()
        future = loop.create_future()
        self._waiting += 1
        await self._queue.put(_Request(inputs, size, future))
        return await future

    async def _next_batch(self) -> list[_Request]:
        loop = asyncio.get_running_loop()
        first = self._carry or await self._queue.get()
        self._carry = None
        if first is None:  # retire()'s mark: everything queued before it has run
            return []
        await self._idle.wait()  # requests gather while the model is busy
        batch, size = [first], first.size
        deadline = loop.time() + self.timeout_s
        while size < self.max_batch_size:
            remaining = deadline - loop.time()
            try:
                request = self._queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(
                    self._queue.get(), remaining)
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if request is None:
                self._queue.put_nowait(None)  # seen after this batch
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
            if not batch:
                return  # retired, and every request queued before has its answer
            while not self._idle.is_set():  # a lone request took the model while the batch gathered
                await self._idle.wait()
            self._idle.clear()
            self._waiting -= len(batch)
            try:
                inputs = {key: np.concatenate([r.inputs[key] for r in batch]) for key in batch[0].inputs}
                outputs = await loop.run_in_executor(self.executor, self.run, inputs)
            except Exception as error:  # noqa: BLE001 - each waiting request gets the error
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(error)
                continue
            finally:
                self._idle.set()
            self.batches_run += 1
            start = 0
            for request in batch:
                rows = slice(start, start + request.size)
                if not request.future.done():
                    request.future.set_result({key: value[rows] for key, value in outputs.items()})
                start += request.size

    def retire(self) -> None:
        """Its version was unloaded: the requests already queued run, later ones run alone, then it stops."""
        self._retired = True
        if self._queue is not None:
            self._queue.put_nowait(None)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
