"""``finextract batch``: stream a large file through a trained run, resumable after a kill."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from finextract.runtime import RUNTIME_HELP


def register(app: typer.Typer) -> None:
    @app.command("batch")
    def batch_cmd(
        run_dir: str = typer.Argument(..., help="trained run directory (or http(s):// endpoint)"),
        input: Path = typer.Option(..., "--input", "-i", help="JSONL, CSV, TSV, Parquet or TXT file of texts"),
        output: Path = typer.Option(..., "--output", "-o", help="JSONL output; one row per input row"),
        batch_size: int = typer.Option(64, help="texts per model call and per fsync'ed chunk"),
        text_column: str = typer.Option("text", help="column or JSON field holding the text"),
        checkpoint: str = typer.Option("best", help="'best', 'last', 'step-N' or a checkpoint path"),
        overwrite: bool = typer.Option(False, help="start over instead of resuming an existing output"),
        runtime: str = typer.Option("torch", "--runtime", help=RUNTIME_HELP),
    ) -> None:
        """Extract every row of a file, in bounded memory.

        Rerunning the same command after an interruption resumes: rows already in the
        output are skipped, a partially written last line is discarded, nothing is lost
        or duplicated. Each output row carries its input row index ("row").
        """
        from finextract.batch import run_batch
        from finextract.console import console
        from finextract.runtime import load_with_runtime

        extractor = load_with_runtime(run_dir, checkpoint, runtime)
        summary = run_batch(extractor, input, output, batch_size=batch_size, text_column=text_column,
                            overwrite=overwrite)
        console.print_json(json.dumps(summary.to_dict()))
