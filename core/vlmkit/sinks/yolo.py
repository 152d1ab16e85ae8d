"""The ``yolo`` sink: YOLO / Ultralytics labels, one ``.txt`` per image, plus ``data.yaml``.

Layout in the output folder (default, ``copy_images="link"``)::

    images/<key>                      the input images: hard links, or copies where a hard
                                      link is impossible (another file system)
    labels/<key without suffix>.txt   one line per object; subfolders of the key are mirrored
    data.yaml                         train/val: images, nc, names (dict id -> name)

This layout trains as it is — ``yolo train data=OUT/data.yaml`` (Ultralytics finds each label
by replacing ``/images/`` with ``/labels/`` in the image path, in subfolders too) — and reads
with supervision's ``DetectionDataset.from_yolo(OUT/images, OUT/labels, OUT/data.yaml)`` (one
folder level per call: pass ``OUT/images/sub`` and ``OUT/labels/sub`` for a subfolder).
``data.yaml`` names no absolute path: the folder can be moved or zipped as a whole. ``train``
and ``val`` are the same images; split them before measuring anything.

``copy_images``:

* ``"link"`` (default) — hard links cost no disk space. They share the file with the input: an
  editor that rewrites an image *in place* changes both (most tools write a new file). Where
  linking fails the image is copied, and the sink logs one warning with the count.
* ``true`` / ``"copy"`` — always copy (independent files; costs the disk space).
* ``false`` — labels only: ``data.yaml`` gets ``path: <the input folder>`` and ``train: .``
  when all images share one folder. supervision reads that (``from_yolo(<input folder>,
  OUT/labels, OUT/data.yaml)``) but **Ultralytics cannot train on it** — it looks for labels
  next to the images, not in ``OUT/labels`` — and the sink logs a warning saying so. To train,
  use the default or ``copy_images=true`` (CLI: ``--sink-option yolo.copy_images=true``).

An image whose file cannot be found (moved since the run: pass ``vlmkit export --image-root``)
still gets its label file; the sink logs one warning with the count of missing images.

Lines are ``class cx cy w h`` (normalized, 6 decimals) for boxes, and ``class x1 y1 x2 y2 ...``
(normalized) for masks. Class ids are 0-based and deterministic: ``categories=[...]`` fixes
names and ids up front (``vlmkit label -l`` passes its labels, all of them, so ``-l unicorn``
stays in ``names`` with no instance), other labels follow in order of first appearance, images
in key order — never in the order answers arrived. Label files are staged as items arrive,
with the ids known then, and the few whose ids change once every id is known are staged again
when the sink is prepared (at the end of a run). An image with no objects gets an
empty label file (a background image). Class names are written as UTF-8; a character UTF-8
cannot encode (a lone surrogate in a model's label) becomes U+FFFD, and such labels share one
class.

**One mask stays one instance.** A YOLO polygon line has one ring, so:

* holes are bridged into their outer contour with a zero-width seam over foreground pixels
  (supervision's ``bridge_holes``), and
* the parts of a multi-part mask are joined into one ring by zero-width seams between their
  nearest vertices, the same way Ultralytics' COCO converter merges multi-part polygons.

A seam adds no area, but a rasterizer that fills polygon edges (``cv2.fillPoly``) paints the
1-pixel line a seam runs along; the other pixels come back exactly. supervision instead writes
one line per part, which turns one object into several.

Label files are named after the item key (the user's file name), never after a label; two keys
that map to the same label file (``x.jpg`` and ``x.png``) are refused with a
:class:`~vlmkit.SinkError`, because YOLO identifies labels by file stem. A key with a folder
named ``images`` confuses Ultralytics' ``/images/`` → ``/labels/`` rule; the sink warns once.

Files are staged as items arrive and appear together at :meth:`YoloSink.close` (labels and
images first, ``data.yaml`` last; :class:`~vlmkit.StagedSink`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from vlmkit.atomic import relative_parts
from vlmkit.errors import ConfigError, SinkError
from vlmkit.masks import mask_to_polygons
from vlmkit.sink import (
    SinkItem,
    StagedSink,
    as_bool,
    as_names,
    reject_unknown,
    safe_join,
    utf8_safe,
)
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


def _import_polygons() -> Any:
    from supervision.dataset.utils import approximate_mask_with_polygons

    return approximate_mask_with_polygons


def _component_rings(crop: np.ndarray) -> list[np.ndarray]:
    """One ring per connected part, holes bridged in over foreground (supervision)."""
    approximate_mask_with_polygons = _import_polygons()
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


def _label_parts(parts: list[str]) -> list[str]:
    """The label file of an image key's parts: its stem and ``.txt``, in the key's folders."""
    name = parts[-1]
    dot = name.rfind(".")
    stem = name[:dot] if 0 < dot < len(name) - 1 else name  # PurePath.suffix's rule
    return [*parts[:-1], stem + ".txt"]


def _fmt(values: Iterable[float] | np.ndarray) -> str:
    """``values`` with 6 decimals, space-separated. One ``%`` over plain floats: a mask's ring
    of 1,400 numbers takes 0.19 ms, an f-string per NumPy scalar took 0.47 (issue 16)."""
    numbers = values.tolist() if isinstance(values, np.ndarray) else list(values)
    return ("%.6f " * len(numbers) % tuple(numbers))[:-1]


def _import_yaml() -> None:
    """Import PyYAML, which writes ``data.yaml``: when the sink is made, so a run without it
    stops before its first request, and the commit after a run's last answer does not pay the
    one-time import (14-26 ms; issue 16)."""
    try:
        import yaml  # noqa: F401
    except ImportError as err:
        raise ConfigError(
            f"the yolo sink writes data.yaml with PyYAML, which cannot be imported ({err}): "
            "pip install pyyaml"
        ) from None


class YoloSink(StagedSink):
    """Writes YOLO label files (and the images, by default as hard links) and ``data.yaml``.

    Options: ``categories`` (class names with fixed ids 0, 1, ...), ``copy_images``
    (``"link"`` — the default —, ``True``/``"copy"``, or ``False`` for labels only), ``names``
    (``"dict"`` — Ultralytics' ``{0: name}`` form, the default — or ``"list"``).
    """

    accepts = frozenset({"detect", "segment"})

    def __init__(
        self,
        out_dir: str | Path,
        *,
        categories: Any = None,
        copy_images: Any = "link",
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
        _import_yaml()  # data.yaml is written at the commit: fail now, not after the last answer
        super().__init__(out_dir, categories=class_names, copy_images=copy_images, names=names)
        self.copy_mode = mode
        self.names_format = names
        self.label_map = LabelMap([utf8_safe(name) for name in class_names or ()])
        self._early = LabelMap(self.label_map.names)  # ids in arrival order (see write)
        self.labels_dir = self.out_dir / "labels"
        self.images_dir = self.out_dir / "images"
        self.data_yaml = self.out_dir / "data.yaml"
        self.images_copied = 0  # "link" mode: images that had to be copied
        self.images_missing = 0  # images that could not be placed (no file)
        # label file -> key that wrote it; the label file's text is the staging's own string
        self._owners: dict[str, str] = {}
        self._roots: set[str] = set()
        self._missing_root = False
        self._warned_images_folder = False
        # key -> the class ids (arrival order, self._early) of its objects: all that is held per
        # image until prepare, with the label file it claimed (_owners); equal tuples shared
        self._ids: dict[str, tuple[int, ...]] = {}
        self._shared: dict[tuple[int, ...], tuple[int, ...]] = {}
        self._lock = threading.Lock()  # runners may write from several threads
        self._folders: dict[tuple[Path, str], str] = {}  # checked folders (see _join)

    # ------------------------------------------------------------------------------------
    def warm_up(self, task: str) -> None:
        """A segmentation run's masks become polygons through supervision: imported now, not
        by the first mask, while every request in flight waits (0.4 s alone, seconds then)."""
        if task == "segment":
            # without it, write() bridges the holes itself (see mask_to_yolo_polygon)
            with contextlib.suppress(ImportError):
                _import_polygons()

    def write(self, item: SinkItem) -> None:
        result = item.result
        if not isinstance(result, Detections):
            logger.debug("yolo sink: skipping %s (%s)", item.key, type(result).__name__)
            return
        parts = relative_parts(item.key)  # the key's rules, as text; links checked below
        label_parts = _label_parts(parts)
        label_target = self._join(self.labels_dir, label_parts)
        image_target = self._join(self.images_dir, parts) if self.copy_mode else None
        # Everything that can fail on this item's data happens before any shared state changes,
        # so a refused item leaves no trace (no class, no claimed label file).
        lines = [self._line(det, result.image_size) for det in result.items]
        with self._lock:
            owner = self._owners.setdefault(label_target, item.key)
            if owner != item.key:
                raise SinkError(
                    f"yolo sink: inputs {owner!r} and {item.key!r} both map to "
                    f"labels/{'/'.join(label_parts)}; YOLO matches labels to images by file "
                    "stem, so rename one of them"
                )
            # Class ids are fixed at prepare, in key order, so they never depend on the order
            # in which answers arrived. The label file is staged now with the ids known so far
            # (in the common case the final ones), and prepare rewrites only the files whose
            # ids changed: no file creation per image after a run's last answer (issue 16).
            ids = tuple(self._early.id(utf8_safe(det.label)) for det in result.items)
            self._ids[item.key] = self._shared.setdefault(ids, ids)
        body = "".join(f"{i} {line}\n" for i, line in zip(ids, lines, strict=True))
        self.staging.write_bytes(label_target, body.encode("utf-8"))
        self._place_image(item, parts, image_target)

    def _join(self, root: Path, parts: list[str]) -> str:
        """``safe_join(root, parts)`` with each folder checked once per sink, not per file:
        one label file and one image per item land in a few folders (issue 16). The file
        itself is looked at (a link leading out is refused) only in a folder that existed
        before: in one the staging made, nothing is there yet."""
        folder = "/".join(parts[:-1])
        base = self._folders.get((root, folder))
        if base is None:
            checked = safe_join(root, folder) if folder else root
            base = self._folders.setdefault((root, folder), os.fspath(checked))
        path = os.path.join(base, parts[-1])
        if self.staging.made(base):
            return path
        try:
            link = stat.S_ISLNK(os.lstat(path).st_mode)
        except OSError:
            return path  # nothing there yet
        return os.fspath(safe_join(root, "/".join(parts))) if link else path

    def _line(self, det: Detection, size: tuple[int, int]) -> str:
        """The coordinates of one object's line (without its class id)."""
        width, height = size
        if det.mask is not None:
            ring = mask_to_yolo_polygon(det.mask, size)
            if ring is not None:
                scale = np.array([width, height], dtype=np.float64)
                return _fmt(np.clip(ring / scale, 0.0, 1.0).ravel())
        # Four numbers: plain floats, not NumPy arrays, whose per-call cost was most of this
        # sink's per-item CPU (issue 16); ``+ 0.0`` writes 0 for -0.0 as np.clip did.
        box = det.box.clip(size)
        cx, cy = box.center
        values = (cx / width, cy / height, box.width / width, box.height / height)
        return _fmt([min(max(value, 0.0), 1.0) + 0.0 for value in values])

    def _place_image(self, item: SinkItem, key_parts: list[str], target: str | None) -> None:
        if item.image_path is None:
            with self._lock:
                self._missing_root = True
                if target is not None:
                    self.images_missing += 1
            return
        if target is None:  # labels only: data.yaml names the input folder (see data)
            self._add_root(item.image_path, key_parts)
            return
        if "images" in key_parts[:-1] and not self._warned_images_folder:
            self._warned_images_folder = True
            logger.warning(
                "yolo sink: %s has a folder named 'images'; Ultralytics finds labels by "
                "replacing the last '/images/' of an image path with '/labels/', so it will "
                "not find this image's labels (rename the folder)",
                item.key,
            )
        source = item.image_path
        try:
            # In a folder the staging made nothing is in place yet: no need to look.
            fresh = self.staging.made(os.path.dirname(target))
            if not fresh and os.path.exists(target) and os.path.samefile(source, target):
                self._note(target)
                return
            linked = self.staging.place(target, source, link=self.copy_mode == "link")
        except OSError:
            if os.access(source, os.R_OK):
                raise  # the output side failed (disk full, permissions): not this item's fault
            with self._lock:  # missing or unreadable: the label is still written
                self.images_missing += 1
            return
        if self.copy_mode == "link" and not linked:
            with self._lock:
                self.images_copied += 1

    def _add_root(self, image_path: Path, key_parts: list[str]) -> None:
        """Record the input folder of an image (its path less the key's parts)."""
        source = Path(image_path)
        if len(source.parts) > len(key_parts) and list(source.parts[-len(key_parts) :]) == (
            key_parts
        ):
            root = Path(*source.parts[: -len(key_parts)])
        elif list(source.parts) == key_parts:
            root = Path(".")
        else:
            root = source.parent
        with self._lock:
            self._roots.add(os.path.abspath(root))

    # ------------------------------------------------------------------------------------
    def _class_map(self) -> LabelMap:
        """Class ids: ``categories`` first (all of them), then other labels in order of first
        appearance, images in key order."""
        label_map = LabelMap(self.label_map.names)
        names = self._early.names
        for key in sorted(self._ids):
            for early_id in self._ids[key]:
                label_map.id(names[early_id])
        return label_map

    def data(self) -> dict[str, Any]:
        """The ``data.yaml`` content as it would be written now."""
        names = self._class_map().names
        data: dict[str, Any] = {}
        if self.copy_mode is not None:
            data.update(train="images", val="images")
        elif len(self._roots) == 1 and not self._missing_root:
            data.update(path=utf8_safe(next(iter(self._roots))), train=".", val=".")
        data["nc"] = len(names)
        data["names"] = dict(enumerate(names)) if self.names_format == "dict" else names
        return data

    def _prepare(self) -> None:
        import yaml

        if self.copy_mode is None:
            where = (
                "data.yaml names no image folder, because the images do not share one"
                if len(self._roots) > 1 or self._missing_root
                else "data.yaml points at the input folder"
            )
            logger.warning(
                "yolo sink: labels only (copy_images=false): %s. supervision reads this "
                "layout, but Ultralytics cannot train on it (it looks for labels next to the "
                "images). To get a trainable images/ + labels/ dataset, use "
                "copy_images=link (the default) or copy_images=true "
                "(CLI: --sink-option yolo.copy_images=true)",
                where,
            )
        if self.images_missing:
            logger.warning(
                "yolo sink: %d image(s) could not be found or read, so images/ lacks them "
                "(their labels are written); if the images moved since the run, pass "
                "vlmkit export --image-root DIR",
                self.images_missing,
            )
        if self.images_copied:
            logger.warning(
                "yolo sink: %d image(s) could not be hard-linked (another file system?) and "
                "were copied into %s",
                self.images_copied,
                self.images_dir,
            )
        with self._lock:
            label_map = self._class_map()
            final = [label_map.id(name) for name in self._early.names]  # early id -> final id
            changed = [
                key
                for key in sorted(self._ids)
                if any(final[early_id] != early_id for early_id in self._ids[key])
            ]
            text = yaml.safe_dump(self.data(), allow_unicode=True, sort_keys=False)
        for key in changed:  # staged by write with other ids: read back, renumbered
            target = self._join(self.labels_dir, _label_parts(relative_parts(key)))
            lines = self.staging.read_bytes(target).decode("utf-8").splitlines(keepends=True)
            pairs = [line.split(" ", 1) for line in lines]
            body = "".join(f"{final[int(early_id)]} {rest}" for early_id, rest in pairs)
            self.staging.write_text(target, body)
        self.staging.write_text(self.data_yaml, text)
