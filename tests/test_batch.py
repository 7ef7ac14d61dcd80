"""``finextract batch``: formats, bounded streaming, resume, and a real SIGKILL mid-run."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time

import pytest

from test_serve_toy import TEXTS, make_toy_run, toy_cli_command

from finextract.batch import recover_output, run_batch
from finextract.extractor import load_extractor


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    return make_toy_run(tmp_path_factory.mktemp("batch") / "toy")


def _texts(n: int) -> list[str]:
    return [f"{TEXTS[i % len(TEXTS)]} {i}" if i % 3 else TEXTS[i % len(TEXTS)] for i in range(n)]


def _read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "txt"])
def test_formats_match_offline(tmp_path, toy_run, fmt):
    texts = _texts(50)
    src = tmp_path / f"in.{fmt}"
    if fmt == "jsonl":
        src.write_text("".join(json.dumps({"body": t}) + "\n" for t in texts), encoding="utf-8")
    elif fmt == "csv":
        with src.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "body"])
            w.writerows([[i, t] for i, t in enumerate(texts)])
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"body": texts}), src, row_group_size=7)
    else:
        src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    ex = load_extractor(toy_run)
    out = tmp_path / "out.jsonl"
    summary = run_batch(ex, src, out, batch_size=8, text_column="body", progress=False)
    rows = _read(out)
    assert summary.rows_written == 50 and [r["row"] for r in rows] == list(range(50))
    assert [r["text"] for r in rows] == texts
    assert [r["fields"] for r in rows] == ex.predict(texts)


def test_resume_truncates_partial_line_and_refuses_other_input(tmp_path, toy_run):
    ex = load_extractor(toy_run)
    texts = _texts(30)
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    run_batch(ex, src, out, batch_size=10, progress=False)
    full = out.read_bytes()
    lines = full.splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:12]) + lines[12][:15])  # kill mid-line during the second chunk
    assert recover_output(out)[0] == 12
    summary = run_batch(ex, src, out, batch_size=10, progress=False)
    assert summary.rows_done_before == 12 and summary.rows_written == 18
    assert out.read_bytes() == full
    other = tmp_path / "other.txt"
    other.write_text("\n".join(reversed(texts)) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="different text"):
        run_batch(ex, other, out, batch_size=10, progress=False)


def test_bad_input_is_a_clear_error(tmp_path, toy_run):
    ex = load_extractor(toy_run)
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "ok"}\n{"text": 3}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"in.jsonl:2"):
        run_batch(ex, src, tmp_path / "o.jsonl", progress=False)
    with pytest.raises(ValueError, match="must be .jsonl"):
        run_batch(ex, src, tmp_path / "o.csv", progress=False)


@pytest.mark.slow
def test_sigkill_then_rerun_yields_each_row_exactly_once(tmp_path, toy_run):
    texts = _texts(400)
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = toy_cli_command("batch", str(toy_run), "-i", str(src), "-o", str(out), "--batch-size", "16")
    env = {**os.environ, "FX_TOY_DELAY": "0.05", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if out.exists() and out.stat().st_size > 0 and len(out.read_bytes().splitlines()) >= 48:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = len(out.read_bytes().splitlines())
    assert 0 < partial < 400, "the kill should land mid-run"
    env["FX_TOY_DELAY"] = "0"
    res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    rows = _read(out)
    assert [r["row"] for r in rows] == list(range(400))
    assert [r["text"] for r in rows] == texts
    assert [r["fields"] for r in rows] == load_extractor(toy_run).predict(texts)
    assert json.loads(res.stdout)["rows_done_before"] >= 48
