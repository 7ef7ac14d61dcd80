"""The one interface every backend implements: ``predict(texts) -> list[dict | None]``.

A prediction is a dict with exactly the task's keys (strings for single-valued tasks, lists
of strings for multi-valued ones). ``None`` means the backend could not produce a valid
output for that text (an unparseable generation, a failed request); the scorer counts it as
wrong and reports it, it is never silently dropped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finextract.tasks import Task

Prediction = dict[str, Any] | None


class Extractor(ABC):
    """Turns texts into task-shaped dicts. Backends: encoder, causal_lm, crf, endpoint, ..."""

    task: Task

    @abstractmethod
    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """One prediction per text, in order."""

    def predict_one(self, text: str) -> Prediction:
        return self.predict([text])[0]

    def evaluate(self, records, collect_errors: bool = False):
        """Score this extractor on labeled :class:`~finextract.records.Record` objects."""
        from finextract.scoring import score

        texts = [r.text for r in records]
        preds = self.predict(texts)
        return score([r.values for r in records], preds, self.task, texts=texts,
                     collect_errors=collect_errors), preds

    def describe(self) -> dict[str, Any]:
        """Facts for reports: backend name, parameter count, etc. Backends extend this."""
        return {"backend": type(self).__name__, "task": self.task.name}


def load_extractor(source: str | Path, checkpoint: str | None = None, **kwargs: Any) -> Extractor:
    """Load an extractor from a run directory (any backend) or an ``http(s)://`` endpoint."""
    src = str(source)
    if src.startswith(("http://", "https://")):
        from finextract.registry import get_backend

        return get_backend("endpoint").load(src, checkpoint, **kwargs)
    from finextract.errors import FinextractError, RunDirError
    from finextract.rundir import RunDir
    from finextract.runcheck import check_run

    ckpt = check_run(src, checkpoint)  # damaged files: one line naming the file, before any parser sees them
    try:
        return RunDir(Path(src)).load_extractor(checkpoint, **kwargs)
    except FinextractError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise RunDirError(f"{ckpt}: cannot load this checkpoint: {type(exc).__name__}: {first[:300]}") from exc
