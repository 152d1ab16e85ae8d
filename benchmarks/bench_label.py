"""`vlmkit label` end to end: 500 small images against the fake Gemini server at 100 ms.

The command a user runs (`python -m vlmkit.cli label FOLDER --backend gemini-api ...`, in its own
process, with COCO and YOLO sinks and the fsynced ledger) labels 500 small JPEGs while the
loopback fake Gemini (in another process) answers every call after 100 ms. The baseline is the
ideal wall time for the concurrency used: ``ceil(500 / concurrency) × 100 ms``. The run's own
wall time is the one the command prints in its summary (from the first item to the sinks
written); the process's total adds interpreter start-up and imports.

The second table is the per-item overhead of the same command with a ScriptedBackend that
answers instantly (`--plugin tests/cli/scripted_backends.py`), against the ledger-less baseline
of parsing the same answer with `vlmkit.parse`.

Run from the repository root: ``python benchmarks/bench_label.py [--write]``.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--rounds", type=int, default=3, help="runs per concurrency")
    args = parser.parse_args()
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
            for concurrency in CONCURRENCY:
                samples = []
                for round_ in range(args.rounds):
                    fake.reset()
                    run_s, total_s, _ = label(
                        folder,
                        Path(tmp) / f"out-{concurrency}-{round_}",
                        "--backend",
                        "gemini-api",
                        "--model",
                        "gemini-2.5-flash",
                        "--config",
                        f"base_url={fake.base_url}",
                        "--concurrency",
                        str(concurrency),
                        env=env,
                    )
                    samples.append((run_s, total_s, fake.stats()["max_in_flight"]))
                samples.sort()
                run_s, total_s, in_flight = samples[len(samples) // 2]  # the median run
                ideal = math.ceil(IMAGES / concurrency) * LATENCY_S
                walls = [sample[0] for sample in samples]
                rows.append((concurrency, ideal, run_s, walls, total_s, in_flight))
        finally:
            fake.close()

        scripted_env = {**env, "VLMKIT_LOAD_PLUGINS": "vlmkit"}
        scripted = []
        for i in range(3):
            run_s, _, _ = label(
                folder,
                Path(tmp) / f"scripted-{i}",
                "--backend",
                "scripted",
                "--plugin",
                str(ROOT / "tests/cli/scripted_backends.py"),
                "--concurrency",
                "4",
                env=scripted_env,
            )
            scripted.append(run_s)

    import vlmkit
    from tests.cli.scripted_backends import DETECT

    started = time.perf_counter()
    for _ in range(2000):
        vlmkit.parse(DETECT, image_size=(160, 120))
    parse_ms = (time.perf_counter() - started) / 2000 * 1e3
    per_item_ms = statistics.median(scripted) / IMAGES * 1e3

    lines = [
        f"Machine: {machine().split(';')[0]}. {IMAGES} JPEGs of 160×120; the fake answers every "
        f"call after {LATENCY_S * 1000:.0f} ms; COCO and YOLO sinks; fsynced ledger.",
        "",
        "| concurrency | ideal (`ceil(500/c) × 100 ms`) | run wall time, median (runs) "
        "| share of ideal (range) | process total (with start-up) | max in flight at the server |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for concurrency, ideal, run_s, walls, total_s, in_flight in rows:
        spread = f"{ideal / max(walls):.1%}–{ideal / min(walls):.1%}"
        runs = ", ".join(f"{wall:.2f}" for wall in walls)
        default = " (gemini-api default)" if concurrency == 16 else ""
        lines.append(
            f"| {concurrency}{default} | {ideal:.2f} s | {run_s:.2f} s ({runs}) "
            f"| **{ideal / run_s:.1%}** ({spread}) | {total_s:.2f} s | {in_flight} |"
        )
    default_row = next(row for row in rows if row[0] == 16)
    share = default_row[1] / default_row[2]
    lines += [
        "",
        f"Target ≥ 90 % of the ideal for the chosen concurrency (16, the gemini-api default): "
        f"**{'met' if share >= 0.9 else 'not met'}** ({share:.1%}, median of {args.rounds} runs).",
    ]
    lines += [
        "",
        "| per-item cost, `vlmkit label` with an instant ScriptedBackend (4 in flight) "
        "| per item | ratio to parsing alone |",
        "|---|---:|---:|",
        f"| `vlmkit.parse` of the same answer (baseline) | {parse_ms:.3f} ms | 1.0× |",
        f"| load + prompt + parse + ledger (fsync) + sinks, median of 3 runs "
        f"| {per_item_ms:.3f} ms | {per_item_ms / parse_ms:.1f}× |",
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
