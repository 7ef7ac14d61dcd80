"""Several encoder runs as one extractor: their token logits averaged, then decoded once.

Why: three seeds of the default merchant recipe, averaged this way, scored 0.8965 micro-F1 on
the real pilot memos against 0.877 for the three alone on average (+0.3 on generated test;
``benchmarks/results/encoder_accuracy_session4.md``), at three times the inference cost. It is
the cheapest accuracy there is for batch jobs that can afford the time.

The members must read a text the same way: same tokenizer and ``max_length`` (checked per text:
the token offsets must agree) and the same heads (the logit widths must agree). The first run's
decoder and confidence temperature are used; the averaged logits go through the same decoders as
a single run's, so every value is still an exact substring of the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finextract.backends.encoder.model import EncoderExtractor
from finextract.errors import InputError


class EnsembleExtractor(EncoderExtractor):
    """The mean of ``members``' logits, decoded with the first member's options."""

    def __init__(self, members: Sequence[EncoderExtractor]):
        members = list(members)
        if not members:
            raise InputError("ensemble: give at least one encoder run")
        first = members[0]
        for m in members[1:]:
            if m.task.name != first.task.name:
                raise InputError(f"ensemble: runs of different tasks ({first.task.name!r} and {m.task.name!r})")
        super().__init__(None, first.tokenizer, first.task, first.max_length, first.batch_size,
                         decode_options=first.decode_options,
                         info={"runtime": first.info.get("runtime"),
                               "members": [m.info.get("checkpoint") for m in members]})
        self.members = members

    def logits(self, texts: Sequence[str]) -> list[tuple[list[tuple[int, int]], np.ndarray]]:
        texts = list(texts)
        per_member = [m.logits(texts) for m in self.members]
        out = []
        for i in range(len(texts)):
            offsets, first = per_member[0][i]
            for k, pm in enumerate(per_member[1:], 2):
                if list(pm[i][0]) != list(offsets) or pm[i][1].shape != first.shape:
                    raise InputError(f"ensemble: member {k} reads text {i + 1} differently from member 1 "
                                     "(another tokenizer, max_length or set of heads); members must agree")
            out.append((offsets, np.mean([pm[i][1] for pm in per_member], axis=0)))
        return out


def load_ensemble(sources: Sequence[str | Path], checkpoint: str | None = "best", **kwargs: Any) -> EnsembleExtractor:
    """Load every run (encoder runs only; ``runtime="onnx"`` etc. as for one run) and average them."""
    from finextract.backends.encoder.extractor import load
    from finextract.rundir import RunDir

    for src in sources:
        backend = RunDir(Path(src)).read_config().get("backend")
        if backend != "encoder":
            raise InputError(f"ensemble: {src} is a {backend!r} run; only encoder runs can be averaged")
    return EnsembleExtractor([load(str(s), checkpoint, **kwargs) for s in sources])
