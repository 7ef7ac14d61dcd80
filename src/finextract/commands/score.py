"""``finextract score GOLD PRED``: the exact-match scorer from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("score")
    def score_cmd(
        gold: Path = typer.Argument(..., help="labeled JSONL (the truth)"),
        pred: Path = typer.Argument(..., help="predictions JSONL: same texts, same order; "
                                               "'valid': false or a malformed value counts as an invalid output"),
        task: str = typer.Option("merchant", "--task", "-t", help="built-in task name or task YAML path"),
        out: Path | None = typer.Option(None, "--out", "-o", help="write the full report as JSON here"),
        errors: bool = typer.Option(False, "--errors", help="list every wrong key per record"),
        skip_invalid: bool = typer.Option(False, help="drop invalid gold records instead of refusing the file"),
    ) -> None:
        """Per-key exact-match P/R/F1 with micro and macro averages and the invalid-output rate."""
        from rich.markup import escape

        from finextract.errors import UserError
        from finextract.console import console
        from finextract.records import read_predictions, read_records
        from finextract.scoring import score
        from finextract.tasks import load_task

        from finextract.records import atomic_writer, check_output_path

        if out is not None:
            check_output_path(out)
        t = load_task(task)
        golds = read_records(gold, t, skip_invalid=skip_invalid)
        preds = read_predictions(pred, t)
        if len(golds) != len(preds):
            raise UserError(f"{gold} has {len(golds)} records but {pred} has {len(preds)} predictions")
        for i, (g, (text, _)) in enumerate(zip(golds, preds)):
            if g.text != text:
                raise UserError(f"record {i + 1}: texts differ between {gold} and {pred}: {g.text!r} vs {text!r}")
        report = score([g.values for g in golds], [p for _, p in preds], t,
                       texts=[g.text for g in golds], collect_errors=True)
        console.print(report.rich_table())
        if errors:
            for e in report.errors:
                console.print(f"#{e.index + 1} {escape(e.key)}: gold={e.gold!r} pred={e.pred!r}  | {escape(e.text)}",
                              highlight=False)
        if out:
            with atomic_writer(out) as fh:
                fh.write(json.dumps(report.to_dict(with_errors=True), indent=2, ensure_ascii=False))
            console.print(f"report written to {out}")
