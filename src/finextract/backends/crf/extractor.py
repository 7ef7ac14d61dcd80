"""Inference for the CRF baseline: a crfsuite tagger whose spans are cut out of the input.

(Training, see :mod:`.train`:) crfsuite's L-BFGS cannot save intermediate states, but it is deterministic: a run capped at
N iterations is exactly the first N iterations of a longer run. So checkpoint ``step-N`` is
a model trained with ``max_iterations=N``; resuming skips every complete checkpoint, and
the result equals an uninterrupted run. Training stops early when L-BFGS converges before
the next checkpoint (a later checkpoint would be the same model).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pycrfsuite

from finextract.errors import NotFoundError
from finextract.backends.crf.config import CrfRunConfig
from finextract.backends.crf.tagging import spans_from_tags, spans_to_output
from finextract.backends.crf.tokens import sentence_features, tokenize
from finextract.extractor import Extractor, Prediction
from finextract.rundir import RunDir
from finextract.tasks import Task, load_task

log = logging.getLogger("finextract")
MODEL_FILE = "model.crfsuite"


class CrfExtractor(Extractor):
    """Tags tokens with a crfsuite model and cuts the spans out of the input text."""

    def __init__(self, task: Task, model_path: Path, window: int = 2, single_value: str = "marginal"):
        self.task = task
        self.model_path = Path(model_path)
        self.window = window
        self.single_value = single_value
        self.tagger = pycrfsuite.Tagger()
        self.tagger.open(str(self.model_path))
        self._labels = set(self.tagger.labels())

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        out: list[Prediction] = []
        for text in texts:
            tokens = tokenize(text)
            if not tokens:
                out.append(self.task.empty_output())
                continue
            tags = self.tagger.tag(sentence_features(text, tokens, self.window))
            marg = None
            if self.single_value == "marginal" and not self.task.multi_valued:
                marg = [self.tagger.marginal(t, i) for i, t in enumerate(tags)]
            out.append(spans_to_output(text, tokens, spans_from_tags(tags, marg), self.task, self.single_value))
        return out

    def describe(self) -> dict[str, Any]:
        info = self.tagger.info()
        n_params = len(info.state_features) + len(info.transitions)
        return {"backend": "crf", "task": self.task.name, "params": n_params,
                "labels": len(self._labels), "model_bytes": self.model_path.stat().st_size}


def load(source: str, checkpoint: str | None = None, **kwargs: Any) -> CrfExtractor:
    """Load a CRF run directory's checkpoint (``best`` by default) as an Extractor."""
    run = RunDir(Path(source))
    cfg = CrfRunConfig.model_validate(run.read_config())
    path = run.resolve_checkpoint(checkpoint)
    model = path / MODEL_FILE
    if not model.exists():
        raise NotFoundError(f"{path}: no {MODEL_FILE} (incomplete or not a CRF checkpoint)")
    return CrfExtractor(load_task(cfg.task), model, cfg.model.window, kwargs.get("single_value", cfg.model.single_value))
