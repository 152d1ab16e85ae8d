"""One worker process of the ``processes`` engine: its own Session, the items it pulls.

The worker builds a Session from the run's :class:`~vlmkit.engines.SessionSpec` and answers
its items with the core's own :class:`~vlmkit.dispatch.Dispatcher` — the same bounded
concurrency, retries, pixel budget, re-parsing of kept answers and failure recording as a
local run — but its "ledger" forwards each record, as its ledger line, to the parent process,
which writes the one real ledger. Its items come in chunks: the :class:`Shard` brings the
first, and whenever fewer than its threads wait (:class:`~vlmkit.processes.backlog.Backlog`)
it asks for the next, so a worker held up by slow answers leaves the rest to the others.
Messages on the worker's pipe to the parent:

- ``("record", line)``: one item's ledger line (bytes), as it was recorded;
- ``("more",)``: send the next chunk (or ``"done"``: none is left);
- ``("stop", why, error_type, message)``: the worker stopped sending (``"budget"``, or a fatal
  error such as bad credentials);
- ``("end", index, usage, reparsed, spent_usd)``: the worker is done; what its answers cost.

A worker is its own interpreter, ``python -m vlmkit.processes.worker DOWN UP``, started in its
own session (the terminal's Ctrl-C reaches only the parent) with two inherited pipes: DOWN
brings the shard, then the chunks asked for and ``"done"``; ``"stop"`` (or the pipe's end)
means "start nothing new" — the parent's Ctrl-C, another worker's fatal error, or the parent
gone, so a worker never outlives its run; UP takes the messages. Not :mod:`multiprocessing`'s
spawn: that runs the user's ``__main__`` again in every child (a script without an
``if __name__ == "__main__"`` guard would start its run again there).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import warnings
from pathlib import Path
from typing import Any

import attrs

from vlmkit.engines import SessionSpec
from vlmkit.inputs import InputItem
from vlmkit.ledger import LedgerRecord
from vlmkit.processes.backlog import Backlog, Chunk

__all__ = ["Shard", "main", "serve"]

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class Shard:
    """How one worker answers, with its first ``items`` as ``(key, path)`` pairs.

    ``attempts`` and ``replays`` are the run's for these keys; ``threads`` the requests this
    worker keeps in flight; ``budget_usd`` its share of the run's budget (None: no cap)."""

    index: int
    spec: SessionSpec
    task: str
    prompt: Any
    options: dict[str, Any]
    items: tuple[tuple[str, str], ...]
    attempts: dict[str, int]
    replays: dict[str, str]
    threads: int
    pixel_budget: int
    budget_usd: float | None = None
    batch_size: int | None = None


class _Results:
    """The worker's end of its pipe to the parent, shared by the worker's threads."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._lock = threading.Lock()

    def put(self, message: tuple[Any, ...]) -> None:
        with self._lock:
            self._connection.send(message)


class _Forward:
    """The dispatcher's ledger in a worker: each record goes to the parent as its line."""

    def __init__(self, results: _Results) -> None:
        self.path = Path("<worker process>")
        self._results = results

    def append(self, record: LedgerRecord) -> None:
        self._results.put(("record", record.to_line()))


def _items(chunk: Chunk | Shard) -> list[InputItem]:
    return [InputItem(key=key, path=Path(path)) for key, path in chunk.items]


def _listen(down: Any, backlog: Backlog, attempts: dict[str, int], replays: dict[str, str]) -> None:
    """Take the chunks the parent sends into ``backlog`` until it says ``"done"``; start
    nothing new once it says ``"stop"``, or is gone (its pipe ends)."""
    with contextlib.suppress(EOFError, OSError):
        while (message := down.recv()) != "stop":
            if isinstance(message, Chunk):
                attempts.update(message.attempts)  # before its items can be taken
                replays.update(message.replays)
                backlog.add(_items(message))
            elif message == "done":
                backlog.close()
    backlog.stop.set()
    backlog.close()


def serve(shard: Shard, down: Any, up: Any) -> None:
    """Answer ``shard``, sending records on ``up``; ``down`` says when to stop."""
    results = _Results(up)
    from vlmkit.budget import Budget
    from vlmkit.dispatch import Dispatcher
    from vlmkit.errors import VlmkitError
    from vlmkit.outcomes import RunSummary, usage_since
    from vlmkit.types import Usage

    usage, reparsed, spent = Usage.zero(), 0, 0.0
    try:
        with warnings.catch_warnings():  # the parent built the same session and said them
            warnings.simplefilter("ignore")
            session = shard.spec.session()
    except Exception as err:  # a plugin that cannot load here, bad settings
        results.put(("stop", "error", type(err).__name__, f"a worker could not start: {err}"))
        results.put(("end", shard.index, usage, reparsed, spent))
        return
    try:
        if shard.batch_size is not None:
            session.set_batch_size(shard.batch_size)
        method = getattr(session, shard.task)
        if shard.task == "segment":  # as the parent's run does: not by the first answers
            from vlmkit.masks import warm_up

            warm_up()

        def call(item: InputItem, image: Any) -> Any:
            return method(image, shard.prompt, **shard.options)

        summary = RunSummary()
        budget = Budget(shard.budget_usd) if shard.budget_usd is not None else None
        dispatcher = Dispatcher(
            call=call,
            backend=session.backend,
            concurrency=shard.threads,
            budget=budget,
            pixel_budget=shard.pixel_budget,
            summary=summary,
            report=lambda outcome: None,
        )
        dispatcher.replays = dict(shard.replays)
        attempts = dict(shard.attempts)
        backlog = Backlog(
            _items(shard), threads=shard.threads, ask=lambda: results.put(("more",)),
            stop=dispatcher.stop,
        )  # fmt: skip
        before = session.usage
        listener = threading.Thread(
            target=_listen,
            args=(down, backlog, attempts, dispatcher.replays),
            name="vlmkit-chunks",
            daemon=True,
        )
        listener.start()
        try:
            for _ in dispatcher.process(backlog, attempts, _Forward(results), None):  # type: ignore[arg-type]
                pass
            if summary.stopped == "budget":
                results.put(("stop", "budget", "BudgetReached", "budget reached"))
        except VlmkitError as err:  # no item's fault (credentials, quota): the run stops
            results.put(("stop", summary.stopped or "error", type(err).__name__, str(err)))
        except Exception as err:  # a bug: say it, the parent stops the run
            log.exception("worker %d failed", shard.index)
            results.put(("stop", "error", type(err).__name__, f"a worker failed: {err}"))
        usage = usage_since(before, session.usage) + dispatcher.unparsed_usage
        reparsed = summary.reparsed
        spent = budget.spent_usd if budget is not None else 0.0
    finally:
        session.close()
        results.put(("end", shard.index, usage, reparsed, spent))


def main(argv: list[str]) -> int:
    """``python -m vlmkit.processes.worker DOWN UP``: the worker process."""
    from multiprocessing.connection import Connection

    down = Connection(int(argv[0]), writable=False)
    up = Connection(int(argv[1]), readable=False)
    try:
        shard = down.recv()
    except EOFError:  # the parent went away before sending the shard
        return 0
    try:
        serve(shard, down, up)
    except BrokenPipeError:  # the parent went away: what it did not read stays to do
        return 0
    finally:
        up.close()
    return 0


if __name__ == "__main__":
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main(sys.argv[1:]))
