"""Global limits for a run on a cluster: one limiter actor that every worker asks.

Without it, N workers would each keep the run's limits for themselves and send N times the
allowed rate, or spend N budgets. :class:`Limiter` is a plain class (the run makes it a Ray
actor with ``ray.remote``) that keeps:

* the request rate: a reservation clock — each request takes the next free slot,
  ``1 / requests_per_s`` after the previous one, and is told how long to wait for it. The
  actor never blocks, so it answers every worker at once;
* the budget: the same reserve-then-settle accounting as :class:`vlmkit.budget.Budget`, for
  the whole cluster. A worker killed between reserving and settling leaves its reservation
  held: the cap is never passed, at worst reached a little early;
* a stop flag: once set (budget reached, a fatal error, the driver stopping), no worker sends
  anything new.
"""

from __future__ import annotations

import time
from typing import Any

from vlmkit.budget import Budget, BudgetReached
from vlmkit.runtime import RequestWithdrawn

__all__ = ["Limiter", "RemoteBudget", "wait_for_turn"]


class Limiter:
    """The shared limits of one run (see the module docs)."""

    def __init__(self, requests_per_s: float | None = None, budget_usd: float | None = None):
        if requests_per_s is not None and requests_per_s <= 0:
            raise ValueError(f"requests_per_s must be positive, got {requests_per_s}")
        self.interval_s = 1.0 / requests_per_s if requests_per_s else 0.0
        self.budget = Budget(budget_usd) if budget_usd is not None else None
        self.next_at = 0.0
        self.granted = 0
        self.stopped: str | None = None

    def acquire(self) -> float | None:
        """Seconds the caller waits before sending its request, or None: send nothing."""
        if self.stopped is not None:
            return None
        self.granted += 1
        if not self.interval_s:
            return 0.0
        now = time.monotonic()
        slot = max(now, self.next_at)
        self.next_at = slot + self.interval_s
        return slot - now

    def reserve(self, amount: float) -> str | None:
        """Hold ``amount`` of the budget; the refusal's message when it does not fit."""
        if self.budget is None:
            return None
        if self.stopped is not None:
            return f"the run is stopping ({self.stopped}): this request was not sent"
        try:
            self.budget.reserve(amount)
        except BudgetReached as err:
            self.stopped = "budget"
            return str(err)
        return None

    def settle(self, amount: float, cost: float) -> None:
        if self.budget is not None:
            self.budget.settle(amount, cost)

    def stop(self, why: str) -> None:
        if self.stopped is None:
            self.stopped = why

    def totals(self) -> dict[str, Any]:
        """What was granted and spent (for the driver's report and the tests)."""
        budget = self.budget
        return {
            "granted": self.granted,
            "stopped": self.stopped,
            "spent_usd": budget.spent_usd if budget is not None else None,
            "reserved_usd": budget.reserved_usd if budget is not None else None,
        }


class RemoteBudget:
    """A worker's view of the cluster's budget: the :class:`vlmkit.budget.Budget` interface
    (``reserve``/``settle``) answered by the limiter actor, so the core's budgeted calls need
    no change."""

    def __init__(self, limiter: Any) -> None:
        self.limiter = limiter

    def reserve(self, amount: float) -> None:
        import ray

        refused = ray.get(self.limiter.reserve.remote(amount))
        if refused is not None:
            raise BudgetReached(refused)

    def settle(self, amount: float, cost: float) -> None:
        import ray

        ray.get(self.limiter.settle.remote(amount, cost))


def wait_for_turn(limiter: Any) -> None:
    """Take the next request slot of the cluster's rate (sleeping until it comes), or raise
    :class:`~vlmkit.runtime.RequestWithdrawn` when the run is stopping."""
    import ray

    delay = ray.get(limiter.acquire.remote())
    if delay is None:
        raise RequestWithdrawn("the run is stopping: this request was not sent")
    if delay > 0:
        time.sleep(delay)
