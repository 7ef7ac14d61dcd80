"""The span decoders of :mod:`.tagging`, for a whole batch of texts at once.

Why: decoding one descriptor is a dozen tiny NumPy calls (~0.2 ms of Python and call
overhead each time), which on 2 cores costs as much as the int8 forward of a 3-layer
student. Padding a batch to its longest text and building every ``[key, start, end]``
score table in one go does the same arithmetic with a fixed number of calls per batch.
The per-text functions in :mod:`.tagging` stay the reference: tests check both give the
same values (and confidences to float rounding) on real and random logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from finextract.backends.encoder.tagging import (Candidate, DecodeOptions, _bio_index, _resolve,
                                                 decode_with_confidence, inword_boundaries, label_names, log_softmax,
                                                 spans_to_values)
from finextract.tasks import Task


def decode_many(texts: Sequence[str], offsets: Sequence[Sequence[tuple[int, int]]], logits: Sequence[np.ndarray],
                task: Task, opts: DecodeOptions | None = None) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``decode_with_confidence`` for every text; batched for the single-valued bio/pointer decoders."""
    opts = opts or DecodeOptions()
    n_labels, K = len(label_names(task)), len(task.key_names)
    if task.multi_valued or opts.method not in ("bio", "pointer") or not texts:
        return [decode_with_confidence(t, o, lg, task, opts) for t, o, lg in zip(texts, offsets, logits)]
    if opts.method == "pointer" and min(lg.shape[-1] for lg in logits) < n_labels + 2 * K:
        raise ValueError("decoder 'pointer' needs a model trained with model.pointer_head: true")
    reals = [[t for t, (s, e) in enumerate(off) if s < e] for off in offsets]
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
    if opts.method == "pointer":
        tables = _pointer_tables(gathered[..., n_labels:n_labels + 2 * K], cls[:, n_labels:n_labels + 2 * K],
                                 valid, inword, opts.inword_penalty)
    else:
        tables = _bio_tables(gathered[..., :n_labels], valid, inword, task, opts.inword_penalty)
    u = np.arange(N)[:, None]
    v = np.arange(N)[None, :]
    bad = (v < u) | (v - u >= opts.max_span_tokens)                     # [N, N], the same for every row
    if opts.method == "bio":  # pointer tables are -inf at padded tokens already (log_softmax of -inf)
        bad = bad[None] | ~valid[:, :, None] | ~valid[:, None, :]         # [B, N, N]
    tables += np.where(bad, np.float32(-np.inf), np.float32(0))[..., None, :, :]
    flat = tables.reshape(B, K, N * N)
    temps = np.array([opts.temperature_of(key) for key in task.key_names], dtype=np.float32)[None, :, None]
    scaled = flat / temps
    with np.errstate(invalid="ignore"):
        best = scaled.max(2)
        m = np.maximum(best, 0.0)
        logz = m + np.log(np.exp(-m) + np.exp(scaled - m[..., None]).sum(2))  # [B, K]; null option = 0
    # Only spans that beat the null option (score > 0) can be chosen, and most keys of a text have
    # none (no street, no ZIP): the top-4 search runs on the rows that have one.
    k = min(4, N * N)
    active = np.nonzero(best > 0)
    rows = flat[active]                                                  # [A, N * N]
    top = np.argpartition(-rows, k - 1, axis=1)[:, :k] if N * N > k else np.broadcast_to(np.arange(N * N), (len(rows), N * N))
    top_scores = np.take_along_axis(rows, top, 1)
    found: dict[int, list[tuple[int, int, float]]] = {}
    for (b, ki), js, scores in zip(zip(*active), top.tolist(), top_scores.tolist()):
        found.setdefault(int(b), []).extend((int(ki), j, sc) for j, sc in zip(js, scores) if sc > 0)
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
        results.append((spans_to_values(text, spans, task.empty_output(), opts), conf))
    return results


def _pointer_tables(ptr: np.ndarray, cls: np.ndarray, valid: np.ndarray, inword: np.ndarray, penalty: float
                    ) -> np.ndarray:
    """``[B, K, N, N]``: log P(start=u) + log P(end=v) - null, less in-word edge penalties."""
    B, N, two_k = ptr.shape
    K = two_k // 2
    pad = np.where(valid, np.float32(0), np.float32(-np.inf))[:, :, None]  # padded tokens get no mass
    starts = np.concatenate([cls[:, None, :K], ptr[..., :K] + pad], 1)   # [B, N + 1, K], index 0 = null
    ends = np.concatenate([cls[:, None, K:], ptr[..., K:] + pad], 1)
    ls = log_softmax(starts, axis=1).transpose(0, 2, 1)                  # [B, K, N + 1]
    le = log_softmax(ends, axis=1).transpose(0, 2, 1)
    null = (ls[:, :, :1] + le[:, :, :1])[..., None]                     # [B, K, 1, 1]
    with np.errstate(invalid="ignore"):
        return ls[:, :, 1:, None] + le[:, :, None, 1:] - null - penalty * _edge_inside_word(inword, N)


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
