"""A backend that answers from a script — for tests, demos and benchmarks of the pipeline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from vlmkit.backend import Backend, Generation, Request
from vlmkit.errors import BackendError, ConfigError, UnsupportedTask
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
    raise (to script failures). Every request is recorded in :attr:`requests`. A request for a
    task a per-task mapping leaves out raises :class:`~vlmkit.UnsupportedTask`.
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
        sends_image_files: bool = False,
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
        self.sends_image_files = sends_image_files  # type: ignore[misc]
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
                raise UnsupportedTask(
                    f"the script has no answer for task {request.task!r} (it answers "
                    f"{', '.join(map(str, script)) or 'nothing'}); add a {request.task!r} entry "
                    "to the script",
                    task=request.task,
                )
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

    The backend declares exactly the tasks the script answers: every task for one answer, a
    list or a callable; the mapping's tasks for a per-task mapping (a task it leaves out is then
    refused by the Session with :class:`~vlmkit.UnsupportedTask`). ``tasks`` narrows that
    declaration; declaring a task the mapping has no answer for, or a mapping key that is no
    task, is a :class:`~vlmkit.ConfigError`.

    >>> import vlmkit
    >>> from vlmkit.testing import scripted_plugin
    >>> plugin = scripted_plugin('[{"box_2d": [0, 0, 500, 500], "label": "cat"}]')
    >>> with vlmkit.Session("scripted", plugins=[plugin], entrypoints=False) as s:
    ...     s.detect(b"...")  # doctest: +SKIP
    """

    def factory(**config: Any) -> ScriptedBackend:
        return ScriptedBackend(script, **{**backend_options, **config})

    return _ScriptedPlugin(name, _declared(script, tasks), media, factory)


def _declared(script: Script, tasks: Iterable[str] | None) -> tuple[str, ...]:
    """The tasks a scripted backend declares: those its script answers (see scripted_plugin)."""
    if not isinstance(script, Mapping):
        return TASKS if tasks is None else tuple(tasks)
    unknown = [str(key) for key in script if key not in TASKS]
    if unknown:
        raise ConfigError(
            f"the script answers {', '.join(map(repr, unknown))}, which is not a task; "
            f"the tasks are {', '.join(TASKS)}"
        )
    if tasks is None:
        return tuple(task for task in TASKS if task in script)
    missing = [task for task in tasks if task not in script]
    if missing:
        raise ConfigError(
            f"tasks= declares {', '.join(map(repr, missing))} but the script has no answer for "
            f"{', '.join(map(repr, missing))}; add a {missing[0]!r} entry to the script or leave "
            "it out of tasks="
        )
    return tuple(tasks)
