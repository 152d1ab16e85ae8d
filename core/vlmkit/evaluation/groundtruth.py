"""Ground truth for evaluation: a COCO JSON file or a YOLO dataset (``data.yaml``), both read
into one in-memory COCO dataset that pycocotools evaluates against.

COCO is read as it is (pycocotools reads the same file). YOLO is read with supervision
(``DetectionDataset.from_yolo``), the reader Ultralytics users rely on, and converted: boxes to
``xywh`` pixels, polygons to masks and then to RLE for mask evaluation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from vlmkit.errors import ConfigError

__all__ = ["GroundTruth", "GtImage", "load_ground_truth"]

_YOLO_SPLITS = ("train", "val", "test")
_ORIENTATION = 0x0112  # EXIF orientation tag
_TRANSPOSED = (5, 6, 7, 8)  # orientations that swap width and height


@attrs.frozen(kw_only=True)
class GtImage:
    """One ground-truth image: its COCO id, its file name (``/`` separators) and size."""

    id: int
    file_name: str
    width: int
    height: int


@attrs.frozen(kw_only=True, eq=False)
class GroundTruth:
    """Ground truth as a COCO dataset dict (``images``, ``annotations``, ``categories``).

    ``format`` is ``"coco"`` or ``"yolo"``; ``has_masks`` says whether any annotation carries a
    segmentation (needed for ``iou_type="segm"``).
    """

    source: str
    format: str
    dataset: Mapping[str, Any]
    images: tuple[GtImage, ...]
    categories: Mapping[int, str]
    has_masks: bool

    def annotations_per_image(self) -> dict[int, int]:
        counts: dict[int, int] = {image.id: 0 for image in self.images}
        for annotation in self.dataset["annotations"]:
            counts[annotation["image_id"]] = counts.get(annotation["image_id"], 0) + 1
        return counts


def load_ground_truth(path: str | os.PathLike[str]) -> GroundTruth:
    """Read a COCO JSON file or a YOLO ``data.yaml`` (or the folder holding it)."""
    source = Path(path)
    if source.is_dir():
        candidates = [source / "data.yaml", source / "data.yml"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise ConfigError(
                f"{source} is a folder without a data.yaml; pass a COCO JSON file or a YOLO "
                "dataset's data.yaml"
            )
        source = found
    if not source.is_file():
        raise ConfigError(f"{source}: no such ground-truth file; pass a COCO JSON or a data.yaml")
    if source.suffix.lower() in (".yaml", ".yml"):
        return _load_yolo(source)
    return _load_coco(source)


# -- COCO -----------------------------------------------------------------------------------
def _load_coco(path: Path) -> GroundTruth:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: cannot read it as COCO JSON ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ConfigError(
            f"{path} is not a COCO dataset (no 'images' list); pass COCO ground truth with "
            "'images', 'annotations' and 'categories'"
        )
    try:
        images = tuple(
            GtImage(
                id=int(image["id"]),
                file_name=str(image["file_name"]).replace("\\", "/"),
                width=int(image["width"]),
                height=int(image["height"]),
            )
            for image in data["images"]
        )
        categories = {int(c["id"]): str(c["name"]) for c in data.get("categories", ())}
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(
            f"{path}: every COCO image needs id, file_name, width and height and every "
            f"category id and name ({type(err).__name__}: {err})"
        ) from err
    annotations = list(data.get("annotations", ()))
    for number, annotation in enumerate(annotations):
        if annotation.get("category_id") not in categories:
            raise ConfigError(
                f"{path}: annotation {annotation.get('id', number)} has category_id "
                f"{annotation.get('category_id')!r}, which is not among the categories"
            )
    dataset = {
        "info": data.get("info", {}),
        "images": list(data["images"]),
        "annotations": annotations,
        "categories": list(data.get("categories", ())),
    }
    return GroundTruth(
        source=str(path),
        format="coco",
        dataset=dataset,
        images=images,
        categories=categories,
        has_masks=any("segmentation" in a and a["segmentation"] for a in annotations),
    )


# -- YOLO -----------------------------------------------------------------------------------
def _split_folders(path: Path, config: Mapping[str, Any]) -> list[Path]:
    base = Path(str(config.get("path") or "."))
    if not base.is_absolute():
        base = path.parent / base
    folders: list[Path] = []
    for split in _YOLO_SPLITS:
        value = config.get(split)
        for entry in value if isinstance(value, list) else [value] if value else []:
            folder = Path(str(entry))
            folder = folder if folder.is_absolute() else base / folder
            if folder.is_dir() and folder.resolve() not in {f.resolve() for f in folders}:
                folders.append(folder)
    if not folders:
        raise ConfigError(
            f"{path}: none of its splits ({', '.join(_YOLO_SPLITS)}) names an existing image "
            "folder; give train/val as folders relative to 'path' (or to the data.yaml)"
        )
    return folders


def _labels_folder(images: Path) -> Path:
    parts = list(images.parts)
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] == "images":
            parts[index] = "labels"
            return Path(*parts)
    return images.parent / "labels"


def _load_yolo(path: Path) -> GroundTruth:
    import numpy as np
    import supervision as sv
    import yaml
    from PIL import Image

    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read it as YAML ({err})") from err
    if not isinstance(config, dict) or "names" not in config:
        raise ConfigError(f"{path} is not a YOLO data.yaml (no 'names')")
    names = config["names"]
    names_list = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    categories = {index + 1: str(name) for index, name in enumerate(names_list)}
    images: list[GtImage] = []
    annotations: list[dict[str, Any]] = []
    has_masks = False
    for folder in _split_folders(path, config):
        labels = _labels_folder(folder)
        dataset = sv.DetectionDataset.from_yolo(
            images_directory_path=str(folder),
            annotations_directory_path=str(labels),
            data_yaml_path=str(path),
        )
        # Ids in file-name order: with score-less predictions (all 1.0) pycocotools ranks tied
        # detections in image-id order, so the order must not depend on the file system.
        entries = sorted(
            (Path(p).resolve().relative_to(folder.resolve()).as_posix(), p, d)
            for p, _image, d in dataset
        )
        for relative, image_path, detections in entries:
            with Image.open(image_path) as image:
                width, height = image.size
                if image.getexif().get(_ORIENTATION) in _TRANSPOSED:
                    width, height = height, width  # as shown (and as vlmkit and OpenCV read it)
            image_id = len(images) + 1
            images.append(GtImage(id=image_id, file_name=relative, width=width, height=height))
            class_ids = detections.class_id
            if class_ids is None:
                class_ids = np.zeros(len(detections), dtype=int)
            for index in range(len(detections)):
                x0, y0, x1, y1 = (float(v) for v in detections.xyxy[index])
                annotation: dict[str, Any] = {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(class_ids[index]) + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
                if detections.mask is not None:
                    from pycocotools import mask as mask_utils

                    rle = mask_utils.encode(np.asfortranarray(detections.mask[index], np.uint8))
                    rle["counts"] = rle["counts"].decode("ascii")
                    annotation["segmentation"] = rle
                    annotation["area"] = float(mask_utils.area(rle))
                    has_masks = True
                annotations.append(annotation)
    dataset_dict = {
        "images": [attrs.asdict(image) for image in images],
        "annotations": annotations,
        "categories": [{"id": k, "name": v} for k, v in categories.items()],
    }
    return GroundTruth(
        source=str(path),
        format="yolo",
        dataset=dataset_dict,
        images=tuple(images),
        categories=categories,
        has_masks=has_masks,
    )
