"""What a run reports: one outcome per input, and the run's totals."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from vlmkit.filelist import FileList
from vlmkit.types import FinishReason, Result, Usage

__all__ = ["ItemOutcome", "RunSummary", "Status", "outcome_problem", "usage_since"]

Status = Literal["done", "failed", "skipped", "resumed"]


@attrs.frozen(kw_only=True)
class ItemOutcome:
    """What happened to one input in this run."""

    key: str
    path: Path | None
    status: Status
    result: Result | None = None
    error: str | None = None
    error_type: str | None = None


def _texts(files: Sequence[Path]) -> list[str]:
    """The paths as text (a FileList's without building a Path for each)."""
    return list(files.texts()) if isinstance(files, FileList) else [os.fspath(p) for p in files]


@attrs.define
class RunSummary:
    """Totals of a run, printed at the end by ``vlmkit label``."""

    done: int = 0
    failed: int = 0
    skipped: int = 0
    resumed: int = 0  # finished in an earlier run, skipped now
    cached: int = 0  # done with an answer from the answer cache: no model call, no cost
    reparsed: int = 0  # done by parsing again an answer kept from an earlier run: no cost
    usage: Usage = attrs.field(factory=Usage.zero)
    wall_s: float = 0.0
    #: CPU time this process spent during the run, all its threads (``time.process_time``):
    #: near ``wall_s``, the client — not the model — set the pace (see :attr:`cpu_share`)
    cpu_s: float = 0.0
    #: why the run stopped early: "budget", "interrupted", "error", "quota exhausted",
    #: "no images", or None
    stopped: str | None = None
    failures: dict[str, int] = attrs.field(factory=dict)  # error type -> count
    #: the files each sink wrote (a :class:`~vlmkit.FileList` for the core's sinks)
    sink_files: dict[str, Sequence[Path]] = attrs.field(factory=dict)
    skipped_inputs: dict[str, str] = attrs.field(factory=dict)  # input path -> why skipped

    @property
    def tokens(self) -> int:
        return self.usage.total_tokens

    @property
    def cost_usd(self) -> float | None:
        return self.usage.cost_usd

    @property
    def items_per_s(self) -> float:
        processed = self.done + self.failed
        return processed / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_share(self) -> float:
        """The share of one core this process kept busy over the run (1.0: a whole core)."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    def count(self, outcome: ItemOutcome) -> None:
        """Add one item's outcome to the totals."""
        if outcome.status == "done":
            self.done += 1
            provenance = outcome.result.provenance if outcome.result is not None else None
            if provenance is not None and provenance.cached:
                self.cached += 1
        elif outcome.status == "failed":
            self.failed += 1
            kind = outcome.error_type or "error"
            self.failures[kind] = self.failures.get(kind, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain JSON data (``vlmkit label --json``)."""
        return {
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "resumed": self.resumed,
            "cached": self.cached,
            "reparsed": self.reparsed,
            "tokens": self.tokens,
            "prompt_tokens": self.usage.prompt_tokens,
            "cached_tokens": self.usage.cached_tokens,
            "output_tokens": self.usage.output_tokens,
            "thinking_tokens": self.usage.thinking_tokens,
            "calls": self.usage.calls,
            "cost_usd": self.cost_usd,
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "stopped": self.stopped,
            "failures": dict(self.failures),
            "skipped_inputs": dict(self.skipped_inputs),
            "sink_files": {k: _texts(v) for k, v in self.sink_files.items()},
        }

    def __str__(self) -> str:
        cost = "n/a" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        # implicit caching: the part of the prompt the provider served (and bills) as cached
        cached_input = (
            f", cached input {self.usage.cached_tokens:,}" if self.usage.cached_tokens else ""
        )
        lines = [
            f"done {self.done}, failed {self.failed}, skipped {self.skipped}, "
            f"resumed {self.resumed}",
            f"tokens {self.tokens:,} (prompt {self.usage.prompt_tokens:,}{cached_input}, output "
            f"{self.usage.output_tokens:,}, thinking {self.usage.thinking_tokens:,}), "
            f"estimated cost {cost}",
            f"wall time {self.wall_s:.2f} s, {self.items_per_s:.2f} items/s, "
            f"CPU {self.cpu_s:.2f} s",
        ]
        if self.cached:
            lines.insert(
                1,
                f"cached {self.cached} (answers reused from the answer cache: no model call, "
                "no tokens, no cost; --no-cache to ask again)",
            )
        if self.reparsed:
            lines.insert(
                1,
                f"reparsed {self.reparsed} (answers kept from an earlier run parsed again: no "
                "model call, no cost)",
            )
        if self.skipped_inputs:
            shown = [f"{path} ({why})" for path, why in list(self.skipped_inputs.items())[:5]]
            more = len(self.skipped_inputs) - len(shown)
            lines.append("skipped: " + ", ".join(shown) + (f" and {more} more" if more else ""))
        if self.failures:
            lines.append("failures: " + ", ".join(f"{k} {v}" for k, v in self.failures.items()))
        if self.stopped == "no images":
            lines.append("no images found among the inputs: nothing to do")
        elif self.stopped == "error":
            lines.append("stopped early: error (fix it, then re-run the same command to resume)")
        elif self.stopped:
            lines.append(f"stopped early: {self.stopped} (re-run the same command to resume)")
        return "\n".join(lines)


def outcome_problem(result: Result) -> tuple[str, str] | None:
    """Why a returned result is not a usable label (blocked, empty, cut off), if it is not:
    ``(kind, reason)``."""
    finish = result.finish
    detail = result.provenance.detail if result.provenance else None
    if finish in (FinishReason.SAFETY, FinishReason.BLOCKED):
        why = (
            f"{finish.value}: {detail}"
            if detail and detail.lower() != finish.value
            else finish.value
        )
        return "Blocked", f"blocked by the provider ({why})"
    if finish is FinishReason.EMPTY:
        return "Empty", "the model returned an empty answer"
    if result.report.truncated or finish is FinishReason.MAX_TOKENS:
        kept = len(getattr(result, "items", ()))
        why = f"the answer was cut off by the token limit (kept {kept} complete items)"
        # the backend knows why (e.g. thinking used the budget) and what to change
        return "Truncated", f"{why}: {detail}" if detail else why
    if finish is FinishReason.OTHER:
        return "Stopped", "the model stopped for an unknown reason"
    return None


def usage_since(before: Usage, after: Usage) -> Usage:
    cost = None
    if after.cost_usd is not None:
        cost = after.cost_usd - (before.cost_usd or 0.0)
    return Usage(
        prompt_tokens=after.prompt_tokens - before.prompt_tokens,
        output_tokens=after.output_tokens - before.output_tokens,
        thinking_tokens=after.thinking_tokens - before.thinking_tokens,
        latency_s=after.latency_s - before.latency_s,
        calls=after.calls - before.calls,
        cost_usd=cost,
        cached_tokens=after.cached_tokens - before.cached_tokens,
    )
