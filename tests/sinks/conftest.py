"""Shared scenes for the sink tests: small images on disk and detections with tricky masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlmkit.sink import SinkItem
from vlmkit.types import Box, Detection, Detections, Mask, Provenance

W, H = 160, 120


def disk(cx: float, cy: float, r: float, size=(W, H)) -> np.ndarray:
    yy, xx = np.mgrid[: size[1], : size[0]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 < r**2


def ring_mask() -> np.ndarray:
    """A thick ring: one part with a hole."""
    return disk(50, 50, 30) & ~disk(50, 50, 12)


def two_part_mask() -> np.ndarray:
    """Two separate blobs that belong to one object."""
    full = disk(115, 40, 14)
    full[80:110, 100:140] = True
    return full


def mask_det(full: np.ndarray, label: str, score: float | None = None) -> Detection:
    mask = Mask.from_full(full)
    x0, y0, x1, y1 = mask.region
    return Detection(box=Box(x0=x0, y0=y0, x1=x1, y1=y1), label=label, score=score, mask=mask)


def box_det(xyxy, label: str, score: float | None = None) -> Detection:
    return Detection(box=Box.from_xyxy(xyxy), label=label, score=score)


def held_per_item(sink, items) -> float:
    """Bytes ``sink`` holds per item written (tracemalloc), the first item written before the
    count starts (classes, folders and caches made once)."""
    import gc
    import tracemalloc

    sink.write(items[0])
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for item in items[1:]:
            sink.write(item)
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - base) / (len(items) - 1)
    finally:
        tracemalloc.stop()


def write_image(path: Path, size=(W, H), color=(40, 90, 160)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def detections(items, size=(W, H), task="detect") -> Detections:
    return Detections(
        image_size=size, items=items, provenance=Provenance(task=task, backend="fake")
    )


@pytest.fixture
def scene(tmp_path):
    """Two images under tmp/images (one in a subfolder) with masks and boxes, as SinkItems."""
    root = tmp_path / "images"
    a = write_image(root / "a.png")
    b = write_image(root / "sub" / "b.png")
    seg = detections(
        [mask_det(ring_mask(), "donut", 0.9), mask_det(two_part_mask(), "pair", 0.8)],
        task="segment",
    )
    det = detections(
        [box_det([10, 20, 60, 90], "cat", 0.7), box_det([70.5, 10.25, 150, 100], "donut", 0.6)]
    )
    return {
        "root": root,
        "items": [
            SinkItem(key="a.png", result=seg, image_path=a, image_size=(W, H)),
            SinkItem(key="sub/b.png", result=det, image_path=b, image_size=(W, H)),
        ],
    }


def build_font(path: Path, chars: str) -> Path:
    """A tiny TrueType font with a distinct glyph (bars of different heights) for each of
    ``chars`` — a stand-in CJK font for machines without one (built with fontTools, which
    matplotlib depends on)."""
    fontbuilder = pytest.importorskip("fontTools.fontBuilder")
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    def bars(heights):
        pen = TTGlyphPen(None)
        for k, height in enumerate(heights):
            x0 = 80 + 140 * k
            pen.moveTo((x0, 0))
            pen.lineTo((x0, height))
            pen.lineTo((x0 + 90, height))
            pen.lineTo((x0 + 90, 0))
            pen.closePath()
        return pen.glyph()

    names = [".notdef"] + [f"uni{ord(c):04X}" for c in chars]
    builder = fontbuilder.FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder(names)
    builder.setupCharacterMap({ord(c): f"uni{ord(c):04X}" for c in chars})
    glyphs = {".notdef": bars([700])}
    for i, name in enumerate(names[1:]):
        glyphs[name] = bars([150 + 110 * ((i + k) % 7) for k in range(6)])
    builder.setupGlyf(glyphs)
    builder.setupHorizontalMetrics({name: (1000, 0) for name in names})
    builder.setupHorizontalHeader(ascent=880, descent=-120)
    builder.setupNameTable({"familyName": "vlmkit probe", "styleName": "Regular"})
    builder.setupOS2(sTypoAscender=880, usWinAscent=880, usWinDescent=120)
    builder.setupPost()
    path.parent.mkdir(parents=True, exist_ok=True)
    builder.save(str(path))
    return path
