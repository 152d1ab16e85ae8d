"""A synthetic test clip: coloured squares moving and crossing on a grey background.

The clip knows where every square is at every moment (:func:`truth`), and :func:`find_squares`
finds them again in any picture by colour alone — what a perfect detector would answer. The
fake model's answers are computed with it from the pixels it receives.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

WIDTH, HEIGHT, FPS, SECONDS, SIDE = 320, 240, 10, 10, 40

#: name -> (RGB colour, start xy of the top-left corner, velocity in px/s)
SQUARES = {
    "red": ((230, 30, 30), (10.0, 70.0), (25.0, 0.0)),  # left to right
    "blue": ((30, 30, 230), (270.0, 115.0), (-25.0, 0.0)),  # right to left, passing red at 5 s
    # bottom to top, crossing both paths (each when the other square is elsewhere)
    "green": ((30, 200, 30), (20.0, 200.0), (0.0, -20.0)),
}


def truth(t: float) -> dict[str, tuple[float, float, float, float]]:
    """Where each square is at ``t`` seconds, as pixel boxes ``(x1, y1, x2, y2)``."""
    boxes = {}
    for name, (_, (x0, y0), (vx, vy)) in SQUARES.items():
        x, y = round(x0 + vx * t), round(y0 + vy * t)
        boxes[name] = (float(x), float(y), float(x + SIDE), float(y + SIDE))
    return boxes


def picture(t: float) -> np.ndarray:
    pixels = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    for name, (x1, y1, x2, y2) in truth(t).items():
        pixels[int(y1) : int(y2), int(x1) : int(x2)] = SQUARES[name][0]
    return pixels


def write_clip(path: Path) -> Path:
    """Write the 10 s clip (MPEG-4, 10 fps, high bit rate) with PyAV."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.bit_rate = 4_000_000
        for index in range(SECONDS * FPS):
            frame = av.VideoFrame.from_ndarray(picture(index / FPS), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def find_squares(pixels: np.ndarray) -> dict[str, tuple[float, float, float, float]]:
    """The box of each colour's pixels (in ``pixels``' own coordinates), for colours present."""
    found = {}
    rgb = pixels.astype(np.int16)
    for name, (colour, _, _) in SQUARES.items():
        close = (np.abs(rgb - np.array(colour, np.int16)).max(axis=2) < 60).astype(np.uint8)
        # a square's rows and columns are mostly its colour; stray edge pixels of another
        # square (codec ringing) are not
        rows = np.flatnonzero(close.sum(axis=1) >= 8)
        cols = np.flatnonzero(close.sum(axis=0) >= 8)
        if rows.size and cols.size:
            found[name] = (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))
    return found


def gemini_answer(image_bytes: bytes, *, masks: bool = False) -> list[dict[str, object]]:
    """What a perfect Gemini answers for one image: ``box_2d`` as ``[y1, x1, y2, x2]`` on 0–1000;
    with ``masks``, Gemini 2.5's ``mask``: a PNG probability map of the box (a square fills it)."""
    with Image.open(io.BytesIO(image_bytes)) as image:
        pixels = np.asarray(image.convert("RGB"))
    height, width = pixels.shape[:2]
    answer: list[dict[str, object]] = []
    for name, (x1, y1, x2, y2) in find_squares(pixels).items():
        item: dict[str, object] = {
            "box_2d": [
                round(y1 / height * 1000),
                round(x1 / width * 1000),
                round(y2 / height * 1000),
                round(x2 / width * 1000),
            ],
            "label": f"{name} square",
        }
        if masks:
            item["mask"] = _full_mask_png()
        answer.append(item)
    return answer


def _full_mask_png() -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16), 255, np.uint8), "L").save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def gemini_video_answer(video_bytes: bytes, prompt: str) -> list[dict[str, object]]:
    """What a perfect Gemini answers to the native "track in video" request: for every
    ``MM:SS.s`` time the prompt lists, the squares found in the frame the video shows then."""
    import re

    import av

    times = [
        int(minutes) * 60 + float(seconds)
        for minutes, seconds in re.findall(r"\b(\d{2}):(\d{2}\.\d)\b", prompt)
    ]
    pictures: dict[float, np.ndarray] = {}
    with av.open(io.BytesIO(video_bytes)) as container:
        for frame in container.decode(video=0):
            pictures[float(frame.time)] = frame.to_ndarray(format="rgb24")
    shown = sorted(pictures)
    answer: list[dict[str, object]] = []
    for when in times:
        at = min(shown, key=lambda t: abs(t - when))
        buffer = io.BytesIO()
        Image.fromarray(pictures[at]).save(buffer, "PNG")
        boxes = gemini_answer(buffer.getvalue())
        answer.append({"time": f"{int(when // 60):02d}:{when % 60:04.1f}", "boxes": boxes})
    return answer
