"""The fake's Batch API (shapes of google-genai's batches module): batch jobs as long-running
operations whose requests are answered like ``generateContent`` (op ``batch_generate``)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vlmkit_gemini.testing.records import Headers, RecordedRequest
from vlmkit_gemini.testing.routing import BATCHES_RE
from vlmkit_gemini.testing.scripting import error_answer
from vlmkit_gemini.testing.synthesis import parse_generation
from vlmkit_gemini.testing.wire import Answer, error_body, get_field, now_rfc3339

if TYPE_CHECKING:
    from vlmkit_gemini.testing.fake_server import FakeGemini

__all__ = ["BATCH_DONE", "BatchApi", "BatchJob"]

BATCH_DONE = frozenset(
    {"BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED"}
)

_BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"


@dataclass
class BatchJob:
    """One batch job of the Batch API (inline requests)."""

    name: str
    display_name: str
    model: str
    items: list[dict[str, Any]]
    api_version: str
    headers: Headers
    state: str = "BATCH_STATE_PENDING"
    gets: int = 0
    create_time: str = ""
    end_time: str | None = None
    outputs: list[dict[str, Any]] | None = None
    error: dict[str, Any] | None = None
    responses_file: str | None = None  # JSONL input: the answers go to a file, not inline
    jsonl: bool = False

    def keys(self) -> list[Any]:
        """The ``metadata.key`` of each request, in order (``None`` where absent)."""
        return [(item.get("metadata") or {}).get("key") for item in self.items]


class BatchApi:
    """The Batch API: jobs created from inline requests or a JSONL file, polled through
    PENDING/RUNNING to their final state, answered as ``generateContent`` would answer."""

    def __init__(self, fake: FakeGemini) -> None:
        self.fake = fake

    def create(self, req: RecordedRequest) -> Answer:
        batch = get_field(req.body, "batch") if isinstance(req.body, dict) else None
        source = get_field(batch, "input_config") or {}
        jsonl = get_field(source, "file_name") is not None
        if jsonl:
            with self.fake._lock:
                found = self.fake._files.get(str(get_field(source, "file_name")))
            if found is None:
                return Answer(404, error_body(404, "Requested entity was not found.", "NOT_FOUND"))
            try:  # each line: {"key": ..., "request": {GenerateContentRequest}}
                lines = [json.loads(x) for x in found.data.decode().splitlines() if x.strip()]
                items = [{"request": x["request"], "metadata": {"key": x["key"]}} for x in lines]
            except (ValueError, KeyError, TypeError) as exc:
                return Answer(400, error_body(400, f"Invalid JSONL batch input: {exc}"))
        else:
            items = get_field(get_field(source, "requests") or {}, "requests")
        if not isinstance(items, list) or not items:
            return Answer(400, error_body(400, "* batch.input_config: requests are empty\n"))
        name = f"batches/{uuid.uuid4().hex[:16]}"
        created = BatchJob(
            name=name,
            display_name=str(get_field(batch, "display_name") or ""),
            model=f"models/{req.model}",
            items=items,
            api_version=req.api_version or "v1beta",
            headers=req.headers,
            create_time=now_rfc3339(),
            jsonl=jsonl,
        )
        with self.fake._lock:
            self.fake._batches[name] = created
        return Answer(200, self.operation(created))

    def lookup(self, req: RecordedRequest) -> BatchJob | None:
        m = BATCHES_RE.match(req.path)
        with self.fake._lock:
            return self.fake._batches.get(f"batches/{m['batch_id']}") if m else None

    def get(self, req: RecordedRequest) -> Answer:
        batch = self.lookup(req)
        if batch is None:
            return Answer(404, error_body(404, "Requested entity was not found.", "NOT_FOUND"))
        with self.fake._lock:
            batch.gets += 1
            finish = batch.state not in BATCH_DONE and batch.gets > self.fake.batch_pending_polls
            if not finish and batch.state == "BATCH_STATE_PENDING":
                batch.state = "BATCH_STATE_RUNNING"
        if finish:
            final = self.fake.batch_final_state
            outputs = self.run(batch) if final == "BATCH_STATE_SUCCEEDED" else None
            with self.fake._lock:
                if batch.state not in BATCH_DONE:
                    batch.outputs, batch.state, batch.end_time = outputs, final, now_rfc3339()
                    if batch.jsonl and outputs is not None:
                        lines = [
                            json.dumps({"key": (o.pop("metadata", None) or {}).get("key"), **o})
                            for o in outputs
                        ]
                        data = ("\n".join(lines) + "\n").encode()
                        resource = self.fake._file_api.create(
                            data, "application/jsonl", None, None, batch.api_version
                        )
                        resource["source"] = "GENERATED"
                        resource["downloadUri"] = f"{resource['uri']}:download?alt=media"
                        batch.responses_file = resource["name"]
        return Answer(200, self.operation(batch))

    def list_jobs(self, req: RecordedRequest) -> Answer:
        with self.fake._lock:
            batches = list(self.fake._batches.values())
        return Answer(200, {"operations": [self.operation(b) for b in batches]})

    def cancel(self, req: RecordedRequest) -> Answer:
        batch = self.lookup(req)
        if batch is None:
            return Answer(404, error_body(404, "Requested entity was not found.", "NOT_FOUND"))
        with self.fake._lock:
            if batch.state not in BATCH_DONE:
                batch.state, batch.end_time = "BATCH_STATE_CANCELLED", now_rfc3339()
        return Answer(200, {})

    def delete(self, req: RecordedRequest) -> Answer:
        batch = self.lookup(req)
        if batch is None:
            return Answer(404, error_body(404, "Requested entity was not found.", "NOT_FOUND"))
        with self.fake._lock:
            self.fake._batches.pop(batch.name, None)
        return Answer(200, {})

    def run(self, batch: BatchJob) -> list[dict[str, Any]]:
        """Answer every request of a batch as ``generateContent`` would (rules apply); each is
        recorded with op ``batch_generate``."""
        outputs = []
        for item in batch.items:
            model = str(get_field(get_field(item, "request") or {}, "model") or batch.model)
            model = model.removeprefix("models/")
            inner = RecordedRequest(
                op="generate",
                method="POST",
                path=f"/{batch.api_version}/models/{model}:generateContent",
                query={},
                headers=batch.headers,
                path_kind="gemini",
                api_version=batch.api_version,
                model=model,
                received_at=time.monotonic(),
            )
            inner.body = get_field(item, "request") or {}
            metadata = get_field(item, "metadata")
            try:
                parse_generation(inner)
                answer = self.fake._generation.validate(inner)
            except (ValueError, TypeError) as exc:
                answer = Answer(400, error_body(400, f"Invalid request: {exc}"))
            rule = None
            if answer is None:
                rule = self.fake._pick_rule(inner)
                if rule is not None and rule.is_error:
                    answer = error_answer(inner, rule)
            if answer is not None:
                error = dict((answer.body or {}).get("error") or {"code": answer.status})
                entry: dict[str, Any] = {"error": error}
                inner.status = answer.status
            else:
                text = self.fake._generation.text_for(inner, rule)
                entry = {"response": self.fake._generation.success_chunks(inner, rule, text)[0]}
                inner.status = 200
            if metadata is not None:
                entry["metadata"] = metadata
            outputs.append(entry)
            inner.op = "batch_generate"
            with self.fake._lock:
                self.fake.calls["batch_generate"] += 1
                self.fake._requests.append(inner)
        return outputs

    def operation(self, batch: BatchJob) -> dict[str, Any]:
        """The ``Operation`` the Gemini API answers for a batch (state and output in metadata)."""
        with self.fake._lock:
            done = batch.state in BATCH_DONE
            metadata: dict[str, Any] = {
                "@type": _BATCH_TYPE,
                "name": batch.name,
                "displayName": batch.display_name,
                "model": batch.model,
                "state": batch.state,
                "createTime": batch.create_time,
                "updateTime": now_rfc3339(),
                "batchStats": {"requestCount": str(len(batch.items))},
            }
            if batch.end_time:
                metadata["endTime"] = batch.end_time
            if batch.responses_file is not None:
                metadata["output"] = {"responsesFile": batch.responses_file}
            elif batch.outputs is not None:
                metadata["output"] = {"inlinedResponses": {"inlinedResponses": batch.outputs}}
            operation: dict[str, Any] = {"name": batch.name, "metadata": metadata}
            if done:
                operation["done"] = True
            if batch.error is not None:
                operation["error"] = batch.error
            return operation
