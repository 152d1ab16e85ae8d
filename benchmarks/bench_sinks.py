"""What the COCO and YOLO sinks cost per item in `vlmkit label`, and whether memory grows with N.

`vlmkit label` runs in its own process with an instant ScriptedBackend that keeps no history
(`--plugin benchmarks/instant_backend.py`, 4 in flight, no cache), once without sinks and once
with `--sink coco --sink yolo`, interleaved (A B A B ...) so background load falls on both. Per
item: the child process's CPU time (user + system, from ``RUSAGE_CHILDREN``) divided by the
number of items, and its two parts; the sinks' cost is the difference. CPU time moves far less
than wall time on a loaded machine; wall time is printed too, for what it is worth. System
time is mostly the file system's: on the VM these figures come from, creating a file costs
0.02-0.5 ms of kernel CPU depending on the folder and the hour (ext4 inode allocation), and
the YOLO sink creates one label file per image.

Memory: the same command's peak RSS (``ru_maxrss`` of the child) at ``--small`` and ``--items``
images; the growth between them, per item, is what a long run would add.

Run from the repository root: ``python benchmarks/bench_sinks.py [--items 2000] [--write]``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bench_sinks:begin -->", "<!-- bench_sinks:end -->"
SINKS = ("--sink", "coco", "--sink", "yolo")


def make_images(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:05d}.jpg", quality=85)


def label(
    folder: Path, out: Path, sinks: tuple[str, ...], core: str | None = None
) -> dict[str, float]:
    """One `vlmkit label` process: its CPU seconds, wall seconds and peak RSS (MiB)."""
    command = [
        sys.executable,
        "-m",
        "vlmkit.cli",
        "label",
        str(folder),
        "--out",
        str(out),
        "--task",
        "detect",
        "--prompt",
        "cat",
        "--backend",
        "instant",
        "--plugin",
        str(ROOT / "benchmarks/instant_backend.py"),
        "--concurrency",
        "4",
        "--no-progress",
        "--no-cache",
        *sinks,
    ]
    env = {**os.environ, "VLMKIT_LOAD_PLUGINS": "vlmkit", "VLMKIT_CACHE": "0"}
    if core:  # another version of the core package (e.g. `git archive` of an older commit)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [core, env.get("PYTHONPATH")]))
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far: measure in a fresh helper.
    wrapper = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "wall = time.perf_counter() - t\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'rc': done.returncode, 'cpu': u.ru_utime + u.ru_stime, "
        "'user': u.ru_utime, 'sys': u.ru_stime, "
        "'wall': wall, 'rss': u.ru_maxrss / 1024, 'out': done.stdout + done.stderr}))\n"
    )
    import json

    raw = subprocess.run(
        [sys.executable, "-c", wrapper, *command], env=env, capture_output=True, text=True
    ).stdout
    result = json.loads(raw.strip().splitlines()[-1])
    if result["rc"] != 0 or not re.search(r"done \d+, failed 0", result["out"]):
        raise SystemExit(f"vlmkit label failed:\n{result['out']}")
    return result


DIRECT = """
import gc, json, resource, sys, tempfile, tracemalloc
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import vlmkit
from tests.cli.scripted_backends import DETECT
from vlmkit.sink import SinkItem
from vlmkit.sinks.coco import CocoSink
from vlmkit.sinks.yolo import YoloSink
n, images = int(sys.argv[2]), Path(sys.argv[3])
paths = sorted(images.iterdir())
result = vlmkit.parse(DETECT, image_size=(160, 120))
items = [
    SinkItem(key=p.name, result=result, image_path=p, image_size=(160, 120))
    for p in paths[:n]
]
out = {}
with tempfile.TemporaryDirectory() as tmp:
    for cls in (CocoSink, YoloSink):
        sink = cls(Path(tmp) / cls.__name__)
        sink.write(items[0])  # first-call imports
        start = resource.getrusage(resource.RUSAGE_SELF)
        for item in items[1:]:
            sink.write(item)
        middle = resource.getrusage(resource.RUSAGE_SELF)
        sink.close()
        end = resource.getrusage(resource.RUSAGE_SELF)
        write_s = middle.ru_utime + middle.ru_stime - start.ru_utime - start.ru_stime
        write_sys = middle.ru_stime - start.ru_stime
        close_s = end.ru_utime + end.ru_stime - middle.ru_utime - middle.ru_stime
        sink = cls(Path(tmp) / (cls.__name__ + "-memory"))  # memory, untimed
        sink.write(items[0])
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for item in items[1:]:
            sink.write(item)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        sink.close()
        out[cls.__name__] = {
            "write": write_s, "write_sys": write_sys, "close": close_s, "held": held
        }
print(json.dumps(out))
"""


def direct(core: str, n: int, images: Path) -> dict[str, dict[str, float]]:
    """The sinks alone, fed ``n`` SinkItems in a fresh process with the core in ``core``."""
    import json

    done = subprocess.run(
        [sys.executable, "-c", DIRECT, str(ROOT), str(n), str(images)],
        env={**os.environ, "PYTHONPATH": core},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def fs_floor(images: Path, out: Path) -> float:
    """System CPU seconds per item of the file work the YOLO sink cannot avoid, done bare in
    ``out``: create, write and close one small file, hard-link one image (no Python around)."""
    import resource

    labels, linked = out / "labels", out / "images"
    labels.mkdir(parents=True)
    linked.mkdir()
    sources = sorted(images.iterdir())
    line = b"0 0.400000 0.300000 0.400000 0.400000\n"
    start = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    for index, source in enumerate(sources):
        fd = os.open(labels / f"{index}.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        os.write(fd, line)
        os.close(fd)
        os.link(source, linked / source.name)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_stime - start) / len(sources)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=500, help="images per timed run")
    parser.add_argument("--rounds", type=int, default=3, help="A B pairs")
    parser.add_argument("--small", type=int, default=0, help="also run N images for RSS slope")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument(
        "--before",
        metavar="DIR",
        help="also run coco+yolo with the core found in DIR (a folder holding `vlmkit/`)",
    )
    args = parser.parse_args()
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    variants: list[tuple[str, tuple[str, ...], str | None]] = [
        ("none", (), None),
        ("coco+yolo", SINKS, None),
    ]
    if args.before:
        variants.append(("coco+yolo, before", SINKS, args.before))
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in variants}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        make_images(folder, args.items)
        floor: list[float] = []
        for round_ in range(args.rounds):
            for name, sinks, core in variants:
                out = Path(tmp) / f"out-{len(runs[name])}-{round_}-{name.replace(' ', '')}"
                runs[name].append(label(folder, out, sinks, core))
            floor.append(fs_floor(folder, Path(tmp) / f"floor-{round_}"))
        sink_runs: dict[str, list[dict[str, dict[str, float]]]] = {"after": [], "before": []}
        for _ in range(args.rounds if args.before else 0):
            sink_runs["after"].append(direct(str(ROOT / "core"), args.items, folder))
            sink_runs["before"].append(direct(args.before, args.items, folder))
        small: dict[str, float] = {}
        if args.small:
            few = Path(tmp) / "few"
            few.mkdir()
            for path in sorted(folder.iterdir())[: args.small]:
                os.link(path, few / path.name)
            for name, sinks, core in variants:
                out = Path(tmp) / f"few-{name.replace(' ', '')}"
                small[name] = label(few, out, sinks, core)["rss"]

    def med(name: str, field: str) -> float:
        return statistics.median(run[field] for run in runs[name])

    n = args.items
    cpu_none, cpu_sinks = med("none", "cpu") / n * 1e3, med("coco+yolo", "cpu") / n * 1e3
    lines = [
        f"{n} JPEGs of 160×120, instant ScriptedBackend (no history), 4 in flight, "
        f"{args.rounds} interleaved pairs of processes, medians; load average at the start "
        f"{load} (shared machine).",
        "",
        "| `vlmkit label` | CPU per item (range) | of which user / system | wall per item "
        "| peak RSS |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in runs:
        cpus = sorted(run["cpu"] / n * 1e3 for run in runs[name])
        lines.append(
            f"| sinks: {name} | {med(name, 'cpu') / n * 1e3:.2f} ms "
            f"({cpus[0]:.2f}–{cpus[-1]:.2f}) "
            f"| {med(name, 'user') / n * 1e3:.2f} / {med(name, 'sys') / n * 1e3:.2f} ms "
            f"| {med(name, 'wall') / n * 1e3:.2f} ms | {med(name, 'rss'):.0f} MiB |"
        )
    lines += ["", f"The COCO and YOLO sinks cost **{cpu_sinks - cpu_none:.2f} ms CPU per item**"]
    if args.before:
        cpu_before = med("coco+yolo, before", "cpu") / n * 1e3
        lines[-1] += f" (before: {cpu_before - cpu_none:.2f} ms)"
    lines[-1] += "."
    lines[-1] += (
        f" The file system's part of it, measured bare in the same folder in the same rounds "
        f"(create and write one small file, hard-link one image): "
        f"{statistics.median(floor) * 1e3:.2f} ms of system CPU per item "
        f"({min(floor) * 1e3:.2f}–{max(floor) * 1e3:.2f})."
    )
    if args.before:
        lines += [
            "",
            f"The sinks alone, fed the same {n} items in one process (CPU time of `write` for "
            "all items, then of `close`; memory the sink holds after the writes, tracemalloc), "
            f"with the core before and after, interleaved, median of {args.rounds}:",
            "",
            "| sink | version | write, per item (of which system) | close, per item "
            "| held, per item |",
            "|---|---|---:|---:|---:|",
        ]
        for sink in ("CocoSink", "YoloSink"):
            for version in ("before", "after"):

                def smed(field: str, _v: str = version, _s: str = sink) -> float:
                    return statistics.median(run[_s][field] for run in sink_runs[_v])

                lines.append(
                    f"| {sink} | {version} | {smed('write') / n * 1e3:.3f} ms "
                    f"({smed('write_sys') / n * 1e3:.3f}) "
                    f"| {smed('close') / n * 1e3:.3f} ms | {smed('held') / n:,.0f} B |"
                )
    if small:
        for name in runs:
            growth = (med(name, "rss") - small[name]) / (n - args.small) * 1024
            lines.append(
                f"RSS growth, sinks {name}: {small[name]:.0f} MiB at {args.small} items → "
                f"{med(name, 'rss'):.0f} MiB at {n} ({growth:.1f} KiB per item)."
            )
    text = "\n".join(lines)
    print(text)
    if args.write:
        doc = ROOT / "docs" / "benchmarks.md"
        content = doc.read_text(encoding="utf-8")
        pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
        if not pattern.search(content):
            raise SystemExit(f"{doc} has no {BEGIN} ... {END} section to replace")
        doc.write_text(pattern.sub(lambda _m: f"{BEGIN}\n{text}\n{END}", content), "utf-8")


if __name__ == "__main__":
    sys.exit(main())
