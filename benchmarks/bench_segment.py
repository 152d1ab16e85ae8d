"""Segmentation at scale: what each mask costs a run, and `vlmkit label --task segment` against
the bare SDK with supervision's parser.

Two parts, each in fresh processes, interleaved (A B A B):

* **Stages** — one segmentation answer of 20 masks on a 4000×3000 photo, in both formats
  Gemini returns (base64 PNG crops, Gemini 2.5; polygons, Gemini 3.x), through each step a
  run takes per image: parsing it (``vlmkit.parse``), its ledger line (written, and read
  back, as a resume, an export or the processes engine does), and the COCO RLE and YOLO
  polygon of every mask (what the sinks write). Milliseconds per answer, the best of 5
  repeats.
* **Run** — 200 photos of 1600×1200, each answered after 200 ms by the loopback fake Gemini
  (its own process) with 8 masks — polygons from a Gemini 3.x model (the default), then PNG
  crops from Gemini 2.5 — at 32 in flight: `vlmkit label` (``Session.run``, what the CLI
  runs) without sinks and with COCO + YOLO, against the bare google-genai SDK from a thread
  pool that reads and checks each photo as vlmkit does, alone and followed by
  ``sv.Detections.from_vlm`` (the masks a user gets without vlmkit, full-frame).

With ``--before DIR`` (an older checkout: ``git worktree add DIR REV``) the stages and the
vlmkit runs are also measured with that code, in the same rounds.

Run from the repository root::

    python benchmarks/bench_segment.py                     # about 3 minutes on 2 cores
    python benchmarks/bench_segment.py --before /tmp/old   # ... and an older checkout
    python benchmarks/bench_segment.py --write             # updates docs/benchmarks.md
    python benchmarks/bench_segment.py --quick             # smoke run
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

#: The model each answer format comes from: vlmkit asks Gemini 3.x for polygons, 2.5 for PNGs.
MODELS = {"polygon": "gemini-3.6-flash", "png": "gemini-2.5-flash"}
PHOTO = (1600, 1200)
BEGIN, END = "<!-- bench_segment:begin -->", "<!-- bench_segment:end -->"
STAGES = ("parse", "ledger line", "ledger read", "COCO RLE", "YOLO polygons")
RUNS = {
    "vlmkit": "`vlmkit label`, no sinks",
    "vlmkit-sinks": "`vlmkit label`, COCO + YOLO",
    "sdk": "bare SDK (no masks parsed)",
    "sdk-sv": "bare SDK + `sv.Detections.from_vlm`",
}


# -- answers -----------------------------------------------------------------------------------
def png_answer(masks: int, seed: int = 0) -> str:
    """A Gemini 2.5 answer: a fenced JSON list of ``masks`` 256×256 PNG ellipses (bench_masks)."""
    import bench_masks

    bench_masks.N_MASKS = masks  # bench_masks builds its answer from this module constant
    return bench_masks.build_answer(seed)


def polygon_answer(masks: int, points: int = 64, seed: int = 0) -> str:
    """A Gemini 3.x answer: ``{"boxes": [...]}`` with ellipse polygons normalized to 0–1000."""
    import numpy as np

    rng = np.random.default_rng(seed)
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    boxes = []
    for index in range(masks):
        h, w = rng.uniform(0.05, 0.30, 2)
        y0, x0 = rng.uniform(0, 1 - h), rng.uniform(0, 1 - w)
        cx, cy = x0 + w / 2, y0 + h / 2
        ring = np.stack((cx + w / 2 * np.cos(angles), cy + h / 2 * np.sin(angles)), axis=1)
        box = [round(1000 * v) for v in (y0, x0, y0 + h, x0 + w)]
        boxes.append(
            {"box_2d": box, "label": f"object {index}", "mask": np.rint(1000 * ring).tolist()}
        )
    return json.dumps({"boxes": boxes})


# -- part 1: stages (child process) ------------------------------------------------------------
def stages_child() -> None:
    import timeit

    import vlmkit
    from vlmkit.ledger import LedgerRecord
    from vlmkit.masks import mask_to_rle
    from vlmkit.sinks.yolo import mask_to_yolo_polygon

    size = (4000, 3000)
    out = {}
    for kind, text in (("png", png_answer(20)), ("polygon", polygon_answer(20))):
        found = vlmkit.parse(text, task="segment", image_size=size)
        record = LedgerRecord(key="photo.jpg", status="done", result=found)
        line = record.to_line()
        steps = {
            "parse": lambda text=text: vlmkit.parse(text, task="segment", image_size=size),
            "ledger line": record.to_line,
            "ledger read": lambda line=line: LedgerRecord.from_dict(json.loads(line)),
            "COCO RLE": lambda found=found: [mask_to_rle(d.mask, size) for d in found.items],
            "YOLO polygons": lambda found=found: [
                mask_to_yolo_polygon(d.mask, size) for d in found.items
            ],
        }
        for name, step in steps.items():
            step()  # imports and caches, before the clock
            best = min(timeit.repeat(step, number=3, repeat=5)) / 3
            out[f"{kind}:{name}"] = 1000 * best
        out[f"{kind}:pixels"] = sum(d.mask.data.size for d in found.items)
        out[f"{kind}:line bytes"] = len(line)
    print(json.dumps(out))


# -- part 2: runs (child process) --------------------------------------------------------------
def run_child(args: argparse.Namespace) -> None:
    paths = sorted(Path(args.images).glob("*.jpg"))
    if args.child.startswith("vlmkit"):
        wall, cpu, ok = _vlmkit_run(args, ["coco", "yolo"] if args.child == "vlmkit-sinks" else [])
    else:
        wall, cpu, ok = _sdk_run(args, paths, supervision=args.child == "sdk-sv")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "cpu": cpu, "ok": ok, "peak_mib": peak}))


def _vlmkit_run(args: argparse.Namespace, sinks: list[str]) -> tuple[float, float, int]:
    import gc

    import vlmkit

    with vlmkit.Session(
        backend="gemini-api",
        model=MODELS[args.format],
        api_key="bench-key",
        base_url=args.base_url,
        cache=False,
    ) as session:
        run = session.run(
            "segment",
            [args.images],
            prompt="the objects",
            out_dir=args.out,
            sinks=sinks,
            concurrency=args.in_flight,
        )
        gc.freeze()  # as `vlmkit label` does once set up
        started, cpu = time.perf_counter(), time.process_time()
        statuses = [outcome.status for outcome in run]
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return wall, cpu, statuses.count("done")


def _sdk_run(
    args: argparse.Namespace, paths: list[Path], *, supervision: bool
) -> tuple[float, float, int]:
    from concurrent.futures import ThreadPoolExecutor

    import supervision as sv
    from bench_throughput import checked_size
    from google import genai
    from google.genai import types

    client = genai.Client(
        api_key="bench-key", http_options=types.HttpOptions(base_url=args.base_url)
    )
    config = types.GenerateContentConfig(
        response_mime_type="application/json",
        thinking_config=types.ThinkingConfig(thinking_budget=0),
    )
    prompt = "Give the segmentation masks for the objects."  # the fake answers any prompt
    model = MODELS[args.format]
    vlm = sv.VLM.GOOGLE_GEMINI_3_6 if args.format == "polygon" else sv.VLM.GOOGLE_GEMINI_2_5

    def one(path: Path) -> int:
        data = path.read_bytes()
        size = checked_size(data)  # checked as vlmkit checks it; its size maps the masks
        contents = [types.Part.from_bytes(data=data, mime_type="image/jpeg"), prompt]
        answer = client.models.generate_content(model=model, contents=contents, config=config)
        if supervision:
            found = sv.Detections.from_vlm(vlm, answer.text, resolution_wh=size)
            return len(found) if found.mask is not None else 0
        return len(answer.text)

    one(paths[0])  # warm-up, before the clock
    with ThreadPoolExecutor(args.in_flight) as pool:
        started, cpu = time.perf_counter(), time.process_time()
        done = list(pool.map(one, paths))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    client.close()
    return wall, cpu, sum(1 for n in done if n)


# -- the parent --------------------------------------------------------------------------------
def _serve(conn, latency_s: float) -> None:
    """The fake Gemini: each ("answer", text) resets it to answer every request with text."""
    from vlmkit_gemini.testing.fake_server import FakeGemini

    with FakeGemini() as fake:
        conn.send(fake.base_url)
        while (command := conn.recv()) != "stop":
            fake.reset()
            fake.latency_s = latency_s
            fake.add_rule(text=command[1])
            conn.send("ok")


def _child(argv: list[str], code: Path | None) -> dict:
    paths = [ROOT] if code is None else [code / "core", code / "plugins" / "gemini", ROOT]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(map(str, paths)),
        "VLMKIT_LOAD_PLUGINS": "vlmkit,vlmkit-gemini",
        "VLMKIT_CACHE": "0",
    }
    command = [sys.executable, __file__, *argv]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:2])} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def stages_table(rows: dict[str, list[dict]]) -> list[str]:
    codes = [code for code in ("before", "now") if code in rows]
    lines = [
        "| answer (20 masks, 12 MP) | step | "
        + " | ".join("before" if c == "before" else "now" for c in codes)
        + (" | before / now |" if len(codes) == 2 else " |"),
        "|---|---|" + "---:|" * (len(codes) + (len(codes) == 2)),
    ]
    for kind, what in (("png", "PNG crops (Gemini 2.5)"), ("polygon", "polygons (Gemini 3.x)")):
        for stage in (*STAGES, "line bytes"):
            cells = [statistics.median(r[f"{kind}:{stage}"] for r in rows[c]) for c in codes]
            unit = "{:.1f} KB" if stage == "line bytes" else "{:.1f} ms"
            shown = [unit.format(v / 1000 if stage == "line bytes" else v) for v in cells]
            ratio = f" | **{cells[0] / cells[1]:.1f}×**" if len(cells) == 2 else ""
            lines.append(f"| {what} | {stage} | " + " | ".join(shown) + ratio + " |")
    return lines


def runs_table(rows: dict[str, list[dict]], args: argparse.Namespace, fmt: str) -> list[str]:
    base = statistics.median(args.photos / r["wall"] for r in rows[f"{fmt}:now:sdk-sv"])
    lines = [
        "| code | variant | photos/s | vs bare SDK + from_vlm | CPU per photo | peak RSS |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, samples in rows.items():
        if not name.startswith(f"{fmt}:"):
            continue
        _fmt, code, variant = name.split(":")
        rate = statistics.median(args.photos / r["wall"] for r in samples)
        cpu = statistics.median(1000 * r["cpu"] / args.photos for r in samples)
        peak = statistics.median(r["peak_mib"] for r in samples)
        label = "before (`--before`)" if code == "before" else "this checkout"
        if variant.startswith("sdk"):
            label = "—"
        lines.append(
            f"| {label} | {RUNS[variant]} | {rate:.1f} | **{rate / base:.0%}** | {cpu:.1f} ms "
            f"| {peak:.0f} MiB |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--quick", action="store_true", help="smoke run: 16 photos, 1 round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--before", type=Path, metavar="DIR", help="an older checkout")
    parser.add_argument("--child", choices=["stages", *RUNS], help=argparse.SUPPRESS)
    parser.add_argument("--images", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--format", choices=list(MODELS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "stages":
        stages_child()
        return
    if args.child:
        run_child(args)
        return
    if args.quick:
        args.photos, args.rounds = 16, 1
    from bench_gemini_concurrency import machine
    from bench_photos import make_photos

    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    started = time.perf_counter()
    codes: list[tuple[str, Path | None]] = [("now", None)]
    if args.before is not None:
        codes.insert(0, ("before", args.before))
    stage_rows: dict[str, list[dict]] = {code: [] for code, _ in codes}
    run_plan = [(code, variant, path) for code, path in codes for variant in RUNS]
    run_plan = [(c, v, p) for c, v, p in run_plan if c == "now" or v.startswith("vlmkit")]
    formats = {"polygon": polygon_answer(8), "png": png_answer(8)}
    run_rows: dict[str, list[dict]] = {
        f"{fmt}:{c}:{v}": [] for fmt in formats for c, v, _ in run_plan
    }
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "photos"
        make_photos(images, args.photos, PHOTO)
        context = mp.get_context("spawn")
        conn, child_end = context.Pipe()
        server = context.Process(target=_serve, args=(child_end, args.latency), daemon=True)
        server.start()
        base_url = conn.recv()
        try:
            for round_ in range(args.rounds):
                for code, path in codes:
                    stage_rows[code].append(_child(["--child", "stages"], path))
                for (fmt, answer), (code, variant, path) in itertools.product(
                    formats.items(), run_plan
                ):
                    conn.send(("answer", answer))
                    conn.recv()
                    out = Path(tmp) / f"out-{fmt}-{code}-{variant}-{round_}"
                    argv = ["--child", variant, "--images", str(images), "--out", str(out)]
                    argv += ["--base-url", base_url, "--in-flight", str(args.in_flight)]
                    result = _child([*argv, "--format", fmt], path)
                    if result["ok"] != args.photos:
                        raise SystemExit(f"{code} {variant}: {result['ok']} of {args.photos}")
                    run_rows[f"{fmt}:{code}:{variant}"].append(result)
                    print(
                        f"round {round_ + 1}: {fmt} {code} {variant}: "
                        f"{args.photos / result['wall']:.1f} photos/s, "
                        f"{1000 * result['cpu'] / args.photos:.1f} ms CPU per photo",
                        file=sys.stderr,
                    )
        finally:
            conn.send("stop")
            server.join(timeout=10)
    lines = [
        f"Machine: {machine().split(';')[0]}; load average at the start {load}. Medians of "
        f"{args.rounds} interleaved rounds, each in a fresh process.",
        "",
        *stages_table(stage_rows),
        "",
        f"Runs: {args.photos} photos of {PHOTO[0]}×{PHOTO[1]}, 8 masks per answer, "
        f"{args.in_flight} in flight, {args.latency * 1000:.0f} ms per answer. Polygons "
        f"({MODELS['polygon']}, the default model):",
        "",
        *runs_table(run_rows, args, "polygon"),
        "",
        f"PNG crops ({MODELS['png']}):",
        "",
        *runs_table(run_rows, args, "png"),
    ]
    text = "\n".join(lines)
    from docblock import report

    report(text, started, write=args.write, begin=BEGIN, end=END)


if __name__ == "__main__":
    main()
