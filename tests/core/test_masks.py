"""Mask decoding, placement, rasterization and export (vlmkit.masks)."""

from __future__ import annotations

import base64
import contextlib
import io
import math
import struct
import zlib
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageDraw

from vlmkit import masks as vm
from vlmkit.errors import ConfigError, ParseError
from vlmkit.masks import (
    PlacedMask,
    decode_mask_image,
    mask_to_polygons,
    mask_to_rle,
    place_probability_mask,
    polygon_from_normalized,
    polygon_mask,
)
from vlmkit.types import Mask

W, H = 4000, 3000  # a 12 MP photo


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def ellipse_png(size: int = 256, *, mode: str = "L", inset: int = 0) -> bytes:
    """A mask the way Gemini 2.5 sends one: an 8-bit grayscale PNG holding only 0 and 255."""
    image = Image.new("L", (size, size), 0)
    ImageDraw.Draw(image).ellipse((inset, inset, size - 1 - inset, size - 1 - inset), fill=255)
    if mode != "L":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def data_url(raw: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(raw).decode("ascii")


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width × height`` pixels (a decompression bomb probe)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * min(height * (width + 1), 4096)))
        + chunk(b"IEND", b"")
    )


def cookbook_placement(prob_png: bytes, box: tuple[float, float, float, float], size):
    """Google's segmentation sample, kept as written: int() truncation, PIL resize to the
    truncated box, paste into a full frame, threshold > 127 — pixel by pixel."""
    x0, y0, x1, y1 = (int(v) for v in box)
    mask = Image.open(io.BytesIO(prob_png)).resize((x1 - x0, y1 - y0), Image.Resampling.BILINEAR)
    mask_array = np.array(mask)
    full = np.zeros((size[1], size[0]), dtype=bool)
    for y in range(y0, y1):
        for x in range(x0, x1):
            if mask_array[y - y0, x - x0] > 127:
                full[y, x] = True
    return full


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_dilation(mask, iterations=radius)


def shoelace(points) -> float:
    p = np.asarray(points, dtype=float)
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def perimeter(points) -> float:
    p = np.asarray(points, dtype=float)
    return float(np.linalg.norm(p - np.roll(p, -1, axis=0), axis=1).sum())


ELLIPSE = ellipse_png()


# --------------------------------------------------------------------------------------------
# decode_mask_image
# --------------------------------------------------------------------------------------------
class TestDecode:
    def test_gemini_mask_with_data_prefix(self):
        prob = decode_mask_image(data_url(ELLIPSE))
        assert prob.shape == (256, 256)
        assert prob.dtype == np.uint8
        assert set(np.unique(prob).tolist()) == {0, 255}
        assert prob[128, 128] == 255 and prob[0, 0] == 0

    def test_without_prefix_is_the_same(self):
        plain = base64.b64encode(ELLIPSE).decode()
        assert np.array_equal(decode_mask_image(plain), decode_mask_image(data_url(ELLIPSE)))

    @pytest.mark.parametrize(
        "prefix",
        ["data:image/png;base64,", "DATA:IMAGE/PNG;BASE64,", "data:image/webp;base64,",
         "data:image/png;charset=binary;base64,", "  data:image/jpeg;base64,"],
    )  # fmt: skip
    def test_any_image_data_prefix(self, prefix):
        text = prefix + base64.b64encode(ELLIPSE).decode()
        assert decode_mask_image(text).shape == (256, 256)

    def test_url_safe_alphabet_whitespace_and_missing_padding(self):
        reference = decode_mask_image(ELLIPSE)
        raw = ELLIPSE + b"\x00"  # trailing byte after IEND forces padding and is ignored by PIL
        text = base64.urlsafe_b64encode(raw).decode()
        assert text.endswith("=")
        unpadded = text.rstrip("=")
        wrapped = "\n".join(unpadded[i : i + 76] for i in range(0, len(unpadded), 76))
        assert np.array_equal(decode_mask_image(wrapped), reference)
        assert np.array_equal(decode_mask_image("data:image/png;base64,\n " + wrapped), reference)

    def test_url_safe_characters_really_decoded(self):
        # Find bytes whose base64 holds '+' and '/', then send them URL-safe.
        noisy = np.random.default_rng(3).integers(0, 256, (64, 64), dtype=np.uint8)
        raw = png_bytes(noisy)
        standard = base64.b64encode(raw).decode()
        assert "+" in standard and "/" in standard
        url_safe = base64.urlsafe_b64encode(raw).decode()
        assert np.array_equal(decode_mask_image(url_safe), noisy)

    def test_raw_png_bytes_and_base64_bytes(self):
        assert decode_mask_image(ELLIPSE).shape == (256, 256)
        assert decode_mask_image(base64.b64encode(ELLIPSE)).shape == (256, 256)
        assert decode_mask_image(bytearray(ELLIPSE)).shape == (256, 256)

    @pytest.mark.parametrize("fmt", ["GIF", "BMP", "WEBP"])
    def test_other_formats_raw_and_base64(self, fmt):
        buffer = io.BytesIO()
        Image.new("L", (10, 7), 200).save(
            buffer, fmt, **({"lossless": True} if fmt == "WEBP" else {})
        )
        raw = buffer.getvalue()
        for data in (raw, base64.b64encode(raw), base64.b64encode(raw).decode()):
            prob = decode_mask_image(data)
            assert prob.shape == (7, 10) and (prob == 200).all()

    def test_probability_values_survive(self):
        gradient = np.tile(np.arange(256, dtype=np.uint8), (8, 1))
        assert np.array_equal(decode_mask_image(png_bytes(gradient)), gradient)

    def test_rgba_mask_uses_luminance(self):
        prob = decode_mask_image(ellipse_png(mode="RGBA"))
        assert np.array_equal(prob, decode_mask_image(ELLIPSE))

    @pytest.mark.parametrize("mode", ["1", "P", "LA", "RGB"])
    def test_other_modes(self, mode):
        assert np.array_equal(decode_mask_image(ellipse_png(mode=mode)), decode_mask_image(ELLIPSE))

    def test_sixteen_bit_is_scaled_to_eight(self):
        wide = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
        raw = png_bytes(wide)
        assert Image.open(io.BytesIO(raw)).mode.startswith("I")
        assert decode_mask_image(raw).tolist() == [[0, 1, 128, 255]]

    def test_jpeg_mask(self):
        buffer = io.BytesIO()
        Image.open(io.BytesIO(ELLIPSE)).save(buffer, "JPEG", quality=95)
        prob = decode_mask_image(
            "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
        )
        assert np.mean((prob > 127) == (decode_mask_image(ELLIPSE) > 127)) > 0.99

    @pytest.mark.parametrize(
        "data",
        [
            "",
            "   ",
            b"",
            "data:image/png;base64,",
            "data:image/png;base64,   \n",
            "not base64 at all!",
            "QUJD=RA==",  # padding in the middle
            "QUJDR",  # impossible length
            base64.b64encode(b"hello, this is text, not an image").decode(),
            "data:text/plain;base64," + base64.b64encode(ELLIPSE).decode(),
            "data:image/png,%89PNG",  # not base64-encoded
            data_url(ELLIPSE[: len(ELLIPSE) // 2]),  # truncated PNG
            data_url(ELLIPSE[:40]),  # header only
            b"\x89PNG\r\n\x1a\n garbage",
            b"\xff\xfe\x00 binary junk",
            None,
            42,
            ["a list"],
        ],
    )
    def test_undecodable_raises_parse_error(self, data):
        with pytest.raises(ParseError) as info:
            decode_mask_image(data)  # type: ignore[arg-type]
        assert info.value.reason
        assert len(info.value.reason) < 120

    def test_corrupt_pixel_data(self):
        raw = bytearray(ELLIPSE)
        start = raw.index(b"IDAT") + 8
        raw[start : start + 40] = b"\x00" * 40  # break the zlib stream (CRC left wrong too)
        with pytest.raises(ParseError):
            decode_mask_image(bytes(raw))

    @pytest.mark.parametrize("size", [(5000, 5000), (100_000, 100_000), (4097, 16), (16, 70_000)])
    def test_huge_claimed_size_is_refused_before_decoding(self, size):
        with pytest.raises(ParseError) as info:
            decode_mask_image(data_url(png_claiming(*size)))
        assert "size" in info.value.reason or "limit" in info.value.reason

    def test_size_limit_is_configurable(self):
        with pytest.raises(ParseError):
            decode_mask_image(ELLIPSE, max_side=128)
        assert decode_mask_image(png_claiming(8, 8)).shape == (8, 8)


# --------------------------------------------------------------------------------------------
# place_probability_mask
# --------------------------------------------------------------------------------------------
class TestPlace:
    def test_returns_unpackable_placed_mask(self):
        result = place_probability_mask(decode_mask_image(ELLIPSE), (10, 20, 266, 276))
        assert isinstance(result, PlacedMask)
        mask, resized = result
        assert isinstance(mask, Mask) and resized is False
        assert mask.region == (10, 20, 266, 276)
        # Same size, integer box: the crop is placed unchanged.
        assert np.array_equal(mask.binary, decode_mask_image(ELLIPSE) > 127)

    def test_same_size_with_fractional_offset_is_not_resized(self):
        mask, resized = place_probability_mask(
            decode_mask_image(ELLIPSE), (10.5, 20.5, 266.5, 276.5)
        )
        assert resized is False
        assert mask.region == (10, 20, 267, 277)

    def test_4000x3000_box_lands_on_the_right_pixels(self):
        # Gemini box_2d [ymin, xmin, ymax, xmax] on 0–1000 -> pixels of a 4000×3000 photo.
        ymin, xmin, ymax, xmax = 312, 187, 587, 433
        box = (xmin / 1000 * W, ymin / 1000 * H, xmax / 1000 * W, ymax / 1000 * H)
        mask, resized = place_probability_mask(decode_mask_image(data_url(ELLIPSE)), box)
        assert resized is True
        assert mask.region == (748, 936, 1732, 1761)
        ours = mask.to_full((W, H))
        reference = cookbook_placement(ELLIPSE, box, (W, H))
        # Both agree up to one pixel along the border.
        assert not (ours & ~dilate(reference, 1)).any()
        assert not (reference & ~dilate(ours, 1)).any()
        assert abs(int(ours.sum()) - int(reference.sum())) < 0.002 * reference.sum()
        # Nothing outside the box.
        assert not ours[:936].any() and not ours[1761:].any()
        assert not ours[:, :748].any() and not ours[:, 1732:].any()

    @pytest.mark.parametrize(
        "box",
        [
            (1000.3, 500.7, 1800.2, 1100.9),
            (3.9, 7.2, 120.6, 60.1),
            (2400.8, 2000.5, 3999.4, 2999.6),
        ],
    )
    def test_fractional_boxes_match_the_cookbook_within_two_pixels(self, box):
        # The cookbook truncates every corner (up to 1 px of shift); the difference stays on the
        # border.
        ours = place_probability_mask(decode_mask_image(ELLIPSE), box).mask.to_full((W, H))
        reference = cookbook_placement(ELLIPSE, box, (W, H))
        assert not (ours & ~dilate(reference, 2)).any()
        assert not (reference & ~dilate(ours, 2)).any()

    def test_sub_pixel_placement_beats_truncation(self):
        # Compare with the exact ellipse the PNG was drawn from, mapped onto the float box.
        box = (1000.9, 500.9, 1190.1, 640.1)
        x0, y0, x1, y1 = box
        ours = place_probability_mask(decode_mask_image(ELLIPSE), box).mask.to_full((W, H))
        reference = cookbook_placement(ELLIPSE, box, (W, H))
        yy, xx = np.mgrid[0:H, 0:W]
        u = (xx + 0.5 - x0) / (x1 - x0) * 256
        v = (yy + 0.5 - y0) / (y1 - y0) * 256
        exact = (u - 128) ** 2 + (v - 128) ** 2 <= 128**2
        assert np.count_nonzero(ours ^ exact) < np.count_nonzero(reference ^ exact)
        assert np.count_nonzero(ours ^ exact) < 0.02 * exact.sum()

    @pytest.mark.parametrize("backend", ["default", "pil"])
    def test_backends_agree_on_a_realistic_mask(self, backend):
        box = (748.3, 936.6, 1731.9, 1760.2)  # enlarged about 4× on both axes
        prob = decode_mask_image(ELLIPSE)
        with _backend("pil"):
            pil, _ = place_probability_mask(prob, box, keep_probability=True)
        with _backend(backend):
            other, _ = place_probability_mask(prob, box, keep_probability=True)
        assert other.region == pil.region
        assert np.abs(other.data.astype(int) - pil.data).max() <= 2
        assert np.count_nonzero(other.binary ^ pil.binary) <= 0.0005 * pil.area

    @pytest.mark.parametrize("backend", ["default", "pil"])
    @pytest.mark.parametrize(
        ("box", "inside"),
        [
            ((0.4, 0.4, 10.6, 10.6), (0, 11)),  # border pixel centers 0.5 and 10.5 are inside
            ((0.6, 0.6, 10.4, 10.4), (1, 10)),  # ... and here outside
            ((2.0, 3.0, 12.0, 13.0), (None, None)),  # integer box: exactly its pixels
        ],
    )
    def test_border_pixels_follow_their_centers(self, backend, box, inside):
        with _backend(backend):
            for crop in (np.full((2, 3), 255, np.uint8), np.full((40, 30), 255, np.uint8)):
                mask, _ = place_probability_mask(crop, box)
                full = mask.to_full((20, 20))
                if inside[0] is None:
                    expected = np.zeros((20, 20), bool)
                    expected[3:13, 2:12] = True
                else:
                    expected = np.zeros((20, 20), bool)
                    expected[inside[0] : inside[1], inside[0] : inside[1]] = True
                assert np.array_equal(full, expected)

    def test_threshold_127_splits_a_gradient_in_half(self):
        gradient = np.tile(np.arange(256, dtype=np.uint8), (4, 1))  # 0 -> 255 left to right
        mask, resized = place_probability_mask(gradient, (0, 0, 256, 4))
        assert resized is False
        assert mask.area == 128 * 4  # values 128..255
        assert mask.binary[:, 128:].all() and not mask.binary[:, :128].any()

    def test_threshold_scales_with_the_box(self):
        gradient = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
        mask = place_probability_mask(gradient, (0, 0, 1024, 40)).mask
        assert abs(mask.binary.mean() - 0.5) < 0.01

    def test_custom_threshold(self):
        gradient = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
        mask = place_probability_mask(gradient, (0, 0, 256, 4), threshold=200).mask
        assert mask.area == 55 * 4  # values 201..255
        assert mask.threshold == 200
        assert place_probability_mask(gradient, (0, 0, 256, 4), threshold=0).mask.area == 255 * 4
        with pytest.raises(ConfigError):
            place_probability_mask(gradient, (0, 0, 256, 4), threshold=256)

    def test_keep_probability(self):
        gradient = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
        mask = place_probability_mask(gradient, (0, 0, 256, 4), keep_probability=True).mask
        assert mask.is_probability and mask.data.dtype == np.uint8
        assert np.array_equal(mask.data, gradient)
        assert mask.area == 128 * 4
        custom = place_probability_mask(
            gradient, (0, 0, 256, 4), threshold=63, keep_probability=True
        )
        assert custom.mask.threshold == 63 and custom.mask.area == 192 * 4

    def test_bool_and_integer_crops_are_accepted(self):
        crop = np.zeros((10, 10), dtype=bool)
        crop[2:8, 2:8] = True
        mask = place_probability_mask(crop, (0, 0, 10, 10)).mask
        assert np.array_equal(mask.binary, crop)
        as_int = place_probability_mask(crop.astype(np.int64) * 255, (0, 0, 10, 10)).mask
        assert mask == as_int
        with pytest.raises(ConfigError):
            place_probability_mask(crop.astype(np.float32), (0, 0, 10, 10))
        with pytest.raises(ConfigError):
            place_probability_mask(np.zeros((2, 2, 3), np.uint8), (0, 0, 10, 10))

    @pytest.mark.parametrize(
        "box",
        [(100, 100, 100.5, 140), (100, 100, 140, 100.99), (10.2, 10.2, 10.4, 10.4), (5, 5, 5, 5)],
    )
    @pytest.mark.parametrize("keep", [False, True])
    def test_degenerate_boxes_give_an_empty_mask(self, box, keep):
        mask, _ = place_probability_mask(decode_mask_image(ELLIPSE), box, keep_probability=keep)
        assert mask.area == 0
        assert mask.shape == (0, 0)
        assert mask.to_full((200, 200)).sum() == 0

    def test_bad_boxes_are_caller_errors(self):
        prob = decode_mask_image(ELLIPSE)
        for box in [(0, 0, float("nan"), 10), (10, 0, 0, 10), (0, 0, 1), "abcd"]:
            with pytest.raises(ConfigError):
                place_probability_mask(prob, box)  # type: ignore[arg-type]

    def test_box_partly_outside_is_clipped_with_image_size(self):
        prob = decode_mask_image(ELLIPSE)
        box = (-100.0, -50.0, 300.0, 150.0)
        unclipped = place_probability_mask(prob, box).mask
        clipped = place_probability_mask(prob, box, image_size=(200, 100)).mask
        assert unclipped.region == (-100, -50, 300, 150)
        assert clipped.region == (0, 0, 200, 100)
        assert np.array_equal(clipped.to_full((200, 100)), unclipped.to_full((200, 100)))

    def test_box_entirely_outside_the_image_is_empty(self):
        prob = decode_mask_image(ELLIPSE)
        mask = place_probability_mask(prob, (500, 500, 900, 900), image_size=(200, 100)).mask
        assert mask.shape == (0, 0) and mask.area == 0

    def test_huge_unclipped_region_is_refused(self):
        prob = decode_mask_image(ELLIPSE)
        with pytest.raises(ConfigError, match="image_size"):
            place_probability_mask(prob, (0, 0, 1e6, 1e6))
        mask = place_probability_mask(prob, (0, 0, 1e6, 1e6), image_size=(64, 48)).mask
        assert mask.region == (0, 0, 64, 48)

    def test_crop_stays_box_local(self):
        mask = place_probability_mask(decode_mask_image(ELLIPSE), (3000.2, 2000.7, 3100.9, 2050.1))
        assert mask.mask.data.size == 101 * 51


def _reference_probability(prob, box, size):
    """An independent placement: resample onto a region three pixels wider than the box (and
    clipped to the image) with its own, wider edge padding, then keep the pixels whose centers
    lie in the box."""
    width, height = size
    x0, y0, x1, y1 = box
    h, w = prob.shape
    sx, sy = w / (x1 - x0), h / (y1 - y0)
    ex0, ey0 = max(int(np.floor(x0)) - 3, 0), max(int(np.floor(y0)) - 3, 0)
    ex1, ey1 = min(int(np.ceil(x1)) + 3, width), min(int(np.ceil(y1)) + 3, height)
    full = np.zeros((height, width), dtype=np.int16)
    if ex1 <= ex0 or ey1 <= ey0:
        return full
    pad_x, pad_y = int(4 * sx) + 8, int(4 * sy) + 8
    source = Image.fromarray(np.pad(prob, ((pad_y, pad_y), (pad_x, pad_x)), mode="edge"))
    src = ((ex0 - x0) * sx + pad_x, (ey0 - y0) * sy + pad_y,
           (ex1 - x0) * sx + pad_x, (ey1 - y0) * sy + pad_y)  # fmt: skip
    out = source.resize((ex1 - ex0, ey1 - ey0), Image.Resampling.BILINEAR, box=src)
    full[ey0:ey1, ex0:ex1] = np.asarray(out)
    # Only pixels whose centers lie in the box can be inside.
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    full[~((xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1))] = 0
    return full


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prob=hnp.arrays(
        np.uint8,
        st.tuples(st.integers(1, 40), st.integers(1, 40)),
        elements=st.integers(0, 255),
    ),
    x0=st.floats(-40, 220, allow_nan=False),
    y0=st.floats(-40, 170, allow_nan=False),
    bw=st.floats(1.0, 150, allow_nan=False),
    bh=st.floats(1.0, 150, allow_nan=False),
    threshold=st.integers(0, 254),
    backend=st.sampled_from(["default", "pil"]),
)
def test_property_placement_stays_in_box_and_matches_reference(
    prob, x0, y0, bw, bh, threshold, backend
):
    size = (200, 150)
    box = (x0, y0, x0 + bw, y0 + bh)
    with _backend(backend):
        unclipped, _ = place_probability_mask(prob, box, threshold=threshold, keep_probability=True)
        clipped, _ = place_probability_mask(
            prob, box, threshold=threshold, keep_probability=True, image_size=size
        )
        binary, _ = place_probability_mask(prob, box, threshold=threshold, image_size=size)

    # The crop covers exactly the integer grid spanned by the float box (clipped to the image).
    grid = (math.floor(box[0]), math.floor(box[1]), math.ceil(box[2]), math.ceil(box[3]))
    if box[2] - box[0] < 1 or box[3] - box[1] < 1:  # x0 + bw - x0 may round below one pixel
        assert unclipped.shape == (0, 0) and clipped.shape == (0, 0)
        return
    assert unclipped.region == grid
    x_lo, y_lo, x_hi, y_hi = clipped.region
    assert 0 <= x_lo <= x_hi <= size[0] and 0 <= y_lo <= y_hi <= size[1]
    assert binary.region == clipped.region
    assert np.array_equal(binary.binary, clipped.data > threshold)

    # Nothing lands outside the box's pixel grid.
    ys, xs = np.nonzero(unclipped.to_full(size))
    if len(xs):
        assert xs.min() >= grid[0] and xs.max() < grid[2]
        assert ys.min() >= grid[1] and ys.max() < grid[3]

    # Values agree with an independent placement through PIL (±2 for PIL's fixed-point
    # rounding, which depends on where the resampled region starts; ±4 for OpenCV, which also
    # quantizes source positions to 1/32 pixel); the binary masks agree with it wherever the
    # value is not within that rounding of the threshold.
    tolerance = 2 if backend == "pil" else 4
    reference = _reference_probability(prob, box, size)
    decided = np.abs(reference - threshold - 0.5) > tolerance + 0.5
    for mask in (unclipped, clipped):
        assert np.abs(_probability_full(mask, size) - reference).max(initial=0) <= tolerance
        assert np.array_equal(mask.to_full(size)[decided], (reference > threshold)[decided])
    assert np.array_equal(binary.to_full(size)[decided], (reference > threshold)[decided])


@contextlib.contextmanager
def _backend(name: str):
    """``"pil"`` forces the PIL resampler; ``"default"`` uses OpenCV when it is installed."""
    if name == "default":
        yield
        return
    with mock.patch.object(vm, "_opencv", lambda: None):
        yield


def _probability_full(mask: Mask, size) -> np.ndarray:
    full = np.zeros(size[::-1], dtype=np.int16)
    mx0, my0, mx1, my1 = mask.region
    cx0, cy0, cx1, cy1 = max(mx0, 0), max(my0, 0), min(mx1, size[0]), min(my1, size[1])
    if cx1 > cx0 and cy1 > cy0:
        full[cy0:cy1, cx0:cx1] = mask.data[cy0 - my0 : cy1 - my0, cx0 - mx0 : cx1 - mx0]
    return full


# --------------------------------------------------------------------------------------------
# polygons
# --------------------------------------------------------------------------------------------
class TestPolygons:
    def test_axis_aligned_square_is_exact(self):
        mask = polygon_mask([[10, 20], [40, 20], [40, 50], [10, 50]], image_size=(100, 100))
        assert mask.region == (10, 20, 40, 50)
        assert mask.area == 900 and mask.binary.all()

    @pytest.mark.parametrize(
        "polygon",
        [
            [[2.3, 1.7], [40.2, 5.1], [20.5, 30.9]],  # triangle
            [[0, 0], [100, 0], [100, 100], [50, 20], [0, 100]],  # concave
            [[10, 10], [90, 10], [90, 90], [70, 90], [70, 30], [30, 30], [30, 90], [10, 90]],  # U
            [[50, 5], [61, 38], [95, 38], [68, 59], [79, 92], [50, 72], [21, 92], [32, 59],
             [5, 38], [39, 38]],  # star (concave)
        ],
    )  # fmt: skip
    def test_area_matches_shoelace(self, polygon):
        mask = polygon_mask(polygon, image_size=(120, 120))
        exact = shoelace(polygon)
        # Pixel-center sampling: unbiased, off by sampling noise along the outline only.
        assert abs(mask.area - exact) <= 0.1 * perimeter(polygon) + 2

    def test_matches_an_independent_point_in_polygon_test(self):
        path_module = pytest.importorskip("matplotlib.path")
        rng = np.random.default_rng(7)
        yy, xx = np.mgrid[0:90, 0:120]
        centers = np.c_[xx.ravel() + 0.5, yy.ravel() + 0.5]
        for _ in range(40):
            n = int(rng.integers(3, 14))
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            radii = rng.uniform(2, 60, n)
            center = rng.uniform(0, 120, 2)
            polygon = np.c_[center[0] + radii * np.cos(angles), center[1] + radii * np.sin(angles)]
            try:
                mask = polygon_mask(polygon, image_size=(120, 90))
            except ParseError:  # pragma: no cover - never for 3+ finite points
                raise
            expected = path_module.Path(polygon).contains_points(centers).reshape(90, 120)
            assert np.array_equal(mask.to_full((120, 90)), expected)

    def test_matches_a_brute_force_crossing_count_on_any_crop_height(self):
        """Rows are rasterized eight at a time (one 64-bit word per column): crops of every
        height, self-crossing outlines and several parts give what counting each pixel
        center's crossings gives."""
        rng = np.random.default_rng(16)
        for _ in range(300):
            width, height = (int(v) for v in rng.integers(1, 40, 2))
            parts = []
            for _part in range(int(rng.integers(1, 4))):
                n = int(rng.integers(3, 12))
                parts.append(rng.uniform(-5, [width + 5, height + 5], size=(n, 2)))
            try:
                mask = polygon_mask(parts, image_size=(width, height))
            except ParseError:  # pragma: no cover - never for 3+ finite points
                raise
            yy, xx = np.mgrid[0:height, 0:width] + 0.5
            expected = np.zeros((height, width), dtype=bool)
            for part in parts:
                inside = np.zeros((height, width), dtype=bool)
                for (xa, ya), (xb, yb) in zip(part, np.roll(part, -1, axis=0), strict=True):
                    if ya == yb:
                        continue
                    spans = (np.minimum(ya, yb) <= yy) & (yy < np.maximum(ya, yb))
                    crossing = xa + (yy - ya) * (xb - xa) / (yb - ya)
                    inside ^= spans & (crossing <= xx)
                expected |= inside
            assert np.array_equal(mask.to_full((width, height)), expected)

    def test_shared_edges_tile_without_overlap(self):
        left = polygon_mask([[0.3, 0.2], [7.6, 1.1], [5.2, 9.7]], image_size=(20, 20))
        right = polygon_mask([[7.6, 1.1], [12.5, 8.3], [5.2, 9.7]], image_size=(20, 20))
        both = polygon_mask([[0.3, 0.2], [7.6, 1.1], [12.5, 8.3], [5.2, 9.7]], image_size=(20, 20))
        a, b = left.to_full((20, 20)), right.to_full((20, 20))
        assert not (a & b).any()
        assert np.array_equal(a | b, both.to_full((20, 20)))

    def test_multi_part_union(self):
        a = [[0, 0], [10, 0], [10, 10], [0, 10]]
        b = [[20, 20], [30, 20], [30, 40], [20, 40]]
        c = [[5, 5], [15, 5], [15, 15], [5, 15]]  # overlaps a by 25 px
        mask = polygon_mask([a, b], image_size=(50, 50))
        assert mask.region == (0, 0, 30, 40)
        assert mask.area == 100 + 200
        assert polygon_mask([a, c], image_size=(50, 50)).area == 100 + 100 - 25
        assert polygon_mask(np.array([a, c], dtype=float), image_size=(50, 50)).area == 175

    def test_parts_as_numpy_arrays(self):
        parts = [np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)]
        assert polygon_mask(parts, image_size=(20, 20)).area == 100
        assert polygon_mask(parts[0], image_size=(20, 20)).area == 100

    def test_clipped_to_the_image(self):
        mask = polygon_mask([[-10, -10], [30, -10], [30, 30], [-10, 30]], image_size=(20, 25))
        assert mask.region == (0, 0, 20, 25)
        assert mask.area == 20 * 25
        outside = polygon_mask([[50, 50], [60, 50], [60, 60]], image_size=(20, 25))
        assert outside.area == 0 and outside.shape == (0, 0)

    @pytest.mark.parametrize(
        "polygon",
        [
            [],
            [[1, 2]],
            [[1, 2], [3, 4]],
            [[1, 2], [3, 4], [float("nan"), 5]],
            [[1, 2], [3, 4], [float("inf"), 5], [None, 1]],
            [[[1, 2], [3, 4]], [[5, 6]]],
            [["a", "b"], [1, 2], [3, 4]],
            [[1, 2, 3], [4, 5, 6], [7, 8, 9]],
            "not a polygon",
            None,
        ],
    )
    def test_fewer_than_three_finite_points_raise(self, polygon):
        with pytest.raises(ParseError):
            polygon_mask(polygon, image_size=(100, 100))

    def test_non_finite_points_are_dropped(self):
        polygon = [[0, 0], [10, 0], [float("nan"), 3], [10, 10], [0, 10]]
        assert polygon_mask(polygon, image_size=(20, 20)).area == 100

    def test_from_normalized_gemini_3(self):
        points = [[250, 100], [750, 100], [750, 900], [250, 900]]  # [x, y] on 0–1000
        pixels = polygon_from_normalized(points, (400, 200))
        assert pixels.tolist() == [[100, 20], [300, 20], [300, 180], [100, 180]]
        assert polygon_mask(pixels, image_size=(400, 200)).area == 200 * 160

    def test_from_normalized_yx_and_scale(self):
        pixels = polygon_from_normalized([[0.1, 0.5], [0.2, 1.0]], (400, 200), order="yx", scale=1)
        assert pixels.tolist() == [[200, 20], [400, 40]]
        with pytest.raises(ConfigError):
            polygon_from_normalized([[1, 2]], (10, 10), order="xyz")  # type: ignore[arg-type]
        with pytest.raises(ConfigError):
            polygon_from_normalized([[1, 2]], (10, 10), scale=0)
        with pytest.raises(ParseError):
            polygon_from_normalized([["x", 2]], (10, 10))


# --------------------------------------------------------------------------------------------
# export: polygons and RLE
# --------------------------------------------------------------------------------------------
def ring_and_blob() -> np.ndarray:
    full = np.zeros((120, 160), dtype=bool)
    full[10:70, 20:90] = True  # a ring ...
    full[25:55, 40:70] = False  # ... with a hole
    full[80:110, 100:150] = True  # and a second part
    return full


def _as_set(polygons):
    return sorted(tuple(map(tuple, p.astype(int).tolist())) for p in polygons)


class TestMaskToPolygons:
    def test_holes_and_parts_in_full_image_coordinates(self):
        full = ring_and_blob()
        polygons = mask_to_polygons(Mask.from_full(full))
        assert len(polygons) == 3
        assert all(p.dtype == np.float64 and p.shape[1] == 2 for p in polygons)
        areas = sorted(shoelace(p) for p in polygons)
        # Contours run through boundary pixel centers: areas are (w - 1) * (h - 1).
        # (The hole's contour cuts its four corners diagonally: 31 * 31 - 4 * 0.5.)
        assert areas == [31 * 31 - 2, 49 * 29, 69 * 59]
        boxes = sorted(
            (p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()) for p in polygons
        )
        assert boxes == [(20, 10, 89, 69), (39, 24, 70, 55), (100, 80, 149, 109)]

    def test_each_outer_contour_is_followed_by_its_holes(self):
        polygons = mask_to_polygons(Mask.from_full(ring_and_blob()))
        sizes = [shoelace(p) for p in polygons]
        ring = sizes.index(69 * 59)
        assert sizes[ring + 1] == 31 * 31 - 2  # the ring's hole comes right after it

    def test_offset_crop(self):
        crop = np.ones((5, 8), dtype=bool)
        (polygon,) = mask_to_polygons(Mask(data=crop, x=100, y=200))
        assert polygon.min(axis=0).tolist() == [100, 200]
        assert polygon.max(axis=0).tolist() == [107, 204]

    def test_clipped_to_the_image(self):
        mask = Mask(data=np.ones((10, 10), dtype=bool), x=-5, y=-5)
        (polygon,) = mask_to_polygons(mask, image_size=(20, 20))
        assert polygon.min(axis=0).tolist() == [0, 0] and polygon.max(axis=0).tolist() == [4, 4]
        (unclipped,) = mask_to_polygons(mask)
        assert unclipped.min(axis=0).tolist() == [-5, -5]

    def test_tolerance_simplifies(self):
        mask = place_probability_mask(decode_mask_image(ELLIPSE), (0, 0, 256, 256)).mask
        (exact,) = mask_to_polygons(mask)
        (simple,) = mask_to_polygons(mask, tolerance=2.0)
        assert len(simple) < len(exact) / 3
        assert abs(shoelace(simple) - shoelace(exact)) < 0.02 * shoelace(exact)
        with pytest.raises(ConfigError):
            mask_to_polygons(mask, tolerance=-1)

    def test_empty_and_tiny(self):
        assert mask_to_polygons(Mask(data=np.zeros((4, 4), bool), x=0, y=0)) == []
        assert mask_to_polygons(Mask(data=np.zeros((0, 0), bool), x=0, y=0)) == []
        single = np.zeros((4, 4), bool)
        single[1, 1] = True
        assert mask_to_polygons(Mask(data=single, x=0, y=0)) == []  # < 3 points: left out

    def test_probability_masks_use_their_threshold(self):
        data = np.array([[0, 200, 200], [0, 200, 200], [0, 90, 200]], dtype=np.uint8)
        (polygon,) = mask_to_polygons(Mask(data=data, x=0, y=0, threshold=100))
        assert polygon.min(axis=0).tolist() == [1, 0]

    def test_supervision_fallback_gives_the_same_contours(self, monkeypatch):
        mask = Mask.from_full(ring_and_blob())
        with_cv2 = mask_to_polygons(mask)
        monkeypatch.setattr(vm, "_contours_opencv", lambda crop, tolerance: None)
        fallback = mask_to_polygons(mask)
        assert _as_set(fallback) == _as_set(with_cv2)
        sizes = [shoelace(p) for p in fallback]
        assert sizes[sizes.index(69 * 59) + 1] == 31 * 31 - 2  # holes still follow their outer
        assert len(mask_to_polygons(mask, tolerance=1.0)) == 3


try:
    from pycocotools import mask as pycocotools_mask
except ImportError:  # optional dependency (extra "coco")
    pycocotools_mask = None


def _coco_cases():
    ring = ring_and_blob()
    yield "ring and blob", Mask.from_full(ring), (160, 120)
    two = np.zeros((40, 30), dtype=bool)
    two[0:40, 3:5] = True  # full-height stripe: runs continue across columns
    two[0:40, 5:6] = True
    two[10:20, 20:29] = True
    yield "two parts, full height", Mask.from_full(two), (30, 40)
    crop = np.zeros((50, 60), dtype=bool)
    crop[5:45, 5:55] = True
    crop[15:35, 20:40] = False
    yield "hole, outside top-left", Mask(data=crop, x=-20, y=-10), (100, 80)
    yield "hole, outside bottom-right", Mask(data=crop, x=70, y=50), (100, 80)
    yield "wholly outside", Mask(data=crop, x=500, y=500), (100, 80)
    yield "all true", Mask(data=np.ones((80, 100), bool), x=0, y=0), (100, 80)
    yield "empty", Mask(data=np.zeros((0, 0), bool), x=0, y=0), (100, 80)
    corner = np.zeros((3, 3), dtype=bool)
    corner[2, 2] = True
    yield "ends on last pixel", Mask(data=corner, x=97, y=77), (100, 80)
    prob = np.array([[0, 255, 10], [128, 127, 255]], dtype=np.uint8)
    yield "probability crop", Mask(data=prob, x=3, y=4, threshold=127), (10, 10)


@pytest.mark.skipif(pycocotools_mask is None, reason="pycocotools not installed")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(("name", "mask", "size"), list(_coco_cases()), ids=lambda v: str(v))
def test_rle_equals_pycocotools(name, mask, size):
    width, height = size
    full = mask.to_full(size)
    ours = mask_to_rle(mask, size)
    assert ours["size"] == [height, width]
    assert sum(ours["counts"]) == width * height
    assert all(isinstance(c, int) for c in ours["counts"])
    expected = pycocotools_mask.encode(np.asfortranarray(full.astype(np.uint8)))
    compressed = pycocotools_mask.frPyObjects(ours, height, width)
    assert compressed["counts"] == expected["counts"]
    assert np.array_equal(pycocotools_mask.decode(compressed).astype(bool), full)
    assert np.array_equal(pycocotools_mask.decode(expected).astype(bool), full)
    assert int(pycocotools_mask.area(compressed)) == int(full.sum())


@pytest.mark.skipif(pycocotools_mask is None, reason="pycocotools not installed")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_rle_equals_pycocotools_on_random_masks_anywhere():
    """Crops of every shape and density, inside, across and outside small images (columns
    that run on into the next column when a crop spans the image's height included)."""
    rng = np.random.default_rng(16)
    for _ in range(1500):
        h, w = (int(v) for v in rng.integers(1, 12, 2))
        data = rng.random((h, w)) < rng.random()
        mask = Mask(data=data, x=int(rng.integers(-6, 14)), y=int(rng.integers(-6, 14)))
        width, height = (int(v) for v in rng.integers(1, 16, 2))
        full = mask.to_full((width, height))
        ours = mask_to_rle(mask, (width, height))
        assert sum(ours["counts"]) == width * height
        compressed = pycocotools_mask.frPyObjects(ours, height, width)
        assert np.array_equal(pycocotools_mask.decode(compressed).astype(bool), full)


def test_rle_shape_without_pycocotools():
    mask = Mask(data=np.array([[True, False], [True, True]]), x=1, y=0)
    assert mask_to_rle(mask, (3, 2)) == {"size": [2, 3], "counts": [2, 2, 1, 1]}


# -- max_pixels: refused before anything is allocated ------------------------------------------
class TestMaxPixels:
    def test_decode_refuses_a_mask_image_over_max_pixels_from_its_header(self):
        data = png_claiming(4000, 4000)  # the header alone: its pixels are never decoded
        with pytest.raises(ParseError) as info:
            decode_mask_image(data, max_pixels=1_000_000)
        assert info.value.reason == vm.LIMIT_REASON
        small = base64.b64encode(png_bytes(np.full((10, 10), 255, np.uint8))).decode()
        assert decode_mask_image(small, max_pixels=100).shape == (10, 10)

    def test_place_refuses_a_crop_over_max_pixels(self):
        prob = np.full((4, 4), 255, np.uint8)
        with pytest.raises(ParseError) as info:
            place_probability_mask(prob, (0, 0, 100, 100), image_size=(50, 50), max_pixels=2499)
        assert info.value.reason == vm.LIMIT_REASON
        mask, _ = place_probability_mask(
            prob, (0, 0, 100, 100), image_size=(50, 50), max_pixels=2500
        )
        assert mask.shape == (50, 50)  # clipped to the image: the clipped crop is what counts

    def test_polygon_cost_counts_its_scanline_crossings(self):
        square = [[0, 0], [40, 0], [40, 40], [0, 40]]
        cost = 40 * 40 + vm.CROSSING_COST * 2 * 40  # crop pixels + two edges crossing 40 rows
        assert polygon_mask(square, image_size=(100, 100), max_pixels=cost).area == 1600
        with pytest.raises(ParseError) as info:
            polygon_mask(square, image_size=(100, 100), max_pixels=cost - 1)
        assert info.value.reason == vm.LIMIT_REASON
