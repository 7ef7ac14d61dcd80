"""The span decoders of :mod:`.tagging`, for a whole batch of texts at once.

Why: decoding one descriptor is a dozen tiny NumPy calls (~0.2 ms of Python and call
overhead each time), which on 2 cores costs as much as the int8 forward of a 3-layer
student. Padding a batch to its longest text and building the ``[key, start, end]``
score tables in one go does the same arithmetic with a fixed number of calls per batch. The pointer
decoder (the merchant default) goes further: it builds tables only for the keys a text may hold and
sums its partition function in closed form (:func:`_pointer_search`).
The per-text functions in :mod:`.tagging` stay the reference: tests check both give the
same values (and confidences to float rounding) on real and random logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from finextract.backends.encoder.tagging import (DecodeOptions, _bio_index, choose_spans, decode_with_confidence,
                                                 inword_flags, label_names, log_softmax, spans_to_values)
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
    gathered, cls, valid, inword = _gather(texts, offsets, logits, reals, N)
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
    keys = task.key_names
    key_temps = [opts.temperature_of(key) for key in keys]
    # found holds positive scores grouped by key in key order, as _resolve's pool is built: same order of choice
    picks = [choose_spans((ki, j // N, j % N, sc) for ki, j, sc in found.get(b, [])) if real else []
             for b, real in enumerate(reals)]
    nums = np.zeros((B, K))                        # the chosen span's score / T; 0 = the null option
    for b, chosen in enumerate(picks):
        for ki, _, _, sc in chosen:
            nums[b, ki] = sc / key_temps[ki]
    confs = np.exp(nums - np.asarray(logz, dtype=np.float64)).tolist()   # one call, the same doubles as per key
    results = []
    for b, (text, off, real, chosen) in enumerate(zip(texts, offsets, reals, picks)):
        if not real:
            results.append(decode_with_confidence(text, off, logits[b], task, opts))
            continue
        spans = {keys[ki]: (off[real[u]][0], off[real[v]][1]) for ki, u, v, _ in chosen}
        results.append((spans_to_values(text, spans, task, opts), dict(zip(keys, confs[b]))))
    return results


def _gather(texts: Sequence[str], offsets: Sequence[Sequence[tuple[int, int]]], logits: Sequence[np.ndarray],
            reals: Sequence[list[int]], N: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(gathered [B, N, W], cls [B, W], valid [B, N], inword [B, N + 1])``: each text's real-token logits
    padded to ``N``, its first position's, which positions are real, and :func:`.tagging.inword_boundaries`.

    A text's real tokens are one run (all but [CLS], [SEP] and padding), so a slice copies them where
    the reference indexes; the in-word flags of all texts are one flat list, written at once (issue 16)."""
    B, width = len(texts), logits[0].shape[-1]
    lens = np.array([len(r) for r in reals])
    gathered = np.zeros((B, N, width), dtype=np.float32)
    cls = np.zeros((B, width), dtype=np.float32)
    flags: list[bool] = []
    for b, (text, off, lg, real) in enumerate(zip(texts, offsets, logits, reals)):
        if real:
            gathered[b, :len(real)] = lg[real[0]:real[-1] + 1] if real[-1] - real[0] == len(real) - 1 else lg[real]
        cls[b] = lg[0]
        flags += inword_flags(text, map(off.__getitem__, real))
    valid = np.arange(N)[None, :] < lens[:, None]
    inword = np.zeros((B, N + 1), dtype=bool)
    inword[np.arange(N + 1)[None, :] <= lens[:, None]] = flags          # row-major: each text's n + 1 flags
    return gathered, cls, valid, inword


def real_tokens(offsets: Sequence[Sequence[tuple[int, int]]]) -> list[list[int]]:
    """Per text: the indices of its real tokens (``s < e``; special and padding tokens are ``(0, 0)``).

    A batch's offsets are padded to its longest text, often mostly ``(0, 0)``: the trailing run of
    those is found by bisection with list comparisons, and only the rest is looked at (issue 16)."""
    return [[t for t, (s, e) in enumerate(off[:_unpadded(off)]) if s < e] for off in offsets]


def _unpadded(off: Sequence[tuple[int, int]]) -> int:
    """Length of ``off`` without its trailing ``(0, 0)`` entries (none of which is a real token)."""
    off = list(off)
    pads = [(0, 0)] * len(off)
    lo, hi = 0, len(off)             # off[len - lo:] is all padding; find the largest such lo
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if off[len(off) - mid:] == pads[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return len(off) - lo


def _band_mask(N: int, max_span: int) -> np.ndarray:
    """``[N, N]`` True where span ``u..v`` is not allowed: ends before it starts, or too long."""
    u = np.arange(N)[:, None]
    v = np.arange(N)[None, :]
    return (v < u) | (v - u >= max_span)


def _top_spans(rows: np.ndarray, labels: Sequence[tuple[int, int]], k: int = 4
               ) -> dict[int, list[tuple[int, int, float]]]:
    """``{text: [(key index, cell, score)]}``: up to ``k`` best cells of each row of ``rows`` ([A, cells],
    row ``i`` being ``(text, key index)`` ``labels[i]``) that beat the null option (score > 0).

    Only positive cells can be kept, and a row has a few dozen of ~1,300 (a span must beat the null
    option), so they are sorted instead of partitioning whole rows (:func:`_top_spans_reference`, which
    cost ~55 us a text, issue 16). Within a row the cells come best first; the reference gives them in
    ``argpartition`` order, which only matters between equal scores (:func:`.tagging._resolve` sorts by
    score, stably). A row where two of its best ``k + 1`` positive scores are equal (which cells are kept,
    or in which order, would then depend on ``argpartition``) is handed to the reference, so the result
    is the same in every case.
    """
    cells_per_row = rows.shape[-1]
    flat = rows.reshape(-1)
    at = np.flatnonzero(flat > 0)                        # 1-D, in row order: much faster than a 2-D nonzero
    vals = flat[at]
    order = np.argsort(-vals, kind="stable")
    order = order[np.argsort(at[order] // cells_per_row, kind="stable")]   # by row, best first within a row
    at, vals = at[order], vals[order]
    r, j = np.divmod(at, cells_per_row)
    rank = np.arange(len(r)) - np.searchsorted(r, r)     # position within its row (r is sorted)
    tied = r[1:][(r[1:] == r[:-1]) & (vals[1:] == vals[:-1]) & (rank[1:] <= k)]
    keep = rank < k
    row_of = np.asarray(labels, dtype=np.int64).reshape(-1, 2).tolist()
    found: dict[int, list[tuple[int, int, float]]] = {}
    if len(tied):
        keep &= ~np.isin(r, tied)
    for i, c, sc in zip(r[keep].tolist(), j[keep].tolist(), vals[keep].tolist()):
        b, ki = row_of[i]
        found.setdefault(b, []).append((ki, c, sc))
    if len(tied):
        found = _with_rows_replaced(found, rows, row_of, sorted(set(tied.tolist())))
    return found


def _with_rows_replaced(found: dict[int, list[tuple[int, int, float]]], rows: np.ndarray, row_of: list[list[int]],
                        redo: list[int]) -> dict[int, list[tuple[int, int, float]]]:
    """``found`` with rows ``redo`` (whose scores tie) taken from :func:`_top_spans_reference`, each text's
    entries still in row order (key index order: rows are sorted by text, then key)."""
    for i in redo:
        b, ki = row_of[i]
        entries = found.get(b, []) + _top_spans_reference(rows[i:i + 1], [(b, ki)]).get(b, [])
        # keys of one text have one row each, so a stable sort by key index restores row order
        found[b] = sorted(entries, key=lambda e: e[0])
    return found


def _top_spans_reference(rows: np.ndarray, labels: Sequence[tuple[int, int]]
                         ) -> dict[int, list[tuple[int, int, float]]]:
    """What :func:`_top_spans` computes, by ``argpartition`` of whole rows: the definition it is tested
    against, and its answer for rows with tied scores."""
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
