"""Per-item work of a sink on a few threads (``StagedSink.in_background``): the annotate sink
draws several previews at once, and nothing of the export's guarantees moves."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tests.sinks.conftest import box_det, detections, write_image
from tests.sinks.test_export import REGISTRY, ledger_for, visible
from vlmkit.errors import ConfigError, SinkError
from vlmkit.export import export
from vlmkit.sink import SinkItem, StagedSink
from vlmkit.sinks import annotate
from vlmkit.sinks.annotate import AnnotateSink

LABELS = ["cat", "dog", "bird", "cat", "fish", "dog"]


def items(tmp_path: Path, count: int) -> list[SinkItem]:
    """``count`` images, each with boxes whose labels come in a different order."""
    made = []
    for index in range(count):
        image = write_image(tmp_path / "in" / f"{index:02d}.png", color=(10 * index, 90, 160))
        labels = LABELS[index % 3 :] + LABELS[: index % 3]
        boxes = [box_det([4 + 20 * n, 4, 20 + 20 * n, 60], label) for n, label in enumerate(labels)]
        made.append(SinkItem(key=f"{index:02d}.png", result=detections(boxes), image_path=image))
    return made


def files_of(root: Path) -> dict[str, bytes]:
    return {name: data for name, data in visible(root).items()}


def gate(monkeypatch) -> tuple[threading.Event, list[str]]:
    """Hold every preview at the start of its drawing until the returned event is set; the list
    gets each image's name as its drawing starts."""
    started: list[str] = []
    release = threading.Event()
    load = annotate._load_pixels

    def held(path):
        started.append(Path(path).name)
        assert release.wait(10), "the test never released the previews"
        return load(path)

    monkeypatch.setattr(annotate, "_load_pixels", held)
    return release, started


def test_previews_are_drawn_on_several_threads_at_once(tmp_path, monkeypatch):
    """Two previews must be in the works together to pass the barrier; drawn one by one, the
    first would wait for the second forever (here: the barrier's timeout)."""
    barrier = threading.Barrier(2, timeout=10)
    load = annotate._load_pixels

    def meeting(path):
        barrier.wait()
        return load(path)

    monkeypatch.setattr(annotate, "_load_pixels", meeting)
    with AnnotateSink(tmp_path / "out", workers=2) as sink:
        for item in items(tmp_path, 2):
            sink.write(item)
    assert sorted(files_of(tmp_path / "out")) == [
        os.path.join("annotated", "00.png"),
        os.path.join("annotated", "01.png"),
    ]


def test_previews_drawn_at_once_are_the_previews_drawn_one_by_one(tmp_path):
    """Class ids (so colours) are given in the order the items arrive, whatever thread then
    draws them: the files are the same bytes."""
    written = {}
    for workers in (1, 4):
        with AnnotateSink(tmp_path / f"out{workers}", workers=workers) as sink:
            for item in items(tmp_path, 12):
                sink.write(item)
        written[workers] = files_of(tmp_path / f"out{workers}")
    assert len(written[1]) == 12 and written[1] == written[4]


def test_the_default_is_one_preview_per_cpu_at_most_four(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(16)), raising=False)
    assert AnnotateSink(tmp_path).background_workers == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0}, raising=False)
    assert AnnotateSink(tmp_path).background_workers == 1
    with pytest.raises(ConfigError, match="workers"):
        export(
            tmp_path / "no.jsonl",
            ["annotate"],
            tmp_path,
            resolve=REGISTRY.__getitem__,
            options={"annotate": {"workers": 0}},
        )


def test_at_most_twice_the_workers_wait_so_memory_stays_bounded(tmp_path, monkeypatch):
    """The thread feeding the sink waits once 2 × workers previews are in the works: the
    items' results do not pile up when drawing is slower than the answers come."""
    release, started = gate(monkeypatch)
    sink = AnnotateSink(tmp_path / "out", workers=2)
    given: list[str] = []

    def feed() -> None:
        for item in items(tmp_path, 8):
            sink.write(item)
            given.append(item.key)

    feeder = threading.Thread(target=feed)
    feeder.start()
    deadline = time.monotonic() + 10
    while len(given) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # room for a fifth item, were it let through
    try:
        assert len(given) == 4 and len(started) == 2  # two drawing, two waiting, the feed held
    finally:
        release.set()
        feeder.join(10)
    sink.close()
    assert len(given) == 8 and len(files_of(tmp_path / "out")) == 8


def test_discarding_waits_for_the_previews_in_the_works_and_leaves_nothing(tmp_path, monkeypatch):
    release, started = gate(monkeypatch)
    sink = AnnotateSink(tmp_path / "out", workers=2)
    for item in items(tmp_path, 3):
        sink.write(item)
    discarding = threading.Thread(target=sink.discard)
    discarding.start()
    time.sleep(0.1)
    release.set()  # the two in the works finish (and are dropped); the third never starts
    discarding.join(10)
    assert not discarding.is_alive() and sorted(started) == ["00.png", "01.png"]
    out = tmp_path / "out"
    assert not out.exists() or not [f for _, _, fs in os.walk(out) for f in fs]  # no temp file


def test_a_preview_that_fails_is_reported_for_its_own_key(tmp_path, monkeypatch):
    load = annotate._load_pixels

    def flaky(path):
        if Path(path).name == "03.png":
            raise ValueError("a drawing bug")
        return load(path)

    monkeypatch.setattr(annotate, "_load_pixels", flaky)
    path = ledger_for(tmp_path, items(tmp_path, 6))
    result = export(
        path,
        ["coco", "annotate"],
        tmp_path / "out",
        resolve=REGISTRY.__getitem__,
        options={"annotate": {"workers": 3}},
    )
    assert [(s.key, s.sink) for s in result.skipped] == [("03.png", "annotate")]
    assert "a drawing bug" in result.skipped[0].reason
    previews = sorted(p.name for p in result["annotate"])
    assert previews == ["00.png", "01.png", "02.png", "04.png", "05.png"]


def test_previews_failing_on_every_record_fail_the_export(tmp_path, monkeypatch):
    def broken(path):
        raise ValueError("supervision changed its API")

    monkeypatch.setattr(annotate, "_load_pixels", broken)
    path = ledger_for(tmp_path, items(tmp_path, 4))
    out = tmp_path / "out"
    with pytest.raises(SinkError, match="failed on every record"):
        export(
            path,
            ["coco", "annotate"],
            out,
            resolve=REGISTRY.__getitem__,
            options={"annotate": {"workers": 2}},
        )
    assert visible(out) == {}


def test_a_full_disk_while_drawing_stops_the_export_and_changes_no_file(tmp_path, monkeypatch):
    path = ledger_for(tmp_path, items(tmp_path, 6))
    out = tmp_path / "out"
    export(path, ["coco", "annotate"], out, resolve=REGISTRY.__getitem__)
    before = visible(out)
    real = AnnotateSink._stage_preview

    def stage(self, target, data):
        if target.name == "04.png":
            raise OSError(28, "No space left on device")
        real(self, target, data)

    monkeypatch.setattr(AnnotateSink, "_stage_preview", stage)
    with pytest.raises(SinkError, match="No space left"):
        export(
            path,
            ["coco", "annotate"],
            out,
            resolve=REGISTRY.__getitem__,
            options={"annotate": {"workers": 2}},
        )
    assert visible(out) == before  # the old export whole, no temp file


def test_a_sink_used_by_hand_raises_what_failed_when_it_closes(tmp_path, monkeypatch):
    def broken(path):
        raise ValueError("a drawing bug")

    monkeypatch.setattr(annotate, "_load_pixels", broken)
    sink = AnnotateSink(tmp_path / "out", workers=2)
    sink.write(items(tmp_path, 1)[0])
    with pytest.raises(ValueError, match="a drawing bug"):
        sink.close()
    assert visible(tmp_path / "out") == {}


def test_any_staged_sink_can_work_in_the_background(tmp_path):
    """The helper is public: a third-party sink moves its heavy per-item work to threads."""
    seen: list[str] = []

    class Crops(StagedSink):
        background_workers = 2

        def write(self, item):
            self.in_background(item.key, lambda: self._crop(item))

        def _crop(self, item):
            seen.append(threading.current_thread().name)
            self.stage_text(f"crops/{item.key}.txt", item.key)

    with Crops(tmp_path / "out") as sink:
        for item in items(tmp_path, 4):
            sink.write(item)
    assert len(files_of(tmp_path / "out")) == 4
    assert all(name != threading.main_thread().name for name in seen)


def test_previews_commit_in_the_items_order_whatever_thread_finishes_first(tmp_path, monkeypatch):
    """The list of files a sink returns (what `vlmkit export` prints, a run's summary) follows
    the items, not the order in which their previews happened to be drawn."""
    load = annotate._load_pixels
    first_done = threading.Event()

    def slow_first(path):
        if Path(path).name == "00.png":  # the first item finishes last
            assert first_done.wait(10)
        else:
            first_done.set()
        return load(path)

    monkeypatch.setattr(annotate, "_load_pixels", slow_first)
    with AnnotateSink(tmp_path / "out", workers=3) as sink:
        for item in items(tmp_path, 3):
            sink.write(item)
        files = sink.close()
    assert [f.name for f in files] == ["00.png", "01.png", "02.png"]


def test_staging_from_threads_records_new_folders_parents_first(tmp_path):
    """Two threads making sibling folders under one new folder: a discard removes them all
    (children before parents), leaving no empty folder behind."""
    from vlmkit.atomic import Staging

    for attempt in range(100):
        root = tmp_path / f"try{attempt}"
        root.mkdir()
        staging = Staging()
        start = threading.Barrier(2)

        def stage(name, staging=staging, root=root, start=start):
            start.wait()
            staging.write_bytes(root / "prev" / name / "1.jpg", b"x")

        threads = [threading.Thread(target=stage, args=(name,)) for name in ("x", "y")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        staging.discard()
        assert list(root.iterdir()) == []
