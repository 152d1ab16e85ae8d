"""The Session's plugin queries — what is installed (backends, sinks, engines), sinks built by
name, plugins added — answered by its :class:`~vlmkit.plugins.PluginHost`: defined here,
methods of :class:`~vlmkit.Session`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmkit.records import BackendInfo, EngineInfo, SinkInfo
from vlmkit.sink import Sink

if TYPE_CHECKING:
    from vlmkit.session import Session

__all__ = [
    "backends",
    "engine_info",
    "engines",
    "register",
    "sink",
    "sink_info",
    "sinks",
    "supporting",
]


def backends(self: Session) -> Mapping[str, BackendInfo]:
    """Installed backends by name."""
    return self._host.backends()


def sinks(self: Session) -> Mapping[str, SinkInfo]:
    """Installed sinks by name."""
    return self._host.sinks()


def engines(self: Session) -> Mapping[str, EngineInfo]:
    """Installed run engines by name (``vlmkit-ray`` adds ``ray``)."""
    return self._host.engines()


def engine_info(self: Session, name: str) -> EngineInfo:
    """The record of the installed engine ``name`` (a clear error when there is none)."""
    return self._host.engine(name)


def register(self: Session, plugin: object, name: str | None = None) -> str | None:
    """Add a plugin (for example middleware) to this session only."""
    return self._host.register(plugin, name=name)


def supporting(self: Session, task: str, medium: str = "image") -> list[str]:
    """Installed backends that support ``task`` (and ``medium``)."""
    return [
        name
        for name, info in self.backends().items()
        if task in info.tasks and medium in info.media
    ]


def sink(self: Session, name: str, out_dir: str | Path, **options: Any) -> Sink:
    """Build an installed sink writing into ``out_dir``; its declared options are checked
    and path-like values confined to ``out_dir`` (:func:`vlmkit.sink.build_sink`)."""
    from vlmkit.sink import build_sink

    return build_sink(self._host.sink(name), out_dir, options)


def sink_info(self: Session, name: str) -> SinkInfo:
    """The record of the installed sink ``name`` (a clear error when there is none)."""
    return self._host.sink(name)
