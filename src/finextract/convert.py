"""Converters: our JSONL records <-> LLaMA-Factory alpaca JSON + dataset_info.json.

A library module (``finextract data convert`` in :mod:`finextract.commands.convert` is the thin CLI).

So users can train the same data with LLaMA-Factory and with finextract and compare. The
mapping keeps our chat structure: ``system`` holds the task prompt (keys, rules), the
``instruction`` is the raw text, ``input`` is empty and ``output`` is the compact JSON
target, exactly what ``finextract train`` supervises. Reading back parses each ``output``
with the same parser the model's generations go through; an unparseable one is an error
naming its index.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finextract.errors import InputError

ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "system": "system"}


def records_to_alpaca(src: Path, out_dir: Path, task_name: str, style: str = "json-only",
                      name: str | None = None) -> Path:
    """Write ``out_dir/NAME.json`` and add/replace NAME in ``out_dir/dataset_info.json``."""
    from finextract.prompts import format_target, system_prompt
    from finextract.records import read_records
    from finextract.tasks import load_task

    task = load_task(task_name)
    records = read_records(src, task)
    name = name or Path(src).stem
    prompt = system_prompt(task, style)
    rows = [{"instruction": r.text, "input": "", "output": format_target(task, r.values, style), "system": prompt}
            for r in records]
    from finextract.records import OutputError, atomic_writer

    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: not a folder (alpaca output is a folder with dataset_info.json)")
    data_file = out_dir / f"{name}.json"
    info_path = out_dir / "dataset_info.json"
    info = _read_info(info_path) if info_path.exists() else {}  # validated before anything is written
    info[name] = {"file_name": data_file.name, "formatting": "alpaca", "columns": dict(ALPACA_COLUMNS)}
    with atomic_writer(data_file) as fh:  # temporary file in the destination folder, then rename
        fh.write(json.dumps(rows, ensure_ascii=False, indent=1))
    with atomic_writer(info_path) as fh:
        fh.write(json.dumps(info, indent=2, ensure_ascii=False))
    return data_file


def _read_info(info_path: Path) -> dict[str, Any]:
    from finextract.records import loads_strict

    try:
        info = loads_strict(info_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(f"{info_path}: not a readable dataset_info JSON: {exc}") from None
    if not isinstance(info, dict) or not all(isinstance(v, dict) for v in info.values()):
        raise InputError(f"{info_path}: dataset_info.json must map dataset names to objects")
    return info


def _resolve_alpaca(src: Path, dataset: str | None) -> tuple[Path, dict[str, str]]:
    """A JSON file, or a folder/dataset_info.json plus a dataset name -> (file, column map)."""
    info_path = src if src.name == "dataset_info.json" else src / "dataset_info.json"
    if src.is_file() and src.name != "dataset_info.json":
        return src, dict(ALPACA_COLUMNS)
    if not info_path.exists():
        raise InputError(f"{src}: expected an alpaca JSON file or a folder with dataset_info.json")
    info = _read_info(info_path)
    if dataset is None:
        if len(info) != 1:
            raise InputError(f"{info_path}: holds {sorted(info)}; choose one with --dataset")
        dataset = next(iter(info))
    if dataset not in info:
        raise InputError(f"{info_path}: no dataset {dataset!r} (has {sorted(info)})")
    entry = info[dataset]
    if entry.get("formatting", "alpaca") != "alpaca":
        raise InputError(f"{info_path}: dataset {dataset!r} uses {entry['formatting']!r} formatting; only alpaca is supported")
    if not isinstance(entry.get("file_name"), str) or not entry["file_name"]:
        raise InputError(f"{info_path}: dataset {dataset!r} has no 'file_name'")
    columns = entry.get("columns", {})
    if not isinstance(columns, dict):
        raise InputError(f"{info_path}: dataset {dataset!r}: 'columns' must be an object")
    return info_path.parent / entry["file_name"], {**ALPACA_COLUMNS, **columns}


def alpaca_to_records(src: Path, dst: Path, task_name: str, dataset: str | None = None) -> int:
    """Read alpaca rows back into labeled JSONL records (validated like any training file)."""
    from finextract.prompts import parse_output
    from finextract.records import write_jsonl
    from finextract.tasks import load_task
    from finextract.validate import DataError

    task = load_task(task_name)
    path, cols = _resolve_alpaca(src, dataset)
    from finextract.records import check_output_path, loads_strict, unicode_problem
    from finextract.validate import CheckReport, Problem, check_object

    check_output_path(dst, (".jsonl",))
    try:
        rows = loads_strict(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read alpaca JSON: {exc}") from None
    if not isinstance(rows, list):
        raise InputError(f"{path}: an alpaca file is a JSON list of objects")
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InputError(f"{path}[{i}]: not an object")
        instruction = str(row.get(cols["prompt"], "") or "")
        query = str(row.get(cols["query"], "") or "")
        # our layout: text in instruction, prompt in system; LLaMA-Factory's common layout: task in
        # instruction, text in input
        text = query if query else instruction
        values = parse_output(task, str(row.get(cols["response"], "")))
        if values is None:
            raise InputError(f"{path}[{i}]: output is not a {task.name} JSON object: {row.get(cols['response'])!r:.120}")
        out.append({"text": text, task.record_field: values})
    # validate every record first: a failing conversion leaves the destination untouched
    report = CheckReport(path=f"{path} (converted)", n_lines=len(out))
    for i, rec in enumerate(out):
        problem = unicode_problem(rec)
        found = [("error", "invalid-unicode", f"a string {problem}")] if problem else check_object(rec, task)
        report.problems += [Problem(f"{path}[{i}]", i + 1, sev, code, msg) for sev, code, msg in found]
    if not out:
        report.problems.append(Problem(str(path), 0, "error", "empty-file", "no rows"))
    if report.errors:
        raise DataError(report)
    write_jsonl(dst, out)  # atomic: temporary file next to dst, renamed
    return len(out)
