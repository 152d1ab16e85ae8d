"""The Session: one backend, one plugin manager, one task pipeline — and nothing global.

Its pieces live in modules named for their jobs: :mod:`vlmkit.sessionbackend` (opening the
backend, the way it is called), :mod:`vlmkit.calloptions` (a call's options and mask settings,
the capability check), and methods defined by concern in their own modules —
:mod:`vlmkit.sessionimages` (describe, detect, segment, points, ocr),
:mod:`vlmkit.sessionvideo` (video, track), :mod:`vlmkit.sessionrun` (batch runs) and
:mod:`vlmkit.sessionplugins` (what is installed, sinks). The class body binds those functions by
name, so each is still a method in Session's own namespace, with its signature and docstring.

>>> import vlmkit
>>> with vlmkit.Session(backend="gemini-api", model="gemini-3.6-flash") as s:  # doctest: +SKIP
...     dets = s.detect("street.jpg", ["person", "car"])
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import vlmkit.sessionimages as sessionimages
import vlmkit.sessionplugins as sessionplugins
import vlmkit.sessionrun as sessionrun
import vlmkit.sessionvideo as sessionvideo
from vlmkit.backend import Backend, TaskRequest, VideoInput
from vlmkit.batching import MicroBatcher
from vlmkit.calloptions import check_supported, mask_settings, split_options
from vlmkit.errors import ConfigError, UnsupportedTask
from vlmkit.imagefile import header_size
from vlmkit.masks import MaskLimits
from vlmkit.media import LoadedImage, load_image
from vlmkit.middleware import AnswerCache, UsageMeter, default_cache_dir
from vlmkit.plugins import PluginFailure, PluginHost
from vlmkit.prompts import prompt_for
from vlmkit.records import BackendInfo
from vlmkit.runtime import REQUEST_GATE, Runtime
from vlmkit.sessionbackend import OpenedBackend
from vlmkit.tasks import GenericTasks
from vlmkit.types import Usage

__all__ = ["Session"]

#: Prompts a session remembers (a run asks one; a loop with a new prompt per image must not
#: grow the session without bound).
_PROMPTS_KEPT = 64


class Session:
    """A configured backend plus its plugin pipeline.

    ``backend`` names an installed backend (``vlmkit backends`` lists them); ``model`` and any
    other keyword arguments go to its factory (API keys, device, project, ...). ``plugins``
    registers extra plugins (middleware, or backends not installed as distributions);
    ``entrypoints`` chooses which installed plugins load (default: ``$VLMKIT_LOAD_PLUGINS``,
    unset meaning all). ``strict=True`` turns a broken plugin into an error instead of a
    warning. ``cache`` enables the on-disk answer cache (``True`` for the default folder, or a
    path): a repeated call costs no model call. ``mask_limits`` (a
    :class:`~vlmkit.masks.MaskLimits`) bounds what the masks of one segmentation answer may
    cost, for every call of this session; a call's ``max_mask_pixels=`` /
    ``max_mask_vertices=`` options override it for that call.
    """

    def __init__(
        self,
        backend: str | None = None,
        *,
        model: str | None = None,
        plugins: Iterable[object] = (),
        entrypoints: bool | Iterable[str] | None = None,
        strict: bool = False,
        cache: bool | str | Path | None = None,
        mask_limits: MaskLimits | None = None,
        **backend_options: Any,
    ) -> None:
        if mask_limits is not None and not isinstance(mask_limits, MaskLimits):
            raise ConfigError(f"mask_limits must be a vlmkit.masks.MaskLimits, got {mask_limits!r}")
        self.mask_limits = mask_limits
        if isinstance(plugins, (str, bytes)) or not isinstance(plugins, Iterable):
            raise ConfigError(f"plugins must be a list of plugins, got {plugins!r}")
        if model is not None and not isinstance(model, str):
            raise ConfigError(f"model must be a string, got {model!r}")
        self._host = PluginHost(plugins=plugins, entrypoints=entrypoints, strict=strict)
        self._lock = threading.Lock()
        self._closed = False
        self._opened: OpenedBackend | None = None
        self._prompts: dict[tuple[Any, ...], tuple[str, tuple[str, ...]]] = {}
        self.usage_meter = UsageMeter()
        self.cache: AnswerCache | None = None
        pm = self._host.pm
        pm.register(GenericTasks(), name="vlmkit.generic-tasks")
        pm.register(self.usage_meter, name="vlmkit.usage")
        if cache is not None and not isinstance(cache, (bool, str, os.PathLike)):
            raise ConfigError(f"cache must be True, False, None or a folder, got {cache!r}")
        if cache:
            directory = default_cache_dir() if cache is True else Path(cache)
            self.cache = AnswerCache(directory)
            pm.register(self.cache, name="vlmkit.cache")
        if backend is not None:
            self._opened = OpenedBackend.open(self._host, backend, model, backend_options)
        elif model is not None or backend_options:
            raise ConfigError("model and backend options need a backend=... to go to")

    # -- construction ---------------------------------------------------------------------
    def set_batch_size(self, batch_size: int) -> None:
        """Change how many requests the backend generates together (local models)."""
        batch_size = int(batch_size)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.backend  # noqa: B018 - raises the clear error
        assert self._opened is not None
        self._opened.set_batch_size(batch_size)

    # -- introspection --------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        if self._opened is None:
            raise ConfigError("this Session has no backend; pass backend=... to Session()")
        return self._opened.instance

    @property
    def backend_info(self) -> BackendInfo:
        self.backend  # noqa: B018 - raises the clear error
        assert self._opened is not None
        return self._opened.info

    @property
    def backend_identity(self) -> dict[str, Any]:
        """Which backend answers, from which distribution, with which answer-relevant settings
        (the endpoint, a project, ...; never a credential): what the answer cache keys on and
        what a run folder records in ``run.json``."""
        self.backend  # noqa: B018 - raises the clear error
        assert self._runtime is not None
        return dict(self._runtime.identity)

    @property
    def _runtime(self) -> Runtime | None:
        return self._opened.runtime if self._opened is not None else None

    @property
    def _batcher(self) -> MicroBatcher | None:
        return self._opened.batcher if self._opened is not None else None

    @property
    def plugin_manager(self) -> Any:
        """The session's pluggy PluginManager (for introspection; call tasks via the Session)."""
        return self._host.pm

    # what is installed, sinks by name (:mod:`vlmkit.sessionplugins`)
    backends = sessionplugins.backends
    sinks = sessionplugins.sinks
    engines = sessionplugins.engines
    engine_info = sessionplugins.engine_info

    @property
    def plugin_failures(self) -> list[PluginFailure]:
        """Plugins that could not be loaded, and why."""
        self._host.backends()  # registration hooks can fail too
        return list(self._host.failures)

    @property
    def conflicts(self) -> dict[tuple[str, str], list[str]]:
        self._host.backends()
        return dict(self._host.conflicts)

    register = sessionplugins.register
    supporting = sessionplugins.supporting
    sink = sessionplugins.sink
    sink_info = sessionplugins.sink_info

    @property
    def usage(self) -> Usage:
        """Tokens, latency and cost of every model call this session made."""
        return self.usage_meter.total

    # -- the tasks ------------------------------------------------------------------------
    # images (:mod:`vlmkit.sessionimages`), video and track (:mod:`vlmkit.sessionvideo`),
    # batch runs (:mod:`vlmkit.sessionrun`)
    describe = sessionimages.describe
    detect = sessionimages.detect
    segment = sessionimages.segment
    points = sessionimages.points
    ocr = sessionimages.ocr
    video = sessionvideo.video
    track = sessionvideo.track
    run = sessionrun.run

    # -- plumbing -------------------------------------------------------------------------
    def _load(self, image: Any) -> LoadedImage:
        """``image`` loaded for the backend. Where the backend may send an upright JPEG's file
        as it is (it declares ``sends_image_files``, and has no image policy or one that keeps
        the size a run read from the header), or its image policy halves the JPEG or more (any
        backend: a copy is then decoded at reduced scale, :meth:`ResizePolicy.decodes_reduced`),
        the JPEG is only checked and its full pixels are decoded if the backend uses them;
        otherwise it is decoded in full at once (the check would be spent for nothing)."""
        backend = self.backend
        sends_files = getattr(backend, "sends_image_files", False)
        policy = getattr(backend, "image_policy", None)
        if policy is None:
            return load_image(image, decode="on_use" if sends_files else "full")
        size = header_size(image)  # a run reads small files ahead (ImageBytes), not large ones
        lazy = size is not None and (
            (sends_files and not policy.changes(size)) or policy.decodes_reduced(size)
        )
        return load_image(image, decode="on_use" if lazy else "full")

    def _prompt(self, task: str, prompt: Any, **kwargs: Any) -> tuple[str, tuple[str, ...]]:
        """The task prompt in the backend's declared convention (or its own templates).

        Built once per (task, prompt, options) and session: a run asks the same for every item
        (issue 16). Prompts that are not strings or lists of strings are not remembered."""
        key: tuple[Any, ...] | None = None
        if isinstance(prompt, str | None) or (
            isinstance(prompt, list | tuple) and all(isinstance(p, str) for p in prompt)
        ):
            labels = prompt if prompt is None or isinstance(prompt, str) else tuple(prompt)
            key = (task, type(prompt).__name__, labels, tuple(sorted(kwargs.items())))
            if key in self._prompts:
                return self._prompts[key]
        backend = self.backend
        built = prompt_for(
            task,
            prompt,
            convention=backend.convention,
            templates=getattr(backend, "prompt_templates", None),
            **kwargs,
        )
        if key is not None:
            if len(self._prompts) >= _PROMPTS_KEPT:
                self._prompts.clear()
            self._prompts[key] = built
        return built

    def _check(self, task: str, medium: str) -> None:
        check_supported(self.backend_info, task, medium, self.supporting)

    def _call(
        self,
        task: str,
        prompt: str,
        *,
        images: tuple[LoadedImage, ...] = (),
        video: VideoInput | None = None,
        labels: tuple[str, ...] = (),
        options: dict[str, Any],
        description: str | Sequence[str] | None = None,
    ) -> Any:
        if self._closed:
            raise ConfigError("this Session is closed")
        self._check(task, "video" if task == "video" else "image")
        backend_options, settings = split_options(
            dict(options), self.backend.options, self.backend_info.name
        )
        settings = mask_settings(task, settings, self.mask_limits)
        request = TaskRequest(
            task=task,
            prompt=prompt,
            images=images,
            video=video,
            labels=labels,
            description=description if isinstance(description, str) else None,
            options=backend_options,
            settings=settings,
        )
        hook = getattr(self._host.pm.hook, f"vlmkit_{task}")
        gate = REQUEST_GATE.get()  # set in the worker threads of a run
        with gate.slot() if gate is not None else contextlib.nullcontext():
            result = hook(backend=self.backend, request=request, runtime=self._runtime)
        if result is None:
            raise UnsupportedTask(f"no plugin answered {task}", task=task)
        return result

    def close(self) -> None:
        """Release the backend (clients, weights) and stop background work. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._opened is not None:
            self._opened.close()

    def __enter__(self) -> Session:
        if self._closed:
            raise ConfigError("this Session is closed; create a new one")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        name = self._opened.info.name if self._opened else None
        return f"<vlmkit.Session backend={name!r} closed={self._closed}>"
