"""The CLI's two rich consoles (results to stdout, messages to stderr), importable by any command.

Kept out of ``finextract.cli`` so command modules never import the CLI entry point back.
"""

from rich.console import Console

console = Console(stderr=False)
err_console = Console(stderr=True)
