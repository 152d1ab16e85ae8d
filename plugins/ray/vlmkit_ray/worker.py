"""The Ray worker: one actor per worker holding one Session, answering batches of items.

Ray Data calls :class:`LabelWorker` with a batch of rows (``key``, ``path``, ``attempt``,
``replay``). The actor answers them with the core's own :class:`vlmkit.dispatch.Dispatcher`
— the same bounded concurrency, retries, pixel budget, re-parsing of kept answers and failure
recording as a local run — into an in-memory list instead of a ledger file, and returns one row
per item: ``line`` is the item's ledger record (JSON; empty when the item was never sent, it
stays to do), ``stop`` says on the batch's first row why the worker stopped sending (the
budget, a fatal error), ``usage`` what the batch cost and ``reparsed`` how many kept answers
parsed again for free. The driver writes the one ledger.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import attrs

from vlmkit import VlmkitError
from vlmkit.dispatch import Dispatcher
from vlmkit.engines import SessionSpec
from vlmkit.inputs import InputItem
from vlmkit.ledger import LedgerRecord
from vlmkit.outcomes import RunSummary, usage_since
from vlmkit.pixels import image_pixels
from vlmkit_ray.limiter import RemoteBudget, wait_for_turn

__all__ = ["LabelWorker"]

log = logging.getLogger(__name__)


class _Collected:
    """Where the dispatcher's records go in a worker: a list, not a file (the driver writes
    the ledger). Has the two things the dispatcher uses of a ledger."""

    def __init__(self) -> None:
        self.path = Path("<ray worker>")
        self.records: dict[str, LedgerRecord] = {}

    def append(self, record: LedgerRecord) -> None:
        self.records[record.key] = record


class LabelWorker:
    """A Ray Data actor: builds its Session once, then answers batch after batch."""

    def __init__(
        self,
        *,
        spec: SessionSpec,
        task: str,
        prompt: Any,
        options: dict[str, Any],
        threads: int,
        pixel_budget: int,
        batch_size: int | None = None,
        limiter: Any = None,
        rate_limited: bool = False,
        budgeted: bool = False,
    ) -> None:
        self.session = spec.session()
        if batch_size is not None:
            self.session.set_batch_size(batch_size)
        self.task = task
        if task == "segment":  # OpenCV places the masks: imported now, not by the first answers
            from vlmkit.masks import warm_up

            warm_up()
        self.prompt = prompt
        self.options = dict(options)
        self.threads = max(int(threads), 1)
        self.pixel_budget = pixel_budget
        self.limiter = limiter if rate_limited else None
        self.budget = RemoteBudget(limiter) if budgeted and limiter is not None else None

    def _call(self, item: InputItem, image: Any) -> Any:
        if self.limiter is not None:
            wait_for_turn(self.limiter)
        method = getattr(self.session, self.task)
        return method(image, self.prompt, **self.options)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        keys = [str(key) for key in batch["key"]]
        items = [
            InputItem(key=key, path=Path(str(path)))
            for key, path in zip(keys, batch["path"], strict=True)
        ]
        attempts = {key: int(n) for key, n in zip(keys, batch["attempt"], strict=True)}
        summary = RunSummary()
        dispatcher = Dispatcher(
            call=self._call,
            backend=self.session.backend,
            concurrency=self.threads,
            budget=self.budget,  # type: ignore[arg-type]
            pixel_budget=self.pixel_budget,
            summary=summary,
            report=lambda outcome: None,
        )
        dispatcher.pixels = image_pixels(item.path for item in items)
        dispatcher.replays = {
            key: str(raw) for key, raw in zip(keys, batch["replay"], strict=True) if raw
        }
        collected = _Collected()
        before = self.session.usage
        stop: dict[str, str] | None = None
        try:
            for _ in dispatcher.process(items, attempts, collected, None):  # type: ignore[arg-type]
                pass
        except VlmkitError as err:  # no item's fault (bad credentials, quota): stop the run
            stop = {
                "why": summary.stopped or "error",
                "type": type(err).__name__,
                "message": str(err),
            }
        if stop is None and summary.stopped == "budget":
            stop = {"why": "budget", "type": "BudgetReached", "message": "budget reached"}
        usage = usage_since(before, self.session.usage) + dispatcher.unparsed_usage
        count = len(keys)
        lines = [
            collected.records[key].to_line().decode("utf-8") if key in collected.records else ""
            for key in keys
        ]
        return {
            "key": keys,
            "line": lines,
            "stop": [json.dumps(stop) if stop else ""] + [""] * (count - 1),
            "usage": [json.dumps(attrs.asdict(usage))] + [""] * (count - 1),
            "reparsed": [summary.reparsed] + [0] * (count - 1),
        }

    def __del__(self) -> None:
        session = getattr(self, "session", None)
        if session is not None:
            session.close()
