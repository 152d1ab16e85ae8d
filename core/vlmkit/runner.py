"""The batch runner: label a folder of images, resumably, never paying twice for a recorded answer.

Every finished item is appended to the run's ledger (``OUT/results.jsonl``) and fsynced before
it counts as done, so a crash, a kill or Ctrl-C at any moment leaves a ledger the same command
resumes from: finished items are skipped. One bad item never stops a run — unreadable images,
blocked or cut-off answers and exhausted retries are recorded with their reason. Sinks (COCO,
YOLO, annotated previews) hold the whole ledger — every finished item exactly once, earlier
runs' included — and appear together at the end: they are fed the ledger's records in its order
while the run waits on the model (staged under hidden names), so the end of a run only moves
them into place; a plain (not two-phase) third-party sink gets them at the end instead.

The pieces live in modules named for their jobs: :mod:`vlmkit.inputs` (items and keys),
:mod:`vlmkit.manifest` (the run's identity), :mod:`vlmkit.dispatch` (the worker pool),
:mod:`vlmkit.sinkfeed` (sinks fed during the run), :mod:`vlmkit.outcomes` (what is reported).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from vlmkit.atomic import sweep_stale_files
from vlmkit.budget import Budget, max_cost_usd
from vlmkit.dispatch import Dispatcher
from vlmkit.errors import ConfigError
from vlmkit.inputs import InputItem, SkippedInput, collect_inputs
from vlmkit.ledger import Ledger, read_ledger
from vlmkit.ledgerindex import LedgerIndex, read_index
from vlmkit.manifest import check_manifest, run_manifest
from vlmkit.outcomes import ItemOutcome, RunSummary, usage_since
from vlmkit.pixels import DEFAULT_PIXEL_BUDGET
from vlmkit.runlock import RunLock
from vlmkit.sinkfeed import SinkFeed, commit_sinks
from vlmkit.types import Usage

if TYPE_CHECKING:
    from vlmkit.backend import Backend
    from vlmkit.export import Exporter
    from vlmkit.imagefile import ImageBytes
    from vlmkit.records import BackendInfo, SinkInfo
    from vlmkit.sink import Sink
    from vlmkit.types import Result

__all__ = [
    "InputItem",
    "ItemOutcome",
    "Run",
    "RunSession",
    "RunSummary",
    "SkippedInput",
    "collect_inputs",
]

log = logging.getLogger(__name__)

RUN_TASKS = ("detect", "segment", "describe", "ocr", "points")
LEDGER_NAME = "results.jsonl"


class RunSession(Protocol):
    """What a run needs of its session (a :class:`vlmkit.Session` is one)."""

    @property
    def backend(self) -> Backend: ...
    @property
    def backend_info(self) -> BackendInfo: ...
    @property
    def backend_identity(self) -> dict[str, Any]: ...
    @property
    def usage(self) -> Usage: ...
    def sinks(self) -> Mapping[str, SinkInfo]: ...
    def sink(self, name: str, out_dir: str | Path, **options: Any) -> Sink: ...
    def _check(self, task: str, medium: str) -> Any: ...


class Run:
    """An iterable batch run: iterate to process, yielding :class:`ItemOutcome` as items finish.

    ``summary`` holds the totals once iteration ended (also after Ctrl-C or a budget stop).
    """

    def __init__(
        self,
        session: RunSession,
        task: str,
        inputs: Iterable[str | os.PathLike[str]],
        *,
        prompt: str | Sequence[str] | None = None,
        out_dir: str | os.PathLike[str],
        sinks: Iterable[str] = (),
        sink_options: Mapping[str, Mapping[str, Any]] | None = None,
        concurrency: int | None = None,
        retry_failed: bool = False,
        budget_usd: float | None = None,
        progress: bool | Callable[[ItemOutcome], None] = False,
        options: Mapping[str, Any] | None = None,
        fsync: bool = True,
        pixel_budget: int = DEFAULT_PIXEL_BUDGET,
    ) -> None:
        if task not in RUN_TASKS:
            raise ConfigError(f"run supports the tasks {list(RUN_TASKS)}, not {task!r}")
        if budget_usd is not None and budget_usd <= 0:
            raise ConfigError(f"budget must be positive, got {budget_usd}")
        self.session = session
        self.task = task
        self.prompt = prompt
        self.out_dir = Path(out_dir)
        self.ledger_path = self.out_dir / LEDGER_NAME
        self.sinks = [s for s in dict.fromkeys(sinks) if s != "jsonl"]  # the ledger is the jsonl
        self.sink_options = {k: dict(v) for k, v in (sink_options or {}).items()}
        if isinstance(prompt, (list, tuple)):  # -l labels: every one a class, in that order
            from vlmkit.export import with_label_categories

            self.sink_options = with_label_categories(self.sinks, self.sink_options, prompt)
        backend = session.backend
        default = max(backend.concurrency, 2 * backend.batch_size)
        self.concurrency = int(concurrency or default)
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
        self.retry_failed = retry_failed
        self.budget_usd = budget_usd
        self.progress = progress
        self.options = dict(options or {})
        self.fsync = fsync
        session._check(task, "image")  # an unsupported task fails now, not once per item
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise ConfigError(f"--out must be a folder, but {self.out_dir} is a file")
        self.items, self.skipped_inputs = collect_inputs(inputs, exclude=self.out_dir)
        self.summary = RunSummary()
        self._bar: Any = None
        self.budget = _budget(session, task, budget_usd)
        self._dispatcher = Dispatcher(
            call=self._call,
            backend=backend,
            concurrency=self.concurrency,
            budget=self.budget,
            pixel_budget=pixel_budget,
            summary=self.summary,
            report=self._report,
        )
        # Build the sinks now, once: a misspelled sink or option, a sink that does not accept
        # the task's results, or a sink whose file would be the ledger, must not cost a whole
        # run. Building one writes nothing.
        _check_sinks(session, task, self.sinks, self.out_dir)
        self._exporter = self._new_exporter()
        if task == "segment":
            from vlmkit.masks import warm_up

            warm_up()  # OpenCV places the masks: not imported by the first wave of answers

    # -- the run's identity -----------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        """What makes results comparable: a resumed run must ask the same question."""
        return run_manifest(self.session, self.task, self.prompt, self.options)

    # -- helpers --------------------------------------------------------------------------
    def _call(self, item: InputItem, image: ImageBytes | str | None = None) -> Result:
        """Ask the model about ``item``: ``image`` is its file read already (the dispatcher
        reads it once), else its path is loaded."""
        method = getattr(self.session, self.task)
        result: Result = method(item.file if image is None else image, self.prompt, **self.options)
        return result

    def _defer_interrupts(self) -> Any:
        """Ctrl-C becomes a request the run loop honours at a safe point (see
        :func:`defer_interrupts`); returns the handler to restore, or None."""
        return defer_interrupts(self._dispatcher.request_interrupt)

    def _report(self, outcome: ItemOutcome) -> None:
        self.summary.count(outcome)
        bar = self._bar
        if bar is not None:
            bar.update(1)
            bar.set_postfix(done=self.summary.done, failed=self.summary.failed, refresh=False)
        if callable(self.progress):
            self.progress(outcome)

    # -- iteration ------------------------------------------------------------------------
    def __iter__(self) -> Iterator[ItemOutcome]:
        started = time.perf_counter(), time.process_time()
        usage_before = self.session.usage
        self.out_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(self.out_dir)
        lock.acquire()  # one writer per run folder, for the whole run
        try:
            yield from self._locked(started, usage_before)
        finally:
            lock.release()

    def _locked(self, started: tuple[float, float], usage_before: Usage) -> Iterator[ItemOutcome]:
        swept = sweep_stale_files(self.out_dir)
        if swept:
            log.info("removed %d temporary file(s) left by killed runs in %s", swept, self.out_dir)
        check_manifest(self.out_dir, self.manifest())
        # Resuming needs each key's status and attempts, not its result: only sinks, which hold
        # the whole ledger, read it in full.
        keys = {item.key: item.key for item in self.items}
        full = read_ledger(self.ledger_path) if self.sinks else None
        index = (
            LedgerIndex.of(full, inputs=keys, replays=self.retry_failed)
            if full is not None
            else read_index(self.ledger_path, inputs=keys, replays=self.retry_failed)
        )
        del keys
        pending: list[InputItem] = []
        for skipped in self.skipped_inputs:
            self.summary.skipped += 1
            self.summary.skipped_inputs[skipped.file] = skipped.reason
            yield ItemOutcome(
                key=skipped.file, path=skipped.path, status="skipped", error=skipped.reason
            )
        for item in _known_keys(self.items, index):
            if item.key in index.done or (item.key in index.failed and not self.retry_failed):
                self.summary.resumed += 1
                continue
            pending.append(item)
        if self.retry_failed:  # answers paid earlier that failed to parse: parse them again
            self._dispatcher.replays = {
                item.key: raw for item in pending if (raw := index.replays.get(item.key))
            }
        index.started()
        if not self.items:
            self.summary.stopped = "no images"
            log.warning(
                "no images found among the inputs (%d skipped); nothing to do",
                len(self.skipped_inputs),
            )
        if self.progress is True:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=len(pending),
                desc=f"vlmkit {self.task}",
                unit="img",
                dynamic_ncols=True,
                disable=None,  # no bar when stderr is not a terminal
            )
        exporter, self._exporter = self._exporter, None
        if exporter is None and self.sinks:  # iterated again: sinks start afresh
            exporter = self._new_exporter()
        feed = None
        if full is not None and exporter is not None and exporter.has_staged:
            # shown at the commit; it holds each record only until it is written
            feed = SinkFeed(exporter, full, {item.key for item in pending}, self.ledger_path)
        full = None  # the sinks now hold what their files need, the index the rest
        previous_handler = self._defer_interrupts()
        try:
            with Ledger(
                self.ledger_path,
                fsync=self.fsync,
                state=index,
                on_append=feed.appended if feed is not None else None,
            ) as ledger:
                yield from self._process(pending, index.attempts, ledger, feed)
        finally:
            try:
                if self._bar is not None:
                    self._bar.close()
                    self._bar = None
                # answers that failed to parse were paid too, though no result carries them
                self.summary.usage = (
                    usage_since(usage_before, self.session.usage) + self._dispatcher.unparsed_usage
                )
                self._dispatcher.unparsed_usage = Usage.zero()
                if self.summary.stopped != "interrupted" and exporter is not None:
                    with _holding_interrupts(previous_handler is not None):
                        self._write_sinks(index, exporter, feed)
                elif feed is not None:
                    feed.discard()
            finally:
                if previous_handler is not None:
                    signal.signal(signal.SIGINT, previous_handler)
                self.summary.wall_s = time.perf_counter() - started[0]
                self.summary.cpu_s = time.process_time() - started[1]

    def _process(
        self,
        pending: list[InputItem],
        attempts: Mapping[str, int],
        ledger: Ledger,
        feed: SinkFeed | None,
    ) -> Iterator[ItemOutcome]:
        """Answer the pending items into ``ledger``; a subclass answering another way (the
        Gemini Batch API) replaces this, using :meth:`_record`, :meth:`_report`,
        :attr:`_stop` and :attr:`_interrupt_requested`."""
        yield from self._dispatcher.process(pending, attempts, ledger, feed)

    def _record(
        self,
        ledger: Ledger,
        item: InputItem,
        attempt: int,
        result: Result | None,
        error: BaseException | str | None,
    ) -> ItemOutcome:
        """Append one item's answer (or failure) to the ledger, durably."""
        from vlmkit.dispatch import record

        return record(ledger, item, attempt, result, error)

    @property
    def _stop(self) -> threading.Event:
        """Set when the run should start nothing new (Ctrl-C, a fatal error, the budget)."""
        return self._dispatcher.stop

    @property
    def _interrupt_requested(self) -> bool:
        return self._dispatcher.interrupt_requested

    def _new_exporter(self) -> Exporter | None:
        if not self.sinks:
            return None
        from vlmkit.export import Exporter

        exporter = Exporter(
            self.sinks,
            self.out_dir,
            ledger_path=self.ledger_path,
            resolve=self.session.sinks().__getitem__,
            options=self.sink_options,
        )
        exporter.warm_up(self.task)  # not by the first result, while every request waits
        return exporter

    def _write_sinks(
        self, state: LedgerIndex, exporter: Exporter | None, feed: SinkFeed | None
    ) -> None:
        files = commit_sinks(
            state, exporter, feed, self._new_exporter, self.out_dir, self.ledger_path
        )
        if files is not None:
            self.summary.sink_files = files


def _known_keys(items: list[InputItem], index: LedgerIndex) -> list[InputItem]:
    """Items whose file the ledger already holds under another key (a folder written by an
    older vlmkit, which keyed on the inputs' common folder) keep that key: a finished image is
    never sent again because the inputs were given differently."""
    if not index.foreign or all(item.key in index for item in items):
        return items
    known: dict[str, str] = {}
    for key, image_path in index.foreign.items():
        with contextlib.suppress(OSError, ValueError):
            known.setdefault(os.path.realpath(image_path), key)
    taken = {item.key for item in items}
    renamed: list[InputItem] = []
    for item in items:
        old = known.get(item.file) if item.key not in index else None
        if old is not None and old not in taken:
            item = attrs.evolve(item, key=old)
            taken.add(old)
        renamed.append(item)
    return renamed


def _check_sinks(session: RunSession, task: str, sinks: Sequence[str], out_dir: Path) -> None:
    """Refuse, before any request, a sink that is not installed or does not accept ``task``."""
    installed = session.sinks()
    for name in sinks:
        if name not in installed:
            session.sink(name, out_dir)  # raises BackendNotFound listing the sinks
        elif task not in installed[name].accepts:
            accepted = ", ".join(sorted(installed[name].accepts))
            raise ConfigError(
                f"sink {name!r} does not accept {task} results (it accepts: {accepted}); "
                f"drop --sink {name}, or run a task it accepts"
            )


def defer_interrupts(request: Callable[[], None]) -> Any:
    """Turn Ctrl-C into ``request()`` — a request the run loop honours at a safe point — so an
    interrupt can never fall between sending an item and recording it. A second Ctrl-C
    interrupts at once. Only in the main thread, and only if nobody else handles SIGINT:
    returns the handler to restore, or None when nothing was changed."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        return None

    def request_stop(signum: int, frame: Any) -> None:
        request()

    signal.signal(signal.SIGINT, request_stop)
    return previous


def _budget(session: RunSession, task: str, budget_usd: float | None) -> Budget | None:
    """The run's hard cap, refused where no price is known (it could not be enforced)."""
    if budget_usd is None:
        return None
    from vlmkit.backend import Request

    if max_cost_usd(session.backend, Request(task=task, prompt="")) is None:
        model = getattr(session.backend, "model", None)
        raise ConfigError(
            f"--budget needs a price, and backend {session.backend_info.name!r}"
            + (f" (model {model!r})" if model else "")
            + " knows none, so the cap could not be enforced; run without --budget, or use a "
            "model with a known price"
        )
    return Budget(budget_usd)


@contextlib.contextmanager
def _holding_interrupts(active: bool) -> Iterator[None]:
    """Hold Ctrl-C while the sinks are committed, so the commit is all or nothing: an interrupt
    meanwhile is noted and said, and the commit finishes (it is a short burst of renames)."""
    if not active:
        yield
        return
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held:
            log.warning("Ctrl-C while the sinks were being written: they were finished first")
