"""Property tests: every convention round-trips and every transform inverts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlmkit import ConfigError, Convention, Transform
from vlmkit.geometry import boxes_from_pixels, boxes_to_pixels, points_from_pixels, points_to_pixels

sizes = st.tuples(st.integers(1, 8000), st.integers(1, 8000))
orientations = st.integers(1, 8)


@st.composite
def transforms(draw):
    original = draw(sizes)
    kind = draw(st.sampled_from(["identity", "resize", "letterbox", "chain"]))
    orientation = draw(orientations)
    if kind == "identity":
        return Transform.identity(original, orientation=orientation)
    target = draw(sizes)
    if kind == "resize":
        return Transform.resize(original, target, orientation=orientation)
    if kind == "letterbox":
        return Transform.letterbox(original, target, orientation=orientation)
    return Transform.letterbox(original, target, orientation=orientation).then_resize(draw(sizes))


@st.composite
def boxes_in(draw, transform):
    w, h = transform.original_size
    n = draw(st.integers(0, 5))
    out = []
    for _ in range(n):
        x0 = draw(st.floats(0, w, allow_nan=False))
        x1 = draw(st.floats(x0, w, allow_nan=False))
        y0 = draw(st.floats(0, h, allow_nan=False))
        y1 = draw(st.floats(y0, h, allow_nan=False))
        out.append([x0, y0, x1, y1])
    return np.asarray(out, dtype=np.float64).reshape(-1, 4)


CONVENTIONS = ["yxyx-1000", "xyxy-1000", "xyxy-pixels", "loc-1024", "xyxy-1", "yxyx-1"]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), transform=transforms(), convention=st.sampled_from(CONVENTIONS))
def test_boxes_round_trip_through_every_convention(data, transform, convention):
    boxes = data.draw(boxes_in(transform))
    raw = boxes_from_pixels(boxes, convention, transform)
    back, repairs = boxes_to_pixels(raw, convention, transform, repair=False)
    scale = max(transform.original_size)
    np.testing.assert_allclose(back, boxes, rtol=1e-9, atol=1e-9 * scale)
    assert repairs.swapped == repairs.clamped == 0


@settings(max_examples=300, deadline=None)
@given(data=st.data(), transform=transforms(), convention=st.sampled_from(CONVENTIONS))
def test_points_round_trip(data, transform, convention):
    w, h = transform.original_size
    xy = np.asarray(
        data.draw(st.lists(st.tuples(st.floats(0, w), st.floats(0, h)), max_size=5)),
        dtype=np.float64,
    ).reshape(-1, 2)
    raw = points_from_pixels(xy, convention, transform)
    back, _ = points_to_pixels(raw, convention, transform, repair=False)
    np.testing.assert_allclose(back, xy, rtol=1e-9, atol=1e-9 * max(w, h))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), transform=transforms())
def test_transforms_invert(data, transform):
    boxes = data.draw(boxes_in(transform))
    sent = transform.boxes_to_sent(boxes)
    np.testing.assert_allclose(
        transform.boxes_to_original(sent),
        boxes,
        rtol=1e-9,
        atol=1e-9 * max(transform.original_size),
    )
    stored = transform.boxes_to_stored(boxes)
    sw, sh = transform.stored_size
    assert (stored[:, [0, 2]] <= sw + 1e-6).all() and (stored[:, [1, 3]] <= sh + 1e-6).all()
    np.testing.assert_allclose(
        transform.boxes_from_stored(stored),
        boxes,
        rtol=1e-9,
        atol=1e-9 * max(transform.original_size),
    )


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientations_match_pillow(orientation):
    """Our orientation maths agrees with Pillow's exif_transpose for all eight tags."""
    from PIL import Image, ImageOps

    stored = Image.new("L", (40, 30))
    stored.putpixel((1, 2), 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.info["exif"] = exif.tobytes()
    upright = ImageOps.exif_transpose(stored)
    y, x = np.argwhere(np.asarray(upright) == 255)[0]
    transform = Transform.identity(upright.size, orientation=orientation)
    # pixel centres: stored (1.5, 2.5) maps to the upright pixel centre found by Pillow
    mapped = transform.points_from_stored(np.array([[1.5, 2.5]]))[0]
    assert (int(mapped[0]), int(mapped[1])) == (x, y)
    back = transform.points_to_stored(mapped[None])[0]
    np.testing.assert_allclose(back, [1.5, 2.5])


def test_letterbox_geometry():
    t = Transform.letterbox((200, 100), (100, 100))
    assert t.scale == (0.5, 0.5) and t.offset == (0.0, 25.0)
    np.testing.assert_allclose(t.boxes_to_sent([[0, 0, 200, 100]]), [[0, 25, 100, 75]])


@pytest.mark.parametrize("bad", ["yx-1000", "xyxy-0", "loc-pixels", "nonsense", ""])
def test_unknown_conventions_are_clear_errors(bad):
    with pytest.raises(ConfigError):
        Convention.parse(bad)


def test_convention_names_and_aliases():
    assert Convention.parse("gemini") == Convention.parse("yxyx-1000")
    assert Convention.parse("loc-1024").name == "loc-1024"
    assert Convention.parse("xyxy-px").name == "xyxy-pixels"


def test_invalid_transforms_are_refused():
    with pytest.raises(ConfigError):
        Transform.identity((0, 10))
    with pytest.raises(ConfigError):
        Transform(original_size=(10, 10), sent_size=(10, 10), scale=(0, 1))
    with pytest.raises(ConfigError):
        Transform.identity((10, 10), orientation=9)
