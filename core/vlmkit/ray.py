"""Label on a Ray cluster: ``vlmkit.ray.label(...)``, provided by the ``vlmkit-ray`` distribution.

This module is only the face: it imports :mod:`vlmkit_ray` when called, so ``import vlmkit``
never loads Ray (600 MB that a local run does not need). Without the distribution the call
says how to get it.

>>> import vlmkit.ray
>>> summary = vlmkit.ray.label(  # doctest: +SKIP
...     ["photos/"], task="detect", prompt="person, car", backend="gemini-api",
...     out="runs/photos", sinks=["coco", "yolo"], address="auto",
... )
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vlmkit.errors import ConfigError

if TYPE_CHECKING:
    from vlmkit.outcomes import ItemOutcome, RunSummary

__all__ = ["label"]


def _plugin() -> Any:
    try:
        return importlib.import_module("vlmkit_ray")
    except ImportError as err:
        if getattr(err, "name", None) not in ("vlmkit_ray", "ray"):
            raise
        raise ConfigError(
            f"vlmkit.ray needs the vlmkit-ray distribution ({err}): `pip install vlmkit-ray` "
            "(it brings ray[data]), or label on this machine with `vlmkit label` / "
            "Session.run"
        ) from err


def label(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    task: str = "detect",
    prompt: str | Sequence[str] | None = None,
    backend: str,
    model: str | None = None,
    out: str | os.PathLike[str],
    sinks: Iterable[str] = (),
    sink_options: Mapping[str, Mapping[str, Any]] | None = None,
    settings: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    cache: bool | str | os.PathLike[str] | None = True,
    concurrency: int | None = None,
    retry_failed: bool = False,
    budget_usd: float | None = None,
    address: str | None = None,
    workers: int | None = None,
    requests_per_s: float | None = None,
    gpus_per_worker: float | None = None,
    progress: bool | Callable[[ItemOutcome], None] = False,
) -> RunSummary:
    """Label ``inputs`` on a Ray cluster into the run folder ``out``, as ``vlmkit label``
    would on this machine: same ledger, resume, ``run.json``, sinks. Returns the run's summary.

    ``backend``, ``model`` and ``settings`` (its ``--config``) build one Session per Ray
    worker; ``concurrency`` is the requests in flight across the whole cluster, and
    ``requests_per_s`` / ``budget_usd`` are global limits kept by one shared limiter actor.
    ``address`` is the cluster (``"auto"``, ``"ray://head:10001"``; ``None`` joins the running
    one or starts a local one); ``workers`` the Ray actors (default: one per CPU, or per GPU
    for local models with ``gpus_per_worker``). See docs/scale.md.
    """
    plugin = _plugin()
    summary: RunSummary = plugin.label(
        inputs,
        task=task,
        prompt=prompt,
        backend=backend,
        model=model,
        out=out,
        sinks=sinks,
        sink_options=sink_options,
        settings=settings,
        options=options,
        cache=cache,
        concurrency=concurrency,
        retry_failed=retry_failed,
        budget_usd=budget_usd,
        address=address,
        workers=workers,
        requests_per_s=requests_per_s,
        gpus_per_worker=gpus_per_worker,
        progress=progress,
    )
    return summary
