"""Coordinate conventions and the transform from an original image to what a model saw.

Every model speaks its own coordinate dialect: Gemini and Gemma answer ``[ymin, xmin, ymax, xmax]``
on a 0–1000 grid, Qwen answers pixels of the image it was sent, PaliGemma answers ``<locNNNN>``
bins of 1024, others answer 0–1 floats. A :class:`Convention` names the dialect; a
:class:`Transform` records how the original image became the image that was sent (EXIF
orientation, resize, padding). :func:`boxes_to_pixels` maps answers back to pixels of the
original, upright image — the space every vlmkit result lives in — and :func:`boxes_from_pixels`
goes the other way. All work is vectorized numpy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import attrs
import numpy as np

from vlmkit.errors import ConfigError

__all__ = [
    "BoxRepairs",
    "Convention",
    "Transform",
    "boxes_from_pixels",
    "boxes_to_pixels",
    "points_from_pixels",
    "points_to_pixels",
]

Order = Literal["xyxy", "yxyx"]
Size = tuple[int, int]

_ALIASES = {
    "gemini": "yxyx-1000",
    "gemma": "yxyx-1000",
    "box_2d": "yxyx-1000",
    "qwen": "xyxy-pixels",
    "pixels": "xyxy-pixels",
    "paligemma": "loc-1024",
    "unit": "xyxy-1",
    "normalized": "xyxy-1",
}
_SPEC = re.compile(r"^(?P<order>xyxy|yxyx|loc)-(?P<scale>pixels|px|\d+(?:\.\d+)?)$")


def _check_size(name: str, value: Sequence[int]) -> tuple[int, int]:
    width, height = (int(v) for v in value)
    if width <= 0 or height <= 0:
        raise ConfigError(f"{name} must be two positive integers (width, height), got {value!r}")
    return width, height


@attrs.frozen(kw_only=True)
class Convention:
    """How a model writes a box: axis order and the grid it is normalized to.

    ``scale`` is the grid size (1000 for Gemini/Gemma, 1 for 0–1 floats, 1024 for PaliGemma
    ``<loc>`` bins) or ``None`` for pixels of the image as sent. Build one from its name with
    :meth:`parse`: ``"yxyx-1000"``, ``"xyxy-1000"``, ``"xyxy-pixels"``, ``"loc-1024"``,
    ``"xyxy-1"``.
    """

    order: Order
    scale: float | None
    tokens: bool = False  # PaliGemma writes the numbers as <locNNNN> tokens

    @property
    def name(self) -> str:
        if self.tokens:
            return f"loc-{self.scale:g}"
        return f"{self.order}-{'pixels' if self.scale is None else format(self.scale, 'g')}"

    @classmethod
    def parse(cls, value: str | Convention) -> Convention:
        if isinstance(value, Convention):
            return value
        text = _ALIASES.get(str(value).strip().lower(), str(value).strip().lower())
        match = _SPEC.match(text)
        if not match:
            raise ConfigError(
                f"unknown coordinate convention {value!r}; use one of 'yxyx-1000', 'xyxy-1000', "
                "'xyxy-pixels', 'loc-1024', 'xyxy-1' (or order-scale, e.g. 'yxyx-1')"
            )
        order, scale_text = match["order"], match["scale"]
        scale = None if scale_text in ("pixels", "px") else float(scale_text)
        if scale is not None and scale <= 0:
            raise ConfigError(f"convention scale must be positive, got {value!r}")
        if order == "loc":
            if scale is None:
                raise ConfigError("'loc' conventions need a bin count, e.g. 'loc-1024'")
            return cls(order="yxyx", scale=scale, tokens=True)
        return cls(order=order, scale=scale)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return self.name


# EXIF orientation tag → how the stored pixels are turned to show the picture upright.
# Each entry: (transpose, flip_x, flip_y) applied to stored coordinates in that order.
_ORIENTATIONS: dict[int, tuple[bool, bool, bool]] = {
    1: (False, False, False),
    2: (False, True, False),
    3: (False, True, True),
    4: (False, False, True),
    5: (True, False, False),
    6: (True, True, False),
    7: (True, True, True),
    8: (True, False, True),
}


@attrs.frozen(kw_only=True)
class Transform:
    """How the original image became the image a model was sent.

    The *original* image is the picture as a person sees it: stored pixels with their EXIF
    orientation applied (``original_size`` is that upright size). The *sent* image is the
    original scaled by ``scale`` (sent pixels per original pixel, per axis) and placed at
    ``offset`` (padding on the left and top) on a canvas of ``sent_size``.
    ``orientation`` is the EXIF tag (1–8) that turned the stored pixels upright;
    :meth:`to_stored` maps results into the stored, un-rotated pixel grid when a tool wants that.
    """

    original_size: Size = attrs.field(converter=lambda v: _check_size("original_size", v))
    sent_size: Size = attrs.field(converter=lambda v: _check_size("sent_size", v))
    scale: tuple[float, float] = attrs.field(converter=lambda v: (float(v[0]), float(v[1])))
    offset: tuple[float, float] = attrs.field(
        default=(0.0, 0.0), converter=lambda v: (float(v[0]), float(v[1]))
    )
    orientation: int = attrs.field(default=1)

    @scale.validator
    def _check_scale(self, _attribute: object, value: tuple[float, float]) -> None:
        if not all(np.isfinite(value)) or min(value) <= 0:
            raise ConfigError(f"scale must be two positive finite numbers, got {value!r}")

    @orientation.validator
    def _check_orientation(self, _attribute: object, value: int) -> None:
        if value not in _ORIENTATIONS:
            raise ConfigError(f"orientation must be an EXIF orientation 1–8, got {value!r}")

    # -- constructors ---------------------------------------------------------------------
    @classmethod
    def identity(cls, size: Sequence[int], *, orientation: int = 1) -> Transform:
        """The model saw the original image unchanged."""
        return cls(original_size=size, sent_size=size, scale=(1.0, 1.0), orientation=orientation)

    @classmethod
    def resize(
        cls, original_size: Sequence[int], sent_size: Sequence[int], *, orientation: int = 1
    ) -> Transform:
        """The original was resized (possibly changing aspect ratio) to ``sent_size``."""
        ow, oh = _check_size("original_size", original_size)
        sw, sh = _check_size("sent_size", sent_size)
        return cls(
            original_size=(ow, oh),
            sent_size=(sw, sh),
            scale=(sw / ow, sh / oh),
            orientation=orientation,
        )

    @classmethod
    def letterbox(
        cls, original_size: Sequence[int], canvas_size: Sequence[int], *, orientation: int = 1
    ) -> Transform:
        """The original was scaled to fit ``canvas_size`` keeping its aspect ratio, then centred
        with padding (the usual square-canvas preprocessing)."""
        ow, oh = _check_size("original_size", original_size)
        cw, ch = _check_size("canvas_size", canvas_size)
        factor = min(cw / ow, ch / oh)
        content_w, content_h = ow * factor, oh * factor
        return cls(
            original_size=(ow, oh),
            sent_size=(cw, ch),
            scale=(factor, factor),
            offset=((cw - content_w) / 2, (ch - content_h) / 2),
            orientation=orientation,
        )

    # -- properties -----------------------------------------------------------------------
    @property
    def stored_size(self) -> Size:
        """Size of the stored pixel grid before the EXIF orientation was applied."""
        transpose = _ORIENTATIONS[self.orientation][0]
        w, h = self.original_size
        return (h, w) if transpose else (w, h)

    @property
    def is_identity(self) -> bool:
        return (
            self.sent_size == self.original_size
            and self.scale == (1.0, 1.0)
            and self.offset == (0.0, 0.0)
        )

    # -- mapping points (N, 2) xy ---------------------------------------------------------
    def points_to_original(self, xy: np.ndarray) -> np.ndarray:
        """Sent-image pixels → original-image pixels."""
        xy = np.asarray(xy, dtype=np.float64)
        return (xy - np.asarray(self.offset)) / np.asarray(self.scale)

    def points_to_sent(self, xy: np.ndarray) -> np.ndarray:
        """Original-image pixels → sent-image pixels."""
        xy = np.asarray(xy, dtype=np.float64)
        return xy * np.asarray(self.scale) + np.asarray(self.offset)

    def points_to_stored(self, xy: np.ndarray) -> np.ndarray:
        """Original (upright) pixels → stored pixels (before the EXIF orientation)."""
        transpose, flip_x, flip_y = _ORIENTATIONS[self.orientation]
        xy = np.array(xy, dtype=np.float64, copy=True).reshape(-1, 2)
        w, h = self.original_size
        if flip_y:
            xy[:, 1] = h - xy[:, 1]
        if flip_x:
            xy[:, 0] = w - xy[:, 0]
        if transpose:
            xy = xy[:, ::-1].copy()
        return xy

    def points_from_stored(self, xy: np.ndarray) -> np.ndarray:
        """Stored pixels → original (upright) pixels."""
        transpose, flip_x, flip_y = _ORIENTATIONS[self.orientation]
        xy = np.array(xy, dtype=np.float64, copy=True).reshape(-1, 2)
        if transpose:
            xy = xy[:, ::-1].copy()
        w, h = self.original_size
        if flip_x:
            xy[:, 0] = w - xy[:, 0]
        if flip_y:
            xy[:, 1] = h - xy[:, 1]
        return xy

    # -- mapping boxes (N, 4) xyxy --------------------------------------------------------
    def boxes_to_original(self, xyxy: np.ndarray) -> np.ndarray:
        xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        return self.points_to_original(xyxy.reshape(-1, 2)).reshape(-1, 4)

    def boxes_to_sent(self, xyxy: np.ndarray) -> np.ndarray:
        xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        return self.points_to_sent(xyxy.reshape(-1, 2)).reshape(-1, 4)

    def boxes_to_stored(self, xyxy: np.ndarray) -> np.ndarray:
        """Original (upright) boxes → boxes in the stored pixel grid (corners re-sorted)."""
        return _sorted_corners(self.points_to_stored(np.asarray(xyxy).reshape(-1, 2)))

    def boxes_from_stored(self, xyxy: np.ndarray) -> np.ndarray:
        return _sorted_corners(self.points_from_stored(np.asarray(xyxy).reshape(-1, 2)))

    def then_resize(self, new_sent_size: Sequence[int]) -> Transform:
        """This transform followed by a resize of the sent image to ``new_sent_size``."""
        sw, sh = _check_size("new_sent_size", new_sent_size)
        fx, fy = sw / self.sent_size[0], sh / self.sent_size[1]
        return Transform(
            original_size=self.original_size,
            sent_size=(sw, sh),
            scale=(self.scale[0] * fx, self.scale[1] * fy),
            offset=(self.offset[0] * fx, self.offset[1] * fy),
            orientation=self.orientation,
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "original_size": list(self.original_size),
            "sent_size": list(self.sent_size),
            "scale": list(self.scale),
            "offset": list(self.offset),
            "orientation": self.orientation,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Transform:
        return cls(**data)  # type: ignore[arg-type]


def _sorted_corners(points: np.ndarray) -> np.ndarray:
    pairs = points.reshape(-1, 2, 2)
    return np.concatenate([pairs.min(axis=1), pairs.max(axis=1)], axis=1)


@attrs.frozen(kw_only=True)
class BoxRepairs:
    """What :func:`boxes_to_pixels` had to fix: counts per kind and which rows were kept."""

    keep: np.ndarray = attrs.field(eq=attrs.cmp_using(eq=np.array_equal))
    swapped: int = 0
    clamped: int = 0
    degenerate: int = 0


def _grid_extent(convention: Convention, transform: Transform) -> np.ndarray:
    """Upper bounds of the grid in the convention's own (x, y) axes."""
    if convention.scale is None:
        return np.asarray(transform.sent_size, dtype=np.float64)
    return np.asarray([convention.scale, convention.scale], dtype=np.float64)


def boxes_to_pixels(
    values: np.ndarray | Sequence[Sequence[float]],
    convention: str | Convention,
    transform: Transform,
    *,
    repair: bool = True,
) -> tuple[np.ndarray, BoxRepairs]:
    """Map raw model boxes to ``xyxy`` pixels of the original image.

    ``values`` is ``(N, 4)`` in the convention's order and grid. With ``repair`` (the default),
    swapped corners are sorted, values outside the grid are clamped to it and boxes with no
    area are dropped — each counted in the returned :class:`BoxRepairs`, whose ``keep`` marks
    the rows that survived. Without ``repair`` the values are mapped as they are.
    """
    # Array methods and ufuncs rather than the np.* wrappers: a detection answer has a few
    # boxes, so per-call overhead, not arithmetic, is this function's cost (issue 16).
    conv = Convention.parse(convention)
    raw = np.asarray(values, dtype=np.float64).reshape(-1, 4)
    xyxy = raw[:, [1, 0, 3, 2]] if conv.order == "yxyx" else raw.copy()
    n = len(xyxy)
    swapped = clamped = degenerate = 0
    keep = np.ones(n, dtype=bool)
    if repair and n:
        low, high = xyxy[:, :2], xyxy[:, 2:]
        fixed = np.concatenate((np.minimum(low, high), np.maximum(low, high)), axis=1)
        swapped = int(np.count_nonzero((fixed != xyxy).any(axis=1)))
        extent = _grid_extent(conv, transform)
        upper = np.concatenate((extent, extent))
        clipped = np.minimum(np.maximum(fixed, 0.0), upper)
        clamped = int(np.count_nonzero((clipped != fixed).any(axis=1)))
        keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
        degenerate = n - int(np.count_nonzero(keep))
        xyxy = clipped
    if conv.scale is not None:
        sent_w, sent_h = transform.sent_size
        xyxy = xyxy / conv.scale * np.array([sent_w, sent_h, sent_w, sent_h], dtype=np.float64)
    pixels = xyxy if transform.is_identity else transform.boxes_to_original(xyxy)
    return pixels, BoxRepairs(keep=keep, swapped=swapped, clamped=clamped, degenerate=degenerate)


def boxes_from_pixels(
    xyxy: np.ndarray | Sequence[Sequence[float]],
    convention: str | Convention,
    transform: Transform,
) -> np.ndarray:
    """Inverse of :func:`boxes_to_pixels` (without repairs): original pixels → model values."""
    conv = Convention.parse(convention)
    sent = transform.boxes_to_sent(np.asarray(xyxy, dtype=np.float64).reshape(-1, 4))
    if conv.scale is not None:
        sent_w, sent_h = transform.sent_size
        sent = sent / np.array([sent_w, sent_h, sent_w, sent_h], dtype=np.float64) * conv.scale
    return sent[:, [1, 0, 3, 2]] if conv.order == "yxyx" else sent


def points_to_pixels(
    values: np.ndarray | Sequence[Sequence[float]],
    convention: str | Convention,
    transform: Transform,
    *,
    repair: bool = True,
) -> tuple[np.ndarray, int]:
    """Map raw model points (``(N, 2)`` in the convention's order) to original ``xy`` pixels.

    Returns the points and how many were clamped into the grid.
    """
    conv = Convention.parse(convention)
    raw = np.asarray(values, dtype=np.float64).reshape(-1, 2)
    xy = raw[:, ::-1].copy() if conv.order == "yxyx" else raw.copy()
    clamped = 0
    if repair and len(xy):
        clipped = np.clip(xy, 0.0, _grid_extent(conv, transform))
        clamped = int(np.any(clipped != xy, axis=1).sum())
        xy = clipped
    if conv.scale is not None:
        xy = xy / conv.scale * np.asarray(transform.sent_size, dtype=np.float64)
    return (xy if transform.is_identity else transform.points_to_original(xy)), clamped


def points_from_pixels(
    xy: np.ndarray | Sequence[Sequence[float]],
    convention: str | Convention,
    transform: Transform,
) -> np.ndarray:
    """Inverse of :func:`points_to_pixels`: original ``xy`` pixels → model values."""
    conv = Convention.parse(convention)
    sent = transform.points_to_sent(np.asarray(xy, dtype=np.float64).reshape(-1, 2))
    if conv.scale is not None:
        sent = sent / np.asarray(transform.sent_size, dtype=np.float64) * conv.scale
    return sent[:, ::-1] if conv.order == "yxyx" else sent
