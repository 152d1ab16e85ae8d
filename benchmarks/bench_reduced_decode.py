"""A photo sent at half its size or less: decoded at reduced scale against decoded in full.

What a backend with an image policy that shrinks photos (`openai`'s ``fit(1536)``, a Gemini
backend's ``max_image_side``) spends per photo before the request leaves: load the file, check
it, resize it to the policy's size and encode the result as JPEG (quality 90), each way in the
same process, alternated, on the same bytes:

* **full decode** — ``load_image(path)`` then ``policy.apply`` and ``encode_image``: what a
  Session did for every photo its backend's policy resized (before 2026-12-05);
* **reduced decode** — ``load_image(path, decode="on_use")`` (the photo checked by a decode at
  1/8 scale, `vlmkit.jpegcheck`) then the same calls: ``apply`` resizes a copy decoded at 1/2,
  1/4 or 1/8 scale (`vlmkit.jpegcheck.resized_jpeg`), what a Session does now where the policy
  halves the photo or more (``ResizePolicy.decodes_reduced``).

CPU is ``time.process_time()`` per photo, the median of the alternated repetitions. Agreement:
the mean absolute difference of the two results' pixels (0-255) and the largest shift of a
sharp white square's weighted centre between them, in sent pixels.

Run from the repository root::

    python benchmarks/bench_reduced_decode.py           # about 30 s
    python benchmarks/bench_reduced_decode.py --write   # ... and updates docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
BEGIN, END = "<!-- bench_reduced_decode:begin -->", "<!-- bench_reduced_decode:end -->"
CASES = [((4000, 3000), 1536), ((4000, 3000), 1024), ((4032, 3024), 768), ((1600, 1200), 768)]


def main() -> None:
    from docblock import report

    from tests.core.marked_photo import marked_photo, marker_centre
    from vlmkit import ResizePolicy, encode_image, load_image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    started = time.perf_counter()
    rows = [
        "| photo | sent at (`fit`) | full decode | reduced decode | ratio | "
        "pixels apart (mean, 0-255) | square's centre apart |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for size, side in CASES:
        data = marked_photo(size, at=(0.61, 0.37), square=(64, 48), seed=11)
        policy = ResizePolicy.fit(side)

        def full(data: bytes = data, policy: ResizePolicy = policy) -> Image.Image:
            pixels, _ = policy.apply(load_image(data))
            encode_image(pixels, format="JPEG")
            return pixels

        def reduced(data: bytes = data, policy: ResizePolicy = policy) -> Image.Image:
            pixels, _ = policy.apply(load_image(data, decode="on_use"))
            encode_image(pixels, format="JPEG")
            return pixels

        times: dict[str, list[float]] = {"full": [], "reduced": []}
        for _ in range(args.repeats):
            for name, way in (("full", full), ("reduced", reduced)):
                cpu = time.process_time()
                way()
                times[name].append(time.process_time() - cpu)
        a, b = (np.asarray(way(), dtype=np.float64) for way in (full, reduced))
        full_ms, reduced_ms = (1000 * statistics.median(times[n]) for n in ("full", "reduced"))
        rows.append(
            f"| {size[0]}×{size[1]} | {side} | {full_ms:.1f} ms | {reduced_ms:.1f} ms | "
            f"**{full_ms / reduced_ms:.1f}×** | {np.abs(a - b).mean():.2f} | "
            f"{np.abs(marker_centre(a) - marker_centre(b)).max():.2f} px |"
        )
    machine = f"{sys.platform}, Python {sys.version.split()[0]}, Pillow {Image.__version__}"
    text = "\n".join(
        [
            f"Machine: {machine}. CPU per photo: load, check, resize to the policy's size, "
            f"encode as JPEG; median of {args.repeats} alternated repetitions.",
            "",
            *rows,
        ]
    )
    report(text, started, write=args.write, begin=BEGIN, end=END)


if __name__ == "__main__":
    main()
