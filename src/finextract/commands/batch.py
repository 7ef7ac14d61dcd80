"""``finextract batch``: stream a large file through a trained run, resumable after a kill."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from finextract.commands.loading import ENSEMBLE_HELP
from finextract.runtime import RUNTIME_HELP, WORKERS_HELP


def register(app: typer.Typer) -> None:
    @app.command("batch")
    def batch_cmd(
        run_dir: str = typer.Argument(..., help="trained run directory (or http(s):// endpoint)"),
        input: Path = typer.Option(..., "--input", "-i", help="JSONL, CSV, TSV, Parquet or TXT file of texts"),
        output: Path = typer.Option(..., "--output", "-o", help="JSONL output; one row per input row"),
        batch_size: int = typer.Option(64, help="texts per model call and per fsync'ed chunk"),
        text_column: str = typer.Option("text", help="column or JSON field holding the text"),
        checkpoint: str = typer.Option("best", help="'best', 'last', 'step-N' or a checkpoint path"),
        overwrite: bool = typer.Option(False, help="start over instead of resuming an existing output "
                                                   "(never the input; emptied only once the input checked out)"),
        max_chars: int | None = typer.Option(None, help="longest text accepted (default: the task's "
                                                        "max_text_chars); a longer one is an error naming its line"),
        runtime: str = typer.Option("torch", "--runtime", help=RUNTIME_HELP),
        workers: int = typer.Option(1, "--workers", min=1, help=WORKERS_HELP),
        ensemble: list[str] = typer.Option([], "--ensemble", help=ENSEMBLE_HELP),
    ) -> None:
        """Extract every row of a file, in bounded memory.

        Rerunning the same command after an interruption resumes: rows already in the
        output are skipped, a partially written last line is discarded, nothing is lost
        or duplicated. Each output row carries its input row index ("row"). The whole input
        is checked before the first prediction; a second batch on the same output is refused.
        """
        from finextract.batch import OUTPUT_SUFFIXES, run_batch
        from finextract.console import console
        from finextract.records import check_output_path
        from finextract.backends.loading import load_run_or_ensemble

        check_output_path(output, OUTPUT_SUFFIXES)  # before the model is loaded
        extractor = load_run_or_ensemble(run_dir, checkpoint, runtime, workers, ensemble)
        summary = run_batch(extractor, input, output, batch_size=batch_size, text_column=text_column,
                            overwrite=overwrite, max_chars=max_chars)
        console.print_json(json.dumps(summary.to_dict()))
