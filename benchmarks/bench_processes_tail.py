"""The `processes` engine's tail when answers vary: how long a run takes against the ideal.

400 small images to the loopback fake Gemini (`vlmkit_gemini.testing`, in this process): about
one in ten (chosen by its bytes' hash, the same every run) answered after 1 s, the rest after
50 ms; 8 requests in flight over 2 worker processes. The ideal is the answer time of all the
images spread evenly over the 8 slots; what a run takes beyond it is the workers' start-up and
the tail of the worker left with the most slow answers. The baseline, interleaved with it in
the same run (A B A B), is the local engine (threads in this process) at the same concurrency:
every round prints both wall times, their ratio and each one's ratio to the ideal.

Run from the repository root (against an older commit, from a checkout of it, to compare)::

    python benchmarks/bench_processes_tail.py --rounds 2
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

SLOW_S, FAST_S = 1.0, 0.05
ANSWER = '[{"box_2d": [100, 200, 500, 600], "label": "cat"}]'
MODEL = "gemini-3.5-flash-lite"


def is_slow(data: bytes) -> bool:
    return hashlib.sha256(data).digest()[0] < 26  # about 10 %


def images(folder: Path, count: int) -> list[Path]:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:03d}.jpg", quality=80)
    return sorted(folder.glob("*.jpg"))


def one_run(
    base_url: str, folder: Path, out: Path, in_flight: int, engine_name: str, workers: int
) -> float:
    from vlmkit.engines import SessionSpec, build_engine

    spec = SessionSpec(
        backend="gemini-api",
        model=MODEL,
        settings={"api_key": "bench-key", "base_url": base_url},
        cache=False,
    )
    with spec.session() as session:
        if engine_name == "local":  # threads in this process
            run = session.run(
                "detect", [folder], "cat", out_dir=out, concurrency=in_flight, progress=False
            )
        else:
            engine = build_engine(session, engine_name, {"workers": workers})
            run = engine.run(
                session, spec, "detect", [folder], prompt=["cat"], out_dir=out,
                concurrency=in_flight, progress=False,
            )  # fmt: skip
        started = time.perf_counter()
        done = sum(1 for outcome in run if outcome.status == "done")
        wall = time.perf_counter() - started
    if done != len(list(folder.glob("*.jpg"))):
        raise SystemExit(f"only {done} images were answered")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from vlmkit_gemini.testing import FakeGemini

    with tempfile.TemporaryDirectory() as scratch, FakeGemini() as fake:
        paths = images(Path(scratch) / "photos", args.images)
        slow = sum(is_slow(path.read_bytes()) for path in paths)

        def slow_request(request) -> bool:
            return any(is_slow(data) for _mime, data in request.inline_data)

        fake.add_rule(match=slow_request, text=ANSWER, delay_s=SLOW_S)
        fake.add_rule(text=ANSWER, delay_s=FAST_S)
        ideal = (slow * SLOW_S + (len(paths) - slow) * FAST_S) / args.in_flight
        print(f"{len(paths)} images, {slow} slow; ideal {ideal:.2f} s plus the start-up")
        for round_ in range(1, args.rounds + 1):
            walls = {}
            for engine_name in ("local", "processes"):
                out = Path(scratch) / f"out-{engine_name}-{round_}"
                walls[engine_name] = one_run(
                    fake.base_url, Path(scratch) / "photos", out, args.in_flight, engine_name,
                    args.workers,
                )  # fmt: skip
            local, procs = walls["local"], walls["processes"]
            print(
                f"round {round_}: local {local:.2f} s ({local / ideal:.2f}x ideal), processes "
                f"{procs:.2f} s ({procs / ideal:.2f}x ideal), processes/local {procs / local:.2f}"
            )


if __name__ == "__main__":
    main()
