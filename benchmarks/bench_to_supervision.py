"""Benchmark: the deliverable users take to supervision — Gemini 2.5 segmentation answer text in,
``sv.Detections`` with masks out — on a 4000×3000 photo with 20 and 100 masks.

Three ways, on the same answer text, in the same run:

* ``supervision`` — ``sv.Detections.from_vlm(sv.VLM.GOOGLE_GEMINI_2_5, text, resolution_wh=...)``
  (dense ``(N, H, W)`` masks).
* ``vlmkit`` — ``vlmkit.parse(text, task="segment", ...).to_supervision()``: box-local masks
  packed straight into ``sv.CompactMask``, no full frame.
* ``vlmkit-before`` — the same parse, then the conversion as it was before (``masks_dense()``
  then ``sv.CompactMask.from_dense``): N full frames built and packed.

Each method runs in its own process so its peak memory is its own: ``ru_maxrss`` after the
runs (one result held) minus ``ru_maxrss`` after imports and after building the answer. Time is
CPU time of the process (``time.process_time``: all threads, so OpenCV's too), which moves far
less than wall time on a loaded machine. The methods run interleaved (A B C A B C ...) in
``--rounds`` rounds of processes; the table gives medians.

Run: ``python benchmarks/bench_to_supervision.py``; ``--write`` also replaces its section in
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_masks import BOX_FRACTION, ellipse_png

IMAGE_SIZE = (4000, 3000)
COUNTS = (20, 100)
REPEATS = 3  # timed calls per process
ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench_to_supervision:begin -->", "<!-- bench_to_supervision:end -->"


def build_answer(n: int, seed: int = 0) -> str:
    """A fenced Gemini 2.5 segmentation answer with ``n`` items (256×256 PNG ellipses)."""
    rng = np.random.default_rng(seed)
    items = []
    for index in range(n):
        h_frac, w_frac = rng.uniform(*BOX_FRACTION, size=2)
        ymin, xmin = rng.uniform(0, 1 - h_frac), rng.uniform(0, 1 - w_frac)
        box = [round(1000 * v) for v in (ymin, xmin, ymin + h_frac, xmin + w_frac)]
        items.append({"box_2d": box, "mask": ellipse_png(rng), "label": f"object {index % 7}"})
    return "```json\n" + json.dumps(items, indent=2) + "\n```"


def supervision(text: str):
    import supervision as sv

    return sv.Detections.from_vlm(sv.VLM.GOOGLE_GEMINI_2_5, text, resolution_wh=IMAGE_SIZE)


def _parse(text: str):
    import vlmkit

    return vlmkit.parse(text, task="segment", image_size=IMAGE_SIZE, convention="yxyx-1000")


def vlmkit_to_supervision(text: str):
    return _parse(text).to_supervision()


def vlmkit_before(text: str):
    """The conversion before issue 16: N full frames, then ``CompactMask.from_dense``."""
    import supervision as sv

    dets = _parse(text)
    result = dets.to_supervision(masks="dense")
    width, height = IMAGE_SIZE
    result.mask = sv.CompactMask.from_dense(result.mask, dets.xyxy, (height, width))
    return result


METHODS = {
    "supervision": supervision,
    "vlmkit": vlmkit_to_supervision,
    "vlmkit-before": vlmkit_before,
}
LABELS = {
    "supervision": "`sv.Detections.from_vlm(GOOGLE_GEMINI_2_5)` (dense masks)",
    "vlmkit": "`vlmkit.parse(...).to_supervision()` (CompactMask from box-local crops)",
    "vlmkit-before": "the same before this change (full frames → `CompactMask.from_dense`)",
}


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(method: str, n: int) -> dict:
    import supervision  # noqa: F401  (import cost is not part of any method)

    import vlmkit.parsing  # noqa: F401

    function = METHODS[method]
    text = build_answer(n)
    function(build_answer(1, seed=1))  # warm-up on one mask: first-call imports and caches
    gc.collect()
    baseline = _maxrss_mib()
    cpu = []
    for _ in range(REPEATS):
        gc.collect()
        start = time.process_time()
        result = function(text)
        cpu.append(time.process_time() - start)
        del result
    result = function(text)
    peak = _maxrss_mib() - baseline
    assert len(result) == n
    return {"method": method, "n": n, "cpu": cpu, "peak_mib": peak}


def run_worker(method: str, n: int) -> dict:
    command = [sys.executable, __file__, "--worker", method, "--n", str(n)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def check_agreement(n: int) -> float:
    """Smallest per-mask IoU of vlmkit's CompactMask against supervision's dense masks."""
    text = build_answer(n)
    ours, theirs = vlmkit_to_supervision(text), supervision(text)
    worst = 1.0
    for i in range(n):
        a, b = ours.mask[i], theirs.mask[i]
        union = np.logical_or(a, b).sum()
        worst = min(worst, float(np.logical_and(a, b).sum() / union) if union else 1.0)
    return worst


def report(runs: dict[tuple[str, int], list[dict]], rounds: int, load: str) -> str:
    import supervision as sv

    lines = [
        f"Machine: {platform.machine()}, Python {platform.python_version()}, numpy "
        f"{np.__version__}, supervision {sv.__version__}; load average at the start {load} "
        "(the machine was shared with other jobs: read the ratios). Image "
        f"{IMAGE_SIZE[0]}×{IMAGE_SIZE[1]}, 256×256 PNG ellipse masks, box sides 5–30 % of the "
        f"image. Median CPU time of {REPEATS} calls × {rounds} processes per method, median "
        "peak memory of the processes, methods interleaved.",
        "",
        "| masks | method | CPU time | peak memory | CPU vs vlmkit | memory vs vlmkit |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for n in COUNTS:
        ref_cpu = statistics.median(t for r in runs[("vlmkit", n)] for t in r["cpu"])
        ref_mem = statistics.median(r["peak_mib"] for r in runs[("vlmkit", n)])
        for method in METHODS:
            cpu = statistics.median(t for r in runs[(method, n)] for t in r["cpu"])
            mem = statistics.median(r["peak_mib"] for r in runs[(method, n)])
            lines.append(
                f"| {n} | {LABELS[method]} | {cpu * 1000:,.1f} ms | {mem:,.0f} MiB | "
                f"{cpu / ref_cpu:.2f}× | {mem / max(ref_mem, 1):.1f}× |"
            )
    worst = check_agreement(20)
    lines += ["", f"Agreement: smallest per-mask IoU against supervision {worst:.4f}."]
    return "\n".join(lines)


def write_doc(section: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    block = f"{BEGIN}\n{section}\n{END}"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{DOC} has no {BEGIN} ... {END} section to replace")
    DOC.write_text(pattern.sub(lambda _m: block, text), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=sorted(METHODS))
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n)))
        return
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    runs: dict[tuple[str, int], list[dict]] = {}
    for _ in range(args.rounds):
        for n in COUNTS:
            for method in METHODS:
                runs.setdefault((method, n), []).append(run_worker(method, n))
    section = report(runs, args.rounds, load)
    print(section)
    if args.write:
        write_doc(section)


if __name__ == "__main__":
    main()
