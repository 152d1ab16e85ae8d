"""``vlmkit.evaluate``: a run folder (its ledger) against ground truth, no model call."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from vlmkit.errors import ConfigError
from vlmkit.evaluation.facts import RunFacts, run_facts
from vlmkit.evaluation.groundtruth import GroundTruth, GtImage, load_ground_truth
from vlmkit.evaluation.matching import ClassMatcher, match_images, parse_mapping
from vlmkit.evaluation.metrics import DetectionMetrics, coco_metrics
from vlmkit.evaluation.ocr import (
    OcrMetrics,
    is_text_ground_truth,
    load_text_ground_truth,
    ocr_metrics,
)

if TYPE_CHECKING:
    from vlmkit.ledger import LedgerRecord, LedgerState

__all__ = ["Evaluation", "evaluate", "predictions_from_ledger"]

IouType = Literal["bbox", "segm"]
LEDGER_NAME = "results.jsonl"


@attrs.frozen(kw_only=True)
class Evaluation:
    """What :func:`evaluate` found: quality (detection or OCR metrics) beside the run's facts.

    ``unmapped`` counts predictions whose label is no ground-truth class (not scored: map them
    with ``mapping``); ``gt_images_not_in_run`` counts ground-truth images the run did not
    cover (left out of the scores, so a run on a sample is scored on that sample).
    """

    run: str
    ground_truth: str
    task: str
    facts: RunFacts
    detection: DetectionMetrics | None = None
    ocr: OcrMetrics | None = None
    unmapped: Mapping[str, int] = attrs.field(factory=dict)
    gt_images_not_in_run: int = 0
    images_without_ground_truth_boxes: int = 0

    def quality(self, key: str) -> float | None:
        """A metric by its JSON key (``map50``, ``f1``, ``cer``, ``cost_per_image``, ...)."""
        value = self.to_dict().get(key)
        return value if isinstance(value, int | float) else None

    def to_dict(self) -> dict[str, Any]:
        """One flat JSON-ready document (the ``--json`` output)."""
        facts = self.facts
        out: dict[str, Any] = {
            "run": self.run,
            "ground_truth": self.ground_truth,
            "task": self.task,
            "images": facts.images,
        }
        metrics = self.detection
        out.update(
            iou_type=metrics.iou_type if metrics else None,
            map=metrics.map if metrics else None,
            map50=metrics.map50 if metrics else None,
            map75=metrics.map75 if metrics else None,
            precision=metrics.precision if metrics else None,
            recall=metrics.recall if metrics else None,
            f1=metrics.f1 if metrics else None,
            true_positives=metrics.true_positives if metrics else None,
            false_positives=metrics.false_positives if metrics else None,
            false_negatives=metrics.false_negatives if metrics else None,
            per_class=(
                {name: {"ap": c.ap, "ap50": c.ap50} for name, c in metrics.per_class.items()}
                if metrics
                else {}
            ),
        )
        if self.ocr is not None:
            out.update(cer=self.ocr.cer, wer=self.ocr.wer)
        out.update(
            unmapped_labels=dict(self.unmapped),
            gt_images_not_in_run=self.gt_images_not_in_run,
            images_without_ground_truth_boxes=self.images_without_ground_truth_boxes,
            done=facts.done,
            failed=facts.failed,
            failures=dict(facts.failures),
            parse_failures=facts.parse_failures,
            repairs=facts.repairs,
            truncations=facts.truncations,
            prompt_tokens=facts.prompt_tokens,
            output_tokens=facts.output_tokens,
            thinking_tokens=facts.thinking_tokens,
            tokens=facts.tokens,
            cost_usd=facts.cost_usd,
            cost_per_image=facts.cost_per_image,
            latency_p50_s=facts.latency_p50_s,
            latency_p95_s=facts.latency_p95_s,
            cached=facts.cached,
            backends=list(facts.backends),
            models=list(facts.models),
        )
        return out


def _ledger_path(run: Path) -> Path:
    path = run / LEDGER_NAME if run.is_dir() else run
    if not path.is_file():
        raise ConfigError(
            f"{run}: no run ledger ({LEDGER_NAME}) here; pass the --out folder of a "
            "`vlmkit label` run (or its results.jsonl)"
        )
    return path


def _task(state: LedgerState) -> str:
    tasks = {
        r.result.provenance.task
        for r in state
        if r.result is not None and r.result.provenance is not None
    }
    if len(tasks) > 1:
        raise ConfigError(f"the run mixes tasks {sorted(tasks)}; evaluate one task at a time")
    return tasks.pop() if tasks else "detect"


def _rle(mask: Any, size: tuple[int, int]) -> dict[str, Any]:
    import numpy as np
    from pycocotools import mask as mask_utils

    full = mask.to_full(size) if mask is not None else np.zeros((size[1], size[0]), bool)
    rle = mask_utils.encode(np.asfortranarray(full, dtype=np.uint8))
    rle["counts"] = rle["counts"].decode("ascii")
    return dict(rle)


def predictions_from_ledger(
    records: Iterable[tuple[LedgerRecord, GtImage]],
    classes: ClassMatcher,
    *,
    iou_type: IouType = "bbox",
) -> list[dict[str, Any]]:
    """COCO results (``image_id``, ``category_id``, ``bbox`` xywh or ``segmentation`` RLE,
    ``score``) from the ``done`` records of a run; a missing score counts as 1.0. A
    prediction without a mask in a mask evaluation gets an empty mask (it scores as a miss)."""
    from vlmkit.types import Detections

    out: list[dict[str, Any]] = []
    for record, image in records:
        result = record.result
        if record.status != "done" or not isinstance(result, Detections):
            continue
        for detection in result.items:
            cat_id = classes(detection.label)
            if cat_id is None:
                continue
            x0, y0, x1, y1 = detection.box.xyxy
            prediction: dict[str, Any] = {
                "image_id": image.id,
                "category_id": cat_id,
                "score": 1.0 if detection.score is None else float(detection.score),
            }
            if iou_type == "segm":
                prediction["segmentation"] = _rle(detection.mask, (image.width, image.height))
            else:
                prediction["bbox"] = [x0, y0, x1 - x0, y1 - y0]
            out.append(prediction)
    return out


def evaluate(
    run: str | os.PathLike[str],
    gt: str | os.PathLike[str],
    *,
    mapping: Mapping[str, str] | Iterable[str] | None = None,
    iou_type: IouType | None = None,
) -> Evaluation:
    """Score a run (its folder or ``results.jsonl``) against ground truth; no model is called.

    ``gt`` is a COCO JSON file, a YOLO ``data.yaml`` (or its folder), or for OCR runs a JSON
    object mapping image names to text. ``mapping`` maps predicted names to ground-truth class
    names (``{"automobile": "car"}`` or ``["automobile=car"]``); other names match
    case-insensitively. ``iou_type`` is ``"segm"`` for mask mAP (the default for segment runs)
    or ``"bbox"``.
    """
    run_path = Path(run)
    from vlmkit.ledger import read_ledger

    state = read_ledger(_ledger_path(run_path))
    if not len(state):
        raise ConfigError(
            f"{run_path}: the run ledger holds no finished image yet; nothing to score"
        )
    task = _task(state)
    facts = run_facts(state)
    if isinstance(mapping, str):
        mapping = [mapping]
    if mapping is not None and not isinstance(mapping, Mapping):
        mapping = parse_mapping(mapping)
    if task == "ocr" or is_text_ground_truth(gt):
        if task != "ocr":
            raise ConfigError(
                f"{gt} is text ground truth, but the run's task is {task!r}; text ground truth "
                "scores OCR runs"
            )
        return _evaluate_ocr(run_path, Path(gt), state, facts)
    if task not in ("detect", "segment"):
        raise ConfigError(
            f"the run's task is {task!r}; vlmkit eval scores detect and segment runs (COCO or "
            "YOLO ground truth) and ocr runs (text ground truth)"
        )
    truth = load_ground_truth(gt)
    chosen: IouType = iou_type or ("segm" if task == "segment" else "bbox")
    if chosen == "segm" and not truth.has_masks:
        raise ConfigError(
            f"{gt} has no segmentation; mask mAP needs ground-truth masks (or use --iou-type bbox)"
        )
    if chosen == "segm" and task != "segment":
        raise ConfigError(
            f"the run's task is {task!r}: its predictions have no masks to score; use "
            "--iou-type bbox, or label with --task segment"
        )
    return _evaluate_detections(run_path, truth, state, facts, task, chosen, mapping)


def _evaluate_detections(
    run: Path,
    truth: GroundTruth,
    state: LedgerState,
    facts: RunFacts,
    task: str,
    iou_type: IouType,
    mapping: Mapping[str, str] | None,
) -> Evaluation:
    matched = match_images(state.records, truth.images)
    _check_sizes(state, matched)
    classes = ClassMatcher(truth.categories, mapping)
    pairs = [(state.records[key], image) for key, image in matched.items()]
    predictions = predictions_from_ledger(pairs, classes, iou_type=iou_type)
    image_ids = sorted({image.id for image in matched.values()})
    metrics = coco_metrics(truth.dataset, predictions, image_ids, iou_type=iou_type)
    counts = truth.annotations_per_image()
    return Evaluation(
        run=str(run),
        ground_truth=truth.source,
        task=task,
        facts=facts,
        detection=metrics,
        unmapped=dict(classes.unmapped.most_common()),
        gt_images_not_in_run=len(truth.images) - len(image_ids),
        images_without_ground_truth_boxes=sum(1 for i in image_ids if not counts.get(i)),
    )


def _check_sizes(state: LedgerState, matched: Mapping[str, GtImage]) -> None:
    """Predictions are in the pixels of the image the run read; ground truth of another
    resolution (a resized copy, orientation not applied) would score every box as a miss."""
    wrong = []
    for key, image in matched.items():
        size = state.records[key].image_size
        if size is not None and tuple(size) != (image.width, image.height):
            wrong.append(
                f"{key!r} ({size[0]}x{size[1]} in the run, "
                f"{image.width}x{image.height} in the ground truth)"
            )
    if wrong:
        shown = "; ".join(wrong[:5]) + (f"; and {len(wrong) - 5} more" if len(wrong) > 5 else "")
        raise ConfigError(
            f"{len(wrong)} image(s) differ in size between the run and the ground truth: {shown}. "
            "Boxes are in the pixels of the image the run read (EXIF orientation applied); "
            "evaluate against ground truth of the same images at the same resolution"
        )


def _evaluate_ocr(run: Path, gt: Path, state: LedgerState, facts: RunFacts) -> Evaluation:
    from vlmkit.types import OcrResult

    texts = load_text_ground_truth(gt)
    names = list(texts)
    images = [GtImage(id=i, file_name=n, width=0, height=0) for i, n in enumerate(names)]
    matched = match_images(state.records, images)
    references, hypotheses = [], []
    for key, image in matched.items():
        result = state.records[key].result
        done = state.records[key].status == "done" and isinstance(result, OcrResult)
        references.append(texts[image.file_name])
        hypotheses.append(result.text if done and isinstance(result, OcrResult) else "")
    return Evaluation(
        run=str(run),
        ground_truth=str(gt),
        task="ocr",
        facts=facts,
        ocr=ocr_metrics(references, hypotheses),
        gt_images_not_in_run=len(names) - len(matched),
    )
