"""Detection and mask metrics, computed by pycocotools (the reference implementation).

mAP@[.50:.95], mAP@.50 and mAP@.75 are ``COCOeval.stats[0:3]``; per-class AP is read from the
same evaluation's precision array exactly as ``summarize`` averages it. Because most VLMs give
no scores (every prediction then scores 1.0), the ranked metrics are complemented by precision,
recall and F1 at IoU 0.5 at the model's operating point: true and false positives counted from
pycocotools' own per-image matching (``evalImgs``), so both views agree on what matched.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from vlmkit.errors import ConfigError

__all__ = ["ClassAP", "DetectionMetrics", "coco_metrics"]


@attrs.frozen(kw_only=True)
class ClassAP:
    """AP of one class; ``None`` where the class has no ground truth in the evaluated images."""

    ap: float | None
    ap50: float | None


@attrs.frozen(kw_only=True)
class DetectionMetrics:
    """COCO metrics (``None`` where pycocotools says -1: nothing to evaluate) and the operating
    point at IoU 0.5."""

    iou_type: str
    map: float | None
    map50: float | None
    map75: float | None
    per_class: Mapping[str, ClassAP]
    true_positives: int
    false_positives: int
    false_negatives: int
    predictions: int
    ground_truths: int

    @property
    def precision(self) -> float | None:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else None

    @property
    def recall(self) -> float | None:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else None

    @property
    def f1(self) -> float | None:
        total = 2 * self.true_positives + self.false_positives + self.false_negatives
        return 2 * self.true_positives / total if total else None


def _value(number: float) -> float | None:
    return None if number < 0 else float(number)


def _mean(values: Any) -> float | None:
    kept = values[values > -1]
    return float(kept.mean()) if kept.size else None


def _quiet() -> contextlib.AbstractContextManager[Any]:
    """pycocotools prints progress to stdout; a library must not."""
    return contextlib.redirect_stdout(io.StringIO())


def coco_metrics(
    dataset: Mapping[str, Any],
    predictions: Sequence[Mapping[str, Any]],
    image_ids: Sequence[int],
    *,
    iou_type: str = "bbox",
) -> DetectionMetrics:
    """Evaluate COCO-format ``predictions`` (``image_id``, ``category_id``, ``bbox`` or
    ``segmentation``, ``score``) against the COCO ``dataset`` on ``image_ids``."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as err:
        raise ConfigError(
            "evaluation needs pycocotools: pip install 'vlmkit[coco]' (or pycocotools)"
        ) from err
    if iou_type not in ("bbox", "segm"):
        raise ConfigError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    with _quiet():
        truth = COCO()
        truth.dataset = {k: list(v) if isinstance(v, list) else v for k, v in dataset.items()}
        truth.createIndex()
        if predictions:
            found = truth.loadRes([dict(p) for p in predictions])
        else:  # loadRes refuses an empty list; an empty result set is still a valid answer
            found = COCO()
            found.dataset = {
                "images": list(truth.dataset["images"]),
                "categories": list(truth.dataset["categories"]),
                "annotations": [],
            }
            found.createIndex()
        evaluation = COCOeval(truth, found, iou_type)
        evaluation.params.imgIds = sorted(image_ids)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    precision = evaluation.eval["precision"]  # [T, R, K, A, M]
    names = {c["id"]: c["name"] for c in truth.dataset["categories"]}
    per_class = {
        names[cat_id]: ClassAP(
            ap=_mean(precision[:, :, index, 0, -1]), ap50=_mean(precision[0, :, index, 0, -1])
        )
        for index, cat_id in enumerate(evaluation.params.catIds)
    }
    tp = fp = fn = dets = gts = 0
    max_det = evaluation.params.maxDets[-1]
    whole = list(evaluation.params.areaRng[0])
    for entry in evaluation.evalImgs:
        if entry is None or list(entry["aRng"]) != whole or entry["maxDet"] != max_det:
            continue
        counted = ~entry["dtIgnore"][0].astype(bool)
        matched = entry["dtMatches"][0] > 0
        hits = int((matched & counted).sum())
        tp += hits
        fp += int((~matched & counted).sum())
        real = int((~entry["gtIgnore"].astype(bool)).sum())
        fn += real - hits
        dets += int(counted.sum())
        gts += real
    stats = evaluation.stats
    return DetectionMetrics(
        iou_type=iou_type,
        map=_value(stats[0]),
        map50=_value(stats[1]),
        map75=_value(stats[2]),
        per_class=per_class,
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        predictions=dets,
        ground_truths=gts,
    )
