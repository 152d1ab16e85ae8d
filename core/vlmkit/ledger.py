"""The run ledger: ``DIR/results.jsonl``, one JSON line per finished item.

The batch runner appends a :class:`LedgerRecord` for every item it finishes — done with its
full result (:mod:`vlmkit.serialize`), or failed with the reason — and a re-run reads the ledger
to skip what is done. ``vlmkit export`` rebuilds every sink output from it without calling a
model.

Durability: each record is one line written with a single ``os.write`` on an ``O_APPEND`` file
descriptor and then fsynced, so after a crash a line is either complete or a torn tail.
:func:`read_ledger` skips a torn or corrupt line with a logged warning and never fails on it;
:meth:`Ledger.append` starts a fresh line if the file ends in such a tail, so the next record is
never glued onto it.

Duplicates (an item retried, a run resumed with ``--force``) resolve by key: the last record
wins, so a later ``done`` supersedes an earlier ``failed`` and the newest outcome is the truth.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from vlmkit.errors import ConfigError
from vlmkit.serialize import FORMAT_VERSION, result_from_dict, result_to_dict
from vlmkit.types import Result

__all__ = ["Ledger", "LedgerRecord", "LedgerState", "read_ledger"]

logger = logging.getLogger(__name__)

Status = Literal["done", "failed"]


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


def _size(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    width, height = (int(v) for v in value)
    return (width, height)


@attrs.frozen(kw_only=True)
class LedgerRecord:
    """The outcome of one input item of a run.

    ``key`` is the input's path relative to the run's input root (``/`` separators);
    ``image_path`` is the path as it was given to the run (it may be relative to the folder the
    run started in). ``result`` is set for ``"done"``; ``error``/``error_type`` for ``"failed"``.
    ``attempt`` counts tries of this key (1 for the first); ``finished_at`` is an ISO-8601 time.
    """

    key: str
    status: Status = attrs.field(validator=attrs.validators.in_(("done", "failed")))
    result: Result | None = None
    error: str | None = None
    error_type: str | None = None
    image_path: str | None = attrs.field(
        default=None, converter=lambda v: None if v is None else os.fspath(v)
    )
    image_size: tuple[int, int] | None = attrs.field(default=None, converter=_size)
    attempt: int = attrs.field(default=1, converter=int)
    finished_at: str = attrs.field(factory=_now)

    def __attrs_post_init__(self) -> None:
        if self.status == "done" and self.result is None:
            raise ConfigError(f"ledger record {self.key!r} is 'done' but has no result")

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "key": self.key,
            "status": self.status,
            "attempt": self.attempt,
            "finished_at": self.finished_at,
            "image_path": self.image_path,
            "image_size": list(self.image_size) if self.image_size is not None else None,
            "error": self.error,
            "error_type": self.error_type,
            "result": result_to_dict(self.result) if self.result is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerRecord:
        if not isinstance(data, Mapping):
            raise ConfigError(f"a ledger record must be a JSON object, got {type(data).__name__}")
        version = data.get("version", FORMAT_VERSION)
        if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
            raise ConfigError(
                f"ledger record version {version!r} is not supported (this vlmkit reads up to "
                f"{FORMAT_VERSION}); upgrade vlmkit to read it"
            )
        result = data.get("result")
        return cls(
            key=data["key"],
            status=data["status"],
            result=result_from_dict(result) if result is not None else None,
            error=data.get("error"),
            error_type=data.get("error_type"),
            image_path=data.get("image_path"),
            image_size=data.get("image_size"),
            attempt=data.get("attempt", 1),
            finished_at=data.get("finished_at") or "",
        )

    def to_line(self) -> bytes:
        """The record as one UTF-8 JSON line ending in ``\\n`` (JSON escapes inner newlines)."""
        text = json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))
        return (text + "\n").encode("utf-8")


class Ledger:
    """An append-only ledger file. Thread-safe: appends from many threads never interleave.

    ``fsync=False`` trades the per-line durability guarantee for speed (tests, scratch runs).
    Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._lock = threading.Lock()
        self._fd: int | None = None

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(
            self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666
        )
        # A crash may have left a torn last line: start a new line so the next record stays
        # whole (the torn tail then reads as one bad line and is skipped).
        size = os.fstat(fd).st_size
        if size:
            os.lseek(fd, size - 1, os.SEEK_SET)
            if os.read(fd, 1) != b"\n":
                os.write(fd, b"\n")  # O_APPEND: lands at the end whatever the offset
        return fd

    def append(self, record: LedgerRecord) -> None:
        """Append ``record`` as one line and (by default) fsync it before returning."""
        line = record.to_line()
        with self._lock:
            if self._fd is None:
                self._fd = self._open()
            view = memoryview(line)
            written = os.write(self._fd, view)
            while written < len(view):  # regular files write whole; this is belt and braces
                written += os.write(self._fd, view[written:])
            if self.fsync:
                os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"


@attrs.define
class LedgerState:
    """What a ledger says: the final record of every key, in first-seen key order.

    ``done`` and ``failed`` split the records by status; iterating yields every final record.
    ``bad_lines`` counts lines that were skipped (torn or corrupt).
    """

    records: dict[str, LedgerRecord] = attrs.field(factory=dict)
    bad_lines: int = 0

    @property
    def done(self) -> dict[str, LedgerRecord]:
        return {k: r for k, r in self.records.items() if r.status == "done"}

    @property
    def failed(self) -> dict[str, LedgerRecord]:
        return {k: r for k, r in self.records.items() if r.status == "failed"}

    def __iter__(self) -> Iterator[LedgerRecord]:
        return iter(self.records.values())

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, key: object) -> bool:
        return key in self.records

    def get(self, key: str) -> LedgerRecord | None:
        return self.records.get(key)


def read_ledger(path: str | os.PathLike[str]) -> LedgerState:
    """Read a ledger; a missing file is an empty ledger.

    A torn last line (a crash mid-write) or any other line that is not a valid record is
    skipped with a warning. For a key seen more than once the last record wins, and the key
    keeps the position where it was first seen.
    """
    state = LedgerState()
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return state
    lines = data.split(b"\n")
    last = len(lines) - 1
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = LedgerRecord.from_dict(json.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            state.bad_lines += 1
            where = "torn last line" if number - 1 == last else "bad line"
            logger.warning(
                "%s: skipping %s %d (%s: %s); the item will be treated as not finished",
                path,
                where,
                number,
                type(err).__name__,
                str(err)[:200],
            )
            continue
        state.records[record.key] = record  # an existing key keeps its first-seen position
    return state
