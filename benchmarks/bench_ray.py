"""The same 500-image job through `vlmkit label` (threads in one process) and through
`vlmkit label --engine ray` (Ray Data workers), interleaved, on this machine.

Both are the command a user runs, each in its own process, against the loopback fake Gemini in
a third process; COCO and YOLO sinks, fsynced ledger, answer cache off. The Ray runs join a
local cluster this script starts once (``ray.init(num_cpus=2)``; ``--address``), as a user's
job joins a running cluster: the cluster's start-up is reported apart, not in the runs.

1. Throughput: the fake answers after 100 ms; 16 requests in flight in both (the gemini-api
   default; for Ray, 2 workers x 8 threads). Ratio of the runs' wall times (the time the
   command prints: first item to sinks written).
2. Per-item cost: the fake answers at once; 50 and 500 images; the cost of one more item is
   ``(wall(500) - wall(50)) / 450`` and the fixed cost the rest, for each engine.
3. The driver's share: what the Ray driver does per record whatever the cluster's size —
   decode the worker's ledger line, append it to the ledger (fsync) and write it into the COCO
   and YOLO sinks — timed on the 500 records of a finished run. It bounds the cluster's
   throughput (one driver) and is the base of the projection in docs/scale.md.

Rounds alternate local / Ray so that both meet the same load. The development machine is
shared (2 cores, other jobs running): the figures are upper bounds; rerun on a quiet machine.

Run from the repository root: ``python benchmarks/bench_ray.py [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_gemini_concurrency import FakeProcess  # noqa: E402
from bench_label import make_images  # noqa: E402

IMAGES = 500
SMALL = 50
LATENCY_S = 0.1
CONCURRENCY = 16


def label(folder: Path, out: Path, base_url: str, *extra: str) -> tuple[float, float]:
    """(the run's wall time as the command prints it, the whole process's wall time)."""
    command = [
        sys.executable, "-m", "vlmkit.cli", "label", str(folder), "--task", "detect",
        "--prompt", "cat", "--backend", "gemini-api", "--model", "gemini-3.5-flash-lite",
        "--config", f"base_url={base_url}", "--config", "api_key=bench-key",
        "--out", str(out), "--sink", "coco", "--sink", "yolo", "--no-progress", "--no-cache",
        "--concurrency", str(CONCURRENCY), *extra,
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    total = time.perf_counter() - started
    output = done.stdout + done.stderr
    if done.returncode != 0 or "failed 0" not in output:
        raise SystemExit(f"{' '.join(command)} failed:\n{output[-3000:]}")
    match = re.search(r"wall time ([0-9.]+) s", output)
    assert match is not None, output
    return float(match.group(1)), total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3, help="runs per engine and size")
    args = parser.parse_args()
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray

    started = time.perf_counter()
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    cluster_s = time.perf_counter() - started
    address = context.address_info["address"]
    ray_args = ("--engine", "ray", "--address", address, "--engine-option", "workers=2")
    results: dict[tuple[str, int, float], list[tuple[float, float]]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            big, small = Path(tmp) / "big", Path(tmp) / "small"
            for folder, count in ((big, IMAGES), (small, SMALL)):
                folder.mkdir()
                make_images(folder, count)
            for latency in (LATENCY_S, 0.0):
                fake = FakeProcess(latency)
                try:
                    sizes = ((big, IMAGES),) if latency else ((big, IMAGES), (small, SMALL))
                    for round_ in range(args.rounds):
                        for folder, count in sizes:
                            for engine, extra in (("local", ()), ("ray", ray_args)):
                                fake.reset()
                                out = Path(tmp) / f"{engine}-{latency}-{count}-{round_}"
                                wall = label(folder, out, fake.base_url, *extra)
                                results.setdefault((engine, count, latency), []).append(wall)
                                print(engine, count, latency, f"{wall[0]:.2f} s", flush=True)
                finally:
                    fake.close()
            driver_ms = driver_cost_ms(Path(tmp) / f"ray-{LATENCY_S}-{IMAGES}-0", Path(tmp))
    finally:
        ray.shutdown()
    report(results, cluster_s, args.rounds)
    print(
        f"\ndriver per record (decode + ledger append with fsync + COCO and YOLO): "
        f"{driver_ms:.2f} ms -> at most {1000 / driver_ms:.0f} records/s for one driver"
    )


def driver_cost_ms(run: Path, tmp: Path) -> float:
    """Milliseconds the Ray driver spends per record (median of 3 passes over 500 records)."""
    import json

    import vlmkit
    from vlmkit.export import export
    from vlmkit.ledger import Ledger, LedgerRecord

    session = vlmkit.Session()

    lines = (run / "results.jsonl").read_text(encoding="utf-8").splitlines()
    passes = []
    for index in range(3):
        ledger_path = tmp / f"driver-{index}" / "results.jsonl"
        started = time.perf_counter()
        with Ledger(ledger_path) as ledger:
            for line in lines:
                ledger.append(LedgerRecord.from_dict(json.loads(line)))
        export(
            ledger_path, ["coco", "yolo"], ledger_path.parent / "sinks", resolve=session.sink_info
        )
        passes.append((time.perf_counter() - started) / len(lines) * 1e3)
    return statistics.median(passes)


def report(results: dict, cluster_s: float, rounds: int) -> None:
    def median(engine: str, count: int, latency: float, index: int = 0) -> float:
        return statistics.median(sample[index] for sample in results[(engine, count, latency)])

    load = os.getloadavg()[0]
    print(f"\nload average at the end: {load:.1f} on {os.cpu_count()} cores")
    print(f"local Ray cluster start (ray.init, num_cpus=2): {cluster_s:.1f} s")
    ideal = -(-IMAGES // CONCURRENCY) * LATENCY_S
    print(f"\n| {IMAGES} images, {LATENCY_S * 1000:.0f} ms per answer, {CONCURRENCY} in flight "
          "| run wall (median, runs) | images/s | share of ideal | process total |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    for engine in ("local", "ray"):
        walls = [s[0] for s in results[(engine, IMAGES, LATENCY_S)]]
        wall = median(engine, IMAGES, LATENCY_S)
        runs = ", ".join(f"{w:.2f}" for w in walls)
        print(
            f"| `{engine}` | {wall:.2f} s ({runs}) | {IMAGES / wall:.0f} | {ideal / wall:.0%} "
            f"| {median(engine, IMAGES, LATENCY_S, 1):.2f} s |"
        )
    ratio = median("local", IMAGES, LATENCY_S) / median("ray", IMAGES, LATENCY_S)
    print(f"\nthroughput ratio ray / local: {ratio:.2f}")
    print("\n| instant answers | wall 50 | wall 500 | per extra item | fixed |")
    print("|---|---:|---:|---:|---:|")
    for engine in ("local", "ray"):
        w50, w500 = median(engine, SMALL, 0.0), median(engine, IMAGES, 0.0)
        per_item = (w500 - w50) / (IMAGES - SMALL)
        fixed = w50 - SMALL * per_item
        print(
            f"| `{engine}` | {w50:.2f} s | {w500:.2f} s | {per_item * 1e3:.2f} ms | {fixed:.2f} s |"
        )
    print(f"\n(median of {rounds} rounds each; loaded shared machine: upper bounds)")


if __name__ == "__main__":
    main()
