"""The test kit's oracle: images with known targets, and the true answer for any image a model
received — so a fake model answers exactly right and :func:`~vlmkit.testing.check_backend` can
tell a correct backend from one whose boxes land in the wrong place.

Each sample (:func:`oracle_samples`) is an awkward image — odd size, EXIF-rotated, RGBA, tiny,
huge, grayscale — with coloured squares drawn at known places of the upright original.
:func:`true_answer` looks at the image *as your model received it* (resized, padded, re-encoded:
whatever your backend did), finds the squares and writes the answer a perfect model would give
in a coordinate convention. Wire it into your fake model or fake server in one line::

    text = true_answer(image_the_server_received, "xyxy-pixels")

Write the convention your *model* speaks, not the one your backend declares: a backend that
declares the wrong one, or changes the image without returning ``Generation.transforms``, then
fails the check.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import attrs
import numpy as np

from vlmkit.geometry import Convention

__all__ = [
    "OracleSample",
    "Target",
    "find_targets",
    "oracle_samples",
    "tolerance_px",
    "true_answer",
]

#: label → colour of the squares the oracle draws and finds
TARGET_COLORS: dict[str, tuple[int, int, int]] = {
    "red square": (220, 30, 30),
    "blue square": (30, 60, 220),
}
_BACKGROUND = 128
_MATCH = 80.0  # a pixel nearer than this to a target colour belongs to the target


@attrs.frozen(kw_only=True)
class Target:
    """A square drawn on a sample: its label and box (``xyxy``) in upright original pixels."""

    label: str
    xyxy: tuple[float, float, float, float]


@attrs.frozen(kw_only=True)
class OracleSample:
    """An encoded test image (``data``), its upright ``size`` and the targets drawn on it."""

    name: str
    data: bytes = attrs.field(repr=False)
    size: tuple[int, int]
    targets: tuple[Target, ...] = ()


def _canvas(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(-8, 9, (height, width, 3))
    return np.clip(_BACKGROUND + noise, 0, 255).astype(np.uint8)


def _draw(pixels: np.ndarray, boxes: dict[str, tuple[int, int, int, int]]) -> tuple[Target, ...]:
    targets = []
    for label, (x1, y1, x2, y2) in boxes.items():
        pixels[y1:y2, x1:x2] = TARGET_COLORS[label]
        targets.append(Target(label=label, xyxy=(float(x1), float(y1), float(x2), float(y2))))
    return tuple(targets)


def _encode(image: Any, fmt: str, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _boxes(width: int, height: int) -> dict[str, tuple[int, int, int, int]]:
    """Two squares at asymmetric places, so a flip, a transpose or a wrong axis order shows."""

    def box(fx1: float, fy1: float, fx2: float, fy2: float) -> tuple[int, int, int, int]:
        return (round(fx1 * width), round(fy1 * height), round(fx2 * width), round(fy2 * height))

    return {"red square": box(0.08, 0.12, 0.38, 0.5), "blue square": box(0.55, 0.6, 0.9, 0.92)}


def oracle_samples(*, huge: bool = True) -> tuple[OracleSample, ...]:
    """The awkward images: odd-sized RGB PNG, EXIF-rotated JPEG (stored sideways with
    Orientation=6), RGBA PNG, a tiny PNG, a huge JPEG (``huge=False`` leaves it out) and a
    grayscale PNG (no coloured targets: it checks shapes only)."""
    from PIL import Image

    samples = []
    rgb = _canvas(97, 61, 1)
    targets = _draw(rgb, _boxes(97, 61))
    samples.append(
        OracleSample(
            name="rgb-97x61.png",
            data=_encode(Image.fromarray(rgb), "PNG"),
            size=(97, 61),
            targets=targets,
        )
    )

    upright = _canvas(90, 130, 2)  # shown 90×130, stored 130×90 with Orientation=6
    targets = _draw(upright, _boxes(90, 130))
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    samples.append(
        OracleSample(
            name="exif-rotated.jpg",
            data=_encode(stored, "JPEG", quality=95, exif=exif.tobytes()),
            size=(90, 130),
            targets=targets,
        )
    )

    rgba = np.dstack([_canvas(150, 100, 3), np.full((100, 150), 255, np.uint8)])
    targets = _draw(rgba[..., :3], _boxes(150, 100))
    rgba[:8, :, 3] = 0  # a transparent band, away from the targets
    samples.append(
        OracleSample(
            name="rgba-150x100.png",
            data=_encode(Image.fromarray(rgba, "RGBA"), "PNG"),
            size=(150, 100),
            targets=targets,
        )
    )

    tiny = _canvas(23, 17, 4)
    targets = _draw(tiny, _boxes(23, 17))
    samples.append(
        OracleSample(
            name="tiny-23x17.png",
            data=_encode(Image.fromarray(tiny), "PNG"),
            size=(23, 17),
            targets=targets,
        )
    )

    if huge:
        big = _canvas(3001, 2003, 5)
        targets = _draw(big, _boxes(3001, 2003))
        samples.append(
            OracleSample(
                name="huge-3001x2003.jpg",
                data=_encode(Image.fromarray(big), "JPEG", quality=90),
                size=(3001, 2003),
                targets=targets,
            )
        )

    gray = Image.fromarray(_canvas(40, 120, 6)[..., 0], "L")
    samples.append(OracleSample(name="gray-40x120.png", data=_encode(gray, "PNG"), size=(40, 120)))
    return tuple(samples)


def _pixels(image: Any) -> np.ndarray:
    from PIL import Image

    if isinstance(image, (bytes, bytearray)):
        image = Image.open(io.BytesIO(bytes(image)))
    if isinstance(image, Image.Image):
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            backdrop = Image.new("RGB", image.size, (_BACKGROUND,) * 3)
            backdrop.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
            image = backdrop
        return np.asarray(image.convert("RGB"), dtype=np.float32)
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return array[..., :3]


def find_targets(image: Any) -> dict[str, tuple[int, int, int, int]]:
    """The targets visible in ``image`` (a PIL image, encoded bytes or an array, exactly as the
    model received it): label → ``(x1, y1, x2, y2)`` in that image's pixels (edges)."""
    pixels = _pixels(image)
    found = {}
    for label, color in TARGET_COLORS.items():
        distance = np.linalg.norm(pixels - np.asarray(color, np.float32), axis=2)
        ys, xs = np.nonzero(distance < _MATCH)
        if len(xs):
            found[label] = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return found


def _number(value: float, convention: Convention) -> float | int:
    if convention.scale is None or convention.scale >= 100:
        return round(value)
    return round(value, 4)


def _write_box(
    box: tuple[float, float, float, float], size: tuple[int, int], convention: Convention
) -> list[float | int]:
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = size
    if convention.scale is not None:
        sx, sy = convention.scale / width, convention.scale / height
        x1, x2, y1, y2 = x1 * sx, x2 * sx, y1 * sy, y2 * sy
    values = [y1, x1, y2, x2] if convention.order == "yxyx" else [x1, y1, x2, y2]
    return [_number(v, convention) for v in values]


def _centre(box: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    """A box collapsed onto its centre, so :func:`_write_box` writes the point first."""
    x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return (x, y, x, y)


def _mask_png(image: Any, label: str, box: tuple[int, int, int, int]) -> str:
    from PIL import Image

    pixels = _pixels(image)
    x1, y1, x2, y2 = box
    distance = np.linalg.norm(pixels[y1:y2, x1:x2] - np.asarray(TARGET_COLORS[label]), axis=2)
    crop = Image.fromarray(np.where(distance < _MATCH, 255, 0).astype(np.uint8), "L")
    return "data:image/png;base64," + base64.b64encode(_encode(crop, "PNG")).decode()


def true_answer(image: Any, convention: str | Convention, *, task: str = "detect") -> str:
    """What a perfect model answers for ``image`` (as it received it) in ``convention``.

    ``task`` ``"detect"`` writes boxes and labels; ``"segment"`` adds box-local PNG masks;
    ``"points"`` writes the centre of each target (key ``point``, two numbers in the
    convention's axis order and grid); ``"ocr"`` writes no text (the samples carry none).
    Conventions: ``yxyx-1000`` (key ``box_2d``), ``xyxy-pixels`` / ``xyxy-1000`` / ``xyxy-1``
    (key ``bbox_2d``), ``loc-1024`` (PaliGemma ``<locNNNN>`` tokens).
    """
    parsed = Convention.parse(convention)
    pixels = _pixels(image)
    size = (pixels.shape[1], pixels.shape[0])
    found = find_targets(pixels)
    if task == "ocr":
        return ""
    if parsed.tokens:
        bins = int(parsed.scale or 1024)
        parts = []
        for label, (x1, y1, x2, y2) in found.items():
            values = [y1 / size[1], x1 / size[0], y2 / size[1], x2 / size[0]]
            tokens = "".join(f"<loc{min(bins - 1, round(v * bins)):04d}>" for v in values)
            parts.append(f"{tokens} {label}")
        return " ; ".join(parts)
    if task == "points":
        return json.dumps(
            [
                {"point": _write_box(_centre(box), size, parsed)[:2], "label": label}
                for label, box in found.items()
            ]
        )
    key = "box_2d" if parsed.order == "yxyx" else "bbox_2d"
    items: list[dict[str, Any]] = []
    for label, box in found.items():
        item: dict[str, Any] = {key: _write_box(box, size, parsed), "label": label}
        if task == "segment":
            item["mask"] = _mask_png(pixels.astype(np.uint8), label, box)
        items.append(item)
    return json.dumps(items)


def tolerance_px(size: tuple[int, int]) -> float:
    """How far (pixels of the original) a box may land from the truth: a few pixels, plus half
    a percent of the image's longer side for the grid and resampling of large images."""
    return 3.0 + 0.005 * max(size)
