"""Frozen records that plugins register: which backends and sinks exist, and what they can do.

Registration hooks return these and nothing else — no instances, no I/O. The factory is called
only when a Session actually selects the backend or sink, so heavy SDKs load lazily.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Literal

import attrs

from vlmkit.errors import ConfigError

__all__ = [
    "MEDIA",
    "TASKS",
    "TRACK_ROUTES",
    "BackendInfo",
    "EngineInfo",
    "Option",
    "SinkInfo",
    "Task",
    "normalize_name",
]

Task = Literal["describe", "detect", "segment", "ocr", "video", "points"]
TASKS: tuple[str, ...] = ("describe", "detect", "segment", "ocr", "video", "points")
MEDIA: tuple[str, ...] = ("image", "video")
#: How a backend can track objects through a video: ``frames`` (detect on each sampled frame,
#: any backend that detects) and ``native`` (one ``video`` request for boxes at timestamps).
TRACK_ROUTES: tuple[str, ...] = ("frames", "native")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def normalize_name(value: str) -> str:
    """Plugin-visible names are lower-case and stripped; ``Gemini-API`` and ``gemini-api`` match."""
    try:
        name = value.strip().lower()
    except AttributeError:
        raise ConfigError(f"a name must be a string, got {value!r}") from None
    if not _NAME.match(name):
        raise ConfigError(
            f"invalid name {value!r}: use lower-case letters, digits, '-', '_' and '.', "
            "starting with a letter or digit"
        )
    return name


def _subset(allowed: tuple[str, ...], what: str) -> Callable[[Iterable[str]], frozenset[str]]:
    def convert(values: Iterable[str]) -> frozenset[str]:
        if isinstance(values, str):
            values = (values,)
        result = frozenset(str(v).strip().lower() for v in values)
        unknown = result - set(allowed)
        if unknown:
            raise ConfigError(f"unknown {what} {sorted(unknown)}; known: {list(allowed)}")
        return result

    return convert


def _tasks(values: Iterable[str]) -> frozenset[str]:
    return _subset(TASKS, "tasks")(values)


def _media(values: Iterable[str]) -> frozenset[str]:
    return _subset(MEDIA, "media")(values)


def _track_routes(values: Iterable[str]) -> frozenset[str]:
    return _subset(TRACK_ROUTES, "track_routes")(values)


def _options(values: Iterable[Option]) -> tuple[Option, ...]:
    return tuple(values)


def _names(values: Iterable[str] | None) -> frozenset[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = (values,)
    return frozenset(str(v) for v in values)


def _callable(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not callable(value):
        raise ConfigError(f"{attribute.name} must be callable, got {value!r}")


@attrs.frozen(kw_only=True)
class Option:
    """A per-call option a backend accepts, e.g. ``max_soft_tokens`` or ``media_resolution``.

    ``type`` converts the value (``int``, ``float``, ``str``, ``bool``, or any callable that
    takes the value — text from the command line — and returns it converted); ``choices``
    limits it, ``min``/``max`` bound numbers, ``help`` is shown by ``vlmkit backends`` and
    ``vlmkit sinks``. ``input_file=True`` marks a sink option naming a file to *read* (a
    font), which may live outside the output folder; every other path-like sink option value
    is confined to it.
    """

    name: str
    type: Callable[[Any], Any] = str
    choices: tuple[Any, ...] | None = None
    default: Any = None
    help: str = ""
    min: float | None = None
    max: float | None = None
    input_file: bool = False

    def validate(self, value: Any) -> Any:
        try:
            if self.type is bool and isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                converted: Any = lowered in ("1", "true", "yes", "on")
            else:
                converted = self.type(value)
        except (TypeError, ValueError):
            type_name = getattr(self.type, "__name__", str(self.type))
            raise ConfigError(f"option {self.name}={value!r} is not a valid {type_name}") from None
        if self.choices is not None and converted not in self.choices:
            raise ConfigError(
                f"option {self.name}={value!r} is not allowed; choose one of {list(self.choices)}"
            )
        if self.min is not None and converted < self.min:
            raise ConfigError(f"option {self.name}={value!r} must be at least {self.min:g}")
        if self.max is not None and converted > self.max:
            raise ConfigError(f"option {self.name}={value!r} must be at most {self.max:g}")
        return converted


@attrs.frozen(kw_only=True)
class BackendInfo:
    """A backend a plugin provides.

    ``factory(**config)`` builds the backend (a :class:`vlmkit.Backend`); import heavy SDKs
    inside it. ``tasks`` and ``media`` declare what it can do; the Session refuses anything else
    with :class:`~vlmkit.UnsupportedTask` before any backend code runs.

    ``settings`` declares the construction settings the factory takes (``model``, ``api_key``,
    ``device``, ``base_url``, ...) as :class:`Option` records: ``Session(name, **settings)``
    and the CLI's ``--config key=value`` are converted and checked against them before the
    factory runs, and ``vlmkit backends`` lists them. Per-call options (``--option``) are
    declared on the Backend (``Backend.options``) and validated there; ``options`` repeats
    them for the listing (the conformance check compares the two).
    """

    name: str = attrs.field(converter=normalize_name)
    factory: Callable[..., Any] = attrs.field(validator=_callable)
    tasks: frozenset[str] = attrs.field(converter=_tasks)
    media: frozenset[str] = attrs.field(default=frozenset({"image"}), converter=_media)
    description: str = ""
    #: construction settings the factory accepts (model, device, api_key, ...): values given
    #: as strings (the CLI's --config) are converted and checked before the factory runs
    settings: tuple[Option, ...] = attrs.field(default=(), converter=_options)
    #: the per-call options the backend declares (``Backend.options``), repeated here so
    #: ``vlmkit backends`` can list them without building the backend
    options: tuple[Option, ...] = attrs.field(default=(), converter=_options)
    plugin: str | None = None  # entry point / plugin name, filled in by the host
    distribution: str | None = None  # "vlmkit-gemini 0.1.0", filled in by the host
    #: the construction settings whose values change answers (the endpoint, a project, an
    #: offset): part of the answer cache's key and of a run's identity. ``None`` (the default):
    #: every setting except credentials (:func:`vlmkit.identity.is_credential`).
    answer_settings: frozenset[str] | None = attrs.field(default=None, converter=_names)
    #: the tracking routes it takes (:data:`TRACK_ROUTES`): ``frames`` needs ``detect``;
    #: ``native`` needs ``video`` and means the backend answers one ``video`` request (JSON
    #: mode) with boxes at the timestamps asked for (``Backend.track_video_prompt`` may word it)
    track_routes: frozenset[str] = attrs.field(
        default=frozenset({"frames"}), converter=_track_routes
    )

    @tasks.validator
    def _check_tasks(self, _attribute: object, value: frozenset[str]) -> None:
        if not value:
            raise ConfigError(f"backend {self.name!r} must declare at least one task")


@attrs.frozen(kw_only=True)
class SinkInfo:
    """An output sink a plugin provides; ``factory(out_dir, **options)`` builds a
    :class:`vlmkit.Sink`.

    ``accepts`` lists the tasks whose results it can write: the core never hands it another
    kind. ``options`` declares the options it takes (:class:`Option` records): the core checks
    names and converts values (``--sink-option name.key=value`` gives text) before the factory
    runs, so a wrong one is a :class:`~vlmkit.ConfigError`; ``vlmkit sinks`` lists them.
    ``None`` (not declared) passes options to the factory unchecked.
    """

    name: str = attrs.field(converter=normalize_name)
    factory: Callable[..., Any] = attrs.field(validator=_callable)
    accepts: frozenset[str] = attrs.field(converter=_tasks)
    description: str = ""
    options: tuple[Option, ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(_options)
    )
    plugin: str | None = None
    distribution: str | None = None

    @accepts.validator
    def _check_accepts(self, _attribute: object, value: frozenset[str]) -> None:
        if not value:
            raise ConfigError(f"sink {self.name!r} must accept at least one task")


@attrs.frozen(kw_only=True)
class EngineInfo:
    """A run engine a plugin provides: another way to answer a run's items (Ray Data across a
    cluster) under the same run-folder semantics as the local thread runner.

    ``factory(**options)`` builds the engine, whose ``run(session, spec, task, inputs,
    **run_arguments)`` returns a :class:`vlmkit.runner.Run` (:class:`vlmkit.engines.Engine`);
    import heavy libraries inside it. ``options`` declares what the factory takes (``address``,
    ``workers``, ...): values given as text (``--engine-option``) are converted and checked
    first. ``same_machine``: the engine's workers run on this machine and see its files, so
    ``--plugin`` ``.py`` files reach them too (Ray's workers may be elsewhere: they do not).
    """

    name: str = attrs.field(converter=normalize_name)
    factory: Callable[..., Any] = attrs.field(validator=_callable)
    description: str = ""
    options: tuple[Option, ...] = attrs.field(default=(), converter=_options)
    same_machine: bool = False
    plugin: str | None = None
    distribution: str | None = None
