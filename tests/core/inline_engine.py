"""A third-party run engine in one small file, through the public API only: it answers with
the local runner, and remembers what it was asked (for tests/core/test_engines.py)."""

from __future__ import annotations

from typing import Any

import vlmkit
from vlmkit.runner import Run

CALLS: list[dict[str, Any]] = []


class InlineEngine:
    def __init__(self, *, label: str | None = None) -> None:
        self.label = label

    def run(self, session: Any, spec: Any, task: str, inputs: Any, **arguments: Any) -> Run:
        CALLS.append({"label": self.label, "spec": spec, "arguments": dict(arguments)})
        arguments.pop("batch_size", None)
        return Run(session, task, inputs, **arguments)


@vlmkit.hookimpl
def vlmkit_engines():
    yield vlmkit.EngineInfo(
        name="inline",
        factory=lambda **options: InlineEngine(**options),
        description="Answers in this process; for tests.",
        options=(vlmkit.Option(name="label"),),
    )
