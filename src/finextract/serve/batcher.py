"""Micro-batching: texts from concurrent requests share one ``predict`` call.

Small models are dominated by per-call overhead (tokenizer, Python, a forward pass that is
barely slower for 32 rows than for 1), so gathering texts for a few milliseconds raises
throughput under load at almost no latency cost when idle. One worker task pulls from an
asyncio queue until it holds ``max_batch`` texts or ``max_wait_ms`` passed since the first
one, then runs ``predict`` in a single dedicated thread: predictions are serialized, so a
backend never sees concurrent calls and the event loop keeps accepting requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from finextract.serve.metrics import ServeMetrics

log = logging.getLogger("finextract.serve")

PredictFn = Callable[[Sequence[str]], list[Any]]


class ModelFailure(RuntimeError):
    """predict() raised or returned the wrong number of outputs for a batch."""


@dataclass
class _Item:
    text: str
    future: asyncio.Future


class MicroBatcher:
    def __init__(self, predict: PredictFn, max_batch: int, max_wait_ms: float,
                 metrics: ServeMetrics | None = None) -> None:
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.metrics = metrics or ServeMetrics()
        self._queue: asyncio.Queue[_Item | None] | None = None
        self._worker: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finextract-predict")
        self._closing = False

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._closing = False
        self._worker = asyncio.create_task(self._run(), name="finextract-batcher")

    async def stop(self) -> None:
        """Finish every queued text, then stop the worker (graceful shutdown drains, never drops)."""
        if self._worker is None or self._queue is None:
            return
        self._closing = True
        await self._queue.put(None)  # sentinel: processed after everything queued before it
        await self._worker
        self._worker = None
        self._pool.shutdown(wait=True)

    @property
    def depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def submit(self, texts: Sequence[str]) -> list[Any]:
        """Queue texts; resolves to one prediction (or a ModelFailure instance) per text, in order."""
        if self._queue is None or self._closing:
            raise RuntimeError("server is shutting down")
        loop = asyncio.get_running_loop()
        futures = []
        for text in texts:
            fut = loop.create_future()
            self._queue.put_nowait(_Item(text, fut))
            futures.append(fut)
        self.metrics.queue_depth.set(self._queue.qsize())
        return list(await asyncio.gather(*futures))

    async def _next_batch(self) -> tuple[list[_Item], bool]:
        """Block for the first item, then gather more until full or the wait expires."""
        assert self._queue is not None
        first = await self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        deadline = time.monotonic() + self.max_wait
        stop = False
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except (asyncio.TimeoutError, TimeoutError):
                    break
            if item is None:
                stop = True
                break
            batch.append(item)
        return batch, stop

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch, stop = await self._next_batch()
            live = [it for it in batch if not it.future.done()]  # skip requests that timed out
            if live:
                await self._predict(loop, live)
            self.metrics.queue_depth.set(self.depth)
            if stop:
                return

    async def _predict(self, loop: asyncio.AbstractEventLoop, items: list[_Item]) -> None:
        texts = [it.text for it in items]
        self.metrics.batch_size.observe(len(texts))
        t0 = time.perf_counter()
        try:
            preds = await loop.run_in_executor(self._pool, self.predict, texts)
            if not isinstance(preds, list) or len(preds) != len(texts):
                raise ModelFailure(f"predict returned {len(preds) if isinstance(preds, list) else type(preds).__name__}"
                                   f" outputs for {len(texts)} texts")
        except Exception as exc:  # a model failure must never break the response shape
            log.exception("predict failed on a batch of %d texts", len(texts))
            self.metrics.model_errors.inc()
            failure = exc if isinstance(exc, ModelFailure) else ModelFailure(f"{type(exc).__name__}: {exc}")
            preds = [failure] * len(texts)
        finally:
            self.metrics.predict_latency.observe(time.perf_counter() - t0)
        for it, pred in zip(items, preds):
            if not it.future.done():
                it.future.set_result(pred)
