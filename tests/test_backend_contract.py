"""The contract every trainable backend keeps, run over the registry (PEFT's test-matrix style).

A backend registered with a ``tiny_config`` gets this test for free: train two checkpointed
steps on a tiny random model, kill after the first and rerun (must equal the uninterrupted
run), predict (every value an exact substring of its text, or ``None`` = invalid), evaluate
(every record counted), and serve the run and call it through the endpoint extractor (same
answers as offline).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from finextract.records import read_records
from finextract.registry import get_backend, known_backends
from finextract.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tests" / "data" / "merchant_sample.jsonl"
TEXTS = ["SQ *TURTLE TOWER SAN FRANCISCO CA", "AMZN Mktp US*2K4 SEATTLE WA", "", "x" * 40]


def trainable() -> list[str]:
    out = []
    for name in known_backends():
        backend = get_backend(name)
        if backend.train is not None:
            assert backend.tiny_config is not None, f"backend {name} must register a tiny_config for this test"
            out.append(name)
    return out


class Kill(Exception):
    pass


def _kill_after_first(step: int) -> None:
    if step >= 1:
        raise Kill()


def _cfg(name: str, out: Path, tiny: dict):
    base = {"backend": name, "task": "merchant", "output_dir": str(out), "seed": 1,
            "data": {"train": str(SAMPLE), "validation": str(SAMPLE), "max_eval_records": 2}, **tiny}
    base["train"] = {**tiny.get("train", {}), "progress": False}
    return get_backend(name).config_cls.model_validate(base)


def _strip(rows):
    return [{k: v for k, v in r.items() if k not in ("time",)} for r in rows]


@pytest.mark.slow
@pytest.mark.parametrize("name", trainable())
def test_backend_contract(name, tmp_path):
    import torch

    torch.set_num_threads(1)
    backend = get_backend(name)
    tiny = backend.tiny_config(tmp_path)

    # train two steps, uninterrupted
    full = _cfg(name, tmp_path / "full", tiny)
    summary = backend.train(full)
    a = RunDir(full.output_dir)
    assert a.done_path.exists() and [s for s, _ in a.checkpoints()][-1] == 2
    assert [m["step"] for m in a.metrics()] == [1, 2]
    assert summary["best"]["checkpoint"] in {"step-1", "step-2"}

    # killed after step 1, then the same call again: equal to the uninterrupted run
    cut = _cfg(name, tmp_path / "cut", tiny)
    with pytest.raises(Kill):
        backend.train(cut, on_step=_kill_after_first)
    b = RunDir(cut.output_dir)
    assert [s for s, _ in b.checkpoints()] == [1] and not b.done_path.exists()
    backend.train(cut)
    ma, mb = _strip(a.metrics()), _strip(b.metrics())
    assert [m["step"] for m in mb] == [1, 2]
    assert [m["val"]["micro"] for m in mb] == [m["val"]["micro"] for m in ma]
    la, lb = _strip(a.train_log()), _strip(b.train_log())
    assert [r["step"] for r in lb] == [r["step"] for r in la]
    assert [r.get("loss") for r in lb] == pytest.approx([r.get("loss") for r in la], rel=1e-5)
    assert b.best()["checkpoint"] == a.best()["checkpoint"]

    # predict: exact substrings or invalid (None), never anything else
    extractor = b.load_extractor()
    task = extractor.task
    preds = extractor.predict(TEXTS)
    assert len(preds) == len(TEXTS)
    for text, pred in zip(TEXTS, preds):
        if pred is None:
            continue
        assert list(pred) == task.key_names
        for key, value in pred.items():
            values = value if isinstance(value, list) else [value]
            assert all(isinstance(v, str) and v in text for v in values), (name, key, value, text)

    # evaluate: every record counted, invalid outputs included
    records = read_records(SAMPLE, task)
    report, record_preds = extractor.evaluate(records)
    assert report.n_records == len(records) and 0.0 <= report.micro.f1 <= 1.0
    assert report.n_invalid == sum(p is None for p in record_preds)

    # serve-able: the endpoint extractor over HTTP answers what the run answers offline
    from finextract.extractor import load_extractor
    from finextract.serve.config import ServeConfig
    from finextract.serve.server import BackgroundServer

    with BackgroundServer(ServeConfig(run_dir=str(b.root), port=0)) as url:
        remote = load_extractor(url)
        assert remote.task.name == task.name
        served = [t for t in TEXTS if t]  # the server refuses an empty text (422) by design
        assert remote.predict(served) == [p for t, p in zip(TEXTS, preds) if t]


def test_every_trainable_backend_is_in_the_matrix():
    assert {"encoder", "causal_lm", "crf"} <= set(trainable())
