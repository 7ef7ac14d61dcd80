"""The ``finextract`` command line.

Commands live in ``finextract/commands/*.py``; each module defines ``register(app)`` and is
discovered here, so a new feature adds a file instead of editing this one. Expected errors
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
from rich.console import Console

app = typer.Typer(
    name="finextract",
    help="Noisy financial text -> structured JSON with small fine-tuned models: "
    "prepare data, train, score, report, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Prepare and validate data: check, synth, convert.", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console(stderr=False)
err_console = Console(stderr=True)


from finextract.errors import UserError  # noqa: E402,F401  (commands used to import it from here)


def _discover() -> None:
    import finextract.commands as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"finextract.commands.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


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
    from finextract.config import ConfigError
    from finextract.validate import DataError

    try:
        app(args=argv, prog_name="finextract")  # click handles usage errors and exits itself
    except (UserError, DataError, ConfigError, FileNotFoundError, ValueError, KeyError) as exc:
        if os.environ.get("FINEXTRACT_DEBUG"):
            raise
        print_error(exc)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)

