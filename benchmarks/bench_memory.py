"""What a `vlmkit label` run without sinks holds per item, and whether it grows with N.

The core before (``git archive`` of ``--baseline`` on ``PYTHONPATH``) and after (this tree),
interleaved (A B A B ...), on hard links of one small JPEG (distinct items and keys, one file's
bytes), the instant ScriptedBackend (``benchmarks/instant_backend.py``: keeps no history), 4 in
flight, no answer cache, no sinks. Two measures, each at ``--small`` and ``--items`` items; the
growth per item between the two sizes is what a longer run adds:

1. tracemalloc inside one process (``Session.run``): the memory held at the run's last outcome
   above what was held before the run was built (its inputs included), fresh, then resumed
   (the ledger holding every record; one new image gives the run an outcome), and the peak;
2. ``vlmkit label`` as users run it: its peak RSS (``ru_maxrss``), fresh, then resumed (every
   item already done).

RSS moves with the allocator and the load; tracemalloc counts Python's own allocations and
does not move with either. Neither is a timing.

Run from the repository root:
``python benchmarks/bench_memory.py [--small 1000] [--items 10000] [--rounds 2] [--write]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bench_memory:begin -->", "<!-- bench_memory:end -->"

TRACED = """
import collections, gc, importlib.util, json, os, sys, tempfile, tracemalloc
from pathlib import Path
root, source, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
spec = importlib.util.spec_from_file_location("instant", root / "benchmarks/instant_backend.py")
instant = importlib.util.module_from_spec(spec)
spec.loader.exec_module(instant)
import vlmkit

def links(folder, n):
    folder.mkdir(exist_ok=True)
    for i in range(n):
        if not (path := folder / f"img{i:06d}.jpg").exists():
            os.link(source, path)

def measure(session, folder, out):
    mark = [0]
    def last(outcome):
        mark[0] = tracemalloc.get_traced_memory()[0]
    gc.collect()  # the previous run's cycles, so that they are not freed during this one
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    run = session.run("detect", [folder], "cat", out_dir=out, concurrency=4, progress=last)
    statuses = collections.Counter(outcome.status for outcome in run)
    assert set(statuses) == {"done"} and run.summary.failed == 0, statuses
    return {"held": mark[0] - before, "peak": tracemalloc.get_traced_memory()[1] - before}

with tempfile.TemporaryDirectory() as tmp, vlmkit.Session(
    "instant", plugins=[instant], entrypoints=[], cache=False
) as session:
    tmp = Path(tmp)
    links(tmp / "warm", 4)
    list(session.run("detect", [tmp / "warm"], "cat", out_dir=tmp / "warm-out"))
    links(tmp / "in", count)
    tracemalloc.start()
    fresh = measure(session, tmp / "in", tmp / "out")
    links(tmp / "in", count + 1)  # one new image: the resumed run has one outcome
    resumed = measure(session, tmp / "in", tmp / "out")
    tracemalloc.stop()
print(json.dumps({"fresh": fresh, "resumed": resumed}))
"""

RSS = (
    "import json, resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(json.dumps({'rc': done.returncode, 'rss': u.ru_maxrss * 1024, "
    "'out': done.stdout + done.stderr}))\n"
)


def _env(core: str | None) -> dict[str, str]:
    env = {**os.environ, "VLMKIT_LOAD_PLUGINS": "vlmkit", "VLMKIT_CACHE": "0"}
    env.pop("PYTHONPATH", None)
    if core:  # another version of the core package (a `git archive` of an older commit)
        env["PYTHONPATH"] = core
    return env


def traced(core: str | None, source: Path, count: int) -> dict[str, dict[str, int]]:
    """tracemalloc of a fresh and a resumed `Session.run` over ``count`` items (one process)."""
    done = subprocess.run(
        [sys.executable, "-c", TRACED, str(ROOT), str(source), str(count)],
        env=_env(core),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"the traced run failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def label_rss(core: str | None, folder: Path, out: Path) -> int:
    """Peak RSS in bytes of one `vlmkit label` process (measured in a fresh helper process:
    ``RUSAGE_CHILDREN`` reports the largest child so far)."""
    command = [
        sys.executable, "-m", "vlmkit.cli", "label", str(folder), "--out", str(out),
        "--task", "detect", "--prompt", "cat", "--backend", "instant",
        "--plugin", str(ROOT / "benchmarks/instant_backend.py"),
        "--concurrency", "4", "--no-progress", "--no-cache",
    ]  # fmt: skip
    raw = subprocess.run(
        [sys.executable, "-c", RSS, *command], env=_env(core), capture_output=True, text=True
    ).stdout
    result = json.loads(raw.strip().splitlines()[-1])
    if result["rc"] != 0 or not re.search(r"done \d+, failed 0", result["out"]):
        raise SystemExit(f"vlmkit label failed:\n{result['out']}")
    return int(result["rss"])


def baseline_core(commit: str, into: Path) -> str:
    """The core package of ``commit``, unpacked under ``into``; returns its import root."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "core"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return str(into / "core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1000, help="items of the small runs")
    parser.add_argument("--items", type=int, default=10000, help="items of the large runs")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (medians)")
    parser.add_argument("--baseline", default="32f752f", help="commit to compare ('' for none)")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    sizes = (args.small, args.items)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        versions: dict[str, str | None] = {}
        if args.baseline:
            (work / "before").mkdir()
            versions[f"before ({args.baseline})"] = baseline_core(args.baseline, work / "before")
        versions["after"] = None
        source = work / "image.jpg"
        Image.new("RGB", (160, 120), (200, 30, 30)).save(source, quality=85)
        folders = {}
        for count in sizes:
            folders[count] = work / f"in{count}"
            folders[count].mkdir()
            for i in range(count):
                os.link(source, folders[count] / f"img{i:06d}.jpg")
        runs: dict[tuple[str, int], list[dict[str, float]]] = {}
        for round_ in range(args.rounds):
            for name, core in versions.items():
                for count in sizes:
                    got = traced(core, source, count)
                    out = work / f"out-{round_}-{len(runs)}-{count}"
                    fresh_rss = label_rss(core, folders[count], out)
                    resumed_rss = label_rss(core, folders[count], out)
                    runs.setdefault((name, count), []).append(
                        {
                            "held": got["fresh"]["held"],
                            "peak": got["fresh"]["peak"],
                            "held_resumed": got["resumed"]["held"],
                            "rss": fresh_rss,
                            "rss_resumed": resumed_rss,
                        }
                    )

    def med(name: str, count: int, field: str) -> float:
        return statistics.median(run[field] for run in runs[(name, count)])

    small, large = sizes

    def growth(name: str, field: str) -> str:
        per_item = (med(name, large, field) - med(name, small, field)) / (large - small)
        return f"{per_item:,.0f} B"

    def both(name: str, field: str, unit: float, fmt: str) -> str:
        return " → ".join(format(med(name, n, field) / unit, fmt) for n in sizes)

    lines = [
        f"{small:,} → {large:,} items (hard links of one 160×120 JPEG), instant "
        f"ScriptedBackend, 4 in flight, no cache, no sinks; {args.rounds} interleaved rounds, "
        f"medians; load average at the start {load} (shared machine).",
        "",
        "`Session.run`, tracemalloc: held at the last outcome above what was held before the "
        "run was built, and the peak above it:",
        "",
        "| core | held, fresh | per item | held, resumed | per item | peak, fresh |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in versions:
        lines.append(
            f"| {name} | {both(name, 'held', 2**10, ',.0f')} KiB | {growth(name, 'held')} "
            f"| {both(name, 'held_resumed', 2**10, ',.0f')} KiB "
            f"| {growth(name, 'held_resumed')} | {both(name, 'peak', 2**20, ',.1f')} MiB |"
        )
    lines += [
        "",
        "`vlmkit label`, peak RSS of the process:",
        "",
        "| core | fresh | per item | resumed | per item |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in versions:
        lines.append(
            f"| {name} | {both(name, 'rss', 2**20, ',.0f')} MiB | {growth(name, 'rss')} "
            f"| {both(name, 'rss_resumed', 2**20, ',.0f')} MiB | {growth(name, 'rss_resumed')} |"
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
    main()
