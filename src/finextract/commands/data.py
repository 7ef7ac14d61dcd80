"""``finextract data check``: validate a labeled file against a task."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    from finextract.commands import data_app

    @data_app.command("check")
    def check(
        files: list[Path] = typer.Argument(..., help="JSONL files of labeled records"),
        task: str = typer.Option("merchant", "--task", "-t", help="built-in task name or task YAML path"),
        max_problems: int = typer.Option(50, help="print at most this many problems per file (all are counted)"),
        strict: bool = typer.Option(False, help="treat warnings (duplicates) as errors"),
    ) -> None:
        """Report every problem (file:line) in labeled data; exit status 1 when any error is found."""
        from rich.markup import escape

        from finextract.console import console
        from finextract.tasks import load_task
        from finextract.validate import check_file

        t = load_task(task)
        failed = False
        for path in files:
            report = check_file(path, t)
            shown = report.problems[:max_problems]
            for p in shown:
                color = "red" if p.severity == "error" else "yellow"
                console.print(f"[{color}]{escape(str(p))}[/]", highlight=False)
            if len(report.problems) > len(shown):
                console.print(f"... {len(report.problems) - len(shown)} more problems")
            ok = report.ok and not (strict and report.warnings)
            mark = "[green]OK[/]" if ok else "[red]FAILED[/]"
            console.print(f"{mark} {escape(report.summary())}", highlight=False)
            failed |= not ok
        raise typer.Exit(1 if failed else 0)
