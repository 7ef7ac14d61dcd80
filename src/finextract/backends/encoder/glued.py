"""Character-exact edges where a fixed-width name field touches the city field.

Why: a card network prints ``NAME(20|22|25) CITY(13)``. A full name field has no padding
left, so a cut name runs straight into the city: ``ABC LOCKSMITH CO GOSSan Francis``,
``FARM AT THE CARNEROSNAPA CA``. The true edge (``GOS|San``) often falls *inside* one
sub-word token (``##ssa``), where a token tagger cannot put it: the model can only stop a
token early or late, and does (``...GOSSa``, ``...CARNER``). This module moves such an edge
to the character where the gazetteer (``zipcodes`` + Canadian cities, :mod:`.gazetteer`)
says a city begins, inside the same word. It only moves an edge the model already put in
or next to that word, and only onto a city that is spelled out to the end of a word:
exactly (``IRVINE``, ``NAPA`` before their state; ``EL CERRITO``) or as a network-cut
prefix (``SAN FRANCIS``, ``ELK GROVE V``). When the model decoded no city at all (no token edge
where it begins), the same test on the name's last words and the word after them supplies it.
No library does this (it is a property of the DE 43 layout), hence the hand-written rule;
``model.glued_fields: false`` turns it off.
"""

from __future__ import annotations

import bisect
import re
from functools import lru_cache

from finextract.backends.encoder.gazetteer import CITY_ABBREVIATIONS, gazetteer, region_class

NAME_KEY, CITY_KEY = "MERCHANT_NAME", "CITY"
MIN_EXACT = 4           # a glued exact city before its state: NAPA, RENO
MIN_EXACT_ALONE = 6     # a glued exact city with no state after it
MIN_PREFIX = 5          # a cut city before its state
MIN_PREFIX_ALONE = 8    # a cut city with no state after it: SAN FRANCIS, VERNON HILL
MAX_WORDS = 4
_REGION_CLASSES = (1, 2, 4)   # US state, Canadian province, other network region codes
_ABBREVIATIONS = frozenset(CITY_ABBREVIATIONS.values()) | {"N", "S", "E", "W", "NE", "NW", "SE", "SW"}


@lru_cache(maxsize=1)
def _all_spellings() -> list[str]:
    gaz = gazetteer()
    return sorted({c for names in gaz.cities.values() for c in names})


def _first_spelling_from(run: str) -> str | None:
    """The first city spelling (:func:`_all_spellings`, sorted) that is not before ``run``, if any:
    ``run`` itself when it is a city, else the first that starts with it when one does."""
    names = _all_spellings()
    i = bisect.bisect_left(names, run)
    return names[i] if i < len(names) else None


def _is_any_city(run: str) -> bool:
    return _first_spelling_from(run) == run


def _is_any_city_prefix(run: str) -> bool:
    first = _first_spelling_from(run)
    return first is not None and first.startswith(run) and first != run


def _starts_some_city(run: str) -> bool:
    """Some spelling of some city starts with ``run`` (or is it).

    Every test in :func:`glued_city_starts` (exact or cut city of a region, or of any region) needs
    this of its run, and a longer run extends a shorter one, so a run that fails it ends the search
    at its start position: most positions fail at once (issue 16)."""
    first = _first_spelling_from(run)
    return first is not None and first.startswith(run)


def _words(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def glued_city_starts(text: str, word: tuple[int, int], words: list[tuple[int, int]]) -> list[int]:
    """Positions inside ``word`` (never its first character) where a city spelled to a word end begins."""
    return [p for p, _ in glued_city_runs(text, word, words)]


def glued_city_runs(text: str, word: tuple[int, int], words: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """:func:`glued_city_starts` with where each city ends: ``(start, end)``, ``end`` the end of the last
    word its spelling takes (``RESTA|SAN FRANCIS`` -> the end of ``FRANCIS``)."""
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
            if not _starts_some_city(run):
                break                          # no city starts so; none starts with a longer run either
            region = later[n] if n < len(later) else ""
            with_region = n < len(later) and is_region[n]
            if with_region and ((len(run) >= MIN_EXACT and gaz.is_city(run, region)) or
                                gaz.is_city_prefix(run, region, min_chars=MIN_PREFIX)):
                out.append((p, words[k + n][1]))
                break
            if (len(run) >= MIN_EXACT_ALONE and _is_any_city(run)) or \
                    (len(run) >= MIN_PREFIX_ALONE and _is_any_city_prefix(run)):
                out.append((p, words[k + n][1]))
                break
    return out


def refine_glued_edges(text: str, spans: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """``{key: (start, end)}`` character spans -> the same with the name/city edge moved onto a glued
    city start, where the model's edge lies in (or just before) the word that holds it."""
    name, city = spans.get(NAME_KEY), spans.get(CITY_KEY)
    if name is None and city is None:
        return spans
    words = _words(text)
    if city is None:
        found = _city_from_name_edge(text, spans, name, words)
        if found is not spans:
            return found
    out = dict(spans)

    def word_at(pos: int) -> tuple[int, int] | None:
        return next((w for w in words if w[0] < pos < w[1]), None)

    # the word holding the edge: the name's end inside a word, else the city's start inside one,
    # else (the fragment dropped) the word right after the name whose inside the city starts in
    word = word_at(name[1]) if name else None
    model_split = True                         # the model drew an edge inside (or right before) the word
    if word is None and city is not None:
        word = word_at(city[0])
    if word is None and name is not None and city is not None:
        nxt = next((w for w in words if w[0] > name[1]), None)
        last = next((w for w in words if w[1] == name[1]), None)
        if nxt and text[name[1]:nxt[0]].isspace() and nxt[0] < city[0] < nxt[1]:
            word = nxt                         # the name stopped before the word, the city starts inside it
        elif last and nxt and city[0] == nxt[0]:
            word, model_split = last, False    # the name took the city's first letters (TAP|EL CERRITO)
    if word is None:
        return spans
    starts = glued_city_starts(text, word, words)
    if not model_split:
        # the model drew no edge inside this word: move only onto a head that is a word of its own
        # (EL, SAN), never a network abbreviation that ends many names (N, ST, LK: DRAGO|N LAS VEGAS)
        starts = [p for p in starts if text[p:word[1]].upper() not in _ABBREVIATIONS]
    if not starts:
        return spans
    p = min(starts)   # the earliest start spells the longest city (EL CERRITO, not CERRITO; ELK, not LK)
    right_before = name is not None and name[1] <= word[0] and not text[name[1]:word[0]].strip()
    if name is not None and name[0] < p and (word[0] < name[1] <= word[1] or right_before):
        out[NAME_KEY] = (name[0], p)
    if city is not None and city[1] > p and (word[0] <= city[0] < word[1] or city[0] == _next_start(words, word)):
        out[CITY_KEY] = (p, city[1])
    return out


def _next_start(words: list[tuple[int, int]], word: tuple[int, int]) -> int | None:
    k = words.index(word)
    return words[k + 1][0] if k + 1 < len(words) else None


def _city_from_name_edge(text: str, spans: dict[str, tuple[int, int]], name: tuple[int, int],
                         words: list[tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """No city was decoded: a full name field glued to its city (``...RESSAN FRANCISCO``) leaves the
    tagger no token edge to start the city at, so it labels none, and the name stops before the glued
    word, inside it, or runs on through the city. When a word at the name's end (the one holding it,
    the name's last word, or the next word) holds a city start the gazetteer spells to a word end, the
    name ends there and that city is the CITY, unless it would overlap another key's value."""
    last = next((i for i, w in enumerate(words) if w[0] < name[1] <= w[1]), None)
    if last is None:
        return spans
    first = next(i for i, w in enumerate(words) if w[1] > name[0])
    nxt = last + 1 if last + 1 < len(words) and text[name[1]:words[last + 1][0]].strip() == "" else last
    # the glued word may be the name's last word, the one after it, or (the name ran on through the
    # city) one of the name's last MAX_WORDS words; the earliest city start wins, as in the main rule
    for i in range(max(first, last - MAX_WORDS + 1), nxt + 1):
        runs = [(p, e) for p, e in glued_city_runs(text, words[i], words) if p > name[0]]
        if not runs:
            continue
        p, e = min(runs)
        others = [v for k, v in spans.items() if k not in (NAME_KEY, CITY_KEY)]
        if any(a < e and p < b for a, b in others):
            return spans
        out = dict(spans)
        out[NAME_KEY] = (name[0], p)
        out[CITY_KEY] = (p, e)
        return out
    return spans
