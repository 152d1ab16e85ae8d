"""What a tracking run did (:func:`vlmkit.videorun.run_tracks`): one :class:`VideoOutcome` per
video and the run's :class:`TrackRunSummary`, printed at the end by ``vlmkit label --task
track``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from vlmkit.types import Usage

__all__ = ["TrackRunSummary", "VideoOutcome"]


@attrs.frozen(kw_only=True)
class VideoOutcome:
    """What became of one video: ``"done"`` (now), ``"resumed"`` (done by an earlier run) or
    ``"failed"`` (with ``error``); ``paid``: the model requests made for it in this run (one per
    frame on the ``frames`` route, one per video on the ``native`` route), ``reused``: frames
    read back from the ledger; ``outputs`` are the files written."""

    key: str
    status: str
    route: str = "frames"
    frames: int = 0
    paid: int = 0
    reused: int = 0
    tracks: int = 0
    outputs: tuple[Path, ...] = ()
    error: str | None = None


@attrs.define
class TrackRunSummary:
    """Totals of a tracking run, printed at the end by ``vlmkit label --task track``."""

    videos: list[VideoOutcome] = attrs.field(factory=list)
    skipped_inputs: dict[str, str] = attrs.field(factory=dict)
    usage: Usage = attrs.field(factory=Usage.zero)
    wall_s: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for video in self.videos if video.status == status)

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def requests(self) -> int:
        """Model requests made in this run (one per frame, or one per video when native)."""
        return sum(video.paid for video in self.videos)

    @property
    def reused_frames(self) -> int:
        return sum(video.reused for video in self.videos)

    def to_dict(self) -> dict[str, Any]:
        return {
            "done": self.count("done"),
            "resumed": self.count("resumed"),
            "failed": self.failed,
            "requests": self.requests,
            "reused_frames": self.reused_frames,
            "tokens": self.usage.total_tokens,
            "cost_usd": self.usage.cost_usd,
            "wall_s": round(self.wall_s, 3),
            "videos": [
                {
                    "key": v.key,
                    "status": v.status,
                    "route": v.route,
                    "frames": v.frames,
                    "paid": v.paid,
                    "reused": v.reused,
                    "tracks": v.tracks,
                    "outputs": [str(p) for p in v.outputs],
                    "error": v.error,
                }
                for v in self.videos
            ],
            "skipped_inputs": dict(self.skipped_inputs),
        }

    def __str__(self) -> str:
        lines = [_line(video) for video in self.videos]
        lines.append(
            f"{self.count('done')} video(s) done, {self.count('resumed')} already done, "
            f"{self.failed} failed; {self.requests} model request(s), "
            f"{self.reused_frames} frame(s) read back; {self.usage.total_tokens} tokens"
        )
        return "\n".join(lines)


def _line(video: VideoOutcome) -> str:
    text = f"{video.key}: {video.status}"
    if video.status != "failed":
        text += f", {video.tracks} track(s) over {video.frames} frame(s)"
    if video.status == "done" and video.route == "native":
        text += " (one video request)" if video.paid else " (its answer read back from the ledger)"
    elif video.status != "resumed" and (video.paid or video.reused):
        text += f" ({video.paid} answered now, {video.reused} from the ledger)"
    return text + (f" — {video.error}" if video.error else "")
