"""``--runtime torch|onnx``: one place that turns the flag into the right extractor.

Why a module: ``predict``, ``eval``, ``batch`` and ``serve`` all take the flag, and a
non-encoder run asked for ``onnx`` must be refused (other backends would silently ignore an
unknown keyword and run PyTorch, which is not what the user asked for).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finextract.errors import InputError

RUNTIMES = ("torch", "onnx")
RUNTIME_HELP = ("torch (default) or onnx: the ONNX Runtime variant `finextract export-onnx` chose "
                "(encoder runs; quantized variants only with a recorded F1 delta)")
WORKERS_HELP = ("processes, each with its own copy of the model on one thread (1: this process, all "
                "threads). On 2 cores, 2 workers keep both busy through the Python parts too (docs/encoder.md)")


def load_with_runtime(source: str | Path, checkpoint: str | None, runtime: str = "torch", workers: int = 1,
                      **kwargs: Any):
    """``load_extractor`` with ``runtime`` checked and passed only where it means something;
    ``workers > 1`` gives a :class:`~finextract.parallel.ParallelExtractor` over the same run."""
    from finextract.extractor import load_extractor

    if runtime not in RUNTIMES:
        raise InputError(f"--runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if workers < 1:
        raise InputError(f"--workers {workers}: must be at least 1")
    if workers > 1:
        if str(source).startswith(("http://", "https://")):
            raise InputError(f"--workers {workers}: {source} is an endpoint; the server decides its own workers")
        from finextract.parallel import ParallelExtractor
        from finextract.runcheck import check_run

        check_run(str(source), checkpoint)  # a missing or damaged run: one line here, not in a worker
        _check_runtime(source, runtime)
        kwargs.pop("num_threads", None)  # one thread per worker
        return ParallelExtractor(source, checkpoint, runtime, workers=workers, **kwargs)
    if runtime == "torch":
        return load_extractor(source, checkpoint, **kwargs)
    _check_runtime(source, runtime)
    return load_extractor(source, checkpoint, runtime="onnx", **kwargs)


def _check_runtime(source: str | Path, runtime: str) -> None:
    """Refuse ``onnx`` for an endpoint or a run of another backend, naming it."""
    if runtime == "torch":
        return
    src = str(source)
    if src.startswith(("http://", "https://")):
        raise InputError(f"--runtime onnx: {src} is an endpoint; the runtime is the server's choice")
    from finextract.rundir import RunDir

    backend = RunDir(Path(src)).read_config().get("backend")
    if backend != "encoder":
        raise InputError(f"--runtime onnx: {src} is a {backend!r} run; only encoder runs have an ONNX export")
