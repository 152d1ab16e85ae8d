"""The run ledger: whole lines only, torn tails tolerated, duplicates resolved by key."""

from __future__ import annotations

import json
import logging
import threading

import numpy as np

from vlmkit.ledger import Ledger, LedgerRecord, read_ledger
from vlmkit.types import Box, Description, Detection, Detections, Mask


def done(key: str, text: str = "ok", attempt: int = 1) -> LedgerRecord:
    return LedgerRecord(
        key=key, status="done", result=Description(text=text), attempt=attempt, image_path=key
    )


def failed(key: str, attempt: int = 1) -> LedgerRecord:
    return LedgerRecord(
        key=key, status="failed", error="boom", error_type="TransientError", attempt=attempt
    )


def test_round_trip_keeps_everything(tmp_path):
    mask = Mask(data=np.eye(4, dtype=bool), x=2, y=3)
    result = Detections(
        image_size=(10, 10),
        items=[Detection(box=Box.from_xyxy([2, 3, 6, 7]), label="猫", mask=mask)],
    )
    record = LedgerRecord(
        key="a/b.jpg",
        status="done",
        result=result,
        image_path="in/a/b.jpg",
        image_size=(10, 10),
        attempt=2,
    )
    with Ledger(tmp_path / "results.jsonl") as ledger:
        ledger.append(record)
    state = read_ledger(tmp_path / "results.jsonl")
    assert state.done["a/b.jpg"] == record


def test_duplicates_last_wins_first_seen_order(tmp_path):
    path = tmp_path / "results.jsonl"
    with Ledger(path, fsync=False) as ledger:
        ledger.append(failed("a"))
        ledger.append(done("b"))
        ledger.append(done("a", attempt=2))
        ledger.append(done("c"))
        ledger.append(failed("c", attempt=2))
    state = read_ledger(path)
    assert [r.key for r in state] == ["a", "b", "c"]
    assert set(state.done) == {"a", "b"} and state.done["a"].attempt == 2
    assert set(state.failed) == {"c"}


def test_torn_last_line_is_skipped_with_warning(tmp_path, caplog):
    path = tmp_path / "results.jsonl"
    with Ledger(path) as ledger:
        ledger.append(done("a"))
    whole = done("b").to_line()
    with open(path, "ab") as handle:
        handle.write(whole[: len(whole) // 2])  # the process died mid-write
    with caplog.at_level(logging.WARNING, logger="vlmkit.ledger"):
        state = read_ledger(path)
    assert list(state.done) == ["a"] and state.bad_lines == 1
    assert "torn last line" in caplog.text
    # Appending after a crash starts a new line, so the next record stays whole.
    with Ledger(path) as ledger:
        ledger.append(done("b"))
    assert list(read_ledger(path).done) == ["a", "b"]


def test_missing_ledger_is_empty(tmp_path):
    assert len(read_ledger(tmp_path / "none.jsonl")) == 0


def test_concurrent_appends_give_whole_lines(tmp_path):
    path = tmp_path / "results.jsonl"
    ledger = Ledger(path, fsync=False)
    big = "x" * 20_000  # larger than a pipe buffer: interleaving would show

    def worker(n: int) -> None:
        for i in range(25):
            ledger.append(done(f"{n}-{i}", text=big))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ledger.close()
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert all(json.loads(line)["result"]["text"] == big for line in lines[:-1])
    assert len(read_ledger(path).done) == 200
