"""Per-token input features beside the sub-word ids: one featurizer for training, PyTorch and ONNX.

Why: the encoder is uncased and small. Two kinds of extra ids are added, each through a
learned embedding that starts at zero (so step 0 is the pretrained encoder):

* ``case_ids`` ``[B, T]``: the token's original capitalisation (see :func:`case_ids`).
* ``lex_ids`` ``[B, T, 4]``: world knowledge and shapes, one small vocabulary per channel
  (:data:`LEX_CHANNELS`), offset into one shared embedding table:

  - ``city``: part of a city of the state/province printed right after it (exact, or a
    cut-off prefix such as ``FT LAUDERDA`` before ``FL``), a city glued to its state
    (``SAN FRANCISCOCA``), or a larger city anywhere; begin/inside variants.
  - ``region``: US state, Canadian province, country code, or ambiguous (``CA``).
  - ``prefix``: a known payment-processor prefix (``SQ *``, ``TST*``) or the generic shape of
    one (2-5 letters/digits glued to ``*`` at a word start); begin/inside.
  - ``shape``: phone-like, ZIP / ZIP+4, store-number-like, date-like, money, long alphanumeric code.

:func:`featurize` is the one function that turns texts into the model's inputs (a plain
dict of int64 arrays), so every runtime feeds the model the same numbers.

* ``layout_ids`` ``[B, T, 2]`` (``model.layout_features``): where a token sits in the line, which
  sub-words hide. Card networks print the name in a fixed-width field (20, 22 or 25 characters)
  and glue the city straight after it (``FARM AT THE CARNEROSNAPA``); banks repeat the acceptor
  line after a cut first copy (``FARM FRESH TO FARM FRESH TO YOU``). A 22M encoder sees neither
  character counts nor long repeats well, so two channels (:data:`LAYOUT_CHANNELS`) say so:

  - ``column``: the character offset of the token's start, counted from the start of the line
    or, inside a repeated copy, from the start of that copy (0..39, 40 = further).
  - ``repeat``: the token starts / is inside the second copy of the line's beginning, or is
    inside the first copy that the second repeats (at least :data:`MIN_REPEAT` characters).
"""

from __future__ import annotations

import re
import weakref
from bisect import bisect_left
from functools import lru_cache
from itertools import chain
from collections.abc import Sequence
from typing import Any

import numpy as np

from finextract.backends.encoder.gazetteer import gazetteer, processor_prefixes, region_class

N_CASE_IDS = 16

# channel name -> number of values (0 = none); ids are offset so one embedding table holds all.
LEX_CHANNELS: dict[str, int] = {"city": 8, "region": 5, "prefix": 5, "shape": 9}
LEX_OFFSETS = np.cumsum([0] + list(LEX_CHANNELS.values())[:-1]).tolist()
N_LEX_IDS = 32
assert sum(LEX_CHANNELS.values()) <= N_LEX_IDS

CITY_EXACT, CITY_EXACT_IN, CITY_PREFIX, CITY_PREFIX_IN, CITY_GLUED, CITY_MAJOR, CITY_MAJOR_IN = range(1, 8)
PREFIX_KNOWN, PREFIX_KNOWN_IN, PREFIX_SHAPE, PREFIX_SHAPE_IN = range(1, 5)
SHAPE_ZIP5, SHAPE_ZIP9, SHAPE_PHONE, SHAPE_STORE, SHAPE_CODE, SHAPE_DATE, SHAPE_LONGNUM, SHAPE_MONEY = range(1, 9)


# ------------------------------------------------------------------ capitalisation
@lru_cache(maxsize=1 << 16)
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


# ------------------------------------------------------------------ words
_STRIP = "\"',.;:()[]{}"


_NON_SPACE = re.compile(r"\S+")


def words(text: str) -> list[tuple[int, int, str]]:
    """Whitespace-separated words without surrounding quotes/commas: ``(start, end, UPPER)``.

    ``str.strip`` does the trimming in C (a character loop per word cost several microseconds a text)."""
    out = []
    for m in _NON_SPACE.finditer(text):
        w = m.group()
        core = w.strip(_STRIP)
        if core:
            s = m.start() + len(w) - len(w.lstrip(_STRIP))
            out.append((s, s + len(core), core.upper()))
    return out


def _mark(arr: bytearray, start: int, end: int, begin: int, inside: int | None = None) -> None:
    """Label characters ``[start, end)``: ``begin`` on the first, ``inside`` on the rest (if not already set)."""
    inside = begin if inside is None else inside
    for c in range(start, end):
        if arr[c] == 0:
            arr[c] = begin if c == start else inside


def _mark_words(arr: bytearray, ws: list[tuple[int, int, str]], i: int, j: int, begin: int, inside: int) -> None:
    """Words ``i..j-1``: the first word's first char ``begin``, everything else ``inside``."""
    for k in range(i, j):
        s, e, _ = ws[k]
        for c in range(s, e):
            if arr[c] == 0:
                arr[c] = begin if (k == i and c == s) else inside


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


def _is_state(word: str) -> bool:
    """``word`` is a US state or Canadian province code (or both a state and a country code).

    Codes are 2-3 letters and upper-casing never shortens a string, so a longer word is none: the
    check most words of a descriptor take, without :func:`region_class`'s call (issue 16)."""
    return len(word) <= 3 and _region_of(word) in (1, 2, 4)


@lru_cache(maxsize=1 << 16)
def _region_of(word: str) -> int:
    """:func:`region_class` of a short word, cached by word (bounded): descriptors repeat their words,
    and :func:`city_chars` and :func:`region_chars` ask up to four times a word."""
    return region_class(word)


def region_chars(text: str, ws: list[tuple[int, int, str]] | None = None) -> bytearray:
    """Per character: the ``region`` channel (a 2-3 letter word's :func:`region_class`). A glued
    ``CITYST`` is left alone: the city channel marks it; the tail is left to the model."""
    ws = words(text) if ws is None else ws
    arr = bytearray(len(text))
    for s, e, w in ws:
        if 2 <= len(w) <= 3 and w.isalpha():
            value = _region_of(w)
            if value:  # words never overlap, so the characters are still unmarked
                arr[s:e] = bytes((value,)) * (e - s)
    return arr


_GENERIC_PREFIX = re.compile(r"[A-Z0-9]{2,5} ?\*", re.IGNORECASE)


def prefix_chars(text: str) -> bytearray:
    """Per character: the ``prefix`` channel (a known processor prefix at a word start, else the
    generic shape of one). A text with no ``*`` and none of the few known prefixes without one (most
    descriptors) can hold neither, and is answered without a scan (issue 16)."""
    arr = bytearray(len(text))
    up = text.upper()
    if "*" not in text and "*" not in up and not any(p in up for p in _starless_prefixes()):
        return arr
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


@lru_cache(maxsize=1)
def _starless_prefixes() -> tuple[str, ...]:
    """The known prefixes without a ``*`` (``APPLE PAY ``, ``SP ``, ...): the only ones a text without one can hold."""
    return tuple(p for p in processor_prefixes() if "*" not in p)


@lru_cache(maxsize=1)
def _known_prefix_re() -> re.Pattern[str]:
    """All known prefixes as one alternation, longest first (the first that fits wins). A prefix
    not ending in ``*`` or a space must not run on into a letter or digit (``SQ`` in ``SQUARE``)."""
    alts = [re.escape(p) + ("" if p[-1] in "* " else r"(?![^\W_])") for p in processor_prefixes()]
    return re.compile("|".join(alts))


_SHAPES: list[tuple[re.Pattern[str], int]] = [
    (re.compile(r"(?<![\w])(?:\+?1[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}(?!\w)"), SHAPE_PHONE),
    (re.compile(r"(?<![\w-])\d{5}-\d{4}(?!\w)"), SHAPE_ZIP9),
    (re.compile(r"(?<![\w/-])\d{1,2}[/-]\d{1,2}(?:[/-]\d{2,4})?(?![\w/])"), SHAPE_DATE),
    (re.compile(r"(?<![\w.])\$?\d{1,7}\.\d{2}(?![\w.])"), SHAPE_MONEY),
    (re.compile(r"(?<![\w-])\d{5}(?![\w-])"), SHAPE_ZIP5),
    (re.compile(r"(?<![A-Za-z0-9])(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{6,}(?![A-Za-z0-9])"), SHAPE_CODE),
    (re.compile(r"(?<!\w)\d{6,}(?!\w)"), SHAPE_LONGNUM),
    (re.compile(r"#\s?\d{1,6}(?!\w)|(?<![\w#.$-])\d{2,4}(?![\w.,/-])"), SHAPE_STORE),
]


_DIGIT = re.compile(r"\d")


def shape_chars(text: str) -> bytearray:
    """Per character: the ``shape`` channel, the first of :data:`_SHAPES` (in order) to take a match.

    Every shape needs a digit (``\\d``, as the patterns read it), so a text without one is answered
    without the eight scans; a match is marked only where no character is taken yet, so the whole
    slice is written at once (issue 16)."""
    arr = bytearray(len(text))
    if not _DIGIT.search(text):
        return arr
    for pattern, value in _SHAPES:
        fill = bytes((value,))
        for m in pattern.finditer(text):
            s, e = m.span()
            if not any(arr[s:e]):  # no character taken by an earlier shape
                arr[s:e] = fill * (e - s)
    return arr


def lex_chars(text: str) -> tuple[bytearray, bytearray, bytearray, bytearray]:
    """The four lexical channels of ``text`` per character, in ``LEX_CHANNELS`` order (city, region,
    prefix, shape): what :func:`lex_ids` and the batch path both map onto tokens."""
    ws = words(text)
    return city_chars(text, ws), region_chars(text, ws), prefix_chars(text), shape_chars(text)


def lex_ids(text: str, offsets: Sequence[tuple[int, int]]) -> list[list[int]]:
    """``[T, 4]`` offset ids (city, region, prefix, shape) per token; special tokens get each channel's 0.

    A token takes its channel's first non-zero character value inside it (a begin value if it
    starts a match, else what it covers): the first marked character at or after the token's start,
    by bisection over the channel's marked positions. Plain Python on purpose: a descriptor has ~30
    tokens and most channels mark a few characters or none, where a dozen small NumPy calls cost
    several times as much (issue 16).
    """
    chans = lex_chars(text)
    n = len(text)
    out = [list(LEX_OFFSETS) for _ in offsets]
    for ch, arr in enumerate(chans):
        hits = [c for c, v in enumerate(arr) if v]  # most channels mark few characters, often none
        if not hits:
            continue
        for row, (s, e) in zip(out, offsets):
            k = bisect_left(hits, s)
            if k < len(hits) and hits[k] < min(e, n):
                row[ch] += arr[hits[k]]
    return out


# ------------------------------------------------------------------ layout
MAX_COLUMN = 40
MIN_REPEAT = 6
LAYOUT_CHANNELS: dict[str, int] = {"column": MAX_COLUMN + 2, "repeat": 4}
LAYOUT_OFFSETS = np.cumsum([0] + list(LAYOUT_CHANNELS.values())[:-1]).tolist()
N_LAYOUT_IDS = 48
assert sum(LAYOUT_CHANNELS.values()) <= N_LAYOUT_IDS
REPEAT_START, REPEAT_IN, REPEAT_FIRST = 1, 2, 3


def repeat_of_start(text: str) -> tuple[int, int]:
    """``(p, n)``: the word start ``p > 0`` where the line's first ``n`` characters come again
    (the longest such repeat, earliest on ties); ``(0, 0)`` when none is ``MIN_REPEAT`` long."""
    up = text.upper()
    best = (0, 0)
    head = up[:MIN_REPEAT]
    # a repeat of at least MIN_REPEAT characters starts with the line's first MIN_REPEAT: only where
    # they come again can one start (str.find, instead of comparing at every word start; issue 16)
    p = up.find(head, 1) if len(head) == MIN_REPEAT else -1
    while p != -1:
        if up[p - 1].isspace() and not up[p].isspace():  # a word start, as ``(?<=\s)\S`` reads it
            n = 0
            while p + n < len(up) and n < p and up[p + n] == up[n]:
                n += 1
            if n >= MIN_REPEAT and n > best[1]:
                best = (p, n)
        p = up.find(head, p + 1)
    return best


def layout_ids(text: str, offsets: Sequence[tuple[int, int]]) -> list[list[int]]:
    """``[T, 2]`` offset ids (column, repeat) per token; special tokens get each channel's 0."""
    p, n = repeat_of_start(text)
    out = []
    col_off, rep_off = LAYOUT_OFFSETS
    for s, e in offsets:
        if s >= e:
            out.append([col_off, rep_off])
            continue
        column = s - p if n and s >= p else s
        if n and s == p:
            rep = REPEAT_START
        elif n and p < s < p + n:
            rep = REPEAT_IN
        elif n and s < n:
            rep = REPEAT_FIRST
        else:
            rep = 0
        out.append([col_off + 1 + min(column, MAX_COLUMN), rep_off + rep])
    return out


# ------------------------------------------------------------------ the featurizer
EXTRA_INPUTS = ("case_ids", "lex_ids", "layout_ids")  # in this order after the tokenizer's own inputs


def token_features(text: str, offsets: Sequence[tuple[int, int]], case: bool, lex: bool,
                   layout: bool = False) -> dict[str, Any]:
    """The extra per-token inputs for one text, as lists (training's collation). :func:`featurize`
    computes the same ids for a whole batch at once (:func:`_fill_token_features`)."""
    out: dict[str, Any] = {}
    if case:
        out["case_ids"] = case_ids(text, offsets)
    if lex:
        out["lex_ids"] = lex_ids(text, offsets)
    if layout:
        out["layout_ids"] = layout_ids(text, offsets)
    return out


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
    counts = [len(o) for _, o in rows]
    se = np.fromiter(chain.from_iterable(chain.from_iterable(o for _, o in rows)), np.int64,
                     2 * sum(counts)).reshape(-1, 2)   # flat ints: several times cheaper than an array of tuples
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


def pad_value(name: str) -> Any:
    """What a padded position holds in input ``name`` (each channel's "none")."""
    return {"lex_ids": list(LEX_OFFSETS), "layout_ids": list(LAYOUT_OFFSETS)}.get(name, 0)


# ------------------------------------------------------------------ the tokenizer call
_ENCODING_FIELDS = {"input_ids": "ids", "token_type_ids": "type_ids", "attention_mask": "attention_mask"}
_PROBES = ["", " ", "x", "SQ *JOE'S COFFEE SAN FRANCISCO CA 94107", "straße ß ﬁx 😀 İSTANBUL", "\t\u00a0", "[CLS] [SEP] [PAD]",
           "WALMART #1234 " * 60]


class _DirectTokenizer:
    """A fast tokenizer's Rust ``Tokenizer``, called without padding; the batch is padded here (issue 16).

    Why: ``tokenizer(texts, padding=True, ...)`` pads every encoding to the batch's longest on the Rust
    side, then reading the offsets back builds a Python tuple for every position, padding included, and
    transformers copies each encoding into lists before making arrays. A batch of descriptors with one
    long wire memo is mostly padding: that cost ~110 us a text, against ~40 for the unpadded encodings
    padded with NumPy. A private copy of the Rust tokenizer is used (the transformers object's settings
    are never touched), set to the truncation the ordinary call sets; :meth:`build` checks that it gives
    the ordinary call's arrays and offsets exactly on probe texts, or is not used.
    """

    def __init__(self, backend: Any, fields: list[tuple[str, str]], pad_id: int, pad_type_id: int):
        self.backend, self.fields, self.pad_id, self.pad_type_id = backend, fields, pad_id, pad_type_id

    @classmethod
    def build(cls, tokenizer: Any, max_length: int) -> _DirectTokenizer | None:
        """The direct form of ``tokenizer`` at ``max_length``, or None where it is not known to be exact."""
        backend = getattr(tokenizer, "_tokenizer", None)
        if (not getattr(tokenizer, "is_fast", False) or getattr(tokenizer, "padding_side", None) != "right"
                or not hasattr(backend, "to_str")):
            return None
        try:
            from tokenizers import Tokenizer

            want = tokenizer(_PROBES, truncation=True, max_length=max_length, padding=True, return_tensors="np")
            if any(k not in _ENCODING_FIELDS for k in want) or "input_ids" not in want:
                return None
            trunc, pad = backend.truncation, backend.padding   # as the ordinary call left them
            own = Tokenizer.from_str(backend.to_str())
            own.no_padding()
            own.enable_truncation(**{k: trunc[k] for k in ("max_length", "stride", "strategy", "direction")})
            own.encode_special_tokens = backend.encode_special_tokens
            direct = cls(own, [(k, _ENCODING_FIELDS[k]) for k in want], pad["pad_id"], pad["pad_type_id"])
            got, offsets = direct(_PROBES)
            same = list(got) == list(want) and offsets == [list(e.offsets) for e in want.encodings] and all(
                np.asarray(want[k]).dtype == np.int64 and got[k].shape == np.asarray(want[k]).shape
                and (got[k] == np.asarray(want[k])).all() for k in got)
        except Exception:  # an unusual tokenizer: keep the ordinary call
            return None
        return direct if same else None

    def __call__(self, texts: list[str]) -> tuple[dict[str, np.ndarray], list[list[tuple[int, int]]]]:
        encodings = self.backend.encode_batch(texts, add_special_tokens=True, is_pretokenized=False)
        lengths = [len(e) for e in encodings]
        width, total = max(lengths), sum(lengths)
        real = np.arange(width)[None, :] < np.asarray(lengths)[:, None]   # row-major: each row's first n
        batch = {}
        for name, attr in self.fields:
            if name == "attention_mask":
                batch[name] = real.astype(np.int64)
                continue
            arr = np.full((len(texts), width), self.pad_id if name == "input_ids" else self.pad_type_id, dtype=np.int64)
            arr[real] = np.fromiter(chain.from_iterable(getattr(e, attr) for e in encodings), np.int64, total)
            batch[name] = arr
        pad = [(0, 0)]
        return batch, [e.offsets + pad * (width - n) for e, n in zip(encodings, lengths)]


_DIRECT: dict[tuple[int, int], tuple[Any, _DirectTokenizer | None]] = {}


def _direct_tokenizer(tokenizer: Any, max_length: int) -> _DirectTokenizer | None:
    """:class:`_DirectTokenizer` of this tokenizer object at ``max_length`` (built on first use)."""
    key = (id(tokenizer), max_length)
    hit = _DIRECT.get(key)
    if hit is not None and hit[0]() is tokenizer:
        return hit[1]
    try:
        alive = weakref.ref(tokenizer)
    except TypeError:
        return None
    direct = _DirectTokenizer.build(tokenizer, max_length)
    if len(_DIRECT) >= 64:  # bounded: tests and sweeps load many tokenizers
        _DIRECT.clear()
    _DIRECT[key] = (alive, direct)
    return direct


def _tokenize(tokenizer: Any, texts: list[str], max_length: int, direct: bool = True
              ) -> tuple[dict[str, np.ndarray], list[list[tuple[int, int]]]]:
    """``({tokenizer input: int64 array}, offsets)`` of the padded, truncated batch: by
    :class:`_DirectTokenizer` where it applies (``direct``), else by the tokenizer's own call."""
    fast = _direct_tokenizer(tokenizer, max_length) if direct and texts else None
    if fast is not None:
        return fast(texts)

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
    return {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}, offsets


def featurize(tokenizer: Any, texts: Sequence[str], max_length: int, case: bool = True, lex: bool = False,
              input_names: Sequence[str] | None = None, layout: bool = False, direct: bool = True,
              ) -> tuple[dict[str, np.ndarray], list[list[tuple[int, int]]]]:
    """Texts -> ``({input name: int64 array}, offsets)``: what every runtime feeds the model.

    ``input_names`` keeps only the inputs a graph declares (ONNX); ``offsets`` map tokens
    back to characters for decoding. ``direct=False`` always goes through the tokenizer's own call
    (the reference :class:`_DirectTokenizer` is tested against).
    """
    texts = list(texts)
    batch, offsets = _tokenize(tokenizer, texts, max_length, direct)
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
