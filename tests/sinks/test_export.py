"""export() rebuilds sink outputs from a ledger exactly as writing them during the run."""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tests.sinks.conftest import box_det, detections
from vlmkit.errors import ConfigError, SinkError
from vlmkit.export import export
from vlmkit.ledger import Ledger, LedgerRecord, read_ledger
from vlmkit.sink import SinkItem
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
    assert REGISTRY["coco"].accepts == {"detect", "segment"}


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
