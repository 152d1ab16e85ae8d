"""export() rebuilds sink outputs from a ledger exactly as writing them during the run."""

from __future__ import annotations

import json
import logging
import os
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tests.sinks.conftest import box_det, detections, write_image
from vlmkit.errors import ConfigError, SinkError
from vlmkit.export import ExportResult, export
from vlmkit.ledger import Ledger, LedgerRecord, read_ledger
from vlmkit.sink import Sink, SinkItem
from vlmkit.sinks.annotate import AnnotateSink
from vlmkit.sinks.coco import CocoSink
from vlmkit.sinks.jsonl import JsonlSink
from vlmkit.sinks.plugin import vlmkit_sinks
from vlmkit.sinks.yolo import YoloSink

REGISTRY = {info.name: info for info in vlmkit_sinks()}


def tree(root: Path) -> dict[str, bytes]:
    return {
        os.path.relpath(os.path.join(d, f), root): Path(d, f).read_bytes()
        for d, _, files in os.walk(root)
        for f in files
    }


def ledger_for(tmp_path, items) -> Path:
    path = tmp_path / "run" / "results.jsonl"
    with Ledger(path) as ledger:
        ledger.append(LedgerRecord(key="bad.png", status="failed", error="boom"))
        for item in items:
            ledger.append(
                LedgerRecord(
                    key=item.key,
                    status="done",
                    result=item.result,
                    image_path=str(item.image_path),
                    image_size=item.image_size,
                )
            )
    with open(path, "ab") as handle:
        handle.write(b'{"key": "torn.png", "sta')  # the run died mid-line
    return path


@pytest.mark.parametrize("mask_format", ["rle", "polygon"])
def test_export_equals_direct_write(tmp_path, scene, mask_format):
    direct = tmp_path / "direct"
    for sink in (CocoSink(direct, mask_format=mask_format), YoloSink(direct)):
        for item in scene["items"]:
            sink.write(item)
        sink.close()
    path = ledger_for(tmp_path, scene["items"])
    written = export(
        path,
        ["coco", "yolo", "annotate"],
        tmp_path / "exported",
        resolve=REGISTRY.__getitem__,
        options={"coco": {"mask_format": mask_format}},
    )
    assert set(written) == {"coco", "yolo", "annotate"}
    exported = tree(tmp_path / "exported")
    previews = {k for k in exported if k.startswith("annotated")}
    assert previews == {
        os.path.join("annotated", "a.png"),
        os.path.join("annotated", "sub", "b.png"),
    }
    assert {k: v for k, v in exported.items() if k not in previews} == tree(direct)


def test_export_with_sink_instances_and_moved_images(tmp_path, scene):
    path = ledger_for(tmp_path, scene["items"])
    moved = tmp_path / "moved"
    scene["root"].rename(moved)
    out = tmp_path / "out"
    written = export(path, YoloSink(out, copy_images=True), out, image_root=moved)
    assert (out / "images" / "sub" / "b.png").exists()
    assert out / "data.yaml" in written["YoloSink"]


def test_jsonl_sink_round_trips_the_ledger(tmp_path, scene):
    path = ledger_for(tmp_path, scene["items"])
    export(path, [JsonlSink(tmp_path / "copy")], tmp_path / "copy")
    original, copy = read_ledger(path), read_ledger(tmp_path / "copy" / "results.jsonl")
    assert copy.records == original.done and copy.bad_lines == 0


def test_jsonl_sink_direct(tmp_path, scene):
    with JsonlSink(tmp_path) as sink:
        for item in scene["items"]:
            sink.write(item)
    state = read_ledger(tmp_path / "results.jsonl")
    assert [r.result for r in state] == [i.result for i in scene["items"]]


def test_export_refuses_to_overwrite_its_ledger(tmp_path, scene):
    path = ledger_for(tmp_path, scene["items"])
    with pytest.raises(SinkError, match="overwrite the ledger"):
        export(path, [JsonlSink(path.parent)], path.parent)


def test_names_need_a_resolver(tmp_path):
    with pytest.raises(ConfigError, match="resolve"):
        export(tmp_path / "none.jsonl", ["coco"], tmp_path)


def test_sinks_are_registered_through_the_entry_point():
    points = {e.name: e.value for e in entry_points(group="vlmkit")}
    assert points.get("sinks") == "vlmkit.sinks.plugin"
    assert set(REGISTRY) == {"coco", "yolo", "annotate", "jsonl"}
    assert REGISTRY["coco"].accepts == {"detect", "segment", "points"}


@pytest.mark.parametrize("name", ["coco", "yolo", "annotate", "jsonl"])
def test_every_sink_keeps_evil_labels_and_keys_inside(tmp_path, name):
    evil = detections([box_det([1, 1, 50, 50], "../../evil"), box_det([1, 1, 9, 9], "/etc/x")])
    out = tmp_path / "deep" / "out"
    sink = REGISTRY[name].factory(out)
    sink.write(SinkItem(key="ok.png", result=evil))
    for key in ("../../escape.png", "/abs.png", "a/../../b.png", "C:\\x.png"):
        probe = REGISTRY[name].factory(tmp_path / "deep" / "probe")
        if name == "jsonl":  # the ledger format keeps keys as data and names no file by them
            probe.write(SinkItem(key=key, result=evil))
            probe.close()
            continue
        with pytest.raises(SinkError):
            probe.write(SinkItem(key=key, result=evil))
    sink.close()
    for folder, _, files in os.walk(tmp_path):
        for file in files:
            assert Path(folder, file).resolve().is_relative_to((tmp_path / "deep").resolve())


ALL = ["coco", "yolo", "annotate", "jsonl"]
ROOT = Path(__file__).resolve().parents[2]


def run_export(path, out, sinks=ALL, **kwargs):
    return export(path, sinks, out, resolve=REGISTRY.__getitem__, **kwargs)


def visible(root: Path) -> dict[str, bytes]:
    """The files a reader sees (hidden temporary files would fail the tests that look)."""
    return tree(root) if root.exists() else {}


def test_bad_keys_are_skipped_and_the_rest_is_exported_whole(tmp_path, scene, caplog):
    evil = detections([box_det([1, 1, 50, 50], "evil")])
    path = ledger_for(tmp_path, scene["items"])
    with Ledger(path) as ledger:
        for key in ("../../etc/passwd", "/abs.png", "a/../../b.png", "x\ud800.png"):
            ledger.append(LedgerRecord(key=key, status="done", result=evil))
    out = tmp_path / "deep" / "out"
    with caplog.at_level(logging.WARNING, logger="vlmkit.export"):
        result = run_export(path, out)
    assert isinstance(result, ExportResult) and result.records == 2
    assert {(s.key, s.sink) for s in result.skipped} == {
        ("../../etc/passwd", None),
        ("/abs.png", None),
        ("a/../../b.png", None),
        ("x\ud800.png", None),
    }
    assert "skipping '../../etc/passwd' for every sink" in caplog.text
    files = visible(out)
    assert {
        "annotations.json",
        "data.yaml",
        "results.jsonl",
        os.path.join("labels", "a.txt"),
        os.path.join("annotated", "sub", "b.png"),
    } <= set(files)
    assert not any(name.startswith(".") or "/." in name for name in files)  # no temp files
    assert "evil" not in files["annotations.json"].decode()  # the same items in every sink
    assert set(read_ledger(out / "results.jsonl").done) == {"a.png", "sub/b.png"}
    for folder, _, names in os.walk(tmp_path):
        for name in names:
            assert not Path(folder, name).resolve().is_relative_to(Path("/etc"))


def test_one_sink_refusing_an_item_skips_it_there_only(tmp_path):
    image_x = write_image(tmp_path / "in" / "x.jpg")
    image_y = write_image(tmp_path / "in" / "x.png")
    result = detections([box_det([1, 1, 5, 5], "a")])
    path = tmp_path / "run" / "results.jsonl"
    with Ledger(path) as ledger:
        for key, image in (("x.jpg", image_x), ("x.png", image_y)):
            ledger.append(
                LedgerRecord(key=key, status="done", result=result, image_path=str(image))
            )
    written = run_export(path, tmp_path / "out", ["coco", "yolo"])
    assert [(s.key, s.sink) for s in written.skipped] == [("x.png", "yolo")]
    assert "x.png" in written.skipped[0].reason and "rename" in written.skipped[0].reason
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == ["x.jpg", "x.png"]
    assert (tmp_path / "out" / "labels" / "x.txt").exists()


def full_disk(*_args, **_kwargs):
    raise OSError(28, "No space left on device")


def sabotage(monkeypatch, where: str) -> None:
    if where == "replay":  # the second item's preview cannot be staged
        real = AnnotateSink._stage_preview
        calls = []

        def stage(self, target, data):
            calls.append(target)
            if len(calls) == 2:
                full_disk()
            real(self, target, data)

        monkeypatch.setattr(AnnotateSink, "_stage_preview", stage)
    else:  # everything replayed, then the COCO file cannot be staged
        monkeypatch.setattr(CocoSink, "_prepare", full_disk)


@pytest.mark.parametrize("where", ["replay", "finish"])
def test_a_failed_export_changes_no_file(tmp_path, scene, monkeypatch, where):
    path = ledger_for(tmp_path, scene["items"])
    out = tmp_path / "out"
    for fresh in (True, False):
        before = visible(out)
        sabotage(monkeypatch, where)
        with pytest.raises(SinkError, match="No space left"):
            run_export(path, out)
        monkeypatch.undo()
        assert visible(out) == before  # nothing new, nothing half-written, no temp files
        if fresh:
            assert not out.exists() or not any(out.iterdir())
            run_export(path, out)  # a good export, which the next failure must not touch
            assert {"annotations.json", "data.yaml", "results.jsonl"} <= set(visible(out))


def test_ctrl_c_during_export_changes_no_file(tmp_path, scene):
    path = ledger_for(tmp_path, scene["items"])
    out = tmp_path / "out"

    class Interrupting(Sink):
        def write(self, item):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export(
            path, ["coco", "yolo", "annotate", Interrupting(out)], out, resolve=REGISTRY.__getitem__
        )
    assert not out.exists() or not any(out.rglob("*.*"))


def test_a_sink_failing_on_every_record_fails_the_export(tmp_path, scene):
    path = ledger_for(tmp_path, scene["items"])
    out = tmp_path / "out"

    class Broken(Sink):
        def write(self, item):
            raise ValueError("bug")

    with pytest.raises(SinkError, match="failed on every record"):
        export(path, ["coco", Broken(out)], out, resolve=REGISTRY.__getitem__)
    assert not (out / "annotations.json").exists()


def test_a_plain_sink_is_closed_before_the_staged_sinks_commit(tmp_path, scene):
    path = ledger_for(tmp_path, scene["items"])
    out = tmp_path / "out"
    order = []

    class Plain(Sink):
        def write(self, item):
            pass

        def close(self):
            order.append(("plain", (out / "annotations.json").exists()))
            return [out / "plain.txt"]

    written = export(path, ["coco", Plain(out)], out, resolve=REGISTRY.__getitem__)
    assert order == [("plain", False)] and written["Plain"] == [out / "plain.txt"]
    assert written["coco"] == [out / "annotations.json"]


@pytest.mark.parametrize("name", ["coffee.jpg", "LICENSES.md"])
def test_export_refuses_a_file_that_is_not_a_ledger(tmp_path, name, caplog):
    source = ROOT / "samples" / name
    if not source.exists():
        pytest.skip(f"samples/{name} is not in this checkout")
    with caplog.at_level(logging.WARNING), pytest.raises(ConfigError, match="not a vlmkit run"):
        run_export(source, tmp_path / "out", ["coco"])
    assert not caplog.records  # one clear error, no warning per line
    assert not (tmp_path / "out").exists()


def test_cli_export_of_an_image_fails_clearly(tmp_path):
    from typer.testing import CliRunner

    from vlmkit.cli import app

    image = write_image(tmp_path / "coffee.jpg")
    result = CliRunner().invoke(
        app,
        ["export", str(image), "--sink", "coco", "--out", str(tmp_path / "out")],
        env={"VLMKIT_LOAD_PLUGINS": "vlmkit", "VLMKIT_PLUGINS": None, "COLUMNS": "200"},
    )
    assert result.exit_code != 0
    assert "is not a vlmkit run ledger" in result.output
    assert "bad line" not in result.output and "exported" not in result.output
    assert not (tmp_path / "out").exists()


def test_checking_the_staged_files_resolves_each_folder_once_not_each_file(tmp_path, monkeypatch):
    # Every staged file is checked (inside the output folder, not the ledger) before and after
    # the commit; resolving each file and the output folder anew cost more CPU than the sinks
    # themselves (issue 16). Folders are resolved once, whatever the number of files.
    images = [write_image(tmp_path / "in" / f"i{i}.png") for i in range(40)]
    items = [
        SinkItem(key=p.name, result=detections([box_det([1, 1, 5, 5], "cat")]), image_path=p)
        for p in images
    ]
    path = ledger_for(tmp_path, items)
    real = os.path.realpath
    resolved: list[str] = []

    def counting(name, *args, **kwargs):
        resolved.append(os.fspath(name))
        return real(name, *args, **kwargs)

    real_lstat = os.lstat
    looked: list[str] = []

    def lstat(name, *args, **kwargs):
        looked.append(os.fspath(name))
        return real_lstat(name, *args, **kwargs)

    monkeypatch.setattr(os.path, "realpath", counting)
    monkeypatch.setattr(os, "lstat", lstat)
    files = export(path, [CocoSink(path.parent), YoloSink(path.parent)], path.parent)
    monkeypatch.undo()
    assert len(files["YoloSink"]) == 2 * len(images) + 1
    assert len(resolved) < len(images), resolved  # a few per folder, none per file
    # each staged file is looked at once (is it a link?), not before and after the commit
    staged = [p for p in looked if "/labels/" in p or "/images/" in p]
    assert len(staged) <= 2 * (2 * len(images) + 1), len(staged)


def test_a_key_is_checked_as_text_and_its_folder_once(tmp_path, monkeypatch):
    # Every done record's key is checked as an output path before any sink sees it. That
    # walked the output folder per key (an lstat of out/KEY, which no sink writes: each
    # checks the paths it does write); now the key's rules are checked as text and each of
    # its folders once (issue 16). A folder that leads out is still refused.
    from vlmkit.export import Exporter

    records = [
        LedgerRecord(key=f"sub/i{i}.png", status="done", result=detections([])) for i in range(20)
    ]
    exporter = Exporter([CocoSink(tmp_path / "out")], tmp_path / "out")
    real_lstat = os.lstat
    looked: list[str] = []

    def lstat(name, *args, **kwargs):
        looked.append(os.fspath(name))
        return real_lstat(name, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", lstat)
    for record in records:
        exporter.add(record)
    monkeypatch.undo()
    assert len(looked) <= 2, looked
    assert exporter.records == 20 and len(exporter.finish()["CocoSink"]) == 1
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "out2").mkdir()
    (tmp_path / "out2" / "sub").symlink_to(outside, target_is_directory=True)
    exporter = Exporter([CocoSink(tmp_path / "out2")], tmp_path / "out2")
    exporter.add(records[0])
    result = exporter.finish()
    assert exporter.records == 0 and [s.key for s in result.skipped] == ["sub/i0.png"]


def test_the_staged_files_are_checked_as_text(tmp_path):
    # Before the commit every staged file is checked (inside the output folder, not the
    # ledger), and after it every file a sink reports. With one label file and one image per
    # item, building, hashing and comparing path objects for that took about half of the
    # commit's CPU (issue 16); the checks now work on text. Counted: calls into pathlib.
    import sys

    images = [write_image(tmp_path / "in" / f"i{i}.png") for i in range(40)]
    items = [
        SinkItem(key=p.name, result=detections([box_det([1, 1, 5, 5], "cat")]), image_path=p)
        for p in images
    ]
    path = ledger_for(tmp_path, items)
    from vlmkit.export import Exporter

    exporter = Exporter(
        [CocoSink(path.parent), YoloSink(path.parent)], path.parent, ledger_path=path
    )
    for record in read_ledger(path):
        exporter.add(record)
    calls = 0

    def count(frame, event, _arg):
        nonlocal calls
        if event == "call" and frame.f_code.co_filename.endswith("pathlib.py"):
            calls += 1

    sys.setprofile(count)
    try:
        files = exporter.finish()
    finally:
        sys.setprofile(None)
    staged = len(files["YoloSink"])
    assert staged == 2 * len(images) + 1
    # 97 per file before; what is left is the Path objects the public API returns (the staged
    # files, the committed files), built once each
    assert calls <= 30 * staged, calls / staged
    assert (path.parent / "labels" / "i7.txt").read_text().startswith("0 ")


# -- progress -----------------------------------------------------------------------------------
def test_export_reports_its_progress_record_by_record(tmp_path, scene):
    """A long export (previews of thousands of photos) says how far it is: each record
    written, in the ledger's order; the failed one is not counted."""
    path = ledger_for(tmp_path, scene["items"])
    keys: list[str] = []
    run_export(path, tmp_path / "out", ["coco", "annotate"], progress=keys.append)
    assert keys == [item.key for item in scene["items"]]


def test_export_progress_bar_counts_the_done_records(tmp_path, scene, monkeypatch):
    import tqdm.auto

    bars: list[dict] = []

    class Bar:
        def __init__(self, **options):
            self.options = options | {"updates": 0, "closed": False}
            bars.append(self.options)

        def update(self, count=1):
            self.options["updates"] += count

        def close(self):
            self.options["closed"] = True

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    path = ledger_for(tmp_path, scene["items"])
    run_export(path, tmp_path / "out", ["coco"], progress=True)
    [bar] = bars
    assert bar["total"] == len(scene["items"]) == bar["updates"] and bar["closed"]
    assert bar["disable"] is None  # no bar when stderr is not a terminal
