"""The session-8 forms of functions issue 16 made faster, kept verbatim as the references the fast
forms are tested against (tests/test_encoder_fast_paths.py). Not part of the package.

Renamed only where a name would clash (``featurize`` -> ``featurize_reference``); helpers they call that
did not change are imported from the package.
"""
# ruff: noqa
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from finextract.backends.encoder.features import (LAYOUT_OFFSETS, LEX_OFFSETS, MAX_COLUMN, REPEAT_FIRST, REPEAT_IN,
                                                  REPEAT_START, CITY_EXACT, CITY_EXACT_IN, CITY_GLUED, CITY_MAJOR, CITY_MAJOR_IN,
                                                  CITY_PREFIX, CITY_PREFIX_IN, EXTRA_INPUTS, LAYOUT_CHANNELS,
                                                  LEX_CHANNELS, MIN_REPEAT, PREFIX_KNOWN, PREFIX_KNOWN_IN,
                                                  PREFIX_SHAPE, PREFIX_SHAPE_IN, _GENERIC_PREFIX, _SHAPES, _STRIP,
                                                  _known_prefix_re, _mark,
                                                  _mark_words, _shape, pad_value)
from finextract.backends.encoder.gazetteer import gazetteer, processor_prefixes, region_class
from finextract.backends.encoder.glued import (MAX_WORDS, MIN_EXACT, MIN_EXACT_ALONE, MIN_PREFIX, MIN_PREFIX_ALONE,
                                               _REGION_CLASSES, _is_any_city, _is_any_city_prefix)


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


def words(text: str) -> list[tuple[int, int, str]]:
    """Whitespace-separated words without surrounding quotes/commas: ``(start, end, UPPER)``."""
    out = []
    for m in re.finditer(r"\S+", text):
        s, e = m.start(), m.end()
        while s < e and text[s] in _STRIP:
            s += 1
        while e > s and text[e - 1] in _STRIP:
            e -= 1
        if s < e:
            out.append((s, e, text[s:e].upper()))
    return out


def city_chars(text: str, ws: list[tuple[int, int, str]] | None = None) -> bytearray:
    """Per character: the ``city`` channel value (see module docstring).

    The four ``*_chars`` channels are ``bytearray``s (every value is below 256): indexed like a list,
    and :func:`featurize` reads a whole batch of them as one NumPy array without a copy."""
    gaz = gazetteer()
    ws = words(text) if ws is None else ws
    arr = bytearray(len(text))
    ups = [w for _, _, w in ws]
    longest = min(gaz.max_words, 5)
    for j, (_, _, word) in enumerate(ws):  # runs ending right before a region code
        region = word if _is_state(word) else None
        if region is None or j == 0:
            continue
        best = None
        for n in range(min(longest, j), 0, -1):
            run = " ".join(ups[j - n:j])
            if gaz.is_city(run, region):
                best = (n, CITY_EXACT, CITY_EXACT_IN)
                break
            if best is None and gaz.is_city_prefix(run, region):
                best = (n, CITY_PREFIX, CITY_PREFIX_IN)
        if best:
            n, b, i = best
            _mark_words(arr, ws, j - n, j, b, i)
    for j, (s, e, word) in enumerate(ws):  # a city glued to its state: "SAN FRANCISCOCA", "TORONTOON"
        nxt = ups[j + 1] if j + 1 < len(ups) else ""
        if arr[s] or len(word) <= 4 or not word[-3:].isalpha() or not _is_state(word[-2:]) or _is_state(nxt):
            continue
        state, stem = word[-2:], word[:-2]
        for n in range(min(longest, j + 1), 0, -1):
            run = " ".join(ups[j - n + 1:j] + [stem])
            if gaz.is_city(run, state) and not any(arr[ws[j - n + 1][0]:e]):
                _mark(arr, ws[j - n + 1][0], e - 2, CITY_GLUED)
                break
    for i in range(len(ws)):  # larger cities anywhere
        if ups[i] not in gaz.major_heads:  # no larger city starts with this word
            continue
        for n in (3, 2, 1):
            if i + n > len(ws):
                continue
            run = " ".join(ups[i:i + n])
            if len(run) >= 4 and gaz.is_major_city(run) and not any(arr[ws[i][0]:ws[i + n - 1][1]]):
                _mark_words(arr, ws, i, i + n, CITY_MAJOR, CITY_MAJOR_IN)
                break
    return arr


def region_chars(text: str, ws: list[tuple[int, int, str]] | None = None) -> bytearray:
    ws = words(text) if ws is None else ws
    arr = bytearray(len(text))
    for s, e, w in ws:
        if 2 <= len(w) <= 3 and w.isalpha():
            _mark(arr, s, e, region_class(w))
        elif len(w) > 4 and w[-2:].isalpha() and w[-3].isalpha() and region_class(w[-2:]) in (1, 2, 4):
            pass  # a glued "CITYST": the city channel marks it; the tail is left to the model
    return arr


def prefix_chars(text: str) -> bytearray:
    arr = bytearray(len(text))
    up = text.upper()
    known = _known_prefix_re() if len(up) == len(text) else None
    for m in re.finditer(r"\S+", text):
        s = m.start()
        if known is not None:
            k = known.match(up, s)
            if k:
                _mark(arr, s, k.end(), PREFIX_KNOWN, PREFIX_KNOWN_IN)
                continue
        else:  # upper-casing changed the length (``ß`` -> ``SS``): compare prefix by prefix
            hit = next((p for p in processor_prefixes() if up.startswith(p, s) and
                        (p[-1] in "* " or s + len(p) >= len(text) or not text[s + len(p)].isalnum())), None)
            if hit:
                _mark(arr, s, s + len(hit), PREFIX_KNOWN, PREFIX_KNOWN_IN)
                continue
        g = _GENERIC_PREFIX.match(text, s)
        if g and (s == 0 or text[s - 1].isspace()):
            _mark(arr, s, g.end(), PREFIX_SHAPE, PREFIX_SHAPE_IN)
    return arr


def shape_chars(text: str) -> bytearray:
    arr = bytearray(len(text))
    for pattern, value in _SHAPES:
        for m in pattern.finditer(text):
            if not any(arr[m.start():m.end()]):  # no character taken by an earlier shape
                _mark(arr, m.start(), m.end(), value)
    return arr


def repeat_of_start(text: str) -> tuple[int, int]:
    """``(p, n)``: the word start ``p > 0`` where the line's first ``n`` characters come again
    (the longest such repeat, earliest on ties); ``(0, 0)`` when none is ``MIN_REPEAT`` long."""
    up = text.upper()
    best = (0, 0)
    for m in re.finditer(r"(?<=\s)\S", up):
        p = m.start()
        n = 0
        while p + n < len(up) and n < p and up[p + n] == up[n]:
            n += 1
        if n >= MIN_REPEAT and n > best[1]:
            best = (p, n)
    return best


def featurize_reference(tokenizer: Any, texts: Sequence[str], max_length: int, case: bool = True, lex: bool = False,
              input_names: Sequence[str] | None = None, layout: bool = False,
              ) -> tuple[dict[str, np.ndarray], list[list[tuple[int, int]]]]:
    """Texts -> ``({input name: int64 array}, offsets)``: what every runtime feeds the model.

    ``input_names`` keeps only the inputs a graph declares (ONNX); ``offsets`` map tokens
    back to characters for decoding.
    """
    texts = list(texts)
    def encode(with_mapping: bool) -> Any:
        return tokenizer(texts, truncation=True, max_length=max_length, padding=True,
                         return_offsets_mapping=with_mapping, return_tensors="np")

    # fast tokenizers: offsets from the Rust-side encodings, ~20x cheaper than the offset-mapping array
    enc = encode(not getattr(tokenizer, "is_fast", False))
    encodings = getattr(enc, "encodings", None)
    if "offset_mapping" not in enc and not (encodings and len(encodings) == len(texts)):
        enc = encode(True)  # no usable encodings after all: ask for the array
    if "offset_mapping" in enc:
        offsets = [list(map(tuple, row)) for row in enc.pop("offset_mapping").tolist()]
    else:
        offsets = [list(e.offsets) for e in encodings]
    batch = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}
    width = batch["input_ids"].shape[1] if texts else 0
    mask = batch.get("attention_mask")
    right_padded = getattr(tokenizer, "padding_side", "right") == "right" and mask is not None
    lengths = mask.sum(axis=1).tolist() if right_padded else [width] * len(texts)
    shapes = {"case_ids": (), "lex_ids": (len(LEX_CHANNELS),), "layout_ids": (len(LAYOUT_CHANNELS),)}
    for name, on in zip(EXTRA_INPUTS, (case, lex, layout)):
        if on:  # every position starts as padding; real tokens are written over it row by row
            batch[name] = np.empty((len(texts), width, *shapes[name]), dtype=np.int64)
            batch[name][...] = pad_value(name)
    if case or lex or layout:
        _fill_token_features(batch, texts, offsets, lengths, case, lex, layout)
    if input_names is not None:
        batch = {k: v for k, v in batch.items() if k in input_names}
    return batch, offsets


def glued_city_starts(text: str, word: tuple[int, int], words: list[tuple[int, int]]) -> list[int]:
    """Positions inside ``word`` (never its first character) where a city spelled to a word end begins."""
    gaz = gazetteer()
    ws, we = word
    k = words.index(word)
    # the words after it, upper-cased once (not once per start and run length) and whether each is a region
    later = [text[a:b].upper() for a, b in words[k + 1:k + 1 + MAX_WORDS]]
    is_region = [region_class(w) in _REGION_CLASSES for w in later]
    out = []
    for p in range(ws + 1, we - 1):
        if not text[p].isalpha() or not text[p - 1].isalnum():
            continue
        head = text[p:we].upper()
        for n in range(0, MAX_WORDS):
            if k + n >= len(words):
                break
            run = " ".join([head] + later[:n])
            region = later[n] if n < len(later) else ""
            with_region = n < len(later) and is_region[n]
            if with_region and ((len(run) >= MIN_EXACT and gaz.is_city(run, region)) or
                                gaz.is_city_prefix(run, region, min_chars=MIN_PREFIX)):
                out.append(p)
                break
            if (len(run) >= MIN_EXACT_ALONE and _is_any_city(run)) or \
                    (len(run) >= MIN_PREFIX_ALONE and _is_any_city_prefix(run)):
                out.append(p)
                break
    return out


def _is_state(word: str) -> bool:
    """``word`` is a US state or Canadian province code (or both a state and a country code).

    Codes are 2-3 letters and upper-casing never shortens a string, so a longer word is none: the
    check most words of a descriptor take, without :func:`region_class`'s call (issue 16)."""
    return len(word) <= 3 and region_class(word) in (1, 2, 4)


def lex_chars(text: str) -> tuple[bytearray, bytearray, bytearray, bytearray]:
    """The four lexical channels of ``text`` per character, in ``LEX_CHANNELS`` order (city, region,
    prefix, shape): what :func:`lex_ids` and the batch path both map onto tokens."""
    ws = words(text)
    return city_chars(text, ws), region_chars(text, ws), prefix_chars(text), shape_chars(text)


def _fill_token_features(batch: dict[str, np.ndarray], texts: list[str], offsets: list[list[tuple[int, int]]],
                         lengths: list[int], case: bool, lex: bool, layout: bool) -> None:
    """Write the extra inputs of every text's first ``lengths[row]`` tokens into ``batch`` (padding is set).

    The same ids as :func:`token_features` row by row (tests pin it), for the whole batch at once:
    the per-character work stays per text, but the token lookups run as a few NumPy calls over
    all the batch's tokens (:func:`_batch_lex_ids`, :func:`_batch_layout_ids`), and each input is
    written with one masked assignment instead of a nested list per row (issue 16).
    """
    rows = [(t, o[:n]) for t, o, n in zip(texts, offsets, lengths) if n]
    if not rows:
        return
    width = batch["input_ids"].shape[1]
    real = np.arange(width)[None, :] < np.asarray(lengths)[:, None]  # row-major: row by row, first n tokens
    se = np.array([se for _, o in rows for se in o], dtype=np.int64).reshape(-1, 2)
    counts = [len(o) for _, o in rows]
    if case:
        batch["case_ids"][real] = [c for t, o in rows for c in case_ids(t, o)]
    if lex:
        batch["lex_ids"][real] = _batch_lex_ids([t for t, _ in rows], se, counts)
    if layout:
        batch["layout_ids"][real] = _batch_layout_ids([t for t, _ in rows], se, counts)


def _batch_lex_ids(texts: list[str], se: np.ndarray, counts: list[int]) -> np.ndarray:
    """:func:`lex_ids` of many texts at once: ``se`` ``[tokens, 2]`` holds every text's token offsets,
    ``counts[i]`` of them text ``i``'s, in order. ``[tokens, 4]``.

    The texts' channel characters are laid end to end; a token takes the first marked character at
    or after its start, if that lies before its end (cut at its text's end), as in :func:`lex_ids`.
    """
    base = np.cumsum([0] + [len(t) for t in texts])
    chans = [bytearray(), bytearray(), bytearray(), bytearray()]
    for text in texts:
        for ch, arr in zip(chans, lex_chars(text)):
            ch += arr
    total = int(base[-1])
    start = np.repeat(base[:-1], counts) + se[:, 0]
    stop = np.repeat(base[:-1], counts) + np.minimum(se[:, 1], np.repeat(np.diff(base), counts))
    at = np.minimum(start, total)      # a start past the last text looks at the end marker
    out = np.empty((len(se), len(chans)), dtype=np.int64)
    positions = np.arange(total + 1)
    for c, (ch, off) in enumerate(zip(chans, LEX_OFFSETS)):
        vals = np.frombuffer(bytes(ch) + b"\0", dtype=np.uint8)
        marked = np.where(vals != 0, positions, total + 1)   # the end marker (a 0) is never marked
        first = np.minimum.accumulate(marked[::-1])[::-1][at]   # first marked position >= the start
        hit = first < stop
        out[:, c] = off + np.where(hit, vals[np.minimum(first, total)], 0)
    return out


def _batch_layout_ids(texts: list[str], se: np.ndarray, counts: list[int]) -> np.ndarray:
    """:func:`layout_ids` of many texts at once (``se``, ``counts`` as in :func:`_batch_lex_ids`). ``[tokens, 2]``."""
    col_off, rep_off = LAYOUT_OFFSETS
    rep = np.array([repeat_of_start(t) for t in texts], dtype=np.int64).reshape(-1, 2)
    p, n = np.repeat(rep[:, 0], counts), np.repeat(rep[:, 1], counts)
    s, e = se[:, 0], se[:, 1]
    has = n > 0
    column = np.where(has & (s >= p), s - p, s)
    kind = np.select([has & (s == p), has & (p < s) & (s < p + n), has & (s < n)],
                     [REPEAT_START, REPEAT_IN, REPEAT_FIRST], 0)
    special = s >= e
    out = np.empty((len(se), 2), dtype=np.int64)
    out[:, 0] = np.where(special, col_off, col_off + 1 + np.minimum(column, MAX_COLUMN))
    out[:, 1] = np.where(special, rep_off, rep_off + kind)
    return out
