"""The parent's side of handing out a run's items: :class:`Dealer` cuts them into chunks as
the workers ask for them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from vlmkit.inputs import InputItem
from vlmkit.processes.backlog import Chunk

__all__ = ["Dealer"]


class Dealer:
    """Hands ``pending`` out in order, a chunk at a time, until none is left.

    A worker's first chunk is twice its ``threads`` (all of them busy, as many waiting); each
    later one is ``threads`` items, asked for when fewer than that wait in the worker. So a
    worker never holds more than about three times its threads that no other could take, and
    one held up by slow answers (large images, retries) leaves the rest to the others. Near
    the end a chunk is at most an even share of what is left among the ``workers``.
    """

    def __init__(
        self,
        pending: Sequence[InputItem],
        attempts: Mapping[str, int],
        replays: Mapping[str, str],
        *,
        workers: int,
        threads: int,
    ) -> None:
        self._pending = pending
        self._next = 0
        self._attempts = attempts
        self._replays = replays
        self._workers = max(int(workers), 1)
        self._threads = max(int(threads), 1)

    @property
    def left(self) -> int:
        """Items not handed out yet."""
        return len(self._pending) - self._next

    def first(self) -> Chunk:
        """A worker's first chunk: every worker's is as large (the last may be shorter)."""
        return self._take(min(2 * self._threads, math.ceil(len(self._pending) / self._workers)))

    def more(self) -> Chunk | None:
        """The next chunk for a worker that asked; None once none is left."""
        if not self.left:
            return None
        return self._take(min(self._threads, math.ceil(self.left / self._workers)))

    def _take(self, size: int) -> Chunk:
        mine = self._pending[self._next : self._next + size]
        self._next += len(mine)
        keys = [item.key for item in mine]
        return Chunk(
            items=tuple((item.key, item.file) for item in mine),
            attempts={key: self._attempts[key] for key in keys if key in self._attempts},
            replays={key: self._replays[key] for key in keys if key in self._replays},
        )
