"""The run ledger: whole lines only, torn tails tolerated, duplicates resolved by key."""

from __future__ import annotations

import base64
import json
import logging
import threading

import numpy as np
import pytest
from PIL import Image

from vlmkit.errors import ConfigError
from vlmkit.ledger import Ledger, LedgerRecord, read_ledger
from vlmkit.maskpng import encode_png_mask
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
    with caplog.at_level(logging.INFO, logger="vlmkit.ledger"):
        state = read_ledger(path)
    assert list(state.done) == ["a"] and state.bad_lines == state.torn_lines == 1
    # normal after a crash: one INFO line, no warning
    assert [r.levelname for r in caplog.records] == ["INFO"] and "torn" in caplog.text
    # Appending after a crash starts a new line, so the next record stays whole; the sealed
    # torn line still counts as torn, not corrupt.
    with Ledger(path) as ledger:
        ledger.append(done("b"))
    state = read_ledger(path)
    assert list(state.done) == ["a", "b"] and state.torn_lines == 1 and not state.corrupt_lines


def test_a_crash_during_the_first_line_is_an_empty_ledger(tmp_path):
    path = tmp_path / "results.jsonl"
    whole = done("a").to_line()
    path.write_bytes(whole[:30])
    assert len(read_ledger(path)) == 0
    # the next run seals the torn line and is killed before its first record lands
    Ledger(path)._open()
    assert path.read_bytes().endswith(b"\n") and len(read_ledger(path)) == 0
    path.write_bytes(whole[:7] + b"\x00" * 40)  # zero-filled tail after a power cut
    assert len(read_ledger(path)) == 0
    path.write_bytes(b"")
    assert len(read_ledger(path)) == 0


def test_a_few_corrupt_lines_give_one_warning_with_a_count(tmp_path, caplog):
    path = tmp_path / "results.jsonl"
    lines = [done("a").to_line(), b"garbage\n", b'{"key": 1}\n', done("b").to_line(), b"[]\n"]
    path.write_bytes(b"".join(lines))
    with caplog.at_level(logging.WARNING, logger="vlmkit.ledger"):
        state = read_ledger(path)
    assert list(state.done) == ["a", "b"] and state.corrupt_lines == 3
    assert len(caplog.records) == 1
    assert "skipped 3 line(s)" in caplog.text and "line 2" in caplog.text


def image_bytes(tmp_path) -> bytes:
    path = tmp_path / "coffee.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    return path.read_bytes()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("image", "not UTF-8"),
        ("text", "is not JSON"),
        ("coco", "not a ledger record"),
        ("newer", "upgrade vlmkit"),
    ],
)
def test_a_file_that_is_not_a_ledger_is_refused(tmp_path, caplog, content, message):
    data = {
        "image": image_bytes(tmp_path),
        "text": b"hello\nworld\n",
        "coco": json.dumps({"images": [], "annotations": [], "categories": []}).encode(),
        "newer": done("a").to_line().replace(b'"version":1', b'"version":99'),
    }[content]
    path = tmp_path / "input"
    path.write_bytes(data)
    with caplog.at_level(logging.WARNING), pytest.raises(ConfigError) as raised:
        read_ledger(path)
    assert "is not a vlmkit run ledger" in str(raised.value) and message in str(raised.value)
    assert not caplog.records  # no warning per line


def test_a_large_binary_file_is_refused_without_reading_all_of_it(tmp_path):
    path = tmp_path / "video.mp4"
    path.write_bytes(b"\xff\xfe garbage\n" * 200_000)
    with pytest.raises(ConfigError, match="1000 line"):
        read_ledger(path)


def test_unencodable_text_is_kept_exactly(tmp_path):
    """A lone surrogate is valid JSON, so a model can produce it; the ledger keeps it."""
    result = Detections(
        image_size=(10, 10),
        items=[Detection(box=Box.from_xyxy([1, 1, 5, 5]), label="\ud800")],
    )
    record = LedgerRecord(
        key="caf\udce9.jpg", status="done", result=result, image_path="in/caf\udce9.jpg"
    )
    line = record.to_line()
    assert line.isascii() and b"\\ud800" in line  # escaped, not lost
    with Ledger(tmp_path / "results.jsonl") as ledger:
        ledger.append(record)
        ledger.append(done("plain", text="猫"))  # other records stay readable UTF-8
    assert "猫".encode() in (tmp_path / "results.jsonl").read_bytes()
    state = read_ledger(tmp_path / "results.jsonl")
    assert state.done["caf\udce9.jpg"] == record
    assert state.done["caf\udce9.jpg"].result.items[0].label == "\ud800"
    failed_record = LedgerRecord(key="x", status="failed", error="bad \udfff")
    assert LedgerRecord.from_dict(json.loads(failed_record.to_line())) == failed_record


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


def test_a_kept_state_says_what_the_file_says(tmp_path):
    """A writer's mirrored state (what a runner exports from) equals reading the file back:
    the same records, the same first-seen order, also with concurrent fsynced appends."""
    path = tmp_path / "results.jsonl"
    with Ledger(path, fsync=False) as ledger:
        ledger.append(failed("early"))
        ledger.append(done("kept"))
    state = read_ledger(path)
    with Ledger(path, state=state) as ledger:  # fsync on: it runs outside the lock

        def worker(n: int) -> None:
            for i in range(20):
                ledger.append(done(f"{n}-{i}"))
                if i % 5 == 0:
                    ledger.append(done("early", attempt=n + 2))  # a retry: keeps its place

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    again = read_ledger(path)
    assert list(state.records) == list(again.records)
    assert list(state.records.values()) == list(again.records.values())
    assert list(state.records)[:2] == ["early", "kept"] and len(state.done) == 122


def test_close_waits_for_an_fsync_in_flight(tmp_path, monkeypatch):
    """fsync runs outside the lock; closing meanwhile must not pull the descriptor from under
    it (a reused descriptor number would make an append look durable when it is not)."""
    import os

    import vlmkit.ledger as ledger_module

    entered, release = threading.Event(), threading.Event()
    synced: list[int] = []
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        entered.set()
        release.wait(5)
        os.fstat(fd)  # raises EBADF if the descriptor was closed meanwhile
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(ledger_module.os, "fsync", slow_fsync)
    ledger = Ledger(tmp_path / "results.jsonl")
    appending = threading.Thread(target=ledger.append, args=(done("a"),))
    appending.start()
    assert entered.wait(5)
    closing = threading.Thread(target=ledger.close)
    closing.start()
    closing.join(0.2)
    assert closing.is_alive()  # waiting for the fsync
    release.set()
    appending.join(5)
    closing.join(5)
    assert not closing.is_alive() and len(synced) == 1
    assert list(read_ledger(tmp_path / "results.jsonl").done) == ["a"]


def test_concurrent_appends_share_flushes_and_each_returns_once_its_line_is_on_disk(
    tmp_path, monkeypatch
):
    """Group commit (issue 16): 16 threads appending at once need a few fsyncs, not 16, and no
    append returns before a flush that began after its line was written has finished."""
    import os

    import vlmkit.ledger as ledger_module

    path = tmp_path / "results.jsonl"
    flushed_sizes: list[int] = []  # file size each completed fsync covered
    real_fsync = os.fsync
    start = threading.Barrier(16)

    def slow_fsync(fd: int) -> None:
        size = os.fstat(fd).st_size
        threading.Event().wait(0.05)  # a disk that takes its time: the others queue behind
        real_fsync(fd)
        flushed_sizes.append(size)

    monkeypatch.setattr(ledger_module.os, "fsync", slow_fsync)
    violations: list[str] = []
    with Ledger(path) as ledger:

        def worker(n: int) -> None:
            start.wait()
            ledger.append(done(f"k{n}"))
            line_end = next(
                end
                for end, line in _line_ends(path)
                if json.loads(line)["key"] == f"k{n}"  # where this thread's line ends
            )
            if not any(size >= line_end for size in flushed_sizes):
                violations.append(f"k{n} returned before its line was flushed")

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not violations
    assert len(read_ledger(path).done) == 16
    assert 1 <= len(flushed_sizes) <= 4  # one flush per thread before group commit: 16


def _line_ends(path):
    offset = 0
    for line in path.read_bytes().splitlines(keepends=True):
        offset += len(line)
        yield offset, line


def test_the_index_says_what_a_full_read_says_without_the_results(tmp_path):
    """What a run resumes from (statuses, attempts, the answers to parse again, the paths of
    keys no longer among the inputs) equals the full read: the same records, torn and corrupt
    lines alike; kept current by appends; and it holds no record."""
    from vlmkit.ledgerindex import LedgerIndex, read_index

    path = tmp_path / "results.jsonl"
    unparsed = LedgerRecord(key="p", status="failed", error="bad JSON", error_type="ParseError",
                            raw_text="[{", attempt=3)  # fmt: skip
    with Ledger(path, fsync=False) as ledger:
        for record in (failed("a"), done("b"), done("a", attempt=2), unparsed, failed("c")):
            ledger.append(record)
        ledger.append(done("old/x.jpg"))  # keyed by an older vlmkit: not among the inputs
    with path.open("ab") as handle:
        handle.write(b"not json\n" + done("torn").to_line()[:30])
    state = read_ledger(path)
    inputs = {key: key for key in ("a", "b", "p", "c", "new")}
    index = read_index(path, inputs=inputs, replays=True)
    of_state = LedgerIndex.of(state, inputs=inputs, replays=True)  # a run with sinks
    assert (dict(of_state.attempts), of_state.replays) == (dict(index.attempts), index.replays)
    assert list(index) == list(state.records)
    assert set(index.done) == set(state.done) and set(index.failed) == set(state.failed)
    assert dict(index.attempts) == {r.key: r.attempt for r in state}
    assert (index.bad_lines, index.torn_lines) == (state.bad_lines, state.torn_lines) == (2, 1)
    assert index.replays == {"p": "[{"} and index.foreign == {"old/x.jpg": "old/x.jpg"}
    assert not any(isinstance(v, LedgerRecord) for v in vars(index).values())
    index.started()
    assert (index.replays, index.foreign) == ({}, {})
    with Ledger(path, fsync=False, state=index) as ledger:
        ledger.append(done("p", attempt=4))
        ledger.append(done("new"))
    assert "p" in index.done and "p" not in index.failed and index.attempts["p"] == 4
    assert set(index.done) == set(read_ledger(path).done) and index.foreign == {}


def masked(key: str) -> LedgerRecord:
    mask = Mask(data=np.eye(5, 7, dtype=bool), x=1, y=2)
    result = Detections(
        image_size=(20, 20), items=[Detection(box=Box.from_xyxy([1, 2, 8, 7]), mask=mask)]
    )
    return LedgerRecord(key=key, status="done", result=result, image_path=key)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x55]) + data[at + 1 :]


def _with_pixel_data(png: bytes, change) -> bytes:
    """``png`` (vlmkit's layout: IHDR, IDAT, IEND) with its IDAT data changed, checksum
    right: only inflating finds the damage."""
    import struct
    import zlib

    (length,) = struct.unpack(">I", png[33:37])
    data = change(png[41 : 41 + length])
    body = b"IDAT" + data
    idat = struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    return png[:33] + idat + png[45 + length :]


def _taller_pixel_data(png: bytes) -> bytes:
    """``png`` with the pixel data of a mask twice as tall (valid chunks, checksums right)."""
    taller = encode_png_mask(np.ones((10, 7), dtype=bool))
    return png[:33] + taller[33:]


@pytest.mark.parametrize(
    "damage",
    [
        lambda png: b"GIF89a" + png[6:],  # not a PNG
        lambda png: png[: len(png) // 2],  # truncated
        lambda png: _flip(png, 40),  # a flipped byte in a chunk's type: its checksum fails
        lambda png: _with_pixel_data(png, lambda data: _flip(data, 2)),  # a broken deflate
        lambda png: _with_pixel_data(png, lambda data: _flip(data, 0)),  # Pillow's, broken
        lambda png: _with_pixel_data(png, lambda data: data[:-6]),  # a short stream
        lambda png: _flip(png, 20),  # a flipped byte in the header
        lambda png: _taller_pixel_data(png),  # more rows than the header says
        lambda png: b"",
    ],
)
def test_a_line_whose_stored_mask_is_broken_is_a_bad_line_not_a_crash(tmp_path, damage):
    """A resume or an export reads past a damaged mask PNG (a disk error, a hand edit) as it
    reads past any other corrupt line. It used to stop with Pillow's OSError or
    SyntaxError, which no reader of the ledger expects."""
    line = json.loads(masked("b.jpg").to_line())
    stored = line["result"]["items"][0]["mask"]
    stored["png"] = base64.b64encode(damage(base64.b64decode(stored["png"]))).decode()
    path = tmp_path / "results.jsonl"
    good = masked("a.jpg")
    path.write_bytes(good.to_line() + (json.dumps(line) + "\n").encode())
    state = read_ledger(path)
    assert list(state.done) == ["a.jpg"] and state.corrupt_lines == 1
    assert state.records["a.jpg"].result == good.result
