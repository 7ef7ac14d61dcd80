"""BIO tags over sub-word tokens: gold character spans -> labels, and logits -> exact substrings.

Why through ``offset_mapping``: the MiniLM tokenizer lower-cases and strips accents, so the
token strings are *not* pieces of the input. The fast tokenizer's offsets still point into
the original string, so every decoded value is ``text[start:end]`` of the input itself:
original case, original punctuation and spacing, never a character the input lacks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


# Capitalisation ids moved to ``features`` (the one featurizer); re-exported for old imports.
from finextract.backends.encoder.features import N_CASE_IDS, case_ids  # noqa: E402,F401


# ------------------------------------------------------------------ task-shaped decoding
#
# Why by hand: no library decodes "each single-valued key is one span or none" with
# word-boundary snapping and a calibrated confidence. The per-token argmax above has two
# failure modes on real descriptors: a short confident fragment (a cut word's tail, the
# digits of a leading code) wins on *mean* probability, and runs may start or end inside a
# word. The decoders below score whole spans by *summed* log-probability against the best
# labeling without that key (the null option), so a span must earn its length, and every
# span edge that falls between two letters/digits of one word pays ``inword_penalty``.

DECODERS = ("bio", "pointer", "argmax")


@dataclass
class DecodeOptions:
    """How logits become values.

    ``method``: ``bio`` (constrained BIO: best span per single-valued key with a null
    option, Viterbi for multi-valued keys), ``pointer`` (per-key start/end heads with a
    null option; single-valued tasks only, needs a model trained with ``model.pointer_head``),
    ``argmax`` (the old per-token argmax runs, kept for comparison).
    ``inword_penalty``: log-odds a span edge inside a word must beat (``SQ*NAME`` splits at
    ``*`` for free; ``FRANCISCOCA`` -> ``FRANCISCO`` + ``CA`` only when the model is sure).
    ``temperature``: divides span scores before they become confidences (fitted by
    :mod:`finextract.backends.encoder.calibration`).
    """

    method: str = "bio"
    inword_penalty: float = 1.0
    glued_fields: bool = False   # move a name/city edge inside a glued word onto the city's first letter (.glued)
    temperature: float | dict[str, float] = 1.0  # one for all keys, or one per key
    max_span_tokens: int = 48

    def temperature_of(self, key: str) -> float:
        t = self.temperature
        return float(t.get(key, 1.0)) if isinstance(t, dict) else float(t)


def inword_boundaries(text: str, offsets: Sequence[tuple[int, int]]) -> np.ndarray:
    """``b[t]`` is True when the edge *before* token ``t`` lies inside a word.

    Inside a word = no space between the two tokens and the characters on both sides of
    the edge are letters or digits (``FRANCISCO|CA``, ``79|4``). Edges at spaces and at
    punctuation (``SQ*|NAME``, ``US|*2Y2L``, ``#|1234``) are free. The edge after the last
    real token is free (``b`` has one extra entry at the end).
    """
    return np.array(inword_flags(text, offsets), dtype=bool)


def inword_flags(text: str, offsets: Iterable[tuple[int, int]]) -> list[bool]:
    """:func:`inword_boundaries` as a list (one flag a token, then the free edge after the last): the
    rule itself, also used by the batched decoder, which gathers every text's flags into one array."""
    flags: list[bool] = []
    prev_end, n = None, len(text)
    for s, e in offsets:
        if s >= e:   # a special or padding token: its edge is free, and it does not end a word
            flags.append(False)
            continue
        flags.append(s == prev_end and 0 < s < n and text[s - 1].isalnum() and text[s].isalnum())
        prev_end = e
    flags.append(False)
    return flags


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - x.max(axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis, keepdims=True))


@dataclass
class Candidate:
    key: str
    start: int  # first token (index into the real-token list)
    end: int  # last token, inclusive
    score: float  # log-odds against the key's null option


def _edge_inside_word(inword: np.ndarray, n: int) -> np.ndarray:
    """``[1, n, n]``: 1.0 where span ``u..v`` starts or ends inside a word. A span pays the
    in-word penalty once, however many of its two edges are inside words (the rule the
    penalty was tuned with)."""
    return np.logical_or(inword[:n][None, :, None], inword[1:n + 1][None, None, :]).astype(float)


def _span_tables(first: np.ndarray, inner: np.ndarray, inword: np.ndarray, penalty: float, max_len: int
                 ) -> np.ndarray:
    """``S[k, u, v]`` = first[k, u] + sum(inner[k, u+1..v]) - in-word edge penalties, for u <= v < u + max_len.

    ``first``/``inner``: ``[K, n]`` per-key gains of opening / continuing a span at a token;
    ``inword``: ``[n + 1]`` (the edge before each token, and after the last).
    """
    K, n = first.shape
    c = np.concatenate([np.zeros((K, 1)), np.cumsum(inner, 1)], 1)  # c[:, v+1] - c[:, u+1] = sum inner[u+1..v]
    table = first[:, :, None] + (c[:, None, 1:] - c[:, 1:, None])
    table -= penalty * _edge_inside_word(inword, n)
    u = np.arange(n)[:, None]
    v = np.arange(n)[None, :]
    table[:, (v < u) | (v - u >= max_len)] = -np.inf
    return table


def _candidates(tables: np.ndarray, task: Task, opts: DecodeOptions, k: int = 4
                ) -> tuple[dict[str, list[Candidate]], dict[str, float]]:
    """Top-``k`` spans per key and each key's log partition (null option = score 0)."""
    K, n, _ = tables.shape
    flat = tables.reshape(K, -1)
    k = min(k, flat.shape[1])
    top = np.argpartition(-flat, k - 1, axis=1)[:, :k] if flat.shape[1] > k else np.tile(np.arange(flat.shape[1]), (K, 1))
    scaled = flat / np.array([opts.temperature_of(key) for key in task.key_names])[:, None]
    m = np.maximum(np.max(scaled, 1), 0.0)
    logz = m + np.log(np.exp(-m) + np.exp(scaled - m[:, None]).sum(1))
    cands: dict[str, list[Candidate]] = {}
    for ki, key in enumerate(task.key_names):
        cands[key] = [Candidate(key, int(j // n), int(j % n), float(flat[ki, j]))
                      for j in top[ki] if np.isfinite(flat[ki, j])]
    return cands, {key: float(logz[ki]) for ki, key in enumerate(task.key_names)}


def _resolve(cands: dict[str, list[Candidate]], logz: dict[str, float], opts: DecodeOptions
             ) -> tuple[dict[str, Candidate], dict[str, float]]:
    """One non-overlapping span per key, strongest first; confidence = posterior of the choice.

    A key whose every positive candidate overlaps a stronger key's span stays empty.
    """
    picked = choose_spans((c.key, c.start, c.end, c.score) for cs in cands.values() for c in cs if c.score > 0)
    chosen = {key: Candidate(key, u, v, sc) for key, u, v, sc in picked}
    conf = {}
    for key, z in logz.items():
        num = chosen[key].score / opts.temperature_of(key) if key in chosen else 0.0  # null option scores 0
        conf[key] = float(np.exp(num - z))
    return chosen, conf


def choose_spans(pool: Iterable[tuple[Any, int, int, float]]) -> list[tuple[Any, int, int, float]]:
    """``(key, start, end, score)`` candidates -> the chosen ones, in the order chosen: strongest first
    (a stable sort, so equal scores keep the pool's order), one per key, none overlapping a span chosen
    before it. The rule of :func:`_resolve`, on plain tuples so the batched decoder can call it per text."""
    chosen: list[tuple[Any, int, int, float]] = []
    used: set[Any] = set()
    for key, u, v, sc in sorted(pool, key=lambda c: -c[3]):
        if key in used or any(u <= b and a <= v for _, a, b, _ in chosen):
            continue
        chosen.append((key, u, v, sc))
        used.add(key)
    return chosen


def _bio_index(task: Task) -> tuple[np.ndarray, np.ndarray]:
    names = label_names(task)
    b = np.array([names.index(f"B-{k}") for k in task.key_names])
    return b, b + 1


def _single_bio(logp: np.ndarray, inword: np.ndarray, task: Task, opts: DecodeOptions):
    """Best span per key against its null option, from BIO log-probabilities of real tokens.

    The null option of key k labels every token with its best label other than B-k/I-k;
    a span's score is its summed log-probability minus that of the null labeling.
    """
    b, i = _bio_index(task)
    K = len(b)
    masked = np.broadcast_to(logp, (K, *logp.shape)).copy()  # [K, n, L]
    masked[np.arange(K), :, b] = -np.inf
    masked[np.arange(K), :, i] = -np.inf
    base = masked.max(2)  # [K, n]
    tables = _span_tables(logp[:, b].T - base, logp[:, i].T - base, inword, opts.inword_penalty, opts.max_span_tokens)
    cands, logz = _candidates(tables, task, opts)
    return _resolve(cands, logz, opts)


def _single_pointer(start: np.ndarray, end: np.ndarray, null_start: np.ndarray, null_end: np.ndarray,
                    inword: np.ndarray, task: Task, opts: DecodeOptions):
    """Per key: log P(start=u) + log P(end=v) against the null option (both pointers on [CLS])."""
    ls = log_softmax(np.concatenate([null_start[None, :], start], 0), axis=0).T  # [K, n + 1]
    le = log_softmax(np.concatenate([null_end[None, :], end], 0), axis=0).T
    null = ls[:, :1] + le[:, :1]
    n = start.shape[0]
    # a pointer span scores only its two ends: "first" = start + end - null at u == v, no inner sums
    tables = (ls[:, 1:, None] + le[:, None, 1:] - null[:, :, None]
              - opts.inword_penalty * _edge_inside_word(inword, n))
    u = np.arange(n)[:, None]
    v = np.arange(n)[None, :]
    tables[:, (v < u) | (v - u >= opts.max_span_tokens)] = -np.inf
    cands, logz = _candidates(tables, task, opts)
    return _resolve(cands, logz, opts)


def viterbi_path(logp: np.ndarray, inword: np.ndarray, task: Task, penalty: float) -> list[int]:
    """Best label path under BIO constraints: ``I-k`` only after ``B-k``/``I-k``, never first.

    Score = summed log-probability minus ``penalty`` for every edge inside a word where the
    path opens or closes a span (``inword`` as from :func:`inword_boundaries`).
    """
    names = label_names(task)
    n, L = logp.shape
    tag = [nm.partition("-")[0] for nm in names]
    key_of = [nm.partition("-")[2] for nm in names]
    allowed = np.ones((L, L), dtype=bool)  # allowed[prev, cur]
    for c in range(L):
        if tag[c] == "I":
            allowed[:, c] = False
            allowed[names.index(f"B-{key_of[c]}"), c] = True
            allowed[c, c] = True
    changes = np.ones((L, L), dtype=bool)  # an edge changes span structure unless O->O or a continuation
    changes[0, 0] = False
    for c in range(L):
        if tag[c] == "I":
            changes[:, c] = ~allowed[:, c]
    trans = np.where(allowed, 0.0, -np.inf)
    score = np.where([t != "I" for t in tag], logp[0], -np.inf)
    back = np.zeros((n, L), dtype=int)
    for t in range(1, n):
        cand = score[:, None] + trans - penalty * inword[t] * changes
        back[t] = cand.argmax(0)
        score = cand.max(0) + logp[t]
    path = [int(score.argmax())]
    for t in range(n - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return path[::-1]


def _multi_viterbi(logp: np.ndarray, inword: np.ndarray, task: Task, opts: DecodeOptions) -> list[Candidate]:
    """Spans of the constrained Viterbi path, each scored by log-odds against its key's null labeling."""
    names = label_names(task)
    path = viterbi_path(logp, inword, task, opts.inword_penalty)
    n = len(path)
    spans: list[Candidate] = []
    t = 0
    while t < n:
        tag, _, key = names[path[t]].partition("-")
        if tag == "B":
            u = t
            while t + 1 < n and names[path[t + 1]] == f"I-{key}":
                t += 1
            b, i = names.index(f"B-{key}"), names.index(f"I-{key}")
            base = np.delete(logp[u:t + 1], [b, i], axis=1).max(1)
            s = logp[u, b] - base[0] + float((logp[u + 1:t + 1, i] - base[1:]).sum())
            spans.append(Candidate(key, u, t, float(s)))
        t += 1
    return spans


def decode_with_confidence(text: str, offsets: Sequence[tuple[int, int]], logits: np.ndarray, task: Task,
                           opts: DecodeOptions | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Raw logits of one text -> (task-shaped values, confidence per key).

    ``logits``: ``[T, n_labels]`` BIO logits, followed by ``2 * n_keys`` pointer logits
    (start, end per key) when the model has a pointer head. Confidence of a single-valued
    key is the posterior of the decoded choice (a span, or "empty"); of a multi-valued key a
    list with one probability per value.
    """
    opts = opts or DecodeOptions()
    n_labels = len(label_names(task))
    real = [t for t, (s, e) in enumerate(offsets) if s < e]
    real_offsets = [offsets[t] for t in real]
    if opts.method == "argmax":
        probs = softmax(logits[:, :n_labels])
        out = decode(text, offsets, probs, task)
        conf: dict[str, Any] = {k: ([1.0] * len(v) if task.multi_valued else 1.0) for k, v in out.items()}
        return out, conf
    inword = inword_boundaries(text, real_offsets)
    out = task.empty_output()
    if not real:
        return out, {k: ([] if task.multi_valued else 1.0) for k in task.key_names}
    if task.multi_valued:
        if opts.method == "pointer":
            raise ValueError("decoder 'pointer' is for single-valued tasks; multi-valued keys use 'bio'")
        logp = log_softmax(logits[real, :n_labels])
        conf = {k: [] for k in task.key_names}
        for c in _multi_viterbi(logp, inword, task, opts):
            value = text[real_offsets[c.start][0]:real_offsets[c.end][1]]
            if value.strip() and value not in out[c.key]:
                out[c.key].append(value)
                conf[c.key].append(float(1.0 / (1.0 + np.exp(-c.score / opts.temperature_of(c.key)))))
        return out, conf
    if opts.method == "pointer":
        k = len(task.key_names)
        if logits.shape[-1] < n_labels + 2 * k:
            raise ValueError("decoder 'pointer' needs a model trained with model.pointer_head: true")
        ptr = logits[:, n_labels:n_labels + 2 * k]
        cls = 0  # the [CLS]/<s> position holds the null option
        chosen, conf = _single_pointer(ptr[real, :k], ptr[real, k:], ptr[cls, :k], ptr[cls, k:], inword, task, opts)
    elif opts.method == "bio":
        chosen, conf = _single_bio(log_softmax(logits[real, :n_labels]), inword, task, opts)
    else:
        raise ValueError(f"decoder must be one of {DECODERS}, got {opts.method!r}")
    spans = {key: (real_offsets[c.start][0], real_offsets[c.end][1]) for key, c in chosen.items()}
    return spans_to_values(text, spans, task, opts), conf


def spans_to_values(text: str, spans: dict[str, tuple[int, int]], task: Task, opts: DecodeOptions
                    ) -> dict[str, Any]:
    """Character spans of the chosen values -> the task's output (glued edges refined when asked, then
    each key's ``strip`` separators dropped: a word-snapped span keeps a glued ``-`` or ``"`` otherwise)."""
    if opts.glued_fields:
        from finextract.backends.encoder.glued import refine_glued_edges

        spans = refine_glued_edges(text, spans)
    out = task.empty_output()
    for key, (a, b) in spans.items():
        a, b = task.strip_span(key, text, a, b)
        out[key] = text[a:b]
    return out
