"""The project's own error types: what the CLI prints as one line instead of a traceback.

Every expected failure (a bad input file, a bad config, a refused run directory) raises one of
these; ``finextract.cli.main`` catches exactly :class:`FinextractError`, so a genuine bug
(``KeyError`` in our code, say) still shows its traceback. This module imports nothing from
the project, so any module may raise these without import cycles.
"""

from __future__ import annotations

from typing import Any


class FinextractError(Exception):
    """Base class of every error the CLI reports without a traceback."""


class UserError(FinextractError):
    """An error caused by the user's input or request: shown without a traceback."""


class ConfigError(UserError, ValueError):
    """A config file or override that does not validate (the message names the field)."""


class InputError(UserError, ValueError):
    """A bad value, file or request (a ``ValueError`` too, for callers that catch those)."""


class NotFoundError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist (a ``FileNotFoundError`` too)."""


class RunDirError(UserError, ValueError):
    """A run directory that cannot be used: missing/corrupt files, bad checksums, unsafe state."""


class RunDirNotFound(RunDirError, FileNotFoundError):
    """Not a run directory, or no checkpoint in it yet."""


class DataError(UserError, ValueError):
    """Loading refused invalid data; the message lists the first problems.

    Built from a plain message, or from a ``finextract.validate.CheckReport`` (duck-typed so this
    module stays a leaf), in which case the first ``limit`` problems are listed.
    """

    def __init__(self, report: Any, limit: int = 10):
        if isinstance(report, str):
            self.report = None
            super().__init__(report)
            return
        self.report = report
        lines = [str(p) for p in report.errors[:limit]]
        more = len(report.errors) - limit
        if more > 0:
            lines.append(f"... and {more} more errors")
        lines.append("Fix the data, run `finextract data check FILE --task T` for the full list, "
                     "or pass --skip-invalid (data.skip_invalid: true) to drop bad records.")
        super().__init__(f"{report.summary()}\n" + "\n".join(lines))
