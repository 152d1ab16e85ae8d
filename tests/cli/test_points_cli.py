"""``vlmkit points`` and ``vlmkit label --task points``: printed points, a resumable run folder,
COCO keypoints read back by pycocotools, dots in the previews, and a YOLO sink refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vlmkit.cli import app
from vlmkit.ledger import read_ledger

SCRIPTED = "tests.cli.scripted_backends"
BACKGROUND = (40, 90, 160)


@pytest.fixture
def vlm(tmp_path):
    env = {
        "VLMKIT_LOAD_PLUGINS": "vlmkit",
        "VLMKIT_CACHE_DIR": str(tmp_path / "cache"),
        "VLMKIT_PLUGINS": None,
        "VLMKIT_BACKEND": None,
        "COLUMNS": "200",
    }
    runner = CliRunner()

    def invoke(*args: str, plugins=(SCRIPTED,)):
        flags = [arg for plugin in plugins for arg in ("--plugin", plugin)]
        return runner.invoke(app, [*flags, *args], env=env)

    return invoke


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (400, 200), BACKGROUND).save(folder / "a.png")
    Image.new("RGB", (100, 300), BACKGROUND).save(folder / "b.png")
    return folder


def test_points_prints_one_line_per_point_in_original_pixels(vlm, photos):
    shown = vlm("points", str(photos / "a.png"), "-l", "cat", "-l", "dog", "-b", "scripted")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines() == ["cat  (40.0, 50.0)", "dog  (400.0, 100.0)"]
    assert "clamped=1" in shown.stderr  # the dog was off the grid: said, not hidden
    document = json.loads(vlm("points", str(photos / "a.png"), "-b", "scripted", "--json").stdout)
    assert document["type"] == "points" and document["items"][0]["label"] == "cat"


def test_label_points_is_resumable_and_exports_coco_keypoints(vlm, photos, tmp_path):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    out = tmp_path / "run"
    args = ("label", str(photos), "--task", "points", "-l", "cat", "-l", "dog", "-b", "scripted")
    first = vlm(*args, "--out", str(out), "-s", "coco", "-s", "annotate", "--no-progress")
    assert first.exit_code == 0, first.output
    assert "done 2" in first.stdout
    again = vlm(*args, "--out", str(out), "--no-progress")
    assert again.exit_code == 0 and "done 0" in again.stdout  # resumed: nothing re-asked
    records = list(read_ledger(out / "results.jsonl").done.values())
    assert len(records) == 2 and {type(r.result).__name__ for r in records} == {"Points"}

    coco = COCO(str(out / "annotations.json"))
    categories = coco.loadCats(coco.getCatIds())
    assert [c["name"] for c in categories] == ["cat", "dog"]
    assert all(c["keypoints"] == ["point"] and c["skeleton"] == [] for c in categories)
    by_file = {img["file_name"]: img["id"] for img in coco.dataset["images"]}
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[by_file["a.png"]]))
    assert [a["keypoints"] for a in anns] == [[40.0, 50.0, 2], [400.0, 100.0, 2]]
    assert all(a["num_keypoints"] == 1 for a in anns)
    results = coco.loadRes(coco.dataset["annotations"])  # a results list too, as for boxes
    assert len(results.getAnnIds()) == 4

    exported = tmp_path / "exported"
    done = vlm("export", str(out / "results.jsonl"), "-s", "coco", "--out", str(exported))
    assert done.exit_code == 0, done.output
    assert (exported / "annotations.json").read_bytes() == (out / "annotations.json").read_bytes()


def test_the_previews_show_a_dot_on_every_point_inside_the_image(vlm, photos, tmp_path):
    out = tmp_path / "run"
    ran = vlm(
        "label", str(photos), "--task", "points", "-b", "scripted", "--out", str(out),
        "-s", "annotate", "--sink-option", "annotate.labels=false", "--no-progress",
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    preview = np.asarray(Image.open(out / "annotated" / "a.png").convert("RGB")).astype(int)
    assert preview.shape == (200, 400, 3)  # same size: nothing drawn outside the image
    changed = np.abs(preview - BACKGROUND).sum(axis=2) > 60
    assert changed[50, 40] and changed[100, 399]  # the cat, and the dog clamped to the edge
    assert changed.mean() < 0.05  # dots, not boxes over the image
    ys, xs = np.nonzero(changed)
    assert xs.min() >= 30 and ys.min() >= 40  # nothing drawn far from the two points


def test_label_points_refuses_the_yolo_sink_before_any_request(vlm, photos, tmp_path):
    out = tmp_path / "run"
    refused = vlm(
        "label", str(photos), "--task", "points", "-b", "scripted", "--out", str(out),
        "-s", "coco", "-s", "yolo", "--no-progress",
    )  # fmt: skip
    assert refused.exit_code != 0
    assert "sink 'yolo' does not accept points results" in refused.stderr
    assert not (out / "results.jsonl").exists()
