"""The ``finextract`` command line.

Commands live in ``finextract/commands/*.py``; each module defines ``register(app)`` and is
discovered here, so a new feature adds a file instead of editing this one. A backend adds its
own commands through ``Backend.commands`` (see :mod:`finextract.registry`). Expected errors
(the project's own :class:`finextract.errors.FinextractError` types: bad data, bad config, a
refused run directory; and missing/unreadable paths) print one clear message and exit with
status 2; ``FINEXTRACT_DEBUG=1`` shows the traceback. A real bug is not caught here.
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


# Besides the project's own errors (finextract.errors), only conditions of the file system the
# user pointed us at are reported as one line: a missing or unreadable path is not a bug in
# finextract. Anything else (ValueError, KeyError, TypeError, ...) is a bug and shows its traceback.
_FILESYSTEM_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


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


def print_error(exc: BaseException) -> None:
    """One ``error: MESSAGE`` line (or the message's own lines) on stderr.

    The message is printed as plain text, never parsed as rich markup: a value such as
    ``"[/bold]"`` in user data used to crash the printer, and ``[code]`` tags were stripped.
    """
    from rich.text import Text

    err_console.print(Text.assemble(("error:", "bold red"), " ", str(exc)), highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=os.environ.get("FINEXTRACT_LOG", "INFO"), format="%(levelname)s %(message)s")
    _discover()
    from finextract.errors import FinextractError

    try:
        app(args=argv, prog_name="finextract")  # click handles usage errors and exits itself
    except (FinextractError, *_FILESYSTEM_ERRORS) as exc:
        if os.environ.get("FINEXTRACT_DEBUG"):
            raise
        print_error(exc)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)

