"""The ``jsonl`` sink: the run's results as ledger lines, ``results.jsonl`` in the out dir.

Each item becomes one :class:`~vlmkit.ledger.LedgerRecord` line in exactly the run ledger's
format, with the complete result (provenance, raw model text, masks) — the lossless form every
other sink can be rebuilt from with ``vlmkit export``. :meth:`JsonlSink.close` writes the file
atomically with one line per key (a key written twice keeps its first position and its last
record), so it is always a complete, compact export. Keys are data here, never file names.
Strings UTF-8 cannot encode are kept exactly, as ``\\u`` escapes (:meth:`LedgerRecord.to_line`).

Do not point it at a run's own ledger: the batch runner already writes that file, and
:func:`vlmkit.export.export` refuses to overwrite the ledger it reads.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from vlmkit.ledger import LedgerRecord
from vlmkit.sink import SinkItem, StagedSink, reject_unknown, safe_join

__all__ = ["JsonlSink"]


class JsonlSink(StagedSink):
    """Writes ledger-format lines to ``results.jsonl`` (option ``filename``)."""

    accepts = frozenset({"describe", "detect", "segment", "ocr", "video", "points"})

    def __init__(
        self, out_dir: str | Path, *, filename: str = "results.jsonl", **options: Any
    ) -> None:
        reject_unknown("jsonl", options, ("filename",))
        super().__init__(out_dir, filename=filename)
        self.path = safe_join(self.out_dir, filename)
        self._records: dict[str, LedgerRecord] = {}
        self._lock = threading.Lock()

    def write(self, item: SinkItem) -> None:
        self.write_record(
            LedgerRecord(
                key=item.key,
                status="done",
                result=item.result,
                image_path=None if item.image_path is None else os.fspath(item.image_path),
                image_size=item.image_size,
            )
        )

    def write_record(self, record: LedgerRecord) -> None:
        """Add a ledger record as it is (``export`` uses this to keep attempts and times)."""
        with self._lock:
            self._records[record.key] = record

    def _prepare(self) -> None:
        with self._lock, self.staging.open(self.path, "wb") as handle:
            for record in self._records.values():
                handle.write(record.to_line())
