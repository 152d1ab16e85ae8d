"""A hard spending cap for a run: reserve each request's worst case, settle with what it cost.

Before a request is sent, its worst-case cost — what the backend says the request can cost at
most (:meth:`max_cost_usd`: the prompt's tokens, estimated generously, plus the most output
tokens the request allows, at the model's price) — is reserved; once the answer is back, the
reservation is replaced by the answer's real cost. A request whose worst case no longer fits
under the cap is not sent (:class:`BudgetReached`), so the money spent never passes the cap,
whatever the concurrency. Every paid call counts, also answers that then fail to parse.

A backend offers the bound with an optional method::

    def max_cost_usd(self, request: vlmkit.Request) -> float | None: ...

``None`` (or no such method) means no price is known, and a run refuses ``--budget``.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import Any

from vlmkit.runtime import RequestWithdrawn

__all__ = ["PAID_ANSWERS", "REPLAY", "RUN_BUDGET", "Budget", "BudgetReached", "max_cost_usd"]


class BudgetReached(RequestWithdrawn):
    """The next request's worst case does not fit under the run's budget: it was not sent."""


def max_cost_usd(backend: Any, request: Any) -> float | None:
    """The backend's bound on what ``request`` can cost, or None when it knows no price."""
    bound = getattr(backend, "max_cost_usd", None)
    if not callable(bound):
        return None
    value = bound(request)
    return None if value is None else max(float(value), 0.0)


class Budget:
    """The cap of one run, shared by its workers (thread-safe)."""

    def __init__(self, limit_usd: float) -> None:
        self.limit_usd = float(limit_usd)
        self.spent_usd = 0.0  # settled: the real cost of answers received
        self.reserved_usd = 0.0  # worst cases of requests still out
        self.calls = 0  # paid calls settled
        self._lock = threading.Lock()

    def reserve(self, amount: float) -> None:
        """Hold ``amount`` for a request about to be sent, or raise :class:`BudgetReached`."""
        with self._lock:
            if self.spent_usd + self.reserved_usd + amount > self.limit_usd:
                raise BudgetReached(
                    f"the budget of ${self.limit_usd:.4f} does not cover this request's worst "
                    f"case (${amount:.4f}; spent ${self.spent_usd:.4f}, "
                    f"${self.reserved_usd:.4f} reserved for requests out): it was not sent"
                )
            self.reserved_usd += amount

    def settle(self, amount: float, cost: float) -> None:
        """Replace a reservation of ``amount`` by the request's real ``cost`` (0 when it was
        not paid: an error before any answer)."""
        with self._lock:
            self.reserved_usd = max(self.reserved_usd - amount, 0.0)
            self.spent_usd += cost
            if cost:
                self.calls += 1


#: The budget of the run whose worker this thread is (None outside runs, or without a budget).
RUN_BUDGET: ContextVar[Budget | None] = ContextVar("vlmkit_run_budget", default=None)


#: The ``(request, answer)`` pairs received for the task call this thread is making, when a
#: run collects them: a runner keeps the raw text and usage of an answer that then fails to
#: parse.
PAID_ANSWERS: ContextVar[list[Any] | None] = ContextVar("vlmkit_paid_answers", default=None)


#: An answer already paid for (a ``Generation``) that the next model call of this thread returns
#: instead of asking the model: a run re-parses a kept answer through the whole task pipeline.
REPLAY: ContextVar[Any | None] = ContextVar("vlmkit_replay", default=None)


def budgeted(backend: Any, generate: Any) -> Any:
    """``generate`` under the calling thread's run budget (if any): reserve, call, settle;
    every answer is also handed to :data:`PAID_ANSWERS` when a run collects them."""

    def call(request: Any) -> Any:
        replay = REPLAY.get()
        if replay is not None:  # paid for already: costs nothing now
            REPLAY.set(None)
            return replay
        budget = RUN_BUDGET.get()
        if budget is None:
            generation = generate(request)
            _keep(request, generation)
            return generation
        bound = max_cost_usd(backend, request)
        if bound is None:  # checked when the run started; a price that vanished is no cap
            raise BudgetReached("no price is known for this request: it was not sent")
        budget.reserve(bound)
        cost = 0.0
        try:
            generation = generate(request)
            usage = getattr(generation, "usage", None)
            paid = getattr(usage, "cost_usd", None)
            cost = bound if paid is None else float(paid)  # unknown real cost: the worst case
            _keep(request, generation)
            return generation
        finally:
            budget.settle(bound, cost)

    return call


def _keep(request: Any, generation: Any) -> None:
    answers = PAID_ANSWERS.get()
    if answers is not None:
        answers.append((request, generation))
