"""A smooth synthetic photo with one sharp white square, and where that square's centre is: how
the reduced-scale decode is checked against the full one (tests, `bench_reduced_decode.py`)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


def marked_photo(
    size: tuple[int, int], *, at: tuple[float, float], square: tuple[int, int], seed: int = 3
) -> bytes:
    """A JPEG (quality 90) of ``size``: smooth colours up to 150, as photos are, and a white
    ``square`` (width, height) whose top-left corner is at ``at`` (fractions of the size)."""
    width, height = size
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 150, (height // 50 + 1, width // 50 + 1, 3), dtype=np.uint8)
    picture = Image.fromarray(coarse).resize(size, Image.Resampling.BILINEAR)
    left, top = width * at[0], height * at[1]
    box = (left, top, left + square[0] - 1, top + square[1] - 1)
    ImageDraw.Draw(picture).rectangle(box, fill="white")
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def marker_centre(pixels: np.ndarray) -> np.ndarray:
    """The square's centre (x, y) in ``pixels``, weighted: its edge pixels count by the share of
    white in them, so a shift of a fraction of a pixel shows."""
    weight = np.clip(pixels.min(axis=2) - 170.0, 0.0, None)
    ys, xs = np.indices(weight.shape)
    return np.array([(xs * weight).sum(), (ys * weight).sum()]) / weight.sum()
