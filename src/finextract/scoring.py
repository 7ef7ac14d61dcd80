"""The one scorer: per-key exact-match precision/recall/F1, micro and macro averages.

Rules (shared/data/merchant/LABELING.md, "Scoring"), applied after trimming surrounding
whitespace:

* single-valued keys: gold and prediction both empty -> nothing; equal non-empty -> TP;
  a non-empty prediction that differs from gold -> FP, and also FN when gold is non-empty;
  a non-empty gold that was not predicted -> FN.
* multi-valued keys: per record and key, gold and predicted values are compared as sets of
  trimmed strings: TP = |G & P|, FP = |P - G|, FN = |G - P|.
* an invalid prediction (``None``: the model's output could not be parsed into the task's
  shape) is never dropped: every gold value of that record counts as a false negative, and
  the invalid-output rate is reported beside the scores.
"""

from __future__ import annotations

import math

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from finextract.errors import InputError
from finextract.tasks import Task


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def support(self) -> int:
        """Number of gold values (TP + FN)."""
        return self.tp + self.fn

    def add(self, other: "Counts") -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    def as_dict(self) -> dict[str, float | int]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision,
                "recall": self.recall, "f1": self.f1, "support": self.support}


@dataclass
class RecordError:
    index: int
    text: str
    key: str
    gold: Any
    pred: Any


@dataclass
class ScoreReport:
    task: str
    per_key: dict[str, Counts]
    micro: Counts
    n_records: int
    n_invalid: int
    errors: list[RecordError] = field(default_factory=list)

    @property
    def invalid_rate(self) -> float:
        return self.n_invalid / self.n_records if self.n_records else 0.0

    def _macro(self, attr: str) -> float:
        keys = [c for c in self.per_key.values() if c.tp + c.fp + c.fn]
        return sum(getattr(c, attr) for c in keys) / len(keys) if keys else 0.0

    @property
    def macro_f1(self) -> float:
        """Mean F1 over keys that occur in gold or prediction (absent keys would add 0/0)."""
        return self._macro("f1")

    @property
    def macro_precision(self) -> float:
        return self._macro("precision")

    @property
    def macro_recall(self) -> float:
        return self._macro("recall")

    def to_dict(self, with_errors: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "task": self.task,
            "n_records": self.n_records,
            "n_invalid": self.n_invalid,
            "invalid_rate": self.invalid_rate,
            "micro": self.micro.as_dict(),
            "macro": {"precision": self.macro_precision, "recall": self.macro_recall, "f1": self.macro_f1},
            "per_key": {k: c.as_dict() for k, c in self.per_key.items()},
        }
        if with_errors:
            out["errors"] = [asdict(e) for e in self.errors]
        return out

    def markdown_table(self, digits: int = 3) -> str:
        """Per-key P/R/F1 as a Markdown table (reports); the twin of :meth:`rich_table`."""
        f = f"{{:.{digits}f}}"
        lines = ["| key | P | R | F1 | support |", "|---|---:|---:|---:|---:|"]
        for key, c in self.per_key.items():
            if c.tp or c.fp or c.fn:
                lines.append(f"| {key} | {f.format(c.precision)} | {f.format(c.recall)} | {f.format(c.f1)} | {c.support} |")
            else:
                lines.append(f"| {key} | - | - | - | 0 |")
        m = self.micro
        lines.append(f"| **micro** | {f.format(m.precision)} | {f.format(m.recall)} | **{f.format(m.f1)}** | {m.support} |")
        lines.append(f"| macro | {f.format(self.macro_precision)} | {f.format(self.macro_recall)} | "
                     f"{f.format(self.macro_f1)} | |")
        return "\n".join(lines)

    def weakest_keys(self, n: int = 3) -> list[tuple[str, float]]:
        """The ``n`` scored keys with the lowest F1 (keys absent from gold and predictions are skipped)."""
        scored = [(k, c.f1) for k, c in self.per_key.items() if c.tp or c.fp or c.fn]
        return sorted(scored, key=lambda kv: kv[1])[:n]

    def rich_table(self, title: str | None = None):
        from rich.table import Table

        table = Table(title=title or f"{self.task}: exact-match scores ({self.n_records} records)")
        for col in ("key", "P", "R", "F1", "TP", "FP", "FN", "support"):
            table.add_column(col, justify="left" if col == "key" else "right")

        def row(name: str, c: Counts, style: str | None = None) -> None:
            if not (c.tp or c.fp or c.fn):  # key never present in gold or prediction: no score
                table.add_row(name, "-", "-", "-", "0", "0", "0", "0", style="dim")
                return
            table.add_row(name, f"{c.precision:.4f}", f"{c.recall:.4f}", f"{c.f1:.4f}",
                          str(c.tp), str(c.fp), str(c.fn), str(c.support), style=style)

        for key, c in self.per_key.items():
            row(key, c)
        table.add_section()
        row("micro", self.micro, style="bold")
        table.add_row("macro", f"{self.macro_precision:.4f}", f"{self.macro_recall:.4f}",
                      f"{self.macro_f1:.4f}", "", "", "", "", style="bold")
        table.caption = f"invalid outputs: {self.n_invalid}/{self.n_records} ({self.invalid_rate:.2%})"
        return table


def _norm(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _key_counts(gold: Any, pred: Any, multi: bool) -> Counts:
    if multi:
        g = {_norm(v) for v in (gold or [])} - {""}
        p = {_norm(v) for v in (pred or [])} - {""}
        return Counts(tp=len(g & p), fp=len(p - g), fn=len(g - p))
    g, p = _norm(gold), _norm(pred)
    if not g and not p:
        return Counts()
    if g and g == p:
        return Counts(tp=1)
    return Counts(fp=int(bool(p)), fn=int(bool(g)))


def score(
    golds: Sequence[dict[str, Any]],
    preds: Sequence[dict[str, Any] | None],
    task: Task,
    texts: Sequence[str] | None = None,
    collect_errors: bool = False,
) -> ScoreReport:
    """Score predictions against gold values (both dicts keyed by the task's keys).

    ``preds[i] is None`` marks an invalid output (see module docstring).
    """
    if len(golds) != len(preds):
        raise InputError(f"{len(golds)} gold records but {len(preds)} predictions")
    per_key = {k: Counts() for k in task.key_names}
    errors: list[RecordError] = []
    n_invalid = 0
    for i, (gold, pred) in enumerate(zip(golds, preds)):
        invalid = pred is None
        n_invalid += invalid
        for key in task.key_names:
            g = gold.get(key, task.empty_value())
            p = task.empty_value() if invalid else pred.get(key, task.empty_value())
            c = _key_counts(g, p, task.multi_valued)
            per_key[key].add(c)
            if collect_errors and (c.fp or c.fn):
                errors.append(RecordError(i, texts[i] if texts else "", key, g, "<invalid>" if invalid else p))
    micro = Counts()
    for c in per_key.values():
        micro.add(c)
    return ScoreReport(task=task.name, per_key=per_key, micro=micro, n_records=len(golds),
                       n_invalid=n_invalid, errors=errors)


def apply_min_confidence(values: dict[str, Any] | None, conf: dict[str, Any], threshold: float
                         ) -> tuple[dict[str, Any] | None, bool]:
    """Empty every filled field below ``threshold``; ``review`` is True when any field (filled
    or empty) was below it, so a person looks at the record."""
    if values is None:
        return None, True
    out = dict(values)
    review = False
    for key, value in values.items():
        c = conf.get(key)
        if isinstance(c, list):  # multi-valued: drop the values below the threshold
            keep = [v for v, p in zip(value, c) if p >= threshold]
            review |= len(keep) < len(value)
            out[key] = keep
            continue
        if c is None or (isinstance(c, float) and math.isnan(c)):
            continue
        if c < threshold:
            review = True
            if _norm(value):
                out[key] = ""
    return out, review


THRESHOLDS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)


def coverage_table(golds: Sequence[dict[str, Any]], pairs: Sequence[tuple[dict[str, Any] | None, dict[str, Any]]],
                   task: Task, thresholds: Sequence[float] = THRESHOLDS) -> list[dict[str, float]]:
    """Precision and coverage when fields below a confidence threshold are left empty.

    ``pairs`` are ``(prediction, confidence per key)`` as ``predict_with_confidence``
    returns them. Per threshold: micro precision/recall/F1 of the kept fields (scored by
    :func:`score`, so invalid outputs still count), ``coverage`` = kept filled values / filled
    values at threshold 0, and ``review_rate`` = records with any field (filled or empty)
    below the threshold. :func:`score` itself is unchanged.
    """
    def filled(p: dict[str, Any] | None) -> int:
        if p is None:
            return 0
        return sum(len([x for x in v if _norm(x)]) if isinstance(v, list) else int(bool(_norm(v))) for v in p.values())

    total = sum(filled(p) for p, _ in pairs)
    rows = []
    for t in thresholds:
        kept, review = [], 0
        for pred, conf in pairs:
            p, r = apply_min_confidence(pred, conf, t)
            kept.append(p)
            review += r
        rep = score(golds, kept, task)
        rows.append({"threshold": t, "precision": round(rep.micro.precision, 4), "recall": round(rep.micro.recall, 4),
                     "f1": round(rep.micro.f1, 4),
                     "coverage": round(sum(filled(p) for p in kept) / total, 4) if total else 0.0,
                     "review_rate": round(review / len(pairs), 4) if pairs else 0.0})
    return rows
