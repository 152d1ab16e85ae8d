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
import importlib.util
import io
import logging
import os
import re
import site
import sys
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
from vlmkit.types import Description, Detections, LabelMap, OcrResult, Points

__all__ = ["AnnotateSink", "default_workers", "find_font", "has_glyph", "needs_cjk"]

logger = logging.getLogger(__name__)

# Hangul Jamo, CJK radicals .. CJK unified ideographs (kana, bopomofo, symbols included),
# Hangul syllables, compatibility ideographs, full-width forms, supplementary ideographs.
_CJK = re.compile(
    "[\u1100-\u11ff\u2e80-\u9fff\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f"
    "\uff00-\uffef\U00020000-\U0003134f]"
)
# Known CJK fonts by lower-case file name, best first; then any font whose name matches
# _CJK_NAME. Every candidate is checked for real glyphs before it is used.
_CJK_FONTS = (
    "notosanscjk-regular.ttc",
    "notosanscjksc-regular.otf",
    "notosanscjkjp-regular.otf",
    "notosanscjktc-regular.otf",
    "notosanscjkkr-regular.otf",
    "notosanscjk-regular.otf",
    "notoserifcjk-regular.ttc",
    "sourcehansans-regular.ttc",
    "sourcehansanssc-regular.otf",
    "sourcehansanscn-regular.otf",
    "wqy-microhei.ttc",
    "wqy-zenhei.ttc",
    "droidsansfallbackfull.ttf",
    "droidsansfallback.ttf",
    "arial.unicode.ttf",
    "arial unicode.ttf",
    "arialuni.ttf",
    "uming.ttc",
    "pingfang.ttc",
    "hiragino sans gb.ttc",
    "msyh.ttc",
    "simhei.ttf",
    "yugothm.ttc",
    "msgothic.ttc",
    "malgun.ttf",
    "ipaexg.ttf",
    "ipag.ttf",
    "nanumgothic.ttf",
    "nanumbarungothic.ttf",
)
_CJK_NAME = re.compile(
    r"cjk|sourcehan|wqy|droidsansfallback|notosans(sc|tc|hk|jp|kr)|notoserif(sc|tc|jp|kr)|"
    r"ipaex|ipag|ipam|nanum|simhei|simsun|simfang|msyh|msgothic|yugoth|malgun|pingfang|"
    r"hiragino|arial.?unicode|arialuni|uming|ukai"
)
_FONT_SUFFIXES = (".ttf", ".ttc", ".otf")


def _ultralytics_dirs() -> tuple[str, ...]:
    """Where Ultralytics keeps ``Arial.Unicode.ttf`` (its settings folder, per platform)."""
    dirs = [
        os.environ.get("YOLO_CONFIG_DIR", ""),
        "~/.config/Ultralytics",
        "~/Library/Application Support/Ultralytics",
    ]
    if os.environ.get("APPDATA"):
        dirs.append(os.path.join(os.environ["APPDATA"], "Ultralytics"))
    return tuple(d for d in dirs if d)


_FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "~/.fonts",
    "/System/Library/Fonts",
    "/Library/Fonts",
    "~/Library/Fonts",
    "C:/Windows/Fonts",
    *_ultralytics_dirs(),
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


def _site_dirs() -> tuple[str, ...]:
    """The folders pip installs packages into (site-packages of this environment and user)."""
    dirs: list[str] = list(getattr(site, "getsitepackages", list)())
    user = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    if user:
        dirs.append(user)
    dirs.extend(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    return tuple(dict.fromkeys(os.path.abspath(d) for d in dirs))


@functools.lru_cache(maxsize=8)
def _font_files(dirs: tuple[str, ...]) -> dict[str, str]:
    """Font files under ``dirs``, by lower-case file name (first found wins)."""
    found: dict[str, str] = {}
    for folder in dirs:
        root = os.path.expanduser(folder)
        if not os.path.isdir(root):
            continue
        for current, subdirs, files in os.walk(root):
            subdirs[:] = [d for d in subdirs if d != "__pycache__" and not d.endswith(".dist-info")]
            for name in files:
                if name.lower().endswith(_FONT_SUFFIXES):
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


@functools.lru_cache(maxsize=16)
def _probe_font(path: str) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.truetype(path, 32)
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=64)
def _glyph_bitmap(path: str, char: str) -> bytes | None:
    """``char`` drawn with the font at ``path`` (None when the font cannot be loaded)."""
    from PIL import Image, ImageDraw

    font = _probe_font(path)
    if font is None:
        return None
    canvas = Image.new("L", (48, 48))
    ImageDraw.Draw(canvas).text((4, 4), char, font=font, fill=255)
    return canvas.tobytes()


@functools.lru_cache(maxsize=8192)
def has_glyph(path: str, char: str) -> bool:
    """Whether the font at ``path`` has a real glyph for ``char``: it draws differently from
    a code point no font has (which every font draws as its "missing" box, or not at all)."""
    drawn = _glyph_bitmap(path, char)
    return drawn is not None and drawn != _glyph_bitmap(path, "\U0010fffd") and any(drawn)


def find_font(
    *,
    cjk: bool = True,
    dirs: tuple[str, ...] | None = None,
    site_dirs: tuple[str, ...] | None = None,
    text: str | None = None,
) -> tuple[str | None, bool]:
    """A TrueType/OpenType font file for labels, and whether it has the CJK glyphs asked for.

    With ``cjk``, the known CJK fonts (then any font named like one) in ``dirs`` (default: the
    system font folders and Ultralytics' settings folder) and ``site_dirs`` (default: the
    site-packages folders pip installs into) are checked for real glyphs of the CJK characters of
    ``text`` (default: a common ideograph): the first font that has all of them wins, with
    ``True``. Otherwise the font covering most of them is returned with ``False``, or — when
    none covers any, or without ``cjk`` — DejaVu Sans with ``False``; ``(None, False)`` when
    there is no font at all.
    """
    files = _font_files(_FONT_DIRS if dirs is None else dirs)
    if cjk:
        everywhere = dict(_font_files(_site_dirs() if site_dirs is None else site_dirs))
        everywhere.update(files)  # a system font wins over a same-named packaged one
        wanted = sorted(set(_CJK.findall(text or ""))) or ["\u732b"]
        known = [everywhere[name] for name in _CJK_FONTS if name in everywhere]
        named = [path for name, path in sorted(everywhere.items()) if _CJK_NAME.search(name)]
        best: tuple[int, str | None] = (0, None)
        for path in dict.fromkeys([*known, *named]):
            covered = sum(has_glyph(path, char) for char in wanted)
            if covered == len(wanted):
                return path, True
            if covered > best[0]:
                best = (covered, path)
        if best[1] is not None:
            return best[1], False
    return _dejavu(files), False


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


def _caption_strip(image, text: str, font_path: str | None, size: int, max_lines: int = 12):
    """``image`` with ``text`` (not empty) wrapped in a white strip underneath, in the font at
    ``font_path`` (Pillow's default font without one) of ``size`` pixels."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = image.size
    font = ImageFont.truetype(font_path, size) if font_path else ImageFont.load_default(size)
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
        draw.text((margin, height + margin + index * line_height), line, fill=(0, 0, 0), font=font)
    return canvas


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
        self.font_path = str(font_path) if font_path else None
        self.font_size = int(font_size) if font_size else None
        self.thickness = int(thickness) if thickness else None
        self.opacity = float(opacity)
        self.quality = int(quality)
        self.draw_masks = as_bool("masks", masks)
        self.draw_labels = as_bool("labels", labels)
        self._lock = threading.Lock()
        self._targets: dict[Path, str] = {}  # preview path -> the input key it shows
        self._warned_font = False
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
                self._draw, detections=sv_detections, labels=self._labels(result)
            )
        elif isinstance(result, Points):
            with self._lock:  # class ids are shared state
                class_id = np.array([self.label_map.id(p.label) for p in result], dtype=int)
            draw = functools.partial(self._draw_points, result=result, class_id=class_id)
        elif isinstance(result, OcrResult):
            draw = functools.partial(self._draw_ocr_page, result=result)
        else:
            draw = functools.partial(self._caption, text=utf8_safe(result.text))
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
        return self._encode(draw(image), target)

    def _stage_preview(self, target: Path, data: bytes | None) -> None:
        """Stage an encoded preview (the feeding thread, in the items' order)."""
        if data is not None:
            self.staging.write_bytes(target, data)

    def _target(self, key: str) -> Path:
        target = safe_join(self.root, key)
        if target.suffix.lower() not in _WRITABLE:
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
    def _font(self, texts: list[str]) -> str | None:
        if self.font_path:
            return self.font_path
        cjk = any(needs_cjk(t) for t in texts)
        path, has_cjk = find_font(cjk=cjk, text="".join(texts)) if cjk else find_font(cjk=False)
        if cjk and not has_cjk:
            with self._lock:  # previews are drawn on several threads
                first, self._warned_font = not self._warned_font, True
            if not first:
                return path
            logger.warning(
                "annotate sink: no CJK font with all the glyphs found, so CJK labels render "
                "(partly) as boxes; install one (Debian/Ubuntu: apt install fonts-noto-cjk) or "
                "pass font_path=..."
            )
        return path

    def _draw(self, image, detections, labels: list[str], *, by_class: bool = True, dots: int = 0):
        """Masks, boxes and labels; with ``dots`` (a radius), a dot at each box centre instead
        of the box (the pointing task's small boxes around each point)."""
        import supervision as sv

        width, height = image.size
        longest = max(width, height)
        lookup = sv.ColorLookup.CLASS if by_class else sv.ColorLookup.INDEX
        if len(detections) == 0:
            return image
        import cv2

        # BGR for OpenCV, and back in place: cvtColor swaps the channels of a 12 MP frame in
        # 8-35 ms (most of it the new array's page faults), a reversed NumPy view copied in 50
        scene = np.asarray(cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR), dtype=np.uint8)
        if self.draw_masks and detections.mask is not None:
            scene = sv.MaskAnnotator(opacity=self.opacity, color_lookup=lookup).annotate(
                scene, detections
            )
        thickness = self.thickness or max(2, round(longest / 500))
        if dots:
            marker: Any = sv.DotAnnotator(
                radius=dots, color_lookup=lookup, outline_thickness=max(1, dots // 4)
            )
        else:
            marker = sv.BoxAnnotator(thickness=thickness, color_lookup=lookup)
        scene = marker.annotate(scene, detections)
        if self.draw_labels and any(labels):
            if all(label.isascii() for label in labels):
                annotator: Any = sv.LabelAnnotator(
                    color_lookup=lookup,
                    smart_position=True,
                    text_scale=max(0.5, longest / 1600),
                    text_thickness=max(1, round(longest / 1000)),
                    text_padding=max(4, round(longest / 200)),
                )
            else:
                annotator = sv.RichLabelAnnotator(
                    color_lookup=lookup,
                    smart_position=True,
                    font_path=self._font(labels),
                    font_size=self.font_size or max(14, round(longest / 60)),
                    text_padding=max(4, round(longest / 200)),
                )
            scene = annotator.annotate(scene, detections, labels=labels)
        from PIL import Image

        scene = np.ascontiguousarray(scene)  # as the annotators left it (a copy if they must)
        cv2.cvtColor(scene, cv2.COLOR_BGR2RGB, dst=scene)
        return Image.fromarray(scene)

    def _draw_points(self, image, result: Points, class_id: np.ndarray):
        import supervision as sv

        if not len(result):
            return image
        width, height = image.size
        radius = max(5, round(max(width, height) / 120), (self.thickness or 0) * 2)
        # centres on pixels of the image (a point clamped to the right edge sits on x = width)
        xy = np.clip(result.xy, 0.0, [width - 1, height - 1])
        detections = sv.Detections(
            xyxy=np.hstack([xy - radius, xy + radius]).astype(np.float32),
            class_id=class_id,
        )
        labels = [
            utf8_safe(p.label if p.score is None else f"{p.label} {p.score:.2f}".strip())
            for p in result
        ]
        return self._draw(image, detections, labels, dots=radius)

    def _draw_ocr(self, image, result: OcrResult):
        import supervision as sv

        blocks = [b for b in result.blocks if b.box is not None]
        if not blocks:
            return image
        detections = sv.Detections(
            xyxy=np.array([b.box.xyxy for b in blocks], dtype=np.float32),  # type: ignore[union-attr]
            class_id=np.zeros(len(blocks), dtype=int),
        )
        texts = [utf8_safe(b.text) for b in blocks]
        return self._draw(image, detections, texts, by_class=False)

    def _draw_ocr_page(self, image, result: OcrResult):
        """The blocks that have boxes, and the full text in a caption strip."""
        return self._caption(self._draw_ocr(image, result), utf8_safe(result.text))

    def _caption(self, image, text: str):
        """``image`` with ``text`` wrapped in a white strip underneath."""
        text = " ".join(text.split())
        if not text:
            return image
        size = self.font_size or max(14, round(max(image.size) / 60))
        return _caption_strip(image, text, self._font([text]), size)

    def _encode(self, image, target: Path) -> bytes:
        """The preview file's bytes, in the format of ``target``'s suffix."""
        fmt = _WRITABLE.get(target.suffix.lower(), "JPEG")
        buffer = io.BytesIO()
        if fmt in ("JPEG", "WEBP"):
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            rgb.save(buffer, format=fmt, quality=self.quality)
        else:
            image.save(buffer, format=fmt)
        return buffer.getvalue()
