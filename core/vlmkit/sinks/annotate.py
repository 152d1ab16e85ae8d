"""The ``annotate`` sink: preview images with boxes, masks and labels drawn by supervision.

For every item it reads the input image again (EXIF orientation applied, through
:func:`vlmkit.media.load_image`) and writes ``annotated/<key>`` — the same relative path and
suffix as the input (JPEG at quality 90; formats Pillow cannot write, such as HEIC, get ``.jpg``
appended). Previews are staged as items arrive and all appear at :meth:`AnnotateSink.close`
(:class:`~vlmkit.StagedSink`); each file is whole.

* Detections: ``sv.MaskAnnotator`` (masks passed as ``sv.CompactMask``, crop-sized),
  ``sv.BoxAnnotator`` and a label annotator, all with ``sv.ColorLookup.CLASS`` and class ids that
  stay stable for the whole run, so a class keeps its colour on every image.
* Points: a dot (``sv.DotAnnotator``, dark outline) on each point, coloured by class like
  boxes, with its label placed inside the image by the same label annotator.
* OCR: the blocks that have boxes are drawn with their text; the full text goes in a caption
  strip under the image. Descriptions: a caption strip.

Text a font cannot take (a lone surrogate in a model's label) is drawn as U+FFFD.

Labels in any script: supervision's ``LabelAnnotator`` draws with OpenCV's Hershey fonts, which
have ASCII glyphs only. When any label is not plain ASCII the sink switches to
``sv.RichLabelAnnotator`` (Pillow) with a font that has the glyphs (:func:`find_font`):
``font_path`` if given; else, for CJK text, the first CJK font found — checked to really have
the glyphs, not trusted by file name — in the system font folders (Noto Sans CJK, Source Han
Sans, WenQuanYi, Droid Sans Fallback, IPA, Nanum, the macOS / Windows CJK fonts), in
Ultralytics' settings folder (``Arial.Unicode.ttf``, which Ultralytics downloads for non-ASCII
class names), and in pip-installed packages (site-packages: e.g. ``japanize-matplotlib`` or
``matplotlib-fontja`` ship IPAexGothic, ``koreanize-matplotlib`` NanumGothic); else DejaVu Sans
(system, or the copy bundled with matplotlib, which supervision installs) — Latin, Greek,
Cyrillic, Arabic, Hebrew, but no CJK. Without a CJK font, CJK glyphs render as boxes and the
sink logs one warning; install a CJK font (Debian/Ubuntu: ``apt install fonts-noto-cjk``, an
optional system package, never a requirement) or pass ``font_path=...``.

Labels always lie inside the image (``smart_position``: a label that would stick out of the
frame, such as the label of a box touching the top edge, is moved in — onto the box's top — and
overlapping labels are spread apart). Two input keys that name one preview path (``back\\slash.jpg``
and ``back/slash.jpg``) never overwrite each other: the second preview gets a numbered name
(``slash-2.jpg``) and the sink logs a warning naming both.

Items without a readable image (no ``image_path``, file moved) are skipped with a warning; a
preview never stops a run.

Several previews are drawn at once (option ``workers``; default one per CPU, at most four),
each on its own thread: reading, drawing and encoding a photo is Pillow's and OpenCV's work,
which runs outside the GIL, so a run with previews is no longer held to one core's drawing
(:meth:`~vlmkit.StagedSink.in_background`). Class ids, colours and preview names are given in
the items' order, so the files are the same as drawn one by one (``workers=1``).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vlmkit.errors import ConfigError, MediaError
from vlmkit.sink import (
    SinkItem,
    StagedSink,
    as_bool,
    as_names,
    reject_unknown,
    safe_join,
    utf8_safe,
)
from vlmkit.sinks.fonts import find_font, has_glyph, needs_cjk
from vlmkit.sinks.preview import WRITABLE, PreviewPainter
from vlmkit.types import Description, Detections, LabelMap, OcrResult, Points

__all__ = ["AnnotateSink", "default_workers", "find_font", "has_glyph", "needs_cjk"]

logger = logging.getLogger(__name__)

#: Previews drawn at once by default: one per CPU, at most this many (each holds a few copies
#: of its image: about 150 MB for a 12 MP photo).
MAX_DEFAULT_WORKERS = 4


def default_workers() -> int:
    """One preview per CPU this process may use, at most :data:`MAX_DEFAULT_WORKERS`."""
    from vlmkit.cpus import usable_cpus

    return min(usable_cpus(), MAX_DEFAULT_WORKERS)


def _load_pixels(path: str | os.PathLike[str]):
    """The upright RGB image at ``path`` (EXIF orientation applied)."""
    try:
        from vlmkit.media import load_image
    except ImportError:  # pragma: no cover - media is part of the core
        from PIL import Image, ImageOps

        with Image.open(path) as opened:
            return ImageOps.exif_transpose(opened).convert("RGB")
    image = load_image(path).image
    return image if image.mode == "RGB" else image.convert("RGB")


class AnnotateSink(StagedSink):
    """Writes one annotated preview per item under ``annotated/`` (option ``folder``).

    Options: ``categories`` (class names with fixed colours), ``font_path``, ``font_size``,
    ``thickness`` (box line width; default scales with the image), ``opacity`` (mask tint,
    0.5), ``quality`` (JPEG/WebP, 90), ``masks`` and ``labels`` (draw them; default true),
    ``workers`` (previews drawn at once, each on its own thread: :func:`default_workers`).
    """

    accepts = frozenset({"detect", "segment", "ocr", "describe", "points"})

    def __init__(
        self,
        out_dir: str | Path,
        *,
        folder: str = "annotated",
        categories: Any = None,
        font_path: str | None = None,
        font_size: int | None = None,
        thickness: int | None = None,
        opacity: float = 0.5,
        quality: int = 90,
        masks: Any = True,
        labels: Any = True,
        workers: int | None = None,
        **options: Any,
    ) -> None:
        known: tuple[str, ...] = ("folder", "categories", "font_path", "font_size", "thickness")
        known += ("opacity", "quality", "masks", "labels", "workers")
        reject_unknown("annotate", options, known)
        if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
            raise ConfigError(f"annotate sink: workers must be 1 or more, got {workers!r}")
        names = as_names("categories", categories)
        super().__init__(
            out_dir,
            folder=folder,
            categories=names,
            font_path=font_path,
            font_size=font_size,
            thickness=thickness,
            opacity=opacity,
            quality=quality,
            masks=masks,
            labels=labels,
            workers=workers,
        )
        self.background_workers = int(workers) if workers is not None else default_workers()
        self.root = safe_join(self.out_dir, folder)
        self.label_map = LabelMap(names or ())
        self.painter = PreviewPainter(
            font_path=str(font_path) if font_path else None,
            font_size=int(font_size) if font_size else None,
            thickness=int(thickness) if thickness else None,
            opacity=float(opacity),
            quality=int(quality),
            draw_masks=as_bool("masks", masks),
            draw_labels=as_bool("labels", labels),
        )
        self._lock = threading.Lock()
        self._targets: dict[Path, str] = {}  # preview path -> the input key it shows
        self._warned_size = False

    # ------------------------------------------------------------------------------------
    def warm_up(self, task: str) -> None:
        """Supervision draws every preview: imported now, not by the first one while every
        request in flight waits."""
        import supervision  # noqa: F401

    def write(self, item: SinkItem) -> None:
        """Name the preview and give the item's classes their ids here, in the items' order;
        read, draw and encode the image on one of :attr:`background_workers` threads."""
        result = item.result
        if not isinstance(result, Detections | OcrResult | Description | Points):
            logger.debug("annotate sink: skipping %s (%s)", item.key, type(result).__name__)
            return
        target = self._target(item.key)
        if item.image_path is None:
            logger.warning("annotate sink: no image path for %s; no preview written", item.key)
            return
        draw: Callable[[Any], Any]
        if isinstance(result, Detections):
            with self._lock:  # class ids are shared state
                sv_detections = result.to_supervision(self.label_map)
            draw = functools.partial(
                self.painter.draw, detections=sv_detections, labels=self._labels(result)
            )
        elif isinstance(result, Points):
            with self._lock:  # class ids are shared state
                class_id = np.array([self.label_map.id(p.label) for p in result], dtype=int)
            draw = functools.partial(self.painter.draw_points, result=result, class_id=class_id)
        elif isinstance(result, OcrResult):
            draw = functools.partial(self.painter.draw_ocr_page, result=result)
        else:
            draw = functools.partial(self.painter.caption, text=utf8_safe(result.text))
        self.in_background(
            item.key,
            functools.partial(self._render, item, target, draw),
            functools.partial(self._stage_preview, target),
        )

    def _render(self, item: SinkItem, target: Path, draw: Callable[[Any], Any]) -> bytes | None:
        """Read the item's image, draw on it and encode the preview (a background thread);
        None when the image cannot be read."""
        assert item.image_path is not None
        try:
            image = _load_pixels(item.image_path)
        except (MediaError, OSError) as err:
            logger.warning("annotate sink: cannot read %s (%s); no preview", item.image_path, err)
            return None
        size = getattr(item.result, "image_size", None)
        if size is not None and tuple(size) != image.size:
            with self._lock:
                first, self._warned_size = not self._warned_size, True
            if first:
                logger.warning(
                    "annotate sink: %s is %sx%s but its result is in %sx%s pixels; resizing "
                    "the preview to the result",
                    item.key,
                    *image.size,
                    *size,
                )
            image = image.resize(tuple(size))
        return self.painter.encode(draw(image), target)

    def _stage_preview(self, target: Path, data: bytes | None) -> None:
        """Stage an encoded preview (the feeding thread, in the items' order)."""
        if data is not None:
            self.staging.write_bytes(target, data)

    def _target(self, key: str) -> Path:
        target = safe_join(self.root, key)
        if target.suffix.lower() not in WRITABLE:
            target = target.with_name(target.name + ".jpg")
        with self._lock:
            owner = self._targets.setdefault(target, key)
            if owner == key:
                return target
            # Another input (``back\\slash.jpg`` and ``back/slash.jpg``) has this preview path:
            # keep both, under a numbered name, and say so.
            number = 2
            while True:
                other = target.with_name(f"{target.stem}-{number}{target.suffix}")
                if self._targets.setdefault(other, key) == key:
                    break
                number += 1
        logger.warning(
            "annotate sink: %r and %r map to the same preview %s; the preview of %r is written "
            "as %s instead",
            owner,
            key,
            target,
            key,
            other.name,
        )
        return other

    @staticmethod
    def _labels(result: Detections) -> list[str]:
        return [
            utf8_safe(d.label if d.score is None else f"{d.label} {d.score:.2f}".strip())
            for d in result.items
        ]

    # ------------------------------------------------------------------------------------
