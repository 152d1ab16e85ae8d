"""The Session: one backend, one plugin manager, one task pipeline — and nothing global.

>>> import vlmkit
>>> with vlmkit.Session(backend="gemini-api", model="gemini-3.6-flash") as s:  # doctest: +SKIP
...     dets = s.detect("street.jpg", ["person", "car"])
"""

from __future__ import annotations

import contextlib
import inspect
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from vlmkit.backend import Backend, TaskRequest, VideoInput
from vlmkit.batching import MicroBatcher
from vlmkit.errors import ConfigError, MediaError, PluginError, UnsupportedTask, VlmkitError
from vlmkit.masks import MaskLimits
from vlmkit.media import LoadedImage, load_image
from vlmkit.middleware import AnswerCache, UsageMeter, default_cache_dir
from vlmkit.plugins import PluginFailure, PluginHost
from vlmkit.prompts import prompt_for
from vlmkit.records import BackendInfo, EngineInfo, Option, SinkInfo
from vlmkit.runtime import REQUEST_GATE, Runtime
from vlmkit.sink import Sink
from vlmkit.tasks import GenericTasks
from vlmkit.types import Description, Detections, OcrResult, Points, Usage, VideoResult

if TYPE_CHECKING:
    from vlmkit.runner import Run

__all__ = ["Session"]

_SESSION_SETTINGS = (
    "system",
    "threshold",
    "use_system_prompt",
    "response_schema",
    "json",
    "duration_s",
    "boxes",
    "max_mask_pixels",
    "max_mask_vertices",
)
_MASK_SETTINGS = {"max_mask_pixels": "pixels", "max_mask_vertices": "vertices"}


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
        self._backend: Backend | None = None
        self._backend_info: BackendInfo | None = None
        self._batcher: MicroBatcher | None = None
        self._runtime: Runtime | None = None
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
            self._open_backend(backend, model, backend_options)
        elif model is not None or backend_options:
            raise ConfigError("model and backend options need a backend=... to go to")

    # -- construction ---------------------------------------------------------------------
    def _open_backend(self, name: str, model: str | None, options: dict[str, Any]) -> None:
        info = self._host.backend(name)
        config = dict(options)
        if model is not None:
            config["model"] = model
        declared = {setting.name: setting for setting in info.settings}
        for key, value in config.items():
            if key in declared and value is not None:
                config[key] = declared[key].validate(value)
        try:
            inspect.signature(info.factory).bind(**config)
        except TypeError as err:
            raise ConfigError(f"backend {info.name!r} does not take these settings: {err}") from err
        except ValueError:  # no introspectable signature: let the call decide
            pass
        try:
            instance = info.factory(**config)
        except VlmkitError:
            raise
        except TypeError as err:
            if "argument" not in str(err):  # a bug inside the factory, not our call
                raise PluginError(f"backend {info.name!r} failed to start: {err}") from err
            raise ConfigError(f"backend {info.name!r} does not take these settings: {err}") from err
        except Exception as err:
            where = f" (from {info.distribution})" if info.distribution else ""
            raise PluginError(
                f"backend {info.name!r}{where} failed to start: {type(err).__name__}: {err}"
            ) from err
        if not isinstance(instance, Backend):
            raise PluginError(
                f"backend {info.name!r} factory returned {type(instance).__name__}, "
                "not a vlmkit.Backend"
            )
        try:
            if PluginHost._has_hooks(instance):  # native task routes join the pipeline
                self._host.register(instance, name=f"backend:{info.name}", raising=True)
        except PluginError:
            instance.close()
            raise
        self._backend, self._backend_info = instance, info
        from vlmkit.identity import backend_identity

        self._runtime = Runtime(
            backend_name=info.name,
            model=getattr(instance, "model", None) or model,
            generate=self._generate_function(instance),
            identity=backend_identity(info, instance, config),
        )

    def _generate_function(self, instance: Backend) -> Any:
        """The session's way to call the backend, under the calling run's budget (if any)."""
        from vlmkit.budget import budgeted

        if instance.batch_size > 1:
            self._batcher = MicroBatcher(instance.generate_batch, batch_size=instance.batch_size)
            return budgeted(instance, self._batcher.generate)
        if not instance.thread_safe:
            return budgeted(instance, _serialized(instance.generate))
        return budgeted(instance, instance.generate)

    def set_batch_size(self, batch_size: int) -> None:
        """Change how many requests the backend generates together (local models)."""
        batch_size = int(batch_size)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        backend = self.backend
        if batch_size == backend.batch_size:
            return
        if self._batcher is not None:
            self._batcher.close()
            self._batcher = None
        backend.batch_size = batch_size  # type: ignore[misc]
        assert self._runtime is not None
        self._runtime = attrs.evolve(self._runtime, generate=self._generate_function(backend))

    # -- introspection --------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        if self._backend is None:
            raise ConfigError("this Session has no backend; pass backend=... to Session()")
        return self._backend

    @property
    def backend_info(self) -> BackendInfo:
        self.backend  # noqa: B018 - raises the clear error
        assert self._backend_info is not None
        return self._backend_info

    @property
    def backend_identity(self) -> dict[str, Any]:
        """Which backend answers, from which distribution, with which answer-relevant settings
        (the endpoint, a project, ...; never a credential): what the answer cache keys on and
        what a run folder records in ``run.json``."""
        self.backend  # noqa: B018 - raises the clear error
        assert self._runtime is not None
        return dict(self._runtime.identity)

    @property
    def plugin_manager(self) -> Any:
        """The session's pluggy PluginManager (for introspection; call tasks via the Session)."""
        return self._host.pm

    def backends(self) -> Mapping[str, BackendInfo]:
        """Installed backends by name."""
        return self._host.backends()

    def sinks(self) -> Mapping[str, SinkInfo]:
        """Installed sinks by name."""
        return self._host.sinks()

    def engines(self) -> Mapping[str, EngineInfo]:
        """Installed run engines by name (``vlmkit-ray`` adds ``ray``)."""
        return self._host.engines()

    def engine_info(self, name: str) -> EngineInfo:
        """The record of the installed engine ``name`` (a clear error when there is none)."""
        return self._host.engine(name)

    @property
    def plugin_failures(self) -> list[PluginFailure]:
        """Plugins that could not be loaded, and why."""
        self._host.backends()  # registration hooks can fail too
        return list(self._host.failures)

    @property
    def conflicts(self) -> dict[tuple[str, str], list[str]]:
        self._host.backends()
        return dict(self._host.conflicts)

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Add a plugin (for example middleware) to this session only."""
        return self._host.register(plugin, name=name)

    @property
    def usage(self) -> Usage:
        """Tokens, latency and cost of every model call this session made."""
        return self.usage_meter.total

    # -- the tasks ------------------------------------------------------------------------
    def describe(
        self,
        images: Any,
        prompt: str | None = None,
        **options: Any,
    ) -> Description:
        """Ask about one image or several (a list): caption, VQA, comparison."""
        if isinstance(images, (list, tuple)):
            loaded = tuple(self._load(image) for image in images)
        else:
            loaded = (self._load(images),)
        if not loaded:
            raise ConfigError("describe needs at least one image")
        text, labels = self._prompt("describe", prompt, images=len(loaded))
        return self._call(
            "describe", text, images=loaded, labels=labels, options=options, description=prompt
        )

    def detect(
        self, image: Any, prompt: str | Sequence[str] | None = None, **options: Any
    ) -> Detections:
        """Find objects: a prompt, a description of the things to find, or a list of labels."""
        text, labels = self._prompt("detect", prompt)
        return self._call(
            "detect",
            text,
            images=(self._load(image),),
            labels=labels,
            options=options,
            description=prompt,
        )

    def segment(
        self,
        image: Any,
        prompt: str | Sequence[str] | None = None,
        *,
        threshold: int = 127,
        **options: Any,
    ) -> Detections:
        """Find objects with masks (box-local, binarized at ``threshold`` of 0–255)."""
        if not 0 <= int(threshold) <= 255:
            raise ConfigError(f"threshold must be within 0–255, got {threshold}")
        text, labels = self._prompt("segment", prompt)
        return self._call(
            "segment",
            text,
            images=(self._load(image),),
            labels=labels,
            options={**options, "threshold": int(threshold)},
            description=prompt,
        )

    def points(
        self, image: Any, prompt: str | Sequence[str] | None = None, **options: Any
    ) -> Points:
        """Point at things: labelled points in original-image pixels (Google's pointing task).

        ``prompt`` is a list of labels, a short description of the things to point at, or a
        full instruction; without one the model points at up to 10 prominent items.
        """
        text, labels = self._prompt("points", prompt)
        return self._call(
            "points",
            text,
            images=(self._load(image),),
            labels=labels,
            options=options,
            description=prompt,
        )

    def ocr(
        self, image: Any, prompt: str | None = None, *, boxes: bool = False, **options: Any
    ) -> OcrResult:
        """Read the text in an image; ``boxes=True`` asks for a box per block of text."""
        text = prompt if prompt is not None else self._prompt("ocr", None, boxes=boxes)[0]
        if boxes:
            options = {**options, "boxes": True}
        return self._call(
            "ocr", text, images=(self._load(image),), options=options, description=prompt
        )

    def video(
        self,
        source: str | Path,
        prompt: str | None = None,
        *,
        fps: float | None = None,
        start: float | None = None,
        end: float | None = None,
        max_frames: int | None = None,
        **options: Any,
    ) -> VideoResult:
        """Ask about a video (a local path, or a provider URI such as ``gs://...``).

        ``fps`` sets the sampling rate; ``start``/``end`` (seconds) clip it; ``max_frames``
        caps the frames a frame-sampling backend sends.
        """
        from vlmkit.video import probe_video, video_mime_type

        if not isinstance(source, (str, os.PathLike)):
            raise ConfigError(
                f"video takes a file path or a provider URI (gs://...), got {type(source).__name__}"
            )
        source_text = str(source)
        is_uri = "://" in source_text
        if not is_uri and not Path(source_text).is_file():
            raise MediaError(f"video not found: {source_text}", source=source_text)
        if fps is not None and fps <= 0:
            raise ConfigError(f"fps must be positive, got {fps}")
        if start is not None and end is not None and end <= start:
            raise ConfigError(f"end ({end}) must be after start ({start})")
        if max_frames is not None and max_frames < 1:
            raise ConfigError(f"max_frames must be at least 1, got {max_frames}")
        settings: dict[str, Any] = {}
        if not is_uri:
            # unreadable videos fail here, before any upload or model call; the duration
            # lets the parser drop events the model placed after the end
            settings["duration_s"] = probe_video(source_text).duration_s
        text, _ = self._prompt("video", prompt)
        video = VideoInput(
            source=source_text,
            fps=fps,
            start_s=start,
            end_s=end,
            mime_type=video_mime_type(source_text),
            max_frames=max_frames,
        )
        return self._call(
            "video", text, video=video, options={**options, **settings}, description=prompt
        )

    def track(
        self,
        video: str | Path,
        prompt: str | Sequence[str] | None = None,
        *,
        fps: float = 1.0,
        start: float | None = None,
        end: float | None = None,
        task: str = "detect",
        lost_s: float = 2.0,
        concurrency: int | None = None,
        route: str = "auto",
        **options: Any,
    ) -> VideoResult:
        """Track objects through a local video: detect (or ``task="segment"``) on ``fps``
        frames per second of ``[start, end)`` and link the answers into tracks with ByteTrack.

        ``frames`` of the result holds a :class:`~vlmkit.FrameDetections` (frame index,
        timestamp, detections in video pixels) per sampled frame, each detection with its
        ``tracker_id``; ``events`` spans each track.
        Frames are streamed, never all held; with ``cache=`` on the session a re-run pays no
        finished frame again. ``route``: ``"frames"`` (a detect request per sampled frame),
        ``"native"`` (one video request for boxes at the sampled times, for backends that
        declare it, such as Gemini) or ``"auto"`` (frames where declared). See
        :mod:`vlmkit.tracking` (needs ``vlmkit[track]``).
        """
        from vlmkit.tracking import track

        return track(
            self,
            video,
            prompt,
            fps=fps,
            start=start,
            end=end,
            task=task,
            lost_s=lost_s,
            concurrency=concurrency,
            route=route,
            **options,
        )

    # -- batch runs -----------------------------------------------------------------------
    def run(
        self,
        task: str,
        inputs: Iterable[str | Path] | str | Path,
        prompt: str | Sequence[str] | None = None,
        *,
        out_dir: str | Path,
        sinks: Iterable[str] = (),
        sink_options: Mapping[str, Mapping[str, Any]] | None = None,
        concurrency: int | None = None,
        batch_size: int | None = None,
        retry_failed: bool = False,
        budget_usd: float | None = None,
        progress: bool | Any = False,
        options: Mapping[str, Any] | None = None,
        pixel_budget: int | None = None,
        mode: str = "sync",
    ) -> Run:
        """Label many images, resumably; iterate over the returned :class:`~vlmkit.runner.Run`
        to process them, getting an :class:`~vlmkit.runner.ItemOutcome` per finished item.

        ``inputs`` are files, folders (recursive) and globs; each file's key depends only on the
        argument that yielded it (:mod:`vlmkit.inputs`). Results go to
        ``out_dir/results.jsonl`` as they finish; re-running resumes; one run at a time holds
        ``out_dir`` (:mod:`vlmkit.runlock`). ``sinks`` (``"coco"``, ``"yolo"``,
        ``"annotate"``) are written at the end from the whole ledger, once some image has an
        answer. ``budget_usd`` is a hard cap: each request's worst case is reserved before it
        is sent (:mod:`vlmkit.budget`), refused where the backend knows no price.
        ``pixel_budget`` bounds the decoded pixels of the images in flight (default 200
        megapixels, :mod:`vlmkit.pixels`): huge images are taken a few at a time.

        For long runs in a process of your own, call :func:`gc.freeze` once the session is set
        up (``vlmkit label`` does): what was imported and loaded then stays out of the garbage
        collector's full passes, which otherwise pause every request thread.

        ``mode="batch"`` hands the items to the backend's batch service (the Gemini Batch API)
        instead of calling the model once per item: same run folder, ledger, resume and sinks.
        The backend provides it as ``batch_run(session, task, inputs, **run_arguments)``.
        """
        from vlmkit.pixels import DEFAULT_PIXEL_BUDGET
        from vlmkit.runner import Run

        if isinstance(inputs, (str, Path)):
            inputs = [inputs]
        if batch_size is not None:
            self.set_batch_size(batch_size)
        if mode not in ("sync", "batch"):
            raise ConfigError(f"mode must be 'sync' or 'batch', got {mode!r}")
        factory: Any = Run
        if mode == "batch":
            batch_run = getattr(self.backend, "batch_run", None)
            if batch_run is None:
                raise UnsupportedTask(
                    f"backend {self.backend_info.name!r} has no batch mode; use mode='sync' "
                    "(or backend='gemini-api', whose Batch API answers at half the price)",
                    task=task,
                )

            def factory(session: Any, task: str, inputs: Any, **kwargs: Any) -> Run:
                return batch_run(session, task, inputs, **kwargs)  # type: ignore[no-any-return]

        return factory(
            self,
            task,
            inputs,
            prompt=prompt,
            out_dir=out_dir,
            sinks=sinks,
            sink_options=sink_options,
            concurrency=concurrency,
            retry_failed=retry_failed,
            budget_usd=budget_usd,
            progress=progress,
            options=options,
            pixel_budget=DEFAULT_PIXEL_BUDGET if pixel_budget is None else pixel_budget,
        )

    # -- sinks ----------------------------------------------------------------------------
    def sink(self, name: str, out_dir: str | Path, **options: Any) -> Sink:
        """Build an installed sink writing into ``out_dir``; its declared options are checked
        and path-like values confined to ``out_dir`` (:func:`vlmkit.sink.build_sink`)."""
        from vlmkit.sink import build_sink

        return build_sink(self._host.sink(name), out_dir, options)

    def sink_info(self, name: str) -> SinkInfo:
        """The record of the installed sink ``name`` (a clear error when there is none)."""
        return self._host.sink(name)

    # -- plumbing -------------------------------------------------------------------------
    def _load(self, image: Any) -> LoadedImage:
        return load_image(image)

    def _prompt(self, task: str, prompt: Any, **kwargs: Any) -> tuple[str, tuple[str, ...]]:
        """The task prompt in the backend's declared convention (or its own templates)."""
        backend = self.backend
        return prompt_for(
            task,
            prompt,
            convention=backend.convention,
            templates=getattr(backend, "prompt_templates", None),
            **kwargs,
        )

    def _split_options(self, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        settings = {k: options.pop(k) for k in list(options) if k in _SESSION_SETTINGS}
        declared: dict[str, Option] = {o.name: o for o in self.backend.options}
        unknown = sorted(set(options) - set(declared))
        if unknown:
            allowed = ", ".join(sorted(declared)) or "none"
            raise ConfigError(
                f"backend {self.backend_info.name!r} has no option(s) {', '.join(unknown)}; "
                f"its options are: {allowed}"
            )
        validated = {name: declared[name].validate(value) for name, value in options.items()}
        return validated, settings

    def _mask_settings(self, task: str, settings: dict[str, Any]) -> dict[str, Any]:
        """Check a call's ``max_mask_pixels`` / ``max_mask_vertices`` (whole numbers >= 0,
        text from the command line included) and, for segment, complete them from the
        session's ``mask_limits``: the generic route parses the answer with those limits."""
        given: dict[str, int] = {}
        for name, field in _MASK_SETTINGS.items():
            value = settings.pop(name, None)
            if value is None:
                continue
            try:
                number = int(value, 10) if isinstance(value, str) else value
                MaskLimits(**{field: number})  # validates: an integer >= 0
            except (ValueError, ConfigError):
                raise ConfigError(f"{name} must be a whole number >= 0, got {value!r}") from None
            given[name] = number
        if task != "segment" or (not given and self.mask_limits is None):
            return settings
        limits = self.mask_limits or MaskLimits()
        pixels = given.get("max_mask_pixels", limits.pixels)
        vertices = given.get("max_mask_vertices", limits.vertices)
        return {**settings, "max_mask_pixels": pixels, "max_mask_vertices": vertices}

    def supporting(self, task: str, medium: str = "image") -> list[str]:
        """Installed backends that support ``task`` (and ``medium``)."""
        return [
            name
            for name, info in self.backends().items()
            if task in info.tasks and medium in info.media
        ]

    def _check(self, task: str, medium: str) -> None:
        info = self.backend_info
        if task in info.tasks and medium in info.media:
            return
        alternatives = tuple(n for n in self.supporting(task, medium) if n != info.name)
        what = task if medium == "image" or task == "video" else f"{task} on {medium}"
        hint = (
            f"; installed backends that can: {', '.join(alternatives)}"
            if alternatives
            else "; no installed backend can"
        )
        raise UnsupportedTask(
            f"backend {info.name!r} does not support {what}{hint}",
            task=task,
            alternatives=alternatives,
        )

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
        backend_options, settings = self._split_options(dict(options))
        settings = self._mask_settings(task, settings)
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
            result = hook(backend=self._backend, request=request, runtime=self._runtime)
        if result is None:
            raise UnsupportedTask(f"no plugin answered {task}", task=task)
        return result

    def close(self) -> None:
        """Release the backend (clients, weights) and stop background work. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._batcher is not None:
            self._batcher.close()
        if self._backend is not None:
            self._backend.close()

    def __enter__(self) -> Session:
        if self._closed:
            raise ConfigError("this Session is closed; create a new one")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        name = self._backend_info.name if self._backend_info else None
        return f"<vlmkit.Session backend={name!r} closed={self._closed}>"


def _serialized(generate: Any) -> Any:
    lock = threading.Lock()

    def call(request: Any) -> Any:
        with lock:
            return generate(request)

    return call
