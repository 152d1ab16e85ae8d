"""A run answered by Ray Data: :class:`RayRun`, the core's Run with another ``_process``.

Everything the run folder promises stays with the core's :class:`vlmkit.runner.Run` in this
(the driver's) process: the run lock, ``run.json``, resume (finished keys are dropped before
anything is scheduled), the one ledger, the sinks fed as records arrive and committed once at
the end, the summary. Only the answering moves: the pending items go to Ray Data as rows
(``from_items``), ``map_batches`` hands them to :class:`vlmkit_ray.worker.LabelWorker` actors,
and each record that comes back is appended to the ledger here, fsynced, before it counts.

A worker killed mid-batch: Ray restarts it and runs the batch again; what the dead worker had
received is in the answer cache (on by default) and costs nothing the second time, and a key
that comes back twice is recorded once (the driver drops the second). A killed driver: the
ledger holds every record it received; the same call resumes.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from vlmkit import Usage, VlmkitError, errors
from vlmkit.engines import SessionSpec
from vlmkit.ledger import LedgerRecord
from vlmkit.runner import InputItem, ItemOutcome, Run
from vlmkit_ray.limiter import Limiter
from vlmkit_ray.plan import Plan, plan
from vlmkit_ray.worker import LabelWorker

if TYPE_CHECKING:
    from vlmkit.ledger import Ledger
    from vlmkit.sinkfeed import SinkFeed

__all__ = ["RayRun", "connect"]

log = logging.getLogger(__name__)


def connect(address: str | None = None) -> Any:
    """Ray, connected: the running cluster of this process, else ``address`` (``"auto"``,
    ``"ray://head:10001"``), else a new local one."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no telemetry from a labelling job
    import ray
    import ray.data

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    return ray


def _error(stop: dict[str, str]) -> VlmkitError:
    """A worker's fatal error, as the same vlmkit error class here."""
    return errors.error_named(
        stop.get("type", ""), stop.get("message", "a Ray worker stopped the run")
    )


_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")


def _causes(err: BaseException) -> list[BaseException]:
    """``err`` and what it wraps (Ray nests the worker's error in its own, in ``cause`` or
    the first argument), outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in chain:
        chain.append(current)
        inner = getattr(current, "cause", None) or current.__cause__
        if inner is None and current.args and isinstance(current.args[0], BaseException):
            inner = current.args[0]
        current = inner if isinstance(inner, BaseException) else None
    return chain


def _cluster_failed(err: Exception) -> VlmkitError:
    """Ray's error as a vlmkit error that says what went wrong on the worker and what to
    check (what was recorded is kept)."""
    chain = _causes(err)
    for cause in chain:  # a vlmkit error raised on a worker says it best
        if isinstance(cause, VlmkitError):
            return _error({"type": type(cause).__name__, "message": str(cause)})
    # Ray's text ends with the worker's traceback: its last "SomeError: ..." line says why
    why = ""
    for cause in chain:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(cause))
        found = [line.strip() for line in text.splitlines() if _ERROR_LINE.match(line.strip())]
        if found:
            why = found[-1]
            break
    if not why:
        why = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().split("\n", 1)[0]
    why = why[:500]
    return VlmkitError(
        f"the Ray cluster failed this run ({type(err).__name__}: {why}). Check that every "
        "node has vlmkit, the backend's distribution and any --plugin module installed, and "
        "sees the images at the same paths; what was recorded is kept: re-run to resume"
    )


class RayRun(Run):
    """A :class:`vlmkit.runner.Run` whose items are answered by Ray Data workers.

    ``spec`` rebuilds the session on every worker. ``address``, ``workers``,
    ``requests_per_s`` (a global rate, kept by one limiter actor with the budget) and
    ``gpus_per_worker`` tune the cluster side; ``batch_size`` is the model batch of local
    backends. After iterating, ``scheduled`` holds the keys that were sent to the cluster,
    ``duplicates`` the records dropped because their key was already recorded, and
    ``limits`` what the limiter granted.
    """

    def __init__(
        self,
        session: Any,
        task: str,
        inputs: Any,
        *,
        spec: SessionSpec,
        address: str | None = None,
        workers: int | None = None,
        requests_per_s: float | None = None,
        gpus_per_worker: float | None = None,
        batch_size: int | None = None,
        **run_arguments: Any,
    ) -> None:
        super().__init__(session, task, inputs, **run_arguments)
        if requests_per_s is not None and requests_per_s <= 0:
            raise errors.ConfigError(f"requests_per_s must be positive, got {requests_per_s}")
        self.spec = spec
        self.address = address
        self.workers = workers
        self.requests_per_s = requests_per_s
        self.gpus_per_worker = gpus_per_worker
        self.batch_size = batch_size
        self.scheduled: list[str] = []
        self.duplicates = 0
        self.limits: dict[str, Any] = {}
        self.plan: Plan | None = None

    def _process(
        self,
        pending: list[InputItem],
        attempts: dict[str, int],
        ledger: Ledger,
        feed: SinkFeed | None,
    ) -> Iterator[ItemOutcome]:
        self.scheduled = [item.key for item in pending]
        self.duplicates = 0
        if not pending:
            return
        ray = connect(self.address)
        self.plan = plan(
            self.session.backend,
            concurrency=self.concurrency,
            pending=len(pending),
            cluster=ray.cluster_resources(),
            workers=self.workers,
            gpus_per_worker=self.gpus_per_worker,
        )
        limiter = None
        if self.requests_per_s is not None or self.budget is not None:
            limiter = (
                ray.remote(Limiter)
                .options(num_cpus=0)
                .remote(self.requests_per_s, self.budget_usd if self.budget is not None else None)
            )
        try:
            yield from self._stream(ray, pending, attempts, ledger, feed, limiter)
        finally:
            if limiter is not None:
                try:
                    self.limits = ray.get(limiter.totals.remote())
                    ray.kill(limiter)
                    if self.budget is not None:  # what the cluster spent, as a local run says
                        self.budget.spent_usd = float(self.limits["spent_usd"] or 0.0)
                except Exception as err:  # the cluster went away: nothing left to limit
                    log.debug("could not read the limiter's totals: %s", err)

    def _dataset(
        self, ray: Any, pending: list[InputItem], attempts: dict[str, int], limiter: Any
    ) -> Any:
        import ray.data

        plan_ = self.plan
        assert plan_ is not None
        replays = self._dispatcher.replays
        rows = [
            {
                "key": item.key,
                "path": str(item.path),
                "attempt": attempts.get(item.key, 0),
                "replay": replays.get(item.key) or "",
            }
            for item in pending
        ]
        # one block per batch, so the batches spread over the workers from the start
        blocks = max(math.ceil(len(rows) / plan_.batch_size), 1)
        # Ray Data's progress bars stay off (the run has its own): in the datasets' copy of the
        # context only, not in the process's
        with warnings.catch_warnings():  # copying reads Ray's own deprecated settings
            warnings.simplefilter("ignore", DeprecationWarning)
            context = copy.deepcopy(ray.data.DataContext.get_current())
        context.enable_progress_bars = False
        with ray.data.DataContext.current(context):
            return self._map(ray.data.from_items(rows, override_num_blocks=blocks), limiter)

    def _map(self, dataset: Any, limiter: Any) -> Any:
        import ray.data

        plan_ = self.plan
        assert plan_ is not None
        return dataset.map_batches(
            LabelWorker,
            fn_constructor_kwargs={
                "spec": self.spec,
                "task": self.task,
                "prompt": self.prompt,
                "options": self.options,
                "threads": plan_.threads,
                "pixel_budget": self._dispatcher.pixel_budget.limit,
                "batch_size": self.batch_size,
                "limiter": limiter,
                "rate_limited": self.requests_per_s is not None,
                "budgeted": self.budget is not None,
            },
            batch_size=plan_.batch_size,
            compute=ray.data.ActorPoolStrategy(size=plan_.workers),
            num_cpus=plan_.num_cpus,
            num_gpus=plan_.num_gpus or None,
            batch_format="numpy",
        )

    def _stream(
        self,
        ray: Any,
        pending: list[InputItem],
        attempts: dict[str, int],
        ledger: Ledger,
        feed: SinkFeed | None,
        limiter: Any,
    ) -> Iterator[ItemOutcome]:
        items = {item.key: item for item in pending}
        recorded: set[str] = set()
        fatal: VlmkitError | None = None
        dataset = self._dataset(ray, pending, attempts, limiter)
        batches = iter(
            dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0)
        )
        try:
            for batch in batches:
                columns = ("key", "line", "stop", "usage", "reparsed")
                for key, line, stop, usage, reparsed in zip(
                    *(batch[name] for name in columns), strict=True
                ):
                    if usage:  # the run adds this to what its session spent (nothing, here)
                        self._dispatcher.unparsed_usage += Usage(**json.loads(str(usage)))
                    self.summary.reparsed += int(reparsed)
                    if stop and fatal is None:
                        fatal = self._stopped(json.loads(str(stop)), limiter)
                    if not line:
                        continue  # never sent: stays to do
                    key = str(key)
                    if key in recorded or key not in items:
                        self.duplicates += 1  # a retried batch's second answer
                        continue
                    record = LedgerRecord.from_dict(json.loads(str(line)))
                    ledger.append(record)  # durable before it counts as done
                    recorded.add(key)
                    outcome = ItemOutcome(
                        key=key,
                        path=items[key].path,
                        status=record.status,
                        result=record.result,
                        error=record.error,
                        error_type=record.error_type,
                    )
                    self._report(outcome)
                    yield outcome
                if feed is not None:
                    feed.pump()
                if self._interrupt_requested:
                    raise KeyboardInterrupt
                if fatal is not None:
                    break
        except KeyboardInterrupt:
            self.summary.stopped = "interrupted"
            raise
        except VlmkitError:
            raise
        except Exception as err:  # Ray's own: a worker that could not start, a lost cluster
            self.summary.stopped = "error"
            raise _cluster_failed(err) from err
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # stops the dataset's execution: no worker starts another batch
            if self.duplicates:
                log.info(
                    "%d answer(s) came back twice (a batch run again): recorded once",
                    self.duplicates,
                )
        if fatal is not None:
            raise fatal

    def _stopped(self, stop: dict[str, str], limiter: Any) -> VlmkitError | None:
        """A worker stopped sending: the budget (the run goes on recording what comes back,
        nothing new is paid) or a fatal error (the run stops)."""
        why = stop.get("why", "error")
        if limiter is not None:
            limiter.stop.remote(why)
        if why == "budget":
            if self.summary.stopped is None:
                self.summary.stopped = "budget"
                log.warning("budget reached: no new request is sent")
            return None
        self.summary.stopped = why
        return _error(stop)
