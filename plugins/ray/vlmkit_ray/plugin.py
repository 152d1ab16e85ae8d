"""Registers the ``ray`` engine (entry point ``vlmkit`` → ``ray``). Importing this is cheap:
Ray loads only when a run starts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import vlmkit


def _engine(**options: Any) -> Any:
    from vlmkit_ray.engine import RayEngine

    return RayEngine(**options)


@vlmkit.hookimpl
def vlmkit_engines() -> Iterator[vlmkit.EngineInfo]:
    yield vlmkit.EngineInfo(
        name="ray",
        factory=_engine,
        description="Ray Data across a cluster: one Session per worker actor, same run folder.",
        options=(
            vlmkit.Option(
                name="address",
                help="The Ray cluster: auto, ray://head:10001 (default: the running one, "
                "else a local one)",
            ),
            vlmkit.Option(name="workers", type=int, min=1, help="Worker actors (default: CPUs)"),
            vlmkit.Option(
                name="requests_per_s",
                type=float,
                min=0.001,
                help="Requests per second across the whole cluster (default: no limit)",
            ),
            vlmkit.Option(
                name="gpus_per_worker",
                type=float,
                min=0,
                help="GPUs per worker (default: 1 for a local model on cuda, else 0)",
            ),
        ),
    )
