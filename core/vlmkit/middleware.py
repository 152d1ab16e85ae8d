"""Middleware shipped in the core: an on-disk answer cache and usage accounting.

Both are ordinary plugins registered into a Session's pipeline, written exactly as a third
party would write their own: the cache answers first (``tryfirst``, so a hit costs no model
call) and stores complete answers on the way out (``wrapper=True``); the meter adds up the
usage of every result that actually called a model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

import attrs

from vlmkit.backend import Backend, TaskRequest
from vlmkit.hookspecs import hookimpl
from vlmkit.runtime import Runtime
from vlmkit.types import FinishReason, Result, Usage

__all__ = ["AnswerCache", "UsageMeter", "default_cache_dir"]

log = logging.getLogger(__name__)
_KEY_VERSION = "vlmkit-cache-2"


def default_cache_dir() -> Path:
    """``$VLMKIT_CACHE_DIR`` as given, else ``$XDG_CACHE_HOME/vlmkit/answers``, else
    ``~/.cache/vlmkit/answers``."""
    if os.environ.get("VLMKIT_CACHE_DIR"):
        return Path(os.environ["VLMKIT_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vlmkit" / "answers"


def _video_identity(source: str) -> dict[str, Any]:
    path = Path(source)
    if path.exists():
        stat = path.stat()
        return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return {"uri": source}


class AnswerCache:
    """Answers keyed by the backend's identity (name, distribution version, answer-relevant
    settings such as the endpoint; never a credential), model, task, prompt, options and the
    images' content hashes.

    Only complete answers (finished normally, not cut off) are stored. Entries are JSON files
    written atomically; a damaged entry is ignored and rewritten.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).expanduser()
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    def key(self, backend: Backend, request: TaskRequest, runtime: Runtime) -> str:
        video = None
        if request.video is not None:
            video = {**attrs.asdict(request.video), **_video_identity(request.video.source)}
        payload = {
            "v": _KEY_VERSION,
            "backend": runtime.backend_name,
            "identity": runtime.identity,
            "model": runtime.model,
            "convention": getattr(backend, "convention", None),
            "task": request.task,
            "prompt": request.prompt,
            "labels": list(request.labels),
            "options": request.options,
            "settings": request.settings,
            "images": [image.sha256 for image in request.images],
            "video": video,
        }
        blob = json.dumps(payload, sort_keys=True, default=str, ensure_ascii=True)
        return hashlib.sha256(blob.encode("ascii")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def lookup(self, backend: Backend, request: TaskRequest, runtime: Runtime) -> Result | None:
        from vlmkit.serialize import result_from_dict

        path = self._path(self.key(backend, request, runtime))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            result = result_from_dict(data)
        except FileNotFoundError:
            with self._lock:
                self.misses += 1
            return None
        except Exception as err:  # a damaged entry is a miss, never a crash
            log.warning("vlmkit cache: ignoring unreadable entry %s (%s)", path.name, err)
            with self._lock:
                self.misses += 1
            return None
        with self._lock:
            self.hits += 1
        if result.provenance is not None:
            result = attrs.evolve(result, provenance=attrs.evolve(result.provenance, cached=True))
        return result

    def store(
        self, backend: Backend, request: TaskRequest, runtime: Runtime, result: Result
    ) -> None:
        from vlmkit.atomic import atomic_write_text
        from vlmkit.serialize import result_to_dict, to_json

        if result.provenance is None or result.provenance.cached or not result.complete:
            return
        path = self._path(self.key(backend, request, runtime))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, to_json(result_to_dict(result)))
        except OSError as err:  # a full or read-only disk must not fail the call
            log.warning("vlmkit cache: could not store %s (%s)", path.name, err)

    def _around(
        self, backend: Backend, request: TaskRequest, runtime: Runtime
    ) -> Generator[None, Result, Result]:
        result = yield
        self.store(backend, request, runtime, result)
        return result

    # Lookup runs first and short-circuits the pipeline on a hit (all task hooks are firstresult).
    @hookimpl(tryfirst=True, specname="vlmkit_describe")
    def lookup_describe(self, backend, request, runtime):  # type: ignore[no-untyped-def]
        return self.lookup(backend, request, runtime)

    @hookimpl(tryfirst=True, specname="vlmkit_detect")
    def lookup_detect(self, backend, request, runtime):  # type: ignore[no-untyped-def]
        return self.lookup(backend, request, runtime)

    @hookimpl(tryfirst=True, specname="vlmkit_segment")
    def lookup_segment(self, backend, request, runtime):  # type: ignore[no-untyped-def]
        return self.lookup(backend, request, runtime)

    @hookimpl(tryfirst=True, specname="vlmkit_ocr")
    def lookup_ocr(self, backend, request, runtime):  # type: ignore[no-untyped-def]
        return self.lookup(backend, request, runtime)

    @hookimpl(tryfirst=True, specname="vlmkit_video")
    def lookup_video(self, backend, request, runtime):  # type: ignore[no-untyped-def]
        return self.lookup(backend, request, runtime)

    @hookimpl(tryfirst=True, specname="vlmkit_points")
    def lookup_points(self, backend, request, runtime):  # type: ignore[no-untyped-def]
        return self.lookup(backend, request, runtime)

    @hookimpl(wrapper=True, specname="vlmkit_describe")
    def store_describe(self, backend, request, runtime):  # type: ignore[no-untyped-def]
        return (yield from self._around(backend, request, runtime))

    @hookimpl(wrapper=True, specname="vlmkit_detect")
    def store_detect(self, backend, request, runtime):  # type: ignore[no-untyped-def]
        return (yield from self._around(backend, request, runtime))

    @hookimpl(wrapper=True, specname="vlmkit_segment")
    def store_segment(self, backend, request, runtime):  # type: ignore[no-untyped-def]
        return (yield from self._around(backend, request, runtime))

    @hookimpl(wrapper=True, specname="vlmkit_ocr")
    def store_ocr(self, backend, request, runtime):  # type: ignore[no-untyped-def]
        return (yield from self._around(backend, request, runtime))

    @hookimpl(wrapper=True, specname="vlmkit_video")
    def store_video(self, backend, request, runtime):  # type: ignore[no-untyped-def]
        return (yield from self._around(backend, request, runtime))

    @hookimpl(wrapper=True, specname="vlmkit_points")
    def store_points(self, backend, request, runtime):  # type: ignore[no-untyped-def]
        return (yield from self._around(backend, request, runtime))


class UsageMeter:
    """Adds up tokens, latency and cost of every model call a Session makes (cache hits are
    counted separately and cost nothing)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = Usage.zero()
        self.by_task: dict[str, Usage] = {}
        self.cached = 0
        self.outcomes: dict[str, int] = {}

    def add(self, task: str, result: Result) -> None:
        provenance = result.provenance
        if provenance is None:
            return
        with self._lock:
            if provenance.cached:
                self.cached += 1
                return
            self.total = self.total + provenance.usage
            self.by_task[task] = self.by_task.get(task, Usage.zero()) + provenance.usage
            finish = provenance.finish.value if provenance.finish else FinishReason.STOP.value
            self.outcomes[finish] = self.outcomes.get(finish, 0) + 1

    def _around(self, request: TaskRequest) -> Generator[None, Result, Result]:
        result = yield
        self.add(request.task, result)
        return result

    @hookimpl(wrapper=True, specname="vlmkit_describe")
    def meter_describe(self, request):  # type: ignore[no-untyped-def]
        return (yield from self._around(request))

    @hookimpl(wrapper=True, specname="vlmkit_detect")
    def meter_detect(self, request):  # type: ignore[no-untyped-def]
        return (yield from self._around(request))

    @hookimpl(wrapper=True, specname="vlmkit_segment")
    def meter_segment(self, request):  # type: ignore[no-untyped-def]
        return (yield from self._around(request))

    @hookimpl(wrapper=True, specname="vlmkit_ocr")
    def meter_ocr(self, request):  # type: ignore[no-untyped-def]
        return (yield from self._around(request))

    @hookimpl(wrapper=True, specname="vlmkit_video")
    def meter_video(self, request):  # type: ignore[no-untyped-def]
        return (yield from self._around(request))

    @hookimpl(wrapper=True, specname="vlmkit_points")
    def meter_points(self, request):  # type: ignore[no-untyped-def]
        return (yield from self._around(request))
