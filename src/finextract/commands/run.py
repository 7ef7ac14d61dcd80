"""Backend-independent ``train``, ``predict`` and ``eval`` commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from finextract.runtime import RUNTIME_HELP

TRUST_HELP = ("let the model folder run its own Python (transformers trust_remote_code); never taken from "
              "the run's config.yaml (env: FINEXTRACT_TRUST_REMOTE_CODE=1)")
SET_HELP = "override a config field, e.g. --set train.learning_rate=1e-4 (repeatable; value parsed as YAML)"


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
        trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help=TRUST_HELP),
        runtime: str = typer.Option("torch", "--runtime", help=RUNTIME_HELP),
    ) -> None:
        """Extract structured fields from texts with a trained run."""
        _trust_remote_code(trust_remote_code)
        from finextract.errors import UserError
        from finextract.records import read_texts, write_predictions
        from finextract.runtime import load_with_runtime

        items = list(texts or [])
        if input is not None:
            items += read_texts(input, text_column)
        if not items:
            raise UserError("nothing to predict: give texts as arguments or --input FILE")
        extractor = load_with_runtime(run_dir, checkpoint, runtime)
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
    ) -> None:
        """Score a trained run on labeled data (per-key table, micro/macro, invalid rate)."""
        _trust_remote_code(trust_remote_code)
        from finextract.console import console
        from finextract.records import read_records, write_predictions
        from finextract.runtime import load_with_runtime

        extractor = load_with_runtime(run_dir, checkpoint, runtime)
        records = read_records(data, extractor.task, skip_invalid=skip_invalid)
        report, preds = extractor.evaluate(records, collect_errors=True)
        console.print(report.rich_table(title=f"{run_dir} on {data}"))
        if predictions:
            write_predictions(predictions, [r.text for r in records], preds, extractor.task)
        if out:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report.to_dict(with_errors=True), indent=2, ensure_ascii=False), encoding="utf-8")
