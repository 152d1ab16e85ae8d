"""Probing and sampling videos (vlmkit.video); the test videos are written here with PyAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlmkit.errors import ConfigError, MediaError
from vlmkit.video import (
    VIDEO_MIME_TYPES,
    VideoFrame,
    format_timestamp,
    is_video_path,
    probe_video,
    sample_frames,
    video_mime_type,
)

av = pytest.importorskip("av")

COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]


def write_video(
    path: Path,
    *,
    seconds: int,
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
    rotation: int = 0,
    gop: int = 10,
) -> Path:
    """Each second a different solid colour; a white marker in the top-left corner."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.gop_size = gop
        if rotation:
            stream.set_display_rotation(rotation)
        for index in range(seconds * fps):
            pixels = np.empty((height, width, 3), np.uint8)
            pixels[:] = COLORS[(index // fps) % len(COLORS)]
            pixels[: height // 4, : width // 4] = 255
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s at 10 fps, 64×48: red, green, blue, yellow."""
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", seconds=4)


def color_of(frame: VideoFrame) -> tuple[int, int, int]:
    assert frame.image.mode == "RGB"
    return frame.image.getpixel((frame.image.width - 4, frame.image.height - 4))


def assert_color(actual: tuple[int, ...], expected: tuple[int, ...]) -> None:
    assert all(abs(a - b) <= 24 for a, b in zip(actual, expected, strict=True)), (actual, expected)


def test_probe_video(clip: Path):
    info = probe_video(clip)
    assert info.duration_s == pytest.approx(4.0, abs=0.11)
    assert info.fps == pytest.approx(10.0)
    assert info.frame_count == 40
    assert (info.width, info.height) == (64, 48)
    assert info.codec == "mpeg4"
    assert info.rotation == 0


def test_one_frame_per_second(clip: Path):
    frames = sample_frames(clip, fps=1)
    assert [f.timestamp_s for f in frames] == pytest.approx([0, 1, 2, 3], abs=0.01)
    for frame, color in zip(frames, COLORS, strict=False):
        assert frame.image.size == (64, 48)
        assert_color(color_of(frame), color)


def test_max_frames_spreads_frames_over_the_range(clip: Path):
    frames = sample_frames(clip, fps=1, max_frames=2)
    assert [f.timestamp_s for f in frames] == pytest.approx([0, 2], abs=0.01)
    assert_color(color_of(frames[0]), COLORS[0])
    assert_color(color_of(frames[1]), COLORS[2])

    spread = sample_frames(clip, fps=None, max_frames=5)
    assert [f.timestamp_s for f in spread] == pytest.approx([0, 0.8, 1.6, 2.4, 3.2], abs=0.01)


def test_start_and_end_clip_the_range(clip: Path):
    frames = sample_frames(clip, fps=2, start_s=1.5, end_s=3.0)
    assert [f.timestamp_s for f in frames] == pytest.approx([1.5, 2.0, 2.5], abs=0.01)
    for frame, color in zip(frames, (COLORS[1], COLORS[2], COLORS[2]), strict=True):
        assert_color(color_of(frame), color)
    assert len(sample_frames(clip, fps=1, end_s=100)) == 4  # clipped to the duration


def test_a_rate_above_the_videos_never_repeats_a_frame(clip: Path):
    frames = sample_frames(clip, fps=30, max_frames=100)
    stamps = [f.timestamp_s for f in frames]
    assert len(stamps) == len(set(stamps)) == 40


@pytest.mark.parametrize("gop", [4, 1000], ids=["keyframe-every-2s", "one-keyframe"])
def test_long_gaps_are_seeked_and_still_exact(tmp_path: Path, gop: int):
    path = write_video(tmp_path / "long.mp4", seconds=24, fps=2, size=(32, 32), gop=gop)
    frames = sample_frames(path, fps=1, max_frames=4)
    assert [f.timestamp_s for f in frames] == pytest.approx([0, 6, 12, 18], abs=0.01)
    for frame, second in zip(frames, (0, 6, 12, 18), strict=True):
        assert_color(color_of(frame), COLORS[second % len(COLORS)])


def test_rotated_video_comes_back_upright(tmp_path: Path):
    path = write_video(tmp_path / "phone.mp4", seconds=1, rotation=90)
    info = probe_video(path)
    assert info.rotation == 90
    assert (info.width, info.height) == (48, 64)
    frame = sample_frames(path, fps=1)[0]
    assert frame.image.size == (48, 64)
    # the marker drawn at the stored top-left is shown at the bottom-left
    assert_color(frame.image.getpixel((4, 60)), (255, 255, 255))
    assert_color(frame.image.getpixel((4, 4)), COLORS[0])


def test_sample_frames_validates_its_options(clip: Path):
    for kwargs in (
        {"fps": 0},
        {"fps": -1.0},
        {"max_frames": 0},
        {"max_frames": 2.5},
        {"start_s": -1},
        {"start_s": 2, "end_s": 1},
        {"start_s": 10},
    ):
        with pytest.raises(ConfigError):
            sample_frames(clip, **kwargs)  # type: ignore[arg-type]


def test_things_that_are_not_videos(tmp_path: Path, clip: Path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 20)
    image = tmp_path / "still.png"
    Image.new("RGB", (8, 8)).save(image)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[:2000])
    cases = [
        (text, "not a readable video"),
        (image, "still image"),
        (empty, "empty"),
        (truncated, "not a readable video"),
        (tmp_path, "directory"),
        (tmp_path / "missing.mp4", "no such file"),
    ]
    for path, expected in cases:
        for call in (probe_video, sample_frames):
            with pytest.raises(MediaError, match=expected) as caught:
                call(path)
            assert caught.value.source == str(path)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "00:00"),
        (0.999, "00:00"),
        (59.9, "00:59"),
        (61, "01:01"),
        (3599.5, "59:59"),
        (3600, "1:00:00"),
        (3725.5, "1:02:05"),
        (36000, "10:00:00"),
    ],
)
def test_format_timestamp(seconds: float, text: str):
    assert format_timestamp(seconds) == text


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf")])
def test_format_timestamp_rejects_bad_values(bad: float):
    with pytest.raises(ConfigError):
        format_timestamp(bad)


def test_video_mime_types():
    expected = {
        ".mp4": "video/mp4",
        ".mov": "video/quicktime",
        ".webm": "video/webm",
        ".mpeg": "video/mpeg",
        ".mpg": "video/mpeg",
        ".flv": "video/x-flv",
        ".wmv": "video/wmv",
        ".3gp": "video/3gpp",
    }
    for suffix, mime in expected.items():
        assert VIDEO_MIME_TYPES[suffix] == mime
        assert video_mime_type(f"dir/clip{suffix.upper()}") == mime
        assert is_video_path(Path(f"clip{suffix}"))
    assert video_mime_type("photo.jpg") is None
    assert not is_video_path("notes.txt")
