"""Substring-constrained JSON decoding: which tokens may come next, checked byte by byte.

Why a hand-written automaton instead of a generic JSON grammar: our outputs have a fixed
shape (the task's keys, in order, compact separators) and every value must be a verbatim
piece of the input. Both constraints are cheap to check on bytes:

* the structure is a handful of literals (``{"KEY":"``, ``","NEXT":"``, ``"}``) with at most
  two choices at a time (multi-valued lists: another item or ``]``);
* a string value is a substring of the input's *JSON-escaped UTF-8 bytes* ``E``. A value
  starts at an escape-unit boundary of ``E`` and may only be closed by ``"`` at a unit
  boundary, so an escaped quote ``\\"`` or a half UTF-8 character can never end a value.
  The set of positions in ``E`` where the current value can end (``P``) is the whole state
  of the substring check.

Working on bytes (not decoded strings) makes byte-level BPE tokens that split a UTF-8
character, merged tokens such as ``",`` or ``"}`` and tokens that carry content plus a
closing quote (``."``) all fall out of the same rule: feed the token's bytes through
:meth:`TextGrammar.step`; if no byte is rejected, the token is allowed.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass, replace
from typing import Any

QUOTE = ord('"')


# ----------------------------------------------------------------------------- vocabulary
def _gpt2_byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes->printable-unicode table used by byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _is_byte_level(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    try:
        spec = json.loads(backend.to_str())
    except Exception:  # noqa: BLE001 - a tokenizer we cannot introspect: assume sentencepiece-style
        return False
    return "ByteLevel" in json.dumps(spec.get("decoder"))


class TokenVocab:
    """Byte string of every token plus the indexes the automaton walks. Built once per tokenizer.

    Special/added tokens get no bytes: constrained output never contains them.
    """

    _cache: "weakref.WeakKeyDictionary[Any, TokenVocab]" = weakref.WeakKeyDictionary()

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.size = len(tokenizer)
        added = set(tokenizer.get_added_vocab().values()) | set(tokenizer.all_special_ids)
        pieces = tokenizer.convert_ids_to_tokens(list(range(self.size)))
        byte_level = _is_byte_level(tokenizer)
        dec = _gpt2_byte_decoder()
        self.token_bytes: list[bytes | None] = []
        for tid, piece in enumerate(pieces):
            b: bytes | None = None
            if piece is not None and tid not in added:
                if byte_level:
                    if all(ch in dec for ch in piece):
                        b = bytes(dec[ch] for ch in piece)
                elif len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
                    b = bytes([int(piece[3:5], 16)])
                else:
                    b = piece.replace("\u2581", " ").encode("utf-8")
            self.token_bytes.append(b or None)
        self.by_bytes: dict[bytes, list[int]] = {}
        self.by_first: dict[int, list[int]] = {}
        self.quote_index: dict[bytes, list[int]] = {}  # bytes before the first '"' -> token ids
        self.max_len = 1
        self.max_quote_prefix = 0
        for tid, b in enumerate(self.token_bytes):
            if b is None:
                continue
            self.by_bytes.setdefault(b, []).append(tid)
            self.by_first.setdefault(b[0], []).append(tid)
            self.max_len = max(self.max_len, len(b))
            q = b.find(b'"')
            if q >= 0:
                self.quote_index.setdefault(b[:q], []).append(tid)
                self.max_quote_prefix = max(self.max_quote_prefix, q)
        self._forced: dict[bytes, list[int]] = {}

    @classmethod
    def for_tokenizer(cls, tokenizer: Any) -> "TokenVocab":
        try:
            vocab = cls._cache.get(tokenizer)
        except TypeError:
            vocab = None
        if vocab is None:
            vocab = cls(tokenizer)
            try:
                cls._cache[tokenizer] = vocab
            except TypeError:
                pass
        return vocab

    def forced_tokens(self, literal: bytes) -> list[int]:
        """Token ids spelling ``literal`` (the tokenizer's own split when it round-trips)."""
        hit = self._forced.get(literal)
        if hit is not None:
            return hit
        ids = self.tokenizer.encode(literal.decode("utf-8"), add_special_tokens=False)
        if b"".join(self.token_bytes[i] or b"\0" for i in ids) != literal:
            ids = []  # greedy longest match over the vocabulary
            i = 0
            while i < len(literal):
                for ln in range(min(self.max_len, len(literal) - i), 0, -1):
                    cand = self.by_bytes.get(literal[i:i + ln])
                    if cand:
                        ids.append(cand[0])
                        i += ln
                        break
                else:
                    raise ValueError(f"the tokenizer cannot spell the literal {literal!r}")
        self._forced[literal] = ids
        return ids


# ------------------------------------------------------------------------------- grammar
@dataclass(frozen=True)
class JsonShape:
    """The output's fixed skeleton: keys in order, single or multi-valued, separators."""

    keys: tuple[str, ...]
    multi: bool
    item_sep: str = ","
    key_sep: str = ":"

    def key_literal(self, i: int) -> bytes:
        """Everything from the previous value's end up to and including value ``i``'s opener."""
        head = "{" if i == 0 else self.item_sep
        opener = "[" if self.multi else '"'
        return (head + json.dumps(self.keys[i], ensure_ascii=False) + self.key_sep + opener).encode("utf-8")


@dataclass(frozen=True)
class State:
    """Where one output is in the grammar. Hashable, so allowed-token sets can be cached.

    mode ``lit``: bytes ``lit`` are forced, then ``then`` (``str`` | ``choice0`` | ``done``);
    ``str``: inside a value, ``P`` = end positions in E of the content so far;
    ``choice``: in a list, next is an item or ``]`` (``first``: no item yet);
    ``done``: the closing brace was written.
    """

    mode: str
    key: int
    lit: bytes = b""
    then: str = ""
    first: bool = True
    P: tuple[int, ...] = ()
    content: bytes = b""
    items: tuple[str, ...] = ()


class TextGrammar:
    """The automaton for one input text: structure + substring check + cached allowed sets."""

    def __init__(self, text: str, shape: JsonShape, vocab: TokenVocab) -> None:
        self.text = text
        self.shape = shape
        self.vocab = vocab
        units = [json.dumps(ch, ensure_ascii=False)[1:-1].encode("utf-8", "surrogatepass") for ch in text]
        self.E = b"".join(units)
        self.boundary = bytearray(len(self.E) + 1)
        pos = 0
        self.boundary[0] = 1
        for u in units:
            pos += len(u)
            self.boundary[pos] = 1
        self.starts = tuple(i for i in range(len(self.E) + 1) if self.boundary[i])
        self._ext: dict[int, list[int]] = {}
        self._close: dict[int, list[int]] = {}
        self._allowed: dict[State, list[int]] = {}
        self._live: dict[tuple, bool] = {}

    # -------------------------------------------------------------- transitions
    def initial(self) -> State:
        return State("lit", 0, lit=self.shape.key_literal(0), then="choice0" if self.shape.multi else "str")

    def _enter(self, then: str, key: int, items: tuple[str, ...] = ()) -> State:
        if then == "str":
            return State("str", key, P=self.starts, items=items)
        if then == "choice0":
            return State("choice", key, first=True)
        return State("done", key)

    def _after_value(self, key: int) -> State:
        if key + 1 < len(self.shape.keys):
            return State("lit", key + 1, lit=self.shape.key_literal(key + 1),
                         then="choice0" if self.shape.multi else "str")
        return State("lit", key, lit=b"}", then="done")

    def _at_boundary(self, s: State) -> bool:
        return any(self.boundary[p] for p in s.P)

    def value_of(self, content: bytes) -> str:
        return json.loads(b'"' + content + b'"')

    def step(self, s: State, c: int) -> State | None:
        """Feed one output byte; ``None`` when the byte breaks the grammar or the substring rule."""
        mode = s.mode
        if mode == "str":
            if c == QUOTE and self._at_boundary(s):
                if not self.shape.multi:
                    return self._after_value(s.key)
                value = self.value_of(s.content)
                if not value.strip() or value in s.items:
                    return None  # lists hold distinct, non-blank strings
                return State("choice", s.key, first=False, items=s.items + (value,))
            E = self.E
            n = len(E)
            P = tuple(p + 1 for p in s.P if p < n and E[p] == c)
            if not P:
                return None
            return replace(s, P=P, content=s.content + bytes((c,)))
        if mode == "lit":
            if c != s.lit[0]:
                return None
            if len(s.lit) > 1:
                return replace(s, lit=s.lit[1:])
            return self._enter(s.then, s.key, s.items)
        if mode == "choice":
            if c == QUOTE and s.first:
                return self._enter("str", s.key, s.items)
            if c == ord("]"):
                return self._after_value(s.key)
            sep = self.shape.item_sep.encode()
            if not s.first and c == sep[0]:
                return State("lit", s.key, lit=sep[1:] + b'"', then="str", items=s.items)
            return None
        return None  # done accepts nothing

    def feed(self, s: State, data: bytes) -> State | None:
        for c in data:
            s = self.step(s, c)  # type: ignore[assignment]
            if s is None:
                return None
        return s

    def try_token(self, s: State, tid: int) -> State | None:
        """The state after token ``tid``, or ``None`` if it breaks the rules or leads to a dead end."""
        b = self.vocab.token_bytes[tid] if 0 <= tid < self.vocab.size else None
        if b is None:
            return None
        s2 = self.feed(s, b)
        if s2 is None or (self.shape.multi and not self.live(s2)):
            return None
        return s2

    def live(self, s: State) -> bool:
        """Can the output still be finished from ``s``?

        Only lists can get stuck (an item may not repeat an earlier one or be blank, so a
        text whose every remaining substring is taken has no next item); single values can
        always be closed at the next unit boundary.
        """
        if s.mode == "lit" and s.then == "str":
            s = self._enter("str", s.key, s.items)
        if s.mode != "str":
            return True
        key = (s.P, s.content, s.items)
        hit = self._live.get(key)
        if hit is not None:
            return hit
        self._live[key] = False  # cycle guard (content only grows, so there are no cycles)
        ok = False
        if self._at_boundary(s) and s.content:
            value = self.value_of(s.content)
            ok = bool(value.strip()) and value not in s.items
        if not ok:
            for c in sorted({self.E[p] for p in s.P if p < len(self.E)}):
                nxt = self.step(s, c)
                if nxt is not None and nxt.mode == "str" and self.live(nxt):
                    ok = True
                    break
        self._live[key] = ok
        return ok

    # ---------------------------------------------------------- allowed tokens
    def _ext_at(self, p: int) -> list[int]:
        """Tokens whose bytes equal E[p:p+l] for some l (pure value content, no closing quote)."""
        hit = self._ext.get(p)
        if hit is None:
            hit = []
            E, by = self.E, self.vocab.by_bytes
            for ln in range(1, min(self.vocab.max_len, len(E) - p) + 1):
                ids = by.get(E[p:p + ln])
                if ids:
                    hit.extend(ids)
            self._ext[p] = hit
        return hit

    def _close_at(self, p: int) -> list[int]:
        """Tokens of the form E[p:q] + '"' + rest with q a unit boundary (rest checked later)."""
        hit = self._close.get(p)
        if hit is None:
            hit = []
            E, qi = self.E, self.vocab.quote_index
            for ln in range(0, min(self.vocab.max_quote_prefix, len(E) - p) + 1):
                if self.boundary[p + ln]:
                    ids = qi.get(E[p:p + ln])
                    if ids:
                        hit.extend(ids)
            self._close[p] = hit
        return hit

    def allowed(self, s: State) -> list[int]:
        """Every token id that keeps the output valid from state ``s`` (cached per state)."""
        hit = self._allowed.get(s)
        if hit is not None:
            return hit
        out: set[int] = set()
        if s.mode == "str":
            closes: set[int] = set()
            content: set[int] = set()
            for p in s.P:
                content.update(self._ext_at(p))
                closes.update(self._close_at(p))
            if self.shape.multi:  # a longer item can still be a dead end
                content = {t for t in content if self.try_token(s, t) is not None}
            out.update(content)
            out.update(t for t in closes if self.try_token(s, t) is not None)
        elif s.mode in ("lit", "choice"):
            firsts = [s.lit[0]] if s.mode == "lit" else (
                [QUOTE, ord("]")] if s.first else [ord(self.shape.item_sep[0]), ord("]")])
            for f in firsts:
                out.update(t for t in self.vocab.by_first.get(f, ()) if self.try_token(s, t) is not None)
        hit = sorted(out)
        self._allowed[s] = hit
        return hit

    # ---------------------------------------------------------------- finishing
    def completion(self, s: State) -> tuple[int, bytes]:
        """How to end validly from ``s`` when the token budget runs out.

        Returns ``(n_bytes_to_drop, bytes_to_append)``: an unfinished value is cut back to
        its last escape-unit boundary (still a substring), closed, and every remaining key
        gets its empty value.
        """
        drop = 0
        tail = b""
        if s.mode == "done":
            return 0, b""
        key = s.key
        if s.mode == "str":
            content = s.content
            ends = [p for p in s.P]
            while content and not any(self.boundary[p - drop] for p in ends):
                drop += 1
                content = content[:-1]
            tail += b'"' + (b"]" if self.shape.multi else b"")
        elif s.mode == "choice":
            tail += b"]"
        elif s.mode == "lit":
            # finish the literal, then close whatever it opened
            tail += s.lit
            if s.then == "str":
                tail += b'"' + (b"]" if self.shape.multi else b"")
            elif s.then == "choice0":
                tail += b"]"
            elif s.then == "done":
                return drop, tail
        for k in range(key + 1, len(self.shape.keys)):
            tail += self.shape.key_literal(k) + (b"]" if self.shape.multi else b'"')
        return drop, tail + b"}"


def build_output(raw: bytes) -> dict[str, Any]:
    """Parse bytes the grammar produced (always valid JSON by construction)."""
    return json.loads(raw.decode("utf-8", "surrogatepass"))


__all__ = ["TokenVocab", "JsonShape", "State", "TextGrammar", "build_output"]
