"""A sink's per-item work on a few threads: :meth:`vlmkit.StagedSink.in_background`.

Drawing a preview of a 12 MP photo costs about 160 ms of CPU, nearly all of it in Pillow and
OpenCV, which release the GIL; drawn one at a time in the thread that feeds the sinks, the
previews capped a run near 5 images per second whatever the machine (issue 16). Work handed
to :class:`BackgroundWork` runs on up to ``workers`` threads; at most ``2 × workers`` items
wait or run at once, so the thread that hands them in waits instead of piling up results when
the work is slower than the answers come. What an item's work returns goes to its ``then``
in the items' order, in the thread that hands items in (a sink stages its files there, so
they commit in the items' order whatever thread finished first). A failure is kept with the
key of the item it belongs to, for the export to report against that item.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

__all__ = ["BackgroundWork"]

_Then = Callable[[Any], object] | None


class BackgroundWork:
    """Runs ``work()`` calls for items on up to ``workers`` threads named ``name-N``."""

    def __init__(self, workers: int, name: str) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.limit = 2 * workers
        self._name = name
        self._lock = threading.Lock()  # the queue (never held while waiting or finishing)
        self._order = threading.RLock()  # items are finished one caller at a time, in order
        self._pool: ThreadPoolExecutor | None = None
        self._pending: collections.deque[tuple[str, Future[Any], _Then]] = collections.deque()
        self._failures: list[tuple[str, BaseException]] = []

    def submit(self, key: str, work: Callable[[], Any], then: _Then = None) -> None:
        """Start ``work`` for ``key`` once fewer than ``2 × workers`` items are in the works
        (until then, wait for the oldest); ``then(result)`` runs once it and every earlier
        item are done, in the thread that submits or waits."""
        while True:
            self._finish_done()
            with self._lock:
                if len(self._pending) < self.limit:
                    if self._pool is None:
                        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix=self._name)
                    self._pending.append((key, self._pool.submit(work), then))
                    return
                oldest = self._pending[0][1]
            wait([oldest])

    def wait(self) -> None:
        """Return once every item handed in is done and finished."""
        with self._lock:
            futures = [future for _key, future, _then in self._pending]
        wait(futures)
        self._finish_done()

    def failures(self) -> list[tuple[str, BaseException]]:
        """The ``(key, exception)`` of each item whose work or ``then`` raised, each once."""
        self._finish_done()
        with self._lock:
            taken, self._failures = self._failures, []
        return taken

    def cancel(self) -> None:
        """Drop the items not started, wait for those running (their ``then`` never runs),
        forget every failure, and let the threads go (a later :meth:`submit` starts new
        ones)."""
        with self._order, self._lock:
            pool, self._pool = self._pool, None
            pending, self._pending = self._pending, collections.deque()
            self._failures = []
        for _key, future, _then in pending:
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

    def _finish_done(self) -> None:
        """Hand the results of the oldest items that are done to their ``then``, in order,
        stopping at the first item still running."""
        with self._order:
            while True:
                with self._lock:
                    if not self._pending or not self._pending[0][1].done():
                        return
                    key, future, then = self._pending.popleft()
                if future.cancelled():
                    continue
                error = future.exception()
                if error is None and then is not None:
                    try:
                        then(future.result())
                    except Exception as err:  # kept for the item, like its work's own
                        error = err
                if error is not None:
                    with self._lock:
                        self._failures.append((key, error))
