"""One writer per run folder: an advisory lock held for the whole run.

``OUT/.vlmkit.lock`` is locked with :func:`fcntl.flock` while a run writes the folder, and
holds the writer's process id. A second run on the same folder stops at once with an error
naming that process. The operating system releases the lock when its holder exits in any way
(SIGKILL included), so the lock of a dead process is simply taken over. Where ``fcntl`` does
not exist (Windows) the folder is not locked.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from vlmkit.errors import ConfigError

__all__ = ["LOCK_NAME", "RunLock"]

log = logging.getLogger(__name__)

LOCK_NAME = ".vlmkit.lock"


class RunLock:
    """The exclusive lock of one run folder; :meth:`acquire` it before writing anything."""

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`~vlmkit.ConfigError` naming the process holding it."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            log.debug("no fcntl: %s is not locked", self.out_dir)
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise ConfigError(
                f"{self.out_dir} is in use by another vlmkit run ({who}); wait for it to "
                "finish (or stop it), or use another --out folder"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock (the file stays: removing it would race with the next run)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the descriptor releases the flock

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except (OSError, ValueError):
        return None
