"""A backend that answers from a script — for tests, demos and benchmarks of the pipeline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from vlmkit.backend import Backend, Generation, Request
from vlmkit.errors import BackendError
from vlmkit.hookspecs import hookimpl
from vlmkit.records import MEDIA, TASKS, BackendInfo, Option
from vlmkit.types import FinishReason, Usage

__all__ = ["Answer", "ScriptedBackend", "scripted_plugin"]

Answer = str | Generation | BaseException | Callable[[Request], "str | Generation"]
Script = Answer | Sequence[Answer] | Mapping[str, "Answer | Sequence[Answer]"]


class ScriptedBackend(Backend):
    """Answers every request from ``script``.

    ``script`` is one answer for everything, a list of answers used in order, a mapping from
    task name to either of those, or a callable ``request -> answer``. An answer is model text,
    a full :class:`~vlmkit.Generation` (to script usage or finish reasons), or an exception to
    raise (to script failures). Every request is recorded in :attr:`requests`.
    """

    def __init__(
        self,
        script: Script = "",
        *,
        model: str = "scripted-1",
        convention: str = "yxyx-1000",
        options: Iterable[Option] = (),
        image_policy: Any = None,
        latency_s: float = 0.0,
        concurrency: int = 8,
        batch_size: int = 1,
        max_images: int | None = None,
    ) -> None:
        self.script = script
        self.model = model
        self.convention = convention  # type: ignore[misc]
        self.options = tuple(options)  # type: ignore[misc]
        self.image_policy = image_policy  # type: ignore[misc]
        self.latency_s = latency_s
        self.concurrency = concurrency  # type: ignore[misc]
        self.batch_size = batch_size  # type: ignore[misc]
        self.max_images = max_images  # type: ignore[misc]
        self.requests: list[Request] = []
        self.batches: list[int] = []
        self.closed = False
        self._positions: dict[str, int] = {}
        self._lock = threading.Lock()

    def _answer(self, request: Request) -> Answer:
        script: Any = self.script
        key = "*"
        if isinstance(script, Mapping):
            if request.task not in script:
                raise BackendError(f"the script has no answer for task {request.task!r}")
            script, key = script[request.task], request.task
        if isinstance(script, (list, tuple)):
            with self._lock:
                position = self._positions.get(key, 0)
                self._positions[key] = position + 1
            if position >= len(script):
                raise BackendError(f"the script ran out of answers after {len(script)} calls")
            script = script[position]
        return script

    def generate(self, request: Request) -> Generation:
        with self._lock:
            self.requests.append(request)
        if self.latency_s:
            time.sleep(self.latency_s)
        answer = self._answer(request)
        if callable(answer) and not isinstance(answer, (Generation, BaseException)):
            answer = answer(request)
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, Generation):
            return answer
        text = str(answer)
        return Generation(
            text=text,
            usage=Usage(
                prompt_tokens=len(request.prompt) // 4 + 258 * len(request.images),
                output_tokens=len(text) // 4 + 1,
            ),
            finish=FinishReason.STOP,
            model=self.model,
        )

    def generate_batch(self, requests: Sequence[Request]) -> list[Any]:
        with self._lock:
            self.batches.append(len(requests))
        return super().generate_batch(requests)

    def close(self) -> None:
        self.closed = True


class _ScriptedPlugin:
    def __init__(
        self, name: str, tasks: Iterable[str], media: Iterable[str], factory: Callable[..., Any]
    ) -> None:
        self.name = name
        self.tasks = frozenset(tasks)
        self.media = frozenset(media)
        self.factory = factory

    @hookimpl
    def vlmkit_backends(self) -> Iterable[BackendInfo]:
        yield BackendInfo(
            name=self.name,
            factory=self.factory,
            tasks=self.tasks,
            media=self.media,
            description="Answers from a script (vlmkit.testing).",
        )

    def __repr__(self) -> str:
        return f"<scripted plugin {self.name!r}>"


def scripted_plugin(
    script: Script = "",
    *,
    name: str = "scripted",
    tasks: Iterable[str] | None = None,
    media: Iterable[str] = MEDIA,
    **backend_options: Any,
) -> object:
    """A plugin registering a :class:`ScriptedBackend` named ``name``.

    ``tasks`` defaults to every task, except ``points`` when ``script`` is a per-task mapping
    without an answer for it: scripts written before the pointing task keep their declarations
    (and pass :func:`~vlmkit.testing.check_backend` unchanged).

    >>> import vlmkit
    >>> from vlmkit.testing import scripted_plugin
    >>> plugin = scripted_plugin('[{"box_2d": [0, 0, 500, 500], "label": "cat"}]')
    >>> with vlmkit.Session("scripted", plugins=[plugin], entrypoints=False) as s:
    ...     s.detect(b"...")  # doctest: +SKIP
    """

    def factory(**config: Any) -> ScriptedBackend:
        return ScriptedBackend(script, **{**backend_options, **config})

    if tasks is None:
        tasks = TASKS
        if isinstance(script, Mapping) and "points" not in script:
            tasks = tuple(task for task in TASKS if task != "points")
    return _ScriptedPlugin(name, tasks, media, factory)
