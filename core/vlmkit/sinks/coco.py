"""The ``coco`` sink: one COCO detection / instance-segmentation JSON for a whole run.

Layout: ``images`` (ids from 1 in key order, ``file_name`` = the item key, original
``width``/``height``), ``categories`` (ids from 1: ``categories=[...]`` fixes names and ids up
front — ``vlmkit label -l`` passes its labels, all of them, also those with no instance — and
other labels follow in order of first appearance, images in key order), and ``annotations``
(ids from 1, ``bbox`` as ``[x, y, w, h]``, ``area``, ``iscrowd`` 0, ``score``: the model's
confidence when it gave one, else 1.0 — so ``annotations`` also loads with ``COCO.loadRes`` as
a results list and evaluates with ``COCOeval``). Every id depends only on the answers, never on
the order in which they arrived.

Masks (``mask_format``):

* ``"rle"`` (default) — COCO *uncompressed* RLE ``{"size": [h, w], "counts": [...]}`` with
  ``iscrowd`` 0. Exact: holes and several parts survive pixel for pixel, and the instance is
  still evaluated as a normal object (supervision writes such masks as crowd regions, which
  COCO evaluation ignores).
* ``"polygon"`` — the outer contours, traced along pixel edges so ``pycocotools`` rasterizes
  them back onto the same pixels. COCO polygons cannot express holes: a hole is filled, and the
  sink logs one warning per run the first time it drops one (``holes_dropped`` counts them).
  A mask with no traceable contour (single pixels, 1-pixel lines) is written as RLE instead.

Annotations without a mask carry no ``segmentation`` key. ``points`` results
(:class:`~vlmkit.Points`) are written as COCO keypoints: each point is an annotation of its
label's category with ``keypoints: [x, y, 2]`` (2: labelled and visible), ``num_keypoints`` 1,
and a zero-size ``bbox``/``area`` at the point; such categories declare ``keypoints:
["point"]`` and an empty ``skeleton``. Other results are skipped. Labels never become file
names. The file is UTF-8: a character UTF-8 cannot encode (a lone surrogate in a model's label)
is written as U+FFFD — in the category name too, so such labels share one category (the ledger
keeps the exact text).

What each image needs is held until :meth:`CocoSink.close` (its size and annotations, as
tuples); the file is then streamed an image and an annotation at a time — staged by
``prepare`` and moved into place by ``commit`` (:class:`~vlmkit.StagedSink`), so a failure
leaves the previous file as it was.
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vlmkit.atomic import relative_parts
from vlmkit.masks import mask_to_polygons, rle_counts
from vlmkit.sink import (
    SinkItem,
    StagedSink,
    as_choice,
    as_names,
    reject_unknown,
    safe_join,
    utf8_safe,
)
from vlmkit.types import Detections, LabelMap, Mask, Points

__all__ = ["CocoSink"]

logger = logging.getLogger(__name__)

MASK_FORMATS = ("rle", "polygon")
#: Items per ``json.dumps`` call in a compact file. One call per image or annotation cost more
#: than the encoding (27 µs per image at the close; 14-16 µs in batches), and a batch is a few
#: dozen KB, so the file stays streamed (issue 16).
_BATCH = 64


def _signed_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _outset(points: np.ndarray, amount: float = 0.5) -> np.ndarray:
    """Move a contour through boundary-pixel centres outwards by ``amount`` (mitred corners),
    so it runs along the pixel edges that COCO's rasterizer fills exactly."""
    p = points.astype(np.float64)
    incoming = p - np.roll(p, 1, axis=0)
    outgoing = np.roll(p, -1, axis=0) - p
    d1 = incoming / np.maximum(np.hypot(*incoming.T), 1e-12)[:, None]
    d2 = outgoing / np.maximum(np.hypot(*outgoing.T), 1e-12)[:, None]
    sign = 1.0 if _signed_area(p) > 0 else -1.0
    n1 = sign * np.stack([d1[:, 1], -d1[:, 0]], axis=1)
    n2 = sign * np.stack([d2[:, 1], -d2[:, 0]], axis=1)
    summed = n1 + n2
    denom = np.maximum(1.0 + np.sum(n1 * n2, axis=1), 0.5)
    miter = summed / denom[:, None]
    # A contour that turns back on itself (the tip of a 1-pixel spike) has no miter: push the
    # tip forward instead.
    reverse = np.hypot(*summed.T) < 1e-9
    miter[reverse] = d1[reverse]
    return p + amount * miter


def _visible_area(mask: Mask, image_size: tuple[int, int]) -> int:
    width, height = image_size
    x0, y0, x1, y1 = mask.region
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if cx1 <= cx0 or cy1 <= cy0:
        return 0
    return int(np.count_nonzero(mask.binary[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]))


def _document_form(segmentation: Any, width: int, height: int) -> Any:
    """A held segmentation as the COCO document writes it: RLE runs are held as one array
    (4 bytes a run, where the document's list of ints takes 36; issue 16), polygons as a
    tuple of arrays."""
    if isinstance(segmentation, np.ndarray):
        return {"size": [height, width], "counts": segmentation.tolist()}
    return [part.tolist() for part in segmentation]


def _keypoint(point: Any) -> dict[str, Any]:
    """A point as a one-keypoint COCO annotation (visibility 2: labelled and visible)."""
    return {
        "category_id": utf8_safe(point.label),  # the label, until to_dict numbers them
        "keypoints": [point.x, point.y, 2],
        "num_keypoints": 1,
        "bbox": [point.x, point.y, 0.0, 0.0],
        "area": 0.0,
        "iscrowd": 0,
        "score": point.score if point.score is not None else 1.0,
    }


_INFO = {"description": "written by vlmkit"}


def _categories(label_map: LabelMap, pointed: set[str]) -> list[dict[str, Any]]:
    return [
        {"id": i, "name": name, "supercategory": "object"}
        | ({"keypoints": ["point"], "skeleton": []} if name in pointed else {})
        for i, name in enumerate(label_map.names, start=1)
    ]


class CocoSink(StagedSink):
    """Collects detections of a run and writes one COCO JSON at :meth:`close`.

    Options: ``filename`` (default ``annotations.json``, relative to the output folder),
    ``categories`` (class names whose ids are fixed up front, ids 1, 2, ...), ``mask_format``
    (``"rle"`` or ``"polygon"``), ``indent`` (JSON indentation, default compact).
    """

    accepts = frozenset({"detect", "segment", "points"})

    def __init__(
        self,
        out_dir: str | Path,
        *,
        filename: str = "annotations.json",
        categories: Any = None,
        mask_format: str = "rle",
        indent: int | None = None,
        **options: Any,
    ) -> None:
        reject_unknown("coco", options, ("filename", "categories", "mask_format", "indent"))
        names = as_names("categories", categories)
        mask_format = as_choice("mask_format", mask_format, MASK_FORMATS)
        super().__init__(
            out_dir,
            filename=filename,
            categories=names,
            mask_format=mask_format,
            indent=indent,
        )
        self.path = safe_join(self.out_dir, filename)
        self.mask_format = mask_format
        self.indent = None if indent in (None, "", "none") else int(indent)
        self.label_map = LabelMap([utf8_safe(name) for name in names or ()])
        self.holes_dropped = 0
        # key -> (width, height, annotations): what the document needs of an image, held until
        # close as tuples (_box) rather than the document's dicts and lists (issue 16)
        self._images: dict[str, tuple[int, int, tuple[Any, ...]]] = {}
        self._lock = threading.Lock()  # runners may write from several threads

    # ------------------------------------------------------------------------------------
    def write(self, item: SinkItem) -> None:
        result = item.result
        if not isinstance(result, Detections | Points):
            logger.debug("coco sink: skipping %s (%s)", item.key, type(result).__name__)
            return
        # file_name is data, but COCO readers (supervision's included) refuse names that climb
        # out of the image folder: refuse such a key here, by the same rules as output paths
        # (as text: nothing is written under the key, so no file system access per item).
        relative_parts(item.key)
        size = result.image_size
        with self._lock:
            annotations: tuple[Any, ...]
            if isinstance(result, Points):
                annotations = tuple(_keypoint(point) for point in result.items)
            else:
                annotations = tuple(self._annotation(det, size) for det in result.items)
            # A key written twice (a retried item) keeps its image id position, newest content.
            self._images[item.key] = (size[0], size[1], annotations)

    def _annotation(self, det: Any, size: tuple[int, int]) -> tuple[Any, ...]:
        """An object as ``(label, x, y, w, h, area, score, segmentation or None)``."""
        x, y, w, h = det.box.xywh
        if det.mask is not None:
            area = float(_visible_area(det.mask, size))
            segmentation = self._segmentation(det.mask, size)
        else:
            area, segmentation = float(w * h), None
        # COCO results (COCO.loadRes, COCOeval) need a score: the model's confidence, else 1.0
        score = det.score if det.score is not None else 1.0
        return (utf8_safe(det.label), x, y, w, h, area, score, segmentation)

    def _segmentation(self, mask: Mask, size: tuple[int, int]) -> Any:
        if self.mask_format == "polygon":
            contours = mask_to_polygons(mask, image_size=size)
            outer = [c for c in contours if _signed_area(c) < 0]
            holes = len(contours) - len(outer)
            if holes:
                if not self.holes_dropped:
                    logger.warning(
                        "coco sink: COCO polygons cannot represent holes; a mask hole was "
                        "filled (use mask_format='rle' to keep holes exactly)"
                    )
                self.holes_dropped += holes
            if outer:
                return tuple(np.round(_outset(c), 3).ravel() for c in outer)
            # nothing traceable (single pixels, 1-pixel lines, empty): RLE is exact
        counts = rle_counts(mask, size)
        return counts.astype(np.int32) if size[0] * size[1] < 2**31 else counts

    # ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The COCO document as it would be written now."""
        keys, label_map, pointed = self._layout()
        return {
            "info": dict(_INFO),
            "licenses": [],
            "images": list(self._image_dicts(keys)),
            "annotations": list(self._annotation_dicts(keys, label_map)),
            "categories": _categories(label_map, pointed),
        }

    def _layout(self) -> tuple[list[str], LabelMap, set[str]]:
        """Deterministic ids, whatever order the answers came in: images in key order;
        categories as fixed by ``categories``, then in first appearance in key order."""
        keys = sorted(self._images)
        label_map = LabelMap(self.label_map.names)
        pointed: set[str] = set()  # categories with keypoint annotations
        for key in keys:
            for entry in self._images[key][2]:
                if isinstance(entry, dict):  # a keypoint (see _keypoint)
                    pointed.add(entry["category_id"])
                    label_map.id(entry["category_id"])
                else:
                    label_map.id(entry[0])
        return keys, label_map, pointed

    def _image_dicts(self, keys: list[str]) -> Iterator[dict[str, Any]]:
        for image_id, key in enumerate(keys, start=1):
            width, height, _ = self._images[key]
            yield {"id": image_id, "file_name": key, "width": width, "height": height}

    def _annotation_dicts(self, keys: list[str], label_map: LabelMap) -> Iterator[dict[str, Any]]:
        count = 0
        for image_id, key in enumerate(keys, start=1):
            width, height, entries = self._images[key]
            for entry in entries:
                count += 1
                ann: dict[str, Any] = {"id": count, "image_id": image_id}
                if isinstance(entry, dict):  # a keypoint (see _keypoint)
                    ann |= entry
                    ann["category_id"] = label_map.id(entry["category_id"]) + 1
                else:
                    label, x, y, w, h, area, score, segmentation = entry
                    ann["category_id"] = label_map.id(label) + 1
                    ann |= {"bbox": [x, y, w, h], "iscrowd": 0, "area": area}
                    if segmentation is not None:
                        ann["segmentation"] = _document_form(segmentation, width, height)
                    ann["score"] = score
                yield ann

    def _chunks(self) -> Iterator[str]:
        """The document's JSON, exactly as ``json.dumps(self.to_dict(), ...)`` writes it, an
        image or annotation at a time: the file is streamed, not built in memory (a million
        images made a dict of the whole document and a string of its whole text, 2.8 KB per
        image at the peak; issue 16)."""
        keys, label_map, pointed = self._layout()
        lists = {
            "images": self._image_dicts(keys),
            "annotations": self._annotation_dicts(keys, label_map),
        }
        # The document around its two long lists, each list two placeholder items: what comes
        # before, between and after them is the JSON around and between the items.
        token = secrets.token_hex(16)
        marks = {name: (f"{token}-{name}-1", f"{token}-{name}-2") for name in lists}
        skeleton = {
            "info": dict(_INFO),
            "licenses": [],
            **{name: list(pair) for name, pair in marks.items()},
            "categories": _categories(label_map, pointed),
        }
        text = self._dumps(skeleton)
        for name, items in lists.items():
            first, second = (self._dumps(mark) for mark in marks[name])
            before, rest = text.split(first, 1)
            between, text = rest.split(second, 1)
            item = next(items, None)
            if item is None:  # an empty list is "[]" in any indentation
                yield before.rstrip()
                text = text.lstrip()
                continue
            yield before
            if self.indent is None:  # compact: a batch of items per dumps call (_BATCH)
                yield self._dumps(item)
                while batch := list(itertools.islice(items, _BATCH)):
                    yield between
                    yield self._dumps(batch)[1:-1]  # "[a, b]" -> "a, b", as between joins
                continue
            # the items' own lines are indented as deep as the first item's first line
            pad = "\n" + before[before.rfind("\n") + 1 :] if "\n" in before else ""
            yield self._dumps(item).replace("\n", pad) if pad else self._dumps(item)
            for item in items:
                yield between
                yield self._dumps(item).replace("\n", pad) if pad else self._dumps(item)
        yield text
        yield "\n"

    def _dumps(self, value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, indent=self.indent)

    def _prepare(self) -> None:
        with self._lock, self.staging.open(self.path, "wb") as handle:
            for chunk in self._chunks():
                handle.write(utf8_safe(chunk).encode("utf-8"))
