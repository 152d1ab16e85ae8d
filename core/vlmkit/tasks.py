"""The core's generic task implementations: any backend that can ``generate`` gets all tasks.

Registered ``trylast`` in every Session, so a backend's native route or a middleware answer
wins. Each builds the request (prompt, prepared images with their transforms), calls the
session's ``generate``, and parses the answer with the backend's declared convention. Blocked,
empty and cut-off answers become first-class outcomes on the result (``result.finish``,
``result.report.truncated``); an answer that finished normally but cannot be parsed raises
:class:`~vlmkit.ParseError` with the raw text.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import attrs

from vlmkit.backend import Backend, Generation, Request, SentImage, TaskRequest
from vlmkit.errors import ParseError, UnsupportedTask
from vlmkit.geometry import Transform
from vlmkit.hookspecs import hookimpl
from vlmkit.masks import MaskLimits
from vlmkit.parsing import (
    parse_description,
    parse_detections,
    parse_ocr,
    parse_points,
    parse_video,
)
from vlmkit.prompts import SYSTEM_PROMPTS
from vlmkit.runtime import Runtime
from vlmkit.types import (
    Description,
    Detections,
    FinishReason,
    OcrResult,
    ParseReport,
    Points,
    Provenance,
    VideoResult,
)

__all__ = ["GenericTasks", "build_request", "provenance_for", "run_generic"]

_JSON_TASKS = ("detect", "segment", "points")


def _prepare(backend: Backend, request: TaskRequest) -> tuple[SentImage, ...]:
    policy = getattr(backend, "image_policy", None)
    if backend.max_images is not None and len(request.images) > backend.max_images:
        raise UnsupportedTask(
            f"this backend takes at most {backend.max_images} image(s) per request, "
            f"got {len(request.images)}",
            task=request.task,
        )
    sent = []
    for image in request.images:
        if policy is None:
            pixels, transform = image.image, image.transform
        else:
            pixels, transform = policy.apply(image)
        sent.append(SentImage(image=pixels, original=image, transform=transform))
    return tuple(sent)


def build_request(backend: Backend, request: TaskRequest) -> Request:
    """The provider-neutral model call for a task request."""
    system = request.settings.get("system")
    if system is None and request.settings.get("use_system_prompt", False):
        system = SYSTEM_PROMPTS.get(request.task)
    return Request(
        task=request.task,
        prompt=request.prompt,
        images=_prepare(backend, request),
        video=request.video,
        system=system,
        json=(
            request.task in _JSON_TASKS
            or bool(request.settings.get("json"))
            or (request.task == "ocr" and bool(request.settings.get("boxes")))
        ),
        response_schema=request.settings.get("response_schema"),
        options=request.options,
        labels=request.labels,
    )


def provenance_for(
    runtime: Runtime, request: TaskRequest, generation: Generation, latency_s: float
) -> Provenance:
    usage = generation.usage
    if usage.latency_s == 0.0:
        usage = attrs.evolve(usage, latency_s=latency_s)
    return Provenance(
        task=request.task,
        backend=runtime.backend_name,
        model=generation.model or runtime.model,
        prompt=request.prompt,
        options=request.options,
        raw_text=generation.text,
        usage=usage,
        finish=generation.finish,
        media=tuple(image.sha256 for image in request.images),
        detail=generation.detail,
    )


def _transform(sent: Request, generation: Generation) -> Transform:
    if generation.transforms:
        return generation.transforms[0]
    return sent.images[0].transform


def _call(
    runtime: Runtime, backend: Backend, request: TaskRequest
) -> tuple[Request, Generation, Provenance]:
    sent = build_request(backend, request)
    started = time.perf_counter()
    generation = runtime.generate(sent)
    provenance = provenance_for(runtime, request, generation, time.perf_counter() - started)
    return sent, generation, provenance


def _unfinished(generation: Generation) -> bool:
    """No usable text: blocked, withheld or empty."""
    return generation.text is None or not generation.text.strip()


def _empty_finish(generation: Generation) -> FinishReason:
    if generation.finish is FinishReason.STOP:
        return FinishReason.EMPTY
    return generation.finish


class GenericTasks:
    """Task hooks that serve any backend through its ``generate`` primitive."""

    @hookimpl(trylast=True)
    def vlmkit_detect(self, backend: Backend, request: TaskRequest, runtime: Runtime) -> Detections:
        return self._detections(backend, request, runtime, masks=False)

    @hookimpl(trylast=True)
    def vlmkit_segment(
        self, backend: Backend, request: TaskRequest, runtime: Runtime
    ) -> Detections:
        return self._detections(backend, request, runtime, masks=True)

    def _detections(
        self, backend: Backend, request: TaskRequest, runtime: Runtime, *, masks: bool
    ) -> Detections:
        sent, generation, provenance = _call(runtime, backend, request)
        transform = _transform(sent, generation)
        if _unfinished(generation):
            return Detections(
                image_size=transform.original_size,
                provenance=attrs.evolve(provenance, finish=_empty_finish(generation)),
            )
        assert generation.text is not None
        try:
            result = parse_detections(
                generation.text,
                transform=transform,
                convention=backend.convention,
                masks=masks,
                threshold=int(request.settings.get("threshold", 127)),
                provenance=provenance,
                mask_limits=_mask_limits(request.settings),
            )
        except ParseError as err:
            if generation.finish is FinishReason.STOP or err.reason != "truncated":
                raise  # an answer that is not a (cut-off) list of items is not an outcome
            # Cut off before its first complete item: an outcome, not a crash.
            return Detections(
                image_size=transform.original_size,
                provenance=provenance,
                report=ParseReport(truncated=generation.finish is FinishReason.MAX_TOKENS),
            )
        if request.labels and request.settings.get("only_labels", False):
            result = result.filter(request.labels)
        if generation.finish is FinishReason.MAX_TOKENS and not result.report.truncated:
            result = attrs.evolve(result, report=attrs.evolve(result.report, truncated=True))
        return result

    @hookimpl(trylast=True)
    def vlmkit_points(self, backend: Backend, request: TaskRequest, runtime: Runtime) -> Points:
        sent, generation, provenance = _call(runtime, backend, request)
        transform = _transform(sent, generation)
        if _unfinished(generation):
            return Points(
                image_size=transform.original_size,
                provenance=attrs.evolve(provenance, finish=_empty_finish(generation)),
            )
        assert generation.text is not None
        try:
            result = parse_points(
                generation.text,
                transform=transform,
                convention=backend.convention,
                provenance=provenance,
            )
        except ParseError as err:
            if generation.finish is FinishReason.STOP or err.reason != "truncated":
                raise
            return Points(
                image_size=transform.original_size,
                provenance=provenance,
                report=ParseReport(truncated=generation.finish is FinishReason.MAX_TOKENS),
            )
        if request.labels and request.settings.get("only_labels", False):
            result = result.filter(request.labels)
        return _flag_cut(result, generation)

    @hookimpl(trylast=True)
    def vlmkit_describe(
        self, backend: Backend, request: TaskRequest, runtime: Runtime
    ) -> Description:
        _, generation, provenance = _call(runtime, backend, request)
        if _unfinished(generation):
            return Description(
                text="", provenance=attrs.evolve(provenance, finish=_empty_finish(generation))
            )
        assert generation.text is not None
        result = parse_description(generation.text, provenance=provenance)
        return _flag_cut(result, generation)

    @hookimpl(trylast=True)
    def vlmkit_ocr(self, backend: Backend, request: TaskRequest, runtime: Runtime) -> OcrResult:
        sent, generation, provenance = _call(runtime, backend, request)
        transform = _transform(sent, generation)
        if _unfinished(generation):
            return OcrResult(
                text="",
                provenance=attrs.evolve(provenance, finish=_empty_finish(generation)),
                image_size=transform.original_size,
            )
        assert generation.text is not None
        result = parse_ocr(
            generation.text,
            transform=transform,
            convention=backend.convention,
            provenance=provenance,
        )
        return _flag_cut(result, generation)

    @hookimpl(trylast=True)
    def vlmkit_video(self, backend: Backend, request: TaskRequest, runtime: Runtime) -> VideoResult:
        _, generation, provenance = _call(runtime, backend, request)
        if _unfinished(generation):
            return VideoResult(
                text="", provenance=attrs.evolve(provenance, finish=_empty_finish(generation))
            )
        assert generation.text is not None
        result = parse_video(
            generation.text,
            provenance=provenance,
            duration_s=request.settings.get("duration_s"),
        )
        return _flag_cut(result, generation)


def _mask_limits(settings: Mapping[str, Any]) -> MaskLimits | None:
    """The request's ``max_mask_pixels`` / ``max_mask_vertices`` (set by the Session from its
    ``mask_limits`` or the call's options), or None for the defaults."""
    pixels, vertices = settings.get("max_mask_pixels"), settings.get("max_mask_vertices")
    if pixels is None and vertices is None:
        return None
    default = MaskLimits()
    return MaskLimits(
        pixels=default.pixels if pixels is None else int(pixels),
        vertices=default.vertices if vertices is None else int(vertices),
    )


def _flag_cut(result: Any, generation: Generation) -> Any:
    if generation.finish is FinishReason.MAX_TOKENS and not result.report.truncated:
        return attrs.evolve(result, report=attrs.evolve(result.report, truncated=True))
    return result


_GENERIC = GenericTasks()


def run_generic(backend: Backend, request: TaskRequest, runtime: Runtime) -> Any:
    """Run the core's generic implementation of ``request.task``.

    For native task routes that adapt a request (another prompt, other settings) and then hand
    it on to the generic route instead of duplicating it::

        @vlmkit.hookimpl
        def vlmkit_segment(self, backend, request, runtime):
            adapted = attrs.evolve(request, prompt=polygon_prompt(request.prompt))
            return vlmkit.run_generic(backend, adapted, runtime)
    """
    hook = getattr(_GENERIC, f"vlmkit_{request.task}", None)
    if hook is None:
        raise UnsupportedTask(f"no generic route for task {request.task!r}", task=request.task)
    return hook(backend=backend, request=request, runtime=runtime)
