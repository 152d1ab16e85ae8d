"""Per-item overhead of vlmkit's task pipeline and batch runner, with a ScriptedBackend.

Measured in one run against a baseline: parsing the same answer with ``vlmkit.parse`` alone.
Targets: ≤ 2 ms per ``Session.detect`` call on an image already loaded (issue 3), and a small
per-item overhead for ``Session.run`` (issue 7). Run: ``python benchmarks/bench_pipeline.py``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import vlmkit
from vlmkit.media import load_image
from vlmkit.testing import scripted_plugin

ANSWER = (
    "```json\n"
    + ",\n".join(
        f'{{"box_2d": [{100 + i}, {200 + i}, {500 + i}, {600 + i}], "label": "object {i}"}}'
        for i in range(10)
    ).join(["[", "]"])
    + "\n```<turn|>"
)


def timed(function, repeat: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean seconds per call over ``repeat`` calls."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(repeat):
            function()
        samples.append((time.perf_counter() - started) / repeat)
    return statistics.median(samples)


def main() -> None:
    image = load_image(np.zeros((768, 1024, 3), dtype=np.uint8))
    parse_s = timed(lambda: vlmkit.parse(ANSWER, image_size=image.size), 500)
    with vlmkit.Session(
        "scripted", plugins=[scripted_plugin(ANSWER)], entrypoints=False
    ) as session:
        session.detect(image, "object")  # warm up
        detect_s = timed(lambda: session.detect(image, ["person", "car"]), 500)
        with tempfile.TemporaryDirectory() as cache:
            cached = vlmkit.Session(
                "scripted", plugins=[scripted_plugin(ANSWER)], entrypoints=False, cache=cache
            )
            cached.detect(image, "object")
            hit_s = timed(lambda: cached.detect(image, "object"), 200)
            cached.close()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        count = 300
        for i in range(count):
            Image.fromarray(np.full((96, 128, 3), i % 255, np.uint8)).save(folder / f"{i}.jpg")
        with vlmkit.Session(
            "scripted", plugins=[scripted_plugin(ANSWER)], entrypoints=False
        ) as session:
            started = time.perf_counter()
            list(
                session.run("detect", [folder], "object", out_dir=Path(tmp) / "out", concurrency=1)
            )
            run_s = (time.perf_counter() - started) / count
            load_s = timed(lambda: load_image(folder / "7.jpg"), 200)

    print("| measurement | per call | ratio to parse alone |")
    print("|---|---|---|")
    print(f"| `vlmkit.parse` of a 10-box answer (baseline) | {parse_s * 1e3:.3f} ms | 1.0× |")
    print(
        f"| `Session.detect`, image already loaded, ScriptedBackend | {detect_s * 1e3:.3f} ms "
        f"| {detect_s / parse_s:.1f}× |"
    )
    print(f"| `Session.detect`, answer-cache hit | {hit_s * 1e3:.3f} ms | {hit_s / parse_s:.1f}× |")
    print(
        f"| `load_image` of a 128×96 JPEG from disk | {load_s * 1e3:.3f} ms "
        f"| {load_s / parse_s:.1f}× |"
    )
    print(
        f"| `Session.run`, per item from disk, fsynced ledger, 1 in flight | "
        f"{run_s * 1e3:.3f} ms | {run_s / parse_s:.1f}× |"
    )
    target = "met" if detect_s <= 0.002 else "MISSED"
    print(
        f"\nTarget ≤ 2 ms per detect call on a loaded image: {target} "
        f"({detect_s * 1e3:.3f} ms; pipeline overhead beyond parsing "
        f"{(detect_s - parse_s) * 1e3:.3f} ms)."
    )


if __name__ == "__main__":
    main()
