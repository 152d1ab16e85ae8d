"""What the task pipeline of one Session hands to task hooks besides the request."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from vlmkit.backend import Generation, Request

__all__ = ["Runtime"]


@attrs.frozen(kw_only=True, eq=False)
class Runtime:
    """Per-session facilities for task hooks.

    ``generate`` is the session's way to call the backend: it is ``backend.generate``, or a
    micro-batcher over ``backend.generate_batch`` for backends that batch. Task hooks should
    call it instead of ``backend.generate`` so batching applies to them too.
    """

    backend_name: str
    model: str | None
    generate: Callable[[Request], Generation]
    settings: dict[str, Any] = attrs.field(factory=dict)
