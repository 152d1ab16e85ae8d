"""Drawing one preview: boxes, masks, points, OCR blocks and caption strips on an image with
supervision's annotators, and its encoding (:class:`PreviewPainter`, the ``annotate`` sink's
drawing; the sink itself names the previews, gives the class ids and stages the files).
"""

from __future__ import annotations

import io
import logging
import re
import threading
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from vlmkit.sink import utf8_safe
from vlmkit.sinks.fonts import find_font, needs_cjk, split_cjk
from vlmkit.types import OcrResult, Points

__all__ = ["WRITABLE", "PreviewPainter", "caption_strip"]

logger = logging.getLogger("vlmkit.sinks.annotate")  # the sink's messages, under its name

#: Preview formats by suffix; any other suffix gets ``.jpg`` appended.
WRITABLE = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


def caption_strip(image, text: str, font_path: str | None, size: int, max_lines: int = 12):
    """``image`` with ``text`` (not empty) wrapped in a white strip underneath, in the font at
    ``font_path`` (Pillow's default font without one) of ``size`` pixels."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = image.size
    font = ImageFont.truetype(font_path, size) if font_path else ImageFont.load_default(size)
    margin = max(4, size // 2)
    # Words keep their trailing space; CJK text (no spaces) may break between characters.
    tokens: list[str] = []
    for word in re.findall(r"\S+\s*", text):
        tokens.extend(split_cjk(word) if needs_cjk(word) else [word])
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


@attrs.define(kw_only=True)
class PreviewPainter:
    """How the ``annotate`` sink draws: its drawing options, and the font chosen per text (a
    warning, once, when no CJK font has the glyphs). Safe to use from several threads."""

    font_path: str | None
    font_size: int | None
    thickness: int | None
    opacity: float
    quality: int
    draw_masks: bool
    draw_labels: bool
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)
    _warned_font: bool = attrs.field(default=False, init=False, repr=False)

    def font(self, texts: list[str]) -> str | None:
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

    def draw(self, image, detections, labels: list[str], *, by_class: bool = True, dots: int = 0):
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
                    font_path=self.font(labels),
                    font_size=self.font_size or max(14, round(longest / 60)),
                    text_padding=max(4, round(longest / 200)),
                )
            scene = annotator.annotate(scene, detections, labels=labels)
        from PIL import Image

        scene = np.ascontiguousarray(scene)  # as the annotators left it (a copy if they must)
        cv2.cvtColor(scene, cv2.COLOR_BGR2RGB, dst=scene)
        return Image.fromarray(scene)

    def draw_points(self, image, result: Points, class_id: np.ndarray):
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
        return self.draw(image, detections, labels, dots=radius)

    def draw_ocr(self, image, result: OcrResult):
        import supervision as sv

        blocks = [b for b in result.blocks if b.box is not None]
        if not blocks:
            return image
        detections = sv.Detections(
            xyxy=np.array([b.box.xyxy for b in blocks], dtype=np.float32),  # type: ignore[union-attr]
            class_id=np.zeros(len(blocks), dtype=int),
        )
        texts = [utf8_safe(b.text) for b in blocks]
        return self.draw(image, detections, texts, by_class=False)

    def draw_ocr_page(self, image, result: OcrResult):
        """The blocks that have boxes, and the full text in a caption strip."""
        return self.caption(self.draw_ocr(image, result), utf8_safe(result.text))

    def caption(self, image, text: str):
        """``image`` with ``text`` wrapped in a white strip underneath."""
        text = " ".join(text.split())
        if not text:
            return image
        size = self.font_size or max(14, round(max(image.size) / 60))
        return caption_strip(image, text, self.font([text]), size)

    def encode(self, image, target: Path) -> bytes:
        """The preview file's bytes, in the format of ``target``'s suffix."""
        fmt = WRITABLE.get(target.suffix.lower(), "JPEG")
        buffer = io.BytesIO()
        if fmt in ("JPEG", "WEBP"):
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            rgb.save(buffer, format=fmt, quality=self.quality)
        else:
            image.save(buffer, format=fmt)
        return buffer.getvalue()
