"""The ``annotate`` sink: preview images with boxes, masks and labels drawn by supervision.

For every item it reads the input image again (EXIF orientation applied, through
:func:`vlmkit.media.load_image`) and writes ``annotated/<key>`` — the same relative path and
suffix as the input (JPEG at quality 90; formats Pillow cannot write, such as HEIC, get ``.jpg``
appended). Every file is written atomically.

* Detections: ``sv.MaskAnnotator`` (masks passed as ``sv.CompactMask``, crop-sized),
  ``sv.BoxAnnotator`` and a label annotator, all with ``sv.ColorLookup.CLASS`` and class ids that
  stay stable for the whole run, so a class keeps its colour on every image.
* OCR: the blocks that have boxes are drawn with their text; the full text goes in a caption
  strip under the image. Descriptions: a caption strip.

Labels in any script: supervision's ``LabelAnnotator`` draws with OpenCV's Hershey fonts, which
have ASCII glyphs only. When any label is not plain ASCII the sink switches to
``sv.RichLabelAnnotator`` (Pillow) with a font that has the glyphs: ``font_path`` if given, else
the first CJK font found on the system (Noto Sans CJK, Source Han Sans, WenQuanYi, Droid Sans
Fallback, and the macOS / Windows system CJK fonts), else DejaVu Sans (system or the copy
bundled with matplotlib, which supervision installs) — Latin, Greek, Cyrillic, Arabic, Hebrew,
but no CJK. Without a CJK font CJK glyphs render as boxes and the sink logs one warning; on
Debian/Ubuntu ``apt install fonts-noto-cjk`` fixes that (an optional system package, never a
requirement), or pass ``font_path=...``.

Items without a readable image (no ``image_path``, file moved) are skipped with a warning; a
preview never stops a run.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from vlmkit.atomic import atomic_write_bytes, safe_join
from vlmkit.errors import MediaError
from vlmkit.sink import Sink, SinkItem
from vlmkit.sinks._util import as_bool, as_names, reject_unknown
from vlmkit.types import Description, Detections, LabelMap, OcrResult

__all__ = ["AnnotateSink", "find_font", "needs_cjk"]

logger = logging.getLogger(__name__)

# Hangul Jamo, CJK radicals .. CJK unified ideographs (kana, bopomofo, symbols included),
# Hangul syllables, compatibility ideographs, full-width forms, supplementary ideographs.
_CJK = re.compile(
    "[\u1100-\u11ff\u2e80-\u9fff\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f"
    "\uff00-\uffef\U00020000-\U0003134f]"
)
_CJK_FONTS = (
    "notosanscjk-regular.ttc",
    "notosanscjksc-regular.otf",
    "notosanscjkjp-regular.otf",
    "notosanscjk-regular.otf",
    "notoserifcjk-regular.ttc",
    "sourcehansans-regular.ttc",
    "sourcehansanssc-regular.otf",
    "wqy-microhei.ttc",
    "wqy-zenhei.ttc",
    "droidsansfallbackfull.ttf",
    "droidsansfallback.ttf",
    "uming.ttc",
    "pingfang.ttc",
    "hiragino sans gb.ttc",
    "msyh.ttc",
    "yugothm.ttc",
    "malgun.ttf",
    "arial unicode.ttf",
    "arialuni.ttf",
)
_FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "~/.fonts",
    "/System/Library/Fonts",
    "/Library/Fonts",
    "C:/Windows/Fonts",
)
_WRITABLE = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


def _split_cjk(word: str) -> list[str]:
    """Split a word at every CJK character (each may end a line), keeping other runs whole."""
    return [part for part in re.split(f"({_CJK.pattern})", word) if part]


def needs_cjk(text: str) -> bool:
    """Whether ``text`` has Chinese, Japanese or Korean characters."""
    return bool(_CJK.search(text))


@functools.lru_cache(maxsize=8)
def _font_files(dirs: tuple[str, ...]) -> dict[str, str]:
    """Font files under ``dirs``, by lower-case file name (first found wins)."""
    found: dict[str, str] = {}
    for folder in dirs:
        root = os.path.expanduser(folder)
        if not os.path.isdir(root):
            continue
        for current, _subdirs, files in os.walk(root):
            for name in files:
                if name.lower().endswith((".ttf", ".ttc", ".otf")):
                    found.setdefault(name.lower(), os.path.join(current, name))
    return found


def _dejavu(files: dict[str, str]) -> str | None:
    if "dejavusans.ttf" in files:
        return files["dejavusans.ttf"]
    spec = importlib.util.find_spec("matplotlib")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location, "mpl-data", "fonts", "ttf", "DejaVuSans.ttf")
        if candidate.is_file():
            return str(candidate)
    return None


def find_font(*, cjk: bool = True, dirs: tuple[str, ...] = _FONT_DIRS) -> tuple[str | None, bool]:
    """A TrueType/OpenType font file for labels, and whether it has CJK glyphs.

    With ``cjk`` the system font folders are searched for a known CJK font first; otherwise
    (or when none is installed) DejaVu Sans is returned; ``(None, False)`` when there is none.
    """
    files = _font_files(dirs)
    if cjk:
        for name in _CJK_FONTS:
            if name in files:
                return files[name], True
    return _dejavu(files), False


def _load_pixels(path: str | os.PathLike[str]):
    """The upright RGB image at ``path`` (EXIF orientation applied)."""
    try:
        from vlmkit.media import load_image
    except ImportError:  # pragma: no cover - media is part of the core
        from PIL import Image, ImageOps

        with Image.open(path) as opened:
            return ImageOps.exif_transpose(opened).convert("RGB")
    return load_image(path).image.convert("RGB")


class AnnotateSink(Sink):
    """Writes one annotated preview per item under ``annotated/`` (option ``folder``).

    Options: ``categories`` (class names with fixed colours), ``font_path``, ``font_size``,
    ``thickness`` (box line width; default scales with the image), ``opacity`` (mask tint,
    0.5), ``quality`` (JPEG/WebP, 90), ``masks`` and ``labels`` (draw them; default true).
    """

    accepts = frozenset({"detect", "segment", "ocr", "describe"})

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
        **options: Any,
    ) -> None:
        known: tuple[str, ...] = ("folder", "categories", "font_path", "font_size", "thickness")
        known += ("opacity", "quality", "masks", "labels")
        reject_unknown("annotate", options, known)
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
        )
        self.root = safe_join(self.out_dir, folder)
        self.label_map = LabelMap(names or ())
        self.font_path = str(font_path) if font_path else None
        self.font_size = int(font_size) if font_size else None
        self.thickness = int(thickness) if thickness else None
        self.opacity = float(opacity)
        self.quality = int(quality)
        self.draw_masks = as_bool("masks", masks)
        self.draw_labels = as_bool("labels", labels)
        self._written: list[Path] = []
        self._lock = threading.Lock()
        self._warned_font = False
        self._warned_size = False

    # ------------------------------------------------------------------------------------
    def write(self, item: SinkItem) -> None:
        result = item.result
        if not isinstance(result, Detections | OcrResult | Description):
            logger.debug("annotate sink: skipping %s (%s)", item.key, type(result).__name__)
            return
        target = self._target(item.key)
        if item.image_path is None:
            logger.warning("annotate sink: no image path for %s; no preview written", item.key)
            return
        try:
            image = _load_pixels(item.image_path)
        except (MediaError, OSError) as err:
            logger.warning("annotate sink: cannot read %s (%s); no preview", item.image_path, err)
            return
        size = getattr(result, "image_size", None)
        if size is not None and tuple(size) != image.size:
            if not self._warned_size:
                logger.warning(
                    "annotate sink: %s is %sx%s but its result is in %sx%s pixels; resizing "
                    "the preview to the result",
                    item.key,
                    *image.size,
                    *size,
                )
                self._warned_size = True
            image = image.resize(tuple(size))
        if isinstance(result, Detections):
            with self._lock:  # class ids are shared state
                sv_detections = result.to_supervision(self.label_map)
            image = self._draw(image, sv_detections, self._labels(result))
        elif isinstance(result, OcrResult):
            image = self._draw_ocr(image, result)
            image = self._caption(image, result.text)
        else:
            image = self._caption(image, result.text)
        self._save(image, target)

    def _target(self, key: str) -> Path:
        target = safe_join(self.root, key)
        if target.suffix.lower() not in _WRITABLE:
            target = target.with_name(target.name + ".jpg")
        return target

    @staticmethod
    def _labels(result: Detections) -> list[str]:
        return [
            d.label if d.score is None else f"{d.label} {d.score:.2f}".strip() for d in result.items
        ]

    # ------------------------------------------------------------------------------------
    def _font(self, texts: list[str]) -> str | None:
        if self.font_path:
            return self.font_path
        cjk = any(needs_cjk(t) for t in texts)
        path, has_cjk = find_font(cjk=cjk)
        if cjk and not has_cjk and not self._warned_font:
            logger.warning(
                "annotate sink: no CJK font found, so CJK labels render as boxes; install one "
                "(Debian/Ubuntu: apt install fonts-noto-cjk) or pass font_path=..."
            )
            self._warned_font = True
        return path

    def _draw(self, image, detections, labels: list[str], *, by_class: bool = True):
        import supervision as sv

        width, height = image.size
        longest = max(width, height)
        lookup = sv.ColorLookup.CLASS if by_class else sv.ColorLookup.INDEX
        if len(detections) == 0:
            return image
        scene = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])  # BGR for OpenCV
        if self.draw_masks and detections.mask is not None:
            scene = sv.MaskAnnotator(opacity=self.opacity, color_lookup=lookup).annotate(
                scene, detections
            )
        thickness = self.thickness or max(2, round(longest / 500))
        scene = sv.BoxAnnotator(thickness=thickness, color_lookup=lookup).annotate(
            scene, detections
        )
        if self.draw_labels and any(labels):
            if all(label.isascii() for label in labels):
                annotator: Any = sv.LabelAnnotator(
                    color_lookup=lookup,
                    text_scale=max(0.5, longest / 1600),
                    text_thickness=max(1, round(longest / 1000)),
                    text_padding=max(4, round(longest / 200)),
                )
            else:
                annotator = sv.RichLabelAnnotator(
                    color_lookup=lookup,
                    font_path=self._font(labels),
                    font_size=self.font_size or max(14, round(longest / 60)),
                    text_padding=max(4, round(longest / 200)),
                )
            scene = annotator.annotate(scene, detections, labels=labels)
        from PIL import Image

        return Image.fromarray(np.ascontiguousarray(scene[:, :, ::-1]))

    def _draw_ocr(self, image, result: OcrResult):
        import supervision as sv

        blocks = [b for b in result.blocks if b.box is not None]
        if not blocks:
            return image
        detections = sv.Detections(
            xyxy=np.array([b.box.xyxy for b in blocks], dtype=np.float32),  # type: ignore[union-attr]
            class_id=np.zeros(len(blocks), dtype=int),
        )
        return self._draw(image, detections, [b.text for b in blocks], by_class=False)

    def _caption(self, image, text: str, max_lines: int = 12):
        """``image`` with ``text`` wrapped in a white strip underneath."""
        from PIL import Image, ImageDraw, ImageFont

        text = " ".join(text.split())
        if not text:
            return image
        width, height = image.size
        size = self.font_size or max(14, round(max(width, height) / 60))
        path = self._font([text])
        font = ImageFont.truetype(path, size) if path else ImageFont.load_default(size)
        margin = max(4, size // 2)
        # Words keep their trailing space; CJK text (no spaces) may break between characters.
        tokens: list[str] = []
        for word in re.findall(r"\S+\s*", text):
            tokens.extend(_split_cjk(word) if needs_cjk(word) else [word])
        lines: list[str] = []
        current = ""
        for token in tokens:
            candidate = current + token
            if not current or font.getlength(candidate.rstrip()) <= width - 2 * margin:
                current = candidate
            else:
                lines.append(current.rstrip())
                current = token
        lines.append(current.rstrip())
        if len(lines) > max_lines:
            lines = [*lines[: max_lines - 1], lines[max_lines - 1] + " …"]
        line_height = round(size * 1.3)
        strip = 2 * margin + line_height * len(lines)
        canvas = Image.new("RGB", (width, height + strip), (255, 255, 255))
        canvas.paste(image, (0, 0))
        draw = ImageDraw.Draw(canvas)
        for index, line in enumerate(lines):
            draw.text(
                (margin, height + margin + index * line_height), line, fill=(0, 0, 0), font=font
            )
        return canvas

    def _save(self, image, target: Path) -> None:
        fmt = _WRITABLE.get(target.suffix.lower(), "JPEG")
        buffer = io.BytesIO()
        if fmt in ("JPEG", "WEBP"):
            image.convert("RGB").save(buffer, format=fmt, quality=self.quality)
        else:
            image.save(buffer, format=fmt)
        atomic_write_bytes(target, buffer.getvalue())
        with self._lock:
            self._written.append(target)

    def close(self) -> list[Path]:
        return list(dict.fromkeys(self._written))
