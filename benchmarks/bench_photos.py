"""`vlmkit label` on 12 MP photos: requests in flight, and what drawing previews costs a run.

`vlmkit label` (``Session.run``, after ``gc.freeze()`` as the CLI does) sends 96 detection
requests to the loopback fake Gemini (in its own process, 1 s per answer, 3 boxes each) at 32 in
flight, each way in a fresh process, interleaved (A B C, then again):

* **no sinks** — the run's own work: reading and validating each photo, sending it, parsing,
  the fsynced ledger;
* **annotate, workers=1** — with previews drawn one at a time in the thread that feeds the
  sinks, as every release before issue 16's annotate change did;
* **annotate** — the default: previews drawn on up to one thread per CPU (at most 4).

With ``--before DIR`` (a checkout of an older vlmkit: ``git worktree add DIR REV``) the runs
without sinks and with previews are also made with that code, in the same rounds.

Each process times only its run; CPU is ``time.process_time()`` over the same span, memory the
process's peak RSS, and the fake server reports the most requests it held at once. The ratio
is each variant's images per second against the run without sinks in the same rounds.

Run from the repository root::

    python benchmarks/bench_photos.py                        # 2 rounds, about 2 minutes
    python benchmarks/bench_photos.py --before /tmp/old      # ... and the older code
    python benchmarks/bench_photos.py --write                # updates docs/benchmarks.md
    python benchmarks/bench_photos.py --quick                # smoke run: 8 photos of 2 MP
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

MODEL = "gemini-3.5-flash-lite"
VARIANTS = {
    "none": ("no sinks", []),
    "annotate-1": ("annotate, workers=1", ["annotate"]),
    "annotate": ("annotate (default workers)", ["annotate"]),
}
BEGIN, END = "<!-- bench_photos:begin -->", "<!-- bench_photos:end -->"


def make_photos(folder: Path, count: int, size: tuple[int, int]) -> None:
    """``count`` different upright JPEG photos of ``size`` (the samples, enlarged and turned)."""
    from PIL import Image

    sources = [
        Image.open(path).convert("RGB").resize(size)
        for path in sorted((ROOT / "samples").glob("*.jpg"))
    ]
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        photo = sources[index % len(sources)].rotate(index % 7)
        photo.save(folder / f"photo{index:03d}.jpg", quality=88)


def child(args: argparse.Namespace) -> None:
    import gc

    import vlmkit

    _label, sinks = VARIANTS[args.child]
    options = {"annotate": {"workers": 1}} if args.child == "annotate-1" else {}
    with vlmkit.Session(
        backend="gemini-api", model=MODEL, api_key="bench-key", base_url=args.base_url, cache=False
    ) as session:
        run = session.run(
            "detect",
            [args.images],
            prompt="cat",
            out_dir=args.out,
            sinks=sinks,
            sink_options=options,
            concurrency=args.in_flight,
        )
        gc.freeze()
        started, cpu = time.perf_counter(), time.process_time()
        statuses = [outcome.status for outcome in run]
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    previews = len(list(Path(args.out, "annotated").glob("*.jpg")))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": cpu,
                "ok": statuses.count("done"),
                "previews": previews,
                "peak_mib": peak_mib,
            }
        )
    )


def measure(
    variant: str, args: argparse.Namespace, images: Path, out: Path, fake, code: Path | None
) -> dict:
    """One run of ``variant`` in a fresh process, with this checkout's code or ``code``'s."""
    fake.reset()
    command = [sys.executable, __file__, "--child", variant, "--images", str(images)]
    command += ["--out", str(out), "--base-url", fake.base_url, "--in-flight", str(args.in_flight)]
    paths = [ROOT] if code is None else [code / "core", code / "plugins" / "gemini", ROOT]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(map(str, paths)),
        "VLMKIT_LOAD_PLUGINS": "vlmkit,vlmkit-gemini",
    }
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    wanted = args.photos if VARIANTS[variant][1] else 0
    if result["ok"] != args.photos or result["previews"] != wanted:
        raise SystemExit(f"{variant}: {result['ok']} answered, {result['previews']} previews")
    result["max_in_flight"] = fake.stats()["max_in_flight"]
    return result


def table(rows: dict[str, list[dict]], args: argparse.Namespace, load: str) -> str:
    from bench_gemini_concurrency import machine

    width, height = args.size
    ideal = -(-args.photos // args.in_flight) * args.latency  # full waves of answers
    lines = [
        f"Machine: {machine().split(';')[0]}; load average at the start {load}. "
        f"{args.photos} JPEG photos of {width}×{height} ({width * height / 1e6:.0f} MP), "
        f"`vlmkit label` to the fake Gemini in its own process at {args.in_flight} in flight, "
        f"{args.latency:.1f} s per answer (ideal: {ideal:.1f} s); each cell is the median of "
        f"{args.rounds} interleaved rounds, each variant in a fresh process.",
        "",
        "| code | variant | wall | images/s | vs no sinks | CPU per image | peak RSS "
        "| server max in flight |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    base = statistics.median(args.photos / r["wall"] for r in rows["now:none"])
    for name, samples in rows.items():
        code, variant = name.split(":")
        wall = statistics.median(r["wall"] for r in samples)
        rate = statistics.median(args.photos / r["wall"] for r in samples)
        cpu_ms = statistics.median(1000 * r["cpu"] / args.photos for r in samples)
        peak = statistics.median(r["peak_mib"] for r in samples)
        seen = max(r["max_in_flight"] for r in samples)
        label = "this checkout" if code == "now" else "before (`--before`)"
        what = VARIANTS[variant][0] if code == "now" or variant == "none" else "annotate"
        lines.append(
            f"| {label} | {what} | {wall:.1f} s | {rate:.1f} | "
            f"**{rate / base:.0%}** | {cpu_ms:.0f} ms | {peak:.0f} MiB | {seen} |"
        )
    one = statistics.median(args.photos / r["wall"] for r in rows["now:annotate-1"])
    many = statistics.median(args.photos / r["wall"] for r in rows["now:annotate"])
    lines += ["", f"Previews drawn at once against one at a time: **{many / one:.2f}×**."]
    if "before:none" in rows:
        for variant in ("none", "annotate"):
            now = statistics.median(r["wall"] for r in rows[f"now:{variant}"])
            then = statistics.median(r["wall"] for r in rows[f"before:{variant}"])
            what = "no sinks" if variant == "none" else "with previews"
            lines[-1] += f" Before → now, {what}: {then:.1f} → {now:.1f} s (**{then / now:.2f}×**)."
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 photos of 2 MP")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--photos", type=int, default=96)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument(
        "--before", type=Path, metavar="DIR", help="an older checkout to measure in the same rounds"
    )
    parser.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--images", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    args.size = (4000, 3000)
    if args.quick:
        args.photos, args.rounds, args.size, args.latency = 8, 1, (1600, 1200), 0.2
    from bench_gemini_concurrency import FakeProcess

    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    started = time.perf_counter()
    runs: list[tuple[str, str, Path | None]] = [("now", variant, None) for variant in VARIANTS]
    if args.before is not None:  # the older code has no annotate workers option
        runs += [("before", "none", args.before), ("before", "annotate", args.before)]
    rows: dict[str, list[dict]] = {f"{code}:{variant}": [] for code, variant, _ in runs}
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "photos"
        make_photos(images, args.photos, args.size)
        fake = FakeProcess(args.latency)
        try:
            for round_ in range(args.rounds):
                for code, variant, checkout in runs:
                    out = Path(tmp) / f"out-{code}-{variant}-{round_}"
                    result = measure(variant, args, images, out, fake, checkout)
                    rows[f"{code}:{variant}"].append(result)
                    print(
                        f"round {round_ + 1}: {code} {variant}: {result['wall']:.1f} s, "
                        f"{1000 * result['cpu'] / args.photos:.0f} ms CPU per image, "
                        f"peak {result['peak_mib']:.0f} MiB",
                        file=sys.stderr,
                    )
        finally:
            fake.close()
    text = table(rows, args, load)
    from docblock import report

    report(text, started, write=args.write, begin=BEGIN, end=END)


if __name__ == "__main__":
    main()
