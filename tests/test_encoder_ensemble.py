"""Ensembles of encoder runs: logits averaged token by token, decoded once, members checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from finextract.backends.encoder import load
from finextract.backends.encoder.ensemble import EnsembleExtractor, load_ensemble
from finextract.backends.encoder.testing import train_tiny_run
from finextract.errors import InputError


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    """Two tiny runs of one architecture on different generated data (so different weights), and
    one that reads texts differently (max_length 16)."""
    base = tmp_path_factory.mktemp("ensemble")
    kw = {"layers": 2, "hidden": 32, "n": 200, "max_steps": 40, "model": {"pointer_head": True}}
    return [train_tiny_run(base / "a", data_seed=1, **kw), train_tiny_run(base / "b", data_seed=2, **kw),
            train_tiny_run(base / "short", data_seed=1, max_length=16, **kw)]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    from finextract.synth import generate

    return [r.text for r in generate(20, seed=4)]


def test_one_member_is_the_run_itself(runs, texts):
    one = load(str(runs[0]))
    assert EnsembleExtractor([one]).predict(texts) == one.predict(texts)


def test_two_members_decode_the_mean_of_their_logits(runs, texts):
    a, b = load(str(runs[0])), load(str(runs[1]))
    ens = load_ensemble(runs[:2])
    la, lb = a.logits(texts), b.logits(texts)
    for (off, mean), (oa, xa), (_, xb) in zip(ens.logits(texts), la, lb):
        assert off == oa and np.allclose(mean, (xa + xb) / 2, atol=1e-6)
    assert not all(np.allclose(xa, xb) for (_, xa), (_, xb) in zip(la, lb))  # the members really differ
    from finextract.backends.encoder.span_batch import decode_many

    manual = decode_many(texts, [o for o, _ in la], [(xa + xb) / 2 for (_, xa), (_, xb) in zip(la, lb)],
                         a.task, a.decode_options)
    assert ens.predict(texts) == [v for v, _ in manual]


def test_members_that_read_texts_differently_are_refused(runs, texts):
    long_text = max(texts, key=len) + " " + " ".join(["EXTRA WORDS"] * 10)
    with pytest.raises(InputError, match="member 2 reads text 1 differently"):
        load_ensemble([runs[0], runs[2]]).predict([long_text])


def test_cli_eval_with_ensemble(runs, tmp_path):
    from finextract.synth import write_splits

    data = write_splits(tmp_path / "d", n=40, seed=9)["test"]
    out = tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "finextract", "eval", str(runs[0]), "--data", str(data),
                    "--ensemble", str(runs[1]), "--out", str(out)], check=True, capture_output=True, text=True)
    report = json.loads(out.read_text())
    ens = load_ensemble(runs[:2])
    from finextract.records import read_records

    recs = read_records(data, ens.task)
    expected, _ = ens.evaluate(recs)
    assert report["micro"]["f1"] == pytest.approx(expected.micro.f1)
    bad = subprocess.run([sys.executable, "-m", "finextract", "eval", str(runs[0]), "--data", str(data),
                          "--ensemble", str(runs[1]), "--workers", "2"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--ensemble" in bad.stderr


def test_batch_with_ensemble_writes_the_ensembles_answers(runs, texts, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    subprocess.run([sys.executable, "-m", "finextract", "batch", str(runs[0]), "--input", str(src), "--output",
                    str(out), "--ensemble", str(runs[1])], check=True, capture_output=True, text=True)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["fields"] for r in rows] == load_ensemble(runs[:2]).predict(texts)


@pytest.mark.slow
def test_serve_answers_with_the_ensemble(runs, texts):
    """``serve RUN --ensemble RUN2``: the server's answers are the averaged model's, not RUN's alone."""
    import httpx

    from finextract.serve.config import ServeConfig
    from finextract.serve.server import BackgroundServer

    expected = load_ensemble(runs[:2]).predict(texts)
    alone = load(str(runs[0])).predict(texts)
    cfg = ServeConfig(run_dir=str(runs[0]), ensemble=[str(runs[1])], port=0, max_wait_ms=5, max_texts=64)
    with BackgroundServer(cfg) as url:
        body = httpx.post(f"{url}/v1/extract", json={"texts": texts}, timeout=30).json()
    assert [r["fields"] for r in body["results"]] == expected
    assert expected != alone   # the members differ enough to tell the two apart on these texts
