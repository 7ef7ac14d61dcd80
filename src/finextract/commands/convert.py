"""``finextract data convert``: the CLI over :mod:`finextract.convert` (records <-> alpaca)."""

from __future__ import annotations

from pathlib import Path

import typer

from finextract.convert import ALPACA_COLUMNS, alpaca_to_records, records_to_alpaca  # noqa: F401


def register(app: typer.Typer) -> None:
    from finextract.commands import data_app

    @data_app.command("convert")
    def convert_cmd(
        src: Path = typer.Argument(..., help="records .jsonl (-> alpaca) or alpaca .json / folder with dataset_info.json (-> jsonl)"),
        dst: Path = typer.Argument(..., help="output folder for alpaca, or .jsonl file for records"),
        task: str = typer.Option("merchant", help="task name or task YAML"),
        style: str = typer.Option("json-only", help="prompt style for the system column (to alpaca)"),
        name: str | None = typer.Option(None, help="dataset name in dataset_info.json (default: file stem)"),
        dataset: str | None = typer.Option(None, help="which dataset of dataset_info.json to read"),
    ) -> None:
        """Convert between finextract JSONL records and LLaMA-Factory's alpaca format."""
        from finextract.console import console

        if src.suffix == ".jsonl":
            out = records_to_alpaca(src, dst, task, style, name)
            console.print(f"wrote {out} and {out.parent / 'dataset_info.json'}")
        else:
            n = alpaca_to_records(src, dst, task, dataset)
            console.print(f"wrote {n} records to {dst}")
