"""``finextract validate-endpoint``: prove a served model scores what it scored offline."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("validate-endpoint")
    def validate_cmd(
        url: str = typer.Argument(..., help="served model: finextract serve or mlflow models serve URL"),
        data: Path = typer.Option(..., "--data", "-d", help="labeled JSONL to score both on"),
        reference: Path = typer.Option(..., "--reference", "-r", help="the run directory that was deployed"),
        base: str | None = typer.Option(None, "--base", help="URL of the base model without the adapter "
                                        "(detects an adapter that is not applied)"),
        kind: str = typer.Option("auto", help="auto | finextract | mlflow"),
        checkpoint: str = typer.Option("best", help="reference checkpoint that was deployed"),
        max_drop: float = typer.Option(0.5, help="largest allowed micro-F1 drop, in points"),
        limit: int | None = typer.Option(None, help="use only the first N records"),
    ) -> None:
        """Score an endpoint and its reference run on the same data; exit 1 when the endpoint
        is more than --max-drop F1 points worse (or equals the base model). The result is
        written to REFERENCE/validations/<timestamp>.json."""
        from finextract.errors import UserError
        from finextract.console import console
        from finextract.serve.validation import validate_endpoint

        if kind not in ("auto", "finextract", "mlflow"):
            raise UserError(f"--kind must be auto, finextract or mlflow, got {kind!r}")
        res = validate_endpoint(url, data, reference, base=base, kind=kind, checkpoint=checkpoint,
                                max_drop_points=max_drop, limit=limit)
        console.print_json(json.dumps(res.to_dict()))
        if res.passed:
            console.print(f"[green]PASSED[/]: endpoint {res.endpoint_micro_f1:.4f} vs offline "
                          f"{res.offline_micro_f1:.4f} micro-F1 (n={res.n})")
        else:
            console.print("[red]FAILED[/]: " + "; ".join(res.problems))
            raise typer.Exit(1)
