"""Ground truth in other shapes: a YOLO dataset read by supervision, text for OCR runs."""

from __future__ import annotations

import pytest
from PIL import Image

import vlmkit
from tests.evaluation.helpers import SIZE, coco_ground_truth, detection, write_run
from vlmkit.errors import ConfigError
from vlmkit.ledger import Ledger, LedgerRecord
from vlmkit.types import OcrResult, Provenance, Usage

BOXES = {
    "a.jpg": [("cat", [10, 10, 50, 50]), ("dog", [60, 10, 100, 60])],
    "b.jpg": [("car", [100, 20, 160, 80])],
}
RUN = {
    "a.jpg": [detection("cat", [10, 10, 50, 50]), detection("dog", [70, 20, 110, 70])],
    "b.jpg": [detection("CAR", [100, 20, 160, 80]), detection("cat", [0, 0, 20, 20])],
}


def yolo_dataset(root):
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    ids = {"cat": 0, "dog": 1, "car": 2}
    width, height = SIZE
    for name, items in BOXES.items():
        Image.new("RGB", SIZE, "gray").save(root / "images" / "val" / name)
        lines = [
            f"{ids[label]} {(x0 + x1) / 2 / width} {(y0 + y1) / 2 / height} "
            f"{(x1 - x0) / width} {(y1 - y0) / height}"
            for label, (x0, y0, x1, y1) in items
        ]
        (root / "labels" / "val" / name.replace(".jpg", ".txt")).write_text("\n".join(lines))
    (root / "data.yaml").write_text(
        "path: .\nval: images/val\nnames:\n  0: cat\n  1: dog\n  2: car\n"
    )
    return root / "data.yaml"


def test_yolo_ground_truth_scores_like_the_same_coco(tmp_path):
    run = write_run(tmp_path / "run", RUN)
    from_coco = vlmkit.evaluate(run, coco_ground_truth(tmp_path / "gt.json", BOXES)).to_dict()
    from_yolo = vlmkit.evaluate(run, yolo_dataset(tmp_path / "yolo")).to_dict()
    for key in ("map", "map50", "map75", "precision", "recall", "f1"):
        assert from_yolo[key] == pytest.approx(from_coco[key], abs=1e-9), key
    # The dog is shifted to IoU 0.43: a miss. The car is found under another case.
    assert from_yolo["per_class"]["dog"]["ap50"] == 0.0
    assert from_yolo["per_class"]["car"]["ap50"] == pytest.approx(1.0)
    assert (from_yolo["true_positives"], from_yolo["false_positives"]) == (2, 2)


def write_ocr_run(folder, texts):
    folder.mkdir(parents=True)
    with Ledger(folder / "results.jsonl", fsync=False) as ledger:
        for key, text in texts.items():
            if text is None:
                ledger.append(LedgerRecord(key=key, status="failed", error="x", error_type="Empty"))
                continue
            provenance = Provenance(task="ocr", backend="scripted", usage=Usage(latency_s=1.0))
            result = OcrResult(text=text, provenance=provenance)
            ledger.append(LedgerRecord(key=key, status="done", result=result))
    return folder


def test_ocr_runs_get_character_and_word_error_rates(tmp_path):
    truth = tmp_path / "text.json"
    truth.write_text('{"signs/a.jpg": "HELLO WORLD", "signs/b.jpg": "AB", "signs/c.jpg": "X"}')
    run = write_ocr_run(tmp_path / "run", {"a.jpg": "HELLO  WORD\n", "b.jpg": None})
    document = vlmkit.evaluate(run, truth).to_dict()
    # a: one deleted character of 11, one wrong word of 2; b failed: 2 characters, 1 word lost.
    assert document["cer"] == pytest.approx(3 / 13)
    assert document["wer"] == pytest.approx(2 / 3)
    assert document["gt_images_not_in_run"] == 1
    assert document["map"] is None


def test_text_ground_truth_for_a_detection_run_is_refused(tmp_path):
    truth = tmp_path / "text.json"
    truth.write_text('{"a.jpg": "HELLO"}')
    run = write_run(tmp_path / "run", {"a.jpg": []})
    with pytest.raises(ConfigError, match="text ground truth scores OCR runs"):
        vlmkit.evaluate(run, truth)


def test_yolo_polygons_give_mask_scores(tmp_path):
    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.new("RGB", SIZE, "gray").save(root / "images" / "a.jpg")
    # a 40x40 square at (20, 20): polygon corners normalized by 200x100
    (root / "labels" / "a.txt").write_text("0 0.1 0.2 0.3 0.2 0.3 0.6 0.1 0.6\n")
    (root / "data.yaml").write_text("path: .\ntrain: images\nnames: [cat]\n")
    run = write_run(
        tmp_path / "run",
        {
            "a.jpg": [
                detection("cat", [20, 20, 60, 60], mask=True),
                detection("cat", [100, 0, 140, 40], mask=True),
            ]
        },
        task="segment",
    )
    document = vlmkit.evaluate(run, root / "data.yaml").to_dict()
    assert document["iou_type"] == "segm"
    assert (document["true_positives"], document["false_positives"]) == (1, 1)
    assert document["per_class"]["cat"]["ap50"] == pytest.approx(1.0)
