"""The COCO sink's output loads and evaluates with pycocotools, masks intact."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os

import numpy as np
import pytest

from tests.sinks.conftest import (
    H,
    W,
    box_det,
    detections,
    held_per_item,
    mask_det,
    ring_mask,
    two_part_mask,
)
from vlmkit.errors import ConfigError, SinkError
from vlmkit.sink import SinkItem
from vlmkit.sinks.coco import CocoSink
from vlmkit.types import Description

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")
pycocotools = pytest.importorskip("pycocotools")
from pycocotools import mask as mask_utils  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def write(tmp_path, items, **options):
    with CocoSink(tmp_path / "out", **options) as sink:
        for item in items:
            sink.write(item)
    return tmp_path / "out" / options.get("filename", "annotations.json")


def load(path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def evaluate(gt: COCO, anns: list[dict], iou_type: str) -> float:
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes([dict(a) for a in anns])
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_layout_ids_and_stable_categories(tmp_path, scene):
    path = write(tmp_path, scene["items"])
    data = json.loads(path.read_text())
    assert [i["id"] for i in data["images"]] == [1, 2]
    assert [i["file_name"] for i in data["images"]] == ["a.png", "sub/b.png"]
    assert (data["images"][0]["width"], data["images"][0]["height"]) == (W, H)
    names = {c["id"]: c["name"] for c in data["categories"]}
    assert names == {1: "donut", 2: "pair", 3: "cat"}  # first-seen, from 1
    donut = [a for a in data["annotations"] if a["category_id"] == 1]
    assert {a["image_id"] for a in donut} == {1, 2}  # same id on both images
    box = next(a for a in data["annotations"] if a["category_id"] == 3)
    assert box["bbox"] == [10.0, 20.0, 50.0, 70.0] and box["area"] == 3500.0
    assert "segmentation" not in box and box["score"] == 0.7
    assert all(a["iscrowd"] == 0 for a in data["annotations"])
    assert [a["id"] for a in data["annotations"]] == [1, 2, 3, 4]


def test_fixed_categories_come_first(tmp_path, scene):
    path = write(tmp_path, scene["items"], categories="cat,dog")
    names = [c["name"] for c in json.loads(path.read_text())["categories"]]
    assert names == ["cat", "dog", "donut", "pair"]


@pytest.mark.parametrize("fmt", ["rle", "polygon"])
def test_pycocotools_evaluates_self_as_perfect(tmp_path, scene, fmt):
    path = write(tmp_path, scene["items"], mask_format=fmt)
    gt = load(path)
    anns = json.loads(path.read_text())["annotations"]
    assert evaluate(gt, anns, "bbox") == pytest.approx(1.0)
    seg = [a for a in anns if "segmentation" in a]
    seg_gt_ids = {a["image_id"] for a in seg}
    gt.dataset["annotations"] = [a for a in gt.dataset["annotations"] if "segmentation" in a]
    gt.dataset["images"] = [i for i in gt.dataset["images"] if i["id"] in seg_gt_ids]
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    assert evaluate(gt, seg, "segm") == pytest.approx(1.0)


def test_rle_keeps_holes_and_parts_pixel_for_pixel(tmp_path, scene):
    path = write(tmp_path, scene["items"][:1])
    gt = load(path)
    anns = gt.loadAnns(gt.getAnnIds(imgIds=[1]))
    for ann, full in zip(anns, [ring_mask(), two_part_mask()], strict=True):
        decoded = gt.annToMask(ann).astype(bool)
        assert np.array_equal(decoded, full)
        assert ann["area"] == full.sum() == mask_utils.area(gt.annToRLE(ann))


def test_polygons_fill_holes_but_keep_parts(tmp_path, scene, caplog):
    with caplog.at_level(logging.WARNING, logger="vlmkit.sinks.coco"):
        path = write(tmp_path, scene["items"][:1] * 1, mask_format="polygon")
    assert caplog.text.count("cannot represent holes") == 1
    gt = load(path)
    ring, pair = gt.loadAnns(gt.getAnnIds(imgIds=[1]))
    assert len(pair["segmentation"]) == 2  # two polygons, one instance
    assert iou(gt.annToMask(pair).astype(bool), two_part_mask()) >= 0.95
    filled = ring_mask() | (
        np.add.outer((np.arange(H) - 50) ** 2, (np.arange(W) - 50) ** 2) < 12**2
    )
    assert iou(gt.annToMask(ring).astype(bool), filled) >= 0.95  # the hole is filled
    assert ring["area"] == ring_mask().sum()  # area stays the true pixel count


def test_other_results_are_skipped(tmp_path):
    path = write(tmp_path, [SinkItem(key="x.jpg", result=Description(text="hi"))])
    assert json.loads(path.read_text())["images"] == []


def test_mask_leaving_the_image_is_clipped(tmp_path):
    full = np.zeros((H, W), bool)
    full[100:, 150:] = True
    det = mask_det(full, "edge")
    path = write(tmp_path, [SinkItem(key="e.png", result=detections([det]))])
    gt = load(path)
    assert np.array_equal(gt.annToMask(gt.loadAnns([1])[0]).astype(bool), full)


def test_labels_never_become_paths(tmp_path):
    evil = detections([box_det([1, 1, 5, 5], "../../evil"), box_det([1, 1, 5, 5], "a/b")])
    write(tmp_path, [SinkItem(key="x.png", result=evil)])
    files = {
        os.path.relpath(os.path.join(d, f), tmp_path) for d, _, fs in os.walk(tmp_path) for f in fs
    }
    assert files == {os.path.join("out", "annotations.json")}


def test_bad_options_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="mask_format"):
        CocoSink(tmp_path, mask_format="bitmap")
    with pytest.raises(ConfigError, match="unknown option"):
        CocoSink(tmp_path, colour="red")


def test_interrupted_close_leaves_nothing(tmp_path, scene, monkeypatch):
    sink = CocoSink(tmp_path / "out")
    for item in scene["items"]:
        sink.write(item)

    def boom(*_args):
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="power cut"):
        sink.close()
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def test_unencodable_label_and_key_become_replacement_characters(tmp_path):
    """A lone surrogate (valid JSON from a model, or a file name that is not UTF-8) never
    crashes the writer: the file stays valid UTF-8 and the text gets U+FFFD."""
    result = detections([box_det([1, 1, 5, 5], "\ud800"), box_det([2, 2, 6, 6], "\udfff")])
    path = write(tmp_path, [SinkItem(key="caf\udce9.png", result=result)])
    data = json.loads(path.read_bytes().decode("utf-8"))
    assert [c["name"] for c in data["categories"]] == ["\ufffd"]  # one category for both
    assert [a["category_id"] for a in data["annotations"]] == [1, 1]
    assert data["images"][0]["file_name"] == "caf\ufffd.png"


def test_write_touches_no_file_per_item(tmp_path, monkeypatch):
    # The sink keeps answers in memory and writes one file at close: checking an item's key
    # must not cost a file-system call per item (issue 16).
    sink = CocoSink(tmp_path / "out")
    calls: list[str] = []

    def counting(name):
        real = getattr(os, name)

        def call(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)

        return call

    for name in ("lstat", "stat", "open"):
        monkeypatch.setattr(os, name, counting(name))
    for i in range(20):
        sink.write(
            SinkItem(key=f"sub/img{i}.png", result=detections([box_det([1, 1, 5, 5], "cat")]))
        )
    monkeypatch.undo()
    assert calls == []
    with pytest.raises(SinkError, match=r"'\.\.' components"):
        sink.write(SinkItem(key="../up.png", result=detections([box_det([1, 1, 5, 5], "cat")])))
    sink.close()
    data = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert [image["file_name"] for image in data["images"]] == sorted(
        f"sub/img{i}.png" for i in range(20)
    )


def test_what_the_sink_holds_per_image_until_close(tmp_path):
    # Issue 16: memory flat in the number of images beyond what the file needs. The COCO
    # document is written whole at close (ids follow key order), so every image's size and
    # boxes are held until then — as plain tuples now instead of the dicts and lists of the
    # document (0.99 KB per image with two boxes before, 0.50 KB now); the file is the same.

    def items(count):
        return [
            SinkItem(
                key=f"folder/image_{i:05d}.png",
                result=detections(
                    [box_det([1, 1, 3 + i % 7, 3], "cat", 0.5), box_det([0, 0, 2, 2], "dog")]
                ),
            )
            for i in range(count)
        ]

    batch = items(400)
    sink = CocoSink(tmp_path / "out")
    held = held_per_item(sink, batch)
    assert held < 560, held
    document = sink.to_dict()
    assert document["annotations"][2] == {
        "id": 3,
        "image_id": 2,
        "category_id": 1,
        "bbox": [1.0, 1.0, 3.0, 2.0],
        "iscrowd": 0,
        "area": 6.0,
        "score": 0.5,
    }
    assert [a["score"] for a in document["annotations"][:2]] == [0.5, 1.0]
    assert document["images"][1] == {
        "id": 2,
        "file_name": "folder/image_00001.png",
        "width": W,
        "height": H,
    }


@pytest.mark.parametrize("mask_format", ["rle", "polygon"])
def test_masks_are_held_as_compactly_as_their_runs_until_close(tmp_path, mask_format):
    # Issue 16: a segmentation run held every mask's RLE as a Python list of ints until close
    # (36 B per run: 867 KB per 12 MP image of 20 masks, 5.6x its text in the file). The sink
    # now holds arrays (4 B per run, 8 B per polygon coordinate) and writes the same file.

    from vlmkit.masks import mask_to_rle

    size = (1600, 1200)
    yy, xx = np.mgrid[:400, :500]
    disk = ((yy - 200) / 199.5) ** 2 + ((xx - 250) / 249.5) ** 2 < 1
    masked = detections([mask_det_at(disk, 300, 200)], size=size, task="segment")
    runs = len(mask_to_rle(masked.items[0].mask, size)["counts"])
    batch = [SinkItem(key=f"img{i:03d}.jpg", result=masked) for i in range(60)]
    sink = CocoSink(tmp_path / "out", mask_format=mask_format)
    held = held_per_item(sink, batch)
    if mask_format == "rle":
        assert held < 4 * runs + 600, (held, runs)  # 36 B per run before
    else:  # the disk's outline: 1,000 points or so, two coordinates each
        assert held < 8 * 2 * 1100 + 800, held
    sink.close()
    document = json.loads((tmp_path / "out" / "annotations.json").read_text())
    segmentation = document["annotations"][0]["segmentation"]
    if mask_format == "rle":
        assert segmentation == mask_to_rle(masked.items[0].mask, size)
    coco = COCO(str(tmp_path / "out" / "annotations.json"))
    decoded = coco.annToMask(coco.loadAnns(coco.getAnnIds(imgIds=[1]))[0]).astype(bool)
    full = masked.items[0].mask.to_full(size)
    overlap = (decoded & full).sum() / (decoded | full).sum()
    assert overlap == 1.0 if mask_format == "rle" else overlap > 0.99


def mask_det_at(crop: np.ndarray, x: int, y: int):
    from vlmkit.types import Box, Detection, Mask

    h, w = crop.shape
    mask = Mask(data=crop, x=x, y=y)
    return Detection(box=Box(x0=x, y0=y, x1=x + w, y1=y + h), label="blob", mask=mask)


def _many(count):
    return [
        SinkItem(
            key=f"folder/image_{i:05d}.png",
            result=detections(
                [box_det([1, 1, 3 + i % 7, 3], "cat", 0.5), box_det([0, 0, 2, 2], f"dog {i % 3}")]
            ),
        )
        for i in range(count)
    ]


def test_writing_the_file_does_not_build_the_document_in_memory(tmp_path):
    # Issue 16: a million-image run must not grow beyond what the file needs. The file was
    # written from one dict of the whole document and one string of its whole JSON: at close
    # the memory peaked at 2.3 KB per image with two boxes above what the sink held (0.5 KB).
    # It is streamed now, an image and an annotation at a time.
    import gc
    import tracemalloc

    batch = _many(2000)
    sink = CocoSink(tmp_path / "out")
    for item in batch:
        sink.write(item)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        sink.close()
        peak = (tracemalloc.get_traced_memory()[1] - base) / len(batch)
    finally:
        tracemalloc.stop()
    assert peak < 150, peak  # 2.8 KB before
    # the same file, byte for byte, as the whole document dumped at once
    written = (tmp_path / "out" / "annotations.json").read_text(encoding="utf-8")
    assert written == json.dumps(sink.to_dict(), ensure_ascii=False) + "\n"


@pytest.mark.parametrize("indent", [None, 0, 2])
@pytest.mark.parametrize("count", [0, 1, 3, 150])
def test_the_streamed_file_is_what_json_dumps_writes_of_the_document(tmp_path, indent, count):
    from vlmkit.atomic import utf8_safe
    from vlmkit.types import Point, Points

    items = _many(count)
    if count:  # an image without boxes, keypoints, and text JSON escapes or cannot encode
        items.append(SinkItem(key="empty.png", result=detections([])))
        points = Points(image_size=(W, H), items=[Point(x=1, y=2, label="cup")])
        items.append(SinkItem(key="points.png", result=points))
        weird = detections([box_det([0, 0, 1, 1], 'a "b"\n\ud800')])
        items.append(SinkItem(key='we"ird\\name\u00e9.png', result=weird))
    path = write(tmp_path, items, indent=indent)
    sink = CocoSink(tmp_path / "again", indent=indent)
    for item in items:
        sink.write(item)
    whole = json.dumps(sink.to_dict(), ensure_ascii=False, indent=indent)
    assert path.read_text(encoding="utf-8") == utf8_safe(whole) + "\n"
    load(path)  # and pycocotools reads it
