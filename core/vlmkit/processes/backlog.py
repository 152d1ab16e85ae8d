"""A worker's items waiting for its threads: :class:`Backlog`, refilled from the parent with
:class:`Chunk` messages. (``Chunk`` lives here, not in the worker's module: that one runs as
``__main__`` in the worker, where a class it defines is not the one the parent pickled.)"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable, Iterator

import attrs

from vlmkit.inputs import InputItem

__all__ = ["Backlog", "Chunk"]

#: How long (s) a thread waiting for the next chunk goes between looks at ``stop``.
WAIT_S = 0.1


@attrs.frozen(kw_only=True)
class Chunk:
    """More items for a worker, as ``(key, path)`` pairs, with the run's ``attempts`` and
    ``replays`` (kept answers to parse again) for these keys."""

    items: tuple[tuple[str, str], ...]
    attempts: dict[str, int]
    replays: dict[str, str]


class Backlog(Iterator[InputItem]):
    """The items a worker was handed and has not started, as an iterator its dispatcher's
    threads take from.

    When fewer than ``threads`` are left it calls ``ask`` once (the parent then sends more:
    :meth:`add`, or says none is left: :meth:`close`), so the threads rarely wait and the
    parent keeps what no worker needs yet for whichever asks first. A thread taking from an
    empty backlog waits for the next chunk; it stops (``StopIteration``) once the backlog is
    closed and empty, or once ``stop`` is set.
    """

    def __init__(
        self,
        items: Iterable[InputItem],
        *,
        threads: int,
        ask: Callable[[], None],
        stop: threading.Event,
    ) -> None:
        self.stop = stop
        self._items = collections.deque(items)
        self._threads = max(int(threads), 1)
        self._ask = ask
        self._asked = False
        self._closed = False
        self._changed = threading.Condition()

    def add(self, items: Iterable[InputItem]) -> None:
        """The parent's answer to an ask: more items."""
        with self._changed:
            self._items.extend(items)
            self._asked = False
            self._changed.notify_all()

    def close(self) -> None:
        """No more items will come."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def __next__(self) -> InputItem:
        with self._changed:
            item = None
            while item is None:
                if self.stop.is_set():  # also for a thread that waited for this chunk
                    raise StopIteration
                if self._items:
                    item = self._items.popleft()
                elif self._closed:
                    raise StopIteration
                ask = not (self._asked or self._closed) and len(self._items) < self._threads
                self._asked = self._asked or ask
                if ask:
                    self._ask_parent()
                if item is None:
                    self._changed.wait(WAIT_S)
        return item

    def _ask_parent(self) -> None:
        try:
            self._ask()
        except OSError:  # the parent is gone: what it did not read stays to do
            self.stop.set()
