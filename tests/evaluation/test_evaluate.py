"""`vlmkit.evaluate` against pycocotools run directly, on ground truth and predictions with
known perturbations: shifted, missing, extra, wrong-class and unmapped boxes, an image without
ground truth, an image without predictions and a failed image."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import vlmkit
from tests.evaluation.helpers import CATEGORIES, coco_ground_truth, detection, write_run
from vlmkit.errors import ConfigError

GT = {
    "val/a.jpg": [
        ("cat", [10, 10, 50, 50]),
        ("dog", [60, 10, 100, 60]),
        ("car", [120, 20, 190, 90]),
    ],
    "val/b.jpg": [("cat", [10, 10, 40, 40]), ("dog", [100, 20, 160, 80])],
    "val/c.jpg": [],  # no ground truth at all
    "val/d.jpg": [("dog", [20, 20, 80, 80])],
    "val/e.jpg": [("cat", [5, 5, 25, 25])],
    "val/f.jpg": [("cat", [5, 5, 95, 95])],  # not in the run: left out of the scores
}
PREDICTIONS = {
    "a.jpg": [
        detection("cat", [10, 10, 50, 50]),  # exact
        detection("Dog", [64, 14, 104, 64]),  # shifted: IoU 0.65, a hit at .5, a miss at .75
        detection("automobile", [120, 20, 190, 90]),  # a synonym: unmapped unless mapped
    ],
    "b.jpg": [detection("cat", [100, 20, 160, 80])],  # the dog called a cat; the cat missing
    "c.jpg": [detection("cat", [0, 0, 30, 30])],  # extra, on an image without ground truth
    "d.jpg": [],  # answered, found nothing
    "e.jpg": "ParseError",  # failed: counts as found nothing
}


def pycocotools_directly(gt_path, results, image_ids, iou_type="bbox", cat_ids=None):
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(gt_path))
        found = truth.loadRes(results)
        evaluation = COCOeval(truth, found, iou_type)
        evaluation.params.imgIds = image_ids
        if cat_ids is not None:
            evaluation.params.catIds = cat_ids
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats


def expected_results(mapped: bool):
    """The same predictions, written by hand in pycocotools' result format."""
    rows = [
        (1, 1, [10, 10, 40, 40]),
        (1, 2, [64, 14, 40, 50]),
        *([(1, 3, [120, 20, 70, 70])] if mapped else []),
        (2, 1, [100, 20, 60, 60]),
        (3, 1, [0, 0, 30, 30]),
    ]
    return [{"image_id": i, "category_id": c, "bbox": b, "score": 1.0} for i, c, b in rows]


@pytest.fixture
def case(tmp_path):
    gt = coco_ground_truth(tmp_path / "gt.json", GT)
    run = write_run(tmp_path / "run", PREDICTIONS)
    return gt, run


@pytest.mark.parametrize("mapped", [False, True])
def test_agrees_with_pycocotools_run_directly(case, mapped):
    gt, run = case
    mapping = {"automobile": "car"} if mapped else None
    result = vlmkit.evaluate(run, gt, mapping=mapping)
    image_ids = [1, 2, 3, 4, 5]  # f.jpg (6) is not in the run
    stats = pycocotools_directly(gt, expected_results(mapped), image_ids)
    document = result.to_dict()
    assert document["map"] == pytest.approx(stats[0], abs=1e-6)
    assert document["map50"] == pytest.approx(stats[1], abs=1e-6)
    assert document["map75"] == pytest.approx(stats[2], abs=1e-6)
    assert 0 < document["map"] < document["map50"] < 1  # the perturbations cost something
    for cat_id, name in CATEGORIES.items():
        alone = pycocotools_directly(gt, expected_results(mapped), image_ids, cat_ids=[cat_id])
        assert document["per_class"][name]["ap"] == pytest.approx(alone[0], abs=1e-6)
        assert document["per_class"][name]["ap50"] == pytest.approx(alone[1], abs=1e-6)
    assert document["gt_images_not_in_run"] == 1
    assert document["images_without_ground_truth_boxes"] == 1


def counts(document):
    return (document["true_positives"], document["false_positives"], document["false_negatives"])


def test_precision_recall_f1_are_hand_countable(case):
    gt, run = case
    # 7 ground-truth boxes in the run's images. Hits at IoU .5: a's cat and a's shifted dog.
    # False positives: b's dog called a cat, c's extra box. The car is unmapped: not scored.
    plain = vlmkit.evaluate(run, gt).to_dict()
    assert counts(plain) == (2, 2, 5)
    assert plain["precision"] == pytest.approx(2 / 4)
    assert plain["recall"] == pytest.approx(2 / 7)
    assert plain["f1"] == pytest.approx(4 / 11)
    assert plain["unmapped_labels"] == {"automobile": 1}
    # Mapped, the car is a third hit.
    mapped = vlmkit.evaluate(run, gt, mapping=["automobile=car"]).to_dict()
    assert counts(mapped) == (3, 2, 4)
    assert mapped["precision"] == pytest.approx(3 / 5)
    assert mapped["recall"] == pytest.approx(3 / 7)
    assert mapped["f1"] == pytest.approx(6 / 12)
    assert mapped["unmapped_labels"] == {}


def test_run_facts_come_from_the_ledger(case):
    gt, run = case
    document = vlmkit.evaluate(run, gt).to_dict()
    assert document["images"] == 5  # a to e; f is ground truth only
    assert (document["done"], document["failed"], document["parse_failures"]) == (4, 1, 1)
    assert document["prompt_tokens"] == 400 and document["output_tokens"] == 40
    assert document["cost_per_image"] == pytest.approx(0.001)
    assert document["latency_p50_s"] == pytest.approx(2.5)  # latencies 1, 2, 3 and 4 s
    assert document["latency_p95_s"] == pytest.approx(3.85)
    json.dumps(document)  # one JSON document


def test_unknown_cost_is_null(tmp_path):
    gt = coco_ground_truth(tmp_path / "gt.json", {"a.jpg": [("cat", [0, 0, 10, 10])]})
    run = write_run(tmp_path / "run", {"a.jpg": [detection("cat", [0, 0, 10, 10])]}, cost=None)
    document = vlmkit.evaluate(run, gt).to_dict()
    assert document["cost_per_image"] is None
    assert document["map50"] == pytest.approx(1.0)


def test_unmatched_images_are_listed(tmp_path):
    gt = coco_ground_truth(tmp_path / "gt.json", {"val/a.jpg": []})
    run = write_run(tmp_path / "run", {"a.jpg": [], "zebra.jpg": [], "sub/okapi.jpg": []})
    with pytest.raises(ConfigError, match=r"2 run image\(s\) have no ground truth.*zebra\.jpg"):
        vlmkit.evaluate(run, gt)


def test_mapping_to_an_unknown_class_is_refused(case):
    gt, run = case
    with pytest.raises(ConfigError, match="'lorry' is not a ground-truth class"):
        vlmkit.evaluate(run, gt, mapping={"automobile": "lorry"})


def test_relative_path_wins_over_base_name(tmp_path):
    gt = coco_ground_truth(
        tmp_path / "gt.json",
        {"x/a.jpg": [("cat", [0, 0, 10, 10])], "y/a.jpg": [("dog", [0, 0, 10, 10])]},
    )
    run = write_run(tmp_path / "run", {"y/a.jpg": [detection("dog", [0, 0, 10, 10])]})
    assert vlmkit.evaluate(run, gt).to_dict()["map50"] == pytest.approx(1.0)
    ambiguous = write_run(tmp_path / "run2", {"a.jpg": []})
    with pytest.raises(ConfigError, match="several ground-truth images"):
        vlmkit.evaluate(ambiguous, gt)


def test_mask_map_agrees_with_pycocotools(tmp_path):
    gt = coco_ground_truth(
        tmp_path / "gt.json",
        {"a.jpg": [("cat", [10, 10, 50, 50])], "b.jpg": [("dog", [20, 20, 60, 60])]},
        segmentation=True,
    )
    run = write_run(
        tmp_path / "run",
        {
            "a.jpg": [detection("cat", [10, 10, 50, 50], mask=True)],
            "b.jpg": [
                detection("dog", [24, 24, 64, 64], mask=True),
                detection("cat", [0, 0, 9, 9]),
            ],
        },
        task="segment",
    )
    document = vlmkit.evaluate(run, gt).to_dict()
    assert document["iou_type"] == "segm"
    with contextlib.redirect_stdout(io.StringIO()):
        import numpy as np
        from pycocotools import mask as mask_utils

        def rle(box):
            full = np.zeros((100, 200), np.uint8)
            if box:
                x0, y0, x1, y1 = box
                full[y0:y1, x0:x1] = 1
            return mask_utils.encode(np.asfortranarray(full))

    results = [
        {"image_id": 1, "category_id": 1, "segmentation": rle([10, 10, 50, 50]), "score": 1.0},
        {"image_id": 2, "category_id": 2, "segmentation": rle([24, 24, 64, 64]), "score": 1.0},
        {"image_id": 2, "category_id": 1, "segmentation": rle(None), "score": 1.0},  # no mask
    ]
    stats = pycocotools_directly(gt, results, [1, 2], iou_type="segm")
    assert document["map"] == pytest.approx(stats[0], abs=1e-6)
    assert document["map50"] == pytest.approx(stats[1], abs=1e-6)
    assert document["false_positives"] == 1 and document["true_positives"] == 2


def test_ground_truth_of_another_resolution_is_refused(tmp_path):
    gt = coco_ground_truth(tmp_path / "gt.json", {"a.jpg": [("cat", [0, 0, 10, 10])]})
    run = tmp_path / "run"
    write_run(run, {"a.jpg": [detection("cat", [0, 0, 10, 10])]})
    text = (
        (run / "results.jsonl")
        .read_text()
        .replace('"image_size":[200,100]', '"image_size":[400,200]')
    )
    (run / "results.jsonl").write_text(text)
    with pytest.raises(ConfigError, match=r"'a.jpg' \(400x200 in the run, 200x100 in the ground"):
        vlmkit.evaluate(run, gt)


def test_mask_scores_need_a_segment_run(tmp_path):
    gt = coco_ground_truth(
        tmp_path / "gt.json", {"a.jpg": [("cat", [0, 0, 10, 10])]}, segmentation=True
    )
    run = write_run(tmp_path / "run", {"a.jpg": [detection("cat", [0, 0, 10, 10])]})
    with pytest.raises(ConfigError, match="no masks to score"):
        vlmkit.evaluate(run, gt, iou_type="segm")


def test_repairs_truncations_and_tokens_of_failed_answers_are_counted(tmp_path):
    from vlmkit.ledger import Ledger, LedgerRecord
    from vlmkit.types import Detections, FinishReason, ParseReport, Provenance, SkippedItem, Usage

    gt = coco_ground_truth(tmp_path / "gt.json", {"a.jpg": [], "b.jpg": []})
    (tmp_path / "run").mkdir()

    def result(report, finish=FinishReason.STOP):
        usage = Usage(prompt_tokens=10, output_tokens=5, thinking_tokens=2, cost_usd=0.5)
        provenance = Provenance(task="detect", usage=usage, finish=finish)
        return Detections(image_size=(200, 100), items=(), provenance=provenance, report=report)

    repaired = ParseReport(swapped=2, clamped=1, skipped=(SkippedItem(index=3, reason="x"),))
    cut = ParseReport(truncated=True)
    with Ledger(tmp_path / "run" / "results.jsonl", fsync=False) as ledger:
        ledger.append(LedgerRecord(key="a.jpg", status="done", result=result(repaired)))
        ledger.append(
            LedgerRecord(
                key="b.jpg",
                status="failed",
                result=result(cut, FinishReason.MAX_TOKENS),
                error="cut off",
                error_type="Truncated",
            )
        )
    document = vlmkit.evaluate(tmp_path / "run", gt).to_dict()
    assert (document["repairs"], document["truncations"]) == (4, 1)
    assert document["failures"] == {"Truncated": 1} and document["parse_failures"] == 0
    assert document["tokens"] == 2 * 17 and document["cost_per_image"] == pytest.approx(0.5)


def test_one_mapping_string_is_one_pair(case):
    gt, run = case
    assert vlmkit.evaluate(run, gt, mapping="automobile=car").to_dict()["unmapped_labels"] == {}
