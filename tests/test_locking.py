"""The run-directory / output-file lock: refuses a live holder, takes over a dead one's lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from finextract.locking import FileLock, LockedError, RunLock, lock_for, pid_alive


def _hold_in_child(lock_path, ready_path):
    code = textwrap.dedent(f"""
        import time, pathlib
        from finextract.locking import FileLock
        lock = FileLock({str(lock_path)!r}).acquire()
        pathlib.Path({str(ready_path)!r}).write_text("ok")
        time.sleep(60)
    """)
    return subprocess.Popen([sys.executable, "-c", code], env={**os.environ})


def _wait_for(path, proc):
    import time

    for _ in range(300):
        if path.exists():
            return
        assert proc.poll() is None, "child died"
        time.sleep(0.05)
    raise AssertionError("child never took the lock")


def test_second_holder_refused_and_named(tmp_path):
    ready = tmp_path / "ready"
    child = _hold_in_child(tmp_path / "run" / ".lock", ready)
    try:
        _wait_for(ready, child)
        with pytest.raises(LockedError) as err:
            RunLock(tmp_path / "run").acquire()
        msg = str(err.value)
        assert str(tmp_path / "run") in msg and f"process {child.pid}" in msg and "run directory" in msg
    finally:
        child.kill()
        child.wait()


def test_stale_lock_of_killed_process_taken_over(tmp_path, caplog):
    ready = tmp_path / "ready"
    child = _hold_in_child(tmp_path / "run" / ".lock", ready)
    _wait_for(ready, child)
    child.kill()  # SIGKILL: no cleanup runs, the lock file still names the dead pid
    child.wait()
    assert json.loads((tmp_path / "run" / ".lock").read_text())["pid"] == child.pid
    assert not pid_alive(child.pid)
    with caplog.at_level("WARNING", logger="finextract"):
        with RunLock(tmp_path / "run") as lock:
            assert lock.held
            assert json.loads((tmp_path / "run" / ".lock").read_text())["pid"] == os.getpid()
    assert any("stale lock" in r.message and str(child.pid) in r.message for r in caplog.records)


def test_release_then_reacquire_and_reentrant(tmp_path):
    lock = lock_for(tmp_path / "out.jsonl", what="batch output")
    assert lock.path == tmp_path / ".out.jsonl.lock"
    lock.acquire()
    assert lock.acquire() is lock  # acquiring twice in one holder is a no-op
    with pytest.raises(LockedError, match="batch output"):
        FileLock(lock.path, what="batch output").acquire()  # a second fd in this process conflicts too
    lock.release()
    with FileLock(lock.path):
        pass
