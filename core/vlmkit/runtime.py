"""What the task pipeline of one Session hands to task hooks besides the request."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import attrs

from vlmkit.errors import VlmkitError

if TYPE_CHECKING:
    from vlmkit.backend import Generation, Request

__all__ = [
    "PIXELS_RELEASED",
    "REQUEST_GATE",
    "RequestGate",
    "RequestWithdrawn",
    "Runtime",
    "release_pixels",
]


class RequestWithdrawn(VlmkitError):
    """A request waiting for its turn was not sent: the run is stopping."""


class RequestGate:
    """At most ``limit`` task calls at once among the threads that set :data:`REQUEST_GATE` to
    it (the Session takes a slot around each task hook, so any backend route is bounded); a
    call still waiting when ``stop`` is set is not made (:class:`RequestWithdrawn`).

    A runner uses it to keep more workers than requests in flight: while ``limit`` requests are
    out, the other workers record answers and load the next images, so a slot that frees up is
    refilled at once instead of after that work.
    """

    def __init__(self, limit: int, stop: threading.Event) -> None:
        # One token per slot in a C queue: taking and returning one is a single call that
        # waits without the GIL, where threading's semaphores run a Python Condition (lock,
        # waiter list, notify) on every request (issue 16: measurable CPU per request).
        self._slots: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(limit):
            self._slots.put(None)
        self._stop = stop

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        self._slots.get()
        try:
            if self._stop.is_set():
                raise RequestWithdrawn("the run is stopping: this request was not sent")
            yield
        finally:
            self._slots.put(None)


#: The gate of the run whose worker this thread is (None outside runs).
REQUEST_GATE: ContextVar[RequestGate | None] = ContextVar("vlmkit_request_gate", default=None)

#: What the run whose worker this thread is does when a backend releases a request's pixels
#: (None outside runs): free the images it loaded and admit the next within its pixel budget.
PIXELS_RELEASED: ContextVar[Callable[[Request], None] | None] = ContextVar(
    "vlmkit_pixels_released", default=None
)


def release_pixels(request: Request) -> None:
    """Say that ``request``'s images are turned into the bytes the backend sends, and that it
    will not read their pixels again — not on a retry either. A backend calls it from
    ``generate`` once its payload is built, before it waits for the answer.

    In a run (``Session.run``, ``vlmkit label``) the decoded images are then freed and the
    run's pixel budget admits the next image while this answer is awaited, so large photos
    keep every request in flight instead of a few. Outside a run it does nothing: images a
    caller passed in are never touched. Sizes stay readable; reading a released image's
    pixels raises ``ValueError``.
    """
    hook = PIXELS_RELEASED.get()
    if hook is not None:
        hook(request)


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
    #: the backend's identity (:func:`vlmkit.identity.backend_identity`): name, distribution
    #: and answer-relevant settings, never a credential
    identity: dict[str, Any] = attrs.field(factory=dict)
