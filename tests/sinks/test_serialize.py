"""Round trips through vlmkit.serialize are exact, via real JSON text."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vlmkit.errors import ConfigError
from vlmkit.geometry import Transform
from vlmkit.ledger import LedgerRecord
from vlmkit.serialize import result_from_dict, result_to_dict, to_json
from vlmkit.types import (
    Box,
    Description,
    Detection,
    Detections,
    FinishReason,
    Mask,
    OcrBlock,
    OcrResult,
    ParseReport,
    Point,
    Points,
    Provenance,
    SkippedItem,
    TimedEvent,
    Usage,
    VideoResult,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

floats = st.floats(allow_nan=False, allow_infinity=False, width=64, min_value=-1e6, max_value=1e6)
positive = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
# Any code point, lone surrogates included: "\ud800" is valid JSON and a model can emit it.
# (st.text() would drop the surrogates of such an alphabet, so strings are joined lists.)
# A high surrogate followed by a low one is the UTF-16 form of one character, and JSON reads
# "\\ud800\\udc00" as that character: such pairs are joined, as json.loads does, so every
# generated string is one JSON can carry (any other surrogate stays lone).
any_char = st.characters(codec=None) | st.characters(categories=["Cs"])


def _as_json_reads_it(text: str) -> str:
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def wild_text(max_size: int | None = None):
    joined = st.lists(any_char, max_size=max_size).map("".join).map(_as_json_reads_it)
    return st.text(max_size=max_size) | joined


text = wild_text(20)
json_scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | floats | text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def boxes(draw):
    x0, y0 = draw(floats), draw(floats)
    return Box(x0=x0, y0=y0, x1=x0 + draw(positive), y1=y0 + draw(positive))


@st.composite
def masks(draw):
    h, w = draw(st.integers(0, 12)), draw(st.integers(0, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if draw(st.booleans()):
        data = rng.random((h, w)) > 0.5
    else:
        data = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
    return Mask(
        data=data,
        x=draw(st.integers(-50, 500)),
        y=draw(st.integers(-50, 500)),
        threshold=draw(st.integers(0, 255)),
    )


@st.composite
def provenances(draw):
    transform = draw(
        st.none()
        | st.builds(
            lambda w, h, s, o: Transform(
                original_size=(w, h), sent_size=(w, h), scale=(s, s), offset=(o, o)
            ),
            st.integers(1, 5000),
            st.integers(1, 5000),
            st.floats(0.01, 10),
            st.floats(0, 100),
        )
    )
    return Provenance(
        task=draw(st.sampled_from(["detect", "segment", "describe", "ocr", "video"])),
        backend=draw(st.none() | text),
        model=draw(st.none() | text),
        prompt=draw(text),
        options=draw(st.dictionaries(text, json_values, max_size=3)),
        raw_text=draw(st.none() | wild_text(200)),
        usage=Usage(
            prompt_tokens=draw(st.integers(0, 10**6)),
            output_tokens=draw(st.integers(0, 10**6)),
            thinking_tokens=draw(st.integers(0, 10**6)),
            latency_s=draw(positive),
            calls=draw(st.integers(0, 10)),
            cost_usd=draw(st.none() | positive),
        ),
        finish=draw(st.sampled_from(list(FinishReason))),
        convention=draw(st.none() | st.sampled_from(["yxyx-1000", "xyxy-pixels"])),
        transform=transform,
        media=draw(st.lists(text, max_size=3)),
        cached=draw(st.booleans()),
    )


reports = st.builds(
    ParseReport,
    swapped=st.integers(0, 5),
    clamped=st.integers(0, 5),
    degenerate=st.integers(0, 5),
    masks_resized=st.integers(0, 5),
    masks_invalid=st.integers(0, 5),
    masks_dropped=st.integers(0, 5),
    syntax=st.lists(st.sampled_from(["comments", "other", "python-quotes"]), unique=True).map(
        sorted
    ),
    skipped=st.lists(
        st.builds(SkippedItem, index=st.integers(0, 9), reason=text, excerpt=text), max_size=2
    ),
    truncated=st.booleans(),
)
common = {"provenance": st.none() | provenances(), "report": reports}
sizes = st.tuples(st.integers(1, 8000), st.integers(1, 8000))


@st.composite
def detection_results(draw, with_masks: bool):
    items = draw(
        st.lists(
            st.builds(
                Detection,
                box=boxes(),
                label=text,
                score=st.none() | st.floats(0, 1),
                mask=masks() if with_masks else st.none(),
                point=st.none() | st.builds(Point, x=floats, y=floats),
                attributes=st.dictionaries(text, json_values, max_size=2),
            ),
            max_size=4,
        )
    )
    return Detections(
        items=items, image_size=draw(sizes), **{k: draw(v) for k, v in common.items()}
    )


def roundtrip(result):
    """Through real JSON text, both as a ledger line (UTF-8 bytes) and with json's defaults."""
    data = result_to_dict(result)
    line = to_json(data, compact=True).encode("utf-8")  # must never raise
    via_line = result_from_dict(json.loads(line))
    assert via_line == result
    return result_from_dict(json.loads(json.dumps(data)))


@FAST
@given(detection_results(with_masks=False))
def test_detections_without_masks_round_trip(result):
    assert roundtrip(result) == result


@FAST
@given(detection_results(with_masks=True))
def test_detections_with_masks_round_trip_bit_exact(result):
    back = roundtrip(result)
    assert back == result
    for a, b in zip(result.masks, back.masks, strict=True):
        assert a.data.dtype == b.data.dtype and np.array_equal(a.data, b.data)


@FAST
@given(st.builds(Description, text=wild_text(), **common))
def test_description_round_trip(result):
    assert roundtrip(result) == result


@FAST
@given(
    st.builds(
        OcrResult,
        text=wild_text(),
        blocks=st.lists(
            st.builds(OcrBlock, text=text, box=st.none() | boxes(), language=st.none() | text),
            max_size=3,
        ),
        language=st.none() | text,
        image_size=st.none() | sizes,
        **common,
    )
)
def test_ocr_round_trip(result):
    assert roundtrip(result) == result


@st.composite
def events(draw):
    start = draw(st.floats(0, 1e5))
    end = draw(st.none() | st.floats(0, 1e5).map(lambda d: start + d))
    return TimedEvent(start=start, end=end, text=draw(text), label=draw(st.none() | text))


@FAST
@given(
    st.builds(
        VideoResult,
        text=wild_text(),
        events=st.lists(events(), max_size=3),
        frames=st.lists(st.tuples(st.floats(0, 1e4), detection_results(True)), max_size=2),
        duration_s=st.none() | positive,
        **common,
    )
)
def test_video_round_trip(result):
    assert roundtrip(result) == result


@FAST
@given(
    st.builds(
        Points,
        items=st.lists(
            st.builds(
                Point,
                x=floats,
                y=floats,
                label=text,
                score=st.none() | st.floats(0, 1),
                attributes=st.dictionaries(text, json_values, max_size=2),
            ),
            max_size=4,
        ),
        image_size=sizes,
        **common,
    )
)
def test_points_round_trip(result):
    assert roundtrip(result) == result


def test_points_from_the_first_ledger_format_still_read():
    data = result_to_dict(Points(image_size=(10, 10), items=[Point(x=1, y=2, label="cup")]))
    data["items"] = [[1.0, 2.0, "cup"]]  # how ledgers wrote points before labels had scores
    assert result_from_dict(data) == Points(
        image_size=(10, 10), items=[Point(x=1, y=2, label="cup")]
    )


def test_dict_shape_is_versioned_and_typed():
    data = result_to_dict(Description(text="hi"))
    assert data["type"] == "description" and data["version"] == 1


def test_masks_are_box_local_pngs():
    mask = Mask(data=np.ones((3, 4), bool), x=10, y=20)
    data = result_to_dict(
        Detections(
            image_size=(100, 100), items=[Detection(box=Box.from_xyxy([10, 20, 14, 23]), mask=mask)]
        )
    )
    stored = data["items"][0]["mask"]
    assert stored["shape"] == [3, 4] and stored["dtype"] == "bool" and stored["x"] == 10


def test_unknown_type_and_newer_version_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown result type"):
        result_from_dict({"type": "hologram", "version": 1})
    with pytest.raises(ConfigError, match="upgrade vlmkit"):
        result_from_dict({"type": "description", "version": 99, "text": ""})


@FAST
@given(wild_text(), detection_results(with_masks=False))
def test_ledger_lines_keep_any_text(key, result):
    record = LedgerRecord(key=key or "k", status="done", result=result, error=key)
    line = record.to_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert LedgerRecord.from_dict(json.loads(line)) == record


def test_to_json_is_readable_utf8_unless_it_cannot_be():
    assert to_json({"label": "猫"}) == '{"label": "猫"}'
    assert to_json({"label": "\ud800猫"}) == '{"label": "\\ud800\\u732b"}'
    assert json.loads(to_json(["\udcff"], compact=True)) == ["\udcff"]
    assert to_json({"a": [1, 2]}, compact=True) == '{"a":[1,2]}'
