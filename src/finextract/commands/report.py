"""``finextract report RUNS_DIR --out DIR``: HTML + Markdown report with recommendations."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_cmd(
        runs_dir: Path = typer.Argument(..., help="a folder of run directories (a sweep's output_dir) or one run"),
        out: Path = typer.Option(..., "--out", "-o", help="folder for report.html, report.md, figures/, results.csv"),
        config: Path | None = typer.Option(None, "--config", "-c",
                                           help="sweep YAML (its 'report' section) or a YAML with tiers/title"),
        title: str | None = typer.Option(None, help="page title"),
    ) -> None:
        """Results table, F1 vs size / step / prompt style, per-key heatmap, Pareto frontier, offline-vs-endpoint F1, and one recommended run per deployment tier.

        Tiers (maximum accuracy, balanced, latency-critical by default) come from --config, else from the sweep that wrote RUNS_DIR; each is constraints (F1 floor, latency/throughput/memory limits) plus an objective. See docs/sweeps.md.
        """
        from finextract.errors import UserError
        from finextract.console import console
        from finextract.report.render import build_report
        from finextract.report.rows import find_runs
        from finextract.report.config import load_report_config

        if not runs_dir.is_dir():
            raise UserError(f"{runs_dir}: no such folder")
        if not find_runs(runs_dir):
            raise UserError(f"{runs_dir}: no run directories found (folders with a config.yaml)")
        resolved = runs_dir / "sweep.resolved.json"
        if config is None and resolved.exists():  # the tiers of the sweep that produced these runs
            import json

            from finextract.sweep.config import ReportConfig

            cfg = ReportConfig.model_validate(json.loads(resolved.read_text(encoding="utf-8"))["report"])
        else:
            cfg = load_report_config(config)
        if title:
            cfg.title = title
        paths = build_report(runs_dir, out, cfg)
        console.print(f"report: {paths['html']}\nmarkdown: {paths['markdown']}\ntable: {paths['csv']}")
