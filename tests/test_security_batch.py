"""``finextract batch`` never destroys what a user owns, and a kill at any point is recoverable.

Replays issue 14's probes: a foreign output is refused *unchanged* (it used to lose its last
line first), the input can never be the output (``--overwrite`` used to delete it), two runs on
one output are refused (they used to interleave every row twice), a cut at any byte of the
output resumes to the exact same file, and a full disk is a clean error.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest

from test_serve_toy import TEXTS, make_toy_run, toy_cli_command

from finextract.batch import run_batch
from finextract.errors import UserError
from finextract.extractor import load_extractor


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    return make_toy_run(tmp_path_factory.mktemp("secbatch") / "toy")


def _texts(n: int) -> list[str]:
    return [f"{TEXTS[i % len(TEXTS)]} {i}" for i in range(n)]


def _input(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in _texts(n)), encoding="utf-8")
    return path


def _rows(path: Path) -> list[int]:
    return [json.loads(line)["row"] for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("content", [
    b'{"a": 1}\n{"a": 2}',  # last line without newline: used to be truncated before the refusal
    b'{"id": 7, "note": "mine"}',  # one line, no newline: must not be emptied
    b'{"a": 1}\n{"a": 2}\n',
    b"plain text notes\n",
    b'{"row": 0, "text": "x", "fields": {}, "valid": true}\n{"row": 0, "text": "x", "fields": {}, "valid": true}\n',
], ids=["partial-last", "single-line", "complete", "text", "duplicated-rows"])
def test_foreign_output_is_refused_unchanged(tmp_path, toy_run, content):
    ex = load_extractor(toy_run)
    src = _input(tmp_path / "in.jsonl", 5)
    out = tmp_path / "out.jsonl"
    out.write_bytes(content)
    with pytest.raises(UserError, match="out.jsonl"):
        run_batch(ex, src, out, progress=False)
    assert out.read_bytes() == content


def test_input_is_never_the_output(tmp_path, toy_run, monkeypatch):
    ex = load_extractor(toy_run)
    src = _input(tmp_path / "in.jsonl", 5)
    before = src.read_bytes()
    (tmp_path / "link.jsonl").symlink_to(src)
    os.link(src, tmp_path / "hard.jsonl")
    monkeypatch.chdir(tmp_path)
    for out in [src, Path("in.jsonl"), Path("sub/../in.jsonl"), tmp_path / "link.jsonl", tmp_path / "hard.jsonl"]:
        for overwrite in (False, True):
            with pytest.raises(UserError, match="is the input file itself"):
                run_batch(ex, src, out, overwrite=overwrite, progress=False)
    assert src.read_bytes() == before


def test_overwrite_empties_only_after_the_input_checked_out(tmp_path, toy_run):
    ex = load_extractor(toy_run)
    out = tmp_path / "out.jsonl"
    run_batch(ex, _input(tmp_path / "good.jsonl", 6), out, progress=False)
    before = out.read_bytes()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": 3}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.jsonl:2"):
        run_batch(ex, bad, out, overwrite=True, progress=False)
    assert out.read_bytes() == before
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(UserError, match="no texts"):
        run_batch(ex, empty, out, overwrite=True, progress=False)
    assert out.read_bytes() == before


def test_a_cut_at_any_byte_resumes_to_the_same_file(tmp_path, toy_run):
    """A SIGKILL mid-write leaves a prefix of the output; every prefix must resume exactly."""
    ex = load_extractor(toy_run)
    src = _input(tmp_path / "in.jsonl", 40)
    full_path = tmp_path / "full.jsonl"
    run_batch(ex, src, full_path, batch_size=7, progress=False)
    full = full_path.read_bytes()
    out = tmp_path / "out.jsonl"
    newlines = [i + 1 for i, b in enumerate(full) if b == 10]
    cuts = sorted({0, 1, 5, 8, len(full) - 1, len(full)} | set(newlines[::5])
                  | {n + d for n in newlines[::3] for d in (1, 7, 9)})
    for cut in cuts:
        if cut > len(full):
            continue
        out.write_bytes(full[:cut])
        summary = run_batch(ex, src, out, batch_size=7, progress=False)
        assert out.read_bytes() == full, cut
        assert summary.rows_total == 40


def _wait_rows(path: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        if proc.poll() is not None:
            return
        time.sleep(0.01)
    raise AssertionError(f"{path} never reached {n} rows")


@pytest.mark.slow
def test_second_batch_on_same_output_is_refused(tmp_path, toy_run):
    src = _input(tmp_path / "in.jsonl", 120)
    out = tmp_path / "out.jsonl"
    args = toy_cli_command("batch", str(toy_run), "-i", str(src), "-o", str(out), "--batch-size", "8")
    env = {**os.environ, "FX_TOY_DELAY": "1.0", "OMP_NUM_THREADS": "1"}  # the first run takes ~15 s
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_rows(out, 8, first)
        assert first.poll() is None
        second = subprocess.run(args, env={**env, "FX_TOY_DELAY": "0"}, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2, second.stderr
        assert "batch output is in use by process" in second.stderr and "Traceback" not in second.stderr
        assert first.poll() is None, "the refusal must have come while the first run held the lock"
        os.kill(first.pid, signal.SIGKILL)  # its lock dies with it: the rerun is not blocked
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    res = subprocess.run(args, env={**env, "FX_TOY_DELAY": "0"}, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert _rows(out) == list(range(120))


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_rows", [1, 64, 200])
def test_sigkill_twice_at_any_stage_then_rerun_is_exact(tmp_path, toy_run, kill_after_rows):
    """Kill in the first chunk, mid-run, and after the final write (the last fsync); then kill
    the rerun too; the third run completes with every input row exactly once."""
    n = 200
    src = _input(tmp_path / "in.jsonl", n)
    out = tmp_path / "out.jsonl"
    args = toy_cli_command("batch", str(toy_run), "-i", str(src), "-o", str(out), "--batch-size", "8")
    env = {**os.environ, "FX_TOY_DELAY": "0.02", "OMP_NUM_THREADS": "1"}
    for target in (kill_after_rows, min(n, kill_after_rows + 40)):
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_rows(out, target, proc)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
    env["FX_TOY_DELAY"] = "0"
    res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["row"] for r in rows] == list(range(n))
    assert [r["text"] for r in rows] == _texts(n)
    assert [r["fields"] for r in rows] == load_extractor(toy_run).predict(_texts(n))


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.slow
def test_full_disk_is_a_clean_error_and_resumable(tmp_path, toy_run):
    src = _input(tmp_path / "in.jsonl", 100)
    out = tmp_path / "out.jsonl"
    args = toy_cli_command("batch", str(toy_run), "-i", str(src), "-o", str(out), "--batch-size", "10")
    res = subprocess.run(args, capture_output=True, text=True, timeout=120, preexec_fn=_limit_file_size(3000))
    assert res.returncode == 2, res.stderr
    assert "cannot write" in res.stderr and "out.jsonl" in res.stderr and "Traceback" not in res.stderr
    saved = _rows(out)  # complete rows only, numbered from 0
    assert saved == list(range(len(saved))) and len(saved) % 10 == 0
    res = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert _rows(out) == list(range(100))
    # predict -o: atomic, so the old file survives and no temporary file is left behind
    pred_out = tmp_path / "pred.jsonl"
    pred_out.write_text("old\n", encoding="utf-8")
    args = toy_cli_command("predict", str(toy_run), "-i", str(src), "-o", str(pred_out))
    res = subprocess.run(args, capture_output=True, text=True, timeout=120, preexec_fn=_limit_file_size(2000))
    assert res.returncode == 2 and "cannot write" in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert pred_out.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".pred")) == []


@pytest.mark.slow
def test_ctrl_c_is_honoured_and_resumable(tmp_path, toy_run):
    src = _input(tmp_path / "in.jsonl", 100)
    out = tmp_path / "out.jsonl"
    args = toy_cli_command("batch", str(toy_run), "-i", str(src), "-o", str(out), "--batch-size", "5")
    env = {**os.environ, "FX_TOY_DELAY": "0.2", "OMP_NUM_THREADS": "1"}
    # SIGINT back to its default in the child: a shell's background job (`make test &`) starts with it
    # ignored, Python then installs no KeyboardInterrupt handler, and the run would ignore the signal
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_rows(out, 10, proc)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=30)[1]
    assert time.monotonic() - t0 < 5
    assert proc.returncode == 130 and "Traceback" not in err, err
    res = subprocess.run(args, env={**env, "FX_TOY_DELAY": "0"}, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert _rows(out) == list(range(100))
