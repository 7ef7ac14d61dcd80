"""Does the served model score what it scored offline?

Study 2 saw served models lose 3-5 F1 points: a different tokenizer or template in the
serving image, a quantized copy, or an adapter that was silently not applied. This scores
the endpoint and the reference run on the same labeled data with the same scorer, and
fails when the endpoint is more than ``max_drop_points`` F1 points worse. With a base-model
endpoint it also checks that the served outputs are not simply the base model's (adapter
not applied). Every validation is written to ``RUN_DIR/validations/<timestamp>.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finextract.errors import InputError
from finextract.extractor import load_extractor
from finextract.records import read_records
from finextract.scoring import score


@dataclass
class ValidationResult:
    url: str
    kind: str
    reference: str
    data: str
    n: int
    offline_micro_f1: float
    endpoint_micro_f1: float
    delta_points: float
    max_drop_points: float
    agreement: float
    endpoint_invalid_rate: float
    passed: bool
    problems: list[str] = field(default_factory=list)
    base: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _agreement(a: list, b: list) -> float:
    return sum(x == y for x, y in zip(a, b)) / max(1, len(a))


def validate_endpoint(
    url: str,
    data: str | Path,
    reference: str | Path,
    base: str | None = None,
    kind: str = "auto",
    checkpoint: str = "best",
    max_drop_points: float = 0.5,
    limit: int | None = None,
    batch_size: int = 32,
    write: bool = True,
) -> ValidationResult:
    from finextract.backends.endpoint import EndpointExtractor

    offline = load_extractor(reference, checkpoint)
    task = offline.task
    records = read_records(data, task)
    if limit:
        records = records[:limit]
    if not records:
        raise InputError(f"{data}: no records to validate on")
    texts = [r.text for r in records]
    gold = [r.values for r in records]
    served = EndpointExtractor(url, kind=kind, task=task, batch_size=batch_size)  # type: ignore[arg-type]
    off_preds = offline.predict(texts)
    srv_preds = served.predict(texts)
    off_rep = score(gold, off_preds, task, texts=texts)
    srv_rep = score(gold, srv_preds, task, texts=texts)
    delta = round(100 * (off_rep.micro.f1 - srv_rep.micro.f1), 4)
    problems = []
    if delta > max_drop_points:
        problems.append(f"endpoint micro-F1 is {delta:.2f} points below offline (limit {max_drop_points})")
    if served.failures:
        problems.append(f"{served.failures} texts got no answer from the endpoint")
    base_info = None
    if base:
        base_ex = EndpointExtractor(base, kind="auto", task=task, batch_size=batch_size)
        base_preds = base_ex.predict(texts)
        base_rep = score(gold, base_preds, task, texts=texts)
        same_as_base = _agreement(srv_preds, base_preds)
        offline_vs_base = _agreement(off_preds, base_preds)
        base_info = {"url": base_ex.url, "micro_f1": base_rep.micro.f1, "served_equals_base": same_as_base,
                     "offline_equals_base": offline_vs_base}
        # identical to the base model while the trained run differs from it: the adapter is not applied
        if same_as_base == 1.0 and offline_vs_base < 1.0:
            problems.append("served outputs are identical to the base model's: the adapter/fine-tune is not applied")
    result = ValidationResult(
        url=served.url, kind=served.kind, reference=str(reference), data=str(data), n=len(records),
        offline_micro_f1=off_rep.micro.f1, endpoint_micro_f1=srv_rep.micro.f1, delta_points=delta,
        max_drop_points=max_drop_points, agreement=_agreement(off_preds, srv_preds),
        endpoint_invalid_rate=srv_rep.invalid_rate, passed=not problems, problems=problems, base=base_info)
    if write and Path(reference).is_dir():
        out_dir = Path(reference) / "validations"
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{int(time.time() * 1000) % 1000:03d}"
        (out_dir / f"{stamp}.json").write_text(json.dumps({"time": time.time(), **result.to_dict()}, indent=2),
                                               encoding="utf-8")
    return result
