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


def load_with_runtime(source: str | Path, checkpoint: str | None, runtime: str = "torch", **kwargs: Any):
    """``load_extractor`` with ``runtime`` checked and passed only where it means something."""
    from finextract.extractor import load_extractor

    if runtime not in RUNTIMES:
        raise InputError(f"--runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if runtime == "torch":
        return load_extractor(source, checkpoint, **kwargs)
    src = str(source)
    if src.startswith(("http://", "https://")):
        raise InputError(f"--runtime onnx: {src} is an endpoint; the runtime is the server's choice")
    from finextract.rundir import RunDir

    backend = RunDir(Path(src)).read_config().get("backend")
    if backend != "encoder":
        raise InputError(f"--runtime onnx: {src} is a {backend!r} run; only encoder runs have an ONNX export")
    return load_extractor(source, checkpoint, runtime="onnx", **kwargs)
