"""The batch runner: label a folder of images, resumably, never paying twice for an answer.

Every finished item is appended to the run's ledger (``OUT/results.jsonl``) and fsynced before
it counts as done, so a crash, a kill or Ctrl-C at any moment leaves a ledger the same command
resumes from: finished items are skipped and nothing is sent to the model twice. One bad item
never stops a run — unreadable images, blocked or cut-off answers and exhausted retries are
recorded with their reason. Sinks (COCO, YOLO, annotated previews) hold the whole ledger —
every finished item exactly once, earlier runs' included — and appear together at the end: they
are fed the ledger's records in its order while the run waits on the model (staged under hidden
names), so the end of a run only moves them into place.
"""

from __future__ import annotations

import glob
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from vlmkit.errors import AuthError, ConfigError, MediaError, UnsupportedTask, VlmkitError
from vlmkit.ledger import Ledger, LedgerRecord, LedgerState, read_ledger
from vlmkit.media import is_image_path
from vlmkit.runtime import REQUEST_GATE, RequestGate, RequestWithdrawn
from vlmkit.types import FinishReason, Result, Usage

if TYPE_CHECKING:
    from vlmkit.export import Exporter, ExportResult
    from vlmkit.session import Session

__all__ = ["InputItem", "ItemOutcome", "Run", "RunSummary", "collect_inputs"]

log = logging.getLogger(__name__)

RUN_TASKS = ("detect", "segment", "describe", "ocr")
# Errors that are not about one item: the run stops instead of failing every item alike.
_FATAL = (AuthError, ConfigError, UnsupportedTask)
LEDGER_NAME = "results.jsonl"
MANIFEST_NAME = "run.json"


# -- inputs ---------------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class InputItem:
    """One input of a run: its stable key (path relative to the inputs' common root, with
    ``/`` separators) and where it is."""

    key: str
    path: Path


@attrs.frozen(kw_only=True)
class SkippedInput:
    path: Path
    reason: str


def _expand(
    inputs: Iterable[str | os.PathLike[str]], exclude: Path | None = None
) -> tuple[list[Path], list[SkippedInput]]:
    files: list[Path] = []
    skipped: list[SkippedInput] = []
    excluded = exclude.resolve() if exclude is not None else None

    def outside(path: Path) -> bool:  # a run's own outputs are never its inputs
        return excluded is None or not path.resolve().is_relative_to(excluded)

    for raw in inputs:
        text = os.fspath(raw)
        path = Path(text).expanduser()
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file() and outside(p)):
                if found.name.startswith("."):
                    continue
                if is_image_path(found):
                    files.append(found)
                else:
                    skipped.append(SkippedInput(path=found, reason="not an image file"))
        elif path.is_file():
            files.append(path)  # named explicitly: try it, a bad one fails with its reason
        elif glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True) if outside(Path(m)))
            if not matches:
                skipped.append(SkippedInput(path=path, reason="the pattern matched nothing"))
            for found in matches:
                if found.is_file() and is_image_path(found):
                    files.append(found)
                elif found.is_file():
                    skipped.append(SkippedInput(path=found, reason="not an image file"))
        else:
            # a typo must fail before any model call, not show up as one skipped item
            raise MediaError(f"no such file or folder: {text}", source=text)
    return files, skipped


def collect_inputs(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    exclude: str | os.PathLike[str] | None = None,
) -> tuple[list[InputItem], list[SkippedInput], Path | None]:
    """Expand files, folders (recursively) and globs into items with stable keys.

    Returns the items (deduplicated, in sorted order), the inputs skipped with a reason, and
    the root the keys are relative to. Files under ``exclude`` (the run's output folder) are
    left out of folder scans and globs.
    """
    files, skipped = _expand(inputs, Path(exclude) if exclude is not None else None)
    resolved = list(dict.fromkeys(p.resolve() for p in files))
    if not resolved:
        return [], skipped, None
    if len(resolved) == 1:
        root = resolved[0].parent
    else:
        root = Path(os.path.commonpath([str(p.parent) for p in resolved]))
    items = [InputItem(key=p.relative_to(root).as_posix(), path=p) for p in resolved]
    return items, skipped, root


# -- outcomes and summary ------------------------------------------------------------------
Status = Literal["done", "failed", "skipped", "resumed"]


@attrs.frozen(kw_only=True)
class ItemOutcome:
    """What happened to one input in this run."""

    key: str
    path: Path | None
    status: Status
    result: Result | None = None
    error: str | None = None
    error_type: str | None = None


@attrs.define
class RunSummary:
    """Totals of a run, printed at the end by ``vlmkit label``."""

    done: int = 0
    failed: int = 0
    skipped: int = 0
    resumed: int = 0  # finished in an earlier run, skipped now
    usage: Usage = attrs.field(factory=Usage.zero)
    wall_s: float = 0.0
    stopped: str | None = None  # "budget", "interrupted", "error" or None
    failures: dict[str, int] = attrs.field(factory=dict)  # error type -> count
    sink_files: dict[str, list[Path]] = attrs.field(factory=dict)

    @property
    def tokens(self) -> int:
        return self.usage.total_tokens

    @property
    def cost_usd(self) -> float | None:
        return self.usage.cost_usd

    @property
    def items_per_s(self) -> float:
        processed = self.done + self.failed
        return processed / self.wall_s if self.wall_s > 0 else 0.0

    def __str__(self) -> str:
        cost = "n/a" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        lines = [
            f"done {self.done}, failed {self.failed}, skipped {self.skipped}, "
            f"resumed {self.resumed}",
            f"tokens {self.tokens:,} (prompt {self.usage.prompt_tokens:,}, output "
            f"{self.usage.output_tokens:,}, thinking {self.usage.thinking_tokens:,}), "
            f"estimated cost {cost}",
            f"wall time {self.wall_s:.2f} s, {self.items_per_s:.2f} items/s",
        ]
        if self.failures:
            lines.append("failures: " + ", ".join(f"{k} {v}" for k, v in self.failures.items()))
        if self.stopped == "error":
            lines.append("stopped early: error (fix it, then re-run the same command to resume)")
        elif self.stopped:
            lines.append(f"stopped early: {self.stopped} (re-run the same command to resume)")
        return "\n".join(lines)


def _outcome_problem(result: Result) -> tuple[str, str] | None:
    """Why a returned result is not a usable label (blocked, empty, cut off), if it is not:
    ``(kind, reason)``."""
    finish = result.finish
    detail = result.provenance.detail if result.provenance else None
    if finish in (FinishReason.SAFETY, FinishReason.BLOCKED):
        why = (
            f"{finish.value}: {detail}"
            if detail and detail.lower() != finish.value
            else finish.value
        )
        return "Blocked", f"blocked by the provider ({why})"
    if finish is FinishReason.EMPTY:
        return "Empty", "the model returned an empty answer"
    if result.report.truncated or finish is FinishReason.MAX_TOKENS:
        kept = len(getattr(result, "items", ()))
        return (
            "Truncated",
            f"the answer was cut off by the token limit (kept {kept} complete items)",
        )
    if finish is FinishReason.OTHER:
        return "Stopped", "the model stopped for an unknown reason"
    return None


# -- the run --------------------------------------------------------------------------------
class Run:
    """An iterable batch run: iterate to process, yielding :class:`ItemOutcome` as items finish.

    ``summary`` holds the totals once iteration ended (also after Ctrl-C or a budget stop).
    """

    def __init__(
        self,
        session: Session,
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
        self.items, self.skipped_inputs, self.root = collect_inputs(inputs, exclude=self.out_dir)
        self.summary = RunSummary()
        self._stop = threading.Event()
        self._fatal: VlmkitError | None = None
        self._fatal_lock = threading.Lock()
        self._interrupt_requested = False
        # Build the sinks now, once: a misspelled sink or option, or a sink whose file would be
        # the ledger, must not cost a whole run. Building one writes nothing.
        installed = session.sinks()
        for name in self.sinks:
            if name not in installed:
                session.sink(name, self.out_dir)  # raises BackendNotFound listing the sinks
            elif task not in installed[name].accepts:
                log.warning("sink %r does not accept %s results; it will write nothing", name, task)
        self._exporter = self._new_exporter()

    # -- the run's identity -----------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        """What makes results comparable: a resumed run must ask the same question."""
        backend = self.session.backend_info.name
        model = getattr(self.session.backend, "model", None)
        prompt = self.prompt if isinstance(self.prompt, (str, type(None))) else list(self.prompt)
        return {
            "version": 1,
            "task": self.task,
            "prompt": prompt,
            "backend": backend,
            "model": model,
            "options": {k: self.options[k] for k in sorted(self.options)},
        }

    def _check_manifest(self) -> None:
        """Refuse to mix answers to different questions in one output folder."""
        import json

        from vlmkit.atomic import atomic_write_text
        from vlmkit.serialize import to_json

        path = self.out_dir / MANIFEST_NAME
        current = json.loads(json.dumps(self.manifest(), default=str))
        if path.exists():
            try:
                previous = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise ConfigError(f"{path} is unreadable ({err}); use a new --out folder") from err
            changed = [
                f"{key}: {previous.get(key)!r} → {current[key]!r}"
                for key in ("task", "prompt", "backend", "model", "options")
                if previous.get(key) != current[key]
            ]
            if changed:
                raise ConfigError(
                    f"{self.out_dir} holds results of a different run ({'; '.join(changed)}); "
                    "resuming would mix answers to different questions. Use a new --out "
                    "folder, or repeat the original settings to resume."
                )
            return
        atomic_write_text(path, to_json(current, indent=2) + "\n")

    # -- helpers --------------------------------------------------------------------------
    def _call(self, item: InputItem) -> Result:
        method = getattr(self.session, self.task)
        return method(str(item.path), self.prompt, **self.options)

    def _record(
        self,
        ledger: Ledger,
        item: InputItem,
        attempt: int,
        result: Result | None,
        error: BaseException | str | None,
    ) -> ItemOutcome:
        size = getattr(result, "image_size", None) if result is not None else None
        kind = type(error).__name__ if isinstance(error, BaseException) else None
        if error is None and result is not None:
            problem = _outcome_problem(result)
            if problem is not None:
                kind, error = problem
        if error is None:
            record = LedgerRecord(
                key=item.key,
                status="done",
                result=result,
                image_path=str(item.path),
                image_size=size,
                attempt=attempt,
            )
        else:
            error_type = kind or "Error"
            message = str(error)
            record = LedgerRecord(
                key=item.key,
                status="failed",
                result=result,
                error=message,
                error_type=error_type,
                image_path=str(item.path),
                image_size=size,
                attempt=attempt,
            )
        ledger.append(record)  # durable before the item counts as done
        return ItemOutcome(
            key=item.key,
            path=item.path,
            status=record.status,
            result=result,
            error=record.error,
            error_type=record.error_type,
        )

    def _defer_interrupts(self) -> Any:
        """Turn Ctrl-C into a request the run loop honours at a safe point, so an interrupt
        can never fall between sending an item and recording it. A second Ctrl-C interrupts
        at once. Only in the main thread, and only if nobody else handles SIGINT."""
        if threading.current_thread() is not threading.main_thread():
            return None
        previous = signal.getsignal(signal.SIGINT)
        if previous is not signal.default_int_handler:
            return None

        def request_stop(signum: int, frame: Any) -> None:
            if self._interrupt_requested:
                raise KeyboardInterrupt
            self._interrupt_requested = True
            self._stop.set()

        signal.signal(signal.SIGINT, request_stop)
        return previous

    def _budget_reached(self, in_flight: int) -> bool:
        if self.budget_usd is None:
            return False
        spent = self.session.usage.cost_usd or 0.0
        calls = self.session.usage.calls
        average = spent / calls if calls else 0.0
        return spent + average * (in_flight + 1) > self.budget_usd

    def _notify(self, outcome: ItemOutcome, bar: Any) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix(done=self.summary.done, failed=self.summary.failed, refresh=False)
        if callable(self.progress):
            self.progress(outcome)

    def _count(self, outcome: ItemOutcome) -> None:
        if outcome.status == "done":
            self.summary.done += 1
        elif outcome.status == "failed":
            self.summary.failed += 1
            kind = outcome.error_type or "error"
            self.summary.failures[kind] = self.summary.failures.get(kind, 0) + 1

    # -- iteration ------------------------------------------------------------------------
    def __iter__(self) -> Iterator[ItemOutcome]:
        started = time.perf_counter()
        usage_before = self.session.usage
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._check_manifest()
        state = read_ledger(self.ledger_path)
        attempts = {record.key: record.attempt for record in state}
        pending: list[InputItem] = []
        for skipped in self.skipped_inputs:
            self.summary.skipped += 1
            yield ItemOutcome(
                key=str(skipped.path), path=skipped.path, status="skipped", error=skipped.reason
            )
        for item in self.items:
            if item.key in state.done or (item.key in state.failed and not self.retry_failed):
                self.summary.resumed += 1
                continue
            pending.append(item)
        bar = None
        if self.progress is True:
            from tqdm.auto import tqdm

            bar = tqdm(
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
        if exporter is not None and exporter.staged_only:  # nothing shows before the commit
            feed = _SinkFeed(exporter, state, {item.key for item in pending})
        previous_handler = self._defer_interrupts()
        try:
            with Ledger(
                self.ledger_path,
                fsync=self.fsync,
                state=state,
                on_append=feed.appended if feed is not None else None,
            ) as ledger:
                yield from self._process(pending, attempts, ledger, bar, feed)
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
            if bar is not None:
                bar.close()
            self.summary.usage = _usage_since(usage_before, self.session.usage)
            if self.summary.stopped != "interrupted":
                self._write_sinks(state, exporter, feed)
            elif feed is not None:
                feed.discard()
            self.summary.wall_s = time.perf_counter() - started

    def _process(
        self,
        pending: list[InputItem],
        attempts: dict[str, int],
        ledger: Ledger,
        bar: Any,
        feed: _SinkFeed | None,
    ) -> Iterator[ItemOutcome]:
        """Workers pull items, call the model and record each answer themselves, so the next
        request leaves as soon as one finishes; this thread reports what they recorded and
        meanwhile feeds the sinks."""
        source = iter(pending)
        lock = threading.Lock()
        busy = [0]
        outcomes: queue.Queue[ItemOutcome | None] = queue.Queue()

        def take() -> InputItem | None:
            with lock:
                if self._stop.is_set():
                    return None
                if self._budget_reached(busy[0]):
                    if self.summary.stopped is None:
                        self.summary.stopped = "budget"
                        log.warning(
                            "budget of $%.4f reached: no new items are started", self.budget_usd
                        )
                    self._stop.set()
                    return None
                item = next(source, None)
                if item is not None:
                    busy[0] += 1
                return item

        backend = self.session.backend
        gate = None
        if backend.thread_safe and backend.batch_size == 1 and self.concurrency > 1:
            gate = RequestGate(self.concurrency, self._stop)

        def work() -> None:
            REQUEST_GATE.set(gate)  # this thread's context only
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
        workers = [
            threading.Thread(target=work, name=f"vlmkit-run-{i}", daemon=True)
            for i in range(min(count, max(len(pending), 1)))
        ]
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
                    if self._interrupt_requested:
                        raise KeyboardInterrupt from None
                    continue
                if outcome is None:
                    alive -= 1
                    continue
                self._count(outcome)
                self._notify(outcome, bar)
                yield outcome
                if self._interrupt_requested:
                    raise KeyboardInterrupt
            if self._interrupt_requested:
                raise KeyboardInterrupt
            if self._fatal is not None:
                self.summary.stopped = "error"
                raise self._fatal
        except (KeyboardInterrupt, GeneratorExit) as stop:
            # Ctrl-C, or the caller stopped iterating: start nothing new, but let the workers
            # record what is already paid for. A second Ctrl-C abandons the items in flight.
            self._stop.set()
            if isinstance(stop, KeyboardInterrupt):
                self.summary.stopped = "interrupted"
            # Workers beyond the gate's limit hold items they have not sent: those are withdrawn.
            in_flight = min(busy[0], self.concurrency)
            if in_flight:
                log.warning(
                    "finishing %d item(s) already sent to the model (Ctrl-C again to abandon them)",
                    in_flight,
                )
            try:
                for worker in workers:
                    worker.join()
            except KeyboardInterrupt:
                log.warning("abandoned %d in-flight item(s); re-run to resume", busy[0])
            while True:  # count what the workers recorded meanwhile
                try:
                    late = outcomes.get_nowait()
                except queue.Empty:
                    break
                if late is not None:
                    self._count(late)
            raise

    def _finish(
        self, item: InputItem, attempts: dict[str, int], ledger: Ledger
    ) -> ItemOutcome | None:
        """Call the model for one item and record the answer (or its failure) in the ledger."""
        attempt = attempts.get(item.key, 0) + 1
        try:
            result = self._call(item)
            return self._record(ledger, item, attempt, result, None)
        except RequestWithdrawn:
            return None  # never sent: the item stays to do
        except _FATAL as err:
            # Not this item's fault (bad credentials, a model that cannot load, a bad option):
            # every item would fail the same way, so the run stops instead of recording them.
            with self._fatal_lock:
                if self._fatal is None:
                    self._fatal = err
            self._stop.set()
            return None
        except VlmkitError as err:
            return self._record(ledger, item, attempt, None, err)
        except Exception as err:  # a bug must not lose the rest of the run
            log.exception("unexpected error on %s", item.key)
            return self._record(ledger, item, attempt, None, err)

    def _new_exporter(self) -> Exporter | None:
        if not self.sinks:
            return None
        from vlmkit.export import Exporter

        return Exporter(
            self.sinks,
            self.out_dir,
            ledger_path=self.ledger_path,
            resolve=self.session.sinks().__getitem__,
            options=self.sink_options,
        )

    def _write_sinks(
        self, state: LedgerState, exporter: Exporter | None, feed: _SinkFeed | None
    ) -> None:
        """Commit the sinks fed during the run; without a feed (a sink that is not two-phase),
        or if feeding failed, export the whole ledger — ``state``, as read at the start and
        updated by every append since — as ``vlmkit export`` would."""
        if exporter is None:
            return
        if feed is not None:
            files = feed.finish()
            if files is not None:
                self.summary.sink_files = files
                return
            exporter = self._new_exporter()  # the feed's sinks were discarded: start afresh
            assert exporter is not None
        whole = LedgerState(
            records=dict(state.records), bad_lines=state.bad_lines, torn_lines=state.torn_lines
        )
        self.summary.sink_files = exporter.replay(whole)


class _SinkFeed:
    """Writes a run's records into its sinks while the run goes on, in the ledger's first-seen
    order, so that the end of the run only commits (the output is the same as exporting the
    finished ledger: the files are staged and invisible until then).

    A record is written once it is final: records of earlier runs at once, unless this run
    re-runs their item (``--retry-failed``), in which case the feed waits for the new record,
    which keeps the old one's place; records of new items as they are appended. Any problem
    (a full disk, a key recorded twice) stops the feed and discards what it staged; the run
    then exports the whole ledger at the end as before.
    """

    def __init__(self, exporter: Exporter, state: LedgerState, rerun: set[str]) -> None:
        self.exporter = exporter
        self.state = state
        self.order = list(state.records)  # first-seen key order, new keys appended
        self.known = set(self.order)
        self.waiting = rerun & self.known
        self.cursor = 0
        self.failed = False
        self._appended: queue.SimpleQueue[str] = queue.SimpleQueue()

    def appended(self, record: LedgerRecord) -> None:
        """The ledger's ``on_append`` hook: called in file order, under the ledger's lock."""
        self._appended.put(record.key)

    def pump(self) -> None:
        """Write every record that became final (the run loop calls this between outcomes)."""
        self._step(final=False)

    def finish(self) -> ExportResult | None:
        """Write what is left and commit; None if the feed failed (then export instead)."""
        self._step(final=True)
        if self.failed:
            return None
        return self.exporter.finish(bad_lines=self.state.bad_lines)

    def _step(self, *, final: bool) -> None:
        if self.failed:
            return
        try:
            self._drain()
            if final:  # items this run did not get to keep their earlier record
                self.waiting.clear()
            while self.cursor < len(self.order) and self.order[self.cursor] not in self.waiting:
                self.exporter.add(self.state.records[self.order[self.cursor]])
                self.cursor += 1
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
                key = self._appended.get_nowait()
            except queue.Empty:
                return
            if key not in self.known:
                self.known.add(key)
                self.order.append(key)
            elif key in self.waiting:
                self.waiting.discard(key)
            else:
                raise ConfigError(f"{key!r} was recorded twice in one run")

    def discard(self) -> None:
        self.failed = True
        self.exporter.discard()


def _usage_since(before: Usage, after: Usage) -> Usage:
    cost = None
    if after.cost_usd is not None:
        cost = after.cost_usd - (before.cost_usd or 0.0)
    return Usage(
        prompt_tokens=after.prompt_tokens - before.prompt_tokens,
        output_tokens=after.output_tokens - before.output_tokens,
        thinking_tokens=after.thinking_tokens - before.thinking_tokens,
        latency_s=after.latency_s - before.latency_s,
        calls=after.calls - before.calls,
        cost_usd=cost,
        cached_tokens=after.cached_tokens - before.cached_tokens,
    )
