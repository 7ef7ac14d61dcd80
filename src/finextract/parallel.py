"""Worker processes for ``predict``: one copy of a run's extractor per core, one thread each.

Why: on a 2-core machine a small encoder spends about half of each call in Python (the
tokenizer glue, per-token features, span decoding), which holds the GIL, while ONNX
Runtime's intra-op threads split 25-token matrix products poorly. Two processes with one
thread each keep both cores busy for the whole call.

Why by hand and not :class:`concurrent.futures.ProcessPoolExecutor`: its queue-manager
thread adds about 2 ms to every call (measured: one descriptor 4.4 ms through it against
2.3 ms in-process on one thread), which is most of a single descriptor's budget. Here each
worker has its own duplex pipe; a call sends one chunk down each and reads the answers
back in order, with no thread in between. Workers are spawned (nothing half-started is
inherited), so a script that uses them needs the usual ``if __name__ == "__main__":`` guard.

``ParallelExtractor`` is an :class:`~finextract.extractor.Extractor` like any other, so
``evaluate``, ``batch`` and the CLI compose with it unchanged.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finextract.errors import FinextractError, InputError
from finextract.extractor import Extractor, Prediction


def _serve(conn: Any, source: str, checkpoint: str | None, runtime: str, threads: int, kwargs: dict[str, Any]) -> None:
    """Worker loop: load once, then answer ``(method, texts)`` until ``("stop", None)`` or EOF."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
        from finextract.extractor import load_extractor

        # the parent checked the run and the runtime (finextract.runtime) before starting workers
        ex = load_extractor(source, checkpoint, num_threads=threads, **({"runtime": runtime} if runtime != "torch"
                                                                          else {}), **kwargs)
        conn.send(("ok", (ex.task, ex.describe(), hasattr(ex, "predict_with_confidence"))))
    except BaseException as exc:  # the parent raises it with the worker's message
        conn.send(("error", _portable(exc)))
        return
    while True:
        try:
            op, payload = conn.recv()
        except EOFError:
            return
        if op == "stop":
            return
        try:
            if op not in _METHODS:
                raise InputError(f"worker: unknown request {op!r}")
            conn.send(("ok", getattr(ex, op)(payload)))
        except BaseException as exc:
            conn.send(("error", _portable(exc)))


_METHODS = ("predict", "predict_with_confidence")


def _portable(exc: BaseException) -> BaseException:
    """The exception itself when it pickles (finextract's errors do), else its text."""
    import pickle

    try:
        pickle.dumps(exc)
        return exc
    except Exception:
        return FinextractError("".join(traceback.format_exception_only(type(exc), exc)).strip())


def balanced_shares(lengths: Sequence[int], parts: int, per_text: int = 16) -> list[list[int]]:
    """Indices of ``lengths`` split into ``parts`` shares of about equal work, each in input order.

    A call's answer waits for its slowest worker, so contiguous halves of a call that holds a few
    long wire memos leave one core idle while the other finishes. Work is taken as the text's
    length plus a fixed ``per_text`` cost (featurizing and decoding a text costs about as much as
    16 characters of forward); the longest texts are dealt first, each to the lightest share
    (greedy longest-processing-time, within 4/3 of the best split)."""
    loads = [0] * parts
    shares: list[list[int]] = [[] for _ in range(parts)]
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        k = loads.index(min(loads))
        shares[k].append(i)
        loads[k] += lengths[i] + per_text
    return [sorted(s) for s in shares]


class ParallelExtractor(Extractor):
    """``workers`` processes, each holding the run's extractor on ``threads_per_worker`` threads.

    A call is cut into waves of ``workers x chunk_size`` texts (so a long input keeps memory
    bounded); each wave is dealt to the workers in shares of about equal work by text length
    (:func:`balanced_shares`), and the answers come back in input order; a call of fewer texts
    than workers uses the first ones only. Use it as a context manager, or call
    :meth:`close`, to stop the workers. Outputs equal one process's for fp32 runtimes; a
    dynamic-int8 ONNX variant takes activation scales from its batch, so a text's output can
    change with its batch-mates (``describe()["batch_dependent"]``), here as in one process.
    """

    def __init__(self, source: str | Path, checkpoint: str | None = None, runtime: str = "torch",
                 workers: int = 2, threads_per_worker: int = 1, chunk_size: int = 256, **kwargs: Any):
        if workers < 1 or threads_per_worker < 1 or chunk_size < 1:
            raise InputError(f"workers ({workers}), threads_per_worker ({threads_per_worker}) and chunk_size "
                             f"({chunk_size}) must be at least 1")
        self.workers, self.threads_per_worker, self.chunk_size = workers, threads_per_worker, chunk_size
        self.source = str(source)
        ctx = multiprocessing.get_context("spawn")
        self._conns: list[Any] = []
        self._procs: list[Any] = []
        try:
            for _ in range(workers):
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_serve, args=(child, self.source, checkpoint, runtime, threads_per_worker,
                                                        kwargs), daemon=True)
                proc.start()
                child.close()
                self._conns.append(parent)
                self._procs.append(proc)
            infos = [self._receive(i) for i in range(workers)]
            self.task, self._describe, self._has_confidence = infos[0]
            self._call_wave("predict", [["warm up"] * 64] * workers)  # sizes each worker's buffers before real calls
        except BaseException:
            self.close()
            raise

    def _receive(self, i: int) -> Any:
        status, payload = self._read(i)
        if status == "error":
            raise payload
        return payload

    def _read(self, i: int) -> tuple[str, Any]:
        """Worker ``i``'s next ``(status, payload)``; a worker that died is an error here."""
        try:
            return self._conns[i].recv()
        except (EOFError, OSError) as exc:
            self._procs[i].join(timeout=5)
            raise FinextractError(
                f"{self.source}: worker {i} exited (exit code {self._procs[i].exitcode}); its stderr above says why. "
                "From a script, put the call under `if __name__ == \"__main__\":` (workers are spawned and "
                "re-import the main module)") from exc

    def _call_wave(self, method: str, shares: list[list[str]]) -> list[list[Any]]:
        """One round: share ``i`` to worker ``i`` (at most one share per worker), all at once."""
        for i, share in enumerate(shares):
            self._conns[i].send((method, share))
        # every answer of the wave is read before any error is raised, so none is left in a
        # pipe to be taken for the next call's answer
        replies = [self._read(i) for i in range(len(shares))]
        errors = [payload for status, payload in replies if status == "error"]
        if errors:
            raise errors[0]
        return [payload for _, payload in replies]

    def _call(self, method: str, texts: Sequence[str]) -> list[Any]:
        texts = list(texts)
        if not texts:
            return []
        out: list[Any] = [None] * len(texts)
        wave = self.chunk_size * self.workers
        for start in range(0, len(texts), wave):  # a wave: one share per worker, answered together
            shares = balanced_shares([len(t) for t in texts[start:start + wave]], self.workers)
            shares = [s for s in shares if s]
            answers = self._call_wave(method, [[texts[start + i] for i in share] for share in shares])
            for share, answer in zip(shares, answers):
                for i, value in zip(share, answer):
                    out[start + i] = value
        return out

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return self._call("predict", texts)

    def predict_with_confidence(self, texts: Sequence[str]) -> list[tuple[Prediction, dict[str, Any]]]:
        """The workers' own ``predict_with_confidence`` (encoder runs), in input order."""
        if not self._has_confidence:
            raise InputError(f"{self.source}: this backend gives no field confidence (encoder runs do)")
        return self._call("predict_with_confidence", texts)

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (for memory and CPU accounting)."""
        return [p.pid for p in self._procs]

    def describe(self) -> dict[str, Any]:
        return {**self._describe, "workers": self.workers, "threads_per_worker": self.threads_per_worker}

    def close(self) -> None:
        for conn in self._conns:
            try:
                conn.send(("stop", None))
            except (OSError, ValueError):
                pass
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
        for conn in self._conns:
            conn.close()
        self._conns, self._procs = [], []

    def __enter__(self) -> ParallelExtractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_procs", None):
            self.close()
