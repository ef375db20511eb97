"""Dynamic batching: requests' images wait in a bounded queue and run through the model together, up to
`max_batch` images: those that arrived while the previous batch ran, and any within `max_wait_s` of the first
(0 by default: a lone client is not slowed, and under load batches form while the model is busy), on one
inference thread, while the event loop goes on receiving and decoding the next requests.

    batcher = Batcher(predictor.probabilities, max_batch=32, max_wait_s=0.0, max_queued=256)
    probabilities = await batcher.submit(pixels)   # uint8 [N, H, W, C] -> float [N, classes]; QueueFull when full
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np


class QueueFull(Exception):
    """The queue holds `max_queued` images already: the caller answers 503 with Retry-After."""


class Batcher:
    def __init__(self, run, max_batch: int, max_wait_s: float, max_queued: int, on_batch=None):
        self.run, self.max_batch, self.max_wait_s, self.max_queued = run, max_batch, max_wait_s, max_queued
        self.on_batch = on_batch or (lambda n: None)
        self.queue: asyncio.Queue = asyncio.Queue()
        self.queued = 0  # images waiting, not yet taken into a batch
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="zoo-infer")  # the model runs one batch at a time
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.executor.shutdown(wait=True)

    async def submit(self, pixels: np.ndarray) -> np.ndarray:
        """The model's probabilities for these images, once a batch holding them has run."""
        if self.queued + len(pixels) > self.max_queued:
            raise QueueFull(f"{self.queued} images are queued (at most {self.max_queued})")
        future = asyncio.get_running_loop().create_future()
        self.queued += len(pixels)
        self.queue.put_nowait((pixels, future))
        return await future

    async def _gather(self) -> list:
        """The next batch: the first request waiting, then those that come within max_wait_s, up to max_batch."""
        items = [await self.queue.get()]
        n, loop = len(items[0][0]), asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while n < self.max_batch:
            try:
                item = self.queue.get_nowait() if not self.queue.empty() else \
                    await asyncio.wait_for(self.queue.get(), max(0.0, deadline - loop.time()))
            except (asyncio.TimeoutError, TimeoutError):
                break
            items.append(item)
            n += len(item[0])
        self.queued -= n
        return items

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._gather()
            live = [(x, f) for x, f in items if not f.done()]  # a request that timed out is not run
            if not live:
                continue
            batch = np.concatenate([x for x, _ in live])
            self.on_batch(len(batch))
            try:
                probs = await loop.run_in_executor(self.executor, self.run, batch)
            except Exception as e:  # the model failed on this batch: every request in it hears why
                for _, f in live:
                    if not f.done():
                        f.set_exception(e)
                continue
            start = 0
            for x, f in live:
                if not f.done():
                    f.set_result(probs[start:start + len(x)])
                start += len(x)
