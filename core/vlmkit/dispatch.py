"""The run's worker pool: workers take items, call the model and record each answer.

Every answer is appended to the ledger (and fsynced) by the worker that received it, before
the item counts as done; the run's thread only reports what the workers recorded.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from pathlib import Path
from typing import Any

from vlmkit.backend import Backend, Generation, Request
from vlmkit.budget import PAID_ANSWERS, REPLAY, RUN_BUDGET, Budget, BudgetReached
from vlmkit.errors import (
    AuthError,
    ConfigError,
    ParseError,
    RateLimited,
    UnsupportedTask,
    VlmkitError,
)
from vlmkit.imagefile import READ_AHEAD_MAX_BYTES, ImageBytes, read_image
from vlmkit.inputs import InputItem
from vlmkit.ledger import Ledger, LedgerRecord
from vlmkit.outcomes import ItemOutcome, RunSummary, outcome_problem
from vlmkit.pixels import DEFAULT_PIXEL_BUDGET, Held, PixelBudget, header_pixels, size_pixels
from vlmkit.runtime import PIXELS_RELEASED, REQUEST_GATE, RequestGate, RequestWithdrawn
from vlmkit.sinkfeed import SinkFeed
from vlmkit.types import FinishReason, Result, Usage

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)

# Errors that are not about one item: the run stops instead of failing every item alike.
FATAL = (AuthError, ConfigError, UnsupportedTask)
#: A 429 asking to wait longer than this (seconds) means the quota is exhausted: every item
#: would fail alike, so the run stops once and leaves the items to do.
QUOTA_PATIENCE_S = 120.0


def _ledger_failed(
    ledger: Ledger, err: OSError, answers: list[tuple[Request, Generation]]
) -> VlmkitError:
    why = err.strerror or str(err)
    kept = (
        "its answer is in the answer cache when the cache is on (the default of vlmkit label), "
        "so resuming does not pay for it again"
        if answers
        else "it was not answered"
    )
    stopped = VlmkitError(
        f"could not write the run's ledger {ledger.path} ({why}): the run stopped so that no "
        f"more answers are paid for and lost; the item being recorded stays to do ({kept}). "
        "Free some space, then re-run the same command to resume"
    )
    stopped.__cause__ = err
    return stopped


def _quota_exhausted(err: RateLimited) -> VlmkitError:
    wait = float(err.retry_after or 0.0)
    when = f"{wait / 3600:.1f} h" if wait >= 3600 else f"{wait / 60:.0f} min"
    stopped = RateLimited(
        f"quota exhausted: retry after {when} ({wait:.0f} s; the provider said: {err}). The "
        "items not done were left untouched: re-run the same command then to resume",
        retry_after=wait,
    )
    stopped.__cause__ = err
    return stopped


def _free_pixels(held: Held, request: Request) -> None:
    """A backend encoded ``request``'s images (:func:`vlmkit.release_pixels`): free the
    decoded pixels this run's call loaded — the images sent and the originals they came
    from — and give their share of the pixel budget back."""
    for sent in request.images:
        sent.image.close()
        sent.original.image.close()
    held.release()


def _finish_in_flight(
    workers: list[threading.Thread],
    in_flight: int,
    busy: Callable[[], int],
    drain: Callable[[], None],
) -> None:
    """Wait for ``workers`` to record the ``in_flight`` items already sent (``drain`` counts
    what they recorded meanwhile); a second Ctrl-C abandons them (``busy`` says how many)."""
    if in_flight:
        log.warning(
            "finishing %d item(s) already sent to the model (Ctrl-C again to abandon them)",
            in_flight,
        )
    try:
        for worker in workers:
            while worker.is_alive():
                drain()  # a worker may be waiting for room in the queue
                worker.join(0.05)
    except KeyboardInterrupt:
        log.warning("abandoned %d in-flight item(s); re-run to resume", busy())
    drain()


class Dispatcher:
    """Sends a run's pending items to the model with bounded concurrency.

    ``call(item, image)`` asks the model about one item, where ``image`` is what to load:
    the item's file as read once here (:class:`vlmkit.imagefile.ImageBytes`), or its path
    when its size was known beforehand (:attr:`pixels`) or the file is too large to hold
    while it waits for the pixel budget (:data:`vlmkit.imagefile.READ_AHEAD_MAX_BYTES`);
    ``budget`` caps what its requests may cost (each worker thread runs under it,
    :data:`vlmkit.budget.RUN_BUDGET`); ``pixel_budget`` bounds the decoded pixels of the
    items in flight (:mod:`vlmkit.pixels`); ``report`` counts and shows an outcome. ``stop``
    is set to start nothing new; :meth:`request_interrupt` is what a Ctrl-C does.
    """

    def __init__(
        self,
        *,
        call: Callable[[InputItem, ImageBytes | str], Result],
        backend: Backend,
        concurrency: int,
        budget: Budget | None,
        pixel_budget: int = DEFAULT_PIXEL_BUDGET,
        summary: RunSummary,
        report: Callable[[ItemOutcome], None],
    ) -> None:
        self.call = call
        self.backend = backend
        self.concurrency = concurrency
        self.budget = budget
        self.summary = summary
        self.report = report
        self.stop = threading.Event()
        self.fatal: VlmkitError | None = None
        self._fatal_why = "error"
        self._fatal_lock = threading.Lock()
        self.interrupt_requested = False
        self.unparsed_usage = Usage.zero()  # paid answers that yielded no result
        self.unrecorded: list[str] = []  # keys whose answer could not be written to the ledger
        self.pixel_budget = PixelBudget(pixel_budget)
        # decoded size of pending items known beforehand; any other is read from its header
        # by the worker that takes it, just before it asks the pixel budget
        self.pixels: dict[Path, int] = {}
        self.replays: dict[str, str] = {}  # key -> kept answer that failed to parse earlier
        _import_image_plugins()  # with the run's set-up, not in its first wave of requests

    def request_interrupt(self) -> None:
        """A first Ctrl-C: start nothing new, stop at the next safe point. A second one
        interrupts at once."""
        if self.interrupt_requested:
            raise KeyboardInterrupt
        self.interrupt_requested = True
        self.stop.set()

    def _budget_reached(self, err: BudgetReached) -> None:
        """The next request's worst case does not fit: start nothing new (once)."""
        with self._fatal_lock:
            first = self.summary.stopped is None
            if first:
                self.summary.stopped = "budget"
        self.stop.set()
        if first:
            log.warning("budget reached: no new request is sent (%s)", err)

    def process(
        self,
        pending: Iterable[InputItem],
        attempts: Mapping[str, int],
        ledger: Ledger,
        feed: SinkFeed | None,
    ) -> Iterator[ItemOutcome]:
        """Workers pull items, call the model and record each answer themselves, so the next
        request leaves as soon as one finishes; this thread reports what they recorded and
        meanwhile feeds the sinks. The outcomes wait for this thread in a bounded queue: when
        the code iterating the run is slower than the model, the workers wait for it instead
        of answering every item and queueing every result. ``pending`` may be an iterator
        whose ``next`` waits for items still to come (a processes engine worker's): it then
        gets every worker thread the concurrency allows."""
        source = iter(pending)
        lock = threading.Lock()
        busy = [0]

        def take() -> InputItem | None:
            with lock:
                if self.stop.is_set():
                    return None
                item = next(source, None)
                if item is not None:
                    busy[0] += 1
                return item

        backend = self.backend
        gate = None
        if backend.thread_safe and backend.batch_size == 1 and self.concurrency > 1:
            gate = RequestGate(self.concurrency, self.stop)

        def work() -> None:
            REQUEST_GATE.set(gate)  # this thread's context only
            RUN_BUDGET.set(self.budget)
            try:
                while (item := take()) is not None:
                    try:
                        outcome = self._finish(item, attempts, ledger)
                    finally:
                        with lock:
                            busy[0] -= 1
                    if outcome is not None:
                        outcomes.put(outcome)
            finally:
                outcomes.put(None)  # this worker is done

        # With a gate, twice as many workers as requests in flight: see RequestGate.
        count = 2 * self.concurrency if gate is not None else self.concurrency
        if isinstance(pending, Sized):  # no more threads than items
            count = min(count, max(len(pending), 1))
        workers = [
            threading.Thread(target=work, name=f"vlmkit-run-{i}", daemon=True) for i in range(count)
        ]
        outcomes: queue.Queue[ItemOutcome | None] = queue.Queue(max(16, 2 * len(workers)))

        def drain() -> None:  # count what the workers recorded meanwhile
            while True:
                try:
                    late = outcomes.get_nowait()
                except queue.Empty:
                    return
                if late is not None:
                    self.summary.count(late)

        for worker in workers:
            worker.start()
        alive = len(workers)
        try:
            while alive:
                if feed is not None:
                    feed.pump()
                try:
                    outcome = outcomes.get(timeout=0.1)
                except queue.Empty:
                    outcome = None
                    if self.interrupt_requested:
                        raise KeyboardInterrupt from None
                    continue
                if outcome is None:
                    alive -= 1
                    continue
                self.report(outcome)
                yield outcome
                if self.interrupt_requested:
                    raise KeyboardInterrupt
            if self.interrupt_requested:
                raise KeyboardInterrupt
            if self.fatal is not None:
                self.summary.stopped = self._fatal_why
                if self.unrecorded:
                    log.warning(
                        "%d answer(s) could not be recorded (%s); they stay to do",
                        len(self.unrecorded),
                        ", ".join(self.unrecorded[:10]),
                    )
                raise self.fatal
        except (KeyboardInterrupt, GeneratorExit) as stop:
            # Ctrl-C, or the caller stopped iterating: start nothing new, but let the workers
            # record what is already paid for. A second Ctrl-C abandons the items in flight.
            self.stop.set()
            if isinstance(stop, KeyboardInterrupt):
                self.summary.stopped = "interrupted"
            # Workers beyond the gate's limit hold items they have not sent: those are withdrawn.
            _finish_in_flight(workers, min(busy[0], self.concurrency), lambda: busy[0], drain)
            raise

    def _finish(
        self, item: InputItem, attempts: Mapping[str, int], ledger: Ledger
    ) -> ItemOutcome | None:
        """Call the model for one item and record the answer (or its failure) in the ledger."""
        attempt = attempts.get(item.key, 0) + 1
        answers: list[tuple[Request, Generation]] = []
        PAID_ANSWERS.set(answers)  # this worker thread's context: the answers of this call
        result: Result | None = None
        error: BaseException | None = None
        try:
            image: ImageBytes | str = item.file
            pixels = self.pixels.get(item.path) if self.pixels else None
            if pixels is None:  # a small file is read once: its header's size, then its bytes
                read = read_image(item.file, hold_up_to=READ_AHEAD_MAX_BYTES)
                if read is None:  # a large one only once the budget admits it
                    pixels = header_pixels(item.file)
                else:
                    image, pixels = read, size_pixels(read.size, item.file)
            with self.pixel_budget.hold(pixels, self.stop) as held:
                result = self._reparsed(item, image)
                if result is None:
                    # the images this call loads are the run's own: a backend may free them
                    # once it has encoded them (vlmkit.release_pixels)
                    released = PIXELS_RELEASED.set(functools.partial(_free_pixels, held))
                    try:
                        result = self.call(item, image)
                    finally:
                        PIXELS_RELEASED.reset(released)
        except BudgetReached as err:
            self._budget_reached(err)
            return None  # never sent: the item stays to do
        except RequestWithdrawn:
            return None  # never sent: the item stays to do
        except RateLimited as err:
            if (err.retry_after or 0.0) > QUOTA_PATIENCE_S:
                self._stop_run(_quota_exhausted(err), "quota exhausted")
                return None  # not this item's fault: it stays to do
            error = err
        except FATAL as err:
            # Not this item's fault (bad credentials, a model that cannot load, a bad option):
            # every item would fail the same way, so the run stops instead of recording them.
            self._stop_run(err, "error")
            return None
        except VlmkitError as err:
            error = err
        except Exception as err:  # a bug must not lose the rest of the run
            log.exception("unexpected error on %s", item.key)
            error = err
        paid = self._paid(answers, error) if error is not None else None
        try:
            return record(ledger, item, attempt, result, error, paid)
        except OSError as err:
            # The ledger cannot be written (a full disk): stop at once, so that no more answers
            # are paid for that could not be recorded.
            self.unrecorded.append(item.key)
            self._stop_run(_ledger_failed(ledger, err, answers), "error")
            return None

    def _reparsed(self, item: InputItem, image: ImageBytes | str) -> Result | None:
        """An item that failed because its paid answer did not parse is first parsed again from
        the kept answer, through the whole task pipeline, for free; None if that fails too (the
        model is then asked again)."""
        raw = self.replays.pop(item.key, None)
        if raw is None:
            return None
        REPLAY.set(Generation(text=raw, finish=FinishReason.STOP))
        try:
            result = self.call(item, image)
        except ParseError:
            return None
        finally:
            REPLAY.set(None)
        with self._fatal_lock:
            self.summary.reparsed += 1
        return result

    def _stop_run(self, err: VlmkitError, why: str) -> None:
        """Stop the run once for a reason that is no item's fault (the first one wins)."""
        with self._fatal_lock:
            if self.fatal is None:
                self.fatal, self._fatal_why = err, why
        self.stop.set()

    def _paid(
        self, answers: list[tuple[Request, Generation]], err: BaseException
    ) -> dict[str, Any]:
        """What a call that produced no result was paid for (kept in the ledger, counted)."""
        paid, usage = paid_answer(answers, err)
        with self._fatal_lock:
            self.unparsed_usage = self.unparsed_usage + usage
        return paid


def _import_image_plugins() -> None:
    """Import Pillow's format plugins now, once per process (a dispatcher is made with its
    run): Pillow does it on a process's first ``Image.open`` (about 18 ms), where a run's first
    wave of workers would all wait for it on the import lock and the GIL."""
    from PIL import Image

    Image.preinit()


def paid_answer(
    answers: list[tuple[Request, Generation]], err: BaseException
) -> tuple[dict[str, Any], Usage]:
    """The paid answer of a call that produced no result (a parse failure, a bug after the
    answer): its complete text, usage and image size for the ledger record, and its usage."""
    if not answers:
        return {}, Usage.zero()
    usage = sum((answer.usage for _request, answer in answers), Usage.zero())
    request, last = answers[-1]
    paid: dict[str, Any] = {"raw_text": getattr(err, "raw_text", None) or last.text}
    paid["usage"] = usage
    if request.images:
        paid["image_size"] = request.images[0].original.size
    return paid, usage


def record(
    ledger: Ledger,
    item: InputItem,
    attempt: int,
    result: Result | None,
    error: BaseException | str | None,
    paid: dict[str, Any] | None = None,
) -> ItemOutcome:
    """Append one item's answer (or failure, with its reason) to the ledger, durably."""
    paid = dict(paid or {})
    size = getattr(result, "image_size", None) if result is not None else None
    size = size or paid.pop("image_size", None)
    kind = type(error).__name__ if isinstance(error, BaseException) else None
    if error is None and result is not None:
        problem = outcome_problem(result)
        if problem is not None:
            kind, error = problem
    extra: dict[str, Any] = paid
    if error is not None:
        extra |= {"error": str(error), "error_type": kind or "Error"}
    entry = LedgerRecord(
        key=item.key,
        status="done" if error is None else "failed",
        result=result,
        image_path=item.file,
        image_size=size,
        attempt=attempt,
        **extra,
    )
    ledger.append(entry)  # durable before the item counts as done
    return ItemOutcome(
        key=item.key,
        path=item.path,
        status=entry.status,
        result=result,
        error=entry.error,
        error_type=entry.error_type,
    )
