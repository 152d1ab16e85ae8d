"""The parent's side of the ``processes`` engine's workers: :class:`WorkerProcess` starts and
stops one, :class:`Collector` turns what they send into durable ledger records.

The collector appends each record to the run's one ledger as it arrives (the line the worker
made, written as is), flushes the records read together with one fsync, and only then hands
them back to be counted and reported; a key is recorded once. It also keeps what the workers
say about themselves: which ask for more items, why one stopped sending (the budget, a fatal
error), what each cost when it ended, and which exited without ending (killed, out of memory).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from vlmkit.errors import ConfigError
from vlmkit.inputs import InputItem
from vlmkit.ledger import LedgerRecord
from vlmkit.processes.backlog import Chunk
from vlmkit.processes.worker import Shard

if TYPE_CHECKING:
    from vlmkit.ledger import Ledger

__all__ = ["Collector", "WorkerProcess"]

#: Messages read from the workers at most before they are flushed and reported together.
GATHER = 256


class WorkerProcess:
    """One worker process and this side of its two pipes (see :mod:`vlmkit.processes.worker`)."""

    def __init__(self, index: int, process: Any, down: Any, up: Any) -> None:
        self.index = index
        self.process = process
        self.down = down  # to the worker: the shard, chunks, "done", then "stop"
        self.up = up  # from the worker: its messages; EOF once it exited

    @classmethod
    def start(cls, index: int) -> WorkerProcess:
        """Start worker ``index``: it imports what it needs, then waits for its shard."""
        import subprocess
        from multiprocessing.connection import Connection

        if os.name != "posix":
            raise ConfigError(
                "the processes engine needs a POSIX system (Linux, macOS); use the local engine"
            )
        down_read, down_write = os.pipe()
        up_read, up_write = os.pipe()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "vlmkit.processes.worker", str(down_read), str(up_write)],
                pass_fds=(down_read, up_write),
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C is the parent's: it stops the workers
            )
        except BaseException:
            for fd in (down_read, down_write, up_read, up_write):
                os.close(fd)
            raise
        os.close(down_read)
        os.close(up_write)
        return cls(
            index,
            process,
            Connection(down_write, readable=False),
            Connection(up_read, writable=False),
        )

    def give(self, items: Shard | Chunk | str) -> None:
        """Send the worker its shard, a chunk of items, or ``"done"`` (no more items). A large
        one blocks until the worker reads it: start every worker first, so that they start up
        together. Nothing once it was stopped; a worker that died meanwhile is found when its
        pipe ends."""
        if self.down.closed:
            return
        with contextlib.suppress(OSError):
            self.down.send(items)

    def stop(self) -> None:
        """Start nothing new (the requests in flight are answered and recorded)."""
        if self.down.closed:
            return
        with contextlib.suppress(OSError):  # it has exited already
            self.down.send("stop")
        self.down.close()

    def finish(self, timeout: float = 30.0) -> None:
        """Stop reading, then wait for the process to exit (then kill it: a second Ctrl-C, a
        hung worker). Closing this end first means a worker blocked sending to a run that
        stopped (its pipe full) gets a broken pipe and exits, instead of waiting for the kill;
        what it had not sent is in the answer cache."""
        import subprocess

        self.up.close()
        try:
            self.process.wait(timeout)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            self.process.kill()
            self.process.wait()


class Collector:
    """Reads the workers' messages into ``ledger``; ``awaited`` are the items not yet recorded.

    After each :meth:`poll`: ``asks`` holds the workers that asked for more items,
    ``stops`` the ``(why, error_type, message)`` of workers that stopped sending, ``ends`` the
    ``(usage, reparsed, spent_usd)`` of workers that ended, ``lost`` the workers that exited
    without ending. ``open`` is true while a worker may still send; ``stopped`` once
    :meth:`stop_all` told them to start nothing new."""

    def __init__(self, workers: list[WorkerProcess], awaited: dict[str, InputItem]) -> None:
        self.workers = workers
        self.awaited = awaited
        self._open: dict[Any, WorkerProcess] = {}
        self._ended: set[int] = set()
        self.stopped = False
        self.asks: list[WorkerProcess] = []
        self.stops: list[tuple[str, str, str]] = []
        self.ends: list[tuple[Any, int, float]] = []
        self.lost: list[WorkerProcess] = []

    def add(self, worker: WorkerProcess) -> None:
        """Read ``worker``'s messages from now on."""
        self.workers.append(worker)
        self._open[worker.up] = worker

    @property
    def open(self) -> bool:
        return bool(self._open)

    def stop_all(self) -> None:
        self.stopped = True
        for worker in self.workers:
            worker.stop()

    def poll(self, ledger: Ledger, timeout: float) -> list[tuple[LedgerRecord, InputItem]]:
        """Wait up to ``timeout`` s for messages; record what arrived, durably; return the
        records with their items, in arrival order."""
        from multiprocessing.connection import wait

        messages: list[tuple[WorkerProcess, tuple[Any, ...]]] = []
        exited: list[WorkerProcess] = []
        ready: list[Any] = wait(list(self._open), timeout=timeout)
        for reader in ready:
            worker = self._open[reader]
            try:
                while len(messages) < GATHER:
                    messages.append((worker, reader.recv()))
                    if not reader.poll():
                        break
            except EOFError:  # the worker exited; everything it sent has been read
                exited.append(self._open.pop(reader))
        recorded: list[tuple[LedgerRecord, InputItem]] = []
        for worker, message in messages:
            kind = message[0]
            if kind == "more":
                self.asks.append(worker)
            elif kind == "record":
                record = LedgerRecord.from_dict(json.loads(message[1]))
                item = self.awaited.pop(record.key, None)  # a key is recorded once
                if item is not None:
                    ledger.append(record, line=message[1], sync=False)
                    recorded.append((record, item))
            elif kind == "stop":
                self.stops.append((message[1], message[2], message[3]))
            elif kind == "end":
                _kind, index, usage, reparsed, spent = message
                self._ended.add(int(index))
                self.ends.append((usage, int(reparsed), float(spent)))
        for worker in exited:
            worker.process.wait()
            if worker.index not in self._ended:
                self.lost.append(worker)
        if recorded:
            ledger.sync()  # durable before any of them counts as done
        return recorded
