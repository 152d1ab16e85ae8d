"""Replace a benchmark's generated block in docs/benchmarks.md (``--write``)."""

from __future__ import annotations

import re
import time
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def replace_block(begin: str, end: str, text: str, doc: Path = DOC) -> None:
    """Put ``text`` between the markers ``begin`` and ``end`` of ``doc``."""
    content = doc.read_text(encoding="utf-8")
    if begin not in content:
        raise SystemExit(f"{doc} has no {begin} marker; add the benchmark's section first")
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    doc.write_text(pattern.sub(lambda _: f"{begin}\n{text}\n{end}", content), encoding="utf-8")


def report(text: str, started: float, *, write: bool, begin: str, end: str) -> None:
    """Print a benchmark's result block and its duration (``started``: its ``perf_counter``
    at the start); with ``write``, also put the block in docs/benchmarks.md."""
    print(text)
    print(f"(whole benchmark: {time.perf_counter() - started:.0f} s)")
    if write:
        replace_block(begin, end, text)
