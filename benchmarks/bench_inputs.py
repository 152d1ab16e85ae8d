"""What listing a run's inputs costs before its first request, against a bare directory walk.

A run expands its folders into items before it sends anything (``vlmkit.inputs.collect_inputs``:
keys, each file's real path, duplicates, what is skipped and why, the run's own output folder
left out). This benchmark times that on a folder of ``--files`` empty ``.jpg`` files in 100
subfolders (a tenth of them other files) against the least a script does to find the same
images: ``os.walk`` of the folder, sorted, filtered by suffix. Both run in this process, rounds
interleaved (A B A B ...); CPU time (``time.process_time``), medians. The ratio is what vlmkit
costs per file against the bare walk.

Run from the repository root: ``python benchmarks/bench_inputs.py [--files 100000] [--write]``
(``--core`` times another checkout's core, e.g. ``git archive`` of an older commit).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bench_inputs:begin -->", "<!-- bench_inputs:end -->"
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def make_folder(root: Path, files: int) -> None:
    for index in range(files):
        folder = root / f"part{index % 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ".txt" if index % 10 == 9 else ".jpg"
        (folder / f"img{index:07d}{suffix}").touch()


def bare_walk(root: Path) -> list[str]:
    """The least a script does: every image below ``root``, sorted, by suffix."""
    found = []
    for folder, folders, names in os.walk(root):
        folders.sort()
        for name in sorted(names):
            if os.path.splitext(name)[1].lower() in SUFFIXES:
                found.append(os.path.join(folder, name))
    return found


def vlmkit_inputs(root: Path, out: Path) -> list[str]:
    from vlmkit.inputs import collect_inputs

    items, _skipped = collect_inputs([root], exclude=out)
    return [item.file for item in items]


def timed(function, *args) -> tuple[float, int]:
    started = time.process_time()
    result = function(*args)
    return time.process_time() - started, len(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument(
        "--core", default=str(ROOT / "core"), help="the vlmkit core to time (an older checkout)"
    )
    args = parser.parse_args()
    sys.path.insert(0, args.core)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        make_folder(root, args.files)
        vlmkit_inputs(root, Path(tmp) / "out")  # imports, warm caches
        times: dict[str, list[float]] = {"vlmkit": [], "bare": []}
        counts = {}
        for _ in range(args.rounds):
            for name, function in (("vlmkit", vlmkit_inputs), ("bare", bare_walk)):
                extra = (Path(tmp) / "out",) if name == "vlmkit" else ()
                seconds, counts[name] = timed(function, root, *extra)
                times[name].append(seconds)
    if counts["vlmkit"] != counts["bare"]:
        raise SystemExit(f"the two found different images: {counts}")
    vlmkit_s, bare_s = (statistics.median(times[name]) for name in ("vlmkit", "bare"))
    per_file = 1e6 / args.files
    text = "\n".join(
        [
            f"{args.files:,} files in 100 folders ({counts['bare']:,} images), median of "
            f"{args.rounds} interleaved rounds, CPU time:",
            "",
            "| what | per file | whole folder | vs the bare walk |",
            "|---|---:|---:|---:|",
            f"| `collect_inputs` (keys, real paths, duplicates, skips, output folder left out) "
            f"| {vlmkit_s * per_file:.1f} µs | {vlmkit_s:.2f} s | **{vlmkit_s / bare_s:.1f}×** |",
            f"| bare `os.walk`, sorted, by suffix | {bare_s * per_file:.1f} µs | {bare_s:.2f} s "
            "| 1.0× |",
        ]
    )
    print(text)
    if args.write:
        path = ROOT / "docs" / "benchmarks.md"
        content = path.read_text(encoding="utf-8")
        if BEGIN not in content:
            raise SystemExit(f"{path} has no {BEGIN} marker")
        pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)
        path.write_text(pattern.sub(lambda _: f"{BEGIN}\n{text}\n{END}", content), encoding="utf-8")


if __name__ == "__main__":
    main()
