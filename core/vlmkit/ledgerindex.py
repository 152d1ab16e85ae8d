"""What a run needs of its ledger to resume: each key's status and attempts, not its result.

A resumed run skips the items its ledger holds as done (or failed, unless it retries them) and
numbers the next attempt of each; it never reads an earlier result again. Holding every record
of a million-item ledger (its full result: boxes, masks, provenance, the raw answer) would cost
kilobytes per item for nothing, so a run reads the ledger into a :class:`LedgerIndex`: one
small integer per key, under the string the run's item already holds for that key (one string
of its own per record of a key that is no input). Until the run has decided what to do
(:meth:`LedgerIndex.started`), a few records keep a little more: the image path of records
whose key is not among the run's inputs (a folder written by an older vlmkit, re-keyed by
file), and with ``--retry-failed`` the kept answers that failed to parse.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Set

from vlmkit.ledger import LedgerRecord, LedgerState, read_into

__all__ = ["LedgerIndex", "read_index"]


class _Statuses(Set[str]):
    """The keys of one status, as a live view (``key in index.done``)."""

    def __init__(self, entries: dict[str, int], done: bool) -> None:
        self._entries = entries
        self._done = done

    def __contains__(self, key: object) -> bool:
        value = self._entries.get(key)  # type: ignore[call-overload]
        return value is not None and (value > 0) is self._done

    def __iter__(self) -> Iterator[str]:
        return (key for key, value in self._entries.items() if (value > 0) is self._done)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _Attempts(Mapping[str, int]):
    """How many times each key was tried, as a live view (``attempts.get(key, 0)``)."""

    def __init__(self, entries: dict[str, int]) -> None:
        self._entries = entries

    def __getitem__(self, key: str) -> int:
        return abs(self._entries[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


class LedgerIndex:
    """Each key's final status and attempt count, in first-seen key order, as the ledger says.

    Filled by :func:`read_index` and kept current by the run's :class:`~vlmkit.ledger.Ledger`
    (:meth:`add`, in file order). ``inputs``: the run's item keys, each mapped to itself (the
    index keeps the item's string instead of a copy); the image path of a record of any other
    key is kept in :attr:`foreign`. ``replays``: keep in :attr:`replays` the answers of failed
    records that did not parse (``--retry-failed`` parses them again).
    """

    def __init__(self, *, inputs: Mapping[str, str] | None = None, replays: bool = False) -> None:
        # key -> attempt count, negative when the key's last record failed: one small int per
        # key (CPython shares the ints up to 256), no object per record
        self._entries: dict[str, int] = {}
        self._inputs: Mapping[str, str] | None = inputs if inputs is not None else {}
        self._keep_replays = replays
        self.foreign: dict[str, str] = {}  # key not among the inputs -> its record's image path
        self.replays: dict[str, str] = {}  # key -> kept answer that failed to parse
        self.bad_lines = 0
        self.torn_lines = 0
        self.done: Set[str] = _Statuses(self._entries, done=True)
        self.failed: Set[str] = _Statuses(self._entries, done=False)
        self.attempts: Mapping[str, int] = _Attempts(self._entries)

    @classmethod
    def of(
        cls, state: LedgerState, *, inputs: Mapping[str, str] | None = None, replays: bool = False
    ) -> LedgerIndex:
        """The index of a ledger already read in full."""
        index = cls(inputs=inputs, replays=replays)
        for record in state:
            index.add(record)
        index.bad_lines, index.torn_lines = state.bad_lines, state.torn_lines
        return index

    def add(self, record: LedgerRecord) -> None:
        """Take in the next record of the file: the last record of a key wins."""
        inputs = self._inputs
        key = record.key if inputs is None else inputs.get(record.key, record.key)
        self._entries[key] = record.attempt if record.status == "done" else -record.attempt
        if inputs is not None and record.image_path and key not in inputs:
            self.foreign[key] = record.image_path
        if self._keep_replays:
            if (
                record.status == "failed"
                and record.raw_text is not None
                and record.error_type == "ParseError"
            ):
                self.replays[key] = record.raw_text
            else:
                self.replays.pop(key, None)

    def started(self) -> None:
        """The run has decided what to do: from now on keep only each key's status (the
        inputs, the foreign paths and the kept answers served that decision)."""
        self._inputs = None
        self._keep_replays = False
        self.foreign = {}
        self.replays = {}

    @property
    def corrupt_lines(self) -> int:
        return self.bad_lines - self.torn_lines

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)


def read_index(
    path: str | os.PathLike[str], *, inputs: Mapping[str, str] | None = None, replays: bool = False
) -> LedgerIndex:
    """Read a ledger into a :class:`LedgerIndex`: the same records as
    :func:`~vlmkit.ledger.read_ledger` reads (same lines skipped, same warnings, same errors),
    each dropped once its key's status is noted."""
    index = LedgerIndex(inputs=inputs, replays=replays)
    read_into(path, index)
    return index
