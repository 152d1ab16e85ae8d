"""Labeled photos and fake-Gemini answers derived from their ground truth, degraded by model
with known error rates (for pilot tests)."""

from __future__ import annotations

import io
import json

from PIL import Image

from tests.evaluation.helpers import CATEGORIES

IMAGES = 8


def dataset(root):
    """Eight photos of distinct sizes (the fake tells them apart by size) and COCO truth with
    one to three boxes each."""
    folder = root / "photos"
    folder.mkdir()
    images, annotations, truth = [], [], {}
    for index in range(IMAGES):
        width, height = 160 + 8 * index, 120
        name = f"p{index}.png"
        Image.new("RGB", (width, height), (20 * index, 90, 160)).save(folder / name)
        images.append({"id": index + 1, "file_name": name, "width": width, "height": height})
        boxes = []
        for k in range(1 + index % 3):
            x0, y0 = 10 + 45 * k, 20 + 5 * k
            label = "cat" if (index + k) % 2 else "dog"
            boxes.append((label, [x0, y0, x0 + 40, y0 + 60]))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": {v: k for k, v in CATEGORIES.items()}[label],
                    "bbox": [x0, y0, 40, 60],
                    "area": 2400,
                    "iscrowd": 0,
                }
            )
        truth[(width, height)] = boxes
    categories = [{"id": k, "name": v} for k, v in CATEGORIES.items()]
    gt = root / "gt.json"
    gt.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return folder, gt, truth


def answers(truth):
    """The fake's answer: the image's ground truth in Gemini's box_2d format, degraded per model:
    pro finds everything, flash misses every second box, flash-lite also shifts the rest."""

    def answer(request):
        (_mime, data), *_ = request.inline_data
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
        items = []
        for number, (label, (x0, y0, x1, y1)) in enumerate(truth[(width, height)]):
            if "flash" in request.model and number % 2:
                continue
            if "lite" in request.model and number % 2 == 0 and (width // 8) % 2:
                x0, x1 = x0 + 30, x1 + 30  # IoU 0.14: a miss on half the images
            box = [y0 * 1000 / height, x0 * 1000 / width, y1 * 1000 / height, x1 * 1000 / width]
            items.append({"box_2d": [round(v) for v in box], "label": label})
        return items

    return answer
