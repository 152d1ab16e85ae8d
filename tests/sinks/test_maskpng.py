"""The ledger's mask PNGs: written with NumPy and zlib, read by any PNG reader, and every PNG
an older vlmkit wrote (through Pillow) still reads the same."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from vlmkit.errors import ConfigError
from vlmkit.maskpng import decode_png_mask, encode_png_mask
from vlmkit.serialize import mask_from_dict, mask_to_dict
from vlmkit.types import Mask


def pillow_png(array: np.ndarray, **options) -> bytes:
    """What vlmkit stored before: Pillow's encoder."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", **options)
    return buffer.getvalue()


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 40),
    st.integers(1, 40),
    st.integers(0, 2**32 - 1),
    st.sampled_from(["random", "empty", "full", "ellipse"]),
)
def test_pillow_reads_the_mask_written_and_so_does_vlmkit(height, width, seed, kind):
    rng = np.random.default_rng(seed)
    if kind == "random":
        mask = rng.random((height, width)) > 0.5
    elif kind == "ellipse":
        yy, xx = np.mgrid[:height, :width]
        mask = ((yy - height / 2) / (height / 2)) ** 2 + ((xx - width / 2) / (width / 2)) ** 2 < 1
    else:
        mask = np.full((height, width), kind == "full")
    data = encode_png_mask(mask)
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.mode == "1" and image.size == (width, height)
        assert np.array_equal(np.array(image), mask)
    decoded = decode_png_mask(data, (height, width))
    assert decoded.dtype == np.bool_ and np.array_equal(decoded, mask)
    # ... and a PNG Pillow wrote (an older vlmkit's ledger) reads the same
    assert np.array_equal(decode_png_mask(pillow_png(mask), (height, width)), mask)
    assert np.array_equal(decode_png_mask(pillow_png(mask, optimize=True), (height, width)), mask)


def test_a_large_mask_is_smaller_than_pillows():
    yy, xx = np.mgrid[:900, :1200]
    mask = ((yy - 450) / 440.0) ** 2 + ((xx - 600) / 590.0) ** 2 < 1
    ours, theirs = encode_png_mask(mask), pillow_png(mask)
    assert len(ours) < len(theirs)
    assert np.array_equal(decode_png_mask(ours, mask.shape), mask)


def test_probability_crops_stay_8_bit_pngs_and_round_trip():
    rng = np.random.default_rng(1)
    mask = Mask(data=rng.integers(0, 256, (13, 21), dtype=np.uint8), x=3, y=4, threshold=90)
    stored = mask_to_dict(mask)
    with Image.open(io.BytesIO(base64.b64decode(stored["png"]))) as image:
        assert image.mode == "L"
    assert mask_from_dict(stored) == mask


def test_a_ledger_mask_written_by_pillow_reads_back_unchanged():
    rng = np.random.default_rng(2)
    data = rng.random((37, 53)) > 0.3
    old = {
        "x": 5,
        "y": 6,
        "threshold": 127,
        "dtype": "bool",
        "shape": [37, 53],
        "png": base64.b64encode(pillow_png(data, optimize=False)).decode(),
    }
    assert mask_from_dict(old) == Mask(data=data, x=5, y=6)


def test_only_bool_arrays_become_1_bit_pngs():
    with pytest.raises(ConfigError, match="bool"):
        encode_png_mask(np.ones((2, 2), dtype=np.uint8))
    with pytest.raises(ConfigError, match="bool"):
        encode_png_mask(np.ones((0, 3), dtype=bool))


@pytest.mark.parametrize("writer", [encode_png_mask, pillow_png])
def test_a_png_of_another_size_than_its_record_says_is_refused(writer):
    data = writer(np.ones((4, 6), dtype=bool))
    with pytest.raises(ConfigError, match="mask PNG is 6x4, expected 6x5"):
        decode_png_mask(data, (5, 6))


def test_pixel_data_never_inflates_past_the_size_the_header_gives():
    """A crafted stream that would inflate to 100 MB is refused after the few bytes its
    header allows."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", 8, 2, 1, 0, 0, 0, 0)  # 8x2, 1 bit: 4 bytes of rows
    bomb = zlib.compress(bytes(100_000_000), 9)
    data = (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", bomb) + chunk(b"IEND", b"")
    )
    with pytest.raises(ConfigError, match="does not match its size"):
        decode_png_mask(data, (2, 8))
