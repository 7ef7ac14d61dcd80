"""``finextract package``: a run as an MLflow pyfunc model (optionally registered)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("package")
    def package_cmd(
        run_dir: str = typer.Argument(..., help="trained run directory"),
        out: Path | None = typer.Option(None, "--out", "-o", help="model folder to create (default RUN_DIR/mlflow_model)"),
        checkpoint: str = typer.Option("best", help="'best', 'last', 'step-N' or a checkpoint path"),
        register_name: str | None = typer.Option(None, "--register", help="also register in the MLflow model registry under NAME"),
        tracking_uri: str | None = typer.Option(None, "--tracking-uri", help="MLflow tracking URI for --register (e.g. sqlite:///mlflow.db)"),
    ) -> None:
        """Save a run as an MLflow pyfunc model.

        The best checkpoint and everything it loads from are copied in, so the model is
        self-contained. Serve it with: mlflow models serve -m DIR --env-manager local,
        then validate with: finextract validate-endpoint URL --data F --reference RUN_DIR.
        """
        from finextract.console import console
        from finextract.mlflow_model import package_run

        result = package_run(run_dir, out, checkpoint, register_name, tracking_uri)
        console.print_json(json.dumps(result, default=str))
