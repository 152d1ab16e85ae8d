"""What a run holds per item: its input and its key's status in the ledger, not its results.

Measured with tracemalloc (memory, not time): what a run holds at its last outcome above what
was held before it was built (its inputs included), between a run over a few items and one
over more, fresh and resumed; a single block of a process-wide table that CPython grew meanwhile
(its interned strings) is left out, as it depends on what ran before in the process.
Per item a run needs its input (key, path text and the item:
about 0.25 KiB here), one entry of the ledger index and a slot in the pending list (about
0.05 KiB); at these small sizes CPython's own caches and free lists still fill up on top
(about 0.25 KiB per item here, bounded: it fades at 10,000 items, see
``benchmarks/bench_memory.py``). Runs used to hold every record's result and each input as a
``Path``: 2.6 KiB per item fresh and 3.1 KiB resumed here, even for this one-box answer.
"""

from __future__ import annotations

import collections
import gc
import os
import tracemalloc

from PIL import Image

import vlmkit
from tests.runner.test_runner import CAT
from vlmkit.ledger import read_ledger
from vlmkit.testing import scripted_plugin

#: what a run may hold per item: about 0.3 KiB needed and 0.25 KiB of CPython's caches (see the
#: module's docs), and slack for a longer temporary folder
BOUND_PER_ITEM = 1024
#: with COCO and YOLO: the above and what the two files need until the commit (about 0.7 KiB;
#: 1.6-2.0 KiB measured here in all, 3.3 KiB when the run kept every record until the end)
BOUND_PER_ITEM_WITH_SINKS = 2560
#: what an input may cost: key and path text (about 0.06 + 0.13 KiB here) and the item
BOUND_PER_INPUT = 384


def _links(folder, count):
    """``count`` distinct inputs (hard links of one tiny JPEG: distinct keys, one file's bytes)."""
    folder.mkdir(exist_ok=True)
    first = folder / "img00000.jpg"
    if not first.exists():
        Image.new("RGB", (32, 24), (200, 30, 30)).save(first)
    for i in range(1, count):
        if not (path := folder / f"img{i:05d}.jpg").exists():
            os.link(first, path)


#: a block this large is a process-wide table that CPython happened to grow during the run (the
#: interned strings, which ``pathlib`` adds every path's parts to), not something held per item:
#: at these sizes no per-item structure of a run comes near it
PROCESS_TABLE = 256 * 1024


def _traced(snapshot):
    """Bytes traced in ``snapshot``, less any block of a process-wide table."""
    return sum(trace.size for trace in snapshot.traces if trace.size < PROCESS_TABLE)


def _held(session, folder, out, sinks, outcomes):
    """Bytes traced as held at the run's last outcome (its ``outcomes``-th), above what was held
    before it began."""
    held = []

    def measure(outcome):
        held.append(None)
        if len(held) == outcomes:
            held[-1] = tracemalloc.take_snapshot()

    gc.collect()  # the previous run's cycles, so that they are not freed during this one
    before = _traced(tracemalloc.take_snapshot())  # the snapshot is dropped: it is traced too
    run = session.run(
        "detect", [folder], "cat", out_dir=out, concurrency=2, progress=measure, sinks=sinks
    )
    statuses = collections.Counter(outcome.status for outcome in run)  # kept by no one
    assert set(statuses) == {"done"}, statuses
    assert len(held) == outcomes, (len(held), outcomes)
    return _traced(held[-1]) - before


def _per_item(tmp_path, sinks=()):
    """Bytes held per item (fresh, resumed) between a run over 60 items and one over 360."""
    from vlmkit.sinks import plugin as sink_plugins

    small, large = 60, 360
    plugins = [scripted_plugin(CAT), sink_plugins]
    with vlmkit.Session("scripted", plugins=plugins, entrypoints=False) as s:
        s.backend.requests = collections.deque(maxlen=1)  # the fake keeps no history
        _links(tmp_path / "warm", 4)
        warm_out = tmp_path / "warm-out"
        warm = s.run("detect", [tmp_path / "warm"], "cat", out_dir=warm_out, sinks=sinks)
        list(warm)
        tracemalloc.start()
        try:
            fresh, resumed = [], []
            for count in (small, large):
                folder, out = tmp_path / f"in{count}", tmp_path / f"out{count}"
                _links(folder, count)
                fresh.append(_held(s, folder, out, sinks, outcomes=count))
                _links(folder, count + 1)  # one new item: the resumed run reports it
                resumed.append(_held(s, folder, out, sinks, outcomes=1))
        finally:
            tracemalloc.stop()
    return (fresh[1] - fresh[0]) / (large - small), (resumed[1] - resumed[0]) / (large - small)


def test_a_run_holds_no_result_per_item_fresh_or_resumed(tmp_path):
    per_item_fresh, per_item_resumed = _per_item(tmp_path)
    assert per_item_fresh < BOUND_PER_ITEM, per_item_fresh
    assert per_item_resumed < BOUND_PER_ITEM, per_item_resumed


def test_the_inputs_hold_their_paths_as_text(tmp_path):
    """A run holds every input from start to end: as text a path costs a fraction of a
    ``Path`` object (its parts, its cached string and hash: about 0.25 KiB more)."""
    from vlmkit.inputs import collect_inputs

    _links(tmp_path / "in", 400)
    collect_inputs([tmp_path / "in"])  # first-call imports and caches
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        items, skipped = collect_inputs([tmp_path / "in"])
        for item in items:  # a run reads each by its path
            os.fspath(item.path)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(items) == 400 and not skipped
    assert held / len(items) < BOUND_PER_INPUT, held / len(items)
    assert items[1].path == tmp_path.resolve() / "in" / "img00001.jpg"


def test_files_skipped_in_a_folder_are_held_as_text_once(tmp_path):
    """A folder of images often holds as many other files (labels, sidecars): the run keeps
    each for its summary, by its path's text and a shared reason: about 0.16 KiB with the
    summary's entry (0.45 KiB as a ``Path`` with a reason string of its own)."""
    grown = []
    with vlmkit.Session("scripted", plugins=[scripted_plugin(CAT)], entrypoints=False) as s:
        s.backend.requests = collections.deque(maxlen=1)
        _links(tmp_path / "warm", 2)
        list(s.run("detect", [tmp_path / "warm"], "cat", out_dir=tmp_path / "warm-out"))
        tracemalloc.start()
        try:
            for count in (50, 450):
                folder = tmp_path / f"in{count}"
                _links(folder, 2)
                (folder / "a00000.txt").write_text("0 0.5 0.5 0.1 0.1\n")
                for i in range(1, count):
                    os.link(folder / "a00000.txt", folder / f"a{i:05d}.txt")
                gc.collect()
                before = tracemalloc.get_traced_memory()[0]
                run = s.run("detect", [folder], "cat", out_dir=tmp_path / f"out{count}")
                statuses = collections.Counter(outcome.status for outcome in run)
                assert statuses == {"done": 2, "skipped": count}
                gc.collect()
                grown.append(tracemalloc.get_traced_memory()[0] - before)  # the run is held
                assert len(run.summary.skipped_inputs) == count
        finally:
            tracemalloc.stop()
    assert (grown[1] - grown[0]) / 400 < BOUND_PER_INPUT, grown


def test_image_headers_are_read_as_items_are_taken_not_all_first(tmp_path, monkeypatch):
    """The pixel budget needs each image's size before it starts: its worker reads the file
    (and the size from its header) then, instead of the run reading (and holding) every header
    before the first request."""
    folder = str(tmp_path / "in")
    opened = []
    real_open = os.open

    def counting_open(path, *args, **kwargs):
        if os.fspath(path).startswith(folder):
            opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    headers_at_first_request = []

    def answer(request):
        if not headers_at_first_request:
            headers_at_first_request.append(len(opened))
        return CAT

    _links(tmp_path / "in", 40)
    monkeypatch.setattr(os, "open", counting_open)
    with vlmkit.Session("scripted", plugins=[scripted_plugin(answer)], entrypoints=False) as s:
        run = s.run("detect", [tmp_path / "in"], "cat", out_dir=tmp_path / "out", concurrency=1)
        assert [outcome.status for outcome in run] == ["done"] * 40
    assert headers_at_first_request == [1]
    assert len(opened) == 40  # each file read once


def test_a_slow_consumer_holds_back_the_workers_not_every_outcome(tmp_path):
    """Outcomes (each with its result) wait in a bounded queue for the code iterating the run:
    while it is busy, the workers stop after a few items instead of answering every item and
    queueing all the results; everything is still answered and recorded in the end."""
    import threading
    import time

    calls = []
    lock = threading.Lock()

    def answer(request):
        with lock:
            calls.append(1)
        return CAT

    def busy_consumer(out):
        """Take one outcome, then stay busy until the workers stop calling the model."""
        run = s.run("detect", [tmp_path / "in"], "cat", out_dir=out, concurrency=2)
        outcomes = iter(run)
        next(outcomes)
        seen, steady = -1, 0
        while steady < 5 and len(calls) < count:
            time.sleep(0.05)
            steady = steady + 1 if len(calls) == seen else 0
            seen = len(calls)
        return outcomes, len(calls)

    count = 300
    _links(tmp_path / "in", count)
    with vlmkit.Session("scripted", plugins=[scripted_plugin(answer)], entrypoints=False) as s:
        s.backend.requests = collections.deque(maxlen=1)
        outcomes, held_back = busy_consumer(tmp_path / "out")
        statuses = collections.Counter(outcome.status for outcome in outcomes)
        assert held_back < count // 2, held_back
        assert statuses == {"done": count - 1} and len(calls) == count
        assert len(read_ledger(tmp_path / "out" / "results.jsonl").done) == count

        calls.clear()  # the caller stops iterating while the queue is full: nothing hangs
        outcomes, held_back = busy_consumer(tmp_path / "out2")
        outcomes.close()
        recorded = len(read_ledger(tmp_path / "out2" / "results.jsonl").done)
        assert recorded == len(calls) == held_back < count  # every answer received is recorded


def test_a_run_with_sinks_holds_what_their_files_need_not_every_record(tmp_path):
    """With COCO and YOLO a run holds, per item, what the runner needs (above) and what the
    two files need until they are written at the commit (about 0.3 KiB for COCO's image and
    annotation, 0.4 KiB for YOLO's class ids and staged file: see docs/benchmarks.md), not
    the ledger's records with their results, which it held until the end (3.3 KiB per item in
    all here, 1.6-2.0 KiB now)."""
    per_item_fresh, per_item_resumed = _per_item(tmp_path, sinks=["coco", "yolo"])
    assert per_item_fresh < BOUND_PER_ITEM_WITH_SINKS, per_item_fresh
    assert per_item_resumed < BOUND_PER_ITEM_WITH_SINKS, per_item_resumed
