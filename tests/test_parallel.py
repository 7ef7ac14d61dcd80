"""Worker processes (``--workers``): same answers as one process, in order, errors surfaced."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from finextract.backends.encoder.testing import train_tiny_run
from finextract.errors import FinextractError, InputError, NotFoundError
from finextract.extractor import load_extractor
from finextract.parallel import ParallelExtractor, balanced_shares
from finextract.runtime import load_with_runtime

pytestmark = pytest.mark.xdist_group("parallel")  # spawns processes: keep off the other worker's core


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny random-init encoder trained a few steps: real run dir, real checkpoint."""
    return train_tiny_run(tmp_path_factory.mktemp("parallel"), layers=2, hidden=32, n=200, data_seed=3,
                          max_length=32, max_steps=12, model={"lexical_features": True, "pointer_head": True})


@pytest.fixture(scope="module")
def texts(run_dir) -> list[str]:
    from finextract.synth import generate

    return [r.text for r in generate(37, seed=21)]


def test_balanced_shares_split_the_work_evenly_and_keep_every_text_once():
    lengths = [300, 20, 25, 30, 280, 22, 18, 27, 24, 26]  # two long wires among short card lines
    shares = balanced_shares(lengths, 2)
    assert sorted(i for s in shares for i in s) == list(range(10))  # each text exactly once
    assert all(s == sorted(s) for s in shares)  # input order inside a share
    work = [sum(lengths[i] + 16 for i in s) for s in shares]
    assert {0, 4} not in [set(s) & {0, 4} for s in shares]  # the two wires go to different workers
    assert max(work) - min(work) <= max(lengths) // 4
    contiguous = [sum(lengths[:5]) + 80, sum(lengths[5:]) + 80]  # what halving the call would give
    assert max(work) < max(contiguous)
    assert balanced_shares([5], 3) == [[0], [], []]
    assert balanced_shares([], 2) == [[], []]


def test_same_answers_in_order_as_one_process(run_dir, texts):
    one = load_extractor(run_dir, "best", num_threads=1)
    expected = one.predict(texts)
    with ParallelExtractor(run_dir, "best", workers=2, chunk_size=5) as par:  # waves of 10 texts: four rounds of two shares
        assert par.predict(texts) == expected
        assert par.predict(texts[:1]) == expected[:1]  # fewer texts than workers
        assert par.predict([]) == []
        pairs = par.predict_with_confidence(texts[:9])
        assert [p for p, _ in pairs] == expected[:9]
        # chunks pad differently from one batch of nine: confidences agree to float rounding
        for (_, got), (_, want) in zip(pairs, one.predict_with_confidence(texts[:9])):
            assert got == pytest.approx(want, abs=1e-5)
        info = par.describe()
        assert info["workers"] == 2 and info["threads_per_worker"] == 1 and par.task.name == "merchant"


def test_worker_load_error_is_raised_with_its_own_message(run_dir):
    # the run checks out in the parent, but the ONNX variant only fails inside the worker
    with pytest.raises((NotFoundError, FinextractError), match="onnx|export"):
        ParallelExtractor(run_dir, "best", runtime="onnx", workers=2)


def test_bad_arguments_refused_before_any_worker_starts(run_dir, tmp_path):
    with pytest.raises(InputError, match="workers"):
        load_with_runtime(run_dir, "best", workers=0)
    with pytest.raises(InputError, match="endpoint"):
        load_with_runtime("http://localhost:9/", None, workers=2)
    with pytest.raises(FinextractError, match=str(tmp_path / "nope")):
        load_with_runtime(tmp_path / "nope", "best", workers=2)


def test_an_error_in_one_chunk_leaves_the_workers_in_step(run_dir, texts):
    expected = load_extractor(run_dir, "best", num_threads=1).predict(texts[:4])
    with ParallelExtractor(run_dir, "best", workers=2) as par:
        with pytest.raises(Exception):
            par.predict([None, None, texts[0], texts[1]])  # worker 0's chunk fails, worker 1's succeeds
        assert par.predict(texts[:4]) == expected  # not worker 1's stale answer from the failed call


def test_close_stops_the_workers(run_dir):
    par = ParallelExtractor(run_dir, "best", workers=2)
    procs = list(par._procs)
    assert par.worker_pids == [p.pid for p in procs] and len(procs) == 2
    par.close()
    assert all(not p.is_alive() for p in procs)


def test_cli_predict_with_workers_matches_one_process(run_dir, texts, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts[:10]) + "\n", encoding="utf-8")
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}.jsonl"
        subprocess.run([sys.executable, "-m", "finextract", "predict", str(run_dir), "--input", str(src),
                        "--output", str(out), "--workers", workers], check=True, capture_output=True, text=True)
        outs.append([json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()])
    assert outs[0] == outs[1] and len(outs[0]) == 10
