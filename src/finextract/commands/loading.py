"""What ``predict``, ``eval`` and ``batch`` load from their shared flags (--runtime, --workers, --ensemble).

Lives with the commands, not in :mod:`finextract.runtime`, because an ensemble is an encoder
backend object and the shared layer never imports a backend.
"""

from __future__ import annotations

from typing import Any

from finextract.errors import InputError
from finextract.runtime import load_with_runtime

ENSEMBLE_HELP = ("another encoder run to average with RUN_DIR (repeatable): token logits averaged, then "
                 "decoded; same tokenizer, max_length and heads (docs/encoder.md)")


def load_for_command(run_dir: str, checkpoint: str | None, runtime: str, workers: int = 1,
                     ensemble: list[str] | None = None) -> Any:
    """One run (in ``workers`` processes), or RUN_DIR and the ``--ensemble`` runs averaged."""
    if not ensemble:
        return load_with_runtime(run_dir, checkpoint, runtime, workers=workers)
    if workers > 1:
        raise InputError("--ensemble and --workers > 1 do not combine yet; use one of them")
    from finextract.backends.encoder.ensemble import load_ensemble

    return load_ensemble([run_dir, *ensemble], checkpoint, runtime=runtime)
