"""Throughput of `vlmkit label` against the bare google-genai SDK, side by side in one run.

500 detection requests to the loopback fake Gemini (`vlmkit_gemini.testing`, in its own process,
answering every call after 200 ms) at 16, 32 and 64 in flight, four ways, each in a fresh
process:

* **vlmkit, coco+yolo** — what `vlmkit label FOLDER --sink coco --sink yolo` runs
  (`Session.run` with the fsynced ledger and both sinks, after `gc.freeze()` as the CLI does);
* **vlmkit, no sinks** — the same without sinks;
* **bare SDK, threads** — `genai.Client.models.generate_content` from a thread pool;
* **bare SDK, asyncio** — `genai.Client.aio.models.generate_content` under a semaphore.

With ``--variants vlmkit-procs vlmkit-procs-sinks ...`` it also runs `vlmkit label --engine
processes` (``--workers`` processes, 2 by default; their CPU is counted with the parent's). Its
workers start inside the clock (about 2 s here), so compare it on longer runs
(``--requests 2000 --in-flight 64``); those runs print their lines and write no table.

``sdk-threads-raw`` is the bare SDK from threads asking for the raw HTTP response
(``should_return_http_response``) and reading its JSON itself, as vlmkit-gemini does since
2026-12-05: the same client with the SDK's response model left out.

Like for like: the bare SDK sends the same generation config as vlmkit (its detection schema,
JSON mode, minimal thinking, at most 16,384 output tokens, for gemini-3.5-flash-lite) and does
the image work vlmkit does during the run — it reads each JPEG, checks it as vlmkit checks an
upright JPEG (a decode at 1/8 scale, which reads every byte; the pixel size from the header maps
boxes to pixels) and sends the file's bytes, as vlmkit does with an upright JPEG under the size
limit — then `json.loads` the answer. Each
process times only the 500 requests (not its start-up); its CPU time is `time.process_time()`
over the same span. The bare SDK gets one warm-up request before the clock (its pydantic models
are built lazily; vlmkit builds them when the backend is made).

Measurements are interleaved: each round runs A B C D at 16, then at 32, then at 64, and the
rounds repeat; the tables give medians over the rounds.

Run from the repository root::

    python benchmarks/bench_throughput.py           # 3 rounds, about 5 minutes on 2 cores
    python benchmarks/bench_throughput.py --write   # ... and updates docs/benchmarks.md
    python benchmarks/bench_throughput.py --quick   # a smoke run: 40 requests, 4/8 in flight
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

MODEL = "gemini-3.5-flash-lite"  # the default: no retired-model routing in the way
PROMPT = "cat"
VARIANTS = {
    "vlmkit-sinks": "vlmkit label, coco+yolo",
    "vlmkit": "vlmkit label, no sinks",
    "vlmkit-procs-sinks": "vlmkit label --engine processes, coco+yolo",
    "vlmkit-procs": "vlmkit label --engine processes, no sinks",
    "sdk-threads": "bare SDK, threads",
    "sdk-asyncio": "bare SDK, asyncio",
    "sdk-threads-raw": "bare SDK, threads, raw responses",
}
#: Measured unless --variants says otherwise. The processes engine pays its workers' start-up
#: (about 2 s here) inside the clock, so it is compared on longer runs (--requests 2000).
DEFAULT_VARIANTS = ["vlmkit-sinks", "vlmkit", "sdk-threads", "sdk-asyncio"]
BEGIN, END = "<!-- bench_throughput:begin -->", "<!-- bench_throughput:end -->"


# -- the images ---------------------------------------------------------------------------------
def make_images(folder: Path, count: int) -> None:
    """``count`` different upright JPEGs (sliding 480×360 crops of the sample photos)."""
    from PIL import Image

    sources = [Image.open(path).convert("RGB") for path in sorted((ROOT / "samples").glob("*.jpg"))]
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        source = sources[index % len(sources)]
        step, lap = divmod(index // len(sources), 100)[::-1]
        shift = step * 2
        box = (shift, shift // 2, min(source.width, 480 + shift), min(source.height, 360 + shift))
        source.crop(box).save(folder / f"img{index:04d}.jpg", quality=90 - lap % 10)


# -- the children: one measured variant each ---------------------------------------------------
def _vlmkit(args: argparse.Namespace, sinks: list[str], engine: str | None = None) -> dict:
    import gc
    import resource

    import vlmkit
    from vlmkit.engines import SessionSpec, build_engine

    spec = SessionSpec(
        backend="gemini-api",
        model=MODEL,
        settings={"api_key": "bench-key", "base_url": args.base_url},
        cache=False,
    )
    with vlmkit.Session(
        backend="gemini-api", model=MODEL, api_key="bench-key", base_url=args.base_url, cache=False
    ) as session:
        arguments = {
            "prompt": PROMPT,
            "out_dir": args.out,
            "sinks": sinks,
            "concurrency": args.in_flight,
        }
        if engine is None:
            run = session.run("detect", [args.images], **arguments)
        else:  # what `vlmkit label --engine processes` runs; its workers start in the clock
            built = build_engine(session, engine, {"workers": args.workers})
            run = built.run(session, spec, "detect", [args.images], **arguments)
        gc.freeze()  # as `vlmkit label` does once set up
        started, cpu = time.perf_counter(), time.process_time()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        outcomes = [outcome.status for outcome in run]
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers, joined
        cpu += (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    return {"wall": wall, "cpu": cpu, "ok": outcomes.count("done")}


def checked_size(data: bytes) -> tuple[int, int]:
    """The image work vlmkit does on an upright JPEG it sends as it is: decoded at 1/8 scale,
    which reads all of it (`vlmkit.jpegcheck`), and its size from the header."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        size = image.size
        image.draft(image.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
        image.load()
    return size


def _sdk_request(args: argparse.Namespace):
    """The client, the config and one request's image work, as a bare SDK script does it."""
    from google import genai
    from google.genai import types

    from vlmkit_gemini.backend import DETECT_SCHEMA

    client = genai.Client(
        api_key="bench-key", http_options=types.HttpOptions(base_url=args.base_url)
    )
    config = types.GenerateContentConfig(  # what vlmkit sends for this model and task
        response_mime_type="application/json",
        response_schema=DETECT_SCHEMA,
        thinking_config=types.ThinkingConfig(thinking_level=types.ThinkingLevel.MINIMAL),
        max_output_tokens=16384,
    )
    prompt = (
        "Detect the 2d bounding boxes of the cat. Output a JSON list where each entry contains "
        'the 2D bounding box in "box_2d" and the text label in "label".'
    )

    def contents(path: Path) -> list:
        data = path.read_bytes()
        checked_size(data)  # checked as vlmkit checks it; its size maps the boxes
        return [types.Part.from_bytes(data=data, mime_type="image/jpeg"), prompt]

    return client, config, contents


def _sdk_threads(args: argparse.Namespace, paths: list[Path], *, raw: bool = False) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    client, config, contents = _sdk_request(args)
    if raw:  # what vlmkit-gemini does: the raw HTTP response, its JSON read by the caller
        config = config.model_copy(update={"should_return_http_response": True})

    def one(path: Path) -> int:
        answer = client.models.generate_content(model=MODEL, contents=contents(path), config=config)
        if raw:
            body = json.loads(answer.sdk_http_response.body)
            return len(json.loads(body["candidates"][0]["content"]["parts"][-1]["text"]))
        return len(json.loads(answer.text))

    one(paths[0])  # warm-up, before the clock
    with ThreadPoolExecutor(args.in_flight) as pool:
        started, cpu = time.perf_counter(), time.process_time()
        found = list(pool.map(one, paths))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    client.close()
    return {"wall": wall, "cpu": cpu, "ok": sum(1 for boxes in found if boxes)}


def _sdk_asyncio(args: argparse.Namespace, paths: list[Path]) -> dict:
    import asyncio

    client, config, contents = _sdk_request(args)

    async def main() -> tuple[float, float, list[int]]:
        gate = asyncio.Semaphore(args.in_flight)

        async def one(path: Path) -> int:
            async with gate:
                answer = await client.aio.models.generate_content(
                    model=MODEL, contents=contents(path), config=config
                )
            return len(json.loads(answer.text))

        await one(paths[0])  # warm-up, before the clock
        started, cpu = time.perf_counter(), time.process_time()
        found = await asyncio.gather(*(one(path) for path in paths))
        return time.perf_counter() - started, time.process_time() - cpu, found

    wall, cpu, found = asyncio.run(main())
    client.close()
    return {"wall": wall, "cpu": cpu, "ok": sum(1 for boxes in found if boxes)}


def child(args: argparse.Namespace) -> None:
    paths = sorted(Path(args.images).glob("*.jpg"))[: args.requests]
    if args.child == "vlmkit-sinks":
        result = _vlmkit(args, ["coco", "yolo"])
    elif args.child == "vlmkit":
        result = _vlmkit(args, [])
    elif args.child == "vlmkit-procs-sinks":
        result = _vlmkit(args, ["coco", "yolo"], engine="processes")
    elif args.child == "vlmkit-procs":
        result = _vlmkit(args, [], engine="processes")
    elif args.child == "sdk-threads":
        result = _sdk_threads(args, paths)
    elif args.child == "sdk-threads-raw":
        result = _sdk_threads(args, paths, raw=True)
    else:
        result = _sdk_asyncio(args, paths)
    times = os.times()
    result["user_sys"] = [times.user, times.system]  # the whole process, start-up included
    print(json.dumps(result))


# -- the parent: interleaved rounds, tables ---------------------------------------------------
def measure(
    variant: str, in_flight: int, images: Path, out: Path, fake, requests: int, workers: int
) -> dict:
    fake.reset()
    command = [
        sys.executable,
        __file__,
        "--child",
        variant,
        "--in-flight",
        str(in_flight),
        "--images",
        str(images),
        "--out",
        str(out),
        "--base-url",
        fake.base_url,
        "--requests",
        str(requests),
        "--workers",
        str(workers),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "VLMKIT_LOAD_PLUGINS": "vlmkit,vlmkit-gemini",
        "VLMKIT_CACHE": "0",
    }
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{variant} at {in_flight} in flight failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["ok"] != requests:
        raise SystemExit(f"{variant} at {in_flight}: {result['ok']} of {requests} answered")
    result["max_in_flight"] = fake.stats()["max_in_flight"]
    return result


def file_creation_us(folder: Path, count: int = 300) -> float:
    """Microseconds to create, write and close one small file in ``folder`` (what the YOLO
    sink does per image). On this VM's ext4 (mounted with ``discard``) it moved between 9 and
    500 µs, high for minutes after many files were deleted: the tables say what it was."""
    folder.mkdir(parents=True)
    started = time.perf_counter()
    for index in range(count):
        with open(folder / f"{index:05d}.txt", "xb") as handle:
            handle.write(b"0 0.500000 0.500000 0.250000 0.250000\n")
    return (time.perf_counter() - started) / count * 1e6


def table(rows: dict, args: argparse.Namespace, load: str, files_us: tuple[float, float]) -> str:
    from bench_gemini_concurrency import machine

    lines = [
        f"Machine: {machine().split(';')[0]}; load average at the start {load}; creating a "
        f"small file in the output folder {files_us[0]:.0f} µs before the rounds, "
        f"{files_us[1]:.0f} µs after them. {args.requests} "
        f"requests (480×360 JPEGs) to the fake Gemini in its own process, "
        f"{args.latency * 1000:.0f} ms per answer; each cell is the median of {args.rounds} "
        "interleaved rounds, each variant in a fresh process.",
        "",
        "| in flight | variant | requests/s | share of ideal¹ | CPU per request | "
        "vs best bare SDK | server max in flight |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    summary = []
    for in_flight in args.in_flight:
        ideal = in_flight / args.latency
        medians = {}
        for variant in DEFAULT_VARIANTS:
            samples = rows[(variant, in_flight)]
            rate = statistics.median(args.requests / s["wall"] for s in samples)
            cpu_ms = statistics.median(1000 * s["cpu"] / args.requests for s in samples)
            medians[variant] = (rate, cpu_ms, max(s["max_in_flight"] for s in samples))
        best = max(medians["sdk-threads"][0], medians["sdk-asyncio"][0])
        for variant in DEFAULT_VARIANTS:
            label = VARIANTS[variant]
            rate, cpu_ms, seen = medians[variant]
            lines.append(
                f"| {in_flight} | {label} | {rate:.1f} | {rate / ideal:.1%} | {cpu_ms:.2f} ms "
                f"| **{rate / best:.1%}** | {seen} |"
            )
        summary.append(
            f"{in_flight} in flight: vlmkit with coco+yolo {medians['vlmkit-sinks'][0] / best:.1%}"
            f", without sinks {medians['vlmkit'][0] / best:.1%} of the best bare SDK "
            f"({best:.0f} requests/s)"
        )
    lines += [
        "",
        "Ratios (goal ≥ 95 %): " + "; ".join(summary) + ".",
        "",
        f"¹ The ideal is `in_flight / latency` requests per second; {args.requests} requests "
        "end with a partly empty last wave, so no client reaches 100 %.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 requests, 4/8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), default=DEFAULT_VARIANTS, metavar="V"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes of the processes engine"
    )
    parser.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--images", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.in_flight = args.in_flight[0]
        child(args)
        return
    if args.quick:
        args.requests, args.rounds, args.in_flight = 40, 1, [4, 8]
    from bench_gemini_concurrency import FakeProcess

    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    rows: dict[tuple[str, int], list[dict]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        make_images(images, args.requests)
        before_us = file_creation_us(Path(tmp) / "probe-before")
        fake = FakeProcess(args.latency)
        try:
            for round_ in range(args.rounds):
                for in_flight in args.in_flight:
                    for variant in args.variants:
                        out = Path(tmp) / f"out-{variant}-{in_flight}-{round_}"
                        result = measure(
                            variant, in_flight, images, out, fake, args.requests, args.workers
                        )
                        rows.setdefault((variant, in_flight), []).append(result)
                        print(
                            f"round {round_ + 1}: {variant} at {in_flight}: "
                            f"{args.requests / result['wall']:.1f} requests/s, "
                            f"{1000 * result['cpu'] / args.requests:.2f} ms CPU per request "
                            f"(process user/sys {result['user_sys']})",
                            file=sys.stderr,
                        )
        finally:
            fake.close()
        files_us = (before_us, file_creation_us(Path(tmp) / "probe-after"))
    print(f"creating a small file: {files_us[0]:.0f} / {files_us[1]:.0f} µs", file=sys.stderr)
    if set(args.variants) != set(DEFAULT_VARIANTS):
        return  # a partial run (development, the processes engine): the lines above
    text = table(rows, args, load, files_us)
    from docblock import report

    report(text, started, write=args.write, begin=BEGIN, end=END)


if __name__ == "__main__":
    main()
