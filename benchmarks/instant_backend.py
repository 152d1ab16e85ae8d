"""A `--plugin` module for the benchmarks: the CLI tests' scripted backend, named ``instant``,
that keeps only its last request instead of every one (``ScriptedBackend.requests`` grows by
the request, images included, per item), so a run's memory shows the runner and the sinks."""

from __future__ import annotations

import collections
import importlib.util
from pathlib import Path

import vlmkit
from vlmkit.testing import ScriptedBackend

_spec = importlib.util.spec_from_file_location(
    "_scripted_backends", Path(__file__).resolve().parents[1] / "tests/cli/scripted_backends.py"
)
assert _spec is not None and _spec.loader is not None
_scripted = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_scripted)


def _factory(*, api_key: str | None = None, **config: object) -> ScriptedBackend:
    backend = ScriptedBackend(_scripted.SCRIPT, options=_scripted.OPTIONS, **config)  # type: ignore[arg-type]
    backend.requests = collections.deque(maxlen=1)  # type: ignore[assignment]
    return backend


@vlmkit.hookimpl
def vlmkit_backends():
    yield vlmkit.BackendInfo(
        name="instant",
        factory=_factory,
        tasks={"detect"},
        description="Answers instantly from a script and keeps no history (benchmarks).",
    )
