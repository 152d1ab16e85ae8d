"""Loading, orienting, resizing and encoding images (vlmkit.media).

Every test image is built here at test time; nothing binary is committed.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import os
import struct
import sys
import threading
import time
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageDraw, ImageFile, features

from vlmkit.errors import ConfigError, MediaError
from vlmkit.geometry import Transform
from vlmkit.media import (
    IMAGE_SUFFIXES,
    MIME_TYPES,
    EncodedImage,
    LoadedImage,
    ResizePolicy,
    content_hash,
    encode_image,
    is_image_path,
    load_image,
)

# -- helpers -------------------------------------------------------------------------------


def encoded(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def quadrants(size: tuple[int, int] = (120, 80)) -> Image.Image:
    """An RGB image with four solid quadrants, so orientation and cropping are visible."""
    width, height = size
    image = Image.new("RGB", size, (255, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rectangle((width // 2, 0, width - 1, height // 2 - 1), fill=(0, 255, 0))
    draw.rectangle((0, height // 2, width // 2 - 1, height - 1), fill=(0, 0, 255))
    draw.rectangle((width // 2, height // 2, width - 1, height - 1), fill=(255, 255, 0))
    return image


def close(pixel: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(pixel, expected, strict=True))


def bright_box(image: Image.Image) -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1, exclusive) of the bright pixels of an image."""
    gray = np.asarray(image.convert("L"))
    ys, xs = np.nonzero(gray > 127)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def bilevel_png(width: int, height: int, *, full: bool) -> bytes:
    """A 1-bit grayscale PNG; ``full`` writes every (all-zero) row, else only the header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    if full:
        rows = (b"\x00" * (1 + (width + 7) // 8)) * 1000
        parts = [compressor.compress(rows) for _ in range(height // 1000)]
        idat = b"".join(parts) + compressor.flush()
    else:
        idat = compressor.compress(b"\x00" * 64) + compressor.flush()
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def exif_jpeg(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(image, "JPEG", quality=95, exif=exif.tobytes())


# -- formats --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "suffix", "tolerance"),
    [
        ("PNG", ".png", 0),
        ("JPEG", ".jpg", 12),
        ("WEBP", ".webp", 16),
        ("GIF", ".gif", 0),
        ("BMP", ".bmp", 0),
        ("TIFF", ".tiff", 0),
    ],
)
def test_load_each_format_from_a_file(tmp_path: Path, fmt: str, suffix: str, tolerance: int):
    path = tmp_path / f"photo{suffix}"
    data = encoded(quadrants(), fmt)
    path.write_bytes(data)

    loaded = load_image(path)

    assert loaded.format == fmt
    assert loaded.mime_type == MIME_TYPES[fmt]
    assert loaded.size == (120, 80)
    assert loaded.image.mode == "RGB"
    assert loaded.source == str(path)
    assert loaded.orientation == 1
    assert loaded.sha256 == hashlib.sha256(data).hexdigest()
    assert loaded.transform == Transform.identity((120, 80))
    assert close(loaded.image.getpixel((10, 10)), (255, 0, 0), tolerance)
    assert close(loaded.image.getpixel((110, 70)), (255, 255, 0), tolerance)
    assert is_image_path(path)


def test_str_path_and_bytes_give_the_same_hash(tmp_path: Path):
    data = encoded(quadrants(), "PNG")
    (tmp_path / "a.png").write_bytes(data)
    from_path = load_image(str(tmp_path / "a.png"))
    for raw in (data, bytearray(data), memoryview(data)):
        from_bytes = load_image(raw)
        assert from_bytes.source == "<bytes>"
        assert from_bytes.sha256 == from_path.sha256 == content_hash(data)


def test_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (32, 24), color) for color in [(255, 0, 0), (0, 0, 255)]]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    loaded = load_image(buffer.getvalue())
    assert loaded.format == "GIF"
    assert loaded.image.mode == "RGB"
    assert loaded.image.getpixel((5, 5)) == (255, 0, 0)


def test_sixteen_bit_png_is_scaled_to_eight_bits():
    ramp = np.linspace(0, 65535, 256, dtype=np.uint16).reshape(16, 16)
    source = Image.fromarray(ramp)
    assert source.mode == "I;16"
    loaded = load_image(encoded(source, "PNG"))
    pixels = np.asarray(loaded.image)
    assert loaded.image.mode == "L"
    assert pixels.min() == 0 and pixels.max() == 255
    assert abs(int(pixels.reshape(-1)[128]) - 128) <= 1


def test_cmyk_jpeg_and_tiff_become_rgb():
    cmyk = Image.new("CMYK", (20, 10), (0, 255, 255, 0))  # red
    for fmt in ("JPEG", "TIFF"):
        loaded = load_image(encoded(cmyk, fmt))
        assert loaded.image.mode == "RGB"
        assert close(loaded.image.getpixel((5, 5)), (255, 0, 0), 16)


def test_palette_modes_keep_transparency():
    palette = Image.new("P", (20, 10), 0)
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.paste(1, (10, 0, 20, 10))
    opaque = load_image(encoded(palette, "PNG"))
    assert opaque.image.mode == "RGB"
    assert opaque.image.getpixel((15, 5)) == (0, 0, 255)

    transparent = load_image(encoded(palette, "PNG", transparency=0))
    assert transparent.image.mode == "RGBA"
    assert transparent.image.getpixel((5, 5))[3] == 0
    assert transparent.image.getpixel((15, 5)) == (0, 0, 255, 255)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("1", "L"), ("L", "L"), ("LA", "RGBA"), ("RGBA", "RGBA"), ("I", "L"), ("F", "L")],
)
def test_other_modes_are_converted(mode: str, expected: str):
    image = Image.new("L", (16, 8), 200).convert(mode)
    fmt = "TIFF" if mode in ("I", "F") else "PNG"
    loaded = load_image(encoded(image, fmt))
    assert loaded.image.mode == expected
    if mode != "1":
        assert loaded.image.getpixel((0, 0)) in (200, (200, 200, 200, 255))


def test_a_float_pil_image_in_zero_to_one_is_scaled():
    loaded = load_image(Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32)))
    assert loaded.image.mode == "L"
    assert np.asarray(loaded.image)[0, 0] == 128


# -- EXIF orientation -------------------------------------------------------------------------


def test_exif_orientation_six_comes_back_upright(tmp_path: Path):
    stored = Image.new("RGB", (80, 60), (0, 0, 0))
    stored.paste((255, 255, 255), (0, 0, 20, 10))  # marker at the stored top-left
    path = tmp_path / "phone.jpg"
    path.write_bytes(exif_jpeg(stored, 6))

    loaded = load_image(path)

    assert loaded.orientation == 6
    assert loaded.size == (60, 80)  # rotated 90° clockwise for display
    marker = bright_box(loaded.image)
    assert marker == pytest.approx((50, 0, 60, 20), abs=1)
    assert loaded.transform.orientation == 6
    assert loaded.transform.stored_size == (80, 60)
    back = loaded.transform.boxes_to_stored(np.array([marker]))
    np.testing.assert_allclose(back[0], (0, 0, 20, 10), atol=1)


def test_an_upright_file_is_not_copied_after_decoding(tmp_path: Path, monkeypatch):
    """Issue 16: an upright RGB JPEG read from a file is handed over as decoded, not copied
    (a copy is 36 MB for a 12 MP photo); the pixels stay usable after loading."""
    copies: list[tuple[int, int]] = []
    original_copy = Image.Image.copy

    def counting_copy(self: Image.Image) -> Image.Image:
        copies.append(self.size)
        return original_copy(self)

    monkeypatch.setattr(Image.Image, "copy", counting_copy)
    path = tmp_path / "upright.jpg"
    path.write_bytes(encoded(quadrants(), "JPEG", quality=95))
    loaded = load_image(path)
    assert copies == []
    pixels = np.asarray(loaded.image)  # not closed: the decoded pixels are still there
    assert pixels.shape == (80, 120, 3)
    assert tuple(pixels[5, 5]) == pytest.approx((255, 0, 0), abs=8)
    assert tuple(pixels[75, 115]) == pytest.approx((255, 255, 0), abs=8)
    encode_image(loaded)  # and the encoder can work with it

    rotated = tmp_path / "rotated.jpg"
    rotated.write_bytes(exif_jpeg(quadrants(), 6))
    assert load_image(rotated).size == (80, 120)  # a rotated one still is turned upright


def test_reading_a_file_allocates_its_size_not_max_bytes(tmp_path: Path):
    """Issue 16: a small file is read into a buffer of its size, not one of ``max_bytes``
    (200 MB by default, reserved and released per image, per item in flight); a file that
    grows after its size was read is still read whole, up to ``max_bytes``."""
    import tracemalloc

    path = tmp_path / "small.png"
    path.write_bytes(encoded(quadrants(), "PNG"))
    load_image(path)
    tracemalloc.start()
    try:
        load_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20  # decoding 80 x 120 pixels takes kilobytes, not 200 MB

    from vlmkit import media

    grown = tmp_path / "grown.png"
    data = encoded(quadrants(), "PNG")
    grown.write_bytes(data[:100])
    real_fstat = os.fstat

    def fstat_then_grow(fd: int) -> os.stat_result:
        info = real_fstat(fd)
        grown.write_bytes(data)  # the rest arrives after the size was read
        return info

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(media.os, "fstat", fstat_then_grow)
        assert load_image(grown).size == (120, 80)
        with pytest.raises(MediaError, match="over max_bytes=200"):
            load_image(grown, max_bytes=200)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_maps_back_to_the_stored_grid(orientation: int):
    stored = Image.new("RGB", (64, 40), (0, 0, 0))
    stored.paste((255, 255, 255), (8, 4, 24, 12))
    loaded = load_image(exif_jpeg(stored, orientation))
    assert loaded.orientation == orientation
    expected_size = (40, 64) if orientation >= 5 else (64, 40)
    assert loaded.size == expected_size
    back = loaded.transform.boxes_to_stored(np.array([bright_box(loaded.image)]))
    np.testing.assert_allclose(back[0], (8, 4, 24, 12), atol=1)


def test_a_pil_image_with_exif_is_turned_upright_and_not_aliased():
    stored = Image.new("RGB", (80, 60), (10, 20, 30))
    source = Image.open(io.BytesIO(exif_jpeg(stored, 6)))
    loaded = load_image(source)
    assert loaded.source == "<PIL.Image>"
    assert loaded.format == "JPEG"
    assert loaded.orientation == 6
    assert loaded.size == (60, 80)
    assert loaded.image is not source

    plain = Image.new("RGB", (4, 4), (1, 2, 3))
    loaded = load_image(plain)
    plain.putpixel((0, 0), (255, 255, 255))
    assert loaded.image.getpixel((0, 0)) == (1, 2, 3)


# -- HEIC / HEIF ------------------------------------------------------------------------------


def heic_bytes(image: Image.Image, orientation: int = 1) -> bytes:
    pillow_heif = pytest.importorskip("pillow_heif")
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    pillow_heif.from_pillow(image).save(buffer, quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def test_heic_round_trip(tmp_path: Path):
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(heic_bytes(quadrants((64, 48))))
    loaded = load_image(path)
    assert loaded.format == "HEIC"
    assert loaded.mime_type == "image/heic"
    assert loaded.size == (64, 48)
    assert loaded.image.mode == "RGB"
    assert close(loaded.image.getpixel((5, 5)), (255, 0, 0), 24)
    assert close(loaded.image.getpixel((60, 44)), (255, 255, 0), 24)


def test_heic_orientation_is_recorded():
    stored = Image.new("RGB", (64, 48), (0, 0, 0))
    stored.paste((255, 255, 255), (0, 0, 16, 8))
    loaded = load_image(heic_bytes(stored, orientation=6))
    assert loaded.orientation == 6
    assert loaded.size == (48, 64)
    back = loaded.transform.boxes_to_stored(np.array([bright_box(loaded.image)]))
    np.testing.assert_allclose(back[0], (0, 0, 16, 8), atol=2)


def test_heic_without_pillow_heif_says_what_to_install(monkeypatch: pytest.MonkeyPatch):
    data = heic_bytes(quadrants((32, 32)))
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import now fails
    with pytest.raises(MediaError, match=r'pip install "vlmkit\[heif\]"'):
        load_image(data)


def test_avif_when_pillow_supports_it():
    if not features.check_module("avif"):
        pytest.skip("this Pillow has no AVIF codec")
    loaded = load_image(encoded(quadrants((64, 48)), "AVIF", quality=90))
    assert loaded.format == "AVIF"
    assert loaded.mime_type == "image/avif"
    assert loaded.size == (64, 48)
    assert close(loaded.image.getpixel((5, 5)), (255, 0, 0), 24)


# -- unreadable inputs ------------------------------------------------------------------------


def test_unreadable_files_name_the_source(tmp_path: Path):
    jpeg = encoded(quadrants(), "JPEG")
    cases = {
        "empty.png": (b"", "empty"),
        "notes.jpg": (b"just some text, not an image\n" * 4, "not a supported image"),
        "noise.png": (bytes(range(256)) * 4, "not a supported image"),
        "corrupt.png": (encoded(quadrants(), "PNG")[:40] + b"\x00garbage" * 20, "corrupt"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "corrupt or truncated"),
        "doc.png": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "PDF"),
        "logo.png": (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        "clip.jpg": (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video"),
    }
    for filename, (data, expected) in cases.items():
        path = tmp_path / filename
        path.write_bytes(data)
        with pytest.raises(MediaError, match=expected) as caught:
            load_image(path)
        assert str(path) in str(caught.value)
        assert caught.value.source == str(path)


def test_directories_and_missing_files(tmp_path: Path):
    with pytest.raises(MediaError, match="is a directory"):
        load_image(tmp_path)
    with pytest.raises(MediaError, match="no such file"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(MediaError, match="cannot load an image from a int"):
        load_image(42)  # type: ignore[arg-type]


def test_a_file_is_read_with_one_open_and_no_separate_stat(tmp_path: Path, monkeypatch):
    # A run loads every input once: its size and kind come from the open file (fstat), not
    # from a stat and an is_dir stat before opening it (issue 16).
    path = tmp_path / "a.png"
    Image.new("RGB", (8, 6), "red").save(path)
    calls: list[str] = []
    real = os.stat

    def counting(*args, **kwargs):
        calls.append(str(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(os, "stat", counting)
    loaded = load_image(path)
    monkeypatch.undo()
    assert loaded.size == (8, 6)
    assert calls == []


def test_files_and_bytes_over_max_bytes_are_refused(tmp_path: Path):
    data = encoded(quadrants(), "PNG")
    (tmp_path / "a.png").write_bytes(data)
    with pytest.raises(MediaError, match="max_bytes"):
        load_image(tmp_path / "a.png", max_bytes=100)
    with pytest.raises(MediaError, match="max_bytes"):
        load_image(data, max_bytes=100)


@pytest.mark.parametrize("option", ["max_pixels", "max_bytes", "timeout"])
def test_limits_must_be_positive(option: str):
    with pytest.raises(ConfigError, match=option):
        load_image(b"x", **{option: 0})


# -- decompression bombs ----------------------------------------------------------------------


def test_a_decompression_bomb_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch):
    bomb = bilevel_png(20000, 20000, full=True)  # 400 megapixels in ~50 kB
    assert len(bomb) < 200_000
    decoded: list[object] = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    limit = Image.MAX_IMAGE_PIXELS

    with pytest.raises(MediaError, match="decompression"):
        load_image(bomb)
    assert decoded == []  # refused from the header: no pixel was decoded
    assert limit == Image.MAX_IMAGE_PIXELS  # no global state changed


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_max_pixels_is_checked_from_the_header(monkeypatch: pytest.MonkeyPatch):
    header_only = bilevel_png(11000, 11000, full=False)  # 121 MP: over the 100 MP default
    decoded: list[object] = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    with pytest.raises(MediaError, match=r"11000×11000 .* max_pixels=100,000,000"):
        load_image(header_only)
    assert decoded == []


def test_a_small_max_pixels_refuses_a_normal_image(tmp_path: Path):
    data = encoded(quadrants(), "PNG")  # 9,600 pixels
    with pytest.raises(MediaError, match="max_pixels=5,000"):
        load_image(data, max_pixels=5000)
    with pytest.raises(MediaError, match="max_pixels"):
        load_image(quadrants(), max_pixels=5000)
    with pytest.raises(MediaError, match="max_pixels"):
        load_image(np.zeros((100, 100), np.uint8), max_pixels=5000)
    assert load_image(data, max_pixels=9600).size == (120, 80)


def test_pillows_bomb_warning_raised_as_an_error_becomes_a_media_error():
    header_only = bilevel_png(10000, 9500, full=False)  # 95 MP: over Pillow's warning level
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(MediaError, match="decompression-bomb"):
            load_image(header_only, max_pixels=200_000_000)


# -- numpy and PIL inputs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "mode", "first"),
    [
        (np.eye(4, dtype=bool), "L", 255),
        (np.full((4, 5), 7, np.uint8), "L", 7),
        (np.full((4, 5, 3), (1, 2, 3), np.uint8), "RGB", (1, 2, 3)),
        (np.full((4, 5, 4), (1, 2, 3, 4), np.uint8), "RGBA", (1, 2, 3, 4)),
        (np.full((4, 5), 0.5, np.float32), "L", 128),
        (np.full((4, 5, 3), (0.0, 0.5, 1.0), np.float64), "RGB", (0, 128, 255)),
        (np.full((4, 5, 4), 1.0, np.float16), "RGBA", (255, 255, 255, 255)),
        (np.zeros((4, 10, 3), np.uint8)[:, ::2], "RGB", (0, 0, 0)),  # not contiguous
    ],
)
def test_accepted_arrays(array: np.ndarray, mode: str, first: object):
    loaded = load_image(array)
    assert loaded.source == "<numpy>"
    assert loaded.format is None
    assert loaded.image.mode == mode
    assert loaded.size == (array.shape[1], array.shape[0])
    assert loaded.image.getpixel((0, 0)) == first
    assert loaded.sha256 == load_image(array.copy()).sha256


@pytest.mark.parametrize(
    ("array", "reason"),
    [
        (np.zeros((4, 5), np.uint16), "dtype"),
        (np.zeros((4, 5, 3), np.int64), "dtype"),
        (np.zeros((4, 5, 3), bool), "dtype"),
        (np.full((4, 5), 1.5, np.float32), r"\[0, 1\]"),
        (np.full((4, 5), -0.1, np.float32), r"\[0, 1\]"),
        (np.full((4, 5), np.nan, np.float32), r"\[0, 1\]"),
        (np.zeros((4, 5, 2), np.uint8), "shape"),
        (np.zeros((4,), np.uint8), "shape"),
        (np.zeros((2, 4, 5, 3), np.uint8), "shape"),
        (np.zeros((0, 5), np.uint8), "shape"),
    ],
)
def test_rejected_arrays(array: np.ndarray, reason: str):
    with pytest.raises(MediaError, match=reason) as caught:
        load_image(array)
    assert caught.value.source == "<numpy>"


def test_pixel_hash_depends_on_pixels_size_and_mode():
    a = load_image(np.zeros((4, 6), np.uint8))
    b = load_image(np.zeros((6, 4), np.uint8))
    c = load_image(np.zeros((4, 6, 3), np.uint8))
    d = load_image(np.ones((4, 6), np.uint8))
    assert len({a.sha256, b.sha256, c.sha256, d.sha256}) == 4


def test_a_loaded_image_is_returned_as_is():
    loaded = load_image(np.zeros((4, 4), np.uint8))
    assert load_image(loaded) is loaded


def test_loaded_image_validates_its_fields():
    with pytest.raises(ConfigError):
        LoadedImage(image=Image.new("P", (2, 2)), source="x", sha256="0")
    with pytest.raises(ConfigError):
        LoadedImage(image=Image.new("RGB", (2, 2)), source="x", sha256="0", orientation=9)


# -- URLs -------------------------------------------------------------------------------------

PNG = encoded(quadrants(), "PNG")


class _Handler(http.server.BaseHTTPRequestHandler):
    seen_auth: ClassVar[list[str | None]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        type(self).seen_auth.append(self.headers.get("Authorization"))
        if path == "/photo.png":
            self._send(200, PNG, "image/png")
        elif path == "/page.html":
            self._send(200, b"<!DOCTYPE html><html><body>hi</body></html>", "text/html")
        elif path == "/declared-big":
            self.send_response(200)
            self.send_header("Content-Length", str(10**9))
            self.end_headers()
            self.wfile.write(b"\x00" * 1024)
        elif path == "/streamed-big":
            self.send_response(200)  # no Content-Length: the body ends when the connection does
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(64):
                self.wfile.write(b"\x00" * 1024)
        elif path == "/slow":
            time.sleep(1.5)
            self._send(200, PNG, "image/png")
        elif path in ("/to-file", "/to-ftp"):
            self.send_response(302)
            target = "file:///etc/passwd" if path == "/to-file" else "ftp://127.0.0.1/a.png"
            self.send_header("Location", target)
            self.end_headers()
        else:
            self._send(404, b"not found", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that gave up (timeout, max_bytes) is expected here


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_load_from_a_url_hides_the_query_string(server: str):
    loaded = load_image(f"{server}/photo.png?X-Amz-Signature=SECRET123#frag")
    assert loaded.source == f"{server}/photo.png"
    assert loaded.format == "PNG"
    assert loaded.sha256 == content_hash(PNG)
    assert loaded.size == (120, 80)


def test_credentials_in_a_url_are_used_but_never_shown(server: str):
    _Handler.seen_auth.clear()
    host = server.removeprefix("http://")
    loaded = load_image(f"http://alice:s3cret@{host}/photo.png?token=T0KEN")
    expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert _Handler.seen_auth == [expected]
    assert loaded.source == f"{server}/photo.png"
    with pytest.raises(MediaError) as caught:
        load_image(f"http://alice:s3cret@{host}/missing.png?token=T0KEN")
    for secret in ("alice", "s3cret", "T0KEN"):
        assert secret not in str(caught.value)
        assert secret not in loaded.source
        assert secret not in (caught.value.source or "")


def test_http_errors(server: str):
    with pytest.raises(MediaError, match="HTTP 404") as caught:
        load_image(f"{server}/missing.png")
    assert caught.value.source == f"{server}/missing.png"
    with pytest.raises(MediaError, match="HTML page"):
        load_image(f"{server}/page.html")
    with pytest.raises(MediaError, match="HTTP 302"):
        load_image(f"{server}/to-file")
    with pytest.raises(MediaError, match="redirect to a ftp: URL refused"):
        load_image(f"{server}/to-ftp")


def test_downloads_over_max_bytes_are_cut_off(server: str):
    with pytest.raises(MediaError, match="max_bytes=10,000"):
        load_image(f"{server}/declared-big", max_bytes=10_000)
    with pytest.raises(MediaError, match="max_bytes=10,000"):
        load_image(f"{server}/streamed-big", max_bytes=10_000)


def test_a_slow_server_times_out(server: str):
    with pytest.raises(MediaError, match=r"timed out after 0\.3 s"):
        load_image(f"{server}/slow", timeout=0.3)


def test_nothing_listening():
    with pytest.raises(MediaError, match="could not connect"):
        load_image("http://127.0.0.1:9/photo.png", timeout=2)


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://127.0.0.1/a.png", "data:image/png;base64,AAAA", "gs://b/a.png"],
)
def test_other_url_schemes_are_refused(url: str):
    with pytest.raises(MediaError, match="URLs are not supported"):
        load_image(url)


# -- resize policies --------------------------------------------------------------------------


def test_policy_sizes():
    image = Image.new("RGB", (400, 300))
    assert ResizePolicy.none().apply(image)[0].size == (400, 300)
    pixels, transform = ResizePolicy.fit(100).apply(image)
    assert pixels.size == (100, 75)
    assert transform.scale == (0.25, 0.25)
    assert ResizePolicy.fit(1000).apply(image)[0].size == (400, 300)  # never enlarges
    pixels, _ = ResizePolicy.max_pixels(10_000).apply(image)
    assert pixels.size[0] * pixels.size[1] <= 10_000
    assert pixels.size == (115, 86)
    assert ResizePolicy.max_pixels(10**6).apply(image)[0].size == (400, 300)
    assert ResizePolicy.exact(50, 200).apply(image)[0].size == (50, 200)


def test_letterbox_pads_centred_with_the_fill():
    image = Image.new("RGB", (400, 300), (255, 255, 255))
    pixels, transform = ResizePolicy.letterbox(200, 200, fill=(10, 20, 30)).apply(image)
    assert pixels.size == (200, 200)
    assert transform.offset == (0.0, 25.0)
    assert transform.scale == (0.5, 0.5)
    assert pixels.getpixel((100, 10)) == (10, 20, 30)
    assert pixels.getpixel((100, 100)) == (255, 255, 255)

    small = Image.new("L", (50, 20), 255)  # enlarged to fit
    pixels, transform = ResizePolicy.letterbox(200, 200).apply(small)
    assert pixels.mode == "L"
    assert transform.scale == (4.0, 4.0)
    assert transform.offset == (0.0, 60.0)


POLICIES = [
    ResizePolicy.none(),
    ResizePolicy.fit(150),
    ResizePolicy.max_pixels(20_000),
    ResizePolicy.exact(97, 211),
    ResizePolicy.letterbox(128, 128),
    ResizePolicy.letterbox(301, 97, fill=(0, 0, 0)),
    ResizePolicy.letterbox(640, 640),
]


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.kind)
def test_the_transform_maps_a_drawn_box_onto_the_resized_pixels(policy: ResizePolicy):
    image = Image.new("RGB", (333, 217), (0, 0, 0))
    box = (60, 40, 181, 121)
    ImageDraw.Draw(image).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill="white")

    pixels, transform = policy.apply(image)

    assert transform.original_size == (333, 217)
    assert transform.sent_size == pixels.size
    expected = transform.boxes_to_sent(np.array([box]))[0]
    np.testing.assert_allclose(bright_box(pixels), expected, atol=1.5)
    np.testing.assert_allclose(
        transform.boxes_to_original(np.array([bright_box(pixels)]))[0],
        box,
        atol=1.5 / min(transform.scale),
    )


def test_policy_keeps_the_orientation_of_a_loaded_image():
    loaded = load_image(exif_jpeg(Image.new("RGB", (80, 60)), 6))
    _, transform = ResizePolicy.fit(40).apply(loaded)
    assert transform.orientation == 6
    assert transform.original_size == (60, 80)
    assert transform.sent_size == (30, 40)


def test_policy_validation():
    with pytest.raises(ConfigError):
        ResizePolicy.fit(0)
    with pytest.raises(ConfigError):
        ResizePolicy.exact(10, -1)
    with pytest.raises(ConfigError):
        ResizePolicy.letterbox(10, 10, fill=(0, 0, 300))
    with pytest.raises(ConfigError, match="needs max_side"):
        ResizePolicy(kind="fit")
    with pytest.raises(ConfigError):
        ResizePolicy(kind="crop")  # type: ignore[arg-type]
    assert ResizePolicy.letterbox(10, 10, fill=114).fill == (114, 114, 114)


# -- encode_image -----------------------------------------------------------------------------


def decode(encoded_image: EncodedImage) -> Image.Image:
    image = Image.open(io.BytesIO(encoded_image.data))
    image.load()
    return image


@pytest.mark.parametrize(
    ("fmt", "mime"), [("JPEG", "image/jpeg"), ("png", "image/png"), ("webp", "image/webp")]
)
def test_encode_each_format(fmt: str, mime: str):
    loaded = load_image(quadrants())
    result = encode_image(loaded, format=fmt)
    back = decode(result)
    assert result.mime_type == mime
    assert result.format == fmt.upper()
    assert back.format == fmt.upper()
    assert back.size == result.size == (120, 80)
    assert back.mode == "RGB"
    assert result.sha256 == content_hash(result.data)
    assert result.transform == Transform.identity((120, 80))
    assert close(back.getpixel((110, 70)), (255, 255, 0), 16)


def test_jpeg_flattens_transparency_onto_white():
    rgba = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (20, 0, 40, 20))
    result = encode_image(load_image(rgba), format="jpeg")
    back = decode(result)
    assert back.mode == "RGB"
    assert close(back.getpixel((5, 10)), (255, 255, 255))
    assert close(back.getpixel((35, 10)), (255, 0, 0))

    png = decode(encode_image(load_image(rgba), format="png"))
    assert png.mode == "RGBA"
    assert png.getpixel((5, 10))[3] == 0


def test_auto_picks_png_for_alpha_and_simple_images_and_jpeg_for_photos():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    assert encode_image(load_image(photo)).mime_type == "image/jpeg"
    with_alpha = np.dstack([photo, np.full((200, 300), 128, np.uint8)])
    assert encode_image(load_image(with_alpha)).mime_type == "image/png"
    opaque_rgba = np.dstack([photo, np.full((200, 300), 255, np.uint8)])
    result = encode_image(load_image(opaque_rgba))
    assert result.mime_type == "image/jpeg"
    assert decode(result).mode == "RGB"
    assert encode_image(load_image(photo[..., 0])).mime_type == "image/png"  # small grayscale
    assert encode_image(load_image(quadrants())).mime_type == "image/png"  # four colours
    big_gray = rng.integers(0, 256, (1100, 1000), dtype=np.uint8)
    assert encode_image(load_image(big_gray)).mime_type == "image/jpeg"


def test_encoding_drops_exif_and_keeps_the_image_upright():
    loaded = load_image(exif_jpeg(Image.new("RGB", (80, 60), (30, 60, 90)), 6))
    for fmt in ("jpeg", "png", "webp"):
        result = encode_image(loaded, format=fmt)
        back = decode(result)
        assert back.size == (60, 80)
        assert 0x0112 not in back.getexif()
        assert result.transform.orientation == 6


def test_encoding_keeps_an_icc_profile():
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    loaded = load_image(encoded(quadrants(), "JPEG", icc_profile=profile))
    for fmt in ("jpeg", "png", "webp"):
        assert decode(encode_image(loaded, format=fmt)).info.get("icc_profile") == profile


def test_encode_with_a_resize_policy_and_from_a_path(tmp_path: Path):
    path = tmp_path / "a.png"
    path.write_bytes(encoded(quadrants((400, 300)), "PNG"))
    result = encode_image(path, format="jpeg", quality=80, resize=ResizePolicy.letterbox(64, 64))
    assert result.size == (64, 64)
    assert decode(result).size == (64, 64)
    assert result.transform.sent_size == (64, 64)
    assert result.transform.offset == (0.0, 8.0)


def test_encode_quality_changes_the_bytes():
    loaded = load_image(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    small = encode_image(loaded, format="jpeg", quality=10)
    large = encode_image(loaded, format="jpeg", quality=95)
    assert len(small.data) < len(large.data)
    assert encode_image(loaded, format="jpeg", quality=10).data == small.data  # deterministic


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_jpeg_by_opencv_and_by_pillow_agree(mode: str, monkeypatch: pytest.MonkeyPatch):
    """OpenCV encodes (with the GIL released) when installed; without it Pillow does the same
    libjpeg encoding: same size, same colours, channel order kept."""
    pytest.importorskip("cv2")
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    pixels[:, :40] = (250, 10, 10)  # a red band: a swapped channel order would show as blue
    loaded = load_image(Image.fromarray(pixels).convert(mode))
    by_opencv = encode_image(loaded, format="jpeg", quality=90)
    monkeypatch.setitem(sys.modules, "cv2", None)  # ``import cv2`` now raises ImportError
    by_pillow = encode_image(loaded, format="jpeg", quality=90)
    for result in (by_opencv, by_pillow):
        back = decode(result)
        assert (result.format, result.mime_type, result.size) == ("JPEG", "image/jpeg", (130, 90))
        assert back.mode == mode and back.size == (130, 90)
        assert result.sha256 == content_hash(result.data)
    a = np.asarray(decode(by_opencv), dtype=np.int16)
    b = np.asarray(decode(by_pillow), dtype=np.int16)
    assert np.abs(a - b).mean() < 1.0
    if mode == "RGB":
        assert close(decode(by_opencv).getpixel((10, 45)), (250, 10, 10), 20)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"format": "gif"},
        {"format": "bmp"},
        {"format": 3},
        {"quality": 0},
        {"quality": 101},
        {"quality": 90.5},
        {"quality": True},
        {"resize": (10, 10)},
    ],
)
def test_encode_validates_its_options(kwargs: dict[str, object]):
    with pytest.raises(ConfigError):
        encode_image(load_image(quadrants()), **kwargs)  # type: ignore[arg-type]


# -- small helpers ----------------------------------------------------------------------------


def test_content_hash_and_tables():
    assert content_hash(b"abc") == hashlib.sha256(b"abc").hexdigest()
    assert MIME_TYPES["JPEG"] == "image/jpeg"
    assert MIME_TYPES["HEIC"] == "image/heic"
    assert MIME_TYPES["HEIF"] == "image/heif"
    assert {"PNG", "WEBP", "GIF", "BMP", "TIFF"} <= set(MIME_TYPES)
    assert is_image_path("a/b/IMG_0001.JPG")
    assert is_image_path(Path("x.heic"))
    assert not is_image_path("notes.txt")
    assert not is_image_path("clip.mp4")
    assert all(suffix.startswith(".") and suffix.islower() for suffix in IMAGE_SUFFIXES)


def test_an_unchanged_file_is_sent_as_it_is(tmp_path):
    """No re-encoding (and no quality loss) when nothing about the pixels changed."""
    from vlmkit.media import ResizePolicy, encode_image, load_image

    path = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 48), (200, 10, 10)).save(path, quality=75)
    original = path.read_bytes()
    loaded = load_image(path)
    same = encode_image(loaded)
    assert same.data == original and same.mime_type == "image/jpeg"
    assert same.sha256 == loaded.sha256
    assert encode_image(loaded, format="PNG").data != original  # another format: encoded
    resized = encode_image(loaded, resize=ResizePolicy.fit(32))
    assert resized.data != original and resized.size == (32, 24)
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (64, 48)).save(rotated, exif=exif.tobytes())
    upright = encode_image(load_image(rotated))
    assert upright.data != rotated.read_bytes() and upright.size == (48, 64)
