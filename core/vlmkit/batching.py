"""Dynamic micro-batching: many threads call ``generate``, the backend sees batches.

A local model is fastest when several requests run through it together. The runner keeps many
items in flight from threads; :class:`MicroBatcher` queues their requests and hands them to
``backend.generate_batch`` in groups of up to ``batch_size``, waiting at most ``max_wait_s``
for a batch to fill. Callers block until their own answer is ready.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from vlmkit.backend import Generation, Request
from vlmkit.errors import BackendError, VlmkitError

__all__ = ["MicroBatcher"]

_STOP = object()


class MicroBatcher:
    """Queue single requests and run them in batches on one worker thread."""

    def __init__(
        self,
        generate_batch: Callable[[Sequence[Request]], Sequence[Generation | VlmkitError]],
        *,
        batch_size: int,
        max_wait_s: float = 0.02,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._generate_batch = generate_batch
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self._queue: queue.Queue[object] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.batches: list[int] = []  # sizes of the batches run, for tests and benchmarks

    def generate(self, request: Request) -> Generation:
        future: Future[Generation] = Future()
        with self._lock:
            if self._closed:
                raise BackendError("the session is closed")
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._run, name="vlmkit-batcher", daemon=True
                )
                self._worker.start()
            self._queue.put((request, future))
        return future.result()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            try:
                while len(batch) < self.batch_size:
                    item = self._queue.get(timeout=self.max_wait_s)
                    if item is _STOP:
                        self._queue.put(_STOP)
                        break
                    batch.append(item)
            except queue.Empty:
                pass
            self._dispatch(batch)

    def _dispatch(self, batch: list[object]) -> None:
        pairs: list[tuple[Request, Future[Generation]]] = batch  # type: ignore[assignment]
        requests = [request for request, _ in pairs]
        futures = [future for _, future in pairs]
        self.batches.append(len(requests))
        try:
            results = list(self._generate_batch(requests))
            if len(results) != len(requests):
                raise BackendError(
                    f"generate_batch returned {len(results)} results for {len(requests)} requests"
                )
        except BaseException as err:  # the worker must never die with callers waiting
            for future in futures:
                future.set_exception(err)
            return
        for future, result in zip(futures, results, strict=True):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            worker = self._worker
        if worker is not None:
            self._queue.put(_STOP)
            worker.join(timeout=30)
