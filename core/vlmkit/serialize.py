"""Lossless, JSON-compatible dicts for every result type.

:func:`result_to_dict` turns a result into plain dicts, lists, strings and numbers that
``json.dumps`` writes and ``json.loads`` reads back unchanged; :func:`result_from_dict` rebuilds
an equal result. This is the format of the run ledger (``results.jsonl``), so every sink can be
rebuilt from it without calling a model again.

Exactness: Python floats survive a JSON round trip bit for bit (``repr`` is shortest round-trip),
so boxes, scores and times are kept as they are. Masks stay box-local and are stored as a PNG of
the crop, base64-encoded: a bool crop as a 1-bit PNG (:mod:`vlmkit.maskpng`), a uint8
probability crop as an 8-bit grayscale PNG together with its threshold — both decode to the
identical array. A stored PNG that is broken is a :class:`~vlmkit.errors.ConfigError` (the
ledger's reader skips such a line as corrupt).

Every dict carries ``"type"`` (``"detections"``, ``"description"``, ``"ocr"``, ``"video"``,
``"points"``) and ``"version": 1``. Provenance options and detection attributes are kept as JSON
values: tuples come back as lists, and a value JSON cannot hold is stored as its ``str()``.

Strings are kept exactly, including ones UTF-8 cannot encode (a lone surrogate such as
``"\\ud800"`` is valid JSON and can come from a model): :func:`to_json` writes such a document
with ``\\u`` escapes, which ``json.loads`` reads back into the identical string.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from vlmkit.errors import ConfigError
from vlmkit.maskpng import decode_png_mask, encode_png_mask
from vlmkit.types import (
    Box,
    Description,
    Detection,
    Detections,
    FinishReason,
    FrameDetections,
    Mask,
    OcrBlock,
    OcrResult,
    ParseReport,
    Point,
    Points,
    Provenance,
    Result,
    SkippedItem,
    TimedEvent,
    Usage,
    VideoResult,
)

__all__ = ["FORMAT_VERSION", "result_from_dict", "result_to_dict", "to_json"]

FORMAT_VERSION = 1


def to_json(data: Any, *, indent: int | None = None, compact: bool = False) -> str:
    """``data`` as JSON text that always encodes as UTF-8 and reads back exactly.

    Non-ASCII text is written as is (readable), unless some string cannot be encoded as UTF-8
    (a lone surrogate): then the whole document is written with ``\\u`` escapes
    (``ensure_ascii``), which ``json.loads`` turns back into the identical string. (The one
    exception: a high surrogate directly followed by a low one reads back as the character
    that pair encodes, as JSON defines it; strings parsed from JSON never hold such pairs.)
    """
    separators = (",", ":") if compact else None
    text = json.dumps(data, ensure_ascii=False, indent=indent, separators=separators)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(data, ensure_ascii=True, indent=indent, separators=separators)
    return text


# --------------------------------------------------------------------------------------------
# small pieces
# --------------------------------------------------------------------------------------------
def _json_value(value: Any) -> Any:
    """A JSON-compatible copy of ``value``: tuples become lists, numpy scalars Python numbers,
    anything else JSON cannot hold becomes its ``str()``."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _box_to(box: Box) -> list[float]:
    return [box.x0, box.y0, box.x1, box.y1]


def _box_from(data: Any) -> Box:
    return Box.from_xyxy(data)


def _png_encode(array: np.ndarray) -> str:
    if array.dtype == np.bool_:
        data = encode_png_mask(array)
    else:  # a uint8 probability crop: an 8-bit grayscale PNG
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", optimize=False)
        data = buffer.getvalue()
    return base64.b64encode(data).decode("ascii")


def mask_to_dict(mask: Mask) -> dict[str, Any]:
    """A box-local mask as ``{x, y, threshold, dtype, shape, png}`` (PNG of the crop, base64)."""
    height, width = mask.shape
    return {
        "x": mask.x,
        "y": mask.y,
        "threshold": mask.threshold,
        "dtype": "bool" if mask.data.dtype == np.bool_ else "uint8",
        "shape": [height, width],
        "png": _png_encode(mask.data) if height and width else "",
    }


def mask_from_dict(data: Mapping[str, Any]) -> Mask:
    """Inverse of :func:`mask_to_dict`."""
    dtype = data.get("dtype", "bool")
    if dtype not in ("bool", "uint8"):
        raise ConfigError(f"unknown mask dtype {dtype!r}; expected 'bool' or 'uint8'")
    height, width = (int(v) for v in data["shape"])
    if height and width:
        try:
            png = base64.b64decode(data["png"], validate=True)
        except (binascii.Error, TypeError) as err:
            raise ConfigError(f"a stored mask is not base64 ({err})") from None
        array = decode_png_mask(png, (height, width))
        if dtype == "bool":
            array = array.astype(bool) if array.dtype != np.bool_ else array
        elif array.dtype != np.uint8:
            array = array.astype(np.uint8)
        if array.shape != (height, width):  # a PNG with channels
            raise ConfigError(f"mask PNG holds {array.shape}, expected {height}x{width}")
    else:
        array = np.zeros((height, width), dtype=np.bool_ if dtype == "bool" else np.uint8)
    return Mask(data=array, x=data["x"], y=data["y"], threshold=data.get("threshold", 127))


def _usage_to(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "output_tokens": usage.output_tokens,
        "thinking_tokens": usage.thinking_tokens,
        "latency_s": usage.latency_s,
        "calls": usage.calls,
        "cost_usd": usage.cost_usd,
        "cached_tokens": usage.cached_tokens,
    }


def _usage_from(data: Mapping[str, Any]) -> Usage:
    return Usage(**{k: data[k] for k in _usage_to(Usage()) if k in data})


def _transform_to(transform: Any) -> Any:
    if transform is None:
        return None
    to_dict = getattr(transform, "to_dict", None)
    if to_dict is None:
        raise ConfigError(f"cannot serialize provenance transform {transform!r}: no to_dict()")
    return _json_value(to_dict())


def _transform_from(data: Any) -> Any:
    if data is None:
        return None
    from vlmkit.geometry import Transform

    return Transform.from_dict(dict(data))


def provenance_to_dict(provenance: Provenance) -> dict[str, Any]:
    return {
        "task": provenance.task,
        "backend": provenance.backend,
        "model": provenance.model,
        "prompt": provenance.prompt,
        "options": _json_value(provenance.options),
        "raw_text": provenance.raw_text,
        "usage": _usage_to(provenance.usage),
        "finish": provenance.finish.value,
        "convention": provenance.convention,
        "transform": _transform_to(provenance.transform),
        "media": list(provenance.media),
        "cached": provenance.cached,
        "detail": provenance.detail,
    }


def provenance_from_dict(data: Mapping[str, Any]) -> Provenance:
    return Provenance(
        task=data["task"],
        backend=data.get("backend"),
        model=data.get("model"),
        prompt=data.get("prompt", ""),
        options=data.get("options") or {},
        raw_text=data.get("raw_text"),
        usage=_usage_from(data["usage"]) if data.get("usage") is not None else Usage.zero(),
        finish=FinishReason(data.get("finish", "stop")),
        convention=data.get("convention"),
        transform=_transform_from(data.get("transform")),
        media=tuple(data.get("media", ())),
        cached=bool(data.get("cached", False)),
        detail=data.get("detail"),
    )


def report_to_dict(report: ParseReport) -> dict[str, Any]:
    return {
        "swapped": report.swapped,
        "clamped": report.clamped,
        "degenerate": report.degenerate,
        "masks_resized": report.masks_resized,
        "masks_invalid": report.masks_invalid,
        "masks_dropped": report.masks_dropped,
        "skipped": [
            {"index": s.index, "reason": s.reason, "excerpt": s.excerpt} for s in report.skipped
        ],
        "truncated": report.truncated,
        "syntax": list(report.syntax),
    }


def report_from_dict(data: Mapping[str, Any]) -> ParseReport:
    return ParseReport(
        swapped=data.get("swapped", 0),
        clamped=data.get("clamped", 0),
        degenerate=data.get("degenerate", 0),
        masks_resized=data.get("masks_resized", 0),
        masks_invalid=data.get("masks_invalid", 0),
        masks_dropped=data.get("masks_dropped", 0),
        skipped=tuple(SkippedItem(**s) for s in data.get("skipped", ())),
        truncated=bool(data.get("truncated", False)),
        syntax=tuple(data.get("syntax", ())),
    )


def _detection_to(detection: Detection) -> dict[str, Any]:
    out: dict[str, Any] = {"box": _box_to(detection.box), "label": detection.label}
    if detection.score is not None:
        out["score"] = detection.score
    if detection.mask is not None:
        out["mask"] = mask_to_dict(detection.mask)
    if detection.point is not None:
        out["point"] = [detection.point.x, detection.point.y]
    if detection.attributes:
        out["attributes"] = _json_value(detection.attributes)
    if detection.tracker_id is not None:
        out["tracker_id"] = detection.tracker_id
    return out


def _detection_from(data: Mapping[str, Any]) -> Detection:
    point = data.get("point")
    attributes = dict(data.get("attributes") or {})
    tracker_id = data.get("tracker_id")
    if tracker_id is None and isinstance(attributes.get("tracker_id"), int):
        tracker_id = attributes.pop("tracker_id")  # written before tracker_id was a field
    return Detection(
        box=_box_from(data["box"]),
        label=data.get("label", ""),
        score=data.get("score"),
        mask=mask_from_dict(data["mask"]) if data.get("mask") is not None else None,
        point=Point(x=point[0], y=point[1]) if point is not None else None,
        attributes=attributes,
        tracker_id=tracker_id,
    )


# --------------------------------------------------------------------------------------------
# per result type
# --------------------------------------------------------------------------------------------
def _detections_to(result: Detections) -> dict[str, Any]:
    return {
        "image_size": list(result.image_size),
        "items": [_detection_to(d) for d in result.items],
    }


def _detections_from(data: Mapping[str, Any], common: dict[str, Any]) -> Detections:
    return Detections(
        image_size=data["image_size"],
        items=tuple(_detection_from(d) for d in data.get("items", ())),
        **common,
    )


def _description_to(result: Description) -> dict[str, Any]:
    return {"text": result.text}


def _description_from(data: Mapping[str, Any], common: dict[str, Any]) -> Description:
    return Description(text=data["text"], **common)


def _ocr_to(result: OcrResult) -> dict[str, Any]:
    return {
        "text": result.text,
        "language": result.language,
        "image_size": list(result.image_size) if result.image_size is not None else None,
        "blocks": [
            {
                "text": block.text,
                "box": _box_to(block.box) if block.box is not None else None,
                "language": block.language,
            }
            for block in result.blocks
        ],
    }


def _ocr_from(data: Mapping[str, Any], common: dict[str, Any]) -> OcrResult:
    size = data.get("image_size")
    return OcrResult(
        text=data["text"],
        language=data.get("language"),
        image_size=tuple(size) if size is not None else None,
        blocks=tuple(
            OcrBlock(
                text=b["text"],
                box=_box_from(b["box"]) if b.get("box") is not None else None,
                language=b.get("language"),
            )
            for b in data.get("blocks", ())
        ),
        **common,
    )


def _video_to(result: VideoResult) -> dict[str, Any]:
    return {
        "text": result.text,
        "duration_s": result.duration_s,
        "events": [
            {"start": e.start, "end": e.end, "text": e.text, "label": e.label}
            for e in result.events
        ],
        "frames": [
            {
                "index": frame.index,
                "timestamp_s": frame.timestamp_s,
                "detections": result_to_dict(frame.detections),
            }
            for frame in result.frames
        ],
    }


def _video_from(data: Mapping[str, Any], common: dict[str, Any]) -> VideoResult:
    frames = []
    for entry in data.get("frames", ()):
        if isinstance(entry, Mapping):
            index, t, d = entry.get("index"), entry["timestamp_s"], entry["detections"]
        else:  # [timestamp, detections], written before frames carried their index
            index, (t, d) = None, entry
        detections = result_from_dict(d)
        if not isinstance(detections, Detections):
            raise ConfigError(f"video frame at {t}s holds {d.get('type')!r}, not detections")
        frames.append(FrameDetections(index=index, timestamp_s=t, detections=detections))
    return VideoResult(
        text=data["text"],
        duration_s=data.get("duration_s"),
        events=tuple(TimedEvent(**e) for e in data.get("events", ())),
        frames=tuple(frames),
        **common,
    )


def _point_to(point: Point) -> dict[str, Any]:
    out: dict[str, Any] = {"x": point.x, "y": point.y, "label": point.label}
    if point.score is not None:
        out["score"] = point.score
    if point.attributes:
        out["attributes"] = _json_value(point.attributes)
    return out


def _point_from(data: Any) -> Point:
    if isinstance(data, (list, tuple)):  # the first ledgers wrote [x, y, label]
        x, y, label = data
        return Point(x=x, y=y, label=label)
    return Point(
        x=data["x"],
        y=data["y"],
        label=data.get("label", ""),
        score=data.get("score"),
        attributes=data.get("attributes") or {},
    )


def _points_to(result: Points) -> dict[str, Any]:
    return {
        "image_size": list(result.image_size),
        "items": [_point_to(p) for p in result.items],
    }


def _points_from(data: Mapping[str, Any], common: dict[str, Any]) -> Points:
    return Points(
        image_size=data["image_size"],
        items=tuple(_point_from(p) for p in data.get("items", ())),
        **common,
    )


# Order matters for isinstance dispatch only if types inherit from each other; they do not.
_WRITERS: dict[type, tuple[str, Callable[[Any], dict[str, Any]]]] = {
    Detections: ("detections", _detections_to),
    Description: ("description", _description_to),
    OcrResult: ("ocr", _ocr_to),
    VideoResult: ("video", _video_to),
    Points: ("points", _points_to),
}
_READERS: dict[str, Callable[[Mapping[str, Any], dict[str, Any]], Result]] = {
    "detections": _detections_from,
    "description": _description_from,
    "ocr": _ocr_from,
    "video": _video_from,
    "points": _points_from,
}


def result_to_dict(result: Result) -> dict[str, Any]:
    """A JSON-compatible dict holding everything in ``result``, provenance and report included."""
    for cls in type(result).__mro__:
        if cls in _WRITERS:
            name, writer = _WRITERS[cls]
            break
    else:
        raise ConfigError(
            f"cannot serialize {type(result).__name__}; known result types: "
            + ", ".join(sorted(c.__name__ for c in _WRITERS))
        )
    out: dict[str, Any] = {"type": name, "version": FORMAT_VERSION}
    out.update(writer(result))
    out["provenance"] = (
        provenance_to_dict(result.provenance) if result.provenance is not None else None
    )
    out["report"] = report_to_dict(result.report)
    return out


def result_from_dict(data: Mapping[str, Any]) -> Result:
    """Rebuild the result :func:`result_to_dict` wrote. Raises :class:`~vlmkit.ConfigError` for
    an unknown type or a newer format version."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a serialized result must be a JSON object, got {type(data).__name__}")
    version = data.get("version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise ConfigError(
            f"result format version {version!r} is not supported (this vlmkit reads up to "
            f"{FORMAT_VERSION}); upgrade vlmkit to read it"
        )
    kind = data.get("type")
    reader = _READERS.get(kind) if isinstance(kind, str) else None
    if reader is None:
        raise ConfigError(f"unknown result type {kind!r}; known: {sorted(_READERS)}")
    provenance = data.get("provenance")
    report = data.get("report")
    try:
        common = {
            "provenance": provenance_from_dict(provenance) if provenance is not None else None,
            "report": report_from_dict(report) if report is not None else ParseReport(),
        }
        return reader(data, common)
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"malformed serialized {kind} result: {err!r}") from err
