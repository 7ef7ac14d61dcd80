"""Wait for a ``finextract serve`` subprocess to answer ``/health``: shared by tests and benchmarks."""

from __future__ import annotations

import subprocess
import time


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120.0, interval: float = 0.3) -> None:
    """Return once ``GET url/health`` answers 200; raise if the process exits or ``timeout`` passes."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            err = proc.stderr.read() if getattr(proc, "stderr", None) else ""
            raise RuntimeError(f"server exited with status {proc.returncode} before answering /health {err}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"server did not answer {url}/health within {timeout:.0f} s")
        time.sleep(interval)


def stop_process(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM (the server drains), then SIGKILL if it has not exited within ``timeout``."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
