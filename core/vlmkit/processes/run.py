"""A run answered by worker processes on this machine: :class:`ProcessRun`.

Everything the run folder promises stays with the core's :class:`vlmkit.runner.Run` in this
(the parent's) process: the run lock, ``run.json``, resume, the one ledger, the sinks fed as
records arrive and committed once at the end, the summary. Only the answering moves: the
pending items go to ``workers`` processes (:mod:`vlmkit.processes.worker`), each with its own
Session and its share of the requests in flight, in chunks each worker asks for as it needs
them (:class:`~vlmkit.processes.deal.Dealer`) — a worker held up by slow answers leaves the
rest to the others, and a run that stops hands out nothing more. Each record they send back
is appended to the ledger here, fsynced, before it counts. Records that arrive together share
one flush.

Why: the google-genai SDK itself needs a few milliseconds of CPU per request (request
building, pydantic, httpx), so one Python process tops out near one core's worth of requests
whatever its threads; processes use the machine's other cores (docs/benchmarks.md).

A worker that dies (killed, out of memory) loses nothing recorded: its items not yet
recorded stay to do, the run says so and stops; the same command resumes (answers the dead
worker had received are in the answer cache when it is on, the default of ``vlmkit label``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from vlmkit.engines import SessionSpec
from vlmkit.errors import ConfigError, VlmkitError, error_named
from vlmkit.inputs import InputItem
from vlmkit.ledger import LedgerRecord
from vlmkit.outcomes import ItemOutcome
from vlmkit.processes.deal import Dealer
from vlmkit.processes.pool import Collector, WorkerProcess
from vlmkit.processes.worker import Shard
from vlmkit.runner import Run

if TYPE_CHECKING:
    from vlmkit.ledger import Ledger
    from vlmkit.sinkfeed import SinkFeed

__all__ = ["ProcessRun"]

log = logging.getLogger(__name__)


class ProcessRun(Run):
    """A :class:`vlmkit.runner.Run` whose items are answered by ``workers`` processes.

    ``spec`` rebuilds the session in every worker. The run's ``concurrency`` is the requests
    in flight across all workers; its ``budget_usd`` is split evenly between them (each stops
    at its share, so the run never spends more than the budget).
    """

    def __init__(
        self,
        session: Any,
        task: str,
        inputs: Any,
        *,
        spec: SessionSpec,
        workers: int = 2,
        batch_size: int | None = None,
        **run_arguments: Any,
    ) -> None:
        if batch_size is not None:  # the default concurrency reads the model batch
            session.set_batch_size(batch_size)
        super().__init__(session, task, inputs, **run_arguments)
        if workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        self.spec = spec
        self.workers = int(workers)
        self.batch_size = batch_size

    def _shards(self, dealer: Dealer, count: int, threads: int) -> list[Shard]:
        """How each of ``count`` workers answers, with its first chunk of items."""
        share = self.budget_usd / count if self.budget_usd is not None else None
        shards = []
        for index in range(count):
            first = dealer.first()
            shards.append(
                Shard(
                    index=index,
                    spec=self.spec,
                    task=self.task,
                    prompt=self.prompt,
                    options=self.options,
                    items=first.items,
                    attempts=first.attempts,
                    replays=first.replays,
                    threads=threads,
                    pixel_budget=max(self._dispatcher.pixel_budget.limit // count, 1),
                    budget_usd=share,
                    batch_size=self.batch_size,
                )
            )
        return shards

    def _process(
        self,
        pending: list[InputItem],
        attempts: Mapping[str, int],
        ledger: Ledger,
        feed: SinkFeed | None,
    ) -> Iterator[ItemOutcome]:
        if not pending:
            return
        collector = Collector([], {item.key: item for item in pending})
        workers = collector.workers
        count = max(min(self.workers, len(pending)), 1)
        threads = max(math.ceil(self.concurrency / count), 1)
        dealer = Dealer(pending, attempts, self._dispatcher.replays, workers=count, threads=threads)
        try:
            shards = self._shards(dealer, count, threads)
            for shard in shards:  # all start up at once, then each gets its items
                collector.add(WorkerProcess.start(shard.index))
            for worker, shard in zip(workers, shards, strict=True):
                worker.give(shard)
            yield from self._collect(collector, dealer, ledger, feed)
        except GeneratorExit:  # the caller stopped iterating: record what is paid for
            for worker in workers:
                worker.stop()
            while collector.open:
                for record, item in collector.poll(ledger, timeout=1.0):
                    self.summary.count(self._outcome(record, item))
            raise
        except KeyboardInterrupt:  # a second Ctrl-C: abandon what is in flight
            for worker in workers:
                worker.process.kill()
            raise
        finally:
            for worker in workers:
                worker.stop()  # nothing new; a worker gone already is fine
            for worker in workers:
                worker.finish()

    def _collect(
        self, collector: Collector, dealer: Dealer, ledger: Ledger, feed: SinkFeed | None
    ) -> Iterator[ItemOutcome]:
        fatal: VlmkitError | None = None
        interrupted = False
        while collector.open:
            if feed is not None:
                feed.pump()
            if self._interrupt_requested and not interrupted:
                interrupted = True  # in-flight answers are recorded, nothing new starts
                self.summary.stopped = "interrupted"
                collector.stop_all()
            try:
                recorded = collector.poll(ledger, timeout=0.1)
            except OSError as err:  # a full disk: stop before more answers are paid for
                self.summary.stopped = "error"
                raise VlmkitError(
                    f"could not write the run's ledger {ledger.path} ({err.strerror or err}): "
                    "the run stopped so that no more answers are paid for and lost; what was "
                    "recorded is kept, the answers not recorded are in the answer cache when "
                    "the cache is on (the default of vlmkit label). Free some space, then "
                    "re-run the same command to resume"
                ) from err
            fatal = self._take_news(collector, fatal)
            for worker in collector.asks:  # after the news: a run that stops hands out nothing
                if not collector.stopped:
                    worker.give(dealer.more() or "done")
            collector.asks.clear()
            for record, item in recorded:
                outcome = self._outcome(record, item)
                self._report(outcome)
                yield outcome
        if interrupted:
            raise KeyboardInterrupt
        if fatal is not None:
            raise fatal

    @staticmethod
    def _outcome(record: LedgerRecord, item: InputItem) -> ItemOutcome:
        return ItemOutcome(
            key=record.key,
            path=item.path,
            status=record.status,
            result=record.result,
            error=record.error,
            error_type=record.error_type,
        )

    def _take_news(self, collector: Collector, fatal: VlmkitError | None) -> VlmkitError | None:
        """What the workers said about themselves: a stop (the budget: the others stop too;
        a fatal error or a lost worker: the run stops, the first reason wins), their costs."""
        for why, error_type, message in collector.stops:
            collector.stop_all()
            if why == "budget":
                if self.summary.stopped is None:
                    self.summary.stopped = "budget"
                    log.warning("budget reached: no new request is sent")
            elif fatal is None:
                self.summary.stopped = why
                fatal = error_named(error_type, message)
        for worker in collector.lost:
            collector.stop_all()
            if fatal is None:
                self.summary.stopped = "error"
                fatal = VlmkitError(
                    f"a worker process died (worker {worker.index}, pid {worker.process.pid}, "
                    f"exit code {worker.process.returncode}): the items it had not recorded "
                    "stay to do; what was recorded is kept. Re-run the same command to resume "
                    "(answers it had received are in the answer cache when the cache is on)"
                )
        for usage, reparsed, spent in collector.ends:
            self._dispatcher.unparsed_usage += usage  # the run adds it to this session's (none)
            self.summary.reparsed += reparsed
            if self.budget is not None:
                self.budget.spent_usd += spent
        collector.stops.clear()
        collector.lost.clear()
        collector.ends.clear()
        return fatal
