"""BIO tags from gold values and spans back from predicted tags.

Gold records hold strings, not offsets, so training has to find where each value sits:
the first token-aligned occurrence for single-valued tasks (LABELING rule 2: the first
complete occurrence), every token-aligned occurrence for multi-valued ones. Longer values
are placed first so a short value never splits a longer one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from finextract.backends.crf.tokens import Token
from finextract.tasks import Task

OUTSIDE = "O"


@dataclass(frozen=True)
class Span:
    key: str
    first: int  # token index
    last: int  # token index, inclusive
    score: float = 1.0


def _occurrences(text: str, value: str) -> list[tuple[int, int]]:
    out, i = [], text.find(value)
    while i >= 0:
        out.append((i, i + len(value)))
        i = text.find(value, i + 1)
    return out


def _token_range(tokens: list[Token], start: int, end: int, aligned: bool) -> tuple[int, int] | None:
    """Token indices covering [start, end); with ``aligned`` both edges must be token edges."""
    idx = [i for i, t in enumerate(tokens) if t.end > start and t.start < end]
    if not idx:
        return None
    if aligned and (tokens[idx[0]].start != start or tokens[idx[-1]].end != end):
        return None
    return idx[0], idx[-1]


def bio_tags(text: str, tokens: list[Token], values: dict[str, Any], task: Task) -> list[str]:
    """Tag each token ``B-KEY``/``I-KEY``/``O`` from a record's gold values."""
    tags = [OUTSIDE] * len(tokens)
    items: list[tuple[str, str]] = []
    for key in task.key_names:
        vals = values.get(key) or ([] if task.multi_valued else "")
        for v in (vals if task.multi_valued else [vals]):
            if v and v.strip():
                items.append((key, v.strip()))
    items.sort(key=lambda kv: -len(kv[1]))
    for key, value in items:
        occ = _occurrences(text, value)
        placed = False
        for aligned in (True, False):
            for start, end in occ:
                rng = _token_range(tokens, start, end, aligned)
                if rng is None or any(tags[i] != OUTSIDE for i in range(rng[0], rng[1] + 1)):
                    continue
                tags[rng[0]] = f"B-{key}"
                for i in range(rng[0] + 1, rng[1] + 1):
                    tags[i] = f"I-{key}"
                placed = True
                if not task.multi_valued:
                    break
            if placed:
                break
    return tags


def spans_from_tags(tags: list[str], marginals: list[float] | None = None) -> list[Span]:
    """Maximal B/I runs of one key; an I- without a B- starts a span (lenient decoding)."""
    spans: list[Span] = []
    cur_key, first = None, 0

    def close(last: int) -> None:
        if cur_key is not None:
            sc = sum(marginals[first:last + 1]) / (last + 1 - first) if marginals else 1.0
            spans.append(Span(cur_key, first, last, sc))

    for i, tag in enumerate(tags):
        kind, _, key = tag.partition("-")
        if kind == "B" or (kind == "I" and key != cur_key):
            close(i - 1)
            cur_key, first = key, i
        elif kind != "I":
            close(i - 1)
            cur_key = None
    close(len(tags) - 1)
    return spans


def spans_to_output(text: str, tokens: list[Token], spans: list[Span], task: Task, single: str = "marginal") -> dict[str, Any]:
    """Task-shaped dict of exact substrings; ``single`` picks one span per single-valued key.

    ``first``: leftmost (rule 2), ``longest``: most characters, ``marginal``: highest mean
    token marginal probability (the model's own confidence).
    """
    out = task.empty_output()
    by_key: dict[str, list[tuple[str, Span]]] = {}
    for sp in spans:
        if sp.key not in out:
            continue
        by_key.setdefault(sp.key, []).append((text[tokens[sp.first].start:tokens[sp.last].end], sp))
    for key, cands in by_key.items():
        if task.multi_valued:
            seen: dict[str, None] = {}
            for s, _ in cands:
                seen.setdefault(s, None)
            out[key] = list(seen)
        else:
            if single == "first":
                pick = cands[0]
            elif single == "longest":
                pick = max(cands, key=lambda c: len(c[0]))
            else:
                pick = max(cands, key=lambda c: (c[1].score, -c[1].first))
            out[key] = pick[0]
    return out
