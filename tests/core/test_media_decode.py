"""``load_image(..., decode="on_use")``, what a Session asks for: an upright JPEG is checked by
decoding every byte of it at one eighth of its size, and its full pixels are decoded only when
something uses them (issue 16). A run that sends the file as it is never holds, nor spends the
CPU on, a full-size decode; a caller that wants the pixels (the default) decodes once."""

from __future__ import annotations

import contextlib
import io
import os
import random
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from vlmkit.errors import ConfigError, MediaError
from vlmkit.imagefile import read_image
from vlmkit.media import ResizePolicy, encode_image, load_image


def _jpeg(size: tuple[int, int] = (640, 480), **save: object) -> bytes:
    rng = np.random.default_rng(7)
    smooth = rng.integers(0, 255, (size[1] // 16 + 1, size[0] // 16 + 1, 3), dtype=np.uint8)
    pixels = np.kron(smooth, np.ones((16, 16, 1), dtype=np.uint8))[: size[1], : size[0]]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90, **save)
    return buffer.getvalue()


def test_an_upright_jpeg_sent_as_it_is_is_never_decoded_at_full_size(
    tmp_path: Path, decodes: list[tuple[int, int]]
) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(_jpeg((640, 480)))
    loaded = load_image(read_image(path), decode="on_use")
    encoded = encode_image(loaded)
    assert encoded.data == path.read_bytes()
    assert loaded.size == (640, 480) and loaded.mode == "RGB" and loaded.orientation == 1
    assert decodes == [(80, 60)]  # every byte checked, at 1/8 scale


def test_a_file_read_ahead_has_its_header_parsed_once_when_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pillow parses a JPEG's header in Python (its markers, quantization tables, EXIF): about
    23 µs a time, in the GIL a run's requests share (issue 16). Loading a file read ahead
    opens it once and checks it with one decode at 1/8 scale; the image handed over is the one
    opened, not a third parse."""
    from PIL import JpegImagePlugin

    path = tmp_path / "photo.jpg"
    path.write_bytes(_jpeg((640, 480)))
    read = read_image(path)  # the run's read-ahead: the header's size
    parsed: list[object] = []
    parse = JpegImagePlugin.JpegImageFile._open

    def counted(image: object) -> None:
        parsed.append(image)
        parse(image)  # type: ignore[arg-type]

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "_open", counted)
    loaded = load_image(read, decode="on_use")

    assert len(parsed) == 2  # the load's open, and the 1/8-scale check
    assert loaded.image is parsed[0]
    assert np.array_equal(
        np.asarray(loaded.image), np.asarray(Image.open(io.BytesIO(read.data)).convert("RGB"))
    )


def test_by_default_its_pixels_are_decoded_once_when_loaded(
    tmp_path: Path, decodes: list[tuple[int, int]]
) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(_jpeg((640, 480)))
    loaded = load_image(path)  # the annotate sink's way: it draws on the pixels
    np.asarray(loaded.image)
    assert decodes == [(640, 480)]


def test_decode_is_full_or_on_use() -> None:
    with pytest.raises(ConfigError, match="decode must be 'full' or 'on_use'"):
        load_image(_jpeg((8, 8)), decode="lazy")  # type: ignore[arg-type]


def test_its_pixels_are_decoded_on_first_use_exactly_as_a_full_decode(
    decodes: list[tuple[int, int]],
) -> None:
    data = _jpeg((333, 250), progressive=True)
    loaded = load_image(data, decode="on_use")
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.array_equal(np.asarray(loaded.image), expected)
    assert np.array_equal(np.asarray(loaded.image), expected)  # once: no second decode
    assert decodes == [(42, 32), (333, 250), (333, 250)]  # the check, ours, the expected


def test_a_grayscale_jpeg_is_checked_the_same_way(decodes: list[tuple[int, int]]) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.arange(256 * 64, dtype=np.uint8).reshape(64, 256) % 251).save(buffer, "JPEG")
    loaded = load_image(buffer.getvalue(), decode="on_use")
    assert loaded.mode == "L" and loaded.size == (256, 64)
    assert decodes == [(32, 8)]
    assert np.asarray(loaded.image).shape == (64, 256)


def test_threads_that_use_its_pixels_at_once_all_get_them() -> None:
    data = _jpeg((3000, 2000))
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    for _ in range(8):
        loaded = load_image(data, decode="on_use")
        got: list[np.ndarray | BaseException] = []
        start = threading.Barrier(4)

        def use(
            image: Image.Image = loaded.image,
            start: threading.Barrier = start,
            got: list[np.ndarray | BaseException] = got,
        ) -> None:
            start.wait()
            try:
                got.append(np.asarray(image))
            except BaseException as err:  # reported below
                got.append(err)

        threads = [threading.Thread(target=use) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(isinstance(array, np.ndarray) for array in got), got
        assert all(np.array_equal(array, expected) for array in got)


def test_a_closed_one_refuses_its_pixels() -> None:
    loaded = load_image(_jpeg((64, 48)), decode="on_use")
    loaded.image.close()  # what a run does once the request is built
    with pytest.raises(ValueError, match="closed"):
        np.asarray(loaded.image)
    assert loaded.size == (64, 48)


def _damaged(data: bytes, seed: int) -> bytes:
    rng = random.Random(seed)
    damaged = bytearray(data)
    if seed % 2:
        return bytes(damaged[: rng.randrange(len(data) // 4, len(data) - 8)])
    start = rng.randrange(len(data) // 4, len(data) - 300)
    del damaged[start : start + rng.randint(1, 200)]
    return bytes(damaged)


@pytest.mark.parametrize("progressive", [False, True])
def test_damaged_upright_jpegs_are_refused_when_loaded_as_a_full_decode_refuses_them(
    progressive: bool,
) -> None:
    data = _jpeg((320, 240), progressive=progressive)
    refused = 0
    for seed in range(40):
        damaged = _damaged(data, seed)
        try:
            with Image.open(io.BytesIO(damaged)) as image:
                image.load()
            full_refuses = False
        except Exception:  # whatever Pillow raises for it
            full_refuses = True
        if full_refuses:
            refused += 1
            with pytest.raises(MediaError, match="corrupt or truncated"):
                load_image(damaged, decode="on_use")
        else:
            assert load_image(damaged, decode="on_use").size == (320, 240)
    assert refused >= 20  # the cases reach the check


def test_a_rotated_jpeg_is_decoded_and_turned_when_loaded(
    decodes: list[tuple[int, int]],
) -> None:
    image = Image.open(io.BytesIO(_jpeg((64, 48))))
    exif = image.getexif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    decodes.clear()
    loaded = load_image(buffer.getvalue(), decode="on_use")
    assert loaded.size == (48, 64) and loaded.orientation == 6
    assert decodes == [(64, 48)]  # decoded in full to be turned, as before


def test_it_pickles_and_copies_like_any_pillow_image() -> None:
    import copy
    import pickle

    data = _jpeg((96, 64))
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    image = load_image(data, decode="on_use").image
    for other in (pickle.loads(pickle.dumps(image)), copy.deepcopy(image), image.copy()):
        assert other.size == (96, 64) and np.array_equal(np.asarray(other), expected)


@pytest.mark.parametrize("size", [(1600, 1200), (1601, 1203), (1203, 1601)])
def test_a_jpeg_sent_at_half_its_size_or_less_is_decoded_at_reduced_scale_only(
    decodes: list[tuple[int, int]], size: tuple[int, int]
) -> None:
    """Issue 16: a backend that sends a photo at half its size or less (``fit(1536)`` of a
    12 MP photo) resizes a decode at 1/2, 1/4 or 1/8 scale (before: the full pixels; 12 MP
    loaded, resized and encoded: about half the CPU). The result lines up with the
    full path's: the same size and transform, a sharp square's centre within 0.25 px, the
    pixels within JPEG noise."""
    from tests.core.marked_photo import marked_photo, marker_centre

    width = size[0]
    data = marked_photo(size, at=(0.6, 0.7), square=(42, 30))
    policy = ResizePolicy.fit(400)
    assert policy.decodes_reduced(size) and not ResizePolicy.fit(801).decodes_reduced(size)
    assert not ResizePolicy.fit(12).decodes_reduced(size)  # a few pixels: from the full ones
    decodes.clear()
    lazy = load_image(data, decode="on_use")
    reduced, transform = policy.apply(lazy)
    assert decodes and all(w <= (width + 1) // 2 for w, _ in decodes)  # never at full size
    assert lazy.image.tile  # the image itself still undecoded
    np.asarray(lazy.image)  # its pixels used meanwhile (another thread, say): the same result
    assert np.array_equal(np.asarray(policy.apply(lazy)[0]), np.asarray(reduced))
    decodes.clear()
    full, full_transform = policy.apply(load_image(data))
    assert reduced.size == full.size and transform == full_transform
    a, b = (np.asarray(image, dtype=np.float64) for image in (full, reduced))
    assert np.abs(a - b).mean() < 1.0

    assert (
        np.abs(marker_centre(a) - marker_centre(b)).max() < 0.25
    )  # 0.4-0.65 px without the exact extent


def test_encode_image_resizes_a_halved_jpeg_from_a_reduced_decode(
    tmp_path: Path, decodes: list[tuple[int, int]]
) -> None:
    """``encode_image(path or bytes, resize=...)`` takes the same path as a Session: a JPEG
    that the policy halves or more is resized from a decode at reduced scale (before: in full)."""
    path = tmp_path / "photo.jpg"
    path.write_bytes(_jpeg((1600, 1200)))
    policy = ResizePolicy.fit(400)
    for source in (path, str(path), path.read_bytes()):
        decodes.clear()
        encoded = encode_image(source, format="JPEG", resize=policy)
        assert decodes == [(200, 150), (400, 300)]  # checked, then a 1/4 decode
        assert encoded.size == (400, 300) and encoded.transform.original_size == (1600, 1200)
    decodes.clear()
    assert encode_image(path, format="JPEG", resize=ResizePolicy.fit(1000)).size == (1000, 750)
    assert decodes == [(1600, 1200)]  # shrunk by less than half: one full decode, no check


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_pipe_is_read_once_by_a_session_whose_backend_resizes(tmp_path: Path) -> None:
    """A path that is a pipe (a FIFO, ``/dev/stdin``) is read once, by the load: its header
    is not looked at first to choose how to decode it (which emptied the pipe, or hung)."""
    import vlmkit
    from vlmkit.testing import scripted_plugin

    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    data = _jpeg((640, 480))

    def write() -> None:
        with contextlib.suppress(BrokenPipeError), open(fifo, "wb") as handle:
            handle.write(data)

    found: dict[str, object] = {}

    def detect() -> None:
        answer = '[{"box_2d": [0, 0, 500, 500], "label": "cat"}]'
        plugin = scripted_plugin(answer, image_policy=ResizePolicy.fit(100), sends_image_files=True)
        with vlmkit.Session("scripted", plugins=[plugin], entrypoints=False) as session:
            found["detections"] = session.detect(str(fifo), "cat")

    threads = [threading.Thread(target=target, daemon=True) for target in (write, detect)]
    for thread in threads:
        thread.start()
    threads[1].join(30)
    assert not threads[1].is_alive(), "loading the pipe hung"
    assert found["detections"].image_size == (640, 480)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("sends_files", "policy", "expected"),
    [
        (True, None, [(80, 60)]),  # may be sent as it is: checked only
        (True, ResizePolicy.fit(1000), [(80, 60)]),  # the policy keeps 640×480: the same
        (True, ResizePolicy.fit(400), [(640, 480)]),  # resized a little: decoded once, no check
        (True, ResizePolicy.fit(100), [(80, 60), (160, 120)]),  # to 1/6: checked, a 1/4 decode
        (True, ResizePolicy.letterbox(640, 480), [(640, 480)]),  # a new canvas: the same
        (False, None, [(640, 480)]),  # a backend that reads the pixels: decoded once
        (False, ResizePolicy.fit(400), [(640, 480)]),  # ... and resizes them a little: the same
        (False, ResizePolicy.fit(100), [(80, 60), (160, 120)]),  # to 1/6: as above (gemma-local)
    ],
)
def test_a_run_only_checks_what_its_backend_may_send_as_it_is(
    tmp_path: Path,
    decodes: list[tuple[int, int]],
    sends_files: bool,
    policy: ResizePolicy | None,
    expected: list[tuple[int, int]],
) -> None:
    import vlmkit
    from vlmkit.testing import scripted_plugin

    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(_jpeg((640, 480)))
    answer = '[{"box_2d": [0, 0, 500, 500], "label": "cat"}]'
    plugin = scripted_plugin(answer, image_policy=policy, sends_image_files=sends_files)
    decodes.clear()
    with vlmkit.Session("scripted", plugins=[plugin], entrypoints=False) as session:
        run = session.run("detect", [folder], "cat", out_dir=tmp_path / "out")
        assert [outcome.status for outcome in run] == ["done"]
    assert decodes == expected


def _lossless_gray(pixels: np.ndarray) -> bytes:
    """A lossless (SOF3) grayscale JPEG of ``pixels``: predictor 1, one Huffman table."""
    import struct

    height, width = pixels.shape
    values = pixels.astype(int)
    out = bytearray(b"\xff\xd8")
    out += b"\xff\xc3" + struct.pack(">HBHHB", 11, 8, height, width, 1) + bytes([1, 0x11, 0])
    bits = [0] * 16
    bits[3] = 9  # categories 0-8, each a 4-bit code
    out += b"\xff\xc4" + struct.pack(">HB", 2 + 1 + 16 + 9, 0) + bytes(bits) + bytes(range(9))
    out += b"\xff\xda" + struct.pack(">HB", 8, 1) + bytes([1, 0, 1, 0, 0])
    stream = []
    for y in range(height):
        for x in range(width):
            if x == 0 and y == 0:
                predicted = 128
            elif y == 0 or x > 0:
                predicted = values[y, x - 1]
            else:
                predicted = values[y - 1, x]
            diff = int((values[y, x] - predicted + 32768) % 65536) - 32768
            size = abs(diff).bit_length()
            stream += format(size, "04b")
            if size:
                stream += format(diff if diff > 0 else diff + (1 << size) - 1, f"0{size}b")
    stream += "1" * (-len(stream) % 8)
    for index in range(0, len(stream), 8):
        byte = int("".join(stream[index : index + 8]), 2)
        out += bytes([byte, 0] if byte == 0xFF else [byte])
    return bytes(out + b"\xff\xd9")


def test_a_lossless_jpeg_which_only_decodes_at_full_scale_is_read_not_refused(
    decodes: list[tuple[int, int]],
) -> None:
    pixels = (np.add.outer(np.arange(48), np.arange(64)) * 2 % 256).astype(np.uint8)
    data = _lossless_gray(pixels)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)
    decodes.clear()
    loaded = load_image(data, decode="on_use")  # before: MediaError "corrupt or truncated"
    assert loaded.size == (64, 48) and np.array_equal(np.asarray(loaded.image), pixels)


def test_pixels_that_cannot_be_decoded_on_use_are_a_media_error_naming_the_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(_jpeg((640, 480)))
    loaded = load_image(path, decode="on_use")
    load = ImageFile.ImageFile.load

    def out_of_memory(self: ImageFile.ImageFile):  # type: ignore[no-untyped-def]
        if self.tile and self.size == (640, 480):
            raise MemoryError
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", out_of_memory)
    with pytest.raises(MediaError, match=r"photo\.jpg: cannot decode the image.s pixels"):
        np.asarray(loaded.image)
