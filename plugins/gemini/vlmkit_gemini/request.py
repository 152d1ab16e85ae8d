"""Building one Gemini call: the ``GenerateContentConfig`` for a request and its options.

The settings a model takes are checked against its capability entry before anything is sent
(:mod:`vlmkit_gemini.models`); spatial tasks get the thinking setting Google advises for them,
unless the server refused it once (then none is sent for the rest of the backend's life);
detection asks for JSON with Google's ``box_2d`` response schema, constrained to the caller's
labels when there are any.
"""

from __future__ import annotations

import codecs
import functools
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vlmkit import ConfigError, Request, UnsupportedTask
from vlmkit_gemini.models import ModelCaps
from vlmkit_gemini.options import DEFAULT_MAX_OUTPUT_TOKENS
from vlmkit_gemini.parts import media_resolution
from vlmkit_gemini.sdktypes import sdk_types
from vlmkit_gemini.segment import SEGMENTATION_MODELS

if TYPE_CHECKING:
    from google.genai import types

__all__ = ["DETECT_SCHEMA", "RequestBuilder", "detect_schema", "max_output_tokens", "sdk_constants"]

# Spatial answers get the thinking Google advises for them (off on 2.5: Robotics-ER's pointing
# sample and the segmentation guide set thinking_budget=0).
_SPATIAL_TASKS = ("detect", "segment", "points")
#: Configs a backend keeps (see RequestBuilder.config): a run uses one or a few.
_CONFIGS = 64


#: The response schema for detection: Google's native ``box_2d`` list. When the caller gave a
#: list of classes (``Request.labels``), ``label`` is constrained to them (see
#: :func:`detect_schema`).
DETECT_SCHEMA: dict[str, Any] = {
    "type": "ARRAY",
    "items": {
        "type": "OBJECT",
        "properties": {
            "box_2d": {"type": "ARRAY", "items": {"type": "INTEGER"}},
            "label": {"type": "STRING"},
        },
        "required": ["box_2d", "label"],
        "property_ordering": ["box_2d", "label"],
    },
}


def detect_schema(labels: Sequence[str] = ()) -> dict[str, Any]:
    """The detection response schema; with ``labels``, ``label`` must be one of them."""
    names = list(dict.fromkeys(str(label) for label in labels if str(label)))
    if not names:
        return DETECT_SCHEMA
    item = DETECT_SCHEMA["items"]
    label = {"type": "STRING", "format": "enum", "enum": names}
    return {
        **DETECT_SCHEMA,
        "items": {**item, "properties": {**item["properties"], "label": label}},
    }


@functools.cache
def sdk_constants() -> dict[str, Any]:
    """SDK objects every call reuses, validated once (pydantic validation costs per call).

    Building them, and one throw-away request and response, also completes the SDK's pydantic
    models, which pydantic builds lazily: otherwise the first request of a process pays for it
    (about 50 ms), and a run's whole first wave of requests waits behind it.
    """
    from google.genai import types

    quick = sdk_types()
    quick.GenerateContentConfig(
        response_mime_type="application/json",
        thinking_config=types.ThinkingConfig(thinking_budget=0),
        media_resolution=types.MediaResolution.MEDIA_RESOLUTION_LOW,
    )
    parts = [quick.Part.from_bytes(data=b"", mime_type="image/png"), quick.Part.from_text(text="")]
    quick.Content(role="user", parts=parts)
    answer = {"content": {"role": "model", "parts": [{"text": "[]"}]}, "finishReason": "STOP"}
    types.GenerateContentResponse.model_validate(
        {"candidates": [answer], "usageMetadata": {"promptTokenCount": 1}}
    )
    # The other models a call needs (the parts of an answer the SDK reads, and its own request
    # parameters: a private name, warmed only where it exists): pydantic completes a model on
    # first use, so here rather than under the GIL in a run's first wave (13 ms).
    answer_models = (types.Candidate, types.Content, types.GenerateContentResponseUsageMetadata)
    for model in (*answer_models, types.ModalityTokenCount, types.Schema, types.HttpResponse):
        model.model_rebuild(raise_errors=False)  # as the SDK itself rebuilds: best effort
    parameters = getattr(types, "_GenerateContentParameters", None)
    if parameters is not None:
        parameters.model_rebuild(raise_errors=False)
    # The first connection encodes its host name with the idna codec (socket.getaddrinfo),
    # which imports it: 2-3 ms on the import lock, in the middle of a run's first wave.
    codecs.lookup("idna")
    return {
        "detect_schema": quick.Schema.model_validate(DETECT_SCHEMA),
        "afc_off": types.AutomaticFunctionCallingConfig(disable=True),
    }


@functools.lru_cache(maxsize=256)
def _labelled_schema(labels: tuple[str, ...]) -> types.Schema:
    """The validated detection schema for one label list (validated once per list)."""
    return sdk_types().Schema.model_validate(detect_schema(labels))


_HARM_CATEGORIES = (
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
)


def _spatial(request: Request) -> bool:
    if request.task in _SPATIAL_TASKS:
        return True
    return request.task == "ocr" and request.json


def max_output_tokens(request: Request, options: Mapping[str, Any]) -> int | None:
    """The caller's ``max_output_tokens``, else the task's default (room for thinking)."""
    if options.get("max_output_tokens") is not None:
        return int(options["max_output_tokens"])
    return DEFAULT_MAX_OUTPUT_TOKENS.get(request.task)


class RequestBuilder:
    """Builds the calls of one backend to ``model``, whose capability entry is ``caps``."""

    def __init__(self, *, model: str, caps: ModelCaps) -> None:
        self.model = model
        self.caps = caps
        #: the server refused the table's spatial thinking default: send none from now on
        self.no_spatial_thinking = False
        # config() by what decides it: every image of a run gets the same one (see config)
        self._configs: dict[Hashable, tuple[types.GenerateContentConfig, bool]] = {}

    def content(self, parts: list[types.Part]) -> types.Content:
        return sdk_types().Content(role="user", parts=parts)

    def check(self, request: Request, options: Mapping[str, Any]) -> None:
        """Refuse, before sending, a segmentation request to a model not trained for it and a
        ``media_resolution`` the model does not take."""
        if request.task == "segment" and not self.caps.segmentation:
            raise UnsupportedTask(
                f"{self.model} cannot segment: it is not trained for segmentation masks. Models "
                f"that can: {', '.join(SEGMENTATION_MODELS)} (pass model=...), or pass "
                "capabilities=ModelCaps(...) if you know this model can",
                task="segment",
            )
        caps = self.caps
        chosen = options.get("media_resolution")
        if not chosen or not caps.known:
            return
        problem = caps.resolution_problem(str(chosen), video=request.video is not None)
        if problem is None and chosen == "ultra_high" and not caps.part_media_resolution:
            problem = "ultra_high is a per-part setting of Gemini 3.x models"
        if problem:
            raise ConfigError(
                f"{self.model} does not accept media_resolution={chosen!r}: {problem}"
            )

    def config(
        self, request: Request, options: Mapping[str, Any]
    ) -> tuple[types.GenerateContentConfig, bool]:
        """The call's config, and whether its thinking setting is the capability table's
        default for spatial tasks (which the backend drops if the server refuses it).

        Calls that agree on everything the config is made of share one: building and
        validating it cost 0.1 ms of the GIL per call, for an object that is the same for
        every image of a run. google-genai copies a config per call and never changes the
        caller's; share it the same way (do not change a config this returns)."""
        if request.response_schema is not None:  # the caller's dict: built anew each time
            return self._config(request, options)
        try:
            key: Hashable = (
                request.task,
                request.system,
                request.json,
                request.labels,
                request.video is not None,
                self.no_spatial_thinking,
                frozenset(options.items()),
            )
            hash(key)
        except TypeError:  # an option value that is not hashable: built anew each time
            return self._config(request, options)
        made = self._configs.get(key)
        if made is None:
            made = self._config(request, options)
            if len(self._configs) >= _CONFIGS:  # settings that change per call: start over
                self._configs.clear()
            self._configs[key] = made
        return made

    def _config(
        self, request: Request, options: Mapping[str, Any]
    ) -> tuple[types.GenerateContentConfig, bool]:
        from google.genai import types

        caps = self.caps

        # No tools are ever sent; disabling automatic function calling skips its client-side
        # machinery and its log line on every call (it is not part of the request body).
        config: dict[str, Any] = {"automatic_function_calling": sdk_constants()["afc_off"]}
        # The raw HTTP response, read by vlmkit_gemini.response: the SDK's response model is
        # not built (client-side, like the setting above; not part of the request body).
        config["should_return_http_response"] = True
        if request.system and caps.system_instruction:
            config["system_instruction"] = request.system
        for name in ("temperature", "top_p", "top_k", "seed"):
            if options.get(name) is not None:
                config[name] = options[name]
        limit = max_output_tokens(request, options)
        if limit is not None:
            config["max_output_tokens"] = limit
        if options.get("service_tier") is not None:
            config["service_tier"] = types.ServiceTier(options["service_tier"])
        wants_json = request.json
        if wants_json and caps.structured_output:
            config["response_mime_type"] = "application/json"
            if request.response_schema is not None:
                config["response_json_schema"] = request.response_schema
            elif request.task == "detect" and options.get("structured_output", True):
                config["response_schema"] = (
                    _labelled_schema(tuple(request.labels))
                    if request.labels
                    else sdk_constants()["detect_schema"]
                )
        resolution = media_resolution(options, caps, video=request.video is not None)
        if resolution and not caps.part_media_resolution:
            config["media_resolution"] = f"MEDIA_RESOLUTION_{resolution.upper()}"
        thinking, by_default = self._thinking(request, options)
        if thinking is not None:
            config["thinking_config"] = thinking
        safety = options.get("safety")
        if safety and safety != "default":
            threshold = types.HarmBlockThreshold(safety.upper())
            config["safety_settings"] = [
                types.SafetySetting(category=types.HarmCategory(category), threshold=threshold)
                for category in _HARM_CATEGORIES
            ]
        if options.get("timeout_s") is not None:
            config["http_options"] = types.HttpOptions(timeout=int(options["timeout_s"] * 1000))
        return sdk_types().GenerateContentConfig(**config), by_default

    def _thinking(
        self, request: Request, options: Mapping[str, Any]
    ) -> tuple[types.ThinkingConfig | None, bool]:
        from google.genai import types

        caps = self.caps

        budget, level = options.get("thinking_budget"), options.get("thinking_level")
        if budget is not None and level is not None:
            raise ConfigError("pass thinking_budget or thinking_level, not both")
        if budget is not None:
            problem = caps.budget_problem(budget) if caps.known else None
            if problem:
                raise ConfigError(
                    f"{self.model} does not accept thinking_budget={budget}: {problem}"
                )
            return types.ThinkingConfig(thinking_budget=budget), False
        if level is not None:
            problem = caps.level_problem(level) if caps.known else None
            if problem:
                raise ConfigError(
                    f"{self.model} does not accept thinking_level={level!r}: {problem}"
                )
            return types.ThinkingConfig(thinking_level=types.ThinkingLevel(level.upper())), False
        spatial = caps.spatial_thinking
        if spatial is None or self.no_spatial_thinking or not _spatial(request):
            return None, False
        if caps.thinking == "budget":
            return types.ThinkingConfig(thinking_budget=int(spatial)), True
        return types.ThinkingConfig(thinking_level=types.ThinkingLevel(str(spatial).upper())), True

    def inlined_request(
        self, parts: list[types.Part], config: types.GenerateContentConfig
    ) -> types.InlinedRequest:
        """The Batch API request for a call built this way (client-side settings and the
        service tier, which batch jobs do not take, left out)."""
        from google.genai import types

        batch_config = config.model_copy(
            update={
                "automatic_function_calling": None,
                "http_options": None,
                "service_tier": None,
                "should_return_http_response": None,
            }
        )
        return types.InlinedRequest(
            model=self.model, contents=[self.content(parts)], config=batch_config
        )
