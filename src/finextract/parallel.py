"""Worker processes for ``predict``: one copy of a run's extractor per core, one thread each.

Why: on a 2-core machine a small encoder spends about half of each call in Python (the
tokenizer glue, per-token features, span decoding), which holds the GIL, while ONNX
Runtime's intra-op threads split 25-token matrix products poorly. Two processes with one
thread each keep both cores busy for the whole call. The pooling itself is
:class:`concurrent.futures.ProcessPoolExecutor` (spawned workers, so no threads are
inherited half-started); this module only loads the extractor once per worker, splits each
call into ordered chunks and puts the answers back in order.

``ParallelExtractor`` is an :class:`~finextract.extractor.Extractor` like any other, so
``evaluate``, ``batch`` and the CLI compose with it unchanged.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from finextract.errors import FinextractError, InputError
from finextract.extractor import Extractor, Prediction

_WORKER: Any = None  # the extractor of this worker process
_LOAD_ERROR: BaseException | None = None


def _init(source: str, checkpoint: str | None, runtime: str, threads: int, kwargs: dict[str, Any]) -> None:
    global _WORKER, _LOAD_ERROR
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
        from finextract.runtime import load_with_runtime

        _WORKER = load_with_runtime(source, checkpoint, runtime, num_threads=threads, **kwargs)
    except BaseException as exc:  # kept and raised by the first call: the parent sees the real message
        _LOAD_ERROR = exc


def _predict(texts: list[str]) -> list[Prediction]:
    if _LOAD_ERROR is not None:
        raise _LOAD_ERROR
    return _WORKER.predict(texts)


def _describe() -> tuple[Any, dict[str, Any]]:
    if _LOAD_ERROR is not None:
        raise _LOAD_ERROR
    return _WORKER.task, _WORKER.describe()


class ParallelExtractor(Extractor):
    """``workers`` processes, each holding the run's extractor on ``threads_per_worker`` threads.

    A call is cut into ``workers`` contiguous chunks (at most ``chunk_size`` texts each, so a
    long input keeps every worker busy with bounded memory) and the answers come back in
    input order. Use it as a context manager, or call :meth:`close`, to stop the workers.
    Outputs equal a single process's for fp32 runtimes; a dynamic-int8 ONNX variant takes
    activation scales from its batch, so a text's output can change with its batch-mates
    (``describe()["batch_dependent"]``), here as in one process.
    """

    def __init__(self, source: str | Path, checkpoint: str | None = None, runtime: str = "torch",
                 workers: int = 2, threads_per_worker: int = 1, chunk_size: int = 256, **kwargs: Any):
        if workers < 1 or threads_per_worker < 1 or chunk_size < 1:
            raise InputError(f"workers ({workers}), threads_per_worker ({threads_per_worker}) and chunk_size "
                             f"({chunk_size}) must be at least 1")
        self.workers, self.threads_per_worker, self.chunk_size = workers, threads_per_worker, chunk_size
        self.source = str(source)
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init,
                                         initargs=(self.source, checkpoint, runtime, threads_per_worker, kwargs))
        try:
            self.task, self._describe = self._pool.submit(_describe).result()
            # one small call per worker, so the first real call does not pay for loading
            list(self._pool.map(_predict, [["warm up"]] * workers))
        except BaseException:
            self.close()
            raise

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        texts = list(texts)
        if not texts:
            return []
        size = min(self.chunk_size, math.ceil(len(texts) / self.workers))
        chunks = [texts[i:i + size] for i in range(0, len(texts), size)]
        try:
            parts = list(self._pool.map(_predict, chunks))
        except BrokenProcessPool as exc:
            raise FinextractError(f"{self.source}: a worker process died (out of memory, or killed); "
                                  f"its stderr above says why") from exc
        return [p for part in parts for p in part]

    def describe(self) -> dict[str, Any]:
        return {**self._describe, "workers": self.workers, "threads_per_worker": self.threads_per_worker}

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ParallelExtractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
