"""Descriptors built from labeled pieces, so labels come from construction, not from parsing.

A descriptor is a list of :class:`Piece` (text + the key it fills, or ``None`` for bank
noise and separators). Copies of a descriptor can be cut at a character budget, the way
banks and card networks truncate; the label of a key is then its most complete printed
occurrence (LABELING.md rule 2: the first complete one, or the longest when none is
complete), and its span points at that occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass

KEYS = ("INTERMEDIARY", "MERCHANT_NAME", "DYNAMIC_DESCRIPTOR", "STREET", "ZIP", "CITY",
        "STATE", "COUNTRY", "PHONE", "WEBSITE")

# Separators that may dangle at the end of a cut value; LABELING.md drops them from the name
# (`FATHER'S OFFICE-` -> `FATHER'S OFFICE`). `&` stays: it is a word there.
_DANGLING = " -+/,*#.:("


@dataclass(frozen=True)
class Piece:
    text: str
    key: str | None = None


def P(text: str, key: str | None = None) -> Piece:  # noqa: N802 - short builder used everywhere
    return Piece(text, key)


def join(parts: list[Piece | str | None], sep: str = " ") -> list[Piece]:
    """Concatenate pieces (str = unlabeled text), dropping empties, with ``sep`` between them."""
    out: list[Piece] = []
    for part in parts:
        if part is None:
            continue
        piece = Piece(part) if isinstance(part, str) else part
        if not piece.text:
            continue
        if out and sep:
            out.append(Piece(sep))
        out.append(piece)
    return out


def flat(groups: list[list[Piece] | Piece | str | None], sep: str = " ") -> list[Piece]:
    """Concatenate groups of pieces with ``sep`` between non-empty groups."""
    out: list[Piece] = []
    for g in groups:
        if g is None:
            continue
        items = [Piece(g)] if isinstance(g, str) else [g] if isinstance(g, Piece) else g
        items = [p for p in items if p.text]
        if not items:
            continue
        if out and sep:
            out.append(Piece(sep))
        out.extend(items)
    return out


def text_of(pieces: list[Piece]) -> str:
    return "".join(p.text for p in pieces)


def truncate(pieces: list[Piece], limit: int) -> list[Piece]:
    """Cut after ``limit`` characters, as a fixed-width field does.

    A value cut in the middle keeps its key (it is a partial occurrence); separators left
    dangling at its end are moved out of the value.
    """
    out: list[Piece] = []
    used = 0
    for p in pieces:
        if used >= limit:
            break
        room = limit - used
        if len(p.text) <= room:
            out.append(p)
            used += len(p.text)
            continue
        cut = p.text[:room]
        if p.key is not None:
            core = cut.rstrip(_DANGLING)
            if core:
                out.append(Piece(core, p.key))
            if len(cut) > len(core):
                out.append(Piece(cut[len(core):]))
        else:
            out.append(Piece(cut))
        used = limit
    return out


def pad(pieces: list[Piece], width: int) -> list[Piece]:
    """Fixed-width field: cut to ``width`` or right-pad with spaces."""
    cut = truncate(pieces, width)
    n = len(text_of(cut))
    return cut + ([Piece(" " * (width - n))] if n < width else [])


def labels(pieces: list[Piece]) -> tuple[str, dict[str, str], dict[str, list[int]]]:
    """Text, the ten values and the span of each value's chosen occurrence.

    The chosen occurrence of a key is its longest printed piece, the first one on ties:
    with copies that are prefixes of the full value this is the first complete occurrence.
    """
    text = ""
    best: dict[str, tuple[int, int]] = {}
    for p in pieces:
        start = len(text)
        text += p.text
        if p.key is None:
            continue
        value = p.text.strip() if p.key != "INTERMEDIARY" else p.text.lstrip()
        if not value:
            continue
        lead = len(p.text) - len(p.text.lstrip())
        span = (start + lead, start + lead + len(value))
        if p.key not in best or len(value) > best[p.key][1] - best[p.key][0]:
            best[p.key] = span
    fields = {k: "" for k in KEYS}
    spans: dict[str, list[int]] = {}
    for k, (s, e) in best.items():
        fields[k] = text[s:e]
        spans[k] = [s, e]
    return text, fields, spans


def verify(pieces: list[Piece]) -> list[str]:
    """Problems with a built descriptor (empty list = fine).

    Every value must be a substring, and no other occurrence of a key may be more complete
    than the labeled one: a truncated copy must be a prefix of the labeled value.
    """
    text, fields, spans = labels(pieces)
    problems = []
    for k, v in fields.items():
        if v and v not in text:
            problems.append(f"{k}: {v!r} not in text")
    for p in pieces:
        if p.key is None or not p.text.strip():
            continue
        v = fields[p.key]
        other = p.text.strip() if p.key != "INTERMEDIARY" else p.text.lstrip()
        if len(other) > len(v):
            problems.append(f"{p.key}: occurrence {other!r} longer than label {v!r}")
        elif not v.startswith(other) and not v.upper().startswith(other.upper()):
            problems.append(f"{p.key}: occurrence {other!r} is not a prefix of {v!r}")
    if not fields["MERCHANT_NAME"]:
        problems.append("MERCHANT_NAME is empty")
    return problems
