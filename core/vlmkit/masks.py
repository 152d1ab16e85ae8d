"""Decode, place, rasterize and export segmentation masks — vectorized, box-local.

VLMs answer masks in two shapes:

* **Gemini 2.5** — a base64 PNG *probability map* (0–255) covering only the item's box. It is
  decoded with :func:`decode_mask_image`, then resampled into the box in original-image pixels
  and binarized with :func:`place_probability_mask` (``> 127`` by default, the midpoint Google's
  samples use; ``> 0`` would grow every mask by half a mask pixel per side).
* **Gemini 3.x** — a polygon ``[[x, y], ...]`` on a 0–1000 grid over the full image. Convert it
  with :func:`polygon_from_normalized` and rasterize it with :func:`polygon_mask`.

Every result is a box-local :class:`~vlmkit.types.Mask` (a crop plus its offset): nothing here
allocates a full frame. :func:`mask_to_polygons` and :func:`mask_to_rle` turn masks into the
COCO / YOLO encodings the sinks write.

Model output is untrusted: anything that cannot be decoded raises :class:`~vlmkit.errors.ParseError`
with a short ``reason`` — never a silent empty mask — and a PNG claiming huge dimensions is
refused before its pixels are decoded. What one answer's masks may cost in all is bounded by
:class:`MaskLimits`: every function that allocates takes ``max_pixels`` and refuses (``reason``
:data:`LIMIT_REASON`) before allocating more.

Pixel convention: pixel ``(i, j)`` covers ``[j, j+1) × [i, i+1)`` in image coordinates; a float
box ``(x0, y0, x1, y1)`` is a continuous rectangle in the same space.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import math
import re
import warnings
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import attrs
import numpy as np
from PIL import Image

from vlmkit.errors import ConfigError, ParseError
from vlmkit.types import Mask

__all__ = [
    "MAX_MASK_SIDE",
    "MaskLimits",
    "PlacedMask",
    "decode_mask_image",
    "mask_to_polygons",
    "mask_to_rle",
    "place_probability_mask",
    "polygon_from_normalized",
    "polygon_mask",
    "rle_counts",
    "warm_up",
]

MAX_MASK_SIDE = 4096
"""Largest width or height accepted for a mask image (model output is untrusted)."""

LIMIT_REASON = "mask-limit"
"""The ``reason`` of the :class:`~vlmkit.errors.ParseError` raised when a mask would cost more
than the ``max_pixels`` it was given (parsers drop such masks and count them)."""

# An edge crossing a pixel row costs as much as this many mask pixels. Measured with
# benchmarks/bench_worst_case.py: 60 M crossings took 5.6 s of CPU (about 90 ns each), placing
# 132 M mask pixels about 0.5 s (about 4 ns each).
CROSSING_COST = 16
_CROSSING_CHUNK = 1 << 20  # rasterize at most this many crossings at once (bounded memory)


def _positive_int(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"MaskLimits.{attribute.name} must be an integer >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class MaskLimits:
    """What the masks of one model answer may cost, whatever the answer says.

    A model answer is untrusted: a 15 KB answer of 100 full-image boxes with 1×1 PNG masks
    would otherwise materialize 1.2 GB of masks on a 12 MP photo, and one zigzag polygon
    millions of scanline crossings. Masks are built in answer order until a limit would be
    exceeded; the masks beyond it are dropped (their detections kept) and counted in
    :attr:`vlmkit.ParseReport.masks_dropped`.

    ``pixels``: pixels one answer's masks may materialize — decoded PNG pixels, placed crop
    pixels, and :data:`CROSSING_COST` per polygon edge/row crossing. The default, 2**27
    (134 M), is 134 MiB of boolean crops at most: 14 times the 20 masks of the mask
    benchmark, or 11 full-frame masks of a 12 MP photo. ``vertices``: polygon vertices one
    answer may rasterize (default 100,000).
    """

    pixels: int = attrs.field(default=1 << 27, validator=_positive_int)
    vertices: int = attrs.field(default=100_000, validator=_positive_int)


def _over_limit(what: str, cost: int, limit: int) -> ParseError:
    return ParseError(
        f"mask dropped: {what} would cost {cost:,} pixels, over the {limit:,} left "
        "(raise vlmkit.masks.MaskLimits.pixels to keep more masks)",
        reason=LIMIT_REASON,
    )


# Formats a mask may come in. PNG is what Gemini sends; the others are cheap, well-fuzzed decoders.
_MASK_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
# Signatures that can never start base64 text: such bytes are an encoded image as they are.
_BINARY_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
_DATA_URL = re.compile(r"^data:(?P<mime>[^,;]*)(?P<params>(?:;[^,;]*)*),", re.IGNORECASE)
_URL_SAFE = str.maketrans("-_", "+/")
_WHITESPACE = re.compile(r"\s+")
# A placed crop larger than this without ``image_size`` to clip it is a caller bug.
_MAX_UNCLIPPED_REGION = 1 << 28


# --------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------
def _fail(reason: str, data: object = "") -> ParseError:
    excerpt = data if isinstance(data, str) else ""
    return ParseError(f"invalid mask: {reason}", raw_text=excerpt[:200], reason=reason)


def _image_bytes(data: str | bytes | bytearray | memoryview) -> bytes:
    """The encoded image bytes in ``data``: raw image bytes, or base64 text with or without a
    ``data:image/...;base64,`` prefix (standard or URL-safe alphabet; whitespace and missing
    padding are fine)."""
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if isinstance(data, bytes):
        if not data.strip():
            raise _fail("empty mask data")
        if data.startswith(_BINARY_MAGIC):
            return data
        try:
            return _base64_bytes(data.decode("ascii"))
        except (UnicodeDecodeError, ParseError):
            return data  # not base64 text: let the image decoder judge the raw bytes
    if not isinstance(data, str):
        raise _fail(f"expected a base64 string or bytes, got {type(data).__name__}")
    return _base64_bytes(data)


def _base64_bytes(data: str) -> bytes:
    text = data.strip()
    match = _DATA_URL.match(text)
    if match:
        mime = match["mime"].strip().lower()
        if not mime.startswith("image/"):
            raise _fail(f"data URL is not an image ({mime or 'no media type'})", data)
        if "base64" not in match["params"].lower():
            raise _fail("data URL is not base64-encoded", data)
        text = text[match.end() :]
    if text:
        try:  # the common case: standard alphabet, padded, on one line
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            pass
    text = _WHITESPACE.sub("", text).translate(_URL_SAFE).rstrip("=")
    if not text:
        raise _fail("empty mask data", data)
    if len(text) % 4 == 1:
        raise _fail("base64 text has an impossible length (truncated?)", data)
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _fail("not valid base64", data) from None


def _to_uint8(image: Image.Image) -> np.ndarray:
    """A ``(h, w)`` uint8 array from any single- or multi-band image."""
    mode = image.mode
    if mode == "L":
        return np.asarray(image, dtype=np.uint8)
    if mode.startswith("I;16") or mode == "I":
        # 16-bit grayscale: map 0..65535 onto 0..255 (65535 / 257 == 255 exactly).
        wide = np.asarray(image).astype(np.int64, copy=False)
        return ((np.clip(wide, 0, 65535) + 128) // 257).astype(np.uint8)
    if mode in ("LA", "La"):
        return np.asarray(image.getchannel("L"), dtype=np.uint8)
    # "1", "P", "RGB", "RGBA", "CMYK", ...: luminance, alpha ignored (as supervision does).
    return np.asarray(image.convert("L"), dtype=np.uint8)


def decode_mask_image(
    data: str | bytes, *, max_side: int = MAX_MASK_SIDE, max_pixels: int | None = None
) -> np.ndarray:
    """Decode a mask image into a ``(h, w)`` uint8 probability map (0–255).

    ``data`` is what the model put in the item's ``"mask"`` key: base64 text with or without a
    ``data:image/<fmt>;base64,`` prefix (standard or URL-safe alphabet, embedded whitespace and
    missing padding are fine) or the raw image bytes. Color masks are reduced to luminance,
    16-bit masks are scaled to 8 bits.

    Raises :class:`~vlmkit.errors.ParseError` (with a short ``reason``) when the data is empty,
    not base64, not an image, has no pixels, or claims a side longer than ``max_side``; with
    ``reason`` :data:`LIMIT_REASON` when it has more than ``max_pixels`` pixels (checked before
    its pixels are decoded).
    """
    raw = _image_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(raw), formats=_MASK_FORMATS)
        except Image.DecompressionBombError:
            raise _fail("mask image claims an enormous size") from None
        except (OSError, ValueError, SyntaxError):  # PIL's UnidentifiedImageError is an OSError
            raise _fail("data is not a readable image") from None
        with image:
            width, height = image.size
            if width <= 0 or height <= 0:
                raise _fail(f"mask image has no pixels ({width}×{height})")
            if width > max_side or height > max_side:
                raise _fail(
                    f"mask image is {width}×{height}, larger than the {max_side}×{max_side} limit"
                )
            if max_pixels is not None and width * height > max_pixels:
                raise _over_limit(f"a {width}×{height} mask image", width * height, max_pixels)
            try:
                image.load()
                prob = _to_uint8(image)
            except (OSError, ValueError, SyntaxError, EOFError) as err:
                raise _fail(f"mask image is corrupt ({err})") from None
    if prob.ndim != 2 or prob.size == 0:
        raise _fail(f"mask image decoded to an unusable array of shape {prob.shape}")
    return np.ascontiguousarray(prob)


# --------------------------------------------------------------------------------------------
# placing a probability crop into its box
# --------------------------------------------------------------------------------------------
def _box(box_xyxy: Sequence[float]) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    except (TypeError, ValueError):
        raise ConfigError(f"box must be four numbers (x0, y0, x1, y1), got {box_xyxy!r}") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ConfigError(f"box must be finite, got {box_xyxy!r}")
    if x1 < x0 or y1 < y0:
        raise ConfigError(f"box corners out of order: {box_xyxy!r}; expected x0 <= x1, y0 <= y1")
    return x0, y0, x1, y1


def _probability(prob: Any) -> np.ndarray:
    array = np.asarray(prob)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * np.uint8(255)
    elif array.dtype != np.uint8:
        # Integers within 0..255 are fine; floats are ambiguous (0–1 or 0–255?): refuse them.
        in_range = not array.size or (array.min() >= 0 and array.max() <= 255)
        if array.dtype.kind not in "iu" or not in_range:
            raise ConfigError(
                f"probability map must be uint8 (0–255) or bool, got {array.dtype}; "
                "convert it with np.asarray(..., dtype=np.uint8) first"
            )
        array = array.astype(np.uint8)
    if array.ndim != 2:
        raise ConfigError(f"probability map must be 2-D (h, w), got shape {array.shape}")
    return array


def _image_size(image_size: Sequence[int]) -> tuple[int, int]:
    width, height = (int(v) for v in image_size)
    if width <= 0 or height <= 0:
        raise ConfigError(
            f"image_size must be two positive integers (width, height), got {image_size!r}"
        )
    return width, height


class PlacedMask(NamedTuple):
    """What :func:`place_probability_mask` returns: the mask, and whether the crop had to be
    rescaled because its size differed from the box's (parsers count these as
    ``masks_resized``). Unpack it: ``mask, resized = place_probability_mask(...)``."""

    mask: Mask
    resized: bool


def _resize_needed(h: int, w: int, box_w: float, box_h: float) -> bool:
    # Rescaled when a side differs from the box's side by half a pixel or more.
    return abs(w - box_w) >= 0.5 or abs(h - box_h) >= 0.5


def _centers_inside(start: int, count: int, lo: float, hi: float) -> np.ndarray:
    centers = np.arange(start, start + count) + 0.5
    return (centers >= lo) & (centers < hi)


def _empty(x: int, y: int, threshold: int, keep_probability: bool) -> Mask:
    dtype = np.uint8 if keep_probability else np.bool_
    return Mask(data=np.zeros((0, 0), dtype=dtype), x=x, y=y, threshold=threshold)


def place_probability_mask(
    prob: np.ndarray,
    box_xyxy: Sequence[float],
    *,
    threshold: int = 127,
    keep_probability: bool = False,
    image_size: Sequence[int] | None = None,
    max_pixels: int | None = None,
) -> PlacedMask:
    """Resample a box-local probability crop into its box and binarize it.

    ``prob`` is a ``(h, w)`` uint8 map (0–255, e.g. from :func:`decode_mask_image`; bool is
    accepted as 0/255) that spans the float box ``box_xyxy`` in original-image pixels. The mask
    covers the integer pixel grid the box touches — ``floor(x0)..ceil(x1)`` by
    ``floor(y0)..ceil(y1)`` — and is resampled bilinearly so that the crop lands on the float box
    with sub-pixel accuracy: with PIL's ``resize(box=)`` (antialiased when shrinking), or with
    OpenCV's ``warpAffine`` when it is installed and the crop is enlarged on both axes (the
    common case; the same filter, about three times faster). A border pixel only partly covered by
    the box belongs to the mask only if its center lies in the box.

    Pixels ``> threshold`` are inside. With ``keep_probability=True`` the resampled uint8 map is
    stored with its threshold instead of a bool crop. ``image_size=(width, height)`` clips the
    crop to the image (recommended: a wild box then costs nothing). A box narrower or lower than
    one pixel, or lying outside the image, gives an empty ``0×0`` mask.

    Returns a :class:`PlacedMask` ``(mask, resized)``; ``resized`` is True when the crop's size
    differed from the box's by half a pixel or more on either side.

    Raises :class:`~vlmkit.errors.ConfigError` for a non-finite or inverted box, and
    :class:`~vlmkit.errors.ParseError` (``reason`` :data:`LIMIT_REASON`) before allocating
    anything when the placed crop would have more than ``max_pixels`` pixels.
    """
    if not 0 <= int(threshold) <= 255:
        raise ConfigError(f"mask threshold must be within 0–255, got {threshold}")
    threshold = int(threshold)
    array = _probability(prob)
    x0, y0, x1, y1 = _box(box_xyxy)
    gx0, gy0, gx1, gy1 = math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1)
    if image_size is not None:
        width, height = _image_size(image_size)
        gx0, gy0 = min(max(gx0, 0), width), min(max(gy0, 0), height)
        gx1, gy1 = min(gx1, width), min(gy1, height)
    box_w, box_h = x1 - x0, y1 - y0
    h, w = array.shape
    resized = _resize_needed(h, w, box_w, box_h)
    if box_w < 1 or box_h < 1 or h == 0 or w == 0 or gx1 <= gx0 or gy1 <= gy0:
        return PlacedMask(_empty(gx0, gy0, threshold, keep_probability), resized)
    out_w, out_h = gx1 - gx0, gy1 - gy0
    if max_pixels is not None and out_w * out_h > max_pixels:
        raise _over_limit(f"a {out_w}×{out_h} placed mask", out_w * out_h, max_pixels)
    if image_size is None and out_w * out_h > _MAX_UNCLIPPED_REGION:
        raise ConfigError(
            f"mask region {out_w}×{out_h} px is implausibly large; pass image_size to clip it"
        )

    sx, sy = w / box_w, h / box_h  # source pixels per output pixel
    cv2 = _opencv() if sx <= 1 and sy <= 1 and max(out_w, out_h) < _CV_MAX_SIDE else None
    if cv2 is not None:
        placed = _resample_opencv(cv2, array, sx, sy, gx0 - x0, gy0 - y0, out_w, out_h)
        data = placed if keep_probability else _binarize_opencv(cv2, placed, threshold)
    else:
        placed = _resample_pil(array, sx, sy, gx0 - x0, gy0 - y0, out_w, out_h)
        data = placed if keep_probability else placed > threshold
    # Border pixels whose centers lie outside the box are outside the mask.
    outside_cols = ~_centers_inside(gx0, out_w, x0, x1)
    outside_rows = ~_centers_inside(gy0, out_h, y0, y1)
    if outside_cols.any() or outside_rows.any():
        if not data.flags.writeable:
            data = data.copy()
        data[:, outside_cols] = 0
        data[outside_rows] = 0
    return PlacedMask(Mask(data=data, x=gx0, y=gy0, threshold=threshold), resized)


_CV_MAX_SIDE = 32767  # OpenCV's warpAffine limit


def warm_up() -> None:
    """Import what placing masks uses (OpenCV, where installed) now. A run of the segment
    task calls this when it is made: imported by its first answers instead, every worker
    would wait on the import lock and the GIL meanwhile (issue 16)."""
    _opencv()


@functools.cache
def _opencv() -> Any:
    """OpenCV when importable (optional; about three times faster than PIL at enlarging)."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def _resample_opencv(
    cv2: Any, array: np.ndarray, sx: float, sy: float, dx: float, dy: float, out_w: int, out_h: int
) -> np.ndarray:
    """Bilinear upscaling of ``array`` onto the output grid: output pixel ``j`` (center
    ``j + 0.5``, ``dx`` pixels from the box edge) samples source ``(j + 0.5 + dx) * sx`` in pixel
    corner coordinates, i.e. ``(j + 0.5 + dx) * sx - 0.5`` in OpenCV's pixel-center coordinates
    (positions are quantized to 1/32 source pixel). Only used when upscaling on both axes,
    where bilinear needs no antialiasing and equals PIL's filter."""
    # The crop is padded by one replicated pixel (shifting source coordinates by one) so that
    # every sample of a pixel whose center lies in the box reads real pixels: OpenCV's
    # out-of-range border path is about 50 times slower per pixel, which a tiny crop spread
    # over a large box (a 1×1 PNG for a full-image box) would otherwise take for every pixel.
    array = np.pad(array, 1, mode="edge")
    matrix = np.array([[sx, 0.0, (0.5 + dx) * sx + 0.5], [0.0, sy, (0.5 + dy) * sy + 0.5]])
    # Pixels whose centers lie in the box sample at most one pixel past the crop's edge, where
    # BORDER_REFLECT repeats the edge pixel exactly as BORDER_REPLICATE does; it is used because
    # OpenCV runs it multi-threaded (BORDER_REPLICATE/CONSTANT take a single-threaded IPP path).
    return cv2.warpAffine(
        array,
        matrix,
        (out_w, out_h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )


def _binarize_opencv(cv2: Any, placed: np.ndarray, threshold: int) -> np.ndarray:
    # THRESH_BINARY keeps values > threshold as 1: a 0/1 uint8 array is a valid bool view.
    return cv2.threshold(placed, threshold, 1, cv2.THRESH_BINARY, dst=placed)[1].view(np.bool_)


def _resample_pil(
    array: np.ndarray, sx: float, sy: float, dx: float, dy: float, out_w: int, out_h: int
) -> np.ndarray:
    """PIL's bilinear resampling (antialiased when downscaling) of ``array`` onto the output
    grid, through ``resize(box=)``. The crop is padded by edge replication, wide enough for the
    region's partial border pixels and the filter's support: output ``x`` maps to padded source
    ``(x + dx) * sx + pad_x``."""
    pad_x, pad_y = math.ceil(2 * sx) + 2, math.ceil(2 * sy) + 2
    source = Image.fromarray(np.pad(array, ((pad_y, pad_y), (pad_x, pad_x)), mode="edge"))
    src_box = (
        min(max(dx * sx + pad_x, 0.0), source.width),
        min(max(dy * sy + pad_y, 0.0), source.height),
        min(max((dx + out_w) * sx + pad_x, 0.0), source.width),
        min(max((dy + out_h) * sy + pad_y, 0.0), source.height),
    )
    resized = source.resize((out_w, out_h), Image.Resampling.BILINEAR, box=src_box)
    return np.asarray(resized, dtype=np.uint8)


# --------------------------------------------------------------------------------------------
# polygons
# --------------------------------------------------------------------------------------------
def _as_points(value: Any, what: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ParseError(
            f"{what} must be a list of [x, y] number pairs", reason=f"{what} is not numeric"
        ) from None
    if array.ndim != 2 or array.shape[1] != 2:
        raise ParseError(
            f"{what} must be a list of [x, y] pairs, got shape {array.shape}",
            reason=f"{what} has the wrong shape",
        )
    return array


def _polygon_parts(polygons: Any) -> list[np.ndarray]:
    """Split one polygon ``[[x, y], ...]`` or several ``[[[x, y], ...], ...]`` into (N, 2) parts."""
    if isinstance(polygons, np.ndarray):
        if polygons.ndim == 3:
            return [_as_points(part, "polygon") for part in polygons]
        return [_as_points(polygons, "polygon")]
    if not isinstance(polygons, Sequence) or isinstance(polygons, (str, bytes)) or not polygons:
        raise ParseError("polygon must be a non-empty list of points", reason="empty polygon")
    first = polygons[0]
    nested = (
        isinstance(first, (Sequence, np.ndarray))
        and not isinstance(first, (str, bytes))
        and len(first) > 0
        and isinstance(first[0], (Sequence, np.ndarray))
        and not isinstance(first[0], (str, bytes))
    )
    if nested:
        return [_as_points(part, "polygon part") for part in polygons]
    return [_as_points(polygons, "polygon")]


def polygon_from_normalized(
    points: Any,
    image_size: Sequence[int],
    order: Literal["xy", "yx"] = "xy",
    scale: float = 1000,
) -> np.ndarray:
    """Map one polygon on a normalized grid (Gemini 3.x: ``[[x, y], ...]`` on 0–1000 over the
    full image) to a ``(N, 2)`` float array of ``[x, y]`` original-image pixels.

    ``order="yx"`` reads ``[y, x]`` pairs. Call it per part for multi-part polygons. Non-finite
    points are passed through; :func:`polygon_mask` drops them.
    """
    if order not in ("xy", "yx"):
        raise ConfigError(f"order must be 'xy' or 'yx', got {order!r}")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ConfigError(f"scale must be a positive number, got {scale!r}")
    width, height = _image_size(image_size)
    array = _as_points(points, "polygon")
    if order == "yx":
        array = array[:, ::-1]
    return array * np.array([width / scale, height / scale])


class _Edges(NamedTuple):
    """The non-horizontal edges of one polygon and the crop rows each one crosses."""

    xa: np.ndarray
    ya: np.ndarray
    xb: np.ndarray
    yb: np.ndarray
    first: np.ndarray  # first crop row whose center the edge crosses
    spans: np.ndarray  # how many rows it crosses

    @property
    def crossings(self) -> int:
        return int(self.spans.sum())


def _edges(points: np.ndarray, gy0: int, out_h: int) -> _Edges:
    xa, ya = points[:, 0], points[:, 1]
    xb, yb = np.roll(xa, -1), np.roll(ya, -1)
    keep = ya != yb  # horizontal edges never cross a row center
    xa, ya, xb, yb = xa[keep], ya[keep], xb[keep], yb[keep]
    lo, hi = np.minimum(ya, yb), np.maximum(ya, yb)
    # Rows whose center gy0 + r + 0.5 lies in [lo, hi).
    first = np.clip(np.ceil(lo - gy0 - 0.5), 0, out_h).astype(np.int64)
    stop = np.clip(np.ceil(hi - gy0 - 0.5), 0, out_h).astype(np.int64)
    return _Edges(xa, ya, xb, yb, first, stop - first)


def _rasterize(edges: _Edges, gx0: int, gy0: int, out_w: int, out_h: int) -> np.ndarray:
    """Pixel-center sampling of one polygon (even-odd rule) on the crop ``[gx0, gx0 + out_w) ×
    [gy0, gy0 + out_h)``: pixel ``(r, c)`` is inside when its center lies in the polygon (left
    and top edges inclusive, right and bottom exclusive, so polygons sharing an edge tile).

    Vectorized scanline: every (edge, row) crossing toggles the parity of all pixels to its
    right; the cost is proportional to the crossings plus the crop's pixels, and the crossings
    are processed in chunks so that memory stays proportional to the crop.

    The toggles of eight rows share one 64-bit word per column (row ``r`` is byte ``r % 8``
    of word ``(r // 8, column)``), so that one XOR scan along the words does eight rows at
    once: NumPy scans a row's elements one by one, and 8x fewer of them took the scan from
    most of a 12 MP answer's parsing to a small part of it (issue 16). XOR never carries
    between bytes, so this holds on any byte order.
    """
    bands = -(-out_h // 8)
    toggles = np.zeros((bands, out_w + 1, 8), dtype=np.uint8)
    spans = edges.spans
    ends = np.cumsum(spans)
    begin = 0
    while begin < len(spans):
        # Whole edges, about _CROSSING_CHUNK crossings at a time (at least one edge).
        stop = max(
            int(np.searchsorted(ends, ends[begin] - spans[begin] + _CROSSING_CHUNK)), begin + 1
        )
        stop = min(stop, len(spans))
        part = spans[begin:stop]
        total = int(part.sum())
        if total:
            local = np.repeat(np.arange(begin, stop), part)
            rows = edges.first[local] + np.arange(total) - np.repeat(np.cumsum(part) - part, part)
            xa, ya = edges.xa[local], edges.ya[local]
            xb, yb = edges.xb[local], edges.yb[local]
            cross_x = xa + (gy0 + rows + 0.5 - ya) * (xb - xa) / (yb - ya)
            # First pixel whose center is at or right of the crossing.
            cols = np.clip(np.ceil(cross_x - gx0 - 0.5), 0, out_w).astype(np.int64)
            np.bitwise_xor.at(toggles, (rows >> 3, cols, rows & 7), 1)
        begin = stop
    words = np.bitwise_xor.accumulate(toggles.view(np.uint64)[..., 0], axis=1)
    parity = words.view(np.uint8).reshape(bands, out_w + 1, 8)[:, :out_w]
    inside = parity.transpose(0, 2, 1).reshape(bands * 8, out_w)[:out_h]
    return np.ascontiguousarray(inside).view(np.bool_)


def polygon_mask(
    polygons: Any, *, image_size: Sequence[int], max_pixels: int | None = None
) -> Mask:
    """Rasterize a polygon, or the union of several parts, into a box-local mask.

    ``polygons`` is one polygon ``[[x, y], ...]`` or a list of them, in original-image pixels
    (see :func:`polygon_from_normalized`). A pixel is inside when its center lies inside the
    polygon (even-odd rule per part; parts are united), so areas match the exact polygon area
    up to sampling noise along the outline. The crop covers only the parts' bounding box,
    clipped to the image; a polygon entirely outside the image gives an empty ``0×0`` mask.
    Non-finite points are dropped; parts left with fewer than 3 points are ignored.

    Raises :class:`~vlmkit.errors.ParseError` when the input is not a list of number pairs or
    no part has 3 finite points; with ``reason`` :data:`LIMIT_REASON`, before rasterizing, when
    its cost — crop pixels plus :data:`CROSSING_COST` per edge/row crossing (a zigzag
    polygon crosses every row many times) — exceeds ``max_pixels``.

    Why not ``PIL.ImageDraw.polygon`` or ``cv2.fillPoly``: both snap vertices to whole pixels and
    also fill every pixel the outline touches, so a 10×20 px square comes out 11×21 (+15 %).
    """
    return _polygon_mask(polygons, image_size, max_pixels)[0]


def _polygon_mask(
    polygons: Any, image_size: Sequence[int], max_pixels: int | None
) -> tuple[Mask, int]:
    """:func:`polygon_mask` and its cost in pixels."""
    width, height = _image_size(image_size)
    parts = []
    for part in _polygon_parts(polygons):
        finite = part[np.isfinite(part).all(axis=1)]
        if len(finite) >= 3:
            parts.append(finite)
    if not parts:
        raise ParseError(
            "polygon has fewer than 3 finite points", reason="polygon has fewer than 3 points"
        )
    stacked = np.concatenate(parts)
    lo, hi = stacked.min(axis=0), stacked.max(axis=0)
    gx0, gy0 = max(math.floor(lo[0]), 0), max(math.floor(lo[1]), 0)
    gx1, gy1 = min(math.ceil(hi[0]), width), min(math.ceil(hi[1]), height)
    if gx1 <= gx0 or gy1 <= gy0:
        empty = Mask(data=np.zeros((0, 0), dtype=bool), x=min(gx0, width), y=min(gy0, height))
        return empty, 0
    out_w, out_h = gx1 - gx0, gy1 - gy0
    edges = [_edges(part, gy0, out_h) for part in parts]
    cost = out_w * out_h * len(parts) + CROSSING_COST * sum(e.crossings for e in edges)
    if max_pixels is not None and cost > max_pixels:
        what = f"a {out_w}×{out_h} polygon mask of {len(stacked):,} vertices"
        raise _over_limit(what, cost, max_pixels)
    inside = _rasterize(edges[0], gx0, gy0, out_w, out_h)
    for part_edges in edges[1:]:
        inside |= _rasterize(part_edges, gx0, gy0, out_w, out_h)
    return Mask(data=inside, x=gx0, y=gy0), cost


# --------------------------------------------------------------------------------------------
# export encodings: polygons (YOLO, COCO) and RLE (COCO)
# --------------------------------------------------------------------------------------------
def _visible(mask: Mask, image_size: Sequence[int] | None) -> tuple[np.ndarray, int, int]:
    """The part of the mask's crop inside the image (all of it without ``image_size``)."""
    crop = mask.binary
    if image_size is None:
        return crop, mask.x, mask.y
    width, height = _image_size(image_size)
    x0, y0, x1, y1 = mask.region
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if cx1 <= cx0 or cy1 <= cy0:
        return np.zeros((0, 0), dtype=bool), max(min(x0, width), 0), max(min(y0, height), 0)
    return crop[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0], cx0, cy0


def _contours_opencv(crop: np.ndarray, tolerance: float) -> list[np.ndarray] | None:
    try:
        import cv2
    except ImportError:
        return None
    contours, hierarchy = cv2.findContours(
        crop.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE
    )
    if not contours:
        return []
    if tolerance > 0:
        contours = [cv2.approxPolyDP(c, tolerance, True) for c in contours]
    links = hierarchy[0]  # rows: next, previous, first child, parent
    ordered = []
    for index in np.flatnonzero(links[:, 3] < 0).tolist():  # outer contours, then their holes
        ordered.append(contours[index])
        child = int(links[index, 2])
        while child >= 0:
            ordered.append(contours[child])
            child = int(links[child, 0])
    return [c.reshape(-1, 2) for c in ordered]


def _contours_supervision(crop: np.ndarray, tolerance: float) -> list[np.ndarray]:
    # supervision's pure-NumPy contour tracer returns outer borders and holes in one list
    # (no hierarchy); group each hole after the outer border of the same 8-connected component.
    from scipy import ndimage
    from supervision import _cv2 as sv_cv2

    contours = [c.reshape(-1, 2) for c in sv_cv2.find_contours(crop.astype(np.uint8))]
    if not contours:
        return []
    if tolerance > 0:
        contours = [
            np.asarray(sv_cv2.approxPolyDP(c.reshape(-1, 1, 2), tolerance, True)).reshape(-1, 2)
            for c in contours
        ]
    labels, _ = ndimage.label(crop, structure=np.ones((3, 3), dtype=bool))
    first = np.array([c[0] for c in contours])
    component = labels[first[:, 1], first[:, 0]]
    # Outer borders run one way, holes the other (negative shoelace area in image coordinates).
    signed = np.array([_signed_area(c) for c in contours])
    is_hole = signed > 0
    order = np.lexsort((is_hole, component))
    return [contours[i] for i in order]


def _signed_area(points: np.ndarray) -> float:
    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def mask_to_polygons(
    mask: Mask, *, tolerance: float = 0.0, image_size: Sequence[int] | None = None
) -> list[np.ndarray]:
    """Trace a mask's outer contours and holes as ``(N, 2)`` float ``[x, y]`` arrays in
    full-image pixel coordinates (points are pixel indices of boundary pixels, as OpenCV gives).

    Each outer contour is followed by the contours of its holes; separate parts give separate
    outer contours. ``tolerance`` > 0 simplifies each contour with Douglas–Peucker (maximum
    deviation in pixels). Contours with fewer than 3 points (single pixels, 1-pixel lines) are
    left out — use :func:`mask_to_rle` for an exact encoding. ``image_size=(width, height)``
    clips the mask to the image first. Uses OpenCV when importable, else supervision's tracer.
    """
    if tolerance < 0 or not math.isfinite(tolerance):
        raise ConfigError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    crop, ox, oy = _visible(mask, image_size)
    if crop.size == 0 or not crop.any():
        return []
    contours = _contours_opencv(crop, tolerance)
    if contours is None:
        contours = _contours_supervision(crop, tolerance)
    offset = np.array([ox, oy], dtype=np.float64)
    return [c.astype(np.float64) + offset for c in contours if len(c) >= 3]


def mask_to_rle(mask: Mask, image_size: Sequence[int]) -> dict[str, list[int]]:
    """COCO uncompressed RLE of a mask placed in an image of ``(width, height)``.

    Returns ``{"size": [height, width], "counts": [...]}``: run lengths in column-major order,
    starting with a (possibly zero) run of background — exactly what
    ``pycocotools.mask.frPyObjects`` / ``decode`` read. Computed from the box-local crop only
    (the part outside the image is clipped); no full frame is built.
    """
    width, height = _image_size(image_size)
    return {"size": [height, width], "counts": rle_counts(mask, image_size).tolist()}


def rle_counts(mask: Mask, image_size: Sequence[int]) -> np.ndarray:
    """The ``counts`` of :func:`mask_to_rle` as an int64 array: 8 bytes per run where a list
    holds 36 (what to keep when many masks wait to be written)."""
    width, height = _image_size(image_size)
    total = width * height
    crop, ox, oy = _visible(mask, image_size)
    if crop.size == 0 or not crop.any():
        return np.array([total], dtype=np.int64)
    h, w = crop.shape
    # Run boundaries r = 0..h in each column (a boundary r lies just above row r): r = 0 where
    # the top row is inside, r = i + 1 where rows i and i + 1 differ, r = h where the bottom
    # row is inside. Sorted by (column, r) they alternate start, end in column-major order.
    # One comparison of the rows: no padded or transposed copy of the crop (issue 16: 13 ->
    # 3 ms for the 20 masks of a 12 MP answer).
    inner = np.flatnonzero(crop[1:] != crop[:-1])
    span = h + 1
    keys = np.concatenate(
        (
            np.flatnonzero(crop[0]) * span,
            (inner % w) * span + inner // w + 1,
            np.flatnonzero(crop[-1]) * span + h,
        )
    )
    keys.sort()
    # (column, r) -> full-image column-major index: (ox + column) * height + oy + r.
    starts, ends = keys[0::2], keys[1::2]
    starts = (ox + starts // span) * height + oy + starts % span
    ends = (ox + ends // span) * height + oy + ends % span
    # A run touching the bottom of one column continues at the top of the next column when the
    # crop spans the full image height: merge such runs.
    joined = ends[:-1] == starts[1:]
    if joined.any():
        keep = np.concatenate(([True], ~joined))
        starts = starts[keep]
        ends = ends[np.concatenate((~joined, [True]))]
    bounds = np.empty(2 * len(starts) + 2, dtype=np.int64)
    bounds[0] = 0
    bounds[1:-1:2] = starts
    bounds[2:-1:2] = ends
    bounds[-1] = total
    counts = np.diff(bounds)
    if counts[-1] == 0:  # the mask ends on foreground: no trailing background run
        counts = counts[:-1]
    return counts
