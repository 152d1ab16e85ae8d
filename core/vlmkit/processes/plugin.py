"""Registers the ``processes`` engine through the ``vlmkit`` entry-point group, like any
plugin. Importing this is cheap: the engine's modules load when a run is built."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from vlmkit.hookspecs import hookimpl
from vlmkit.records import EngineInfo, Option


def _engine(**options: Any) -> Any:
    from vlmkit.processes import ProcessEngine

    return ProcessEngine(**options)


@hookimpl
def vlmkit_engines() -> Iterator[EngineInfo]:
    yield EngineInfo(
        name="processes",
        factory=_engine,
        description="Worker processes on this machine: one Session each, same run folder "
        "(past one core's worth of API requests).",
        same_machine=True,
        options=(
            Option(
                name="workers",
                type=int,
                min=1,
                help="Worker processes (default: this machine's CPUs, at most 8)",
            ),
        ),
    )
