"""Ground truth and run ledgers with known perturbations, built in a few lines per test."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vlmkit.ledger import Ledger, LedgerRecord
from vlmkit.types import Box, Detection, Detections, Mask, Provenance, Usage

CATEGORIES = {1: "cat", 2: "dog", 3: "car"}
SIZE = (200, 100)


def coco_ground_truth(
    path: Path, boxes: Mapping[str, Sequence[tuple[str, Sequence[float]]]], **extra: Any
) -> Path:
    """Write COCO ground truth: ``{"val/a.jpg": [("cat", [x0, y0, x1, y1]), ...]}``."""
    ids = {name: cat_id for cat_id, name in CATEGORIES.items()}
    images, annotations = [], []
    for image_id, (name, items) in enumerate(boxes.items(), start=1):
        images.append({"id": image_id, "file_name": name, "width": SIZE[0], "height": SIZE[1]})
        for label, (x0, y0, x1, y1) in items:
            annotation = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": ids[label],
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": (x1 - x0) * (y1 - y0),
                "iscrowd": 0,
            }
            segmentation = extra.get("segmentation")
            if segmentation:
                annotation["segmentation"] = [[x0, y0, x1, y0, x1, y1, x0, y1]]
            annotations.append(annotation)
    categories = [{"id": k, "name": v} for k, v in CATEGORIES.items()]
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return path


def detection(label: str, box: Sequence[float], *, score=None, mask: bool = False) -> Detection:
    x0, y0, x1, y1 = box
    crop = None
    if mask:
        import numpy as np

        crop = Mask(data=np.ones((int(y1 - y0), int(x1 - x0)), bool), x=int(x0), y=int(y0))
    return Detection(box=Box.from_xyxy(box), label=label, score=score, mask=crop)


def write_run(
    folder: Path,
    predictions: Mapping[str, Sequence[Detection] | str],
    *,
    task: str = "detect",
    model: str = "model-a",
    latency: float = 1.0,
    cost: float | None = 0.001,
) -> Path:
    """A run folder whose ledger holds ``{"a.jpg": [Detection, ...] | "ErrorType"}``."""
    folder.mkdir(parents=True, exist_ok=True)
    with Ledger(folder / "results.jsonl", fsync=False) as ledger:
        for number, (key, items) in enumerate(predictions.items()):
            if isinstance(items, str):
                ledger.append(
                    LedgerRecord(key=key, status="failed", error="no JSON", error_type=items)
                )
                continue
            usage = Usage(
                prompt_tokens=100,
                output_tokens=10,
                latency_s=latency * (number + 1),
                cost_usd=cost,
            )
            provenance = Provenance(task=task, backend="scripted", model=model, usage=usage)
            result = Detections(image_size=SIZE, items=tuple(items), provenance=provenance)
            ledger.append(LedgerRecord(key=key, status="done", result=result, image_size=SIZE))
    return folder
