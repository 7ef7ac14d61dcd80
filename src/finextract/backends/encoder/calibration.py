"""Field confidence: temperature scaling of span scores, reliability curves, review flags.

Why by hand: the confidence of a field is the decoder's posterior of its choice (a span or
"empty", :func:`~finextract.backends.encoder.tagging.decode_with_confidence`); scaling the
span scores by one temperature fitted on a held-out generated split is the standard
post-hoc calibration (Guo et al., 2017) and needs a 1-D search, not a library. The
temperature is fitted to the binary outcome "this field's decoded value is exactly right"
(empty counts as a value), so confidence means what a user reads it as.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finextract.scoring import apply_min_confidence  # noqa: F401  (backend-agnostic: lives in scoring)
from finextract.tasks import Task

GRID = tuple(float(t) for t in np.round(np.exp(np.linspace(np.log(0.25), np.log(8.0), 41)), 4))


def _norm(v: Any) -> str:
    return v.strip() if isinstance(v, str) else ""


def field_outcomes(pairs: Sequence[tuple[dict[str, Any] | None, dict[str, Any]]], golds: Sequence[dict[str, Any]],
                   task: Task) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten single-valued predictions to ``(confidence, correct, filled)`` per (record, key)."""
    conf, correct, filled = [], [], []
    for (pred, c), gold in zip(pairs, golds):
        for key in task.key_names:
            p = _norm((pred or {}).get(key, ""))
            conf.append(float(c.get(key, 0.0)))
            correct.append(p == _norm(gold.get(key, "")))
            filled.append(bool(p))
    return np.asarray(conf), np.asarray(correct, dtype=bool), np.asarray(filled, dtype=bool)


def fit_temperature(extractor: Any, records: Sequence[Any], grid: Sequence[float] = GRID) -> dict[str, Any]:
    """One temperature per key, each minimising the log-loss of that key's correctness on ``records``.

    Why per key: one shared temperature must trade the (mostly right, very confident) empty
    fields against the filled ones; keys differ in how over-confident the model is.
    Decoded values do not depend on the temperature (only confidences do), so the logits
    are computed once and each grid point only re-decodes.
    """
    from dataclasses import replace

    from finextract.backends.encoder.tagging import decode_with_confidence

    task = extractor.task
    if task.multi_valued:
        raise ValueError("confidence calibration is implemented for single-valued tasks")
    texts = [r.text for r in records]
    golds = [r.values for r in records]
    logits = extractor.logits(texts)
    base = extractor.decode_options
    K = len(task.key_names)
    nll = np.zeros((len(grid), K))
    confs = []
    correct = None
    for g, t in enumerate(grid):
        opts = replace(base, temperature=float(t))
        pairs = [decode_with_confidence(x, off, lg, task, opts) for x, (off, lg) in zip(texts, logits)]
        conf, ok, _ = field_outcomes(pairs, golds, task)
        conf, ok = conf.reshape(-1, K), ok.reshape(-1, K)
        p = np.clip(conf, 1e-6, 1 - 1e-6)
        nll[g] = -(ok * np.log(p) + (~ok) * np.log(1 - p)).mean(0)
        confs.append(conf)
        correct = ok
    best = nll.argmin(0)
    temps = {key: float(grid[best[k]]) for k, key in enumerate(task.key_names)}
    chosen = np.stack([confs[best[k]][:, k] for k in range(K)], 1)
    one = int(np.argmin([abs(t - 1.0) for t in grid]))
    return {"temperature": temps, "nll": float(nll[best, np.arange(K)].mean()), "nll_at_1": float(nll[one].mean()),
            "ece": expected_calibration_error(chosen.ravel(), correct.ravel()),
            "ece_at_1": expected_calibration_error(confs[one].ravel(), correct.ravel()),
            "n_records": len(records), "n_fields": int(chosen.size)}


def choose_decoder(extractor: Any, records: Sequence[Any], candidates: Sequence[str]) -> dict[str, Any]:
    """The decoder with the best micro-F1 on ``records`` (a validation split); ties keep the first."""
    from dataclasses import replace

    from finextract.backends.encoder.tagging import decode_with_confidence
    from finextract.scoring import score

    texts = [r.text for r in records]
    logits = extractor.logits(texts)
    scores = {}
    for method in candidates:
        opts = replace(extractor.decode_options, method=method)
        preds = [decode_with_confidence(t, o, lg, extractor.task, opts)[0] for t, (o, lg) in zip(texts, logits)]
        scores[method] = score([r.values for r in records], preds, extractor.task).micro.f1
    best = max(candidates, key=lambda m: scores[m])
    extractor.decode_options = replace(extractor.decode_options, method=best)
    return {"decoder": best, "decoder_scores": scores}


def save_calibration(ckpt: Path, fitted: dict[str, Any], fitted_on: str) -> Path:
    path = Path(ckpt) / "calibration.json"
    path.write_text(json.dumps({**fitted, "fitted_on": fitted_on}, indent=2), encoding="utf-8")
    return path


def reliability(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Per confidence bin: count, mean confidence, accuracy (a reliability curve)."""
    out = []
    edges = np.linspace(0, 1, bins + 1)
    for i in range(bins):
        lo, hi = edges[i], edges[i + 1]
        m = (conf >= lo) & ((conf < hi) if i < bins - 1 else (conf <= hi))
        if m.any():
            out.append({"lo": float(lo), "hi": float(hi), "n": int(m.sum()), "confidence": float(conf[m].mean()),
                        "accuracy": float(correct[m].mean())})
    return out


def expected_calibration_error(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    n = conf.size
    if not n:
        return 0.0
    return float(sum(b["n"] / n * abs(b["confidence"] - b["accuracy"]) for b in reliability(conf, correct, bins)))


def fit_after_training(run: Any, cfg: Any, extractor: Any, val_records: Sequence[Any]) -> dict[str, Any]:
    """Choose the decoder (``model.decoder: auto``) and fit the temperature on the validation
    split; written to the best checkpoint's ``calibration.json``, which loading reads."""
    out: dict[str, Any] = {}
    task = extractor.task
    if cfg.model.decoder == "auto":
        cands = ["bio"] + (["pointer"] if cfg.model.pointer_head and not task.multi_valued else [])
        out.update(choose_decoder(extractor, val_records, cands))
    if not task.multi_valued:
        out.update(fit_temperature(extractor, val_records))
    if out:
        save_calibration(run.resolve_checkpoint("best"), out, fitted_on=str(cfg.data.validation))
    return out


def confidence_rows(texts: Sequence[str], pairs: Sequence[tuple[dict[str, Any] | None, dict[str, Any]]], task: Task,
                    min_confidence: float | None = None) -> list[dict[str, Any]]:
    """Prediction rows with ``confidence`` per key and a ``review`` flag (``--min-confidence``).

    ``review`` is True when any field was below the threshold (its value, if any, is then
    left empty) or the output was invalid; without a threshold it is False for valid rows.
    """
    rows = []
    for text, (pred, conf) in zip(texts, pairs):
        review = pred is None
        if min_confidence is not None and pred is not None:
            pred, review = apply_min_confidence(pred, conf, min_confidence)
        rows.append({"text": text, task.record_field: pred if pred is not None else task.empty_output(),
                     "valid": pred is not None, "confidence": {k: _round(v) for k, v in conf.items()},
                     "review": bool(review)})
    return rows


def _round(v: Any) -> Any:
    return [round(float(x), 4) for x in v] if isinstance(v, list) else round(float(v), 4)


def write_confidence_rows(path: str | Path, rows: Sequence[dict[str, Any]], task: Task) -> None:
    """JSONL (rows as they are) or CSV (text, valid, review, then KEY and KEY_confidence per key)."""
    import csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["text", "valid", "review", *[c for k in task.key_names for c in (k, f"{k}_confidence")]])
            for r in rows:
                vals, conf = r[task.record_field], r["confidence"]
                cells = []
                for k in task.key_names:
                    v = vals.get(k, "")
                    cells += [json.dumps(v, ensure_ascii=False) if isinstance(v, list) else v,
                              json.dumps(conf.get(k)) if isinstance(conf.get(k), list) else conf.get(k, "")]
                w.writerow([r["text"], r["valid"], r["review"], *cells])
        return
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
