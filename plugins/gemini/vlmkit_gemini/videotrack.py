"""Gemini's native tracking route: the "track in video" prompt of one ``video`` request.

The Gemini backends declare ``track_routes=("frames", "native")``; for ``route="native"`` the
core (:mod:`vlmkit.nativetrack`) sends the whole (clipped) video once, in JSON mode, with
:func:`track_video_prompt`, and parses the answer into frames linked by ByteTrack. The wording
follows Google's spatial-understanding prompts (``box_2d`` as ``[ymin, xmin, ymax, xmax]`` on
0–1000, descriptive labels) and its video advice: timestamps as ``MM:SS`` (with a tenth of a
second here, so rates above 1 fps stay distinct), the video before the text.
"""

from __future__ import annotations

from collections.abc import Sequence

from vlmkit.nativetrack import format_time

__all__ = ["TRACK_IN_VIDEO", "track_video_prompt"]

TRACK_IN_VIDEO = (
    "Track the {things} in this video. At each of these timestamps (MM:SS.s from the start of "
    "the video): {times} — detect the {things} visible in the frame shown at that moment. "
    'Output a JSON list with one entry per timestamp: the timestamp in the key "time" exactly '
    'as listed, and in the key "boxes" a JSON list where each entry contains the 2D bounding '
    'box in the key "box_2d" as [ymin, xmin, ymax, xmax] normalized to 0-1000 and the text '
    'label in the key "label". Give the same object the same label at every timestamp; an '
    'object that is not visible at a timestamp is left out of its "boxes".'
)


def track_video_prompt(things: str, times: Sequence[float]) -> str:
    """The native tracking prompt for ``things`` at ``times`` (seconds from the start)."""
    return TRACK_IN_VIDEO.format(things=things, times=", ".join(format_time(t) for t in times))
