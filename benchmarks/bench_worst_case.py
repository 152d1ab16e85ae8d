"""Benchmark: what the worst model answers cost to parse — peak memory and CPU, in one run.

A model answer is untrusted input. Issue 12 measured answers of a few kilobytes that cost
gigabytes (full-image boxes with 1×1 PNG masks, zigzag polygons) and answers of a few hundred
kilobytes that cost minutes (non-strict JSON through json_repair). This script builds those
answers and parses each one in its own subprocess, so that its peak memory is its own
(``ru_maxrss`` after parsing minus ``ru_maxrss`` after imports and after the text is built)
and its CPU time is ``time.process_time()`` around the call. Every answer is parsed for a
4000×3000 image.

Each case has a **baseline** that does the same job in the same run, the way a user would
without vlmkit's bounds:

* masks (1×1 PNG per full-image box): ``sv.Detections.from_vlm(sv.VLM.GOOGLE_GEMINI_2_5, ...)``,
  which builds dense full-frame masks;
* polygons: ``vlmkit.parse`` with :class:`vlmkit.masks.MaskLimits` lifted (``pixels`` and
  ``vertices`` of 10**15), i.e. rasterizing everything the answer asks for;
* non-strict JSON: ``json_repair.loads`` on the whole answer text (what vlmkit did before).

Baselines that would take longer than ``--baseline-timeout`` seconds (default 20) are stopped
and reported as such; baselines whose memory would threaten the shared machine are not run
(marked "not run", with the size they would allocate).

Run: ``python benchmarks/bench_worst_case.py`` (a few minutes); ``--write`` also replaces the
results section in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

IMAGE_SIZE = (4000, 3000)
ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench_worst_case:begin -->", "<!-- bench_worst_case:end -->"
UNQUOTED_ITEM = "{box_2d: [100, 200, 500, 600], label: 'cat', confidence: 0.9}"
BARE_ITEM = "{box_2d: [100, 200, 500, 600], label: red car}"
# A baseline is run only when its memory stays under this (dense masks: N × 12 MB).
BASELINE_MEMORY_CAP = 2 << 30


# --------------------------------------------------------------------------------------------
# the answers
# --------------------------------------------------------------------------------------------
def tiny_png_item() -> dict:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (1, 1), 255).save(buffer, format="PNG")
    png = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return {"box_2d": [0, 0, 1000, 1000], "mask": png, "label": "everything"}


def png_masks(count: int) -> str:
    return "```json\n" + json.dumps([tiny_png_item()] * count) + "\n```"


def png_masks_of_size(size: int) -> str:
    item = json.dumps(tiny_png_item())
    return "```json\n[" + ", ".join([item] * (size // (len(item) + 2))) + "]\n```"


def zigzag(vertices: int) -> str:
    """One polygon whose every edge crosses the whole image height (0–1000 grid)."""
    points = [[round(i * 1000 / vertices, 2), 0 if i % 2 else 1000] for i in range(vertices)]
    item = {"box_2d": [0, 0, 1000, 1000], "label": "zigzag", "mask": points}
    return json.dumps({"boxes": [item]})


def unquoted(size: int) -> str:
    return "[" + ", ".join([UNQUOTED_ITEM] * (size // (len(UNQUOTED_ITEM) + 2))) + "]"


def bare(size: int) -> str:
    """Unquoted keys and unquoted values: the shape json_repair is quadratic on."""
    return "[" + ", ".join([BARE_ITEM] * (size // (len(BARE_ITEM) + 2))) + "]"


def nested_junk(size: int) -> str:
    return "[" * 64 + "a, " * ((size - 128) // 3) + "]" * 64


def closed_junk(size: int) -> str:
    return "[" + "{a b c}, " * (size // 9) + "]"


# name -> (task, builder, argument, baseline kind)
CASES: dict[str, tuple[str, str, int, str]] = {
    "100 full-image boxes, 1×1 PNG masks": ("segment", "png_masks", 100, "supervision"),
    "400 full-image boxes, 1×1 PNG masks": ("segment", "png_masks", 400, "supervision"),
    "2000 full-image boxes, 1×1 PNG masks": ("segment", "png_masks", 2000, "supervision"),
    "1 MB of full-image boxes with 1×1 PNG masks": (
        "segment",
        "png_masks_of_size",
        1 << 20,
        "supervision",
    ),
    "zigzag polygon, 20k vertices": ("segment", "zigzag", 20_000, "unbounded"),
    "zigzag polygon, 100k vertices": ("segment", "zigzag", 100_000, "unbounded"),
    "unquoted keys, 25 KB": ("detect", "unquoted", 25_000, "json_repair"),
    "unquoted keys, 50 KB": ("detect", "unquoted", 50_000, "json_repair"),
    "unquoted keys, 200 KB": ("detect", "unquoted", 200_000, "json_repair"),
    "unquoted keys, 1 MB": ("detect", "unquoted", 1 << 20, "json_repair"),
    "unquoted keys, 10 MB": ("detect", "unquoted", 10 << 20, "json_repair"),
    "bare keys and values, 25 KB": ("detect", "bare", 25_000, "json_repair"),
    "bare keys and values, 50 KB": ("detect", "bare", 50_000, "json_repair"),
    "bare keys and values, 200 KB": ("detect", "bare", 200_000, "json_repair"),
    "bare keys and values, 1 MB": ("detect", "bare", 1 << 20, "json_repair"),
    "64-deep nested junk, 200 KB": ("detect", "nested_junk", 200_000, "json_repair"),
    "closed junk list, 1 MB": ("detect", "closed_junk", 1 << 20, "json_repair"),
}
BUILDERS = {
    "png_masks": png_masks,
    "png_masks_of_size": png_masks_of_size,
    "zigzag": zigzag,
    "unquoted": unquoted,
    "bare": bare,
    "nested_junk": nested_junk,
    "closed_junk": closed_junk,
}


def baseline_memory(name: str) -> int:
    """What a baseline would allocate up front, where that is known (dense masks)."""
    _task, builder, argument, kind = CASES[name]
    if kind != "supervision":
        return 0
    count = (
        argument if builder == "png_masks" else argument // (len(json.dumps(tiny_png_item())) + 2)
    )
    return count * IMAGE_SIZE[0] * IMAGE_SIZE[1]


# --------------------------------------------------------------------------------------------
# one measurement, in a subprocess
# --------------------------------------------------------------------------------------------
def worker(name: str, method: str) -> dict:
    import numpy as np  # noqa: F401  (imported before the baseline RSS is taken)
    import supervision as sv

    import vlmkit
    from vlmkit.masks import MaskLimits

    task, builder, argument, kind = CASES[name]
    text = BUILDERS[builder](argument)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    outcome = ""
    try:
        if method == "vlmkit":
            result = vlmkit.parse(text, task=task, image_size=IMAGE_SIZE)
            outcome = f"{len(result)} items; {result.report.summary()}"
        elif kind == "supervision":
            detections = sv.Detections.from_vlm(
                sv.VLM.GOOGLE_GEMINI_2_5, text, resolution_wh=IMAGE_SIZE
            )
            outcome = f"{len(detections)} items, dense masks"
        elif kind == "unbounded":
            limits = MaskLimits(pixels=10**15, vertices=10**15)
            result = vlmkit.parse(text, task=task, image_size=IMAGE_SIZE, mask_limits=limits)
            outcome = f"{len(result)} items; {result.report.summary()}"
        else:
            import json_repair

            value = json_repair.loads(text, skip_json_loads=True)
            outcome = f"{type(value).__name__} of {len(value)}"
    except vlmkit.ParseError as err:
        outcome = f"ParseError ({err.reason})"
    except Exception as err:  # the point of a baseline: report how it fails
        outcome = f"{type(err).__name__}: {str(err)[:60]}"
    cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB on Linux
    return {
        "cpu": cpu,
        "wall": wall,
        "peak_mib": peak / 1024,
        "outcome": outcome,
        "size": len(text),
    }


def run_worker(name: str, method: str, timeout: float | None) -> dict:
    command = [sys.executable, __file__, "--worker", name, "--method", method]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return {"stopped": timeout}
    except subprocess.CalledProcessError as err:
        return {"failed": err.stderr.strip().splitlines()[-1:] or ["?"]}
    return json.loads(done.stdout)


# --------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------
def _cell(result: dict) -> tuple[str, str]:
    if "stopped" in result:
        return f"> {result['stopped']:.0f} s (stopped)", "—"
    if "failed" in result:
        return "crashed", "—"
    if "not_run" in result:
        return "not run", f"would allocate {result['not_run'] / 2**30:.1f} GiB"
    return f"{result['cpu']:.2f} s", f"{result['peak_mib']:,.0f} MiB"


def report(results: dict[str, dict[str, dict]]) -> str:
    from importlib.metadata import version

    import cv2
    import numpy
    import supervision

    lines = [
        f"Machine: {os.cpu_count()} cores ({platform.machine()}), loaded by other engineers' "
        f"work while this ran; Python {platform.python_version()}, numpy {numpy.__version__}, "
        f"supervision {supervision.__version__}, json_repair {version('json_repair')}, "
        f"OpenCV {cv2.__version__}. Image 4000×3000; each cell is one subprocess: CPU time of "
        "the parse and its peak memory above the process's memory before it.",
        "",
        "| answer | size | baseline | baseline CPU | baseline peak | vlmkit CPU | vlmkit peak "
        "| vlmkit result |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    names = {"supervision": "`sv.Detections.from_vlm`", "unbounded": "limits lifted"}
    names["json_repair"] = "`json_repair` on the whole text"
    for name, runs in results.items():
        kind = CASES[name][3]
        ours = runs["vlmkit"]
        base_cpu, base_peak = _cell(runs["baseline"])
        our_cpu, our_peak = _cell(ours)
        size = ours.get("size", 0)
        size_text = f"{size / 2**20:.1f} MB" if size >= 1 << 20 else f"{size / 1000:.0f} KB"
        outcome = ours.get("outcome", "").replace("|", "/")
        lines.append(
            f"| {name} | {size_text} | {names[kind]} | {base_cpu} | {base_peak} | {our_cpu} "
            f"| {our_peak} | {outcome} |"
        )
    return "\n".join(lines)


def write_doc(section: str) -> None:
    block = f"{BEGIN}\n{section}\n{END}"
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    if BEGIN in text and END in text:
        pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
        text = pattern.sub(lambda _: block, text)
    else:
        heading = "## Worst-case answers: bounded memory and CPU"
        text = text.rstrip() + f"\n\n{heading}\n\n{block}\n"
    tmp = DOC.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(DOC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-timeout", type=float, default=20.0)
    parser.add_argument("--only", help="run only the cases whose name contains this text")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.method)))
        return
    results: dict[str, dict[str, dict]] = {}
    for name in CASES:
        if args.only and args.only not in name:
            continue
        print(f"{name}: vlmkit", file=sys.stderr, flush=True)
        runs = {"vlmkit": run_worker(name, "vlmkit", 120)}
        need = baseline_memory(name)
        if need > BASELINE_MEMORY_CAP:
            runs["baseline"] = {"not_run": need}
        else:
            print(f"{name}: baseline", file=sys.stderr, flush=True)
            runs["baseline"] = run_worker(name, "baseline", args.baseline_timeout)
        results[name] = runs
    section = report(results)
    print(section)
    if args.write:
        write_doc(section)
        print(f"\nwrote {DOC.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
