"""``Session.track`` against a hand-written loop, and its memory against the video's length.

1. Frames per second of ``vlmkit.tracking.iter_track`` with an instant scripted backend versus
   the loop a user would write: ``sample_frames`` + ``Session.detect`` + ByteTrack, in the same
   process, on the same clip.
2. With the outputs written: ``iter_track`` + ``write_track_outputs`` against the run folder of
   ``vlmkit label --task track`` (``run_tracks``: a fsynced ledger line per answered frame), and
   the re-run of a finished folder.
3. Peak resident memory of a child process tracking a short and a 4× longer clip of the same
   picture size: flat means the frames are streamed, not held (``sample_frames`` in the hand
   loop holds them all).

Run: ``python benchmarks/bench_track.py`` (needs ``vlmkit[track]``).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WIDTH, HEIGHT, FPS = 640, 360, 25
ANSWER = json.dumps(
    [{"box_2d": [100 + 200 * i, 100, 250 + 200 * i, 300], "label": f"thing {i}"} for i in range(3)]
)


def write_clip(path: Path, seconds: int) -> Path:
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(seconds * FPS):
            pixels = np.full((HEIGHT, WIDTH, 3), index % 256, np.uint8)
            pixels[:8] = rng.integers(0, 256, (8, WIDTH, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


class _Forget(list):
    """Where the scripted backend records its requests (with their pixels): kept empty here,
    or the test tool's own record would be what grows with the video."""

    def append(self, _item: object) -> None:
        pass


def session():
    import vlmkit
    from vlmkit.testing import scripted_plugin

    s = vlmkit.Session("scripted", plugins=[scripted_plugin(ANSWER)], entrypoints=False)
    s.backend.requests = _Forget()  # type: ignore[attr-defined]
    return s


def with_track(clip: Path, fps: float) -> int:
    from vlmkit.tracking import iter_track

    with session() as s:
        return sum(1 for _ in iter_track(s, clip, ["thing"], fps=fps))


def by_hand(clip: Path, fps: float) -> int:
    from trackers import ByteTrackTracker

    from vlmkit.video import sample_frames

    tracker = ByteTrackTracker(minimum_consecutive_frames=1)
    count = 0
    with session() as s:
        for frame in sample_frames(clip, fps=fps, max_frames=10**6):
            tracker.update(s.detect(frame.image, ["thing"]).to_supervision())
            count += 1
    return count


def with_outputs(clip: Path, fps: float) -> int:
    """``iter_track`` and then the video's four outputs (MOT, MP4, JSON, COCO), no ledger."""
    from vlmkit.tracking import iter_track, video_result
    from vlmkit.videorun import write_track_outputs

    with tempfile.TemporaryDirectory() as out, session() as s:
        frames = list(iter_track(s, clip, ["thing"], fps=fps))
        write_track_outputs(clip, frames, video_result(frames), out, "clip", categories=["thing"])
    return len(frames)


def with_run(clip: Path, fps: float, *, again: bool = False) -> int:
    """``vlmkit label --task track``'s engine: the same, plus a fsynced ledger line per frame;
    ``again``: time a second run that finds the video done (nothing answered or written)."""
    from vlmkit.videorun import run_tracks

    with tempfile.TemporaryDirectory() as out, session() as s:
        summary = run_tracks(s, [clip], ["thing"], out_dir=out, fps=fps)
        if again:
            started = time.perf_counter()
            run_tracks(s, [clip], ["thing"], out_dir=out, fps=fps)
            print(f"  re-run of a finished folder: {time.perf_counter() - started:.3f} s")
    return summary.requests


def run_folder(clip: Path, fps: float, repeats: int = 3) -> None:
    """Frames per second with outputs: plain ``iter_track`` vs the resumable run folder."""
    for name, function in (("track+outputs", with_outputs), ("run folder", with_run)):
        rates = []
        for _ in range(repeats):
            started = time.perf_counter()
            frames = function(clip, fps)
            rates.append(frames / (time.perf_counter() - started))
        print(f"{name:14s} {frames} sampled frames: median {statistics.median(rates):.1f} fps")
    with_run(clip, fps, again=True)


def peak_rss_mb(clip: Path, fps: float, function: str = "with_track") -> float:
    code = (
        "import resource, sys; sys.path.insert(0, 'benchmarks'); import bench_track as b; "
        f"b.{function}(__import__('pathlib').Path({str(clip)!r}), {fps}); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        short = write_clip(Path(folder) / "short.mp4", 20)
        long = write_clip(Path(folder) / "long.mp4", 80)
        fps = 5.0
        for name, function in (("track", with_track), ("hand loop", by_hand)):
            function(short, fps)  # warm up
            rates = []
            for _ in range(5):
                started = time.perf_counter()
                frames = function(short, fps)
                rates.append(frames / (time.perf_counter() - started))
            print(f"{name:10s} {frames} sampled frames: median {statistics.median(rates):.1f} fps")
        run_folder(short, fps)
        for name, clip in (("20 s clip", short), ("80 s clip", long)):
            print(
                f"{name}: peak RSS track {peak_rss_mb(clip, fps):.0f} MB, hand loop "
                f"{peak_rss_mb(clip, fps, 'by_hand'):.0f} MB ({WIDTH}x{HEIGHT}, fps={fps})"
            )


if __name__ == "__main__":
    main()
