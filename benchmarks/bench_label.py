"""`vlmkit label` end to end: 500 small images against the fake Gemini server at 100 ms.

The command a user runs (`python -m vlmkit.cli label FOLDER --backend gemini-api ...`, in its own
process, with COCO and YOLO sinks and the fsynced ledger) labels 500 small JPEGs while the
loopback fake Gemini (in another process) answers every call after 100 ms. The baseline is the
ideal wall time for the concurrency used: ``ceil(500 / concurrency) × 100 ms``. The run's own
wall time is the one the command prints in its summary (from the first item to the sinks
written); the process's total adds interpreter start-up and imports.

Each concurrency also runs the bare google-genai SDK from a thread pool on the same images
(`bench_throughput.py`'s baseline: same response schema, each image read, checked as vlmkit
checks it and sent during the run), interleaved with the vlmkit runs, and the table gives
vlmkit's ratio to it.

The second table is the framework's CPU per item: `Session.run` (what `vlmkit label` runs) with
an instant scripted backend that keeps no history (`benchmarks/instant_backend.py`), without
sinks and with COCO + YOLO, each in a fresh process, interleaved; CPU is
``time.process_time()`` over the run, less the CPU of checking the same images with Pillow
alone as vlmkit checks an upright JPEG, a decode at 1/8 scale (the image work is not the
framework's). Goal (issue 16): ≤ 1 ms without sinks,
≤ 1.5 ms with COCO + YOLO.

Run from the repository root: ``python benchmarks/bench_label.py [--write] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_gemini_concurrency import FakeProcess, machine  # noqa: E402

IMAGES = 500
LATENCY_S = 0.1
CONCURRENCY = (8, 16, 32)
BEGIN, END = "<!-- bench_label:begin -->", "<!-- bench_label:end -->"


def make_images(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:04d}.jpg", quality=85)


def label(folder: Path, out: Path, *args: str, env: dict[str, str]) -> tuple[float, float, str]:
    command = [
        sys.executable,
        "-m",
        "vlmkit.cli",
        "label",
        str(folder),
        "--task",
        "detect",
        "--prompt",
        "cat",
        "--out",
        str(out),
        "--sink",
        "coco",
        "--sink",
        "yolo",
        "--no-progress",
        "--no-cache",
        *args,
    ]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    total = time.perf_counter() - started
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise SystemExit(f"vlmkit label failed:\n{output}")
    match = re.search(r"wall time ([\d.]+) s", output)
    assert match, output
    summary = re.search(r"done (\d+), failed (\d+)", output)
    assert summary and int(summary.group(1)) == IMAGES, output
    return float(match.group(1)), total, output


CPU_CHILD = """
import gc, importlib.util, json, sys, time
from pathlib import Path
import vlmkit
from PIL import Image
root, folder, out, sinks = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
spec = importlib.util.spec_from_file_location("instant", root / "benchmarks/instant_backend.py")
instant = importlib.util.module_from_spec(spec)
spec.loader.exec_module(instant)
with vlmkit.Session(backend="instant", plugins=[instant], cache=False) as session:
    run = session.run("detect", [folder], prompt="cat", out_dir=out, sinks=sinks, concurrency=4)
    gc.freeze()
    cpu = time.process_time()
    done = sum(1 for outcome in run if outcome.status == "done")
    cpu = time.process_time() - cpu
paths = sorted(Path(folder).iterdir())
decode = time.process_time()
for path in paths:  # checked as vlmkit checks an upright JPEG: decoded at 1/8 scale
    with Image.open(path) as image:
        image.draft(image.mode, (image.width // 8, image.height // 8))
        image.load()
decode = time.process_time() - decode
print(json.dumps({"done": done, "cpu": cpu, "decode": decode}))
"""


def framework_cpu(folder: Path, out: Path, sinks: list[str], env: dict[str, str]) -> dict:
    """One fresh process: CPU per item of the run and of checking the same images alone."""
    command = [sys.executable, "-c", CPU_CHILD, str(ROOT), str(folder), str(out), *sinks]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"the instant run failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["done"] == IMAGES, result
    return result


def bare_sdk(folder: Path, base_url: str, concurrency: int, env: dict[str, str]) -> float:
    """The wall time of the bare SDK from ``concurrency`` threads on the same images."""
    command = [
        sys.executable,
        str(ROOT / "benchmarks/bench_throughput.py"),
        "--child",
        "sdk-threads",
        "--in-flight",
        str(concurrency),
        "--images",
        str(folder),
        "--base-url",
        base_url,
        "--requests",
        str(IMAGES),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"the bare SDK run failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] == IMAGES, result
    return float(result["wall"])


def main() -> None:
    global IMAGES
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--rounds", type=int, default=3, help="runs per concurrency")
    parser.add_argument("--quick", action="store_true", help="smoke run: 60 images, 1 round")
    parser.add_argument("--cpu-only", action="store_true", help="only the CPU-per-item table")
    parser.add_argument("--core", help="another core for the CPU table (`git archive` of one)")
    args = parser.parse_args()
    if args.quick:
        IMAGES, args.rounds = 60, 1
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "GEMINI_API_KEY": "bench-key",
        "VLMKIT_LOAD_PLUGINS": "vlmkit,vlmkit-gemini",
        "VLMKIT_CACHE": "0",
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        make_images(folder, IMAGES)
        fake = FakeProcess(LATENCY_S)
        try:
            samples: dict[int, list] = {c: [] for c in CONCURRENCY}
            bare: dict[int, list[float]] = {c: [] for c in CONCURRENCY}
            for round_ in range(0 if args.cpu_only else args.rounds):  # vlmkit, bare SDK, ...
                for concurrency in CONCURRENCY:
                    fake.reset()
                    run_s, total_s, _ = label(
                        folder,
                        Path(tmp) / f"out-{concurrency}-{round_}",
                        "--backend",
                        "gemini-api",
                        "--model",
                        "gemini-3.5-flash-lite",
                        "--config",
                        f"base_url={fake.base_url}",
                        "--concurrency",
                        str(concurrency),
                        env=env,
                    )
                    samples[concurrency].append((run_s, total_s, fake.stats()["max_in_flight"]))
                    fake.reset()
                    bare[concurrency].append(bare_sdk(folder, fake.base_url, concurrency, env))
            for concurrency in CONCURRENCY if not args.cpu_only else ():
                ordered = sorted(samples[concurrency])
                run_s, total_s, in_flight = ordered[len(ordered) // 2]  # the median run
                ideal = math.ceil(IMAGES / concurrency) * LATENCY_S
                walls = [sample[0] for sample in ordered]
                sdk_s = statistics.median(bare[concurrency])
                rows.append((concurrency, ideal, run_s, walls, total_s, in_flight, sdk_s))
        finally:
            fake.close()

        scripted_env = {**env, "VLMKIT_LOAD_PLUGINS": "vlmkit"}
        if args.core:  # e.g. the core before a change: `git archive REV core | tar -x -C DIR`
            scripted_env["PYTHONPATH"] = os.pathsep.join([args.core, str(ROOT)])
        cpu: dict[str, list[dict]] = {"none": [], "coco+yolo": []}
        for round_ in range(3):  # interleaved, a fresh process each
            for name, sinks in (("none", []), ("coco+yolo", ["coco", "yolo"])):
                out = Path(tmp) / f"instant-{name}-{round_}"
                cpu[name].append(framework_cpu(folder, out, sinks, scripted_env))

    def per_item(name: str, key: str) -> float:
        return statistics.median(1000 * sample[key] / IMAGES for sample in cpu[name])

    decode_ms = statistics.median(
        1000 * sample["decode"] / IMAGES for samples in cpu.values() for sample in samples
    )

    lines = [
        f"Machine: {machine().split(';')[0]}. {IMAGES} JPEGs of 160×120; the fake answers every "
        f"call after {LATENCY_S * 1000:.0f} ms; COCO and YOLO sinks; fsynced ledger. The bare "
        "SDK runs the same images from as many threads, interleaved with the vlmkit runs.",
        "",
        "| concurrency | ideal (`ceil(n/c) × 100 ms`) | run wall time, median (runs) "
        "| share of ideal (range) | bare SDK, median | **vlmkit / bare SDK** "
        "| process total (with start-up) | max in flight at the server |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for concurrency, ideal, run_s, walls, total_s, in_flight, sdk_s in rows:
        spread = f"{ideal / max(walls):.1%}–{ideal / min(walls):.1%}"
        runs = ", ".join(f"{wall:.2f}" for wall in walls)
        default = " (gemini-api default)" if concurrency == 16 else ""
        lines.append(
            f"| {concurrency}{default} | {ideal:.2f} s | {run_s:.2f} s ({runs}) "
            f"| {ideal / run_s:.1%} ({spread}) | {sdk_s:.2f} s | **{sdk_s / run_s:.1%}** "
            f"| {total_s:.2f} s | {in_flight} |"
        )
    none_ms, sinks_ms = per_item("none", "cpu"), per_item("coco+yolo", "cpu")
    lines += [
        "",
        "| framework CPU per item, instant backend (4 in flight), median of 3 processes "
        "| CPU per item | less checking the image | goal |",
        "|---|---:|---:|---:|",
        f"| checking the same JPEG with Pillow alone, 1/8-scale decode (baseline) "
        f"| {decode_ms:.3f} ms | — | — |",
        f"| `vlmkit label`, no sinks | {none_ms:.3f} ms | **{none_ms - decode_ms:.3f} ms** "
        "| ≤ 1 ms |",
        f"| `vlmkit label`, COCO + YOLO | {sinks_ms:.3f} ms "
        f"| **{sinks_ms - decode_ms:.3f} ms** | ≤ 1.5 ms |",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        doc = ROOT / "docs" / "benchmarks.md"
        content = doc.read_text(encoding="utf-8")
        block = f"{BEGIN}\n{text}\n{END}"
        if BEGIN in content:
            content = re.sub(
                re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, content, flags=re.S
            )
        else:
            content += f"\n## `vlmkit label`: the batch runner end to end\n\n{block}\n"
        doc.write_text(content, encoding="utf-8")


if __name__ == "__main__":
    main()
