"""BIO tags over sub-word tokens: gold character spans -> labels, and logits -> exact substrings.

Why through ``offset_mapping``: the MiniLM tokenizer lower-cases and strips accents, so the
token strings are *not* pieces of the input. The fast tokenizer's offsets still point into
the original string, so every decoded value is ``text[start:end]`` of the input itself:
original case, original punctuation and spacing, never a character the input lacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from finextract.tasks import Task

IGNORE = -100  # label of special and padding tokens: no loss


def label_names(task: Task) -> list[str]:
    """``O`` then ``B-KEY``, ``I-KEY`` for every key, in task order (label id = list index)."""
    names = ["O"]
    for key in task.key_names:
        names += [f"B-{key}", f"I-{key}"]
    return names


def find_all(text: str, value: str) -> list[tuple[int, int]]:
    """Every occurrence of ``value`` in ``text`` (overlapping ones included), as (start, end)."""
    out, pos = [], text.find(value)
    while value and pos >= 0:
        out.append((pos, pos + len(value)))
        pos = text.find(value, pos + 1)
    return out


@dataclass
class Alignment:
    labels: list[int]
    placed: int = 0  # gold values that got tokens
    missed: int = 0  # gold values not in the (truncated) text or colliding with another span


def _values(task: Task, values: dict[str, Any]) -> list[tuple[str, list[str]]]:
    out = []
    for key in task.key_names:
        v = values.get(key, task.empty_value())
        vals = [x for x in (v if isinstance(v, list) else [v]) if isinstance(x, str) and x.strip()]
        out.append((key, vals))
    return out


def align_labels(text: str, offsets: Sequence[tuple[int, int]], values: dict[str, Any], task: Task,
                 hints: dict[str, Any] | None = None) -> Alignment:
    """Label each token from the gold values.

    Single-valued keys label the first occurrence of their value, multi-valued keys every
    occurrence of every value; longer values are placed first. Occurrences whose edges fall on token edges are preferred
    (``"MA"`` the state, not the ``ma`` inside ``MARKET``), and a span never takes a token
    another span already holds. ``hints`` (``{key: [start, end]}``, as the data generator
    records them) win when they point at the value. Special tokens (offset ``(0, 0)``) get :data:`IGNORE`.
    """
    index = {name: i for i, name in enumerate(label_names(task))}
    labels = [IGNORE if s == e else 0 for s, e in offsets]
    real = [(i, s, e) for i, (s, e) in enumerate(offsets) if s < e]
    starts = {s for _, s, _ in real}
    ends = {e for _, _, e in real}
    taken: set[int] = set()
    placed = missed = 0
    # Longest values first: "Rs 113.80" claims its tokens before "Rs 113" could take a prefix of it.
    pairs = sorted(((key, v) for key, vals in _values(task, values) for v in vals), key=lambda kv: -len(kv[1]))
    for key, value in pairs:
        occ = find_all(text, value) or find_all(text, value.strip())
        aligned = [o for o in occ if o[0] in starts and o[1] in ends]
        candidates = aligned or occ  # unaligned only when nothing better exists
        hint = (hints or {}).get(key)
        if (not task.multi_valued and isinstance(hint, (list, tuple)) and len(hint) == 2
                and text[hint[0]:hint[1]] == value):
            candidates = [tuple(hint)] + [c for c in candidates if c != tuple(hint)]
        ok = False
        for a, b in candidates:
            toks = [i for i, s, e in real if s < b and e > a]
            if not toks or taken.intersection(toks):
                continue
            labels[toks[0]] = index[f"B-{key}"]
            for i in toks[1:]:
                labels[i] = index[f"I-{key}"]
            taken.update(toks)
            ok = True
            if not task.multi_valued:
                break
        placed += ok
        missed += not ok
    return Alignment(labels, placed, missed)


@dataclass
class Span:
    key: str
    start: int
    end: int
    score: float


def decode_spans(offsets: Sequence[tuple[int, int]], probs: np.ndarray, task: Task) -> list[Span]:
    """Maximal runs ``B-k I-k ...`` (a stray ``I-k`` opens a run) of the per-token argmax.

    A span's score is the mean probability of its tokens' labels, used to choose between
    several spans of one single-valued key.
    """
    names = label_names(task)
    best = probs.argmax(-1)
    spans: list[Span] = []
    cur: list[Any] | None = None  # [key, start, end, [probs]]
    for t, (s, e) in enumerate(offsets):
        if s >= e:
            continue
        name = names[int(best[t])]
        tag, _, key = name.partition("-")
        p = float(probs[t, best[t]])
        if cur is not None and tag == "I" and key == cur[0]:
            cur[2] = e
            cur[3].append(p)
            continue
        if cur is not None:
            spans.append(Span(cur[0], cur[1], cur[2], float(np.mean(cur[3]))))
            cur = None
        if tag in ("B", "I"):
            cur = [key, s, e, [p]]
    if cur is not None:
        spans.append(Span(cur[0], cur[1], cur[2], float(np.mean(cur[3]))))
    return spans


def spans_to_output(text: str, spans: Sequence[Span], task: Task) -> dict[str, Any]:
    """Task-shaped output: best span per single-valued key, distinct spans in order for multi-valued."""
    out: dict[str, Any] = task.empty_output()
    if task.multi_valued:
        for sp in spans:
            value = text[sp.start:sp.end]
            if value.strip() and value not in out[sp.key]:
                out[sp.key].append(value)
        return out
    best: dict[str, Span] = {}
    for sp in spans:
        if sp.key not in best or sp.score > best[sp.key].score:
            best[sp.key] = sp
    for key, sp in best.items():
        out[key] = text[sp.start:sp.end]
    return out


def decode(text: str, offsets: Sequence[tuple[int, int]], probs: np.ndarray, task: Task) -> dict[str, Any]:
    return spans_to_output(text, decode_spans(offsets, probs, task), task)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    ez = np.exp(z)
    return ez / ez.sum(-1, keepdims=True)


N_CASE_IDS = 16


def _shape(piece: str) -> int:
    letters = [c for c in piece if c.isalpha()]
    if letters:
        if all(c.islower() for c in letters):
            return 1
        if all(c.isupper() for c in letters):
            return 2 if len(letters) > 1 else 3
        return 3 if piece[:1].isupper() and all(c.islower() for c in letters[1:]) else 4
    if piece.isdigit():
        return 5
    return 6 if piece.isascii() else 7


def case_ids(text: str, offsets: Sequence[tuple[int, int]]) -> list[int]:
    """A small id per token describing the *original* characters the uncased tokenizer hides.

    Why: an uncased encoder cannot tell "Apple" (a company) from "apple", nor "US" from
    "us"; capitalisation is the strongest single cue for names. Ids: 0 special/padding;
    1 lower, 2 UPPER, 3 Title, 4 MiXed, 5 digits, 6 punctuation, 7 other; +8 when the
    token starts a whitespace-separated word.
    """
    out = []
    for s, e in offsets:
        if s >= e:
            out.append(0)
            continue
        word_start = s == 0 or text[s - 1].isspace()
        out.append(_shape(text[s:e]) + (8 if word_start else 0))
    return out
