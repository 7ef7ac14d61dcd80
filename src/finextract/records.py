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
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finextract.errors import InputError, NotFoundError, UserError
from finextract.tasks import Task

from finextract.strictjson import BOM, MAX_JSON_NUMBER_DIGITS, loads_strict, unicode_problem  # noqa: F401


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


class OutputError(UserError, ValueError):
    """An output could not be written (a directory, no permission, a full disk); nothing was left half written."""


def _check_output_path(path: Path) -> None:
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give a file path for the output")


def check_output_path(path: str | Path, suffixes: tuple[str, ...] | None = None) -> Path:
    """Refuse an output path that can never be written, before any work is done."""
    path = Path(path)
    _check_output_path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise OutputError(f"{path}: the output must end in one of {list(suffixes)}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{path}: no permission to write in {parent}")
    return path


@contextmanager
def atomic_writer(path: str | Path, newline: str | None = None) -> Iterator[Any]:
    """Open a temporary file next to ``path`` for text writing; rename it over ``path`` on success.

    A failure (a bad record found late, a full disk, a kill) leaves ``path`` as it was and no
    temporary file behind (a kill can leave one ``.NAME.*.tmp``, never a half-written ``path``).
    """
    path = check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write dicts as JSON Lines (UTF-8, no ASCII escaping), atomically. Returns the row count."""
    n = 0
    with atomic_writer(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line_number, object) for well-formed lines; raises InputError naming file:line."""
    path = Path(path)
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(BOM):
                raw = raw[len(BOM):]
            if not raw.strip():
                continue
            try:
                obj = loads_strict(raw)
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}:{lineno}: not valid UTF-8 (byte {exc.start})") from None
            except ValueError as exc:
                raise InputError(f"{path}:{lineno}: not valid JSON: {exc}") from None
            problem = unicode_problem(obj)
            if problem:
                raise InputError(f"{path}:{lineno}: a string {problem}")
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


def _line_limit(max_chars: int | None) -> int:
    """Bytes one input line may hold: a text of ``max_chars`` characters, JSON-escaped, plus slack."""
    return -1 if max_chars is None else 6 * max_chars + 65536


def _read_lines(path: Path, fh: Any, max_chars: int | None) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) per line, BOM stripped, never holding more than the line limit in memory."""
    limit = _line_limit(max_chars)
    lineno = 0
    while True:
        raw = fh.readline(limit)
        if not raw:
            return
        lineno += 1
        if limit > 0 and len(raw) >= limit and not raw.endswith(b"\n"):
            raise InputError(f"{path}:{lineno}: line longer than {limit} bytes, so its text is over the "
                             f"{max_chars}-character limit (raise --max-chars to accept it)")
        if lineno == 1 and raw.startswith(BOM):
            raw = raw[len(BOM):]
        yield lineno, raw


def _decode(path: Path, lineno: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}:{lineno}: not valid UTF-8 (byte {exc.start} of the line)") from None


def _checked_text(where: str, text: Any, text_column: str, max_chars: int | None) -> str:
    if not isinstance(text, str):
        raise InputError(f"{where}: {text_column!r} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise InputError(f"{where}: {text_column!r} is empty")
    if max_chars is not None and len(text) > max_chars:
        raise InputError(f"{where}: {text_column!r} has {len(text)} characters, over the limit of {max_chars} "
                         "(raise --max-chars to accept it)")
    problem = unicode_problem(text)
    if problem:
        raise InputError(f"{where}: {text_column!r} {problem}")
    return text


def iter_input_texts(path: str | Path, text_column: str = "text", max_chars: int | None = None,
                     chunk_rows: int = 1024) -> Iterator[str]:
    """Stream the texts of an input file, one rule set for every command that reads one.

    JSONL/CSV/TSV use ``text_column`` (a JSON field or a column), Parquet its column (row groups
    via ``iter_batches``), TXT one text per non-blank line. Every text must be a non-empty
    string of at most ``max_chars`` characters, valid UTF-8 without lone surrogates or NULs;
    a leading UTF-8 BOM is accepted; a duplicate JSON key is refused. Any violation raises
    :class:`InputError` naming ``file:line`` (Parquet: ``file: row N``). Memory stays bounded
    by ``max_chars``: an over-long line is refused after reading at most the line limit.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an input file")
    if not path.exists():
        raise NotFoundError(f"{path}: no such file")
    if suffix not in TEXT_SUFFIXES:
        raise InputError(f"{path}: unsupported input format {suffix!r}; use one of {sorted(TEXT_SUFFIXES)}")
    try:
        if suffix in (".jsonl", ".json"):
            yield from _iter_jsonl_texts(path, text_column, max_chars)
        elif suffix in (".csv", ".tsv"):
            yield from _iter_csv_texts(path, text_column, max_chars, "\t" if suffix == ".tsv" else ",")
        elif suffix == ".parquet":
            yield from _iter_parquet_texts(path, text_column, max_chars, chunk_rows)
        else:
            with path.open("rb") as fh:
                for lineno, raw in _read_lines(path, fh, max_chars):
                    line = _decode(path, lineno, raw).rstrip("\r\n")
                    if line.strip():
                        yield _checked_text(f"{path}:{lineno}", line, "line", max_chars)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _iter_jsonl_texts(path: Path, text_column: str, max_chars: int | None) -> Iterator[str]:
    with path.open("rb") as fh:
        for lineno, raw in _read_lines(path, fh, max_chars):
            if not raw.strip():
                continue
            line = _decode(path, lineno, raw)
            try:
                obj = loads_strict(line)
            except ValueError as exc:
                raise InputError(f"{path}:{lineno}: not valid JSON: {exc}") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object with {text_column!r}, "
                                 f"got {type(obj).__name__}")
            if text_column not in obj:
                raise InputError(f"{path}:{lineno}: no {text_column!r} field (use --text-column)")
            yield _checked_text(f"{path}:{lineno}", obj[text_column], text_column, max_chars)


def _iter_csv_texts(path: Path, text_column: str, max_chars: int | None, delimiter: str) -> Iterator[str]:
    if max_chars is not None and csv.field_size_limit() < max_chars + 1:
        csv.field_size_limit(max_chars + 1)  # the csv module's own cap (131072) is otherwise the limit
    with path.open("rb") as fh:
        lines = ((lineno, _decode(path, lineno, raw)) for lineno, raw in _read_lines(path, fh, max_chars))
        reader = csv.reader((line for _, line in lines), delimiter=delimiter)
        try:
            header = next(reader, None)
            if header is None:
                raise InputError(f"{path}: empty file (no header row)")
            if text_column not in header:
                raise InputError(f"{path}: no column {text_column!r} (columns: {header})")
            col = header.index(text_column)
            for row in reader:
                if not row:
                    continue
                where = f"{path}:{reader.line_num}"
                if col >= len(row):
                    raise InputError(f"{where}: the row has {len(row)} cells, no {text_column!r}")
                yield _checked_text(where, row[col], text_column, max_chars)
        except csv.Error as exc:
            raise InputError(f"{path}:{reader.line_num + 1}: not valid CSV: {exc}") from None


def _iter_parquet_texts(path: Path, text_column: str, max_chars: int | None, chunk_rows: int) -> Iterator[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file: {exc}") from None
    schema = pf.schema_arrow
    if text_column not in schema.names:
        raise InputError(f"{path}: no column {text_column!r} (columns: {schema.names})")
    kind = schema.field(text_column).type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise InputError(f"{path}: column {text_column!r} holds {kind}, not strings")
    row = 0
    for batch in pf.iter_batches(batch_size=chunk_rows, columns=[text_column]):
        for text in batch.column(0).to_pylist():
            yield _checked_text(f"{path}: row {row}", "" if text is None else text, text_column, max_chars)
            row += 1


def read_texts(path: str | Path, text_column: str = "text", max_chars: int | None = None) -> list[str]:
    """All texts of an input file (rules of :func:`iter_input_texts`); an empty file is an error."""
    texts = list(iter_input_texts(path, text_column, max_chars))
    if not texts:
        raise InputError(f"{path}: no texts (the file is empty)")
    return texts


def write_predictions(
    path: str | Path, texts: Sequence[str], predictions: Sequence[dict[str, Any] | None], task: Task
) -> int:
    """Write predictions as JSONL (record format plus ``"valid"``) or CSV (one column per key)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        with atomic_writer(path, newline="") as fh:
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
