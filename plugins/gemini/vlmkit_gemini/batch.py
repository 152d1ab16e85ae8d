"""Label with the Gemini Batch API: half the price, answers within 24 hours, same run folder.

``Session.run(task, inputs, ..., mode="batch")`` (``vlmkit label --mode batch``) returns a
:class:`GeminiBatchRun`: the core's :class:`vlmkit.runner.Run` with its inputs, ledger, resume,
``--retry-failed``, sinks and summary, whose items are answered by batch jobs instead of one call
each. A run folder does not care how its answers were obtained.

How the requests stay exactly those of the synchronous path: each item goes through the very
same ``Session`` task call (prompt, schema, options, thinking, the model's mask format) with the
backend in *capture* mode, where :meth:`GeminiBackend.generate` builds its request — images
through the Files API — and hands it over instead of sending it. When a job has finished, each
answer goes through the same task call again in *replay* mode, where ``generate`` takes the
job's answer instead of calling the model, so parsing, normalization, usage (priced at the batch
rate) and failures are those of a synchronous call.

Never twice: before a job is created its local id, display name and item keys are appended
(fsync'd) to ``batch-jobs.jsonl`` in the run folder, then its name once Google returns it. A
re-run re-attaches to every job not yet collected (a job whose name was lost to a kill is found
again by its display name), submits only items in no open job, and fetches the results of jobs
that finished meanwhile. Expired, failed and cancelled jobs and per-request errors become
per-item failures with their reason; ``--retry-failed`` resubmits only those.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from vlmkit import ConfigError, VlmkitError
from vlmkit.runner import InputItem, ItemOutcome, Run

if TYPE_CHECKING:
    from google.genai import types

    from vlmkit.ledger import Ledger

__all__ = [
    "JOBS_NAME",
    "BatchError",
    "BatchJobCancelled",
    "BatchJobExpired",
    "BatchJobFailed",
    "BatchMissing",
    "BatchRequestError",
    "Captured",
    "GeminiBatchRun",
    "JobLog",
    "JobRecord",
    "batch_mode",
]

log = logging.getLogger(__name__)

#: The job log in the run folder (append-only JSON lines).
JOBS_NAME = "batch-jobs.jsonl"
#: Jobs up to this many bytes of requests are sent inline (Google's request limit is 20 MB);
#: larger ones go as a JSONL file through the Files API (up to 2 GB).
MAX_INLINE_BYTES = 19_000_000
_TERMINAL = {
    "JOB_STATE_SUCCEEDED",
    "JOB_STATE_PARTIALLY_SUCCEEDED",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_EXPIRED",
}


class BatchError(VlmkitError):
    """A per-item failure the Batch API reported; the class name is the ledger's error type."""


class BatchJobFailed(BatchError):
    """The item's batch job failed."""


class BatchJobCancelled(BatchError):
    """The item's batch job was cancelled."""


class BatchJobExpired(BatchError):
    """The item's batch job expired (not finished within Google's 48 hours)."""


class BatchRequestError(BatchError):
    """The Batch API answered this item's request with an error."""


class BatchMissing(BatchError):
    """The finished job held no answer for this item."""


_FAILURE_TYPES: dict[str, type[BatchError]] = {
    "JOB_STATE_FAILED": BatchJobFailed,
    "JOB_STATE_CANCELLED": BatchJobCancelled,
    "JOB_STATE_EXPIRED": BatchJobExpired,
}


# -- capture and replay ------------------------------------------------------------------------
@attrs.frozen
class _Capture:
    """Build the request, upload its images, and hand it over instead of sending it."""


@attrs.frozen
class _Replay:
    """Answer with this batch response instead of calling the model."""

    response: Any  # types.GenerateContentResponse


_MODE: contextvars.ContextVar[_Capture | _Replay | None] = contextvars.ContextVar(
    "vlmkit_gemini_batch_mode", default=None
)


def batch_mode() -> _Capture | _Replay | None:
    """What :meth:`GeminiBackend.generate` should do in this context (``None``: call the API)."""
    return _MODE.get()


class Captured(Exception):
    """Raised by ``generate`` in capture mode with the request it built (a signal, not an
    error: the batch runner catches it)."""

    def __init__(self, request: types.InlinedRequest) -> None:
        super().__init__("request captured for a batch job")
        self.request = request


@contextlib.contextmanager
def _mode(mode: _Capture | _Replay) -> Iterator[None]:
    token = _MODE.set(mode)
    try:
        yield
    finally:
        _MODE.reset(token)


# -- the job log -------------------------------------------------------------------------------
@attrs.define
class JobRecord:
    """One batch job of this run folder, as the job log tells it."""

    id: str
    display_name: str
    keys: list[str]
    name: str | None = None  # "batches/..." once Google returned it
    state: str | None = None
    collected: bool = False


class JobLog:
    """``batch-jobs.jsonl``: what was submitted, in which job, and what was collected.

    Every line is appended and fsync'd before the step it records goes on, so a kill at any
    moment leaves a log from which a re-run knows every job that may exist.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, JobRecord]:
        jobs: dict[str, JobRecord] = {}
        if not self.path.exists():
            return jobs
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
                kind, job_id = event["event"], event["id"]
            except (ValueError, KeyError, TypeError):
                log.warning("%s:%d: unreadable line skipped (a torn write?)", self.path, number)
                continue
            if kind == "submitting":
                jobs[job_id] = JobRecord(
                    id=job_id, display_name=event["display_name"], keys=list(event["keys"])
                )
            elif job_id in jobs:
                job = jobs[job_id]
                if kind == "submitted":
                    job.name = event["name"]
                elif kind == "finished":
                    job.state = event.get("state")
                elif kind in ("collected", "abandoned"):
                    job.collected = True
        return jobs

    def append(self, event: Mapping[str, Any]) -> None:
        line = json.dumps({**event, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())


# -- the run -----------------------------------------------------------------------------------
class GeminiBatchRun(Run):
    """A :class:`vlmkit.runner.Run` answered by Gemini Batch API jobs (see the module docs).

    The backend's ``batch_max_requests`` (requests per job) and ``batch_poll_interval_s`` (wait
    between status polls) tune it.
    """

    def __init__(self, session: Any, task: str, inputs: Any, **kwargs: Any) -> None:
        if kwargs.get("budget_usd") is not None:
            raise ConfigError(
                "--budget is not available with --mode batch: a batch job's cost is only known "
                "once it has run. Label a sample first to estimate it, then submit the rest."
            )
        super().__init__(session, task, inputs, **kwargs)
        backend = session.backend
        self.max_requests = int(getattr(backend, "batch_max_requests", 1000))
        self.poll_interval_s = float(getattr(backend, "batch_poll_interval_s", 30.0))
        self.inline_limit = int(getattr(backend, "batch_inline_limit_bytes", MAX_INLINE_BYTES))
        self.jobs_path = self.out_dir / JOBS_NAME

    # -- steps (separate methods so tests can interrupt between any two) --------------------
    def _capture(self, item: InputItem) -> types.InlinedRequest | Any:
        """The batch request for ``item`` (or a result, when the answer cache already had it)."""
        with _mode(_Capture()):
            try:
                return self._call(item)
            except Captured as captured:
                return captured.request

    def _create_job(self, job: JobRecord, requests: list[types.InlinedRequest]) -> str:
        """Create the job — inline below the size limit, else from a JSONL file in the Files
        API; if the answer was lost, find the job by its display name."""
        backend = self.session.backend
        client = backend.client
        src: Any = requests
        if sum(_request_bytes(r) for r in requests) > self.inline_limit:
            data = _jsonl(client, job.keys, requests)
            uploaded = backend.files.upload(
                data,
                key=f"batch-input-{job.id}",
                mime_type="application/jsonl",
                display_name=job.display_name,
            )
            src = uploaded.name
        tries = [0]

        def create_once() -> str:
            # Never a second job for the same items: a retry first looks for the job the
            # previous attempt may have created before its answer was lost.
            tries[0] += 1
            if tries[0] > 1:
                found = self._find_by_display_name(job.display_name)
                if found is not None:
                    return found
            try:
                created = client.batches.create(
                    model=backend.model, src=src, config={"display_name": job.display_name}
                )
            except VlmkitError:
                raise
            except Exception as err:
                raise backend._map(err) from err
            return str(created.name)

        name: str = backend.retry.call(create_once, what="batches.create")
        return name

    def _find_by_display_name(self, display_name: str) -> str | None:
        backend = self.session.backend
        jobs = backend._call(lambda: list(backend.client.batches.list()), "batches.list")
        for found in jobs:
            if found.display_name == display_name:
                return str(found.name)
        return None

    def _download_responses(self, name: str) -> list[Any]:
        """The answers of a JSONL job: one ``{"key", "response" | "error"}`` line each."""
        from google.genai import types

        backend = self.session.backend
        data = backend._call(lambda: backend.client.files.download(file=name), "files.download")
        responses = []
        for line in bytes(data or b"").decode("utf-8").splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            responses.append(
                types.InlinedResponse.model_validate(
                    {
                        "response": entry.get("response"),
                        "error": entry.get("error"),
                        "metadata": {"key": entry.get("key")},
                    }
                )
            )
        return responses

    def _get_job(self, name: str) -> Any:
        backend = self.session.backend
        return backend._call(lambda: backend.client.batches.get(name=name), "batches.get")

    def _wait(self) -> None:
        self._stop.wait(self.poll_interval_s)

    # -- the loop ---------------------------------------------------------------------------
    def _process(
        self,
        pending: list[InputItem],
        attempts: dict[str, int],
        ledger: Ledger,
        feed: Any,
    ) -> Iterator[ItemOutcome]:
        backend = self.session.backend
        backend.keep_files = True  # jobs read the uploads after this process may have ended
        joblog = JobLog(self.jobs_path)
        jobs = joblog.read()
        items = {item.key: item for item in self.items}
        state = ledger.state
        open_jobs = [job for job in jobs.values() if not job.collected]
        for job in open_jobs:
            if job.name is None:  # killed between creating the job and recording its name
                job.name = self._find_by_display_name(job.display_name)
                if job.name is None:
                    joblog.append({"event": "abandoned", "id": job.id})
                    job.collected = True
                    continue
                joblog.append({"event": "submitted", "id": job.id, "name": job.name})
        open_jobs = [job for job in open_jobs if not job.collected]
        in_jobs = {key for job in open_jobs for key in job.keys}
        if open_jobs:
            log.info("re-attached to %d batch job(s) of %s", len(open_jobs), self.out_dir)

        # 1. capture the requests of items in no open job, and submit them in jobs
        captured: list[tuple[InputItem, Any]] = []
        for item in pending:
            if item.key in in_jobs or self._stop.is_set():
                continue
            attempt = attempts.get(item.key, 0) + 1
            try:
                request = self._capture(item)
            except VlmkitError as err:
                outcome = self._record(ledger, item, attempt, None, err)
            else:
                if not _is_request(request):  # answered from the cache: nothing to submit
                    outcome = self._record(ledger, item, attempt, request, None)
                else:
                    captured.append((item, request))
                    continue
            self._report(outcome)
            yield outcome
        for chunk in _chunks(captured, self.max_requests):
            if self._stop.is_set():
                break
            job = JobRecord(
                id=uuid.uuid4().hex,
                display_name=f"vlmkit-{uuid.uuid4().hex[:20]}",
                keys=[item.key for item, _ in chunk],
            )
            joblog.append(
                {
                    "event": "submitting",
                    "id": job.id,
                    "display_name": job.display_name,
                    "model": backend.model,
                    "keys": job.keys,
                }
            )
            requests = [
                request.model_copy(update={"metadata": {"key": item.key}})
                for item, request in chunk
            ]
            job.name = self._create_job(job, requests)
            joblog.append({"event": "submitted", "id": job.id, "name": job.name})
            open_jobs.append(job)
            log.info("submitted batch job %s with %d request(s)", job.name, len(job.keys))

        # 2. poll until every job has ended, collecting each as it does
        while open_jobs:
            still_open = []
            for job in open_jobs:
                assert job.name is not None
                found = self._get_job(job.name)
                name = getattr(found.state, "name", None) or str(found.state)
                if name not in _TERMINAL:
                    still_open.append(job)
                    continue
                joblog.append({"event": "finished", "id": job.id, "state": name})
                yield from self._collect(job, found, name, items, attempts, ledger, state)
                joblog.append({"event": "collected", "id": job.id})
            open_jobs = still_open
            if feed is not None:
                feed.pump()
            if self._bar is not None:
                self._bar.set_postfix(jobs_waiting=len(open_jobs), refresh=True)
            if open_jobs:
                if self._stop.is_set():
                    if self._interrupt_requested:
                        self.summary.stopped = "interrupted"
                    log.warning(
                        "%d batch job(s) still running at Google; re-run the same command to "
                        "collect their results",
                        len(open_jobs),
                    )
                    return
                log.info("waiting for %d batch job(s)", len(open_jobs))
                self._wait()

    def _collect(
        self,
        job: JobRecord,
        found: Any,
        state_name: str,
        items: Mapping[str, InputItem],
        attempts: dict[str, int],
        ledger: Ledger,
        state: Any,
    ) -> Iterator[ItemOutcome]:
        """Record the answers (or the failure) of one finished job, item by item."""
        done = state.done if state is not None else {}
        responses = list(getattr(found.dest, "inlined_responses", None) or [])
        responses_file = getattr(found.dest, "file_name", None) if found.dest else None
        if responses_file:
            responses = self._download_responses(str(responses_file))
        by_key: dict[str, Any] = {}
        for index, response in enumerate(responses):
            key = (response.metadata or {}).get("key") if response.metadata else None
            if key is None and index < len(job.keys):
                key = job.keys[index]  # inline answers come back in request order
            by_key[str(key)] = response
        job_error = getattr(found, "error", None)
        for key in job.keys:
            item = items.get(key)
            if item is None or key in done:
                continue  # no longer an input, or answered since (a sync run)
            attempt = attempts.get(key, 0) + 1
            failure: BatchError | None = None
            result = None
            response = by_key.get(key)
            if state_name in _FAILURE_TYPES:
                reason = (
                    getattr(job_error, "message", None)
                    or state_name.removeprefix("JOB_STATE_").lower()
                )
                failure = _FAILURE_TYPES[state_name](
                    f"batch job {job.name} ended {state_name}: {reason}; re-run with "
                    "--retry-failed to submit this item again"
                )
            elif response is None:
                failure = BatchMissing(f"batch job {job.name} returned no answer for this item")
            elif response.error is not None:
                message = getattr(response.error, "message", None) or str(response.error)
                failure = BatchRequestError(
                    f"the Batch API refused this request in job {job.name}: {message}"
                )
            else:
                try:
                    with _mode(_Replay(response.response)):
                        result = self._call(item)
                except VlmkitError as err:
                    failure = err  # type: ignore[assignment]
            outcome = self._record(ledger, item, attempt, result, failure)
            self._report(outcome)
            yield outcome


def _is_request(value: Any) -> bool:
    from google.genai import types

    return isinstance(value, types.InlinedRequest)


def _request_bytes(request: Any) -> int:
    return len(request.model_dump_json(exclude_none=True))


def _chunks(
    captured: list[tuple[InputItem, Any]], max_requests: int
) -> Iterator[list[tuple[InputItem, Any]]]:
    for start in range(0, len(captured), max_requests):
        yield captured[start : start + max_requests]


def _jsonl(client: Any, keys: list[str], requests: list[Any]) -> bytes:
    """A JSONL batch input: ``{"key": ..., "request": <GenerateContentRequest>}`` per line.

    The request's wire form is produced by the SDK's own converter for inline batch requests,
    so a JSONL job sends exactly what an inline one would (a private SDK function: the wire
    test of the batch path fails loudly if an SDK upgrade moves it).
    """
    from google.genai import _common
    from google.genai import batches as genai_batches

    lines = []
    for key, request in zip(keys, requests, strict=True):
        wire = genai_batches._InlinedRequest_to_mldev(client._api_client, request)
        wire = _common.encode_unserializable_types(_common.convert_to_dict(wire))
        lines.append(json.dumps({"key": key, "request": wire["request"]}))
    return ("\n".join(lines) + "\n").encode("utf-8")
