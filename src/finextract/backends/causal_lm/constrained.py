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

import numpy as np
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


# --------------------------------------------------------- position automaton (device path)
class SkeletonTables:
    """Text-independent half of the position automaton for single-valued shapes.

    Why a second formulation of the same language: :class:`TextGrammar` answers "which
    tokens may follow *this* state" in Python, once per state, which costs tens of
    microseconds per sequence per step. For the batched engine we instead enumerate, once
    per text, every *transition* ``(token, from-position, to-position)`` of a small
    position automaton, so that each decode step is a few gathers on the device for the
    whole batch (see :class:`TextTransitions`). The accepted language is identical
    (tested against :class:`TextGrammar`).

    Positions: literal positions ``(i, j)`` ("the next byte is ``L_i[j]``", with
    ``L_0 = {"K0":"``, ``L_i = ","Ki":"`` and ``L_K = "}``: the quote that closes value
    ``i-1`` is the first byte of ``L_i``), ``VS`` (start of a value: any escape-unit
    boundary of ``E``), ``DONE``, and content positions ``p`` in ``0..len(E)`` (the value so
    far ends at ``E[p]``). Content positions are shared by all keys; the key a row is in is
    a separate per-row number, so transitions that depend on it carry a ``tag`` (the key
    they need) and ``nk`` (the key after them).

    Everything here depends only on the shape and the vocabulary and is built once.
    """

    _cache: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()

    def __init__(self, shape: JsonShape, vocab: TokenVocab) -> None:
        if shape.multi:
            raise ValueError("the position automaton covers single-valued shapes only")
        self.shape, self.vocab = shape, vocab
        K = self.K = len(shape.keys)
        self.lits = [shape.key_literal(0)] + [b'"' + shape.key_literal(i) for i in range(1, K)] + [b'"}']
        self.lit_base: list[int] = []
        n = 0
        for lit in self.lits:
            self.lit_base.append(n)
            n += len(lit)
        self.n_lit = n
        self.VS, self.DONE, self.C0 = n, n + 1, n + 2  # content position p is C0 + p
        self.initial = 0
        # transitions out of literal positions: (tid, from, to, nk); spills into a value's content
        lit_t: list[tuple[int, int, int, int]] = []
        self.spills: list[tuple[int, int, int, bytes]] = []  # (tid, from, key, content bytes)
        for i, lit in enumerate(self.lits):
            for j in range(0 if i == 0 else 1, len(lit)):  # (i>=1, 0) is entered only through a value
                frm = self.lit_base[i] + j
                for tid in vocab.by_first.get(lit[j], ()):
                    out = self.run(("lit", i, j), vocab.token_bytes[tid])  # type: ignore[arg-type]
                    if out is None:
                        continue
                    if out[0] == "spill":
                        self.spills.append((tid, frm, out[1], out[2]))
                    else:
                        lit_t.append((tid, frm, out[1], out[2]))
        self.lit_transitions = lit_t
        # closing tokens: content part u, then '"' at a unit boundary, then skeleton bytes
        self.close_index: dict[bytes, list[tuple[int, list[tuple[int, tuple]]]]] = {}
        self.max_close_prefix = 0
        for tid, b in enumerate(vocab.token_bytes):
            if b is None or QUOTE not in b:
                continue
            for q in (k for k, c in enumerate(b) if c == QUOTE):
                outs = []
                for key in range(K):
                    out = self.run(("lit", key + 1, 0), b[q:])
                    if out is not None:
                        outs.append((key, out))
                if outs:
                    self.close_index.setdefault(b[:q], []).append((tid, outs))
                    self.max_close_prefix = max(self.max_close_prefix, q)
        self.close_prefixes = {u[:k] for u in self.close_index for k in range(len(u) + 1)}
        # text-independent outcomes as arrays (tid, to, tag, nk); spills stay per text
        self.close_pos: dict[bytes, np.ndarray] = {}
        self.close_spill: dict[bytes, list[tuple[int, int, tuple]]] = {}
        for u, entries in self.close_index.items():
            pos = [(tid, out[1], key, out[2]) for tid, outs in entries for key, out in outs if out[0] == "pos"]
            self.close_pos[u] = np.array(pos, dtype=np.int64).reshape(-1, 4)
            self.close_spill[u] = [(tid, key, out) for tid, outs in entries for key, out in outs if out[0] != "pos"]
        lt = np.array(self.lit_transitions, dtype=np.int64).reshape(-1, 4)
        self.lit_rows = np.stack([lt[:, 0], lt[:, 1], lt[:, 2], np.full(len(lt), -1), lt[:, 3]], 1)
        self.content_prefixes = {b[:k] for b in vocab.by_bytes for k in range(1, len(b) + 1)}

    @classmethod
    def get(cls, shape: JsonShape, vocab: TokenVocab) -> "SkeletonTables":
        per_vocab = cls._cache.setdefault(vocab, {})
        hit = per_vocab.get(shape)
        if hit is None:
            hit = per_vocab[shape] = cls(shape, vocab)
        return hit

    def _after_lit(self, i: int, j: int) -> tuple:
        if j < len(self.lits[i]):
            return ("lit", i, j)
        return ("vs", i) if i < self.K else ("done",)

    def position(self, state: tuple) -> tuple[int, int]:
        """(global position, key) of a symbolic skeleton state."""
        if state[0] == "lit":
            return self.lit_base[state[1]] + state[2], state[1]
        if state[0] == "vs":
            return self.VS, state[1]
        return self.DONE, self.K

    def run(self, state: tuple, b: bytes) -> tuple | None:
        """Feed ``b`` from a skeleton state without knowing the text.

        Returns ``("pos", position, key)``, ``("spill", key, rest)`` when the bytes go on
        into a value's content (the text decides), or ``None`` when they break the skeleton.
        A quote at a value's start always closes it: in ``E`` a quote is escaped (``\\"``), so
        no unit starts with one.
        """
        for idx, c in enumerate(b):
            kind = state[0]
            if kind == "lit":
                _, i, j = state
                if self.lits[i][j] != c:
                    return None
                state = self._after_lit(i, j + 1)
            elif kind == "vs":
                if c != QUOTE:
                    return ("spill", state[1], b[idx:])
                state = self._after_lit(state[1] + 1, 1)
            else:
                return None
        return ("pos", *self.position(state))


class TextTransitions:
    """Every transition of the position automaton for one text, as flat int arrays.

    Row ``r`` means: from position ``frm[r]`` (and, when ``tag[r] >= 0``, only while the row
    is in key ``tag[r]``) token ``tok[r]`` leads to position ``to[r]`` and key ``nk[r]``
    (``-1``: unchanged). A state is a set of positions; a token is allowed iff one of its
    rows starts in the set. Built once per text in ``O(len(E) * depth)`` dict lookups; the
    engine then masks and steps a whole batch with a handful of tensor ops per step.
    """

    def __init__(self, text: str, tables: SkeletonTables) -> None:
        self.tables = tables
        g = TextGrammar(text, tables.shape, tables.vocab)
        E, bnd = g.E, g.boundary
        n = len(E)
        self.n_positions = tables.C0 + n + 1
        C0, VS = tables.C0, tables.VS
        by_bytes = tables.vocab.by_bytes
        cpre, clpre, cpos = tables.content_prefixes, tables.close_prefixes, tables.close_pos
        c_tid: list[int] = []
        c_p: list[int] = []
        c_len: list[int] = []
        close_at: dict[bytes, list[int]] = {}  # content part u -> start positions where u closes
        for p in range(n + 1):
            for ln in range(1, n - p + 1):  # pure content: token bytes == E[p:p+l]
                piece = E[p:p + ln]
                if piece not in cpre:
                    break
                ids = by_bytes.get(piece)
                if ids:
                    for tid in ids:
                        c_tid.append(tid)
                        c_p.append(p)
                        c_len.append(ln)
            for ln in range(0, n - p + 1):  # closing: E[p:p+l] + '"' + skeleton, p+l a unit boundary
                u = E[p:p + ln]
                if u not in clpre:
                    break
                if bnd[p + ln] and u in cpos:
                    close_at.setdefault(u, []).append(p)
        bmask = np.frombuffer(bytes(bnd), dtype=np.uint8).astype(bool)
        ct, cp, cl = (np.array(x, dtype=np.int64) for x in (c_tid, c_p, c_len))
        at_b = bmask[cp] if len(cp) else np.zeros(0, dtype=bool)
        blocks = [np.stack([ct, C0 + cp, C0 + cp + cl, np.full(len(ct), -1), np.full(len(ct), -1)], 1),
                  np.stack([ct[at_b], np.full(int(at_b.sum()), VS), C0 + (cp + cl)[at_b],
                            np.full(int(at_b.sum()), -1), np.full(int(at_b.sum()), -1)], 1),
                  tables.lit_rows]
        for u, starts in close_at.items():
            arr = cpos[u]  # (tid, to, tag, nk)
            if len(arr):
                st = np.array(starts, dtype=np.int64)
                k = len(arr)
                rep = np.tile(arr, (len(st), 1))
                blocks.append(np.stack([rep[:, 0], np.repeat(C0 + st, k), rep[:, 1], rep[:, 2], rep[:, 3]], 1))
                if bmask[st].any():  # the same closings from a value's start (deduplicated: u fixes them)
                    blocks.append(np.stack([arr[:, 0], np.full(k, VS), arr[:, 1], arr[:, 2], arr[:, 3]], 1))
            for tid, key, out in tables.close_spill.get(u, ()):
                for to, nk in self._resolve(out, g):
                    for p in starts:
                        blocks.append(np.array([[tid, C0 + p, to, key, nk]], dtype=np.int64))
                    if any(bnd[p] for p in starts):
                        blocks.append(np.array([[tid, VS, to, key, nk]], dtype=np.int64))
        memo: dict[tuple[int, bytes], list[tuple[int, int]]] = {}
        for tid, frm, key, rest in tables.spills:  # literal, then value content: the text decides
            hit = memo.get((key, rest))
            if hit is None:
                hit = memo[(key, rest)] = self._resolve(("spill", key, rest), g)
            for to, nk in hit:
                blocks.append(np.array([[tid, frm, to, -1, nk]], dtype=np.int64))
        self._set(np.concatenate(blocks, 0).astype(np.int32))

    def _set(self, arr: np.ndarray) -> None:
        self.tok, self.frm, self.to, self.tag, self.nk = (np.ascontiguousarray(arr[:, k]) for k in range(5))

    def arrays(self) -> np.ndarray:
        """The transitions as one ``[R, 5]`` int32 array (tok, frm, to, tag, nk)."""
        return np.stack([self.tok, self.frm, self.to, self.tag, self.nk], 1)

    @classmethod
    def from_arrays(cls, tables: SkeletonTables, n_positions: int, arr: np.ndarray) -> "TextTransitions":
        self = cls.__new__(cls)
        self.tables, self.n_positions = tables, n_positions
        self._set(arr)
        return self

    def _resolve(self, out: tuple, g: TextGrammar) -> list[tuple[int, int]]:
        """(to, nk) pairs of a skeleton outcome; spills are walked through this text's grammar."""
        if out[0] == "pos":
            return [(out[1], out[2])]
        _, key, rest = out
        t = self.tables
        if QUOTE not in rest:  # content only: every occurrence that starts on a unit boundary
            hits, i = [], g.E.find(rest)
            while i >= 0:
                if g.boundary[i]:
                    hits.append((t.C0 + i + len(rest), key))
                i = g.E.find(rest, i + 1)
            return hits
        state = g._enter("str", key)
        for idx, c in enumerate(rest):
            nxt = g.step(state, c)
            if nxt is None:
                return []
            if nxt.mode != "str":  # closed: the rest is skeleton again
                sym = ("lit", key + 1, 1) if key + 1 < t.K else ("lit", t.K, 1)
                res = t.run(sym, rest[idx + 1:])
                return self._resolve(res, g) if res is not None else []
            state = nxt
        return [(t.C0 + p, key) for p in state.P]

    # ------------------------------------------------ reference walk (tests, host completion)
    def allowed(self, S: set[int], key: int) -> list[int]:
        """Token ids allowed from positions ``S`` in key ``key`` (what the device step computes)."""
        on = np.isin(self.frm, list(S)) & ((self.tag < 0) | (self.tag == key))
        return sorted(set(self.tok[on].tolist()))

    def step(self, S: set[int], key: int, tid: int) -> tuple[set[int], int] | None:
        """Positions and key after token ``tid``; ``None`` if it is not allowed."""
        on = np.isin(self.frm, list(S)) & ((self.tag < 0) | (self.tag == key)) & (self.tok == tid)
        if not on.any():
            return None
        nk = int(self.nk[on][0])
        return set(self.to[on].tolist()), (nk if nk >= 0 else key)


def build_output(raw: bytes) -> dict[str, Any]:
    """Parse bytes the grammar produced (always valid JSON by construction)."""
    return json.loads(raw.decode("utf-8", "surrogatepass"))


__all__ = ["TokenVocab", "JsonShape", "State", "TextGrammar", "SkeletonTables", "TextTransitions", "build_output"]
