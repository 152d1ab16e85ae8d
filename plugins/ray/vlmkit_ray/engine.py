"""The ``ray`` engine (``vlmkit label --engine ray``) and ``vlmkit.ray.label``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from vlmkit.engines import SessionSpec
from vlmkit.outcomes import ItemOutcome, RunSummary
from vlmkit_ray.run import RayRun

__all__ = ["RayEngine", "label"]


class RayEngine:
    """Builds :class:`~vlmkit_ray.run.RayRun` runs with the engine's options
    (``--engine-option`` / ``--address``)."""

    def __init__(
        self,
        *,
        address: str | None = None,
        workers: int | None = None,
        requests_per_s: float | None = None,
        gpus_per_worker: float | None = None,
    ) -> None:
        self.address = address
        self.workers = workers
        self.requests_per_s = requests_per_s
        self.gpus_per_worker = gpus_per_worker

    def run(
        self,
        session: Any,
        spec: SessionSpec,
        task: str,
        inputs: Iterable[str | os.PathLike[str]],
        **run_arguments: Any,
    ) -> RayRun:
        if isinstance(inputs, (str, os.PathLike)):
            inputs = [inputs]
        batch_size = run_arguments.get("batch_size")
        if batch_size is not None:  # the plan reads the model batch off this session's backend
            session.set_batch_size(batch_size)
        return RayRun(
            session,
            task,
            inputs,
            spec=spec,
            address=self.address,
            workers=self.workers,
            requests_per_s=self.requests_per_s,
            gpus_per_worker=self.gpus_per_worker,
            **run_arguments,
        )


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
    """See :func:`vlmkit.ray.label`."""
    spec = SessionSpec(
        backend=backend, model=model, settings=dict(settings or {}), cache=cache or None
    )
    engine = RayEngine(
        address=address,
        workers=workers,
        requests_per_s=requests_per_s,
        gpus_per_worker=gpus_per_worker,
    )
    with spec.session() as session:
        run = engine.run(
            session,
            spec,
            task,
            inputs,
            prompt=prompt,
            out_dir=out,
            sinks=sinks,
            sink_options=sink_options,
            options=options,
            concurrency=concurrency,
            retry_failed=retry_failed,
            budget_usd=budget_usd,
            progress=progress,
        )
        for _ in run:
            pass
        return run.summary
