"""Strict JSON and clean-text checks every reader shares (a leaf module: no project imports).

Kept apart from ``records`` so that ``validate`` and ``records`` can both use them without
importing each other.
"""

from __future__ import annotations

import json
from typing import Any

BOM = b"\xef\xbb\xbf"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_JSON_NUMBER_DIGITS:
        raise ValueError(f"a number with {len(digits)} digits (more than {MAX_JSON_NUMBER_DIGITS})")
    return int(digits)


def _parse_float(digits: str) -> float:
    if len(digits) > MAX_JSON_NUMBER_DIGITS + 10:
        raise ValueError(f"a number written with {len(digits)} characters")
    return float(digits)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


MAX_JSON_NUMBER_DIGITS = 64
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys, parse_int=_parse_int,
                            parse_float=_parse_float, parse_constant=_refuse_constant)


def loads_strict(data: str | bytes) -> Any:
    """``json.loads`` with the rules every reader shares: a duplicate key, NaN/Infinity, a number
    of more than 64 digits or nesting deeper than Python's recursion limit raise ``ValueError``
    (plain ``json`` keeps the last duplicate silently, and a deep or huge document raises
    ``RecursionError``/a bare ``ValueError`` that used to surface as a traceback or a 500).
    """
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    try:
        return _DECODER.decode(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def unicode_problem(value: Any) -> str | None:
    """Why a decoded string (or any string inside a list/dict) is not clean text, else ``None``.

    JSON can spell a lone surrogate (``"\\ud800"``) or a NUL (``"\\u0000"``): both decode to a
    Python ``str`` that tokenizers, CSV writers and ``str.encode`` later choke on, so every
    reader refuses them up front.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "contains a NUL character"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "contains a lone surrogate (invalid Unicode)"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None
