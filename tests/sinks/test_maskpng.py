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


@pytest.mark.parametrize("level", [1, 9])  # 1: our own layout's reader; 9: Pillow's
def test_pixel_data_never_inflates_past_the_size_the_header_gives(level):
    """A crafted stream that would inflate to 100 MB costs no more memory than the few bytes
    its header allows; in the layout vlmkit writes, it is refused."""
    import struct
    import tracemalloc
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", 8, 2, 1, 0, 0, 0, 0)  # 8x2, 1 bit: 4 bytes of rows
    bomb = zlib.compress(bytes(100_000_000), level)
    data = (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", bomb) + chunk(b"IEND", b"")
    )
    tracemalloc.start()
    try:
        if level == 1:
            with pytest.raises(ConfigError, match="does not match its size"):
                decode_png_mask(data, (2, 8))
        else:  # Pillow reads the rows it needs and ignores the rest of the stream
            assert not decode_png_mask(data, (2, 8)).any()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, peak  # 100 MB inflated without the limit


def test_a_header_of_another_size_is_refused_before_pillow_sees_it():
    """A PNG claiming 20000x20000 pixels is refused by its size, not by Pillow's guard
    against huge images (an exception the ledger's reader would not catch)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    def png(width: int, height: int, depth: int) -> bytes:
        header = struct.pack(">IIBBBBB", width, height, depth, 0, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"tEXt", b"note\x00hi")
            + chunk(b"IDAT", zlib.compress(b"\x00" * 10))
            + chunk(b"IEND", b"")
        )

    with pytest.raises(ConfigError, match="mask PNG is 20000x20000, expected 5x5"):
        decode_png_mask(png(20000, 20000, 8), (5, 5))
    with pytest.raises(ConfigError, match="no pixels"):
        decode_png_mask(png(7, 0, 1), (0, 7))


def test_a_large_probability_crop_reads_back():
    """An 8-bit crop over Pillow's 179 M pixel guard is the ledger's own data: it reads."""
    from PIL import Image as PILImage

    limit = PILImage.MAX_IMAGE_PIXELS
    PILImage.MAX_IMAGE_PIXELS = 1000  # the guard, lowered instead of a 180 MP test image
    try:
        mask = Mask(data=np.full((40, 60), 200, dtype=np.uint8), x=0, y=0, threshold=90)
        assert mask_from_dict(mask_to_dict(mask)) == mask
    finally:
        PILImage.MAX_IMAGE_PIXELS = limit
