"""Gemma chat messages: images before the text, video frames after their mm:ss stamps."""

from __future__ import annotations

from PIL import Image

import vlmkit
from vlmkit.media import load_image
from vlmkit.video import VideoFrame
from vlmkit_gemma.messages import build_messages


def _request(images: int, *, system: str | None = None) -> vlmkit.Request:
    sent = []
    for index in range(images):
        loaded = load_image(Image.new("RGB", (8 + index, 8)))
        sent.append(
            vlmkit.SentImage(image=loaded.image, original=loaded, transform=loaded.transform)
        )
    return vlmkit.Request(task="describe", prompt="Compare them.", images=sent, system=system)


def test_images_come_before_the_text():
    request = _request(2, system="Be brief.")
    system, user = build_messages(request)
    assert system == {"role": "system", "content": [{"type": "text", "text": "Be brief."}]}
    assert user["role"] == "user"
    assert [item["type"] for item in user["content"]] == ["image", "image", "text"]
    assert [item["image"].size for item in user["content"][:2]] == [(8, 8), (9, 8)]
    assert user["content"][-1]["text"] == "Compare them."


def test_video_frames_follow_their_timestamps():
    frames = [
        VideoFrame(timestamp_s=t, image=Image.new("RGB", (4, 4))) for t in (0.0, 61.5, 3725.0)
    ]
    request = vlmkit.Request(task="video", prompt="What happens?")
    (user,) = build_messages(request, frames)
    content = user["content"]
    assert [item["type"] for item in content] == ["text", "image"] * 3 + ["text"]
    assert [content[i]["text"] for i in (0, 2, 4)] == ["00:00", "01:01", "1:02:05"]
    last = content[-1]["text"]
    assert "3 frames sampled from 00:00 to 1:02:05" in last and "mm:ss" in last
    assert last.endswith("What happens?")
