"""``finextract sweep SWEEP.yaml``: train and time a grid of candidates, tabulate, report."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("sweep")
    def sweep_cmd(
        config: Path = typer.Argument(..., help="sweep YAML: candidates (base run config + grid axes), throughput, report tiers"),
        set_: list[str] = typer.Option([], "--set", "-s", help="override a field of the sweep file, e.g. --set output_dir=runs/s2"),
        only: list[str] = typer.Option([], "--only", help="run only runs whose name matches this glob (repeatable)"),
        dry_run: bool = typer.Option(False, "--dry-run", help="list the runs and their overrides, train nothing"),
        report: bool | None = typer.Option(None, "--report/--no-report", help="render OUTPUT_DIR/report at the end (config: report.render)"),
    ) -> None:
        """Run every grid point of a sweep: one run directory each under the sweep's output_dir.

        Resumable: runs with DONE are skipped, unfinished ones resume from their last checkpoint. A failing run is recorded (RUN_DIR/error.txt, status 'failed' in the table) and the sweep goes on.

        The results table (results.csv/.json in output_dir) is rewritten after every run; at the end the report is rendered to output_dir/report. See docs/sweeps.md.
        """
        from rich.table import Table

        from finextract.console import console
        from finextract.sweep.config import load_sweep_config
        from finextract.sweep.grid import expand

        sweep = load_sweep_config(config, list(set_))
        if dry_run:
            specs = expand(sweep, config.parent)
            t = Table(title=f"sweep {sweep.name}: {len(specs)} runs -> {sweep.output_dir}")
            t.add_column("run")
            t.add_column("backend")
            t.add_column("grid values")
            t.add_column("state")
            for s in specs:
                state = "DONE" if (Path(s.config["output_dir"]) / "DONE").exists() else "to run"
                t.add_row(s.name, s.backend, ", ".join(f"{k}={v}" for k, v in s.axes.items()), state)
            console.print(t)
            return
        from finextract.sweep.runner import run_sweep

        rows = run_sweep(sweep, config.parent, only=list(only) or None, console=console)
        console.print(f"results: {sweep.output_dir / 'results.csv'} and results.json")
        if report if report is not None else sweep.report.render:
            from finextract.report.render import build_report

            paths = build_report(sweep.output_dir, sweep.output_dir / "report", sweep.report)
            console.print(f"report: {paths['html']} and {paths['markdown']}")
        failed = [r["name"] for r in rows if r["status"] != "ok"]
        if failed:
            console.print(f"[yellow]{len(failed)} run(s) did not finish: {', '.join(failed)}[/]")
