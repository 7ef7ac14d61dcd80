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
    out_dir.mkdir(parents=True, exist_ok=True)
    data_file = out_dir / f"{name}.json"
    data_file.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    info_path = out_dir / "dataset_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
    info[name] = {"file_name": data_file.name, "formatting": "alpaca", "columns": dict(ALPACA_COLUMNS)}
    info_path.write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")
    return data_file


def _resolve_alpaca(src: Path, dataset: str | None) -> tuple[Path, dict[str, str]]:
    """A JSON file, or a folder/dataset_info.json plus a dataset name -> (file, column map)."""
    info_path = src if src.name == "dataset_info.json" else src / "dataset_info.json"
    if src.is_file() and src.name != "dataset_info.json":
        return src, dict(ALPACA_COLUMNS)
    if not info_path.exists():
        raise ValueError(f"{src}: expected an alpaca JSON file or a folder with dataset_info.json")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if dataset is None:
        if len(info) != 1:
            raise ValueError(f"{info_path}: holds {sorted(info)}; choose one with --dataset")
        dataset = next(iter(info))
    if dataset not in info:
        raise ValueError(f"{info_path}: no dataset {dataset!r} (has {sorted(info)})")
    entry = info[dataset]
    if entry.get("formatting", "alpaca") != "alpaca":
        raise ValueError(f"{info_path}: dataset {dataset!r} uses {entry['formatting']!r} formatting; only alpaca is supported")
    return info_path.parent / entry["file_name"], {**ALPACA_COLUMNS, **entry.get("columns", {})}


def alpaca_to_records(src: Path, dst: Path, task_name: str, dataset: str | None = None) -> int:
    """Read alpaca rows back into labeled JSONL records (validated like any training file)."""
    from finextract.prompts import parse_output
    from finextract.records import write_jsonl
    from finextract.tasks import load_task
    from finextract.validate import DataError, check_file

    task = load_task(task_name)
    path, cols = _resolve_alpaca(src, dataset)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read alpaca JSON: {exc}") from exc
    if not isinstance(rows, list):
        raise ValueError(f"{path}: an alpaca file is a JSON list of objects")
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{path}[{i}]: not an object")
        instruction = str(row.get(cols["prompt"], "") or "")
        query = str(row.get(cols["query"], "") or "")
        # our layout: text in instruction, prompt in system; LLaMA-Factory's common layout: task in
        # instruction, text in input
        text = query if query else instruction
        values = parse_output(task, str(row.get(cols["response"], "")))
        if values is None:
            raise ValueError(f"{path}[{i}]: output is not a {task.name} JSON object: {row.get(cols['response'])!r:.120}")
        out.append({"text": text, task.record_field: values})
    write_jsonl(dst, out)
    report = check_file(dst, task)
    if report.errors:
        raise DataError(report)
    return len(out)
