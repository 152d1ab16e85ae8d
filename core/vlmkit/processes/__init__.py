"""The ``processes`` engine: ``vlmkit label --engine processes``, a run spread over worker
processes on this machine.

One Python process of the google-genai SDK tops out near one core's worth of requests (the
SDK's own CPU per request; see docs/benchmarks.md), whatever its threads. This engine deals a
run's items to ``workers`` processes, each with its own Session and its share of the requests
in flight; the parent keeps the run folder — one ledger, resume, ``run.json``, the run lock,
the sinks — exactly as a local run does (:class:`vlmkit.processes.run.ProcessRun`).

>>> from vlmkit import Session
>>> from vlmkit.engines import SessionSpec, build_engine
>>> spec = SessionSpec(backend="gemini-api", cache=True)  # doctest: +SKIP
>>> with spec.session() as session:  # doctest: +SKIP
...     engine = build_engine(session, "processes", {"workers": 4})
...     run = engine.run(session, spec, "detect", ["photos/"], prompt="person", out_dir="runs/p")
...     for outcome in run:
...         pass
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from vlmkit.engines import SessionSpec

if TYPE_CHECKING:
    from vlmkit.processes.run import ProcessRun

__all__ = ["DEFAULT_MAX_WORKERS", "ProcessEngine", "default_workers"]

#: The default number of workers is this machine's CPUs, at most this many.
DEFAULT_MAX_WORKERS = 8


def default_workers() -> int:
    """The CPUs this process may run on, at most :data:`DEFAULT_MAX_WORKERS`."""
    from vlmkit.cpus import usable_cpus

    return min(usable_cpus(), DEFAULT_MAX_WORKERS)


class ProcessEngine:
    """Builds :class:`~vlmkit.processes.run.ProcessRun` runs with ``workers`` processes
    (``--engine-option workers=N``; default: :func:`default_workers`)."""

    def __init__(self, *, workers: int | None = None) -> None:
        self.workers = workers if workers is not None else default_workers()

    def run(
        self,
        session: Any,
        spec: SessionSpec,
        task: str,
        inputs: Iterable[str | os.PathLike[str]],
        **run_arguments: Any,
    ) -> ProcessRun:
        from vlmkit.processes.run import ProcessRun

        if isinstance(inputs, (str, os.PathLike)):
            inputs = [inputs]
        return ProcessRun(session, task, inputs, spec=spec, workers=self.workers, **run_arguments)
