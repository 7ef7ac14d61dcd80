"""The session-8 ``span_batch.py``, verbatim after this docstring: the reference issue 16's decoder is tested
against (tests/test_encoder_fast_paths.py). Not part of the package. At the end, the session-8 forms of the
two ``tagging.py`` rules it calls (``_resolve``, ``inword_boundaries``), which the package now computes
through ``tagging.choose_spans`` and ``tagging.inword_flags``: the reference keeps its own copies."""
# ruff: noqa


from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from finextract.backends.encoder.tagging import (Candidate, DecodeOptions, _bio_index, decode_with_confidence,
                                                 label_names, log_softmax, spans_to_values)
from finextract.tasks import Task


def decode_many(texts: Sequence[str], offsets: Sequence[Sequence[tuple[int, int]]], logits: Sequence[np.ndarray],
                task: Task, opts: DecodeOptions | None = None, reals: Sequence[list[int]] | None = None
                ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``decode_with_confidence`` for every text; batched for the single-valued bio/pointer decoders.

    ``reals``: each text's real-token indices (``s < e``), when the caller has them already."""
    opts = opts or DecodeOptions()
    n_labels, K = len(label_names(task)), len(task.key_names)
    if task.multi_valued or opts.method not in ("bio", "pointer") or not texts:
        return [decode_with_confidence(t, o, lg, task, opts) for t, o, lg in zip(texts, offsets, logits)]
    if opts.method == "pointer" and min(lg.shape[-1] for lg in logits) < n_labels + 2 * K:
        raise ValueError("decoder 'pointer' needs a model trained with model.pointer_head: true")
    reals = real_tokens(offsets) if reals is None else reals
    N = max(len(r) for r in reals)
    if N == 0:
        return [decode_with_confidence(t, o, lg, task, opts) for t, o, lg in zip(texts, offsets, logits)]
    B = len(texts)
    width = logits[0].shape[-1]
    gathered = np.zeros((B, N, width), dtype=np.float32)
    cls = np.zeros((B, width), dtype=np.float32)
    valid = np.zeros((B, N), dtype=bool)
    inword = np.zeros((B, N + 1), dtype=bool)
    for b, (text, off, lg, real) in enumerate(zip(texts, offsets, logits, reals)):
        n = len(real)
        gathered[b, :n] = lg[real]
        cls[b] = lg[0]
        valid[b, :n] = True
        inword[b, :n + 1] = inword_boundaries(text, [off[t] for t in real])
    temps = np.array([opts.temperature_of(key) for key in task.key_names], dtype=np.float32)
    band = _band_mask(N, opts.max_span_tokens)
    if opts.method == "pointer":
        logz, found = _pointer_search(gathered[..., n_labels:n_labels + 2 * K], cls[:, n_labels:n_labels + 2 * K],
                                      valid, inword, opts.inword_penalty, opts.max_span_tokens, band, temps)
    else:
        tables = _bio_tables(gathered[..., :n_labels], valid, inword, task, opts.inword_penalty)
        bad = band[None] | ~valid[:, :, None] | ~valid[:, None, :]       # [B, N, N]
        tables += np.where(bad, np.float32(-np.inf), np.float32(0))[:, None]
        flat = tables.reshape(B, K, N * N)
        scaled = flat / temps[None, :, None]
        with np.errstate(invalid="ignore"):
            best = scaled.max(2)
            m = np.maximum(best, 0.0)
            logz = m + np.log(np.exp(-m) + np.exp(scaled - m[..., None]).sum(2))  # [B, K]; null option = 0
        active = np.nonzero(best > 0)
        found = _top_spans(flat[active], list(zip(*active)))
    results = []
    keys = task.key_names
    for b, (text, off, real) in enumerate(zip(texts, offsets, reals)):
        if not real:
            results.append(decode_with_confidence(text, off, logits[b], task, opts))
            continue
        cands: dict[str, list[Candidate]] = {key: [] for key in keys}
        for ki, j, sc in found.get(b, []):
            cands[keys[ki]].append(Candidate(keys[ki], j // N, j % N, sc))
        chosen, conf = _resolve(cands, {key: float(logz[b, ki]) for ki, key in enumerate(task.key_names)}, opts)
        spans = {key: (off[real[c.start]][0], off[real[c.end]][1]) for key, c in chosen.items()}
        results.append((spans_to_values(text, spans, task, opts), conf))
    return results


def real_tokens(offsets: Sequence[Sequence[tuple[int, int]]]) -> list[list[int]]:
    """Per text: the indices of its real tokens (``s < e``; special and padding tokens are ``(0, 0)``)."""
    return [[t for t, (s, e) in enumerate(off) if s < e] for off in offsets]


def _band_mask(N: int, max_span: int) -> np.ndarray:
    """``[N, N]`` True where span ``u..v`` is not allowed: ends before it starts, or too long."""
    u = np.arange(N)[:, None]
    v = np.arange(N)[None, :]
    return (v < u) | (v - u >= max_span)


def _top_spans(rows: np.ndarray, labels: Sequence[tuple[int, int]]) -> dict[int, list[tuple[int, int, float]]]:
    """``{text: [(key index, cell, score)]}``: up to 4 best cells of each row of ``rows`` ([A, cells],
    row ``i`` being ``(text, key index)`` ``labels[i]``) that beat the null option (score > 0)."""
    cells = rows.shape[-1]
    k = min(4, cells)
    top = np.argpartition(-rows, k - 1, axis=1)[:, :k] if cells > k else np.broadcast_to(np.arange(cells), rows.shape)
    top_scores = np.take_along_axis(rows, top, 1)
    found: dict[int, list[tuple[int, int, float]]] = {}
    for (b, ki), js, scores in zip(labels, top.tolist(), top_scores.tolist()):
        found.setdefault(int(b), []).extend((int(ki), j, sc) for j, sc in zip(js, scores) if sc > 0)
    return found


def _pointer_search(ptr: np.ndarray, cls: np.ndarray, valid: np.ndarray, inword: np.ndarray, penalty: float,
                    max_span: int, band: np.ndarray, temps: np.ndarray
                    ) -> tuple[np.ndarray, dict[int, list[tuple[int, int, float]]]]:
    """``(logz [B, K], top spans)`` of the pointer decoder without a ``[N, N]`` table for every key.

    A span's score is ``ls[u] + le[v] - null - penalty * (u or v in a word)`` (log-probabilities of
    start and end, against the null option). Its best value is at most ``max ls + max le - null``, so
    only the ``(text, key)`` rows where that bound is positive (the keys a text may hold; usually
    name, city, state and a few more) get their table built, with the same float32 arithmetic as
    the per-text decoder. The partition function over all spans is separable: with ``a = exp(ls/T)``,
    ``b = exp(le/T)`` and ``alpha = exp(-penalty/T)``, the sum over allowed spans of
    ``exp(score/T)`` is ``exp(-null/T) * (alpha * S(a, b) + (1 - alpha) * S(a', b'))``, where
    ``a'``/``b'`` are zero at in-word edges and ``S(x, y) = sum_u x_u * sum_{v=u}^{u+max_span-1} y_v``
    is a cumulative sum: O(N) a row instead of O(N^2), in float64.
    """
    B, N, two_k = ptr.shape
    K = two_k // 2
    pad = np.where(valid, np.float32(0), np.float32(-np.inf))[:, :, None]  # padded tokens get no mass
    ls = log_softmax(np.concatenate([cls[:, None, :K], ptr[..., :K] + pad], 1), axis=1).transpose(0, 2, 1)
    le = log_softmax(np.concatenate([cls[:, None, K:], ptr[..., K:] + pad], 1), axis=1).transpose(0, 2, 1)
    null = ls[:, :, 0] + le[:, :, 0]                                    # [B, K]; index 0 of each = null
    ls, le = ls[:, :, 1:], le[:, :, 1:]                                 # [B, K, N]
    in_start, in_end = inword[:, :N], inword[:, 1:N + 1]                # [B, N]

    t = temps.astype(np.float64)[None, :, None]
    a, b = np.exp(ls / t), np.exp(le / t)                               # float64; 0 at padding
    alpha = np.exp(-penalty / t)[..., 0]                                # [1, K]
    hi = np.minimum(np.arange(N) + max_span, N)

    def band_sum(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        c = np.concatenate([np.zeros((B, K, 1)), np.cumsum(y, 2)], 2)   # [B, K, N + 1]
        return (x * (c[..., hi] - c[..., :N])).sum(2)

    total = alpha * band_sum(a, b) + (1 - alpha) * band_sum(a * ~in_start[:, None], b * ~in_end[:, None])
    with np.errstate(divide="ignore"):
        logz = np.logaddexp(0.0, np.log(total) - null / t[..., 0])      # the null option scores 0

    with np.errstate(invalid="ignore"):
        bound = ls.max(2) + le.max(2) - null
    rows = np.nonzero(bound > 0)
    if not len(rows[0]):
        return logz, {}
    edge = _edge_inside_word(inword[rows[0]], N)[:, 0]                   # [A, N, N]
    with np.errstate(invalid="ignore"):
        table = ls[rows][:, :, None] + le[rows][:, None, :] - null[rows][:, None, None] - penalty * edge
    table += np.where(band, np.float32(-np.inf), np.float32(0))
    flat = table.reshape(len(rows[0]), N * N)
    active = np.nonzero(flat.max(1) > 0)[0]
    return logz, _top_spans(flat[active], [(rows[0][r], rows[1][r]) for r in active])


def _bio_tables(bio: np.ndarray, valid: np.ndarray, inword: np.ndarray, task: Task, penalty: float) -> np.ndarray:
    """``[B, K, N, N]``: summed BIO log-odds of each span against the key's null labeling."""
    b_idx, i_idx = _bio_index(task)
    logp = log_softmax(bio, axis=-1)                                     # [B, N, L]
    B, N, L = logp.shape
    base = np.empty((B, len(b_idx), N), dtype=logp.dtype)
    for k, (bk, ik) in enumerate(zip(b_idx, i_idx)):
        keep = np.ones(L, dtype=bool)
        keep[[bk, ik]] = False
        base[:, k] = logp[..., keep].max(-1)
    first = logp[..., b_idx].transpose(0, 2, 1) - base                   # [B, K, N]
    inner = logp[..., i_idx].transpose(0, 2, 1) - base
    inner = np.where(valid[:, None, :], inner, np.float32(0))
    c = np.concatenate([np.zeros((B, len(b_idx), 1), dtype=inner.dtype), np.cumsum(inner, 2)], 2)
    table = first[..., :, None] + (c[..., None, 1:] - c[..., 1:, None])
    return table - penalty * _edge_inside_word(inword, N)


def _edge_inside_word(inword: np.ndarray, N: int) -> np.ndarray:
    """``[B, 1, N, N]``: 1.0 where span ``u..v`` starts or ends inside a word (once, as in :mod:`.tagging`)."""
    return np.logical_or(inword[:, None, :N, None], inword[:, None, None, 1:N + 1]).astype(np.float32)


def inword_boundaries(text: str, offsets: Sequence[tuple[int, int]]) -> np.ndarray:
    n = len(offsets)
    b = np.zeros(n + 1, dtype=bool)
    prev_end = None
    for t, (s, e) in enumerate(offsets):
        if s >= e:
            continue
        if prev_end is not None and s == prev_end and 0 < s < len(text) and text[s - 1].isalnum() and text[s].isalnum():
            b[t] = True
        prev_end = e
    return b


def _resolve(cands: dict[str, list[Candidate]], logz: dict[str, float], opts: DecodeOptions
             ) -> tuple[dict[str, Candidate], dict[str, float]]:
    pool = sorted((c for cs in cands.values() for c in cs if c.score > 0), key=lambda c: -c.score)
    taken: set[int] = set()
    chosen: dict[str, Candidate] = {}
    for c in pool:
        if c.key in chosen or taken.intersection(range(c.start, c.end + 1)):
            continue
        chosen[c.key] = c
        taken.update(range(c.start, c.end + 1))
    conf = {}
    for key, z in logz.items():
        num = chosen[key].score / opts.temperature_of(key) if key in chosen else 0.0
        conf[key] = float(np.exp(num - z))
    return chosen, conf
