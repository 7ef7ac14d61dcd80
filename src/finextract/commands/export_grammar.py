"""``finextract export-grammar``: a run's output constraint as llguidance / xgrammar grammars."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("export-grammar")
    def export_grammar_cmd(
        run_dir: Path = typer.Argument(..., help="trained causal_lm run directory"),
        out: Path = typer.Option(None, "--out", "-o", help="output folder (default: RUN_DIR/grammar)"),
    ) -> None:
        """Write the run's constraint as grammars vLLM / SGLang can enforce, plus the prompt.

        The constraint (fixed JSON skeleton, every value a verbatim piece of the input)
        depends on each input text, so the export is a template and a recipe:
        grammar.lark (llguidance, `substring_chunks`), grammar.ebnf (xgrammar,
        `Substring`), prompt.json (the chat-templated prompt around the text),
        build_grammar.py (fills a template for one text, no finextract needed),
        request_example.json (a vLLM /v1/completions body with `structured_outputs`)
        and README.md. See docs/decoding.md.
        """
        from finextract.backends.causal_lm.grammar_export import export_grammar
        from finextract.cli import console

        summary = export_grammar(run_dir, out)
        console.print_json(json.dumps(summary))
