"""Offset-keeping tokenizer and hand-made token features for the CRF.

Every token keeps its ``(start, end)`` character offsets, so a predicted span is always
``text[start_of_first:end_of_last]``: an exact substring of the input, never a re-joined
string (descriptors like ``US*2Y2LX`` or ``Amzn.com/bill`` have no spaces to re-join by).

Features are the kind a person reading descriptors relies on: the shape of a token
(``XXdd``), its affixes, punctuation such as ``*`` ``#`` ``/`` ``.``, whether it is glued to
its neighbour (``US*2Y`` vs ``SQ *TURTLE``), where it sits in the text, and text-level
patterns that span several tokens (phone numbers, ZIP+4, domains) found by regex first and
projected onto the tokens they cover.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# word characters stay together; every other non-space character is its own token
_TOKEN_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)

US_STATES = frozenset(
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY "
    "NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR GU VI AS MP".split()
)
CA_PROVINCES = frozenset("AB BC MB NB NL NS NT NU ON PE QC SK YT".split())
COUNTRY_CODES = frozenset("US USA CA CAN GB GBR UK IE IRL DE DEU FR FRA NL NLD LU LUX MX MEX AU AUS".split())
INTERMEDIARY_HINTS = frozenset("SQ TST PAYPAL PP SP PY GOOGLE APL APPLE FS IN ZTL CKE WPY BT EB".split())

_PHONE_RE = re.compile(r"(?<!\w)(?:\+?1[ .-]?)?(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]?\d{4}(?!\w)|(?<!\w)\d{10}(?!\w)")
_ZIP_RE = re.compile(r"(?<!\w)\d{5}(?:-\d{4})?(?!\w)")
_DOMAIN_RE = re.compile(r"(?i)(?<![\w.])(?:https?://)?(?:www\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|co|io|us|ca|biz|info|app|me|ly|tv)(?:/[\w./-]*)?")
_MONEY_RE = re.compile(r"[$€£]\s?\d[\d,.]*|\d[\d,.]*\s?(?:billion|million|bn|mn|m)\b", re.I)
_MONTHS = frozenset("january february march april may june july august september october november december "
                    "jan feb mar apr jun jul aug sep sept oct nov dec".split())


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    """Split into word runs and single punctuation characters, keeping character offsets."""
    return [Token(m.group(), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


def shape(word: str, short: bool = False) -> str:
    """``Amzn2`` -> ``XxxxD`` (``XxD`` when short: runs collapsed)."""
    out = []
    for ch in word:
        c = "X" if ch.isupper() else "x" if ch.islower() else "d" if ch.isdigit() else ch
        if not (short and out and out[-1] == c):
            out.append(c)
    return "".join(out)


def _pattern_marks(text: str, tokens: list[Token]) -> list[set[str]]:
    """Names of multi-token patterns (phone, zip, domain, money) covering each token."""
    marks: list[set[str]] = [set() for _ in tokens]
    for name, rx in (("phone", _PHONE_RE), ("zip", _ZIP_RE), ("domain", _DOMAIN_RE), ("money", _MONEY_RE)):
        for m in rx.finditer(text):
            for i, t in enumerate(tokens):
                if t.start >= m.start() and t.end <= m.end():
                    marks[i].add(name)
                    if t.start == m.start():
                        marks[i].add(name + ":B")
    return marks


def _word_features(tok: Token) -> dict[str, object]:
    w = tok.text
    low = w.lower()
    f: dict[str, object] = {
        "low": low,
        "shape": shape(w, short=True),
        "len": min(len(w), 12),
    }
    if w.isdigit():
        f["digits"] = min(len(w), 11)
    elif any(c.isdigit() for c in w):
        f["has_digit"] = True
    if not w[0].isalnum() and w[0] != "_":
        f["punct"] = w
    if w.isupper():
        f["upper"] = True
    elif w[:1].isupper():
        f["title"] = True
    if w in US_STATES or w in CA_PROVINCES:
        f["state_code"] = True
    if w.upper() in COUNTRY_CODES:
        f["country_code"] = True
    if w.upper() in INTERMEDIARY_HINTS:
        f["intermediary_hint"] = True
    if low in _MONTHS:
        f["month"] = True
    return f


def sentence_features(text: str, tokens: list[Token] | None = None, window: int = 2) -> list[dict[str, object]]:
    """One feature dict per token (pycrfsuite's ``ItemSequence`` input).

    pycrfsuite reads a string value as a categorical feature ``name:value`` and a number as
    the weight of feature ``name``, so integer facts (lengths, positions) are turned into
    strings: a token of length 12 is a category, not twelve times more of something.
    """
    tokens = tokenize(text) if tokens is None else tokens
    n = len(tokens)
    base = [_word_features(t) for t in tokens]
    marks = _pattern_marks(text, tokens)
    feats: list[dict[str, object]] = []
    for i, tok in enumerate(tokens):
        w = tok.text
        f: dict[str, object] = {"bias": 1.0}
        f.update(base[i])
        f.update({"p1": w[:1], "p2": w[:2], "p3": w[:3], "s1": w[-1:], "s2": w[-2:], "s3": w[-3:]})
        f["space_before"] = i == 0 or tokens[i - 1].end < tok.start
        f["space_after"] = i == n - 1 or tokens[i + 1].start > tok.end
        f["pos"] = "first" if i == 0 else "last" if i == n - 1 else f"q{min(3, int(4 * i / n))}"
        f["from_end"] = min(n - 1 - i, 5)
        f["char_pos"] = min(tok.start // 10, 6)
        for m in marks[i]:
            f["pat:" + m] = True
        for d in range(1, window + 1):
            for sign, j in (("-", i - d), ("+", i + d)):
                if 0 <= j < n:
                    nb = base[j]
                    f[f"{sign}{d}:low"] = nb["low"]
                    f[f"{sign}{d}:shape"] = nb["shape"]
                    for flag in ("state_code", "punct", "upper", "title", "digits"):
                        if flag in nb:
                            f[f"{sign}{d}:{flag}"] = nb[flag]
                    for m in marks[j]:
                        f[f"{sign}{d}:pat:{m}"] = True
                else:
                    f[f"{sign}{d}:edge"] = True
        if i > 0:
            f["bigram-"] = base[i - 1]["low"] + "|" + base[i]["low"]
        if i < n - 1:
            f["bigram+"] = base[i]["low"] + "|" + base[i + 1]["low"]
        feats.append({k: (str(v) if isinstance(v, int) and not isinstance(v, bool) else v) for k, v in f.items()})
    return feats
