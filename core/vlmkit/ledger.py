"""The run ledger: ``DIR/results.jsonl``, one JSON line per finished item.

The batch runner appends a :class:`LedgerRecord` for every item it finishes — done with its
full result (:mod:`vlmkit.serialize`), or failed with the reason — and a re-run reads the ledger
to skip what is done. ``vlmkit export`` rebuilds every sink output from it without calling a
model.

Durability: each record is one line written with a single ``os.write`` on an ``O_APPEND`` file
descriptor and then fsynced, so after a crash a line is either complete or a torn tail.
:meth:`Ledger.append` starts a fresh line if the file ends in such a tail, so the next record is
never glued onto it.

Lossless: a line is UTF-8 JSON; a record holding a string UTF-8 cannot encode (a lone surrogate
such as ``"\\ud800"`` in a model's label) is written with ``\\u`` escapes instead, so the paid
answer is kept and reads back identical (:func:`vlmkit.serialize.to_json`; a high surrogate
directly followed by a low one reads back as the one character the pair encodes, as in JSON).

Reading (:func:`read_ledger`):

* a torn line — the unterminated last line, or a line cut short by a crash that a later run
  sealed with a newline — is normal after a crash: it is skipped and reported once at INFO
  level;
* any other line that is not a record (corrupt, edited, a newer format) is skipped, and one
  WARNING per read gives their count and the first of them;
* a file in which no line is a record but some line is corrupt — a binary file, an image, a
  COCO JSON, any text — is not a ledger: :class:`~vlmkit.ConfigError`, never an empty ledger.
  (An empty file, or one holding only a torn line, is an empty ledger.)

Duplicates (an item retried, a run resumed with ``--force``) resolve by key: the last record
wins, so a later ``done`` supersedes an earlier ``failed`` and the newest outcome is the truth.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs

from vlmkit.errors import ConfigError
from vlmkit.serialize import (
    FORMAT_VERSION,
    _usage_from,
    _usage_to,
    result_from_dict,
    result_to_dict,
    to_json,
)
from vlmkit.types import Result, Usage

if TYPE_CHECKING:
    from vlmkit.ledgerindex import LedgerIndex

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
    A failed item whose paid answer could not be parsed keeps that answer: ``raw_text`` (complete)
    and ``usage`` (what it cost).
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
    #: a failed item's paid answer that yielded no result (a parse failure): the complete text
    #: and what it cost, so it can be re-parsed later without paying again
    raw_text: str | None = None
    usage: Usage | None = None

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
        } | self._paid()

    def _paid(self) -> dict[str, Any]:
        paid: dict[str, Any] = {}
        if self.raw_text is not None:
            paid["raw_text"] = self.raw_text
        if self.usage is not None:
            paid["usage"] = _usage_to(self.usage)
        return paid

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
        key = data["key"]
        if not isinstance(key, str) or not key:
            raise ConfigError(f"a ledger record's key must be a non-empty string, got {key!r}")
        result = data.get("result")
        return cls(
            key=key,
            status=data["status"],
            result=result_from_dict(result) if result is not None else None,
            error=data.get("error"),
            error_type=data.get("error_type"),
            image_path=data.get("image_path"),
            image_size=data.get("image_size"),
            attempt=data.get("attempt", 1),
            finished_at=data.get("finished_at") or "",
            raw_text=data.get("raw_text"),
            usage=_usage_from(data["usage"]) if isinstance(data.get("usage"), Mapping) else None,
        )

    def to_line(self) -> bytes:
        """The record as one UTF-8 JSON line ending in ``\\n`` (JSON escapes inner newlines).

        Strings UTF-8 cannot encode (lone surrogates) are written as ``\\u`` escapes, so the
        line always encodes and reads back into an equal record."""
        return (to_json(self.to_dict(), compact=True) + "\n").encode("utf-8")


def _seal(fd: int) -> None:
    """End a torn last line (a crash, a full disk) with a newline, so the next record stays
    whole (the torn tail then reads as one bad line and is skipped)."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        os.write(fd, b"\n")  # O_APPEND: lands at the end whatever the offset


class Ledger:
    """An append-only ledger file. Thread-safe: appends from many threads never interleave.

    ``fsync=False`` trades the per-line durability guarantee for speed (tests, scratch runs).
    ``state``: a :class:`LedgerState` (the file as read) or a
    :class:`~vlmkit.ledgerindex.LedgerIndex` (what resuming needs of it) that every append also
    updates, in file order, so the caller holds what the file says without reading it again.
    ``on_append``: called with each record once it is written, in file order (under the
    ledger's lock: keep it quick; durability is not yet assured then).
    Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: bool = True,
        state: LedgerState | LedgerIndex | None = None,
        on_append: Callable[[LedgerRecord], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.state = state
        self.on_append = on_append
        self._lock = threading.Lock()
        # Group commit: lines are numbered as written; one thread at a time flushes the file
        # (the "leader"), which makes every line written before its fsync durable; the others
        # wait for a flush that covers their line instead of each issuing their own.
        self._synced = threading.Condition(self._lock)
        self._written = 0  # lines written so far
        self._durable = 0  # lines known to be on disk
        self._syncing = False  # a leader's fsync is in flight (close() waits for it)
        self._fd: int | None = None
        self._torn = False

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(
            self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666
        )
        # A crash may have left a torn last line: start a new line so the next record stays
        # whole (the torn tail then reads as one bad line and is skipped).
        _seal(fd)
        return fd

    def append(self, record: LedgerRecord, *, line: bytes | None = None, sync: bool = True) -> None:
        """Append ``record`` as one line and (by default) fsync it before returning.

        ``line`` is the record's :meth:`LedgerRecord.to_line` when the caller has it already
        (a worker process made it). ``sync=False`` leaves the flush to a later :meth:`sync`,
        so a caller recording many records at once flushes them once."""
        if line is None:
            line = record.to_line()
        with self._lock:
            if self._fd is None:
                self._fd = self._open()
            fd = self._fd
            if self._torn:  # an earlier write failed half-way: start a new line first
                _seal(fd)
                self._torn = False
            view = memoryview(line)
            try:
                written = os.write(fd, view)
                while written < len(view):  # regular files write whole; belt and braces
                    written += os.write(fd, view[written:])
            except OSError:
                self._torn = True  # a full disk may have taken part of the line
                raise
            if self.state is not None:
                self.state.add(record)
            if self.on_append is not None:
                self.on_append(record)
            if not self.fsync:
                return
            self._written += 1
            mine = self._written
        if sync:
            self._sync_through(fd, mine)

    def sync(self) -> None:
        """Return once every line appended so far is on disk (one flush covers them all)."""
        with self._lock:
            fd, last = self._fd, self._written
        if fd is not None and self.fsync and last:
            self._sync_through(fd, last)

    def _sync_through(self, fd: int, line: int) -> None:
        """Return once line number ``line`` is on disk: either a flush already in flight or
        done covers it, or this thread flushes (outside the lock, so appends go on meanwhile)
        and thereby makes every line written so far durable. close() waits for the flush."""
        with self._lock:
            while True:
                if self._durable >= line:
                    return
                if not self._syncing:
                    break
                self._synced.wait()
            self._syncing = True
            target = self._written
        flushed = False
        try:
            os.fsync(fd)
            flushed = True
        finally:
            with self._lock:
                if flushed:  # a failed flush makes nothing durable: the next waiter retries
                    self._durable = max(self._durable, target)
                self._syncing = False
                self._synced.notify_all()

    def close(self) -> None:
        with self._lock:
            while self._syncing:
                self._synced.wait()
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
    ``bad_lines`` counts the lines that were skipped, ``torn_lines`` of them torn by a crash
    (normal) and the rest corrupt.
    """

    records: dict[str, LedgerRecord] = attrs.field(factory=dict)
    bad_lines: int = 0
    torn_lines: int = 0

    @property
    def corrupt_lines(self) -> int:
        return self.bad_lines - self.torn_lines

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

    def add(self, record: LedgerRecord) -> None:
        """Take in the next record of the file (a key seen before keeps its position)."""
        self.records[record.key] = record


# Every line Ledger writes starts like this (to_dict puts "version" first).
_LINE_START = b'{"version":'
# A file whose first this many lines are all corrupt is not read further.
_GIVE_UP_AFTER = 1000


def _torn_like(raw: bytes) -> bool:
    """Whether a line that failed to parse looks like a record cut short by a crash: the start
    of a ledger line, or nothing but NUL bytes (a file system's zero-filled tail)."""
    head = raw.strip(b" \t\r\n\x00")[: len(_LINE_START)]
    return _LINE_START.startswith(head)


def _parse(raw: bytes) -> LedgerRecord:
    return LedgerRecord.from_dict(json.loads(raw.decode("utf-8")))


def _not_a_ledger(
    path: str | os.PathLike[str], number: int, err: Exception, lines: int
) -> ConfigError:
    if isinstance(err, UnicodeDecodeError):
        what = "it is not UTF-8 text (a binary file such as an image?)"
    elif isinstance(err, json.JSONDecodeError):
        what = f"line {number} is not JSON ({err.msg})"
    else:
        what = f"line {number} is not a ledger record ({type(err).__name__}: {str(err)[:200]})"
    return ConfigError(
        f"{path} is not a vlmkit run ledger: none of the {lines} line(s) read is a ledger "
        f"record, and {what}. Pass the results.jsonl of a `vlmkit label` run (or its run "
        "folder)."
    )


class RecordSink(Protocol):
    """What :func:`read_into` fills: it takes every record read, in file order, and counts the
    lines skipped (:class:`LedgerState`, :class:`~vlmkit.ledgerindex.LedgerIndex`)."""

    bad_lines: int
    torn_lines: int

    def add(self, record: LedgerRecord) -> None: ...
    def __len__(self) -> int: ...


def read_ledger(path: str | os.PathLike[str]) -> LedgerState:
    """Read a ledger; a missing or empty file is an empty ledger.

    Torn lines (a crash mid-write) are skipped and reported once at INFO level; other lines
    that are not valid records are skipped with one WARNING giving their count. For a key seen
    more than once the last record wins, and the key keeps the position where it was first
    seen. Raises :class:`~vlmkit.ConfigError` when the file is not a ledger at all: no line is
    a record and some line is corrupt (binary data, other JSON, any other text).
    """
    state = LedgerState()
    read_into(path, state)
    return state


def read_into(path: str | os.PathLike[str], state: RecordSink) -> None:
    """Read a ledger into ``state`` record by record, as :func:`read_ledger` does (same lines
    skipped, same warnings, same errors); a missing file adds nothing."""
    first_bad: tuple[int, Exception] | None = None
    number = 0
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with block below
    except FileNotFoundError:
        return
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = _parse(raw)
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as err:
                state.bad_lines += 1
                # A record that is whole JSON but invalid is corrupt, never torn.
                whole_json = not isinstance(err, json.JSONDecodeError | UnicodeDecodeError)
                if not whole_json and _torn_like(raw):
                    state.torn_lines += 1
                    continue
                if first_bad is None:
                    first_bad = (number, err)
                if not len(state) and state.bad_lines - state.torn_lines >= _GIVE_UP_AFTER:
                    break
                continue
            state.add(record)  # an existing key keeps its first-seen position
    if first_bad is not None:
        bad_number, problem = first_bad
        if not len(state):
            raise _not_a_ledger(path, bad_number, problem, number)
        logger.warning(
            "%s: skipped %d line(s) that are not ledger records (first: line %d, %s: %s); "
            "those items count as not finished",
            path,
            state.bad_lines - state.torn_lines,
            bad_number,
            type(problem).__name__,
            str(problem)[:200],
        )
    if state.torn_lines:
        logger.info(
            "%s: skipped %d torn line(s) left by an interrupted write; those items count as "
            "not finished",
            path,
            state.torn_lines,
        )
