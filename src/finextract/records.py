"""Records and file I/O.

A labeled record is one JSON object per line::

    {"text": "...", "fields": {KEY: "value" | "", ...}}          # single-valued task
    {"text": "...", "entities": {TYPE: ["value", ...], ...}}      # multi-valued task

Other top-level keys (ids, vendor labels) are kept in ``Record.meta`` and written back.
Prediction input may also be CSV, Parquet or plain text (one text per line).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finextract.errors import InputError, NotFoundError
from finextract.tasks import Task


@dataclass
class Record:
    text: str
    values: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self, task: Task) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, task.record_field: self.values}
        out.update({k: v for k, v in self.meta.items() if k not in out})
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any], task: Task) -> "Record":
        meta = {k: v for k, v in obj.items() if k not in ("text", task.record_field)}
        values = task.normalize_output(obj.get(task.record_field)) or task.empty_output()
        return cls(text=obj["text"], values=values, meta=meta)


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write dicts as JSON Lines (UTF-8, no ASCII escaping). Returns the row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(path)  # atomic: a crash never leaves a half-written file behind
    return n


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line_number, object) for well-formed lines; raises ValueError naming file:line."""
    path = Path(path)
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InputError(f"{path}:{lineno}: not valid UTF-8 JSON: {exc}") from exc
            yield lineno, obj


def write_records(path: str | Path, records: Iterable[Record], task: Task) -> int:
    return write_jsonl(path, (r.to_json(task) for r in records))


def read_records(path: str | Path, task: Task, skip_invalid: bool = False) -> list[Record]:
    """Load labeled records, refusing invalid data unless ``skip_invalid``.

    Validation is the same as ``finextract data check``; with ``skip_invalid`` the bad
    records are dropped and a one-line summary (how many and why) is logged.
    """
    from finextract.validate import DataError, check_file, log_skipped

    report = check_file(path, task)
    if report.errors and not skip_invalid:
        raise DataError(report)
    if report.errors:
        log_skipped(report)
    return [Record.from_json(obj, task) for obj in report.valid_objects]


TEXT_SUFFIXES = {".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt"}


def read_texts(path: str | Path, text_column: str = "text") -> list[str]:
    """Texts to extract from: JSONL/CSV/TSV/Parquet (``text_column``) or .txt (one per line)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise NotFoundError(f"{path}: no such file")
    if suffix in (".jsonl", ".json"):
        texts = []
        for lineno, obj in iter_jsonl(path):
            if not isinstance(obj, dict) or not isinstance(obj.get(text_column), str):
                raise InputError(f"{path}:{lineno}: expected an object with a string {text_column!r}")
            texts.append(obj[text_column])
        return texts
    if suffix in (".csv", ".tsv"):
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            if reader.fieldnames is None or text_column not in reader.fieldnames:
                raise InputError(f"{path}: no column {text_column!r} (columns: {reader.fieldnames})")
            return [row[text_column] or "" for row in reader]
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        if text_column not in table.column_names:
            raise InputError(f"{path}: no column {text_column!r} (columns: {table.column_names})")
        return [t or "" for t in table.column(text_column).to_pylist()]
    if suffix == ".txt":
        return [line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    raise InputError(f"{path}: unsupported input format {suffix!r}; use one of {sorted(TEXT_SUFFIXES)}")


def write_predictions(
    path: str | Path, texts: Sequence[str], predictions: Sequence[dict[str, Any] | None], task: Task
) -> int:
    """Write predictions as JSONL (record format plus ``"valid"``) or CSV (one column per key)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "valid", *task.key_names])
            for text, pred in zip(texts, predictions):
                vals = pred or task.empty_output()
                cells = [json.dumps(vals[k], ensure_ascii=False) if task.multi_valued else vals[k] for k in task.key_names]
                writer.writerow([text, pred is not None, *cells])
        return len(texts)
    return write_jsonl(
        path,
        (
            {"text": t, task.record_field: p if p is not None else task.empty_output(), "valid": p is not None}
            for t, p in zip(texts, predictions)
        ),
    )


def read_predictions(path: str | Path, task: Task) -> list[tuple[str, dict[str, Any] | None]]:
    """Read a predictions JSONL: ``valid: false`` or a malformed value gives ``None`` (invalid)."""
    out: list[tuple[str, dict[str, Any] | None]] = []
    for lineno, obj in iter_jsonl(path):
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise InputError(f"{path}:{lineno}: expected an object with a string 'text'")
        pred = None if obj.get("valid") is False else task.normalize_output(obj.get(task.record_field))
        out.append((obj["text"], pred))
    return out
