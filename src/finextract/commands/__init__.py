"""CLI command modules; each defines ``register(app)`` (see finextract.cli), except ``loading``,
the helper ``predict``/``eval``/``batch`` share to load what their flags ask for.

``data_app`` is the ``finextract data ...`` group; it is defined here (not in ``finextract.cli``)
so command modules never import the CLI entry point back. Backend-only commands live with
their backend (``backends/NAME/commands.py``) and are registered through the backend registry.
"""

import typer

data_app = typer.Typer(help="Prepare and validate data: check, synth, convert.", no_args_is_help=True)
