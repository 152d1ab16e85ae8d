"""A sink's per-item work on a few threads: :meth:`vlmkit.StagedSink.in_background`.

Drawing a preview of a 12 MP photo costs about 160 ms of CPU, nearly all of it in Pillow and
OpenCV, which release the GIL; drawn one at a time in the thread that feeds the sinks, the
previews capped a run near 5 images per second whatever the machine (issue 16). Work handed
to :class:`BackgroundWork` runs on up to ``workers`` threads; at most ``2 × workers`` items
wait or run at once, so the thread that hands them in waits instead of piling up results when
the work is slower than the answers come. A failure is kept with the key of the item it
belongs to, for the export to report against that item.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

__all__ = ["BackgroundWork"]


class BackgroundWork:
    """Runs ``work()`` calls for items on up to ``workers`` threads named ``name-N``."""

    def __init__(self, workers: int, name: str) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.limit = 2 * workers
        self._name = name
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: collections.deque[tuple[str, Future[object]]] = collections.deque()
        self._failures: list[tuple[str, BaseException]] = []

    def submit(self, key: str, work: Callable[[], object]) -> None:
        """Start ``work`` for ``key`` once fewer than ``2 × workers`` items are in the works
        (waiting for the oldest until then)."""
        while True:
            with self._lock:
                self._reap()
                if len(self._pending) < self.limit:
                    if self._pool is None:
                        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix=self._name)
                    self._pending.append((key, self._pool.submit(work)))
                    return
                futures = [future for _key, future in self._pending]
            wait(futures, return_when=FIRST_COMPLETED)

    def wait(self) -> None:
        """Return once every item handed in is done."""
        with self._lock:
            futures = [future for _key, future in self._pending]
        wait(futures)
        with self._lock:
            self._reap()

    def failures(self) -> list[tuple[str, BaseException]]:
        """The ``(key, exception)`` of each finished item whose work raised, each once."""
        with self._lock:
            self._reap()
            taken, self._failures = self._failures, []
        return taken

    def cancel(self) -> None:
        """Drop the items not started, wait for those running, forget every failure, and let
        the threads go (a later :meth:`submit` starts new ones)."""
        with self._lock:
            pool, self._pool = self._pool, None
            pending, self._pending = self._pending, collections.deque()
            self._failures = []
        for _key, future in pending:
            future.cancel()
        if pool is not None:
            pool.shutdown(wait=True)

    def close(self) -> None:
        """Let the threads go once everything handed in is done (failures stay to be taken)."""
        self.wait()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _reap(self) -> None:
        """Move the finished items' failures to ``_failures`` (the lock is held)."""
        kept: collections.deque[tuple[str, Future[object]]] = collections.deque()
        for key, future in self._pending:
            if not future.done():
                kept.append((key, future))
            elif not future.cancelled() and (error := future.exception()) is not None:
                self._failures.append((key, error))
        self._pending = kept
