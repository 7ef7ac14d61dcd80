"""Data validation: every problem in a labeled file, with file and line, never a traceback.

Used by ``finextract data check`` and by every loader (training, scoring), so that a model
is never trained or scored on data that breaks the task's contract.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from finextract.errors import DataError  # noqa: F401  (re-exported: loaders raise it)
from finextract.strictjson import BOM, loads_strict, unicode_problem
from finextract.tasks import Task

log = logging.getLogger("finextract")

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    severity: Severity
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.severity}: [{self.code}] {self.message}"


@dataclass
class CheckReport:
    path: str
    n_lines: int = 0
    problems: list[Problem] = field(default_factory=list)
    valid_objects: list[dict[str, Any]] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def n_invalid_records(self) -> int:
        return len({p.line for p in self.errors})

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        codes = Counter(p.code for p in self.errors)
        why = ", ".join(f"{c}: {n}" for c, n in codes.most_common())
        return (
            f"{self.path}: {self.n_lines} records, {len(self.valid_objects)} valid, "
            f"{self.n_invalid_records} invalid" + (f" ({why})" if why else "")
            + f", {len(self.warnings)} warnings"
        )


def log_skipped(report: CheckReport) -> None:
    log.warning("skipping invalid records: %s", report.summary())


def check_object(obj: Any, task: Task) -> list[tuple[Severity, str, str]]:
    """Problems of one parsed record as (severity, code, message)."""
    if not isinstance(obj, dict):
        return [("error", "not-object", f"expected a JSON object, got {type(obj).__name__}")]
    problems: list[tuple[Severity, str, str]] = []
    text = obj.get("text")
    if "text" not in obj:
        return [("error", "missing-text", "no 'text' field")]
    if not isinstance(text, str):
        return [("error", "text-not-string", f"'text' must be a string, got {type(text).__name__}")]
    if not text.strip():
        problems.append(("error", "empty-text", "'text' is empty"))
    if len(text) > task.max_text_chars:
        problems.append(("error", "text-too-long",
                         f"'text' has {len(text)} characters, over the task's limit of {task.max_text_chars}"))
    field_name = task.record_field
    values = obj.get(field_name)
    if field_name not in obj:
        other = "entities" if field_name == "fields" else "fields"
        hint = f" (found {other!r}: is this a {'multi' if other == 'entities' else 'single'}-valued file?)" if other in obj else ""
        return problems + [("error", "missing-field", f"no {field_name!r} object{hint}")]
    if not isinstance(values, dict):
        return problems + [("error", "field-not-object", f"{field_name!r} must be an object")]
    for key in task.key_names:
        if key not in values:
            problems.append(("error", "missing-key", f"key {key!r} is missing"))
    for key in values:
        if key not in task.key_names:
            problems.append(("error", "unknown-key", f"key {key!r} is not one of the task's keys {task.key_names}"))
    for key in task.key_names:
        if key not in values:
            continue
        value = values[key]
        items: list[Any]
        if task.multi_valued:
            if not isinstance(value, list):
                problems.append(("error", "not-a-list", f"{key}: expected a list of strings, got {type(value).__name__}"))
                continue
            items = value
        else:
            items = [value]
        for item in items:
            if not isinstance(item, str):
                problems.append(("error", "non-string-value", f"{key}: value {item!r} is not a string"))
            elif item and isinstance(text, str) and item not in text and not task.allow_non_substring:
                problems.append(("error", "not-substring", f"{key}: {item!r} is not a substring of the text"))
        if task.multi_valued and isinstance(value, list):
            dup = [v for v, n in Counter(v for v in value if isinstance(v, str)).items() if n > 1]
            if dup:
                problems.append(("warning", "duplicate-value", f"{key}: repeated values {dup}"))
    return problems


def check_file(path: str | Path, task: Task) -> CheckReport:
    """Check a JSONL file of labeled records against ``task``; never raises on bad content."""
    path = Path(path)
    report = CheckReport(path=str(path))
    try:
        raw_lines = path.read_bytes().split(b"\n")
    except OSError as exc:
        report.problems.append(Problem(str(path), 0, "error", "unreadable", str(exc)))
        return report
    seen_texts: dict[str, int] = {}
    for lineno, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        report.n_lines += 1

        def add(sev: Severity, code: str, msg: str, _line: int = lineno) -> None:
            report.problems.append(Problem(str(path), _line, sev, code, msg))

        if lineno == 1 and raw.startswith(BOM):
            raw = raw[len(BOM):]  # a UTF-8 BOM is accepted by every reader
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            add("error", "not-utf8", f"bytes at {exc.start} are not UTF-8")
            continue
        try:
            obj = loads_strict(line)
        except json.JSONDecodeError as exc:
            add("error", "not-json", f"not JSON: {exc.msg} (column {exc.colno})")
            continue
        except ValueError as exc:  # duplicate key, NaN, a 5,000-digit number, nesting too deep
            code = "duplicate-key" if str(exc).startswith("duplicate key") else "not-json"
            add("error", code, f"not accepted JSON: {exc}")
            continue
        unicode = unicode_problem(obj)
        if unicode:
            add("error", "invalid-unicode", f"a string {unicode}")
            continue
        problems = check_object(obj, task)
        for sev, code, msg in problems:
            add(sev, code, msg)
        if isinstance(obj, dict) and isinstance(obj.get("text"), str):
            first = seen_texts.setdefault(obj["text"], lineno)
            if first != lineno:
                add("warning", "duplicate-text", f"same text as line {first}")
        if not any(sev == "error" for sev, _, _ in problems):
            report.valid_objects.append(obj)
    if report.n_lines == 0 and not report.problems:
        report.problems.append(Problem(str(path), 0, "error", "empty-file", "no records"))
    return report
