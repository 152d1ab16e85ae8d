"""Feeding a run's sinks while it runs, so the end of the run only commits them."""

from __future__ import annotations

import collections
import logging
import queue
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from vlmkit.errors import ConfigError
from vlmkit.ledger import LedgerRecord, LedgerState, read_ledger

if TYPE_CHECKING:
    from vlmkit.export import Exporter, ExportResult
    from vlmkit.ledgerindex import LedgerIndex

__all__ = ["SinkFeed", "commit_sinks"]

log = logging.getLogger(__name__)


class SinkFeed:
    """Writes a run's records into its two-phase sinks while the run goes on, in the ledger's
    first-seen order, so that the end of the run only commits (the output is the same as
    exporting the finished ledger: the files are staged and invisible until then). Sinks that
    are not two-phase (a plain third-party :class:`~vlmkit.Sink`) would show what they write at
    once, so they get the whole ledger at the end, just before the commit; one of them never
    turns staging off for the others.

    A record is written once it is final: records of earlier runs at once, unless this run
    re-runs their item (``--retry-failed``), in which case the feed waits for the new record,
    which keeps the old one's place; records of new items as they are appended. A record is
    held only until it is written (then the sinks hold what their files need): the feed keeps
    each key, not each result. Any problem (a full disk, a key recorded twice) stops the feed
    and discards what it staged; the run then exports the whole ledger, read again from
    ``ledger_path``, at the end as before.
    """

    def __init__(
        self, exporter: Exporter, state: LedgerState, rerun: set[str], ledger_path: Path
    ) -> None:
        self.exporter = exporter
        self.ledger_path = ledger_path
        self.bad_lines = state.bad_lines
        self.held = dict(state.records)  # records not written yet, by key
        self.order = collections.deque(state.records)  # keys to write, first-seen order
        self.known = set(self.order)  # every key recorded (a key recorded twice is a bug)
        self.waiting = rerun & self.known
        self.failed = False
        self._appended: queue.SimpleQueue[LedgerRecord] = queue.SimpleQueue()

    def appended(self, record: LedgerRecord) -> None:
        """The ledger's ``on_append`` hook: called in file order, under the ledger's lock."""
        self._appended.put(record)

    def pump(self) -> None:
        """Write every record that became final (the run loop calls this between outcomes)."""
        self._step(final=False)

    def finish(self) -> ExportResult | None:
        """Write what is left and commit; None if the feed failed (then export instead)."""
        self._step(final=True)
        if self.failed:
            return None
        if not self.exporter.staged_only:
            try:  # the plain sinks: the whole ledger, in its order, now that it is final
                for record in list(read_ledger(self.ledger_path)):
                    self.exporter.add(record, only="plain")
            except BaseException:
                self.discard()
                raise
        return self.exporter.finish(bad_lines=self.bad_lines)

    def _step(self, *, final: bool) -> None:
        if self.failed:
            return
        try:
            self._drain()
            if final:  # items this run did not get to keep their earlier record
                self.waiting.clear()
            while self.order and self.order[0] not in self.waiting:
                self.exporter.add(self.held.pop(self.order.popleft()), only="staged")
        except Exception as err:  # never stop the run for its sinks: export at the end
            log.warning(
                "writing the sinks during the run stopped (%s); they are written at the end "
                "instead",
                err,
            )
            self.discard()

    def _drain(self) -> None:
        """Take in the keys appended since, in file order."""
        while True:
            try:
                record = self._appended.get_nowait()
            except queue.Empty:
                return
            key = record.key
            if key not in self.known:
                self.known.add(key)
                self.order.append(key)
            elif key in self.waiting:
                self.waiting.discard(key)
            else:
                raise ConfigError(f"{key!r} was recorded twice in one run")
            self.held[key] = record

    def discard(self) -> None:
        self.failed = True
        self.exporter.discard()


def commit_sinks(
    state: LedgerState | LedgerIndex,
    exporter: Exporter | None,
    feed: SinkFeed | None,
    new_exporter: Callable[[], Exporter | None],
    out_dir: Path,
    ledger_path: Path | None = None,
) -> ExportResult | None:
    """Commit the sinks fed during a run; without a feed (no sink is two-phase), or if
    feeding failed, export the whole ledger as ``vlmkit export`` would: read again from
    ``ledger_path`` (or ``state``, a full :class:`LedgerState` kept up to date, without one).
    ``state`` says which keys are done. Nothing is written (and None returned) while no image
    has an answer: no dataset that only looks like one."""
    if exporter is None:
        return None
    if not state.done:
        log.warning(
            "no image of %s has an answer yet, so no sink file was written (%s)",
            out_dir,
            ", ".join(name for name, _sink in exporter.built),
        )
        (feed or exporter).discard()
        return None
    if feed is not None:
        files = feed.finish()
        if files is not None:
            return files
        exporter = new_exporter()  # the feed's sinks were discarded: start afresh
        assert exporter is not None
    if ledger_path is not None:
        return exporter.replay(read_ledger(ledger_path))
    assert isinstance(state, LedgerState), "a run without its ledger's path keeps a full state"
    whole = LedgerState(
        records=dict(state.records), bad_lines=state.bad_lines, torn_lines=state.torn_lines
    )
    return exporter.replay(whole)
