"""``cli.main`` reports the project's own errors in one line and lets real bugs show a traceback."""

from __future__ import annotations

import pytest

from finextract import cli
from finextract.errors import ConfigError, DataError, FinextractError, InputError, RunDirError, UserError


def _run_with(monkeypatch, exc: BaseException):
    def boom(*args, **kwargs):
        raise exc

    monkeypatch.setattr(cli, "_discover", lambda: None)
    monkeypatch.setattr(cli, "app", boom)
    monkeypatch.delenv("FINEXTRACT_DEBUG", raising=False)
    cli.main([])


@pytest.mark.parametrize("exc", [UserError("u"), ConfigError("c"), DataError("d"), InputError("i"),
                                 RunDirError("r"), FileNotFoundError("nope.jsonl: missing")])
def test_project_errors_are_one_line_exit_2(monkeypatch, capsys, exc):
    with pytest.raises(SystemExit) as out:
        _run_with(monkeypatch, exc)
    assert out.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and str(exc) in err and "Traceback" not in err


@pytest.mark.parametrize("exc", [KeyError("a bug"), ValueError("a bug"), TypeError("a bug")])
def test_real_bugs_are_not_reported_as_user_errors(monkeypatch, exc):
    with pytest.raises(type(exc)):
        _run_with(monkeypatch, exc)


def test_error_types_keep_their_builtin_bases():
    # callers that caught ValueError / FileNotFoundError before keep working
    assert issubclass(InputError, ValueError) and issubclass(ConfigError, ValueError)
    assert issubclass(DataError, ValueError) and issubclass(RunDirError, FinextractError)
