"""Backend-independent ``train``, ``predict`` and ``eval`` commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from finextract.commands.loading import ENSEMBLE_HELP
from finextract.runtime import RUNTIME_HELP, WORKERS_HELP

TRUST_HELP = ("let the model folder run its own Python (transformers trust_remote_code); never taken from "
              "the run's config.yaml (env: FINEXTRACT_TRUST_REMOTE_CODE=1)")
SET_HELP = "override a config field, e.g. --set train.learning_rate=1e-4 (repeatable; value parsed as YAML)"


def _check_data_files(cfg) -> None:
    """Validate every data file of a run config (the loaders' rules) before anything is written."""
    from finextract.errors import DataError
    from finextract.validate import check_file

    task = cfg.load_task()
    paths = [cfg.data.train, cfg.data.validation, cfg.data.test, *cfg.data.eval_sets.values()]
    for path in dict.fromkeys(p for p in paths if p is not None):
        report = check_file(path, task)
        if report.errors and not (cfg.data.skip_invalid and report.valid_objects):
            raise DataError(report)


def _trust_remote_code(flag: bool) -> None:
    """The user's opt-in, passed to every backend's loader through the environment."""
    if flag:
        import os

        os.environ["FINEXTRACT_TRUST_REMOTE_CODE"] = "1"


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        config: Path = typer.Argument(..., help="run config YAML (backend: encoder | causal_lm | crf)"),
        set_: list[str] = typer.Option([], "--set", "-s", help=SET_HELP),
        output_dir: Path | None = typer.Option(None, "--output-dir", "-o", help="run directory (config: output_dir)"),
    ) -> None:
        """Train a model; checkpoints are scored on the validation set and the best one is kept.

        Re-running the same command on an unfinished run directory resumes from its last
        complete checkpoint.
        """
        from finextract.registry import get_backend
        from finextract.console import console
        from finextract.config import load_run_config

        overrides = list(set_) + ([f"output_dir={output_dir}"] if output_dir else [])
        cfg = load_run_config(config, overrides)
        _check_data_files(cfg)  # bad data is refused before the run directory is created
        summary = get_backend(cfg.backend).train(cfg)
        console.print_json(json.dumps(summary, default=str))

    @app.command("predict")
    def predict_cmd(
        run_dir: str = typer.Argument(..., help="run directory (or http(s):// endpoint)"),
        texts: list[str] = typer.Argument(None, help="texts to extract from (or use --input)"),
        input: Path | None = typer.Option(None, "--input", "-i", help="JSONL/CSV/TSV/Parquet/TXT file of texts"),
        text_column: str = typer.Option("text", help="column or JSON field holding the text"),
        output: Path | None = typer.Option(None, "--output", "-o", help="write JSONL or CSV here (default: stdout JSONL)"),
        checkpoint: str = typer.Option("best", help="'best', 'last', 'step-N' or a checkpoint path"),
        min_confidence: float | None = typer.Option(
            None, "--min-confidence", min=0.0, max=1.0,
            help="leave fields whose calibrated confidence is below P empty and mark the record 'review: true' "
                 "(encoder runs; implies --confidence)"),
        confidence: bool = typer.Option(False, "--confidence", help="add each field's calibrated confidence (encoder runs)"),
        max_chars: int | None = typer.Option(None, help="longest text accepted (default: the task's "
                                                        "max_text_chars); a longer one is an error"),
        trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help=TRUST_HELP),
        runtime: str = typer.Option("torch", "--runtime", help=RUNTIME_HELP),
        workers: int = typer.Option(1, "--workers", min=1, help=WORKERS_HELP),
        ensemble: list[str] = typer.Option([], "--ensemble", help=ENSEMBLE_HELP),
    ) -> None:
        """Extract structured fields from texts with a trained run.

        Every input is checked before the model runs (same rules as ``batch``); the output file
        is written atomically (a temporary file renamed at the end).
        """
        _trust_remote_code(trust_remote_code)
        from finextract.errors import UserError
        from finextract.errors import InputError
        from finextract.records import check_output_path, read_texts, unicode_problem, write_predictions
        from finextract.backends.loading import load_run_or_ensemble

        if output is not None:
            check_output_path(output, (".jsonl", ".json", ".csv"))
        if not texts and input is None:
            raise UserError("nothing to predict: give texts as arguments or --input FILE")
        extractor = load_run_or_ensemble(run_dir, checkpoint, runtime, workers, ensemble)
        limit = max_chars or extractor.task.max_text_chars
        items = []
        for i, text in enumerate(texts or []):
            problem = ("is empty" if not text.strip() else unicode_problem(text)
                       or (f"has {len(text)} characters, over the limit of {limit}" if len(text) > limit else None))
            if problem:
                raise InputError(f"text argument {i + 1} {problem}")
            items.append(text)
        if input is not None:
            items += read_texts(input, text_column, max_chars=limit)
        if confidence or min_confidence is not None:
            from finextract.backends.encoder.calibration import confidence_rows, write_confidence_rows

            if not hasattr(extractor, "predict_with_confidence"):
                raise UserError(f"{run_dir}: this backend gives no field confidence (encoder runs do)")
            rows = confidence_rows(items, extractor.predict_with_confidence(items), extractor.task, min_confidence)
            if output:
                write_confidence_rows(output, rows, extractor.task)
                flagged = sum(r["review"] for r in rows)
                print(f"{len(rows)} predictions written to {output} ({flagged} marked for review)", file=sys.stderr)
            else:
                for row in rows:
                    print(json.dumps(row, ensure_ascii=False))
            return
        preds = extractor.predict(items)
        if output:
            write_predictions(output, items, preds, extractor.task)
            print(f"{len(items)} predictions written to {output}", file=sys.stderr)
        else:
            for text, pred in zip(items, preds):
                print(json.dumps({"text": text, extractor.task.record_field: pred, "valid": pred is not None},
                                 ensure_ascii=False))

    @app.command("eval")
    def eval_cmd(
        run_dir: str = typer.Argument(..., help="run directory (or http(s):// endpoint)"),
        data: Path = typer.Option(..., "--data", "-d", help="labeled JSONL to score on"),
        checkpoint: str = typer.Option("best", help="'best', 'last', 'step-N' or a checkpoint path"),
        out: Path | None = typer.Option(None, "--out", "-o", help="write the report JSON here"),
        predictions: Path | None = typer.Option(None, "--predictions", help="also write the predictions JSONL here"),
        skip_invalid: bool = typer.Option(False, help="drop invalid gold records instead of refusing the file"),
        trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help=TRUST_HELP),
        runtime: str = typer.Option("torch", "--runtime", help=RUNTIME_HELP),
        workers: int = typer.Option(1, "--workers", min=1, help=WORKERS_HELP),
        ensemble: list[str] = typer.Option([], "--ensemble", help=ENSEMBLE_HELP),
    ) -> None:
        """Score a trained run on labeled data (per-key table, micro/macro, invalid rate)."""
        _trust_remote_code(trust_remote_code)
        from finextract.console import console
        from finextract.records import check_output_path, read_records, write_predictions
        from finextract.backends.loading import load_run_or_ensemble

        for path in (out, predictions):
            if path is not None:
                check_output_path(path)
        extractor = load_run_or_ensemble(run_dir, checkpoint, runtime, workers, ensemble)
        records = read_records(data, extractor.task, skip_invalid=skip_invalid)
        report, preds = extractor.evaluate(records, collect_errors=True)
        console.print(report.rich_table(title=f"{run_dir} on {data}"))
        if predictions:
            write_predictions(predictions, [r.text for r in records], preds, extractor.task)
        if out:
            from finextract.records import atomic_writer

            with atomic_writer(out) as fh:
                fh.write(json.dumps(report.to_dict(with_errors=True), indent=2, ensure_ascii=False))
