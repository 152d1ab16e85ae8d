"""Per-frame COCO for a tracked video, in the COCO "video" layout (CocoVID, TAO, YouTube-VIS).

One document per video: ``videos`` (one entry: id 1, ``name``, ``width``, ``height``, ``fps``),
``images`` (one per sampled frame, ids from 1 in frame order, each with ``video_id``,
``frame_id`` — the frame's index in the source video, from 0 — and ``timestamp_s``; its
``file_name`` is ``VIDEO_NAME/frame_NNNNNN``, a name for the frame, not an extracted file),
``annotations`` (ids from 1, ``bbox`` ``[x, y, w, h]`` in video pixels, ``area``, ``iscrowd`` 0,
``score`` — the model's, else 1.0 — ``video_id``, and the detection's track id as ``track_id``
(TAO) and ``instance_id`` (CocoVID); masks as COCO uncompressed RLE ``segmentation``), a
``tracks`` list (TAO: id, category, video) and ``categories`` (ids from 1: the given names
first, then labels in order of first appearance). Detections without a track id are kept,
without ``track_id``/``instance_id``. ``pycocotools.coco.COCO`` loads the document as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from vlmkit.masks import mask_to_rle
from vlmkit.types import FrameDetections, LabelMap

__all__ = ["video_coco"]


def video_coco(
    frames: Iterable[FrameDetections],
    *,
    video_name: str,
    size: tuple[int, int],
    fps: float,
    categories: Sequence[str] = (),
) -> dict[str, Any]:
    """The COCO video document of ``frames`` (see the module) for the video ``video_name`` of
    ``size`` ``(width, height)`` pixels at ``fps`` frames per second."""
    width, height = size
    labels = LabelMap(categories)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    tracks: dict[int, dict[str, Any]] = {}
    for image_id, frame in enumerate(frames, start=1):
        index = frame.index if frame.index is not None else round(frame.timestamp_s * fps)
        images.append(
            {
                "id": image_id,
                "video_id": 1,
                "frame_id": index,
                "timestamp_s": frame.timestamp_s,
                "file_name": f"{video_name}/frame_{index:06d}",
                "width": width,
                "height": height,
            }
        )
        for detection in frame.detections:
            category_id = labels.id(detection.label) + 1
            x, y, w, h = detection.box.xywh
            annotation: dict[str, Any] = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "video_id": 1,
                "category_id": category_id,
                "bbox": [x, y, w, h],
                "area": float(w * h),
                "iscrowd": 0,
                "score": 1.0 if detection.score is None else detection.score,
            }
            if detection.mask is not None:
                rle = mask_to_rle(detection.mask, size)
                annotation["segmentation"] = rle
                annotation["area"] = float(sum(rle["counts"][1::2]))
            if detection.tracker_id is not None:
                annotation["track_id"] = annotation["instance_id"] = detection.tracker_id
                tracks.setdefault(
                    detection.tracker_id,
                    {"id": detection.tracker_id, "category_id": category_id, "video_id": 1},
                )
            annotations.append(annotation)
    return {
        "info": {"description": "written by vlmkit (tracked video)"},
        "licenses": [],
        "videos": [
            {"id": 1, "name": video_name, "width": width, "height": height, "fps": float(fps)}
        ],
        "images": images,
        "annotations": annotations,
        "tracks": [tracks[key] for key in sorted(tracks)],
        "categories": [
            {"id": i, "name": name, "supercategory": "object"}
            for i, name in enumerate(labels.names, start=1)
        ],
    }
