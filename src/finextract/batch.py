"""Bank-scale offline extraction: stream a file through a model, resumable after a kill.

Memory is bounded by the chunk size, not the file: JSONL/TXT/CSV are read line by line and
Parquet by ``iter_batches``. The output is JSONL, one row per input row::

    {"row": 17, "text": "...", "fields": {...}, "valid": true}

Each chunk is appended, flushed and fsync'ed before the next is read, so after a kill the
file holds complete chunks plus at most one partial line. On restart the partial line is
truncated, the last complete ``row`` says where to resume (rows are written in order), and
its text is checked against the input so a different input file is refused instead of
silently mixed in.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finextract.errors import InputError, NotFoundError
from finextract.extractor import Extractor


@dataclass
class BatchSummary:
    input: str
    output: str
    rows_total: int
    rows_done_before: int
    rows_written: int
    invalid: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def iter_texts(path: Path, text_column: str = "text", chunk_rows: int = 1024) -> Iterator[str]:
    """Yield texts one by one without loading the file (Parquet: ``chunk_rows`` rows at a time)."""
    suffix = path.suffix.lower()
    if not path.exists():
        raise NotFoundError(f"{path}: no such file")
    if suffix in (".jsonl", ".json"):
        with path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except ValueError as exc:
                    raise InputError(f"{path}:{lineno}: not valid JSON: {exc}") from exc
                if not isinstance(obj, dict) or not isinstance(obj.get(text_column), str):
                    raise InputError(f"{path}:{lineno}: expected an object with a string {text_column!r}")
                yield obj[text_column]
    elif suffix in (".csv", ".tsv"):
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            if reader.fieldnames is None or text_column not in reader.fieldnames:
                raise InputError(f"{path}: no column {text_column!r} (columns: {reader.fieldnames})")
            for row in reader:
                yield row[text_column] or ""
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        if text_column not in pf.schema_arrow.names:
            raise InputError(f"{path}: no column {text_column!r} (columns: {pf.schema_arrow.names})")
        for batch in pf.iter_batches(batch_size=chunk_rows, columns=[text_column]):
            for t in batch.column(0).to_pylist():
                yield t or ""
    elif suffix == ".txt":
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield line.rstrip("\n")
    else:
        raise InputError(f"{path}: unsupported input format {suffix!r}; use .jsonl, .csv, .tsv, .parquet or .txt")


def count_rows(path: Path, text_column: str = "text") -> int | None:
    """Row count for the progress bar, cheaply (Parquet metadata; a byte scan for line formats)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if suffix in (".jsonl", ".json", ".txt"):
        n = 0
        with path.open("rb") as fh:
            for line in fh:
                n += bool(line.strip())
        return n
    return None  # CSV rows can span lines; count while streaming instead


def recover_output(path: Path) -> tuple[int, str | None]:
    """Truncate a partial last line; return (rows complete, text of the last complete row)."""
    if not path.exists():
        return 0, None
    with path.open("rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return 0, None
        # find the last newline; anything after it is a partial line from a kill
        pos, cut = size, 0
        while pos > 0:
            start = max(0, pos - 65536)
            fh.seek(start)
            idx = fh.read(pos - start).rfind(b"\n")
            if idx >= 0:
                cut = start + idx + 1
                break
            pos = start
        if cut < size:
            fh.truncate(cut)
            fh.flush()
            os.fsync(fh.fileno())
        if cut == 0:
            return 0, None
        # read the last complete line
        start = max(0, cut - 1_048_576)
        fh.seek(start)
        lines = fh.read(cut - start).splitlines()
    last = json.loads(lines[-1])
    if not isinstance(last, dict) or "row" not in last:
        raise InputError(f"{path}: not a finextract batch output (no 'row' field); use --overwrite or a new path")
    return int(last["row"]) + 1, last.get("text")


def run_batch(
    extractor: Extractor,
    input_path: str | Path,
    output_path: str | Path,
    batch_size: int = 64,
    text_column: str = "text",
    overwrite: bool = False,
    progress: bool = True,
) -> BatchSummary:
    """Extract every row of ``input_path`` into ``output_path`` (JSONL), resuming where it stopped."""
    input_path, output_path = Path(input_path), Path(output_path)
    if output_path.suffix.lower() not in (".jsonl", ".json"):
        raise InputError(f"{output_path}: batch output must be .jsonl (appendable, resumable)")
    if batch_size < 1:
        raise InputError("batch_size must be >= 1")
    if overwrite and output_path.exists():
        output_path.unlink()
    output_path.parent.mkdir(parents=True, exist_ok=True)
    done, last_text = recover_output(output_path)
    total = count_rows(input_path, text_column)
    task = extractor.task
    written = invalid = 0
    texts = iter_texts(input_path, text_column)
    for i in range(done):  # skip rows already extracted, checking the input is the same file
        try:
            t = next(texts)
        except StopIteration:
            raise InputError(f"{output_path} has {done} rows but {input_path} only {i}; "
                             "it was written for another input (use --overwrite)") from None
        if i == done - 1 and last_text is not None and t != last_text:
            raise InputError(f"{output_path}: row {i} was written for a different text than {input_path} row {i}; "
                             "it belongs to another input (use --overwrite or a new output path)")

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("extracting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=not progress, console=Console(stderr=True)) as bar, output_path.open("ab") as out:
        job = bar.add_task("rows", total=total, completed=done)
        row = done
        while True:
            chunk = [t for _, t in zip(range(batch_size), texts)]
            if not chunk:
                break
            preds = extractor.predict(chunk)
            if len(preds) != len(chunk):
                raise RuntimeError(f"model returned {len(preds)} outputs for {len(chunk)} texts")
            lines = []
            for text, pred in zip(chunk, preds):
                invalid += pred is None
                lines.append(json.dumps({"row": row, "text": text,
                                         task.record_field: pred if pred is not None else task.empty_output(),
                                         "valid": pred is not None}, ensure_ascii=False))
                row += 1
            out.write(("\n".join(lines) + "\n").encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
            written += len(chunk)
            bar.update(job, advance=len(chunk))
    return BatchSummary(str(input_path), str(output_path), done + written, done, written, invalid)
