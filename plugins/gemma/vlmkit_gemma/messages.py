"""Turn a vlmkit request into Gemma chat messages.

Google's advice for Gemma 4 is followed: the image(s) come *before* the text of the turn.
A video becomes its sampled frames, each preceded by an ``mm:ss`` text item, plus a sentence
that tells the model the stamps are ``mm:ss`` so its answer carries times the core's video
parser turns into timed events. This module only builds plain ``dict`` messages: no torch, no
transformers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vlmkit import format_timestamp

if TYPE_CHECKING:
    from PIL import Image

    from vlmkit import Request, VideoFrame

__all__ = ["VIDEO_PREAMBLE", "build_messages", "image_content", "video_content"]

#: Put between the frames and the user's prompt for video requests.
VIDEO_PREAMBLE = (
    "The video above is given as {count} frames sampled from {start} to {end}; each frame is "
    "preceded by its timestamp in mm:ss. Refer to moments in the video with mm:ss timestamps."
)


def image_content(images: Sequence[Image.Image], prompt: str) -> list[dict[str, Any]]:
    """One user turn's content: every image first, then the text."""
    content: list[dict[str, Any]] = [{"type": "image", "image": image} for image in images]
    content.append({"type": "text", "text": prompt})
    return content


def video_content(frames: Sequence[VideoFrame], prompt: str) -> list[dict[str, Any]]:
    """``mm:ss`` text + frame, for every frame, then the preamble and the prompt."""
    content: list[dict[str, Any]] = []
    for frame in frames:
        content.append({"type": "text", "text": format_timestamp(frame.timestamp_s)})
        content.append({"type": "image", "image": frame.image})
    if frames:
        preamble = VIDEO_PREAMBLE.format(
            count=len(frames),
            start=format_timestamp(frames[0].timestamp_s),
            end=format_timestamp(frames[-1].timestamp_s),
        )
        prompt = f"{preamble}\n\n{prompt}"
    content.append({"type": "text", "text": prompt})
    return content


def build_messages(
    request: Request, frames: Sequence[VideoFrame] | None = None
) -> list[dict[str, Any]]:
    """The conversation for one request (``frames``: the video's sampled frames, if any).

    A system prompt becomes a system turn; the Gemma 3 template folds it into the user turn and
    the Gemma 4 template writes a ``<|turn>system`` block, so both work.
    """
    if frames is not None:
        content = video_content(frames, request.prompt)
    else:
        content = image_content([sent.image for sent in request.images], request.prompt)
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": [{"type": "text", "text": request.system}]})
    messages.append({"role": "user", "content": content})
    return messages
