"""A loopback fake of the Gemini REST API, for driving the real ``google-genai`` SDK in tests.

Standard library only; see ``docs/reference/gemini-wire.md`` for the wire format it follows.

Endpoints (any ``{v}`` version segment):

* ``POST /{v}/models/{m}:generateContent`` (path_kind ``"gemini"``, needs ``x-goog-api-key``),
  ``POST /{v}/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent``
  (``"vertex"``, needs ``Authorization: Bearer``), ``POST /{v}/publishers/google/models/{m}:...``
  (``"express"``, needs the key); each also ``:streamGenerateContent?alt=sse`` and ``:countTokens``;
* the resumable upload ``POST /upload/{v}/files`` (start, then chunks to the returned
  ``x-goog-upload-url``), ``GET /{v}/files[/{id}]``, ``DELETE /{v}/files/{id}`` and
  ``GET /{v}/files/{id}:download?alt=media`` (generated files only);
* the Batch API: ``POST /{v}/models/{m}:batchGenerateContent`` (inline requests or a JSONL file),
  ``GET /{v}/batches[/{id}]``, ``POST /{v}/batches/{id}:cancel``, ``DELETE /{v}/batches/{id}``.
  A job answers PENDING/RUNNING for ``batch_pending_polls`` gets, then ends in
  ``batch_final_state``, its requests answered like ``generateContent`` (op ``batch_generate``).

Ops (``RecordedRequest.op``, ``fake.calls`` keys, ``add_rule(op=...)``): ``generate``, ``stream``,
``count_tokens``, ``upload_start``, ``upload_chunk``, ``files_get``, ``files_list``,
``files_delete``, ``files_download``, ``batch_create``, ``batch_get``, ``batch_list``,
``batch_cancel``, ``batch_delete``, ``batch_generate``, ``unknown``.

Each model family refuses what the real API refuses (:func:`model_refusal`): both thinking
knobs, ``thinking_level`` on 2.5, ``minimal`` on 3.8 Flash and Pro, per-part or ``ULTRA_HIGH``
media resolution before Gemini 3, and shut-down models (404).

Scripting::

    with FakeGemini() as fake:                        # or the ``fake_gemini`` pytest fixture
        fake.add_rule(prompt_contains="cat", text={"label": "cat"})   # first match wins
        fake.add_rule(model="gemini-2.5-pro", status=503, times=2)    # then falls through
        fake.fail_next(429, retry_delay=1)            # ahead of every other rule
        fake.fail_ratio(429, 0.2, retry_delay=1)      # exactly 1 in 5 generation calls
        fake.latency_s = 0.2                          # answers leave 0.2 s after arrival
        ...
        (req,) = fake.requests_of("generate")
        assert req.generation_config["thinking_config"]["thinking_budget"] == 0

Records (``fake.requests`` snapshot, ``requests_of(*ops)``, ``last_request``) carry the parsed
request: ``headers`` (case-insensitive), ``body``, ``prompt_text``, ``inline_data`` as decoded
``(mime, bytes)``, ``file_data``, ``video_metadata``, ``generation_config`` in snake_case,
``system_instruction``, ``response_schema`` and the answered ``status``.

Token counts are arbitrary but deterministic: 258 tokens per image part (66 with
``MEDIA_RESOLUTION_LOW``, 1032 with ``MEDIA_RESOLUTION_HIGH``) plus ``len(text) // 4`` for the
prompt; ``len(answer) // 4 + 1`` for the candidates; ``thoughtsTokenCount`` (default 32) unless
``thinking_budget`` is 0.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vlmkit_gemini.testing.batch_api import BATCH_DONE, BatchApi, BatchJob
from vlmkit_gemini.testing.file_api import FileApi, StoredFile, Upload
from vlmkit_gemini.testing.http_server import LoopbackServer
from vlmkit_gemini.testing.records import SHUT_DOWN_MODELS as SHUT_DOWN_MODELS
from vlmkit_gemini.testing.records import Headers, RecordedRequest, Rule
from vlmkit_gemini.testing.records import TextSpec as TextSpec
from vlmkit_gemini.testing.records import model_refusal as model_refusal
from vlmkit_gemini.testing.routing import Router
from vlmkit_gemini.testing.scripting import RuleScripting
from vlmkit_gemini.testing.synthesis import GenerationAnswers
from vlmkit_gemini.testing.wire import GENERATION_OPS, MIB, Answer, now_rfc3339
from vlmkit_gemini.testing.wire import OPS as OPS
from vlmkit_gemini.testing.wire import decode_base64 as decode_base64
from vlmkit_gemini.testing.wire import error_body as error_body
from vlmkit_gemini.testing.wire import format_duration as format_duration
from vlmkit_gemini.testing.wire import normalize_keys as normalize_keys
from vlmkit_gemini.testing.wire import retry_info as retry_info
from vlmkit_gemini.testing.wire import snake_case as snake_case

if TYPE_CHECKING:
    from vlmkit_gemini.testing.http_server import RequestHandler

# The fake's pieces live in modules named for their jobs: wire (vocabulary, answers, error
# bodies), records (requests, rules, model refusals), http_server, routing (ops, credentials,
# the request's way through), scripting (rules, injected failures), synthesis (generateContent
# answers), file_api and batch_api. Their public names stay importable from here.
__all__ = ["FakeGemini", "Headers", "RecordedRequest", "Rule"]


class FakeGemini(RuleScripting):
    """A scriptable loopback Gemini/Vertex server. See the module docstring for an example.

    Args:
        max_request_bytes: JSON requests larger than this get 400 "Request payload size exceeds
            the limit" (upload chunks are exempt).
        default_text: answer text when no rule matches (a string or ``callable(request)``).
        processing_gets: a video file answers ``PROCESSING`` until it has been read this many
            times; the N-th ``files.get`` answers ``ACTIVE`` (0: active at once).
        processing_result: the state a processed video ends in (``"ACTIVE"`` or ``"FAILED"``).
        require_vertex_auth: Vertex project/location paths need ``Authorization: Bearer``.
        port: the loopback port to listen on (0: any free port; see :attr:`base_url`).
    """

    def __init__(
        self,
        *,
        max_request_bytes: int = 20 * MIB,
        default_text: str | Callable[[RecordedRequest], str] = "ok",
        processing_gets: int = 1,
        processing_result: str = "ACTIVE",
        require_vertex_auth: bool = True,
        port: int = 0,
    ):
        self.requested_port = port
        self.max_request_bytes = max_request_bytes
        self.default_text = default_text
        self.processing_gets = processing_gets
        self.processing_result = processing_result
        self.require_vertex_auth = require_vertex_auth
        self.latency_s = 0.0
        #: API keys answered with 400 API_KEY_INVALID.
        self.invalid_keys: set[str] = set()
        #: If not None, only these API keys are accepted (others: API_KEY_INVALID).
        self.valid_keys: set[str] | None = None
        #: Bearer tokens answered with 401 UNAUTHENTICATED.
        self.invalid_tokens: set[str] = set()
        #: Batch API: ``batches.get`` answers PENDING/RUNNING this many times before the job ends.
        self.batch_pending_polls = 1
        #: Batch API: the state a job ends in (``BATCH_STATE_SUCCEEDED``, ``..._EXPIRED``, ...).
        self.batch_final_state = "BATCH_STATE_SUCCEEDED"
        self._lock = threading.Lock()
        self._server: LoopbackServer | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._generation = GenerationAnswers(self)
        self._file_api = FileApi(self)
        self._batch_api = BatchApi(self)
        self._router = Router(self)
        self._init_state()

    def _init_state(self) -> None:
        self._rules: list[Rule] = []
        self._requests: list[RecordedRequest] = []
        self._errors: list[str] = []
        self._files: dict[str, StoredFile] = {}
        self._uploads: dict[str, Upload] = {}
        self._batches: dict[str, BatchJob] = {}
        self.calls: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0

    # ---- lifecycle

    def start(self) -> FakeGemini:
        if self._server is not None:
            return self
        self._server = LoopbackServer(self, self.requested_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-gemini:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_open_sockets()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeGemini is not running; call start()")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Forget rules, requests, files, uploads, counters and errors (keys/settings stay)."""
        with self._lock:
            self._init_state()
        self.latency_s = 0.0

    # ---- files

    def add_file(
        self,
        data: bytes,
        mime_type: str,
        *,
        state: str | None = None,
        display_name: str | None = None,
        version: str = "v1beta",
    ) -> dict[str, Any]:
        """Create a file as if uploaded (``state`` defaults as for an upload); returns it."""
        with self._lock:
            return dict(self._file_api.create(data, mime_type, display_name, None, version, state))

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        """``{"files/<id>": resource}`` for the files that exist now (copies)."""
        with self._lock:
            return {name: dict(f.resource) for name, f in self._files.items()}

    def file_bytes(self, name: str) -> bytes:
        with self._lock:
            return self._files[name if name.startswith("files/") else f"files/{name}"].data

    def set_file_state(self, name: str, state: str) -> None:
        with self._lock:
            f = self._files[name if name.startswith("files/") else f"files/{name}"]
            f.resource["state"] = state
            f.resource["updateTime"] = now_rfc3339()

    # ---- inspection

    @property
    def batches(self) -> dict[str, dict[str, Any]]:
        """Snapshot of the batch jobs: name → display_name, model, state, keys, requests."""
        with self._lock:
            return {
                name: {
                    "display_name": b.display_name,
                    "model": b.model,
                    "state": b.state,
                    "keys": b.keys(),
                    "requests": len(b.items),
                }
                for name, b in self._batches.items()
            }

    def set_batch_state(self, name: str, state: str, error: str | None = None) -> None:
        """Force a batch job into ``state`` (``BATCH_STATE_EXPIRED``, ...) with an error message."""
        with self._lock:
            batch = self._batches[name]
            batch.state = state
            if error is not None:
                batch.error = {"code": 3, "message": error}
            if state in BATCH_DONE:
                batch.end_time = now_rfc3339()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot (copy) of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_of(self, *ops: str) -> list[RecordedRequest]:
        """Requests of the given ops (default: generate and stream)."""
        wanted = set(ops) if ops else GENERATION_OPS
        with self._lock:
            return [r for r in self._requests if r.op in wanted]

    @property
    def last_request(self) -> RecordedRequest | None:
        with self._lock:
            return self._requests[-1] if self._requests else None

    @property
    def errors(self) -> list[str]:
        """Internal errors of the fake itself (bugs); the pytest fixture fails on any."""
        with self._lock:
            return list(self._errors)

    def _record_error(self, text: str) -> None:
        with self._lock:
            self._errors.append(text)

    def _handle(self, h: RequestHandler) -> Answer:
        """Answer one request (called on the server's handler threads)."""
        return self._router.handle(h)
