"""The ``finextract`` command line.

Commands live in ``finextract/commands/*.py``; each module defines ``register(app)`` and is
discovered here, so a new feature adds a file instead of editing this one. A backend adds its
own commands through ``Backend.commands`` (see :mod:`finextract.registry`). Expected errors
(bad data, bad config, missing files) print one clear message and exit with status 2;
``FINEXTRACT_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import sys

import typer

from finextract.commands import data_app
from finextract.console import console, err_console  # noqa: F401  (re-exported for older imports)
from finextract.errors import UserError  # noqa: F401  (commands used to import it from here)

app = typer.Typer(
    name="finextract",
    help="Noisy financial text -> structured JSON with small fine-tuned models: "
    "prepare data, train, score, report, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")


def _discover() -> None:
    import finextract.commands as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"finextract.commands.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)
    from finextract.registry import UnknownBackendError, get_backend, known_backends

    for name in known_backends():  # backend-only commands (encoder: export-onnx, quickstart; ...)
        try:
            backend = get_backend(name)
        except UnknownBackendError:  # an optional backend missing from this build
            continue
        if backend.commands is not None:
            backend.commands(app)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=os.environ.get("FINEXTRACT_LOG", "INFO"), format="%(levelname)s %(message)s")
    _discover()
    from finextract.config import ConfigError
    from finextract.validate import DataError

    try:
        app(args=argv, prog_name="finextract")  # click handles usage errors and exits itself
    except (UserError, DataError, ConfigError, FileNotFoundError, ValueError, KeyError) as exc:
        if os.environ.get("FINEXTRACT_DEBUG"):
            raise
        err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)

