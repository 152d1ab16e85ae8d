"""The ``yolo`` sink: YOLO / Ultralytics labels, one ``.txt`` per image, plus ``data.yaml``.

Layout in the output folder::

    labels/<key without suffix>.txt   one line per object; subfolders of the key are mirrored
    images/<key>                      only with copy_images (copies or hard links)
    data.yaml                         names (dict id -> name), nc, and where the images are

Lines are ``class cx cy w h`` (normalized, 6 decimals) for boxes, and ``class x1 y1 x2 y2 ...``
(normalized) for masks. Class ids are 0-based and stable for the whole run (first-seen order;
``categories=[...]`` fixes them up front). An image with no objects gets an empty label file
(a background image).

**One mask stays one instance.** A YOLO polygon line has one ring, so:

* holes are bridged into their outer contour with a zero-width seam over foreground pixels
  (supervision's ``bridge_holes``), and
* the parts of a multi-part mask are joined into one ring by zero-width seams between their
  nearest vertices, the same way Ultralytics' COCO converter merges multi-part polygons.

A seam adds no area, but a rasterizer that fills polygon edges (``cv2.fillPoly``) paints the
1-pixel line a seam runs along; the other pixels come back exactly. supervision instead writes
one line per part, which turns one object into several.

Images: with ``copy_images=False`` (default) nothing is copied; ``data.yaml`` ``path`` points
at the original image folder when all images share one root (so ``supervision``'s
``DetectionDataset.from_yolo(images_dir, out/labels, out/data.yaml)`` reads the dataset).
Ultralytics finds labels by replacing ``/images/`` with ``/labels/`` in an image path, so to
train on the output directly use ``copy_images=True`` (copies) or ``copy_images="link"`` (hard
links, falling back to copies across file systems): then ``images/`` and ``labels/`` sit side by
side and ``data.yaml`` uses relative ``train``/``val`` paths.

Label files are named after the item key (the user's file name), never after a label; two keys
that map to the same label file (``x.jpg`` and ``x.png``) are refused with a
:class:`~vlmkit.SinkError`, because YOLO identifies labels by file stem.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from vlmkit.atomic import atomic_open, atomic_write_text, safe_join
from vlmkit.errors import ConfigError, SinkError
from vlmkit.masks import mask_to_polygons
from vlmkit.sink import Sink, SinkItem
from vlmkit.sinks._util import as_bool, as_names, reject_unknown
from vlmkit.types import Detection, Detections, LabelMap, Mask

__all__ = ["YoloSink", "mask_to_yolo_polygon"]

logger = logging.getLogger(__name__)


def _signed_area(points: np.ndarray) -> float:
    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _splice(ring: np.ndarray, at: int, part: np.ndarray, start: int) -> np.ndarray:
    """Walk ``ring`` to vertex ``at``, go round ``part`` from vertex ``start`` and back."""
    rolled = np.roll(part, -start, axis=0)
    return np.concatenate([ring[: at + 1], rolled, rolled[:1], ring[at:]])


def _join_rings(rings: list[np.ndarray]) -> np.ndarray:
    """Join rings into one, largest first, each attached at its nearest vertex pair."""
    from scipy.spatial import cKDTree

    rings = sorted(rings, key=lambda r: -abs(_signed_area(r)))
    joined, rest = rings[0], rings[1:]
    while rest:
        tree = cKDTree(joined)
        best: tuple[float, int, int, int] | None = None
        for index, ring in enumerate(rest):
            distances, nearest = tree.query(ring)
            vertex = int(np.argmin(distances))
            if best is None or distances[vertex] < best[0]:
                best = (float(distances[vertex]), index, int(nearest[vertex]), vertex)
        assert best is not None
        _, index, at, start = best
        joined = _splice(joined, at, rest.pop(index), start)
    return joined


def _component_rings(crop: np.ndarray) -> list[np.ndarray]:
    """One ring per connected part, holes bridged in over foreground (supervision)."""
    from supervision.dataset.utils import approximate_mask_with_polygons

    return [
        np.asarray(p, dtype=np.float64).reshape(-1, 2)
        for p in approximate_mask_with_polygons(mask=crop, bridge_holes=True)
    ]


def mask_to_yolo_polygon(mask: Mask, image_size: tuple[int, int]) -> np.ndarray | None:
    """One ring ``(N, 2)`` in image pixels for a whole mask — holes and parts bridged in —
    or ``None`` when the mask has no traceable contour. Points are boundary-pixel indices,
    which ``cv2.fillPoly`` (supervision's and Ultralytics' rasterizer) fills back exactly."""
    width, height = image_size
    x0, y0, x1, y1 = mask.region
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    crop = mask.binary[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    if not crop.any():
        return None
    padded = np.pad(crop, 1)  # contours never touch the array border
    try:
        rings = _component_rings(padded)
    except (ImportError, ValueError):
        # supervision could not bridge a hole over foreground (or its helper moved): bridge
        # every contour at its nearest vertex instead — same area, seams may cross background.
        rings = mask_to_polygons(Mask(data=padded, x=0, y=0))
    rings = [r for r in rings if len(r) >= 3]
    if not rings:
        return None
    ring = _join_rings(rings) if len(rings) > 1 else rings[0]
    return ring + np.array([cx0 - 1, cy0 - 1], dtype=np.float64)


def _fmt(values: np.ndarray) -> str:
    return " ".join(f"{v:.6f}" for v in values)


class YoloSink(Sink):
    """Writes YOLO label files as items arrive and ``data.yaml`` at :meth:`close`.

    Options: ``categories`` (class names with fixed ids 0, 1, ...), ``copy_images``
    (``False``, ``True``/``"copy"``, or ``"link"``), ``names`` (``"dict"`` — Ultralytics'
    ``{0: name}`` form, the default — or ``"list"``).
    """

    accepts = frozenset({"detect", "segment"})

    def __init__(
        self,
        out_dir: str | Path,
        *,
        categories: Any = None,
        copy_images: Any = False,
        names: str = "dict",
        **options: Any,
    ) -> None:
        reject_unknown("yolo", options, ("categories", "copy_images", "names"))
        class_names = as_names("categories", categories)
        if isinstance(copy_images, str) and copy_images.strip().lower() in ("copy", "link"):
            mode: str | None = copy_images.strip().lower()
        else:
            mode = "copy" if as_bool("copy_images", copy_images) else None
        if names not in ("dict", "list"):
            raise ConfigError(f"option names={names!r} is not allowed; choose 'dict' or 'list'")
        super().__init__(out_dir, categories=class_names, copy_images=copy_images, names=names)
        self.copy_mode = mode
        self.names_format = names
        self.label_map = LabelMap(class_names or ())
        self.labels_dir = self.out_dir / "labels"
        self.images_dir = self.out_dir / "images"
        self.data_yaml = self.out_dir / "data.yaml"
        self._owners: dict[str, str] = {}  # label file (relative) -> key that wrote it
        self._written: dict[str, Path] = {}
        self._roots: set[str] = set()
        self._missing_root = False
        self._lock = threading.Lock()  # runners may write from several threads

    # ------------------------------------------------------------------------------------
    def write(self, item: SinkItem) -> None:
        result = item.result
        if not isinstance(result, Detections):
            logger.debug("yolo sink: skipping %s (%s)", item.key, type(result).__name__)
            return
        key_path = PurePosixPath(item.key.replace("\\", "/"))
        relative = (
            key_path.with_suffix(".txt")
            if key_path.suffix
            else key_path.with_name(key_path.name + ".txt")
        )
        label_path = safe_join(self.labels_dir, relative.as_posix())
        owner_key = label_path.relative_to(self.labels_dir).as_posix()
        with self._lock:
            owner = self._owners.setdefault(owner_key, item.key)
            if owner != item.key:
                raise SinkError(
                    f"yolo sink: inputs {owner!r} and {item.key!r} both map to "
                    f"labels/{owner_key}; YOLO matches labels to images by file stem, so rename "
                    "one of them"
                )
            class_ids = [self.label_map.id(det.label) for det in result.items]
        lines = [
            self._line(det, class_id, result.image_size)
            for det, class_id in zip(result.items, class_ids, strict=True)
        ]
        atomic_write_text(label_path, "".join(line + "\n" for line in lines))
        self._place_image(item)
        with self._lock:
            self._written[f"labels/{owner_key}"] = label_path

    def _line(self, det: Detection, class_id: int, size: tuple[int, int]) -> str:
        width, height = size
        scale = np.array([width, height], dtype=np.float64)
        if det.mask is not None:
            ring = mask_to_yolo_polygon(det.mask, size)
            if ring is not None:
                return f"{class_id} " + _fmt(np.clip(ring / scale, 0.0, 1.0).ravel())
        box = det.box.clip(size)
        cx, cy = box.center
        values = np.array([cx / width, cy / height, box.width / width, box.height / height])
        return f"{class_id} " + _fmt(np.clip(values, 0.0, 1.0))

    def _place_image(self, item: SinkItem) -> None:
        if item.image_path is None:
            self._missing_root = True
            return
        source = Path(item.image_path)
        key_parts = PurePosixPath(item.key.replace("\\", "/")).parts
        if len(source.parts) > len(key_parts) and source.parts[-len(key_parts) :] == key_parts:
            root = Path(*source.parts[: -len(key_parts)])
        elif source.parts == key_parts:
            root = Path(".")
        else:
            root = source.parent
        with self._lock:
            self._roots.add(os.path.abspath(root))
        if self.copy_mode is None:
            return
        target = safe_join(self.images_dir, item.key)
        if target.exists() and os.path.samefile(source, target):
            return
        if self.copy_mode == "link":
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(f".{target.name}.link.tmp")
            try:
                temp.unlink(missing_ok=True)
                os.link(source, temp)
                os.replace(temp, target)
            except OSError:
                temp.unlink(missing_ok=True)  # other file system, no permission: copy
            else:
                with self._lock:
                    self._written[f"images/{item.key}"] = target
                return
        try:
            with atomic_open(target, "wb") as out, open(source, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
        except OSError as err:
            raise SinkError(f"yolo sink: cannot copy {source} to {target}: {err}") from err
        with self._lock:
            self._written[f"images/{item.key}"] = target

    # ------------------------------------------------------------------------------------
    def data(self) -> dict[str, Any]:
        """The ``data.yaml`` content as it would be written now."""
        names = self.label_map.names
        data: dict[str, Any] = {}
        if self.copy_mode is not None:
            data.update(train="images", val="images")
        elif len(self._roots) == 1 and not self._missing_root:
            data.update(path=next(iter(self._roots)), train=".", val=".")
        data["nc"] = len(names)
        data["names"] = dict(enumerate(names)) if self.names_format == "dict" else names
        return data

    def close(self) -> list[Path]:
        import yaml

        if self.copy_mode is None and (len(self._roots) > 1 or self._missing_root):
            logger.warning(
                "yolo sink: the images do not share one folder, so data.yaml names no image "
                "path; use copy_images=true to gather them under images/"
            )
        text = yaml.safe_dump(self.data(), allow_unicode=True, sort_keys=False)
        atomic_write_text(self.data_yaml, text)
        return [*self._written.values(), self.data_yaml]
