"""Help text of the --ensemble flag that ``predict``, ``eval``, ``batch`` and ``serve`` share.

The loading itself is :func:`finextract.backends.loading.load_run_or_ensemble`, imported inside
each command so that ``--help`` stays free of torch.
"""

from __future__ import annotations

ENSEMBLE_HELP = ("another encoder run to average with RUN_DIR (repeatable): token logits averaged, then "
                 "decoded; same tokenizer, max_length and heads (docs/encoder.md)")
