"""Bank-scale offline extraction: stream a file through a model, resumable after a kill.

Memory is bounded by the chunk size and the text-length limit, not the file: JSONL/TXT/CSV are
read line by line and Parquet by ``iter_batches``. The output is JSONL, one row per input row::

    {"row": 17, "text": "...", "fields": {...}, "valid": true}

Safety rules, in the order :func:`run_batch` applies them (nothing a user owns is touched
before every check has passed):

1. the output path must be a ``.jsonl`` file that is not the input (also through a symlink,
   a hard link or a relative path);
2. a lock on the output (``.NAME.lock`` next to it, ``fcntl.flock``): a second ``batch`` on
   the same output is refused; the kernel drops the lock of a killed process, so a rerun
   after SIGKILL is never blocked;
3. the existing output is inspected **read-only**: it must be a finextract batch output whose
   rows are numbered 0..N-1 (a partial last line, the trace of a kill, must look like the
   start of a batch row); anything else is refused, unchanged;
4. the whole input is validated in one streaming pass (same rules as ``predict``: see
   :func:`finextract.records.iter_input_texts`) -- before the lock is taken, so a bad input
   leaves nothing behind -- and a bad row 9,000,000 is reported before a single prediction is
   made; the first and the last already-written rows must hold the same texts as the input;
5. only then is a partial last line cut off (or, with ``--overwrite``, the output emptied) and
   extraction resumes after the last complete row. Each chunk is appended, flushed and
   fsync'ed, so a kill at any point leaves complete rows plus at most one partial line.

A write error (full disk) cuts the output back to its last complete row before reporting, so
the rerun resumes cleanly once there is space.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finextract.extractor import Extractor
from finextract.locking import lock_for
from finextract.records import InputError, OutputError, check_output_path, iter_input_texts

ROW_PREFIX = b'{"row": '
OUTPUT_SUFFIXES = (".jsonl", ".json")


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


@dataclass
class OutputState:
    """What an existing output holds, found without modifying it."""

    done: int = 0  # complete rows
    complete_bytes: int = 0  # bytes up to the end of the last complete row
    size: int = 0  # file size (> complete_bytes when a kill left a partial line)
    first_text: str | None = None
    last_text: str | None = None


def iter_texts(path: Path, text_column: str = "text", chunk_rows: int = 1024,
               max_chars: int | None = None) -> Iterator[str]:
    """Texts one by one without loading the file (the rules every command shares)."""
    return iter_input_texts(path, text_column, max_chars=max_chars, chunk_rows=chunk_rows)


def _parse_row(path: Path, line: bytes, lineno: int) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except ValueError:
        obj = None
    if not isinstance(obj, dict) or not isinstance(obj.get("row"), int) or not isinstance(obj.get("text"), str):
        raise OutputError(f"{path}:{lineno}: not a finextract batch output (no 'row'/'text'); "
                          "it was left unchanged: use --overwrite or a new output path")
    return obj


def inspect_output(path: str | Path) -> OutputState:
    """Read an existing output (never writes): complete rows, texts of its first and last row."""
    path = Path(path)
    if not path.exists():
        return OutputState()
    if not path.is_file():
        raise OutputError(f"{path}: not a regular file")
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return OutputState()
        # the last newline: anything after it is a partial line from a kill
        pos, cut = size, 0
        while pos > 0:
            start = max(0, pos - 65536)
            fh.seek(start)
            idx = fh.read(pos - start).rfind(b"\n")
            if idx >= 0:
                cut = start + idx + 1
                break
            pos = start
        fh.seek(cut)
        partial = fh.read(len(ROW_PREFIX))
        if partial and not ROW_PREFIX.startswith(partial) and not partial.startswith(ROW_PREFIX):
            raise OutputError(f"{path}: its last line is incomplete and is not a finextract batch row; "
                              "it was left unchanged: use --overwrite or a new output path")
        if cut == 0:
            return OutputState(size=size)
        fh.seek(0)
        first = _parse_row(path, fh.readline(), 1)
        if first["row"] != 0:
            raise OutputError(f"{path}:1: first row is {first['row']}, not 0: not a complete batch output")
        fh.seek(0)
        n_lines, read = 0, 0
        while read < cut:
            block = fh.read(min(1 << 20, cut - read))
            n_lines += block.count(b"\n")
            read += len(block)
        start = max(0, cut - (1 << 20))
        fh.seek(start)
        last = _parse_row(path, fh.read(cut - start).splitlines()[-1], n_lines)
    if last["row"] != n_lines - 1:
        raise OutputError(f"{path}: {n_lines} rows but the last is numbered {last['row']}: rows are missing "
                          "or duplicated (two runs wrote it?); use --overwrite or a new output path")
    return OutputState(done=n_lines, complete_bytes=cut, size=size, first_text=first["text"], last_text=last["text"])


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists() and os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _count_valid_rows(path: Path, text_column: str, max_chars: int | None) -> int:
    n = 0
    for _ in iter_input_texts(path, text_column, max_chars=max_chars):
        n += 1
    if n == 0:
        raise InputError(f"{path}: no texts (the file is empty)")
    return n


def _truncate(path: Path, size: int) -> None:
    with path.open("rb+") as fh:
        fh.truncate(size)
        fh.flush()
        os.fsync(fh.fileno())


def run_batch(
    extractor: Extractor,
    input_path: str | Path,
    output_path: str | Path,
    batch_size: int = 64,
    text_column: str = "text",
    overwrite: bool = False,
    progress: bool = True,
    max_chars: int | None = None,
) -> BatchSummary:
    """Extract every row of ``input_path`` into ``output_path`` (JSONL), resuming where it stopped.

    ``max_chars`` (default: the task's ``max_text_chars``) is the longest text accepted; a longer
    one is an error naming its line, found before any prediction is made.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    if output_path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise OutputError(f"{output_path}: batch output must be .jsonl (appendable, resumable)")
    if batch_size < 1:
        raise OutputError("batch_size must be >= 1")
    check_output_path(output_path, OUTPUT_SUFFIXES)
    if _same_file(input_path, output_path):
        raise OutputError(f"{output_path}: is the input file itself; write the output to another path")
    max_chars = max_chars or extractor.task.max_text_chars
    total = _count_valid_rows(input_path, text_column, max_chars)  # a bad input leaves no trace at all
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_for(output_path, what="batch output"):
        state = OutputState() if overwrite else inspect_output(output_path)
        if state.done > total:
            raise OutputError(f"{output_path} has {state.done} rows but {input_path} only {total}; "
                              "it was written for another input (use --overwrite or a new output path)")
        texts = iter_texts(input_path, text_column, max_chars=max_chars)
        for i in range(state.done):  # skip rows already extracted, checking the input is the same file
            t = next(texts)
            if (i == 0 and t != state.first_text) or (i == state.done - 1 and t != state.last_text):
                raise OutputError(f"{output_path}: row {i} was written for a different text than {input_path} "
                                  f"row {i}; it belongs to another input (use --overwrite or a new output path)")
        # every check passed: now (and only now) the output may change
        if overwrite and output_path.exists():
            _truncate(output_path, 0)
        elif state.size > state.complete_bytes:
            _truncate(output_path, state.complete_bytes)
        return _extract(extractor, texts, input_path, output_path, batch_size, progress, state.done, total)


def _extract(extractor: Extractor, texts: Iterator[str], input_path: Path, output_path: Path, batch_size: int,
             progress: bool, done: int, total: int) -> BatchSummary:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    task = extractor.task
    written = invalid = 0
    # a raw descriptor, not a buffered file: a failed write must not be retried by close()
    fd = os.open(output_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        with Progress(TextColumn("extracting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      disable=not progress, console=Console(stderr=True)) as bar:
            job = bar.add_task("rows", total=total, completed=done)
            row = done
            good_size = os.lseek(fd, 0, os.SEEK_END)
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
                data = ("\n".join(lines) + "\n").encode("utf-8")
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                except OSError as exc:
                    try:  # leave complete rows only, so the rerun resumes cleanly
                        os.ftruncate(fd, good_size)
                    except OSError:
                        pass
                    raise OutputError(f"{output_path}: cannot write: {exc.strerror or exc}; {done + written} rows "
                                      "are saved, rerun the same command to resume") from None
                good_size += len(data)
                written += len(chunk)
                bar.update(job, advance=len(chunk))
    finally:
        os.close(fd)
    return BatchSummary(str(input_path), str(output_path), done + written, done, written, invalid)


def recover_output(path: str | Path) -> tuple[int, str | None]:
    """Cut a partial last line off a batch output; (rows complete, text of the last complete row).

    Refuses (unchanged) a file that is not a batch output. ``run_batch`` does not call this: it
    cuts only after the input was checked.
    """
    path = Path(path)
    state = inspect_output(path)
    if state.size > state.complete_bytes:
        _truncate(path, state.complete_bytes)
    return state.done, state.last_text


__all__ = ["BatchSummary", "OutputState", "inspect_output", "iter_texts", "recover_output", "run_batch"]
