"""Advisory locks so two processes never write the same run directory or output file.

Built on ``fcntl.flock`` rather than a "lock file exists" convention: the kernel releases a
flock when its holder dies, however it dies (SIGKILL, OOM, power loss on a local disk), so a
lock left by a killed process can never block a later run; the next process simply gets it.
The holder's pid is written into the lock file only to make the refusal message useful and to
tell the user when a lock of a dead process was taken over. On platforms without ``fcntl``
(Windows) the ``filelock`` library provides the same semantics (its lock file is truncated by
every contender, which is why it is not used on POSIX: the holder's pid would be lost).

Usage::

    with RunLock(run_dir):          # raises LockedError if another process holds it
        ...

    lock = FileLock(output_path.with_name(output_path.name + ".lock"), what="batch output")
    lock.acquire(); ...; lock.release()
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from finextract.errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("finextract")


class LockedError(UserError):
    """Another live process holds the lock."""


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host (signal 0 probes without sending)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class FileLock:
    """An exclusive, non-blocking lock on ``path`` (created if missing, never deleted).

    ``what`` names the locked thing in the error message ("run directory", "batch output").
    The lock file is kept after release: deleting it would race with a process that has just
    opened it, and an unlocked leftover file is harmless.
    """

    def __init__(self, path: str | os.PathLike[str], what: str = "file", target: str | None = None):
        self.path = Path(path)
        self.what = what
        self.target = target or str(self.path)
        self._fd: int | None = None
        self._fallback: Any = None

    @property
    def held(self) -> bool:
        return self._fd is not None or self._fallback is not None

    def holder(self) -> dict[str, Any]:
        """What the lock file says about its (last) holder; empty if unreadable."""
        try:
            return json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}

    def _refuse(self) -> LockedError:
        info = self.holder()
        who = f"process {info['pid']}" if "pid" in info else "another process"
        if info.get("host") and info.get("host") != socket.gethostname():
            who += f" on {info['host']}"
        since = f" since {time.strftime('%H:%M:%S', time.localtime(info['time']))}" if "time" in info else ""
        return LockedError(f"{self.target}: {self.what} is in use by {who}{since} "
                           f"(lock file {self.path}); wait for it to finish or stop it first")

    def acquire(self) -> "FileLock":
        if self.held:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover - Windows
            import filelock

            lock = filelock.FileLock(str(self.path))
            try:
                lock.acquire(timeout=0)
            except filelock.Timeout:
                raise self._refuse() from None
            self._fallback = lock
            return self
        previous = self.holder()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise self._refuse() from None
        except OSError:
            os.close(fd)
            raise
        old_pid = previous.get("pid")
        if isinstance(old_pid, int) and old_pid != os.getpid() and previous.get("host") in (None, socket.gethostname()):
            state = "no longer running" if not pid_alive(old_pid) else "no longer holding it"
            log.warning("%s: took over a stale lock of process %s (%s)", self.target, old_pid, state)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time(),
                "argv": sys.argv[:4]}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fallback is not None:  # pragma: no cover - Windows
            self._fallback.release()
            self._fallback = None
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # a released lock names nobody
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "FileLock":
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


class RunLock(FileLock):
    """The lock of one run directory (``RUN_DIR/.lock``): one ``train`` at a time per directory."""

    def __init__(self, run_dir: str | os.PathLike[str]):
        super().__init__(Path(run_dir) / ".lock", what="run directory", target=str(run_dir))


def lock_for(path: str | os.PathLike[str], what: str = "file") -> FileLock:
    """The lock guarding ``path`` (an output file): a sibling ``.NAME.lock`` file."""
    path = Path(path)
    return FileLock(path.with_name(f".{path.name}.lock"), what=what, target=str(path))
