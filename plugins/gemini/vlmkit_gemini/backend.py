"""The gemini-api and gemini-vertex backends: Gemini through the google-genai SDK.

Both share :class:`GeminiBackend`, which turns a provider-neutral :class:`vlmkit.Request` into one
``generate_content`` call. It holds a small object per job, each in a module named for it:

* :mod:`vlmkit_gemini.settings` and :mod:`vlmkit_gemini.modelchoice` — the construction
  arguments checked; the model, a retired name's warning and replacement, its capabilities;
* :mod:`vlmkit_gemini.parts` — images encoded by vlmkit (upright, explicit MIME type) before
  the prompt, inline below ``inline_limit_bytes`` and through the Files API above it or on
  reuse (gemini-api); videos through the Files API (gemini-api), inline or by ``gs://`` URI
  (Vertex);
* :mod:`vlmkit_gemini.request` — the call's config: JSON mode with a response schema for
  detection, the thinking setting Google advises for spatial tasks, per model (see
  :mod:`vlmkit_gemini.models`);
* :mod:`vlmkit_gemini.calls` — vlmkit's retry policy (:mod:`vlmkit_gemini.retry`), every SDK and
  transport error mapped to the vlmkit error tree (:mod:`vlmkit_gemini.errors`);
* :mod:`vlmkit_gemini.response` — blocked, cut-off and empty answers reported as outcomes on
  the result, never as exceptions.

The generic task route of the core serves every task; the only native route is ``segment``,
which asks Gemini 3.x for polygon masks (:mod:`vlmkit_gemini.segment`) and refuses the
``<start_of_mask><seg_N>`` token format (:mod:`vlmkit_gemini.segtokens`).
``Session.run(..., mode="batch")`` goes through :meth:`GeminiApiBackend.batch_run`
(:mod:`vlmkit_gemini.batch`): the same requests, built here in capture mode and answered in
replay mode.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

import vlmkit
from vlmkit import (
    AuthError,
    Backend,
    BackendError,
    ConfigError,
    Generation,
    Option,
    Request,
    ResizePolicy,
    TaskRequest,
    UnsupportedTask,
    VlmkitError,
)
from vlmkit_gemini import settings
from vlmkit_gemini.batch import Captured, _Capture, _Replay, batch_mode
from vlmkit_gemini.calls import SdkCalls, http_options
from vlmkit_gemini.errors import FileGone, SettingRefused
from vlmkit_gemini.files import FileStore
from vlmkit_gemini.lifecycle import RETIRED, RetiredTable
from vlmkit_gemini.modelchoice import choose_model
from vlmkit_gemini.models import ModelCaps, ModelTable
from vlmkit_gemini.options import OPTIONS
from vlmkit_gemini.parts import PartsEncoder
from vlmkit_gemini.pricing import Price, PriceTable, max_request_cost
from vlmkit_gemini.request import (
    DETECT_SCHEMA,
    RequestBuilder,
    detect_schema,
    max_output_tokens,
    sdk_constants,
)
from vlmkit_gemini.response import Answer, AnswerReader
from vlmkit_gemini.retry import RetryPolicy
from vlmkit_gemini.segment import SEGMENTATION_MODELS, polygon_segment_prompt, segment_prompt
from vlmkit_gemini.segtokens import refuse_seg_tokens
from vlmkit_gemini.videotrack import track_video_prompt

if TYPE_CHECKING:
    from google import genai
    from google.genai import types

    from vlmkit import Detections, Runtime

__all__ = [
    "DEFAULT_INLINE_LIMIT",
    "DEFAULT_MODEL",
    "DETECT_SCHEMA",
    "SEGMENTATION_MODELS",
    "GeminiApiBackend",
    "GeminiBackend",
    "GeminiVertexBackend",
    "detect_schema",
    "polygon_segment_prompt",
    "segment_prompt",
]

log = logging.getLogger(__name__)

#: The model used when none is named: a current GA Gemini model trained for detection and
#: segmentation (see the model table in docs/backends/gemini.md for why and for alternatives).
DEFAULT_MODEL = "gemini-3.6-flash"
#: Request budget for inline media: Google's documented 20 MB request limit (base64 included).
DEFAULT_INLINE_LIMIT = 20 * 1000 * 1000
_CLOUD_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
#: Continuation requests followed for one answer at most (the SDK follows them without end).
MAX_CONTINUATIONS = 32


class GeminiBackend(Backend):
    """What gemini-api and gemini-vertex share. Build one through ``vlmkit.Session``.

    Construction arguments (all keyword): ``model``; ``base_url`` and ``api_version`` (point the
    SDK at any compatible endpoint); ``timeout_s`` (per HTTP request); ``retry`` (a
    :class:`~vlmkit_gemini.retry.RetryPolicy`) or its shortcuts ``max_attempts`` and
    ``max_retry_wait_s``; ``inline_limit_bytes`` (request budget for inline media, base64
    growth included); ``max_image_side`` (shrink images before sending; default: original
    pixels); ``image_format`` (``"auto"``: an unchanged upright JPEG, PNG or WEBP file as it
    is, anything else JPEG or, for transparency and few colours, PNG; or ``"jpeg"``, ``"png"``,
    ``"webp"``) and ``jpeg_quality`` (default 90);
    ``capabilities`` (``{pattern: ModelCaps}`` entries put ahead of the built-in
    :data:`~vlmkit_gemini.models.MODEL_TABLE` for this instance, a whole
    :class:`~vlmkit_gemini.models.ModelTable`, or one :class:`~vlmkit_gemini.models.ModelCaps`
    for this model); ``prices`` (likewise: ``{pattern: Price}`` ahead of
    :data:`~vlmkit_gemini.pricing.PRICES`, or a :class:`~vlmkit_gemini.pricing.PriceTable`);
    ``concurrency``; and defaults for any per-call option (``temperature=0``,
    ``media_resolution="low"``, ...). Nothing passed here changes any other instance.
    """

    convention: str = "yxyx-1000"
    options: Sequence[Option] = OPTIONS
    #: the prompt of the native tracking route (vlmkit_gemini.videotrack)
    track_video_prompt = staticmethod(track_video_prompt)
    max_images: int | None = 3600
    concurrency: int = 16  # the ``concurrency`` argument sets it per instance
    batch_size: int = 1
    thread_safe: bool = True
    backend_name: ClassVar[str] = "gemini"
    vertex: ClassVar[bool] = False
    #: retired model names this endpoint no longer serves as named (``retired=`` overrides)
    retired_models: ClassVar[RetiredTable] = RetiredTable([])
    #: the model this instance talks to (normalized: no ``models/`` prefix, lower case)
    model: str
    #: images at least this large (encoded) go through the Files API from their second use on
    reuse_upload_min_bytes: int | None = None

    def __init__(
        self,
        *,
        model: str | None = None,
        base_url: str | None = None,
        api_version: str | None = None,
        timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
        max_attempts: int | None = None,
        max_retry_wait_s: float | None = None,
        inline_limit_bytes: int = DEFAULT_INLINE_LIMIT,
        max_image_side: int | None = None,
        image_format: str = "auto",
        jpeg_quality: int = 90,
        capabilities: ModelCaps | ModelTable | Mapping[str, ModelCaps] | None = None,
        prices: PriceTable | Mapping[str, Price | Mapping[str, float]] | None = None,
        retired: RetiredTable | None = None,
        concurrency: int | None = None,
        **defaults: Any,
    ) -> None:
        self._defaults = settings.option_defaults(self.backend_name, defaults)
        choice = choose_model(
            model or DEFAULT_MODEL,
            retired=self.retired_models if retired is None else retired,
            capabilities=capabilities,
        )
        self.model = choice.model
        #: the model that answers: ``model``, or the model Google routes a retired name to
        self.answering_model = choice.answering_model
        self.capability_table, self.caps = choice.table, choice.caps
        self.timeout_s = settings.timeout(timeout_s)
        self.retry = settings.retry_policy(retry, max_attempts, max_retry_wait_s)
        self.inline_limit_bytes = settings.inline_limit(inline_limit_bytes)
        if max_image_side is not None:
            self.image_policy = ResizePolicy.fit(int(max_image_side))
        settings.check_image_settings(image_format, jpeg_quality)
        self.image_format = image_format
        self.sends_image_files = str(image_format).lower() == "auto"  # an unchanged JPEG as is
        self.jpeg_quality = jpeg_quality
        self.prices = PriceTable.of(prices)
        self._answers = AnswerReader(
            answering_model=self.answering_model,
            prices=self.prices,
            thinking_knob=self.caps.thinking,
        )
        if concurrency is not None:
            self.concurrency = settings.concurrency(concurrency)
        self.base_url = base_url
        self._lock = threading.Lock()
        self._closed = False
        client_options = http_options(
            base_url=base_url,
            api_version=api_version,
            timeout_s=self.timeout_s,
            concurrency=self.concurrency,
        )
        self._client: genai.Client = self._make_client(client_options)
        self._calls = SdkCalls(
            retry=self.retry, model=self.model, vertex=self.vertex, secrets=self._secret_values()
        )
        self._requests = RequestBuilder(model=self.model, caps=self.caps)
        #: the Files API store (gemini-api), None where there is none (Vertex AI)
        self.files: FileStore | None = self._file_store()
        self._media = PartsEncoder(
            caps=self.caps,
            files=self.files,
            inline_limit_bytes=self.inline_limit_bytes,
            image_format=self.image_format,
            jpeg_quality=self.jpeg_quality,
            reuse_upload_min_bytes=self.reuse_upload_min_bytes,
        )
        sdk_constants()  # once per process: see its docstring

    # -- client ---------------------------------------------------------------------------
    def _make_client(self, http_options: types.HttpOptions) -> genai.Client:
        raise NotImplementedError

    def _file_store(self) -> FileStore | None:
        """The Files API store for this backend's client; None: the endpoint has no Files API."""
        return None

    @property
    def client(self) -> genai.Client:
        """The ``genai.Client`` this backend holds for its whole life."""
        return self._client

    def close(self) -> None:
        """Delete uploaded files (unless ``keep_files``) and close the client. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            if self.files is not None:
                self.files.close(delete=not getattr(self, "keep_files", False))
        finally:
            self._client.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} model={self.model!r}>"

    # -- what a request can cost at most (vlmkit.budget: a run's hard --budget cap) ----------
    def max_cost_usd(self, request: Request) -> float | None:
        """A generous upper bound on the cost of ``request`` with the most output the call
        allows (``max_output_tokens``, else the task's default), by
        :func:`~vlmkit_gemini.pricing.max_request_cost`; None without a price."""
        price = self.prices.lookup(self.model)
        if price is None:
            return None
        limit = max_output_tokens(request, {**self._defaults, **request.options})
        return max_request_cost(price, request, limit)

    # -- the primitive --------------------------------------------------------------------
    def generate(self, request: Request) -> Generation:
        if self._closed:
            raise ConfigError(f"this {self.backend_name} backend is closed")
        options = {**self._defaults, **request.options}
        self._requests.check(request, options)
        started = time.perf_counter()
        thinking_was_default = False
        mode = batch_mode()
        parts: list[Any] | None = None
        for attempt in range(3):
            config, thinking_was_default = self._requests.config(request, options)
            if parts is None:  # the same parts for every attempt but after a lost upload
                parts = self._media.parts(request, options)
            if isinstance(mode, _Capture):
                raise Captured(self._requests.inlined_request(parts, config))
            if isinstance(mode, _Replay):
                answer = Answer.from_sdk(mode.response)
                break
            if not any(part.file_data is not None for part in parts):
                # every image is inline bytes now; only a lost upload would encode again
                vlmkit.release_pixels(request)
            contents = [self._requests.content(parts)]
            try:
                answer = self._answer(contents, config, options)
                break
            except SettingRefused as err:
                if attempt < 2 and thinking_was_default and err.option.startswith("thinking"):
                    # The table's advice is out of date for this model: fall back to the
                    # model's own default and remember it for the rest of this backend's life.
                    log.warning(
                        "vlmkit-gemini: %s refused the default thinking setting for spatial "
                        "tasks (%s); sending none from now on. Update the capability table.",
                        self.model,
                        err,
                    )
                    self._requests.no_spatial_thinking = True
                    continue
                raise
            except FileGone:
                if attempt < 2 and self.files is not None:
                    for part in parts:
                        if part.file_data is not None and part.file_data.file_uri:
                            self.files.forget_uri(part.file_data.file_uri)
                    parts = None  # upload the images again
                    continue
                raise
        sent = {**options, "max_output_tokens": max_output_tokens(request, options)}
        if isinstance(mode, _Replay):
            sent["service_tier"] = "batch"  # priced at the Batch API's rate
        return self._answers.generation(answer, sent, time.perf_counter() - started)

    def _answer(
        self, contents: list[Any], config: types.GenerateContentConfig, options: Mapping[str, Any]
    ) -> Answer:
        """One ``generate_content`` call's answer, read from the raw response's JSON
        (:mod:`vlmkit_gemini.response`), each continuation hop of it asked for and merged as
        the SDK's automatic continuation does; each hop is a call of its own (retries, timeout,
        billing), at most :data:`MAX_CONTINUATIONS` of them."""

        def one(hop_config: types.GenerateContentConfig) -> Answer:
            response = self._client.models.generate_content(
                model=self.model, contents=contents, config=hop_config
            )
            raw = response.sdk_http_response
            body = raw.body if raw is not None else None
            return Answer.from_wire(json.loads(body) if body else {})

        answer = self._call(functools.partial(one, config), "generate_content", sent=options)
        hops = 0
        while answer.continues:
            hops += 1
            if hops > MAX_CONTINUATIONS:
                raise BackendError(
                    f"{self.model} was still continuing its answer after {MAX_CONTINUATIONS} "
                    "continuation requests; the answer was not used"
                )
            try:
                token = _continuation_token(answer.continuation_token)
            except ValueError as err:  # what the SDK's own reading would have refused
                raise BackendError(
                    f"{self.model} sent a continuation token that is not base64; the answer "
                    "was not used"
                ) from err
            hop_config = config.model_copy(update={"continuation_token": token})
            later = self._call(functools.partial(one, hop_config), "generate_content", options)
            answer = answer.then(later)
        return answer

    def batch_run(self, session: Any, task: str, inputs: Any, **kwargs: Any) -> Any:
        """The run behind ``Session.run(..., mode="batch")``: see :mod:`vlmkit_gemini.batch`."""
        if self.files is None:
            raise UnsupportedTask(
                f"{self.backend_name} has no batch mode: Vertex AI batch prediction reads its "
                "input from Cloud Storage or BigQuery. Use backend='gemini-api' for --mode batch.",
                task=task,
            )
        from vlmkit_gemini.batch import GeminiBatchRun

        return GeminiBatchRun(session, task, inputs, **kwargs)

    # -- native route: polygon masks ------------------------------------------------------
    @vlmkit.hookimpl
    def vlmkit_segment(
        self, backend: Backend, request: TaskRequest, runtime: Runtime
    ) -> Detections | None:
        """Gemini 3.x answers segmentation with polygon masks: ask for that format, then let the
        core's generic route parse it. Other models keep the core's prompt. Either way an answer
        in the ``<start_of_mask><seg_N>…`` token format is a ParseError (see
        :mod:`vlmkit_gemini.segtokens`), never detections with missing masks."""
        if backend is not self:
            return None
        prompt = segment_prompt(
            request.prompt,
            polygons=self.caps.mask_format == "polygon",
            description=request.description,
            labels=request.labels,
        )
        request = attrs.evolve(request, prompt=prompt)
        result: Detections = vlmkit.run_generic(self, request, runtime)
        provenance = result.provenance
        if provenance is not None and result.report.masks_invalid:
            refuse_seg_tokens(provenance.raw_text, self.model, alternatives=SEGMENTATION_MODELS)
        return result

    # -- calls, retries, errors -----------------------------------------------------------
    def _call(
        self, function: Callable[[], Any], what: str, sent: Mapping[str, Any] | None = None
    ) -> Any:
        """Run one SDK call under the retry policy with errors mapped (:mod:`.calls`)."""
        return self._calls.call(function, what, sent)

    def _map(self, err: BaseException, sent: Mapping[str, Any] | None = None) -> VlmkitError:
        """The vlmkit error for an SDK or transport error (:mod:`.calls`)."""
        return self._calls.map(err, sent)

    def _secret_values(self) -> tuple[str, ...]:
        """What errors and logs must never show (the API key)."""
        return ()


# --------------------------------------------------------------------------------------------
# gemini-api
# --------------------------------------------------------------------------------------------


class GeminiApiBackend(GeminiBackend):
    """Gemini Developer API (AI Studio key).

    ``api_key``: the argument, else ``GOOGLE_API_KEY``, else ``GEMINI_API_KEY`` (the SDK's own
    order). ``base_url``: the argument, else the SDK reads ``GOOGLE_GEMINI_BASE_URL``. Images
    over the inline budget, images of at least ``reuse_upload_min_bytes`` sent a second time
    (``None``: never) and every local video go through the Files API, cached by content hash for
    this backend's life and deleted on :meth:`close` unless ``keep_files=True``; ``file_timeout_s``
    bounds the wait for a video to become ACTIVE, polled every ``file_poll_interval_s`` (growing).
    """

    backend_name: ClassVar[str] = "gemini-api"
    vertex: ClassVar[bool] = False
    retired_models: ClassVar[RetiredTable] = RETIRED

    def __init__(
        self,
        *,
        api_key: str | None = None,
        keep_files: bool = False,
        file_timeout_s: float = 600.0,
        file_poll_interval_s: float = 1.0,
        reuse_upload_min_bytes: int | None = 1024 * 1024,
        batch_max_requests: int = 1000,
        batch_poll_interval_s: float = 30.0,
        batch_inline_limit_bytes: int = 19_000_000,
        **kwargs: Any,
    ) -> None:
        self.batch_inline_limit_bytes = int(batch_inline_limit_bytes)
        if int(batch_max_requests) < 1:
            raise ConfigError("batch_max_requests must be at least 1")
        if float(batch_poll_interval_s) < 0:
            raise ConfigError("batch_poll_interval_s must be >= 0")
        self.batch_max_requests = int(batch_max_requests)
        self.batch_poll_interval_s = float(batch_poll_interval_s)
        if reuse_upload_min_bytes is not None and int(reuse_upload_min_bytes) < 0:
            raise ConfigError("reuse_upload_min_bytes must be >= 0 or None (never)")
        self.reuse_upload_min_bytes = (
            None if reuse_upload_min_bytes is None else int(reuse_upload_min_bytes)
        )
        key = api_key or os.environ.get("GOOGLE_API_KEY") or os.environ.get("GEMINI_API_KEY")
        if not key or not key.strip():
            raise AuthError(
                "gemini-api needs an API key: pass api_key=... (on the CLI: --config "
                "api_key=...) or set GEMINI_API_KEY (create one at "
                "https://aistudio.google.com/apikey). For Vertex AI use backend='gemini-vertex'."
            )
        self._api_key = key.strip()
        self.keep_files = bool(keep_files)
        self._file_timeout_s = float(file_timeout_s)
        self._file_poll_interval_s = float(file_poll_interval_s)
        super().__init__(**kwargs)

    def _secret_values(self) -> tuple[str, ...]:
        return (self._api_key,)

    def _file_store(self) -> FileStore:
        return FileStore(
            self._client,
            call=self._call,
            retry=self.retry,
            timeout_s=self._file_timeout_s,
            poll_interval_s=self._file_poll_interval_s,
        )

    def _make_client(self, http_options: types.HttpOptions) -> genai.Client:
        from google import genai

        try:
            return genai.Client(api_key=self._api_key, http_options=http_options)
        except ValueError as err:
            raise ConfigError(f"could not configure the Gemini client: {err}") from err


# --------------------------------------------------------------------------------------------
# gemini-vertex
# --------------------------------------------------------------------------------------------


class GeminiVertexBackend(GeminiBackend):
    """Gemini on Vertex AI.

    The client is always built with ``vertexai=True`` and everything passed explicitly (the
    SDK's environment-driven Vertex setup misroutes requests when ``base_url`` is set):

    * **express mode** when an ``api_key`` is passed, or ``express=True`` (the key then comes
      from ``GOOGLE_API_KEY``); no project, location or credentials are used. A key in the
      environment alone never switches to express mode.
    * otherwise **project mode**: ``project`` (argument → ``GOOGLE_CLOUD_PROJECT`` → the
      application-default credentials' project), ``location`` (argument →
      ``GOOGLE_CLOUD_LOCATION`` → ``"global"``, where every current Gemini model is served),
      ``credentials`` (argument → ``google.auth.default()``).

    Vertex has no Files API: videos and large media go by ``gs://`` URI (passed through as is);
    a local video or image that does not fit inline is refused with what to do.
    """

    backend_name: ClassVar[str] = "gemini-vertex"
    vertex: ClassVar[bool] = True
    default_location: ClassVar[str] = "global"

    def __init__(
        self,
        *,
        project: str | None = None,
        location: str | None = None,
        credentials: Any = None,
        api_key: str | None = None,
        express: bool = False,
        **kwargs: Any,
    ) -> None:
        self.express = bool(express or api_key)
        if self.express:
            if project or location or credentials is not None:
                raise ConfigError(
                    "gemini-vertex express mode (api_key=...) takes no project, location or "
                    "credentials; pass either an API key or a project"
                )
            key = api_key or os.environ.get("GOOGLE_API_KEY")
            if not key or not key.strip():
                raise AuthError(
                    "gemini-vertex express mode needs an API key: pass api_key=... or set "
                    "GOOGLE_API_KEY"
                )
            self._api_key: str | None = key.strip()
            self.project = self.location = None
            self._credentials = None
        else:
            self._api_key = None
            self._credentials, adc_project = self._resolve_credentials(credentials)
            self.project = (
                project
                or os.environ.get("GOOGLE_CLOUD_PROJECT")
                or adc_project
                or getattr(self._credentials, "project_id", None)
                or getattr(self._credentials, "quota_project_id", None)
            )
            if not self.project:
                raise ConfigError(
                    "gemini-vertex needs a Google Cloud project: pass project=... or set "
                    "GOOGLE_CLOUD_PROJECT (or use express mode with api_key=...)"
                )
            self.location = (
                location or os.environ.get("GOOGLE_CLOUD_LOCATION") or self.default_location
            )
        super().__init__(**kwargs)

    def _secret_values(self) -> tuple[str, ...]:
        return (self._api_key,) if self._api_key else ()

    @staticmethod
    def _resolve_credentials(credentials: Any) -> tuple[Any, str | None]:
        if credentials is not None:
            return credentials, None
        import google.auth
        from google.auth import exceptions as auth_exceptions

        try:
            found, project = google.auth.default(scopes=[_CLOUD_SCOPE])
        except auth_exceptions.DefaultCredentialsError as err:
            raise AuthError(
                "gemini-vertex found no Google Cloud credentials. Run `gcloud auth "
                "application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service "
                "account key file, or pass credentials=...; or use Vertex express mode with "
                "api_key=..."
            ) from err
        return found, project

    def _make_client(self, http_options: types.HttpOptions) -> genai.Client:
        from google import genai

        try:
            if self.express:
                return genai.Client(vertexai=True, api_key=self._api_key, http_options=http_options)
            return genai.Client(
                vertexai=True,
                project=self.project,
                location=self.location,
                credentials=self._credentials,
                http_options=http_options,
            )
        except ValueError as err:
            raise ConfigError(f"could not configure the Vertex AI client: {err}") from err


def _continuation_token(text: str | None) -> bytes | None:
    """A continuation token from the wire as the SDK reads one into its models (base64)."""
    from google.genai import types

    return types.Candidate.model_validate({"continuationToken": text}).continuation_token
