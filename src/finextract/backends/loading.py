"""One run or several averaged: what ``predict``, ``eval``, ``batch`` and ``serve`` load from their
shared flags (--runtime, --workers, --ensemble).

In the backends layer because an ensemble is an encoder object (the shared layer never imports a
backend) and ``serve`` may not import the commands; kept apart from the encoder package so that a
CRF or causal run is loaded without importing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from finextract.errors import InputError
from finextract.runtime import load_with_runtime


def load_run_or_ensemble(run_dir: str, checkpoint: str | None, runtime: str, workers: int = 1,
                         ensemble: Sequence[str] | None = None) -> Any:
    """One run (any backend, in ``workers`` processes), or ``run_dir`` and the ``ensemble`` runs averaged."""
    if not ensemble:
        return load_with_runtime(run_dir, checkpoint, runtime, workers=workers)
    if workers > 1:
        raise InputError("--ensemble and --workers > 1 do not combine yet; use one of them")
    from finextract.backends.encoder.ensemble import load_ensemble

    return load_ensemble([run_dir, *ensemble], checkpoint, runtime=runtime)
