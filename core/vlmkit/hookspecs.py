"""Hook specifications: the whole contract between vlmkit and its plugins.

Two kinds of hooks live here.

**Registration hooks** are called on every installed plugin and return frozen records; they
must be cheap and free of side effects (import heavy SDKs inside the factory, not here)::

    import vlmkit

    @vlmkit.hookimpl
    def vlmkit_backends():
        yield vlmkit.BackendInfo(
            name="echo",
            factory=lambda **config: EchoBackend(**config),
            tasks={"describe", "detect"},
            description="Answers from a script; for tests.",
        )

**Task hooks** form the pipeline of one Session. Each is ``firstresult``: the first
implementation that returns a result wins. The core's generic implementation runs last and
serves any backend through ``Backend.generate``; a backend with a native route implements the
hook as a method of its Backend class; middleware wraps calls with ``wrapper=True``::

    class Timing:
        @vlmkit.hookimpl(wrapper=True)
        def vlmkit_detect(self, request):
            started = time.perf_counter()
            result = yield
            log.info("detect took %.3f s", time.perf_counter() - started)
            return result

Task hook implementations take any subset of ``backend`` (the Session's backend instance),
``request`` (a :class:`vlmkit.TaskRequest`) and ``runtime`` (a :class:`vlmkit.Runtime` with the
session's ``generate`` function and settings). Plugin *modules* may only contribute task hooks
as ``wrapper=True`` middleware; native task routes belong on the Backend class, so nothing ever
has to filter on a backend name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from vlmkit.backend import Backend, TaskRequest
    from vlmkit.records import BackendInfo, EngineInfo, SinkInfo
    from vlmkit.runtime import Runtime
    from vlmkit.types import Description, Detections, OcrResult, Points, VideoResult

__all__ = ["PROJECT_NAME", "REGISTRATION_HOOKS", "TASK_HOOKS", "VlmkitSpecs", "hookimpl"]

PROJECT_NAME = "vlmkit"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

REGISTRATION_HOOKS = ("vlmkit_backends", "vlmkit_sinks", "vlmkit_engines")
TASK_HOOKS = (
    "vlmkit_describe",
    "vlmkit_detect",
    "vlmkit_segment",
    "vlmkit_ocr",
    "vlmkit_video",
    "vlmkit_points",
)


class VlmkitSpecs:
    """All hooks vlmkit calls. Plugins implement any subset as module-level functions (or
    Backend methods for task hooks), decorated with ``@vlmkit.hookimpl``."""

    @hookspec
    def vlmkit_backends(self) -> Iterable[BackendInfo]:
        """Register backends: yield :class:`vlmkit.BackendInfo` records. Keep it cheap."""
        return ()

    @hookspec
    def vlmkit_sinks(self) -> Iterable[SinkInfo]:
        """Register output sinks: yield :class:`vlmkit.SinkInfo` records. Keep it cheap."""
        return ()

    @hookspec
    def vlmkit_engines(self) -> Iterable[EngineInfo]:
        """Register run engines: yield :class:`vlmkit.EngineInfo` records. Keep it cheap.

        An engine answers a run's items another way than the local threads (``vlmkit label
        --engine ray``) and returns the same :class:`vlmkit.runner.Run`: one ledger, resume,
        sinks. Example (``vlmkit-ray``)::

            @vlmkit.hookimpl
            def vlmkit_engines():
                yield vlmkit.EngineInfo(name="ray", factory=lambda **o: RayEngine(**o))
        """
        return ()

    @hookspec(firstresult=True)
    def vlmkit_describe(
        self, backend: Backend, request: TaskRequest, runtime: Runtime
    ) -> Description | None:
        """Answer a free-text question about one or more images."""

    @hookspec(firstresult=True)
    def vlmkit_detect(
        self, backend: Backend, request: TaskRequest, runtime: Runtime
    ) -> Detections | None:
        """Find objects in one image: boxes in original-image pixels."""

    @hookspec(firstresult=True)
    def vlmkit_segment(
        self, backend: Backend, request: TaskRequest, runtime: Runtime
    ) -> Detections | None:
        """Find objects with box-local masks in one image."""

    @hookspec(firstresult=True)
    def vlmkit_ocr(
        self, backend: Backend, request: TaskRequest, runtime: Runtime
    ) -> OcrResult | None:
        """Read the text in one image (with boxes when the prompt asks for them)."""

    @hookspec(firstresult=True)
    def vlmkit_video(
        self, backend: Backend, request: TaskRequest, runtime: Runtime
    ) -> VideoResult | None:
        """Answer a question about a video, with timed events."""

    @hookspec(firstresult=True)
    def vlmkit_points(
        self, backend: Backend, request: TaskRequest, runtime: Runtime
    ) -> Points | None:
        """Point at things in one image: labelled points in original-image pixels.

        The generic route asks for Google's pointing format (``[{"point": [y, x], "label":
        ...}]`` on 0–1000 for ``yxyx-1000`` backends) and parses it; a backend declares
        ``"points"`` in its ``BackendInfo.tasks`` to be offered it. Added after the first
        five tasks: backends that do not declare it are never called with it.
        """
