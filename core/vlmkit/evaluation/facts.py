"""A run's own facts, read from its ledger: how many images, what failed, what was repaired,
what it cost and how long the model took — never a model call.

Cost and latency come from each result's provenance, which an answer served from the cache
keeps as it was first paid: they say what labeling with these settings costs, not what this
particular re-run spent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from vlmkit.types import FinishReason

if TYPE_CHECKING:
    from vlmkit.ledger import LedgerState

__all__ = ["RunFacts", "run_facts"]

_REPAIRS = ("swapped", "clamped", "degenerate", "masks_resized", "masks_invalid")


@attrs.frozen(kw_only=True)
class RunFacts:
    """Totals over a run's ledger (the last record of every image)."""

    images: int
    done: int
    failed: int
    failures: Mapping[str, int]
    parse_failures: int
    repairs: int
    truncations: int
    prompt_tokens: int
    output_tokens: int
    thinking_tokens: int
    cost_usd: float | None
    cost_per_image: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    cached: int
    tasks: tuple[str, ...]
    backends: tuple[str, ...]
    models: tuple[str, ...]

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens + self.thinking_tokens


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))


def run_facts(state: LedgerState) -> RunFacts:
    """Count what the ledger says. ``cost_per_image`` is the total estimated cost over the
    images that got an answer, and ``None`` when any answer has no cost estimate (a backend
    or model without a price)."""
    failures: Counter[str] = Counter()
    repairs = truncations = cached = 0
    prompt = output = thinking = 0
    costs: list[float | None] = []
    latencies: list[float] = []
    tasks: dict[str, None] = {}
    backends: dict[str, None] = {}
    models: dict[str, None] = {}
    for record in state:
        if record.status == "failed":
            failures[record.error_type or "Error"] += 1
        result = record.result
        if result is None:
            continue
        report = result.report
        repairs += sum(getattr(report, name) for name in _REPAIRS) + len(report.skipped)
        if record.error_type == "Truncated" or (
            report.truncated or result.finish is FinishReason.MAX_TOKENS
        ):
            truncations += 1
        provenance = result.provenance
        if provenance is None:
            costs.append(None)
            continue
        tasks[provenance.task] = None
        if provenance.backend:
            backends[provenance.backend] = None
        if provenance.model:
            models[provenance.model] = None
        usage = provenance.usage
        prompt += usage.prompt_tokens
        output += usage.output_tokens
        thinking += usage.thinking_tokens
        costs.append(usage.cost_usd)
        if usage.calls:
            latencies.append(usage.latency_s)
        cached += bool(provenance.cached)
    known = [c for c in costs if c is not None]
    total = sum(known) if known else None
    per_image = (
        total / len(costs) if costs and len(known) == len(costs) and total is not None else None
    )
    done = sum(1 for r in state if r.status == "done")
    return RunFacts(
        images=len(state),
        done=done,
        failed=len(state) - done,
        failures=dict(failures),
        parse_failures=failures.get("ParseError", 0),
        repairs=repairs,
        truncations=truncations,
        prompt_tokens=prompt,
        output_tokens=output,
        thinking_tokens=thinking,
        cost_usd=total,
        cost_per_image=per_image,
        latency_p50_s=_percentile(latencies, 50),
        latency_p95_s=_percentile(latencies, 95),
        cached=cached,
        tasks=tuple(tasks),
        backends=tuple(backends),
        models=tuple(models),
    )
