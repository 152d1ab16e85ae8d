"""The value types every vlmkit result is made of.

All are frozen attrs classes with keyword-only constructors and validators: a value that exists is
valid. Geometry is always in pixels of the original, upright image (EXIF orientation applied),
``xyxy`` floats. Masks are stored *box-local* — a crop plus its offset — and materialized to a
full frame only on request, because 100 full-resolution masks of a 4K photo would be 800 MB.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

import attrs
import numpy as np

from vlmkit.errors import ConfigError

if TYPE_CHECKING:
    import supervision as sv

__all__ = [
    "Box",
    "Description",
    "Detection",
    "Detections",
    "FinishReason",
    "FrameDetections",
    "LabelMap",
    "Mask",
    "OcrBlock",
    "OcrResult",
    "ParseReport",
    "Point",
    "Points",
    "Provenance",
    "Result",
    "SkippedItem",
    "TimedEvent",
    "Usage",
    "VideoResult",
]


def _as_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(value)


def _attributes(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


def _label(value: Any) -> str:
    return "" if value is None else str(value)


def _finite(_instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not math.isfinite(value):
        raise ConfigError(f"{attribute.name} must be a finite number, got {value!r}")


def _size(value: Sequence[int]) -> tuple[int, int]:
    width, height = (int(v) for v in value)
    if width <= 0 or height <= 0:
        raise ConfigError(
            f"image_size must be two positive integers (width, height), got {value!r}"
        )
    return width, height


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class Box:
    """An axis-aligned box in original-image pixels, ``x0 <= x1`` and ``y0 <= y1``."""

    x0: float = attrs.field(converter=float, validator=_finite)
    y0: float = attrs.field(converter=float, validator=_finite)
    x1: float = attrs.field(converter=float, validator=_finite)
    y1: float = attrs.field(converter=float, validator=_finite)

    def __attrs_post_init__(self) -> None:
        if self.x1 < self.x0 or self.y1 < self.y0:
            raise ConfigError(
                f"box corners out of order: ({self.x0}, {self.y0}, {self.x1}, {self.y1}); "
                "expected x0 <= x1 and y0 <= y1"
            )

    @classmethod
    def from_xyxy(cls, xyxy: Sequence[float]) -> Box:
        x0, y0, x1, y1 = (float(v) for v in xyxy)
        return cls(x0=x0, y0=y0, x1=x1, y1=y1)

    @classmethod
    def from_xywh(cls, xywh: Sequence[float]) -> Box:
        x, y, w, h = (float(v) for v in xywh)
        return cls(x0=x, y0=y, x1=x + w, y1=y + h)

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x1, self.y1)

    @property
    def xywh(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x1 - self.x0, self.y1 - self.y0)

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)

    def clip(self, image_size: Sequence[int]) -> Box:
        w, h = image_size
        return Box(
            x0=min(max(self.x0, 0.0), w),
            y0=min(max(self.y0, 0.0), h),
            x1=min(max(self.x1, 0.0), w),
            y1=min(max(self.y1, 0.0), h),
        )


@attrs.frozen(kw_only=True)
class Point:
    """A point in original-image pixels, with what the model said about it.

    The answer of the pointing task (:class:`Points`) is made of these: ``label`` names the
    thing pointed at, ``score`` is the model's confidence when it gave one, ``attributes``
    holds any other keys of the answer's item. A bare ``Point(x=..., y=...)`` is plain
    geometry (:attr:`Detection.point`).
    """

    x: float = attrs.field(converter=float, validator=_finite)
    y: float = attrs.field(converter=float, validator=_finite)
    label: str = attrs.field(default="", converter=_label)
    score: float | None = attrs.field(default=None)
    attributes: dict[str, Any] = attrs.field(factory=dict, converter=_attributes, hash=False)

    @score.validator
    def _check_score(self, _attribute: object, value: float | None) -> None:
        if value is not None and not math.isfinite(value):
            raise ConfigError(f"score must be finite, got {value!r}")

    @property
    def xy(self) -> tuple[float, float]:
        return (self.x, self.y)


def _mask_data(value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype != np.bool_ and array.dtype != np.uint8:
        if array.dtype.kind in "iuf" and array.size and array.min() >= 0 and array.max() <= 255:
            array = array.astype(np.uint8)
        else:
            raise ConfigError(
                f"mask data must be bool or uint8 (0–255 probability), got dtype {array.dtype}"
            )
    if array.ndim != 2:
        raise ConfigError(f"mask data must be 2-D (height, width), got shape {array.shape}")
    array.setflags(write=False)
    return array


@attrs.frozen(kw_only=True, eq=False)
class Mask:
    """A segmentation mask stored box-local: a crop plus the pixel offset of its top-left corner.

    ``data`` is a ``(h, w)`` bool array, or a uint8 probability map (0–255) binarized at
    ``threshold`` (pixels ``> threshold`` are inside; 127 is the midpoint Google's samples use).
    The crop may extend past the image; :meth:`to_full` clips it.
    """

    data: np.ndarray = attrs.field(converter=_mask_data)
    x: int = attrs.field(converter=int)
    y: int = attrs.field(converter=int)
    threshold: int = attrs.field(default=127, converter=int)

    @threshold.validator
    def _check_threshold(self, _attribute: object, value: int) -> None:
        if not 0 <= value <= 255:
            raise ConfigError(f"mask threshold must be within 0–255, got {value}")

    @classmethod
    def from_full(cls, full: np.ndarray) -> Mask:
        """Build a tight box-local mask from a full-frame ``(H, W)`` bool array."""
        full = np.asarray(full, dtype=bool)
        if full.ndim != 2:
            raise ConfigError(f"full mask must be 2-D, got shape {full.shape}")
        rows = np.flatnonzero(full.any(axis=1))
        cols = np.flatnonzero(full.any(axis=0))
        if not len(rows):
            return cls(data=np.zeros((0, 0), dtype=bool), x=0, y=0)
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        return cls(data=full[y0:y1, x0:x1].copy(), x=int(x0), y=int(y0))

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.data.shape[0]), int(self.data.shape[1]))

    @property
    def is_probability(self) -> bool:
        return self.data.dtype == np.uint8

    @property
    def binary(self) -> np.ndarray:
        """The crop as a bool array."""
        if self.data.dtype == np.bool_:
            return self.data
        return self.data > self.threshold

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.binary))

    @property
    def region(self) -> tuple[int, int, int, int]:
        """The crop's extent in image pixels, ``(x0, y0, x1, y1)`` (end exclusive)."""
        return (self.x, self.y, self.x + self.shape[1], self.y + self.shape[0])

    def to_full(self, image_size: Sequence[int]) -> np.ndarray:
        """Materialize a full-frame ``(H, W)`` bool array for an image of ``(width, height)``."""
        width, height = _size(image_size)
        full = np.zeros((height, width), dtype=bool)
        x0, y0, x1, y1 = self.region
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if cx1 > cx0 and cy1 > cy0:
            full[cy0:cy1, cx0:cx1] = self.binary[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        return full

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mask):
            return NotImplemented
        return (
            self.x == other.x
            and self.y == other.y
            and self.threshold == other.threshold
            and self.data.dtype == other.data.dtype
            and np.array_equal(self.data, other.data)
        )

    def __hash__(self) -> int:
        return hash((self.x, self.y, self.shape, self.threshold))


# --------------------------------------------------------------------------------------------
# provenance and reporting
# --------------------------------------------------------------------------------------------
class FinishReason(enum.StrEnum):
    """Why the model stopped. Anything but ``STOP`` deserves a look."""

    STOP = "stop"
    MAX_TOKENS = "max_tokens"  # the answer was cut off by the token limit
    SAFETY = "safety"  # the answer was withheld by a safety filter
    BLOCKED = "blocked"  # the prompt itself was refused
    EMPTY = "empty"  # the model answered nothing
    OTHER = "other"


@attrs.frozen(kw_only=True)
class Usage:
    """Tokens and time one or more model calls cost. Adding two usages sums them.

    ``cached_tokens`` is the part of ``prompt_tokens`` the provider served from its context cache
    (billed at a lower rate); it is included in ``prompt_tokens``, not added to it.
    """

    prompt_tokens: int = attrs.field(default=0, converter=int)
    output_tokens: int = attrs.field(default=0, converter=int)
    thinking_tokens: int = attrs.field(default=0, converter=int)
    latency_s: float = attrs.field(default=0.0, converter=float)
    calls: int = attrs.field(default=1, converter=int)
    cost_usd: float | None = None
    cached_tokens: int = attrs.field(default=0, converter=int)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens + self.thinking_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        cost = None
        if self.cost_usd is not None or other.cost_usd is not None:
            cost = (self.cost_usd or 0.0) + (other.cost_usd or 0.0)
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            thinking_tokens=self.thinking_tokens + other.thinking_tokens,
            latency_s=self.latency_s + other.latency_s,
            calls=self.calls + other.calls,
            cost_usd=cost,
            cached_tokens=self.cached_tokens + other.cached_tokens,
        )

    @classmethod
    def zero(cls) -> Usage:
        return cls(calls=0)


def _options(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


@attrs.frozen(kw_only=True)
class Provenance:
    """Where a result came from — enough to re-parse or re-export it without calling the model.

    ``raw_text`` is the complete answer text; ``transform`` maps the sent image back to the
    original; ``finish`` says why the model stopped.
    """

    task: str
    backend: str | None = None
    model: str | None = None
    prompt: str = ""
    options: dict[str, Any] = attrs.field(factory=dict, converter=_options)
    raw_text: str | None = None
    usage: Usage = attrs.field(factory=Usage.zero)
    finish: FinishReason = attrs.field(default=FinishReason.STOP, converter=FinishReason)
    convention: str | None = None
    transform: Any = None  # vlmkit.geometry.Transform; Any keeps this module import-light
    media: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple)  # content hashes / names
    cached: bool = False
    detail: str | None = None  # why the model stopped, in the provider's words (block reason)


@attrs.frozen(kw_only=True)
class SkippedItem:
    """One item of a model answer that could not be used, and why."""

    index: int
    reason: str
    excerpt: str = ""


@attrs.frozen(kw_only=True)
class ParseReport:
    """Everything parsing had to repair or leave out. Never silent: check :attr:`clean`."""

    swapped: int = 0  # boxes whose corners were out of order (sorted)
    clamped: int = 0  # boxes or points with values outside the grid (clamped)
    degenerate: int = 0  # boxes with no area after repair (dropped; not also in skipped)
    masks_resized: int = 0  # masks whose size did not match their box (resized)
    masks_invalid: int = 0  # masks that could not be decoded (item kept without a mask)
    masks_dropped: int = 0  # masks over the answer's MaskLimits (item kept without a mask)
    skipped: tuple[SkippedItem, ...] = attrs.field(default=(), converter=_as_tuple)
    truncated: bool = False  # the answer was cut off; only complete items were kept
    # JSON syntax repaired before the answer could be read, by kind, sorted: "comments",
    # "python-literals", "python-quotes", "trailing-commas", "unquoted-keys", "unquoted-values",
    # "other" (what the general repairer, json_repair, fixed: missing commas, unclosed strings).
    syntax: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple)

    @property
    def clean(self) -> bool:
        return not (
            self.swapped
            or self.clamped
            or self.degenerate
            or self.masks_invalid
            or self.masks_dropped
            or self.skipped
            or self.truncated
            or self.syntax
        )

    def summary(self) -> str:
        parts = []
        names = ("swapped", "clamped", "degenerate", "masks_resized", "masks_invalid")
        for name in (*names, "masks_dropped"):
            value = getattr(self, name)
            if value:
                parts.append(f"{name}={value}")
        if self.skipped:
            parts.append(f"skipped={len(self.skipped)}")
        if self.truncated:
            parts.append("truncated")
        if self.syntax:
            parts.append(f"syntax={'+'.join(self.syntax)}")
        return ", ".join(parts) or "clean"

    def __add__(self, other: ParseReport) -> ParseReport:
        return ParseReport(
            swapped=self.swapped + other.swapped,
            clamped=self.clamped + other.clamped,
            degenerate=self.degenerate + other.degenerate,
            masks_resized=self.masks_resized + other.masks_resized,
            masks_invalid=self.masks_invalid + other.masks_invalid,
            masks_dropped=self.masks_dropped + other.masks_dropped,
            skipped=self.skipped + other.skipped,
            truncated=self.truncated or other.truncated,
            syntax=tuple(sorted({*self.syntax, *other.syntax})),
        )


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class Result:
    """Common fields of every task result."""

    provenance: Provenance | None = None
    report: ParseReport = attrs.field(factory=ParseReport)

    @property
    def raw_text(self) -> str | None:
        return self.provenance.raw_text if self.provenance else None

    @property
    def usage(self) -> Usage:
        return self.provenance.usage if self.provenance else Usage.zero()

    @property
    def finish(self) -> FinishReason:
        return self.provenance.finish if self.provenance else FinishReason.STOP

    @property
    def complete(self) -> bool:
        """True when the model finished normally and nothing was cut off."""
        return self.finish is FinishReason.STOP and not self.report.truncated


def _tracker_id(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"tracker_id must be a non-negative integer or None, got {value!r}")
    return int(value)


@attrs.frozen(kw_only=True)
class Detection:
    """One found object: a box, a label, and optionally a score, a mask, a point and attributes
    (any extra keys the model returned for the item).

    ``tracker_id`` is the object's track id when the detection comes from a tracked video
    (:meth:`vlmkit.Session.track`): the same object keeps the same id on every frame.
    """

    box: Box
    label: str = attrs.field(default="", converter=_label)
    score: float | None = attrs.field(default=None)
    mask: Mask | None = None
    point: Point | None = None
    attributes: dict[str, Any] = attrs.field(factory=dict, converter=_attributes, hash=False)
    tracker_id: int | None = attrs.field(default=None, converter=_tracker_id)

    @score.validator
    def _check_score(self, _attribute: object, value: float | None) -> None:
        if value is not None and not math.isfinite(value):
            raise ConfigError(f"score must be finite, got {value!r}")


class LabelMap:
    """Stable class ids for labels across a whole run: ids are handed out in first-seen order
    and never change. Seed it with a list of known class names to fix their ids."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._ids: dict[str, int] = {}
        for name in names:
            self.id(name)

    def id(self, label: str) -> int:
        """The id of ``label``, assigning the next free id if it is new."""
        if label not in self._ids:
            self._ids[label] = len(self._ids)
        return self._ids[label]

    @property
    def names(self) -> list[str]:
        return list(self._ids)

    def __contains__(self, label: object) -> bool:
        return label in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"LabelMap({self.names!r})"


@attrs.frozen(kw_only=True)
class Detections(Result):
    """The objects found in one image, in pixels of that (original, upright) image."""

    items: tuple[Detection, ...] = attrs.field(default=(), converter=_as_tuple)
    image_size: tuple[int, int] = attrs.field(converter=_size)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Detection]:
        return iter(self.items)

    @overload
    def __getitem__(self, index: int) -> Detection: ...
    @overload
    def __getitem__(self, index: slice) -> Detections: ...
    def __getitem__(self, index: int | slice) -> Detection | Detections:
        if isinstance(index, slice):
            return attrs.evolve(self, items=self.items[index])
        return self.items[index]

    @property
    def xyxy(self) -> np.ndarray:
        """``(N, 4)`` float64 array of boxes."""
        if not self.items:
            return np.zeros((0, 4), dtype=np.float64)
        return np.array([d.box.xyxy for d in self.items], dtype=np.float64)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(d.label for d in self.items)

    @property
    def scores(self) -> np.ndarray:
        """``(N,)`` float64 scores; NaN where the model gave none."""
        return np.array(
            [np.nan if d.score is None else d.score for d in self.items], dtype=np.float64
        )

    @property
    def masks(self) -> tuple[Mask | None, ...]:
        return tuple(d.mask for d in self.items)

    @property
    def tracker_ids(self) -> tuple[int | None, ...]:
        """Each detection's track id (``None`` where it has none)."""
        return tuple(d.tracker_id for d in self.items)

    @property
    def has_masks(self) -> bool:
        return any(d.mask is not None for d in self.items)

    def filter(self, labels: Iterable[str]) -> Detections:
        """Keep only items whose label is one of ``labels`` (case-insensitive)."""
        wanted = {label.casefold() for label in labels}
        return attrs.evolve(self, items=[d for d in self.items if d.label.casefold() in wanted])

    def class_ids(self, label_map: LabelMap | Sequence[str] | Mapping[str, int] | None = None):
        """``(N,)`` int array of class ids from ``label_map`` (first-seen order if omitted)."""
        lookup = _label_lookup(label_map)
        return np.array([lookup(d.label) for d in self.items], dtype=int)

    def masks_dense(self) -> np.ndarray:
        """``(N, H, W)`` bool array of full-frame masks (all False where an item has none).

        This allocates N full frames; prefer the box-local :attr:`masks` for large images.
        """
        width, height = self.image_size
        out = np.zeros((len(self.items), height, width), dtype=bool)
        for i, detection in enumerate(self.items):
            if detection.mask is not None:
                out[i] = detection.mask.to_full(self.image_size)
        return out

    def to_supervision(
        self,
        label_map: LabelMap | Sequence[str] | Mapping[str, int] | None = None,
        *,
        masks: str = "compact",
    ) -> sv.Detections:
        """Convert to ``supervision.Detections``.

        Class ids come from ``label_map`` (a :class:`LabelMap` shared across a run keeps them
        stable; a list fixes them by position); ``data["class_name"]`` holds the labels.
        Masks are passed as ``sv.CompactMask`` (crop-sized, the default) or as a dense
        ``(N, H, W)`` array with ``masks="dense"``. Track ids go to ``tracker_id`` (``-1``
        for a detection without one), which is ``None`` when no detection has an id.
        """
        import supervision as sv

        if masks not in ("compact", "dense"):
            raise ConfigError(f"masks must be 'compact' or 'dense', got {masks!r}")
        n = len(self.items)
        scores = self.scores
        confidence = scores if n and not np.isnan(scores).any() else None
        mask_field: Any = None
        if self.has_masks:
            if masks == "dense" or not hasattr(sv, "CompactMask"):
                mask_field = self.masks_dense()
            else:
                mask_field = _compact_masks(sv, self.masks, self.image_size)
        return sv.Detections(
            xyxy=self.xyxy.astype(np.float32) if n else np.zeros((0, 4), dtype=np.float32),
            class_id=self.class_ids(label_map),
            confidence=confidence,
            mask=mask_field,
            tracker_id=_sv_tracker_ids(self.tracker_ids),
            data={"class_name": np.array(self.labels, dtype=object)},
        )


def _sv_tracker_ids(ids: tuple[int | None, ...]) -> np.ndarray | None:
    if all(tracker_id is None for tracker_id in ids):
        return None
    return np.array([-1 if tracker_id is None else tracker_id for tracker_id in ids], dtype=int)


def _compact_masks(sv: Any, masks: Sequence[Mask | None], image_size: tuple[int, int]) -> Any:
    """Pack box-local masks into ``sv.CompactMask`` without materializing any full frame.

    Each crop is the mask's own region clipped to the image, so ``to_dense()`` equals
    :meth:`Detections.masks_dense` pixel for pixel (pixels outside the box are kept, unlike
    ``CompactMask.from_dense`` which crops to the box). An item without a mask, or whose
    mask lies outside the image, gets supervision's 1×1 all-False crop.
    """
    width, height = image_size
    rles: list[np.ndarray] = []
    shapes: list[tuple[int, int]] = []
    offsets: list[tuple[int, int]] = []
    for mask in masks:
        crop: np.ndarray | None = None
        cx0 = cy0 = 0
        if mask is not None:
            x0, y0, x1, y1 = mask.region
            cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
            if cx1 > cx0 and cy1 > cy0:
                crop = mask.binary[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        if crop is None:
            crop = np.zeros((1, 1), dtype=bool)
            cx0, cy0 = min(max(cx0, 0), width - 1), min(max(cy0, 0), height - 1)
        # supervision's public encoder: column-major (COCO) run lengths of the crop.
        rles.append(np.asarray(sv.mask_to_rle(crop), dtype=np.int32))
        shapes.append((int(crop.shape[0]), int(crop.shape[1])))
        offsets.append((int(cx0), int(cy0)))
    return sv.CompactMask(
        rles,
        np.array(shapes, dtype=np.int32).reshape(-1, 2),
        np.array(offsets, dtype=np.int32).reshape(-1, 2),
        (height, width),
    )


def _label_lookup(label_map: LabelMap | Sequence[str] | Mapping[str, int] | None):
    if label_map is None:
        label_map = LabelMap()
    if isinstance(label_map, LabelMap):
        return label_map.id
    if isinstance(label_map, Mapping):
        mapping = dict(label_map)
    else:
        mapping = {name: i for i, name in enumerate(label_map)}

    def lookup(label: str) -> int:
        if label not in mapping:
            raise ConfigError(f"label {label!r} is not in the label map {sorted(mapping)}")
        return mapping[label]

    return lookup


def _point_items(value: Iterable[Any]) -> tuple[Point, ...]:
    """Points as given, or the older ``(Point, label)`` pairs folded into labelled points."""
    items = []
    for item in value:
        if isinstance(item, Point):
            items.append(item)
        elif isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], Point):
            items.append(attrs.evolve(item[0], label=_label(item[1])))
        else:
            raise ConfigError(f"Points items must be vlmkit.Point values, got {item!r}")
    return tuple(items)


@attrs.frozen(kw_only=True)
class Points(Result):
    """Labelled points found in one image (the pointing task), in pixels of that image."""

    items: tuple[Point, ...] = attrs.field(default=(), converter=_point_items)
    image_size: tuple[int, int] = attrs.field(converter=_size)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Point]:
        return iter(self.items)

    @overload
    def __getitem__(self, index: int) -> Point: ...
    @overload
    def __getitem__(self, index: slice) -> Points: ...
    def __getitem__(self, index: int | slice) -> Point | Points:
        if isinstance(index, slice):
            return attrs.evolve(self, items=self.items[index])
        return self.items[index]

    @property
    def xy(self) -> np.ndarray:
        """``(N, 2)`` float64 array of ``x, y`` pixels."""
        if not self.items:
            return np.zeros((0, 2), dtype=np.float64)
        return np.array([p.xy for p in self.items], dtype=np.float64)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(p.label for p in self.items)

    @property
    def scores(self) -> np.ndarray:
        """``(N,)`` float64 scores; NaN where the model gave none."""
        return np.array(
            [np.nan if p.score is None else p.score for p in self.items], dtype=np.float64
        )

    def filter(self, labels: Iterable[str]) -> Points:
        """Keep only points whose label is one of ``labels`` (case-insensitive)."""
        wanted = {label.casefold() for label in labels}
        return attrs.evolve(self, items=[p for p in self.items if p.label.casefold() in wanted])


@attrs.frozen(kw_only=True)
class Description(Result):
    """A free-text answer about one or more images (caption, VQA)."""

    text: str


@attrs.frozen(kw_only=True)
class OcrBlock:
    """A piece of recognized text, with its box when the model gave one."""

    text: str
    box: Box | None = None
    language: str | None = None


@attrs.frozen(kw_only=True)
class OcrResult(Result):
    """Text read from an image: the full text, and blocks with optional boxes."""

    text: str
    blocks: tuple[OcrBlock, ...] = attrs.field(default=(), converter=_as_tuple)
    language: str | None = None
    image_size: tuple[int, int] | None = None


def _seconds(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"timestamps must be finite and non-negative, got {value!r}")
    return value


@attrs.frozen(kw_only=True)
class TimedEvent:
    """Something that happens in a video during ``[start, end)`` seconds.

    ``end`` is ``None`` for an instant (a single timestamp).
    """

    start: float = attrs.field(converter=_seconds)  # type: ignore[misc]
    end: float | None = attrs.field(default=None, converter=_seconds)
    text: str = ""
    label: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.end is not None and self.end < self.start:
            raise ConfigError(f"event ends before it starts: [{self.start}, {self.end})")


@attrs.frozen(kw_only=True)
class FrameDetections:
    """The detections on one frame of a video: the frame's index in the source video (from 0;
    ``None`` when unknown), its time in seconds, and the detections in video pixels.

    It unpacks like the ``(timestamp, detections)`` pair it replaces:
    ``for timestamp, detections in result.frames``.
    """

    index: int | None = attrs.field(default=None, converter=attrs.converters.optional(int))
    timestamp_s: float = attrs.field(converter=float)
    detections: Detections

    def __iter__(self) -> Iterator[Any]:
        return iter((self.timestamp_s, self.detections))


def _frames(value: Iterable[Any]) -> tuple[FrameDetections, ...]:
    frames = []
    for frame in value:
        if not isinstance(frame, FrameDetections):
            timestamp, detections = frame
            frame = FrameDetections(timestamp_s=timestamp, detections=detections)
        frames.append(frame)
    return tuple(frames)


@attrs.frozen(kw_only=True)
class VideoResult(Result):
    """An answer about a video: the text, timed events in seconds, optional per-frame detections
    (:class:`FrameDetections`, in frame order; a ``(timestamp, detections)`` pair is accepted)."""

    text: str
    events: tuple[TimedEvent, ...] = attrs.field(default=(), converter=_as_tuple)
    frames: tuple[FrameDetections, ...] = attrs.field(default=(), converter=_frames)
    duration_s: float | None = None
